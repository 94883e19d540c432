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
// Its routes, in the order they are matched:
//
//	GET  /healthz        200 "ok", no authentication
//	GET  /search         services/list for the caller
//	GET  /schema?name=   the spec of one External operation
//	POST /call           {"operation", "input"?} → {"request_id", "result":"ok", "output"}
//	POST /batch          [{"operation", "input"?}, ...] → {"results": [...]}, always 200
//	POST /subscribe      Server-Sent Events: a data: line per output, event: error at the end
//	GET  /openapi.json   the gateway's OpenAPI 3.0.0 document
//	Config.Routes        the embedder's own routes, behind the Bearer layer
//	anything else        the decoy (an nginx 404 page by default)
//
// Every gateway route goes through one Gateway, the dispatch spine: a Bearer token
// resolved with the node's core.IdentityProvider (never required: the operation's
// access rule decides), a fresh root context that is never internal, Internal
// operations indistinguishable from unknown ones, and CallErrors mapped to statuses by
// StatusFor.
//
// Subpackages: client is the shared outbound HTTP client, and openapi imports
// external HTTP APIs (OpenAPI 3 documents, single JSON-Schema endpoints) as operations
// that forward to them.
package http
