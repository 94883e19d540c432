package openapi

import (
	"errors"
	"strings"
)

var (
	// ErrSchemaParse is wrapped by every error about the document: it is not JSON or
	// YAML, lacks info or paths, exceeds a limit, holds an external, unresolvable or
	// looping $ref, or describes an operation that cannot be imported (a bad or
	// duplicate name).
	ErrSchemaParse = errors.New("openapi: schema parse error")
	// ErrConfig is wrapped by every error about a [ServiceConfig], an [Auth] string or
	// the arguments of [Import] and [FromJSONSchema].
	ErrConfig = errors.New("openapi: invalid configuration")
)

// ParseError is a problem in a document at a known place. It wraps
// [ErrSchemaParse] and, when set, Err.
type ParseError struct {
	// Location is the JSON pointer (RFC 6901) of the offending value, such as
	// "/paths/~1pet~1{petId}/get/parameters/0"; "" means the whole document.
	Location string
	// Msg says what is wrong.
	Msg string
	// Err is the underlying cause, or nil.
	Err error
}

// Error returns "openapi: <location>: <msg>[: <cause>]".
func (e *ParseError) Error() string {
	var b strings.Builder
	b.WriteString("openapi: ")
	if e.Location != "" {
		b.WriteString(e.Location)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap returns ErrSchemaParse and the cause, so that errors.Is matches both.
func (e *ParseError) Unwrap() []error {
	if e.Err == nil {
		return []error{ErrSchemaParse}
	}
	return []error{ErrSchemaParse, e.Err}
}

// parseErr builds a *ParseError.
func parseErr(loc, msg string, cause error) error {
	return &ParseError{Location: loc, Msg: msg, Err: cause}
}

// pointerJoin appends one reference token to a JSON pointer, escaping it.
func pointerJoin(ptr, token string) string {
	token = strings.ReplaceAll(token, "~", "~0")
	token = strings.ReplaceAll(token, "/", "~1")
	return ptr + "/" + token
}
