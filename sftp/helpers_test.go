package sftp_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	pkgsftp "github.com/pkg/sftp"

	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/core/coretest"
	"github.com/alknet/alknet/core/endpoint"
	alksftp "github.com/alknet/alknet/sftp"
)

// failSafe bounds every blocking wait so that a bug fails a test instead of hanging
// it; it never synchronises anything.
const failSafe = 10 * time.Second

func testCtx(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), failSafe)
	t.Cleanup(cancel)
	return ctx
}

// node is an endpoint on 127.0.0.1 serving an sftp server.
type node struct {
	srv  *alksftp.Server
	ep   *coretest.Server
	logs *coretest.LogBuffer
}

// startNode serves cfg (its logger replaced by a buffer) for peers.
func startNode(t testing.TB, cfg alksftp.Config, peers ...core.PeerEntry) *node {
	t.Helper()
	logs := coretest.NewLogBuffer()
	cfg.Logger = logs.Logger()
	srv, err := alksftp.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	reg := core.NewRegistry()
	if err := reg.Register(srv); err != nil {
		t.Fatal(err)
	}
	dc := core.DefaultDynamicConfig()
	dc.Auth.Peers = peers
	ep := coretest.NewServer(t, reg, coretest.WithConfig(dc))
	return &node{srv: srv, ep: ep, logs: logs}
}

// dial connects id to n over network; the client is closed at the end of the test.
func (n *node) dial(t testing.TB, id *coretest.Identity, network endpoint.Network) *pkgsftp.Client {
	t.Helper()
	c, err := alksftp.Dial(testCtx(t), n.ep.Addr, n.ep.DialOptions(id, network))
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// exportDir makes a temporary export directory holding files (name → content).
func exportDir(t testing.TB, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// wantStatus fails unless err is an SFTP status with code (pkg/sftp's fxerr values).
func wantStatus(t testing.TB, what string, err error, code uint32) {
	t.Helper()
	switch {
	case code == fxNoSuchFile && errors.Is(err, fs.ErrNotExist), code == fxPermission && errors.Is(err, fs.ErrPermission):
		return // pkg/sftp's client maps these two onto the os errors
	}
	var se *pkgsftp.StatusError
	if !errors.As(err, &se) {
		t.Fatalf("%s: got %v, want SFTP status %d", what, err, code)
	}
	if se.Code != code {
		t.Fatalf("%s: got status %d (%v), want %d", what, se.Code, err, code)
	}
}

// SFTP status codes.
const (
	fxEOF         = 1
	fxNoSuchFile  = 2
	fxPermission  = 3
	fxFailure     = 4
	fxBadMessage  = 5
	fxUnsupported = 8
)

// waitLog waits until the log holds a line with all of subs.
func waitLog(t testing.TB, logs *coretest.LogBuffer, subs ...string) string {
	t.Helper()
	deadline := time.Now().Add(failSafe)
	for time.Now().Before(deadline) {
		if l := logs.Lines(subs...); len(l) > 0 {
			return l[0]
		}
		time.Sleep(5 * time.Millisecond) // polling a condition, bounded by failSafe
	}
	t.Fatalf("no log line with %q in:\n%s", subs, logs.String())
	return ""
}

func readAll(t testing.TB, c *pkgsftp.Client, p string) string {
	t.Helper()
	f, err := c.Open(p)
	if err != nil {
		t.Fatalf("open %s: %v", p, err)
	}
	defer f.Close()
	var b strings.Builder
	if _, err := f.WriteTo(&b); err != nil {
		t.Fatalf("read %s: %v", p, err)
	}
	return b.String()
}

// addPeer adds p to the store's peers.
func addPeer(t testing.TB, store *core.DynamicStore, p core.PeerEntry) {
	t.Helper()
	cfg := *store.Load()
	cfg.Auth.Peers = append(append([]core.PeerEntry(nil), cfg.Auth.Peers...), p)
	if err := store.Reload(cfg); err != nil {
		t.Fatal(err)
	}
}

// wantDenied fails unless err is permission denied or no such file.
func wantDenied(t testing.TB, what string, err error) {
	t.Helper()
	if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, fs.ErrPermission) {
		t.Fatalf("%s: %v, want permission denied or no such file", what, err)
	}
}
