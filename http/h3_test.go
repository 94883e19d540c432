package http

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go/http3"

	"github.com/alknet/alknet/call"
	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/core/coretest"
	"github.com/alknet/alknet/core/endpoint"
	"github.com/alknet/alknet/core/tlsconf"
)

// h3AnonLimit is the node's cap on a body from a caller without an identity in these
// tests.
const h3AnonLimit = 1024

// h3Node is a loopback endpoint serving a Handler on alknet/http, h2, http/1.1 and h3,
// with an API key (scope demo) and a known client certificate.
type h3Node struct {
	srv    *coretest.Server
	h      *Handler
	token  string
	keyID  string
	client *coretest.Identity  // a known peer
	logs   *coretest.LogBuffer // the handler's
}

func newH3Node(t *testing.T, opts ...coretest.Option) *h3Node {
	return newH3NodeLimits(t, core.Limits{MaxAnonymousFrameBytes: h3AnonLimit}, opts...)
}

func newH3NodeLimits(t *testing.T, limits core.Limits, opts ...coretest.Option) *h3Node {
	t.Helper()
	reg := call.NewRegistry()
	who := call.NewSpec("h3/whoami", call.Query)
	who.Access = call.AccessControl{RequiredScopes: []string{"demo"}}
	for _, r := range []call.Registration{
		{Spec: call.NewSpec("h3/echo", call.Query), Once: func(_ context.Context, _ *call.OpContext, in json.RawMessage) (json.RawMessage, error) {
			return in, nil
		}},
		{Spec: call.NewSpec("h3/block", call.Subscription), Stream: func(ctx context.Context, _ *call.OpContext, _ json.RawMessage, emit func(json.RawMessage) error) error {
			if err := emit(json.RawMessage(`"started"`)); err != nil {
				return err
			}
			<-ctx.Done()
			return ctx.Err()
		}},
		{Spec: who, Once: func(_ context.Context, oc *call.OpContext, _ json.RawMessage) (json.RawMessage, error) {
			return json.Marshal(map[string]string{"id": oc.Identity.ID})
		}},
	} {
		if err := reg.Register(r); err != nil {
			t.Fatal(err)
		}
	}
	tok, key, err := core.NewAPIKey([]string{"demo"}, "h3 test")
	if err != nil {
		t.Fatal(err)
	}
	client := coretest.NewIdentity(t)
	cfg := core.DynamicConfig{
		Auth:   core.AuthPolicy{APIKeys: []core.APIKeyEntry{key}, Peers: []core.PeerEntry{client.Peer("carol")}},
		Limits: limits,
	}
	store, err := core.NewDynamicStore(cfg)
	if err != nil {
		t.Fatal(err)
	}
	logs := coretest.NewLogBuffer()
	h, err := New(Config{Registry: reg, Identities: core.NewConfigIdentityProvider(store, nil), NodeLimits: store.Limits, Logger: logs.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	creg := core.NewRegistry()
	for _, alpn := range []string{ALPN, "h2", "http/1.1"} {
		if err := creg.RegisterAs(alpn, h); err != nil {
			t.Fatal(err)
		}
	}
	if err := creg.Register(h.HTTP3()); err != nil {
		t.Fatal(err)
	}
	srv := coretest.NewServer(t, creg, append([]coretest.Option{coretest.WithConfig(cfg)}, opts...)...)
	return &h3Node{srv: srv, h: h, token: string(tok.Raw), keyID: key.Prefix, client: client, logs: logs}
}

// h3Client returns an HTTP/3 client pinning the node, presenting id's certificate (nil:
// none).
func (n *h3Node) h3Client(t *testing.T, id *coretest.Identity) *http.Client {
	t.Helper()
	opts := tlsconf.ClientOptions{Pin: n.srv.Identity.Fingerprint, NextProtos: []string{ALPNHTTP3}}
	if id != nil {
		cert := id.Cert
		opts.Certificate = &cert
	}
	cfg, err := tlsconf.ClientConfig(opts)
	if err != nil {
		t.Fatal(err)
	}
	tr := &http3.Transport{TLSClientConfig: cfg}
	t.Cleanup(func() { _ = tr.Close() })
	return &http.Client{Transport: tr, Timeout: 60 * time.Second}
}

// tlsClient returns a stock net/http client on the TCP+TLS listener offering protos.
func (n *h3Node) tlsClient(t *testing.T, protos ...string) *http.Client {
	t.Helper()
	cfg, err := tlsconf.ClientConfig(tlsconf.ClientOptions{Pin: n.srv.Identity.Fingerprint, NextProtos: protos})
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 60 * time.Second}
}

func (n *h3Node) url(path string) string { return "https://" + n.srv.Addr + path }

// h3Do sends a request and returns the response with its body read.
func h3Do(t *testing.T, c *http.Client, method, url, token, body string) (*http.Response, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	return resp, string(b)
}

func TestHTTP3Gateway(t *testing.T) {
	n := newH3Node(t)
	c := n.h3Client(t, nil)

	resp, body := h3Do(t, c, http.MethodGet, n.url("/healthz"), "", "")
	if resp.StatusCode != http.StatusOK || body != "ok" || resp.ProtoMajor != 3 {
		t.Fatalf("healthz: %s %d %q", resp.Proto, resp.StatusCode, body)
	}
	if v := resp.Header.Get("Alt-Svc"); v != "" {
		t.Errorf("an h3 response advertises Alt-Svc %q", v)
	}

	resp, body = h3Do(t, c, http.MethodPost, n.url("/call"), n.token, `{"operation":"h3/whoami"}`)
	if resp.StatusCode != http.StatusOK || !strings.HasSuffix(body, `"result":"ok","output":{"id":"`+n.keyID+`"}}`+"\n") {
		t.Fatalf("call whoami with the API key: %d %q", resp.StatusCode, body)
	}
	resp, body = h3Do(t, c, http.MethodPost, n.url("/call"), "", `{"operation":"h3/whoami"}`)
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, `"code":"FORBIDDEN"`) {
		t.Fatalf("call whoami without a token: %d %q, want a 401 FORBIDDEN", resp.StatusCode, body)
	}

	resp, body = h3Do(t, c, http.MethodGet, n.url("/openapi.json"), "", "")
	var doc struct {
		OpenAPI string                     `json:"openapi"`
		Paths   map[string]json.RawMessage `json:"paths"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal([]byte(body), &doc) != nil || doc.OpenAPI == "" || doc.Paths["/call"] == nil {
		t.Fatalf("openapi.json: %d %q", resp.StatusCode, body)
	}

	resp, body = h3Do(t, c, http.MethodGet, n.url("/wp-login.php"), "", "")
	if resp.StatusCode != http.StatusNotFound || !strings.Contains(strings.ToLower(resp.Header.Get("Server")), "nginx") || strings.Contains(body, "alknet") {
		t.Fatalf("decoy: %d %v %q", resp.StatusCode, resp.Header, body)
	}

	// WebSocket needs HTTP/1.1: over h3 the route is the decoy.
	resp, _ = h3Do(t, c, http.MethodGet, n.url(WebSocketPath), "", "")
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("GET %s over h3: %d, want the decoy's 404", WebSocketPath, resp.StatusCode)
	}
}

// TestHTTP3ClientCertificateIdentity: the client certificate of the QUIC connection
// identifies the caller, as on alknet/http: a known peer's body may exceed the
// anonymous cap, an unknown client's may not.
func TestHTTP3ClientCertificateIdentity(t *testing.T) {
	n := newH3Node(t)
	big := fmt.Sprintf(`{"operation":"h3/echo","input":%q}`, strings.Repeat("x", 2*h3AnonLimit))
	for _, tc := range []struct {
		name   string
		id     *coretest.Identity
		status int
	}{
		{"known peer", n.client, http.StatusOK},
		{"unknown client", coretest.NewIdentity(t), http.StatusRequestEntityTooLarge},
		{"no certificate", nil, http.StatusRequestEntityTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := h3Do(t, n.h3Client(t, tc.id), http.MethodPost, n.url("/call"), "", big)
			if resp.StatusCode != tc.status {
				t.Fatalf("a %d-byte body: %d %q, want %d", len(big), resp.StatusCode, body, tc.status)
			}
		})
	}
}

func TestHTTP3AltSvc(t *testing.T) {
	n := newH3Node(t)
	tcpH2 := n.tlsClient(t, "h2", "http/1.1")
	tcpH1 := n.tlsClient(t, "http/1.1")
	quicH2 := &http.Client{Transport: NewClientTransport(n.srv.Addr, ALPN, n.srv.DialOptions(nil, endpoint.NetworkQUIC), true)}
	t.Cleanup(func() { _ = quicH2.Transport.(*ClientTransport).Close() })

	// Not advertised until the node says HTTP/3 is up.
	resp, _ := h3Do(t, tcpH2, http.MethodGet, n.url("/healthz"), "", "")
	if v := resp.Header.Get("Alt-Svc"); v != "" || resp.ProtoMajor != 2 {
		t.Fatalf("before AdvertiseHTTP3: %s Alt-Svc %q, want h2 and none", resp.Proto, v)
	}

	_, port, err := net.SplitHostPort(n.srv.Endpoint.QUICAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	var p int
	if _, err := fmt.Sscan(port, &p); err != nil {
		t.Fatal(err)
	}
	n.h.AdvertiseHTTP3(p)
	want := `h3=":` + port + `"; ma=86400`
	for name, c := range map[string]*http.Client{"tcp h2": tcpH2, "tcp http/1.1": tcpH1} {
		for _, path := range []string{"/healthz", "/nope"} {
			resp, _ := h3Do(t, c, http.MethodGet, n.url(path), "", "")
			if v := resp.Header.Get("Alt-Svc"); v != want {
				t.Errorf("%s %s: Alt-Svc %q, want %q", name, path, v, want)
			}
		}
	}
	// Clients already on QUIC are not told.
	resp, _ = h3Do(t, quicH2, http.MethodGet, "http://node/healthz", "", "")
	if v := resp.Header.Get("Alt-Svc"); v != "" {
		t.Errorf("alknet/http: Alt-Svc %q, want none", v)
	}
	resp, _ = h3Do(t, n.h3Client(t, nil), http.MethodGet, n.url("/healthz"), "", "")
	if v := resp.Header.Get("Alt-Svc"); v != "" {
		t.Errorf("h3: Alt-Svc %q, want none", v)
	}

	n.h.AdvertiseHTTP3(0)
	resp, _ = h3Do(t, tcpH2, http.MethodGet, n.url("/healthz"), "", "")
	if v := resp.Header.Get("Alt-Svc"); v != "" {
		t.Errorf("after AdvertiseHTTP3(0): Alt-Svc %q", v)
	}
}

// TestHTTP3OnlyOverQUIC: a TCP+TLS client that negotiates h3 is closed with
// ErrHTTP3NeedsQUIC.
func TestHTTP3OnlyOverQUIC(t *testing.T) {
	n := newH3Node(t)
	cfg, err := tlsconf.ClientConfig(tlsconf.ClientOptions{Pin: n.srv.Identity.Fingerprint, NextProtos: []string{ALPNHTTP3}})
	if err != nil {
		t.Fatal(err)
	}
	d := tls.Dialer{Config: cfg}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	c, err := d.DialContext(ctx, "tcp", n.srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(60 * time.Second)) // fail-safe only
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("read a byte from the h3 handler over TCP+TLS")
	}
	err = n.h.HTTP3().Handle(ctx, core.FromBidi(nopStream{}, ALPNHTTP3, nil), core.AuthContext{})
	if !errors.Is(err, ErrHTTP3NeedsQUIC) {
		t.Fatalf("Handle over a single stream: %v, want ErrHTTP3NeedsQUIC", err)
	}
}

// nopStream is a stream that carries nothing.
type nopStream struct{}

func (nopStream) Read([]byte) (int, error)    { return 0, io.EOF }
func (nopStream) Write(p []byte) (int, error) { return len(p), nil }
func (nopStream) CloseWrite() error           { return nil }
func (nopStream) Close() error                { return nil }

// TestHTTP3Shutdown: on shutdown an open subscription over h3 ends, the handler returns
// by itself (the drain timeout is far away) and an idle h3 connection is closed.
func TestHTTP3Shutdown(t *testing.T) {
	n := newH3Node(t, coretest.WithEndpointConfig(func(c *endpoint.Config) { c.DrainTimeout = time.Hour }))
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	idle := n.h3Client(t, nil)
	if resp, _ := h3Do(t, idle, http.MethodGet, n.url("/healthz"), "", ""); resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz: %d", resp.StatusCode)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.url("/subscribe"), strings.NewReader(`{"operation":"h3/block"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := n.h3Client(t, nil).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	first := make([]byte, len("data: \"started\"\n\n"))
	if _, err := io.ReadFull(resp.Body, first); err != nil || string(first) != "data: \"started\"\n\n" {
		t.Fatalf("subscribe: %q, %v", first, err)
	}
	if err := n.srv.Endpoint.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v (the h3 handler did not return)", err)
	}
	// The stream ended (with the subscription's event: error, or cut by the close).
	rest, _ := io.ReadAll(resp.Body)
	if len(rest) > 0 && !strings.HasPrefix(string(rest), "event: error\n") {
		t.Fatalf("after shutdown the subscription sent %q", rest)
	}
}

// TestHTTP3AuthAttempts: failed Bearer tokens count per QUIC connection; the one
// presented after the limit is refused and the connection closed, and a new
// connection starts afresh.
func TestHTTP3AuthAttempts(t *testing.T) {
	n := newH3NodeLimits(t, core.Limits{MaxAuthAttempts: 2})
	c := n.h3Client(t, nil)
	for i := range 2 {
		resp, body := h3Do(t, c, http.MethodPost, n.url("/call"), "alk_WRNG-h3-secret", `{"operation":"h3/whoami"}`)
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("bad token %d: %d %q, want 401", i+1, resp.StatusCode, body)
		}
	}
	// The third: a 429, or the connection's close (CloseAuthRequired) if it wins.
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, n.url("/call"), strings.NewReader(`{"operation":"h3/whoami"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer alk_WRNG-h3-secret")
	if resp, err := c.Do(req); err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("third bad token: %d %q, want 429", resp.StatusCode, b)
		}
	}
	// The client dials a new connection, whose attempts start at zero.
	resp, body := h3Do(t, c, http.MethodPost, n.url("/call"), n.token, `{"operation":"h3/whoami"}`)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("good token on a new connection: %d %q", resp.StatusCode, body)
	}
	// Two failures and the refusal, each naming h3 and the key's public prefix only.
	if lines := n.logs.Lines("auth failure", "alpn=h3", "peer=alk_WRNG"); len(lines) != 3 || strings.Contains(n.logs.String(), "secret") {
		t.Errorf("auth failure lines for h3: %q, want 3 without the token", lines)
	}
}
