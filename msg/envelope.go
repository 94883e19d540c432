package msg

import (
	"crypto/ed25519"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/alknet/alknet/core"
)

// Version is the envelope format version this package seals and opens.
const Version = 1

// IDSize is the length of an envelope id in bytes.
const IDSize = 16

// Errors about an envelope's outer fields (wrapped together with [ErrMalformed]).
var (
	// ErrUnknownVersion: the envelope's "v" is not [Version].
	ErrUnknownVersion = errors.New("msg: unknown envelope version")
	// ErrUnknownSuite: the envelope's suite is not one this package implements.
	ErrUnknownSuite = errors.New("msg: unknown cipher suite")
)

// Suite names an HPKE (RFC 9180) cipher suite by its registry ids. It travels in every
// envelope, so that a new suite (the ML-KEM-768+X25519 hybrid) is a version bump rather
// than a redesign. On the wire it is the array [kem, kdf, aead].
type Suite struct {
	KEM, KDF, AEAD uint16
}

// SuiteX25519ChaCha20 is DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305:
// [32, 1, 3], the only suite of version 1.
var SuiteX25519ChaCha20 = Suite{KEM: 0x0020, KDF: 0x0001, AEAD: 0x0003}

// encSize returns the length of the HPKE encapsulated key of s, and false for an
// unknown suite.
func (s Suite) encSize() (int, bool) {
	if s == SuiteX25519ChaCha20 {
		return 32, true
	}
	return 0, false
}

// String returns "[kem,kdf,aead]".
func (s Suite) String() string { return fmt.Sprintf("[%d,%d,%d]", s.KEM, s.KDF, s.AEAD) }

// MarshalJSON encodes s as [kem, kdf, aead].
func (s Suite) MarshalJSON() ([]byte, error) {
	return json.Marshal([3]uint16{s.KEM, s.KDF, s.AEAD})
}

// UnmarshalJSON decodes [kem, kdf, aead] (exactly three ids of 0 to 65535).
func (s *Suite) UnmarshalJSON(b []byte) error {
	if err := checkJSON(b); err != nil {
		return fmt.Errorf("suite: %w", err)
	}
	el, err := jsonArray("suite", b)
	if err != nil || len(el) != 3 {
		return fmt.Errorf("%w: suite: want [kem, kdf, aead]", ErrMalformed)
	}
	var ids [3]uint16
	for i, e := range el {
		n, err := jsonInt("suite", e, 0, 0xffff)
		if err != nil {
			return err
		}
		ids[i] = uint16(n)
	}
	*s = Suite{KEM: ids[0], KDF: ids[1], AEAD: ids[2]}
	return nil
}

// Envelope is a sealed message as it travels and as the recipient's home node keeps it.
// Its outer fields are visible to the server; the sender, the content and the signature
// are inside CT. The encoded header (everything but Enc and CT) is the HPKE associated
// data, so routing fields cannot be changed or swapped without Open failing.
//
// Its JSON form (spec §2.4) is
//
//	{"v":1,"id":"<16 bytes>","to":"<z-base-32 mailbox>","ts":<unix ms>,"ttl":<seconds>,
//	 "suite":[32,1,3],"enc":"<32 bytes>","ct":"<ciphertext>"}
//
// with byte fields in unpadded base64url. "ttl" is omitted when TTL is 0: the server
// applies its default. [DecodeEnvelope] (and UnmarshalJSON) decode it strictly.
type Envelope struct {
	V     int          // format version, [Version]
	ID    [IDSize]byte // random; the idempotency key within a mailbox
	To    string       // the recipient's mailbox: core.ZBase32Key(recipient)
	TS    int64        // sealing time, Unix milliseconds
	TTL   int64        // lifetime in seconds from TS; 0: the server's default
	Suite Suite        // HPKE suite of Enc and CT
	Enc   []byte       // HPKE encapsulated key
	CT    []byte       // HPKE ciphertext of the padded inner message
}

// MaxCiphertextSize is the largest ct an envelope may carry: the sealed inner message of
// the largest body ([MaxBodySize]) in its padding bucket, plus the AEAD tag.
var MaxCiphertextSize = innerFixedSize + paddedSize(maxVariableSize) + aeadTagSize

// MarshalJSON encodes e in its wire form.
func (e Envelope) MarshalJSON() ([]byte, error) {
	return e.appendJSON(make([]byte, 0, 200+b64.EncodedLen(len(e.CT)))), nil
}

// appendJSON appends the wire form of e to dst, in one pass.
func (e *Envelope) appendJSON(dst []byte) []byte {
	dst = append(dst, `{"v":`...)
	dst = strconv.AppendInt(dst, int64(e.V), 10)
	dst = append(dst, `,"id":"`...)
	dst = b64.AppendEncode(dst, e.ID[:])
	dst = append(dst, `","to":`...)
	to, _ := json.Marshal(e.To) // a string always marshals
	dst = append(dst, to...)
	dst = append(dst, `,"ts":`...)
	dst = strconv.AppendInt(dst, e.TS, 10)
	if e.TTL != 0 {
		dst = append(dst, `,"ttl":`...)
		dst = strconv.AppendInt(dst, e.TTL, 10)
	}
	dst = append(dst, `,"suite":[`...)
	dst = strconv.AppendUint(dst, uint64(e.Suite.KEM), 10)
	dst = append(dst, ',')
	dst = strconv.AppendUint(dst, uint64(e.Suite.KDF), 10)
	dst = append(dst, ',')
	dst = strconv.AppendUint(dst, uint64(e.Suite.AEAD), 10)
	dst = append(dst, `],"enc":"`...)
	dst = b64.AppendEncode(dst, e.Enc)
	dst = append(dst, `","ct":"`...)
	dst = b64.AppendEncode(dst, e.CT)
	return append(dst, `"}`...)
}

// UnmarshalJSON decodes an envelope under [DecodeEnvelope]'s rules.
func (e *Envelope) UnmarshalJSON(b []byte) error {
	env, err := DecodeEnvelope(b)
	if err != nil {
		return err
	}
	*e = *env
	return nil
}

// DecodeEnvelope decodes the JSON form of an envelope strictly: no unknown, duplicate or
// missing fields, canonical unpadded base64url, a known version and suite, an Enc of the
// suite's size, a "to" that is a valid z-base-32 key, a positive "ttl" when present, a
// non-empty ct of at most [MaxCiphertextSize] bytes. Errors wrap [ErrMalformed] (and
// [ErrUnknownVersion] or [ErrUnknownSuite] for those).
func DecodeEnvelope(data []byte) (*Envelope, error) {
	ms, err := readObject(data)
	if err != nil {
		return nil, fmt.Errorf("envelope: %w", err)
	}
	f, err := fields("envelope", ms, "v", "id", "to", "ts", "ttl", "suite", "enc", "ct")
	if err != nil {
		return nil, err
	}
	for _, k := range []string{"v", "id", "to", "ts", "suite", "enc", "ct"} {
		if f[k] == nil {
			return nil, fmt.Errorf("%w: envelope: missing %q", ErrMalformed, k)
		}
	}
	v, err := jsonInt("envelope v", f["v"], 0, 255)
	if err != nil {
		return nil, err
	}
	if v != Version {
		return nil, fmt.Errorf("%w: %w: v=%d (want %d)", ErrMalformed, ErrUnknownVersion, v, Version)
	}
	e := &Envelope{V: int(v)}
	if err := e.Suite.UnmarshalJSON(f["suite"]); err != nil {
		return nil, fmt.Errorf("envelope: %w", err)
	}
	encSize, ok := e.Suite.encSize()
	if !ok {
		return nil, fmt.Errorf("%w: %w: %s", ErrMalformed, ErrUnknownSuite, e.Suite)
	}
	if e.To, err = jsonString("envelope to", f["to"]); err != nil {
		return nil, err
	}
	if _, err := ParseMailbox(e.To); err != nil {
		return nil, fmt.Errorf("envelope to: %w", err)
	}
	if e.TS, err = jsonInt("envelope ts (a positive Unix time in milliseconds)", f["ts"], 1, 1<<53); err != nil {
		return nil, err
	}
	if raw := f["ttl"]; raw != nil {
		if e.TTL, err = jsonInt("envelope ttl (seconds; no ttl for the server's default)", raw, 1, 1<<53); err != nil {
			return nil, err
		}
	}
	for _, b := range []struct {
		field     string
		dst       *[]byte
		want, max int
	}{
		{"envelope id", nil, IDSize, 0},
		{"envelope enc", &e.Enc, encSize, 0},
		{"envelope ct", &e.CT, -1, MaxCiphertextSize},
	} {
		key := b.field[len("envelope "):]
		s, err := jsonString(b.field, f[key])
		if err != nil {
			return nil, err
		}
		raw, err := decodeB64(b.field, s, b.want, b.max)
		if err != nil {
			return nil, err
		}
		if b.dst == nil {
			copy(e.ID[:], raw)
		} else {
			*b.dst = raw
		}
	}
	if len(e.CT) == 0 {
		return nil, fmt.Errorf("%w: envelope ct: empty", ErrMalformed)
	}
	return e, nil
}

// Time returns the envelope's sealing time (TS).
func (e *Envelope) Time() time.Time { return time.UnixMilli(e.TS) }

// header returns the encoded outer header: every field but Enc and CT, in a fixed
// binary layout after a domain string. It is the HPKE associated data.
func (e *Envelope) header() []byte {
	b := make([]byte, 0, len(headerDomain)+1+IDSize+2+len(e.To)+8+8+6)
	b = append(b, headerDomain...)
	b = append(b, byte(e.V))
	b = append(b, e.ID[:]...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(e.To)))
	b = append(b, e.To...)
	b = binary.BigEndian.AppendUint64(b, uint64(e.TS))
	b = binary.BigEndian.AppendUint64(b, uint64(e.TTL))
	b = binary.BigEndian.AppendUint16(b, e.Suite.KEM)
	b = binary.BigEndian.AppendUint16(b, e.Suite.KDF)
	b = binary.BigEndian.AppendUint16(b, e.Suite.AEAD)
	return b
}

// Domain strings: every signature and every HPKE input is bound to its purpose.
const (
	headerDomain = "alknet-msg-header-v1"
	infoDomain   = "alknet-msg-v1"
	bundleDomain = "alknet-msg-bundle-v1"
	signDomain   = "alknet-msg-sig-v1"
)

// Mailbox returns the mailbox id of an owner's Ed25519 key: its z-base-32 form, the
// value of an envelope's "to".
func Mailbox(owner ed25519.PublicKey) string { return core.ZBase32Key(owner) }

// ParseMailbox returns the owner key of a mailbox id. Only the canonical spelling
// (what Mailbox returns: lower case, no "pk:" prefix) is a mailbox id, so that one
// mailbox never has two names; anything else is an error wrapping [ErrMalformed].
func ParseMailbox(id string) (ed25519.PublicKey, error) {
	k, err := core.ParseZBase32Key(id)
	if err != nil {
		return nil, fmt.Errorf("%w: mailbox id: %w", ErrMalformed, err)
	}
	if Mailbox(k) != id {
		return nil, fmt.Errorf("%w: mailbox id: not in canonical form (lower-case z-base-32, no prefix)", ErrMalformed)
	}
	return k, nil
}
