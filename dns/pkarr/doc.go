// Package pkarr implements pkarr (public-key addressable resource records): DNS records
// published under the TLD "<z32>." of an Ed25519 public key, where <z32> is the key's
// 52-character z-base-32 form, and signed by that key.
//
// The package provides:
//
//   - the key codec: [ZBase32Key] and [ParseKey] (an optional "pk:" prefix, any case);
//   - the SignedPacket codec: public key ‖ signature ‖ 8-byte big-endian timestamp in
//     microseconds ‖ compressed DNS packet of fewer than 1000 bytes, the signature made
//     over the BEP 44 bencoded form "3:seqi<ts>e1:v<len>:<packet>" ([Signable]). [Sign]
//     builds one through a crypto.Signer (the node's key stays behind a capability);
//     [Decode] and [DecodeRelayPayload] verify one;
//   - a relay client for pkarr's HTTP relay API ([Client]: Publish, Resolve with
//     If-Modified-Since);
//   - a [Republisher] that keeps a packet fresh on a set of relays (hourly with jitter,
//     and on change);
//   - a relay server, an http.Handler with a bounded cache of verified packets and
//     per-client rate limits ([Relay]), whose Records method hands a DNS front the
//     records of the keys it holds.
//
// Verification checks, in order: length bounds (before anything is allocated), the
// signature, that the DNS packet parses and holds what its header counts, that every
// record sits under the signer's TLD, and that the timestamp is at most [MaxFuture]
// ahead of a clock the caller passes in. Nothing is cached, served or returned
// unverified. A relay keeps a packet only if its timestamp is newer than the one held.
// Each rejection wraps an exported sentinel (ErrTooShort, ErrTooLarge,
// ErrBadSignature, ErrBadPacket, ErrNotUnderKey, ErrFuture, ErrNotNewer, ErrBadKey).
//
// Mainline DHT access is not implemented; relays are the only transport.
//
// DNS messages come from github.com/miekg/dns, imported here as mdns. This package
// never imports the alknet dns package; that package imports this one.
package pkarr
