package git_test

import (
	"bufio"
	"context"
	"encoding/hex"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/core/coretest"
	alkgit "github.com/alknet/alknet/git"
)

// failSafe bounds every blocking wait so that a bug fails a test instead of hanging
// it; it never synchronises anything.
const failSafe = 60 * time.Second

func requireGit(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("the stock git client is not installed (apt-get install git)")
	}
}

// node is an endpoint on 127.0.0.1 serving a git server over a temporary root, with
// four client identities.
type node struct {
	srv                               *alkgit.Server
	ep                                *coretest.Server
	root                              string
	logs                              *coretest.LogBuffer
	writer, reader, noscope, stranger *coretest.Identity
	sshAddr                           string // the test's stand-in for SSH exec
}

func startNode(t *testing.T, cfg alkgit.Config) *node {
	t.Helper()
	requireGit(t)
	n := &node{root: t.TempDir(), logs: coretest.NewLogBuffer()}
	n.writer, n.reader, n.noscope, n.stranger = coretest.NewIdentity(t), coretest.NewIdentity(t), coretest.NewIdentity(t), coretest.NewIdentity(t)
	cfg.Root = n.root
	cfg.Logger = n.logs.Logger()
	srv, err := alkgit.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	n.srv = srv
	reg := core.NewRegistry()
	if err := reg.Register(srv); err != nil {
		t.Fatal(err)
	}
	dc := core.DefaultDynamicConfig()
	dc.Auth.Peers = []core.PeerEntry{
		n.writer.Peer("writer", "git:write:*", "git:write:org/*"),
		n.reader.Peer("reader", "git:read:*", "git:read:org/*"),
		n.noscope.Peer("noscope", "sftp:read:*"),
	}
	n.ep = coretest.NewServer(t, reg, coretest.WithConfig(dc))
	n.sshAddr = n.startExecListener(t)
	return n
}

// startExecListener stands in for the ssh module's exec channel: a TCP listener on
// 127.0.0.1 whose connections send an identity id and a command line, then run
// StartExec with the connection as stdin and stdout; stderr and the exit status are
// written back in a trailer the helper prints.
func (n *node) startExecListener(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); _ = ln.Close(); wg.Wait() })
	ids := map[string]core.Identity{
		"writer":  {ID: "writer", Scopes: []string{"git:write:*", "git:write:org/*"}},
		"reader":  {ID: "reader", Scopes: []string{"git:read:*", "git:read:org/*"}},
		"noscope": {ID: "noscope"},
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				br := bufio.NewReader(c)
				who, _ := br.ReadString('\n')
				cmd, _ := br.ReadString('\n')
				var stderr strings.Builder
				wait, _ := n.srv.StartExec(ctx, ids[strings.TrimSpace(who)], strings.TrimSuffix(cmd, "\n"), br, c, &stderr)
				status := wait()
				n.logs.Write([]byte("exec status=" + string(rune('0'+status)) + " stderr=" + stderr.String() + "\n"))
				_ = c.(*net.TCPConn).CloseWrite()
			}()
		}
	}()
	return ln.Addr().String()
}

// gitRun runs the stock git client in dir as who ("writer", "reader", "noscope",
// "stranger" or "" for no certificate) and returns its combined output.
func (n *node) git(t *testing.T, who, dir string, args ...string) (string, error) {
	t.Helper()
	return n.gitEnv(t, nil, who, dir, args...)
}

// gitEnv is git with extra environment variables.
func (n *node) gitEnv(t *testing.T, env []string, who, dir string, args ...string) (string, error) {
	t.Helper()
	home := filepath.Join(t.TempDir(), "home")
	_ = os.MkdirAll(home, 0o755)
	ctx, cancel := context.WithTimeout(context.Background(), failSafe)
	defer cancel()
	full := append([]string{"-c", "protocol.ext.allow=always", "-c", "user.name=T", "-c", "user.email=t@example.com", "-c", "init.defaultBranch=main", "-c", "advice.detachedHead=false"}, args...)
	cmd := exec.CommandContext(ctx, "git", full...)
	cmd.Dir = dir
	key := ""
	switch who {
	case "writer":
		key = hex.EncodeToString(n.writer.Key.Seed())
	case "reader":
		key = hex.EncodeToString(n.reader.Key.Seed())
	case "noscope":
		key = hex.EncodeToString(n.noscope.Key.Seed())
	case "stranger":
		key = hex.EncodeToString(n.stranger.Key.Seed())
	}
	cmd.Env = append(os.Environ(), "HOME="+home, "GIT_CONFIG_NOSYSTEM=1", "GIT_TERMINAL_PROMPT=0",
		pinEnv+"="+n.ep.Identity.Fingerprint, keyEnv+"="+key, "GITTEST_WHO="+who, "GITTEST_EXEC_ADDR="+n.sshAddr,
		// The ext:: helper is this race-enabled test binary: without this, its exit
		// waits a second for the race runtime on every git operation.
		"GORACE=atexit_sleep_ms=0")
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// url is the ext:: URL of repository path over alknet/git.
func (n *node) url(t *testing.T, path string) string {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return "ext::env " + pipeEnv + "=" + n.ep.Addr + " " + exe + " %G" + strings.ReplaceAll(path, "%", "%%")
}

// execURL is the ext:: URL of repository path over the SSH exec stand-in.
func (n *node) execURL(t *testing.T, path string) string {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return "ext::env " + execEnv + "=1 " + exe + " %S " + strings.ReplaceAll(path, "%", "%%")
}

func mustGit(t *testing.T, n *node, who, dir string, args ...string) string {
	t.Helper()
	out, err := n.git(t, who, dir, args...)
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func wantFail(t *testing.T, n *node, want, who, dir string, args ...string) string {
	t.Helper()
	out, err := n.git(t, who, dir, args...)
	if err == nil {
		t.Fatalf("git %s succeeded, want failure with %q\n%s", strings.Join(args, " "), want, out)
	}
	if !strings.Contains(out, want) {
		t.Fatalf("git %s: output lacks %q:\n%s", strings.Join(args, " "), want, out)
	}
	return out
}

// waitLog waits until logs hold a line with all of subs.
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
