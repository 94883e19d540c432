package http

import (
	"bytes"
	"testing"
)

// FuzzParseCallRequestWalk: the in-place walk parseCallRequest uses for valid bodies
// answers exactly as the token-by-token parser (same operation, same input bytes,
// same error message) on every body that starts with '{'.
func FuzzParseCallRequestWalk(f *testing.F) {
	for _, s := range []string{
		`{"operation":"demo/echo"}`, `{"operation":"demo/echo","input":{"a":[1,2]}}`,
		`{"operation":"x","operation":"y"}`, `{"Operation":"x"}`, `{"operation":5}`,
		`{"operation":null}`, `{"operation":"/"}`, `{"operation":""}`, `{}`, `{ }`,
		`{"input":1,"input":2,"operation":"a"}`, `{"operation":"a","input":1,"input":2}`,
		`{"operatio\u006e":"a\u00e9\"b","inp\u0075t" : [ {"}":"]"} , "\\" ] }`,
		"{\"operation\":\"a\xffb\"}", "{\"operation\"\t:\n\"a\" ,\r\"x\":{\"operation\":1}}",
		`{"x":[[[{"operation":"no"}]]],"operation":"yes","input":"s\"}"}`,
		`{"input":true,"operation":"a"}`, `{"input":-1.5e3,"operation":"a","z":false}`,
		`{"operation":"a","operation":1 x`, `{"operation":1,"operation":"a"`, `{`,
		`{"operation":"a"} x`, ` {"input":null,"operation":"/a/b","z":1} `,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		trimmed := bytes.TrimSpace(b)
		if len(trimmed) == 0 || trimmed[0] != '{' {
			return
		}
		op, input, err := parseCallRequest(b)
		wop, winput, werr := parseCallRequestTokens(trimmed)
		if (err == nil) != (werr == nil) || err != nil && err.Message != werr.Message {
			t.Fatalf("%q: error %v, token parser %v", b, err, werr)
		}
		if op != wop || !bytes.Equal(input, winput) {
			t.Fatalf("%q: got %q %q, token parser %q %q", b, op, input, wop, winput)
		}
	})
}

// TestParseCallRequestAllocs: a valid /call body costs one allocation (the operation
// name) and an error value is built only for an error.
func TestParseCallRequestAllocs(t *testing.T) {
	body := []byte(`{"operation":"bench/echo","input":{"message":"hello","n":42}}`)
	if n := testing.AllocsPerRun(100, func() {
		if _, _, err := parseCallRequest(body); err != nil {
			t.Fatal(err)
		}
	}); n > 1 {
		t.Errorf("parseCallRequest: %v allocations, want at most 1", n)
	}
}

// BenchmarkParseCallRequest measures the /call body parser alone on the body of
// BenchmarkCall.
func BenchmarkParseCallRequest(b *testing.B) {
	body := []byte(benchCallBody)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := parseCallRequest(body); err != nil {
			b.Fatal(err)
		}
	}
}
