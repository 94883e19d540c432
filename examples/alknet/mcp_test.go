package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// mcpUpstream is an MCP server built with the official SDK, in an httptest server, that
// records the Authorization header of every request.
type mcpUpstream struct {
	srv  *httptest.Server
	mu   sync.Mutex
	auth []string
}

func newMCPUpstream(t *testing.T) *mcpUpstream {
	t.Helper()
	u := &mcpUpstream{}
	s := sdk.NewServer(&sdk.Implementation{Name: "upstream", Version: "1"}, nil)
	s.AddTool(&sdk.Tool{
		Name:        "add",
		Description: "adds a and b",
		InputSchema: json.RawMessage(`{"type":"object","properties":{"a":{"type":"number"},"b":{"type":"number"}},"required":["a","b"]}`),
	}, func(_ context.Context, req *sdk.CallToolRequest) (*sdk.CallToolResult, error) {
		var in struct{ A, B float64 }
		if err := json.Unmarshal(req.Params.Arguments, &in); err != nil {
			return nil, err
		}
		return &sdk.CallToolResult{
			Content:           []sdk.Content{&sdk.TextContent{Text: "sum"}},
			StructuredContent: map[string]any{"sum": in.A + in.B},
		}, nil
	})
	s.AddTool(&sdk.Tool{Name: "fail", InputSchema: json.RawMessage(`{"type":"object"}`)},
		func(context.Context, *sdk.CallToolRequest) (*sdk.CallToolResult, error) {
			return &sdk.CallToolResult{IsError: true, Content: []sdk.Content{&sdk.TextContent{Text: "no luck"}}}, nil
		})
	h := sdk.NewStreamableHTTPHandler(func(*http.Request) *sdk.Server { return s }, nil)
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.auth = append(u.auth, r.Header.Get("Authorization"))
		u.mu.Unlock()
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(u.srv.Close)
	return u
}

// authSeen returns the Authorization headers the upstream received so far.
func (u *mcpUpstream) authSeen() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Clone(u.auth)
}

// TestServeMCPImport: an [[mcp]] table imports the server's tools at start; exposed,
// they are callable over the gateway, the credential reaches the upstream as a Bearer
// token on every request, isError becomes MCP_TOOL_ERROR, and the credential never
// reaches the log.
func TestServeMCPImport(t *testing.T) {
	const secret = "mcp-s3cret"
	up := newMCPUpstream(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "tools.key"), []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	config := filepath.Join(dir, "alknet.toml")
	writeFile(t, config, `[[mcp]]
namespace = "tools"
endpoint = "`+up.srv.URL+`"
credential_file = "tools.key"
expose = true

[[mcp]]
namespace = "hidden"
endpoint = "`+up.srv.URL+`"
`)
	n := startServe(t, "--config", config, "--log-level", "debug")
	c := gatewayClient(t, n)

	status, body := postCall(t, c, n, "tools/add", `{"a":2,"b":3}`)
	if status != http.StatusOK || !strings.Contains(body, `"output":{"sum":5}`) {
		t.Fatalf("tools/add: %d %s", status, body)
	}
	status, body = postCall(t, c, n, "tools/fail", `{}`)
	if status != http.StatusInternalServerError || !strings.Contains(body, `"code":"MCP_TOOL_ERROR"`) || !strings.Contains(body, "no luck") {
		t.Fatalf("tools/fail: %d %s", status, body)
	}
	// Not exposed: Internal, answered exactly as an unknown operation.
	s1, b1 := postCall(t, c, n, "hidden/add", `{"a":1,"b":1}`)
	s2, b2 := postCall(t, c, n, "hidden/nothing", `{"a":1,"b":1}`)
	if s1 != http.StatusNotFound || s2 != http.StatusNotFound || strings.Replace(b1, "hidden/add", "X", 1) != strings.Replace(b2, "hidden/nothing", "X", 1) {
		t.Fatalf("internal import: %d %s / unknown: %d %s", s1, b1, s2, b2)
	}
	var withSecret, without int
	for _, a := range up.authSeen() {
		switch a {
		case "Bearer " + secret:
			withSecret++
		case "":
			without++
		default:
			t.Errorf("upstream saw Authorization %q", a)
		}
	}
	if withSecret == 0 || without == 0 {
		t.Errorf("upstream saw %d requests with the credential and %d without, want both (tools and hidden)", withSecret, without)
	}
	if strings.Contains(n.stderr.String(), secret) {
		t.Error("serve logged the credential")
	}
}

// TestServeMCPOverTLS: the official SDK client drives serve's /mcp over the TCP+TLS
// listener: exactly four tools, and the identity of each tool call comes from that
// request's Bearer token (one session, two identities).
func TestServeMCPOverTLS(t *testing.T) {
	token, key, entry := apiKey(t, "demo")
	config := filepath.Join(t.TempDir(), "alknet.toml")
	writeFile(t, config, key)
	n := startServe(t, "--config", config)

	var mu sync.Mutex
	bearer := ""
	base := gatewayClient(t, n)
	httpClient := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		mu.Lock()
		b := bearer
		mu.Unlock()
		r = r.Clone(r.Context())
		if b != "" {
			r.Header.Set("Authorization", "Bearer "+b)
		}
		return base.Transport.RoundTrip(r)
	})}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cl := sdk.NewClient(&sdk.Implementation{Name: "test", Version: "1"}, nil)
	session, err := cl.Connect(ctx, &sdk.StreamableClientTransport{Endpoint: "https://" + n.tcp + "/mcp", HTTPClient: httpClient}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer session.Close()

	tools, err := session.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tl := range tools.Tools {
		names = append(names, tl.Name)
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"batch", "call", "schema", "search"}) {
		t.Fatalf("tools/list: %v", names)
	}

	search := func() string {
		t.Helper()
		res, err := session.CallTool(ctx, &sdk.CallToolParams{Name: "search", Arguments: map[string]any{}})
		if err != nil || res.IsError {
			t.Fatalf("search: %v %+v", err, res)
		}
		b, _ := json.Marshal(res.StructuredContent)
		return string(b)
	}
	anonymous := search()
	mu.Lock()
	bearer = token
	mu.Unlock()
	authed := search()
	if strings.Contains(anonymous, "demo/whoami") || !strings.Contains(authed, "demo/whoami") {
		t.Fatalf("search anonymous %s, with the API key %s: want demo/whoami only with the key", anonymous, authed)
	}
	res, err := session.CallTool(ctx, &sdk.CallToolParams{Name: "call", Arguments: map[string]any{"operation": "demo/whoami"}})
	if err != nil || res.IsError {
		t.Fatalf("call demo/whoami: %v %+v", err, res)
	}
	if b, _ := json.Marshal(res.StructuredContent); string(b) != `{"id":"`+entry.Prefix+`"}` {
		t.Fatalf("call demo/whoami: %s", b)
	}
	mu.Lock()
	bearer = ""
	mu.Unlock()
	res, err = session.CallTool(ctx, &sdk.CallToolParams{Name: "call", Arguments: map[string]any{"operation": "demo/whoami"}})
	if err != nil || !res.IsError {
		t.Fatalf("anonymous call demo/whoami: %v %+v, want an isError result", err, res)
	}
	if b, _ := json.Marshal(res.StructuredContent); !strings.Contains(string(b), `"code":"FORBIDDEN"`) {
		t.Fatalf("anonymous call demo/whoami: %s", b)
	}
}

// roundTripFunc is an http.RoundTripper from a function.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestServeMCPConfigErrors(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "open.key"), []byte("k\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	up := newMCPUpstream(t)
	serveConfigErrors(t, dir, []serveConfigCase{
		{"no namespace", "[[mcp]]\nendpoint = \"http://127.0.0.1:1/mcp\"\n", "mcp[0].namespace: required"},
		{"bad namespace", "[[mcp]]\nnamespace = \"a b\"\nendpoint = \"http://127.0.0.1:1/mcp\"\n", "mcp[0].namespace"},
		{"no endpoint", "[[mcp]]\nnamespace = \"m\"\n", "mcp[0].endpoint: required"},
		{"bad endpoint", "[[mcp]]\nnamespace = \"m\"\nendpoint = \"ftp://x/mcp\"\n", "mcp[0].endpoint"},
		{"credentials in the URL", "[[mcp]]\nnamespace = \"m\"\nendpoint = \"https://u:p@x/mcp\"\n", "credential_file"},
		{"unknown key", "[[mcp]]\nnamespace = \"m\"\nurl = \"http://x\"\n", "unknown key \"mcp.url\""},
		{"twice", "[[mcp]]\nnamespace = \"m\"\nendpoint = \"" + up.srv.URL + "\"\n[[mcp]]\nnamespace = \"m\"\nendpoint = \"" + up.srv.URL + "\"\n", "imported twice"},
		{"credential readable by others", "[[mcp]]\nnamespace = \"m\"\nendpoint = \"" + up.srv.URL + "\"\ncredential_file = \"open.key\"\n", "chmod 600"},
		{"unreachable", "[[mcp]]\nnamespace = \"m\"\nendpoint = \"http://127.0.0.1:1/mcp\"\n", "mcp[0] (m)"},
	})
}
