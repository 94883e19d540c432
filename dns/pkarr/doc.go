// Package pkarr implements pkarr (public-key addressable resource records): DNS records
// published under the TLD "<z32>." of an Ed25519 public key, where <z32> is the key's
// 52-character z-base-32 form, signed by that key.
//
// The package provides:
//
//   - the key codec: [ZBase32Key] and [ParseKey];
//   - the SignedPacket codec: public key ‖ signature ‖ 8-byte big-endian timestamp in
//     microseconds ‖ compressed DNS packet (< 1000 bytes), signed over the BEP 44 bencoded
//     form "3:seqi<ts>e1:v<len>:<packet>" ([Sign], [Decode], [DecodeRelayPayload]);
//   - a relay client speaking pkarr's HTTP relay API ([Client]);
//   - a [Republisher] that keeps a packet fresh on a set of relays;
//   - a relay server as an http.Handler with a bounded, verified cache ([Relay]).
//
// Every packet is verified (lengths first, then signature, packet syntax, that every
// record sits under the signer's TLD, and that the timestamp is not too far in the future)
// before it is returned, cached or served. Mainline DHT access is not implemented.
//
// DNS messages come from github.com/miekg/dns, which this package imports as mdns.
package pkarr
