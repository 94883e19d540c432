package http

import (
	"encoding/json"
	"testing"
)

// FuzzParseCallRequest: the /call, /subscribe and /batch item parser never panics, and
// what it accepts is a JSON object whose "operation" is that non-empty string and whose
// input is valid JSON.
func FuzzParseCallRequest(f *testing.F) {
	for _, s := range []string{
		`{"operation":"demo/echo"}`, `{"operation":"demo/echo","input":{"a":[1,2]}}`,
		`{"operation":"x","operation":"y"}`, `{"Operation":"x"}`, `{"operation":5}`,
		`[]`, `{`, `{"operation":"a"} x`, ` {"input":null,"operation":"/a/b","z":1} `,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		op, input, err := parseCallRequest(b)
		if err != nil {
			if err.Code != "INVALID_INPUT" {
				t.Fatalf("error code %s", err.Code)
			}
			return
		}
		if op == "" || !json.Valid(input) || !json.Valid(b) {
			t.Fatalf("accepted %q: op %q input %q", b, op, input)
		}
		var m map[string]json.RawMessage
		if json.Unmarshal(b, &m) != nil {
			t.Fatalf("accepted a body that is not an object: %q", b)
		}
		var got string
		if json.Unmarshal(m["operation"], &got) != nil || got != op {
			t.Fatalf("operation %q, body says %s", op, m["operation"])
		}
	})
}
