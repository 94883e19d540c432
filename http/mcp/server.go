package mcp

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/alknet/alknet/call"
	"github.com/alknet/alknet/core"
	alkhttp "github.com/alknet/alknet/http"
)

// ServerName is the server name the to_mcp projection reports in its initialize
// answer.
const ServerName = "alknet-to-mcp"

// Names of the four tools of the to_mcp projection.
const (
	ToolSearch = "search"
	ToolSchema = "schema"
	ToolCall   = "call"
	ToolBatch  = "batch"
)

// DefaultInstructions is the text the to_mcp projection sends to clients in its
// initialize answer unless ServerOptions.Instructions replaces it.
const DefaultInstructions = "This server is a gateway to a registry of operations. " +
	"Use the search tool to find operations (an optional query narrows the list), " +
	"the schema tool to read one operation's input and output schemas, " +
	"then the call tool to run it, or the batch tool to run several one after the other. " +
	"Errors come back as tool results with isError set and a {code, message, retryable} object."

// Defaults of ServerOptions.
const (
	// DefaultSessionTimeout closes an MCP session that has received no request for
	// this long (30 minutes); the client must then initialize a new one.
	DefaultSessionTimeout = 30 * time.Minute
	// DefaultMaxSessions is the most MCP sessions open at once.
	DefaultMaxSessions = 1024
)

// ServerOptions configures the to_mcp projection. The zero value (and nil) takes
// the defaults.
type ServerOptions struct {
	// Instructions replace DefaultInstructions (search, then schema, then call or
	// batch) in the initialize answer.
	Instructions string
	// MaxBatchItems caps the calls of one batch tool call: more are answered with an
	// INVALID_INPUT tool error (0: alkhttp.DefaultMaxBatchItems, 100).
	MaxBatchItems int
	// MaxBodyBytes caps one HTTP request body, enforced with http.MaxBytesReader
	// before the SDK reads it: a larger body is answered 413 (0:
	// alkhttp.DefaultMaxBodyBytes, 1 MiB).
	MaxBodyBytes int64
	// SessionTimeout closes a session idle for that long (0: DefaultSessionTimeout,
	// 30 minutes; negative: sessions stay until the client deletes them). The SDK
	// pauses the timer while a request of the session is being served.
	SessionTimeout time.Duration
	// MaxSessions caps the sessions open at once: a request that would open one more
	// is answered 503 (0: DefaultMaxSessions, 1024). Concurrent initializations may
	// overshoot the cap by their number.
	MaxSessions int
	// Logger receives the SDK's diagnostics (session lifecycle with session ids,
	// protocol errors); nil discards them. Tokens, arguments and results are never
	// logged.
	Logger *slog.Logger
}

// withDefaults returns a copy of o (nil allowed) with zero fields set.
func (o *ServerOptions) withDefaults() ServerOptions {
	var out ServerOptions
	if o != nil {
		out = *o
	}
	if out.Instructions == "" {
		out.Instructions = DefaultInstructions
	}
	if out.MaxBatchItems <= 0 {
		out.MaxBatchItems = alkhttp.DefaultMaxBatchItems
	}
	if out.MaxBodyBytes <= 0 {
		out.MaxBodyBytes = alkhttp.DefaultMaxBodyBytes
	}
	switch {
	case out.SessionTimeout == 0:
		out.SessionTimeout = DefaultSessionTimeout
	case out.SessionTimeout < 0:
		out.SessionTimeout = 0 // the SDK's "never"
	}
	if out.MaxSessions <= 0 {
		out.MaxSessions = DefaultMaxSessions
	}
	if out.Logger == nil {
		out.Logger = slog.New(slog.DiscardHandler)
	}
	return out
}

// Mount returns the function alkhttp.Config.MCP takes: it builds the to_mcp
// projection of the handler's Gateway with opts (nil: defaults), served at /mcp
// behind the Bearer layer.
func Mount(opts *ServerOptions) func(*alkhttp.Gateway) http.Handler {
	return func(gw *alkhttp.Gateway) http.Handler { return NewHandler(gw, opts) }
}

// NewHandler returns the to_mcp projection of gw: a streamable-HTTP MCP endpoint with
// stateful sessions, whose tools/list always answers the four tools search, schema,
// call and batch (see the package documentation). Identity is resolved for every tool
// call from the Authorization header of the HTTP request that carries it, never
// pinned to the session. opts may be nil. It panics when gw or gw.Registry is nil.
//
// The handler also implements io.Closer: Close ends every open session, for a node
// shutting down (sessions otherwise end with the client's DELETE or the idle
// timeout).
func NewHandler(gw *alkhttp.Gateway, opts *ServerOptions) http.Handler {
	if gw == nil || gw.Registry == nil {
		panic("mcp: NewHandler needs a Gateway with a Registry")
	}
	o := opts.withDefaults()
	p := &projection{gw: gw, maxBatch: o.MaxBatchItems}

	srv := sdk.NewServer(&sdk.Implementation{Name: ServerName, Version: serverVersion}, &sdk.ServerOptions{
		Instructions: o.Instructions,
		Logger:       o.Logger,
		// Only the tools capability: no logging, prompts or resources.
		Capabilities: &sdk.ServerCapabilities{Tools: &sdk.ToolCapabilities{}},
	})
	for _, t := range p.tools() {
		srv.AddTool(t.tool, t.handler)
	}
	srv.AddReceivingMiddleware(unknownToolMiddleware)

	h := sdk.NewStreamableHTTPHandler(func(*http.Request) *sdk.Server { return srv }, &sdk.StreamableHTTPOptions{
		Logger:              o.Logger,
		SessionTimeout:      o.SessionTimeout,
		MaxRequestBodyBytes: o.MaxBodyBytes,
		// The SDK answers 403 to a request that reached a loopback address with a
		// Host that is not loopback, against DNS rebinding of browser-reachable local
		// servers. Alknet serves HTTP only on authenticated QUIC streams and on its
		// TLS listener, never on a plaintext port a page could rebind to, and node
		// addresses are often loopback in tests and behind tunnels: the check would
		// only refuse legitimate clients.
		DisableLocalhostProtection: true,
	})
	return &serverHandler{sdk: h, srv: srv, maxBody: o.MaxBodyBytes, maxSessions: o.MaxSessions}
}

// serverVersion is the version the projection reports; the projection's contract, not
// the node's build.
const serverVersion = "1.0.0"

// sessionIDHeader is the streamable-HTTP session header.
const sessionIDHeader = "Mcp-Session-Id"

// serverHandler bounds request bodies and sessions before the SDK sees a request.
type serverHandler struct {
	sdk         http.Handler
	srv         *sdk.Server
	maxBody     int64
	maxSessions int
}

func (h *serverHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.ContentLength > h.maxBody {
		http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
		return
	}
	if r.Body != nil {
		r.Body = http.MaxBytesReader(w, r.Body, h.maxBody)
	}
	if r.Method == http.MethodPost && r.Header.Get(sessionIDHeader) == "" && h.sessions() >= h.maxSessions {
		w.Header().Set("Retry-After", "1")
		http.Error(w, "too many sessions", http.StatusServiceUnavailable)
		return
	}
	h.sdk.ServeHTTP(w, r)
}

// Close ends every open session (each after its requests in flight), as a client's
// DELETE would. The handler keeps serving: a client may open a new session.
func (h *serverHandler) Close() error {
	for ss := range h.srv.Sessions() {
		_ = ss.Close()
	}
	return nil
}

// sessions counts the open sessions.
func (h *serverHandler) sessions() int {
	n := 0
	for range h.srv.Sessions() {
		n++
	}
	return n
}

// projection holds what the four tools share.
type projection struct {
	gw       *alkhttp.Gateway
	maxBatch int
}

// serverTool is one tool and its handler.
type serverTool struct {
	tool    *sdk.Tool
	handler sdk.ToolHandler
}

// Input schemas of the four tools (JSON Schema 2020-12, each of type object as MCP
// requires).
const (
	searchInputSchema = `{"type":"object","properties":{"query":{"type":"string","description":"Only operations whose name or description contains this text, ignoring case; all when absent or empty."}}}`
	schemaInputSchema = `{"type":"object","properties":{"name":{"type":"string","description":"The operation name, such as notes/get."}},"required":["name"]}`
	callInputSchema   = `{"type":"object","properties":{"operation":{"type":"string","description":"The operation name, such as notes/get."},"input":{"type":"object","description":"The operation's input, as its schema describes; {} when absent."}},"required":["operation"]}`
	batchInputSchema  = `{"type":"object","properties":{"calls":{"type":"array","description":"The calls, run one after the other in this order.","items":{"type":"object","properties":{"operation":{"type":"string"},"input":{"type":"object"}},"required":["operation"]}}},"required":["calls"]}`
)

// tools returns the four tools.
func (p *projection) tools() []serverTool {
	readOnly := &sdk.ToolAnnotations{ReadOnlyHint: true, IdempotentHint: true}
	return []serverTool{
		{&sdk.Tool{Name: ToolSearch, Description: "List the operations you may call: {operations: [{name, description}]}. Subscriptions are not listed.", InputSchema: json.RawMessage(searchInputSchema), Annotations: readOnly}, p.search},
		{&sdk.Tool{Name: ToolSchema, Description: "Describe one operation: its type, input schema, output schema and declared errors.", InputSchema: json.RawMessage(schemaInputSchema), Annotations: readOnly}, p.schema},
		{&sdk.Tool{Name: ToolCall, Description: "Call one operation with an input and return its output.", InputSchema: json.RawMessage(callInputSchema)}, p.call},
		{&sdk.Tool{Name: ToolBatch, Description: "Call several operations one after the other: {results: [{isError, output | error}]} in request order.", InputSchema: json.RawMessage(batchInputSchema)}, p.batch},
	}
}

// isKnownTool reports whether name is one of the projection's tools.
func isKnownTool(name string) bool {
	switch name {
	case ToolSearch, ToolSchema, ToolCall, ToolBatch:
		return true
	}
	return false
}

// unknownToolMiddleware answers a tools/call naming another tool with a NOT_FOUND tool
// error instead of the SDK's JSON-RPC "invalid params" error.
func unknownToolMiddleware(next sdk.MethodHandler) sdk.MethodHandler {
	return func(ctx context.Context, method string, req sdk.Request) (sdk.Result, error) {
		if method == "tools/call" {
			if r, ok := req.(*sdk.CallToolRequest); ok && r.Params != nil && !isKnownTool(r.Params.Name) {
				return errorResult(call.Errorf(call.CodeNotFound, "tool not found: %s", r.Params.Name)), nil
			}
		}
		return next(ctx, method, req)
	}
}

// identity resolves the Bearer token of the HTTP request that carried req; nil for an
// anonymous caller.
func (p *projection) identity(req *sdk.CallToolRequest) *core.Identity {
	if req == nil || req.Extra == nil || req.Extra.Header == nil {
		return nil
	}
	tok, ok := alkhttp.BearerToken(req.Extra.Header)
	if !ok {
		return nil
	}
	defer wipe(tok)
	return p.gw.ResolveBearer(tok)
}

// arguments parses a tool call's arguments as an object of raw fields. Absent and
// null arguments are an empty object.
func arguments(req *sdk.CallToolRequest) (map[string]json.RawMessage, *call.CallError) {
	var raw json.RawMessage
	if req != nil && req.Params != nil {
		raw = bytes.TrimSpace(req.Params.Arguments)
	}
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return map[string]json.RawMessage{}, nil
	}
	if raw[0] != '{' {
		return nil, call.NewCallError(call.CodeInvalidInput, "arguments must be a JSON object")
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, call.NewCallError(call.CodeInvalidInput, "arguments are not valid JSON")
	}
	return m, nil
}

// isNull reports whether a field is absent or JSON null.
func isNull(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	return len(t) == 0 || bytes.Equal(t, []byte("null"))
}

// stringField reads the required string field name of args.
func stringField(args map[string]json.RawMessage, name string) (string, *call.CallError) {
	raw, ok := args[name]
	if !ok || isNull(raw) {
		return "", missingField(name)
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", call.Errorf(call.CodeInvalidInput, "field %s must be a string", name)
	}
	if s == "" {
		return "", missingField(name)
	}
	return s, nil
}

func missingField(name string) *call.CallError {
	return call.Errorf(call.CodeInvalidInput, "missing required field: %s", name)
}

// listedOp is one entry of the services/list output.
type listedOp struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	OpType    string `json:"op_type"`
}

// searchedOp is one entry of the search tool's result.
type searchedOp struct {
	Name        string `json:"name"`
	Description string `json:"description"`
}

// search answers the search tool: services/list for the caller, subscriptions
// removed, each with a synthesized description, narrowed by the optional query.
func (p *projection) search(ctx context.Context, req *sdk.CallToolRequest) (*sdk.CallToolResult, error) {
	args, cerr := arguments(req)
	if cerr != nil {
		return errorResult(cerr), nil
	}
	var query string
	if raw, ok := args["query"]; ok && !isNull(raw) {
		if json.Unmarshal(raw, &query) != nil {
			return errorResult(call.NewCallError(call.CodeInvalidInput, "field query must be a string")), nil
		}
	}
	res := p.gw.Invoke(ctx, p.identity(req), call.OpServicesList, json.RawMessage("{}"))
	if res.Err != nil {
		return errorResult(res.Err), nil
	}
	var list struct {
		Operations []listedOp `json:"operations"`
	}
	if err := json.Unmarshal(res.Output, &list); err != nil {
		return errorResult(call.NewCallError(call.CodeInternal, "services/list answered an unexpected shape")), nil
	}
	q := strings.ToLower(query)
	ops := make([]searchedOp, 0, len(list.Operations))
	for _, op := range list.Operations {
		if op.OpType == call.Subscription.String() {
			continue
		}
		d := op.OpType + " operation " + op.Name + " in namespace " + op.Namespace
		if q != "" && !strings.Contains(strings.ToLower(op.Name), q) && !strings.Contains(strings.ToLower(d), q) {
			continue
		}
		ops = append(ops, searchedOp{Name: op.Name, Description: d})
	}
	out, err := json.Marshal(struct {
		Operations []searchedOp `json:"operations"`
	}{ops})
	if err != nil {
		return errorResult(call.NewCallError(call.CodeInternal, "search result not serialisable")), nil
	}
	return okResult(out), nil
}

// schema answers the schema tool through Gateway.Schema: Internal and unknown
// operations are NOT_FOUND.
func (p *projection) schema(ctx context.Context, req *sdk.CallToolRequest) (*sdk.CallToolResult, error) {
	args, cerr := arguments(req)
	if cerr != nil {
		return errorResult(cerr), nil
	}
	name, cerr := stringField(args, "name")
	if cerr != nil {
		return errorResult(cerr), nil
	}
	return gatewayResult(p.gw.Schema(ctx, p.identity(req), name)), nil
}

// call answers the call tool through Gateway.Invoke; input defaults to {}.
func (p *projection) call(ctx context.Context, req *sdk.CallToolRequest) (*sdk.CallToolResult, error) {
	args, cerr := arguments(req)
	if cerr != nil {
		return errorResult(cerr), nil
	}
	op, input, cerr := callArgs(args)
	if cerr != nil {
		return errorResult(cerr), nil
	}
	return gatewayResult(p.gw.Invoke(ctx, p.identity(req), op, input)), nil
}

// callArgs reads {operation, input?}; an absent or null input is {}.
func callArgs(args map[string]json.RawMessage) (string, json.RawMessage, *call.CallError) {
	op, cerr := stringField(args, "operation")
	if cerr != nil {
		return "", nil, cerr
	}
	input := args["input"]
	if isNull(input) {
		input = json.RawMessage("{}")
	}
	return op, input, nil
}

// batchItem is one entry of the batch tool's result.
type batchItem struct {
	IsError bool            `json:"isError"`
	Output  json.RawMessage `json:"output,omitempty"`
	Error   *call.CallError `json:"error,omitempty"`
}

// batch answers the batch tool: the calls run one after the other; each item is
// {isError: false, output} or {isError: true, error}, in request order.
func (p *projection) batch(ctx context.Context, req *sdk.CallToolRequest) (*sdk.CallToolResult, error) {
	args, cerr := arguments(req)
	if cerr != nil {
		return errorResult(cerr), nil
	}
	raw, ok := args["calls"]
	if !ok || isNull(raw) {
		return errorResult(missingField("calls")), nil
	}
	var calls []json.RawMessage
	if t := bytes.TrimSpace(raw); len(t) == 0 || t[0] != '[' || json.Unmarshal(t, &calls) != nil {
		return errorResult(call.NewCallError(call.CodeInvalidInput, "field calls must be an array of {operation, input} objects")), nil
	}
	if len(calls) > p.maxBatch {
		return errorResult(call.Errorf(call.CodeInvalidInput, "batch of %d calls exceeds the limit of %d", len(calls), p.maxBatch)), nil
	}
	id := p.identity(req)
	items := make([]batchItem, 0, len(calls))
	for _, c := range calls {
		var m map[string]json.RawMessage
		if t := bytes.TrimSpace(c); len(t) == 0 || t[0] != '{' || json.Unmarshal(t, &m) != nil {
			items = append(items, batchItem{IsError: true, Error: call.NewCallError(call.CodeInvalidInput, "each call must be a JSON object {operation, input}")})
			continue
		}
		op, input, cerr := callArgs(m)
		if cerr != nil {
			items = append(items, batchItem{IsError: true, Error: cerr})
			continue
		}
		res := p.gw.Invoke(ctx, id, op, input)
		if res.Err != nil {
			items = append(items, batchItem{IsError: true, Error: res.Err})
			continue
		}
		items = append(items, batchItem{Output: res.Output})
	}
	out, err := json.Marshal(struct {
		Results []batchItem `json:"results"`
	}{items})
	if err != nil {
		return errorResult(call.NewCallError(call.CodeInternal, "batch result not serialisable")), nil
	}
	return okResult(out), nil
}

// gatewayResult turns a gateway result into a tool result.
func gatewayResult(res alkhttp.Result) *sdk.CallToolResult {
	if res.Err != nil {
		return errorResult(res.Err)
	}
	return okResult(res.Output)
}

// okResult is a successful tool result: structuredContent is the output when it is
// a JSON object, else {"output": output}; one text block carries the same JSON.
func okResult(out json.RawMessage) *sdk.CallToolResult {
	obj := structured(out)
	return &sdk.CallToolResult{
		StructuredContent: obj,
		Content:           []sdk.Content{&sdk.TextContent{Text: string(obj)}},
	}
}

// errorResult is a failed tool result: isError, structuredContent the CallError
// JSON and one text block carrying the same JSON.
func errorResult(e *call.CallError) *sdk.CallToolResult {
	b, err := json.Marshal(e)
	if err != nil {
		b, _ = json.Marshal(call.NewCallError(call.CodeInternal, "error not serialisable"))
	}
	return &sdk.CallToolResult{
		IsError:           true,
		StructuredContent: json.RawMessage(b),
		Content:           []sdk.Content{&sdk.TextContent{Text: string(b)}},
	}
}

// structured returns out when it is a JSON object, else {"output": out} (MCP
// clients before the 2026 revision require structuredContent to be an object). A
// nil or empty output is null.
func structured(out json.RawMessage) json.RawMessage {
	t := bytes.TrimSpace(out)
	if len(t) > 0 && t[0] == '{' {
		return t
	}
	if len(t) == 0 {
		t = json.RawMessage("null")
	}
	b := make([]byte, 0, len(t)+12)
	b = append(b, `{"output":`...)
	b = append(b, t...)
	b = append(b, '}')
	return b
}

// wipe zeroes b.
func wipe(b []byte) {
	for i := range b {
		b[i] = 0
	}
}
