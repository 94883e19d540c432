package msg

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"
)

// ErrMalformed is wrapped by every error about bytes that do not follow the protocol:
// a frame, a request, an envelope, a key bundle or an inner message that does not
// decode under the strict rules.
var ErrMalformed = errors.New("msg: malformed input")

// maxJSONDepth bounds the nesting of any JSON the protocol accepts (the deepest
// legitimate document, a fetch response, nests four levels).
const maxJSONDepth = 8

// decodeStrict decodes data into v under the protocol's strict rules: data is one JSON
// value and nothing else, valid UTF-8, nested at most maxJSONDepth levels; object keys are
// unique and made of lowercase ASCII letters, digits and '_' (so that encoding/json's
// case-insensitive matching never maps "V" onto "v"); fields v does not name are errors.
func decodeStrict(data []byte, v any) error {
	if err := checkJSON(data); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return nil
}

// checkJSON applies decodeStrict's syntactic rules (one value, UTF-8, depth, keys).
func checkJSON(data []byte) error {
	if !utf8.Valid(data) {
		return fmt.Errorf("%w: JSON is not valid UTF-8", ErrMalformed)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var stack []jsonContainer
	values := 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("%w: %w", ErrMalformed, err)
		}
		if len(stack) == 0 {
			values++
			if values > 1 {
				return fmt.Errorf("%w: more than one JSON value", ErrMalformed)
			}
		}
		top := len(stack) - 1
		if top >= 0 && stack[top].object && stack[top].expectKey {
			if d, ok := tok.(json.Delim); ok && d == '}' {
				stack = stack[:top]
				markValue(stack)
				continue
			}
			key, _ := tok.(string)
			if !validKey(key) {
				return fmt.Errorf("%w: object key %q is not lowercase ASCII", ErrMalformed, truncate(key, 40))
			}
			if _, dup := stack[top].keys[key]; dup {
				return fmt.Errorf("%w: duplicate object key %q", ErrMalformed, key)
			}
			stack[top].keys[key] = struct{}{}
			stack[top].expectKey = false
			continue
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			if len(stack) >= maxJSONDepth {
				return fmt.Errorf("%w: JSON nested deeper than %d levels", ErrMalformed, maxJSONDepth)
			}
			obj := tok == json.Delim('{')
			f := jsonContainer{object: obj, expectKey: obj}
			if obj {
				f.keys = make(map[string]struct{})
			}
			stack = append(stack, f)
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:top]
			markValue(stack)
		default:
			markValue(stack)
		}
	}
	if values == 0 {
		return fmt.Errorf("%w: empty JSON", ErrMalformed)
	}
	return nil
}

// jsonContainer is one open object or array of checkJSON: for objects the keys seen and
// whether the next string token is a key.
type jsonContainer struct {
	keys      map[string]struct{}
	object    bool
	expectKey bool
}

// markValue records that the innermost object's member value is complete.
func markValue(stack []jsonContainer) {
	if n := len(stack); n > 0 && stack[n-1].object {
		stack[n-1].expectKey = true
	}
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
