package mcp

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// seenRequest is one HTTP request an upstream received.
type seenRequest struct {
	method string // HTTP method
	rpc    string // JSON-RPC method of a POST ("" when none)
	tool   string // tool name of a tools/call
	auth   string // Authorization header
}

// upstream is an MCP server built with the official SDK and served by its
// streamable-HTTP handler, with a recorder in front.
type upstream struct {
	srv *sdk.Server
	url string // endpoint URL

	mu   sync.Mutex
	seen []seenRequest
	// lastCallBytes is the body size of the last tools/call response.
	lastCallBytes int

	// sessionToken, when set, makes every request but tools/call answer 401 unless it
	// carries "Bearer <sessionToken>".
	sessionToken string
	// fail502 makes tools/call of that tool run, then answer 502 instead of the result.
	fail502 string

	invocations sync.Map // tool name → *atomic.Int64, for tools that count themselves

	slowStarted   chan struct{}
	slowCancelled chan struct{}
}

// upstreamTool is a tool of the test upstream.
type upstreamTool struct {
	tool    *sdk.Tool
	handler sdk.ToolHandler
}

// objectSchema is the smallest input schema MCP accepts.
var objectSchema = json.RawMessage(`{"type":"object"}`)

// standardTools are the tools of the default upstream:
//
//	sum        {a, b} → structuredContent {"sum": a+b} (declares an output schema)
//	plain      text "hello" and a PNG image, no structured content
//	fails      isError with text "boom"
//	textjson   a text block holding JSON, no structured content
//	whoami     {"auth": <Authorization header of the tools/call request>}
//	echo       structuredContent = the arguments
//	big        a text block of n bytes
//	slow       waits for cancellation
//	count      {"n": <invocations so far>}
func (u *upstream) standardTools() []upstreamTool {
	structured := func(v any) *sdk.CallToolResult {
		b, _ := json.Marshal(v)
		return &sdk.CallToolResult{StructuredContent: json.RawMessage(b), Content: []sdk.Content{&sdk.TextContent{Text: string(b)}}}
	}
	return []upstreamTool{
		{&sdk.Tool{Name: "sum", Description: "adds", InputSchema: json.RawMessage(`{"type":"object","properties":{"a":{"type":"number"},"b":{"type":"number"}},"required":["a","b"]}`),
			OutputSchema: json.RawMessage(`{"type":"object","properties":{"sum":{"type":"number"}}}`)},
			func(_ context.Context, req *sdk.CallToolRequest) (*sdk.CallToolResult, error) {
				var in struct{ A, B float64 }
				_ = json.Unmarshal(req.Params.Arguments, &in)
				return structured(map[string]float64{"sum": in.A + in.B}), nil
			}},
		{&sdk.Tool{Name: "plain", InputSchema: objectSchema}, func(context.Context, *sdk.CallToolRequest) (*sdk.CallToolResult, error) {
			return &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: "hello"}, &sdk.ImageContent{Data: []byte{1, 2, 3}, MIMEType: "image/png"}}}, nil
		}},
		{&sdk.Tool{Name: "fails", InputSchema: objectSchema}, func(context.Context, *sdk.CallToolRequest) (*sdk.CallToolResult, error) {
			return &sdk.CallToolResult{IsError: true, Content: []sdk.Content{&sdk.TextContent{Text: "boom"}}}, nil
		}},
		{&sdk.Tool{Name: "textjson", InputSchema: objectSchema}, func(context.Context, *sdk.CallToolRequest) (*sdk.CallToolResult, error) {
			return &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: `{"a":1}`}}}, nil
		}},
		{&sdk.Tool{Name: "whoami", InputSchema: objectSchema}, func(_ context.Context, req *sdk.CallToolRequest) (*sdk.CallToolResult, error) {
			return structured(map[string]string{"auth": req.Extra.Header.Get("Authorization")}), nil
		}},
		{&sdk.Tool{Name: "echo", InputSchema: objectSchema}, func(_ context.Context, req *sdk.CallToolRequest) (*sdk.CallToolResult, error) {
			return &sdk.CallToolResult{StructuredContent: req.Params.Arguments}, nil
		}},
		{&sdk.Tool{Name: "big", InputSchema: json.RawMessage(`{"type":"object","properties":{"n":{"type":"integer"}}}`)},
			func(_ context.Context, req *sdk.CallToolRequest) (*sdk.CallToolResult, error) {
				var in struct{ N int }
				_ = json.Unmarshal(req.Params.Arguments, &in)
				return &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: strings.Repeat("x", in.N)}}}, nil
			}},
		{&sdk.Tool{Name: "slow", InputSchema: objectSchema}, func(ctx context.Context, _ *sdk.CallToolRequest) (*sdk.CallToolResult, error) {
			close(u.slowStarted)
			<-ctx.Done()
			close(u.slowCancelled)
			return nil, ctx.Err()
		}},
		{&sdk.Tool{Name: "count", InputSchema: objectSchema}, func(context.Context, *sdk.CallToolRequest) (*sdk.CallToolResult, error) {
			u.invoked("count")
			return structured(map[string]int64{"n": u.count("count")}), nil
		}},
	}
}

// count returns how often the tool ran (tools that count themselves: count).
func (u *upstream) count(tool string) int64 {
	v, _ := u.invocations.LoadOrStore(tool, new(atomic.Int64))
	return v.(*atomic.Int64).Load()
}

func (u *upstream) invoked(tool string) {
	v, _ := u.invocations.LoadOrStore(tool, new(atomic.Int64))
	v.(*atomic.Int64).Add(1)
}

// newUpstream serves tools (nil: the standard tools) with server options opts.
func newUpstream(t testing.TB, tools []upstreamTool, opts *sdk.ServerOptions, mod func(*upstream)) *upstream {
	t.Helper()
	u := &upstream{slowStarted: make(chan struct{}), slowCancelled: make(chan struct{})}
	if mod != nil {
		mod(u)
	}
	u.srv = sdk.NewServer(&sdk.Implementation{Name: "upstream", Version: "0"}, opts)
	if tools == nil {
		tools = u.standardTools()
	}
	for _, tool := range tools {
		u.srv.AddTool(tool.tool, tool.handler)
	}
	h := sdk.NewStreamableHTTPHandler(func(*http.Request) *sdk.Server { return u.srv }, nil)
	hs := httptest.NewServer(u.record(h))
	u.url = hs.URL + "/mcp"
	t.Cleanup(func() {
		u.closeSessions()
		hs.Close()
	})
	return u
}

// closeSessions ends every session on the server side.
func (u *upstream) closeSessions() {
	for ss := range u.srv.Sessions() {
		_ = ss.Close()
	}
}

// sessions counts the server's open, initialized sessions. (The SDK client first
// probes with server/discover, for which the stateful server opens a session it
// closes right after answering: that one is not counted.)
func (u *upstream) sessions() int {
	n := 0
	for ss := range u.srv.Sessions() {
		if ss.InitializeParams() != nil {
			n++
		}
	}
	return n
}

// requests returns what the upstream has seen so far.
func (u *upstream) requests() []seenRequest {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]seenRequest(nil), u.seen...)
}

// callBytes returns the body size of the last tools/call response.
func (u *upstream) callBytes() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.lastCallBytes
}

// record wraps next: it notes every request, enforces sessionToken and fail502, and
// measures tools/call responses.
func (u *upstream) record(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sr := seenRequest{method: r.Method, auth: r.Header.Get("Authorization")}
		if r.Method == http.MethodPost {
			body, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(body))
			var msg struct {
				Method string `json:"method"`
				Params struct {
					Name string `json:"name"`
				} `json:"params"`
			}
			_ = json.Unmarshal(body, &msg)
			sr.rpc, sr.tool = msg.Method, msg.Params.Name
		}
		u.mu.Lock()
		u.seen = append(u.seen, sr)
		u.mu.Unlock()
		if u.sessionToken != "" && sr.rpc != "tools/call" && sr.auth != "Bearer "+u.sessionToken {
			http.Error(w, "Unauthorized", http.StatusUnauthorized)
			return
		}
		if sr.rpc != "tools/call" {
			next.ServeHTTP(w, r)
			return
		}
		if sr.tool == u.fail502 {
			next.ServeHTTP(httptest.NewRecorder(), r)
			http.Error(w, "bad gateway", http.StatusBadGateway)
			return
		}
		u.mu.Lock()
		u.lastCallBytes = 0
		u.mu.Unlock()
		next.ServeHTTP(&countingWriter{ResponseWriter: w, u: u}, r)
	})
}

// countingWriter counts the body bytes of a tools/call response in
// upstream.lastCallBytes, before they are written (so the count is complete once the
// client has read them), keeping flushes working.
type countingWriter struct {
	http.ResponseWriter
	u *upstream
}

func (c *countingWriter) Write(b []byte) (int, error) {
	c.u.mu.Lock()
	c.u.lastCallBytes += len(b)
	c.u.mu.Unlock()
	return c.ResponseWriter.Write(b)
}

func (c *countingWriter) Flush() {
	if f, ok := c.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (c *countingWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }
