package mcp

import (
	"errors"
	"io"
	"math"
	"strings"
	"testing"
)

// TestLimitedBody: a body of exactly the limit reads to EOF; one byte more fails with
// ErrResponseTooLarge naming the limit and marks the request state; a huge limit
// does not overflow.
func TestLimitedBody(t *testing.T) {
	read := func(body string, limit int64, st *reqState) (string, error) {
		b, err := io.ReadAll(&limitedBody{rc: io.NopCloser(strings.NewReader(body)), left: limit, limit: limit, st: st})
		return string(b), err
	}
	if got, err := read("12345", 5, nil); err != nil || got != "12345" {
		t.Errorf("at the limit: %q %v", got, err)
	}
	st := &reqState{}
	got, err := read("123456", 5, st)
	if !errors.Is(err, ErrResponseTooLarge) || !strings.Contains(err.Error(), "limit of 5 bytes") || len(got) > 5 {
		t.Errorf("over the limit: %q %v", got, err)
	}
	if _, _, tooLarge := st.snapshot(); !tooLarge {
		t.Error("state not marked")
	}
	if got, err := read("abc", math.MaxInt64, nil); err != nil || got != "abc" {
		t.Errorf("huge limit: %q %v", got, err)
	}
	if got, err := read("", 0, nil); err != nil || got != "" {
		t.Errorf("empty at zero: %q %v", got, err)
	}
}

// TestValidCredential: control characters cannot be sent in a header.
func TestValidCredential(t *testing.T) {
	for cred, want := range map[string]bool{"": true, "abc.DEF-123_~+/=": true, "a b": true, "a\tb": false, "a\r\nb": false, "a\x00": false, "a\x7f": false} {
		if got := validCredential([]byte(cred)); got != want {
			t.Errorf("%q: %v", cred, got)
		}
	}
}
