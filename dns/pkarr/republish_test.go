package pkarr

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
)

// fakeTimers is a Clock whose timers fire only when the test says so. Every After call
// is handed to the test on waits, which tells the test that Run finished a round and is
// waiting.
type fakeTimers struct {
	fakeClock
	waits chan timerReq
}

type timerReq struct {
	d time.Duration
	c chan time.Time
}

func newFakeTimers(start time.Time) *fakeTimers {
	return &fakeTimers{fakeClock: fakeClock{t: start}, waits: make(chan timerReq, 100)}
}

func (f *fakeTimers) After(d time.Duration) (<-chan time.Time, func() bool) {
	c := make(chan time.Time, 1)
	f.waits <- timerReq{d: d, c: c}
	return c, func() bool { return true }
}

// next waits (60 s fail-safe) for Run to ask for its next timer.
func (f *fakeTimers) next(t *testing.T) timerReq {
	t.Helper()
	select {
	case r := <-f.waits:
		return r
	case <-time.After(60 * time.Second):
		t.Fatal("republisher did not finish its round")
		return timerReq{}
	}
}

// fire advances the clock by the timer's duration and fires it.
func (f *fakeTimers) fire(r timerReq) {
	f.Advance(r.d)
	r.c <- f.Now()
}

func startRepublisher(t *testing.T, r *Republisher) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	return func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run = %v, want nil after cancel", err)
			}
		case <-time.After(60 * time.Second):
			t.Fatal("Run did not return after cancel")
		}
	}
}

func inJitter(d, interval time.Duration, jitter float64) bool {
	lo := time.Duration(float64(interval) * (1 - jitter))
	hi := time.Duration(float64(interval) * (1 + jitter))
	return d >= lo && d <= hi
}

func TestRepublisherSchedule(t *testing.T) {
	e := newRelayEnv(t, RelayConfig{PutsPerMinute: -1})
	timers := newFakeTimers(time.Date(2026, 12, 8, 10, 0, 0, 0, time.UTC))
	e.relay.now = timers.Now // the relay's future check follows the same clock
	priv := testKey(50)
	pub := priv.Public().(ed25519.PublicKey)
	var mu sync.Mutex
	addr := "192.0.2.1"
	r := &Republisher{
		Relays: []Publisher{&Client{BaseURL: e.base, HTTP: e.srv.Client(), Now: timers.Now}},
		Build: func(ctx context.Context) (*SignedPacket, error) {
			mu.Lock()
			defer mu.Unlock()
			a := &mdns.A{Hdr: mdns.RR_Header{Name: "@", Rrtype: mdns.TypeA, Class: mdns.ClassINET, Ttl: 300}}
			a.A = mustRR(t, ". 1 IN A "+addr).(*mdns.A).A
			return Sign(priv, timers.Now(), []mdns.RR{a})
		},
		Clock: timers,
	}
	stop := startRepublisher(t, r)
	defer stop()

	held := func() (time.Time, string) {
		t.Helper()
		sp, ok := e.relay.Packet(pub)
		if !ok {
			t.Fatal("relay holds nothing")
		}
		return sp.Timestamp(), sp.Records()[0].(*mdns.A).A.String()
	}

	// Published at start, then waits about an hour.
	w := timers.next(t)
	if ts, a := held(); !ts.Equal(timers.Now().Truncate(time.Microsecond)) || a != "192.0.2.1" {
		t.Fatalf("first packet: %v %s", ts, a)
	}
	if !inJitter(w.d, time.Hour, 0.1) {
		t.Fatalf("first wait %v, want 1 h ± 10 %%", w.d)
	}

	// The timer fires: a new round with a new timestamp.
	timers.fire(w)
	w = timers.next(t)
	if ts, _ := held(); !ts.Equal(timers.Now().Truncate(time.Microsecond)) {
		t.Fatalf("second packet at %v, want %v", ts, timers.Now().Truncate(time.Microsecond))
	}
	if !inJitter(w.d, time.Hour, 0.1) {
		t.Fatalf("second wait %v", w.d)
	}

	// Changed publishes without waiting for the timer.
	mu.Lock()
	addr = "192.0.2.99"
	mu.Unlock()
	timers.Advance(time.Second)
	r.Changed()
	w = timers.next(t)
	if ts, a := held(); !ts.Equal(timers.Now().Truncate(time.Microsecond)) || a != "192.0.2.99" {
		t.Fatalf("after Changed: %v %s", ts, a)
	}
	if st := e.relay.Stats(); st.PutsAccepted != 3 {
		t.Fatalf("relay accepted %d PUTs, want 3", st.PutsAccepted)
	}
}

// scriptedRelay answers PUTs with the statuses in its script, then 204.
type scriptedRelay struct {
	mu     sync.Mutex
	script []int
	puts   int
}

func (s *scriptedRelay) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.puts++
	code := http.StatusNoContent
	if len(s.script) > 0 {
		code, s.script = s.script[0], s.script[1:]
	}
	if code == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", "300")
	}
	w.WriteHeader(code)
}

func TestRepublisherBackoff(t *testing.T) {
	sr := &scriptedRelay{script: []int{500, 502, 429, 204, 409, 204}}
	srv := httptest.NewServer(sr)
	defer srv.Close()
	timers := newFakeTimers(time.Date(2026, 12, 8, 10, 0, 0, 0, time.UTC))
	var logs bytes.Buffer
	var logMu sync.Mutex
	priv := testKey(51)
	buildErr := errors.New("vault locked")
	var failBuild bool
	r := &Republisher{
		Relays: []Publisher{&Client{BaseURL: strings.Replace(srv.URL, "http://", "http://u:s3cret@", 1) + "/pkarr", HTTP: srv.Client()}},
		Build: func(ctx context.Context) (*SignedPacket, error) {
			if failBuild {
				return nil, buildErr
			}
			return Sign(priv, timers.Now(), nil)
		},
		Interval:   10 * time.Minute,
		Jitter:     -1, // none: exact waits
		MinBackoff: 30 * time.Second,
		Logger:     slog.New(slog.NewTextHandler(&lockedWriter{w: &logs, mu: &logMu}, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Clock:      timers,
	}
	stop := startRepublisher(t, r)

	for i, want := range []time.Duration{
		30 * time.Second, // 500
		60 * time.Second, // 502: doubled
		5 * time.Minute,  // 429: backoff 120 s, but Retry-After 300 s
		10 * time.Minute, // 204: the interval again
		10 * time.Minute, // 409: the relay has it already, counts as published
		10 * time.Minute, // 204
	} {
		w := timers.next(t)
		if w.d != want {
			t.Fatalf("wait %d = %v, want %v", i, w.d, want)
		}
		if i == 5 {
			failBuild = true // read by Run only after the timer fires
		}
		timers.fire(w)
	}
	// Build fails: backoff from the start, doubling, capped at the interval.
	for i, want := range []time.Duration{30 * time.Second, time.Minute, 2 * time.Minute, 4 * time.Minute, 8 * time.Minute, 10 * time.Minute} {
		w := timers.next(t)
		if w.d != want {
			t.Fatalf("build failure wait %d = %v, want %v", i, w.d, want)
		}
		if i < 5 {
			timers.fire(w)
		}
	}
	stop()

	sr.mu.Lock()
	puts := sr.puts
	sr.mu.Unlock()
	if puts != 6 {
		t.Fatalf("relay saw %d PUTs, want 6", puts)
	}
	logMu.Lock()
	out := logs.String()
	logMu.Unlock()
	if strings.Contains(out, "s3cret") {
		t.Fatalf("logs carry the relay's credentials:\n%s", out)
	}
	for _, want := range []string{"500", "502", "429", "vault locked", "already holds"} {
		if !strings.Contains(out, want) {
			t.Errorf("logs lack %q:\n%s", want, out)
		}
	}
}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestRepublisherConfigErrors(t *testing.T) {
	ctx := testCtx(t)
	if err := (&Republisher{Build: func(context.Context) (*SignedPacket, error) { return nil, nil }}).Run(ctx); err == nil {
		t.Error("Run without relays returned nil")
	}
	if err := (&Republisher{Relays: []Publisher{&Client{}}}).Run(ctx); err == nil {
		t.Error("Run without Build returned nil")
	}
	// Changed before Run neither blocks nor panics, and repeated calls collapse.
	var r Republisher
	r.Changed()
	r.Changed()
}

// TestRealClock: the default clock's timers fire and stop.
func TestRealClock(t *testing.T) {
	c, _ := realClock{}.After(time.Millisecond)
	select {
	case <-c:
	case <-time.After(60 * time.Second):
		t.Fatal("real timer did not fire")
	}
	if _, stop := (realClock{}).After(time.Hour); !stop() {
		t.Fatal("stopping a pending timer reported it had fired")
	}
	if realClock.Now(realClock{}).IsZero() {
		t.Fatal("zero time")
	}
}
