package mcp

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// stateKey is the context key of a request's *reqState.
type stateKey struct{}

// reqState is what the round tripper learns about the HTTP requests made for one
// tools/call (perCall) or one session operation (connect, tools/list): which
// credential to send, and what happened on the wire.
type reqState struct {
	// perCall selects cred (possibly none) instead of the session credential.
	perCall bool
	// cred is the call's credential; nil for none. Owned by the caller, which wipes it.
	cred []byte

	mu sync.Mutex
	// reached is set once a request may have reached the server: any answer other
	// than 404 (which the streamable transport gives for an unknown session before
	// looking at the message), and any transport error.
	reached bool
	// refused is set by a 401 or 403 answer.
	refused bool
	// tooLarge is set when a response body went over the limit.
	tooLarge bool
	// requests counts the HTTP requests made.
	requests int
}

func withState(ctx context.Context, st *reqState) context.Context {
	return context.WithValue(ctx, stateKey{}, st)
}

func stateFrom(ctx context.Context) *reqState {
	st, _ := ctx.Value(stateKey{}).(*reqState)
	return st
}

func (st *reqState) observe(resp *http.Response, err error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.requests++
	if err != nil {
		st.reached = true
		return
	}
	switch resp.StatusCode {
	case http.StatusNotFound:
	case http.StatusUnauthorized, http.StatusForbidden:
		st.refused = true
		st.reached = true
	default:
		st.reached = true
	}
}

func (st *reqState) markTooLarge() {
	st.mu.Lock()
	st.tooLarge = true
	st.mu.Unlock()
}

// snapshot returns reached, refused and tooLarge.
func (st *reqState) snapshot() (reached, refused, tooLarge bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.reached, st.refused, st.tooLarge
}

// secret is the session credential: read under a lock, wiped on Close.
type secret struct {
	mu sync.RWMutex
	b  []byte
}

// header returns the Authorization value for the secret; "" for none.
func (s *secret) header() string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if len(s.b) == 0 {
		return ""
	}
	return bearer(s.b)
}

func (s *secret) wipe() {
	s.mu.Lock()
	wipe(s.b)
	s.b = nil
	s.mu.Unlock()
}

// bearer returns "Bearer <cred>".
func bearer(cred []byte) string {
	var b strings.Builder
	b.Grow(7 + len(cred))
	b.WriteString("Bearer ")
	b.Write(cred)
	return b.String()
}

// validCredential reports whether "Bearer <cred>" can be sent as a header value.
func validCredential(cred []byte) bool {
	for _, c := range cred {
		if c < 0x20 || c == 0x7f {
			return false
		}
	}
	return true
}

// roundTripper sets the Authorization header of every request to the endpoint's
// origin — the call's credential for a tools/call, the session credential for
// everything else — records what happened in the request's reqState, and bounds
// every response body.
type roundTripper struct {
	base   http.RoundTripper
	origin *url.URL
	cred   *secret
	limit  int64
}

func (rt *roundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	st := stateFrom(req.Context())
	r := req.Clone(req.Context())
	r.Header.Del("Authorization")
	if sameOrigin(r.URL, rt.origin) {
		var auth string
		if st != nil && st.perCall {
			if len(st.cred) > 0 {
				auth = bearer(st.cred)
			}
		} else {
			auth = rt.cred.header()
		}
		if auth != "" {
			r.Header.Set("Authorization", auth)
		}
	}
	resp, err := rt.base.RoundTrip(r)
	if st != nil {
		st.observe(resp, err)
	}
	if err != nil {
		return nil, err
	}
	resp.Body = &limitedBody{rc: resp.Body, left: rt.limit, limit: rt.limit, st: st}
	return resp, nil
}

// sameOrigin reports whether u has the scheme and host of origin.
func sameOrigin(u, origin *url.URL) bool {
	return u != nil && strings.EqualFold(u.Scheme, origin.Scheme) && strings.EqualFold(u.Host, origin.Host)
}

// limitedBody fails a read past limit bytes.
type limitedBody struct {
	rc    io.ReadCloser
	left  int64
	limit int64
	st    *reqState
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.left < 0 {
		return 0, b.tooLarge()
	}
	// Read at most one byte past the limit, to tell "exactly the limit" from more.
	if rem := b.left + 1; rem > 0 && int64(len(p)) > rem {
		p = p[:rem]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	if b.left < 0 {
		// Hand over only what fits; the caller gets the error with it.
		n += int(b.left)
		return n, b.tooLarge()
	}
	return n, err
}

func (b *limitedBody) tooLarge() error {
	if b.st != nil {
		b.st.markTooLarge()
	}
	return fmt.Errorf("%w: over the limit of %d bytes", ErrResponseTooLarge, b.limit)
}

func (b *limitedBody) Close() error { return b.rc.Close() }

// newTransport returns the transport of an importer built without an HTTP client:
// direct connections (never a proxy from the environment), HTTP/2 when the server
// offers it.
func newTransport() *http.Transport {
	d := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy:                 nil,
		DialContext:           d.DialContext,
		ForceAttemptHTTP2:     true,
		TLSHandshakeTimeout:   10 * time.Second,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConnsPerHost:   16,
		ExpectContinueTimeout: time.Second,
	}
}
