package call

import (
	"encoding/json"
	"strings"
	"testing"
)

// validJSONCases are inputs at the edges of the grammar; FuzzValidJSON seeds from them
// and TestValidJSONMatchesEncodingJSON checks each against encoding/json.Valid.
var validJSONCases = []string{
	``, ` `, `{}`, `[]`, ` {} `, "\t[\n]\r", `{"a":1}`, `{"a":1,}`, `{,}`, `[1,]`, `[,1]`, `[1 2]`,
	`{"a" 1}`, `{"a":}`, `{a:1}`, `{"a":1 "b":2}`, `{"a":{"b":[1,{"c":null}]}}`, `[[[]]]`, `[[[]]`, `]`, `}`,
	`"abc"`, `"a\"b"`, `"\\"`, `"\/\b\f\n\r\t"`, `"\u00e9"`, `"\u00E9"`, `"\u00g9"`, `"\u00"`, `"\x"`,
	`"abc`, `"a` + "\x01" + `b"`, `"a` + "\x7f" + `"`, "\"\xff\xfe\"", `"` + "\u2028" + `"`,
	`0`, `-0`, `-`, `01`, `-01`, `1.`, `1.5`, `.5`, `1e5`, `1E+5`, `1e-5`, `1e`, `1e+`, `-1.5e10`, `123456789`,
	`1 `, ` 1`, `1 1`, `+1`, `0x10`, `Infinity`, `NaN`,
	`true`, `false`, `null`, `tru`, `nul`, `truex`, `[true,false,null]`, `[truefalse]`, `nulll`,
	`{"type":"call.responded","id":"x","payload":{"output":{"seq":1}}}`,
	`{"a":1}{"b":2}`, `{"a":1}x`, `[1]]`, `{"a":[1}`, `{"a":1]`, `[` + "\x00" + `]`,
	// Long strings, read eight bytes at a time: each special byte at each offset.
	`"0123456789abcdef"`, `"0123456789abcdef`, `"01234567\"89abcdef"`, `"0123456\\89abcdef"`,
	`"012345678` + "\x1f" + `abcdef"`, `"01234567` + "\x80\xff" + `89abcdef"`, `"0123456789abcde"x`,
	`["0123456789abcdef","0123456789abcdef"]`, `"0123456789abcdef\u00e9\n0123456789abcdef"`,
	`"0123456789abcdef\q0123"`, `"01234567` + "\x7f" + `"`, `"0123456789abcdef` + "\x00" + `"`,
}

func TestValidJSONMatchesEncodingJSON(t *testing.T) {
	for _, c := range validJSONCases {
		if got, want := validJSON([]byte(c)), json.Valid([]byte(c)); got != want {
			t.Errorf("validJSON(%q) = %v, encoding/json says %v", c, got, want)
		}
	}
}

// TestValidJSONDepth checks the nesting limit at its edge, for arrays, objects and
// empty innermost containers.
func TestValidJSONDepth(t *testing.T) {
	nest := func(depth int, open, close, inner string) []byte {
		return []byte(strings.Repeat(open, depth-1) + inner + strings.Repeat(close, depth-1))
	}
	for _, depth := range []int{maxJSONDepth - 1, maxJSONDepth, maxJSONDepth + 1} {
		for _, in := range [][]byte{
			nest(depth, "[", "]", "[]"),
			nest(depth, "[", "]", "[1]"),
			nest(depth, `{"a":`, "}", "{}"),
			nest(depth, `{"a":`, "}", `{"b":1}`),
		} {
			if got, want := validJSON(in), json.Valid(in); got != want || got != (depth <= maxJSONDepth) {
				t.Errorf("depth %d (%.12s…): validJSON %v, encoding/json %v", depth, in, got, want)
			}
		}
	}
}

func FuzzValidJSON(f *testing.F) {
	for _, c := range validJSONCases {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := validJSON(b), json.Valid(b); got != want {
			t.Fatalf("validJSON(%q) = %v, encoding/json says %v", b, got, want)
		}
	})
}

// BenchmarkValidJSON validates one call.responded frame body, against
// encoding/json.Valid.
func BenchmarkValidJSON(b *testing.B) {
	frame := []byte(`{"type":"call.responded","id":"0b9e6c1a-5d4f-4e0e-9a7b-3c2d1f00aa01","payload":{"output":{"seq":12345}}}`)
	b.Run("validJSON", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(frame)))
		for b.Loop() {
			if !validJSON(frame) {
				b.Fatal("invalid")
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(frame)))
		for b.Loop() {
			if !json.Valid(frame) {
				b.Fatal("invalid")
			}
		}
	})
}

// BenchmarkValidJSONLong validates a 64 KiB echo input (one long string), the case
// of large call payloads.
func BenchmarkValidJSONLong(b *testing.B) {
	doc := []byte(`{"data":"` + strings.Repeat("x", 64<<10-11) + `"}`)
	b.SetBytes(int64(len(doc)))
	for b.Loop() {
		if !validJSON(doc) {
			b.Fatal("invalid")
		}
	}
}
