package call_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/alknet/alknet/call"
)

func TestCallErrorJSON(t *testing.T) {
	tests := []struct {
		name string
		err  *call.CallError
		want string
	}{
		{"details omitted when nil", call.ErrNotFound("notes/get"), `{"code":"NOT_FOUND","message":"operation not found: notes/get","retryable":false}`},
		{"details omitted when empty", &call.CallError{Code: "X", Message: "m", Details: json.RawMessage{}}, `{"code":"X","message":"m","retryable":false}`},
		{"retryable", call.ErrTimedOut(), `{"code":"TIMEOUT","message":"request timed out","retryable":true}`},
		{"details", &call.CallError{Code: "NOTE_MISSING", Message: "no such note n-9", Details: json.RawMessage(`{"noteId":"n-9"}`)},
			`{"code":"NOTE_MISSING","message":"no such note n-9","retryable":false,"details":{"noteId":"n-9"}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := json.Marshal(tt.err)
			if err != nil || string(b) != tt.want {
				t.Fatalf("json.Marshal = %s, %v; want %s", b, err, tt.want)
			}
			var back call.CallError
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatalf("json.Unmarshal: %v", err)
			}
			if back.Code != tt.err.Code || back.Message != tt.err.Message || back.Retryable != tt.err.Retryable || string(back.Details) != string(tt.err.Details) {
				t.Fatalf("round trip = %+v, want %+v", back, tt.err)
			}
		})
	}
}

func TestCallErrorText(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{call.NewCallError(call.CodeForbidden, "missing required scope: admin"), "FORBIDDEN: missing required scope: admin"},
		{call.Errorf(call.CodeInvalidInput, "missing required field: %s", "name"), "INVALID_INPUT: missing required field: name"},
		{call.ErrNotFound("notes/get"), "NOT_FOUND: operation not found: notes/get"},
		{call.ErrConnectionClosed(), "INTERNAL: connection closed"},
		{call.ErrTimedOut(), "TIMEOUT: request timed out"},
		{(*call.CallError)(nil), "<nil>"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
}

func TestNewCallErrorRetryable(t *testing.T) {
	for _, code := range []string{call.CodeNotFound, call.CodeForbidden, call.CodeInvalidInput, call.CodeInvalidOperationType, call.CodeInternal, call.CodeTimeout, "RATE_LIMITED", "HTTP_503"} {
		e := call.NewCallError(code, "m")
		if e.Code != code || e.Message != "m" || e.Retryable != (code == call.CodeTimeout) || e.Details != nil {
			t.Errorf("NewCallError(%s) = %+v", code, e)
		}
		if f := call.Errorf(code, "%d-%s", 1, "x"); f.Message != "1-x" || f.Retryable != e.Retryable {
			t.Errorf("Errorf(%s) = %+v", code, f)
		}
	}
	if e := call.ErrTimedOut(); !e.Retryable {
		t.Errorf("ErrTimedOut is not retryable")
	}
	if e := call.ErrConnectionClosed(); e.Code != call.CodeInternal || e.Retryable {
		t.Errorf("ErrConnectionClosed = %+v", e)
	}
	// Each call returns a fresh value: changing one does not change the next.
	a := call.ErrTimedOut()
	a.Message = "changed"
	if call.ErrTimedOut().Message != "request timed out" {
		t.Errorf("ErrTimedOut shares its value between calls")
	}
}

func TestCallErrorIs(t *testing.T) {
	notFound := &call.CallError{Code: call.CodeNotFound}
	tests := []struct {
		name   string
		err    error
		target error
		want   bool
	}{
		{"same code", call.ErrNotFound("a"), notFound, true},
		{"wrapped", fmt.Errorf("invoke: %w", call.ErrNotFound("a")), notFound, true},
		{"message ignored", call.NewCallError(call.CodeNotFound, "other"), notFound, true},
		{"other code", call.ErrConnectionClosed(), notFound, false},
		{"operation code", call.NewCallError("NOTE_MISSING", "x"), &call.CallError{Code: "NOTE_MISSING"}, true},
		{"not a CallError target", call.ErrNotFound("a"), io.EOF, false},
		{"nil CallError target", call.ErrNotFound("a"), (*call.CallError)(nil), false},
		{"plain error", errors.New("NOT_FOUND: x"), notFound, false},
	}
	for _, tt := range tests {
		if got := errors.Is(tt.err, tt.target); got != tt.want {
			t.Errorf("%s: errors.Is = %v, want %v", tt.name, got, tt.want)
		}
	}
	var ce *call.CallError
	if !errors.As(fmt.Errorf("x: %w", call.ErrTimedOut()), &ce) || ce.Code != call.CodeTimeout {
		t.Errorf("errors.As = %v", ce)
	}
}

func TestIsProtocolCode(t *testing.T) {
	for _, code := range []string{"NOT_FOUND", "FORBIDDEN", "INVALID_INPUT", "INVALID_OPERATION_TYPE", "INTERNAL", "TIMEOUT"} {
		if !call.IsProtocolCode(code) {
			t.Errorf("IsProtocolCode(%s) = false", code)
		}
	}
	for _, code := range []string{"", "not_found", "HTTP_404", "NOTE_MISSING", "INTERNAL "} {
		if call.IsProtocolCode(code) {
			t.Errorf("IsProtocolCode(%q) = true", code)
		}
	}
}

func TestHTTPStatusCodes(t *testing.T) {
	for _, status := range []int{100, 200, 404, 429, 503, 599} {
		code := call.HTTPStatusCode(status)
		if code != fmt.Sprintf("HTTP_%d", status) || call.IsProtocolCode(code) {
			t.Errorf("HTTPStatusCode(%d) = %q", status, code)
		}
		if got, ok := call.ParseHTTPStatusCode(code); !ok || got != status {
			t.Errorf("ParseHTTPStatusCode(%q) = %d, %v", code, got, ok)
		}
	}
	for _, code := range []string{"", "HTTP_", "HTTP_99", "HTTP_099", "HTTP_600", "HTTP_0404", "HTTP_+40", "HTTP_-40", "HTTP_40x", "HTTP_404 ", "http_404", "HTTP404", "NOT_FOUND", "HTTP_1000"} {
		if got, ok := call.ParseHTTPStatusCode(code); ok {
			t.Errorf("ParseHTTPStatusCode(%q) = %d, true", code, got)
		}
	}
}

func TestToCallError(t *testing.T) {
	own := call.NewCallError("NOTE_MISSING", "no such note")
	expired, cancelExpired := context.WithDeadline(context.Background(), time.Unix(0, 0))
	defer cancelExpired()
	canceled, cancel := context.WithCancel(context.Background())
	cancel()

	tests := []struct {
		name string
		err  error
		same *call.CallError // when set, the result must be this pointer
		code string
		msg  string
	}{
		{name: "CallError as is", err: own, same: own},
		{name: "wrapped CallError", err: fmt.Errorf("handler: %w", own), same: own},
		{name: "deadline", err: context.DeadlineExceeded, code: call.CodeTimeout, msg: "request timed out"},
		{name: "expired context", err: expired.Err(), code: call.CodeTimeout, msg: "request timed out"},
		{name: "wrapped deadline", err: fmt.Errorf("db: %w", context.DeadlineExceeded), code: call.CodeTimeout, msg: "request timed out"},
		{name: "canceled", err: canceled.Err(), code: call.CodeInternal, msg: "request aborted"},
		{name: "wrapped canceled", err: fmt.Errorf("x: %w", context.Canceled), code: call.CodeInternal, msg: "request aborted"},
		{name: "plain", err: errors.New("disk on fire"), code: call.CodeInternal, msg: "disk on fire"},
		{name: "io.EOF", err: io.EOF, code: call.CodeInternal, msg: "EOF"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := call.ToCallError(tt.err)
			if tt.same != nil {
				if got != tt.same {
					t.Fatalf("ToCallError = %p %+v, want the same *CallError %p", got, got, tt.same)
				}
				return
			}
			if got == nil || got.Code != tt.code || got.Message != tt.msg || got.Retryable != (tt.code == call.CodeTimeout) {
				t.Fatalf("ToCallError = %+v, want %s %q", got, tt.code, tt.msg)
			}
		})
	}
	if got := call.ToCallError(nil); got != nil {
		t.Fatalf("ToCallError(nil) = %+v, want nil", got)
	}
}
