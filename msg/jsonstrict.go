package msg

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// ErrMalformed is wrapped by every error about bytes that do not follow the protocol:
// a frame, a request, an envelope, a key bundle or an inner message that does not
// decode under the strict rules.
var ErrMalformed = errors.New("msg: malformed input")

// maxJSONDepth bounds the nesting of any JSON the protocol accepts (the deepest
// legitimate document, a fetch response, nests five levels).
const maxJSONDepth = 8

// The protocol's JSON is read by the small strict reader below rather than by
// encoding/json, which would scan a 1 MiB envelope several times (validation, unknown
// field detection, nested Unmarshalers) and cannot see duplicate keys. Its rules: the
// input is valid UTF-8 and exactly one JSON value; object keys are 1 to 32 of
// [a-z0-9_], without escapes, unique within their object (so "V" never stands for "v");
// nesting is at most maxJSONDepth levels. Callers then accept only the keys they know.

// member is one "key": value of an object; val is the value's JSON text.
type member struct {
	key string
	val []byte
}

// readObject parses data as one JSON object (surrounded by optional whitespace) and
// returns its members in order.
func readObject(data []byte) ([]member, error) {
	if !utf8.Valid(data) {
		return nil, fmt.Errorf("%w: JSON is not valid UTF-8", ErrMalformed)
	}
	i := skipWS(data, 0)
	if i >= len(data) || data[i] != '{' {
		return nil, fmt.Errorf("%w: want a JSON object", ErrMalformed)
	}
	var ms []member
	end, err := scanObject(data, i, 1, func(k string, v []byte) { ms = append(ms, member{k, v}) })
	if err != nil {
		return nil, err
	}
	if skipWS(data, end) != len(data) {
		return nil, fmt.Errorf("%w: data after the JSON object", ErrMalformed)
	}
	return ms, nil
}

// checkJSON applies the reader's rules to any JSON value.
func checkJSON(data []byte) error {
	if !utf8.Valid(data) {
		return fmt.Errorf("%w: JSON is not valid UTF-8", ErrMalformed)
	}
	i := skipWS(data, 0)
	end, err := scanValue(data, i, 1)
	if err != nil {
		return err
	}
	if skipWS(data, end) != len(data) {
		return fmt.Errorf("%w: data after the JSON value", ErrMalformed)
	}
	return nil
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

func syntaxError(b []byte, i int, what string) error {
	if i >= len(b) {
		return fmt.Errorf("%w: JSON ends early: want %s", ErrMalformed, what)
	}
	return fmt.Errorf("%w: JSON syntax at byte %d: want %s", ErrMalformed, i, what)
}

// scanValue checks the value starting at b[i] (nesting level depth) and returns the
// index after it.
func scanValue(b []byte, i, depth int) (int, error) {
	if i >= len(b) {
		return 0, syntaxError(b, i, "a value")
	}
	switch c := b[i]; {
	case c == '"':
		return scanString(b, i)
	case c == '{':
		return scanObject(b, i, depth, nil)
	case c == '[':
		return scanArray(b, i, depth)
	case c == 't':
		return scanLiteral(b, i, "true")
	case c == 'f':
		return scanLiteral(b, i, "false")
	case c == 'n':
		return scanLiteral(b, i, "null")
	case c == '-' || c >= '0' && c <= '9':
		return scanNumber(b, i)
	}
	return 0, syntaxError(b, i, "a value")
}

// scanObject checks the object at b[i] and calls each (nil: none) with its members.
func scanObject(b []byte, i, depth int, each func(string, []byte)) (int, error) {
	if depth > maxJSONDepth {
		return 0, fmt.Errorf("%w: JSON nested deeper than %d levels", ErrMalformed, maxJSONDepth)
	}
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == '}' {
		return i + 1, nil
	}
	var (
		keys []string
		seen map[string]struct{}
	)
	for {
		if i >= len(b) || b[i] != '"' {
			return 0, syntaxError(b, i, "an object key")
		}
		j := i + 1
		for j < len(b) && b[j] != '"' {
			j++
		}
		if j >= len(b) {
			return 0, syntaxError(b, j, "the end of an object key")
		}
		key := string(b[i+1 : j])
		if !validKey(key) {
			return 0, fmt.Errorf("%w: object key %q is not 1 to 32 of [a-z0-9_]", ErrMalformed, truncate(key, 40))
		}
		if seen != nil {
			if _, dup := seen[key]; dup {
				return 0, fmt.Errorf("%w: duplicate object key %q", ErrMalformed, key)
			}
			seen[key] = struct{}{}
		} else {
			for _, k := range keys {
				if k == key {
					return 0, fmt.Errorf("%w: duplicate object key %q", ErrMalformed, key)
				}
			}
			keys = append(keys, key)
			if len(keys) > 8 { // many keys: a set, so that a hostile object costs linear time
				seen = make(map[string]struct{}, 16)
				for _, k := range keys {
					seen[k] = struct{}{}
				}
			}
		}
		i = skipWS(b, j+1)
		if i >= len(b) || b[i] != ':' {
			return 0, syntaxError(b, i, "':'")
		}
		i = skipWS(b, i+1)
		end, err := scanValue(b, i, depth+1)
		if err != nil {
			return 0, err
		}
		if each != nil {
			each(key, b[i:end])
		}
		i = skipWS(b, end)
		if i < len(b) && b[i] == ',' {
			i = skipWS(b, i+1)
			continue
		}
		if i < len(b) && b[i] == '}' {
			return i + 1, nil
		}
		return 0, syntaxError(b, i, "',' or '}'")
	}
}

func scanArray(b []byte, i, depth int) (int, error) {
	if depth > maxJSONDepth {
		return 0, fmt.Errorf("%w: JSON nested deeper than %d levels", ErrMalformed, maxJSONDepth)
	}
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == ']' {
		return i + 1, nil
	}
	for {
		end, err := scanValue(b, i, depth+1)
		if err != nil {
			return 0, err
		}
		i = skipWS(b, end)
		if i < len(b) && b[i] == ',' {
			i = skipWS(b, i+1)
			continue
		}
		if i < len(b) && b[i] == ']' {
			return i + 1, nil
		}
		return 0, syntaxError(b, i, "',' or ']'")
	}
}

// scanString checks the string at b[i] (escapes, no control characters; UTF-8 was
// checked for the whole input).
func scanString(b []byte, i int) (int, error) {
	for j := i + 1; j < len(b); j++ {
		// Skip eight plain bytes at a time (a base64 string is nothing else).
		for j+8 <= len(b) && !hasStringSpecial(binary.LittleEndian.Uint64(b[j:])) {
			j += 8
		}
		if j >= len(b) {
			break
		}
		switch c := b[j]; {
		case c == '"':
			return j + 1, nil
		case c < 0x20:
			return 0, fmt.Errorf("%w: control character in a JSON string at byte %d", ErrMalformed, j)
		case c == '\\':
			if j+1 >= len(b) {
				return 0, syntaxError(b, j+1, "an escape")
			}
			switch b[j+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				j++
			case 'u':
				if j+5 >= len(b) {
					return 0, syntaxError(b, j+2, "four hex digits")
				}
				for _, h := range b[j+2 : j+6] {
					if !(h >= '0' && h <= '9' || h >= 'a' && h <= 'f' || h >= 'A' && h <= 'F') {
						return 0, syntaxError(b, j+2, "four hex digits")
					}
				}
				j += 5
			default:
				return 0, syntaxError(b, j+1, "an escape")
			}
		}
	}
	return 0, syntaxError(b, len(b), "the end of a string")
}

// Byte-lane constants for hasStringSpecial.
const (
	lanesLow  = 0x0101010101010101
	lanesHigh = 0x8080808080808080
)

// hasStringSpecial reports whether any of the eight bytes of x is one that scanString
// must look at: '"', '\\' or a control character (< 0x20). Each term is the exact
// "has a zero byte" test ((v - 0x01…) &^ v & 0x80…) of x xor the byte, or for the control
// characters the exact "has a byte below 0x20" one; the OR of exact tests is exact.
func hasStringSpecial(x uint64) bool {
	q := x ^ (lanesLow * '"')
	s := x ^ (lanesLow * '\\')
	return ((q-lanesLow)&^q|(s-lanesLow)&^s|(x-lanesLow*0x20)&^x)&lanesHigh != 0
}

func scanLiteral(b []byte, i int, lit string) (int, error) {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return 0, syntaxError(b, i, lit)
	}
	return i + len(lit), nil
}

// scanNumber checks a JSON number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func scanNumber(b []byte, i int) (int, error) {
	digits := func(j int) int {
		for j < len(b) && b[j] >= '0' && b[j] <= '9' {
			j++
		}
		return j
	}
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		i = digits(i)
	default:
		return 0, syntaxError(b, i, "a digit")
	}
	if i < len(b) && b[i] == '.' {
		j := digits(i + 1)
		if j == i+1 {
			return 0, syntaxError(b, j, "a digit")
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := digits(i)
		if j == i {
			return 0, syntaxError(b, j, "a digit")
		}
		i = j
	}
	return i, nil
}

// validKey reports whether k is a protocol key: 1 to 32 of [a-z0-9_].
func validKey(k string) bool {
	if k == "" || len(k) > 32 {
		return false
	}
	for i := range len(k) {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// Field decoders for values a scan has checked.

// jsonString decodes a string value.
func jsonString(field string, v []byte) (string, error) {
	if len(v) < 2 || v[0] != '"' {
		return "", fmt.Errorf("%w: %s: want a string", ErrMalformed, field)
	}
	inner := v[1 : len(v)-1]
	plain := true
	for _, c := range inner {
		if c == '\\' {
			plain = false
			break
		}
	}
	if plain {
		return string(inner), nil
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return "", fmt.Errorf("%w: %s: %w", ErrMalformed, field, err)
	}
	return s, nil
}

// jsonInt decodes an integer value (no fraction, no exponent) in [min, max].
func jsonInt(field string, v []byte, min, max int64) (int64, error) {
	for i, c := range v {
		if !(c >= '0' && c <= '9' || c == '-' && i == 0) {
			return 0, fmt.Errorf("%w: %s: want an integer", ErrMalformed, field)
		}
	}
	n, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil || n < min || n > max {
		return 0, fmt.Errorf("%w: %s: want an integer from %d to %d", ErrMalformed, field, min, max)
	}
	return n, nil
}

// jsonArray splits an array value into its elements.
func jsonArray(field string, v []byte) ([][]byte, error) {
	if len(v) == 0 || v[0] != '[' {
		return nil, fmt.Errorf("%w: %s: want an array", ErrMalformed, field)
	}
	var out [][]byte
	i := skipWS(v, 1)
	if i < len(v) && v[i] == ']' {
		return out, nil
	}
	for {
		end, err := scanValue(v, i, 2)
		if err != nil {
			return nil, err
		}
		out = append(out, v[i:end])
		i = skipWS(v, end)
		if i < len(v) && v[i] == ',' {
			i = skipWS(v, i+1)
			continue
		}
		if i < len(v) && v[i] == ']' && skipWS(v, i+1) == len(v) {
			return out, nil
		}
		return nil, syntaxError(v, i, "',' or ']'")
	}
}

// fields maps an object's members by key, refusing keys not in known.
func fields(what string, ms []member, known ...string) (map[string][]byte, error) {
	out := make(map[string][]byte, len(ms))
	for _, m := range ms {
		ok := false
		for _, k := range known {
			if m.key == k {
				ok = true
				break
			}
		}
		if !ok {
			return nil, fmt.Errorf("%w: %s: unknown field %q", ErrMalformed, what, m.key)
		}
		out[m.key] = m.val
	}
	return out, nil
}

// b64 is the protocol's byte encoding: unpadded base64url, canonical (no stray bits).
var b64 = base64.RawURLEncoding.Strict()

// decodeB64 decodes s into exactly want bytes (want < 0: any length up to max).
func decodeB64(field, s string, want, max int) ([]byte, error) {
	limit := want
	if want < 0 {
		limit = max
	}
	if b64.DecodedLen(len(s)) > limit {
		return nil, fmt.Errorf("%w: %s: %d base64 characters, more than %d bytes", ErrMalformed, field, len(s), limit)
	}
	b, err := b64.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: not unpadded base64url: %w", ErrMalformed, field, err)
	}
	if want >= 0 && len(b) != want {
		return nil, fmt.Errorf("%w: %s: %d bytes, want %d", ErrMalformed, field, len(b), want)
	}
	return b, nil
}
