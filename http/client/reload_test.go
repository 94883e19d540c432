package client

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// do sends a GET through c and returns the error, closing any response.
func do(t *testing.T, c *http.Client, url string) error {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status = %d, want 200", resp.StatusCode)
	}
	return nil
}

func TestReloadSwapsConfiguration(t *testing.T) {
	srv := newTLSServer(t, nil, nil)
	s := newTestShared(t, Config{}, newFakeClock())
	holder := s.Client() // taken before the reload

	if err := do(t, holder, srv.URL); !isCertError(err) {
		t.Fatalf("before reload: err = %v, want a certificate error", err)
	}
	if err := s.Reload(Config{CABundlePEM: certPEM(srv)}); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if code, _ := get(t, s, srv.URL); code != http.StatusOK {
		t.Fatalf("Do after reload: status = %d", code)
	}
	if err := do(t, holder, srv.URL); err != nil {
		t.Fatalf("holder of Client() after reload: %v", err)
	}
}

func TestInvalidReloadKeepsOldClient(t *testing.T) {
	srv := newTLSServer(t, nil, nil)
	s := newTestShared(t, Config{CABundlePEM: certPEM(srv), Retry: RetryPolicy{MaxRetries: 1}}, newFakeClock())
	before := s.cur.Load()

	bad := []Config{
		{CABundlePEM: []byte("junk")},
		{ClientCertPEM: []byte("cert only")},
		{Timeout: -time.Second},
	}
	for _, cfg := range bad {
		if err := s.Reload(cfg); !errors.Is(err, ErrConfig) {
			t.Fatalf("Reload(%+v) = %v, want ErrConfig", cfg, err)
		}
	}
	if s.cur.Load() != before {
		t.Fatalf("an invalid reload replaced the configuration")
	}
	if code, _ := get(t, s, srv.URL); code != http.StatusOK {
		t.Fatalf("status = %d after invalid reloads", code)
	}
}

func TestReloadClosesOldIdleConnections(t *testing.T) {
	closed := make(chan struct{}, 1)
	srv := newScriptServerWith(t, func(hs *http.Server) {
		hs.ConnState = func(_ net.Conn, st http.ConnState) {
			if st == http.StateClosed {
				select {
				case closed <- struct{}{}:
				default:
				}
			}
		}
	})
	s := newTestShared(t, Config{}, newFakeClock())
	get(t, s, srv.URL) // leaves one idle connection
	if err := s.Reload(Config{}); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	select {
	case <-closed:
	case <-time.After(10 * time.Second): // a failure bound, not synchronisation
		t.Fatalf("the old transport's idle connection was not closed")
	}
}

func TestReloadAppliesNewPolicy(t *testing.T) {
	srv := newScriptServer(t, repeat(10, scripted{status: http.StatusServiceUnavailable})...)
	clk := newFakeClock()
	s := newTestShared(t, Config{}, clk)
	if err := s.Reload(Config{Retry: RetryPolicy{MaxRetries: -1}}); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if code, _ := get(t, s, srv.URL); code != http.StatusServiceUnavailable {
		t.Fatalf("status = %d, want 503", code)
	}
	if n := srv.attempts.Load(); n != 1 {
		t.Fatalf("attempts = %d, want 1 after reloading with retries off", n)
	}
}

func TestReloadKeepsRetryAfterMemory(t *testing.T) {
	srv := newScriptServer(t, scripted{status: http.StatusTooManyRequests, retryAfter: "9"})
	clk := newFakeClock()
	s := newTestShared(t, Config{Retry: RetryPolicy{MaxRetries: -1}}, clk)
	get(t, s, srv.URL)
	if err := s.Reload(Config{Retry: RetryPolicy{MaxRetries: -1}}); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	get(t, s, srv.URL)
	if got := clk.Sleeps(); len(got) != 1 || got[0] != 9*time.Second {
		t.Fatalf("sleeps = %v, want [9s]", got)
	}
}

func TestConcurrentDoAndReload(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	t.Cleanup(srv.Close)
	s, err := New(Config{})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(s.Close)

	const workers, requests, reloads = 8, 25, 25
	var wg sync.WaitGroup
	errs := make(chan error, workers*requests)
	for i := range workers {
		var c *http.Client // half the workers hold a Client(), half call Do
		if i%2 == 0 {
			c = s.Client()
		}
		wg.Go(func() {
			for range requests {
				req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL, nil)
				var resp *http.Response
				var err error
				if c != nil {
					resp, err = c.Do(req)
				} else {
					resp, err = s.Do(req)
				}
				if err != nil {
					errs <- err
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
	wg.Go(func() {
		for i := range reloads {
			if err := s.Reload(Config{MaxIdleConnsPerHost: 1 + i%4, RetryAfterCapacity: 1 + i}); err != nil {
				errs <- err
			}
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent use: %v", err)
	}
}
