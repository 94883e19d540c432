package call

// The hand-written JSON toolkit of the wire layer: an object scanner that walks members
// without decoding them, string-token decoding and exactness checks, and JSON string
// encoding.

import (
	"bytes"
	"encoding/json"
	"errors"
	"unicode/utf8"
)

// appendJSONString appends s as a JSON string. Plain printable ASCII is copied as is;
// anything else goes through encoding/json (which also replaces invalid UTF-8).
func appendJSONString[S string | []byte](dst []byte, s S) []byte {
	for i := range len(s) {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			b, _ := json.Marshal(string(s)) // a string always marshals
			return append(dst, b...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}

// decodeString decodes the JSON string token v; ok is false when v is not a string.
func decodeString(v []byte) (string, bool) {
	if inner, ok := plainString(v); ok {
		return string(inner), true
	}
	var s string
	if len(v) == 0 || v[0] != '"' || json.Unmarshal(v, &s) != nil {
		return "", false
	}
	return s, true
}

// decodeStringBytes is decodeString into a fresh byte slice.
func decodeStringBytes(v []byte) ([]byte, bool) {
	if inner, ok := plainString(v); ok {
		return bytes.Clone(inner), true
	}
	s, ok := decodeString(v)
	return []byte(s), ok
}

// plainString returns the contents of a string token made of printable ASCII without
// escapes, which need no decoding.
func plainString(v []byte) ([]byte, bool) {
	if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
		return nil, false
	}
	inner := v[1 : len(v)-1]
	for _, c := range inner {
		if c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			return nil, false
		}
	}
	return inner, true
}

// exactString reports whether the string token v (valid JSON) decodes without loss:
// valid UTF-8 and no \u escape of an unpaired surrogate, both of which decode to
// U+FFFD.
func exactString(v []byte) bool {
	if _, ok := plainString(v); ok {
		return true
	}
	if !utf8.Valid(v) {
		return false
	}
	for i := bytes.IndexByte(v, '\\'); i >= 0 && i+1 < len(v); {
		if v[i+1] != 'u' {
			i = nextEscape(v, i+2)
			continue
		}
		r := hex4(v, i+2)
		switch {
		case r >= 0xd800 && r < 0xdc00:
			if i+11 >= len(v) || v[i+6] != '\\' || v[i+7] != 'u' {
				return false
			}
			if lo := hex4(v, i+8); lo < 0xdc00 || lo >= 0xe000 {
				return false
			}
			i = nextEscape(v, i+12)
		case r >= 0xdc00 && r < 0xe000, r < 0:
			return false
		default:
			i = nextEscape(v, i+6)
		}
	}
	return true
}

// nextEscape returns the index of the next backslash in v at or after i, or -1.
func nextEscape(v []byte, i int) int {
	if i >= len(v) {
		return -1
	}
	if k := bytes.IndexByte(v[i:], '\\'); k >= 0 {
		return i + k
	}
	return -1
}

// hex4 decodes the four hex digits at v[i:], or returns -1.
func hex4(v []byte, i int) rune {
	if i+4 > len(v) {
		return -1
	}
	var r rune
	for _, c := range v[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return -1
		}
	}
	return r
}

// keyIs reports whether the raw key token (quotes included) decodes to exactly name.
func keyIs(key []byte, name string) bool {
	if len(key) == len(name)+2 && string(key[1:len(key)-1]) == name {
		return true
	}
	if bytes.IndexByte(key, '\\') < 0 {
		return false
	}
	s, ok := decodeString(key)
	return ok && s == name
}

// objectScanner walks the members of a JSON object without decoding them. It expects
// valid JSON (json.Valid) but never panics on other input: it stops with err set.
type objectScanner struct {
	b        []byte
	i        int // next byte to look at
	n        int // members returned so far
	done     bool
	err      error
	key, val []byte // the current member: the raw key token and the raw value
}

var errMalformedObject = errors.New("malformed JSON object")

// scanObject starts a scanner on b; ok is false when b does not start with an object.
func scanObject(b []byte) (objectScanner, bool) {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return objectScanner{}, false
	}
	return objectScanner{b: b, i: i + 1}, true
}

// next moves to the next member; false at the end of the object or on an error.
func (s *objectScanner) next() bool {
	if s.done {
		return false
	}
	b := s.b
	i := skipSpace(b, s.i)
	if i < len(b) && b[i] == '}' {
		s.done = true
		return false
	}
	if s.n > 0 {
		if i >= len(b) || b[i] != ',' {
			return s.fail()
		}
		i = skipSpace(b, i+1)
	}
	if i >= len(b) || b[i] != '"' {
		return s.fail()
	}
	end := skipString(b, i)
	if end < 0 {
		return s.fail()
	}
	s.key = b[i:end]
	i = skipSpace(b, end)
	if i >= len(b) || b[i] != ':' {
		return s.fail()
	}
	i = skipSpace(b, i+1)
	end = skipValue(b, i)
	if end <= i {
		return s.fail()
	}
	s.val = b[i:end]
	s.i = end
	s.n++
	return true
}

func (s *objectScanner) fail() bool {
	s.done, s.err, s.key, s.val = true, errMalformedObject, nil, nil
	return false
}

func skipSpace(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// skipString returns the index after the string token starting at b[i] ('"'), or -1.
func skipString(b []byte, i int) int {
	for j := i + 1; j < len(b); {
		k := bytes.IndexByte(b[j:], '"')
		if k < 0 {
			return -1
		}
		q := j + k
		backslashes := 0
		for p := q - 1; p > i && b[p] == '\\'; p-- {
			backslashes++
		}
		if backslashes%2 == 0 {
			return q + 1
		}
		j = q + 1
	}
	return -1
}

// skipValue returns the index after the value starting at b[i], or -1 (or i, for a
// value of length zero) when there is none.
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); {
			switch b[j] {
			case '"':
				e := skipString(b, j)
				if e < 0 {
					return -1
				}
				j = e
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
			j++
		}
		return -1
	}
	j := i
	for j < len(b) {
		switch b[j] {
		case ',', '}', ']', ':', ' ', '\t', '\n', '\r':
			return j
		}
		j++
	}
	return j
}
