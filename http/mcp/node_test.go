package mcp

import (
	"net/http"
	"testing"

	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/core/coretest"
	"github.com/alknet/alknet/core/endpoint"
	"github.com/alknet/alknet/core/tlsconf"
	alkhttp "github.com/alknet/alknet/http"
)

// nodeServer is a loopback endpoint (QUIC and TCP+TLS on one port) serving the
// alkhttp handler, with the to_mcp projection mounted, on alknet/http, h2 and
// http/1.1, as a node does.
func nodeServer(t *testing.T) *coretest.Server {
	t.Helper()
	h, err := alkhttp.New(alkhttp.Config{Registry: testRegistry(t), Identities: testIdentities{}, MCP: Mount(nil)})
	if err != nil {
		t.Fatal(err)
	}
	creg := core.NewRegistry()
	for _, alpn := range []string{alkhttp.ALPN, "h2", "http/1.1"} {
		if err := creg.RegisterAs(alpn, h); err != nil {
			t.Fatal(err)
		}
	}
	return coretest.NewServer(t, creg)
}

// hostRewrite sends every request with another Host header.
type hostRewrite struct {
	base http.RoundTripper
	host string
}

func (h hostRewrite) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Host = h.host
	return h.base.RoundTrip(r)
}

// exercise runs one session's worth of calls against a node: tools/list, search and
// call with two identities on the same session.
func exercise(t *testing.T, endpointURL string, base http.RoundTripper) {
	t.Helper()
	tt := newTokenTransport(t, base)
	tt.set(tokAdmin)
	cs := connectClient(t, endpointURL, &http.Client{Transport: tt})
	if cs.InitializeResult().ServerInfo.Name != ServerName {
		t.Fatalf("server %+v", cs.InitializeResult().ServerInfo)
	}
	tools, err := cs.ListTools(t.Context(), nil)
	if err != nil || len(tools.Tools) != 4 {
		t.Fatalf("tools/list: %v %d", err, len(tools.Tools))
	}
	wantOK(t, callTool(t, cs, ToolCall, `{"operation":"demo/admin"}`), `{"admin":true}`)
	wantOK(t, callTool(t, cs, ToolCall, `{"operation":"demo/whoami"}`), `{"id":"admin"}`)
	tt.set(tokUser)
	wantOK(t, callTool(t, cs, ToolCall, `{"operation":"demo/whoami"}`), `{"id":"user"}`)
	wantToolError(t, callTool(t, cs, ToolCall, `{"operation":"demo/admin"}`), "FORBIDDEN", "missing required scope: admin")
}

// TestNodeTLS: a stock TLS client (as an MCP client outside Alknet would be, pinned
// to the node's certificate) drives the projection through the node's TCP+TLS
// listener, over h2 and HTTP/1.1.
func TestNodeTLS(t *testing.T) {
	srv := nodeServer(t)
	for name, protos := range map[string][]string{"h2": {"h2", "http/1.1"}, "http1": {"http/1.1"}} {
		t.Run(name, func(t *testing.T) {
			cfg, err := tlsconf.ClientConfig(tlsconf.ClientOptions{Pin: srv.Identity.Fingerprint, NextProtos: protos})
			if err != nil {
				t.Fatal(err)
			}
			tr := &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: len(protos) == 2}
			t.Cleanup(tr.CloseIdleConnections)
			exercise(t, "https://"+srv.Addr+alkhttp.MCPPath, tr)
		})
	}
}

// TestNodeQUIC: a native client reaches the projection on alknet/http over QUIC. The
// Host header is not a loopback name although the connection is on 127.0.0.1: the
// SDK's DNS-rebinding check would answer 403, and the projection disables it.
func TestNodeQUIC(t *testing.T) {
	srv := nodeServer(t)
	tr := alkhttp.NewClientTransport(srv.Addr, alkhttp.ALPN, srv.DialOptions(coretest.NewIdentity(t), endpoint.NetworkQUIC), true)
	t.Cleanup(func() { _ = tr.Close() })
	exercise(t, "http://"+srv.Addr+alkhttp.MCPPath, hostRewrite{base: tr, host: "node.example"})
}
