package pkarr

import (
	"crypto/ed25519"
	"errors"
	"fmt"

	"github.com/alknet/alknet/core"
)

// KeyLen is the length of a z-base-32 encoded Ed25519 public key: 256 bits in 52
// five-bit characters, the last one carrying a single bit and four zero bits.
const KeyLen = core.ZBase32KeyLen

// ErrBadKey is wrapped by every error ParseKey returns: wrong length, a character outside
// the z-base-32 alphabet, or non-zero trailing bits (a non-canonical encoding).
var ErrBadKey = errors.New("pkarr: bad z-base-32 public key")

// ZBase32Key returns the 52-character z-base-32 form of pub, the key's pkarr name
// (the TLD "<z32>." that every record of its packets sits under). It panics if pub is
// not ed25519.PublicKeySize bytes long, like ed25519.Verify. The codec is core's
// [core.ZBase32Key], shared with the msg module's mailbox ids.
func ZBase32Key(pub ed25519.PublicKey) string {
	if len(pub) != ed25519.PublicKeySize {
		panic(fmt.Sprintf("pkarr: bad public key length %d", len(pub)))
	}
	return core.ZBase32Key(pub)
}

// ParseKey decodes a z-base-32 Ed25519 public key. It accepts an optional "pk:" prefix and
// is case-insensitive. The result is exactly 52 characters decoded: anything else, a
// character outside the alphabet, or set bits in the last character's unused low four bits
// is an error wrapping ErrBadKey (and core.ErrZBase32). ParseKey does not check that the
// key is a valid curve point; a packet signed by such a key simply fails verification.
func ParseKey(s string) (ed25519.PublicKey, error) {
	pub, err := core.ParseZBase32Key(s)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadKey, err)
	}
	return pub, nil
}
