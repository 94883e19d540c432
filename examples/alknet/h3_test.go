package main

import (
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go/http3"

	"github.com/alknet/alknet/core/tlsconf"
)

// TestServeHTTP3 drives the node's gateway over HTTP/3 with quic-go's client, pinning
// the node: /healthz, /call with an API key, /openapi.json and the decoy; the TCP+TLS
// listener's h2 responses advertise it with Alt-Svc.
func TestServeHTTP3(t *testing.T) {
	token, key, entry := apiKey(t, "demo")
	config := filepath.Join(t.TempDir(), "alknet.toml")
	writeFile(t, config, key)
	n := startServe(t, "--config", config)

	get := func(c *http.Client, method, url, token, body string) (*http.Response, string) {
		t.Helper()
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		req, err := http.NewRequestWithContext(t.Context(), method, url, rd)
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, url, err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("%s %s: %v", method, url, err)
		}
		return resp, string(b)
	}

	tc, err := tlsconf.ClientConfig(tlsconf.ClientOptions{Pin: n.fp})
	if err != nil {
		t.Fatal(err)
	}
	h3 := &http3.Transport{TLSClientConfig: tc}
	t.Cleanup(func() { _ = h3.Close() })
	c := &http.Client{Transport: h3, Timeout: 60 * time.Second}
	base := "https://" + n.quic

	resp, body := get(c, http.MethodGet, base+"/healthz", "", "")
	if resp.Proto != "HTTP/3.0" || resp.StatusCode != http.StatusOK || body != "ok" {
		t.Fatalf("healthz: %s %d %q", resp.Proto, resp.StatusCode, body)
	}
	resp, body = get(c, http.MethodPost, base+"/call", token, `{"operation":"demo/whoami"}`)
	if resp.StatusCode != http.StatusOK || !strings.HasSuffix(body, `"result":"ok","output":{"id":"`+entry.Prefix+`"}}`+"\n") {
		t.Fatalf("call whoami with the API key: %d %q", resp.StatusCode, body)
	}
	resp, body = get(c, http.MethodPost, base+"/call", "", `{"operation":"demo/whoami"}`)
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, `"code":"FORBIDDEN"`) {
		t.Fatalf("call whoami without a token: %d %q, want a 401 FORBIDDEN", resp.StatusCode, body)
	}
	resp, body = get(c, http.MethodGet, base+"/openapi.json", "", "")
	var doc struct {
		OpenAPI string                     `json:"openapi"`
		Paths   map[string]json.RawMessage `json:"paths"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal([]byte(body), &doc) != nil || doc.OpenAPI == "" || doc.Paths["/call"] == nil {
		t.Fatalf("openapi.json: %d %q", resp.StatusCode, body)
	}
	resp, body = get(c, http.MethodGet, base+"/wp-login.php", "", "")
	if resp.StatusCode != http.StatusNotFound || !strings.Contains(strings.ToLower(resp.Header.Get("Server")), "nginx") || strings.Contains(body, "alknet") {
		t.Fatalf("decoy: %d %v %q", resp.StatusCode, resp.Header, body)
	}

	// The TCP+TLS listener advertises HTTP/3 on the QUIC port.
	tcpTLS, err := tlsconf.ClientConfig(tlsconf.ClientOptions{Pin: n.fp, NextProtos: []string{"h2", "http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	h2 := &http.Transport{TLSClientConfig: tcpTLS, ForceAttemptHTTP2: true}
	t.Cleanup(h2.CloseIdleConnections)
	resp, _ = get(&http.Client{Transport: h2, Timeout: 60 * time.Second}, http.MethodGet, "https://"+n.tcp+"/healthz", "", "")
	if want := `h3=":` + port(t, n.quic) + `"; ma=86400`; resp.ProtoMajor != 2 || resp.Header.Get("Alt-Svc") != want {
		t.Fatalf("TCP h2 healthz: %s Alt-Svc %q, want HTTP/2.0 and %q", resp.Proto, resp.Header.Get("Alt-Svc"), want)
	}
	if strings.Contains(n.stderr.String(), token) {
		t.Error("serve logged the API key")
	}
}
