package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"

	"go.uber.org/goleak"

	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/core/coretest"
	"github.com/alknet/alknet/core/endpoint"
	"github.com/alknet/alknet/core/tlsconf"
)

// runAsCommandEnv, set to "1" in a child process's environment, makes the test binary
// run the alknet command itself (main) instead of the tests: OpenSSH's ProxyCommand
// runs "<test binary> pipe ..." that way, without building another binary.
const runAsCommandEnv = "ALKNET_TEST_RUN_AS_COMMAND"

func TestMain(m *testing.M) {
	if os.Getenv(runAsCommandEnv) == "1" {
		main() // exits
	}
	goleak.VerifyTestMain(m)
}

// syncBuffer is a bytes.Buffer safe for concurrent writers and readers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (s *syncBuffer) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.b.Bytes())
}

var fingerprintRE = regexp.MustCompile(`^ed25519:[0-9a-f]{64}$`)

// node is an in-process `alknet serve`.
type node struct {
	fp       string
	quic     string // from the "listen quic" line
	tcp      string // from the "listen tcp" line
	hostKey  string // from the "ssh-host-key" line
	info     serveInfo
	stderr   *syncBuffer
	reload   chan os.Signal
	reloaded chan error
	cancel   context.CancelFunc
	done     chan error
	stopped  bool
}

// startServe runs serve on 127.0.0.1:0 with a fresh state directory (plus args) and
// waits for its "ready" line.
func startServe(t *testing.T, args ...string) *node {
	t.Helper()
	return startServeWith(t, nil, args...)
}

// startServeWith is startServe with configure (when not nil) applied to the cli
// before serve runs, to set test hooks.
func startServeWith(t *testing.T, configure func(*cli), args ...string) *node {
	t.Helper()
	n := &node{
		stderr:   &syncBuffer{},
		reload:   make(chan os.Signal, 1),
		reloaded: make(chan error, 1),
		done:     make(chan error, 1),
	}
	infoCh := make(chan serveInfo, 1)
	pr, pw := io.Pipe()
	c := &cli{
		stdin:        strings.NewReader(""),
		stdout:       pw,
		stderr:       n.stderr,
		notifyReload: func() (<-chan os.Signal, func()) { return n.reload, func() {} },
		ready:        func(info serveInfo) { infoCh <- info },
		reloaded:     func(err error) { n.reloaded <- err },
	}
	if configure != nil {
		configure(c)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	argv := append([]string{"serve", "--state", t.TempDir(), "--listen", "127.0.0.1:0"}, args...)
	go func() {
		err := c.run(ctx, argv)
		pw.Close()
		n.done <- err
	}()
	t.Cleanup(func() { n.stop(t) })

	var lines []string
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if sc.Text() == "ready" {
			break
		}
	}
	if len(lines) == 0 || lines[len(lines)-1] != "ready" {
		cancel()
		err := <-n.done
		n.stopped = true
		t.Fatalf("serve did not get ready: stdout %q, error %v, stderr:\n%s", lines, err, n.stderr)
	}
	go io.Copy(io.Discard, pr) // nothing more is expected, but never block serve
	if len(lines) != 5 {
		t.Fatalf("serve stdout = %q, want 5 lines", lines)
	}
	var ok bool
	if n.fp, ok = strings.CutPrefix(lines[0], "fingerprint "); !ok || !fingerprintRE.MatchString(n.fp) {
		t.Fatalf("line 1 = %q, want fingerprint ed25519:<64 hex>", lines[0])
	}
	if n.quic, ok = strings.CutPrefix(lines[1], "listen quic "); !ok {
		t.Fatalf("line 2 = %q, want listen quic HOST:PORT", lines[1])
	}
	if n.tcp, ok = strings.CutPrefix(lines[2], "listen tcp "); !ok {
		t.Fatalf("line 3 = %q, want listen tcp HOST:PORT", lines[2])
	}
	if n.hostKey, ok = strings.CutPrefix(lines[3], "ssh-host-key "); !ok || !fingerprintRE.MatchString(n.hostKey) {
		t.Fatalf("line 4 = %q, want ssh-host-key ed25519:<64 hex>", lines[3])
	}
	for _, a := range []string{n.quic, n.tcp} {
		host, port, err := net.SplitHostPort(a)
		if err != nil || host != "127.0.0.1" || port == "0" {
			t.Fatalf("listen address %q: want 127.0.0.1 with a bound port (%v)", a, err)
		}
	}
	n.info = <-infoCh
	if n.info.Fingerprint != n.fp || n.info.QUIC.String() != n.quic || n.info.TCP.String() != n.tcp || n.info.SSHHostKey != n.hostKey {
		t.Fatalf("ready hook %+v disagrees with stdout %q", n.info, lines)
	}
	return n
}

// stop cancels serve's context and checks that run returns nil.
func (n *node) stop(t *testing.T) {
	t.Helper()
	if n.stopped {
		return
	}
	n.stopped = true
	n.cancel()
	if err := <-n.done; err != nil {
		t.Errorf("serve returned %v after cancel, want nil", err)
	}
}

// triggerReload sends the reload signal and returns the reload's result.
func (n *node) triggerReload() error {
	n.reload <- syscall.SIGHUP
	return <-n.reloaded
}

// pinArgs returns the pipe flags that pin this node.
func (n *node) pinArgs(alpn string) []string {
	return []string{"--alpn", alpn, "--pin", n.fp}
}

type pipeResult struct {
	stdout []byte
	stderr string
	err    error
}

// runPipe runs `alknet pipe` in-process with stdin and its own state directory.
func runPipe(t *testing.T, stdin []byte, args ...string) pipeResult {
	t.Helper()
	var stdout, stderr syncBuffer
	c := &cli{stdin: bytes.NewReader(stdin), stdout: &stdout, stderr: &stderr}
	argv := append([]string{"pipe", "--state", t.TempDir()}, args...)
	err := c.run(t.Context(), argv)
	return pipeResult{stdout: stdout.Bytes(), stderr: stderr.String(), err: err}
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// checkOneLine checks that err reports as exactly one "alknet: " line with code.
func checkOneLine(t *testing.T, err error, code int) string {
	t.Helper()
	var out bytes.Buffer
	if got := report(&out, err); got != code {
		t.Errorf("exit code for %v = %d, want %d", err, got, code)
	}
	line := out.String()
	if !strings.HasPrefix(line, "alknet: ") || strings.Count(line, "\n") != 1 || !strings.HasSuffix(line, "\n") {
		t.Errorf("report printed %q, want one line starting \"alknet: \"", line)
	}
	return line
}

func TestServePipeRoundTrip(t *testing.T) {
	n := startServe(t)
	if n.quic != n.tcp {
		t.Errorf("QUIC %s and TCP %s listen on different ports", n.quic, n.tcp)
	}
	payloads := map[string][]byte{
		"empty": {},
		"line":  []byte("hello, alknet\n"),
		"large": randomBytes(t, 300<<10),
	}
	for _, network := range pipeNetworks {
		for name, payload := range payloads {
			t.Run(network.name+"/"+name, func(t *testing.T) {
				args := append(n.pinArgs("alknet/echo"), network.extra...)
				r := runPipe(t, payload, append(args, n.quic)...)
				if r.err != nil {
					t.Fatalf("pipe: %v (stderr %q)", r.err, r.stderr)
				}
				if !bytes.Equal(r.stdout, payload) {
					t.Fatalf("stdout: %d bytes, want the %d bytes of stdin", len(r.stdout), len(payload))
				}
				if r.stderr != "" {
					t.Errorf("stderr = %q, want nothing", r.stderr)
				}
			})
		}
	}
	n.stop(t)
	if !strings.Contains(n.stderr.String(), `msg="shutting down"`) {
		t.Errorf("no shutdown log line in:\n%s", n.stderr)
	}
}

// pipeNetworks are the two transports pipe can use, with the flags selecting them.
var pipeNetworks = []struct {
	name  string
	extra []string
}{{"quic", nil}, {"tcp", []string{"--tcp"}}}

func TestPipeRefusedALPN(t *testing.T) {
	n := startServe(t)
	for _, network := range pipeNetworks {
		t.Run(network.name, func(t *testing.T) {
			args := append(n.pinArgs("alknet/nope"), network.extra...)
			r := runPipe(t, []byte("x"), append(args, n.quic)...)
			if r.err == nil {
				t.Fatal("pipe with a refused ALPN succeeded")
			}
			line := checkOneLine(t, r.err, exitFailure)
			want := "alknet: pipe: " + n.quic + " does not serve ALPN alknet/nope\n"
			if line != want {
				t.Errorf("message %q, want %q", line, want)
			}
			if len(r.stdout) != 0 {
				t.Errorf("stdout = %q, want nothing", r.stdout)
			}
		})
	}
}

func TestPipeWrongPin(t *testing.T) {
	n := startServe(t)
	other := coretest.NewIdentity(t).Fingerprint
	for _, network := range pipeNetworks {
		t.Run(network.name, func(t *testing.T) {
			args := append([]string{"--alpn", "alknet/echo", "--pin", other}, network.extra...)
			r := runPipe(t, []byte("secret"), append(args, n.quic)...)
			if r.err == nil {
				t.Fatal("pipe with a wrong pin succeeded")
			}
			if !errors.Is(r.err, tlsconf.ErrFingerprintMismatch) && !strings.Contains(r.err.Error(), "fingerprint mismatch") {
				t.Errorf("error %v does not report a fingerprint mismatch", r.err)
			}
			line := checkOneLine(t, r.err, exitFailure)
			for _, want := range []string{"fingerprint mismatch", "pinned " + other, "presented " + n.fp} {
				if !strings.Contains(line, want) {
					t.Errorf("message %q lacks %q", line, want)
				}
			}
			if len(r.stdout) != 0 {
				t.Errorf("stdout = %q, want nothing", r.stdout)
			}
		})
	}
}

func TestPipeInsecure(t *testing.T) {
	n := startServe(t)
	for _, network := range pipeNetworks {
		t.Run(network.name, func(t *testing.T) {
			payload := []byte("trust on first use\n")
			args := append([]string{"--alpn", "alknet/echo", "--insecure"}, network.extra...)
			r := runPipe(t, payload, append(args, n.tcp)...)
			if r.err != nil {
				t.Fatalf("pipe --insecure: %v", r.err)
			}
			if !bytes.Equal(r.stdout, payload) {
				t.Errorf("stdout = %q, want %q", r.stdout, payload)
			}
			want := "alknet: warning: --insecure: server identity not verified (fingerprint " + n.fp + ")\n"
			if r.stderr != want {
				t.Errorf("stderr = %q, want %q", r.stderr, want)
			}
		})
	}
}

func TestPipeUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	fp := coretest.NewIdentity(t).Fingerprint
	r := runPipe(t, nil, "--alpn", "alknet/echo", "--pin", fp, "--tcp", addr)
	if r.err == nil {
		t.Fatal("pipe to a closed port succeeded")
	}
	line := checkOneLine(t, r.err, exitFailure)
	if !strings.Contains(line, "cannot reach "+addr) {
		t.Errorf("message %q, want it to say it cannot reach %s", line, addr)
	}
}

// TestPipeServerError checks that a connection the server closes with an error is a
// failure (QUIC carries the error; TCP has no close codes).
func TestPipeServerError(t *testing.T) {
	reg := core.NewRegistry()
	if err := reg.RegisterAs("alknet/fail", core.HandlerFunc(func(ctx context.Context, conn *core.Connection, _ core.AuthContext) error {
		s, err := conn.AcceptBi(ctx)
		if err != nil {
			return err
		}
		if _, err := io.Copy(io.Discard, s); err != nil {
			return err
		}
		return errors.New("deliberate failure")
	})); err != nil {
		t.Fatal(err)
	}
	srv := coretest.NewServer(t, reg)
	r := runPipe(t, []byte("input"), "--alpn", "alknet/fail", "--pin", srv.Identity.Fingerprint, srv.Addr)
	if r.err == nil {
		t.Fatal("pipe succeeded although the server failed the connection")
	}
	line := checkOneLine(t, r.err, exitFailure)
	for _, want := range []string{"closed by the server", "deliberate failure"} {
		if !strings.Contains(line, want) {
			t.Errorf("message %q lacks %q", line, want)
		}
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestServeInvalidConfig(t *testing.T) {
	fp := coretest.NewIdentity(t).Fingerprint
	cases := []struct {
		name, content, want string
	}{
		{"unknown key", "[limits]\nmax_conns = 5\n", `unknown key "limits.max_conns"`},
		{"bad duration", "[limits]\nhandshake_timeout = \"5 parsecs\"\n", `limits.handshake_timeout: invalid duration "5 parsecs"`},
		{"duplicate peer", "[[peers]]\nid = \"alice\"\nfingerprints = [\"" + fp + "\"]\n[[peers]]\nid = \"alice\"\n", "duplicate peer_id: alice"},
		{"malformed", "[limits\nmax_connections = 1\n", "to end table name"},
		{"bad fingerprint", "[[peers]]\nid = \"bob\"\nfingerprints = [\"ed25519:XYZ\"]\n", "fingerprints[0]"},
		{"too large", "# " + strings.Repeat("x", maxConfigSize) + "\n", "limit of 1048576 bytes"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "alknet.toml")
			writeFile(t, path, tc.content)
			var stdout, stderr syncBuffer
			c := &cli{stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr,
				ready: func(serveInfo) { t.Error("serve got ready with an invalid config") }}
			err := c.run(t.Context(), []string{"serve", "--state", t.TempDir(), "--listen", "127.0.0.1:0", "--config", path})
			if err == nil {
				t.Fatal("serve accepted an invalid config")
			}
			line := checkOneLine(t, err, exitUsage)
			for _, want := range []string{tc.want, path} {
				if !strings.Contains(line, want) {
					t.Errorf("message %q lacks %q", line, want)
				}
			}
			if stdout.String() != "" {
				t.Errorf("stdout = %q, want nothing before the error", stdout.String())
			}
		})
	}
	t.Run("missing file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "absent.toml")
		c := &cli{stdin: strings.NewReader(""), stdout: io.Discard, stderr: io.Discard}
		err := c.run(t.Context(), []string{"serve", "--state", t.TempDir(), "--listen", "127.0.0.1:0", "--config", path})
		line := checkOneLine(t, err, exitUsage)
		if !strings.Contains(line, path) {
			t.Errorf("message %q does not name %s", line, path)
		}
	})
}

// dialTCP dials the node's echo handler over TCP+TLS with a fresh client identity.
func dialTCP(t *testing.T, n *node) (*core.Connection, error) {
	t.Helper()
	cert := coretest.NewIdentity(t).Cert
	return endpoint.Dial(t.Context(), n.tcp, "alknet/echo", endpoint.DialOptions{
		Network: endpoint.NetworkTCP,
		TLS:     tlsconf.ClientOptions{Pin: n.fp, Certificate: &cert},
	})
}

func echoOnce(t *testing.T, conn *core.Connection) {
	t.Helper()
	got, err := coretest.RoundTrip(t.Context(), conn, []byte("ping"))
	if err != nil || string(got) != "ping" {
		t.Fatalf("echo round trip: %q, %v", got, err)
	}
}

func TestServeReload(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "alknet.toml")
	writeFile(t, path, "[limits]\nmax_connections_per_ip = 1\n")
	n := startServe(t, "--config", path)

	// With one connection per IP, a second concurrent one is refused.
	first, err := dialTCP(t, n)
	if err != nil {
		t.Fatalf("first connection: %v", err)
	}
	defer first.Close(core.CloseNormal, "")
	if second, err := dialTCP(t, n); err == nil {
		second.Close(core.CloseNormal, "")
		t.Fatal("second concurrent connection accepted with max_connections_per_ip = 1")
	}
	r := runPipe(t, []byte("x"), append(n.pinArgs("alknet/echo"), "--tcp", n.tcp)...)
	if line := checkOneLine(t, r.err, exitFailure); !strings.Contains(line, "closed the connection during the TCP+TLS handshake") {
		t.Errorf("pipe refused by the per-IP limit: %q", line)
	}

	// Raise the limit and add a peer; the next connection gets in.
	peer := coretest.NewIdentity(t)
	writeFile(t, path, "[limits]\nmax_connections_per_ip = 2\n[[peers]]\nid = \"carol\"\nfingerprints = [\""+peer.Fingerprint+"\"]\n")
	if err := n.triggerReload(); err != nil {
		t.Fatalf("reload: %v", err)
	}
	second, err := dialTCP(t, n)
	if err != nil {
		t.Fatalf("second connection after raising the limit: %v", err)
	}
	defer second.Close(core.CloseNormal, "")
	// (No round trip on it: on TCP the echo handler ends the connection after its one
	// stream, which would free the slot.)
	idp := core.NewConfigIdentityProvider(n.info.Store, nil)
	if id, ok := idp.ResolveFromFingerprint(peer.Fingerprint); !ok || id.ID != "carol" {
		t.Errorf("peer added by reload resolves to %v, %v", id, ok)
	}
	if !strings.Contains(n.stderr.String(), `msg="config reloaded"`) {
		t.Errorf("no reload log line in:\n%s", n.stderr)
	}

	// An invalid file keeps the previous configuration.
	writeFile(t, path, "[limits]\nmax_connections_per_ip = 5\nmax_conns = 1\n")
	err = n.triggerReload()
	if err == nil || !strings.Contains(err.Error(), `unknown key "limits.max_conns"`) {
		t.Fatalf("reload of an invalid file: %v, want an unknown key error", err)
	}
	logs := n.stderr.String()
	if !strings.Contains(logs, "level=ERROR") || !strings.Contains(logs, "config reload failed") || !strings.Contains(logs, "limits.max_conns") {
		t.Errorf("failed reload not logged as an error naming the problem:\n%s", logs)
	}
	if got := n.info.Store.Limits().MaxConnectionsPerIP; got != 2 {
		t.Errorf("after a failed reload MaxConnectionsPerIP = %d, want 2 (the previous config)", got)
	}
	if third, err := dialTCP(t, n); err == nil {
		third.Close(core.CloseNormal, "")
		t.Error("third concurrent connection accepted; the invalid config must not have applied")
	}
	echoOnce(t, first)
}

func TestServeReloadWithoutConfig(t *testing.T) {
	n := startServe(t, "--log-level", "debug")
	if err := n.triggerReload(); err != nil {
		t.Fatalf("reload without --config: %v", err)
	}
	if !strings.Contains(n.stderr.String(), "nothing to reload") {
		t.Errorf("no 'nothing to reload' log line in:\n%s", n.stderr)
	}
}

func TestID(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state")
	var first string
	for i := range 2 {
		var stdout, stderr bytes.Buffer
		if err := run(t.Context(), []string{"id", "--state", state}, &stdout, &stderr); err != nil {
			t.Fatalf("id: %v", err)
		}
		out := stdout.String()
		line, ok := strings.CutSuffix(out, "\n")
		if !ok || strings.Contains(line, "\n") || !fingerprintRE.MatchString(line) {
			t.Fatalf("id printed %q, want one line ed25519:<64 lowercase hex>", out)
		}
		if i == 0 {
			first = line
		} else if line != first {
			t.Errorf("id changed between runs: %s then %s", first, line)
		}
		if stderr.Len() != 0 {
			t.Errorf("stderr = %q", stderr.String())
		}
	}
	st, err := os.Stat(state)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o700 {
		t.Errorf("state directory mode %v, want 0700", st.Mode().Perm())
	}
	keyPath := filepath.Join(state, keyFileName)
	st, err = os.Stat(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", st.Mode().Perm())
	}
	data, err := os.ReadFile(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(data, []byte("-----BEGIN OPENSSH PRIVATE KEY-----\n")) {
		t.Errorf("key file is not an OpenSSH private key:\n%s", data)
	}
	key, err := tlsconf.LoadKey(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	if got := tlsconf.Fingerprint(key); got != first {
		t.Errorf("key file fingerprint %s, id printed %s", got, first)
	}
	pub, err := os.ReadFile(filepath.Join(state, pubFileName))
	if err != nil {
		t.Fatal(err)
	}
	want, _ := tlsconf.AuthorizedKey(key, keyComment)
	if !bytes.Equal(pub, want) {
		t.Errorf("%s = %q, want %q", pubFileName, pub, want)
	}
}

// TestIDServeSameIdentity checks that serve presents the identity id prints.
func TestIDServeSameIdentity(t *testing.T) {
	state := t.TempDir()
	var stdout bytes.Buffer
	c := &cli{stdin: strings.NewReader(""), stdout: &stdout, stderr: io.Discard}
	if err := c.run(t.Context(), []string{"id", "--state", state}); err != nil {
		t.Fatal(err)
	}
	n := startServe(t, "--state", state) // the later --state wins
	if got := strings.TrimSpace(stdout.String()); got != n.fp {
		t.Errorf("id printed %s, serve presents %s", got, n.fp)
	}
}

func TestSSHKeygenReadsKey(t *testing.T) {
	keygen, err := exec.LookPath("ssh-keygen")
	if err != nil {
		t.Skip("ssh-keygen not installed: cannot check that OpenSSH reads node.key")
	}
	state := t.TempDir()
	c := &cli{stdin: strings.NewReader(""), stdout: io.Discard, stderr: io.Discard}
	if err := c.run(t.Context(), []string{"id", "--state", state}); err != nil {
		t.Fatal(err)
	}
	out, err := exec.CommandContext(t.Context(), keygen, "-y", "-f", filepath.Join(state, keyFileName)).CombinedOutput()
	if err != nil {
		t.Fatalf("ssh-keygen -y: %v\n%s", err, out)
	}
	pub, err := os.ReadFile(filepath.Join(state, pubFileName))
	if err != nil {
		t.Fatal(err)
	}
	// ssh-keygen prints "ssh-ed25519 AAAA... comment"; compare type and key.
	gotFields, wantFields := strings.Fields(string(out)), strings.Fields(string(pub))
	if len(gotFields) < 2 || len(wantFields) < 2 || gotFields[0] != wantFields[0] || gotFields[1] != wantFields[1] {
		t.Errorf("ssh-keygen -y printed %q, node.key.pub holds %q", out, pub)
	}
}

func TestUsageErrors(t *testing.T) {
	fp := coretest.NewIdentity(t).Fingerprint
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"no command", nil, "no command given"},
		{"unknown command", []string{"frobnicate"}, `unknown command "frobnicate"`},
		{"unknown flag", []string{"serve", "--bogus"}, "flag provided but not defined: -bogus"},
		{"bad log level", []string{"serve", "--log-level", "chatty"}, "--log-level"},
		{"bad drain", []string{"serve", "--drain", "-1s"}, "--drain"},
		{"bad listen", []string{"serve", "--listen", "nowhere"}, "--listen"},
		{"id argument", []string{"id", "extra"}, `unexpected argument "extra"`},
		{"pipe no pin", []string{"pipe", "--alpn", "alknet/echo", "127.0.0.1:1"}, "--pin"},
		{"pipe pin and insecure", []string{"pipe", "--alpn", "alknet/echo", "--pin", fp, "--insecure", "127.0.0.1:1"}, "--pin and --insecure"},
		{"pipe bad pin", []string{"pipe", "--alpn", "alknet/echo", "--pin", "ed25519:beef", "127.0.0.1:1"}, "--pin"},
		{"pipe no alpn", []string{"pipe", "--insecure", "127.0.0.1:1"}, "--alpn is required"},
		{"pipe no address", []string{"pipe", "--alpn", "alknet/echo", "--insecure"}, "missing HOST:PORT"},
		{"pipe two addresses", []string{"pipe", "--alpn", "alknet/echo", "--insecure", "127.0.0.1:1", "127.0.0.1:2"}, "want one HOST:PORT"},
		{"pipe bad address", []string{"pipe", "--alpn", "alknet/echo", "--insecure", "localhost"}, "not HOST:PORT"},
		{"help unknown", []string{"help", "frobnicate"}, `unknown command "frobnicate"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			c := &cli{stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr}
			err := c.run(t.Context(), tc.args)
			var ue *usageError
			if !errors.As(err, &ue) {
				t.Fatalf("error %v (%T), want a usage error", err, err)
			}
			line := checkOneLine(t, err, exitUsage)
			if !strings.Contains(line, tc.want) {
				t.Errorf("message %q lacks %q", line, tc.want)
			}
			if stdout.Len() != 0 || stderr.Len() != 0 {
				t.Errorf("the command itself printed stdout %q, stderr %q", stdout.String(), stderr.String())
			}
		})
	}
}

func TestExitCode(t *testing.T) {
	cases := []struct {
		err  error
		want int
	}{
		{nil, 0},
		{flag.ErrHelp, 0},
		{usagef("bad"), 2},
		{&configError{Err: errors.New("bad config")}, 2},
		{&configError{Err: core.ErrInvalidConfig}, 2},
		{errors.New("listen: address in use"), 1},
		{endpoint.ErrALPNRefused, 1},
	}
	for _, tc := range cases {
		if got := exitCode(tc.err); got != tc.want {
			t.Errorf("exitCode(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
	var out bytes.Buffer
	if code := report(&out, errors.New("first\nsecond\r\n\nthird")); code != 1 || out.String() != "alknet: first; second; third\n" {
		t.Errorf("report = %d, %q", code, out.String())
	}
	out.Reset()
	if code := report(&out, nil); code != 0 || out.Len() != 0 {
		t.Errorf("report(nil) = %d, %q", code, out.String())
	}
}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"help"}, {"-h"}, {"--help"}} {
		var stdout, stderr bytes.Buffer
		err := (&cli{stdout: &stdout, stderr: &stderr}).run(t.Context(), args)
		if exitCode(err) != 0 {
			t.Errorf("%q: %v", args, err)
		}
		for _, want := range []string{"serve", "id", "pipe", "call", "connect", "help"} {
			if !strings.Contains(stdout.String(), "  "+want+" ") {
				t.Errorf("%q: usage lacks %s:\n%s", args, want, stdout.String())
			}
		}
	}
	for _, args := range [][]string{{"serve", "-h"}, {"pipe", "--help"}, {"help", "id"}, {"call", "-h"}, {"help", "call"}, {"connect", "-h"}, {"help", "connect"}} {
		var stdout bytes.Buffer
		err := (&cli{stdout: &stdout, stderr: io.Discard}).run(t.Context(), args)
		if code := report(io.Discard, err); code != 0 {
			t.Errorf("%q: exit %d (%v)", args, code, err)
		}
		if !strings.Contains(stdout.String(), "Usage: alknet ") || !strings.Contains(stdout.String(), "-state") {
			t.Errorf("%q printed:\n%s", args, stdout.String())
		}
		if args[0] == "serve" && (!strings.Contains(stdout.String(), "[--demo-page]") || !strings.Contains(stdout.String(), "-demo-page\n")) {
			t.Errorf("%q does not show --demo-page:\n%s", args, stdout.String())
		}
	}
}

// TestFlagsAfterArguments checks that pipe takes its flags after HOST:PORT as well.
func TestFlagsAfterArguments(t *testing.T) {
	n := startServe(t)
	r := runPipe(t, []byte("late flags"), n.quic, "--alpn", "alknet/echo", "--pin", n.fp)
	if r.err != nil || string(r.stdout) != "late flags" {
		t.Fatalf("pipe HOST:PORT --flags: %q, %v", r.stdout, r.err)
	}
}
