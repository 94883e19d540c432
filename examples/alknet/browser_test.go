//go:build unix

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/examples/demo"
)

// chromiumNames are the browsers the browser test drives, in order of preference.
var chromiumNames = []string{"chromium", "chromium-browser", "google-chrome"}

// chromiumBinary returns the path of the first of chromiumNames on PATH, skipping the
// test when there is none.
func chromiumBinary(t *testing.T) string {
	t.Helper()
	for _, name := range chromiumNames {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skipf("no browser found (none of %s on PATH; .ci/run installs chromium): the browser test needs one", strings.Join(chromiumNames, ", "))
	return ""
}

// startChromium launches bin headless with a fresh profile and connects to its
// DevTools WebSocket, whose URL Chromium prints on stderr ("DevTools listening on
// ws://..."). When the test ends the DevTools connection is closed and the browser's
// process group (the browser and the helpers it started) is killed and waited for.
func startChromium(ctx context.Context, t *testing.T, bin string) *cdpClient {
	t.Helper()
	// Stderr is a pipe of our own rather than exec's: Chromium's crash handler daemon
	// inherits it and may outlive the browser by a moment, which would hold up
	// cmd.Wait; the reader below ends when the cleanup closes its end.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin,
		"--headless=new", "--no-sandbox", "--disable-gpu", "--ignore-certificate-errors",
		"--no-proxy-server", "--no-first-run", "--no-default-browser-check",
		"--user-data-dir="+t.TempDir(), "--remote-debugging-port=0", "about:blank")
	cmd.Stderr = w
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err = cmd.Start()
	w.Close()
	if err != nil {
		r.Close()
		t.Fatalf("start %s: %v", bin, err)
	}

	stderr := &syncBuffer{}
	devtools := make(chan string, 1)
	var reader sync.WaitGroup
	reader.Go(func() {
		defer close(devtools)
		br := bufio.NewReader(r)
		for {
			line, err := br.ReadString('\n')
			stderr.Write([]byte(line))
			if u, ok := strings.CutPrefix(strings.TrimSpace(line), "DevTools listening on "); ok {
				devtools <- u
				// Keep draining, so that the browser never blocks on a full pipe.
				_, _ = io.Copy(stderr, br)
				return
			}
			if err != nil {
				return
			}
		}
	})
	t.Cleanup(func() {
		// The group's id is the browser's pid, which is not reused before Wait.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
		r.Close()
		reader.Wait()
		if t.Failed() {
			t.Logf("%s stderr:\n%s", bin, stderr)
		}
	})

	var url string
	select {
	case u, ok := <-devtools:
		if !ok {
			t.Fatalf("%s printed no DevTools URL before closing stderr", bin)
		}
		url = u
	case <-ctx.Done():
		t.Fatalf("waiting for %s's DevTools URL: %v", bin, ctx.Err())
	}
	c, err := dialCDP(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// demoResults is what alknetDemo.run resolves to (see demo.PageHandler).
type demoResults struct {
	Protocol   string            `json:"protocol"`
	Served     []string          `json:"served"`
	Echo       json.RawMessage   `json:"echo"`
	Ticks      []json.RawMessage `json:"ticks"`
	Callback   json.RawMessage   `json:"callback"`
	GreetCalls []struct {
		Input        json.RawMessage `json:"input"`
		ForwardedFor *core.Identity  `json:"forwarded_for"`
	} `json:"greet_calls"`
}

// jsonEqual reports whether got is the JSON value want.
func jsonEqual(t *testing.T, got json.RawMessage, want string) bool {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		return false
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("bad want %q: %v", want, err)
	}
	return reflect.DeepEqual(g, w)
}

// TestBrowserDemoPage drives the demo page of serve --demo-page in headless Chromium:
// the page's own JavaScript client speaks the call protocol over the WebSocket
// /alknet/call (TCP+TLS, the browser's certificate), calls demo/echo and demo/ticks,
// and serves page/greet, which the node imports from it and calls back through
// demo/callback. A token the node does not know is refused before the upgrade.
func TestBrowserDemoPage(t *testing.T) {
	bin := chromiumBinary(t)
	token, key, _ := apiKey(t, demo.Scope)
	config := filepath.Join(t.TempDir(), "alknet.toml")
	writeFile(t, config, key)
	n := startServe(t, "--config", config, "--demo-page")

	// A failure guard only: every step below waits for an event, never for time.
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	browser := startChromium(ctx, t, bin)
	page, err := browser.newPage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := page.navigate(ctx, "https://"+n.tcp+"/demo"); err != nil {
		t.Fatal(err)
	}

	quoted, _ := json.Marshal(token)
	var res demoResults
	if err := page.eval(ctx, "alknetDemo.run("+string(quoted)+")", &res); err != nil {
		t.Fatal(err)
	}
	if res.Protocol != "alknet.call" {
		t.Errorf("subprotocol %q, want alknet.call", res.Protocol)
	}
	if !jsonEqual(t, res.Echo, `{"hello":"from the browser"}`) {
		t.Errorf("demo/echo output %s", res.Echo)
	}
	if len(res.Ticks) != 3 || !jsonEqual(t, res.Ticks[0], `{"n":1}`) || !jsonEqual(t, res.Ticks[1], `{"n":2}`) || !jsonEqual(t, res.Ticks[2], `{"n":3}`) {
		t.Errorf("demo/ticks events %s, want n = 1, 2, 3", res.Ticks)
	}
	// The node imported page/greet from the page (discovery first) and called it.
	if want := []string{"services/list", "services/schema", "page/greet"}; !slices.Equal(res.Served, want) {
		t.Errorf("the node called %q on the page, want %q", res.Served, want)
	}
	if !jsonEqual(t, res.Callback, `{"greeting":"hello node"}`) {
		t.Errorf("demo/callback output %s, want page/greet's", res.Callback)
	}
	if len(res.GreetCalls) != 1 {
		t.Fatalf("page/greet ran %d times, want once", len(res.GreetCalls))
	}
	gc := res.GreetCalls[0]
	if !jsonEqual(t, gc.Input, `{"name":"node"}`) || gc.ForwardedFor == nil || gc.ForwardedFor.ID != demo.OpCallback || !gc.ForwardedFor.HasScope(demo.Scope) {
		t.Errorf("page/greet received input %s, forwarded_for %+v; want {\"name\":\"node\"} for %s with scope %s", gc.Input, gc.ForwardedFor, demo.OpCallback, demo.Scope)
	}
	var shown string
	if err := page.eval(ctx, `document.getElementById("results").textContent`, &shown); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(shown, `"greeting": "hello node"`) {
		t.Errorf("the page shows:\n%s", shown)
	}

	// A token that does not resolve gets 401 before the upgrade: the WebSocket fails.
	var outcome string
	if err := page.eval(ctx, `alknetDemo.run("alk_notakey").then(() => "resolved", (e) => "rejected: " + e.message)`, &outcome); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(outcome, "rejected: WebSocket failed before opening") {
		t.Errorf("run with a bad token: %q, want the WebSocket to fail", outcome)
	}
	if strings.Contains(n.stderr.String(), token) {
		t.Error("serve logged the API key")
	}
}

// TestServeDemoPageFlag checks that the demo page is served only with --demo-page, and
// that alknet clients still get the node's own certificate then (gatewayClient pins
// it).
func TestServeDemoPageFlag(t *testing.T) {
	get := func(t *testing.T, n *node, path string) (int, http.Header) {
		t.Helper()
		resp, err := gatewayClient(t, n).Get("https://" + n.tcp + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, resp.Header
	}
	t.Run("default", func(t *testing.T) {
		n := startServe(t)
		if code, h := get(t, n, "/demo"); code != http.StatusNotFound || h.Get("Content-Security-Policy") != "" {
			t.Errorf("GET /demo without --demo-page: %d %q, want the decoy's 404", code, h)
		}
	})
	t.Run("demo-page", func(t *testing.T) {
		n := startServe(t, "--demo-page")
		code, h := get(t, n, "/demo")
		if code != http.StatusOK || h.Get("Content-Type") != "text/html; charset=utf-8" || !strings.Contains(h.Get("Content-Security-Policy"), "script-src 'sha256-") {
			t.Errorf("GET /demo: %d %q", code, h)
		}
		// The HTTP handler sends non-canonical paths (a trailing slash) to the decoy.
		if code, _ := get(t, n, "/demo/"); code != http.StatusNotFound {
			t.Errorf("GET /demo/: %d, want the decoy's 404", code)
		}
	})
}
