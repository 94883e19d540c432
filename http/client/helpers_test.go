package client

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// t0 is the fake clock's start, on a whole second so that HTTP-dates are exact.
var t0 = time.Date(2030, time.January, 2, 3, 4, 5, 0, time.UTC)

// fakeClock stands in for the real clock: sleeping records the duration and moves
// the clock forward at once.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	sleeps  []time.Duration
	onSleep func(ctx context.Context, d time.Duration) error // optional, called after recording
}

func newFakeClock() *fakeClock { return &fakeClock{now: t0} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	c.sleeps = append(c.sleeps, d)
	c.now = c.now.Add(d)
	hook := c.onSleep
	c.mu.Unlock()
	if hook != nil {
		return hook(ctx, d)
	}
	return nil
}

func (c *fakeClock) Sleeps() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.sleeps...)
}

// noJitter makes the backoff before retry n exactly BaseDelay·2ⁿ/2.
func noJitter(int64) int64 { return 0 }

// newTestShared builds a Shared on clk (with no jitter) and closes it at cleanup.
func newTestShared(t *testing.T, cfg Config, clk *fakeClock) *Shared {
	t.Helper()
	return newTestSharedOpts(t, cfg, options{now: clk.Now, sleep: clk.Sleep, jitter: noJitter})
}

func newTestSharedOpts(t *testing.T, cfg Config, opts options) *Shared {
	t.Helper()
	s, err := newShared(cfg, opts)
	if err != nil {
		t.Fatalf("newShared: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// scriptServer answers each request with the next status of its script (200 once
// the script is used up), and records the request bodies it saw.
type scriptServer struct {
	*httptest.Server
	mu       sync.Mutex
	script   []scripted
	bodies   []string
	attempts atomic.Int32
}

type scripted struct {
	status     int
	retryAfter string
}

func newScriptServer(t *testing.T, script ...scripted) *scriptServer {
	t.Helper()
	return newScriptServerWith(t, nil, script...)
}

// newScriptServerWith is newScriptServer with configure applied to the
// http.Server before it starts.
func newScriptServerWith(t *testing.T, configure func(*http.Server), script ...scripted) *scriptServer {
	t.Helper()
	ss := &scriptServer{script: script}
	ss.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := ss.attempts.Add(1)
		b, _ := io.ReadAll(r.Body)
		ss.mu.Lock()
		ss.bodies = append(ss.bodies, string(b))
		next := scripted{status: http.StatusOK}
		if len(ss.script) > 0 {
			next, ss.script = ss.script[0], ss.script[1:]
		}
		ss.mu.Unlock()
		if next.retryAfter != "" {
			w.Header().Set("Retry-After", next.retryAfter)
		}
		w.WriteHeader(next.status)
		io.WriteString(w, "attempt "+strconv.Itoa(int(n)))
	}))
	if configure != nil {
		configure(ss.Config)
	}
	ss.Start()
	t.Cleanup(ss.Close)
	return ss
}

func (ss *scriptServer) Bodies() []string {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return append([]string(nil), ss.bodies...)
}

func repeat(n int, s scripted) []scripted {
	out := make([]scripted, n)
	for i := range out {
		out[i] = s
	}
	return out
}

// get sends a GET to url through s and returns the status and body.
func get(t *testing.T, s *Shared, url string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatalf("NewRequest: %v", err)
	}
	resp, err := s.Do(req)
	if err != nil {
		t.Fatalf("GET: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading body: %v", err)
	}
	return resp.StatusCode, string(b)
}

// quietLog silences a test server's error log (failed TLS handshakes are expected).
func quietLog() *log.Logger { return log.New(io.Discard, "", 0) }

// certPEM returns the PEM encoding of a test server's certificate: a CA bundle
// that trusts it.
func certPEM(srv *httptest.Server) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
}

// newClientCert generates a self-signed ECDSA client certificate and its key, in PEM.
func newClientCert(t *testing.T, cn string) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("GenerateKey: %v", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("CreateCertificate: %v", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatalf("MarshalPKCS8PrivateKey: %v", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
}

// closingListener accepts connections and closes the first fail of them at once,
// counting every accept; later connections are handed on.
type closingListener struct {
	net.Listener
	fail    int32
	accepts atomic.Int32
}

func (l *closingListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if n := l.accepts.Add(1); n <= l.fail {
			c.Close()
			continue
		}
		return c, nil
	}
}

// newFlakyServer is an HTTP server whose first fail connections are closed on
// accept, before any response.
func newFlakyServer(t *testing.T, fail int32) (*httptest.Server, *closingListener) {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	cl := &closingListener{Listener: srv.Listener, fail: fail}
	srv.Listener = cl
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, cl
}
