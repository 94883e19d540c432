package ssh_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/ssh"
)

func TestSplitCommand(t *testing.T) {
	cases := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{" \t\n ", nil},
		{"echo", []string{"echo"}},
		{"echo hello", []string{"echo", "hello"}},
		{"  echo \t hello\nworld  ", []string{"echo", "hello", "world"}},
		{`echo hello 'big world'`, []string{"echo", "hello", "big world"}},
		{`echo "big world"`, []string{"echo", "big world"}},
		{`a'b'c"d"e`, []string{"abcde"}},
		{`'it''s'`, []string{"its"}},
		{`''`, []string{""}},
		{`""`, []string{""}},
		{`a '' b "" c`, []string{"a", "", "b", "", "c"}},
		{`'a b'"c d"`, []string{"a bc d"}},
		{`a\ b`, []string{"a b"}},
		{`\'`, []string{"'"}},
		{`\"`, []string{`"`}},
		{`\\`, []string{`\`}},
		{`\a\b`, []string{"ab"}},
		{"a\\\nb", []string{"ab"}},       // backslash-newline joins
		{"a \\\n b", []string{"a", "b"}}, // and is not a word on its own
		{"\\\n", nil},                    // a lone line continuation is no word
		{`'a\b'`, []string{`a\b`}},       // nothing escapes inside single quotes
		{`'a"b'`, []string{`a"b`}},
		{`"a'b"`, []string{`a'b`}},
		{`"a\"b"`, []string{`a"b`}},
		{`"a\\b"`, []string{`a\b`}},
		{`"a\$b"`, []string{`a$b`}},
		{"\"a\\`b\"", []string{"a`b"}},
		{"\"a\\\nb\"", []string{"ab"}},
		{`"a\nb"`, []string{`a\nb`}}, // other backslashes stay inside double quotes
		{`"a\b"`, []string{`a\b`}},
		{`"a b" c`, []string{"a b", "c"}},
		{"\"a\nb\"", []string{"a\nb"}},
		{"'a\tb'", []string{"a\tb"}},
		// Operators and expansions are ordinary characters: no shell runs.
		{`ls; rm -rf /`, []string{"ls;", "rm", "-rf", "/"}},
		{`a;b|c&d<e>f`, []string{"a;b|c&d<e>f"}},
		{`a && b || c`, []string{"a", "&&", "b", "||", "c"}},
		{`echo $HOME ${X} $(id)`, []string{"echo", "$HOME", "${X}", "$(id)"}},
		{"echo `id`", []string{"echo", "`id`"}},
		{`* ? [a] ~ # x`, []string{"*", "?", "[a]", "~", "#", "x"}},
		{`a=b c`, []string{"a=b", "c"}},
		{"héllo wörld", []string{"héllo", "wörld"}},
		{"a\rb", []string{"a\rb"}}, // only space, tab and newline separate
		{"a\vb\fc", []string{"a\vb\fc"}},
		{"a\x00b", []string{"a\x00b"}},
	}
	for _, tc := range cases {
		got, err := ssh.SplitCommand(tc.in)
		if err != nil {
			t.Errorf("SplitCommand(%q): %v", tc.in, err)
			continue
		}
		if !slices.Equal(got, tc.want) || (tc.want == nil) != (len(got) == 0) {
			t.Errorf("SplitCommand(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestSplitCommandErrors(t *testing.T) {
	for _, in := range []string{
		`'`, `"`, `\`,
		`echo 'abc`, `echo "abc`, `echo abc\`,
		`echo "abc\"`, `echo "it's`, `'a'"b`, `a b c \`,
		`"\`, `"a\`,
	} {
		got, err := ssh.SplitCommand(in)
		if !errors.Is(err, ssh.ErrCommandSyntax) {
			t.Errorf("SplitCommand(%q) = %q, %v; want ErrCommandSyntax", in, got, err)
		}
		if got != nil {
			t.Errorf("SplitCommand(%q) returned words %q with its error", in, got)
		}
	}
}

// stExecNode starts a TCP node whose executor is ex, with alice (ssh:exec) and bob
// (no scopes); it returns the node and alice's and bob's clients.
func stExecNode(t *testing.T, ex ssh.Executor) (*stNode, *ssh.Client, *ssh.Client) {
	t.Helper()
	alice, bob := stSigner(t), stSigner(t)
	n := stStartTCP(t, ssh.Config{Identities: stNewIdentities().add(alice, "alice", ssh.ScopeExec).add(bob, "bob"), Exec: ex})
	return n, n.mustDial(t, alice), n.mustDial(t, bob)
}

// TestExecRefused: commands that are not allowed are refused with the session kept
// up.
func TestExecRefused(t *testing.T) {
	ex := &ssh.AllowListExecutor{Allow: []string{"echo", "/bin/echo", "./echo", "st-no-such-program"}}
	n, alice, bob := stExecNode(t, ex)
	for _, cmd := range []string{
		"rm -rf /",
		"sh -c 'echo hi'",
		"/bin/echo hi",       // a path, even one on the allow list
		"./echo hi",          // idem
		"../bin/echo hi",     // idem
		`'/bin/echo' hi`,     // quoting does not hide the slash
		"st-no-such-program", // allowed, not in the search path
		"",                   // empty
		"   ",                // blank
		`echo 'unterminated`, // syntax error
		`echo trailing\`,     // syntax error
		"ECHO hi",            // names are exact
		"echo\x00 hi",        // not the name "echo"
		"echo" + strings.Repeat(" a", ssh.MaxCommandLength/2), // too long
	} {
		r := stRun(t, alice.Client, cmd, nil)
		if r.Err == nil {
			t.Errorf("alice %q ran: %q", cmd[:min(len(cmd), 40)], r.Stdout)
		}
		if stExitStatus(r.Err) != ssh.RefusedExitStatus || !strings.HasPrefix(r.Stderr, "exec refused: ") || strings.Count(r.Stderr, "\n") != 1 {
			t.Errorf("alice %q: %v, stderr %q; want the request refused (exit status 126, one reason line)", cmd[:min(len(cmd), 40)], r.Err, r.Stderr)
		}
	}
	stMustEcho(t, alice.Client)

	// Without the scope nothing runs.
	if r := stRun(t, bob.Client, "echo hi", nil); r.Err == nil {
		t.Errorf("bob (no ssh:exec) ran echo: %q", r.Stdout)
	}
	stMustHaveSession(t, bob.Client)
	refused := n.Logs.records("exec refused")
	if len(refused) == 0 {
		t.Fatal("no exec refused line")
	}
	for _, r := range refused {
		if r.Attr["identity"] != "alice" && r.Attr["identity"] != "bob" {
			t.Errorf("exec refused line without identity: %q", r.Line)
		}
	}
}

// TestExecCommandLength: MaxCommandLength is inclusive.
func TestExecCommandLength(t *testing.T) {
	_, alice, _ := stExecNode(t, &ssh.AllowListExecutor{Allow: []string{"echo"}})
	cmd := "echo " + strings.Repeat("a", ssh.MaxCommandLength-len("echo "))
	r := stRun(t, alice.Client, cmd, nil)
	if r.Err != nil || len(r.Stdout) != ssh.MaxCommandLength-len("echo ")+1 {
		t.Fatalf("command of exactly MaxCommandLength: %d bytes out, %v", len(r.Stdout), r.Err)
	}
	if r := stRun(t, alice.Client, cmd+"a", nil); r.Err == nil {
		t.Fatal("command one byte over MaxCommandLength ran")
	}
	stMustEcho(t, alice.Client)
}

// TestExecNoExecutor: a nil Exec refuses every command.
func TestExecNoExecutor(t *testing.T) {
	_, alice, _ := stExecNode(t, nil)
	if r := stRun(t, alice.Client, "echo hi", nil); r.Err == nil {
		t.Fatal("exec ran without an executor")
	}
	stMustHaveSession(t, alice.Client)
}

// TestExecArguments: the words reach the program as they are, no shell involved.
func TestExecArguments(t *testing.T) {
	_, alice, _ := stExecNode(t, &ssh.AllowListExecutor{Allow: []string{"echo"}})
	for cmd, want := range map[string]string{
		`echo 'a;b' "c d" e\ f`: "a;b c d e f\n",
		`echo $HOME`:            "$HOME\n",
		"echo `id` $(id)":       "`id` $(id)\n",
		`echo a; echo b`:        "a; echo b\n",
		`echo a | cat > /tmp/x`: "a | cat > /tmp/x\n",
		`echo *`:                "*\n",
		`echo "x\"y" 'it'\''s'`: "x\"y it's\n",
		`echo -n no-newline`:    "no-newline",
	} {
		r := stRun(t, alice.Client, cmd, nil)
		if r.Err != nil || r.Stdout != want {
			t.Errorf("%s: %q, %v; want %q", cmd, r.Stdout, r.Err, want)
		}
	}
}

// TestExecEnvironment: the child's environment is exactly Env; by default PATH (the
// search path) and LANG=C.UTF-8, never the server's own environment.
func TestExecEnvironment(t *testing.T) {
	t.Setenv("ST_SERVER_SECRET", "must-not-leak")
	_, alice, _ := stExecNode(t, &ssh.AllowListExecutor{Allow: []string{"env"}})
	r := stRun(t, alice.Client, "env", nil)
	if r.Err != nil {
		t.Fatal(r.Err)
	}
	lines := strings.Split(strings.TrimSuffix(r.Stdout, "\n"), "\n")
	slices.Sort(lines)
	if want := []string{"LANG=C.UTF-8", "PATH=" + ssh.DefaultExecSearchPath}; !slices.Equal(lines, want) {
		t.Fatalf("env = %q, want exactly %q", lines, want)
	}

	_, alice, _ = stExecNode(t, &ssh.AllowListExecutor{Allow: []string{"env"}, Env: []string{"FOO=bar"}})
	if r := stRun(t, alice.Client, "env", nil); r.Err != nil || r.Stdout != "FOO=bar\n" {
		t.Fatalf("env with Env [FOO=bar] = %q, %v", r.Stdout, r.Err)
	}
	_, alice, _ = stExecNode(t, &ssh.AllowListExecutor{Allow: []string{"env"}, Env: []string{}})
	if r := stRun(t, alice.Client, "env", nil); r.Err != nil || r.Stdout != "" {
		t.Fatalf("env with an empty Env = %q, %v", r.Stdout, r.Err)
	}
}

// TestExecExitStatus: exit codes, and 128+n for a signal.
func TestExecExitStatus(t *testing.T) {
	_, alice, _ := stExecNode(t, &ssh.AllowListExecutor{Allow: []string{"true", "false", "sh", "cat"}})
	for cmd, want := range map[string]int{
		"true":                  0,
		"false":                 1,
		"sh -c 'exit 3'":        3,
		"sh -c 'exit 255'":      255,
		`sh -c 'kill -9 $$'`:    128 + 9,
		`sh -c 'kill -TERM $$'`: 128 + 15,
		"cat /st-no-such-file":  1,
	} {
		if got := stExitStatus(stRun(t, alice.Client, cmd, nil).Err); got != want {
			t.Errorf("%s: exit status %d, want %d", cmd, got, want)
		}
	}
	r := stRun(t, alice.Client, "cat /st-no-such-file", nil)
	if r.Stdout != "" || !strings.Contains(r.Stderr, "st-no-such-file") {
		t.Errorf("stderr not routed: stdout %q stderr %q", r.Stdout, r.Stderr)
	}
	r = stRun(t, alice.Client, `sh -c 'echo out; echo err >&2'`, nil)
	if r.Err != nil || r.Stdout != "out\n" || r.Stderr != "err\n" {
		t.Errorf("stdout %q stderr %q err %v", r.Stdout, r.Stderr, r.Err)
	}
}

// TestExecSearchPathAndDir: programs come from SearchPath only (regular executable
// files), the default PATH follows it, and Dir is the working directory ("/" by
// default).
func TestExecSearchPathAndDir(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string, mode os.FileMode) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), mode); err != nil {
			t.Fatal(err)
		}
	}
	write("st-hello", "#!/bin/sh\nprintf '%s|' \"$@\" \"$PATH\" \"$(pwd)\"\n", 0o755)
	write("st-noexec", "#!/bin/sh\necho ran\n", 0o644)
	if err := os.Mkdir(filepath.Join(dir, "st-dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	_, alice, _ := stExecNode(t, &ssh.AllowListExecutor{
		Allow:      []string{"st-hello", "st-noexec", "st-dir", "echo"},
		SearchPath: []string{filepath.Join(dir, "missing"), dir},
		Dir:        work,
	})
	r := stRun(t, alice.Client, `st-hello a 'b c'`, nil)
	want := "a|b c|" + filepath.Join(dir, "missing") + ":" + dir + "|" + work + "|"
	if r.Err != nil || r.Stdout != want {
		t.Fatalf("st-hello: %q, %v; want %q", r.Stdout, r.Err, want)
	}
	for _, cmd := range []string{"st-noexec", "st-dir", "echo hi"} { // echo is not in SearchPath
		if r := stRun(t, alice.Client, cmd, nil); r.Err == nil {
			t.Errorf("%s ran: %q", cmd, r.Stdout)
		}
	}

	_, alice, _ = stExecNode(t, &ssh.AllowListExecutor{Allow: []string{"pwd"}})
	if r := stRun(t, alice.Client, "pwd", nil); r.Err != nil || r.Stdout != "/\n" {
		t.Fatalf("default working directory: %q, %v", r.Stdout, r.Err)
	}
}

// TestExecScope: a custom Scope replaces ssh:exec.
func TestExecScope(t *testing.T) {
	a, b := stSigner(t), stSigner(t)
	n := stStartTCP(t, ssh.Config{
		Identities: stNewIdentities().add(a, "alice", ssh.ScopeExec).add(b, "bob", "ops:run"),
		Exec:       &ssh.AllowListExecutor{Allow: []string{"echo"}, Scope: "ops:run"},
	})
	if r := stRun(t, n.mustDial(t, a).Client, "echo hi", nil); r.Err == nil {
		t.Error("ssh:exec ran under Scope ops:run")
	}
	stMustEcho(t, n.mustDial(t, b).Client)
}

// TestExecSessionCloseKillsCommand: closing the session (or the connection) while a
// command runs ends it; the server then stops cleanly.
func TestExecSessionCloseKillsCommand(t *testing.T) {
	n, alice, _ := stExecNode(t, &ssh.AllowListExecutor{Allow: []string{"sleep", "cat"}})
	sess, err := alice.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	if err := sess.Start("sleep 3600"); err != nil {
		t.Fatal(err)
	}
	_ = sess.Close()

	sess2, err := alice.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	if err := sess2.Start("cat"); err != nil { // stdin never closed
		t.Fatal(err)
	}
	_ = alice.Close()
	n.stop(t) // Serve waits for every connection, hence for both commands to end
}

// stRecordingExec is an Executor that records its requests.
type stRecordingExec struct {
	mu   sync.Mutex
	reqs []ssh.ExecRequest
}

func (e *stRecordingExec) Start(_ context.Context, req ssh.ExecRequest) (func() uint32, error) {
	if req.Command == "refuse" {
		return nil, errors.New("refused by the executor")
	}
	e.mu.Lock()
	e.reqs = append(e.reqs, req)
	e.mu.Unlock()
	return func() uint32 {
		in, _ := io.ReadAll(req.Stdin)
		_, _ = io.WriteString(req.Stdout, "out:"+string(in))
		_, _ = io.WriteString(req.Stderr, "err")
		return 42
	}, nil
}

// TestExecCustomExecutor: the Executor gets the identity, the SSH user, the command
// as sent, and the channel's streams; its status is the exit status.
func TestExecCustomExecutor(t *testing.T) {
	ex := &stRecordingExec{}
	a := stSigner(t)
	n := stStartTCP(t, ssh.Config{Identities: stNewIdentities().add(a, "alice", "s1"), Exec: ex})
	for _, user := range []string{"", "operator"} {
		c, err := n.dial(t, ssh.ClientConfig{Signer: a, User: user})
		if err != nil {
			t.Fatal(err)
		}
		r := stRun(t, c.Client, `do "the thing"`, []byte("input"))
		if stExitStatus(r.Err) != 42 || r.Stdout != "out:input" || r.Stderr != "err" {
			t.Fatalf("custom executor: stdout %q stderr %q err %v", r.Stdout, r.Stderr, r.Err)
		}
		if r := stRun(t, c.Client, "refuse", nil); stExitStatus(r.Err) != ssh.RefusedExitStatus || !strings.HasPrefix(r.Stderr, "exec refused: ") {
			t.Fatalf("refused command: %v, stderr %q", r.Err, r.Stderr)
		}
	}
	ex.mu.Lock()
	defer ex.mu.Unlock()
	if len(ex.reqs) != 2 {
		t.Fatalf("%d requests recorded", len(ex.reqs))
	}
	for i, want := range []string{ssh.DefaultUser, "operator"} {
		req := ex.reqs[i]
		if req.User != want || req.Command != `do "the thing"` || req.Identity.ID != "alice" || !slices.Equal(req.Identity.Scopes, []string{"s1"}) {
			t.Errorf("request %d: user %q command %q identity %+v", i, req.User, req.Command, req.Identity)
		}
	}
	if ssh.DefaultUser != "alknet" {
		t.Errorf("DefaultUser = %q", ssh.DefaultUser)
	}
}

// TestAllowListExecutorStart exercises Start directly: refusals wrap ErrExecDenied.
func TestAllowListExecutorStart(t *testing.T) {
	ex := &ssh.AllowListExecutor{Allow: []string{"echo", "cat"}}
	withScope := core.Identity{ID: "alice", Scopes: []string{ssh.ScopeExec}}
	req := func(id core.Identity, cmd string, out io.Writer) ssh.ExecRequest {
		return ssh.ExecRequest{Identity: id, User: "u", Command: cmd, Stdin: strings.NewReader("in"), Stdout: out, Stderr: io.Discard}
	}
	for _, tc := range []struct {
		id  core.Identity
		cmd string
	}{
		{core.Identity{ID: "bob"}, "echo hi"},
		{withScope, "rm x"},
		{withScope, "/bin/echo x"},
		{withScope, `echo "x`},
		{withScope, ""},
		{withScope, strings.Repeat("e", ssh.MaxCommandLength+1)},
	} {
		wait, err := ex.Start(context.Background(), req(tc.id, tc.cmd, io.Discard))
		if !errors.Is(err, ssh.ErrExecDenied) || wait != nil {
			t.Errorf("%q as %s: %v, want ErrExecDenied", tc.cmd[:min(40, len(tc.cmd))], tc.id.ID, err)
		}
	}
	var out bytes.Buffer
	wait, err := ex.Start(context.Background(), req(withScope, "cat", &out))
	if err != nil {
		t.Fatal(err)
	}
	if st := wait(); st != 0 || out.String() != "in" {
		t.Fatalf("cat: status %d output %q", st, out.String())
	}
	// A cancelled context kills the command.
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	defer pw.Close()
	wait, err = (&ssh.AllowListExecutor{Allow: []string{"sleep"}}).Start(ctx, ssh.ExecRequest{
		Identity: withScope, Command: "sleep 3600", Stdin: pr, Stdout: io.Discard, Stderr: io.Discard,
	})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if st := wait(); st != 128+9 {
		t.Fatalf("killed sleep: status %d, want %d", st, 128+9)
	}
}
