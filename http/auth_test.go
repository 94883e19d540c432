package http_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/alknet/alknet/core"
	alkhttp "github.com/alknet/alknet/http"
)

// htAuthCase is one Authorization header set: the values of the header (nil: none).
type htAuthCase struct {
	name    string
	values  []string
	wantTok string // "" when no token is expected
}

var htAuthCases = []htAuthCase{
	{"bearer", []string{"Bearer tok-admin"}, "tok-admin"},
	{"bearer with symbols", []string{"Bearer alk_abcd.EF-gh~+/="}, "alk_abcd.EF-gh~+/="},
	{"bearer non-ASCII UTF-8", []string{"Bearer tök€n"}, "tök€n"},
	{"missing", nil, ""},
	{"empty value", []string{""}, ""},
	{"scheme only", []string{"Bearer"}, ""},
	{"scheme and space only", []string{"Bearer "}, ""},
	// RFC 9110 §11.1: the scheme is case-insensitive, and one or more spaces follow it.
	{"lowercase scheme", []string{"bearer tok-admin"}, "tok-admin"},
	{"uppercase scheme", []string{"BEARER tok-admin"}, "tok-admin"},
	{"mixed-case scheme", []string{"bEaReR tok-admin"}, "tok-admin"},
	{"no space", []string{"Bearertok-admin"}, ""},
	{"tab separator", []string{"Bearer\ttok-admin"}, ""},
	{"two spaces", []string{"Bearer  tok-admin"}, "tok-admin"},
	{"another scheme starting Bearer", []string{"Bearerx tok-admin"}, ""},
	{"scheme prefix", []string{"Bear tok-admin"}, ""},
	{"trailing space", []string{"Bearer tok-admin "}, ""},
	{"inner space", []string{"Bearer tok admin"}, ""},
	{"basic", []string{"Basic dXNlcjpwYXNz"}, ""},
	{"two headers", []string{"Bearer tok-admin", "Bearer tok-admin"}, ""},
	{"two headers one bearer", []string{"Basic dXNlcjpwYXNz", "Bearer tok-admin"}, ""},
	{"not UTF-8", []string{"Bearer tok-\xff\xfe"}, ""},
	{"truncated UTF-8", []string{"Bearer tok\xc3"}, ""},
	{"NUL", []string{"Bearer tok\x00admin"}, ""},
	{"control char", []string{"Bearer tok\x01admin"}, ""},
	{"escape", []string{"Bearer tok\x1badmin"}, ""},
	{"DEL", []string{"Bearer tok\x7fadmin"}, ""},
	{"inner tab", []string{"Bearer tok\tadmin"}, ""},
	{"CR LF", []string{"Bearer tok\r\nadmin"}, ""},
	// C1 controls are control characters too (unicode.IsControl).
	{"C1 control NEL", []string{"Bearer tok\u0085admin"}, ""},
	{"C1 control CSI", []string{"Bearer tok\u009badmin"}, ""},
}

func htHeader(values []string) http.Header {
	h := http.Header{}
	for _, v := range values {
		h.Add("Authorization", v)
	}
	return h
}

func TestBearerToken(t *testing.T) {
	for _, tt := range htAuthCases {
		t.Run(tt.name, func(t *testing.T) {
			tok, ok := alkhttp.BearerToken(htHeader(tt.values))
			if ok != (tt.wantTok != "") || string(tok) != tt.wantTok {
				t.Fatalf("BearerToken(%q) = %q, %v; want %q", tt.values, tok, ok, tt.wantTok)
			}
		})
	}
}

// The Bearer layer never rejects: the next handler always runs, with the resolved
// identity or none.
func TestBearerAuthNeverRejects(t *testing.T) {
	ids := htIDs()
	resolve := func(tok []byte) *core.Identity {
		id, ok := ids.ResolveFromToken(core.AuthToken{Raw: tok})
		if !ok {
			return nil
		}
		return id
	}
	cases := append([]htAuthCase{
		{"unresolvable token", []string{"Bearer nope"}, ""},
		{"user token", []string{"Bearer tok-user"}, "tok-user"},
	}, htAuthCases...)
	wantID := map[string]string{"tok-admin": "alice", "tok-user": "bob"}
	for _, tt := range cases {
		for _, withResolver := range []bool{true, false} {
			name := tt.name
			if !withResolver {
				name += " nil resolver"
			}
			t.Run(name, func(t *testing.T) {
				ran := false
				var got *core.Identity
				next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					ran = true
					got = alkhttp.IdentityFrom(r.Context())
					w.WriteHeader(http.StatusTeapot)
				})
				r := resolve
				if !withResolver {
					r = nil
				}
				req := httptest.NewRequest(http.MethodGet, "/x", nil)
				req.Header = htHeader(tt.values)
				rec := httptest.NewRecorder()
				alkhttp.BearerAuth(r, next).ServeHTTP(rec, req)
				if !ran || rec.Code != http.StatusTeapot {
					t.Fatalf("the next handler did not answer (ran=%v, status %d)", ran, rec.Code)
				}
				want := ""
				if withResolver {
					want = wantID[tt.wantTok]
				}
				switch {
				case want == "" && got != nil:
					t.Fatalf("identity %+v, want none", got)
				case want != "" && (got == nil || got.ID != want):
					t.Fatalf("identity %+v, want %q", got, want)
				}
			})
		}
	}
}

func TestIdentityFrom(t *testing.T) {
	if id := alkhttp.IdentityFrom(context.Background()); id != nil {
		t.Fatalf("IdentityFrom(Background) = %+v, want nil", id)
	}
	want := &core.Identity{ID: "carol"}
	ctx := alkhttp.WithIdentity(context.Background(), want)
	if got := alkhttp.IdentityFrom(ctx); got != want {
		t.Fatalf("IdentityFrom(WithIdentity(id)) = %+v, want %+v", got, want)
	}
	if got := alkhttp.IdentityFrom(alkhttp.WithIdentity(context.Background(), nil)); got != nil {
		t.Fatalf("IdentityFrom(WithIdentity(nil)) = %+v, want nil", got)
	}
	type otherKey struct{}
	if got := alkhttp.IdentityFrom(context.WithValue(context.Background(), otherKey{}, want)); got != nil {
		t.Fatalf("IdentityFrom picked up another key's value: %+v", got)
	}
}
