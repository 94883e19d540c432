package mcp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/alknet/alknet/call"
	"github.com/alknet/alknet/core"
)

// Credentials of the import tests.
const (
	discTok = "disc-tok" // the importer's session credential
	callTok = "call-tok" // a call's credential, from its capabilities
)

// newImporter builds an importer for u (namespace "up", session credential
// discTok unless cfg sets fields), closed by t.Cleanup.
func newImporter(t testing.TB, u *upstream, mod func(*ImportConfig)) *Importer {
	t.Helper()
	cfg := ImportConfig{Namespace: "up", Endpoint: u.url, Credential: []byte(discTok)}
	if mod != nil {
		mod(&cfg)
	}
	imp, err := NewImporter(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = imp.Close() })
	return imp
}

// mustImport imports and fails the test on error.
func mustImport(t testing.TB, imp *Importer) []call.Registration {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	regs, err := imp.Import(ctx)
	if err != nil {
		t.Fatalf("Import: %v", err)
	}
	return regs
}

// registryOf registers regs with caps (nil: none) in a fresh registry.
func registryOf(t testing.TB, regs []call.Registration, caps map[string][]byte) *call.Registry {
	t.Helper()
	r := call.NewRegistry()
	for _, reg := range regs {
		if caps != nil {
			reg.Caps = core.NewCapabilities(caps)
		}
		if err := r.Register(reg); err != nil {
			t.Fatalf("Register %s: %v", reg.Spec.Name, err)
		}
	}
	return r
}

// invoke runs name as a root call (its capabilities those of its registration).
func invoke(t testing.TB, r *call.Registry, name, in string) (json.RawMessage, *call.CallError) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var reg *call.Registration
	if l, ok := r.Lookup(name); ok {
		reg = l
	}
	return r.Invoke(ctx, name, json.RawMessage(in), call.NewRootContext("", nil, nil, reg, nil, nil))
}

// mustInvoke runs a call that must succeed and returns its output.
func mustInvoke(t testing.TB, r *call.Registry, name, in string) string {
	t.Helper()
	out, cerr := invoke(t, r, name, in)
	if cerr != nil {
		t.Fatalf("%s: %v", name, cerr)
	}
	return string(out)
}

// logBuffer is a slog handler target safe for concurrent writes.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestImportRegistrations: naming, type, visibility, schemas, declared error and
// provenance of every imported tool; tools the registry cannot take are skipped with
// a warning naming them only.
func TestImportRegistrations(t *testing.T) {
	var tools []upstreamTool
	u := newUpstream(t, nil, nil, func(u *upstream) { tools = u.standardTools() })
	noop := func(context.Context, *sdk.CallToolRequest) (*sdk.CallToolResult, error) {
		return &sdk.CallToolResult{}, nil
	}
	u.srv.AddTool(&sdk.Tool{Name: "bad name", InputSchema: objectSchema}, noop)
	u.srv.AddTool(&sdk.Tool{Name: "badschema", InputSchema: json.RawMessage(`{"type":"object","properties":{"x":{"type":"nonsense-type"}}}`)}, noop)
	u.srv.AddTool(&sdk.Tool{Name: "badout", InputSchema: objectSchema, OutputSchema: json.RawMessage(`{"type":"nonsense-out"}`)}, noop)
	var logs logBuffer
	imp := newImporter(t, u, func(c *ImportConfig) { c.Logger = slog.New(slog.NewTextHandler(&logs, nil)) })
	regs := mustImport(t, imp)

	var names []string
	for _, tl := range tools {
		names = append(names, "up/"+tl.tool.Name)
	}
	slices.Sort(names)
	var got []string
	for _, r := range regs {
		got = append(got, r.Spec.Name)
		s := r.Spec
		if s.Type != call.Mutation || s.Visibility != call.Internal || s.Namespace != "up" || r.Provenance != call.ProvenanceFromMCP ||
			r.Authority != nil || r.Scoped != nil || r.Caps.Len() != 0 || r.Once == nil || r.Stream != nil {
			t.Errorf("%s: %+v", s.Name, r)
		}
		if len(s.ErrorSchemas) != 1 || s.ErrorSchemas[0].Code != ToolErrorCode || s.ErrorSchemas[0].HTTPStatus != nil ||
			string(s.ErrorSchemas[0].Schema) != contentBlocksSchema {
			t.Errorf("%s errors %+v", s.Name, s.ErrorSchemas)
		}
	}
	if !slices.Equal(got, names) {
		t.Fatalf("imported %v, want %v", got, names)
	}
	sum := regs[slices.Index(got, "up/sum")].Spec
	if string(sum.InputSchema) != `{"properties":{"a":{"type":"number"},"b":{"type":"number"}},"required":["a","b"],"type":"object"}` ||
		string(sum.OutputSchema) != `{"properties":{"sum":{"type":"number"}},"type":"object"}` {
		t.Errorf("sum schemas %s %s", sum.InputSchema, sum.OutputSchema)
	}
	plain := regs[slices.Index(got, "up/plain")].Spec
	if string(plain.InputSchema) != `{"type":"object"}` || string(plain.OutputSchema) != contentBlocksSchema {
		t.Errorf("plain schemas %s %s", plain.InputSchema, plain.OutputSchema)
	}

	l := logs.String()
	for _, skipped := range []string{`tool="bad name"`, "tool=badschema", "tool=badout"} {
		if !strings.Contains(l, skipped) || !strings.Contains(l, "level=WARN") {
			t.Errorf("no warning for %s in %q", skipped, l)
		}
	}
	if strings.Contains(l, "nonsense") || strings.Contains(l, discTok) {
		t.Errorf("log says more than the names: %q", l)
	}

	// They register in a real registry, Internal: the wire cannot call them.
	r := registryOf(t, regs, nil)
	if _, cerr := invoke(t, r, "up/sum", `{"a":1,"b":2}`); cerr == nil || cerr.Code != call.CodeNotFound {
		t.Errorf("Internal from the wire: %v", cerr)
	}
}

// TestImportExpose: Expose makes the operations External.
func TestImportExpose(t *testing.T) {
	u := newUpstream(t, nil, nil, nil)
	regs := mustImport(t, newImporter(t, u, func(c *ImportConfig) { c.Expose = true }))
	for _, r := range regs {
		if r.Spec.Visibility != call.External {
			t.Errorf("%s is %v", r.Spec.Name, r.Spec.Visibility)
		}
	}
}

// TestForwardOutputs: structuredContent, plain content blocks (text never parsed),
// isError as MCP_TOOL_ERROR with the blocks as details.
func TestForwardOutputs(t *testing.T) {
	u := newUpstream(t, nil, nil, nil)
	r := registryOf(t, mustImport(t, newImporter(t, u, func(c *ImportConfig) { c.Expose = true })), nil)

	if got := mustInvoke(t, r, "up/sum", `{"a":1,"b":2.5}`); got != `{"sum":3.5}` {
		t.Errorf("sum: %s", got)
	}
	if got := mustInvoke(t, r, "up/plain", `{}`); got != `[{"type":"text","text":"hello"},{"type":"image","mimeType":"image/png","data":"AQID"}]` {
		t.Errorf("plain: %s", got)
	}
	if got := mustInvoke(t, r, "up/textjson", `{}`); got != `[{"type":"text","text":"{\"a\":1}"}]` {
		t.Errorf("textjson: %s", got)
	}
	_, cerr := invoke(t, r, "up/fails", `{}`)
	if cerr == nil || cerr.Code != ToolErrorCode || cerr.Message != "MCP tool error: boom" || cerr.Retryable ||
		string(cerr.Details) != `[{"type":"text","text":"boom"}]` {
		t.Errorf("fails: %+v", cerr)
	}
	// The registry validates the input first: a non-object never reaches the tool.
	if _, cerr := invoke(t, r, "up/sum", `{"a":"x"}`); cerr == nil || cerr.Code != call.CodeInvalidInput {
		t.Errorf("bad input: %v", cerr)
	}
}

// TestForwardCredentials: a call sends the credential of its capabilities (either
// key form) on its own HTTP request, none without one, and the session's own
// requests send the session credential — so the SDK sends each tools/call with the
// caller's context.
func TestForwardCredentials(t *testing.T) {
	u := newUpstream(t, nil, nil, nil)
	cred := []byte(discTok)
	imp := newImporter(t, u, func(c *ImportConfig) { c.Expose = true; c.Credential = cred })
	regs := mustImport(t, imp)
	copy(cred, "XXXXXXXX") // NewImporter copied it

	for _, tc := range []struct {
		caps map[string][]byte
		want string
	}{
		{map[string][]byte{"api_key:up": []byte(callTok)}, "Bearer " + callTok},
		{map[string][]byte{"http_token:up": []byte("other-tok")}, "Bearer other-tok"},
		{map[string][]byte{"api_key:elsewhere": []byte("nope")}, ""},
		{nil, ""},
	} {
		r := registryOf(t, regs, tc.caps)
		if got, want := mustInvoke(t, r, "up/whoami", `{}`), `{"auth":`+jsonString(tc.want)+`}`; got != want {
			t.Errorf("caps %v: %s, want %s", tc.caps != nil, got, want)
		}
	}

	var calls, session int
	for _, s := range u.requests() {
		switch {
		case s.rpc == "tools/call":
			calls++
			if s.auth == "Bearer "+discTok {
				t.Errorf("tools/call sent the session credential")
			}
		default:
			session++
			if s.auth != "Bearer "+discTok {
				t.Errorf("%s %s sent %q, want the session credential", s.method, s.rpc, s.auth)
			}
		}
	}
	if calls != 4 || session < 2 {
		t.Errorf("%d tools/call and %d session requests", calls, session)
	}
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// TestForwardInvalidCredential: a credential that cannot be a header value fails the
// call without a request, and without naming it.
func TestForwardInvalidCredential(t *testing.T) {
	u := newUpstream(t, nil, nil, nil)
	r := registryOf(t, mustImport(t, newImporter(t, u, func(c *ImportConfig) { c.Expose = true })),
		map[string][]byte{"api_key:up": []byte("bad\r\nX-Injected: 1")})
	_, cerr := invoke(t, r, "up/whoami", `{}`)
	if cerr == nil || cerr.Code != call.CodeInternal || strings.Contains(cerr.Message, "Injected") {
		t.Fatalf("got %v", cerr)
	}
	for _, s := range u.requests() {
		if s.rpc == "tools/call" {
			t.Error("the call was sent")
		}
	}
}

// TestComposition: an Internal imported operation composed by a local one, which
// holds the credential, through a real registry.
func TestComposition(t *testing.T) {
	u := newUpstream(t, nil, nil, nil)
	r := registryOf(t, mustImport(t, newImporter(t, u, nil)), nil)
	app := call.NewSpec("app/run", call.Query)
	err := r.Register(call.Registration{
		Spec:      app,
		Authority: &call.CompositionAuthority{Label: "app"},
		Scoped:    call.NewScopedEnv("up/whoami", "up/sum"),
		Caps:      core.NewCapabilities(map[string][]byte{"api_key:up": []byte("comp-tok")}),
		Once: func(ctx context.Context, oc *call.OpContext, _ json.RawMessage) (json.RawMessage, error) {
			who, cerr := oc.Call(ctx, "up/whoami", json.RawMessage(`{}`))
			if cerr != nil {
				return nil, cerr
			}
			sum, cerr := oc.Call(ctx, "up/sum", json.RawMessage(`{"a":2,"b":3}`))
			if cerr != nil {
				return nil, cerr
			}
			return json.Marshal([]json.RawMessage{who, sum})
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	reg, _ := r.Lookup("app/run")
	out, cerr := r.Invoke(ctx, "app/run", json.RawMessage(`{}`), call.NewRootContext("", nil, nil, reg, call.LocalEnv(r), nil))
	if cerr != nil || string(out) != `[{"auth":"Bearer comp-tok"},{"sum":5}]` {
		t.Fatalf("%s %v", out, cerr)
	}
}

// TestNonObjectInput: an input that is not an object is sent as {"value": input}.
func TestNonObjectInput(t *testing.T) {
	u := newUpstream(t, nil, nil, nil)
	regs := mustImport(t, newImporter(t, u, nil))
	echo := regs[slices.IndexFunc(regs, func(r call.Registration) bool { return r.Spec.Name == "up/echo" })]
	for in, want := range map[string]string{
		`"abc"`:        `{"value":"abc"}`,
		`[1,2]`:        `{"value":[1,2]}`,
		`7`:            `{"value":7}`,
		`null`:         `{"value":null}`,
		``:             `{}`,
		` {"k":true} `: `{"k":true}`,
	} {
		out, err := echo.Once(t.Context(), nil, json.RawMessage(in))
		if err != nil || string(out) != want {
			t.Errorf("input %q: %s %v, want %s", in, out, err, want)
		}
	}
}

// TestCancellation: cancelling a forwarded call cancels the tool on the server.
func TestCancellation(t *testing.T) {
	u := newUpstream(t, nil, nil, nil)
	r := registryOf(t, mustImport(t, newImporter(t, u, func(c *ImportConfig) { c.Expose = true })), nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan *call.CallError, 1)
	go func() {
		reg, _ := r.Lookup("up/slow")
		_, cerr := r.Invoke(ctx, "up/slow", json.RawMessage(`{}`), call.NewRootContext("", nil, nil, reg, nil, nil))
		done <- cerr
	}()
	waitFor(t, u.slowStarted, "the tool to start")
	cancel()
	cerr := <-done
	if cerr == nil || cerr.Code != call.CodeInternal || !strings.Contains(cerr.Message, "aborted") {
		t.Errorf("cancelled call: %v", cerr)
	}
	waitFor(t, u.slowCancelled, "the tool to see the cancellation")
}

// waitFor waits for ch to close; the bound only keeps a broken test from hanging.
func waitFor(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// TestImportUnauthorized: a server refusing the session credential at connect is
// AdapterUnauthorized; the credential never appears in the error.
func TestImportUnauthorized(t *testing.T) {
	u := newUpstream(t, nil, nil, func(u *upstream) { u.sessionToken = "right" })
	for _, cred := range [][]byte{[]byte("wrong"), nil} {
		imp := newImporter(t, u, func(c *ImportConfig) { c.Credential = cred })
		_, err := imp.Import(t.Context())
		var ae *call.AdapterError
		if !errors.As(err, &ae) || ae.Kind != call.AdapterUnauthorized {
			t.Fatalf("credential %q: %v", cred, err)
		}
		if strings.Contains(err.Error(), "wrong") {
			t.Errorf("error names the credential: %v", err)
		}
	}
	mustImport(t, newImporter(t, u, func(c *ImportConfig) { c.Credential = []byte("right") }))
}

// TestImportUnreachable: a connect failure is DiscoveryFailed, without the endpoint
// URL in the error.
func TestImportUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	imp, err := NewImporter(ImportConfig{Namespace: "up", Endpoint: "http://" + addr + "/mcp"})
	if err != nil {
		t.Fatal(err)
	}
	defer imp.Close()
	_, err = imp.Import(t.Context())
	var ae *call.AdapterError
	if !errors.As(err, &ae) || ae.Kind != call.AdapterDiscoveryFailed {
		t.Fatalf("got %v", err)
	}
	if strings.Contains(err.Error(), "/mcp") {
		t.Errorf("error names the endpoint URL: %v", err)
	}
}

// TestImportNotMCP: an endpoint that is not an MCP server fails discovery.
func TestImportNotMCP(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	imp, err := NewImporter(ImportConfig{Namespace: "up", Endpoint: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	defer imp.Close()
	var ae *call.AdapterError
	if _, err := imp.Import(t.Context()); !errors.As(err, &ae) || ae.Kind != call.AdapterDiscoveryFailed {
		t.Fatalf("got %v", err)
	}
}

// TestImportMaxTools: pagination is followed (one tool per page here) and the tool
// count is bounded: exactly MaxTools is fine, one more fails discovery.
func TestImportMaxTools(t *testing.T) {
	noop := func(context.Context, *sdk.CallToolRequest) (*sdk.CallToolResult, error) {
		return &sdk.CallToolResult{}, nil
	}
	var tools []upstreamTool
	for _, n := range []string{"t1", "t2", "t3"} {
		tools = append(tools, upstreamTool{&sdk.Tool{Name: n, InputSchema: objectSchema}, noop})
	}
	u := newUpstream(t, tools, &sdk.ServerOptions{PageSize: 1}, nil)
	regs := mustImport(t, newImporter(t, u, func(c *ImportConfig) { c.Limits.MaxTools = 3 }))
	if len(regs) != 3 {
		t.Fatalf("%d registrations", len(regs))
	}
	lists := 0
	for _, s := range u.requests() {
		if s.rpc == "tools/list" {
			lists++
		}
	}
	if lists != 3 {
		t.Errorf("%d tools/list pages, want 3", lists)
	}
	_, err := newImporter(t, u, func(c *ImportConfig) { c.Limits.MaxTools = 2 }).Import(t.Context())
	var ae *call.AdapterError
	if !errors.As(err, &ae) || ae.Kind != call.AdapterDiscoveryFailed || !strings.Contains(err.Error(), "more than 2 tools") {
		t.Fatalf("got %v", err)
	}
}

// TestImportDuplicateTools: two tools of one name are a collision. The SDK server
// replaces a tool on AddTool, so the duplicate comes from a hand-written server.
func TestImportDuplicateTools(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var msg struct {
			ID     json.RawMessage `json:"id"`
			Method string          `json:"method"`
		}
		_ = json.NewDecoder(r.Body).Decode(&msg)
		var result string
		switch msg.Method {
		case "initialize":
			result = `{"protocolVersion":"2025-06-18","capabilities":{"tools":{}},"serverInfo":{"name":"dup","version":"0"}}`
		case "tools/list":
			result = `{"tools":[{"name":"a","inputSchema":{"type":"object"}},{"name":"a","inputSchema":{"type":"object"}}]}`
		default:
			if len(msg.ID) == 0 {
				w.WriteHeader(http.StatusAccepted) // a notification
				return
			}
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"jsonrpc":"2.0","id":` + string(msg.ID) + `,"error":{"code":-32601,"message":"method not found"}}`))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"jsonrpc":"2.0","id":` + string(msg.ID) + `,"result":` + result + `}`))
	}))
	defer srv.Close()
	imp, err := NewImporter(ImportConfig{Namespace: "up", Endpoint: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	defer imp.Close()
	_, err = imp.Import(t.Context())
	var ae *call.AdapterError
	if !errors.As(err, &ae) || ae.Kind != call.AdapterSamePeerCollision || ae.Op != "up/a" {
		t.Fatalf("got %v", err)
	}
}

// TestResponseLimit: a tools/call answer of exactly MaxResponseBytes is read; one
// byte more fails the call with INTERNAL naming the limit, and the next call works.
func TestResponseLimit(t *testing.T) {
	const in = `{"n":20000}`
	u := newUpstream(t, nil, nil, nil)
	measure := func() int {
		r := registryOf(t, mustImport(t, newImporter(t, u, func(c *ImportConfig) { c.Expose = true })), nil)
		mustInvoke(t, r, "up/big", in)
		return u.callBytes()
	}
	size := measure()
	if again := measure(); again != size || size < 20000 {
		t.Fatalf("response sizes %d and %d", size, again)
	}

	r := registryOf(t, mustImport(t, newImporter(t, u, func(c *ImportConfig) { c.Expose = true; c.Limits.MaxResponseBytes = int64(size) })), nil)
	if out := mustInvoke(t, r, "up/big", in); len(out) < 20000 {
		t.Errorf("short output %d", len(out))
	}

	r = registryOf(t, mustImport(t, newImporter(t, u, func(c *ImportConfig) { c.Expose = true; c.Limits.MaxResponseBytes = int64(size - 1) })), nil)
	_, cerr := invoke(t, r, "up/big", in)
	if cerr == nil || cerr.Code != call.CodeInternal || !strings.Contains(cerr.Message, "exceeds the "+itoa(size-1)+"-byte limit") {
		t.Fatalf("over the limit: %v", cerr)
	}
	if got := mustInvoke(t, r, "up/sum", `{"a":1,"b":1}`); got != `{"sum":2}` {
		t.Errorf("next call: %s", got)
	}

	// The limit applies to discovery too.
	_, err := newImporter(t, u, func(c *ImportConfig) { c.Limits.MaxResponseBytes = 64 }).Import(t.Context())
	var ae *call.AdapterError
	if !errors.As(err, &ae) || ae.Kind != call.AdapterDiscoveryFailed || !errors.Is(err, ErrResponseTooLarge) {
		t.Fatalf("small limit at connect: %v", err)
	}
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// TestCloseEndsSession: Close deletes the session on the server with the session
// credential; it is idempotent; the importer is unusable afterwards.
func TestCloseEndsSession(t *testing.T) {
	u := newUpstream(t, nil, nil, nil)
	imp := newImporter(t, u, func(c *ImportConfig) { c.Expose = true })
	r := registryOf(t, mustImport(t, imp), nil)
	if n := u.sessions(); n != 1 {
		t.Fatalf("%d sessions after import", n)
	}
	if err := imp.Close(); err != nil {
		t.Fatal(err)
	}
	if n := u.sessions(); n != 0 {
		t.Errorf("%d sessions after Close", n)
	}
	seen := u.requests()
	if last := seen[len(seen)-1]; last.method != http.MethodDelete || last.auth != "Bearer "+discTok {
		t.Errorf("last request %+v, want DELETE with the session credential", last)
	}
	if err := imp.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := imp.Import(t.Context()); !errors.Is(err, ErrClosed) {
		t.Errorf("Import after Close: %v", err)
	}
	if _, cerr := invoke(t, r, "up/sum", `{"a":1,"b":1}`); cerr == nil || !strings.Contains(cerr.Message, "closed") {
		t.Errorf("call after Close: %v", cerr)
	}
	if imp.cred.header() != "" {
		t.Error("credential not wiped")
	}
}

// TestReconnectAfterSessionLoss: when the server forgot the session (restart,
// expiry), the call that meets the 404 reached nothing, so the importer connects
// again and the call runs exactly once.
func TestReconnectAfterSessionLoss(t *testing.T) {
	u := newUpstream(t, nil, nil, nil)
	r := registryOf(t, mustImport(t, newImporter(t, u, func(c *ImportConfig) { c.Expose = true })), nil)
	if got := mustInvoke(t, r, "up/count", `{}`); got != `{"n":1}` {
		t.Fatalf("first call %s", got)
	}
	u.closeSessions()
	if got := mustInvoke(t, r, "up/count", `{}`); got != `{"n":2}` {
		t.Fatalf("call after session loss %s", got)
	}
	inits := 0
	for _, s := range u.requests() {
		if s.rpc == "initialize" {
			inits++
		}
	}
	calls := 0
	for _, s := range u.requests() {
		if s.rpc == "tools/call" {
			calls++
		}
	}
	// Three tools/call requests: the first call, the one answered 404 and its retry.
	if inits != 2 || calls != 3 || u.count("count") != 2 || u.sessions() != 1 {
		t.Errorf("%d initialize, %d tools/call requests, %d runs, %d sessions", inits, calls, u.count("count"), u.sessions())
	}
}

// TestNoRetryOnceReached: a call whose request reached the server is never sent
// again, even when it failed; the next call still works.
func TestNoRetryOnceReached(t *testing.T) {
	u := newUpstream(t, nil, nil, func(u *upstream) { u.fail502 = "count" })
	r := registryOf(t, mustImport(t, newImporter(t, u, func(c *ImportConfig) { c.Expose = true })), nil)
	_, cerr := invoke(t, r, "up/count", `{}`)
	if cerr == nil || cerr.Code != call.CodeInternal || !strings.HasPrefix(cerr.Message, "tools/call failed: ") {
		t.Fatalf("got %v", cerr)
	}
	if n := u.count("count"); n != 1 {
		t.Errorf("the tool ran %d times", n)
	}
	if got := mustInvoke(t, r, "up/sum", `{"a":1,"b":1}`); got != `{"sum":2}` {
		t.Errorf("next call: %s", got)
	}
}

// TestNewImporterConfig: every invalid configuration wraps ErrConfig.
func TestNewImporterConfig(t *testing.T) {
	ok := ImportConfig{Namespace: "up", Endpoint: "https://mcp.example/mcp"}
	for name, mod := range map[string]func(*ImportConfig){
		"no namespace":       func(c *ImportConfig) { c.Namespace = "" },
		"namespace with /":   func(c *ImportConfig) { c.Namespace = "a/b" },
		"namespace space":    func(c *ImportConfig) { c.Namespace = "a b" },
		"no endpoint":        func(c *ImportConfig) { c.Endpoint = "" },
		"relative endpoint":  func(c *ImportConfig) { c.Endpoint = "/mcp" },
		"ftp endpoint":       func(c *ImportConfig) { c.Endpoint = "ftp://h/mcp" },
		"no host":            func(c *ImportConfig) { c.Endpoint = "http:///mcp" },
		"user info":          func(c *ImportConfig) { c.Endpoint = "https://u:p@h/mcp" },
		"fragment":           func(c *ImportConfig) { c.Endpoint = "https://h/mcp#x" },
		"unparseable":        func(c *ImportConfig) { c.Endpoint = "http://h/%zz" },
		"credential newline": func(c *ImportConfig) { c.Credential = []byte("a\nb") },
		"negative tools":     func(c *ImportConfig) { c.Limits.MaxTools = -1 },
		"negative bytes":     func(c *ImportConfig) { c.Limits.MaxResponseBytes = -1 },
	} {
		cfg := ok
		mod(&cfg)
		if _, err := NewImporter(cfg); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: %v", name, err)
		}
	}
	imp, err := NewImporter(ok)
	if err != nil {
		t.Fatal(err)
	}
	defer imp.Close()
	if imp.own == nil || imp.own.Proxy != nil {
		t.Error("the default transport must not take a proxy")
	}
	if imp.limits.MaxTools != DefaultMaxTools || imp.limits.MaxResponseBytes != DefaultMaxResponseBytes {
		t.Errorf("limits %+v", imp.limits)
	}
	imp2, err := NewImporter(ImportConfig{Namespace: "up", Endpoint: "HTTP://h/mcp", HTTPClient: &http.Client{}})
	if err != nil {
		t.Fatal(err)
	}
	defer imp2.Close()
	if imp2.own == nil {
		t.Error("a client without a Transport must get the importer's transport, not http.DefaultTransport")
	}
}

// TestHTTPClientAndRedirects: a given client's transport is used, and a redirect is
// not followed, so the credential never leaves the endpoint's origin.
func TestHTTPClientAndRedirects(t *testing.T) {
	var elsewhere sync.Map
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		elsewhere.Store(r.Header.Get("Authorization"), true)
		http.NotFound(w, r)
	}))
	defer other.Close()
	redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/mcp", http.StatusTemporaryRedirect)
	}))
	defer redirect.Close()

	used := &countingTransport{base: &http.Transport{Proxy: nil}}
	defer used.base.CloseIdleConnections()
	imp, err := NewImporter(ImportConfig{Namespace: "up", Endpoint: redirect.URL + "/mcp", Credential: []byte(discTok), HTTPClient: &http.Client{Transport: used}})
	if err != nil {
		t.Fatal(err)
	}
	defer imp.Close()
	if _, err := imp.Import(t.Context()); err == nil {
		t.Fatal("import through a redirect succeeded")
	}
	if used.n.Load() == 0 {
		t.Error("the given transport was not used")
	}
	elsewhere.Range(func(k, _ any) bool {
		t.Errorf("the redirect target saw Authorization %q", k)
		return true
	})
}

// countingTransport counts round trips.
type countingTransport struct {
	base *http.Transport
	n    atomic.Int64
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.base.RoundTrip(r)
}

// TestConcurrentCredentials: calls in flight at once on the one session each send
// their own credential.
func TestConcurrentCredentials(t *testing.T) {
	u := newUpstream(t, nil, nil, nil)
	regs := mustImport(t, newImporter(t, u, func(c *ImportConfig) { c.Expose = true }))
	var registries []*call.Registry
	for i := range 4 {
		registries = append(registries, registryOf(t, regs, map[string][]byte{"api_key:up": []byte("tok-" + itoa(i))}))
	}
	var wg sync.WaitGroup
	errs := make(chan string, 64)
	for g := range 16 {
		wg.Go(func() {
			i := g % len(registries)
			for range 4 {
				out, cerr := invoke(t, registries[i], "up/whoami", `{}`)
				if want := `{"auth":"Bearer tok-` + itoa(i) + `"}`; cerr != nil || string(out) != want {
					errs <- fmt.Sprintf("%s %v, want %s", out, cerr, want)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

// TestImportAgainAfterSessionLoss: a later Import on a session the server has
// forgotten connects again (tools/list is safe to repeat).
func TestImportAgainAfterSessionLoss(t *testing.T) {
	u := newUpstream(t, nil, nil, nil)
	imp := newImporter(t, u, nil)
	first := mustImport(t, imp)
	u.closeSessions()
	second := mustImport(t, imp)
	if len(first) != len(second) || u.sessions() != 1 {
		t.Fatalf("%d then %d registrations, %d sessions", len(first), len(second), u.sessions())
	}
}
