package git_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/core/endpoint"
	alkgit "github.com/alknet/alknet/git"
)

// engines are the engines every client test runs with.
var engines = []struct {
	name string
	new  func() alkgit.Engine
}{
	{"binary", func() alkgit.Engine { e, _ := alkgit.NewBinaryEngine(""); return e }},
	{"go-git", func() alkgit.Engine { return alkgit.NewGoGitEngine() }},
}

// ways are the two ways in, by URL.
var ways = []struct {
	name string
	url  func(n *node, t *testing.T, path string) string
}{
	{"alpn", func(n *node, t *testing.T, p string) string { return n.url(t, p) }},
	{"exec", func(n *node, t *testing.T, p string) string { return n.execURL(t, p) }},
}

// seed creates ROOT/org/repo.git and pushes one commit to main as the writer.
func seed(t *testing.T, n *node, url string) string {
	t.Helper()
	if _, err := alkgit.Init(n.root, "org/repo"); err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	mustGit(t, n, "writer", work, "init", "-q", "-b", "main", "w")
	w := filepath.Join(work, "w")
	commit(t, n, w, "first")
	mustGit(t, n, "writer", w, "push", url, "main")
	mustGit(t, n, "writer", w, "tag", "v1")
	mustGit(t, n, "writer", w, "push", url, "v1")
	return w
}

func commit(t *testing.T, n *node, dir, msg string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "f.txt"), []byte(msg+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	mustGit(t, n, "writer", dir, "add", "f.txt")
	mustGit(t, n, "writer", dir, "commit", "-q", "-m", msg)
}

func TestCloneFetchPullPush(t *testing.T) {
	for _, eng := range engines {
		for _, w := range ways {
			t.Run(eng.name+"/"+w.name, func(t *testing.T) {
				n := startNode(t, alkgit.Config{Engine: eng.new()})
				url := w.url(n, t, "/org/repo.git")
				work := seed(t, n, url)
				tmp := t.TempDir()
				mustGit(t, n, "reader", tmp, "clone", "-q", url, "c")
				clone := filepath.Join(tmp, "c")
				if b, err := os.ReadFile(filepath.Join(clone, "f.txt")); err != nil || string(b) != "first\n" {
					t.Fatalf("cloned f.txt = %q, %v", b, err)
				}
				for i := range 50 {
					commit(t, n, work, fmt.Sprintf("c%d", i))
				}
				mustGit(t, n, "writer", work, "push", url, "main")
				mustGit(t, n, "reader", clone, "fetch", "-q", url, "main")
				mustGit(t, n, "reader", clone, "pull", "-q", "--ff-only", url, "main")
				if b, _ := os.ReadFile(filepath.Join(clone, "f.txt")); string(b) != "c49\n" {
					t.Fatalf("pulled f.txt = %q", b)
				}
				out := mustGit(t, n, "reader", tmp, "ls-remote", url)
				if !strings.Contains(out, "refs/heads/main") || !strings.Contains(out, "refs/tags/v1") {
					t.Fatalf("ls-remote:\n%s", out)
				}
				if eng.name == "go-git" {
					out, err := n.git(t, "reader", tmp, "archive", "--remote", url, "-o", filepath.Join(tmp, "a.tar"), "main")
					if err == nil {
						t.Fatalf("go-git archive succeeded:\n%s", out)
					}
					if w.name == "alpn" && !strings.Contains(out, "not supported by the go-git engine") {
						t.Fatalf("go-git archive: %s", out)
					}
					wantFail(t, n, "does not support shallow", "reader", tmp, "clone", "-q", "--depth", "1", url, "shallow")
					return
				}
				mustGit(t, n, "reader", tmp, "clone", "-q", "--depth", "1", url, "shallow")
				mustGit(t, n, "reader", tmp, "archive", "--remote", url, "-o", filepath.Join(tmp, "a.tar"), "main")
				if fi, err := os.Stat(filepath.Join(tmp, "a.tar")); err != nil || fi.Size() == 0 {
					t.Fatalf("archive: %v", err)
				}
				if out := mustGit(t, n, "reader", filepath.Join(tmp, "shallow"), "rev-list", "--count", "HEAD"); strings.TrimSpace(out) != "1" {
					t.Fatalf("shallow clone has %s commits", out)
				}
			})
		}
	}
}

// TestProtocolV2 asks for protocol version 2 in the request line, as git daemon
// clients do, and reads the v2 capability advertisement. (The stock client's ext::
// transport sends no version parameter, so git falls back to v0 there.)
func TestProtocolV2(t *testing.T) {
	for _, eng := range engines {
		t.Run(eng.name, func(t *testing.T) { testProtocolV2(t, eng.new(), eng.name == "binary") })
	}
}

func testProtocolV2(t *testing.T, engine alkgit.Engine, v2 bool) {
	n := startNode(t, alkgit.Config{Engine: engine})
	seed(t, n, n.url(t, "org/repo"))
	conn := n.ep.Dial(t, alkgit.ALPN, n.reader, endpoint.NetworkQUIC)
	ctx, cancel := context.WithTimeout(context.Background(), failSafe)
	defer cancel()
	st, err := conn.OpenBi(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	req := "git-upload-pack /org/repo.git\x00host=example\x00\x00version=2\x00"
	if _, err := fmt.Fprintf(st, "%04x%s", len(req)+4, req); err != nil {
		t.Fatal(err)
	}
	var hdr [4]byte
	if _, err := io.ReadFull(st, hdr[:]); err != nil {
		t.Fatal(err)
	}
	line := make([]byte, 10)
	if _, err := io.ReadFull(st, line); err != nil || (string(line) == "version 2\n") != v2 {
		t.Fatalf("first line %q %q, %v; want version 2: %t", hdr, line, err, v2)
	}
	_, _ = st.Write([]byte("0000"))
	_ = st.CloseWrite()
	_, _ = io.Copy(io.Discard, st)
}

func TestPushRules(t *testing.T) {
	for _, eng := range engines {
		for _, w := range ways {
			t.Run(eng.name+"/"+w.name, func(t *testing.T) {
				n := startNode(t, alkgit.Config{Engine: eng.new()})
				url := w.url(n, t, "org/repo")
				work := seed(t, n, url)
				commit(t, n, work, "second")
				mustGit(t, n, "writer", work, "push", url, "main")
				mustGit(t, n, "writer", work, "reset", "-q", "--hard", "HEAD~1")
				commit(t, n, work, "diverged")
				wantFail(t, n, "non-fast-forward", "writer", work, "push", "--force", url, "main")
				wantFail(t, n, "rule: no ref deletion", "writer", work, "push", url, ":main")
				mustGit(t, n, "writer", work, "tag", "-f", "v1")
				wantFail(t, n, "rule: no tag overwrite", "writer", work, "push", "--force", url, "v1")
				mustGit(t, n, "writer", work, "push", url, "HEAD:refs/heads/side")
			})
		}
	}
}

func TestAccess(t *testing.T) {
	for _, eng := range engines {
		for _, w := range ways {
			t.Run(eng.name+"/"+w.name, func(t *testing.T) {
				n := startNode(t, alkgit.Config{Engine: eng.new()})
				url := w.url(n, t, "org/repo.git")
				work := seed(t, n, url)
				mustGit(t, n, "reader", t.TempDir(), "clone", "-q", url, "c")
				commit(t, n, work, "more")
				out, err := n.git(t, "reader", work, "push", url, "main")
				if err == nil {
					t.Fatalf("read-only push succeeded:\n%s", out)
				}
				if w.name == "alpn" && !strings.Contains(out, "read-only") {
					t.Fatalf("read-only push: %s", out)
				}
				// No scope, missing repos and every path attack: the same answer.
				outside := t.TempDir()
				if _, err := alkgit.Init(outside, "evil"); err != nil {
					t.Fatal(err)
				}
				if err := os.Symlink(filepath.Join(outside, "evil.git"), filepath.Join(n.root, "link.git")); err != nil {
					t.Fatal(err)
				}
				cases := map[string]string{
					"noscope":   "org/repo.git",
					"missing":   "org/missing.git",
					"dotdot":    "../x.git",
					"dotdot2":   "org/../../x.git",
					"abs":       filepath.Join(outside, "evil.git"),
					"pct":       "%2e%2e/x.git",
					"symlink":   "link.git",
					"deep":      "a/b/c/d.git",
					"backslash": `org\repo.git`,
				}
				for name, p := range cases {
					who := "reader"
					if name == "noscope" {
						who = "noscope"
					}
					out, err := n.git(t, who, t.TempDir(), "ls-remote", w.url(n, t, p))
					if err == nil {
						t.Errorf("%s: ls-remote %q succeeded:\n%s", name, p, out)
					}
					if w.name == "alpn" && !strings.Contains(out, "remote error: repository not found") {
						t.Errorf("%s: ls-remote %q:\n%s", name, p, out)
					}
				}
				if w.name == "alpn" {
					wantFail(t, n, "unauthenticated", "stranger", t.TempDir(), "ls-remote", url)
					wantFail(t, n, "unauthenticated", "", t.TempDir(), "ls-remote", url)
					waitLog(t, n.ep.Logs, `msg="auth failure"`, "alpn=alknet/git")
				} else if got := len(n.logs.Lines("exec status=1 stderr=fatal: repository not found")); got < len(cases) {
					t.Errorf("%d exec refusals with repository not found, want %d:\n%s", got, len(cases), n.logs.String())
				}
			})
		}
	}
}

func TestPackSizeLimit(t *testing.T) {
	for _, eng := range engines {
		t.Run(eng.name, func(t *testing.T) {
			n := startNode(t, alkgit.Config{Engine: eng.new(), Limits: alkgit.Limits{MaxPackSize: 64 << 10}})
			url := n.url(t, "org/repo")
			work := seed(t, n, url)
			big := make([]byte, 512<<10)
			for i := range big {
				big[i] = byte(i*7919>>3) ^ byte(i>>11)
			}
			if err := os.WriteFile(filepath.Join(work, "big.bin"), big, 0o644); err != nil {
				t.Fatal(err)
			}
			mustGit(t, n, "writer", work, "add", "big.bin")
			mustGit(t, n, "writer", work, "commit", "-q", "-m", "big")
			out, err := n.git(t, "writer", work, "push", url, "main")
			if err == nil {
				t.Fatalf("push over the pack limit succeeded:\n%s", out)
			}
			waitLog(t, n.logs, `msg="git operation"`, "pack too large")
		})
	}
}

// TestExecProtocolV2 passes GIT_PROTOCOL=version=2, as the ssh module's env request
// does, to StartExecEnv and reads the v2 capability advertisement.
func TestExecProtocolV2(t *testing.T) {
	n := startNode(t, alkgit.Config{})
	seed(t, n, n.url(t, "org/repo"))
	id := core.Identity{ID: "reader", Scopes: []string{"git:read:*"}}
	var stdout, stderr strings.Builder
	wait, err := n.srv.StartExecEnv(context.Background(), id, "git-upload-pack '/org/repo.git'", []string{"GIT_PROTOCOL=version=2"},
		strings.NewReader("0000"), &stdout, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	if status := wait(); status != 0 || !strings.HasPrefix(stdout.String(), "000eversion 2\n") {
		t.Fatalf("status %d, stdout %q, stderr %q", status, stdout.String(), stderr.String())
	}
}
