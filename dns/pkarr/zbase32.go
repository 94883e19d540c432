package pkarr

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"strings"
)

// zAlphabet is the z-base-32 alphabet (Zooko's human-oriented base-32). Bits are taken
// most-significant first, five at a time, as in RFC 4648 base32; there is no padding.
const zAlphabet = "ybndrfg8ejkmcpqxot1uwisza345h769"

// KeyLen is the length of a z-base-32 encoded Ed25519 public key: 256 bits in 52
// five-bit characters, the last one carrying a single bit and four zero bits.
const KeyLen = 52

// ErrBadKey is wrapped by every error ParseKey returns: wrong length, a character outside
// the z-base-32 alphabet, or non-zero trailing bits (a non-canonical encoding).
var ErrBadKey = errors.New("pkarr: bad z-base-32 public key")

// zDecode maps an ASCII byte to its five-bit value, or 0xff when it is not in the alphabet.
var zDecode = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for i := range len(zAlphabet) {
		t[zAlphabet[i]] = byte(i)
	}
	return t
}()

// ZBase32Key returns the 52-character z-base-32 form of pub, the key's pkarr name
// (the TLD "<z32>." that every record of its packets sits under). It panics if pub is
// not ed25519.PublicKeySize bytes long, like ed25519.Verify.
func ZBase32Key(pub ed25519.PublicKey) string {
	if len(pub) != ed25519.PublicKeySize {
		panic(fmt.Sprintf("pkarr: bad public key length %d", len(pub)))
	}
	return zEncode(pub)
}

// zEncode encodes b in z-base-32 without padding.
func zEncode(b []byte) string {
	out := make([]byte, 0, (len(b)*8+4)/5)
	var acc uint16
	var bits uint
	for _, c := range b {
		acc = acc<<8 | uint16(c)
		bits += 8
		for bits >= 5 {
			bits -= 5
			out = append(out, zAlphabet[(acc>>bits)&31])
		}
	}
	if bits > 0 {
		out = append(out, zAlphabet[(acc<<(5-bits))&31])
	}
	return string(out)
}

// ParseKey decodes a z-base-32 Ed25519 public key. It accepts an optional "pk:" prefix and
// is case-insensitive. The result is exactly 52 characters decoded: anything else, a
// character outside the alphabet, or set bits in the last character's unused low four bits
// is an error wrapping ErrBadKey. ParseKey does not check that the key is a valid curve
// point; a packet signed by such a key simply fails verification.
func ParseKey(s string) (ed25519.PublicKey, error) {
	if len(s) >= 3 && strings.EqualFold(s[:3], "pk:") {
		s = s[3:]
	}
	if len(s) != KeyLen {
		return nil, fmt.Errorf("%w: length %d, want %d", ErrBadKey, len(s), KeyLen)
	}
	pub := make(ed25519.PublicKey, 0, ed25519.PublicKeySize)
	var acc uint16
	var bits uint
	for i := range len(s) {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		v := zDecode[c]
		if v == 0xff {
			return nil, fmt.Errorf("%w: character %d is not z-base-32", ErrBadKey, i+1)
		}
		acc = acc<<5 | uint16(v)
		bits += 5
		if bits >= 8 {
			bits -= 8
			pub = append(pub, byte(acc>>bits))
		}
	}
	if acc&(1<<bits-1) != 0 {
		return nil, fmt.Errorf("%w: non-canonical trailing bits", ErrBadKey)
	}
	return pub, nil
}
