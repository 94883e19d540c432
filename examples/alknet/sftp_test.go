package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/alknet/alknet/core/endpoint"
	"github.com/alknet/alknet/core/tlsconf"
	alksftp "github.com/alknet/alknet/sftp"
)

// sftpNode serves the export "data" (the directory srv/data beside the config file,
// named relative to it) to the peer alice (fp) with scopes.
func sftpNode(t *testing.T, fp string, scopes ...string) (n *node, data, config string) {
	t.Helper()
	dir := t.TempDir()
	data = filepath.Join(dir, "srv", "data")
	if err := os.MkdirAll(data, 0o755); err != nil {
		t.Fatal(err)
	}
	config = filepath.Join(dir, "alknet.toml")
	writeFile(t, config, "[[sftp.exports]]\nname = \"data\"\nroot = \"srv/data\"\n"+peerTOML("alice", fp, scopes...))
	return startServe(t, "--config", config), data, config
}

// runTool runs a stock client with the test binary as the alknet command (for -D and
// ProxyCommand), to completion.
func runTool(t *testing.T, dir, bin string, args ...string) sshRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*waitTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), runAsCommandEnv+"=1")
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := sshRun{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ee.Exited():
		r.code = ee.ExitCode()
	default:
		t.Fatalf("%s: %v (stderr %q)", bin, err, r.stderr)
	}
	return r
}

// rawSFTP runs `sftp -D '<alknet> pipe --alpn alknet/sftp ...' -b batch` in dir as the
// client state (its identity is the pipe's TLS client certificate).
func rawSFTP(t *testing.T, n *node, state, dir, batch string, pipeArgs ...string) sshRun {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if strings.ContainsAny(exe+state, " '\"\\") {
		t.Skipf("sftp -D splits its command on blanks; the paths %q, %q contain one", exe, state)
	}
	bf := filepath.Join(t.TempDir(), "batch")
	writeFile(t, bf, batch)
	pipe := strings.Join(append([]string{exe, "pipe", "--state", state, "--alpn", "alknet/sftp", "--pin", n.fp}, append(pipeArgs, n.quic)...), " ")
	return runTool(t, dir, sshTool(t, "sftp"), "-D", pipe, "-b", bf)
}

func TestSFTPRawALPNOpenSSH(t *testing.T) {
	state, fp := newClientState(t)
	n, data, _ := sftpNode(t, fp, "sftp:write:data")
	local := t.TempDir()
	small := randomBytes(t, 100_000)
	big := randomBytes(t, 32<<20)
	writeFile(t, filepath.Join(local, "small.bin"), string(small))
	writeFile(t, filepath.Join(local, "big.bin"), string(big))
	writeFile(t, filepath.Join(data, "old.txt"), "old\n")

	r := rawSFTP(t, n, state, local, strings.Join([]string{
		"pwd",
		"ls",
		"put small.bin",
		"put big.bin",
		"get small.bin small.back",
		"get big.bin big.back",
		"mkdir dir",
		"rename small.bin dir/moved.bin",
		"chmod 600 dir/moved.bin",
		"ls -l dir",
		"rm dir/moved.bin",
		"rmdir dir",
		"rm old.txt",
		"ls",
		"df",
	}, "\n")+"\n")
	if r.code != 0 {
		t.Fatalf("sftp -D: exit %d\nstdout:\n%s\nstderr:\n%s\nnode:\n%s", r.code, r.stdout, r.stderr, n.stderr)
	}
	if !strings.Contains(r.stdout, "Remote working directory: /data") {
		t.Errorf("pwd: the start directory is not /data:\n%s", r.stdout)
	}
	for name, want := range map[string][]byte{"small.back": small, "big.back": big} {
		if got, err := os.ReadFile(filepath.Join(local, name)); err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: %d bytes differ from the %d put (%v)", name, len(got), len(want), err)
		}
	}
	if got, err := os.ReadFile(filepath.Join(data, "big.bin")); err != nil || !bytes.Equal(got, big) {
		t.Errorf("big.bin on the node differs (%v)", err)
	}
	if !strings.Contains(r.stdout, "-rw-------") {
		t.Errorf("ls -l after chmod 600 shows no -rw-------:\n%s", r.stdout)
	}
	ents, _ := os.ReadDir(data)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if strings.Join(names, ",") != "big.bin" {
		t.Errorf("the export holds %v, want [big.bin]", names)
	}
	line := waitLine(t, n, `msg="sftp session closed"`)
	for _, want := range []string{"identity=alice", "transport=quic", "exports=[data]", "outcome=ok"} {
		if !strings.Contains(line, want) {
			t.Errorf("session line lacks %q: %s", want, line)
		}
	}
	if strings.Contains(n.stderr.String(), "small.bin") || strings.Contains(n.stderr.String(), data) {
		t.Errorf("the node logged a file path:\n%s", n.stderr)
	}

	// Over TCP+TLS as well.
	r = rawSFTP(t, n, state, local, "get big.bin big2.back\n", "--tcp")
	if got, _ := os.ReadFile(filepath.Join(local, "big2.back")); r.code != 0 || !bytes.Equal(got, big) {
		t.Fatalf("get over TCP+TLS: exit %d, stderr %q", r.code, r.stderr)
	}
}

// waitLine waits (bounded) for a line of the node's log with sub.
func waitLine(t *testing.T, n *node, sub string) string {
	t.Helper()
	var line string
	waitFor(t, func() bool {
		for _, l := range strings.Split(n.stderr.String(), "\n") {
			if strings.Contains(l, sub) {
				line = l
				return true
			}
		}
		return false
	})
	return line
}

func TestSFTPRawALPNAccess(t *testing.T) {
	state, fp := newClientState(t)
	n, data, _ := sftpNode(t, fp, "sftp:read:data")
	writeFile(t, filepath.Join(data, "f.txt"), "content\n")
	local := t.TempDir()
	writeFile(t, filepath.Join(local, "up.txt"), "up\n")

	// Read scope only: get works, put is refused.
	r := rawSFTP(t, n, state, local, "get f.txt\n")
	if got, _ := os.ReadFile(filepath.Join(local, "f.txt")); r.code != 0 || string(got) != "content\n" {
		t.Fatalf("get with sftp:read: exit %d, stderr %q", r.code, r.stderr)
	}
	r = rawSFTP(t, n, state, local, "put up.txt\n")
	if r.code == 0 || !strings.Contains(r.stderr, "Permission denied") {
		t.Fatalf("put with sftp:read only: exit %d, stderr %q; want permission denied", r.code, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(data, "up.txt")); err == nil {
		t.Fatal("the refused upload exists")
	}

	// An unknown identity is refused before any SFTP packet.
	stranger, _ := newClientState(t)
	r = rawSFTP(t, n, stranger, local, "ls /\n")
	if r.code == 0 || !strings.Contains(r.stderr, "unauthenticated") {
		t.Fatalf("unknown identity: exit %d, stderr %q; want a refusal naming unauthenticated", r.code, r.stderr)
	}
	waitLine(t, n, `msg="auth failure"`)
}

// sshArgs are the stock client options of o for sftp or scp (-P for the port).
func sftpSSHArgs(t *testing.T, o *openSSH, identity string) []string {
	t.Helper()
	args := o.args(t, identity)
	for i, a := range args {
		if a == "-p" {
			args[i] = "-P"
		}
	}
	return args
}

func TestSFTPSubsystemOpenSSH(t *testing.T) {
	state, fp := newClientState(t)
	n, data, _ := sftpNode(t, fp, "sftp:write:data")
	o := newOpenSSH(t, n)
	key := filepath.Join(state, keyFileName)
	local := t.TempDir()
	payload := randomBytes(t, 1<<20+3)
	writeFile(t, filepath.Join(local, "up.bin"), string(payload))

	bf := filepath.Join(t.TempDir(), "batch")
	writeFile(t, bf, "pwd\nput up.bin\nget up.bin back.bin\nmkdir d\nrename up.bin d/up.bin\nchmod 640 d/up.bin\nls -l d\nrm d/up.bin\nrmdir d\nls\n")
	args := append(sftpSSHArgs(t, o, key), "-b", bf, "alice@127.0.0.1")
	r := runTool(t, local, sshTool(t, "sftp"), args...)
	if r.code != 0 {
		t.Fatalf("sftp over ssh: exit %d\nstdout:\n%s\nstderr:\n%s\nnode:\n%s", r.code, r.stdout, r.stderr, n.stderr)
	}
	if got, _ := os.ReadFile(filepath.Join(local, "back.bin")); !bytes.Equal(got, payload) {
		t.Fatal("get over the ssh subsystem: bytes differ")
	}
	if !strings.Contains(r.stdout, "Remote working directory: /data") || !strings.Contains(r.stdout, "-rw-r-----") {
		t.Errorf("sftp output:\n%s", r.stdout)
	}
	line := waitLine(t, n, "transport=ssh")
	if !strings.Contains(line, "identity=alice") {
		t.Errorf("session line: %s", line)
	}

	// scp (OpenSSH 9 speaks SFTP) both ways.
	scp := sshTool(t, "scp")
	args = append(sftpSSHArgs(t, o, key), filepath.Join(local, "up.bin"), "alice@127.0.0.1:/data/scp.bin")
	if r := runTool(t, local, scp, args...); r.code != 0 {
		t.Fatalf("scp put: exit %d, stderr %q", r.code, r.stderr)
	}
	if got, _ := os.ReadFile(filepath.Join(data, "scp.bin")); !bytes.Equal(got, payload) {
		t.Fatal("scp put: bytes differ")
	}
	args = append(sftpSSHArgs(t, o, key), "alice@127.0.0.1:/data/scp.bin", filepath.Join(local, "scp.back"))
	if r := runTool(t, local, scp, args...); r.code != 0 {
		t.Fatalf("scp get: exit %d, stderr %q", r.code, r.stderr)
	}
	if got, _ := os.ReadFile(filepath.Join(local, "scp.back")); !bytes.Equal(got, payload) {
		t.Fatal("scp get: bytes differ")
	}
}

func TestSFTPConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name, content, want string
	}{
		{"missing root", "[[sftp.exports]]\nname = \"data\"\nroot = \"nope\"\n", "sftp.exports[0].root"},
		{"no root", "[[sftp.exports]]\nname = \"data\"\n", "sftp.exports[0].root"},
		{"bad name", "[[sftp.exports]]\nname = \"a/b\"\nroot = \".\"\n", "sftp.exports[0].name"},
		{"duplicate", "[[sftp.exports]]\nname = \"d\"\nroot = \".\"\n[[sftp.exports]]\nname = \"d\"\nroot = \".\"\n", "sftp.exports[1].name"},
		{"unknown key", "[[sftp.exports]]\nname = \"d\"\nroot = \".\"\nreadonly = true\n", `unknown key "sftp.exports.readonly"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "alknet.toml")
			writeFile(t, path, tc.content)
			c := &cli{stdin: strings.NewReader(""), stdout: io.Discard, stderr: io.Discard,
				ready: func(serveInfo) { t.Error("serve got ready with an invalid config") }}
			err := c.run(t.Context(), []string{"serve", "--state", t.TempDir(), "--listen", "127.0.0.1:0", "--config", path})
			line := checkOneLine(t, err, exitUsage)
			if !strings.Contains(line, tc.want) || !strings.Contains(line, path) {
				t.Errorf("message %q lacks %q or the file name", line, tc.want)
			}
		})
	}
}

func TestSFTPReload(t *testing.T) {
	state, fp := newClientState(t)
	n, data, config := sftpNode(t, fp, "sftp:read:data")
	writeFile(t, filepath.Join(data, "f"), "x")
	other := filepath.Join(filepath.Dir(config), "other")
	if err := os.Mkdir(other, 0o755); err != nil {
		t.Fatal(err)
	}
	dial := func() []string {
		key, _, err := tlsconf.LoadOrCreateKey(filepath.Join(state, keyFileName), "test")
		if err != nil {
			t.Fatal(err)
		}
		cert, err := tlsconf.Certificate(key)
		if err != nil {
			t.Fatal(err)
		}
		c, err := alksftp.Dial(t.Context(), n.quic, endpoint.DialOptions{TLS: tlsconf.ClientOptions{Pin: n.fp, Certificate: &cert}})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		ents, err := c.ReadDir("/")
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		return names
	}
	if got := dial(); strings.Join(got, ",") != "data" {
		t.Fatalf("before reload: %v", got)
	}
	writeFile(t, config, "[[sftp.exports]]\nname = \"data\"\nroot = \"srv/data\"\n[[sftp.exports]]\nname = \"other\"\nroot = \"other\"\n"+
		peerTOML("alice", fp, "sftp:read:*"))
	if err := n.triggerReload(); err != nil {
		t.Fatal(err)
	}
	if got := dial(); strings.Join(got, ",") != "data,other" {
		t.Fatalf("after reload: %v", got)
	}
}

// waitFor polls cond until it holds, failing the test after waitTimeout.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met after %s", waitTimeout)
		}
		time.Sleep(10 * time.Millisecond) // polling a condition, bounded by waitTimeout
	}
}
