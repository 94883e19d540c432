// Package msg is Alknet's sealed store-and-forward messaging on the "alknet/msg" ALPN:
// envelopes sealed with HPKE (RFC 9180) to a recipient's X25519 key and signed inside the
// encryption by the sender's Ed25519 key, delivered to the recipient's home node and
// kept in a mailbox until the owner fetches and acknowledges them.
//
// # Crypto
//
// A mailbox is named by its owner's Ed25519 identity key ([Mailbox]: the key's
// z-base-32 form). The owner publishes a [KeyBundle]: a separate X25519 key and a
// not_after time, signed by the identity key. [Seal] verifies the bundle, signs the
// message (sender, recipient, id, time, content type and a hash of the body) and
// encrypts it with HPKE base mode, DHKEM(X25519, HKDF-SHA256), HKDF-SHA256,
// ChaCha20-Poly1305 (the suite travels in the envelope), binding the outer header as
// associated data. The plaintext is padded to a size bucket (256 B, 1 KiB, 4 KiB,
// 16 KiB, 64 KiB, then multiples of 64 KiB) so that sizes leak little. [Open] reverses
// it and rejects anything changed, re-addressed or forwarded. There is no forward
// secrecy end to end: rotate bundles with a short not_after.
//
// # Protocol
//
// Each request is one frame (a 4-byte big-endian length and a JSON object) on a
// bidirectional stream the client opens, answered by one frame on the same stream; on
// a single-stream connection (TCP+TLS) requests and responses alternate on the one
// stream. Requests are decoded strictly: unknown, duplicate or non-lowercase keys,
// trailing data and nesting deeper than 8 levels are BAD_REQUEST. Responses are
// {"ok":true,...} or {"ok":false,"error":{"code":...,"message":...}} with the codes of
// [ErrorCode]. Operations:
//
//	keys.get {mailbox}                         -> {bundle}                  anyone
//	keys.put {bundle}                          -> {}                        the owner
//	deliver  {envelope}                        -> {id, accepted_at, duplicate}  msg:send
//	fetch    {mailbox?, after?, limit?, wait_ms?} -> {envelopes, next}       the owner
//	ack      {mailbox?, ids}                   -> {deleted}                 the owner
//
// The owner is whoever proved the mailbox's Ed25519 key in the TLS handshake (its client
// certificate). Delivery needs an identity with scope msg:send, or Config.AllowAnonymous
// (then limited per remote address). deliver is idempotent on (mailbox, id): a retry is
// answered with the first acceptance. fetch returns envelopes in the order the node
// accepted them, at most 100 and at most a frame's worth per page, and with wait_ms
// (up to 60 s) waits for a delivery when there is nothing new.
//
// # Limits and defaults
//
//   - Frame: 256 KiB ([DefaultMaxFrameBytes], Config.MaxFrameBytes up to 2 MiB), checked
//     before anything is allocated and read into a buffer charged to the connection's
//     memory budget as it grows. The largest body a frame cap carries is
//     [MaxBodyForFrame] (about 127 KiB at 256 KiB); Seal itself takes up to
//     [MaxBodySize] (1 MiB), which needs max_frame_bytes of about 1.42 MiB
//     ([FrameSizeForBody]), for instance "1536KiB".
//   - Mailbox: 10000 envelopes and 256 MiB; TTL 7 days by default, clamped to 30 days;
//     ts at most 1 hour in the future; expired envelopes purged every 10 minutes.
//   - Rate: 120 deliveries per minute per sender, 10 per minute per address for
//     anonymous senders.
//   - Every stream has a 30 s deadline to deliver its request ([RequestTimeout]).
//
// # Storage
//
// Mailboxes live in a [Store]: [NewMemStore] here, bbolt and PostgreSQL in the
// sub-packages boltstore and pgstore. [NewServer] takes the store it is given; the
// assembly layer maps Config.Store to one.
package msg
