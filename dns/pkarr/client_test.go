package pkarr

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestClientAgainstRelay(t *testing.T) {
	e := newRelayEnv(t, RelayConfig{PutsPerMinute: 60, PutBurst: 3, GetsPerMinute: -1})
	ctx := testCtx(t)
	c := &Client{BaseURL: e.base, HTTP: e.srv.Client(), Now: e.clock.Now}
	priv := testKey(40)
	pub := priv.Public().(ed25519.PublicKey)
	now := e.clock.Now()

	if _, err := c.Resolve(ctx, pub, time.Time{}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Resolve unknown = %v, want ErrNotFound", err)
	} else if se := (*StatusError)(nil); !errors.As(err, &se) || se.Code != http.StatusNotFound || se.Method != "GET" {
		t.Fatalf("Resolve unknown: %#v", err)
	}

	sp := signAt(t, priv, now.Add(250*time.Millisecond), "_alknet.$Z. 300 IN TXT \"v=alknet1\"")
	if err := c.Publish(ctx, sp); err != nil {
		t.Fatal(err)
	}
	got, err := c.Resolve(ctx, pub, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), sp.Bytes()) {
		t.Fatal("resolved packet differs from the published one")
	}

	// If-Modified-Since: the relay answers 200 for the packet's own (sub-second) time,
	// since HTTP dates are whole seconds; the client still reports ErrNotModified.
	if _, err := c.Resolve(ctx, pub, sp.Timestamp()); !errors.Is(err, ErrNotModified) {
		t.Fatalf("Resolve(ims = packet time) = %v, want ErrNotModified", err)
	}
	// A later time makes the relay answer 304.
	before := e.relay.Stats().GetsNotModified
	if _, err := c.Resolve(ctx, pub, now.Add(time.Second)); !errors.Is(err, ErrNotModified) {
		t.Fatalf("Resolve(ims later) = %v, want ErrNotModified", err)
	}
	if e.relay.Stats().GetsNotModified != before+1 {
		t.Fatal("relay did not answer 304")
	}
	if got, err := c.Resolve(ctx, pub, now.Add(-time.Second)); err != nil || got.Micros() != sp.Micros() {
		t.Fatalf("Resolve(ims earlier) = %v", err)
	}

	// 409 for the same packet again.
	if err := c.Publish(ctx, sp); !errors.Is(err, ErrNotNewer) {
		t.Fatalf("Publish again = %v, want ErrNotNewer", err)
	}
	// 429 with Retry-After: the burst of 3 is spent by a 204, a 409 and the next 204.
	_ = c.Publish(ctx, signAt(t, priv, now.Add(time.Second)))
	err = c.Publish(ctx, signAt(t, priv, now.Add(2*time.Second)))
	var se *StatusError
	if !errors.Is(err, ErrRateLimited) || !errors.As(err, &se) || se.RetryAfter != time.Second {
		t.Fatalf("Publish over the rate = %v (%+v), want ErrRateLimited with RetryAfter 1s", err, se)
	}

	// The relay URL's trailing slash does not matter.
	c2 := &Client{BaseURL: e.base + "/", HTTP: e.srv.Client(), Now: e.clock.Now}
	if _, err := c2.Resolve(ctx, pub, time.Time{}); err != nil {
		t.Fatalf("Resolve via %s/: %v", e.base, err)
	}
}

// TestClientVerifies: the client checks what a relay sends before returning it.
func TestClientVerifies(t *testing.T) {
	priv := testKey(41)
	pub := priv.Public().(ed25519.PublicKey)
	now := time.Date(2026, 12, 8, 10, 0, 0, 0, time.UTC)
	sp := signAt(t, priv, now, "$Z. 60 IN A 192.0.2.1")
	tampered := sp.RelayPayload()
	tampered[len(tampered)-1] ^= 1

	var body []byte
	var length string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if length != "" {
			w.Header().Set("Content-Length", length)
		}
		_, _ = w.Write(body)
	}))
	defer srv.Close()
	c := &Client{BaseURL: srv.URL, HTTP: srv.Client(), Now: func() time.Time { return now }}
	ctx := testCtx(t)

	for _, tc := range []struct {
		name   string
		body   []byte
		length string
		want   error
	}{
		{"good", sp.RelayPayload(), "", nil},
		{"tampered", tampered, "", ErrBadSignature},
		{"other key", signAt(t, testKey(42), now).RelayPayload(), "", ErrBadSignature},
		{"short", make([]byte, 10), "", ErrTooShort},
		{"oversized, chunked", make([]byte, 5000), "", ErrTooLarge},
		{"oversized, announced", make([]byte, 2000), "2000", ErrTooLarge},
		{"future", signAt(t, priv, now.Add(2*time.Hour)).RelayPayload(), "", ErrFuture},
	} {
		body, length = tc.body, tc.length
		_, err := c.Resolve(ctx, pub, time.Time{})
		if tc.want == nil {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
		} else if !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
		}
	}
}

// TestClientStatusMapping covers the statuses a relay may answer a PUT with, and that
// the relay's credentials stay out of error text.
func TestClientStatusMapping(t *testing.T) {
	var code int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/prefix/"+ZBase32Key(testKey(43).Public().(ed25519.PublicKey)) ||
			r.Header.Get("Content-Type") != ContentType || r.Method != http.MethodPut {
			http.Error(w, "unexpected request", http.StatusTeapot)
			return
		}
		if code == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", "120")
		}
		w.WriteHeader(code)
	}))
	defer srv.Close()
	base := strings.Replace(srv.URL, "http://", "http://user:s3cret@", 1) + "/prefix"
	c := &Client{BaseURL: base, HTTP: srv.Client()}
	sp := signAt(t, testKey(43), time.Now())
	ctx := testCtx(t)
	for _, tc := range []struct {
		code int
		want error
	}{
		{http.StatusNoContent, nil},
		{http.StatusOK, nil},
		{http.StatusBadRequest, ErrRejected},
		{http.StatusConflict, ErrNotNewer},
		{http.StatusRequestEntityTooLarge, ErrTooLarge},
		{http.StatusTooManyRequests, ErrRateLimited},
		{http.StatusInternalServerError, ErrRelayStatus},
	} {
		code = tc.code
		err := c.Publish(ctx, sp)
		if tc.want == nil {
			if err != nil {
				t.Errorf("%d: %v", tc.code, err)
			}
			continue
		}
		if !errors.Is(err, tc.want) || !errors.Is(err, ErrRelayStatus) {
			t.Errorf("%d: err = %v, want %v", tc.code, err, tc.want)
		}
		if strings.Contains(err.Error(), "s3cret") || !strings.Contains(err.Error(), strconv.Itoa(tc.code)) {
			t.Errorf("%d: error text %q", tc.code, err)
		}
		var se *StatusError
		if tc.code == http.StatusTooManyRequests && (!errors.As(err, &se) || se.RetryAfter != 2*time.Minute) {
			t.Errorf("429: RetryAfter = %+v", se)
		}
	}

	// Transport errors do not carry the URL's credentials either.
	dead := &Client{BaseURL: "http://user:s3cret@127.0.0.1:1/x", HTTP: srv.Client()}
	if err := dead.Publish(ctx, sp); err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("unreachable relay: %v", err)
	}
	for _, bad := range []string{"", "ftp://relay.example", "relay.example/pkarr", "http://%zz"} {
		if err := (&Client{BaseURL: bad}).Publish(ctx, sp); err == nil {
			t.Errorf("BaseURL %q accepted", bad)
		}
	}
	if _, err := c.Resolve(ctx, make([]byte, 5), time.Time{}); !errors.Is(err, ErrBadKey) {
		t.Errorf("Resolve short key: %v", err)
	}
}
