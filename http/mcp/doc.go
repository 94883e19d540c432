// Package mcp connects an Alknet call registry with the Model Context Protocol, in
// both directions, over MCP's streamable-HTTP transport only. Importing this package
// is what links the official MCP Go SDK (github.com/modelcontextprotocol/go-sdk) into
// a binary: package http itself does not, so nodes that serve no MCP do not carry it.
// The SDK's stdio and command transports are never used, and the linker drops them
// (a test checks the symbol table of a binary using this package).
//
// # to_mcp: the registry as an MCP server
//
// [NewHandler] (or [Mount], for alkhttp.Config.MCP, which serves it at /mcp behind
// the Bearer layer) projects a node's Gateway as an MCP server named "alknet-to-mcp"
// with stateful sessions. Only the tools capability is offered, and tools/list always
// answers the same four tools:
//
//	search  {query?: string}                        → {operations: [{name, description}]}
//	schema  {name: string}                          → the operation's spec (services/schema)
//	call    {operation: string, input?: object}     → the operation's output
//	batch   {calls: [{operation, input?}]}          → {results: [{isError, output | error}]}
//
// search runs services/list for the caller, leaves subscriptions out, describes each
// operation as "<op_type> operation <name> in namespace <ns>", and, when query is a
// non-empty string, keeps the operations whose name or description contains it,
// ignoring case. schema is Gateway.Schema: an Internal operation is NOT_FOUND, as an
// unknown one. call is Gateway.Invoke with input {} when absent or null; a
// subscription answers INVALID_OPERATION_TYPE. batch runs its calls one after the
// other, in order, at most ServerOptions.MaxBatchItems of them; a malformed item
// gets an INVALID_INPUT error item and the others still run.
//
// A successful tool call answers structuredContent = the output when the output is
// a JSON object, and {"output": <output>} otherwise, because MCP revisions before
// 2026-07-28 define structuredContent as an object; one text content block carries
// the same JSON, for clients that read only text. A failure is a tool result, never a
// JSON-RPC error: isError true, structuredContent the CallError
// {code, message, retryable, details?} and the same JSON as text. Missing
// arguments answer INVALID_INPUT "missing required field: <name>"; a tools/call
// naming another tool answers NOT_FOUND "tool not found: <name>" (a receiving
// middleware answers it before the SDK, which would send a JSON-RPC error).
//
// The caller's identity is resolved for every tool call from the Authorization
// header of the HTTP request carrying that call (alkhttp.BearerToken, then
// Gateway.ResolveBearer), never pinned when the session is initialized: one session
// used with two tokens sees two identities. The operation's access rule is the only
// gate; an anonymous caller reaches what needs no identity.
//
// Request bodies are bounded by ServerOptions.MaxBodyBytes (413 above it), idle
// sessions close after ServerOptions.SessionTimeout (30 minutes by default), and at
// most ServerOptions.MaxSessions are open at once (503 beyond). The SDK's DNS
// rebinding protection (403 for a loopback connection with a non-loopback Host) is
// disabled: Alknet serves HTTP only on authenticated QUIC streams and on its TLS
// listener, which a rebinding page cannot reach as a plaintext local server.
//
// # from_mcp: an MCP server's tools as operations
//
// An [Importer] is a call.OperationAdapter. [Importer.Import] opens a session with
// the server at ImportConfig.Endpoint (client name "alknet-from-mcp", the
// importer's own credential), lists its tools across pages, at most
// ImportLimits.MaxTools of them, and returns one registration per tool:
//
//   - named "<Namespace>/<tool>", a Mutation, Internal unless ImportConfig.Expose,
//     with provenance from_mcp, no authority, scoped environment or capabilities;
//   - input schema the tool's inputSchema; output schema its outputSchema when it
//     declares one, else the schema of an array of content blocks (text {text},
//     image {data, mimeType}, audio {data, mimeType}, resource {resource},
//     resource_link {uri, name});
//   - one declared error, MCP_TOOL_ERROR, without an HTTP status.
//
// A tool whose name does not make a valid operation name, or whose schemas the
// registry refuses, is skipped with a warning naming the tool. Import errors are
// *call.AdapterError: Unauthorized when the server answers the connect with 401 or
// 403 (or its error says "unauthorized"), DiscoveryFailed for any other connect or
// tools/list failure, SamePeerCollision for two tools of one name.
//
// A forwarded call is one tools/call on the importer's session. The input is sent
// as the arguments when it is a JSON object, and as {"value": <input>} otherwise
// (the registry validates the input against the tool's schema first, which is
// normally an object schema). The credential comes from the call: oc.Caps.Get of the
// namespace ("api_key:<ns>", then "http_token:<ns>", as for OpenAPI imports) is sent
// as "Authorization: Bearer <credential>" on that call's HTTP requests only; without
// one, none is sent. The session's own requests (initialize, tools/list,
// notifications, the closing DELETE) carry ImportConfig.Credential. A transport
// failure is INTERNAL "tools/call failed: …"; a result with isError is the
// CallError MCP_TOOL_ERROR whose details are the content blocks; otherwise the output
// is structuredContent when present, else the content blocks as a JSON array (text
// blocks are never parsed as JSON). Every response body is bounded by
// ImportLimits.MaxResponseBytes; a call whose answer is larger fails with INTERNAL
// naming the limit. Cancelling a call's context cancels it on the server
// (notifications/cancelled).
//
// When the session is gone (the server restarted or expired it, and answers 404 for
// it), the importer connects again and retries the call once, but only when none of
// that call's HTTP requests reached the server (every answer was a 404, or no request
// was sent because the session had already failed), so a tool never runs twice for
// one call. A call that may have reached the server is never repeated: it fails, and
// the next call reconnects if the session is unusable. A later Import on a lost
// session connects again too (tools/list is safe to repeat).
//
// The SDK decodes results and schemas into Go values, so numbers in them pass
// through float64: integers beyond 2^53 lose precision. The standalone GET stream is
// not opened (server-initiated messages are not used). Nothing here reads the
// environment; without ImportConfig.HTTPClient the importer uses a transport of its
// own with direct connections. Redirects are not followed, and the credential is only
// ever sent to the endpoint's origin. [Importer.Close] ends the session (DELETE),
// after the calls in flight, and wipes the credential.
package mcp
