package mcp

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	"go.uber.org/goleak"

	"github.com/alknet/alknet/call"
	"github.com/alknet/alknet/core"
	alkhttp "github.com/alknet/alknet/http"
)

// TestMain fails the package's tests when goroutines outlive them: every MCP
// session, SSE reader and test server must be gone once the tests have cleaned up.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// Tokens the test identity provider resolves.
const (
	tokUser  = "tok-user"
	tokAdmin = "tok-admin"
)

type testIdentities struct{}

func (testIdentities) ResolveFromFingerprint(string) (*core.Identity, bool) { return nil, false }
func (testIdentities) ResolveFromToken(t core.AuthToken) (*core.Identity, bool) {
	switch string(t.Raw) {
	case tokUser:
		return &core.Identity{ID: "user", Scopes: []string{"user"}}, true
	case tokAdmin:
		return &core.Identity{ID: "admin", Scopes: []string{"user", "admin"}}, true
	}
	return nil, false
}

// testRegistry holds the operations the to_mcp tests project:
//
//	demo/echo    Query, returns its input
//	demo/whoami  Query, {"id": <caller or "anonymous">}
//	demo/admin   Query, scope admin
//	demo/str     Query, returns the string "hello"
//	demo/fail    Mutation, fails with its declared DEMO_ERR
//	demo/typed   Query, input schema {n: integer} required
//	demo/secret  Query, Internal
//	demo/ticks   Subscription
func testRegistry(t testing.TB) *call.Registry {
	t.Helper()
	reg := call.NewRegistry()
	echo := call.NewSpec("demo/echo", call.Query)
	who := call.NewSpec("demo/whoami", call.Query)
	admin := call.NewSpec("demo/admin", call.Query)
	admin.Access = call.AccessControl{RequiredScopes: []string{"admin"}}
	str := call.NewSpec("demo/str", call.Query)
	fail := call.NewSpec("demo/fail", call.Mutation)
	fail.ErrorSchemas = []call.ErrorDefinition{{Code: "DEMO_ERR", Description: "always"}}
	typed := call.NewSpec("demo/typed", call.Query)
	typed.InputSchema = json.RawMessage(`{"type":"object","required":["n"],"properties":{"n":{"type":"integer"}}}`)
	secret := call.NewSpec("demo/secret", call.Query)
	secret.Visibility = call.Internal
	ticks := call.NewSpec("demo/ticks", call.Subscription)
	identity := func(_ context.Context, _ *call.OpContext, in json.RawMessage) (json.RawMessage, error) {
		return in, nil
	}
	for _, r := range []call.Registration{
		{Spec: echo, Once: identity},
		{Spec: who, Once: func(_ context.Context, oc *call.OpContext, _ json.RawMessage) (json.RawMessage, error) {
			id := "anonymous"
			if oc.Identity != nil {
				id = oc.Identity.ID
			}
			return json.Marshal(map[string]string{"id": id})
		}},
		{Spec: admin, Once: func(context.Context, *call.OpContext, json.RawMessage) (json.RawMessage, error) {
			return json.RawMessage(`{"admin":true}`), nil
		}},
		{Spec: str, Once: func(context.Context, *call.OpContext, json.RawMessage) (json.RawMessage, error) {
			return json.RawMessage(`"hello"`), nil
		}},
		{Spec: fail, Once: func(context.Context, *call.OpContext, json.RawMessage) (json.RawMessage, error) {
			e := call.NewCallError("DEMO_ERR", "it failed")
			e.Details = json.RawMessage(`{"why":"always"}`)
			return nil, e
		}},
		{Spec: typed, Once: identity},
		{Spec: secret, Once: identity},
		{Spec: ticks, Stream: func(context.Context, *call.OpContext, json.RawMessage, func(json.RawMessage) error) error { return nil }},
	} {
		if err := reg.Register(r); err != nil {
			t.Fatal(err)
		}
	}
	return reg
}

// serveProjection serves the alkhttp handler of reg with the to_mcp projection
// mounted at /mcp and returns its base URL.
func serveProjection(t testing.TB, reg *call.Registry, opts *ServerOptions) string {
	t.Helper()
	h, err := alkhttp.New(alkhttp.Config{Registry: reg, Identities: testIdentities{}, MCP: Mount(opts)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

// tokenTransport sets "Authorization: Bearer <token>" from a switchable token ("" for
// none) on every request.
type tokenTransport struct {
	base  http.RoundTripper
	token atomic.Pointer[string]
}

func (tt *tokenTransport) set(tok string) { tt.token.Store(&tok) }

func (tt *tokenTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	if p := tt.token.Load(); p != nil && *p != "" {
		r.Header.Set("Authorization", "Bearer "+*p)
	}
	return tt.base.RoundTrip(r)
}

// newTokenTransport returns a token transport over a fresh direct transport, closed
// by t.Cleanup.
func newTokenTransport(t testing.TB, base http.RoundTripper) *tokenTransport {
	t.Helper()
	if base == nil {
		tr := &http.Transport{Proxy: nil}
		t.Cleanup(tr.CloseIdleConnections)
		base = tr
	}
	return &tokenTransport{base: base}
}

// connectClient opens an SDK client session to endpoint over hc, closed by
// t.Cleanup.
func connectClient(t testing.TB, endpoint string, hc *http.Client) *sdk.ClientSession {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := sdk.NewClient(&sdk.Implementation{Name: "test-client", Version: "0"}, nil)
	cs, err := c.Connect(ctx, &sdk.StreamableClientTransport{Endpoint: endpoint, HTTPClient: hc, MaxRetries: -1}, nil)
	if err != nil {
		t.Fatalf("connect %s: %v", endpoint, err)
	}
	t.Cleanup(func() { _ = cs.Close() })
	return cs
}

// callTool calls tool with args (a JSON object text) and returns the result.
func callTool(t testing.TB, cs *sdk.ClientSession, tool, args string) *sdk.CallToolResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := cs.CallTool(ctx, &sdk.CallToolParams{Name: tool, Arguments: json.RawMessage(args)})
	if err != nil {
		t.Fatalf("tools/call %s %s: %v", tool, args, err)
	}
	return res
}

// structuredJSON returns the result's structured content as compact JSON.
func structuredJSON(t testing.TB, res *sdk.CallToolResult) string {
	t.Helper()
	b, err := json.Marshal(res.StructuredContent)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// textOf returns the text of the result's only content block.
func textOf(t testing.TB, res *sdk.CallToolResult) string {
	t.Helper()
	if len(res.Content) != 1 {
		t.Fatalf("want one content block, got %d", len(res.Content))
	}
	tc, ok := res.Content[0].(*sdk.TextContent)
	if !ok {
		t.Fatalf("content block is %T, want text", res.Content[0])
	}
	return tc.Text
}

// wantOK checks a successful result: structuredContent is want (compact JSON) and the
// text block holds the same JSON.
func wantOK(t testing.TB, res *sdk.CallToolResult, want string) {
	t.Helper()
	if res.IsError {
		t.Fatalf("isError, structured %s", structuredJSON(t, res))
	}
	if got := structuredJSON(t, res); got != want {
		t.Fatalf("structuredContent %s, want %s", got, want)
	}
	if got := compact(t, textOf(t, res)); got != want {
		t.Fatalf("text %s, want %s", got, want)
	}
}

// wantToolError checks a tool error: isError, a CallError of code in the structured
// content (and the same JSON as text), whose message contains msg; it returns it.
func wantToolError(t testing.TB, res *sdk.CallToolResult, code, msg string) call.CallError {
	t.Helper()
	if !res.IsError {
		t.Fatalf("not isError: %s", structuredJSON(t, res))
	}
	var e call.CallError
	if err := json.Unmarshal([]byte(structuredJSON(t, res)), &e); err != nil {
		t.Fatal(err)
	}
	if e.Code != code || !strings.Contains(e.Message, msg) {
		t.Fatalf("error %s %q, want %s containing %q", e.Code, e.Message, code, msg)
	}
	if got, want := compact(t, textOf(t, res)), structuredJSON(t, res); got != want {
		t.Fatalf("text %s, structured %s", got, want)
	}
	return e
}

// compact re-encodes a JSON text compactly through a generic value (sorted keys),
// as json.Marshal of a decoded value does.
func compact(t testing.TB, s string) string {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("not JSON: %q", s)
	}
	b, _ := json.Marshal(v)
	return string(b)
}
