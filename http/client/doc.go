// Package client is Alknet's shared outbound HTTP client: the one the OpenAPI and MCP
// importers use to forward operation calls to external HTTP APIs.
//
// A [Shared] is built once with [New] and swapped atomically with [Shared.Reload]
// when the configuration changes; the replaced transport's idle connections are
// closed. Every request goes through an in-house chain of round trippers:
//
//	Retry-After gate → transient retry → *http.Transport
//
// The Retry-After gate remembers, per exact URL (scheme://host/path?query, without
// userinfo or fragment), the deadline announced by the Retry-After header of a 429
// or 503 response, and makes the next request to that URL wait until the deadline
// (or until the request's context ends). A deadline is recorded from every 429 or
// 503 attempt, retries included, and stays until it passes: a later success does
// not clear it. The gate's wait is not capped by [RetryPolicy.MaxDelay] (that cap
// applies to the waits between retries): bound it with the request's context. The
// memory is bounded ([DefaultRetryAfterCapacity] entries by default; when full,
// expired entries are dropped, then the entry with the earliest deadline is
// evicted) and is kept across reloads.
//
// The transient retry layer retries idempotent requests (GET, HEAD, OPTIONS, TRACE,
// PUT, DELETE, or any request carrying an Idempotency-Key header) on transport
// errors and on 5xx, 408 and 429 responses, with exponential backoff and jitter.
// POST and PATCH are not retried unless [RetryPolicy.RetryNonIdempotent] is set.
//
// Credentials are never part of the client: callers set them on each request. The
// package never reads environment variables: requests go direct unless
// [Config.Proxy] names a proxy. Logs carry at most a request's method and host and
// a response's status, never query strings, headers or bodies.
package client
