package msg

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

// scanStringRef is the byte-by-byte string scanner scanString replaced: the reference
// that scanString must agree with on every input (end offset and whether it fails).
func scanStringRef(b []byte, i int) (int, bool) {
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			return j + 1, true
		case c < 0x20:
			return 0, false
		case c == '\\':
			if j+1 >= len(b) {
				return 0, false
			}
			switch b[j+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				j++
			case 'u':
				if j+5 >= len(b) {
					return 0, false
				}
				for _, h := range b[j+2 : j+6] {
					if !(h >= '0' && h <= '9' || h >= 'a' && h <= 'f' || h >= 'A' && h <= 'F') {
						return 0, false
					}
				}
				j += 5
			default:
				return 0, false
			}
		}
	}
	return 0, false
}

func checkScanString(t *testing.T, b []byte) {
	t.Helper()
	want, wantOK := scanStringRef(b, 0)
	got, err := scanString(b, 0)
	if (err == nil) != wantOK || got != want {
		t.Fatalf("scanString(%q) = %d, %v; the reference says %d, ok %v", b, got, err, want, wantOK)
	}
}

// TestHasStringSpecial: every byte value in every lane of an otherwise plain word.
func TestHasStringSpecial(t *testing.T) {
	fills := []byte{'A', '0', 0x7f, 0x80, 0xff, 0x20, 0x21, 0x5b, 0x5d}
	for _, fill := range fills {
		for lane := range 8 {
			for v := range 256 {
				w := bytes.Repeat([]byte{fill}, 8)
				w[lane] = byte(v)
				want := false
				for _, c := range w {
					want = want || c == '"' || c == '\\' || c < 0x20
				}
				if got := hasStringSpecial(binary.LittleEndian.Uint64(w)); got != want {
					t.Fatalf("hasStringSpecial(% x) = %v, want %v", w, got, want)
				}
			}
		}
	}
}

// TestScanStringMatchesReference: strings of every length up to 40 with one special
// byte at every offset, and random strings, scan like the byte-by-byte reference.
func TestScanStringMatchesReference(t *testing.T) {
	specials := [][]byte{{'"'}, {'\\'}, {'\\', '"'}, {'\\', 'u', '0', '0', 'e', '9'}, {'\\', 'u', '0', 'g'}, {'\\', 'x'}, {0x1f}, {0}, {0x7f}, {0xc3, 0xa9}}
	for n := range 40 {
		for at := 0; at <= n; at++ {
			for _, sp := range specials {
				b := []byte{'"'}
				b = append(b, bytes.Repeat([]byte{'Q'}, at)...)
				b = append(b, sp...)
				b = append(b, bytes.Repeat([]byte{'z'}, n-at)...)
				checkScanString(t, b)
				checkScanString(t, append(b, '"'))
			}
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte("AZaz09+/=-_ \"\\u0aF\x01\x1f\x7f\xff")
	for range 20000 {
		b := make([]byte, 1+r.IntN(64))
		b[0] = '"'
		for i := 1; i < len(b); i++ {
			if r.IntN(8) == 0 {
				b[i] = alphabet[r.IntN(len(alphabet))]
			} else {
				b[i] = 'a' + byte(r.IntN(26))
			}
		}
		checkScanString(t, b)
	}
}

// FuzzScanString compares scanString with the byte-by-byte reference.
func FuzzScanString(f *testing.F) {
	for _, s := range []string{`"abc"`, `"0123456789abcdef\"x"`, `"\u00e9\n\\"`, "\"abcdefgh\x01\"", `"ABCDEFGHIJKLMNOPQRSTUVWXYZ`, `"\`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 || data[0] != '"' {
			data = append([]byte{'"'}, data...)
		}
		checkScanString(t, data)
	})
}
