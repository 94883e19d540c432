// Package core holds what every Alknet handler shares: the handler contract
// ([Handler], [ProtocolHandler], [Registry]), the connection and stream types
// ([Connection], [BiStream]) that hide whether a connection came over QUIC or TCP+TLS,
// the identity model ([AuthContext], [Identity], [PeerEntry], API keys, fingerprints),
// the live configuration ([DynamicStore]) and the secrets handed to handlers
// ([Capabilities]).
//
// It also holds what keeps an anonymous client from exhausting a node: memory budgets
// per connection, remote address and node ([Budget], [Connection.Budget]), the busy mark
// that keeps working connections from the idle timeout ([Connection.Busy]), the
// per-connection count of failed credentials ([AuthAttempts]), the shared
// authentication-failure log line ([LogAuthFailure]) and the re-check of open
// connections' credentials after a reload ([WatchRevocation]). Their limits are the
// fields of [Limits].
//
// Package core imports no transport. The endpoint that accepts QUIC and TCP+TLS
// connections and dispatches them by ALPN lives in package
// github.com/alknet/alknet/core/endpoint, TLS identities in .../core/tlsconf, and
// loopback test fixtures in .../core/coretest.
//
// A handler is registered per ALPN, like a path on a net/http ServeMux:
//
//	reg := core.NewRegistry()
//	reg.RegisterAs("alknet/echo", core.HandlerFunc(func(ctx context.Context, conn *core.Connection, auth core.AuthContext) error {
//		s, err := conn.AcceptBi(ctx)
//		if err != nil {
//			return err
//		}
//		io.Copy(s, s)
//		return s.CloseWrite()
//	}))
package core
