package node_test

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/examples/node"
)

// hooks is a plugin that mounts an HTTP route and records its Ready.
type hooks struct {
	pattern string
	alpn    string

	mu       sync.Mutex
	ready    *node.Ready
	printed  func() bool // reports whether serve has printed "ready"
	before   bool        // the hook ran before "ready" was printed
	routes   *http.ServeMux
	mountErr error
}

func (h *hooks) Name() string { return "hooks-" + h.alpn }

func (h *hooks) Setup(_ context.Context, env *node.Env) ([]core.ProtocolHandler, error) {
	h.mountErr = env.HandleHTTP(h.pattern, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, h.alpn)
	}))
	h.routes = env.HTTPRoutes()
	env.OnReady(func(r node.Ready) {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.ready = &r
		h.before = !h.printed()
	})
	return []core.ProtocolHandler{&closer{alpn: h.alpn, closed: new([]string)}}, nil
}

// TestEnvReadyAndHTTPRoutes checks the OnReady hooks (run before the "ready" line,
// with the final ALPN list) and HandleHTTP (one mux for all plugins; a conflicting
// pattern is an error, not a panic).
func TestEnvReadyAndHTTPRoutes(t *testing.T) {
	var mu sync.Mutex
	var out strings.Builder
	printed := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return strings.Contains(out.String(), "ready\n")
	}
	a := &hooks{pattern: "/a/", alpn: "x/a", printed: printed}
	b := &hooks{pattern: "/b", alpn: "x/b", printed: printed}
	dup := &hooks{pattern: "/a/", alpn: "x/dup", printed: printed}
	n := &node.Node{Name: "test", Plugins: []node.Plugin{a, b, dup}}

	pr, pw := io.Pipe()
	c := n.NewCLI(nil, pw, io.Discard)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- c.Run(ctx, []string{"serve", "--state", t.TempDir(), "--listen", "127.0.0.1:0"})
		pw.Close()
	}()
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		mu.Lock()
		out.WriteString(sc.Text() + "\n")
		mu.Unlock()
		if sc.Text() == "ready" {
			break
		}
	}
	go io.Copy(io.Discard, pr)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	for _, h := range []*hooks{a, b} {
		if h.mountErr != nil {
			t.Errorf("%s: HandleHTTP: %v", h.alpn, h.mountErr)
		}
		if h.ready == nil {
			t.Fatalf("%s: OnReady hook not called", h.alpn)
		}
		if !h.before {
			t.Errorf("%s: OnReady hook ran after the ready line", h.alpn)
		}
		if want := []string{"x/a", "x/b", "x/dup"}; !slices.Equal(h.ready.ALPNs, want) {
			t.Errorf("Ready.ALPNs = %q, want %q", h.ready.ALPNs, want)
		}
	}
	if dup.mountErr == nil || !strings.Contains(dup.mountErr.Error(), `http route "/a/"`) {
		t.Errorf("conflicting pattern: %v, want an error naming it", dup.mountErr)
	}
	if a.routes != b.routes {
		t.Fatal("HTTPRoutes differs between plugins")
	}
	for path, want := range map[string]string{"/a/x": "x/a", "/b": "x/b"} {
		rec := httptest.NewRecorder()
		a.routes.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		if rec.Body.String() != want {
			t.Errorf("GET %s = %q, want %q", path, rec.Body.String(), want)
		}
	}
}
