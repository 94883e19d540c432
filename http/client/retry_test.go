package client

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestRetryTransientStatuses(t *testing.T) {
	for _, status := range []int{500, 502, 503, 504, 408, 429} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			srv := newScriptServer(t, repeat(2, scripted{status: status})...)
			clk := newFakeClock()
			s := newTestShared(t, Config{}, clk)

			code, body := get(t, s, srv.URL)
			if code != http.StatusOK || body != "attempt 3" {
				t.Fatalf("got %d %q, want 200 \"attempt 3\"", code, body)
			}
			// No jitter: BaseDelay·2ⁿ/2 for n = 0, 1.
			if got, want := clk.Sleeps(), []time.Duration{50 * time.Millisecond, 100 * time.Millisecond}; !slices.Equal(got, want) {
				t.Fatalf("sleeps = %v, want %v", got, want)
			}
		})
	}
}

func TestNoRetryOnOtherStatuses(t *testing.T) {
	for _, status := range []int{400, 401, 403, 404, 409, 422} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			srv := newScriptServer(t, scripted{status: status})
			clk := newFakeClock()
			s := newTestShared(t, Config{}, clk)
			if code, _ := get(t, s, srv.URL); code != status {
				t.Fatalf("status = %d, want %d", code, status)
			}
			if n := srv.attempts.Load(); n != 1 {
				t.Fatalf("attempts = %d, want 1", n)
			}
		})
	}
}

func TestRetryGivesUpWithLastResponse(t *testing.T) {
	tests := []struct {
		name         string
		maxRetries   int
		wantAttempts int32
	}{
		{"default", 0, 1 + DefaultMaxRetries},
		{"two", 2, 3},
		{"negative means none", -1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newScriptServer(t, repeat(10, scripted{status: http.StatusBadGateway})...)
			clk := newFakeClock()
			s := newTestShared(t, Config{Retry: RetryPolicy{MaxRetries: tt.maxRetries}}, clk)

			code, body := get(t, s, srv.URL)
			if want := "attempt " + strconv.Itoa(int(tt.wantAttempts)); code != http.StatusBadGateway || body != want {
				t.Fatalf("got %d %q, want 502 %q", code, body, want)
			}
			if n := srv.attempts.Load(); n != tt.wantAttempts {
				t.Fatalf("attempts = %d, want %d", n, tt.wantAttempts)
			}
			if n := len(clk.Sleeps()); n != int(tt.wantAttempts-1) {
				t.Fatalf("%d sleeps, want %d", n, tt.wantAttempts-1)
			}
		})
	}
}

func TestRetryConnectionErrors(t *testing.T) {
	t.Run("success after failures", func(t *testing.T) {
		srv, cl := newFlakyServer(t, 2)
		clk := newFakeClock()
		s := newTestShared(t, Config{}, clk)
		if code, body := get(t, s, srv.URL); code != http.StatusOK || body != "ok" {
			t.Fatalf("got %d %q, want 200 ok", code, body)
		}
		if n := cl.accepts.Load(); n != 3 {
			t.Fatalf("accepts = %d, want 3", n)
		}
	})
	t.Run("gives up with last error", func(t *testing.T) {
		srv, cl := newFlakyServer(t, 100)
		clk := newFakeClock()
		s := newTestShared(t, Config{Retry: RetryPolicy{MaxRetries: 2}}, clk)
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL, nil)
		resp, err := s.Do(req)
		if err == nil {
			resp.Body.Close()
			t.Fatalf("Do succeeded, want a connection error")
		}
		if n := cl.accepts.Load(); n != 3 {
			t.Fatalf("accepts = %d, want 3", n)
		}
		if n := len(clk.Sleeps()); n != 2 {
			t.Fatalf("%d sleeps, want 2", n)
		}
	})
	t.Run("refused", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("Listen: %v", err)
		}
		addr := ln.Addr().String()
		ln.Close() // nothing listens there now
		clk := newFakeClock()
		s := newTestShared(t, Config{Retry: RetryPolicy{MaxRetries: 1}}, clk)
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+addr+"/", nil)
		if resp, err := s.Do(req); err == nil {
			resp.Body.Close()
			t.Fatalf("Do succeeded, want connection refused")
		}
		if n := len(clk.Sleeps()); n != 1 {
			t.Fatalf("%d sleeps, want 1 (one retry)", n)
		}
	})
}

func TestRetryOnlyIdempotent(t *testing.T) {
	const payload = "payload"
	tests := []struct {
		name         string
		method       string
		header       string // Idempotency-Key value, if any
		nonIdem      bool
		noGetBody    bool
		wantAttempts int32
	}{
		{name: "GET", method: http.MethodGet, wantAttempts: 2},
		{name: "HEAD", method: http.MethodHead, wantAttempts: 2},
		{name: "OPTIONS", method: http.MethodOptions, wantAttempts: 2},
		{name: "PUT", method: http.MethodPut, wantAttempts: 2},
		{name: "DELETE", method: http.MethodDelete, wantAttempts: 2},
		{name: "POST", method: http.MethodPost, wantAttempts: 1},
		{name: "PATCH", method: http.MethodPatch, wantAttempts: 1},
		{name: "POST with Idempotency-Key", method: http.MethodPost, header: "k-1", wantAttempts: 2},
		{name: "PATCH with Idempotency-Key", method: http.MethodPatch, header: "k-2", wantAttempts: 2},
		{name: "POST with RetryNonIdempotent", method: http.MethodPost, nonIdem: true, wantAttempts: 2},
		{name: "PUT without GetBody", method: http.MethodPut, noGetBody: true, wantAttempts: 1},
		{name: "POST with key without GetBody", method: http.MethodPost, header: "k-3", noGetBody: true, wantAttempts: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newScriptServer(t, scripted{status: http.StatusInternalServerError})
			clk := newFakeClock()
			s := newTestShared(t, Config{Retry: RetryPolicy{RetryNonIdempotent: tt.nonIdem}}, clk)

			req, err := http.NewRequestWithContext(t.Context(), tt.method, srv.URL, strings.NewReader(payload))
			if err != nil {
				t.Fatalf("NewRequest: %v", err)
			}
			if tt.header != "" {
				req.Header.Set("Idempotency-Key", tt.header)
			}
			if tt.noGetBody {
				req.GetBody = nil
			}
			resp, err := s.Do(req)
			if err != nil {
				t.Fatalf("Do: %v", err)
			}
			resp.Body.Close()

			wantStatus := http.StatusOK
			if tt.wantAttempts == 1 {
				wantStatus = http.StatusInternalServerError
			}
			if resp.StatusCode != wantStatus {
				t.Fatalf("status = %d, want %d", resp.StatusCode, wantStatus)
			}
			if n := srv.attempts.Load(); n != tt.wantAttempts {
				t.Fatalf("attempts = %d, want %d", n, tt.wantAttempts)
			}
			if tt.method == http.MethodHead {
				return // the body of a HEAD is not sent
			}
			for i, b := range srv.Bodies() {
				if b != payload {
					t.Fatalf("attempt %d sent body %q, want %q", i+1, b, payload)
				}
			}
		})
	}
}

func TestRetryStopsWhenContextEnds(t *testing.T) {
	srv := newScriptServer(t, repeat(10, scripted{status: http.StatusServiceUnavailable})...)
	clk := newFakeClock()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	clk.onSleep = func(ctx context.Context, _ time.Duration) error {
		cancel() // the caller gives up during the first backoff
		return ctx.Err()
	}
	s := newTestShared(t, Config{}, clk)

	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
	resp, err := s.Do(req)
	if err == nil {
		resp.Body.Close()
		t.Fatalf("Do succeeded, want context.Canceled")
	}
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if n := srv.attempts.Load(); n != 1 {
		t.Fatalf("attempts = %d, want 1", n)
	}
}

func TestRetryNotWhenContextAlreadyDone(t *testing.T) {
	// The handler cancels the request's context before answering 500: the
	// outcome is handed back as is, without any wait or retry.
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var attempts int
	var mu sync.Mutex
	srv := newScriptServerWith(t, func(hs *http.Server) {
		hs.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			attempts++
			mu.Unlock()
			cancel()
			w.WriteHeader(http.StatusInternalServerError)
		})
	})
	clk := newFakeClock()
	s := newTestShared(t, Config{}, clk)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
	if resp, err := s.Do(req); err == nil {
		resp.Body.Close()
	}
	mu.Lock()
	defer mu.Unlock()
	if attempts != 1 {
		t.Fatalf("attempts = %d, want 1", attempts)
	}
	if n := len(clk.Sleeps()); n != 0 {
		t.Fatalf("%d sleeps, want 0", n)
	}
}

func TestRetryWaitUsesRetryAfterCappedAtMaxDelay(t *testing.T) {
	tests := []struct {
		name       string
		status     int
		retryAfter string
		maxDelay   time.Duration
		want       time.Duration
	}{
		{"429 seconds above backoff", http.StatusTooManyRequests, "2", 0, 2 * time.Second},
		{"503 seconds above backoff", http.StatusServiceUnavailable, "3", 0, 3 * time.Second},
		{"capped at default MaxDelay", http.StatusTooManyRequests, "60", 0, DefaultMaxDelay},
		{"capped at MaxDelay", http.StatusServiceUnavailable, "60", time.Second, time.Second},
		{"HTTP-date", http.StatusTooManyRequests, t0.Add(4 * time.Second).Format(http.TimeFormat), 0, 4 * time.Second},
		{"garbage falls back to backoff", http.StatusTooManyRequests, "later", 0, 50 * time.Millisecond},
		{"ignored on 500", http.StatusInternalServerError, "2", 0, 50 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newScriptServer(t, scripted{status: tt.status, retryAfter: tt.retryAfter})
			clk := newFakeClock()
			s := newTestShared(t, Config{Retry: RetryPolicy{MaxDelay: tt.maxDelay}}, clk)
			if code, _ := get(t, s, srv.URL); code != http.StatusOK {
				t.Fatalf("status = %d, want 200", code)
			}
			if got := clk.Sleeps(); !slices.Equal(got, []time.Duration{tt.want}) {
				t.Fatalf("sleeps = %v, want [%v]", got, tt.want)
			}
		})
	}
}

func TestRetriedBodyIsDrainedAndClosed(t *testing.T) {
	// A retried response's connection is reused when its body was drained: the
	// server sees one connection for both attempts.
	var conns sync.Map
	srv := newScriptServerWith(t, func(hs *http.Server) {
		hs.ConnState = func(c net.Conn, st http.ConnState) {
			if st == http.StateNew {
				conns.Store(c, true)
			}
		}
	}, scripted{status: http.StatusInternalServerError})
	clk := newFakeClock()
	s := newTestShared(t, Config{}, clk)
	if code, _ := get(t, s, srv.URL); code != http.StatusOK {
		t.Fatalf("status = %d, want 200", code)
	}
	n := 0
	conns.Range(func(any, any) bool { n++; return true })
	if n != 1 {
		t.Fatalf("%d connections, want 1 (the retried body was not drained)", n)
	}
}

func TestBackoff(t *testing.T) {
	st := &state{settings: settings{baseDelay: 100 * time.Millisecond, maxDelay: time.Second}}
	maxJitter := func(n int64) int64 { return n - 1 }
	tests := []struct {
		attempt  int
		min, max time.Duration
	}{
		{0, 50 * time.Millisecond, 100 * time.Millisecond},
		{1, 100 * time.Millisecond, 200 * time.Millisecond},
		{2, 200 * time.Millisecond, 400 * time.Millisecond},
		{3, 400 * time.Millisecond, 800 * time.Millisecond},
		{4, 500 * time.Millisecond, time.Second},
		{70, 500 * time.Millisecond, time.Second},
	}
	for _, tt := range tests {
		if got := backoff(st, tt.attempt, noJitter); got != tt.min {
			t.Fatalf("backoff(%d) without jitter = %v, want %v", tt.attempt, got, tt.min)
		}
		if got := backoff(st, tt.attempt, maxJitter); got != tt.max {
			t.Fatalf("backoff(%d) with full jitter = %v, want %v", tt.attempt, got, tt.max)
		}
	}
}

func TestInvalidRequestNotRetried(t *testing.T) {
	clk := newFakeClock()
	s := newTestShared(t, Config{}, clk)
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, "ftp://example.invalid/x", nil)
	if resp, err := s.Client().Transport.RoundTrip(req); err == nil {
		resp.Body.Close()
		t.Fatalf("RoundTrip succeeded for an ftp URL")
	}
	if n := len(clk.Sleeps()); n != 0 {
		t.Fatalf("%d sleeps, want 0", n)
	}
}

func TestLogsCarryNoSecrets(t *testing.T) {
	srv := newScriptServer(t, scripted{status: http.StatusServiceUnavailable, retryAfter: "30"})
	var buf bytes.Buffer
	var mu sync.Mutex
	logger := slog.New(slog.NewTextHandler(&lockedWriter{w: &buf, mu: &mu}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	clk := newFakeClock()
	s := newTestShared(t, Config{Logger: logger}, clk)

	for range 2 { // the second request waits at the Retry-After gate
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPut, srv.URL+"/path?token=QUERYSECRET", strings.NewReader("BODYSECRET"))
		req.Header.Set("Authorization", "Bearer HEADERSECRET")
		resp, err := s.Do(req)
		if err != nil {
			t.Fatalf("Do: %v", err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	mu.Lock()
	out := buf.String()
	mu.Unlock()
	if !strings.Contains(out, "retrying") || !strings.Contains(out, "status=503") || !strings.Contains(out, "waiting for Retry-After") {
		t.Fatalf("log lacks the retry record:\n%s", out)
	}
	for _, secret := range []string{"QUERYSECRET", "HEADERSECRET", "BODYSECRET", "/path", "token"} {
		if strings.Contains(out, secret) {
			t.Fatalf("log contains %q:\n%s", secret, out)
		}
	}
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestSleepContext(t *testing.T) {
	if err := sleepContext(t.Context(), time.Nanosecond); err != nil {
		t.Fatalf("sleepContext = %v, want nil", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := sleepContext(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Fatalf("sleepContext on a cancelled context = %v, want context.Canceled", err)
	}
}
