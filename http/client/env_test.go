package client

import (
	"context"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// routingDialer sends every dial to one real address and records the addresses
// asked for, so that tests can use non-loopback host names (loopback is never
// proxied, whatever the environment says).
type routingDialer struct {
	target string
	mu     sync.Mutex
	dialed []string
}

func (d *routingDialer) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	d.mu.Lock()
	d.dialed = append(d.dialed, addr)
	d.mu.Unlock()
	var nd net.Dialer
	return nd.DialContext(ctx, network, d.target)
}

func (d *routingDialer) Dialed() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.dialed...)
}

func TestProxyEnvironmentIgnored(t *testing.T) {
	for _, k := range []string{"HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"} {
		t.Setenv(k, "http://bogus-proxy.invalid:3128")
	}
	t.Setenv("NO_PROXY", "")
	t.Setenv("no_proxy", "")

	srv := newScriptServer(t)
	d := &routingDialer{target: srv.Listener.Addr().String()}
	s := newTestSharedOpts(t, Config{}, options{dial: d.dial})

	if code, _ := get(t, s, "http://upstream.test/op"); code != http.StatusOK {
		t.Fatalf("status = %d, want 200", code)
	}
	if got := d.Dialed(); !slices.Equal(got, []string{"upstream.test:80"}) {
		t.Fatalf("dialed %v, want [upstream.test:80] (direct, not the environment's proxy)", got)
	}
}

func TestExplicitProxy(t *testing.T) {
	var (
		mu      sync.Mutex
		request string
	)
	srv := newScriptServerWith(t, func(hs *http.Server) {
		hs.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			request = r.RequestURI
			mu.Unlock()
		})
	})
	d := &routingDialer{target: srv.Listener.Addr().String()}
	proxyURL := &url.URL{Scheme: "http", Host: "proxy.test:3128"}
	s := newTestSharedOpts(t, Config{Proxy: http.ProxyURL(proxyURL)}, options{dial: d.dial})

	if code, _ := get(t, s, "http://upstream.test/op"); code != http.StatusOK {
		t.Fatalf("status = %d, want 200", code)
	}
	if got := d.Dialed(); !slices.Equal(got, []string{"proxy.test:3128"}) {
		t.Fatalf("dialed %v, want [proxy.test:3128]", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if request != "http://upstream.test/op" {
		t.Fatalf("proxy saw request URI %q, want the absolute URL", request)
	}
}

func TestSourceReadsNoEnvironment(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatalf("Glob: %v", err)
	}
	banned := []string{"os.Getenv", "LookupEnv", "ProxyFromEnvironment", "DefaultTransport", "DefaultClient"}
	checked := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatalf("ReadFile: %v", err)
		}
		checked++
		for _, b := range banned {
			if strings.Contains(string(src), b) {
				t.Fatalf("%s mentions %s", f, b)
			}
		}
	}
	if checked == 0 {
		t.Fatalf("no source file checked")
	}
}
