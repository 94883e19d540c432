package main

import (
	"context"
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
	cmd.Env = append(append(os.Environ(), runAsCommandEnv+"=1", "HOME="+t.TempDir(), "GIT_CONFIG_NOSYSTEM=1", "GIT_TERMINAL_PROMPT=0"), env...)
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
			n, alice, bob, _ := gitNode(t, engine)
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
