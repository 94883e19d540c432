// Package http serves a node's call registry over HTTP and is the home of Alknet's
// HTTP-facing pieces.
//
// A Handler is both a core.ProtocolHandler and an http.Handler. As a protocol
// handler it serves the alknet/http ALPN (HTTP/1.1 or prior-knowledge h2 on every QUIC
// stream of a connection, for native clients; see ClientTransport) and, registered
// under "h2" and "http/1.1", the TCP+TLS listener that browsers and curl reach; one
// net/http server runs per connection. As an http.Handler it can be mounted in an
// embedder's own server.
//
// Handler.HTTP3 serves the same routes over HTTP/3: a handler for the "h3" ALPN on the
// QUIC listener (quic-go's http3 server on each connection; no WebTransport), with the
// identity, limits and busy marks of alknet/http. Once it is up,
// Handler.AdvertiseHTTP3 makes the responses on the TCP+TLS listener carry
// `Alt-Svc: h3=":PORT"; ma=86400`, so browsers move to it.
//
// Its routes, in the order they are matched:
//
//	GET  /healthz        200 "ok", no authentication
//	GET  /search         services/list for the caller
//	GET  /schema?name=   the spec of one External operation
//	POST /call           {"operation", "input"?} → {"request_id", "result":"ok", "output"}
//	POST /batch          [{"operation", "input"?}, ...] → {"results": [...]}, always 200
//	POST /subscribe      Server-Sent Events: a data: line per output, event: error at the end
//	GET  /openapi.json   the gateway's OpenAPI 3.0.0 document
//	GET  /alknet/call    the call protocol over WebSocket, for browsers
//	     /mcp            Config.MCP: the MCP projection (package mcp), when set
//	Config.Routes        the embedder's own routes, behind the Bearer layer
//	anything else        the decoy (an nginx 404 page by default)
//
// Every gateway route goes through one Gateway, the dispatch spine: a Bearer token
// resolved with the node's core.IdentityProvider (never required: the operation's
// access rule decides), a fresh root context that is never internal, Internal
// operations indistinguishable from unknown ones, and CallErrors mapped to statuses by
// StatusFor.
//
// # Hardening
//
// A Bearer token (header, WebSocket subprotocol, /mcp, the auth_token of a request on
// the WebSocket) that does not resolve is an authentication attempt of its connection, logged with core.LogAuthFailure (the
// token never; an API key's public prefix at most): after core.Limits.MaxAuthAttempts
// failures the next credential presented is answered 429 (on the WebSocket: close
// 1008 "too many authentication attempts") and the connection closed.
// Bodies and WebSocket messages are read incrementally against the connection's
// memory budget (core.Connection.Budget; 503 or close 1008 when it has no room) and,
// for a caller without an identity, capped at core.Limits.MaxAnonymousFrameBytes. A
// body must arrive within Limits.BodyReadTimeout (408). The connection is marked busy
// while a request runs, so the endpoint's idle timeout closes only connections idle
// between requests. A WebSocket or /subscribe stream opened with a token that a
// reload of the identities revokes is closed (1008 "credential revoked", or an
// event: error FORBIDDEN). Config.NodeLimits passes the node's limits.
//
// # WebSocket
//
// GET /alknet/call upgrades an HTTP/1.1 request to a WebSocket that speaks the call
// protocol natively: one binary message carries one EventEnvelope
// ({"type","id","payload"} JSON, no length prefix), in both directions, so the page can
// call the node's operations (discovery included: services/list, services/schema) and
// the node can call operations the page serves. Identity is required at the upgrade
// — a Bearer header, or, since browsers cannot set headers on a WebSocket, the
// subprotocol WebSocketBearerPrefix+token offered beside WebSocketSubprotocol — and
// is otherwise answered 401 before upgrading; a request that is not an upgrade gets
// the decoy. A call.requested may carry its own auth_token, which replaces the
// identity for that request. A text message closes the socket with 1002 "text
// messages not supported", a binary message that is not an envelope with 1002
// "invalid EventEnvelope", one over WebSocketConfig.MaxMessageBytes with 1009
// "message exceeds <n> bytes", one the memory budget has no room for with 1008 and the
// limit's name, and a revoked credential with 1008 "credential revoked".
// Requests run concurrently; answers go out one message at a time. A browser is not
// a peer: what it serves is reachable by the node only through its connection
// (WebSocketConfig.OnConnect, or call.ConnFrom in a handler serving its request,
// then call.FromCall, Conn.RegisterImported and Conn.OverlayEnv), under those
// operations' own access rules, and gone when it disconnects; closing fails the
// node's pending calls to it and cancels the work it started. WebSocket runs over
// HTTP/1.1 only (browsers open a separate HTTP/1.1 connection for it when the page
// came over h2).
//
// Subpackages: client is the shared outbound HTTP client, and openapi imports
// external HTTP APIs (OpenAPI 3 documents, single JSON-Schema endpoints) as operations
// that forward to them, and mcp projects the gateway as an MCP server (to_mcp, mounted
// with Config.MCP) and imports MCP servers' tools (from_mcp); only embedders who import
// mcp link the MCP SDK.
package http
