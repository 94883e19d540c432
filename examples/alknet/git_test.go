package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// gitNode serves [git] (root "repos" beside the config file, engine as given) to the
// peers alice (write) and bob (read), with org/repo.git created by `alknet git init`.
func gitNode(t *testing.T, engine string) (n *node, aliceState, bobState, config string) {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("the stock git client is not installed (apt-get install git)")
	}
	aliceState, alice := newClientState(t)
	bobState, bob := newClientState(t)
	config = filepath.Join(t.TempDir(), "alknet.toml")
	writeFile(t, config, "[git]\nroot = \"repos\"\nengine = \""+engine+"\"\n"+
		peerTOML("alice", alice, "git:write:org/*")+peerTOML("bob", bob, "git:read:org/*"))
	r := mustRun(t, "", "git", "init", "--config", config, "org/repo")
	if want := filepath.Join(filepath.Dir(config), "repos", "org", "repo.git"); strings.TrimSpace(r.stdout) != want {
		t.Fatalf("git init printed %q, want %q", r.stdout, want)
	}
	return startServe(t, "--config", config), aliceState, bobState, config
}

// stockGit runs git in dir with the test binary as the alknet command.
func stockGit(t *testing.T, dir string, env []string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*waitTimeout)
	defer cancel()
	full := append([]string{"-c", "protocol.ext.allow=always", "-c", "user.name=T", "-c", "user.email=t@example.com",
		"-c", "init.defaultBranch=main"}, args...)
	cmd := exec.CommandContext(ctx, "git", full...)
	cmd.Dir = dir
	// A race-enabled test binary run as the ext:: helper would sleep a second at exit
	// (the race runtime's atexit_sleep_ms), which git waits for on every operation.
	gorace := strings.TrimSpace(os.Getenv("GORACE") + " atexit_sleep_ms=0")
	cmd.Env = append(append(os.Environ(), runAsCommandEnv+"=1", "HOME="+t.TempDir(), "GIT_CONFIG_NOSYSTEM=1", "GIT_TERMINAL_PROMPT=0", "GORACE="+gorace), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// gitWays returns the two remote URLs of org/repo for the client state (ext:: over
// alknet pipe, and ssh:// with alknet pipe as ProxyCommand) and their environment.
func gitWays(t *testing.T, n *node, state string) map[string][2]string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if strings.ContainsAny(exe+state, " '\"\\%") {
		t.Skipf("ext:: splits its command on blanks; the paths %q, %q contain one", exe, state)
	}
	o := newOpenSSH(t, n)
	quoted := []string{"ssh"}
	for _, a := range o.args(t, filepath.Join(state, keyFileName)) {
		quoted = append(quoted, shellQuote(a))
	}
	return map[string][2]string{
		"alpn": {"ext::" + exe + " pipe --state " + state + " --alpn alknet/git --pin " + n.fp + " " + n.quic + " %G/org/repo.git", ""},
		"ssh":  {"ssh://git@127.0.0.1/org/repo.git", "GIT_SSH_COMMAND=" + strings.Join(quoted, " ")},
	}
}

func TestGitStockClient(t *testing.T) {
	for _, engine := range []string{"binary", "go-git"} {
		t.Run(engine, func(t *testing.T) {
			n, alice, bob, config := gitNode(t, engine)
			attacks := pathAttacks(t, filepath.Join(filepath.Dir(config), "repos"))
			for way, u := range gitWays(t, n, alice) {
				bobURL := gitWays(t, n, bob)[way]
				t.Run(way, func(t *testing.T) {
					work := t.TempDir()
					run := func(dir string, env string, args ...string) string {
						t.Helper()
						var e []string
						if env != "" {
							e = []string{env}
						}
						out, err := stockGit(t, dir, e, args...)
						if err != nil {
							t.Fatalf("git %s: %v\n%s\nnode:\n%s", strings.Join(args, " "), err, out, n.stderr)
						}
						return out
					}
					run(work, "", "init", "-q", "-b", "main", "w")
					w := filepath.Join(work, "w")
					writeFile(t, filepath.Join(w, "f.txt"), way+"\n")
					run(w, "", "add", "f.txt")
					run(w, "", "commit", "-q", "-m", "one")
					run(w, u[1], "push", u[0], "HEAD:refs/heads/"+way)
					run(work, bobURL[1], "clone", "-q", "-b", way, bobURL[0], "c")
					if b, _ := os.ReadFile(filepath.Join(work, "c", "f.txt")); string(b) != way+"\n" {
						t.Fatalf("cloned f.txt = %q", b)
					}
					if out := run(work, bobURL[1], "ls-remote", bobURL[0]); !strings.Contains(out, "refs/heads/"+way) {
						t.Fatalf("ls-remote:\n%s", out)
					}
					// bob reads but cannot push; deletion is refused by rule.
					if out, err := stockGit(t, filepath.Join(work, "c"), []string{bobURL[1]}, "push", bobURL[0], "HEAD:refs/heads/bob"); err == nil {
						t.Fatalf("read-only push succeeded:\n%s", out)
					}
					out, err := stockGit(t, w, []string{u[1]}, "push", u[0], ":refs/heads/"+way)
					if err == nil || !strings.Contains(out, "rule: no ref deletion") {
						t.Fatalf("deletion: %v\n%s", err, out)
					}
					if way == "ssh" && engine == "binary" {
						run(work, bobURL[1], "archive", "--remote", bobURL[0], "-o", filepath.Join(work, "a.tar"), way)
						// OpenSSH passes GIT_PROTOCOL on (SendEnv): protocol v2.
						out, err := stockGit(t, work, []string{bobURL[1], "GIT_TRACE_PACKET=1"}, "-c", "protocol.version=2", "ls-remote", bobURL[0])
						if err != nil || !strings.Contains(out, "< version 2") {
							t.Fatalf("ls-remote over ssh with protocol v2: %v\n%s", err, out)
						}
					}
					s := &gitSession{n: n, engine: engine, way: way, alice: u, bob: bobURL, w: w, c: filepath.Join(work, "c"), attacks: attacks}
					s.run(t)
				})
			}
		})
	}
}

func TestGitInitCommand(t *testing.T) {
	config := filepath.Join(t.TempDir(), "alknet.toml")
	writeFile(t, config, "[git]\nroot = \"repos\"\n")
	mustRun(t, "", "git", "init", "--config", config, "a")
	r := runCmd(t, nil, "", "git", "init", "--config", config, "a")
	if exitCode(r.err) != exitFailure {
		t.Fatalf("existing repo: %v, want exit %d", r.err, exitFailure)
	}
	r = runCmd(t, nil, "", "git", "init", "--config", config, "../x")
	if exitCode(r.err) != exitUsage {
		t.Fatalf("bad name: %v, want exit %d", r.err, exitUsage)
	}
}

// gitSession is the state one way in (alpn or ssh) of TestGitStockClient leaves for
// the cases below: alice's work tree w (main, pushed as refs/heads/<way>) and bob's
// clone c of that branch. Each way works on its own refs, so that the two share one
// node.
type gitSession struct {
	n          *node
	engine     string
	way        string
	alice, bob [2]string // URL of org/repo and the environment of that way
	w, c       string
	attacks    map[string]string
}

// run runs the cases in order; each leaves w and c as it found them.
func (s *gitSession) run(t *testing.T) {
	t.Run("fetch-pull", s.fetchPull)
	t.Run("push-rules", s.pushRules)
	t.Run("commit-tips", s.commitTips)
	t.Run("shallow", s.shallow)
	t.Run("protocol-v2", s.protocolV2)
	t.Run("path-attacks", s.pathAttacks)
}

// git runs git in dir with the environment of the way (env is [2]string's second).
func (s *gitSession) git(t *testing.T, dir, env string, args ...string) (string, error) {
	t.Helper()
	var e []string
	if env != "" {
		e = append(e, env)
	}
	return stockGit(t, dir, e, args...)
}

func (s *gitSession) ok(t *testing.T, dir, env string, args ...string) string {
	t.Helper()
	out, err := s.git(t, dir, env, args...)
	if err != nil {
		t.Fatalf("git %s: %v\n%s\nnode:\n%s", strings.Join(args, " "), err, out, s.n.stderr)
	}
	return out
}

// fail runs git expecting a failure whose output holds want.
func (s *gitSession) fail(t *testing.T, want, dir, env string, args ...string) string {
	t.Helper()
	out, err := s.git(t, dir, env, args...)
	if err == nil || !strings.Contains(out, want) {
		t.Fatalf("git %s: %v, want a failure with %q:\n%s", strings.Join(args, " "), err, want, out)
	}
	return out
}

// remoteRef returns the id of ref on the server as bob sees it ("" when missing).
func (s *gitSession) remoteRef(t *testing.T, ref string) string {
	t.Helper()
	for _, l := range strings.Split(s.ok(t, s.c, s.bob[1], "ls-remote", s.bob[0]), "\n") {
		if id, name, ok := strings.Cut(l, "\t"); ok && name == ref {
			return id
		}
	}
	return ""
}

// fastCommits adds count commits on top of branch (each rewriting f.txt) in the
// repository dir with one git fast-import, and returns the new tip.
func (s *gitSession) fastCommits(t *testing.T, dir, branch, prefix string, count int) string {
	t.Helper()
	parent := strings.TrimSpace(s.ok(t, dir, "", "rev-parse", "--verify", "HEAD"))
	var b strings.Builder
	for i := range count {
		msg, content := fmt.Sprintf("%s %d\n", prefix, i), fmt.Sprintf("%s%d\n", prefix, i)
		fmt.Fprintf(&b, "commit refs/heads/%s\ncommitter T <t@example.com> %d +0000\ndata %d\n%s", branch, 1700000000+i, len(msg), msg)
		if i == 0 {
			fmt.Fprintf(&b, "from %s\n", parent)
		}
		fmt.Fprintf(&b, "M 644 inline f.txt\ndata %d\n%s\n", len(content), content)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*waitTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "git", "fast-import", "--quiet")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "HOME="+t.TempDir())
	cmd.Stdin = strings.NewReader(b.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git fast-import: %v\n%s", err, out)
	}
	return strings.TrimSpace(s.ok(t, dir, "", "rev-parse", "--verify", "refs/heads/"+branch))
}

// fetchPull: alice pushes 50 new commits; bob, who has 50 commits of his own the
// server never saw (so that his haves take several rounds), fetches them and pulls
// with --ff-only.
func (s *gitSession) fetchPull(t *testing.T) {
	tip := s.fastCommits(t, s.w, "main", "alice-"+s.way, 50)
	s.ok(t, s.w, "", "reset", "-q", "--hard")
	s.ok(t, s.w, s.alice[1], "push", "-q", s.alice[0], "HEAD:refs/heads/"+s.way)
	s.fastCommits(t, s.c, "bob-local", "bob-"+s.way, 50)
	s.ok(t, s.c, s.bob[1], "fetch", "-q", "origin")
	if got := strings.TrimSpace(s.ok(t, s.c, "", "rev-parse", "origin/"+s.way)); got != tip {
		t.Fatalf("fetched origin/%s = %s, want %s", s.way, got, tip)
	}
	s.ok(t, s.c, s.bob[1], "pull", "-q", "--ff-only", "origin", s.way)
	if got := strings.TrimSpace(s.ok(t, s.c, "", "rev-parse", "HEAD")); got != tip {
		t.Fatalf("pulled HEAD = %s, want %s", got, tip)
	}
	if b, _ := os.ReadFile(filepath.Join(s.c, "f.txt")); string(b) != "alice-"+s.way+"49\n" {
		t.Fatalf("pulled f.txt = %q", b)
	}
}

// pushRules: a forced non-fast-forward push and a forced tag overwrite are refused
// with the rule named, and neither ref moves.
func (s *gitSession) pushRules(t *testing.T) {
	ref := "refs/heads/" + s.way
	tip := strings.TrimSpace(s.ok(t, s.w, "", "rev-parse", "HEAD"))
	if s.remoteRef(t, ref) != tip {
		t.Fatalf("%s is not at alice's %s", ref, tip)
	}
	s.ok(t, s.w, "", "reset", "-q", "--hard", "HEAD~1")
	writeFile(t, filepath.Join(s.w, "f.txt"), "diverged\n")
	s.ok(t, s.w, "", "commit", "-q", "-am", "diverged")
	s.fail(t, "non-fast-forward", s.w, s.alice[1], "push", "--force", s.alice[0], "HEAD:"+ref)
	s.ok(t, s.w, "", "reset", "-q", "--hard", tip)
	if got := s.remoteRef(t, ref); got != tip {
		t.Fatalf("after the refused push %s = %s, want %s", ref, got, tip)
	}

	tag := "t-" + s.way
	s.ok(t, s.w, "", "tag", tag, "HEAD~1")
	s.ok(t, s.w, s.alice[1], "push", "-q", s.alice[0], "refs/tags/"+tag)
	old := s.remoteRef(t, "refs/tags/"+tag)
	s.ok(t, s.w, "", "tag", "-f", tag, "HEAD")
	s.fail(t, "rule: no tag overwrite", s.w, s.alice[1], "push", "--force", s.alice[0], "refs/tags/"+tag)
	if got := s.remoteRef(t, "refs/tags/"+tag); old == "" || got != old {
		t.Fatalf("after the refused overwrite refs/tags/%s = %s, want %s", tag, got, old)
	}
}

// commitTips: a tree, a blob (new to the server, so it arrives in the pack) and an
// annotated tag object pushed as branch tips are refused, and no such branch exists
// afterwards.
func (s *gitSession) commitTips(t *testing.T) {
	blobFile := filepath.Join(t.TempDir(), "blob")
	writeFile(t, blobFile, "a blob of "+s.way+" "+s.engine+"\n")
	blob := strings.TrimSpace(s.ok(t, s.w, "", "hash-object", "-w", blobFile))
	atag := "a-" + s.way
	s.ok(t, s.w, "", "tag", "-a", "-m", "annotated", atag)
	want := "branch tips must be commits"
	if s.engine == "binary" {
		want = "non-commit object" // git's files backend refuses the ref update itself
	}
	for name, src := range map[string]string{"tree": "HEAD^{tree}", "blob": blob, "tag": "refs/tags/" + atag} {
		ref := "refs/heads/" + name + "-" + s.way
		s.fail(t, want, s.w, s.alice[1], "push", s.alice[0], src+":"+ref)
		if got := s.remoteRef(t, ref); got != "" {
			t.Fatalf("%s: %s exists on the server after the refused push (%s)", name, ref, got)
		}
	}
}

// shallow: --depth 1 clones one commit with the binary engine; the go-git engine,
// which advertises no shallow capability, gives git's clear error.
func (s *gitSession) shallow(t *testing.T) {
	dir := t.TempDir()
	args := []string{"clone", "-q", "--depth", "1", "-b", s.way, s.bob[0], "shallow"}
	if s.engine == "go-git" {
		s.fail(t, "does not support shallow", dir, s.bob[1], args...)
		return
	}
	s.ok(t, dir, s.bob[1], args...)
	if out := s.ok(t, filepath.Join(dir, "shallow"), "", "rev-list", "--count", "HEAD"); strings.TrimSpace(out) != "1" {
		t.Fatalf("shallow clone has %s commits", out)
	}
}

// protocolV2: ls-remote asking for protocol v2 lists the refs; over ssh the binary
// engine speaks v2, the go-git engine answers in v0 (a fallback the protocol allows).
func (s *gitSession) protocolV2(t *testing.T) {
	env := s.bob[1]
	e := []string{"GIT_TRACE_PACKET=1"}
	if env != "" {
		e = append(e, env)
	}
	out, err := stockGit(t, t.TempDir(), e, "-c", "protocol.version=2", "ls-remote", s.bob[0])
	if err != nil || !strings.Contains(out, "refs/heads/"+s.way) {
		t.Fatalf("ls-remote with protocol v2: %v\n%s", err, out)
	}
	if s.way == "ssh" && strings.Contains(out, "< version 2") != (s.engine == "binary") {
		t.Fatalf("ls-remote over ssh with protocol v2 on the %s engine:\n%s", s.engine, out)
	}
}

// pathAttacks: every path that leaves the root, or reaches a repository outside it
// through a symbolic link, is answered exactly like a missing repository.
func (s *gitSession) pathAttacks(t *testing.T) {
	missing := s.lsRemote(t, "org/missing.git")
	if !strings.Contains(missing, "repository not found") {
		t.Fatalf("missing repository:\n%s", missing)
	}
	for name, p := range s.attacks {
		if got := s.lsRemote(t, p); got != missing {
			t.Errorf("%s (%s): answered\n%s\nwant, as for a missing repository:\n%s", name, p, got, missing)
		}
	}
}

// lsRemote runs bob's ls-remote of the repository path p, which must fail, and
// returns its output.
func (s *gitSession) lsRemote(t *testing.T, p string) string {
	t.Helper()
	var url string
	switch s.way {
	case "alpn":
		// ext:: splits on blanks and expands %: the path goes after %G, % doubled.
		url = strings.TrimSuffix(s.bob[0], "/org/repo.git") + strings.ReplaceAll(p, "%", "%%")
	default:
		url = "git@127.0.0.1:" + p // scp-like: the path reaches the server as written
	}
	out, err := s.git(t, t.TempDir(), s.bob[1], "ls-remote", url)
	if err == nil {
		t.Fatalf("ls-remote %s succeeded:\n%s", url, out)
	}
	// Whether alknet pipe also reports the server's end of the stream while git was
	// still sending depends on timing, not on the path: its lines are left out.
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		if !strings.HasPrefix(l, "alknet: pipe: ") {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "\n")
}

// pathAttacks prepares, around the node's repository root, repositories an attack
// could reach if the resolver let it (a repo beside the root, one far outside, and a
// symbolic link in the root to the latter), and returns the attack paths.
func pathAttacks(t *testing.T, root string) map[string]string {
	t.Helper()
	outside := t.TempDir()
	for _, d := range []string{filepath.Join(filepath.Dir(root), "x.git"), filepath.Join(outside, "evil.git")} {
		if out, err := stockGit(t, t.TempDir(), nil, "init", "-q", "--bare", d); err != nil {
			t.Fatalf("git init --bare %s: %v\n%s", d, err, out)
		}
	}
	if err := os.Symlink(filepath.Join(outside, "evil.git"), filepath.Join(root, "org", "link.git")); err != nil {
		t.Fatal(err)
	}
	return map[string]string{
		"dotdot":     "../x.git",
		"org-dotdot": "org/../../x.git",
		"pct":        "%2e%2e/x.git",
		"org-pct":    "org/%2e%2e/%2e%2e/x.git",
		"symlink":    "org/link.git",
		"absolute":   filepath.Join(outside, "evil.git"),
	}
}
