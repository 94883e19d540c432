package call

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alknet/alknet/core"
)

// engWaitRegistry holds ok/echo and ok/wait (blocks until release, reports start).
func engWaitRegistry(t testing.TB, started chan<- string, release <-chan struct{}) *Registry {
	return engRegistry(t, engEcho("ok/echo"), engQuery("ok/wait", func(ctx context.Context, oc *OpContext, _ json.RawMessage) (json.RawMessage, error) {
		started <- oc.RequestID
		select {
		case <-release:
			return json.RawMessage(`"released"`), nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}))
}

// engErrorOf parses a call.error envelope.
func engErrorOf(t testing.TB, env Envelope) *CallError {
	t.Helper()
	ce, err := ParseError(env)
	if err != nil {
		t.Fatalf("malformed call.error %s: %v", env.Payload, err)
	}
	return ce
}

// engPing checks that the raw connection still answers a request.
func engPing(t testing.TB, r *engRaw, id string) {
	t.Helper()
	r.send(engRequest(t, id, "ok/echo", id))
	got := r.wire.waitType(t, fromServer, id, EvResponded)
	if want := fmt.Sprintf(`{"output":%q}`, id); string(got.Payload) != want {
		t.Fatalf("ping answered %s, want %s", got.Payload, want)
	}
}

// §6: a call.requested whose payload is malformed is answered with call.error
// INVALID_INPUT carrying the request's id (on the stream it came on).
func TestEngineMalformedRequest(t *testing.T) {
	payloads := []string{
		`[1]`,
		`"a string"`,
		`null`,
		`7`,
		`{"operationId":5}`,
		`{"operationId":null}`,
		`{"operationId":["ok/echo"]}`,
		`{"input":1}`,
		`{"operationId":"/ok/echo","auth_token":5}`,
		`{"operationId":"/ok/echo","operationId":"/ok/echo"}`,
	}
	engModes(t, func(t *testing.T, mode string) {
		r := engNewRaw(t, mode, &Dispatcher{Registry: engRegistry(t, engEcho("ok/echo"))}, nil)
		for i, payload := range payloads {
			id := fmt.Sprintf("bad-%d", i)
			s := r.sendJSON(fmt.Sprintf(`{"type":"call.requested","id":%q,"payload":%s}`, id, payload))
			got := r.wire.waitType(t, fromServer, id, EvError)
			if ce := engErrorOf(t, got); ce.Code != CodeInvalidInput {
				t.Fatalf("payload %s answered %s %q, want INVALID_INPUT", payload, ce.Code, ce.Message)
			}
			if s != nil && mode == modeQUIC {
				engWait(t, s.done, "the bad request's stream to end")
				if envs := s.envs(); len(envs) != 1 || envs[0].ID != id || envs[0].Type != EvError {
					t.Fatalf("the answer to %s was not on its stream: %v", id, envs)
				}
			}
		}
		engPing(t, r, "ping")
		if rs := r.wire.all(fromServer); len(rs) != len(payloads)+1 {
			t.Fatalf("the server wrote %d envelopes, want %d:\n%s", len(rs), len(payloads)+1, r.wire.dump())
		}
	})
}

// §6: a second request with the id of one still running is rejected with
// INVALID_INPUT "duplicate request id" and the first is unaffected; once the first
// has finished the id may be used again.
func TestEngineDuplicateRequestID(t *testing.T) {
	engModes(t, func(t *testing.T, mode string) {
		started := make(chan string, 4)
		release := make(chan struct{})
		var echoes atomic.Int32
		reg := engWaitRegistry(t, started, release)
		mustRegister(t, reg, engQuery("ok/count", func(_ context.Context, _ *OpContext, in json.RawMessage) (json.RawMessage, error) {
			echoes.Add(1)
			return in, nil
		}))
		r := engNewRaw(t, mode, &Dispatcher{Registry: reg}, nil)
		first := r.send(engRequest(t, "dup", "ok/wait", nil))
		engWait(t, started, "the first request to start")
		second := r.send(engRequest(t, "dup", "ok/count", "second"))
		ce := engErrorOf(t, r.wire.waitType(t, fromServer, "dup", EvError))
		if ce.Code != CodeInvalidInput || ce.Message != "duplicate request id" {
			t.Fatalf("duplicate answered %s %q, want INVALID_INPUT \"duplicate request id\"", ce.Code, ce.Message)
		}
		if echoes.Load() != 0 {
			t.Fatal("the duplicate request ran")
		}
		close(release)
		got := r.wire.waitType(t, fromServer, "dup", EvResponded)
		if string(got.Payload) != `{"output":"released"}` {
			t.Fatalf("the first request answered %s", got.Payload)
		}
		if mode == modeQUIC {
			engWait(t, first.done, "the first stream to end")
			engWait(t, second.done, "the second stream to end")
			if e := first.envs(); len(e) != 1 || e[0].Type != EvResponded {
				t.Fatalf("first stream carried %v", e)
			}
			if e := second.envs(); len(e) != 1 || e[0].Type != EvError {
				t.Fatalf("second stream carried %v", e)
			}
		}
		var types []string
		for _, e := range r.wire.with(fromServer, "dup", "") {
			types = append(types, e.Type)
		}
		if !slices.Equal(types, []string{EvError, EvResponded}) {
			t.Fatalf("answers for id dup: %v, want [call.error call.responded]", types)
		}
		// The id is free again once its request finished.
		r.send(engRequest(t, "dup", "ok/count", "again"))
		r.wire.waitFor(t, fromServer, "the reused id's answer", func(e Envelope) bool {
			return e.ID == "dup" && e.Type == EvResponded && string(e.Payload) == `{"output":"again"}`
		})
	})
}

// §6: responses, completions, errors and aborts for ids nobody knows are dropped
// silently; the connection goes on.
func TestEngineUnknownResponseIDs(t *testing.T) {
	engModes(t, func(t *testing.T, mode string) {
		r := engNewRaw(t, mode, &Dispatcher{Registry: engRegistry(t, engEcho("ok/echo"))}, nil)
		r.send(NewResponded("ghost", json.RawMessage(`1`)))
		r.send(NewCompleted("ghost"))
		r.send(NewErrorEnvelope("ghost", NewCallError(CodeInternal, "late")))
		r.send(NewAborted("ghost"))
		r.send(Envelope{Type: EvResponded, ID: "ghost-bad", Payload: json.RawMessage(`[]`)})
		engPing(t, r, "ping")
		sc := r.serverConn()
		select {
		case <-sc.Done():
			t.Fatal("the connection ended")
		default:
		}
		sc.Close()
		for _, e := range r.wire.all(fromServer) {
			if e.ID != "ping" {
				t.Fatalf("the server answered %s %s; wire:\n%s", e.Type, e.ID, r.wire.dump())
			}
		}
	})
}

// §6: an unknown envelope type is ignored.
func TestEngineUnknownEnvelopeType(t *testing.T) {
	engModes(t, func(t *testing.T, mode string) {
		r := engNewRaw(t, mode, &Dispatcher{Registry: engRegistry(t, engEcho("ok/echo"))}, nil)
		r.send(Envelope{Type: "call.bogus", ID: "u1", Payload: json.RawMessage(`{}`)})
		r.send(Envelope{Type: "", ID: "u2", Payload: json.RawMessage(`null`)})
		r.send(Envelope{Type: "CALL.REQUESTED", ID: "u3", Payload: json.RawMessage(`{"operationId":"/ok/echo","input":1}`)})
		engPing(t, r, "ping")
		sc := r.serverConn()
		select {
		case <-sc.Done():
			t.Fatal("the connection ended")
		default:
		}
		sc.Close()
		for _, e := range r.wire.all(fromServer) {
			if e.ID != "ping" {
				t.Fatalf("the server answered %s %s", e.Type, e.ID)
			}
		}
	})
}

// §5.5, §6: an Internal operation called from the wire is NOT_FOUND even when access
// control would deny it, and discovery hides it.
func TestEngineInternalOpFromWire(t *testing.T) {
	engModes(t, func(t *testing.T, mode string) {
		var ran atomic.Int32
		hidden := engQuery("sec/hidden", func(context.Context, *OpContext, json.RawMessage) (json.RawMessage, error) {
			ran.Add(1)
			return nil, nil
		})
		hidden.Spec.Visibility = Internal
		hidden.Spec.Access.RequiredScopes = []string{"admin"}
		hiddenSub := engSub("sec/hiddenfeed", func(context.Context, *OpContext, json.RawMessage, func(json.RawMessage) error) error {
			ran.Add(1)
			return nil
		})
		hiddenSub.Spec.Visibility = Internal
		open := engQuery("sec/open", func(context.Context, *OpContext, json.RawMessage) (json.RawMessage, error) {
			ran.Add(1)
			return nil, nil
		})
		open.Spec.Visibility = Internal
		for _, who := range []*core.Identity{nil, {ID: "user", Scopes: []string{"basic"}}} {
			p := engNewPair(t, mode, &Dispatcher{Registry: engRegistry(t, hidden, hiddenSub, open)}, &Dispatcher{}, who, nil)
			ctx := engCtx(t)
			_, err := p.client.Call(ctx, "sec/hidden", nil)
			engWantErr(t, err, CodeNotFound, "operation not found: sec/hidden")
			_, err = p.client.Call(ctx, "sec/open", nil)
			engWantErr(t, err, CodeNotFound, "operation not found: sec/open")
			sub, err := p.client.Subscribe(ctx, "sec/hiddenfeed", nil)
			if err != nil {
				t.Fatal(err)
			}
			_, err = engDrain(t, ctx, sub)
			engWantErr(t, err, CodeNotFound, "operation not found: sec/hiddenfeed")
			_, err = p.client.Call(ctx, OpServicesSchema, map[string]string{"name": "sec/hidden"})
			engWantErr(t, err, CodeNotFound, "sec/hidden")
			out, err := p.client.Call(ctx, OpServicesList, nil)
			if err != nil {
				t.Fatal(err)
			}
			var list struct{ Operations []struct{ Name string } }
			if err := json.Unmarshal(out, &list); err != nil {
				t.Fatal(err)
			}
			for _, op := range list.Operations {
				if op.Name != OpServicesList && op.Name != OpServicesSchema {
					t.Fatalf("services/list shows %s", op.Name)
				}
			}
		}
		if ran.Load() != 0 {
			t.Fatal("an Internal handler ran for a wire request")
		}
	})
}

// §6: with MaxInflight 2 a third concurrent request gets INTERNAL, retryable; once
// the first two finish, requests are accepted again.
func TestEngineMaxInflight(t *testing.T) {
	engModes(t, func(t *testing.T, mode string) {
		started := make(chan string, 4)
		release := make(chan struct{})
		srv := &Dispatcher{MaxInflight: 2, Registry: engWaitRegistry(t, started, release)}
		p := engNewPair(t, mode, srv, &Dispatcher{}, nil, nil)
		ctx := engCtx(t)
		// Start two requests that stay running. (A request that has just answered
		// may still be counted for a moment, see
		// TestEngineMaxInflightCountsOnlyUnanswered: a refused start is retried.)
		admit := func(what string) <-chan engOut {
			for range 100 {
				res := engGo(ctx, p.client, "ok/wait", nil)
				select {
				case <-started:
					return res
				case r := <-res:
					if ce, ok := errors.AsType[*CallError](r.err); !ok || !ce.Retryable {
						t.Fatalf("%s: %v", what, r.err)
					}
				case <-ctx.Done():
					t.Fatalf("timed out starting %s", what)
				}
			}
			t.Fatalf("%s refused 100 times", what)
			return nil
		}
		a := admit("the first request")
		b := admit("the second request")
		_, err := p.client.Call(ctx, "ok/echo", 3)
		ce := engWantErr(t, err, CodeInternal, "")
		if !ce.Retryable {
			t.Fatalf("the refusal is not retryable: %+v", ce)
		}
		sub, err := p.client.Subscribe(ctx, "ok/wait", nil)
		if err != nil {
			t.Fatal(err)
		}
		_, err = sub.Next(ctx)
		if ce := engWantErr(t, err, CodeInternal, ""); !ce.Retryable {
			t.Fatalf("the refused subscription is not retryable: %+v", ce)
		}
		close(release)
		for _, ch := range []<-chan engOut{a, b} {
			if r := engWait(t, ch, "the admitted requests"); r.err != nil {
				t.Fatalf("admitted request: %v", r.err)
			}
		}
		if out, err := p.client.Call(ctx, "ok/echo", 4); err != nil || string(out) != "4" {
			t.Fatalf("request after the others finished = %s, %v", out, err)
		}
	})
}

// §6: a subscription whose consumer does not read: on a shared stream (TCP+TLS,
// message) a full SubscriptionBuffer aborts it with INTERNAL "subscription buffer
// full" after the buffered events, while other calls keep working; on QUIC the slow
// consumer only holds the sender back and receives every event.
func TestEngineSubscriptionBufferFull(t *testing.T) {
	const events = 10
	engModes(t, func(t *testing.T, mode string) {
		handlerDone := make(chan error, 1)
		srv := &Dispatcher{Registry: engRegistry(t, engEcho("ok/echo"), engSub("feed/burst", func(ctx context.Context, _ *OpContext, _ json.RawMessage, emit func(json.RawMessage) error) error {
			err := func() error {
				for i := 1; i <= events; i++ {
					if err := emit(json.RawMessage(fmt.Sprint(i))); err != nil {
						return err
					}
				}
				if mode != modeQUIC {
					// Shared stream: the client is expected to give up.
					<-ctx.Done()
					return ctx.Err()
				}
				return nil
			}()
			handlerDone <- err
			return err
		}))}
		p := engNewPair(t, mode, srv, &Dispatcher{SubscriptionBuffer: 2}, nil, nil)
		ctx := engCtx(t)
		sub, err := p.client.Subscribe(ctx, "feed/burst", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		herr := engWait(t, handlerDone, "the subscription handler to finish")
		// Other calls work while the consumer has not read anything.
		if out, err := p.client.Call(ctx, "ok/echo", "x"); err != nil || string(out) != `"x"` {
			t.Fatalf("call beside a stalled subscription = %s, %v", out, err)
		}
		got, err := engDrain(t, ctx, sub)
		if mode == modeQUIC {
			if herr != nil {
				t.Fatalf("handler: %v", herr)
			}
			want := make([]string, events)
			for i := range want {
				want[i] = fmt.Sprint(i + 1)
			}
			if err != nil || !slices.Equal(got, want) {
				t.Fatalf("slow QUIC consumer got %v, %v; want every event then EOF", got, err)
			}
			return
		}
		if !errors.Is(herr, context.Canceled) {
			t.Fatalf("handler ended with %v, want cancelled by the client's abort", herr)
		}
		if !slices.Equal(got, []string{"1", "2"}) {
			t.Fatalf("buffered events = %v, want [1 2]", got)
		}
		engWantErr(t, err, CodeInternal, "subscription buffer full")
		id := p.wire.requestID(t, fromClient, "/feed/burst")
		p.wire.waitType(t, fromClient, id, EvAborted)
	})
}

// A request whose answer has been delivered no longer counts against MaxInflight: a
// client that waits for each answer before its next request (never more than
// MaxInflight requests in flight) is never refused, even when the server's request
// goroutine has not wound down yet after writing the answer.
func TestEngineMaxInflightCountsOnlyUnanswered(t *testing.T) {
	engModes(t, func(t *testing.T, mode string) {
		started := make(chan struct{}, 1)
		srv := &Dispatcher{MaxInflight: 1, Registry: engRegistry(t, engEcho("ok/echo"),
			engQuery("ok/signal", func(context.Context, *OpContext, json.RawMessage) (json.RawMessage, error) {
				started <- struct{}{}
				return json.RawMessage(`"second"`), nil
			}))}
		p := engNewPair(t, mode, srv, &Dispatcher{}, nil, nil)
		ctx := engCtx(t)
		// Hold the server's writer of the first answer right after the answer went
		// out, as a descheduled goroutine would.
		hold := make(chan struct{})
		var released atomic.Bool
		release := func() {
			if released.CompareAndSwap(false, true) {
				close(hold)
			}
		}
		defer release()
		hook := func(d engDir, env Envelope) {
			if d == fromServer && env.Type == EvResponded && string(env.Payload) == `{"output":"first"}` {
				<-hold
			}
		}
		p.wire.afterWrite.Store(&hook)
		if out, err := p.client.Call(ctx, "ok/echo", "first"); err != nil || string(out) != `"first"` {
			t.Fatalf("first call = %s, %v", out, err)
		}
		second := engGo(ctx, p.client, "ok/signal", nil)
		select {
		case <-started:
		case r := <-second:
			release()
			t.Fatalf("the second, sequential request was refused while the first's answer had been delivered: %v", r.err)
		case <-time.After(2 * time.Second):
			// On a shared stream a refusal waits behind the held writer.
		}
		release()
		if r := engWait(t, second, "the second call"); r.err != nil || string(r.out) != `"second"` {
			t.Fatalf("the second, sequential request = %s, %v; want it admitted", r.out, r.err)
		}
	})
}
