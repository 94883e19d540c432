package core

import (
	"bytes"
	"crypto/ed25519"
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
