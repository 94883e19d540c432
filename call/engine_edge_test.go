package call

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/alknet/alknet/core"
)

// Conn.Close documents that it "waits for the Conn's goroutines (not for handlers
// that ignore their context)": closing must not hang on a handler that ignores its
// context (and so a handler may close its own connection).
func TestEngineCloseDoesNotWaitForStubbornHandler(t *testing.T) {
	const bound = 2 * time.Second
	engModes(t, func(t *testing.T, mode string) {
		started := make(chan struct{}, 1)
		release := make(chan struct{})
		srv := &Dispatcher{Registry: engRegistry(t, engQuery("job/stubborn", func(context.Context, *OpContext, json.RawMessage) (json.RawMessage, error) {
			started <- struct{}{}
			<-release // ignores its context
			return nil, nil
		}))}
		p := engNewPair(t, mode, srv, &Dispatcher{}, nil, nil)
		// Registered after engNewPair's cleanups, so it runs first: a hung Close
		// returns once the handler is released.
		t.Cleanup(func() { close(release) })
		res := engGo(engCtx(t), p.client, "job/stubborn", nil)
		engWait(t, started, "the handler to start")
		closed := make(chan struct{})
		go func() {
			p.server.Close()
			close(closed)
		}()
		select {
		case <-closed:
		case <-time.After(bound):
			t.Fatalf("server Conn.Close did not return within %v while a handler ignores its context", bound)
		}
		engWait(t, p.server.Done(), "the server's Done")
		if mode == modeMessage {
			p.client.Close()
		}
		engWantErr(t, engWait(t, res, "the client's call").err, CodeInternal, "connection closed")
	})
}

// §7.1: "Inbound EOF on a stream must not cancel requests that are still running on
// it. Close the send side only after they finish." A peer that half-closes after its
// request still gets the answer: on its own QUIC stream, and on the single TCP+TLS
// stream.
func TestEngineHalfCloseKeepsRunningRequests(t *testing.T) {
	for _, mode := range []string{modeQUIC, modeTCP} {
		t.Run(mode, func(t *testing.T) {
			started := make(chan string, 1)
			release := make(chan struct{})
			r := engNewRaw(t, mode, &Dispatcher{Registry: engWaitRegistry(t, started, release)}, nil)
			s := r.send(engRequest(t, "half", "ok/wait", nil))
			engWait(t, started, "the request to start")
			if mode == modeTCP {
				if err := s.s.CloseWrite(); err != nil {
					t.Fatal(err)
				}
			}
			// The server has read the end of the request stream before the handler
			// answers. An engine that ends the connection on that EOF does so at
			// once; the grace period only makes that failure deterministic.
			r.wire.waitReadEnd(t, fromServer, 1)
			select {
			case <-r.serverConn().Done():
				t.Fatalf("the peer's EOF ended the connection (%v) and cancelled the running request", r.serverConn().Err())
			case <-time.After(100 * time.Millisecond):
			}
			close(release)
			got := r.wire.waitType(t, fromServer, "half", EvResponded)
			if string(got.Payload) != `{"output":"released"}` {
				t.Fatalf("answer %s", got.Payload)
			}
			engWait(t, s.done, "the server to finish the stream after answering")
			if envs := s.envs(); len(envs) != 1 || envs[0].ID != "half" {
				t.Fatalf("the stream carried %v, want the answer", envs)
			}
		})
	}
}

// A CallOption is a value: using the same WithAuthToken option for several calls,
// one after the other or at once, sends the token every time.
func TestEngineAuthTokenOptionReuse(t *testing.T) {
	idp := engIDP{tokens: map[string]*core.Identity{"tok-admin": {ID: "token-admin", Scopes: []string{"admin"}}}}
	engModes(t, func(t *testing.T, mode string) {
		admin := engQuery("sec/admin", engWhoAmI())
		admin.Spec.Access.RequiredScopes = []string{"admin"}
		p := engNewPair(t, mode, &Dispatcher{Identities: idp, Registry: engRegistry(t, admin)}, &Dispatcher{}, nil, nil)
		ctx := engCtx(t)
		opt := WithAuthToken([]byte("tok-admin"))
		for i := range 2 {
			if _, err := p.client.Call(ctx, "sec/admin", nil, opt); err != nil {
				t.Fatalf("call %d with the same WithAuthToken option: %v", i+1, err)
			}
		}
		results := make([]<-chan engOut, 8)
		for i := range results {
			results[i] = engGo(ctx, p.client, "sec/admin", nil, opt)
		}
		for i, ch := range results {
			if r := engWait(t, ch, "the concurrent calls"); r.err != nil {
				t.Fatalf("concurrent call %d with a shared option: %v", i, r.err)
			}
		}
	})
}

// A Call or Subscribe whose context is already done fails at once without putting
// the request on the wire: the handler (a Mutation with side effects, say) must not
// run for a caller that has already given up.
func TestEngineCallWithDoneContext(t *testing.T) {
	engModes(t, func(t *testing.T, mode string) {
		ran := make(chan string, 4)
		srv := &Dispatcher{Registry: engRegistry(t,
			Registration{Spec: NewSpec("side/effect", Mutation), Once: func(context.Context, *OpContext, json.RawMessage) (json.RawMessage, error) {
				ran <- "side/effect"
				return nil, nil
			}},
			engSub("side/feed", func(context.Context, *OpContext, json.RawMessage, func(json.RawMessage) error) error {
				ran <- "side/feed"
				return nil
			}),
		)}
		p := engNewPair(t, mode, srv, &Dispatcher{}, nil, nil)
		cancelled, cancel := context.WithCancel(t.Context())
		cancel()
		expired, cancel2 := context.WithDeadline(t.Context(), time.Now().Add(-time.Second))
		defer cancel2()

		if _, err := p.client.Call(cancelled, "side/effect", nil); !errors.Is(err, context.Canceled) {
			t.Fatalf("Call with a cancelled ctx = %v, want context.Canceled", err)
		}
		if _, err := p.client.Call(expired, "side/effect", nil); !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, &CallError{Code: CodeTimeout}) {
			t.Fatalf("Call with an expired ctx = %v, want TIMEOUT or context.DeadlineExceeded", err)
		}
		if s, err := p.client.Subscribe(cancelled, "side/feed", nil); err == nil {
			if _, err := s.Next(engCtx(t)); !errors.Is(err, context.Canceled) {
				t.Fatalf("Subscribe with a cancelled ctx: Next = %v, want context.Canceled", err)
			}
		}
		// A round trip after them, then nothing may have run or been sent.
		if _, err := p.client.Call(engCtx(t), OpServicesList, nil); err != nil {
			t.Fatal(err)
		}
		p.closeBoth()
		select {
		case op := <-ran:
			t.Fatalf("%s ran for a caller whose context was already done", op)
		default:
		}
		for _, e := range p.wire.all(fromClient) {
			if e.Type != EvRequested {
				continue
			}
			if req, _ := ParseRequest(e); req.OperationName() != OpServicesList {
				t.Fatalf("a request for %s went on the wire although its ctx was done", req.OperationName())
			}
		}
	})
}

// The caller's side of bad answers: a call.responded or call.error whose payload is
// malformed ends the call with INTERNAL instead of hanging or crashing, and the
// connection goes on.
func TestEngineMalformedAnswers(t *testing.T) {
	// Message mode: the raw peer answers the Conn's calls by hand.
	r := engNewRaw(t, modeMessage, &Dispatcher{}, nil)
	c := r.server // a Conn like any other: here it is the caller
	ctx := engCtx(t)
	answer := func(op string, env func(id string) Envelope) engOut {
		res := engGo(ctx, c, op, nil)
		id := r.wire.requestID(t, fromServer, "/"+op)
		r.send(env(id))
		return engWait(t, res, "the call to end")
	}
	o := answer("peer/a", func(id string) Envelope {
		return Envelope{Type: EvResponded, ID: id, Payload: json.RawMessage(`[1]`)}
	})
	engWantErr(t, o.err, CodeInternal, "malformed")
	o = answer("peer/b", func(id string) Envelope {
		return Envelope{Type: EvError, ID: id, Payload: json.RawMessage(`{"code":5}`)}
	})
	engWantErr(t, o.err, CodeInternal, "malformed")
	o = answer("peer/c", func(id string) Envelope {
		return Envelope{Type: EvError, ID: id, Payload: json.RawMessage(`{"code":"NOTE_MISSING","message":"no such note","retryable":false,"details":{"noteId":"n-9"}}`)}
	})
	ce := engWantErr(t, o.err, "NOTE_MISSING", "no such note")
	if string(ce.Details) != `{"noteId":"n-9"}` {
		t.Fatalf("details %s", ce.Details)
	}
	// A responded without output is null; completed for a Query ends nothing twice.
	o = answer("peer/d", func(id string) Envelope { return Envelope{Type: EvResponded, ID: id, Payload: json.RawMessage(`{}`)} })
	if o.err != nil || string(o.out) != "null" {
		t.Fatalf("responded {} = %s, %v; want null", o.out, o.err)
	}
	select {
	case <-c.Done():
		t.Fatal("a malformed answer ended the connection")
	default:
	}
}

// A Call's deadline bounds the whole call, writing the request included: a peer that
// stops reading (flow control full) must not hold the caller past its deadline.
func TestEngineCallDeadlineWithStalledPeer(t *testing.T) {
	for _, network := range []string{modeQUIC, modeTCP} {
		t.Run(network, func(t *testing.T) {
			reg := core.NewRegistry()
			h := core.HandlerFunc(func(ctx context.Context, conn *core.Connection, _ core.AuthContext) error {
				// Accept streams, never read them.
				return core.ServeStreams(ctx, conn, func(s core.BiStream) { <-ctx.Done() })
			})
			if err := reg.RegisterAs(ALPN, h); err != nil {
				t.Fatal(err)
			}
			s := engStartServerRaw(t, reg)
			c, err := Dial(engCtx(t), s.srv.Addr, DialOptions{Transport: s.srv.DialOptions(s.client, engNetwork(network))})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			// Far more than QUIC's stream window or the loopback socket buffers.
			size := 4 << 20
			if network == modeTCP {
				size = 8 << 20
			}
			big := make([]byte, size)
			for i := range big {
				big[i] = 'a'
			}
			big[0], big[len(big)-1] = '"', '"'
			const deadline = time.Second
			ctx, cancel := context.WithTimeout(t.Context(), deadline)
			defer cancel()
			begin := time.Now()
			res := engGo(ctx, c, "stalled/op", json.RawMessage(big))
			select {
			case r := <-res:
				t.Logf("the call returned after %v: %v", time.Since(begin), r.err)
				if !errors.Is(r.err, &CallError{Code: CodeTimeout}) && !errors.Is(r.err, context.DeadlineExceeded) {
					t.Fatalf("call to a stalled peer = %v, want TIMEOUT", r.err)
				}
			case <-time.After(deadline + 3*time.Second):
				c.Close() // unblocks the write, so the goroutine ends
				t.Fatalf("Call is still blocked writing its request 3s after its %v deadline", deadline)
			}
		})
	}
}

// §2.4: a response the handler side cannot write (larger than its MaxFrameSize)
// becomes an INTERNAL call.error; the caller must not be left waiting for its
// deadline.
func TestEngineOversizeResponse(t *testing.T) {
	for _, mode := range []string{modeQUIC, modeTCP} {
		t.Run(mode, func(t *testing.T) {
			huge := json.RawMessage(`"` + strings.Repeat("x", 8192) + `"`)
			srv := &Dispatcher{MaxFrameSize: 4096, Registry: engRegistry(t,
				engQuery("big/out", func(context.Context, *OpContext, json.RawMessage) (json.RawMessage, error) { return huge, nil }),
				engSub("big/feed", func(_ context.Context, _ *OpContext, _ json.RawMessage, emit func(json.RawMessage) error) error {
					return emit(huge)
				}),
			)}
			p := engNewPair(t, mode, srv, &Dispatcher{}, nil, nil)
			ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
			defer cancel()
			sub, err := p.client.Subscribe(ctx, "big/feed", nil)
			if err != nil {
				t.Fatal(err)
			}
			_, err = engDrain(t, ctx, sub)
			engWantErr(t, err, CodeInternal, "")
			_, err = p.client.Call(ctx, "big/out", nil)
			engWantErr(t, err, CodeInternal, "")
		})
	}
}

// A caller that gives up while its request is still being written (the peer reads
// slowly) must not leave the peer running it: once the request has gone out, the
// peer either never runs it or gets call.aborted. (On a shared stream the write
// cannot be taken back: it finishes in the background, so an abort must follow.)
func TestEngineCancelDuringBlockedRequestWrite(t *testing.T) {
	for _, mode := range []string{modeQUIC, modeTCP} {
		t.Run(mode, func(t *testing.T) {
			started := make(chan string, 1)
			ended := make(chan error, 1)
			srv := &Dispatcher{Registry: engRegistry(t, engQuery("job/big", func(ctx context.Context, oc *OpContext, _ json.RawMessage) (json.RawMessage, error) {
				started <- oc.RequestID
				select {
				case <-ctx.Done():
					ended <- ctx.Err()
				case <-time.After(engTimeout):
					ended <- nil
				}
				return nil, ctx.Err()
			}))}
			// An identified client: an anonymous one may not send frames above
			// core.Limits.MaxAnonymousFrameBytes (1 MiB).
			p := engNewPair(t, mode, srv, &Dispatcher{}, &core.Identity{ID: "client"}, nil)
			release := p.wire.holdServerReads()
			released := false
			defer func() {
				if !released {
					release()
				}
			}()
			// Far more than QUIC's stream window or the loopback socket buffers.
			size := 4 << 20
			if mode == modeTCP {
				size = 8 << 20
			}
			big := json.RawMessage(`"` + strings.Repeat("a", size) + `"`)
			ctx, cancel := context.WithCancel(t.Context())
			res := engGo(ctx, p.client, "job/big", big)
			// The request is being written (the tap records it as the write starts)
			// and cannot complete: the server does not read.
			id := p.wire.requestID(t, fromClient, "/job/big")
			cancel()
			if r := engWait(t, res, "the cancelled call"); !errors.Is(r.err, context.Canceled) {
				t.Fatalf("cancelled call = %v, want context.Canceled", r.err)
			}
			release()
			released = true
			// A round trip after the server read everything before it.
			if _, err := p.client.Call(engCtx(t), OpServicesList, nil); err != nil {
				t.Fatalf("call after the cancelled one: %v", err)
			}
			select {
			case got := <-started:
				if got != id {
					t.Fatalf("handler ran for %s, want %s", got, id)
				}
				// The abort follows the request on the wire right away; 3s is ample.
				select {
				case err := <-ended:
					if !errors.Is(err, context.Canceled) {
						t.Fatalf("the abandoned request's handler ended with ctx error %v, want context.Canceled", err)
					}
				case <-time.After(3 * time.Second):
					t.Fatalf("the abandoned request's handler is still running 3s after the request arrived: no call.aborted followed it (client wrote %d envelopes with its id)",
						len(p.wire.with(fromClient, id, "")))
				}
			default:
				// Never ran: the request did not reach the server whole (QUIC resets
				// the stream).
			}
		})
	}
}
