package core

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"strings"
)

// zbase32Alphabet is z-base-32's alphabet (Zooko's human-oriented base-32), as pkarr uses it.
const zbase32Alphabet = "ybndrfg8ejkmcpqxot1uwisza345h769"

// ErrZBase32 is wrapped by every error of [ParseZBase32Key].
var ErrZBase32 = errors.New("invalid z-base-32 key")

// ZBase32KeyLen is the length of a z-base-32 encoded Ed25519 public key.
const ZBase32KeyLen = 52

// ZBase32Key returns pub in z-base-32 (52 characters, lower case): the name pkarr and
// the dns and msg modules give a key, as in "<z32>." or a mailbox id.
func ZBase32Key(pub ed25519.PublicKey) string {
	var b strings.Builder
	b.Grow(ZBase32KeyLen)
	var acc uint32
	bits := 0
	for _, c := range pub {
		acc = acc<<8 | uint32(c)
		bits += 8
		for bits >= 5 {
			bits -= 5
			b.WriteByte(zbase32Alphabet[acc>>bits&31])
		}
	}
	if bits > 0 {
		b.WriteByte(zbase32Alphabet[acc<<(5-bits)&31])
	}
	return b.String()
}

// ParseZBase32Key decodes a 52-character z-base-32 Ed25519 public key. An optional "pk:"
// prefix (any case) is accepted and case is ignored; other characters, other lengths and non-zero
// padding bits (a non-canonical spelling) are refused with an error wrapping [ErrZBase32].
func ParseZBase32Key(s string) (ed25519.PublicKey, error) {
	if len(s) >= 3 && strings.EqualFold(s[:3], "pk:") {
		s = s[3:]
	}
	if len(s) != ZBase32KeyLen {
		return nil, fmt.Errorf("%w: %d characters, want %d", ErrZBase32, len(s), ZBase32KeyLen)
	}
	out := make(ed25519.PublicKey, 0, ed25519.PublicKeySize)
	var acc uint32
	bits := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		v := strings.IndexByte(zbase32Alphabet, c)
		if v < 0 {
			return nil, fmt.Errorf("%w: character %q at %d", ErrZBase32, s[i], i)
		}
		acc = acc<<5 | uint32(v)
		bits += 5
		if bits >= 8 {
			bits -= 8
			out = append(out, byte(acc>>bits))
		}
	}
	if acc&(1<<bits-1) != 0 {
		return nil, fmt.Errorf("%w: non-zero padding bits", ErrZBase32)
	}
	return out, nil
}
