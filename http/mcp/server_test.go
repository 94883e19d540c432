package mcp

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/alknet/alknet/call"
	alkhttp "github.com/alknet/alknet/http"
)

// TestToolsList: the projection answers exactly the four tools with their schemas,
// the server name, the default instructions and the tools capability only.
func TestToolsList(t *testing.T) {
	base := serveProjection(t, testRegistry(t), nil)
	cs := connectClient(t, base+alkhttp.MCPPath, &http.Client{Transport: newTokenTransport(t, nil)})

	init := cs.InitializeResult()
	if init.ServerInfo.Name != ServerName || init.Instructions != DefaultInstructions {
		t.Errorf("server info %+v, instructions %q", init.ServerInfo, init.Instructions)
	}
	caps := init.Capabilities
	if caps.Tools == nil || caps.Logging != nil || caps.Prompts != nil || caps.Resources != nil {
		t.Errorf("capabilities %+v, want tools only", caps)
	}

	res, err := cs.ListTools(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		ToolSearch: searchInputSchema,
		ToolSchema: schemaInputSchema,
		ToolCall:   callInputSchema,
		ToolBatch:  batchInputSchema,
	}
	var names []string
	for _, tool := range res.Tools {
		names = append(names, tool.Name)
		b, err := json.Marshal(tool.InputSchema)
		if err != nil {
			t.Fatal(err)
		}
		if got, w := string(b), compact(t, want[tool.Name]); got != w {
			t.Errorf("%s input schema %s, want %s", tool.Name, got, w)
		}
		if tool.Description == "" {
			t.Errorf("%s has no description", tool.Name)
		}
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"batch", "call", "schema", "search"}) {
		t.Errorf("tools %v", names)
	}
}

// TestInstructionsOverride: ServerOptions.Instructions replaces the default text.
func TestInstructionsOverride(t *testing.T) {
	base := serveProjection(t, testRegistry(t), &ServerOptions{Instructions: "custom"})
	cs := connectClient(t, base+alkhttp.MCPPath, &http.Client{Transport: newTokenTransport(t, nil)})
	if got := cs.InitializeResult().Instructions; got != "custom" {
		t.Errorf("instructions %q", got)
	}
}

// searchNames runs the search tool with args and returns the listed names.
func searchNames(t *testing.T, cs *sdk.ClientSession, args string) []string {
	t.Helper()
	res := callTool(t, cs, ToolSearch, args)
	if res.IsError {
		t.Fatalf("search failed: %s", structuredJSON(t, res))
	}
	var out struct {
		Operations []searchedOp `json:"operations"`
	}
	if err := json.Unmarshal([]byte(structuredJSON(t, res)), &out); err != nil {
		t.Fatal(err)
	}
	if compact(t, textOf(t, res)) != structuredJSON(t, res) {
		t.Fatalf("text block differs from structured content")
	}
	var names []string
	for _, op := range out.Operations {
		names = append(names, op.Name)
	}
	return names
}

// TestSearchPerIdentity (http.md §7.1): one SDK session whose HTTP client switches
// the Authorization header between calls: every search answers for the identity of
// its own HTTP request, never the one the session was initialized with.
func TestSearchPerIdentity(t *testing.T) {
	base := serveProjection(t, testRegistry(t), nil)
	tt := newTokenTransport(t, nil)
	tt.set(tokUser) // the session is initialized as user
	cs := connectClient(t, base+alkhttp.MCPPath, &http.Client{Transport: tt})

	common := []string{"demo/echo", "demo/fail", "demo/str", "demo/typed", "demo/whoami", "services/list", "services/schema"}
	withAdmin := []string{"demo/admin", "demo/echo", "demo/fail", "demo/str", "demo/typed", "demo/whoami", "services/list", "services/schema"}
	for i, step := range []struct {
		token string
		want  []string
	}{
		{tokUser, common},
		{tokAdmin, withAdmin},
		{"", common},
		{"not-a-token", common},
		{tokAdmin, withAdmin},
		{tokUser, common},
	} {
		tt.set(step.token)
		if got := searchNames(t, cs, `{}`); !slices.Equal(got, step.want) {
			t.Errorf("step %d (%q): search %v, want %v", i, step.token, got, step.want)
		}
		who := "anonymous"
		switch step.token {
		case tokUser:
			who = "user"
		case tokAdmin:
			who = "admin"
		}
		wantOK(t, callTool(t, cs, ToolCall, `{"operation":"demo/whoami"}`), fmt.Sprintf(`{"id":%q}`, who))
	}
}

// TestSearchShape: descriptions are synthesized, subscriptions and Internal
// operations are left out, and query narrows the list ignoring case.
func TestSearchShape(t *testing.T) {
	base := serveProjection(t, testRegistry(t), nil)
	cs := connectClient(t, base+alkhttp.MCPPath, &http.Client{Transport: newTokenTransport(t, nil)})

	res := callTool(t, cs, ToolSearch, `{"query":"ECHO"}`)
	wantOK(t, res, `{"operations":[{"description":"query operation demo/echo in namespace demo","name":"demo/echo"}]}`)

	all := searchNames(t, cs, `{"query":""}`)
	for _, hidden := range []string{"demo/ticks", "demo/secret", "demo/admin"} {
		if slices.Contains(all, hidden) {
			t.Errorf("search lists %s", hidden)
		}
	}
	if got := searchNames(t, cs, `{"query":"mutation"}`); !slices.Equal(got, []string{"demo/fail"}) {
		t.Errorf("query by type: %v", got)
	}
	if got := searchNames(t, cs, `{"query":"nothing-matches"}`); len(got) != 0 {
		t.Errorf("no match: %v", got)
	}
	wantToolError(t, callTool(t, cs, ToolSearch, `{"query":5}`), call.CodeInvalidInput, "field query must be a string")
}

// TestSchemaTool: the spec of an External operation; Internal and unknown are the
// same NOT_FOUND; missing or mistyped name is INVALID_INPUT; an access rule that
// rejects the caller is FORBIDDEN.
func TestSchemaTool(t *testing.T) {
	base := serveProjection(t, testRegistry(t), nil)
	tt := newTokenTransport(t, nil)
	cs := connectClient(t, base+alkhttp.MCPPath, &http.Client{Transport: tt})

	res := callTool(t, cs, ToolSchema, `{"name":"demo/typed"}`)
	if res.IsError {
		t.Fatalf("schema failed: %s", structuredJSON(t, res))
	}
	var spec call.OperationSpec
	if err := json.Unmarshal([]byte(structuredJSON(t, res)), &spec); err != nil {
		t.Fatal(err)
	}
	if spec.Name != "demo/typed" || spec.Type != call.Query || string(spec.InputSchema) != `{"properties":{"n":{"type":"integer"}},"required":["n"],"type":"object"}` {
		t.Errorf("spec %+v input %s", spec, spec.InputSchema)
	}

	internal := wantToolError(t, callTool(t, cs, ToolSchema, `{"name":"demo/secret"}`), call.CodeNotFound, "demo/secret")
	unknown := wantToolError(t, callTool(t, cs, ToolSchema, `{"name":"demo/nosuch"}`), call.CodeNotFound, "demo/nosuch")
	if strings.ReplaceAll(internal.Message, "demo/secret", "X") != strings.ReplaceAll(unknown.Message, "demo/nosuch", "X") {
		t.Errorf("Internal %q and unknown %q differ", internal.Message, unknown.Message)
	}
	wantToolError(t, callTool(t, cs, ToolSchema, `{}`), call.CodeInvalidInput, "missing required field: name")
	wantToolError(t, callTool(t, cs, ToolSchema, `{"name":null}`), call.CodeInvalidInput, "missing required field: name")
	wantToolError(t, callTool(t, cs, ToolSchema, `{"name":7}`), call.CodeInvalidInput, "field name must be a string")
	wantToolError(t, callTool(t, cs, ToolSchema, `{"name":"demo/admin"}`), call.CodeForbidden, "")
	tt.set(tokAdmin)
	if res := callTool(t, cs, ToolSchema, `{"name":"demo/admin"}`); res.IsError {
		t.Errorf("admin schema: %s", structuredJSON(t, res))
	}
}

// TestCallTool: outputs, the wrapping of non-object outputs, every error shape.
func TestCallTool(t *testing.T) {
	base := serveProjection(t, testRegistry(t), nil)
	tt := newTokenTransport(t, nil)
	cs := connectClient(t, base+alkhttp.MCPPath, &http.Client{Transport: tt})

	wantOK(t, callTool(t, cs, ToolCall, `{"operation":"demo/echo","input":{"a":[1,2],"b":"x"}}`), `{"a":[1,2],"b":"x"}`)
	wantOK(t, callTool(t, cs, ToolCall, `{"operation":"/demo/echo","input":{"lead":"slash"}}`), `{"lead":"slash"}`)
	wantOK(t, callTool(t, cs, ToolCall, `{"operation":"demo/echo"}`), `{}`)
	wantOK(t, callTool(t, cs, ToolCall, `{"operation":"demo/echo","input":null}`), `{}`)
	// A non-object input reaches the operation as it is; a non-object output is wrapped.
	wantOK(t, callTool(t, cs, ToolCall, `{"operation":"demo/echo","input":[1,"two"]}`), `{"output":[1,"two"]}`)
	wantOK(t, callTool(t, cs, ToolCall, `{"operation":"demo/str"}`), `{"output":"hello"}`)

	e := wantToolError(t, callTool(t, cs, ToolCall, `{"operation":"demo/fail"}`), "DEMO_ERR", "it failed")
	if string(e.Details) != `{"why":"always"}` || e.Retryable {
		t.Errorf("declared error %+v", e)
	}
	wantToolError(t, callTool(t, cs, ToolCall, `{"operation":"demo/typed","input":{"n":"x"}}`), call.CodeInvalidInput, "")
	wantToolError(t, callTool(t, cs, ToolCall, `{"operation":"demo/admin"}`), call.CodeForbidden, "authentication required")
	tt.set(tokUser)
	wantToolError(t, callTool(t, cs, ToolCall, `{"operation":"demo/admin"}`), call.CodeForbidden, "missing required scope: admin")
	tt.set(tokAdmin)
	wantOK(t, callTool(t, cs, ToolCall, `{"operation":"demo/admin"}`), `{"admin":true}`)

	internal := wantToolError(t, callTool(t, cs, ToolCall, `{"operation":"demo/secret"}`), call.CodeNotFound, "demo/secret")
	unknown := wantToolError(t, callTool(t, cs, ToolCall, `{"operation":"demo/nosuch"}`), call.CodeNotFound, "demo/nosuch")
	if strings.ReplaceAll(internal.Message, "demo/secret", "X") != strings.ReplaceAll(unknown.Message, "demo/nosuch", "X") {
		t.Errorf("Internal %q and unknown %q differ", internal.Message, unknown.Message)
	}
	wantToolError(t, callTool(t, cs, ToolCall, `{"operation":"demo/ticks"}`), call.CodeInvalidOperationType, "")

	wantToolError(t, callTool(t, cs, ToolCall, `{}`), call.CodeInvalidInput, "missing required field: operation")
	wantToolError(t, callTool(t, cs, ToolCall, `{"operation":""}`), call.CodeInvalidInput, "missing required field: operation")
	wantToolError(t, callTool(t, cs, ToolCall, `{"operation":["x"]}`), call.CodeInvalidInput, "field operation must be a string")
	wantToolError(t, callTool(t, cs, ToolCall, `["not","an","object"]`), call.CodeInvalidInput, "arguments must be a JSON object")
}

// TestBatchTool: calls run in order, each answered {isError, output | error}; a
// malformed item does not stop the others; missing, mistyped and oversized calls are
// INVALID_INPUT.
func TestBatchTool(t *testing.T) {
	base := serveProjection(t, testRegistry(t), &ServerOptions{MaxBatchItems: 7})
	cs := connectClient(t, base+alkhttp.MCPPath, &http.Client{Transport: newTokenTransport(t, nil)})

	res := callTool(t, cs, ToolBatch, `{"calls":[
		{"operation":"demo/echo","input":{"i":1}},
		{"operation":"demo/secret"},
		{"operation":"demo/fail"},
		{"input":{}},
		5,
		{"operation":"demo/str"},
		{"operation":"demo/ticks"}
	]}`)
	if res.IsError {
		t.Fatalf("batch failed: %s", structuredJSON(t, res))
	}
	var out struct {
		Results []struct {
			IsError bool            `json:"isError"`
			Output  json.RawMessage `json:"output"`
			Error   *call.CallError `json:"error"`
		} `json:"results"`
	}
	if err := json.Unmarshal([]byte(structuredJSON(t, res)), &out); err != nil {
		t.Fatal(err)
	}
	want := []struct {
		isError bool
		output  string
		code    string
		msg     string
	}{
		{false, `{"i":1}`, "", ""},
		{true, "", call.CodeNotFound, "demo/secret"},
		{true, "", "DEMO_ERR", "it failed"},
		{true, "", call.CodeInvalidInput, "missing required field: operation"},
		{true, "", call.CodeInvalidInput, "must be a JSON object"},
		{false, `"hello"`, "", ""},
		{true, "", call.CodeInvalidOperationType, ""},
	}
	if len(out.Results) != len(want) {
		t.Fatalf("%d results: %s", len(out.Results), structuredJSON(t, res))
	}
	for i, w := range want {
		r := out.Results[i]
		switch {
		case r.IsError != w.isError:
			t.Errorf("item %d: isError %v", i, r.IsError)
		case !w.isError && string(r.Output) != w.output:
			t.Errorf("item %d: output %s, want %s", i, r.Output, w.output)
		case w.isError && (r.Error == nil || r.Error.Code != w.code || !strings.Contains(r.Error.Message, w.msg) || r.Output != nil):
			t.Errorf("item %d: %+v, want %s %q", i, r, w.code, w.msg)
		}
	}

	wantOK(t, callTool(t, cs, ToolBatch, `{"calls":[]}`), `{"results":[]}`)
	wantToolError(t, callTool(t, cs, ToolBatch, `{}`), call.CodeInvalidInput, "missing required field: calls")
	wantToolError(t, callTool(t, cs, ToolBatch, `{"calls":{"operation":"demo/echo"}}`), call.CodeInvalidInput, "field calls must be an array")
	eight := `{"calls":[` + strings.TrimSuffix(strings.Repeat(`{"operation":"demo/echo"},`, 8), ",") + `]}`
	wantToolError(t, callTool(t, cs, ToolBatch, eight), call.CodeInvalidInput, "batch of 8 calls exceeds the limit of 7")
}

// TestUnknownTool: a tools/call naming another tool is a NOT_FOUND tool result, not
// a JSON-RPC error.
func TestUnknownTool(t *testing.T) {
	base := serveProjection(t, testRegistry(t), nil)
	cs := connectClient(t, base+alkhttp.MCPPath, &http.Client{Transport: newTokenTransport(t, nil)})
	wantToolError(t, callTool(t, cs, "nope", `{}`), call.CodeNotFound, "tool not found: nope")
	// The session still works.
	wantOK(t, callTool(t, cs, ToolCall, `{"operation":"demo/echo"}`), `{}`)
}

// rawPost posts body to the MCP endpoint as a streamable-HTTP client would, with
// chunked encoding when chunked is set, and returns the status, the session id and
// the body.
func rawPost(t *testing.T, url, session string, body []byte, chunked bool) (int, string, string) {
	t.Helper()
	var r io.Reader = bytes.NewReader(body)
	if chunked {
		r = io.MultiReader(r) // hides the length: sent chunked
	}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url, r)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if session != "" {
		req.Header.Set(sessionIDHeader, session)
	}
	tr := &http.Transport{Proxy: nil}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get(sessionIDHeader), string(b)
}

// deleteSession ends a session opened with raw requests.
func deleteSession(t *testing.T, url, session string) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodDelete, url, nil)
	req.Header.Set(sessionIDHeader, session)
	tr := &http.Transport{Proxy: nil}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE: %d", resp.StatusCode)
	}
}

// paddedInitialize is an initialize request of exactly n bytes (trailing spaces).
func paddedInitialize(t *testing.T, n int) []byte {
	t.Helper()
	b := []byte(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"0"}}}`)
	if len(b) > n {
		t.Fatalf("request longer than %d", n)
	}
	return append(b, bytes.Repeat([]byte(" "), n-len(b))...)
}

// TestBodyLimit: a body of exactly MaxBodyBytes is served; one byte more is 413,
// with or without a Content-Length.
func TestBodyLimit(t *testing.T) {
	const limit = 2048
	url := serveProjection(t, testRegistry(t), &ServerOptions{MaxBodyBytes: limit}) + alkhttp.MCPPath
	for _, chunked := range []bool{false, true} {
		status, session, body := rawPost(t, url, "", paddedInitialize(t, limit), chunked)
		if status != http.StatusOK || session == "" || !strings.Contains(body, ServerName) {
			t.Fatalf("chunked=%v: body at the limit: %d %q %s", chunked, status, session, body)
		}
		deleteSession(t, url, session)
		status, session, _ = rawPost(t, url, "", paddedInitialize(t, limit+1), chunked)
		if status != http.StatusRequestEntityTooLarge || session != "" {
			t.Fatalf("chunked=%v: body over the limit: %d %q", chunked, status, session)
		}
	}
}

// TestMaxSessions: a request that would open a session beyond the cap is 503; once
// a session closes another can open.
func TestMaxSessions(t *testing.T) {
	url := serveProjection(t, testRegistry(t), &ServerOptions{MaxSessions: 1}) + alkhttp.MCPPath
	status, first, _ := rawPost(t, url, "", paddedInitialize(t, 200), false)
	if status != http.StatusOK || first == "" {
		t.Fatalf("first session: %d", status)
	}
	if status, _, _ := rawPost(t, url, "", paddedInitialize(t, 200), false); status != http.StatusServiceUnavailable {
		t.Fatalf("second session: %d, want 503", status)
	}
	deleteSession(t, url, first)
	status, second, _ := rawPost(t, url, "", paddedInitialize(t, 200), false)
	if status != http.StatusOK || second == "" {
		t.Fatalf("session after close: %d", status)
	}
	deleteSession(t, url, second)
}

// TestServerOptionsDefaults pins the defaults, the session timeout included.
func TestServerOptionsDefaults(t *testing.T) {
	o := (*ServerOptions)(nil).withDefaults()
	if o.Instructions != DefaultInstructions || o.MaxBatchItems != alkhttp.DefaultMaxBatchItems ||
		o.MaxBodyBytes != alkhttp.DefaultMaxBodyBytes || o.SessionTimeout != DefaultSessionTimeout ||
		o.MaxSessions != DefaultMaxSessions || o.Logger == nil {
		t.Errorf("defaults %+v", o)
	}
	if o := (&ServerOptions{SessionTimeout: -1}).withDefaults(); o.SessionTimeout != 0 {
		t.Errorf("negative timeout: %v, want 0 (never)", o.SessionTimeout)
	}
	if DefaultSessionTimeout != 30*time.Minute {
		t.Errorf("DefaultSessionTimeout %v", DefaultSessionTimeout)
	}
}

// TestNewHandlerNilGateway: a nil gateway is a programming error.
func TestNewHandlerNilGateway(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("no panic")
		}
	}()
	NewHandler(nil, nil)
}

// TestToolHandlerWithoutHTTP: a tool call that did not arrive over HTTP (no
// headers) is anonymous.
func TestToolHandlerWithoutHTTP(t *testing.T) {
	p := &projection{gw: &alkhttp.Gateway{Registry: testRegistry(t)}, maxBatch: 10}
	res, err := p.call(context.Background(), &sdk.CallToolRequest{Params: &sdk.CallToolParamsRaw{Name: ToolCall, Arguments: json.RawMessage(`{"operation":"demo/whoami"}`)}})
	if err != nil || res.IsError {
		t.Fatalf("%v %+v", err, res)
	}
	if got := string(res.StructuredContent.(json.RawMessage)); got != `{"id":"anonymous"}` {
		t.Errorf("got %s", got)
	}
}

// TestHandlerClose: the handler is an io.Closer that ends the open sessions; a
// client must then start a new one.
func TestHandlerClose(t *testing.T) {
	h := NewHandler(&alkhttp.Gateway{Registry: testRegistry(t)}, nil)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	cs := connectClient(t, srv.URL, &http.Client{Transport: newTokenTransport(t, nil)})
	wantOK(t, callTool(t, cs, ToolCall, `{"operation":"demo/echo"}`), `{}`)
	closer, ok := h.(io.Closer)
	if !ok {
		t.Fatal("the handler is not an io.Closer")
	}
	if err := closer.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CallTool(t.Context(), &sdk.CallToolParams{Name: ToolCall, Arguments: map[string]any{"operation": "demo/echo"}}); err == nil {
		t.Fatalf("call on a closed session: %v", err)
	}
	cs2 := connectClient(t, srv.URL, &http.Client{Transport: newTokenTransport(t, nil)})
	wantOK(t, callTool(t, cs2, ToolCall, `{"operation":"demo/echo"}`), `{}`)
}
