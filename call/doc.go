// Package call is Alknet's structured RPC layer, served on the ALPN "alknet/call".
//
// One connection gives access to a whole operation registry, and either side may call
// the other. Every message is an EventEnvelope — {"type", "id", "payload"} JSON —
// framed on byte streams with a 4-byte big-endian length (QUIC streams, the single
// stream of a TCP+TLS connection) and carried one per message on message transports
// (WebSocket). Requests are correlated by id, not by stream.
//
// The package holds the wire format (Envelope, ReadFrame, WriteFrame, CallError and the
// error codes), the operation registry (OperationSpec, AccessControl, Registry,
// Registration with one-shot or streaming handlers, JSON Schema validation of inputs),
// composition (OpContext, OperationEnv, abort policies), the connection engine shared by
// the accepting and the dialing side (Dispatcher, Conn), the client (Dial, Call,
// Subscribe) and the import of a peer's operations (FromCall).
package call
