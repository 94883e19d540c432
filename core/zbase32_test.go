package core

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base32"
	"errors"
	"strings"
	"testing"
)

func TestZBase32Key(t *testing.T) {
	zero := make(ed25519.PublicKey, 32)
	if got := ZBase32Key(zero); got != strings.Repeat("y", 52) {
		t.Fatalf("zero key = %q", got)
	}
	ones := bytes.Repeat([]byte{0xff}, 32)
	// 256 bits: 51 full groups of 31 ("9") and a last group 1 0000 (the padding bits zero).
	if got := ZBase32Key(ones); got != strings.Repeat("9", 51)+"o" {
		t.Fatalf("all-ones key = %q", got)
	}
	for _, k := range []ed25519.PublicKey{zero, ones, ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32)).Public().(ed25519.PublicKey)} {
		s := ZBase32Key(k)
		for _, in := range []string{s, strings.ToUpper(s), "pk:" + s} {
			got, err := ParseZBase32Key(in)
			if err != nil || !bytes.Equal(got, k) {
				t.Fatalf("ParseZBase32Key(%q) = %x, %v", in, got, err)
			}
		}
	}
}

// TestZBase32Vectors pins the codec on the published z-base-32 vectors (arbitrary lengths,
// so the partial last group is exercised too) and cross-checks it against encoding/base32
// with the z-base-32 alphabet, an independent implementation of the same bit order.
func TestZBase32Vectors(t *testing.T) {
	std := base32.NewEncoding(zbase32Alphabet).WithPadding(base32.NoPadding)
	for _, v := range []struct{ in, want string }{
		{"", ""},
		{"hello", "pb1sa5dx"},
		{"hello world!", "pb1sa5dxrb5s6huccooo"},
		{"The quick brown fox jumps over the lazy dog.", "ktwgkedtqiwsg43ycj3g675qrbug66bypj4s4hdurbzzc3m1rb4go3jyptozw6jyctzsqmo"},
	} {
		if got := ZBase32Key([]byte(v.in)); got != v.want {
			t.Errorf("ZBase32Key(%q) = %q, want %q", v.in, got, v.want)
		}
		if got := std.EncodeToString([]byte(v.in)); got != v.want {
			t.Errorf("base32 with z alphabet (%q) = %q, want %q", v.in, got, v.want)
		}
	}
	// Every 32-byte pattern with one bit set, against the independent encoder.
	for i := range 256 {
		b := make([]byte, 32)
		b[i/8] = 0x80 >> (i % 8)
		if got, want := ZBase32Key(b), std.EncodeToString(b); got != want {
			t.Fatalf("bit %d: ZBase32Key = %q, base32 = %q", i, got, want)
		}
	}
}

func TestParseZBase32KeyErrors(t *testing.T) {
	good := ZBase32Key(make(ed25519.PublicKey, 32))
	for name, in := range map[string]string{
		"short":   good[:51],
		"long":    good + "y",
		"badchar": "0" + good[1:],  // '0' is not in the alphabet
		"padding": good[:51] + "n", // last character sets a padding bit
		"empty":   "",
	} {
		if _, err := ParseZBase32Key(in); !errors.Is(err, ErrZBase32) {
			t.Errorf("%s: err = %v, want ErrZBase32", name, err)
		}
	}
}

func FuzzZBase32Key(f *testing.F) {
	f.Add(bytes.Repeat([]byte{1}, 32))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) != 32 {
			return
		}
		got, err := ParseZBase32Key(ZBase32Key(b))
		if err != nil || !bytes.Equal(got, b) {
			t.Fatalf("round trip of %x: %x, %v", b, got, err)
		}
	})
}
