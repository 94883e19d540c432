package http

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"github.com/alknet/alknet/call"
)

// HTTPCodePrefix starts the error codes of operations imported from HTTP APIs
// ("HTTP_404", "HTTP_429"): the gateway answers such an error with that status.
const HTTPCodePrefix = "HTTP_"

// StatusFor maps a CallError to the HTTP status the gateway answers with (ADR-023):
//
//	NOT_FOUND                404
//	FORBIDDEN                401 when the caller has no identity, 403 when it has one
//	INVALID_INPUT            422 (an unparseable request body is answered 400 before this)
//	INVALID_OPERATION_TYPE   400
//	TIMEOUT                  504
//	INTERNAL                 500
//	HTTP_<n>                 n, when n is a number from 400 to 599; else 500
//	anything else            500
//
// A nil error maps to 200.
func StatusFor(e *call.CallError, authenticated bool) int {
	if e == nil {
		return http.StatusOK
	}
	switch e.Code {
	case call.CodeNotFound:
		return http.StatusNotFound
	case call.CodeForbidden:
		if authenticated {
			return http.StatusForbidden
		}
		return http.StatusUnauthorized
	case call.CodeInvalidInput:
		return http.StatusUnprocessableEntity
	case call.CodeInvalidOperationType:
		return http.StatusBadRequest
	case call.CodeTimeout:
		return http.StatusGatewayTimeout
	case call.CodeInternal:
		return http.StatusInternalServerError
	}
	if n, ok := httpCodeStatus(e.Code); ok {
		return n
	}
	return http.StatusInternalServerError
}

// httpCodeStatus parses the status of an HTTP_<n> code: digits only, 400 to 599.
func httpCodeStatus(code string) (int, bool) {
	digits, ok := strings.CutPrefix(code, HTTPCodePrefix)
	if !ok || len(digits) != 3 {
		return 0, false
	}
	for i := range len(digits) {
		if digits[i] < '0' || digits[i] > '9' {
			return 0, false
		}
	}
	n, _ := strconv.Atoi(digits)
	if n < 400 || n > 599 {
		return 0, false
	}
	return n, true
}

// RetryAfter returns the Retry-After header value for an error answered with status:
// only when the error is retryable, the status is 429 or 503, and details.retry_after is
// a string or an unsigned integer (copied verbatim). TIMEOUT (504) never gets one.
func RetryAfter(e *call.CallError, status int) (string, bool) {
	if e == nil || !e.Retryable || (status != http.StatusTooManyRequests && status != http.StatusServiceUnavailable) || len(e.Details) == 0 {
		return "", false
	}
	var d struct {
		RetryAfter json.RawMessage `json:"retry_after"`
	}
	if json.Unmarshal(e.Details, &d) != nil || len(d.RetryAfter) == 0 {
		return "", false
	}
	var s string
	if json.Unmarshal(d.RetryAfter, &s) == nil {
		if s == "" || strings.ContainsAny(s, "\r\n\x00") {
			return "", false
		}
		return s, true
	}
	raw := string(d.RetryAfter)
	if _, err := strconv.ParseUint(raw, 10, 64); err == nil {
		return raw, true
	}
	return "", false
}

// WriteCallError answers with e as a JSON CallError body, the status StatusFor gives
// and, where RetryAfter allows it, a Retry-After header.
func WriteCallError(w http.ResponseWriter, e *call.CallError, authenticated bool) {
	writeCallErrorStatus(w, e, StatusFor(e, authenticated))
}

// writeCallErrorStatus answers with e as a JSON CallError body and the given status.
func writeCallErrorStatus(w http.ResponseWriter, e *call.CallError, status int) {
	if v, ok := RetryAfter(e, status); ok {
		w.Header().Set("Retry-After", v)
	}
	writeJSON(w, status, e)
}

// writeJSON answers with v marshalled as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b, _ = json.Marshal(call.NewCallError(call.CodeInternal, "response not serialisable"))
	}
	b = append(b, '\n')
	// The three header values share one backing array (each slice capped to its own
	// element, so an Add elsewhere copies rather than overwrites): two allocations
	// fewer per answer than three Sets.
	vals := [...]string{"application/json", strconv.Itoa(len(b)), "no-store"}
	s := vals[:]
	h := w.Header()
	h["Content-Type"] = s[0:1:1]
	h["Content-Length"] = s[1:2:2]
	h["Cache-Control"] = s[2:3:3]
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// invalidBody is the 400 answer to a request body that is not the JSON the route takes.
func invalidBody(format string, args ...any) *call.CallError {
	return call.Errorf(call.CodeInvalidInput, format, args...)
}
