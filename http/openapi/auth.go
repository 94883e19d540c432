package openapi

import (
	"fmt"
	"strings"
)

// AuthKind says how the service's credential is sent upstream.
type AuthKind int

// Authentication kinds.
const (
	// AuthNone sends no credential, even when one is present.
	AuthNone AuthKind = iota
	// AuthBearer sends "Authorization: Bearer <credential>".
	AuthBearer
	// AuthHeader sends "<Auth.Header>: <credential>".
	AuthHeader
	// AuthBasic sends "Authorization: Basic <credential>". A credential holding a ':'
	// is "user:password" and is base64-encoded first; one without is taken to be
	// base64 already and sent as it is.
	AuthBasic
)

// String returns "none", "bearer", "header", "basic" or "AuthKind(n)".
func (k AuthKind) String() string {
	switch k {
	case AuthNone:
		return "none"
	case AuthBearer:
		return "bearer"
	case AuthHeader:
		return "header"
	case AuthBasic:
		return "basic"
	}
	return fmt.Sprintf("AuthKind(%d)", int(k))
}

// Auth is how a service authenticates upstream. The credential itself is never
// here: it comes from the call's capabilities (core.Capabilities.Get with the
// service namespace) when the call is forwarded.
type Auth struct {
	// Kind is the scheme.
	Kind AuthKind
	// Header is the header name for AuthHeader, such as "X-API-Key"; unused otherwise.
	Header string
}

// String returns the configuration syntax [ParseAuth] reads: "none", "bearer",
// "basic" or "header:<Name>".
func (a Auth) String() string {
	if a.Kind == AuthHeader {
		return "header:" + a.Header
	}
	return a.Kind.String()
}

// validate checks a's kind and, for AuthHeader, its header name.
func (a Auth) validate() error {
	switch a.Kind {
	case AuthNone, AuthBearer, AuthBasic:
		return nil
	case AuthHeader:
		if !validHeaderName(a.Header) {
			return fmt.Errorf("%w: auth header name %q is not a valid HTTP header name", ErrConfig, a.Header)
		}
		return nil
	}
	return fmt.Errorf("%w: unknown auth kind %d", ErrConfig, int(a.Kind))
}

// ParseAuth reads the configuration file syntax of an auth setting: "none",
// "bearer", "basic" or "header:<Name>", where Name is a valid HTTP header name (an
// RFC 9110 token) kept as written. The keywords are matched without regard to case.
// Errors wrap [ErrConfig].
func ParseAuth(s string) (Auth, error) {
	kind, name, hasColon := strings.Cut(s, ":")
	switch k := strings.ToLower(kind); {
	case k == "header" && hasColon:
		a := Auth{Kind: AuthHeader, Header: name}
		if err := a.validate(); err != nil {
			return Auth{}, err
		}
		return a, nil
	case hasColon:
	case k == "none":
		return Auth{Kind: AuthNone}, nil
	case k == "bearer":
		return Auth{Kind: AuthBearer}, nil
	case k == "basic":
		return Auth{Kind: AuthBasic}, nil
	}
	return Auth{}, fmt.Errorf("%w: auth %q: want none, bearer, basic or header:<Name>", ErrConfig, s)
}

// validHeaderName reports whether s is an RFC 9110 token.
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isTokenChar(s[i]) {
			return false
		}
	}
	return true
}

// isTokenChar reports whether c is an RFC 9110 tchar.
func isTokenChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// validHeaderValue reports whether s may be sent as a header value: no CR, LF or
// NUL (or other control character but tab).
func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 0x20 && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}
