package call

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"testing"
)

// Transport modes every engine test runs in.
const (
	modeQUIC    = "quic"
	modeTCP     = "tcp"
	modeMessage = "message"
)

var allModes = []string{modeQUIC, modeTCP, modeMessage}

// pair is a connected client Conn and the server-side Conn of the same connection.
type pair struct {
	client, server *Conn
}

func TestEngineRoundTripAndCallback(t *testing.T) {
	for _, mode := range allModes {
		t.Run(mode, func(t *testing.T) {
			srvReg := NewRegistry()
			mustRegister(t, srvReg, engEcho("test/echo"))
			cliReg := NewRegistry()
			hello := engEcho("client/hello")
			mustRegister(t, cliReg, hello)
			p := engNewPair(t, mode, &Dispatcher{Registry: srvReg}, &Dispatcher{Registry: cliReg}, nil, nil).pair
			ctx := t.Context()

			out, err := p.client.Call(ctx, "test/echo", map[string]int{"x": 1})
			if err != nil || string(out) != `{"x":1}` {
				t.Fatalf("client → server echo = %s, %v", out, err)
			}
			out, err = p.server.Call(ctx, "/client/hello", json.RawMessage(`"back"`))
			if err != nil || string(out) != `"back"` {
				t.Fatalf("server → client call = %s, %v", out, err)
			}
			_, err = p.client.Call(ctx, "test/missing", nil)
			var ce *CallError
			if !errors.As(err, &ce) || ce.Code != CodeNotFound {
				t.Fatalf("unknown op = %v, want NOT_FOUND", err)
			}
		})
	}
}

func TestEngineSubscriptionAndAbort(t *testing.T) {
	for _, mode := range allModes {
		t.Run(mode, func(t *testing.T) {
			srvReg := NewRegistry()
			started := make(chan struct{}, 1)
			cancelled := make(chan struct{}, 1)
			mustRegister(t, srvReg,
				Registration{
					Spec: NewSpec("test/count", Subscription),
					Stream: func(ctx context.Context, _ *OpContext, in json.RawMessage, emit func(json.RawMessage) error) error {
						var n int
						_ = json.Unmarshal(in, &n)
						for i := 1; i <= n; i++ {
							b, _ := json.Marshal(i)
							if err := emit(b); err != nil {
								return err
							}
						}
						return nil
					},
				},
				Registration{
					Spec: NewSpec("test/forever", Subscription),
					Stream: func(ctx context.Context, _ *OpContext, _ json.RawMessage, emit func(json.RawMessage) error) error {
						if err := emit(json.RawMessage(`"first"`)); err != nil {
							return err
						}
						started <- struct{}{}
						<-ctx.Done()
						cancelled <- struct{}{}
						return ctx.Err()
					},
				},
				Registration{
					Spec: NewSpec("test/block", Query),
					Once: func(ctx context.Context, _ *OpContext, _ json.RawMessage) (json.RawMessage, error) {
						started <- struct{}{}
						<-ctx.Done()
						cancelled <- struct{}{}
						return nil, ctx.Err()
					},
				},
			)
			p := engNewPair(t, mode, &Dispatcher{Registry: srvReg}, &Dispatcher{}, nil, nil).pair
			ctx := t.Context()

			sub, err := p.client.Subscribe(ctx, "test/count", 5)
			if err != nil {
				t.Fatal(err)
			}
			for i := 1; i <= 5; i++ {
				out, err := sub.Next(ctx)
				if err != nil || string(out) != string(rune('0'+i)) {
					t.Fatalf("event %d = %s, %v", i, out, err)
				}
			}
			if _, err := sub.Next(ctx); !errors.Is(err, io.EOF) {
				t.Fatalf("after the last event: %v, want io.EOF", err)
			}
			sub.Close()

			// Closing a live subscription cancels the handler on the other side.
			sub, err = p.client.Subscribe(ctx, "test/forever", nil)
			if err != nil {
				t.Fatal(err)
			}
			if out, err := sub.Next(ctx); err != nil || string(out) != `"first"` {
				t.Fatalf("first event = %s, %v", out, err)
			}
			<-started
			sub.Close()
			<-cancelled
			if _, err := sub.Next(ctx); !errors.Is(err, context.Canceled) {
				t.Fatalf("Next after Close = %v, want context.Canceled", err)
			}

			// Cancelling a call's context aborts the handler on the other side.
			cctx, cancel := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() {
				_, err := p.client.Call(cctx, "test/block", nil)
				done <- err
			}()
			<-started
			cancel()
			<-cancelled
			if err := <-done; !errors.Is(err, context.Canceled) {
				t.Fatalf("cancelled call = %v, want context.Canceled", err)
			}
		})
	}
}

func TestEngineConnectionLoss(t *testing.T) {
	for _, mode := range allModes {
		t.Run(mode, func(t *testing.T) {
			srvReg := NewRegistry()
			started := make(chan struct{}, 1)
			cancelled := make(chan struct{}, 1)
			mustRegister(t, srvReg, Registration{
				Spec: NewSpec("test/block", Query),
				Once: func(ctx context.Context, _ *OpContext, _ json.RawMessage) (json.RawMessage, error) {
					started <- struct{}{}
					<-ctx.Done()
					cancelled <- struct{}{}
					return nil, ctx.Err()
				},
			})
			p := engNewPair(t, mode, &Dispatcher{Registry: srvReg}, &Dispatcher{}, nil, nil).pair
			done := make(chan error, 1)
			go func() {
				_, err := p.client.Call(t.Context(), "test/block", nil)
				done <- err
			}()
			<-started
			p.server.Close()
			<-cancelled
			<-p.server.Done()
			if mode == modeMessage {
				// A message transport reports its own closing.
				p.client.Close()
			}
			err := <-done
			var ce *CallError
			if !errors.As(err, &ce) || ce.Code != CodeInternal || ce.Message != "connection closed" {
				t.Fatalf("pending call after connection loss = %v, want INTERNAL connection closed", err)
			}
			<-p.client.Done()
		})
	}
}

// Sequential calls on QUIC reuse one stream; with IdleCallStreams < 0 every call opens
// its own stream (the original client's pattern) and calls work the same.
func TestEngineCallStreamReuse(t *testing.T) {
	for _, idle := range []int{0, -1} {
		t.Run(fmt.Sprint("idle=", idle), func(t *testing.T) {
			srvReg := NewRegistry()
			mustRegister(t, srvReg, engEcho("test/echo"))
			p := engNewPair(t, modeQUIC, &Dispatcher{Registry: srvReg}, &Dispatcher{IdleCallStreams: idle}, nil, nil).pair
			for i := range 5 {
				out, err := p.client.Call(t.Context(), "test/echo", i)
				if err != nil || string(out) != fmt.Sprint(i) {
					t.Fatalf("call %d = %s, %v", i, out, err)
				}
			}
			p.client.mu.Lock()
			idleNow := len(p.client.idle)
			p.client.mu.Unlock()
			want := 1
			if idle < 0 {
				want = 0
			}
			if idleNow != want {
				t.Fatalf("%d idle call streams after sequential calls, want %d", idleNow, want)
			}
			// Aborting a call on a reused stream leaves the stream usable.
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			if _, err := p.client.Call(ctx, "test/echo", 1); !errors.Is(err, context.Canceled) {
				t.Fatalf("call with a cancelled context = %v", err)
			}
			if out, err := p.client.Call(t.Context(), "test/echo", 7); err != nil || string(out) != "7" {
				t.Fatalf("call after the cancelled one = %s, %v", out, err)
			}
		})
	}
}
