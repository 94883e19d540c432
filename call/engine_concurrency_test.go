package call

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"
)

// engGates is one release channel per call index.
type engGates struct {
	arrived chan int
	gates   []chan struct{}
}

func newEngGates(n int) *engGates {
	g := &engGates{arrived: make(chan int, n), gates: make([]chan struct{}, n)}
	for i := range g.gates {
		g.gates[i] = make(chan struct{})
	}
	return g
}

// handler answers {"i": i} once gate i is released.
func (g *engGates) handler(ctx context.Context, _ *OpContext, in json.RawMessage) (json.RawMessage, error) {
	var req struct{ I int }
	if err := json.Unmarshal(in, &req); err != nil || req.I < 0 || req.I >= len(g.gates) {
		return nil, NewCallError(CodeInvalidInput, "bad index")
	}
	g.arrived <- req.I
	select {
	case <-g.gates[req.I]:
		return json.RawMessage(fmt.Sprintf(`{"i":%d}`, req.I)), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// engReverse starts n calls of op on c at once, waits for all to arrive at their
// handlers, then releases them in reverse order, each answer received before the next
// release, so the answers come back in the reverse order of the requests.
func engReverse(t *testing.T, c *Conn, op string, g *engGates) {
	t.Helper()
	ctx := engCtx(t)
	n := len(g.gates)
	results := make([]chan engOut, n)
	for i := range n {
		results[i] = make(chan engOut, 1)
		go func() {
			out, err := c.Call(ctx, op, map[string]int{"i": i})
			results[i] <- engOut{out, err}
		}()
	}
	seen := make([]bool, n)
	for range n {
		i := engWait(t, g.arrived, "every call to reach its handler")
		if seen[i] {
			t.Fatalf("call %d arrived twice", i)
		}
		seen[i] = true
	}
	for i := n - 1; i >= 0; i-- {
		close(g.gates[i])
		r := engWait(t, results[i], fmt.Sprintf("the answer of call %d", i))
		if r.err != nil {
			t.Fatalf("call %d: %v", i, r.err)
		}
		if want := fmt.Sprintf(`{"i":%d}`, i); string(r.out) != want {
			t.Fatalf("call %d got %s, want %s (answers mixed up)", i, r.out, want)
		}
	}
}

// §5.10: 80 concurrent calls on one connection (separate QUIC streams, or the one
// shared stream), answered in reverse order and correlated by id; in both directions
// at the same time.
func TestEngineReverseOrderResponses(t *testing.T) {
	const n = 80
	engModes(t, func(t *testing.T, mode string) {
		sg, cg := newEngGates(n), newEngGates(n)
		srv := &Dispatcher{Registry: engRegistry(t, engQuery("gate/srv", sg.handler))}
		cli := &Dispatcher{Registry: engRegistry(t, engQuery("gate/cli", cg.handler))}
		p := engNewPair(t, mode, srv, cli, nil, nil)
		var wg sync.WaitGroup
		wg.Go(func() { t.Run("client to server", func(t *testing.T) { engReverse(t, p.client, "gate/srv", sg) }) })
		wg.Go(func() { t.Run("server to client", func(t *testing.T) { engReverse(t, p.server, "gate/cli", cg) }) })
		wg.Wait()
	})
}

// §5.10: concurrent subscriptions on one connection, interleaved, each receiving its
// own events in order and then its end.
func TestEngineConcurrentSubscriptions(t *testing.T) {
	const subs, events = 16, 20
	engModes(t, func(t *testing.T, mode string) {
		// Every subscription emits its events in lock-step with the others: event k
		// of any subscription goes out only after every subscription sent event k-1,
		// so the streams really interleave on the wire.
		var mu sync.Mutex
		cond := sync.NewCond(&mu)
		sent := make([]int, subs)
		minSent := func() int { return slices.Min(sent) }
		srv := &Dispatcher{Registry: engRegistry(t, engSub("feed/count", func(ctx context.Context, _ *OpContext, in json.RawMessage, emit func(json.RawMessage) error) error {
			var s int
			if err := json.Unmarshal(in, &s); err != nil {
				return err
			}
			stop := context.AfterFunc(ctx, func() { mu.Lock(); cond.Broadcast(); mu.Unlock() })
			defer stop()
			for k := range events {
				mu.Lock()
				for minSent() < k && ctx.Err() == nil {
					cond.Wait()
				}
				mu.Unlock()
				if err := emit(json.RawMessage(fmt.Sprintf(`"%d.%d"`, s, k))); err != nil {
					return err
				}
				mu.Lock()
				sent[s]++
				cond.Broadcast()
				mu.Unlock()
			}
			return nil
		}))}
		p := engNewPair(t, mode, srv, &Dispatcher{}, nil, nil)
		ctx := engCtx(t)
		errs := make(chan error, subs)
		for s := range subs {
			go func() {
				errs <- func() error {
					sub, err := p.client.Subscribe(ctx, "feed/count", s)
					if err != nil {
						return err
					}
					defer sub.Close()
					for k := range events {
						out, err := sub.Next(ctx)
						if err != nil {
							return fmt.Errorf("subscription %d event %d: %w", s, k, err)
						}
						if want := strconv.Quote(fmt.Sprintf("%d.%d", s, k)); string(out) != want {
							return fmt.Errorf("subscription %d event %d = %s, want %s", s, k, out, want)
						}
					}
					if _, err := sub.Next(ctx); !errors.Is(err, io.EOF) {
						return fmt.Errorf("subscription %d after its events: %v, want io.EOF", s, err)
					}
					return nil
				}()
			}()
		}
		for range subs {
			if err := engWait(t, errs, "the subscriptions"); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// §5.11: the client's DefaultTimeout ends a blocked call with TIMEOUT (retryable),
// and the abort it sends cancels the handler on the server.
func TestEngineClientTimeout(t *testing.T) {
	const timeout = 100 * time.Millisecond
	engModes(t, func(t *testing.T, mode string) {
		started := make(chan string, 1)
		handlerErr := make(chan error, 1)
		srv := &Dispatcher{Registry: engRegistry(t, engQuery("job/block", func(ctx context.Context, oc *OpContext, _ json.RawMessage) (json.RawMessage, error) {
			started <- oc.RequestID
			<-ctx.Done()
			handlerErr <- ctx.Err()
			return nil, ctx.Err()
		}))}
		p := engNewPair(t, mode, srv, &Dispatcher{DefaultTimeout: timeout}, nil, nil)
		// t.Context() has no deadline: the dispatcher's default applies.
		begin := time.Now()
		_, err := p.client.Call(t.Context(), "job/block", nil)
		ce := engWantErr(t, err, CodeTimeout, "")
		if !ce.Retryable {
			t.Fatalf("TIMEOUT not retryable: %+v", ce)
		}
		if el := time.Since(begin); el < timeout {
			t.Fatalf("timed out after %v, before the %v default", el, timeout)
		}
		id := engWait(t, started, "the handler to start")
		if err := engWait(t, handlerErr, "the server handler to be cancelled"); !errors.Is(err, context.Canceled) {
			t.Fatalf("server handler ctx error = %v, want context.Canceled by the client's abort", err)
		}
		p.wire.waitType(t, fromClient, id, EvAborted)
	})
}

// §5.11: the server's DefaultTimeout cancels a slow handler's context and the
// caller receives TIMEOUT, retryable.
func TestEngineServerTimeout(t *testing.T) {
	const timeout = 100 * time.Millisecond
	engModes(t, func(t *testing.T, mode string) {
		handlerErr := make(chan error, 1)
		srv := &Dispatcher{DefaultTimeout: timeout, Registry: engRegistry(t, engQuery("job/slow", func(ctx context.Context, _ *OpContext, _ json.RawMessage) (json.RawMessage, error) {
			select {
			case <-ctx.Done():
				handlerErr <- ctx.Err()
				return nil, ctx.Err()
			case <-time.After(engTimeout):
				handlerErr <- nil
				return json.RawMessage(`"not cancelled"`), nil
			}
		}))}
		p := engNewPair(t, mode, srv, &Dispatcher{}, nil, nil)
		_, err := p.client.Call(engCtx(t), "job/slow", nil)
		ce := engWantErr(t, err, CodeTimeout, "")
		if !ce.Retryable {
			t.Fatalf("TIMEOUT not retryable: %+v", ce)
		}
		if err := engWait(t, handlerErr, "the handler"); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("handler ctx error = %v, want context.DeadlineExceeded", err)
		}
		id := p.wire.requestID(t, fromClient, "/job/slow")
		if got := p.wire.waitType(t, fromServer, id, EvError); got.Type != EvError {
			t.Fatal("no call.error")
		}
	})
}

// §5.8, §5.11: a subscription has no deadline: it outlives several DefaultTimeouts
// of both sides.
func TestEngineSubscriptionOutlivesTimeout(t *testing.T) {
	const timeout = 100 * time.Millisecond
	engModes(t, func(t *testing.T, mode string) {
		gate := make(chan struct{})
		srv := &Dispatcher{DefaultTimeout: timeout, Registry: engRegistry(t, engSub("feed/slow", func(ctx context.Context, _ *OpContext, _ json.RawMessage, emit func(json.RawMessage) error) error {
			if err := emit(json.RawMessage(`"before"`)); err != nil {
				return err
			}
			select {
			case <-gate:
			case <-ctx.Done():
				return ctx.Err()
			}
			return emit(json.RawMessage(`"after"`))
		}))}
		p := engNewPair(t, mode, srv, &Dispatcher{DefaultTimeout: timeout}, nil, nil)
		sub, err := p.client.Subscribe(t.Context(), "feed/slow", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		go func() {
			<-time.After(3 * timeout)
			close(gate)
		}()
		got, err := engDrain(t, engCtx(t), sub)
		if err != nil || !slices.Equal(got, []string{`"before"`, `"after"`}) {
			t.Fatalf("subscription = %v, %v; want before, after, EOF", got, err)
		}
	})
}
