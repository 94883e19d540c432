// Package msg is Alknet's sealed store-and-forward messaging on the "alknet/msg" ALPN:
// envelopes sealed with HPKE (RFC 9180) to a recipient's X25519 key and signed inside the
// encryption by the sender's Ed25519 key, delivered to the recipient's home node and
// kept in a mailbox until the owner fetches and acknowledges them.
package msg
