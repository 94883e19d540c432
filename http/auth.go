package http

import (
	"context"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/alknet/alknet/call"
	"github.com/alknet/alknet/core"
)

// identityKey is the request-context key of the identity the Bearer layer resolved.
type identityKey struct{}

// BearerPrefix is the canonical start of an Authorization header value the Bearer
// layer reads: the scheme and one space. BearerToken accepts the scheme in any case
// (RFC 9110 §11.1: "bearer", "BEARER") and one or more spaces after it.
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
// header: the scheme "Bearer" in any case (RFC 9110 §11.1), one or more spaces, then
// the token, non-empty, valid UTF-8 and without spaces or control characters. ok is
// false for anything else (no header, several, another scheme, a malformed token).
func BearerToken(h http.Header) (token []byte, ok bool) {
	vals := h.Values("Authorization")
	if len(vals) != 1 {
		return nil, false
	}
	rest, found := cutBearer(vals[0])
	if !found || !validBearerToken(rest) {
		return nil, false
	}
	return []byte(rest), true
}

// cutBearer returns what follows the Bearer scheme (any case) and its spaces in an
// Authorization header value; found is false for another scheme.
func cutBearer(v string) (rest string, found bool) {
	scheme := strings.TrimSuffix(BearerPrefix, " ")
	if len(v) <= len(scheme) || !strings.EqualFold(v[:len(scheme)], scheme) || v[len(scheme)] != ' ' {
		return "", false
	}
	return strings.TrimLeft(v[len(scheme):], " "), true
}

// validBearerToken reports whether t can be a Bearer token: non-empty, valid UTF-8,
// without spaces or control characters.
func validBearerToken(t string) bool {
	if t == "" || !utf8.ValidString(t) {
		return false
	}
	for _, c := range t {
		if c <= ' ' || unicode.IsControl(c) {
			return false
		}
	}
	return true
}

// bearerPresented reports whether h presents a Bearer credential at all (an
// Authorization header with the Bearer scheme, well-formed or not): what counts as an
// authentication attempt. token is the usable token, nil when malformed.
func bearerPresented(h http.Header) (token []byte, presented bool) {
	vals := h.Values("Authorization")
	for _, v := range vals {
		if _, found := cutBearer(v); found {
			presented = true
		}
	}
	if !presented {
		return nil, false
	}
	token, _ = BearerToken(h)
	return token, true
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

// Reasons of the auth failure lines the handler writes (core.LogAuthFailure).
const (
	reasonBadBearer      = "invalid bearer token"
	reasonBadSubprotocol = "invalid bearer subprotocol token"
	reasonRevoked        = "credential revoked"
	// reasonChanged closes a WebSocket or subscription whose credential still
	// resolves, with other scopes or resources: the client reconnects with the new
	// grant. Not an auth failure.
	reasonChanged = "credential changed"
)

// watchCredential re-resolves tok (nil: no watch) at every reload of the identity
// provider, for as long as ctx lasts: once it no longer resolves to id's identity,
// end is called with reasonRevoked, or, when it resolves with other scopes or
// resources, with reasonChanged. It does nothing for a provider that does not
// announce reloads (core.ReloadNotifier). stop ends the watch and waits for it; tok
// must stay intact until then.
func (h *Handler) watchCredential(ctx context.Context, tok []byte, id *core.Identity, end func(reason string)) (stop func()) {
	if tok == nil || id == nil || h.gw.Identities == nil {
		return func() {}
	}
	var reason string
	return core.WatchRevocation(ctx, h.gw.Identities, func() bool {
		now, ok := h.gw.Identities.ResolveFromToken(core.AuthToken{Raw: tok})
		switch {
		case !ok || now == nil || now.ID != id.ID:
			reason = reasonRevoked
		case !slices.Equal(now.Scopes, id.Scopes) || !maps.EqualFunc(now.Resources, id.Resources, slices.Equal):
			reason = reasonChanged
		default:
			return true
		}
		return false
	}, func() { end(reason) })
}

// bearerLayer is the handler's own Bearer layer: BearerAuth, with every Bearer
// credential presented counted as an authentication attempt of the connection. It
// still never rejects a request for a token that does not resolve (the request goes on
// anonymous, the failure is logged and counted); only a credential presented after
// the connection used up core.Limits.MaxAuthAttempts is refused, and the connection
// closed.
func (h *Handler) bearerLayer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, presented := bearerPresented(r.Header)
		if !presented {
			next.ServeHTTP(w, r)
			return
		}
		id, ok := h.authenticate(w, r, tok, reasonBadBearer)
		clear(tok)
		if !ok {
			return
		}
		if id != nil {
			r = r.WithContext(WithIdentity(r.Context(), id))
		}
		next.ServeHTTP(w, r)
	})
}

// authenticate resolves tok (nil: a malformed credential), presented on r's
// connection, as one authentication attempt. A credential that does not resolve is
// logged with reason and counted, and id is nil. ok is false when the connection had
// already used up its attempts: then authenticate has answered 429 with an HTTP_429
// CallError and Connection: close, logged the refusal and closed the connection.
func (h *Handler) authenticate(w http.ResponseWriter, r *http.Request, tok []byte, reason string) (id *core.Identity, ok bool) {
	st := connStateFrom(r.Context())
	if st != nil && st.attempts != nil {
		if err := st.attempts.Allow(); err != nil {
			h.logAuthFailure(r, tokenPeer(tok), core.ErrTooManyAuthAttempts.Error())
			h.refuseTooManyAttempts(w, r, st, err)
			return nil, false
		}
	}
	if tok != nil {
		id = h.gw.ResolveBearer(tok)
	}
	if id == nil {
		h.logAuthFailure(r, tokenPeer(tok), reason)
		if st != nil && st.attempts != nil {
			st.attempts.Fail()
		}
	}
	return id, true
}

// refuseTooManyAttempts answers a credential presented after the connection used up
// its attempts and closes the connection: an HTTP/1.1 one through Connection: close
// once the answer is written; an h2 connection, or a QUIC connection (whatever its
// streams speak), at once with core.CloseAuthRequired, so the client may see that
// close rather than the 429. In an embedder's server, Connection: close alone (an h2
// connection goes away gracefully).
func (h *Handler) refuseTooManyAttempts(w http.ResponseWriter, r *http.Request, st *connState, err error) {
	w.Header().Set("Connection", "close")
	writeCallErrorStatus(w, call.Errorf(HTTPCodePrefix+"429", "%v on this connection", err), http.StatusTooManyRequests)
	_ = http.NewResponseController(w).Flush()
	if st.conn == nil || (r.ProtoMajor == 1 && st.conn.SingleStream()) {
		return
	}
	st.conn.Close(core.CloseAuthRequired, core.ErrTooManyAuthAttempts.Error())
}

// logAuthFailure writes core's auth failure line for a credential presented with r:
// the connection's ALPN and remote address, and peer (tokenPeer: never the token).
func (h *Handler) logAuthFailure(r *http.Request, peer, reason string) {
	f := core.AuthFailure{Peer: peer, Reason: reason}
	if st := connStateFrom(r.Context()); st != nil {
		f.ALPN, f.Remote = st.alpn, st.remote
	}
	if f.ALPN == "" {
		f.ALPN = requestALPN(r)
	}
	if f.Remote == nil {
		if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
			f.Remote = net.TCPAddrFromAddrPort(ap)
		}
	}
	core.LogAuthFailure(r.Context(), h.logger, f)
}

// tokenPeer is what an auth failure line may say of tok: an API key's public prefix
// (core.APIKeyPrefixLen characters starting core.APIKeyPrefix, base64url), else "-".
func tokenPeer(tok []byte) string {
	if len(tok) < core.APIKeyPrefixLen || string(tok[:len(core.APIKeyPrefix)]) != core.APIKeyPrefix {
		return "-"
	}
	for _, c := range tok[len(core.APIKeyPrefix):core.APIKeyPrefixLen] {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_':
		default:
			return "-"
		}
	}
	return string(tok[:core.APIKeyPrefixLen])
}

// requestALPN names the protocol of r in an embedder's server: the TLS ALPN, else
// h2 or http/1.1.
func requestALPN(r *http.Request) string {
	switch {
	case r.TLS != nil && r.TLS.NegotiatedProtocol != "":
		return r.TLS.NegotiatedProtocol
	case r.ProtoMajor == 2:
		return "h2"
	}
	return "http/1.1"
}
