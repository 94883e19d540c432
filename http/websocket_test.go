package http

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/alknet/alknet/call"
	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/core/coretest"
	"github.com/alknet/alknet/core/endpoint"
	"github.com/alknet/alknet/core/tlsconf"
)

// wstGuard bounds every wait of these tests; it only turns a hang into a failure.
const wstGuard = 10 * time.Second

// The tokens all contain wstSecret, so that the log check can look for any of them
// (and for the bogus ones the tests send).
const (
	wstSecret   = "wst-SECRET"
	wstTokAlice = wstSecret + "-alice-9c1f" // alice, scope demo
	wstTokBob   = wstSecret + "-bob-4d2e"   // bob, no scope
	wstTokAPI   = wstSecret + "-apikey-77a" // api-bot, scopes demo and admin
	wstTokBogus = wstSecret + "-bogus-0000" // resolves to nothing
)

type wstIdentities struct{}

func (wstIdentities) ResolveFromFingerprint(string) (*core.Identity, bool) { return nil, false }
func (wstIdentities) ResolveFromToken(t core.AuthToken) (*core.Identity, bool) {
	switch string(t.Raw) {
	case wstTokAlice:
		return &core.Identity{ID: "alice", Scopes: []string{"demo"}}, true
	case wstTokBob:
		return &core.Identity{ID: "bob"}, true
	case wstTokAPI:
		return &core.Identity{ID: "api-bot", Scopes: []string{"demo", "admin"}}, true
	}
	return nil, false
}

// wstConnected is what the node's OnConnect hook reports: the browser's connection
// and the result of importing its operations.
type wstConnected struct {
	c   *call.Conn
	err error
}

// wstFixture is a Handler serving the WebSocket path with operations the tests drive
// through channels, and a log capture.
type wstFixture struct {
	h    *Handler
	logs *coretest.LogBuffer

	slowEntered   chan struct{}        // ws/slow began
	slowRelease   chan struct{}        // closing it lets ws/slow answer
	blockStarted  chan struct{}        // ws/block or ws/blocksub began
	blockReleased chan struct{}        // ws/block or ws/blocksub saw its context end
	push          chan json.RawMessage // events of ws/pushes
	marked        chan struct{}        // ws/mark ran
	connected     chan wstConnected    // OnConnect of the overlay tests
}

// wstNew builds the fixture's Handler; mod may adjust the Config (the WebSocket part,
// typically) before New.
func wstNew(t testing.TB, mod func(*wstFixture, *Config)) *wstFixture {
	t.Helper()
	f := &wstFixture{
		logs:          coretest.NewLogBuffer(),
		slowEntered:   make(chan struct{}, 64),
		slowRelease:   make(chan struct{}),
		blockStarted:  make(chan struct{}, 16),
		blockReleased: make(chan struct{}, 16),
		push:          make(chan json.RawMessage),
		marked:        make(chan struct{}, 16),
		connected:     make(chan wstConnected, 16),
	}
	// Registered first, so it runs last: after the servers and connections are gone.
	t.Cleanup(func() {
		if s := f.logs.String(); strings.Contains(s, wstSecret) {
			t.Errorf("a token reached the logs:\n%s", s)
		}
	})
	cfg := Config{
		Registry:   wstRegistry(t, f),
		Identities: wstIdentities{},
		Logger:     f.logs.Logger(),
	}
	if mod != nil {
		mod(f, &cfg)
	}
	h, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	f.h = h
	return f
}

// wstImportOnConnect makes the node import the browser's operations into the
// connection's overlay as soon as it connects, and report the connection.
func wstImportOnConnect(f *wstFixture, cfg *Config) {
	cfg.WebSocket.OnConnect = func(ctx context.Context, c *call.Conn) {
		regs, err := call.FromCall(ctx, c, call.FromCallConfig{})
		if err == nil {
			err = c.RegisterImported(regs...)
		}
		f.connected <- wstConnected{c: c, err: err}
	}
}

func wstRegistry(t testing.TB, f *wstFixture) *call.Registry {
	t.Helper()
	reg := call.NewRegistry()
	once := func(name string, h call.Handler) call.Registration {
		return call.Registration{Spec: call.NewSpec(name, call.Query), Once: h}
	}
	stream := func(name string, h call.StreamHandler) call.Registration {
		return call.Registration{Spec: call.NewSpec(name, call.Subscription), Stream: h}
	}
	whoami := func(_ context.Context, oc *call.OpContext, _ json.RawMessage) (json.RawMessage, error) {
		return json.Marshal(map[string]string{"id": oc.Identity.ID})
	}
	who := once("ws/whoami", whoami)
	who.Spec.Access = call.AccessControl{RequiredScopes: []string{"demo"}}
	admin := once("ws/admin", whoami)
	admin.Spec.Access = call.AccessControl{RequiredScopes: []string{"admin"}}

	via := once("ws/viaPeer", func(ctx context.Context, oc *call.OpContext, in json.RawMessage) (json.RawMessage, error) {
		// The browser's identity names no peer, and its requests' environment does
		// not hold its overlay; only its live connection's OverlayEnv reaches it.
		out := map[string]any{}
		_, e := oc.Env.InvokePeer(ctx, call.PeerRef{Peer: oc.Identity.ID}, "page", "greet", in, oc, oc.AbortPolicy)
		out["peer"] = wstCode(e)
		_, e = oc.Call(ctx, "page/greet", in)
		out["env"] = wstCode(e)
		out["peers"] = oc.Env.PeerIDs()
		c := call.ConnFrom(ctx)
		if c == nil {
			return nil, errors.New("no connection in the handler's context")
		}
		res, e := c.OverlayEnv().Invoke(ctx, "page", "greet", in, oc, oc.AbortPolicy)
		if e != nil {
			out["overlay"] = e.Code
		} else {
			out["overlay"] = res
		}
		return json.Marshal(out)
	})
	via.Authority = &call.CompositionAuthority{Label: "ws-svc", Scopes: []string{"page"}}
	via.Scoped = call.NewScopedEnv("page/greet")

	for _, r := range []call.Registration{
		once("ws/echo", func(_ context.Context, _ *call.OpContext, in json.RawMessage) (json.RawMessage, error) {
			return in, nil
		}),
		who, admin, via,
		once("ws/len", func(_ context.Context, _ *call.OpContext, in json.RawMessage) (json.RawMessage, error) {
			return json.RawMessage(strconv.Itoa(len(in))), nil
		}),
		once("ws/slow", func(ctx context.Context, _ *call.OpContext, _ json.RawMessage) (json.RawMessage, error) {
			f.slowEntered <- struct{}{}
			select {
			case <-f.slowRelease:
				return json.RawMessage(`"slow"`), nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}),
		once("ws/block", func(ctx context.Context, _ *call.OpContext, _ json.RawMessage) (json.RawMessage, error) {
			f.blockStarted <- struct{}{}
			<-ctx.Done()
			f.blockReleased <- struct{}{}
			return nil, ctx.Err()
		}),
		once("ws/mark", func(context.Context, *call.OpContext, json.RawMessage) (json.RawMessage, error) {
			f.marked <- struct{}{}
			return json.RawMessage(`"marked"`), nil
		}),
		stream("ws/ticks", func(_ context.Context, _ *call.OpContext, in json.RawMessage, emit func(json.RawMessage) error) error {
			var arg struct{ N int }
			if err := json.Unmarshal(in, &arg); err != nil {
				return err
			}
			for i := range arg.N {
				if err := emit(json.RawMessage(fmt.Sprintf(`{"tick":%d}`, i))); err != nil {
					return err
				}
			}
			return nil
		}),
		stream("ws/blocksub", func(ctx context.Context, _ *call.OpContext, _ json.RawMessage, emit func(json.RawMessage) error) error {
			if err := emit(json.RawMessage(`"started"`)); err != nil {
				return err
			}
			f.blockStarted <- struct{}{}
			<-ctx.Done()
			f.blockReleased <- struct{}{}
			return ctx.Err()
		}),
		stream("ws/pushes", func(ctx context.Context, _ *call.OpContext, _ json.RawMessage, emit func(json.RawMessage) error) error {
			for {
				select {
				case v := <-f.push:
					if err := emit(v); err != nil {
						return err
					}
				case <-ctx.Done():
					return ctx.Err()
				}
			}
		}),
	} {
		if err := reg.Register(r); err != nil {
			t.Fatalf("register %s: %v", r.Spec.Name, err)
		}
	}
	return reg
}

// wstCode is the code of e, "" for none.
func wstCode(e *call.CallError) string {
	if e == nil {
		return ""
	}
	return e.Code
}

// serve starts a loopback httptest server for the fixture's Handler (with its
// ConnContext, as an embedder mounts it). wrap, when set, wraps its listener.
func (f *wstFixture) serve(t testing.TB, wrap func(net.Listener) net.Listener) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(f.h)
	srv.Config.ConnContext = f.h.ConnContext
	if wrap != nil {
		srv.Listener = wrap(srv.Listener)
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

// wstURL is the WebSocket URL of srv's /alknet/call.
func wstURL(srv *httptest.Server) string {
	return "ws" + strings.TrimPrefix(srv.URL, "http") + WebSocketPath
}

// wstDialOpts says how a test client connects.
type wstDialOpts struct {
	bearer    string   // Authorization: Bearer (none when empty)
	protocols []string // offered subprotocols
	header    []string // more headers, name/value pairs
	client    *http.Client
}

// wstDial performs the WebSocket handshake.
func wstDial(t *testing.T, url string, o wstDialOpts) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	h := http.Header{}
	if o.bearer != "" {
		h.Set("Authorization", "Bearer "+o.bearer)
	}
	for i := 0; i+1 < len(o.header); i += 2 {
		h.Add(o.header[i], o.header[i+1])
	}
	ctx, cancel := context.WithTimeout(context.Background(), wstGuard)
	defer cancel()
	return websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: o.client, HTTPHeader: h, Subprotocols: o.protocols})
}

// wstMustDial is wstDial that must succeed.
func wstMustDial(t *testing.T, url string, o wstDialOpts) *websocket.Conn {
	t.Helper()
	ws, resp, err := wstDial(t, url, o)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial %s: %v (status %d)", url, err, status)
	}
	return ws
}

// wstClient is the test's side of a WebSocket: a read pump that either hands the
// node's envelopes to the test (raw mode) or feeds them to a call.Conn (browser
// mode), as a browser running the call protocol would.
type wstClient struct {
	ws   *websocket.Conn
	c    *call.Conn         // browser mode
	msgs chan call.Envelope // raw mode
	done chan struct{}      // the pump ended
	err  error              // why, once done is closed
}

// wstRaw starts a raw client on ws: the test reads the node's envelopes itself.
func wstRaw(t *testing.T, ws *websocket.Conn) *wstClient {
	t.Helper()
	return wstStart(t, ws, nil, nil)
}

// wstBrowser starts a browser client on ws: a call.Conn serving reg (nil: nothing)
// to the node, which it sees as nodeID.
func wstBrowser(t *testing.T, ws *websocket.Conn, reg *call.Registry, nodeID *core.Identity) *wstClient {
	t.Helper()
	if reg == nil {
		reg = call.NewRegistry()
	}
	return wstStart(t, ws, &call.Dispatcher{Registry: reg}, nodeID)
}

func wstStart(t *testing.T, ws *websocket.Conn, d *call.Dispatcher, nodeID *core.Identity) *wstClient {
	t.Helper()
	ws.SetReadLimit(-1)
	ctx, cancel := context.WithCancel(context.Background())
	cl := &wstClient{ws: ws, done: make(chan struct{})}
	if d != nil {
		cl.c = d.NewMessageConn(ctx, nodeID, func(ctx context.Context, env call.Envelope) error {
			b, err := call.EncodeEnvelope(env)
			if err != nil {
				return err
			}
			// A cancelled call must not cut the message (and the socket) in half.
			wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), wstGuard)
			defer cancel()
			return ws.Write(wctx, websocket.MessageBinary, b)
		})
	} else {
		cl.msgs = make(chan call.Envelope, 1024)
	}
	go func() {
		defer close(cl.done)
		for {
			typ, b, err := ws.Read(ctx)
			if err == nil && typ != websocket.MessageBinary {
				err = fmt.Errorf("the node sent a %v message", typ)
				_ = ws.CloseNow()
			}
			var env call.Envelope
			if err == nil {
				if env, err = call.DecodeEnvelope(b); err != nil {
					err = fmt.Errorf("the node sent an invalid envelope %q: %w", b, err)
					_ = ws.CloseNow()
				}
			}
			if err != nil {
				cl.err = err
				if cl.c != nil {
					_ = cl.c.Close()
				}
				return
			}
			if cl.c != nil {
				cl.c.HandleEnvelope(ctx, env)
				continue
			}
			select {
			case cl.msgs <- env:
			case <-ctx.Done():
			}
		}
	}()
	t.Cleanup(func() {
		_ = ws.CloseNow()
		cancel()
		<-cl.done
		if cl.c != nil {
			_ = cl.c.Close()
		}
	})
	return cl
}

// send writes one binary message.
func (cl *wstClient) send(t *testing.T, b []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wstGuard)
	defer cancel()
	if err := cl.ws.Write(ctx, websocket.MessageBinary, b); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// sendEnv writes env.
func (cl *wstClient) sendEnv(t *testing.T, env call.Envelope) {
	t.Helper()
	b, err := call.EncodeEnvelope(env)
	if err != nil {
		t.Fatal(err)
	}
	cl.send(t, b)
}

// request sends call.requested id for op with input (nil: null).
func (cl *wstClient) request(t *testing.T, id, op, input string) {
	t.Helper()
	var in json.RawMessage
	if input != "" {
		in = json.RawMessage(input)
	}
	env, err := call.NewRequest(id, op, in, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	cl.sendEnv(t, env)
}

// next returns the node's next envelope (raw mode).
func (cl *wstClient) next(t *testing.T) call.Envelope {
	t.Helper()
	select {
	case env := <-cl.msgs:
		return env
	case <-cl.done:
		select {
		case env := <-cl.msgs:
			return env
		default:
		}
		t.Fatalf("connection ended while waiting for an envelope: %v", cl.err)
	case <-time.After(wstGuard):
		t.Fatal("no envelope from the node")
	}
	return call.Envelope{}
}

// answer skips envelopes until one for id and returns it (raw mode).
func (cl *wstClient) answer(t *testing.T, id string) call.Envelope {
	t.Helper()
	for {
		if env := cl.next(t); env.ID == id {
			return env
		}
	}
}

// output checks that env is a call.responded and returns its output.
func wstOutput(t *testing.T, env call.Envelope) string {
	t.Helper()
	if env.Type != call.EvResponded {
		t.Fatalf("envelope %s %s %s, want call.responded", env.Type, env.ID, env.Payload)
	}
	out, err := call.ParseResponded(env)
	if err != nil {
		t.Fatalf("responded %s: %v", env.Payload, err)
	}
	return string(out)
}

// wstError checks that env is a call.error with code and returns it.
func wstError(t *testing.T, env call.Envelope, code string) *call.CallError {
	t.Helper()
	if env.Type != call.EvError {
		t.Fatalf("envelope %s %s %s, want call.error %s", env.Type, env.ID, env.Payload, code)
	}
	e, err := call.ParseError(env)
	if err != nil {
		t.Fatalf("error %s: %v", env.Payload, err)
	}
	if e.Code != code {
		t.Fatalf("error %s, want code %s", env.Payload, code)
	}
	return e
}

// roundTrip calls ws/echo with a fresh id and checks the answer: the connection is
// usable (raw mode).
func (cl *wstClient) roundTrip(t *testing.T) {
	t.Helper()
	id := call.NewID()
	cl.request(t, id, "ws/echo", `{"alive":true}`)
	if out := wstOutput(t, cl.answer(t, id)); out != `{"alive":true}` {
		t.Fatalf("echo answered %s", out)
	}
}

// closed waits for the pump to end and returns the close frame the node sent.
func (cl *wstClient) closed(t *testing.T) websocket.CloseError {
	t.Helper()
	select {
	case <-cl.done:
	case <-time.After(wstGuard):
		t.Fatal("the node did not close the connection")
	}
	var ce websocket.CloseError
	if !errors.As(cl.err, &ce) {
		t.Fatalf("connection ended with %v, want a close frame", cl.err)
	}
	return ce
}

// call runs op through the browser's call.Conn.
func (cl *wstClient) call(t *testing.T, op, input string, opts ...call.CallOption) (string, *call.CallError) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wstGuard)
	defer cancel()
	var in any
	if input != "" {
		in = json.RawMessage(input)
	}
	out, err := cl.c.Call(ctx, op, in, opts...)
	if err != nil {
		var ce *call.CallError
		if !errors.As(err, &ce) {
			t.Fatalf("call %s: %v", op, err)
		}
		return "", ce
	}
	return string(out), nil
}

// wstHandshake sends a WebSocket upgrade request with the extra headers (name/value
// pairs) and reads the refusal; a 101 is returned without a body (the connection is
// closed).
func wstHandshake(t *testing.T, client *http.Client, url string, headers ...string) (int, http.Header, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wstGuard)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Add(headers[i], headers[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusSwitchingProtocols {
		return resp.StatusCode, resp.Header, nil
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the body: %v", err)
	}
	return resp.StatusCode, resp.Header, b
}

// wstGet is a plain GET (no upgrade) with the extra headers.
func wstGet(t *testing.T, client *http.Client, url string, headers ...string) (*http.Response, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wstGuard)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Add(headers[i], headers[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// wstWait waits for ch with the guard.
func wstWait[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(wstGuard):
		t.Fatalf("timed out waiting for %s", what)
	}
	var zero T
	return zero
}

// --- Authentication -------------------------------------------------------------

// Without an identity the upgrade is refused with 401 before anything is upgraded,
// whatever else the request carries; a token in the URL is never read.
func TestWebSocketNoIdentityIs401(t *testing.T) {
	f := wstNew(t, nil)
	srv := f.serve(t, nil)
	base := srv.URL + WebSocketPath
	tests := []struct {
		name    string
		query   string
		headers []string
	}{
		{"no token", "", nil},
		{"bogus bearer", "", []string{"Authorization", "Bearer " + wstTokBogus}},
		{"bearer with another scheme", "", []string{"Authorization", "Basic " + wstTokAlice}},
		{"lowercase bearer scheme, bogus token", "", []string{"Authorization", "bearer " + wstTokBogus}},
		{"bogus subprotocol token", "", []string{"Sec-WebSocket-Protocol", "alknet.call, " + WebSocketBearerPrefix + wstTokBogus}},
		{"empty subprotocol token", "", []string{"Sec-WebSocket-Protocol", "alknet.call, " + WebSocketBearerPrefix}},
		{"two bearer subprotocols", "", []string{"Sec-WebSocket-Protocol", "alknet.call, " + WebSocketBearerPrefix + wstTokAlice + ", " + WebSocketBearerPrefix + wstTokAlice}},
		{"two bearer subprotocols in two headers", "", []string{
			"Sec-WebSocket-Protocol", "alknet.call, " + WebSocketBearerPrefix + wstTokAlice,
			"Sec-WebSocket-Protocol", WebSocketBearerPrefix + wstTokBob}},
		{"prefix in another case", "", []string{"Sec-WebSocket-Protocol", "alknet.call, ALKNET.BEARER." + wstTokAlice}},
		{"token as the bare subprotocol", "", []string{"Sec-WebSocket-Protocol", wstTokAlice}},
		{"token query", "?token=" + wstTokAlice, nil},
		{"access_token query", "?access_token=" + wstTokAlice, nil},
		{"auth query", "?auth=" + wstTokAlice, nil},
		{"bearer query", "?bearer=" + wstTokAlice, nil},
		{"authorization query", "?Authorization=Bearer+" + wstTokAlice, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A connection of its own: failed tokens count per connection.
			tr := srv.Client().Transport.(*http.Transport).Clone()
			defer tr.CloseIdleConnections()
			status, header, body := wstHandshake(t, &http.Client{Transport: tr}, base+tt.query, tt.headers...)
			if status != http.StatusUnauthorized || string(body) != "401 Unauthorized" {
				t.Fatalf("status %d body %q, want 401 %q", status, body, "401 Unauthorized")
			}
			if ct := header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
				t.Fatalf("Content-Type %q", ct)
			}
			if header.Get("Upgrade") != "" || header.Get("Sec-WebSocket-Accept") != "" || header.Get("Sec-WebSocket-Protocol") != "" {
				t.Fatalf("401 carries handshake headers: %v", header)
			}
		})
	}

	// The same through a real WebSocket client: Dial fails with the 401.
	_, resp, err := wstDial(t, wstURL(srv)+"?token="+wstTokAlice, wstDialOpts{client: srv.Client(), protocols: []string{WebSocketSubprotocol}})
	if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("dial without identity: %v, %v; want a 401", err, resp)
	}
}

// A GET /alknet/call that is not an upgrade is the decoy, byte for byte the answer of
// an unknown path, with or without a token.
func TestWebSocketNonUpgradeIsDecoy(t *testing.T) {
	f := wstNew(t, nil)
	srv := f.serve(t, nil)
	ref, refBody := wstGet(t, srv.Client(), srv.URL+"/nope")
	if ref.StatusCode != http.StatusNotFound || ref.Header.Get("Server") != "nginx" {
		t.Fatalf("unknown path: %d %v", ref.StatusCode, ref.Header)
	}
	for name, headers := range map[string][]string{
		"anonymous":                            {},
		"bearer":                               {"Authorization", "Bearer " + wstTokAlice},
		"upgrade without websocket":            {"Authorization", "Bearer " + wstTokAlice, "Connection", "Upgrade", "Upgrade", "h2c"},
		"websocket without connection upgrade": {"Authorization", "Bearer " + wstTokAlice, "Connection", "keep-alive", "Upgrade", "websocket"},
		"subprotocol only":                     {"Sec-WebSocket-Protocol", "alknet.call, " + WebSocketBearerPrefix + wstTokAlice},
	} {
		t.Run(name, func(t *testing.T) {
			resp, body := wstGet(t, srv.Client(), srv.URL+WebSocketPath, headers...)
			if resp.StatusCode != ref.StatusCode || !bytes.Equal(body, refBody) ||
				resp.Header.Get("Server") != "nginx" || resp.Header.Get("Content-Type") != ref.Header.Get("Content-Type") {
				t.Fatalf("GET %s = %d %v %q, want the decoy", WebSocketPath, resp.StatusCode, resp.Header, body)
			}
		})
	}
	t.Run("HEAD upgrade", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), wstGuard)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodHead, srv.URL+WebSocketPath, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, kv := range [][2]string{{"Authorization", "Bearer " + wstTokAlice}, {"Connection", "Upgrade"}, {"Upgrade", "websocket"},
			{"Sec-WebSocket-Version", "13"}, {"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="}} {
			req.Header.Set(kv[0], kv[1])
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != ref.StatusCode || resp.Header.Get("Server") != "nginx" {
			t.Fatalf("HEAD %s = %d %v, want the decoy", WebSocketPath, resp.StatusCode, resp.Header)
		}
	})
}

// The identity comes from the upgrade's Bearer header, or from the bearer subprotocol
// offered beside alknet.call; the server selects alknet.call, never the bearer one.
func TestWebSocketIdentity(t *testing.T) {
	f := wstNew(t, nil)
	srv := f.serve(t, nil)
	tests := []struct {
		name      string
		o         wstDialOpts
		wantProto string
		wantID    string
	}{
		{"bearer header", wstDialOpts{bearer: wstTokAlice, protocols: []string{WebSocketSubprotocol}}, WebSocketSubprotocol, "alice"},
		{"bearer header without subprotocol", wstDialOpts{bearer: wstTokAlice}, "", "alice"},
		{"subprotocol after alknet.call", wstDialOpts{protocols: []string{WebSocketSubprotocol, WebSocketBearerPrefix + wstTokAlice}}, WebSocketSubprotocol, "alice"},
		{"subprotocol before alknet.call", wstDialOpts{protocols: []string{WebSocketBearerPrefix + wstTokAlice, WebSocketSubprotocol}}, WebSocketSubprotocol, "alice"},
		{"subprotocol beside others", wstDialOpts{protocols: []string{"chat", WebSocketBearerPrefix + wstTokAPI, "alknet.call"}}, WebSocketSubprotocol, "api-bot"},
		// Without alknet.call on offer nothing is selected (a browser would then fail
		// the handshake); the bearer subprotocol is still never echoed.
		{"subprotocol alone", wstDialOpts{protocols: []string{WebSocketBearerPrefix + wstTokAlice}}, "", "alice"},
		{"header wins over subprotocol", wstDialOpts{bearer: wstTokAPI, protocols: []string{WebSocketSubprotocol, WebSocketBearerPrefix + wstTokAlice}}, WebSocketSubprotocol, "api-bot"},
		{"bogus header, good subprotocol", wstDialOpts{bearer: wstTokBogus, protocols: []string{WebSocketSubprotocol, WebSocketBearerPrefix + wstTokAlice}}, WebSocketSubprotocol, "alice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.o.client = srv.Client()
			ws := wstMustDial(t, wstURL(srv), tt.o)
			if got := ws.Subprotocol(); got != tt.wantProto {
				t.Fatalf("selected subprotocol %q, want %q", got, tt.wantProto)
			}
			cl := wstRaw(t, ws)
			cl.request(t, "who", "ws/admin", "")
			env := cl.answer(t, "who")
			if tt.wantID == "api-bot" {
				if out := wstOutput(t, env); out != `{"id":"api-bot"}` {
					t.Fatalf("ws/admin answered %s", out)
				}
			} else {
				e := wstError(t, env, call.CodeForbidden)
				if e.Message != "missing required scope: admin" {
					t.Fatalf("ws/admin: %q", e.Message)
				}
				cl.request(t, "who2", "ws/whoami", "")
				if out := wstOutput(t, cl.answer(t, "who2")); out != `{"id":"`+tt.wantID+`"}` {
					t.Fatalf("ws/whoami answered %s, want %s", out, tt.wantID)
				}
			}
		})
	}

	// The raw handshake answer: alknet.call selected, the token nowhere in it.
	status, header, _ := wstHandshake(t, srv.Client(), srv.URL+WebSocketPath,
		"Sec-WebSocket-Protocol", WebSocketBearerPrefix+wstTokAlice+", "+WebSocketSubprotocol)
	if status != http.StatusSwitchingProtocols || header.Get("Sec-WebSocket-Protocol") != WebSocketSubprotocol {
		t.Fatalf("handshake %d, Sec-WebSocket-Protocol %q", status, header.Get("Sec-WebSocket-Protocol"))
	}
	for k, vs := range header {
		for _, v := range vs {
			if strings.Contains(v, wstSecret) {
				t.Fatalf("handshake answer header %s carries the token: %q", k, v)
			}
		}
	}
}

// The connection identity decides access: a caller lacking the scope gets call.error
// FORBIDDEN, one holding it runs the operation (with its identity).
func TestWebSocketIdentityDecidesAccess(t *testing.T) {
	f := wstNew(t, nil)
	srv := f.serve(t, nil)
	alice := wstBrowser(t, wstMustDial(t, wstURL(srv), wstDialOpts{client: srv.Client(), bearer: wstTokAlice}), nil, nil)
	bob := wstBrowser(t, wstMustDial(t, wstURL(srv), wstDialOpts{client: srv.Client(),
		protocols: []string{WebSocketSubprotocol, WebSocketBearerPrefix + wstTokBob}}), nil, nil)

	if out, e := alice.call(t, "ws/whoami", ""); e != nil || out != `{"id":"alice"}` {
		t.Fatalf("alice ws/whoami: %s %v", out, e)
	}
	if _, e := bob.call(t, "ws/whoami", ""); e == nil || e.Code != call.CodeForbidden || e.Message != "missing required scope: demo" {
		t.Fatalf("bob ws/whoami: %v, want FORBIDDEN missing required scope: demo", e)
	}
	if out, e := bob.call(t, "ws/echo", `[1,2]`); e != nil || out != `[1,2]` {
		t.Fatalf("bob ws/echo: %s %v", out, e)
	}
	// Discovery is an ordinary operation, filtered by the identity's access.
	for _, c := range []struct {
		cl   *wstClient
		want bool
	}{{alice, true}, {bob, false}} {
		out, e := c.cl.call(t, call.OpServicesList, "{}")
		if e != nil {
			t.Fatal(e)
		}
		if got := strings.Contains(out, `"ws/whoami"`); got != c.want {
			t.Fatalf("services/list lists ws/whoami: %v, want %v (%s)", got, c.want, out)
		}
	}
}

// A request's auth_token switches the identity for that request only; a token that
// does not resolve falls back to the connection identity.
func TestWebSocketAuthTokenOverride(t *testing.T) {
	f := wstNew(t, nil)
	srv := f.serve(t, nil)
	bob := wstBrowser(t, wstMustDial(t, wstURL(srv), wstDialOpts{client: srv.Client(), bearer: wstTokBob}), nil, nil)
	alice := wstBrowser(t, wstMustDial(t, wstURL(srv), wstDialOpts{client: srv.Client(), bearer: wstTokAlice}), nil, nil)

	t.Run("token switches identity", func(t *testing.T) {
		if out, e := bob.call(t, "ws/whoami", "", call.WithAuthToken([]byte(wstTokAlice))); e != nil || out != `{"id":"alice"}` {
			t.Fatalf("bob with alice's token: %s %v", out, e)
		}
		if out, e := alice.call(t, "ws/admin", "", call.WithAuthToken([]byte(wstTokAPI))); e != nil || out != `{"id":"api-bot"}` {
			t.Fatalf("alice with the API token: %s %v", out, e)
		}
	})
	t.Run("for that request only", func(t *testing.T) {
		if _, e := bob.call(t, "ws/whoami", ""); e == nil || e.Code != call.CodeForbidden {
			t.Fatalf("bob's next request: %v, want FORBIDDEN", e)
		}
		if _, e := alice.call(t, "ws/admin", ""); e == nil || e.Code != call.CodeForbidden {
			t.Fatalf("alice's next request: %v, want FORBIDDEN", e)
		}
	})
	t.Run("bad token falls back", func(t *testing.T) {
		if out, e := alice.call(t, "ws/whoami", "", call.WithAuthToken([]byte(wstTokBogus))); e != nil || out != `{"id":"alice"}` {
			t.Fatalf("alice with a bogus token: %s %v", out, e)
		}
		if _, e := bob.call(t, "ws/whoami", "", call.WithAuthToken([]byte(wstTokBogus))); e == nil || e.Code != call.CodeForbidden {
			t.Fatalf("bob with a bogus token: %v, want FORBIDDEN", e)
		}
	})
	t.Run("crafted envelope", func(t *testing.T) {
		cl := wstRaw(t, wstMustDial(t, wstURL(srv), wstDialOpts{client: srv.Client(), bearer: wstTokBob}))
		cl.send(t, []byte(`{"type":"call.requested","id":"r1","payload":{"operationId":"/ws/whoami","input":null,"auth_token":"`+wstTokAlice+`"}}`))
		if out := wstOutput(t, cl.answer(t, "r1")); out != `{"id":"alice"}` {
			t.Fatalf("crafted auth_token: %s", out)
		}
		cl.send(t, []byte(`{"type":"call.requested","id":"r2","payload":{"operationId":"ws/whoami"}}`))
		wstError(t, cl.answer(t, "r2"), call.CodeForbidden)
	})
}

// --- Framing ------------------------------------------------------------------

// A text message closes the connection with 1002 "text messages not supported".
func TestWebSocketTextMessageCloses1002(t *testing.T) {
	f := wstNew(t, nil)
	srv := f.serve(t, nil)
	cl := wstRaw(t, wstMustDial(t, wstURL(srv), wstDialOpts{client: srv.Client(), bearer: wstTokAlice}))
	cl.roundTrip(t)
	ctx, cancel := context.WithTimeout(context.Background(), wstGuard)
	defer cancel()
	env, _ := call.NewRequest("t1", "ws/echo", nil, nil, nil)
	b, _ := call.EncodeEnvelope(env)
	if err := cl.ws.Write(ctx, websocket.MessageText, b); err != nil {
		t.Fatal(err)
	}
	ce := cl.closed(t)
	if ce.Code != websocket.StatusProtocolError || ce.Reason != "text messages not supported" {
		t.Fatalf("closed with %d %q, want 1002 %q", ce.Code, ce.Reason, "text messages not supported")
	}
}

// Binary that is not a valid EventEnvelope closes the connection with 1002
// "invalid EventEnvelope".
func TestWebSocketInvalidEnvelopeCloses1002(t *testing.T) {
	f := wstNew(t, nil)
	srv := f.serve(t, nil)
	for name, msg := range map[string]string{
		"not JSON":           `hello`,
		"empty":              ``,
		"truncated":          `{"type":"call.requested","id":"x","payload":{}`,
		"array":              `[{"type":"call.requested","id":"x","payload":{}}]`,
		"string":             `"call.requested"`,
		"null":               `null`,
		"missing type":       `{"id":"x","payload":{}}`,
		"missing id":         `{"type":"call.requested","payload":{}}`,
		"missing payload":    `{"type":"call.requested","id":"x"}`,
		"type not a string":  `{"type":1,"id":"x","payload":{}}`,
		"id not a string":    `{"type":"call.requested","id":7,"payload":{}}`,
		"type in other case": `{"Type":"call.requested","id":"x","payload":{}}`,
		"duplicate type":     `{"type":"call.requested","type":"call.aborted","id":"x","payload":{}}`,
		"two values":         `{"type":"call.aborted","id":"x","payload":{}} {}`,
		"length prefixed":    "\x00\x00\x00\x2e" + `{"type":"call.aborted","id":"x","payload":{}}`,
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := call.DecodeEnvelope([]byte(msg)); err == nil {
				t.Fatalf("%q is a valid envelope for call.DecodeEnvelope", msg)
			}
			cl := wstRaw(t, wstMustDial(t, wstURL(srv), wstDialOpts{client: srv.Client(), bearer: wstTokAlice}))
			cl.send(t, []byte(msg))
			ce := cl.closed(t)
			if ce.Code != websocket.StatusProtocolError || ce.Reason != "invalid EventEnvelope" {
				t.Fatalf("closed with %d %q, want 1002 %q", ce.Code, ce.Reason, "invalid EventEnvelope")
			}
		})
	}
}

// Envelopes of unknown types are ignored, answers to nothing are dropped, and pings
// are answered: the connection stays usable.
func TestWebSocketIgnoresUnknownTypesAndPings(t *testing.T) {
	f := wstNew(t, nil)
	srv := f.serve(t, nil)
	cl := wstRaw(t, wstMustDial(t, wstURL(srv), wstDialOpts{client: srv.Client(), bearer: wstTokAlice}))
	for _, msg := range []string{
		`{"type":"call.bogus","id":"u1","payload":{}}`,
		`{"type":"","id":"","payload":null}`,
		`{"type":"call.responded","id":"nobody","payload":{"output":1}}`,
		`{"type":"call.completed","id":"nobody","payload":{}}`,
		`{"type":"call.error","id":"nobody","payload":{"code":"INTERNAL","message":"x","retryable":false}}`,
		`{"type":"call.aborted","id":"nobody","payload":{}}`,
	} {
		cl.send(t, []byte(msg))
	}
	cl.roundTrip(t)
	ctx, cancel := context.WithTimeout(context.Background(), wstGuard)
	defer cancel()
	if err := cl.ws.Ping(ctx); err != nil {
		t.Fatalf("ping: %v", err)
	}
	cl.roundTrip(t)
}

// wstPaddedRequest returns a call.requested for ws/len of exactly size bytes, and the
// length of its input (what ws/len answers).
func wstPaddedRequest(t *testing.T, id string, size int) ([]byte, int) {
	t.Helper()
	build := func(pad int) []byte {
		env, err := call.NewRequest(id, "ws/len", json.RawMessage(`"`+strings.Repeat("a", pad)+`"`), nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, err := call.EncodeEnvelope(env)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	pad := size - len(build(0))
	b := build(pad)
	if len(b) != size {
		t.Fatalf("padded request of %d bytes, want %d", len(b), size)
	}
	return b, pad + 2
}

// A message of exactly MaxMessageBytes is read; one byte more closes with 1009.
func TestWebSocketReadLimit(t *testing.T) {
	const limit = 4096
	f := wstNew(t, func(_ *wstFixture, cfg *Config) { cfg.WebSocket.MaxMessageBytes = limit })
	srv := f.serve(t, nil)
	cl := wstRaw(t, wstMustDial(t, wstURL(srv), wstDialOpts{client: srv.Client(), bearer: wstTokAlice}))

	msg, inLen := wstPaddedRequest(t, "at-limit", limit)
	cl.send(t, msg)
	if out := wstOutput(t, cl.answer(t, "at-limit")); out != strconv.Itoa(inLen) {
		t.Fatalf("ws/len answered %s for a %d-byte message, want %d", out, limit, inLen)
	}
	cl.roundTrip(t)

	msg, _ = wstPaddedRequest(t, "over-limit", limit+1)
	cl.send(t, msg)
	if ce := cl.closed(t); ce.Code != websocket.StatusMessageTooBig {
		t.Fatalf("closed with %d %q, want 1009", ce.Code, ce.Reason)
	}
}

// The default read limit is DefaultWSMaxMessageBytes.
func TestWebSocketDefaultReadLimit(t *testing.T) {
	f := wstNew(t, nil)
	srv := f.serve(t, nil)
	cl := wstRaw(t, wstMustDial(t, wstURL(srv), wstDialOpts{client: srv.Client(), bearer: wstTokAlice}))
	msg, inLen := wstPaddedRequest(t, "at-limit", DefaultWSMaxMessageBytes)
	cl.send(t, msg)
	if out := wstOutput(t, cl.answer(t, "at-limit")); out != strconv.Itoa(inLen) {
		t.Fatalf("ws/len answered %s, want %d", out, inLen)
	}
	msg, _ = wstPaddedRequest(t, "over-limit", DefaultWSMaxMessageBytes+1)
	cl.send(t, msg)
	if ce := cl.closed(t); ce.Code != websocket.StatusMessageTooBig {
		t.Fatalf("closed with %d %q, want 1009", ce.Code, ce.Reason)
	}
}

func TestWebSocketConfigValidation(t *testing.T) {
	reg := call.NewRegistry()
	tests := []struct {
		name string
		ws   WebSocketConfig
		ok   bool
	}{
		{"zero", WebSocketConfig{}, true},
		{"negative MaxMessageBytes", WebSocketConfig{MaxMessageBytes: -1}, false},
		{"MaxMessageBytes at the frame limit", WebSocketConfig{MaxMessageBytes: call.MaxFrameSize}, true},
		{"MaxMessageBytes above the frame limit", WebSocketConfig{MaxMessageBytes: call.MaxFrameSize + 1}, false},
		{"negative WriteTimeout", WebSocketConfig{WriteTimeout: -time.Second}, false},
		{"negative MaxInflight is unlimited", WebSocketConfig{MaxInflight: -1}, true},
		{"disabled ignores the rest", WebSocketConfig{Disable: true, MaxMessageBytes: -1, WriteTimeout: -1}, true},
		{"origin patterns", WebSocketConfig{OriginPatterns: []string{"*.example.com", "localhost:*"}}, true},
		{"malformed origin pattern", WebSocketConfig{OriginPatterns: []string{"[a-"}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := New(Config{Registry: reg, WebSocket: tt.ws})
			if tt.ok {
				if err != nil || h == nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrConfig) || h != nil {
				t.Fatalf("New = %v, %v; want ErrConfig", h, err)
			}
		})
	}
}

// WebSocket.Disable makes /alknet/call the decoy, also for an authenticated upgrade.
func TestWebSocketDisabledIsDecoy(t *testing.T) {
	f := wstNew(t, func(_ *wstFixture, cfg *Config) { cfg.WebSocket.Disable = true })
	srv := f.serve(t, nil)
	_, refBody := wstGet(t, srv.Client(), srv.URL+"/nope")
	status, header, body := wstHandshake(t, srv.Client(), srv.URL+WebSocketPath, "Authorization", "Bearer "+wstTokAlice)
	if status != http.StatusNotFound || header.Get("Server") != "nginx" || !bytes.Equal(body, refBody) {
		t.Fatalf("disabled upgrade: %d %v %q, want the decoy", status, header, body)
	}
}

// --- Dispatch -------------------------------------------------------------------

// Requests run concurrently: a slow one does not hold up a fast one on the same socket.
func TestWebSocketSlowCallDoesNotBlockFast(t *testing.T) {
	f := wstNew(t, nil)
	srv := f.serve(t, nil)
	cl := wstRaw(t, wstMustDial(t, wstURL(srv), wstDialOpts{client: srv.Client(), bearer: wstTokAlice}))
	cl.request(t, "slow", "ws/slow", "")
	wstWait(t, f.slowEntered, "ws/slow to start")
	cl.request(t, "fast", "ws/echo", `"fast"`)
	// ws/slow cannot answer before it is released, so the next envelope is fast's.
	if env := cl.next(t); env.ID != "fast" || wstOutput(t, env) != `"fast"` {
		t.Fatalf("first answer %s %s, want fast's", env.ID, env.Payload)
	}
	close(f.slowRelease)
	if out := wstOutput(t, cl.answer(t, "slow")); out != `"slow"` {
		t.Fatalf("slow answered %s", out)
	}
}

// Many concurrent requests each get their own answer, correlated by id.
func TestWebSocketConcurrentCallsCorrelate(t *testing.T) {
	const n = 64
	f := wstNew(t, nil)
	srv := f.serve(t, nil)
	cl := wstRaw(t, wstMustDial(t, wstURL(srv), wstDialOpts{client: srv.Client(), bearer: wstTokAlice}))
	for i := range n {
		cl.request(t, fmt.Sprintf("c-%d", i), "ws/echo", fmt.Sprintf(`{"i":%d}`, i))
	}
	seen := map[string]bool{}
	for range n {
		env := cl.next(t)
		var i int
		if _, err := fmt.Sscanf(env.ID, "c-%d", &i); err != nil || seen[env.ID] {
			t.Fatalf("unexpected answer id %q", env.ID)
		}
		seen[env.ID] = true
		if out := wstOutput(t, env); out != fmt.Sprintf(`{"i":%d}`, i) {
			t.Fatalf("%s answered %s", env.ID, out)
		}
	}

	// The same through a browser call.Conn, from many goroutines.
	b := wstBrowser(t, wstMustDial(t, wstURL(srv), wstDialOpts{client: srv.Client(), bearer: wstTokAlice}), nil, nil)
	errs := make(chan error, n)
	for i := range n {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), wstGuard)
			defer cancel()
			out, err := b.c.Call(ctx, "ws/echo", map[string]int{"i": i})
			if err == nil && string(out) != fmt.Sprintf(`{"i":%d}`, i) {
				err = fmt.Errorf("call %d answered %s", i, out)
			}
			errs <- err
		}()
	}
	for range n {
		if err := wstWait(t, errs, "concurrent calls"); err != nil {
			t.Fatal(err)
		}
	}
}

// A subscription streams N call.responded, then call.completed.
func TestWebSocketSubscriptionStreams(t *testing.T) {
	f := wstNew(t, nil)
	srv := f.serve(t, nil)
	cl := wstRaw(t, wstMustDial(t, wstURL(srv), wstDialOpts{client: srv.Client(), bearer: wstTokAlice}))
	cl.request(t, "sub", "ws/ticks", `{"n":5}`)
	for i := range 5 {
		env := cl.next(t)
		if env.ID != "sub" {
			t.Fatalf("event %d for id %q", i, env.ID)
		}
		if out := wstOutput(t, env); out != fmt.Sprintf(`{"tick":%d}`, i) {
			t.Fatalf("event %d: %s", i, out)
		}
	}
	if env := cl.next(t); env.Type != call.EvCompleted || env.ID != "sub" || string(env.Payload) != `{}` {
		t.Fatalf("after the events: %s %s %s, want call.completed", env.Type, env.ID, env.Payload)
	}

	// Through a browser call.Conn: Next gives the events, then io.EOF.
	b := wstBrowser(t, wstMustDial(t, wstURL(srv), wstDialOpts{client: srv.Client(), bearer: wstTokAlice}), nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), wstGuard)
	defer cancel()
	s, err := b.c.Subscribe(ctx, "ws/ticks", map[string]int{"n": 3})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range 3 {
		out, err := s.Next(ctx)
		if err != nil || string(out) != fmt.Sprintf(`{"tick":%d}`, i) {
			t.Fatalf("Next %d: %s %v", i, out, err)
		}
	}
	if _, err := s.Next(ctx); !errors.Is(err, io.EOF) {
		t.Fatalf("after the events: %v, want io.EOF", err)
	}
}

// call.aborted cancels a running handler (a Query and a Subscription), and the
// aborted request gets no answer.
func TestWebSocketAbortCancelsHandler(t *testing.T) {
	f := wstNew(t, nil)
	srv := f.serve(t, nil)
	t.Run("query", func(t *testing.T) {
		cl := wstRaw(t, wstMustDial(t, wstURL(srv), wstDialOpts{client: srv.Client(), bearer: wstTokAlice}))
		cl.request(t, "b1", "ws/block", "")
		wstWait(t, f.blockStarted, "ws/block to start")
		cl.sendEnv(t, call.NewAborted("b1"))
		wstWait(t, f.blockReleased, "ws/block to see its context end")
		// The handler has returned; its answer was dropped, so the next envelope is
		// the echo's.
		cl.request(t, "after", "ws/echo", `1`)
		if env := cl.next(t); env.ID != "after" {
			t.Fatalf("after the abort: %s %s %s", env.Type, env.ID, env.Payload)
		}
	})
	t.Run("subscription", func(t *testing.T) {
		cl := wstRaw(t, wstMustDial(t, wstURL(srv), wstDialOpts{client: srv.Client(), bearer: wstTokAlice}))
		cl.request(t, "s1", "ws/blocksub", "")
		if out := wstOutput(t, cl.answer(t, "s1")); out != `"started"` {
			t.Fatalf("first event %s", out)
		}
		wstWait(t, f.blockStarted, "ws/blocksub to start")
		cl.sendEnv(t, call.NewAborted("s1"))
		wstWait(t, f.blockReleased, "ws/blocksub to see its context end")
		cl.request(t, "after", "ws/echo", `1`)
		if env := cl.next(t); env.ID != "after" {
			t.Fatalf("after the abort: %s %s %s", env.Type, env.ID, env.Payload)
		}
	})
	t.Run("browser cancels its call", func(t *testing.T) {
		b := wstBrowser(t, wstMustDial(t, wstURL(srv), wstDialOpts{client: srv.Client(), bearer: wstTokAlice}), nil, nil)
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() {
			_, err := b.c.Call(ctx, "ws/block", nil)
			errc <- err
		}()
		wstWait(t, f.blockStarted, "ws/block to start")
		cancel()
		if err := wstWait(t, errc, "the cancelled call"); !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled call: %v", err)
		}
		wstWait(t, f.blockReleased, "ws/block to see its context end")
		if out, e := b.call(t, "ws/echo", `2`); e != nil || out != `2` {
			t.Fatalf("echo after the abort: %s %v", out, e)
		}
	})
}

// MaxInflight bounds the requests of one connection running at once: one more gets a
// retryable INTERNAL error.
func TestWebSocketMaxInflight(t *testing.T) {
	f := wstNew(t, func(_ *wstFixture, cfg *Config) { cfg.WebSocket.MaxInflight = 1 })
	srv := f.serve(t, nil)
	cl := wstRaw(t, wstMustDial(t, wstURL(srv), wstDialOpts{client: srv.Client(), bearer: wstTokAlice}))
	cl.request(t, "slow", "ws/slow", "")
	wstWait(t, f.slowEntered, "ws/slow to start")
	cl.request(t, "more", "ws/echo", `1`)
	if e := wstError(t, cl.answer(t, "more"), call.CodeInternal); !e.Retryable || !strings.Contains(e.Message, "too many concurrent requests") {
		t.Fatalf("over the limit: %+v", e)
	}
	close(f.slowRelease)
	wstOutput(t, cl.answer(t, "slow"))
	cl.roundTrip(t)
}

// --- Node → browser through the overlay -------------------------------------------

// wstPage is the browser's side of the overlay tests: operations the node imports.
type wstPage struct {
	greets      atomic.Int32
	forwarded   chan string   // forwarded_for of each page/greet
	waitStarted chan struct{} // page/wait began
	waitEnded   chan struct{} // page/wait saw its context end
}

// wstNodeSeen is the identity the browser gives the node: allowed to list and call
// the page's operations (the browser trusts the node it connected to).
var wstNodeSeen = &core.Identity{ID: "node", Scopes: []string{"page"}}

func wstPageRegistry(t *testing.T) (*call.Registry, *wstPage) {
	t.Helper()
	p := &wstPage{forwarded: make(chan string, 16), waitStarted: make(chan struct{}, 4), waitEnded: make(chan struct{}, 4)}
	reg := call.NewRegistry()
	greet := call.NewSpec("page/greet", call.Query)
	greet.Access = call.AccessControl{RequiredScopes: []string{"page"}}
	wait := call.NewSpec("page/wait", call.Query)
	wait.Access = call.AccessControl{RequiredScopes: []string{"page"}}
	for _, r := range []call.Registration{
		{Spec: greet, Once: func(_ context.Context, oc *call.OpContext, in json.RawMessage) (json.RawMessage, error) {
			p.greets.Add(1)
			fwd := ""
			if oc.ForwardedFor != nil {
				fwd = oc.ForwardedFor.ID
			}
			p.forwarded <- fwd
			var arg struct{ Name string }
			_ = json.Unmarshal(in, &arg)
			return json.Marshal("hello " + arg.Name)
		}},
		{Spec: wait, Once: func(ctx context.Context, _ *call.OpContext, _ json.RawMessage) (json.RawMessage, error) {
			p.waitStarted <- struct{}{}
			<-ctx.Done()
			p.waitEnded <- struct{}{}
			return nil, ctx.Err()
		}},
	} {
		if err := reg.Register(r); err != nil {
			t.Fatal(err)
		}
	}
	return reg, p
}

// wstCaller is a parent context for the node's own calls into the overlay, from an
// operation whose authority holds scopes.
func wstCaller(scopes ...string) *call.OpContext {
	reg := &call.Registration{
		Spec:      call.NewSpec("node/caller", call.Query),
		Authority: &call.CompositionAuthority{Label: "node-svc", Scopes: scopes},
		Scoped:    call.NewScopedEnv("page/greet", "page/wait"),
	}
	return call.NewRootContext("", nil, nil, reg, nil, nil)
}

// The node calls the browser's operations through the connection's overlay, gated by
// the operations' own access control; the browser is not a peer; the overlay empties
// when the browser leaves.
func TestWebSocketOverlayNodeCallsBrowser(t *testing.T) {
	f := wstNew(t, wstImportOnConnect)
	srv := f.serve(t, nil)
	reg, page := wstPageRegistry(t)
	b := wstBrowser(t, wstMustDial(t, wstURL(srv), wstDialOpts{client: srv.Client(),
		protocols: []string{WebSocketSubprotocol, WebSocketBearerPrefix + wstTokAlice}}), reg, wstNodeSeen)
	got := wstWait(t, f.connected, "OnConnect")
	if got.err != nil {
		t.Fatalf("import: %v", got.err)
	}
	c := got.c
	if id := c.Identity(); id == nil || id.ID != "alice" {
		t.Fatalf("the node's connection identity: %+v", id)
	}
	if !c.OverlayEnv().Contains("page/greet") || !c.OverlayEnv().Contains("page/wait") {
		t.Fatalf("overlay holds %v", c.OverlayEnv().PeerOperations(""))
	}
	ctx, cancel := context.WithTimeout(context.Background(), wstGuard)
	defer cancel()

	t.Run("allowed", func(t *testing.T) {
		out, e := c.OverlayEnv().Invoke(ctx, "page", "greet", json.RawMessage(`{"name":"node"}`), wstCaller("page"), call.AbortDependents)
		if e != nil || string(out) != `"hello node"` {
			t.Fatalf("page/greet: %s %v", out, e)
		}
		if fwd := wstWait(t, page.forwarded, "page/greet"); fwd != "node-svc" {
			t.Fatalf("forwarded_for %q, want the caller's authority node-svc", fwd)
		}
	})
	t.Run("forbidden", func(t *testing.T) {
		before := page.greets.Load()
		_, e := c.OverlayEnv().Invoke(ctx, "page", "greet", json.RawMessage(`{}`), wstCaller("other"), call.AbortDependents)
		if e == nil || e.Code != call.CodeForbidden || e.Message != "missing required scope: page" {
			t.Fatalf("page/greet without the scope: %v, want FORBIDDEN", e)
		}
		if page.greets.Load() != before {
			t.Fatal("the browser's handler ran for a forbidden call")
		}
	})
	t.Run("browser is not a peer", func(t *testing.T) {
		out, e := b.call(t, "ws/viaPeer", `{"name":"via"}`)
		if e != nil {
			t.Fatal(e)
		}
		var res struct {
			Peer    string          `json:"peer"`
			Env     string          `json:"env"`
			Peers   []string        `json:"peers"`
			Overlay json.RawMessage `json:"overlay"`
		}
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			t.Fatal(err)
		}
		if res.Peer != call.CodeNotFound {
			t.Fatalf("InvokePeer(alice) from the browser's request: %q, want NOT_FOUND", res.Peer)
		}
		if res.Env != call.CodeNotFound {
			t.Fatalf("oc.Call(page/greet) from the browser's request: %q, want NOT_FOUND", res.Env)
		}
		if len(res.Peers) != 0 {
			t.Fatalf("the browser's request sees peers %v", res.Peers)
		}
		if string(res.Overlay) != `"hello via"` {
			t.Fatalf("ConnFrom(ctx).OverlayEnv(): %s", res.Overlay)
		}
		if fwd := wstWait(t, page.forwarded, "page/greet"); fwd != "ws-svc" {
			t.Fatalf("forwarded_for %q, want ws/viaPeer's authority", fwd)
		}
	})
	t.Run("overlay empties when the browser leaves", func(t *testing.T) {
		if err := b.ws.Close(websocket.StatusNormalClosure, "bye"); err != nil {
			t.Logf("close: %v", err)
		}
		wstWait(t, c.Done(), "the node's connection to end")
		env := c.OverlayEnv()
		if env.Contains("page/greet") || len(env.PeerOperations("")) != 0 {
			t.Fatalf("overlay after close holds %v", env.PeerOperations(""))
		}
		if _, e := env.Invoke(ctx, "page", "greet", json.RawMessage(`{}`), wstCaller("page"), call.AbortDependents); e == nil || e.Code != call.CodeNotFound {
			t.Fatalf("page/greet after close: %v, want NOT_FOUND", e)
		}
		if err := c.RegisterImported(); err == nil {
			t.Fatal("RegisterImported on a closed connection succeeded")
		}
	})
}

// The browser leaving fails the node's pending call with INTERNAL "connection closed".
func TestWebSocketCloseFailsPending(t *testing.T) {
	f := wstNew(t, wstImportOnConnect)
	srv := f.serve(t, nil)
	reg, page := wstPageRegistry(t)
	b := wstBrowser(t, wstMustDial(t, wstURL(srv), wstDialOpts{client: srv.Client(), bearer: wstTokAlice}), reg, wstNodeSeen)
	got := wstWait(t, f.connected, "OnConnect")
	if got.err != nil {
		t.Fatal(got.err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wstGuard)
	defer cancel()
	errc := make(chan *call.CallError, 1)
	go func() {
		_, e := got.c.OverlayEnv().Invoke(ctx, "page", "wait", json.RawMessage(`{}`), wstCaller("page"), call.AbortDependents)
		errc <- e
	}()
	wstWait(t, page.waitStarted, "page/wait to start in the browser")
	_ = b.ws.CloseNow() // the tab goes away
	e := wstWait(t, errc, "the node's pending call")
	if e == nil || e.Code != call.CodeInternal || e.Message != "connection closed" {
		t.Fatalf("pending call: %v, want INTERNAL connection closed", e)
	}
	wstWait(t, page.waitEnded, "the browser's handler to end")
}

// In-flight node handlers serving the browser are cancelled when the socket closes.
func TestWebSocketCloseCancelsHandlers(t *testing.T) {
	f := wstNew(t, nil)
	srv := f.serve(t, nil)
	for name, closeFn := range map[string]func(*websocket.Conn){
		"close handshake": func(ws *websocket.Conn) { _ = ws.Close(websocket.StatusNormalClosure, "") },
		"abrupt":          func(ws *websocket.Conn) { _ = ws.CloseNow() },
	} {
		t.Run(name, func(t *testing.T) {
			cl := wstRaw(t, wstMustDial(t, wstURL(srv), wstDialOpts{client: srv.Client(), bearer: wstTokAlice}))
			cl.request(t, "q", "ws/block", "")
			cl.request(t, "s", "ws/blocksub", "")
			wstWait(t, f.blockStarted, "ws/block to start")
			wstWait(t, f.blockStarted, "ws/blocksub to start")
			closeFn(cl.ws)
			wstWait(t, f.blockReleased, "a handler to see its context end")
			wstWait(t, f.blockReleased, "the other handler to see its context end")
		})
	}
}

// OnConnect's context ends with the connection, and the connection waits for it.
func TestWebSocketOnConnectContextEnds(t *testing.T) {
	ended := make(chan error, 1)
	f := wstNew(t, func(_ *wstFixture, cfg *Config) {
		cfg.WebSocket.OnConnect = func(ctx context.Context, c *call.Conn) {
			<-ctx.Done()
			// The connection is gone: calling it fails at once.
			_, err := c.Call(context.Background(), "page/greet", nil)
			ended <- err
		}
	})
	srv := f.serve(t, nil)
	cl := wstRaw(t, wstMustDial(t, wstURL(srv), wstDialOpts{client: srv.Client(), bearer: wstTokAlice}))
	cl.roundTrip(t)
	_ = cl.ws.Close(websocket.StatusNormalClosure, "")
	err := wstWait(t, ended, "OnConnect to return")
	var ce *call.CallError
	if !errors.As(err, &ce) || ce.Code != call.CodeInternal {
		t.Fatalf("call after the end: %v", err)
	}
}

// --- Origin -----------------------------------------------------------------------

// A cross-origin page is refused (403) unless OriginPatterns allows it; same-origin
// pages and clients without Origin are accepted.
func TestWebSocketOrigin(t *testing.T) {
	for _, tt := range []struct {
		name     string
		patterns []string
		origin   string
		want     int
	}{
		{"no origin", nil, "", http.StatusSwitchingProtocols},
		{"cross origin refused", nil, "https://evil.example", http.StatusForbidden},
		{"cross origin allowed", []string{"app.example"}, "https://app.example", http.StatusSwitchingProtocols},
		{"cross origin allowed by wildcard", []string{"*.example"}, "https://app.example", http.StatusSwitchingProtocols},
		{"other origin still refused", []string{"app.example"}, "https://evil.example", http.StatusForbidden},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := wstNew(t, func(_ *wstFixture, cfg *Config) { cfg.WebSocket.OriginPatterns = tt.patterns })
			srv := f.serve(t, nil)
			headers := []string{"Sec-WebSocket-Protocol", WebSocketSubprotocol + ", " + WebSocketBearerPrefix + wstTokAlice}
			if tt.origin != "" {
				headers = append(headers, "Origin", tt.origin)
			}
			status, _, body := wstHandshake(t, srv.Client(), srv.URL+WebSocketPath, headers...)
			if status != tt.want {
				t.Fatalf("handshake %d %q, want %d", status, body, tt.want)
			}
			if bytes.Contains(body, []byte(wstSecret)) {
				t.Fatalf("refusal body carries the token: %q", body)
			}
			if tt.want == http.StatusSwitchingProtocols {
				// And a real client works under that origin.
				o := wstDialOpts{client: srv.Client(), bearer: wstTokAlice}
				if tt.origin != "" {
					o.header = []string{"Origin", tt.origin}
				}
				wstRaw(t, wstMustDial(t, wstURL(srv), o)).roundTrip(t)
			}
		})
	}
	// The same-origin page of the node itself.
	f := wstNew(t, nil)
	srv := f.serve(t, nil)
	wstRaw(t, wstMustDial(t, wstURL(srv), wstDialOpts{client: srv.Client(), bearer: wstTokAlice,
		header: []string{"Origin", srv.URL}})).roundTrip(t)
	// An unauthenticated cross-origin request is a 401, like any other.
	if status, _, _ := wstHandshake(t, srv.Client(), srv.URL+WebSocketPath, "Origin", "https://evil.example"); status != http.StatusUnauthorized {
		t.Fatalf("anonymous cross-origin handshake %d, want 401", status)
	}
}

// --- Logs -------------------------------------------------------------------------

// No token, good or bad, reaches the handler's logs (every fixture checks this when it
// ends; this test drives the paths that log next to a token).
func TestWebSocketLogsNeverContainTokens(t *testing.T) {
	f := wstNew(t, nil)
	srv := f.serve(t, nil)
	sub := func(tok string) []string {
		return []string{"Sec-WebSocket-Protocol", WebSocketSubprotocol + ", " + WebSocketBearerPrefix + tok}
	}
	wstHandshake(t, srv.Client(), srv.URL+WebSocketPath, sub(wstTokBogus)...)
	wstHandshake(t, srv.Client(), srv.URL+WebSocketPath, "Sec-WebSocket-Protocol",
		WebSocketBearerPrefix+wstTokAlice+","+WebSocketBearerPrefix+wstTokBob)
	wstHandshake(t, srv.Client(), srv.URL+WebSocketPath, append(sub(wstTokAlice), "Origin", "https://evil.example")...)

	b := wstBrowser(t, wstMustDial(t, wstURL(srv), wstDialOpts{client: srv.Client(),
		protocols: []string{WebSocketSubprotocol, WebSocketBearerPrefix + wstTokAlice}}), nil, nil)
	b.call(t, "ws/whoami", "", call.WithAuthToken([]byte(wstTokBogus)))
	b.call(t, "ws/admin", "", call.WithAuthToken([]byte(wstTokAPI)))
	b.call(t, "ws/nosuch", "", call.WithAuthToken([]byte(wstTokBob)))

	cl := wstRaw(t, wstMustDial(t, wstURL(srv), wstDialOpts{client: srv.Client(),
		protocols: []string{WebSocketSubprotocol, WebSocketBearerPrefix + wstTokBob}}))
	cl.send(t, []byte(`{"type":"call.requested","id":"","payload":{"operationId":"/ws/echo","auth_token":"`+wstTokAPI+`"}}`))
	cl.send(t, []byte(`not an envelope `+wstTokAPI))
	cl.closed(t)

	_ = b.ws.Close(websocket.StatusNormalClosure, "")
	<-b.done
	logs := f.logs.String()
	if !strings.Contains(logs, "websocket: connection opened") || !strings.Contains(logs, "identity=alice") {
		t.Fatalf("the log capture saw nothing:\n%s", logs)
	}
	if strings.Contains(logs, wstSecret) {
		t.Fatalf("a token reached the logs:\n%s", logs)
	}
}

// --- Real transports ------------------------------------------------------------

// wstNode is a loopback endpoint serving the fixture's Handler on alknet/http, h2 and
// http/1.1, reporting each return of Handle.
type wstNode struct {
	srv      *coretest.Server
	returned chan struct{}
}

type wstProbe struct {
	h        *Handler
	returned chan struct{}
}

func (p wstProbe) Handle(ctx context.Context, conn *core.Connection, auth core.AuthContext) error {
	err := p.h.Handle(ctx, conn, auth)
	p.returned <- struct{}{}
	return err
}

func (f *wstFixture) node(t *testing.T) *wstNode {
	t.Helper()
	n := &wstNode{returned: make(chan struct{}, 64)}
	creg := core.NewRegistry()
	for _, alpn := range []string{ALPN, "h2", "http/1.1"} {
		if err := creg.RegisterAs(alpn, wstProbe{h: f.h, returned: n.returned}); err != nil {
			t.Fatal(err)
		}
	}
	n.srv = coretest.NewServer(t, creg)
	return n
}

// wstTransport is one way to reach a node's WebSocket path.
type wstTransport struct {
	name   string
	url    string
	client *http.Client
}

// transports are the HTTP/1.1 ways to the node: a stock TLS client on the TCP+TLS
// twin, and alknet/http over QUIC with the package's client transport.
func (n *wstNode) transports(t *testing.T) []wstTransport {
	t.Helper()
	cfg, err := tlsconf.ClientConfig(tlsconf.ClientOptions{Pin: n.srv.Identity.Fingerprint, NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	// Go's client clears NextProtos for an upgrade request (it must not end up on
	// h2), and the node closes a TCP+TLS client that offers no ALPN; a browser offers
	// http/1.1. So the TLS dial is the test's own, offering http/1.1.
	dialer := &tls.Dialer{Config: cfg}
	tlsTr := &http.Transport{DialTLSContext: dialer.DialContext}
	t.Cleanup(tlsTr.CloseIdleConnections)
	quic := NewClientTransport(n.srv.Addr, ALPN, n.srv.DialOptions(coretest.NewIdentity(t), endpoint.NetworkQUIC), false)
	t.Cleanup(func() { _ = quic.Close() })
	return []wstTransport{
		{"tls-h1", "wss://" + n.srv.Addr + WebSocketPath, &http.Client{Transport: tlsTr}},
		{"quic-alknet-http", "ws://node" + WebSocketPath, &http.Client{Transport: quic}},
	}
}

// The call protocol over WebSocket on the node's real transports.
func TestWebSocketOverRealTransports(t *testing.T) {
	f := wstNew(t, wstImportOnConnect)
	n := f.node(t)
	for _, tr := range n.transports(t) {
		t.Run(tr.name, func(t *testing.T) {
			reg, _ := wstPageRegistry(t)
			ws := wstMustDial(t, tr.url, wstDialOpts{client: tr.client,
				protocols: []string{WebSocketSubprotocol, WebSocketBearerPrefix + wstTokAlice}})
			if ws.Subprotocol() != WebSocketSubprotocol {
				t.Fatalf("subprotocol %q", ws.Subprotocol())
			}
			b := wstBrowser(t, ws, reg, wstNodeSeen)
			got := wstWait(t, f.connected, "OnConnect")
			if got.err != nil {
				t.Fatal(got.err)
			}
			if out, e := b.call(t, "ws/whoami", ""); e != nil || out != `{"id":"alice"}` {
				t.Fatalf("ws/whoami: %s %v", out, e)
			}
			ctx, cancel := context.WithTimeout(context.Background(), wstGuard)
			defer cancel()
			s, err := b.c.Subscribe(ctx, "ws/ticks", map[string]int{"n": 2})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			for i := range 2 {
				if out, err := s.Next(ctx); err != nil || string(out) != fmt.Sprintf(`{"tick":%d}`, i) {
					t.Fatalf("Next %d: %s %v", i, out, err)
				}
			}
			if _, err := s.Next(ctx); !errors.Is(err, io.EOF) {
				t.Fatalf("end: %v", err)
			}
			out, e := got.c.OverlayEnv().Invoke(ctx, "page", "greet", json.RawMessage(`{"name":"x"}`), wstCaller("page"), call.AbortDependents)
			if e != nil || string(out) != `"hello x"` {
				t.Fatalf("node → browser: %s %v", out, e)
			}
			// And the refusal without identity, over the same transport.
			if status, _, body := wstHandshake(t, tr.client, strings.Replace(strings.Replace(tr.url, "wss:", "https:", 1), "ws:", "http:", 1)); status != http.StatusUnauthorized || string(body) != "401 Unauthorized" {
				t.Fatalf("anonymous handshake: %d %q", status, body)
			}
		})
	}
}

// Node shutdown (Handle's context ends) closes the WebSocket with 1001, and Handle
// returns.
func TestWebSocketShutdownClosesGoingAway(t *testing.T) {
	for _, name := range []string{"tls-h1", "quic-alknet-http"} {
		t.Run(name, func(t *testing.T) {
			f := wstNew(t, nil)
			n := f.node(t)
			var tr wstTransport
			for _, x := range n.transports(t) {
				if x.name == name {
					tr = x
				}
			}
			cl := wstRaw(t, wstMustDial(t, tr.url, wstDialOpts{client: tr.client, bearer: wstTokAlice}))
			cl.roundTrip(t)
			cl.request(t, "s", "ws/blocksub", "")
			wstOutput(t, cl.answer(t, "s"))
			wstWait(t, f.blockStarted, "ws/blocksub to start")

			ctx, cancel := context.WithTimeout(context.Background(), wstGuard)
			defer cancel()
			shut := make(chan error, 1)
			go func() { shut <- n.srv.Endpoint.Shutdown(ctx) }()
			ce := cl.closed(t)
			if ce.Code != websocket.StatusGoingAway || ce.Reason != "server shutting down" {
				t.Fatalf("closed with %d %q, want 1001", ce.Code, ce.Reason)
			}
			wstWait(t, n.returned, "Handle to return")
			wstWait(t, f.blockReleased, "the subscription to end")
			// The client lets its connection go (or the endpoint's drain timeout would).
			if c, ok := tr.client.Transport.(interface{ CloseIdleConnections() }); ok {
				c.CloseIdleConnections()
			}
			if c, ok := tr.client.Transport.(io.Closer); ok {
				_ = c.Close()
			}
			if err := wstWait(t, shut, "Shutdown to return"); err != nil {
				t.Fatalf("shutdown: %v", err)
			}
		})
	}
}

// Over h2 there is no WebSocket upgrade (no extended CONNECT on the route, and h2
// has no Connection/Upgrade headers): a GET /alknet/call on h2 is the decoy, a
// prior-knowledge h2 client cannot even send the handshake, and the handshake is made
// on HTTP/1.1.
func TestWebSocketNotOverH2(t *testing.T) {
	f := wstNew(t, nil)
	n := f.node(t)
	cfg, err := tlsconf.ClientConfig(tlsconf.ClientOptions{Pin: n.srv.Identity.Fingerprint, NextProtos: []string{"h2", "http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	h2 := &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true}
	defer h2.CloseIdleConnections()
	resp, body := wstGet(t, &http.Client{Transport: h2}, "https://"+n.srv.Addr+WebSocketPath, "Authorization", "Bearer "+wstTokAlice)
	if resp.ProtoMajor != 2 || resp.StatusCode != http.StatusNotFound || resp.Header.Get("Server") != "nginx" {
		t.Fatalf("GET over %s: %d %v %q, want the decoy over HTTP/2", resp.Proto, resp.StatusCode, resp.Header, body)
	}

	quic := NewClientTransport(n.srv.Addr, ALPN, n.srv.DialOptions(coretest.NewIdentity(t), endpoint.NetworkQUIC), true)
	defer quic.Close()
	if ws, resp, err := wstDial(t, "ws://node"+WebSocketPath, wstDialOpts{client: &http.Client{Transport: quic}, bearer: wstTokAlice}); err == nil {
		_ = ws.CloseNow()
		t.Fatalf("WebSocket over prior-knowledge h2 succeeded (%s)", resp.Proto)
	} else {
		t.Logf("prior-knowledge h2: %v", err)
	}

	for _, tr := range n.transports(t) {
		ws, resp, err := wstDial(t, tr.url, wstDialOpts{client: tr.client, bearer: wstTokAlice})
		if err != nil {
			t.Fatalf("%s: dial: %v", tr.name, err)
		}
		if resp.ProtoMajor != 1 {
			t.Fatalf("%s: handshake over %s, want HTTP/1.1", tr.name, resp.Proto)
		}
		wstRaw(t, ws).roundTrip(t)
	}
}

// --- Writes -------------------------------------------------------------------------

// wstGateConn is a server-side connection whose next Write, once armed, blocks until
// released (or the connection is closed), as a write to a client that does not read.
type wstGateConn struct {
	net.Conn
	mu        sync.Mutex
	armed     bool
	entered   chan struct{}
	release   chan struct{}
	closed    chan struct{}
	closeOnce sync.Once
}

func (c *wstGateConn) arm() {
	c.mu.Lock()
	c.armed = true
	c.mu.Unlock()
}

func (c *wstGateConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	armed := c.armed
	c.armed = false
	c.mu.Unlock()
	if armed {
		close(c.entered)
		select {
		case <-c.release:
		case <-c.closed:
			return 0, net.ErrClosed
		}
	}
	return c.Conn.Write(p)
}

func (c *wstGateConn) Close() error {
	c.closeOnce.Do(func() { close(c.closed) })
	return c.Conn.Close()
}

type wstGateListener struct {
	net.Listener
	conns chan *wstGateConn
}

func (l *wstGateListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	g := &wstGateConn{Conn: c, entered: make(chan struct{}), release: make(chan struct{}), closed: make(chan struct{})}
	select {
	case l.conns <- g:
	default:
	}
	return g, nil
}

func (f *wstFixture) serveGated(t *testing.T) (*httptest.Server, chan *wstGateConn) {
	t.Helper()
	conns := make(chan *wstGateConn, 8)
	srv := f.serve(t, func(l net.Listener) net.Listener { return &wstGateListener{Listener: l, conns: conns} })
	return srv, conns
}

// Aborting a subscription while one of its events is being written (the client is not
// reading) must not tear down the WebSocket: a message cannot be abandoned half
// written, so the write finishes and the connection stays usable.
func TestWebSocketAbortDuringWriteKeepsConnection(t *testing.T) {
	f := wstNew(t, nil)
	srv, conns := f.serveGated(t)
	cl := wstRaw(t, wstMustDial(t, wstURL(srv), wstDialOpts{client: srv.Client(), bearer: wstTokAlice}))
	gate := wstWait(t, conns, "the server connection")

	cl.request(t, "sub", "ws/pushes", "")
	f.push <- json.RawMessage(`"a"`)
	if out := wstOutput(t, cl.answer(t, "sub")); out != `"a"` {
		t.Fatalf("first event %s", out)
	}
	gate.arm()
	f.push <- json.RawMessage(`"b"`)
	wstWait(t, gate.entered, "the event write to block")

	cl.sendEnv(t, call.NewAborted("sub"))
	cl.request(t, "mark", "ws/mark", "")
	// ws/mark runs after the abort was handled (envelopes are handled in order).
	select {
	case <-f.marked:
	case <-gate.closed:
		close(gate.release)
		t.Fatal("the server closed the socket because a request was cancelled mid-write")
	case <-time.After(wstGuard):
		t.Fatal("timed out waiting for ws/mark")
	}
	close(gate.release)

	if out := wstOutput(t, cl.answer(t, "mark")); out != `"marked"` {
		t.Fatalf("mark answered %s", out)
	}
	cl.roundTrip(t)
	select {
	case <-gate.closed:
		t.Fatal("the server closed the socket because a request was cancelled mid-write")
	default:
	}
}

// The node giving up on a call to the browser while its request is being written
// does not tear down the WebSocket either.
func TestWebSocketNodeCallCancelledDuringWrite(t *testing.T) {
	f := wstNew(t, wstImportOnConnect)
	srv, conns := f.serveGated(t)
	reg, _ := wstPageRegistry(t)
	b := wstBrowser(t, wstMustDial(t, wstURL(srv), wstDialOpts{client: srv.Client(), bearer: wstTokAlice}), reg, wstNodeSeen)
	gate := wstWait(t, conns, "the server connection")
	got := wstWait(t, f.connected, "OnConnect")
	if got.err != nil {
		t.Fatal(got.err)
	}

	gate.arm()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan *call.CallError, 1)
	go func() {
		_, e := got.c.OverlayEnv().Invoke(ctx, "page", "greet", json.RawMessage(`{"name":"x"}`), wstCaller("page"), call.AbortDependents)
		errc <- e
	}()
	wstWait(t, gate.entered, "the request's write to block")
	cancel()
	select {
	case <-gate.closed:
		close(gate.release)
		t.Fatal("the server closed the socket because a call was cancelled mid-write")
	default:
	}
	close(gate.release)
	wstWait(t, errc, "the cancelled call")

	ctx2, cancel2 := context.WithTimeout(context.Background(), wstGuard)
	defer cancel2()
	out, e := got.c.OverlayEnv().Invoke(ctx2, "page", "greet", json.RawMessage(`{"name":"y"}`), wstCaller("page"), call.AbortDependents)
	if e != nil || string(out) != `"hello y"` {
		t.Fatalf("next call to the browser: %s %v", out, e)
	}
	if out, e := b.call(t, "ws/echo", `3`); e != nil || out != `3` {
		t.Fatalf("browser → node after the cancelled call: %s %v", out, e)
	}
	select {
	case <-gate.closed:
		t.Fatal("the server closed the socket because a call was cancelled mid-write")
	default:
	}
}

// A client that does not read for WriteTimeout is disconnected.
func TestWebSocketWriteTimeoutDisconnects(t *testing.T) {
	f := wstNew(t, func(_ *wstFixture, cfg *Config) { cfg.WebSocket.WriteTimeout = 250 * time.Millisecond })
	srv, conns := f.serveGated(t)
	cl := wstRaw(t, wstMustDial(t, wstURL(srv), wstDialOpts{client: srv.Client(), bearer: wstTokAlice}))
	gate := wstWait(t, conns, "the server connection")
	cl.roundTrip(t)
	gate.arm()
	cl.request(t, "stuck", "ws/echo", `1`)
	wstWait(t, gate.entered, "the answer's write to block")
	wstWait(t, gate.closed, "the server to give up on the write")
	select {
	case <-cl.done:
	case <-time.After(wstGuard):
		t.Fatal("the client's connection did not end")
	}
	if cl.err == nil {
		t.Fatal("no read error")
	}
}
