package http

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"

	"github.com/alknet/alknet/call"
)

// parseCallRequest parses {"operation": string, "input"?: any}; a missing input is
// JSON null. Keys match exactly (no case folding), a repeated key is refused (two
// parsers could otherwise disagree on which one counts), and unknown keys are ignored.
// The returned input shares b's memory.
//
// A valid body (the usual case) is walked in place after json.Valid, which allocates
// nothing: only the operation name is copied, and an error value is built only for an
// error. Anything else goes through parseCallRequestTokens, so the answer to a broken
// body is the same either way.
func parseCallRequest(b []byte) (string, json.RawMessage, *call.CallError) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || b[0] != '{' {
		return "", nil, invalidBody("request body must be a JSON object {\"operation\", \"input\"}")
	}
	if !json.Valid(b) {
		return parseCallRequestTokens(b)
	}
	var (
		op     string
		input  json.RawMessage
		seenOp bool
		seenIn bool
	)
	i := skipJSONSpace(b, 1)
	for b[i] != '}' {
		// b is one valid JSON object: a key string, a colon, a value, then ',' or '}'.
		kEnd := skipJSONString(b, i)
		key := b[i:kEnd]
		vStart := skipJSONSpace(b, skipJSONSpace(b, kEnd)+1)
		vEnd := skipJSONValue(b, vStart)
		raw := b[vStart:vEnd]
		switch {
		case jsonKeyIs(key, "operation"):
			if seenOp {
				return "", nil, invalidBody("field operation given twice")
			}
			seenOp = true
			var ok bool
			if op, ok = jsonStringValue(raw); !ok || op == "" || op == "/" {
				return "", nil, invalidBody("field operation must be a non-empty string")
			}
		case jsonKeyIs(key, "input"):
			if seenIn {
				return "", nil, invalidBody("field input given twice")
			}
			seenIn = true
			input = json.RawMessage(raw)
		}
		i = skipJSONSpace(b, vEnd)
		if b[i] == ',' {
			i = skipJSONSpace(b, i+1)
		}
	}
	if !seenOp {
		return "", nil, invalidBody("missing required field: operation")
	}
	if len(input) == 0 {
		input = json.RawMessage("null")
	}
	return op, input, nil
}

// jsonKeyIs reports whether the JSON string key (quotes included, valid) decodes to
// name. Only a key with escapes is decoded, as encoding/json does.
func jsonKeyIs(key []byte, name string) bool {
	inner := key[1 : len(key)-1]
	if bytes.IndexByte(inner, '\\') < 0 {
		return string(inner) == name
	}
	var s string
	return json.Unmarshal(key, &s) == nil && s == name
}

// jsonStringValue is the string the valid JSON value raw holds, decoded as
// json.Unmarshal into a string does (escapes resolved, invalid UTF-8 replaced); ok is
// false when raw is not a string (JSON null gives "", as json.Unmarshal leaves it).
func jsonStringValue(raw []byte) (string, bool) {
	switch raw[0] {
	case 'n':
		return "", true
	case '"':
	default:
		return "", false
	}
	inner := raw[1 : len(raw)-1]
	if bytes.IndexByte(inner, '\\') < 0 && utf8.Valid(inner) {
		return string(inner), true
	}
	return decodeJSONString(raw)
}

// decodeJSONString decodes the JSON string raw with encoding/json (kept apart so
// that only this path moves a string to the heap).
func decodeJSONString(raw []byte) (string, bool) {
	var s string
	err := json.Unmarshal(raw, &s)
	return s, err == nil
}

// skipJSONSpace returns the index of the first byte at or after i in b that is not
// JSON whitespace.
func skipJSONSpace(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\r', '\n':
			i++
		default:
			return i
		}
	}
	return i
}

// skipJSONString returns the index just past the JSON string starting at b[i] (a
// quote); b is valid JSON.
func skipJSONString(b []byte, i int) int {
	for i++; b[i] != '"'; i++ {
		if b[i] == '\\' {
			i++
		}
	}
	return i + 1
}

// skipJSONValue returns the index just past the JSON value starting at b[i]; b is
// valid JSON.
func skipJSONValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return skipJSONString(b, i)
	case '{', '[':
		depth := 0
		for ; ; i++ {
			switch b[i] {
			case '"':
				i = skipJSONString(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
	}
	for i < len(b) {
		switch b[i] {
		case ',', '}', ']', ' ', '\t', '\r', '\n':
			return i
		}
		i++
	}
	return i
}
