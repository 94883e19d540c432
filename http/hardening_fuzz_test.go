package http

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"testing/iotest"
	"unicode"
	"unicode/utf8"

	"github.com/alknet/alknet/core"
)

// FuzzBearerToken: a single Authorization value yields a token exactly when it is
// the scheme "bearer" in any case, one or more spaces, then a non-empty token without
// spaces or control characters in valid UTF-8; and any value with that scheme counts
// as a presented credential, well-formed or not.
func FuzzBearerToken(f *testing.F) {
	for _, s := range []string{"Bearer tok", "bearer tok", "BEARER  tok", "Bearer", "Bearer ", "Bearertok",
		"Basic dXNlcg==", "Bearer tok\x00", "Bearer t\u0085k", "bEaReR alk_abcd-x", "Bearer \xff", "Bear tok", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		h := http.Header{"Authorization": {v}}
		tok, ok := BearerToken(h)
		ptok, presented := bearerPresented(h)

		scheme := len(v) > 6 && strings.EqualFold(v[:6], "bearer") && v[6] == ' '
		rest := ""
		if scheme {
			rest = strings.TrimLeft(v[6:], " ")
		}
		valid := rest != "" && utf8.ValidString(rest) && !strings.ContainsFunc(rest, func(c rune) bool {
			return c <= ' ' || unicode.IsControl(c)
		})
		if presented != scheme {
			t.Fatalf("%q: presented %v, want %v", v, presented, scheme)
		}
		if ok != valid || (ok && string(tok) != rest) {
			t.Fatalf("%q: token %q %v, want %q %v", v, tok, ok, rest, valid)
		}
		if string(ptok) != string(tok) {
			t.Fatalf("%q: bearerPresented token %q, BearerToken %q", v, ptok, tok)
		}
		if p := tokenPeer(tok); p != "-" && (!strings.HasPrefix(p, core.APIKeyPrefix) || len(p) != core.APIKeyPrefixLen || !strings.HasPrefix(string(tok), p)) {
			t.Fatalf("%q: peer %q is not an API key prefix of the token", v, p)
		}
	})
}

// FuzzReadLimited: whatever the chunking, input of at most limit bytes comes back
// whole with exactly its length reserved; longer input is refused with errTooLarge
// having reserved at most limit bytes; a budget smaller than the input refuses it with
// a *core.BudgetError; and nothing is reserved that was not read.
func FuzzReadLimited(f *testing.F) {
	f.Add([]byte("hello"), int64(5), int64(100), false)
	f.Add([]byte("hello"), int64(4), int64(100), true)
	f.Add([]byte("hello"), int64(10), int64(3), false)
	f.Add([]byte{}, int64(0), int64(0), true)
	f.Fuzz(func(t *testing.T, data []byte, limit, budget int64, oneByte bool) {
		if limit < 0 || limit > 1<<20 || budget < 0 {
			t.Skip()
		}
		b := core.NewBudget(core.BudgetScopeConn, budget, nil)
		res := b.Reservation()
		var r io.Reader = bytes.NewReader(data)
		if oneByte {
			r = iotest.OneByteReader(r)
		}
		got, err := readLimited(r, limit, res, make([]byte, 7))
		n := int64(len(data))
		switch {
		case n > limit:
			if !errors.Is(err, errTooLarge) && !errors.Is(err, core.ErrBudgetExceeded) {
				t.Fatalf("%d bytes over a limit of %d: %v", n, limit, err)
			}
		case n > budget:
			if _, ok := errors.AsType[*core.BudgetError](err); !ok {
				t.Fatalf("%d bytes over a budget of %d: %v", n, budget, err)
			}
		default:
			if err != nil || !bytes.Equal(got, data) || res.Bytes() != n || b.Used() != n {
				t.Fatalf("%d bytes: %v, reserved %d (used %d)", n, err, res.Bytes(), b.Used())
			}
		}
		if res.Bytes() > min(limit, budget) || b.Used() != res.Bytes() {
			t.Fatalf("reserved %d (used %d) for limit %d, budget %d", res.Bytes(), b.Used(), limit, budget)
		}
		res.Release()
		if b.Used() != 0 {
			t.Fatalf("%d bytes still used after Release", b.Used())
		}
	})
}
