// Package http serves Alknet over HTTP: the gateway that lets any HTTP client search,
// describe, call and subscribe to the operations of a call registry, on the
// alknet/http ALPN (HTTP/1.1 and prior-knowledge h2 over QUIC streams) and on h2 and
// http/1.1 over the TCP+TLS listener.
package http
