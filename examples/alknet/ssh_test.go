package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/alknet/alknet/core/endpoint"
	"github.com/alknet/alknet/core/tlsconf"
	alkssh "github.com/alknet/alknet/ssh"
)

// waitTimeout bounds every wait of these tests for a process or a listener.
const waitTimeout = 30 * time.Second

// newClientState makes a client state directory with `alknet id` and returns it with
// the client's fingerprint. DIR/node.key is the OpenSSH key ssh -i takes.
func newClientState(t *testing.T) (dir, fp string) {
	t.Helper()
	dir = t.TempDir()
	r := mustRun(t, "", "id", "--state", dir)
	return dir, strings.TrimSpace(r.stdout)
}

// startServeConfig runs serve with a --config file holding config.
func startServeConfig(t *testing.T, config string, args ...string) (*node, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "alknet.toml")
	writeFile(t, path, config)
	return startServe(t, append([]string{"--config", path}, args...)...), path
}

// peerTOML is a [[peers]] entry for fp.
func peerTOML(id, fp string, scopes ...string) string {
	return fmt.Sprintf("[[peers]]\nid = %q\nfingerprints = [%q]\nscopes = %s\n", id, fp, tomlList(scopes))
}

func tomlList(items []string) string {
	q := make([]string, len(items))
	for i, s := range items {
		q[i] = strconv.Quote(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// echoServer listens on addr (host:0) and echoes every connection; it returns the
// bound address.
func echoServer(t *testing.T, addr string) string {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		var conns sync.WaitGroup
		defer conns.Wait()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Go(func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return ln.Addr().String()
}

// roundTrip writes msg on c, half-closes it and reads everything back.
func roundTrip(t *testing.T, c net.Conn, msg string) string {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(waitTimeout))
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatalf("write: %v", err)
	}
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("read: %v (got %q)", err, got)
	}
	return string(got)
}

// echoVia dials addr and checks an echo round trip through it.
func echoVia(t *testing.T, addr, msg string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := roundTrip(t, c, msg); got != msg {
		t.Fatalf("echo through %s: %q, want %q", addr, got, msg)
	}
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// authorizedKey returns the authorized_keys form of an "ed25519:<hex>" fingerprint.
func authorizedKey(t *testing.T, fp string) string {
	t.Helper()
	h, ok := strings.CutPrefix(fp, "ed25519:")
	raw, err := hex.DecodeString(h)
	if !ok || err != nil || len(raw) != ed25519.PublicKeySize {
		t.Fatalf("%q is not an ed25519 fingerprint", fp)
	}
	pub, err := gossh.NewPublicKey(ed25519.PublicKey(raw))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(gossh.MarshalAuthorizedKey(pub)))
}

// sshSigner loads the Ed25519 key of a state directory as an SSH signer.
func sshSigner(t *testing.T, state string) gossh.Signer {
	t.Helper()
	key, err := tlsconf.LoadKey(filepath.Join(state, keyFileName))
	if err != nil {
		t.Fatal(err)
	}
	s, err := alkssh.NewSigner(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// dialSSH logs in to n over alknet/ssh (QUIC) with the Go client and the key of state.
func dialSSH(t *testing.T, n *node, state string) *alkssh.Client {
	t.Helper()
	c, err := alkssh.Dial(t.Context(), n.quic, alkssh.ClientConfig{
		Transport: endpoint.DialOptions{TLS: tlsconf.ClientOptions{Pin: n.fp}},
		Signer:    sshSigner(t, state),
		HostKey:   n.hostKey,
	})
	if err != nil {
		t.Fatalf("ssh.Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// execGo runs cmd in a new session of c and returns its output and exit status; err
// is set when the command could not run at all (refused).
func execGo(t *testing.T, c *alkssh.Client, cmd string) (string, int, error) {
	t.Helper()
	s, err := c.NewSession()
	if err != nil {
		t.Fatalf("new session: %v", err)
	}
	defer s.Close()
	out, err := s.Output(cmd)
	var ee *gossh.ExitError
	switch {
	case err == nil:
		return string(out), 0, nil
	case errors.As(err, &ee):
		return string(out), ee.ExitStatus(), nil
	}
	return string(out), -1, err
}

// openSSH runs the stock OpenSSH client against a node through
// `alknet pipe --alpn alknet/ssh` as ProxyCommand, with nothing from the user's
// configuration: -F /dev/null, batch mode, strict host key checking against a
// known_hosts file holding the node's SSH host key under the alias alknet-test.
type openSSH struct {
	bin        string
	n          *node
	knownHosts string
	proxyState string   // the TLS client identity of the ProxyCommand
	proxyArgs  []string // more pipe flags, such as --tcp
}

// sshTool returns the path of ssh, skipping the test when it is missing.
func sshTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s not installed: cannot test with the stock OpenSSH client: %v", name, err)
	}
	return p
}

func newOpenSSH(t *testing.T, n *node) *openSSH {
	t.Helper()
	o := &openSSH{bin: sshTool(t, "ssh"), n: n}
	dir := t.TempDir()
	o.knownHosts = filepath.Join(dir, "known_hosts")
	writeFile(t, o.knownHosts, "alknet-test "+authorizedKey(t, n.hostKey)+"\n")
	o.proxyState, _ = newClientState(t)
	return o
}

// args are ssh's arguments: the fixed options, identity (-i), then extra (such as
// "alice@127.0.0.1", "echo", "hi").
func (o *openSSH) args(t *testing.T, identity string, extra ...string) []string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	proxy := []string{shellQuote(exe), "pipe", "--state", shellQuote(o.proxyState), "--alpn", "alknet/ssh", "--pin", o.n.fp}
	proxy = append(append(proxy, o.proxyArgs...), "%h:%p")
	_, port, err := net.SplitHostPort(o.n.quic)
	if err != nil {
		t.Fatal(err)
	}
	args := []string{
		"-F", "/dev/null",
		"-o", "BatchMode=yes",
		"-o", "StrictHostKeyChecking=yes",
		"-o", "UserKnownHostsFile=" + o.knownHosts,
		"-o", "GlobalKnownHostsFile=/dev/null",
		"-o", "HostKeyAlias=alknet-test",
		"-o", "UpdateHostKeys=no",
		"-o", "IdentitiesOnly=yes",
		"-o", "IdentityAgent=none",
		"-o", "ControlMaster=no",
		"-o", "ControlPath=none",
		"-o", "ConnectTimeout=30",
		"-o", "LogLevel=ERROR",
		"-o", "ProxyCommand=" + strings.Join(proxy, " "),
		"-i", identity,
		"-p", port,
	}
	return append(args, extra...)
}

// command returns an ssh command; the ProxyCommand is this test binary running the
// alknet command (TestMain, runAsCommandEnv).
func (o *openSSH) command(ctx context.Context, t *testing.T, identity string, extra ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.CommandContext(ctx, o.bin, o.args(t, identity, extra...)...)
	cmd.Env = append(os.Environ(), runAsCommandEnv+"=1")
	cmd.Stdin = nil
	return cmd
}

// sshRun is one finished ssh command.
type sshRun struct {
	stdout, stderr string
	code           int
}

// run runs ssh to completion.
func (o *openSSH) run(t *testing.T, identity string, extra ...string) sshRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*waitTimeout)
	defer cancel()
	cmd := o.command(ctx, t, identity, extra...)
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
		t.Fatalf("ssh: %v (stderr %q)", err, r.stderr)
	}
	return r
}

// sshProcess is a running ssh (such as ssh -N -L).
type sshProcess struct {
	cmd    *exec.Cmd
	stderr *syncBuffer
	done   chan struct{}
}

// start starts ssh; the test's cleanup stops it.
func (o *openSSH) start(t *testing.T, identity string, extra ...string) *sshProcess {
	t.Helper()
	p := &sshProcess{cmd: o.command(context.Background(), t, identity, extra...), stderr: &syncBuffer{}, done: make(chan struct{})}
	p.cmd.Stdout = io.Discard
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		// SIGTERM lets ssh hang up its ProxyCommand.
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(waitTimeout):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// dial connects to addr, a listener ssh opens once it has logged in: it retries
// (bounded) while nothing listens there yet, and fails at once if ssh exits.
func (p *sshProcess) dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			return c
		}
		select {
		case <-p.done:
			t.Fatalf("ssh exited (%v) before listening on %s; stderr:\n%s", p.cmd.ProcessState, addr, p.stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing listens on %s after %s: %v; ssh stderr:\n%s", addr, waitTimeout, err, p.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// shellQuote quotes s for sh (ProxyCommand runs through the shell).
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// execConfig lets the peer alice (the key of state) run echo and false.
func execConfig(fp string, extra string) string {
	return "[ssh]\nexec_allow = [\"echo\", \"false\"]\n" + extra + peerTOML("alice", fp, "ssh:exec")
}

func TestServeSSHHostKeyDefault(t *testing.T) {
	n := startServe(t)
	if n.hostKey != n.fp {
		t.Errorf("ssh-host-key %s, want the node identity %s (no keystore)", n.hostKey, n.fp)
	}
}

// TestSSHExecOpenSSH runs commands with the stock ssh client: an allowed command's
// output and exit status, and a refused one.
func TestSSHExecOpenSSH(t *testing.T) {
	state, fp := newClientState(t)
	n, _ := startServeConfig(t, execConfig(fp, ""))
	o := newOpenSSH(t, n)
	key := filepath.Join(state, keyFileName)

	r := o.run(t, key, "alice@127.0.0.1", "echo", "hi")
	if r.code != 0 || r.stdout != "hi\n" || r.stderr != "" {
		t.Fatalf("ssh echo hi: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	r = o.run(t, key, "alice@127.0.0.1", "false")
	if r.code != 1 || r.stdout != "" || r.stderr != "" {
		t.Errorf("ssh false: exit %d, stdout %q, stderr %q; want exit 1", r.code, r.stdout, r.stderr)
	}
	// Not on the allow list: refused as OpenSSH's ForceCommand wrappers refuse, the
	// reason on stderr and exit status 126. (The ProxyCommand, hung up by ssh, adds
	// nothing to stderr.)
	r = o.run(t, key, "alice@127.0.0.1", "true")
	if r.code != alkssh.RefusedExitStatus || r.stdout != "" || r.stderr != "exec refused: program not allowed\n" {
		t.Errorf("ssh true (not allowed): exit %d, stdout %q, stderr %q; want a refusal", r.code, r.stdout, r.stderr)
	}
	// No shell either: ; is an ordinary character, so argv[0] is "echo;id".
	r = o.run(t, key, "alice@127.0.0.1", "echo;id")
	if r.code == 0 || r.stdout != "" {
		t.Errorf("ssh 'echo;id': exit %d, stdout %q; want a refusal", r.code, r.stdout)
	}
	// Over TCP+TLS as well.
	o.proxyArgs = []string{"--tcp"}
	r = o.run(t, key, "alice@127.0.0.1", "echo", "over", "tls")
	if r.code != 0 || r.stdout != "over tls\n" {
		t.Errorf("ssh over TCP+TLS: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	// An unknown key is refused.
	other, _ := newClientState(t)
	r = o.run(t, filepath.Join(other, keyFileName), "alice@127.0.0.1", "echo", "hi")
	if r.code != 255 || r.stdout != "" || !strings.Contains(r.stderr, "Permission denied") {
		t.Errorf("unknown key: exit %d, stdout %q, stderr %q; want exit 255, permission denied", r.code, r.stdout, r.stderr)
	}
}

// TestSSHExecSessionStaysUp: a refused command or forward leaves the connection up for
// the next one.
func TestSSHExecSessionStaysUp(t *testing.T) {
	state, fp := newClientState(t)
	echo := echoServer(t, "127.0.0.1:0")
	n, _ := startServeConfig(t, execConfig(fp, "[ssh.forwarding]\ndefault = \"deny\"\n[[ssh.forwarding.rules]]\ntarget = \"cidr:127.0.0.0/8\"\naction = \"allow\"\nprincipals = [\"alice\"]\n"))
	c := dialSSH(t, n, state)

	if out, code, err := execGo(t, c, "true"); err != nil || code != alkssh.RefusedExitStatus {
		t.Errorf("true (not allowed) ran: %q, %d, %v", out, code, err)
	}
	if out, code, err := execGo(t, c, "echo still up"); err != nil || code != 0 || out != "still up\n" {
		t.Fatalf("echo after a refusal: %q, %d, %v", out, code, err)
	}
	if out, code, err := execGo(t, c, "false"); err != nil || code != 1 {
		t.Errorf("false: %q, %d, %v; want exit status 1", out, code, err)
	}

	_, err := c.Open(t.Context(), "192.0.2.1", 80)
	var oce *gossh.OpenChannelError
	if !errors.As(err, &oce) || oce.Reason != gossh.Prohibited {
		t.Fatalf("forward to a denied target: %v, want administratively prohibited", err)
	}
	host, port, _ := net.SplitHostPort(echo)
	p, _ := strconv.Atoi(port)
	ch, err := c.Open(t.Context(), host, uint16(p))
	if err != nil {
		t.Fatalf("allowed forward after a refused one: %v", err)
	}
	defer ch.Close()
	if got := roundTrip(t, ch, "through ssh"); got != "through ssh" {
		t.Errorf("echo through the channel: %q", got)
	}
	if out, _, err := execGo(t, c, "echo last"); err != nil || out != "last\n" {
		t.Errorf("exec after forwards: %q, %v", out, err)
	}
}

// TestSSHDefaultsDeny: without an [ssh] table, exec and forwarding are refused even for
// a peer holding ssh:exec.
func TestSSHDefaultsDeny(t *testing.T) {
	state, fp := newClientState(t)
	echo := echoServer(t, "127.0.0.1:0")
	n, _ := startServeConfig(t, peerTOML("alice", fp, "ssh:exec", "ssh:remote-forward"))
	c := dialSSH(t, n, state)
	if out, code, err := execGo(t, c, "echo hi"); err != nil || code != alkssh.RefusedExitStatus {
		t.Errorf("exec without exec_allow ran: %q, %d, %v", out, code, err)
	}
	host, port, _ := net.SplitHostPort(echo)
	p, _ := strconv.Atoi(port)
	if ch, err := c.Open(t.Context(), host, uint16(p)); err == nil {
		ch.Close()
		t.Error("forwarding allowed without rules")
	}
}

// forwardingConfig allows alice to reach 127.0.0.0/8 and nothing else.
func forwardingConfig(fp string) string {
	return `[ssh.forwarding]
default = "deny"
[[ssh.forwarding.rules]]
target = "cidr:127.0.0.0/8"
action = "allow"
principals = ["alice"]
` + peerTOML("alice", fp)
}

// TestSSHLocalForwardOpenSSH: ssh -N -L to an allowed target reaches it; one to a
// denied target is closed while the session stays up; serve logs neither destination.
func TestSSHLocalForwardOpenSSH(t *testing.T) {
	state, fp := newClientState(t)
	// The echo server on 127.0.0.2, an address nothing else in the logs has.
	echoHost := "127.0.0.2"
	if ln, err := net.Listen("tcp", echoHost+":0"); err != nil {
		echoHost = "127.0.0.1"
	} else {
		ln.Close()
	}
	echo := echoServer(t, echoHost+":0")
	_, echoPort, _ := net.SplitHostPort(echo)
	n, _ := startServeConfig(t, forwardingConfig(fp), "--log-level", "debug")
	o := newOpenSSH(t, n)

	denied := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	allowed := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	p := o.start(t, filepath.Join(state, keyFileName), "-N",
		"-o", "ExitOnForwardFailure=yes",
		"-L", denied+":192.0.2.1:80",
		"-L", allowed+":"+echo,
		"alice@127.0.0.1")

	// Readiness: the allowed listener answers once ssh has logged in.
	c := p.dial(t, allowed)
	if got := roundTrip(t, c, "first"); got != "first" {
		t.Fatalf("echo through -L: %q", got)
	}
	c.Close()

	// The denied forward: ssh accepts, the node refuses the channel, ssh closes.
	d := p.dial(t, denied)
	_ = d.SetDeadline(time.Now().Add(waitTimeout))
	_, _ = d.Write([]byte("hello?"))
	got, err := io.ReadAll(d)
	d.Close()
	if len(got) != 0 || isTimeout(err) {
		t.Fatalf("denied forward: read %q, %v; want the connection closed", got, err)
	}

	// The session is still up: the allowed forward still works.
	c = p.dial(t, allowed)
	if got := roundTrip(t, c, "after the refusal"); got != "after the refusal" {
		t.Fatalf("echo after a refused forward: %q", got)
	}
	c.Close()
	select {
	case <-p.done:
		t.Fatalf("ssh exited; stderr:\n%s", p.stderr)
	default:
	}

	logs := n.stderr.String()
	if !strings.Contains(logs, `msg="forwarding denied"`) || !strings.Contains(logs, `msg="auth attempt"`) {
		t.Errorf("serve logged no forwarding refusal or auth line:\n%s", logs)
	}
	for _, leak := range []string{"192.0.2.1", echoHost + ":" + echoPort} {
		if strings.Contains(logs, leak) {
			t.Errorf("serve's logs name the destination %s:\n%s", leak, logs)
		}
	}
	if echoHost != "127.0.0.1" && strings.Contains(logs, echoHost) {
		t.Errorf("serve's logs name the destination host %s:\n%s", echoHost, logs)
	}
	// A port as a value of its own (key=PORT, host:PORT, "PORT"), not digits inside a
	// fingerprint, timestamp or duration.
	for _, port := range []string{echoPort, "80"} {
		if regexp.MustCompile(`(^|[:= "])` + port + `([ "\n]|$)`).MatchString(logs) {
			t.Errorf("serve's logs hold the destination port %s:\n%s", port, logs)
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// TestSSHDynamicForwardCurl: ssh -N -D is a SOCKS proxy through the node, which curl
// uses to fetch a page.
func TestSSHDynamicForwardCurl(t *testing.T) {
	curl := curlTool(t)
	state, fp := newClientState(t)
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "page through the node\n")
	}))
	t.Cleanup(web.Close)
	n, _ := startServeConfig(t, forwardingConfig(fp))
	o := newOpenSSH(t, n)
	socks := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	p := o.start(t, filepath.Join(state, keyFileName), "-N", "-o", "ExitOnForwardFailure=yes", "-D", socks, "alice@127.0.0.1")
	p.dial(t, socks).Close() // readiness

	ctx, cancel := context.WithTimeout(t.Context(), 2*waitTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, curl, "--silent", "--show-error", "--max-time", "30", "--socks5-hostname", socks, web.URL+"/")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()} // no proxy variables
	out, err := cmd.CombinedOutput()
	if err != nil || string(out) != "page through the node\n" {
		t.Fatalf("curl through ssh -D: %v, %q; ssh stderr:\n%s", err, out, p.stderr)
	}
}

// sshKeygen runs ssh-keygen.
func sshKeygen(t *testing.T, keygen string, args ...string) {
	t.Helper()
	out, err := exec.CommandContext(t.Context(), keygen, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ssh-keygen %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// newSSHKey makes an Ed25519 key pair with ssh-keygen and returns the private key's path.
func newSSHKey(t *testing.T, keygen, name string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	sshKeygen(t, keygen, "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", path)
	return path
}

// TestSSHCertificatesOpenSSH logs in with OpenSSH user certificates signed by
// ssh-keygen: a valid one for alice is accepted with the CA's scopes; an expired one,
// one for another principal and one from another CA are refused.
func TestSSHCertificatesOpenSSH(t *testing.T) {
	keygen := sshTool(t, "ssh-keygen")
	ca := newSSHKey(t, keygen, "ca")
	otherCA := newSSHKey(t, keygen, "other-ca")
	caLine, err := os.ReadFile(ca + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	config := fmt.Sprintf("[ssh]\nexec_allow = [\"echo\"]\ncert_authorities = [%q]\ncert_authority_scopes = [\"ssh:exec\"]\n", strings.TrimSpace(string(caLine)))
	n, _ := startServeConfig(t, config)
	o := newOpenSSH(t, n)

	cases := []struct {
		name      string
		signer    string
		principal string
		validity  string
		ok        bool
	}{
		{"valid", ca, "alice", "+1h", true},
		{"expired", ca, "alice", "20200101:20200102", false},
		{"other principal", ca, "bob", "+1h", false},
		{"other CA", otherCA, "alice", "+1h", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			key := newSSHKey(t, keygen, "user")
			sshKeygen(t, keygen, "-q", "-s", tc.signer, "-I", "test-"+tc.name, "-n", tc.principal, "-V", tc.validity, key+".pub")
			r := o.run(t, key, "-o", "CertificateFile="+key+"-cert.pub", "alice@127.0.0.1", "echo", "cert ok")
			if tc.ok {
				if r.code != 0 || r.stdout != "cert ok\n" {
					t.Fatalf("certificate login: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
				}
				return
			}
			if r.code != 255 || r.stdout != "" || !strings.Contains(r.stderr, "Permission denied") {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit 255, permission denied", r.code, r.stdout, r.stderr)
			}
		})
	}
	// The bare key of a certificate is not a login of its own.
	key := newSSHKey(t, keygen, "bare")
	if r := o.run(t, key, "alice@127.0.0.1", "echo", "hi"); r.code != 255 {
		t.Errorf("bare key without a peer entry: exit %d, stdout %q", r.code, r.stdout)
	}
}

// TestSSHReload: SIGHUP applies a new [ssh] table to new connections; open ones keep
// theirs, and an invalid file keeps the old table.
func TestSSHReload(t *testing.T) {
	state, fp := newClientState(t)
	n, path := startServeConfig(t, "[ssh]\nexec_allow = [\"echo\"]\n"+peerTOML("alice", fp, "ssh:exec"))
	old := dialSSH(t, n, state)
	if _, code, err := execGo(t, old, "false"); err != nil || code != alkssh.RefusedExitStatus {
		t.Fatalf("false ran before it was allowed: %d, %v", code, err)
	}

	writeFile(t, path, "[ssh]\nexec_allow = [\"echo\", \"false\"]\n"+peerTOML("alice", fp, "ssh:exec"))
	if err := n.triggerReload(); err != nil {
		t.Fatalf("reload: %v", err)
	}
	c := dialSSH(t, n, state)
	if _, code, err := execGo(t, c, "false"); err != nil || code != 1 {
		t.Errorf("false after the reload: %d, %v; want exit status 1", code, err)
	}
	if _, code, err := execGo(t, old, "false"); err != nil || code != alkssh.RefusedExitStatus {
		t.Errorf("a connection opened before the reload took the new allow list: %d, %v", code, err)
	}

	writeFile(t, path, "[ssh]\nexec_allow = [\"echo\"]\n[[ssh.forwarding.rules]]\ntarget = \"cidr:10.0.0.0/33\"\naction = \"allow\"\n")
	err := n.triggerReload()
	if err == nil || !strings.Contains(err.Error(), "ssh.forwarding.rules[0].target") {
		t.Fatalf("reload of an invalid [ssh] table: %v", err)
	}
	c = dialSSH(t, n, state)
	if _, code, err := execGo(t, c, "false"); err != nil || code != 1 {
		t.Errorf("after a failed reload false: %d, %v; want the previous allow list", code, err)
	}
}

// testCAKey is an OpenSSH CA public key line (made with ssh-keygen).
const testCAKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEUzXQps8GI7wZwQ2jsiUVSLS1BwkGztBXQXMmkyNx61 ops-ca"

const sshSchemaExample = `
[ssh]
exec_allow = ["echo", "uptime"]
cert_authorities = ["` + testCAKey + `"]
cert_authority_scopes = ["ssh:exec"]
max_auth_attempts = 3
[ssh.forwarding]
default = "deny"
[[ssh.forwarding.rules]]
target = "cidr:127.0.0.0/8"
action = "allow"
principals = ["alice"]
[[ssh.forwarding.rules]]
target = "ports:*.internal:5432-5433"
action = "allow"
principals = ["ops"]
transports = ["quic", "tls"]
[[ssh.forwarding.rules]]
target = "any"
action = "deny"
`

func TestParseSSHConfig(t *testing.T) {
	nc, err := parseNodeConfig([]byte(sshSchemaExample), "")
	if err != nil {
		t.Fatal(err)
	}
	sc := nc.ssh
	if !reflect.DeepEqual(sc.execAllow, []string{"echo", "uptime"}) || sc.maxAuthAttempts != 3 {
		t.Errorf("exec_allow %q, max_auth_attempts %d", sc.execAllow, sc.maxAuthAttempts)
	}
	if len(sc.cas) != 1 || sc.cas[0].Comment != "ops-ca" || !reflect.DeepEqual(sc.cas[0].Scopes, []string{"ssh:exec"}) {
		t.Errorf("cert authorities %+v", sc.cas)
	}
	var rules []string
	for _, r := range sc.forwarding.Rules {
		rules = append(rules, fmt.Sprintf("%s %s %q %q", r.Target, r.Action, r.Principals, r.Transports))
	}
	want := []string{
		`cidr:127.0.0.0/8 allow ["alice"] []`,
		`ports:*.internal:5432-5433 allow ["ops"] ["quic" "tls"]`,
		`any deny [] []`,
	}
	if sc.forwarding.Default != alkssh.Deny || !reflect.DeepEqual(rules, want) {
		t.Errorf("forwarding default %s, rules\n%q\nwant\n%q", sc.forwarding.Default, rules, want)
	}

	// Defaults: nothing allowed.
	nc, err = parseNodeConfig([]byte("[limits]\nmax_connections = 5\n"), "")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(nc.ssh, sshSettings{}) {
		t.Errorf("no [ssh] table gives %+v, want the zero settings", nc.ssh)
	}
	// Other TOML forms of the same tables.
	nc, err = parseNodeConfig([]byte("ssh.exec_allow = [\"echo\"]\nssh.forwarding = { default = \"allow\", rules = [{ target = \"alknet\", action = \"deny\" }] }\n"), "")
	if err != nil {
		t.Fatal(err)
	}
	if nc.ssh.forwarding.Default != alkssh.Allow || len(nc.ssh.forwarding.Rules) != 1 || nc.ssh.forwarding.Rules[0].Target.String() != "alknet" {
		t.Errorf("dotted and inline forms: %+v", nc.ssh)
	}
}

func TestSSHConfigErrors(t *testing.T) {
	rule := func(body string) string { return "[[ssh.forwarding.rules]]\n" + body }
	cases := []struct {
		name, in, want string
	}{
		{"unknown ssh key", "[ssh]\nshell = true\n", `unknown key "ssh.shell"`},
		{"unknown forwarding key", "[ssh.forwarding]\npolicy = \"deny\"\n", `unknown key "ssh.forwarding.policy"`},
		{"unknown rule key", rule("target = \"any\"\naction = \"allow\"\nports = [22]\n"), `unknown key "ssh.forwarding.rules.ports"`},
		{"bad target", rule("target = \"cidr:10.0.0.0/33\"\naction = \"allow\"\n"), `ssh.forwarding.rules[0].target: invalid forwarding target "cidr:10.0.0.0/33"`},
		{"unknown target kind", rule("target = \"everything\"\naction = \"allow\"\n"), `ssh.forwarding.rules[0].target: invalid forwarding target "everything"`},
		{"missing target", rule("action = \"allow\"\n"), `ssh.forwarding.rules[0].target: missing`},
		{"bad action", rule("target = \"any\"\naction = \"permit\"\n"), `ssh.forwarding.rules[0].action: invalid action "permit"`},
		{"missing action", rule("target = \"any\"\n"), `ssh.forwarding.rules[0].action: missing`},
		{"second rule", rule("target = \"any\"\naction = \"deny\"\n") + rule("target = \"host:\"\naction = \"deny\"\n"), `ssh.forwarding.rules[1].target`},
		{"bad default", "[ssh.forwarding]\ndefault = \"Allow\"\n", `ssh.forwarding.default: invalid action "Allow"`},
		{"bad transport", rule("target = \"any\"\naction = \"allow\"\ntransports = [\"udp\"]\n"), `ssh.forwarding.rules[0].transports[0]: invalid transport "udp"`},
		{"empty principal", rule("target = \"any\"\naction = \"allow\"\nprincipals = [\"alice\", \"\"]\n"), `ssh.forwarding.rules[0].principals[1]: empty principal`},
		{"bad CA line", "[ssh]\ncert_authorities = [\"ssh-ed25519 not-base64\"]\n", `ssh.cert_authorities[0]: invalid key`},
		{"CA option", "[ssh]\ncert_authorities = ['command=\"/bin/sh\" " + testCAKey + "']\n", `ssh.cert_authorities[0]: invalid key: CA line: unsupported option`},
		{"empty scope", "[ssh]\ncert_authority_scopes = [\"\"]\n", `ssh.cert_authority_scopes[0]: empty scope`},
		{"program with a slash", "[ssh]\nexec_allow = [\"/bin/sh\"]\n", `ssh.exec_allow[0]: invalid program name "/bin/sh"`},
		{"empty program", "[ssh]\nexec_allow = [\"echo\", \"\"]\n", `ssh.exec_allow[1]: invalid program name ""`},
		{"wrong type", "[ssh]\nexec_allow = \"echo\"\n", `exec_allow`},
		{"wrong attempts type", "[ssh]\nmax_auth_attempts = \"six\"\n", `max_auth_attempts`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseNodeConfig([]byte(tc.in), "")
			if err == nil {
				t.Fatalf("accepted:\n%s", tc.in)
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.want) || strings.ContainsAny(msg, "\r\n") {
				t.Errorf("error %q, want one line with %q", msg, tc.want)
			}
		})
	}

	// serve refuses such a file with exit 2 and the key in the message.
	path := filepath.Join(t.TempDir(), "alknet.toml")
	writeFile(t, path, cases[3].in)
	c := &cli{stdin: strings.NewReader(""), stdout: io.Discard, stderr: io.Discard,
		ready: func(serveInfo) { t.Error("serve got ready with an invalid [ssh] table") }}
	err := c.run(t.Context(), []string{"serve", "--state", t.TempDir(), "--listen", "127.0.0.1:0", "--config", path})
	if line := checkOneLine(t, err, exitUsage); !strings.Contains(line, path) || !strings.Contains(line, "ssh.forwarding.rules[0].target") {
		t.Errorf("serve with a bad target: %q", line)
	}
}
