package main

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// curlTool returns the path of curl, skipping the test when it is missing.
func curlTool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl not installed (.ci/run installs it): ", err)
	}
	return p
}

// runCurl runs curl with args and returns its stdout; it fails the test on a non-zero
// exit.
func runCurl(t *testing.T, curl string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, curl, append([]string{"--silent", "--show-error", "--insecure", "--noproxy", "*"}, args...)...)
	out, err := cmd.Output()
	if err != nil {
		stderr := ""
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("curl %s: %v: %s", strings.Join(args, " "), err, stderr)
	}
	return string(out)
}

// TestServeHTTPWithCurl drives the node's HTTP surface on the TCP+TLS listener with the
// stock curl client, over HTTP/1.1 and h2: /healthz, /call with an API key, /subscribe
// as Server-Sent Events, and the decoy.
func TestServeHTTPWithCurl(t *testing.T) {
	curl := curlTool(t)
	token, key, entry := apiKey(t, "demo")
	config := filepath.Join(t.TempDir(), "alknet.toml")
	writeFile(t, config, key)
	n := startServe(t, "--config", config)
	base := "https://" + n.tcp
	for _, proto := range []struct{ flag, version string }{{"--http1.1", "1.1"}, {"--http2", "2"}} {
		t.Run(proto.flag, func(t *testing.T) {
			if got := runCurl(t, curl, proto.flag, "--write-out", " %{http_code} %{http_version}", base+"/healthz"); got != "ok 200 "+proto.version {
				t.Fatalf("healthz: %q, want %q", got, "ok 200 "+proto.version)
			}
			got := runCurl(t, curl, proto.flag, "-H", "Authorization: Bearer "+token, "-d", `{"operation":"demo/whoami"}`, "--write-out", " %{http_code}", base+"/call")
			if !strings.HasPrefix(got, `{"request_id":"`) || !strings.HasSuffix(got, `"result":"ok","output":{"id":"`+entry.Prefix+`"}}`+"\n 200") {
				t.Fatalf("call whoami: %q", got)
			}
			got = runCurl(t, curl, proto.flag, "-d", `{"operation":"demo/whoami"}`, "--write-out", " %{http_code}", base+"/call")
			if !strings.Contains(got, `"code":"FORBIDDEN"`) || !strings.HasSuffix(got, " 401") {
				t.Fatalf("call whoami without a token: %q, want a 401 FORBIDDEN", got)
			}
			got = runCurl(t, curl, proto.flag, "--no-buffer", "-H", "Content-Type: application/json", "-d", `{"operation":"demo/ticks","input":{"count":3,"interval_ms":5}}`, "--write-out", "%{http_code} %{content_type}", base+"/subscribe")
			if want := "data: {\"n\":1}\n\ndata: {\"n\":2}\n\ndata: {\"n\":3}\n\n200 text/event-stream"; got != want {
				t.Fatalf("subscribe ticks: %q, want %q", got, want)
			}
			got = runCurl(t, curl, proto.flag, "-d", `{"operation":"demo/echo"}`, base+"/subscribe")
			if !strings.HasPrefix(got, "event: error\ndata: {\"code\":\"INVALID_OPERATION_TYPE\"") {
				t.Fatalf("subscribe to a query: %q", got)
			}
			got = runCurl(t, curl, proto.flag, "--include", base+"/wp-login.php")
			if !strings.Contains(got, " 404") || !strings.Contains(strings.ToLower(got), "server: nginx") || strings.Contains(strings.ToLower(got), "alknet") {
				t.Fatalf("decoy: %q", got)
			}
		})
	}
	if strings.Contains(n.stderr.String(), token) {
		t.Error("serve logged the API key")
	}
}
