package client

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestParseRetryAfter(t *testing.T) {
	tests := []struct {
		in     string
		want   time.Duration
		wantOK bool
	}{
		{"7", 7 * time.Second, true},
		{" 120 ", 2 * time.Minute, true},
		{"0", 0, false},
		{"-5", 0, false},
		{"1.5", 0, false},
		{"", 0, false},
		{"soon", 0, false},
		{"99999999999999999999", 0, false}, // overflows
		{t0.Add(10 * time.Second).Format(http.TimeFormat), 10 * time.Second, true},
		{t0.Add(90 * time.Second).Format(time.RFC850), 90 * time.Second, true},
		{t0.Add(30 * time.Second).Format(time.ANSIC), 30 * time.Second, true},
		{t0.Add(-10 * time.Second).Format(http.TimeFormat), 0, false}, // past
		{t0.Format(http.TimeFormat), 0, false},                        // now
		{"Mon, 99 Foo 2030 00:00:00 GMT", 0, false},
	}
	for _, tt := range tests {
		got, ok := parseRetryAfter(tt.in, t0)
		if got != tt.want || ok != tt.wantOK {
			t.Fatalf("parseRetryAfter(%q) = %v, %t; want %v, %t", tt.in, got, ok, tt.want, tt.wantOK)
		}
	}
}

func TestRetryAfterGate(t *testing.T) {
	tests := []struct {
		name       string
		status     int
		retryAfter string
		wantWait   time.Duration // 0: no wait
	}{
		{"429 seconds", http.StatusTooManyRequests, "7", 7 * time.Second},
		{"503 seconds", http.StatusServiceUnavailable, "3", 3 * time.Second},
		{"HTTP-date in the future", http.StatusTooManyRequests, t0.Add(10 * time.Second).Format(http.TimeFormat), 10 * time.Second},
		{"HTTP-date in the past", http.StatusTooManyRequests, t0.Add(-10 * time.Second).Format(http.TimeFormat), 0},
		{"garbage", http.StatusServiceUnavailable, "in a while", 0},
		{"not on 500", http.StatusInternalServerError, "7", 0},
		{"not on 200", http.StatusOK, "7", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newScriptServer(t, scripted{status: tt.status, retryAfter: tt.retryAfter})
			clk := newFakeClock()
			s := newTestShared(t, Config{Retry: RetryPolicy{MaxRetries: -1}}, clk)

			if code, _ := get(t, s, srv.URL+"/op?x=1"); code != tt.status {
				t.Fatalf("first status = %d, want %d", code, tt.status)
			}
			if got := clk.Sleeps(); len(got) != 0 {
				t.Fatalf("first request slept %v", got)
			}

			// Another URL (here: another query) is not held back.
			get(t, s, srv.URL+"/op?x=2")
			if got := clk.Sleeps(); len(got) != 0 {
				t.Fatalf("request to another URL slept %v", got)
			}

			get(t, s, srv.URL+"/op?x=1")
			var want []time.Duration
			if tt.wantWait > 0 {
				want = []time.Duration{tt.wantWait}
			}
			if got := clk.Sleeps(); !slices.Equal(got, want) {
				t.Fatalf("second request to the same URL slept %v, want %v", got, want)
			}
		})
	}
}

func TestRetryAfterGateContextEnds(t *testing.T) {
	srv := newScriptServer(t, scripted{status: http.StatusTooManyRequests, retryAfter: "60"})
	clk := newFakeClock()
	s := newTestShared(t, Config{Retry: RetryPolicy{MaxRetries: -1}}, clk)
	get(t, s, srv.URL)

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	clk.onSleep = func(ctx context.Context, _ time.Duration) error {
		cancel() // the caller gives up while waiting at the gate
		return ctx.Err()
	}
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
		t.Fatalf("server saw %d requests, want 1 (the gated one must not be sent)", n)
	}
	if got := clk.Sleeps(); !slices.Equal(got, []time.Duration{60 * time.Second}) {
		t.Fatalf("sleeps = %v, want [1m0s]", got)
	}
}

func TestRetryAfterCapacityEvictsEarliest(t *testing.T) {
	srv := newScriptServer(t,
		scripted{status: http.StatusTooManyRequests, retryAfter: "30"},
		scripted{status: http.StatusTooManyRequests, retryAfter: "10"},
		scripted{status: http.StatusServiceUnavailable, retryAfter: "20"},
	)
	clk := newFakeClock()
	s := newTestShared(t, Config{RetryAfterCapacity: 2, Retry: RetryPolicy{MaxRetries: -1}}, clk)
	for _, p := range []string{"/a", "/b", "/c"} {
		get(t, s, srv.URL+p)
	}
	if n := s.memory.len(); n != 2 {
		t.Fatalf("memory holds %d entries, want 2", n)
	}
	wants := map[string]time.Duration{"/a": 30 * time.Second, "/b": 0, "/c": 20 * time.Second}
	for p, want := range wants {
		if got := s.memory.remaining(mustKey(t, srv.URL+p), clk.Now()); got != want {
			t.Fatalf("remaining(%s) = %v, want %v", p, got, want)
		}
	}

	// Through the gate: /b, evicted, goes at once; /c waits.
	get(t, s, srv.URL+"/b")
	if got := clk.Sleeps(); len(got) != 0 {
		t.Fatalf("request to the evicted URL slept %v", got)
	}
	get(t, s, srv.URL+"/c")
	if got := clk.Sleeps(); !slices.Equal(got, []time.Duration{20 * time.Second}) {
		t.Fatalf("sleeps = %v, want [20s]", got)
	}
}

func TestRetryAfterMemory(t *testing.T) {
	t.Run("expired entries are dropped", func(t *testing.T) {
		m := newRetryAfterMemory(4)
		m.remember("a", t0.Add(5*time.Second), t0)
		if got := m.remaining("a", t0.Add(2*time.Second)); got != 3*time.Second {
			t.Fatalf("remaining = %v, want 3s", got)
		}
		if got := m.remaining("a", t0.Add(6*time.Second)); got != 0 {
			t.Fatalf("remaining after the deadline = %v, want 0", got)
		}
		if n := m.len(); n != 0 {
			t.Fatalf("len = %d after expiry, want 0", n)
		}
	})
	t.Run("expired entries make room before eviction", func(t *testing.T) {
		m := newRetryAfterMemory(2)
		m.remember("short", t0.Add(time.Second), t0)
		m.remember("long", t0.Add(time.Hour), t0)
		now := t0.Add(time.Minute) // "short" has expired
		m.remember("new", now.Add(time.Hour), now)
		if m.remaining("long", now) == 0 || m.remaining("new", now) == 0 {
			t.Fatalf("a live entry was evicted while an expired one could go")
		}
	})
	t.Run("evicts the earliest deadline", func(t *testing.T) {
		m := newRetryAfterMemory(2)
		m.remember("a", t0.Add(30*time.Second), t0)
		m.remember("b", t0.Add(10*time.Second), t0)
		m.remember("c", t0.Add(20*time.Second), t0)
		if m.remaining("b", t0) != 0 || m.remaining("a", t0) == 0 || m.remaining("c", t0) == 0 {
			t.Fatalf("want b evicted, a and c kept")
		}
	})
	t.Run("updating a key does not evict", func(t *testing.T) {
		m := newRetryAfterMemory(2)
		m.remember("a", t0.Add(30*time.Second), t0)
		m.remember("b", t0.Add(10*time.Second), t0)
		m.remember("b", t0.Add(40*time.Second), t0)
		if m.remaining("a", t0) != 30*time.Second || m.remaining("b", t0) != 40*time.Second {
			t.Fatalf("update of b evicted or lost an entry")
		}
	})
	t.Run("past deadlines are not recorded", func(t *testing.T) {
		m := newRetryAfterMemory(2)
		m.remember("a", t0.Add(-time.Second), t0)
		if n := m.len(); n != 0 {
			t.Fatalf("len = %d, want 0", n)
		}
	})
	t.Run("shrinking the capacity evicts", func(t *testing.T) {
		m := newRetryAfterMemory(3)
		m.remember("a", t0.Add(30*time.Second), t0)
		m.remember("b", t0.Add(10*time.Second), t0)
		m.remember("c", t0.Add(20*time.Second), t0)
		m.setCapacity(1, t0)
		if m.len() != 1 || m.remaining("a", t0) == 0 {
			t.Fatalf("want only a kept")
		}
	})
}

func TestRetryAfterEntriesExpireThroughGate(t *testing.T) {
	srv := newScriptServer(t, scripted{status: http.StatusTooManyRequests, retryAfter: "5"})
	clk := newFakeClock()
	s := newTestShared(t, Config{Retry: RetryPolicy{MaxRetries: -1}}, clk)
	get(t, s, srv.URL)
	clk.Advance(6 * time.Second)
	if code, _ := get(t, s, srv.URL); code != http.StatusOK {
		t.Fatalf("status = %d, want 200", code)
	}
	if got := clk.Sleeps(); len(got) != 0 {
		t.Fatalf("request after the deadline slept %v", got)
	}
	if n := s.memory.len(); n != 0 {
		t.Fatalf("memory holds %d entries after expiry, want 0", n)
	}
}

func TestMemoryKey(t *testing.T) {
	tests := []struct {
		a, b string
		same bool
	}{
		{"https://user:pw@api.example/v1/x?q=1", "https://api.example/v1/x?q=1", true},
		{"https://API.Example/v1/x", "https://api.example/v1/x", true},
		{"https://api.example/v1/x#frag", "https://api.example/v1/x", true},
		{"https://api.example/v1/x?q=1", "https://api.example/v1/x?q=2", false},
		{"https://api.example/v1/x", "https://api.example/v1/y", false},
		{"https://api.example/v1/x", "http://api.example/v1/x", false},
		{"https://api.example:8443/v1/x", "https://api.example/v1/x", false},
	}
	for _, tt := range tests {
		ka, kb := mustKey(t, tt.a), mustKey(t, tt.b)
		if (ka == kb) != tt.same {
			t.Fatalf("key(%q) = %q, key(%q) = %q; same = %t, want %t", tt.a, ka, tt.b, kb, ka == kb, tt.same)
		}
	}
	if k := mustKey(t, "https://user:secret@api.example/x"); k != "https://api.example/x" {
		t.Fatalf("key keeps userinfo: %q", k)
	}
}

func mustKey(t *testing.T, raw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("url.Parse(%q): %v", raw, err)
	}
	return memoryKey(u)
}

// TestRetryAfterBeyondDeadlineFailsFast: when the remembered Retry-After ends after
// the request's deadline, the request fails at once with a *RetryAfterError instead of
// waiting its whole deadline; nothing reaches the upstream.
func TestRetryAfterBeyondDeadlineFailsFast(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Retry-After", "3600")
		w.WriteHeader(http.StatusTooManyRequests)
	}))
	defer srv.Close()
	s, err := New(Config{Retry: RetryPolicy{MaxRetries: -1}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/limited", nil)
	resp, err := s.Do(req)
	if err != nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("first request: %v %v", resp, err)
	}
	resp.Body.Close()

	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	req, _ = http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/limited", nil)
	_, err = s.Do(req)
	var ra *RetryAfterError
	if !errors.Is(err, ErrRetryAfter) || !errors.As(err, &ra) || ra.Wait <= 59*time.Minute || ra.Wait > time.Hour {
		t.Fatalf("second request = %v, want a RetryAfterError of about an hour", err)
	}
	if strings.Contains(ra.Error(), "/limited") {
		t.Errorf("RetryAfterError names the path: %v", ra)
	}
	if hits.Load() != 1 {
		t.Fatalf("upstream hit %d times, want 1", hits.Load())
	}
}
