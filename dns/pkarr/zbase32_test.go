package pkarr

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

// pkarrVector is the key/z32 pair from pkarr's own test suite (pkarr/src/types/keys.rs,
// test_from_string_ref).
var pkarrVector = struct {
	z32 string
	pub []byte
}{
	z32: "yg4gxe7z1r7mr6orids9fh95y7gxhdsxjqi6nngsxxtakqaxr5no",
	pub: []byte{
		1, 180, 103, 163, 183, 145, 58, 178, 122, 4, 168, 237, 242, 243, 251, 7, 76, 254, 14,
		207, 75, 171, 225, 8, 214, 123, 227, 133, 59, 15, 38, 197,
	},
}

func TestZBase32KeyPkarrVector(t *testing.T) {
	if got := ZBase32Key(pkarrVector.pub); got != pkarrVector.z32 {
		t.Fatalf("ZBase32Key = %q, want %q", got, pkarrVector.z32)
	}
	for _, s := range []string{
		pkarrVector.z32,
		"pk:" + pkarrVector.z32,
		"PK:" + strings.ToUpper(pkarrVector.z32),
		"Pk:" + pkarrVector.z32,
	} {
		pub, err := ParseKey(s)
		if err != nil {
			t.Fatalf("ParseKey(%q): %v", s, err)
		}
		if !bytes.Equal(pub, pkarrVector.pub) {
			t.Fatalf("ParseKey(%q) = %x, want %x", s, pub, pkarrVector.pub)
		}
	}
}

func TestParseKeyRejects(t *testing.T) {
	good := pkarrVector.z32
	// The last character carries one bit; 'y' (0) and 'o' (16) are the only canonical
	// endings. 'b' (1) sets a trailing bit.
	nonCanonical := good[:51] + "b"
	for name, s := range map[string]string{
		"empty":              "",
		"prefix only":        "pk:",
		"short":              good[:51],
		"long":               good + "y",
		"prefix and short":   "pk:" + good[:51],
		"double prefix":      "pk:pk:" + good,
		"bad char l":         "l" + good[1:],
		"bad char v":         good[:10] + "v" + good[11:],
		"bad char 2":         good[:10] + "2" + good[11:],
		"bad char 0":         good[:10] + "0" + good[11:],
		"non-ascii":          "é" + good[2:],
		"space":              " " + good[1:],
		"non-canonical tail": nonCanonical,
		"hex":                hex.EncodeToString(pkarrVector.pub)[:52],
	} {
		if _, err := ParseKey(s); !errors.Is(err, ErrBadKey) {
			t.Errorf("%s: ParseKey(%q) err = %v, want ErrBadKey", name, s, err)
		}
	}
}

func TestZBase32KeyPanicsOnBadLength(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("ZBase32Key of a 31-byte key did not panic")
		}
	}()
	ZBase32Key(make([]byte, 31))
}

// FuzzZBase32 checks both directions: every 32-byte key round-trips, and every string
// ParseKey accepts re-encodes to its canonical (lowercase, unprefixed) form.
func FuzzZBase32(f *testing.F) {
	f.Add(pkarrVector.pub, pkarrVector.z32)
	f.Add(make([]byte, 32), "pk:"+strings.ToUpper(pkarrVector.z32))
	f.Add([]byte{1, 2, 3}, pkarrVector.z32[:51]+"b")
	f.Fuzz(func(t *testing.T, raw []byte, s string) {
		if len(raw) >= ed25519.PublicKeySize {
			key := raw[:ed25519.PublicKeySize]
			z := ZBase32Key(key)
			back, err := ParseKey(z)
			if err != nil || !bytes.Equal(back, key) {
				t.Fatalf("round trip of %x via %q: %x, %v", key, z, back, err)
			}
		}
		pub, err := ParseKey(s)
		if err != nil {
			return
		}
		canon := strings.ToLower(s)
		canon = strings.TrimPrefix(canon, "pk:")
		if got := ZBase32Key(pub); got != canon {
			t.Fatalf("ParseKey(%q) re-encodes to %q", s, got)
		}
	})
}
