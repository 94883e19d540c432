package call

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/core/endpoint"
	"github.com/quic-go/quic-go"
)

// §5.12: when the connection is lost, every pending call and subscription (either
// side) fails with INTERNAL "connection closed", the handlers still running on
// either side are cancelled, the imported overlays empty, Done fires on both sides and
// the Conns refuse new work.
func TestEngineLossFailsEverything(t *testing.T) {
	type trigger struct {
		name string
		fire func(p *engPair)
	}
	triggers := []trigger{
		{"transport lost", func(p *engPair) { p.loseTransport() }},
		{"server closes", func(p *engPair) { p.server.Close() }},
		{"client closes", func(p *engPair) { p.client.Close() }},
	}
	engModes(t, func(t *testing.T, mode string) {
		for _, tr := range triggers {
			if mode == modeMessage && tr.name != "transport lost" {
				// A message Conn learns of the transport's end from the transport
				// (its context or Close); closing one side does not reach the other.
				continue
			}
			t.Run(tr.name, func(t *testing.T) {
				started := make(chan string, 3)
				ended := make(chan string, 3)
				blocker := func(name string) Handler {
					return func(ctx context.Context, _ *OpContext, _ json.RawMessage) (json.RawMessage, error) {
						started <- name
						<-ctx.Done()
						ended <- name
						return nil, ctx.Err()
					}
				}
				srvReg := engRegistry(t, engEcho("srv/echo"), engQuery("srv/block", blocker("srv/block")),
					engSub("srv/feed", func(ctx context.Context, _ *OpContext, _ json.RawMessage, emit func(json.RawMessage) error) error {
						if err := emit(json.RawMessage(`"first"`)); err != nil {
							return err
						}
						started <- "srv/feed"
						<-ctx.Done()
						ended <- "srv/feed"
						return ctx.Err()
					}))
				cliReg := engRegistry(t, engEcho("cli/echo"), engQuery("cli/block", blocker("cli/block")))
				p := engNewPair(t, mode, &Dispatcher{Registry: srvReg}, &Dispatcher{Registry: cliReg},
					&core.Identity{ID: "cli"}, &core.Identity{ID: "srv"})
				ctx := engCtx(t)

				// Each side imports one operation of the other.
				for _, imp := range []struct {
					c    *Conn
					name string
				}{{p.client, "srv/echo"}, {p.server, "cli/echo"}} {
					regs, err := FromCall(ctx, imp.c, FromCallConfig{Filter: map[string]bool{imp.name: true}})
					if err != nil || len(regs) != 1 {
						t.Fatalf("FromCall(%s) = %d registrations, %v", imp.name, len(regs), err)
					}
					if err := imp.c.RegisterImported(regs...); err != nil {
						t.Fatal(err)
					}
					if !imp.c.OverlayEnv().Contains(imp.name) {
						t.Fatalf("overlay lacks %s after RegisterImported", imp.name)
					}
				}

				clientCall := engGo(ctx, p.client, "srv/block", nil)
				serverCall := engGo(ctx, p.server, "cli/block", nil)
				sub, err := p.client.Subscribe(ctx, "srv/feed", nil)
				if err != nil {
					t.Fatal(err)
				}
				if out, err := sub.Next(ctx); err != nil || string(out) != `"first"` {
					t.Fatalf("first event = %s, %v", out, err)
				}
				running := map[string]bool{}
				for range 3 {
					running[engWait(t, started, "the three handlers to start")] = true
				}

				tr.fire(p)

				engWait(t, p.client.Done(), "the client's Done")
				engWait(t, p.server.Done(), "the server's Done")
				for range 3 {
					name := engWait(t, ended, "the running handlers to be cancelled")
					delete(running, name)
				}
				if len(running) != 0 {
					t.Fatalf("handlers not cancelled: %v", running)
				}
				r := engWait(t, clientCall, "the client's pending call")
				engWantErr(t, r.err, CodeInternal, "connection closed")
				r = engWait(t, serverCall, "the server's pending call")
				engWantErr(t, r.err, CodeInternal, "connection closed")
				_, err = sub.Next(ctx)
				engWantErr(t, err, CodeInternal, "connection closed")

				for _, side := range []struct {
					c    *Conn
					name string
				}{{p.client, "srv/echo"}, {p.server, "cli/echo"}} {
					if side.c.OverlayEnv().Contains(side.name) {
						t.Fatalf("imported %s still in the overlay after the loss", side.name)
					}
					if side.c.Err() == nil {
						t.Fatal("Err() is nil after the loss")
					}
					_, err := side.c.Call(ctx, "srv/echo", nil)
					engWantErr(t, err, CodeInternal, "connection closed")
					if _, err := side.c.Subscribe(ctx, "srv/feed", nil); err == nil {
						t.Fatal("Subscribe on a lost connection succeeded")
					}
					if err := side.c.RegisterImported(engEcho("late/op")); err == nil {
						t.Fatal("RegisterImported on a lost connection succeeded")
					}
				}
			})
		}
	})
}

// §6: a handler panic answers INTERNAL for that request only; concurrent calls and
// the connection go on.
func TestEngineHandlerPanicIsolated(t *testing.T) {
	engModes(t, func(t *testing.T, mode string) {
		started := make(chan struct{}, 1)
		release := make(chan struct{})
		reg := engRegistry(t,
			engQuery("bad/panic", func(context.Context, *OpContext, json.RawMessage) (json.RawMessage, error) {
				panic("boom")
			}),
			engSub("bad/panicsub", func(_ context.Context, _ *OpContext, _ json.RawMessage, emit func(json.RawMessage) error) error {
				_ = emit(json.RawMessage(`1`))
				panic("boom")
			}),
			engQuery("ok/wait", func(ctx context.Context, _ *OpContext, _ json.RawMessage) (json.RawMessage, error) {
				started <- struct{}{}
				select {
				case <-release:
					return json.RawMessage(`"ok"`), nil
				case <-ctx.Done():
					return nil, ctx.Err()
				}
			}),
		)
		p := engNewPair(t, mode, &Dispatcher{Registry: reg}, &Dispatcher{}, nil, nil)
		ctx := engCtx(t)
		pending := engGo(ctx, p.client, "ok/wait", nil)
		engWait(t, started, "the concurrent call to start")
		_, err := p.client.Call(ctx, "bad/panic", nil)
		engWantErr(t, err, CodeInternal, "panic")
		sub, err := p.client.Subscribe(ctx, "bad/panicsub", nil)
		if err != nil {
			t.Fatal(err)
		}
		got, err := engDrain(t, ctx, sub)
		if len(got) != 1 || got[0] != "1" {
			t.Fatalf("events before the panic = %v", got)
		}
		engWantErr(t, err, CodeInternal, "panic")
		close(release)
		if r := engWait(t, pending, "the concurrent call"); r.err != nil || string(r.out) != `"ok"` {
			t.Fatalf("concurrent call = %s, %v", r.out, r.err)
		}
		if _, err := p.client.Call(ctx, OpServicesList, nil); err != nil {
			t.Fatalf("call after the panics: %v", err)
		}
	})
}

// §6, §5.12: on QUIC a bad stream (garbage, an oversize or zero length prefix, a body
// that is not JSON, an envelope missing a key) is closed by the server, and only that
// stream: a request running on another stream and new requests are unaffected.
func TestEngineQUICBadStreams(t *testing.T) {
	started := make(chan struct{}, 1)
	release := make(chan struct{})
	d := &Dispatcher{Registry: engRegistry(t, engEcho("ok/echo"), engQuery("ok/wait", func(ctx context.Context, _ *OpContext, _ json.RawMessage) (json.RawMessage, error) {
		started <- struct{}{}
		select {
		case <-release:
			return json.RawMessage(`"released"`), nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}))}
	r := engNewRaw(t, modeQUIC, d, nil)
	running := r.send(engRequest(t, "running", "ok/wait", nil))
	engWait(t, started, "the running request to start")

	prefix := func(n uint32, body string) []byte { return append(binary.BigEndian.AppendUint32(nil, n), body...) }
	bad := []struct {
		name  string
		bytes []byte
	}{
		{"oversize length", prefix(MaxFrameSize+1, "")},
		{"max uint32 length", prefix(^uint32(0), "")},
		{"zero length", prefix(0, "")},
		{"not JSON", prefix(8, "not json")},
		{"not an object", prefix(2, "[]")},
		{"missing payload", prefix(uint32(len(`{"type":"call.requested","id":"x"}`)), `{"type":"call.requested","id":"x"}`)},
		{"missing id", prefix(uint32(len(`{"type":"call.requested","payload":{}}`)), `{"type":"call.requested","payload":{}}`)},
		{"id not a string", prefix(uint32(len(`{"type":"call.requested","id":7,"payload":{}}`)), `{"type":"call.requested","id":7,"payload":{}}`)},
	}
	for _, b := range bad {
		t.Run(b.name, func(t *testing.T) {
			s := r.stream()
			// The write side stays open: only the server can end this stream.
			if _, err := s.s.Write(b.bytes); err != nil {
				t.Fatalf("write: %v", err)
			}
			err := engWait(t, s.done, "the server to close the bad stream")
			if len(s.envs()) != 0 {
				t.Fatalf("the server answered a bad stream: %v", s.envs())
			}
			t.Logf("stream ended: %v", err)
			// A valid request on a new stream still works.
			ok := r.send(engRequest(t, "after-"+b.name, "ok/echo", b.name))
			if err := engWait(t, ok.done, "the echo stream to end"); !errors.Is(err, ErrClosed) {
				t.Fatalf("echo stream ended with %v, want a clean end", err)
			}
			if got := ok.envs(); len(got) != 1 || got[0].Type != EvResponded || got[0].ID != "after-"+b.name {
				t.Fatalf("echo stream carried %v", got)
			}
		})
	}
	close(release)
	engWait(t, running.done, "the running request's stream to end")
	if got := running.envs(); len(got) != 1 || got[0].Type != EvResponded || string(got[0].Payload) != `{"output":"released"}` {
		t.Fatalf("the running request's stream carried %v", got)
	}
	select {
	case <-r.serverConn().Done():
		t.Fatal("a bad stream ended the connection")
	default:
	}
}

// §6: on a single TCP+TLS stream a framing error has no stream to drop but the
// connection: the server ends it, and its pending work fails.
func TestEngineTCPFramingErrorEndsConnection(t *testing.T) {
	r := engNewRaw(t, modeTCP, &Dispatcher{}, nil)
	r.send(engRequest(t, "ping", OpServicesList, nil))
	r.wire.waitType(t, fromServer, "ping", EvResponded)
	if _, err := r.shared.s.Write([]byte{0, 0, 0, 0}); err != nil {
		t.Fatal(err)
	}
	engWait(t, r.serverConn().Done(), "the server to end the connection")
	engWait(t, r.shared.done, "the TCP stream to end")
}

// engRawServer serves ALPN alknet/call with serve instead of a Dispatcher and returns
// a client Conn dialled to it over QUIC.
func engRawServer(t *testing.T, serve func(s core.BiStream)) *Conn {
	t.Helper()
	reg := core.NewRegistry()
	h := core.HandlerFunc(func(ctx context.Context, conn *core.Connection, _ core.AuthContext) error {
		return core.ServeStreams(ctx, conn, serve)
	})
	if err := reg.RegisterAs(ALPN, h); err != nil {
		t.Fatal(err)
	}
	s := engStartServerRaw(t, reg)
	c, err := Dial(engCtx(t), s.srv.Addr, DialOptions{Transport: s.srv.DialOptions(s.client, endpoint.NetworkQUIC)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// §5.12: on QUIC a stream reset by the peer fails only the request on it.
func TestEngineQUICStreamReset(t *testing.T) {
	releaseOK := make(chan struct{})
	arrived := make(chan string, 4)
	c := engRawServer(t, func(s core.BiStream) {
		defer s.Close()
		env, err := ReadFrame(s, 0)
		if err != nil {
			return
		}
		req, cerr := ParseRequest(env)
		if cerr != nil {
			return
		}
		arrived <- req.OperationName()
		switch req.OperationName() {
		case "raw/reset":
			qs, ok := s.(interface {
				CancelWrite(quic.StreamErrorCode)
				CancelRead(quic.StreamErrorCode)
			})
			if !ok {
				panic(fmt.Sprintf("%T is not a QUIC stream", s))
			}
			qs.CancelWrite(42)
			qs.CancelRead(42)
		case "raw/ok":
			<-releaseOK
			_ = WriteFrame(s, NewResponded(env.ID, json.RawMessage(`"ok"`)), 0)
			_ = s.CloseWrite()
			_, _ = ReadFrame(s, 0) // until the caller's FIN
		}
	})
	ctx := engCtx(t)
	ok := engGo(ctx, c, "raw/ok", nil)
	engWait(t, arrived, "the first request")
	_, err := c.Call(ctx, "raw/reset", nil)
	engWantErr(t, err, CodeInternal, "")
	close(releaseOK)
	if r := engWait(t, ok, "the other request"); r.err != nil || string(r.out) != `"ok"` {
		t.Fatalf("request on another stream = %s, %v", r.out, r.err)
	}
	select {
	case <-c.Done():
		t.Fatal("a stream reset ended the connection")
	default:
	}
}
