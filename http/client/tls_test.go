package client

import (
	"crypto/tls"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// newTLSServer starts a TLS test server answering 200 "ok", with tlsConf (may be
// nil) and a silenced error log.
func newTLSServer(t *testing.T, tlsConf *tls.Config, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	if h == nil {
		h = func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }
	}
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = tlsConf
	srv.Config.ErrorLog = quietLog()
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

func isCertError(err error) bool {
	var verr *tls.CertificateVerificationError
	return errors.As(err, &verr)
}

func TestCABundle(t *testing.T) {
	srv := newTLSServer(t, nil, nil)
	tests := []struct {
		name    string
		cfg     Config
		wantErr bool
	}{
		{"system roots reject the test CA", Config{}, true},
		{"CA bundle trusts it", Config{CABundlePEM: certPEM(srv)}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newFakeClock()
			s := newTestShared(t, tt.cfg, clk)
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL, nil)
			resp, err := s.Do(req)
			if !tt.wantErr {
				if err != nil {
					t.Fatalf("Do: %v", err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("status = %d, want 200", resp.StatusCode)
				}
				return
			}
			if err == nil {
				resp.Body.Close()
				t.Fatalf("Do succeeded, want a certificate error")
			}
			if !isCertError(err) {
				t.Fatalf("err = %v, want a certificate verification error", err)
			}
			if n := len(clk.Sleeps()); n != 0 {
				t.Fatalf("a certificate error was retried (%d sleeps)", n)
			}
		})
	}
}

func TestClientCertificate(t *testing.T) {
	var (
		mu   sync.Mutex
		seen []string
	)
	srv := newTLSServer(t, &tls.Config{ClientAuth: tls.RequireAnyClientCert}, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range r.TLS.PeerCertificates {
			seen = append(seen, c.Subject.CommonName)
		}
	})
	certPEMBytes, keyPEMBytes := newClientCert(t, "alknet-test-client")

	t.Run("presented", func(t *testing.T) {
		s := newTestShared(t, Config{CABundlePEM: certPEM(srv), ClientCertPEM: certPEMBytes, ClientKeyPEM: keyPEMBytes}, newFakeClock())
		if code, _ := get(t, s, srv.URL); code != http.StatusOK {
			t.Fatalf("status = %d, want 200", code)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(seen) != 1 || seen[0] != "alknet-test-client" {
			t.Fatalf("server saw client certificates %q, want [alknet-test-client]", seen)
		}
	})
	t.Run("missing", func(t *testing.T) {
		clk := newFakeClock()
		s := newTestShared(t, Config{CABundlePEM: certPEM(srv)}, clk)
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL, nil)
		resp, err := s.Do(req)
		if err == nil {
			resp.Body.Close()
			t.Fatalf("Do succeeded without a client certificate")
		}
		if n := len(clk.Sleeps()); n != 0 {
			t.Fatalf("a rejected handshake was retried (%d sleeps): %v", n, err)
		}
	})
}

func TestConfigErrors(t *testing.T) {
	srv := newTLSServer(t, nil, nil)
	certPEMBytes, keyPEMBytes := newClientCert(t, "c")
	_, otherKey := newClientCert(t, "other")
	tests := []struct {
		name string
		cfg  Config
	}{
		{"CA bundle without PEM", Config{CABundlePEM: []byte("not a certificate")}},
		{"CA bundle with a corrupt certificate", Config{CABundlePEM: []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")}},
		{"CA bundle with a key block", Config{CABundlePEM: append(certPEM(srv), keyPEMBytes...)}},
		{"certificate without key", Config{ClientCertPEM: certPEMBytes}},
		{"key without certificate", Config{ClientKeyPEM: keyPEMBytes}},
		{"mismatched key", Config{ClientCertPEM: certPEMBytes, ClientKeyPEM: otherKey}},
		{"garbage certificate", Config{ClientCertPEM: []byte("garbage"), ClientKeyPEM: keyPEMBytes}},
		{"negative MaxIdleConnsPerHost", Config{MaxIdleConnsPerHost: -1}},
		{"negative Timeout", Config{Timeout: -1}},
		{"negative RetryAfterCapacity", Config{RetryAfterCapacity: -1}},
		{"negative BaseDelay", Config{Retry: RetryPolicy{BaseDelay: -1}}},
		{"negative MaxDelay", Config{Retry: RetryPolicy{MaxDelay: -1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := New(tt.cfg)
			if err == nil {
				s.Close()
				t.Fatalf("New succeeded, want ErrConfig")
			}
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("err = %v, want it to wrap ErrConfig", err)
			}
		})
	}
}

func TestTransportSettings(t *testing.T) {
	s, err := New(Config{})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	defer s.Close()
	tr := s.cur.Load().transport
	switch {
	case tr.Proxy != nil:
		t.Fatalf("Proxy is set by default")
	case tr.TLSClientConfig == nil || tr.TLSClientConfig.MinVersion != tls.VersionTLS12:
		t.Fatalf("MinVersion is not TLS 1.2")
	case tr.TLSClientConfig.RootCAs != nil:
		t.Fatalf("RootCAs set without a CA bundle; want the system roots")
	case !tr.ForceAttemptHTTP2:
		t.Fatalf("ForceAttemptHTTP2 is false")
	case tr.MaxIdleConnsPerHost != DefaultMaxIdleConnsPerHost:
		t.Fatalf("MaxIdleConnsPerHost = %d, want %d", tr.MaxIdleConnsPerHost, DefaultMaxIdleConnsPerHost)
	case tr.ResponseHeaderTimeout != DefaultTimeout || tr.TLSHandshakeTimeout != DefaultTimeout:
		t.Fatalf("timeouts = %v, %v; want %v", tr.ResponseHeaderTimeout, tr.TLSHandshakeTimeout, DefaultTimeout)
	}
}

func TestHTTP2(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Proto)
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	s := newTestShared(t, Config{CABundlePEM: certPEM(srv)}, newFakeClock())
	if _, body := get(t, s, srv.URL); body != "HTTP/2.0" {
		t.Fatalf("proto = %q, want HTTP/2.0", body)
	}
}
