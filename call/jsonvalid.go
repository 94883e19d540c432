package call

// validJSON: the wire layer's JSON validity check. It decides exactly as
// encoding/json.Valid does (FuzzValidJSON compares the two) at a fraction of the cost,
// since every frame read and every output emitted is checked: a subscription event
// was validated three times, at about 5 ns a byte each, by json.Valid's per-byte state
// machine.

import (
	"bytes"
	"encoding/binary"
)

// maxJSONDepth is encoding/json's nesting limit: deeper input is not valid.
const maxJSONDepth = 10000

// maxPayloadDepth is the deepest nesting a value the engine wraps into an envelope
// (an input, an output, an event, error details) may have: the envelope adds two
// levels ({"payload":{"output":…}}), and the receiver checks the whole envelope
// against maxJSONDepth. A value checked only against maxJSONDepth could pass here and
// make the peer refuse the frame, which on a single-stream connection closes every
// call on it.
const maxPayloadDepth = maxJSONDepth - 2

// validPayload reports whether b is valid JSON (as validJSON) nested at most
// maxPayloadDepth deep, so that the envelope carrying it is valid JSON too.
func validPayload(b []byte) bool { return validJSONDepth(b, maxPayloadDepth) }

// validJSON reports whether b is exactly one JSON value, optionally surrounded by
// white space, by the rules of encoding/json.Valid: RFC 8259 grammar, strings of any
// bytes but control characters (UTF-8 is not checked), at most maxJSONDepth open
// arrays and objects.
func validJSON(b []byte) bool { return validJSONDepth(b, maxJSONDepth) }

// validJSONDepth is validJSON with at most maxDepth open arrays and objects.
func validJSONDepth(b []byte, maxDepth int) bool {
	var stackBuf [32]byte
	stack := stackBuf[:0] // the open containers: '{' or '['
	i := skipSpace(b, 0)
	for {
		// A value starts at i.
		if i >= len(b) {
			return false
		}
		switch c := b[i]; c {
		case '{', '[':
			if len(stack) >= maxDepth {
				return false
			}
			i = skipSpace(b, i+1)
			closing := byte('}')
			if c == '[' {
				closing = ']'
			}
			if i < len(b) && b[i] == closing {
				i++
				break
			}
			stack = append(stack, c)
			if c == '{' {
				if i = validMemberKey(b, i); i < 0 {
					return false
				}
			}
			continue
		case '"':
			i = validString(b, i)
		case 't':
			i = validLiteral(b, i, "true")
		case 'f':
			i = validLiteral(b, i, "false")
		case 'n':
			i = validLiteral(b, i, "null")
		default:
			i = validNumber(b, i)
		}
		if i < 0 {
			return false
		}
		// After a value: close containers until a comma starts the next value.
		for {
			i = skipSpace(b, i)
			if len(stack) == 0 {
				return i == len(b)
			}
			if i >= len(b) {
				return false
			}
			top := stack[len(stack)-1]
			c := b[i]
			if c == ',' {
				i = skipSpace(b, i+1)
				if top == '{' {
					if i = validMemberKey(b, i); i < 0 {
						return false
					}
				}
				break
			}
			if top == '{' && c == '}' || top == '[' && c == ']' {
				stack = stack[:len(stack)-1]
				i++
				continue
			}
			return false
		}
	}
}

// validMemberKey checks an object member's key and colon at b[i:] and returns the
// index of its value (after white space), or -1.
func validMemberKey(b []byte, i int) int {
	if i >= len(b) || b[i] != '"' {
		return -1
	}
	if i = validString(b, i); i < 0 {
		return -1
	}
	i = skipSpace(b, i)
	if i >= len(b) || b[i] != ':' {
		return -1
	}
	return skipSpace(b, i+1)
}

// validString checks the string token starting at b[i] ('"') and returns the index
// after it, or -1. The plain runs between escapes are found with bytes.IndexByte
// (vectorised) and checked for control bytes a word at a time; each search starts
// where the last one stopped, so the work is linear in the string's length however
// many escapes it holds.
func validString(b []byte, i int) int {
	j := i + 1
	// Most strings are short (keys, ids, types): they end within a few words, checked
	// a word at a time before calling anything.
	for n := 0; n < 4 && j+8 <= len(b); n++ {
		x := binary.LittleEndian.Uint64(b[j:])
		if hasZeroByte(x^(swarOnes*'"'))|hasZeroByte(x^(swarOnes*'\\'))|hasByteBelow(x, 0x20) != 0 {
			break
		}
		j += 8
	}
	for k := min(j+8, len(b)); j < k; j++ {
		if c := b[j]; c == '"' {
			return j + 1
		} else if c == '\\' || c < 0x20 {
			break
		}
	}
	end := -1 // the next '"' at or after j, once found
	for {
		if end < j {
			q := bytes.IndexByte(b[j:], '"')
			if q < 0 {
				return -1
			}
			end = j + q
		}
		bs := bytes.IndexByte(b[j:end], '\\')
		if bs < 0 {
			if hasControlByte(b[j:end]) {
				return -1
			}
			return end + 1
		}
		k := j + bs // a backslash before the quote: the plain run, then the escape
		if hasControlByte(b[j:k]) {
			return -1
		}
		// The escape, and any that follow it at once.
		for j = k; j < len(b) && b[j] == '\\'; {
			if j++; j >= len(b) {
				return -1
			}
			switch b[j] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				j++
			case 'u':
				if hex4(b, j+1) < 0 {
					return -1
				}
				j += 5
			default:
				return -1
			}
		}
	}
}

// hasControlByte reports whether s holds a byte below 0x20, 32 bytes at a time.
func hasControlByte(s []byte) bool {
	for len(s) >= 32 {
		x := hasByteBelow(binary.LittleEndian.Uint64(s), 0x20) |
			hasByteBelow(binary.LittleEndian.Uint64(s[8:]), 0x20) |
			hasByteBelow(binary.LittleEndian.Uint64(s[16:]), 0x20) |
			hasByteBelow(binary.LittleEndian.Uint64(s[24:]), 0x20)
		if x != 0 {
			return true
		}
		s = s[32:]
	}
	for len(s) >= 8 {
		if hasByteBelow(binary.LittleEndian.Uint64(s), 0x20) != 0 {
			return true
		}
		s = s[8:]
	}
	for _, c := range s {
		if c < 0x20 {
			return true
		}
	}
	return false
}

// validLiteral checks that lit (true, false or null) starts at b[i] and returns the
// index after it, or -1.
func validLiteral(b []byte, i int, lit string) int {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return -1
	}
	return i + len(lit)
}

// validNumber checks the number starting at b[i] — -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
// — and returns the index after it, or -1. What may follow is the caller's business.
func validNumber(b []byte, i int) int {
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i >= len(b):
		return -1
	case b[i] == '0':
		i++
	case b[i] >= '1' && b[i] <= '9':
		i = skipDigits(b, i+1)
	default:
		return -1
	}
	if i < len(b) && b[i] == '.' {
		j := skipDigits(b, i+1)
		if j == i+1 {
			return -1
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := skipDigits(b, i)
		if j == i {
			return -1
		}
		i = j
	}
	return i
}

func skipDigits(b []byte, i int) int {
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	return i
}

// swarOnes has 1 in every byte; the SWAR tests below are exact about whether any
// byte of x qualifies (not about which).
const swarOnes = 0x0101010101010101

// hasZeroByte is non-zero when a byte of x is zero.
func hasZeroByte(x uint64) uint64 { return (x - swarOnes) &^ x & (swarOnes * 0x80) }

// hasByteBelow is non-zero when a byte of x is below n (n <= 128).
func hasByteBelow(x uint64, n byte) uint64 {
	return (x - swarOnes*uint64(n)) &^ x & (swarOnes * 0x80)
}
