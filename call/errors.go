package call

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Protocol error codes: the six codes the dispatch machinery itself emits (call.md §2.4).
// Operations may declare their own codes as well (ADR-023), such as "FILE_NOT_FOUND";
// imported HTTP errors use the "HTTP_<status>" convention ([HTTPStatusCode]). A client
// that meets a code it does not know treats it as [CodeInternal], not retryable.
const (
	// CodeNotFound: the operation does not exist, is Internal and was called from the
	// wire, or lies outside the caller's scoped environment during composition.
	CodeNotFound = "NOT_FOUND"
	// CodeForbidden: access control denied the call.
	CodeForbidden = "FORBIDDEN"
	// CodeInvalidInput: the input fails the operation's input schema, or the request
	// itself is malformed.
	CodeInvalidInput = "INVALID_INPUT"
	// CodeInvalidOperationType: a one-shot invoke of a Subscription, a streaming invoke
	// of a Query or Mutation, or the composition of a Subscription.
	CodeInvalidOperationType = "INVALID_OPERATION_TYPE"
	// CodeInternal: a handler failure or panic, a lost connection, a failed stream.
	CodeInternal = "INTERNAL"
	// CodeTimeout: the deadline passed. The only retryable protocol code.
	CodeTimeout = "TIMEOUT"
)

// CallError is the error object carried by call.error:
// {"code", "message", "retryable", "details"?}, with details left out when empty.
// Clients branch on Code; Message is for people.
//
// Handlers return a *CallError (or an error wrapping one) to choose the code; every
// other error becomes [CodeInternal] (see [ToCallError]).
type CallError struct {
	Code      string          `json:"code"`
	Message   string          `json:"message"`
	Retryable bool            `json:"retryable"`
	Details   json.RawMessage `json:"details,omitempty"`
}

// Error returns "CODE: message".
func (e *CallError) Error() string {
	if e == nil {
		return "<nil>"
	}
	return e.Code + ": " + e.Message
}

// Is reports whether target is a *CallError with the same Code; Message, Retryable and
// Details are not compared. It makes a code test read as
//
//	errors.Is(err, &call.CallError{Code: call.CodeNotFound})
//
// for an err that is, or wraps, a *CallError.
func (e *CallError) Is(target error) bool {
	t, ok := target.(*CallError)
	return ok && e != nil && t != nil && e.Code == t.Code
}

// NewCallError returns a CallError with code and message. Retryable is true exactly for
// [CodeTimeout].
func NewCallError(code, message string) *CallError {
	return &CallError{Code: code, Message: message, Retryable: code == CodeTimeout}
}

// Errorf is [NewCallError] with a formatted message.
func Errorf(code, format string, args ...any) *CallError {
	return NewCallError(code, fmt.Sprintf(format, args...))
}

// IsProtocolCode reports whether code is one of the six protocol codes. Operation-level
// codes (ADR-023) and imported "HTTP_<status>" codes must never be one of them.
func IsProtocolCode(code string) bool {
	switch code {
	case CodeNotFound, CodeForbidden, CodeInvalidInput, CodeInvalidOperationType, CodeInternal, CodeTimeout:
		return true
	}
	return false
}

// httpCodePrefix starts the code of an error imported from an HTTP status.
const httpCodePrefix = "HTTP_"

// HTTPStatusCode returns the operation-level code of an error imported from an HTTP
// response with the given status: "HTTP_404", "HTTP_429" (ADR-023 §5). The status is
// not checked; [ParseHTTPStatusCode] accepts only 100 to 599.
func HTTPStatusCode(status int) string { return httpCodePrefix + strconv.Itoa(status) }

// ParseHTTPStatusCode is the reverse of [HTTPStatusCode]: "HTTP_404" gives 404, true.
// It accepts exactly "HTTP_" followed by three digits in 100..599 ("HTTP_0404",
// "HTTP_+40" and "HTTP_600" give 0, false).
func ParseHTTPStatusCode(code string) (int, bool) {
	digits, ok := strings.CutPrefix(code, httpCodePrefix)
	if !ok || len(digits) != 3 {
		return 0, false
	}
	n := 0
	for i := range len(digits) {
		c := digits[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	if n < 100 || n > 599 {
		return 0, false
	}
	return n, true
}

// ErrNotFound returns the NOT_FOUND error of an unknown operation (also used for an
// Internal operation called from the wire): "operation not found: <name>". A name longer
// than [MaxNameLen], which no operation can have, is not echoed: the message gives its
// length.
func ErrNotFound(name string) *CallError {
	if len(name) > MaxNameLen {
		return Errorf(CodeNotFound, "operation not found: a name of %d bytes (longer than %d)", len(name), MaxNameLen)
	}
	return NewCallError(CodeNotFound, "operation not found: "+name)
}

// ErrConnectionClosed returns the INTERNAL error every pending call and subscription
// fails with when the connection is lost: "connection closed".
func ErrConnectionClosed() *CallError { return NewCallError(CodeInternal, "connection closed") }

// ErrTimedOut returns the TIMEOUT error of an expired call: "request timed out",
// retryable.
func ErrTimedOut() *CallError { return NewCallError(CodeTimeout, "request timed out") }

// ToCallError maps any error to a *CallError:
//   - nil gives nil;
//   - a *CallError, or an error wrapping one, gives that *CallError as it is;
//   - an error wrapping [context.DeadlineExceeded] gives TIMEOUT "request timed out";
//   - an error wrapping [context.Canceled] gives INTERNAL "request aborted";
//   - anything else gives INTERNAL with err.Error() as the message.
//
// Mapping undeclared operation-level codes to INTERNAL (ADR-023) is the registry's job,
// not this function's.
func ToCallError(err error) *CallError {
	if err == nil {
		return nil
	}
	if ce, ok := errors.AsType[*CallError](err); ok && ce != nil {
		return ce
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return ErrTimedOut()
	case errors.Is(err, context.Canceled):
		return NewCallError(CodeInternal, "request aborted")
	}
	return NewCallError(CodeInternal, err.Error())
}
