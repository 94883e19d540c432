package http

import (
	"context"
	"net/http"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/alknet/alknet/core"
)

// identityKey is the request-context key of the identity the Bearer layer resolved.
type identityKey struct{}

// BearerPrefix is the exact, case-sensitive start of an Authorization header value the
// Bearer layer reads.
const BearerPrefix = "Bearer "

// BearerAuth returns next wrapped in the Bearer layer: it resolves the token of an
// "Authorization: Bearer <token>" header with resolve and stores the identity in the
// request context (read it with IdentityFrom). It never rejects a request: a missing
// header, another scheme, a token that is not UTF-8 or does not resolve all leave the
// request anonymous, and the operation's access rule decides.
func BearerAuth(resolve func(token []byte) *core.Identity, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if id := bearerIdentity(r.Header, resolve); id != nil {
			r = r.WithContext(WithIdentity(r.Context(), id))
		}
		next.ServeHTTP(w, r)
	})
}

// bearerIdentity resolves the Bearer token of h; nil for none.
func bearerIdentity(h http.Header, resolve func([]byte) *core.Identity) *core.Identity {
	tok, ok := BearerToken(h)
	if !ok || resolve == nil {
		return nil
	}
	return resolve(tok)
}

// BearerToken returns the token of the request's single "Authorization: Bearer <token>"
// header: the bytes after exactly "Bearer ", non-empty, valid UTF-8 and without
// control characters. ok is false for anything else.
func BearerToken(h http.Header) (token []byte, ok bool) {
	vals := h.Values("Authorization")
	if len(vals) != 1 {
		return nil, false
	}
	rest, found := strings.CutPrefix(vals[0], BearerPrefix)
	if !found || rest == "" {
		return nil, false
	}
	if !utf8.ValidString(rest) {
		return nil, false
	}
	for _, c := range rest {
		if c <= ' ' || unicode.IsControl(c) {
			return nil, false
		}
	}
	return []byte(rest), true
}

// WithIdentity returns ctx carrying id as the caller's identity, as the Bearer layer
// does; embedders with their own authentication can use it in their middleware.
func WithIdentity(ctx context.Context, id *core.Identity) context.Context {
	return context.WithValue(ctx, identityKey{}, id)
}

// IdentityFrom returns the identity the Bearer layer resolved for the request whose
// context is ctx; nil for an anonymous caller.
func IdentityFrom(ctx context.Context) *core.Identity {
	id, _ := ctx.Value(identityKey{}).(*core.Identity)
	return id
}
