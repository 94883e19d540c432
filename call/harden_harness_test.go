package call

// Harness of the hardening suite (harden_*_test.go): a loopback endpoint serving a
// Dispatcher directly, so each connection has the endpoint's own memory budget and
// idle watch, with a known peer ("alice"), an API key and live limits.

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/core/coretest"
	"github.com/alknet/alknet/core/endpoint"
)

// hardServer is a loopback endpoint (QUIC and TCP+TLS) serving d.
type hardServer struct {
	srv   *coretest.Server
	alice *coretest.Identity // known as peer "alice" (scope "demo")
	anon  *coretest.Identity // a certificate the server does not know
	key   core.AuthToken     // an API key (scope "demo")
	cfg   core.DynamicConfig // the configuration the server started with

	conns   chan *Conn       // server-side Conns, as Handle starts them
	handled chan hardHandled // Handle's results, as they return
	seen    []*Conn          // Conns taken from conns by serverConnOf
}

// hardHandled is what one Handle call returned, with its connection.
type hardHandled struct {
	conn *core.Connection
	err  error
}

// hardStart serves d with limits lim (the endpoint's and the Dispatcher's) and the
// endpoint's identity provider as d.Identities.
func hardStart(t testing.TB, d *Dispatcher, lim core.Limits) *hardServer {
	t.Helper()
	if d.Registry == nil {
		d.Registry = hardRegistry(t)
	}
	key, entry, err := core.NewAPIKey([]string{"demo"}, "test key")
	if err != nil {
		t.Fatal(err)
	}
	h := &hardServer{
		alice:   coretest.NewIdentity(t),
		anon:    coretest.NewIdentity(t),
		key:     key,
		conns:   make(chan *Conn, 64),
		handled: make(chan hardHandled, 64),
	}
	h.cfg = core.DynamicConfig{Limits: lim}
	h.cfg.Auth.Peers = []core.PeerEntry{h.alice.Peer("alice", "demo")}
	h.cfg.Auth.APIKeys = []core.APIKeyEntry{entry}
	onConnect := d.OnConnect
	d.OnConnect = func(c *Conn) {
		if onConnect != nil {
			onConnect(c)
		}
		h.conns <- c
	}
	reg := core.NewRegistry()
	handler := core.HandlerFunc(func(ctx context.Context, conn *core.Connection, auth core.AuthContext) error {
		err := d.Handle(ctx, conn, auth)
		h.handled <- hardHandled{conn: conn, err: err}
		return err
	})
	if err := reg.RegisterAs(ALPN, handler); err != nil {
		t.Fatal(err)
	}
	h.srv = coretest.NewServer(t, reg, coretest.WithConfig(h.cfg), coretest.WithEndpointConfig(func(c *endpoint.Config) {
		// Before the endpoint starts: no goroutine reads d yet.
		d.Identities = c.Identities
		d.Limits = c.Limits
		d.Logger = c.Logger
	}))
	return h
}

// dial returns a client Conn to the server presenting id (nil: no certificate).
func (h *hardServer) dial(t testing.TB, id *coretest.Identity, n endpoint.Network) *Conn {
	t.Helper()
	return h.dialWith(t, &Dispatcher{}, id, n)
}

// dialWith is dial with the client's Dispatcher d.
func (h *hardServer) dialWith(t testing.TB, d *Dispatcher, id *coretest.Identity, n endpoint.Network) *Conn {
	t.Helper()
	c, err := Dial(engCtx(t), h.srv.Addr, DialOptions{Transport: h.srv.DialOptions(id, n), Dispatcher: d})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// raw returns a raw connection presenting id.
func (h *hardServer) raw(t testing.TB, id *coretest.Identity, n endpoint.Network) *core.Connection {
	t.Helper()
	return h.srv.Dial(t, ALPN, id, n)
}

// serverConnOf returns the server-side Conn of client's connection (connections may
// start their handlers in any order).
func (h *hardServer) serverConnOf(t testing.TB, client *Conn) *Conn {
	t.Helper()
	return h.serverConnAt(t, client.streams.LocalAddr())
}

// serverConnAt returns the server-side Conn of the connection whose client side has
// address local.
func (h *hardServer) serverConnAt(t testing.TB, localAddr net.Addr) *Conn {
	t.Helper()
	port := func(a net.Addr) string {
		if a == nil {
			return ""
		}
		_, p, _ := net.SplitHostPort(a.String())
		return p
	}
	local := port(localAddr)
	for i := 0; ; i++ {
		if i == len(h.seen) {
			h.seen = append(h.seen, engWait(t, h.conns, "the server to accept the connection"))
		}
		if sc := h.seen[i]; port(sc.remote) == local {
			return sc
		}
	}
}

// waitHandled returns the result of the next Handle call to return.
func (h *hardServer) waitHandled(t testing.TB) hardHandled {
	t.Helper()
	return engWait(t, h.handled, "Handle to return")
}

// hardNetworks are the endpoint's transports.
var hardNetworks = []endpoint.Network{endpoint.NetworkQUIC, endpoint.NetworkTCP}

// hardEach runs f once per transport.
func hardEach(t *testing.T, f func(t *testing.T, n endpoint.Network)) {
	for _, n := range hardNetworks {
		t.Run(n.String(), func(t *testing.T) { f(t, n) })
	}
}

// hardRegistry holds the suite's operations: t/echo, t/whoami (the caller's identity
// id, "" for none) and t/len (the length of its string input).
func hardRegistry(t testing.TB, regs ...Registration) *Registry {
	t.Helper()
	return engRegistry(t, append([]Registration{
		engEcho("t/echo"),
		engQuery("t/whoami", func(_ context.Context, oc *OpContext, _ json.RawMessage) (json.RawMessage, error) {
			id := ""
			if oc.Identity != nil {
				id = oc.Identity.ID
			}
			return json.Marshal(id)
		}),
		engQuery("t/len", func(_ context.Context, _ *OpContext, in json.RawMessage) (json.RawMessage, error) {
			var s string
			if err := json.Unmarshal(in, &s); err != nil {
				return nil, err
			}
			return json.Marshal(len(s))
		}),
	}, regs...)...)
}

// hardLenFrame returns a call.requested frame for t/len whose body is exactly n bytes,
// and the length of its input (the answer).
func hardLenFrame(t testing.TB, id string, n int) (frame []byte, inputLen int) {
	t.Helper()
	body := func(k int) string {
		return fmt.Sprintf(`{"type":"call.requested","id":%q,"payload":{"operationId":"/t/len","input":"%s"}}`, id, strings.Repeat("a", k))
	}
	k := n - len(body(0))
	if k < 0 {
		t.Fatalf("a frame of %d bytes is too short", n)
	}
	b := body(k)
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(b))), b...), k
}

// hardStream is a raw stream with a goroutine reading its frames until it ends.
type hardStream struct {
	s    core.BiStream
	envs chan Envelope
	done chan error // the error that ended reading
}

func hardRead(t testing.TB, s core.BiStream, wg *sync.WaitGroup) *hardStream {
	hs := &hardStream{s: s, envs: make(chan Envelope, 16), done: make(chan error, 1)}
	wg.Go(func() {
		for {
			env, err := ReadFrame(s, 0)
			if err != nil {
				hs.done <- err
				return
			}
			select {
			case hs.envs <- env:
			default:
			}
		}
	})
	return hs
}

// hardStreamCode returns the application error code of a QUIC stream reset in err.
func hardStreamCode(err error) (quic.StreamErrorCode, bool) {
	se, ok := errors.AsType[*quic.StreamError](err)
	if !ok {
		return 0, false
	}
	return se.ErrorCode, true
}

// hardWaitFor polls cond, which reads counters the endpoint updates after a
// connection's handler returned.
func hardWaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(engTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// hardDrain reads s until it ends and returns the error (io.EOF for a clean end).
func hardDrain(s io.Reader) error {
	_, err := io.Copy(io.Discard, s)
	if err == nil {
		err = io.EOF
	}
	return err
}

// hardRawConn is a raw client connection: frames are written by the test.
type hardRawConn struct {
	t      testing.TB
	n      endpoint.Network
	conn   *core.Connection
	shared *hardStream // TCP: the one stream, once opened
	wg     sync.WaitGroup
}

func hardNewRawConn(t testing.TB, h *hardServer, id *coretest.Identity, n endpoint.Network) *hardRawConn {
	t.Helper()
	r := &hardRawConn{t: t, n: n, conn: h.raw(t, id, n)}
	t.Cleanup(func() {
		r.conn.Close(core.CloseNormal, "")
		r.wg.Wait()
	})
	return r
}

// stream returns a new stream (QUIC) or the connection's one stream (TCP).
func (r *hardRawConn) stream() *hardStream {
	r.t.Helper()
	if r.shared != nil {
		return r.shared
	}
	bs, err := r.conn.OpenBi(engCtx(r.t))
	if err != nil {
		r.t.Fatalf("open a stream: %v", err)
	}
	s := hardRead(r.t, bs, &r.wg)
	if r.n == endpoint.NetworkTCP {
		r.shared = s
	}
	return s
}

// send writes frame on stream() and, on QUIC, half-closes the stream. A failed write
// (the server refused the frame before it was all sent) shows on the stream's reader.
func (r *hardRawConn) send(frame []byte) *hardStream {
	r.t.Helper()
	s := r.stream()
	if _, err := s.s.Write(frame); err != nil {
		r.t.Logf("write: %v", err)
	}
	if r.n == endpoint.NetworkQUIC {
		_ = s.s.CloseWrite()
	}
	return s
}

// hardWantLen waits for the answer of a t/len request.
func hardWantLen(t testing.TB, s *hardStream, id string, n int) {
	t.Helper()
	env := engWait(t, s.envs, "the answer of "+id)
	if env.ID != id || env.Type != EvResponded || string(env.Payload) != fmt.Sprintf(`{"output":%d}`, n) {
		t.Fatalf("answer %s %s %.80s, want %s responded %d", env.Type, env.ID, env.Payload, id, n)
	}
}

// hardWantRefused checks how a frame over a limit was refused: its QUIC stream is
// reset with code 5 (core.CloseLimitExceeded); on TCP+TLS the connection is closed
// and Handle returns an error wrapping want whose text holds text.
func hardWantRefused(t testing.TB, h *hardServer, n endpoint.Network, s *hardStream, want error, text string) {
	t.Helper()
	err := engWait(t, s.done, "the server to refuse the frame")
	if n == endpoint.NetworkQUIC {
		if code, ok := hardStreamCode(err); !ok || code != quic.StreamErrorCode(core.CloseLimitExceeded) {
			t.Fatalf("stream ended with %v, want a reset with code %d", err, core.CloseLimitExceeded)
		}
		return
	}
	hh := h.waitHandled(t)
	if !errors.Is(hh.err, want) || !strings.Contains(hh.err.Error(), text) {
		t.Fatalf("Handle returned %v, want %v with %q", hh.err, want, text)
	}
}
