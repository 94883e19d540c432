package http

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
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

// Tests of the hardening of issue 13 (memory budgets, deadlines, authentication
// attempts, revocation) and of the limits that had none, on a real node: a coretest
// endpoint on 127.0.0.1 serving the Handler over TCP+TLS (h2, http/1.1) and QUIC
// (alknet/http), its API keys and limits in a core.DynamicStore.

// hdGuard bounds every wait; it only turns a hang into a failure.
const hdGuard = 10 * time.Second

// hdWrongAlk looks like an API key (its public prefix alk_WRNG may be logged) and
// resolves to nothing; hdWrong does not look like one. Neither may reach the logs.
const (
	hdWrongAlk = "alk_WRNG-hd-secret-0001"
	hdWrong    = "hd-secret-wrong-0002"
)

// hdNode is a loopback node serving a Handler whose identities and limits come from
// the endpoint's store.
type hdNode struct {
	srv *coretest.Server
	// h is set once the server is up (its identities and limits are the server's
	// store); atomic, since the network between the test and the handler does not
	// order memory for the race detector.
	h     atomic.Pointer[Handler]
	key   string // an API key with scope demo
	entry core.APIKeyEntry
	logs  *coretest.LogBuffer // the Handler's log
	// released is closed when hd/block sees its context end.
	released chan struct{}
}

// hdForward serves a connection with the node's Handler, built after the server.
type hdForward struct{ n *hdNode }

func (f hdForward) Handle(ctx context.Context, conn *core.Connection, auth core.AuthContext) error {
	return f.n.h.Load().Handle(ctx, conn, auth)
}

func hdRegistry(t *testing.T, n *hdNode) *call.Registry {
	t.Helper()
	reg := call.NewRegistry()
	echo := call.NewSpec("hd/echo", call.Query)
	who := call.NewSpec("hd/whoami", call.Query)
	who.Access = call.AccessControl{RequiredScopes: []string{"demo"}}
	slow := call.NewSpec("hd/slow", call.Query)
	quiet := call.NewSpec("hd/quiet", call.Subscription)
	block := call.NewSpec("hd/block", call.Subscription)
	// hd/slow and hd/quiet take {"ms": n}: they stay silent that long. The silence
	// is the scenario under test (a call or stream longer than the idle timeout), not
	// a synchronisation.
	pause := func(ctx context.Context, in json.RawMessage) error {
		var arg struct {
			MS int `json:"ms"`
		}
		_ = json.Unmarshal(in, &arg)
		select {
		case <-time.After(time.Duration(arg.MS) * time.Millisecond):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	for _, r := range []call.Registration{
		{Spec: echo, Once: func(_ context.Context, _ *call.OpContext, in json.RawMessage) (json.RawMessage, error) {
			return json.Marshal(len(in))
		}},
		{Spec: who, Once: func(_ context.Context, oc *call.OpContext, _ json.RawMessage) (json.RawMessage, error) {
			return json.Marshal(map[string]string{"id": oc.Identity.ID})
		}},
		{Spec: slow, Once: func(ctx context.Context, _ *call.OpContext, in json.RawMessage) (json.RawMessage, error) {
			if err := pause(ctx, in); err != nil {
				return nil, err
			}
			return json.RawMessage(`"done"`), nil
		}},
		{Spec: quiet, Stream: func(ctx context.Context, _ *call.OpContext, in json.RawMessage, emit func(json.RawMessage) error) error {
			if err := emit(json.RawMessage(`"a"`)); err != nil {
				return err
			}
			if err := pause(ctx, in); err != nil {
				return err
			}
			return emit(json.RawMessage(`"b"`))
		}},
		{Spec: block, Stream: func(ctx context.Context, _ *call.OpContext, _ json.RawMessage, emit func(json.RawMessage) error) error {
			if err := emit(json.RawMessage(`"started"`)); err != nil {
				return err
			}
			<-ctx.Done()
			close(n.released)
			return ctx.Err()
		}},
	} {
		if err := reg.Register(r); err != nil {
			t.Fatal(err)
		}
	}
	return reg
}

// hdNewNode starts a node with the given core limits; mod may adjust the Handler's
// Config.
func hdNewNode(t *testing.T, limits core.Limits, mod func(*Config)) *hdNode {
	t.Helper()
	n := &hdNode{logs: coretest.NewLogBuffer(), released: make(chan struct{})}
	tok, entry, err := core.NewAPIKey([]string{"demo"}, "hardening tests")
	if err != nil {
		t.Fatal(err)
	}
	n.key, n.entry = string(tok.Raw), entry
	// Registered first, so it runs last: after the server and connections are gone.
	t.Cleanup(func() {
		s := n.logs.String()
		for _, secret := range []string{n.key, hdWrongAlk, hdWrong} {
			if strings.Contains(s, secret) {
				t.Errorf("a token reached the logs:\n%s", s)
			}
		}
	})
	creg := core.NewRegistry()
	for _, alpn := range []string{ALPN, "h2", "http/1.1"} {
		if err := creg.RegisterAs(alpn, hdForward{n}); err != nil {
			t.Fatal(err)
		}
	}
	n.srv = coretest.NewServer(t, creg, coretest.WithConfig(core.DynamicConfig{
		Auth:   core.AuthPolicy{APIKeys: []core.APIKeyEntry{entry}},
		Limits: limits,
	}))
	cfg := Config{
		Registry:   hdRegistry(t, n),
		Identities: core.NewConfigIdentityProvider(n.srv.Store, nil),
		NodeLimits: n.srv.Store.Limits,
		Logger:     n.logs.Logger(),
	}
	if mod != nil {
		mod(&cfg)
	}
	h, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	n.h.Store(h)
	return n
}

// revoke reloads the node's configuration without its API key.
func (n *hdNode) revoke(t *testing.T) {
	t.Helper()
	cfg := n.srv.Store.Load().Clone()
	cfg.Auth.APIKeys = nil
	if err := n.srv.Store.Reload(cfg); err != nil {
		t.Fatal(err)
	}
}

// authFailures returns the Handler's auth failure lines.
func (n *hdNode) authFailures() []string {
	return n.logs.Lines(`msg="` + core.AuthFailureMessage + `"`)
}

// hdClients are the HTTP clients of the node: a stock TLS client (h1, h2) on the
// TCP+TLS listener and the package's transport over QUIC streams (h1, h2).
func (n *hdNode) clients(t *testing.T) map[string]*http.Client {
	t.Helper()
	out := map[string]*http.Client{}
	for name, h2 := range map[string]bool{"quic-h1": false, "quic-h2": true} {
		tr := NewClientTransport(n.srv.Addr, ALPN, n.srv.DialOptions(coretest.NewIdentity(t), endpoint.NetworkQUIC), h2)
		t.Cleanup(func() { _ = tr.Close() })
		out[name] = &http.Client{Transport: tr, Timeout: hdGuard}
	}
	for name, protos := range map[string][]string{"tls-h2": {"h2", "http/1.1"}, "tls-h1": {"http/1.1"}} {
		cfg, err := tlsconf.ClientConfig(tlsconf.ClientOptions{Pin: n.srv.Identity.Fingerprint, NextProtos: protos})
		if err != nil {
			t.Fatal(err)
		}
		tr := &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: len(protos) == 2}
		t.Cleanup(tr.CloseIdleConnections)
		out[name] = &http.Client{Transport: tr, Timeout: hdGuard}
	}
	return out
}

func (n *hdNode) url(client, path string) string {
	if strings.HasPrefix(client, "tls-") {
		return "https://" + n.srv.Addr + path
	}
	return "http://node" + path
}

// hdResp is a response read whole.
type hdResp struct {
	status int
	header http.Header
	body   []byte
	proto  int
	close  bool // Connection: close
}

// post sends body to path with an optional Bearer token.
func hdPost(t *testing.T, c *http.Client, url, token string, body io.Reader) hdResp {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("POST %s: reading the answer: %v", url, err)
	}
	return hdResp{status: resp.StatusCode, header: resp.Header, body: b, proto: resp.ProtoMajor}
}

// hdCallError checks that r is status with a CallError of code and returns it.
func hdCallError(t *testing.T, r hdResp, status int, code string) call.CallError {
	t.Helper()
	var e call.CallError
	if err := json.Unmarshal(r.body, &e); err != nil || r.status != status || e.Code != code {
		t.Fatalf("answer %d %s, want %d with a %s CallError", r.status, r.body, status, code)
	}
	return e
}

// hdOutput checks that r is a 200 gateway answer and returns its output.
func hdOutput(t *testing.T, r hdResp) string {
	t.Helper()
	var ok okBody
	if err := json.Unmarshal(r.body, &ok); err != nil || r.status != http.StatusOK || ok.Result != "ok" {
		t.Fatalf("answer %d %s, want 200 ok", r.status, r.body)
	}
	return string(ok.Output)
}

// hdCallBody returns a /call body for hd/echo of exactly size bytes; hd/echo answers
// the length of its input, which it also returns.
func hdCallBody(t *testing.T, size int) (string, int) {
	t.Helper()
	const head, tail = `{"operation":"hd/echo","input":"`, `"}`
	pad := size - len(head) - len(tail)
	if pad < 0 {
		t.Fatalf("body of %d bytes too small", size)
	}
	return head + strings.Repeat("a", pad) + tail, pad + 2
}

// --- raw HTTP/1.1 on one connection --------------------------------------------

// hdRaw is one HTTP/1.1 connection the test writes requests on by hand, so that
// every request provably shares it.
type hdRaw struct {
	c  net.Conn
	br *bufio.Reader
}

// rawTLS opens an HTTP/1.1 connection over TCP+TLS.
func (n *hdNode) rawTLS(t *testing.T) *hdRaw {
	t.Helper()
	cfg, err := tlsconf.ClientConfig(tlsconf.ClientOptions{Pin: n.srv.Identity.Fingerprint, NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	d := tls.Dialer{Config: cfg}
	ctx, cancel := context.WithTimeout(context.Background(), hdGuard)
	defer cancel()
	c, err := d.DialContext(ctx, "tcp", n.srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return &hdRaw{c: c, br: bufio.NewReader(c)}
}

// quic opens an alknet/http connection over QUIC.
func (n *hdNode) quic(t *testing.T) *core.Connection {
	t.Helper()
	return n.srv.Dial(t, ALPN, coretest.NewIdentity(t), endpoint.NetworkQUIC)
}

// rawStream opens an HTTP/1.1 connection on a new stream of conn; err when the
// stream cannot be opened.
func hdRawStream(t *testing.T, conn *core.Connection) (*hdRaw, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hdGuard)
	defer cancel()
	s, err := conn.OpenBi(ctx)
	if err != nil {
		return nil, err
	}
	c := core.NetConn(s, nil, nil)
	t.Cleanup(func() { _ = c.Close() })
	return &hdRaw{c: c, br: bufio.NewReader(c)}, nil
}

// send writes a request; headers are name/value pairs.
func (r *hdRaw) send(t *testing.T, method, path, body string, headers ...string) error {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: node\r\n", method, path)
	for i := 0; i+1 < len(headers); i += 2 {
		fmt.Fprintf(&b, "%s: %s\r\n", headers[i], headers[i+1])
	}
	if body != "" || method == http.MethodPost {
		fmt.Fprintf(&b, "Content-Type: application/json\r\nContent-Length: %d\r\n", len(body))
	}
	b.WriteString("\r\n")
	b.WriteString(body)
	_ = r.c.SetWriteDeadline(time.Now().Add(hdGuard))
	_, err := io.WriteString(r.c, b.String())
	return err
}

// read reads one response.
func (r *hdRaw) read(t *testing.T) (hdResp, error) {
	t.Helper()
	_ = r.c.SetReadDeadline(time.Now().Add(hdGuard))
	resp, err := http.ReadResponse(r.br, nil)
	if err != nil {
		return hdResp{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return hdResp{}, err
	}
	return hdResp{status: resp.StatusCode, header: resp.Header, body: b, proto: resp.ProtoMajor, close: resp.Close}, nil
}

// do sends a request and reads its response, failing the test on a transport error.
func (r *hdRaw) do(t *testing.T, method, path, body string, headers ...string) hdResp {
	t.Helper()
	if err := r.send(t, method, path, body, headers...); err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	resp, err := r.read(t)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return resp
}

// closed waits until the server has closed the connection (EOF or a reset).
func (r *hdRaw) closed(t *testing.T) {
	t.Helper()
	_ = r.c.SetReadDeadline(time.Now().Add(hdGuard))
	b, err := io.ReadAll(r.br)
	if err == nil || !isTimeout(err) {
		if len(b) != 0 {
			t.Fatalf("read %q after the last answer, want the connection closed", b)
		}
		return
	}
	t.Fatalf("the node did not close the connection: %v", err)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func hdBearer(tok string) []string { return []string{"Authorization", "Bearer " + tok} }

// --- 1. memory budgets ---------------------------------------------------------

// A body is buffered against the connection's memory budget: one of exactly the
// budget is served, one byte more is answered 503 with an HTTP_503 CallError naming
// the limit, and the connection goes on serving.
func TestHardenBodyBudget(t *testing.T) {
	const budget = 64 << 10
	n := hdNewNode(t, core.Limits{MaxBufferedBytesPerConn: budget}, nil)
	at, atLen := hdCallBody(t, budget)
	over, _ := hdCallBody(t, budget+1)
	for name, c := range n.clients(t) {
		t.Run(name, func(t *testing.T) {
			if out := hdOutput(t, hdPost(t, c, n.url(name, "/call"), "", strings.NewReader(at))); out != strconv.Itoa(atLen) {
				t.Fatalf("hd/echo answered %s, want %d", out, atLen)
			}
			r := hdPost(t, c, n.url(name, "/call"), "", strings.NewReader(over))
			e := hdCallError(t, r, http.StatusServiceUnavailable, HTTPCodePrefix+"503")
			if !strings.Contains(e.Message, core.BudgetScopeConn) || !e.Retryable {
				t.Fatalf("budget error %+v, want a retryable error naming %s", e, core.BudgetScopeConn)
			}
			if r.header.Get("Retry-After") == "" {
				t.Fatal("no Retry-After on the 503")
			}
			// The reservation was released: the same budget serves the next body.
			if out := hdOutput(t, hdPost(t, c, n.url(name, "/call"), "", strings.NewReader(at))); out != strconv.Itoa(atLen) {
				t.Fatalf("hd/echo answered %s after the 503, want %d", out, atLen)
			}
		})
	}
	// /batch and /subscribe read their bodies the same way.
	c := n.clients(t)["tls-h2"]
	batch := "[" + over + "]"
	hdCallError(t, hdPost(t, c, n.url("tls-h2", "/batch"), "", strings.NewReader(batch)), http.StatusServiceUnavailable, HTTPCodePrefix+"503")
	hdCallError(t, hdPost(t, c, n.url("tls-h2", "/subscribe"), "", strings.NewReader(over)), http.StatusServiceUnavailable, HTTPCodePrefix+"503")
}

// A connection without an identity (no Bearer token that resolves, no known client
// certificate) gets core's MaxAnonymousFrameBytes as its body cap when the handler
// allows larger bodies; an identified caller gets MaxBodyBytes.
func TestHardenAnonymousBodyCap(t *testing.T) {
	n := hdNewNode(t, core.Limits{}, func(cfg *Config) { cfg.Limits.MaxBodyBytes = 4 << 20 })
	over, overLen := hdCallBody(t, int(core.DefaultMaxAnonymousFrameBytes)+1)
	at, atLen := hdCallBody(t, int(core.DefaultMaxAnonymousFrameBytes))
	c := n.clients(t)["tls-h2"]
	if out := hdOutput(t, hdPost(t, c, n.url("tls-h2", "/call"), "", strings.NewReader(at))); out != strconv.Itoa(atLen) {
		t.Fatalf("anonymous body at the cap: %s", out)
	}
	e := hdCallError(t, hdPost(t, c, n.url("tls-h2", "/call"), "", strings.NewReader(over)), http.StatusRequestEntityTooLarge, HTTPCodePrefix+"413")
	if want := strconv.FormatInt(core.DefaultMaxAnonymousFrameBytes, 10); !strings.Contains(e.Message, want) {
		t.Fatalf("413 %q does not name the limit %s", e.Message, want)
	}
	if out := hdOutput(t, hdPost(t, c, n.url("tls-h2", "/call"), n.key, strings.NewReader(over))); out != strconv.Itoa(overLen) {
		t.Fatalf("identified body above the anonymous cap: %s", out)
	}
}

// wsDial opens the node's WebSocket over TCP+TLS with the subprotocol Bearer token.
func (n *hdNode) wsDial(t *testing.T, token string) *websocket.Conn {
	t.Helper()
	cfg, err := tlsconf.ClientConfig(tlsconf.ClientOptions{Pin: n.srv.Identity.Fingerprint, NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	dialer := &tls.Dialer{Config: cfg}
	tr := &http.Transport{DialTLSContext: dialer.DialContext}
	t.Cleanup(tr.CloseIdleConnections)
	ctx, cancel := context.WithTimeout(context.Background(), hdGuard)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "wss://"+n.srv.Addr+WebSocketPath, &websocket.DialOptions{
		HTTPClient:   &http.Client{Transport: tr},
		Subprotocols: []string{WebSocketSubprotocol, WebSocketBearerPrefix + token},
	})
	if err != nil {
		t.Fatalf("websocket dial: %v", err)
	}
	return ws
}

// hdWSRequest is a call.requested of hd/echo of exactly size bytes.
func hdWSRequest(t *testing.T, id string, size int) []byte {
	t.Helper()
	build := func(pad int) []byte {
		env, err := call.NewRequest(id, "hd/echo", json.RawMessage(`"`+strings.Repeat("a", pad)+`"`), nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, err := call.EncodeEnvelope(env)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	b := build(size - len(build(0)))
	if len(b) != size {
		t.Fatalf("padded request of %d bytes, want %d", len(b), size)
	}
	return b
}

// A WebSocket message is buffered against the connection's budget too: one of
// exactly the budget is served, one byte more closes the socket with 1008 and a
// reason naming the limit.
func TestHardenWebSocketBudget(t *testing.T) {
	const budget = 64 << 10
	n := hdNewNode(t, core.Limits{MaxBufferedBytesPerConn: budget}, nil)
	cl := wstRaw(t, n.wsDial(t, n.key))
	cl.send(t, hdWSRequest(t, "at", budget))
	if env := cl.answer(t, "at"); env.Type != call.EvResponded {
		t.Fatalf("message at the budget: %s %s", env.Type, env.Payload)
	}
	cl.send(t, hdWSRequest(t, "over", budget+1))
	ce := cl.closed(t)
	if ce.Code != websocket.StatusPolicyViolation || !strings.Contains(ce.Reason, core.BudgetScopeConn) {
		t.Fatalf("closed with %d %q, want 1008 naming %s", ce.Code, ce.Reason, core.BudgetScopeConn)
	}
}

// A message stays reserved while the request it carries runs: a second message the
// budget has no room for next to a running subscription closes the socket.
func TestHardenWebSocketRequestsHoldBudget(t *testing.T) {
	const budget = 64 << 10
	n := hdNewNode(t, core.Limits{MaxBufferedBytesPerConn: budget}, nil)
	cl := wstRaw(t, n.wsDial(t, n.key))
	pad := func(id, op string, size int) []byte {
		t.Helper()
		env, err := call.NewRequest(id, op, json.RawMessage(`"`+strings.Repeat("a", size)+`"`), nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, err := call.EncodeEnvelope(env)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	cl.send(t, pad("block", "hd/block", 40<<10))
	if out := wstOutput(t, cl.answer(t, "block")); out != `"started"` {
		t.Fatalf("hd/block: %s", out)
	}
	cl.send(t, pad("second", "hd/echo", 40<<10))
	ce := cl.closed(t)
	if ce.Code != websocket.StatusPolicyViolation || !strings.Contains(ce.Reason, core.BudgetScopeConn) {
		t.Fatalf("closed with %d %q, want 1008 naming %s", ce.Code, ce.Reason, core.BudgetScopeConn)
	}
}

// --- 2. deadlines --------------------------------------------------------------

// A call, a subscription and a WebSocket silent for longer than the core idle
// timeout are not cut: the handler marks the connection busy while a request runs.
// A keep-alive connection idle between requests is still closed by the core idle
// timeout, well before http's own IdleTimeout.
func TestHardenBusyWhileServing(t *testing.T) {
	const idle = 300 * time.Millisecond
	const silence = `{"ms":700}`
	n := hdNewNode(t, core.Limits{IdleTimeout: idle}, nil)
	for name, c := range n.clients(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			body := `{"operation":"hd/slow","input":` + silence + `}`
			if out := hdOutput(t, hdPost(t, c, n.url(name, "/call"), "", strings.NewReader(body))); out != `"done"` {
				t.Fatalf("hd/slow answered %s", out)
			}
			r := hdPost(t, c, n.url(name, "/subscribe"), "", strings.NewReader(`{"operation":"hd/quiet","input":`+silence+`}`))
			if r.status != http.StatusOK || string(r.body) != "data: \"a\"\n\ndata: \"b\"\n\n" {
				t.Fatalf("hd/quiet: %d %q", r.status, r.body)
			}
		})
	}
	t.Run("websocket", func(t *testing.T) {
		t.Parallel()
		cl := wstRaw(t, n.wsDial(t, n.key))
		cl.request(t, "slow", "hd/slow", silence)
		if out := wstOutput(t, cl.answer(t, "slow")); out != `"done"` {
			t.Fatalf("hd/slow answered %s", out)
		}
	})
	t.Run("idle keep-alive", func(t *testing.T) {
		t.Parallel()
		raw := n.rawTLS(t)
		if r := raw.do(t, http.MethodGet, "/healthz", ""); r.status != http.StatusOK {
			t.Fatalf("healthz: %d", r.status)
		}
		raw.closed(t)
	})
}

// A body that stalls is answered 408 with an HTTP_408 CallError once
// Limits.BodyReadTimeout has passed, and an HTTP/1.1 connection is closed (the rest
// of the body would be read as the next request).
func TestHardenStalledBody(t *testing.T) {
	n := hdNewNode(t, core.Limits{}, func(cfg *Config) {
		cfg.Limits.BodyReadTimeout = 200 * time.Millisecond
		// An embedder's route sees the timeout as ErrBodyReadTimeout.
		cfg.Routes = http.NewServeMux()
		cfg.Routes.HandleFunc("POST /upload", func(w http.ResponseWriter, r *http.Request) {
			if _, err := io.ReadAll(r.Body); errors.Is(err, ErrBodyReadTimeout) {
				w.WriteHeader(http.StatusRequestTimeout)
				return
			}
			w.WriteHeader(http.StatusNoContent)
		})
	})
	const stalled = "POST %s HTTP/1.1\r\nHost: node\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"operatio"
	h1 := func(t *testing.T, raw *hdRaw) {
		t.Helper()
		if _, err := fmt.Fprintf(raw.c, stalled, "/call"); err != nil {
			t.Fatal(err)
		}
		r, err := raw.read(t)
		if err != nil {
			t.Fatalf("no answer to a stalled body: %v", err)
		}
		hdCallError(t, r, http.StatusRequestTimeout, HTTPCodePrefix+"408")
		if !r.close {
			t.Fatal("408 without Connection: close")
		}
		raw.closed(t)
	}
	t.Run("tls-h1", func(t *testing.T) { h1(t, n.rawTLS(t)) })
	t.Run("quic-h1", func(t *testing.T) {
		raw, err := hdRawStream(t, n.quic(t))
		if err != nil {
			t.Fatal(err)
		}
		h1(t, raw)
	})
	t.Run("tls-h2", func(t *testing.T) {
		pr, pw := io.Pipe()
		defer pw.Close()
		go func() { _, _ = io.WriteString(pw, `{"operatio`) }()
		r := hdPost(t, n.clients(t)["tls-h2"], n.url("tls-h2", "/call"), "", pr)
		hdCallError(t, r, http.StatusRequestTimeout, HTTPCodePrefix+"408")
		if r.proto != 2 {
			t.Fatalf("answered over HTTP/%d", r.proto)
		}
	})
	t.Run("extra route", func(t *testing.T) {
		raw := n.rawTLS(t)
		if _, err := fmt.Fprintf(raw.c, stalled, "/upload"); err != nil {
			t.Fatal(err)
		}
		if r, err := raw.read(t); err != nil || r.status != http.StatusRequestTimeout {
			t.Fatalf("stalled upload: %d %v", r.status, err)
		}
	})
}

// The body deadline ends with the body: an SSE stream that outlives it is not cut,
// and the keep-alive connection serves the next request.
func TestHardenBodyDeadlineSparesStream(t *testing.T) {
	const timeout = 200 * time.Millisecond
	n := hdNewNode(t, core.Limits{}, func(cfg *Config) { cfg.Limits.BodyReadTimeout = timeout })
	for name, c := range n.clients(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			r := hdPost(t, c, n.url(name, "/subscribe"), "", strings.NewReader(`{"operation":"hd/quiet","input":{"ms":600}}`))
			if r.status != http.StatusOK || string(r.body) != "data: \"a\"\n\ndata: \"b\"\n\n" {
				t.Fatalf("hd/quiet: %d %q", r.status, r.body)
			}
			if out := hdOutput(t, hdPost(t, c, n.url(name, "/call"), "", strings.NewReader(`{"operation":"hd/slow","input":{"ms":400}}`))); out != `"done"` {
				t.Fatalf("hd/slow answered %s", out)
			}
		})
	}
}

// --- 3. authentication attempts ------------------------------------------------

// On one keep-alive HTTP/1.1 connection, MaxAuthAttempts wrong Bearer tokens are
// answered as usual (anonymous) and logged; the next presentation, even of the right
// token, is refused with 429 and Connection: close, and the connection closes.
func TestHardenAuthAttemptsHTTP1(t *testing.T) {
	n := hdNewNode(t, core.Limits{}, nil)
	raw := n.rawTLS(t)
	body := `{"operation":"hd/whoami"}`
	for i := range core.DefaultMaxAuthAttempts {
		tok := hdWrong
		if i%2 == 0 {
			tok = hdWrongAlk
		}
		hdCallError(t, raw.do(t, http.MethodPost, "/call", body, hdBearer(tok)...), http.StatusUnauthorized, call.CodeForbidden)
	}
	lines := n.authFailures()
	if len(lines) != core.DefaultMaxAuthAttempts {
		t.Fatalf("%d auth failure lines, want %d:\n%s", len(lines), core.DefaultMaxAuthAttempts, n.logs)
	}
	for i, l := range lines {
		peer := "peer=-"
		if i%2 == 0 {
			peer = "peer=alk_WRNG"
		}
		if !strings.Contains(l, "remote_ip=127.0.0.1") || !strings.Contains(l, "alpn=http/1.1") || !strings.Contains(l, peer) {
			t.Fatalf("auth failure line %q, want remote_ip, alpn=http/1.1 and %s", l, peer)
		}
	}
	r := raw.do(t, http.MethodPost, "/call", body, hdBearer(n.key)...)
	hdCallError(t, r, http.StatusTooManyRequests, HTTPCodePrefix+"429")
	if !r.close {
		t.Fatalf("refusal without Connection: close: %v", r.header)
	}
	raw.closed(t)
}

// MaxAuthAttempts at its limit: that many failures still let the right token in; it
// is configurable through the node's limits.
func TestHardenAuthAttemptsAtLimit(t *testing.T) {
	const limit = 3
	n := hdNewNode(t, core.Limits{MaxAuthAttempts: limit}, nil)
	body := `{"operation":"hd/whoami"}`
	raw := n.rawTLS(t)
	for range limit - 1 {
		hdCallError(t, raw.do(t, http.MethodPost, "/call", body, hdBearer(hdWrong)...), http.StatusUnauthorized, call.CodeForbidden)
	}
	if out := hdOutput(t, raw.do(t, http.MethodPost, "/call", body, hdBearer(n.key)...)); out != `{"id":"`+n.entry.Prefix+`"}` {
		t.Fatalf("whoami: %s", out)
	}
	// The limit-th failure is answered; the attempt after it is refused.
	hdCallError(t, raw.do(t, http.MethodPost, "/call", body, hdBearer(hdWrong)...), http.StatusUnauthorized, call.CodeForbidden)
	hdCallError(t, raw.do(t, http.MethodPost, "/call", body, hdBearer(n.key)...), http.StatusTooManyRequests, HTTPCodePrefix+"429")
	raw.closed(t)
	// Requests without a credential are not attempts.
	raw = n.rawTLS(t)
	for range limit + 2 {
		hdCallError(t, raw.do(t, http.MethodPost, "/call", body), http.StatusUnauthorized, call.CodeForbidden)
	}
	if out := hdOutput(t, raw.do(t, http.MethodPost, "/call", body, hdBearer(n.key)...)); out != `{"id":"`+n.entry.Prefix+`"}` {
		t.Fatalf("whoami: %s", out)
	}
}

// Attempts count per connection across the QUIC streams of an alknet/http
// connection; the refusal closes the whole connection.
func TestHardenAuthAttemptsQUIC(t *testing.T) {
	n := hdNewNode(t, core.Limits{}, nil)
	conn := n.quic(t)
	body := `{"operation":"hd/whoami"}`
	for range core.DefaultMaxAuthAttempts {
		raw, err := hdRawStream(t, conn)
		if err != nil {
			t.Fatal(err)
		}
		hdCallError(t, raw.do(t, http.MethodPost, "/call", body, hdBearer(hdWrong)...), http.StatusUnauthorized, call.CodeForbidden)
	}
	if lines := n.authFailures(); len(lines) != core.DefaultMaxAuthAttempts || !strings.Contains(lines[0], "alpn="+ALPN) {
		t.Fatalf("auth failure lines:\n%s", strings.Join(lines, "\n"))
	}
	raw, err := hdRawStream(t, conn)
	if err != nil {
		t.Fatal(err)
	}
	if err := raw.send(t, http.MethodPost, "/call", body, hdBearer(n.key)...); err != nil {
		t.Fatal(err)
	}
	// The 429 may or may not arrive before the connection closes; the right token
	// must not be served.
	if r, err := raw.read(t); err == nil && r.status != http.StatusTooManyRequests {
		t.Fatalf("the attempt after the limit was answered %d %s", r.status, r.body)
	}
	// Whatever the client still manages to open locally, nothing is served.
	raw, err = hdRawStream(t, conn)
	if err == nil {
		if err = raw.send(t, http.MethodGet, "/healthz", ""); err == nil {
			_, err = raw.read(t)
		}
	}
	if err == nil {
		t.Fatal("the connection still serves requests after the refusal")
	}
	if isTimeout(err) {
		t.Fatalf("the connection stayed open after the refusal: %v", err)
	}
}

// WebSocket subprotocol tokens and /mcp Bearer tokens count as attempts too.
func TestHardenAuthAttemptsWebSocketAndMCP(t *testing.T) {
	mcp := func(*Gateway) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if IdentityFrom(r.Context()) == nil {
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			w.WriteHeader(http.StatusNoContent)
		})
	}
	n := hdNewNode(t, core.Limits{}, func(cfg *Config) { cfg.MCP = mcp })
	upgrade := func(tok string) []string {
		return []string{"Connection", "Upgrade", "Upgrade", "websocket", "Sec-WebSocket-Version", "13",
			"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==",
			"Sec-WebSocket-Protocol", WebSocketSubprotocol + ", " + WebSocketBearerPrefix + tok}
	}
	t.Run("websocket", func(t *testing.T) {
		raw := n.rawTLS(t)
		for range core.DefaultMaxAuthAttempts {
			if r := raw.do(t, http.MethodGet, WebSocketPath, "", upgrade(hdWrong)...); r.status != http.StatusUnauthorized {
				t.Fatalf("wrong subprotocol token: %d", r.status)
			}
		}
		r := raw.do(t, http.MethodGet, WebSocketPath, "", upgrade(n.key)...)
		if r.status != http.StatusTooManyRequests {
			t.Fatalf("the attempt after the limit was answered %d", r.status)
		}
		raw.closed(t)
	})
	t.Run("mcp", func(t *testing.T) {
		raw := n.rawTLS(t)
		for range core.DefaultMaxAuthAttempts {
			if r := raw.do(t, http.MethodPost, MCPPath, "{}", hdBearer(hdWrongAlk)...); r.status != http.StatusUnauthorized {
				t.Fatalf("wrong token: %d", r.status)
			}
		}
		if r := raw.do(t, http.MethodPost, MCPPath, "{}", hdBearer(n.key)...); r.status != http.StatusTooManyRequests {
			t.Fatalf("the attempt after the limit was answered %d", r.status)
		}
		raw.closed(t)
	})
}

// The auth_token of a WebSocket request is an attempt of the same connection as the
// Bearer tokens before the upgrade: once they add up to MaxAuthAttempts failures, the
// next auth_token closes the socket with 1008.
func TestHardenAuthAttemptsWebSocketAuthToken(t *testing.T) {
	n := hdNewNode(t, core.Limits{}, nil)
	raw := n.rawTLS(t)
	const bearerFailures = 3
	for range bearerFailures {
		hdCallError(t, raw.do(t, http.MethodPost, "/call", `{"operation":"hd/whoami"}`, hdBearer(hdWrong)...), http.StatusUnauthorized, call.CodeForbidden)
	}
	// The WebSocket upgrade goes over the same TLS connection.
	handed := false
	tr := &http.Transport{DialTLSContext: func(context.Context, string, string) (net.Conn, error) {
		if handed {
			return nil, errors.New("one connection only")
		}
		handed = true
		return raw.c, nil
	}}
	ctx, cancel := context.WithTimeout(context.Background(), hdGuard)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "wss://"+n.srv.Addr+WebSocketPath, &websocket.DialOptions{
		HTTPClient:   &http.Client{Transport: tr},
		Subprotocols: []string{WebSocketSubprotocol, WebSocketBearerPrefix + n.key},
	})
	if err != nil {
		t.Fatalf("websocket dial: %v", err)
	}
	cl := wstRaw(t, ws)
	request := func(id, token string) {
		t.Helper()
		env, err := call.NewRequest(id, "hd/whoami", nil, []byte(token), nil)
		if err != nil {
			t.Fatal(err)
		}
		cl.sendEnv(t, env)
	}
	for i := range core.DefaultMaxAuthAttempts - bearerFailures {
		id := fmt.Sprint("wrong-", i)
		request(id, hdWrongAlk)
		// A token that does not resolve falls back to the connection identity.
		if out := wstOutput(t, cl.answer(t, id)); out != `{"id":"`+n.entry.Prefix+`"}` {
			t.Fatalf("whoami: %s", out)
		}
	}
	request("right", n.key)
	ce := cl.closed(t)
	if ce.Code != websocket.StatusPolicyViolation || ce.Reason != "too many authentication attempts" {
		t.Fatalf("closed with %d %q, want 1008 \"too many authentication attempts\"", ce.Code, ce.Reason)
	}
	// The auth_token failures are logged under the connection's ALPN, like the Bearer ones.
	if lines := n.logs.Lines(`msg="auth failure"`, `alpn=http/1.1`, `reason="invalid auth_token"`); len(lines) != core.DefaultMaxAuthAttempts-bearerFailures {
		t.Fatalf("want %d auth_token failure lines with alpn=http/1.1, logs:\n%s", core.DefaultMaxAuthAttempts-bearerFailures, n.logs)
	}
}

// --- 4. revocation -------------------------------------------------------------

// A WebSocket opened with an API key is closed with 1008 "credential revoked" at the
// reload that removes the key, and the revocation is logged as an auth failure.
func TestHardenWebSocketRevocation(t *testing.T) {
	n := hdNewNode(t, core.Limits{}, nil)
	cl := wstRaw(t, n.wsDial(t, n.key))
	cl.request(t, "who", "hd/whoami", "")
	if out := wstOutput(t, cl.answer(t, "who")); out != `{"id":"`+n.entry.Prefix+`"}` {
		t.Fatalf("whoami: %s", out)
	}
	// A reload that keeps the key changes nothing.
	if err := n.srv.Store.Reload(n.srv.Store.Load().Clone()); err != nil {
		t.Fatal(err)
	}
	cl.request(t, "who2", "hd/whoami", "")
	if out := wstOutput(t, cl.answer(t, "who2")); out != `{"id":"`+n.entry.Prefix+`"}` {
		t.Fatalf("whoami after a reload keeping the key: %s", out)
	}
	n.revoke(t)
	ce := cl.closed(t)
	if ce.Code != websocket.StatusPolicyViolation || ce.Reason != "credential revoked" {
		t.Fatalf("closed with %d %q, want 1008 \"credential revoked\"", ce.Code, ce.Reason)
	}
	lines := n.authFailures()
	if len(lines) != 1 || !strings.Contains(lines[0], "peer="+n.entry.Prefix) || !strings.Contains(lines[0], `reason="credential revoked"`) {
		t.Fatalf("auth failure lines:\n%s", strings.Join(lines, "\n"))
	}
}

// A /subscribe stream opened with an API key ends with an event: error FORBIDDEN
// "credential revoked" at the reload that removes the key.
func TestHardenSubscriptionRevocation(t *testing.T) {
	n := hdNewNode(t, core.Limits{}, nil)
	c := n.clients(t)["tls-h2"]
	ctx, cancel := context.WithTimeout(context.Background(), hdGuard)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, n.url("tls-h2", "/subscribe"), strings.NewReader(`{"operation":"hd/block"}`))
	req.Header.Set("Authorization", "Bearer "+n.key)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	if f := hdReadFrame(t, br); f != "data: \"started\"\n\n" {
		t.Fatalf("first frame %q", f)
	}
	n.revoke(t)
	f := hdReadFrame(t, br)
	if !strings.HasPrefix(f, "event: error\n") || !strings.Contains(f, call.CodeForbidden) || !strings.Contains(f, "credential revoked") {
		t.Fatalf("frame after the revocation %q", f)
	}
	select {
	case <-n.released:
	case <-time.After(hdGuard):
		t.Fatal("hd/block was not cancelled")
	}
}

// --- 5. smaller ones -----------------------------------------------------------

// The 1009 close names the configured limit exactly.
func TestHardenWebSocketLimitReason(t *testing.T) {
	const limit = 4096
	f := wstNew(t, func(_ *wstFixture, cfg *Config) { cfg.WebSocket.MaxMessageBytes = limit })
	srv := f.serve(t, nil)
	cl := wstRaw(t, wstMustDial(t, wstURL(srv), wstDialOpts{client: srv.Client(), bearer: wstTokAlice}))
	msg, _ := wstPaddedRequest(t, "over-limit", limit+1)
	cl.send(t, msg)
	ce := cl.closed(t)
	if ce.Code != websocket.StatusMessageTooBig || ce.Reason != "message exceeds 4096 bytes" {
		t.Fatalf("closed with %d %q, want 1009 \"message exceeds 4096 bytes\"", ce.Code, ce.Reason)
	}
}

// The auth scheme is case-insensitive (RFC 9110 §11.1).
func TestBearerSchemeCaseInsensitive(t *testing.T) {
	for _, v := range []string{"Bearer tok", "bearer tok", "BEARER tok", "bEaReR tok", "Bearer   tok"} {
		tok, ok := BearerToken(http.Header{"Authorization": {v}})
		if !ok || string(tok) != "tok" {
			t.Errorf("BearerToken(%q) = %q, %v; want tok", v, tok, ok)
		}
	}
	for _, v := range []string{"Bearertok", "Bearer", "Bearer ", "Basic tok", "Bearerx tok", "Bear tok"} {
		if tok, ok := BearerToken(http.Header{"Authorization": {v}}); ok {
			t.Errorf("BearerToken(%q) = %q, want refused", v, tok)
		}
	}
	n := hdNewNode(t, core.Limits{}, nil)
	raw := n.rawTLS(t)
	if out := hdOutput(t, raw.do(t, http.MethodPost, "/call", `{"operation":"hd/whoami"}`, "Authorization", "bearer "+n.key)); out != `{"id":"`+n.entry.Prefix+`"}` {
		t.Fatalf("whoami with a lowercase scheme: %s", out)
	}
}

// --- 6. limits that had no test ------------------------------------------------

// MaxHeaderBytes: headers under the limit are served, headers over it are answered
// 431. net/http allows 4 KiB of slack on a fresh connection (its read buffer), and up
// to 8 KiB on a keep-alive one (the next request's first buffer is read before the
// limit is armed).
func TestHardenMaxHeaderBytes(t *testing.T) {
	const limit = 1024
	n := hdNewNode(t, core.Limits{}, func(cfg *Config) { cfg.Limits.MaxHeaderBytes = limit })
	raw := n.rawTLS(t)
	if r := raw.do(t, http.MethodGet, "/healthz", "", "X-Pad", strings.Repeat("a", limit-100)); r.status != http.StatusOK {
		t.Fatalf("headers under the limit: %d", r.status)
	}
	if r := raw.do(t, http.MethodGet, "/healthz", "", "X-Pad", strings.Repeat("a", limit+8192+1)); r.status != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("headers over the limit on a keep-alive connection: %d", r.status)
	}
	raw.closed(t)
	raw = n.rawTLS(t)
	if r := raw.do(t, http.MethodGet, "/healthz", "", "X-Pad", strings.Repeat("a", limit+4096+1)); r.status != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("headers over the limit on a fresh connection: %d", r.status)
	}
}

// ReadHeaderTimeout: a client that stalls in its headers is disconnected.
func TestHardenReadHeaderTimeout(t *testing.T) {
	n := hdNewNode(t, core.Limits{}, func(cfg *Config) { cfg.Limits.ReadHeaderTimeout = 200 * time.Millisecond })
	raw := n.rawTLS(t)
	if _, err := io.WriteString(raw.c, "GET /healthz HTTP/1.1\r\nHost: node\r\n"); err != nil {
		t.Fatal(err)
	}
	raw.closed(t)
}

// http's IdleTimeout closes a keep-alive connection idle between requests.
func TestHardenHTTPIdleTimeout(t *testing.T) {
	n := hdNewNode(t, core.Limits{}, func(cfg *Config) { cfg.Limits.IdleTimeout = 200 * time.Millisecond })
	raw := n.rawTLS(t)
	if r := raw.do(t, http.MethodGet, "/healthz", ""); r.status != http.StatusOK {
		t.Fatalf("healthz: %d", r.status)
	}
	raw.closed(t)
}

// hdReadFrame reads one SSE frame (up to the blank line).
func hdReadFrame(t *testing.T, r *bufio.Reader) string {
	t.Helper()
	var sb strings.Builder
	for {
		line, err := r.ReadString('\n')
		sb.WriteString(line)
		if err != nil {
			t.Fatalf("reading a frame: %v (read %q)", err, sb.String())
		}
		if line == "\n" {
			return sb.String()
		}
	}
}
