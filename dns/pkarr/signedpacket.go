package pkarr

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	mdns "github.com/miekg/dns"
)

// Sizes of a SignedPacket and of its relay payload.
const (
	// MaxPacketSize is the largest encoded DNS packet accepted: pkarr packets must be
	// smaller than 1000 bytes (the BEP 44 value limit), so 999.
	MaxPacketSize = 999
	// MinRelayPayload is the smallest relay payload: signature and timestamp with an
	// empty packet.
	MinRelayPayload = ed25519.SignatureSize + 8
	// MaxRelayPayload is the largest relay body a relay reads; longer bodies are refused
	// (HTTP 413) without being read. It is pkarr's announced limit, signature (64) +
	// timestamp (8) + 1000; a body of exactly this size still fails [MaxPacketSize].
	MaxRelayPayload = MinRelayPayload + 1000
	// MinSignedPacket and MaxSignedPacket bound the canonical form (key ‖ payload).
	MinSignedPacket = ed25519.PublicKeySize + MinRelayPayload
	MaxSignedPacket = ed25519.PublicKeySize + MaxRelayPayload

	// MaxFuture is how far a packet's timestamp may be ahead of the verifier's clock.
	// pkarr sets no rule; this is local policy against a publisher pinning a key's name
	// with a timestamp nobody can ever beat.
	MaxFuture = time.Hour
)

// Rejections. Every error the codec returns wraps exactly one of these; the text after
// the sentinel says which limit or check failed.
var (
	// ErrTooShort: a canonical packet under MinSignedPacket or a relay payload under
	// MinRelayPayload bytes.
	ErrTooShort = errors.New("pkarr: signed packet too short")
	// ErrTooLarge: an encoded DNS packet of 1000 bytes or more, or a relay payload over
	// MaxRelayPayload bytes.
	ErrTooLarge = errors.New("pkarr: signed packet too large")
	// ErrBadSignature: the Ed25519 signature does not verify for the packet's key (an
	// invalid key also lands here).
	ErrBadSignature = errors.New("pkarr: bad signature")
	// ErrBadPacket: the DNS packet does not parse, or Sign was given records that do not
	// pack.
	ErrBadPacket = errors.New("pkarr: bad DNS packet")
	// ErrNotUnderKey: a record's owner name is not the signer's TLD "<z32>." or below it.
	ErrNotUnderKey = errors.New("pkarr: record not under the signer's key")
	// ErrFuture: the timestamp is more than MaxFuture ahead of the verifier's clock.
	ErrFuture = errors.New("pkarr: timestamp too far in the future")
	// ErrBadTimestamp: Sign was given a time before the Unix epoch.
	ErrBadTimestamp = errors.New("pkarr: bad timestamp")
	// ErrBadSigner: the signer's public key is not an Ed25519 key, or its signature does
	// not verify.
	ErrBadSigner = errors.New("pkarr: bad signer")
)

// SignedPacket is a verified pkarr packet: records under one Ed25519 key's TLD, signed by
// that key. It is immutable; build one with [Sign] or [Decode].
type SignedPacket struct {
	raw     []byte // canonical form: key ‖ sig ‖ ts ‖ packet
	ts      uint64 // microseconds since the Unix epoch
	records []mdns.RR
}

// Signable returns the BEP 44 bencoded form that a packet's signature covers:
// "3:seqi<ts>e1:v<len>:<packet>", where ts is the timestamp in microseconds.
func Signable(ts uint64, packet []byte) []byte {
	b := make([]byte, 0, 32+len(packet))
	b = append(b, "3:seqi"...)
	b = strconv.AppendUint(b, ts, 10)
	b = append(b, "e1:v"...)
	b = strconv.AppendInt(b, int64(len(packet)), 10)
	b = append(b, ':')
	return append(b, packet...)
}

// Sign builds and signs a packet holding records at time ts (kept to the microsecond).
//
// The signer is a capability: its Public() must be an ed25519.PublicKey, and it is
// called as an Ed25519 signer (crypto.Hash(0)) over the BEP 44 form; the signature is
// verified before Sign returns. ed25519.PrivateKey is a crypto.Signer.
//
// Owner names: a fully qualified name (trailing dot) must be the key's TLD "<z32>." or
// below it (case-insensitive), otherwise ErrNotUnderKey; a relative name ("_alknet",
// "www.example") is qualified by appending "<z32>.", unless it already ends in the key
// ("www.<z32>"), which only gains the trailing dot; "", "@" and "." stand for the TLD
// itself. (pkarr's Rust builder also treats "foo." as relative; in miekg/dns a trailing
// dot means fully qualified, and Sign keeps that meaning.) The caller's records are not modified. Names inside RDATA (CNAME targets, SVCB
// targets) are packed as given and must be fully qualified.
//
// The packet is a DNS response (QR set, ID 0) with the records in the answer section,
// name-compressed; if it packs to 1000 bytes or more, Sign returns ErrTooLarge.
func Sign(signer crypto.Signer, ts time.Time, records []mdns.RR) (*SignedPacket, error) {
	pub, ok := signer.Public().(ed25519.PublicKey)
	if !ok || len(pub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: public key is %T, want ed25519.PublicKey", ErrBadSigner, signer.Public())
	}
	micros := ts.UnixMicro()
	if micros < 0 {
		return nil, fmt.Errorf("%w: %s is before the Unix epoch", ErrBadTimestamp, ts.UTC().Format(time.RFC3339))
	}
	tld := ZBase32Key(pub) + "."

	msg := new(mdns.Msg)
	msg.Response = true
	msg.Compress = true
	msg.Answer = make([]mdns.RR, 0, len(records))
	for i, rr := range records {
		if rr == nil {
			return nil, fmt.Errorf("%w: record %d is nil", ErrBadPacket, i)
		}
		name, err := qualify(rr.Header().Name, tld)
		if err != nil {
			return nil, fmt.Errorf("record %d: %w", i, err)
		}
		c := mdns.Copy(rr)
		c.Header().Name = name
		msg.Answer = append(msg.Answer, c)
	}
	packet, err := msg.Pack()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadPacket, err)
	}
	if len(packet) > MaxPacketSize {
		return nil, fmt.Errorf("%w: DNS packet is %d bytes, limit %d", ErrTooLarge, len(packet), MaxPacketSize)
	}

	u := uint64(micros)
	sig, err := signer.Sign(rand.Reader, Signable(u, packet), crypto.Hash(0))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadSigner, err)
	}
	if len(sig) != ed25519.SignatureSize || !ed25519.Verify(pub, Signable(u, packet), sig) {
		return nil, fmt.Errorf("%w: signature does not verify", ErrBadSigner)
	}

	raw := make([]byte, 0, MinSignedPacket+len(packet))
	raw = append(raw, pub...)
	raw = append(raw, sig...)
	raw = binary.BigEndian.AppendUint64(raw, u)
	raw = append(raw, packet...)
	// Decode the result rather than keep msg: the records a SignedPacket hands out are
	// always exactly what its bytes say.
	sp, err := parse(raw, time.UnixMicro(micros))
	if err != nil {
		return nil, err
	}
	return sp, nil
}

// qualify maps an owner name given to Sign to its fully qualified form under tld.
func qualify(name, tld string) (string, error) {
	switch name {
	case "", "@", ".":
		return tld, nil
	}
	if !mdns.IsFqdn(name) {
		if underTLD(name+".", tld) { // "www.<z32>": already ends in the key, as in pkarr
			return name + ".", nil
		}
		return name + "." + tld, nil
	}
	if !underTLD(name, tld) {
		return "", fmt.Errorf("%w: owner name is outside %s", ErrNotUnderKey, tld)
	}
	return name, nil
}

// underTLD reports whether the fully qualified name is tld or below it, ignoring case.
func underTLD(name, tld string) bool {
	if len(name) < len(tld) || !strings.EqualFold(name[len(name)-len(tld):], tld) {
		return false
	}
	if len(name) == len(tld) {
		return true
	}
	// The byte before the TLD must end a label: an unescaped dot.
	rest := name[:len(name)-len(tld)]
	if rest[len(rest)-1] != '.' {
		return false
	}
	backslashes := 0
	for i := len(rest) - 2; i >= 0 && rest[i] == '\\'; i-- {
		backslashes++
	}
	return backslashes%2 == 0
}

// Decode verifies a SignedPacket in canonical form (public key ‖ signature ‖ timestamp ‖
// DNS packet). Checks, in order: the length bounds (before anything is allocated), the
// signature, that the DNS packet parses, that every record sits under the signer's TLD,
// and that the timestamp is at most MaxFuture ahead of now (the caller's clock, usually
// time.Now()). b is copied; the caller may reuse it.
func Decode(b []byte, now time.Time) (*SignedPacket, error) {
	if len(b) < MinSignedPacket {
		return nil, fmt.Errorf("%w: %d bytes, minimum %d", ErrTooShort, len(b), MinSignedPacket)
	}
	if len(b) > MaxSignedPacket {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(b), MaxSignedPacket)
	}
	return parse(bytes.Clone(b), now)
}

// DecodeRelayPayload verifies a relay payload (signature ‖ timestamp ‖ DNS packet, the body
// of pkarr's relay PUT and GET) for the key pub, with the same checks as [Decode]. Bodies
// shorter than MinRelayPayload or longer than MaxRelayPayload are refused before anything
// is allocated.
func DecodeRelayPayload(pub ed25519.PublicKey, body []byte, now time.Time) (*SignedPacket, error) {
	if len(pub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: %d-byte public key", ErrBadKey, len(pub))
	}
	if len(body) < MinRelayPayload {
		return nil, fmt.Errorf("%w: relay payload of %d bytes, minimum %d", ErrTooShort, len(body), MinRelayPayload)
	}
	if len(body) > MaxRelayPayload {
		return nil, fmt.Errorf("%w: relay payload of %d bytes, limit %d", ErrTooLarge, len(body), MaxRelayPayload)
	}
	raw := make([]byte, 0, ed25519.PublicKeySize+len(body))
	raw = append(raw, pub...)
	raw = append(raw, body...)
	return parse(raw, now)
}

// parse verifies raw, whose length is within bounds, and takes ownership of it.
func parse(raw []byte, now time.Time) (*SignedPacket, error) {
	pub := ed25519.PublicKey(raw[:ed25519.PublicKeySize])
	sig := raw[ed25519.PublicKeySize : ed25519.PublicKeySize+ed25519.SignatureSize]
	ts := binary.BigEndian.Uint64(raw[ed25519.PublicKeySize+ed25519.SignatureSize : MinSignedPacket])
	packet := raw[MinSignedPacket:]
	if len(packet) > MaxPacketSize {
		return nil, fmt.Errorf("%w: DNS packet is %d bytes, limit %d", ErrTooLarge, len(packet), MaxPacketSize)
	}
	if !ed25519.Verify(pub, Signable(ts, packet), sig) {
		return nil, fmt.Errorf("%w: for key %s", ErrBadSignature, ZBase32Key(pub))
	}
	var msg mdns.Msg
	if err := msg.Unpack(packet); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadPacket, err)
	}
	// miekg stops quietly where the data ends; a packet must hold what its header counts.
	if len(packet) < 12 ||
		int(binary.BigEndian.Uint16(packet[4:])) != len(msg.Question) ||
		int(binary.BigEndian.Uint16(packet[6:])) != len(msg.Answer) ||
		int(binary.BigEndian.Uint16(packet[8:])) != len(msg.Ns) ||
		int(binary.BigEndian.Uint16(packet[10:])) != len(msg.Extra) {
		return nil, fmt.Errorf("%w: header counts do not match the records present", ErrBadPacket)
	}
	tld := ZBase32Key(pub) + "."
	records := make([]mdns.RR, 0, len(msg.Answer)+len(msg.Ns)+len(msg.Extra))
	for _, section := range [][]mdns.RR{msg.Answer, msg.Ns, msg.Extra} {
		for _, rr := range section {
			h := rr.Header()
			if !underTLD(h.Name, tld) {
				return nil, fmt.Errorf("%w: a record's owner name is outside %s", ErrNotUnderKey, tld)
			}
			// Keep the publisher's case below the TLD; the TLD itself in its canonical
			// lowercase form, so that callers can match it with a plain suffix compare.
			h.Name = h.Name[:len(h.Name)-len(tld)] + tld
			records = append(records, rr)
		}
	}
	limit := now.Add(MaxFuture).UnixMicro()
	if ts > math.MaxInt64 || int64(ts) > limit {
		return nil, fmt.Errorf("%w: timestamp %d µs is more than %s ahead of %s",
			ErrFuture, ts, MaxFuture, now.UTC().Format(time.RFC3339))
	}
	return &SignedPacket{raw: raw, ts: ts, records: records}, nil
}

// PublicKey returns the key that signed the packet.
func (sp *SignedPacket) PublicKey() ed25519.PublicKey {
	return bytes.Clone(sp.raw[:ed25519.PublicKeySize])
}

// Name returns the key's pkarr TLD without the trailing dot: its z-base-32 form.
func (sp *SignedPacket) Name() string {
	return ZBase32Key(sp.raw[:ed25519.PublicKeySize])
}

// Timestamp returns the packet's timestamp (microsecond precision, UTC).
func (sp *SignedPacket) Timestamp() time.Time {
	return time.UnixMicro(int64(sp.ts)).UTC()
}

// Micros returns the packet's timestamp as sent: microseconds since the Unix epoch, the
// BEP 44 seq.
func (sp *SignedPacket) Micros() uint64 { return sp.ts }

// Records returns copies of the packet's records (answer, authority and additional
// sections, in that order), with owner names fully qualified under "<z32>.", the TLD in
// lowercase.
func (sp *SignedPacket) Records() []mdns.RR {
	out := make([]mdns.RR, len(sp.records))
	for i, rr := range sp.records {
		out[i] = mdns.Copy(rr)
	}
	return out
}

// MinTTL returns the smallest TTL among the packet's records, or 0 when it has none.
func (sp *SignedPacket) MinTTL() uint32 {
	if len(sp.records) == 0 {
		return 0
	}
	m := uint32(math.MaxUint32)
	for _, rr := range sp.records {
		m = min(m, rr.Header().Ttl)
	}
	return m
}

// Packet returns a copy of the encoded DNS packet.
func (sp *SignedPacket) Packet() []byte {
	return bytes.Clone(sp.raw[MinSignedPacket:])
}

// Signature returns a copy of the Ed25519 signature.
func (sp *SignedPacket) Signature() []byte {
	return bytes.Clone(sp.raw[ed25519.PublicKeySize : ed25519.PublicKeySize+ed25519.SignatureSize])
}

// Bytes returns a copy of the canonical form: public key ‖ signature ‖ timestamp ‖ packet.
func (sp *SignedPacket) Bytes() []byte {
	return bytes.Clone(sp.raw)
}

// RelayPayload returns a copy of the relay form: signature ‖ timestamp ‖ packet.
func (sp *SignedPacket) RelayPayload() []byte {
	return bytes.Clone(sp.raw[ed25519.PublicKeySize:])
}

// NewerThan reports whether sp's timestamp is strictly later than other's; nil counts as
// older than anything. Relays keep a packet only when it is newer than the one they hold.
func (sp *SignedPacket) NewerThan(other *SignedPacket) bool {
	return other == nil || sp.ts > other.ts
}
