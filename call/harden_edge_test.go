package call

// Edge tests of the engine's limits that had none: MaxIdleCallStreams and
// HalfCloseGrace.

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"
)

// Dispatcher.IdleCallStreams: after N+1 concurrent calls exactly N streams stay open
// for the next calls, and the N+1th is finished; the next N calls reuse the kept ones.
func TestHardenIdleCallStreamsEdge(t *testing.T) {
	for _, keep := range []int{1, 2} {
		t.Run(fmt.Sprint(keep), func(t *testing.T) {
			started := make(chan struct{}, keep+1)
			release := make(chan struct{})
			srv := &Dispatcher{Registry: engRegistry(t, engQuery("t/hold", func(ctx context.Context, _ *OpContext, _ json.RawMessage) (json.RawMessage, error) {
				started <- struct{}{}
				select {
				case <-release:
					return json.RawMessage(`"ok"`), nil
				case <-ctx.Done():
					return nil, ctx.Err()
				}
			}))}
			p := engNewPair(t, modeQUIC, srv, &Dispatcher{IdleCallStreams: keep}, nil, nil)
			ctx := engCtx(t)
			// engNewPair's first call left one stream idle; N+1 concurrent calls
			// take it and open N more.
			var res []<-chan engOut
			for range keep + 1 {
				res = append(res, engGo(ctx, p.client, "t/hold", nil))
			}
			for range keep + 1 {
				engWait(t, started, "a call to start")
			}
			close(release)
			for _, r := range res {
				if o := engWait(t, r, "a call"); o.err != nil {
					t.Fatal(o.err)
				}
			}
			idle := p.client.idleStreams()
			if len(idle) != keep {
				t.Fatalf("%d idle streams, want %d", len(idle), keep)
			}
			// The stream beyond the limit was finished: the server read its end.
			p.wire.waitReadEnd(t, fromServer, 1)

			res = res[:0]
			for range keep {
				res = append(res, engGo(ctx, p.client, "t/hold", nil))
			}
			for _, r := range res {
				if o := engWait(t, r, "a call"); o.err != nil {
					t.Fatal(o.err)
				}
			}
			again := p.client.idleStreams()
			slices.SortFunc(idle, func(a, b *frameStream) int { return cmpPtr(a, b) })
			slices.SortFunc(again, func(a, b *frameStream) int { return cmpPtr(a, b) })
			if !slices.Equal(idle, again) {
				t.Fatalf("the next %d calls did not reuse the kept streams", keep)
			}
		})
	}
}

// idleStreams returns the idle call streams.
func (c *Conn) idleStreams() []*frameStream {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.idle)
}

func cmpPtr(a, b *frameStream) int {
	pa, pb := fmt.Sprintf("%p", a), fmt.Sprintf("%p", b)
	switch {
	case pa < pb:
		return -1
	case pa > pb:
		return 1
	}
	return 0
}

// HalfCloseGrace: after the peer's EOF on a single stream, a request that answers
// within the grace is answered and the connection then ends; one that runs past it
// is cut when the grace ends.
func TestHardenHalfCloseGrace(t *testing.T) {
	t.Run("answered within", func(t *testing.T) {
		started := make(chan string, 1)
		release := make(chan struct{})
		r := engNewRaw(t, modeTCP, &Dispatcher{Registry: engWaitRegistry(t, started, release)}, nil)
		s := r.send(engRequest(t, "in-time", "ok/wait", nil))
		engWait(t, started, "the request to start")
		if err := s.s.CloseWrite(); err != nil {
			t.Fatal(err)
		}
		r.wire.waitReadEnd(t, fromServer, 1)
		close(release)
		r.wire.waitType(t, fromServer, "in-time", EvResponded)
		engWait(t, r.serverConn().Done(), "the connection to end after the answer")
	})
	t.Run("cut after", func(t *testing.T) {
		started := make(chan string, 1)
		release := make(chan struct{})
		t.Cleanup(func() { close(release) })
		r := engNewRaw(t, modeTCP, &Dispatcher{Registry: engWaitRegistry(t, started, release)}, nil)
		s := r.send(engRequest(t, "late", "ok/wait", nil))
		engWait(t, started, "the request to start")
		begin := time.Now()
		if err := s.s.CloseWrite(); err != nil {
			t.Fatal(err)
		}
		engWait(t, r.serverConn().Done(), "the grace to end the connection")
		if d := time.Since(begin); d < HalfCloseGrace {
			t.Fatalf("the connection ended %v after the EOF, before the grace of %v", d, HalfCloseGrace)
		}
		engWait(t, s.done, "the stream to end")
		if got := r.wire.with(fromServer, "late", ""); len(got) != 0 {
			t.Fatalf("the cut request was answered: %v", got)
		}
	})
}
