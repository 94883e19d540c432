package vault

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha512"
	"encoding/binary"
	"strconv"
	"strings"
)

// HardenedOffset is added to an index to make it hardened (2^31).
const HardenedOffset uint32 = 1 << 31

// Path limits.
const (
	// MaxPathLength is the longest path string ParsePath accepts, in bytes.
	MaxPathLength = 256
	// MaxPathDepth is the most indices a path may have.
	MaxPathDepth = 32
)

// Path is a parsed derivation path: the child indices after the master node, hardened
// ones with HardenedOffset added. The empty Path is the master node "m".
type Path []uint32

// String formats p with the ' suffix for hardened indices, e.g. m/74'/0'/0'/0'.
func (p Path) String() string {
	var b strings.Builder
	b.WriteString("m")
	for _, i := range p {
		b.WriteByte('/')
		b.WriteString(strconv.FormatUint(uint64(i&^HardenedOffset), 10))
		if i >= HardenedOffset {
			b.WriteByte('\'')
		}
	}
	return b.String()
}

// Hardened reports whether every index of p is hardened.
func (p Path) Hardened() bool {
	for _, i := range p {
		if i < HardenedOffset {
			return false
		}
	}
	return true
}

// ParsePath parses a BIP32-style path. The grammar is strict: the first segment is
// exactly "m"; segments are separated by single slashes (no empty segment, no trailing
// slash); an index is decimal digits without sign, below 2^31, followed by at most one
// hardened suffix (' or h or H). "m" alone is the master node. Errors are *PathError
// values matching ErrInvalidPath. Non-hardened indices parse; DeriveEd25519 refuses
// them with ErrNotHardened.
func ParsePath(s string) (Path, error) {
	bad := func(reason string) (Path, error) {
		return nil, &PathError{Path: s, Reason: reason, Err: ErrInvalidPath}
	}
	if len(s) > MaxPathLength {
		return nil, &PathError{Path: s[:32] + "...", Reason: "longer than " + strconv.Itoa(MaxPathLength) + " bytes", Err: ErrInvalidPath}
	}
	if s == "" {
		return bad("empty path")
	}
	first, rest, more := strings.Cut(s, "/")
	if first != "m" {
		return bad(`the first segment must be "m"`)
	}
	if !more {
		return Path{}, nil
	}
	segs := strings.Split(rest, "/")
	if len(segs) > MaxPathDepth {
		return bad("more than " + strconv.Itoa(MaxPathDepth) + " indices")
	}
	p := make(Path, 0, len(segs))
	for n, seg := range segs {
		digits, hardened := seg, false
		if k := len(seg) - 1; k >= 0 && (seg[k] == '\'' || seg[k] == 'h' || seg[k] == 'H') {
			digits, hardened = seg[:k], true
		}
		if digits == "" {
			return bad("segment " + strconv.Itoa(n+1) + " has no index")
		}
		for i := 0; i < len(digits); i++ {
			if digits[i] < '0' || digits[i] > '9' {
				return bad("segment " + strconv.Itoa(n+1) + " is not a decimal index with an optional ' or h suffix")
			}
		}
		v, err := strconv.ParseUint(digits, 10, 32)
		if err != nil || v >= uint64(HardenedOffset) {
			return bad("index " + strconv.Itoa(n+1) + " does not fit in 31 bits")
		}
		idx := uint32(v)
		if hardened {
			idx += HardenedOffset
		}
		p = append(p, idx)
	}
	return p, nil
}

// ExtendedKey is a SLIP-0010 Ed25519 node: a 32-byte private key (used as an RFC 8032
// seed) and a 32-byte chain code. It prints and marshals as [Redacted]; Destroy wipes it.
type ExtendedKey struct {
	redacted
	key, chainCode *secretBytes
	path           Path
}

// ed25519SeedKey is the HMAC key of the SLIP-0010 master node for Ed25519.
const ed25519SeedKey = "ed25519 seed"

// DeriveEd25519 derives the SLIP-0010 Ed25519 node at path from seed. Every index must be
// hardened (ErrNotHardened otherwise); a malformed path gives ErrInvalidPath.
func DeriveEd25519(seed *Seed, path string) (*ExtendedKey, error) {
	p, err := ParsePath(path)
	if err != nil {
		return nil, err
	}
	return deriveEd25519(seed, p, path)
}

// deriveEd25519 derives at the parsed path p; path is the original string for errors.
func deriveEd25519(seed *Seed, p Path, path string) (*ExtendedKey, error) {
	if seed == nil || seed.b == nil {
		return nil, ErrDestroyed
	}
	if !p.Hardened() {
		return nil, &PathError{Path: path, Reason: "SLIP-0010 defines only hardened derivation for Ed25519", Err: ErrNotHardened}
	}
	mac := hmac.New(sha512.New, []byte(ed25519SeedKey))
	mac.Write(seed.b.bytes())
	var I [64]byte
	defer clear(I[:])
	mac.Sum(I[:0])
	var data [1 + 32 + 4]byte
	defer clear(data[:])
	for _, idx := range p {
		// I = HMAC-SHA512(c, 0x00 || k || ser32(i))
		data[0] = 0
		copy(data[1:33], I[:32])
		binary.BigEndian.PutUint32(data[33:], idx)
		mac = hmac.New(sha512.New, I[32:])
		mac.Write(data[:])
		mac.Sum(I[:0])
	}
	return &ExtendedKey{
		key:       newSecret(I[:32]),
		chainCode: newSecret(I[32:]),
		path:      append(Path(nil), p...),
	}, nil
}

// Path returns the node's path.
func (k *ExtendedKey) Path() Path { return append(Path(nil), k.path...) }

// Key returns a copy of the 32-byte private key (the RFC 8032 seed); nil after Destroy.
// The caller should wipe it.
func (k *ExtendedKey) Key() []byte {
	if k == nil || k.key == nil {
		return nil
	}
	return bytes.Clone(k.key.bytes())
}

// ChainCode returns a copy of the 32-byte chain code; nil after Destroy.
func (k *ExtendedKey) ChainCode() []byte {
	if k == nil || k.chainCode == nil {
		return nil
	}
	return bytes.Clone(k.chainCode.bytes())
}

// PrivateKey returns the Ed25519 private key, ed25519.NewKeyFromSeed(Key()). The caller
// owns it and should wipe it when done; nil after Destroy.
func (k *ExtendedKey) PrivateKey() ed25519.PrivateKey {
	if k == nil || k.key == nil {
		return nil
	}
	return ed25519.NewKeyFromSeed(k.key.bytes())
}

// PublicKey returns the 32-byte Ed25519 public key; nil after Destroy.
func (k *ExtendedKey) PublicKey() ed25519.PublicKey {
	priv := k.PrivateKey()
	if priv == nil {
		return nil
	}
	defer wipe(priv)
	return bytes.Clone(priv[ed25519.SeedSize:])
}

// Destroy wipes the key and chain code.
func (k *ExtendedKey) Destroy() {
	if k == nil || k.key == nil {
		return
	}
	k.key.wipe()
	k.chainCode.wipe()
	k.key, k.chainCode = nil, nil
}
