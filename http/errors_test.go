package http_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/alknet/alknet/call"
	alkhttp "github.com/alknet/alknet/http"
)

func TestStatusFor(t *testing.T) {
	tests := []struct {
		code          string
		authenticated bool
		want          int
	}{
		{call.CodeNotFound, false, 404},
		{call.CodeNotFound, true, 404},
		{call.CodeForbidden, false, 401},
		{call.CodeForbidden, true, 403},
		{call.CodeInvalidInput, false, 422},
		{call.CodeInvalidOperationType, false, 400},
		{call.CodeTimeout, false, 504},
		{call.CodeInternal, false, 500},
		{call.CodeInternal, true, 500},
		// Imported HTTP errors pass their status through.
		{"HTTP_404", false, 404},
		{"HTTP_429", false, 429},
		{"HTTP_503", true, 503},
		{"HTTP_400", false, 400},
		{"HTTP_599", false, 599},
		// Anything that is not HTTP_ and three digits from 400 to 599 is 500.
		{"HTTP_NOTANUMBER", false, 500},
		{"HTTP_99", false, 500},
		{"HTTP_600", false, 500},
		{"HTTP_4044", false, 500},
		{"HTTP_0404", false, 500},
		{"HTTP_+40", false, 500},
		{"HTTP_-40", false, 500},
		{"HTTP_40a", false, 500},
		{"HTTP_", false, 500},
		{"HTTP_200", false, 500},
		{"HTTP_302", false, 500},
		{"HTTP_399", false, 500},
		{"http_404", false, 500},
		{"HTTP404", false, 500},
		// Unknown operation-level codes.
		{"FILE_NOT_FOUND", false, 500},
		{"RATE_LIMITED", true, 500},
		{"", false, 500},
	}
	for _, tt := range tests {
		e := call.NewCallError(tt.code, "m")
		if got := alkhttp.StatusFor(e, tt.authenticated); got != tt.want {
			t.Fatalf("StatusFor(%q, authenticated=%v) = %d, want %d", tt.code, tt.authenticated, got, tt.want)
		}
	}
	for _, auth := range []bool{false, true} {
		if got := alkhttp.StatusFor(nil, auth); got != http.StatusOK {
			t.Fatalf("StatusFor(nil, %v) = %d, want 200", auth, got)
		}
	}
}

func TestRetryAfter(t *testing.T) {
	const date = "Wed, 21 Oct 2015 07:28:00 GMT"
	tests := []struct {
		name      string
		code      string
		retryable bool
		status    int
		details   string
		want      string // "" for no header
	}{
		{"numeric 429", "HTTP_429", true, 429, `{"retry_after":30}`, "30"},
		{"numeric 503", "HTTP_503", true, 503, `{"retry_after":120}`, "120"},
		{"zero", "HTTP_429", true, 429, `{"retry_after":0}`, "0"},
		{"string seconds", "HTTP_429", true, 429, `{"retry_after":"7"}`, "7"},
		{"string date", "HTTP_503", true, 503, `{"retry_after":"` + date + `"}`, date},
		{"other keys kept apart", "HTTP_429", true, 429, `{"limit":5,"retry_after":3}`, "3"},
		{"negative", "HTTP_429", true, 429, `{"retry_after":-1}`, ""},
		{"float", "HTTP_429", true, 429, `{"retry_after":1.5}`, ""},
		{"exponent", "HTTP_429", true, 429, `{"retry_after":1e3}`, ""},
		{"object", "HTTP_429", true, 429, `{"retry_after":{"s":1}}`, ""},
		{"array", "HTTP_429", true, 429, `{"retry_after":[1]}`, ""},
		{"bool", "HTTP_429", true, 429, `{"retry_after":true}`, ""},
		{"null", "HTTP_429", true, 429, `{"retry_after":null}`, ""},
		{"empty string", "HTTP_429", true, 429, `{"retry_after":""}`, ""},
		{"header injection", "HTTP_429", true, 429, `{"retry_after":"1\r\nSet-Cookie: a=b"}`, ""},
		{"missing key", "HTTP_429", true, 429, `{"wait":5}`, ""},
		{"no details", "HTTP_429", true, 429, ``, ""},
		{"details not an object", "HTTP_429", true, 429, `[1]`, ""},
		{"details a number", "HTTP_429", true, 429, `5`, ""},
		{"not retryable 503", "HTTP_503", false, 503, `{"retry_after":30}`, ""},
		{"not retryable 429", "HTTP_429", false, 429, `{"retry_after":30}`, ""},
		{"retryable 500", "HTTP_500", true, 500, `{"retry_after":30}`, ""},
		{"retryable 502", "HTTP_502", true, 502, `{"retry_after":30}`, ""},
		{"timeout 504", call.CodeTimeout, true, 504, `{"retry_after":30}`, ""},
		{"internal retryable", call.CodeInternal, true, 500, `{"retry_after":30}`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := &call.CallError{Code: tt.code, Message: "m", Retryable: tt.retryable}
			if tt.details != "" {
				e.Details = json.RawMessage(tt.details)
			}
			if st := alkhttp.StatusFor(e, false); st != tt.status {
				t.Fatalf("StatusFor(%s) = %d, the table expects %d", tt.code, st, tt.status)
			}
			got, ok := alkhttp.RetryAfter(e, tt.status)
			if ok != (tt.want != "") || got != tt.want {
				t.Fatalf("RetryAfter = %q, %v; want %q", got, ok, tt.want)
			}
			rec := httptest.NewRecorder()
			alkhttp.WriteCallError(rec, e, false)
			if rec.Code != tt.status {
				t.Fatalf("WriteCallError status %d, want %d", rec.Code, tt.status)
			}
			vals := rec.Result().Header.Values("Retry-After")
			switch {
			case tt.want == "" && len(vals) != 0:
				t.Fatalf("Retry-After %q, want none", vals)
			case tt.want != "" && (len(vals) != 1 || vals[0] != tt.want):
				t.Fatalf("Retry-After %q, want %q", vals, tt.want)
			}
		})
	}
	if v, ok := alkhttp.RetryAfter(nil, 429); ok || v != "" {
		t.Fatalf("RetryAfter(nil) = %q, %v", v, ok)
	}
}

// The body of an error is the CallError JSON, details left out when absent.
func TestWriteCallErrorBody(t *testing.T) {
	tests := []struct {
		name          string
		err           *call.CallError
		authenticated bool
		wantStatus    int
		wantBody      string
	}{
		{
			"not found", call.NewCallError(call.CodeNotFound, "operation not found: x"), false, 404,
			`{"code":"NOT_FOUND","message":"operation not found: x","retryable":false}`,
		},
		{
			"forbidden anonymous", call.NewCallError(call.CodeForbidden, "authentication required"), false, 401,
			`{"code":"FORBIDDEN","message":"authentication required","retryable":false}`,
		},
		{
			"forbidden authenticated", call.NewCallError(call.CodeForbidden, "missing required scope: admin"), true, 403,
			`{"code":"FORBIDDEN","message":"missing required scope: admin","retryable":false}`,
		},
		{
			"timeout", call.ErrTimedOut(), false, 504,
			`{"code":"TIMEOUT","message":"request timed out","retryable":true}`,
		},
		{
			"with details", &call.CallError{Code: call.CodeInvalidInput, Message: "bad", Details: json.RawMessage(`{"errors":[]}`)}, false, 422,
			`{"code":"INVALID_INPUT","message":"bad","retryable":false,"details":{"errors":[]}}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			alkhttp.WriteCallError(rec, tt.err, tt.authenticated)
			if rec.Code != tt.wantStatus {
				t.Fatalf("status %d, want %d", rec.Code, tt.wantStatus)
			}
			if got := rec.Body.String(); got != tt.wantBody+"\n" {
				t.Fatalf("body %q, want %q", got, tt.wantBody+"\n")
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Fatalf("Content-Type %q, want application/json", ct)
			}
			if cc := rec.Header().Get("Cache-Control"); cc != "no-store" {
				t.Fatalf("Cache-Control %q, want no-store", cc)
			}
			if rec.Header().Get("Retry-After") != "" {
				t.Fatalf("unexpected Retry-After %q", rec.Header().Get("Retry-After"))
			}
		})
	}
}
