package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/alknet/alknet/core/coretest"
	"github.com/alknet/alknet/core/tlsconf"
	"github.com/alknet/alknet/vault"
)

// connectRun is an in-process `alknet connect`.
type connectRun struct {
	lines  []string // stdout up to and including "ready"
	stderr *syncBuffer
	cancel context.CancelFunc
	done   chan error
}

// startConnect runs connect with args in-process (its own ctx, like a SIGINT would end
// it) and waits for its "ready" line. On failure before ready it returns the error.
func startConnect(t *testing.T, args ...string) (*connectRun, error) {
	t.Helper()
	r := &connectRun{stderr: &syncBuffer{}, done: make(chan error, 1)}
	pr, pw := io.Pipe()
	c := &cli{stdin: strings.NewReader(""), stdout: pw, stderr: r.stderr}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() {
		err := c.run(ctx, append([]string{"connect"}, args...))
		pw.Close()
		r.done <- err
	}()
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		r.lines = append(r.lines, sc.Text())
		if sc.Text() == "ready" {
			break
		}
	}
	if len(r.lines) == 0 || r.lines[len(r.lines)-1] != "ready" {
		cancel()
		return nil, <-r.done
	}
	go io.Copy(io.Discard, pr)
	t.Cleanup(func() {
		if r.cancel != nil {
			r.stop(t)
		}
	})
	return r, nil
}

// stop cancels connect and checks that it exits 0.
func (r *connectRun) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	r.cancel = nil
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("connect returned %v after cancel, want nil (exit 0)", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("connect did not return after cancel")
	}
}

// addr returns the address of the stdout line "<prefix> <addr>".
func (r *connectRun) addr(t *testing.T, prefix string) string {
	t.Helper()
	for _, l := range r.lines {
		if a, ok := strings.CutPrefix(l, prefix+" "); ok {
			return a
		}
	}
	t.Fatalf("no %q line in %q", prefix, r.lines)
	return ""
}

// socks5Echo connects through the SOCKS5 proxy at proxy to the IPv4 target and checks an
// echo round trip, with hand-written RFC 1928 bytes.
func socks5Echo(t *testing.T, proxy, target, msg string) {
	t.Helper()
	ap := netip.MustParseAddrPort(target)
	c, err := net.DialTimeout("tcp", proxy, waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(waitTimeout))
	if _, err := c.Write([]byte{5, 1, 0}); err != nil { // version 5, one method: no auth
		t.Fatal(err)
	}
	reply := make([]byte, 2)
	if _, err := io.ReadFull(c, reply); err != nil || !bytes.Equal(reply, []byte{5, 0}) {
		t.Fatalf("SOCKS5 greeting reply %x, %v", reply, err)
	}
	ip := ap.Addr().As4()
	req := append([]byte{5, 1, 0, 1}, ip[:]...) // CONNECT, IPv4
	req = binary.BigEndian.AppendUint16(req, ap.Port())
	if _, err := c.Write(req); err != nil {
		t.Fatal(err)
	}
	reply = make([]byte, 10)
	if _, err := io.ReadFull(c, reply); err != nil || reply[0] != 5 || reply[1] != 0 {
		t.Fatalf("SOCKS5 CONNECT reply %x, %v", reply, err)
	}
	if got := roundTrip(t, c, msg); got != msg {
		t.Fatalf("echo through SOCKS5: %q, want %q", got, msg)
	}
}

// connectConfig lets the peer "laptop" (fp) forward to 127.0.0.0/8 and ask for remote
// forwards.
func connectConfig(fp string) string {
	return `[ssh.forwarding]
[[ssh.forwarding.rules]]
target = "cidr:127.0.0.0/8"
action = "allow"
principals = ["laptop"]
` + peerTOML("laptop", fp, "ssh:remote-forward")
}

// TestConnect runs `alknet connect` end to end over both transports: a SOCKS5 proxy, a
// -L and a -R forward, each carrying an echo round trip, then a cancel ends it with
// exit 0.
func TestConnect(t *testing.T) {
	state, fp := newClientState(t)
	echo := echoServer(t, "127.0.0.1:0")
	n, _ := startServeConfig(t, connectConfig(fp))
	for _, network := range pipeNetworks {
		t.Run(network.name, func(t *testing.T) {
			args := append([]string{"--state", state, "--pin", n.fp, "--socks", "127.0.0.1:0",
				"-L", "127.0.0.1:0:" + echo, "-R", "127.0.0.1:0:" + echo}, network.extra...)
			r, err := startConnect(t, append(args, n.quic)...)
			if err != nil {
				t.Fatalf("connect: %v", err)
			}
			if len(r.lines) != 4 || !strings.HasPrefix(r.lines[0], "socks 127.0.0.1:") ||
				!strings.HasPrefix(r.lines[1], "local 127.0.0.1:0:"+echo+" 127.0.0.1:") ||
				!strings.HasPrefix(r.lines[2], "remote 127.0.0.1:0:"+echo+" 127.0.0.1:") {
				t.Fatalf("stdout %q, want socks, local, remote and ready lines", r.lines)
			}
			local := strings.Fields(r.lines[1])[2]
			remote := strings.Fields(r.lines[2])[2]
			echoVia(t, local, "through -L")
			socks5Echo(t, r.addr(t, "socks"), echo, "through SOCKS5")
			echoVia(t, remote, "through -R") // on the node's loopback, back through the client
			echoVia(t, local, "again")
			r.stop(t)
			if _, err := net.DialTimeout("tcp", local, time.Second); err == nil {
				t.Error("the -L listener is still open after connect returned")
			}
			if strings.Contains(r.stderr.String(), "level=WARN") || strings.Contains(r.stderr.String(), "level=ERROR") {
				t.Errorf("connect warned:\n%s", r.stderr)
			}
		})
	}
}

// TestConnectPolicy: the node's policy still applies: a SOCKS5 CONNECT to a denied
// target is refused (reply "not allowed by ruleset"), and without the
// ssh:remote-forward scope no -R listener is bound.
func TestConnectPolicy(t *testing.T) {
	state, fp := newClientState(t)
	n, _ := startServeConfig(t, "[[ssh.forwarding.rules]]\ntarget = \"cidr:127.0.0.0/8\"\naction = \"allow\"\n"+peerTOML("laptop", fp))
	r, err := startConnect(t, "--state", state, "--pin", n.fp, "--socks", "127.0.0.1:0", "-R", "127.0.0.1:0:127.0.0.1:9", n.quic)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	if len(r.lines) != 2 {
		t.Errorf("stdout %q, want socks and ready only (the -R forward was refused)", r.lines)
	}
	c, err := net.DialTimeout("tcp", r.addr(t, "socks"), waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(waitTimeout))
	c.Write([]byte{5, 1, 0})
	c.Write([]byte{5, 1, 0, 1, 192, 0, 2, 1, 0, 80}) // 192.0.2.1:80, outside the rule
	reply := make([]byte, 12)
	if _, err := io.ReadFull(c, reply); err != nil || reply[2] != 5 || reply[3] != 2 {
		t.Errorf("SOCKS5 CONNECT to a denied target: reply %x, %v; want 05 00 then 05 02 (not allowed by ruleset)", reply, err)
	}
	if !strings.Contains(r.stderr.String(), "remote forward refused") {
		t.Errorf("no warning about the refused -R forward:\n%s", r.stderr)
	}
}

// TestConnectInsecure: with --insecure and no --host-key, the SSH host key is checked
// against the fingerprint the server presented in TLS.
func TestConnectInsecure(t *testing.T) {
	state, fp := newClientState(t)
	echo := echoServer(t, "127.0.0.1:0")
	n, _ := startServeConfig(t, connectConfig(fp))
	r, err := startConnect(t, "--state", state, "--insecure", "--tcp", "--socks", "", "-L", "127.0.0.1:0:"+echo, n.tcp)
	if err != nil {
		t.Fatalf("connect --insecure: %v", err)
	}
	if len(r.lines) != 2 || !strings.HasPrefix(r.lines[0], "local ") {
		t.Fatalf("stdout %q, want one local line (--socks \"\" disables the proxy) and ready", r.lines)
	}
	echoVia(t, strings.Fields(r.lines[0])[2], "insecure but consistent")
	want := "alknet: warning: --insecure: server identity not verified (fingerprint " + n.fp + ")\n"
	if !strings.HasPrefix(r.stderr.String(), want) {
		t.Errorf("stderr %q, want it to start with %q", r.stderr, want)
	}
	r.stop(t)
}

// TestConnectFailures: the first connection failing is exit 1 with one line saying why.
func TestConnectFailures(t *testing.T) {
	state, fp := newClientState(t)
	n, _ := startServeConfig(t, connectConfig(fp))
	other := coretest.NewIdentity(t).Fingerprint
	stranger, _ := newClientState(t)
	cases := []struct {
		name string
		args []string
		want []string
	}{
		{"wrong host key", []string{"--state", state, "--pin", n.fp, "--host-key", other, n.quic},
			[]string{"is not the expected SSH server", "host key mismatch", "--host-key"}},
		{"wrong pin", []string{"--state", state, "--pin", other, n.quic},
			[]string{"is not the pinned server", "fingerprint mismatch"}},
		{"unknown key", []string{"--state", stranger, "--pin", n.fp, n.quic},
			[]string{"refused the SSH login", "[[peers]]"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := startConnect(t, append(tc.args, "--socks", "127.0.0.1:0")...)
			if err == nil {
				t.Fatal("connect got ready")
			}
			line := checkOneLine(t, err, exitFailure)
			for _, w := range append(tc.want, "alknet: connect: ") {
				if !strings.Contains(line, w) {
					t.Errorf("message %q lacks %q", line, w)
				}
			}
		})
	}
	// A busy local port: exit 1 before anything is printed.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, err = startConnect(t, "--state", state, "--pin", n.fp, "--socks", ln.Addr().String(), n.quic)
	if line := checkOneLine(t, err, exitFailure); !strings.Contains(line, "SOCKS5 listener "+ln.Addr().String()) {
		t.Errorf("busy --socks port: %q", line)
	}
}

func TestConnectUsage(t *testing.T) {
	fp := coretest.NewIdentity(t).Fingerprint
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"bad spec", []string{"--pin", fp, "-L", "1:2:3", "127.0.0.1:1"}, "connect: invalid spec 1:2:3"},
		{"bad remote spec", []string{"--pin", fp, "-R", "127.0.0.1:99999:127.0.0.1:80", "127.0.0.1:1"}, "connect: invalid spec 127.0.0.1:99999:127.0.0.1:80"},
		{"destination port 0", []string{"--pin", fp, "-L", "127.0.0.1:0:127.0.0.1:0", "127.0.0.1:1"}, "connect: invalid spec 127.0.0.1:0:127.0.0.1:0"},
		{"no pin", []string{"127.0.0.1:1"}, "--pin"},
		{"pin and insecure", []string{"--pin", fp, "--insecure", "127.0.0.1:1"}, "--pin and --insecure"},
		{"bad host key", []string{"--pin", fp, "--host-key", "ed25519:beef", "127.0.0.1:1"}, "--host-key"},
		{"bad socks", []string{"--pin", fp, "--socks", "1080", "127.0.0.1:1"}, "--socks"},
		{"nothing to do", []string{"--pin", fp, "--socks", "", "127.0.0.1:1"}, "nothing to do"},
		{"empty user", []string{"--pin", fp, "--user", "", "127.0.0.1:1"}, "--user"},
		{"no address", []string{"--pin", fp}, "missing HOST:PORT"},
		{"two addresses", []string{"--pin", fp, "127.0.0.1:1", "127.0.0.1:2"}, "want one HOST:PORT"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			c := &cli{stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr}
			err := c.run(t.Context(), append([]string{"connect", "--state", t.TempDir()}, tc.args...))
			var ue *usageError
			if !errors.As(err, &ue) {
				t.Fatalf("error %v (%T), want a usage error", err, err)
			}
			line := checkOneLine(t, err, exitUsage)
			if !strings.Contains(line, tc.want) {
				t.Errorf("message %q lacks %q", line, tc.want)
			}
			if stdout.Len() != 0 || stderr.Len() != 0 {
				t.Errorf("printed stdout %q, stderr %q", stdout.String(), stderr.String())
			}
		})
	}
}

// TestConnectVault: a node running from a vault keystore uses the vault's SSH host key
// (vault.PathSSHHost), not its identity key: connect needs it with --host-key.
func TestConnectVault(t *testing.T) {
	pass := secretFile(t, "ssh passphrase\n")
	nodeState := recoverAbandon(t, pass)
	state, fp := newClientState(t)
	echo := echoServer(t, "127.0.0.1:0")
	n, _ := startServeConfig(t, connectConfig(fp), "--state", nodeState, "--passphrase-file", pass)

	m, err := vault.ParseMnemonic([]byte(abandonPhrase))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Destroy()
	v := vault.New()
	defer v.Lock()
	if err := v.UnlockMnemonic(m, nil); err != nil {
		t.Fatal(err)
	}
	key, err := vaultEd25519(v, vault.PathSSHHost, "SSH host key")
	if err != nil {
		t.Fatal(err)
	}
	if want := tlsconf.Fingerprint(key); n.hostKey != want || n.fp != abandonFP {
		t.Fatalf("serve from the vault: fingerprint %s, ssh-host-key %s; want %s and the vault's SSH host key %s", n.fp, n.hostKey, abandonFP, want)
	}

	// Over SSH (auto would take alknet/forward, which has no SSH host key).
	_, err = startConnect(t, "--state", state, "--pin", n.fp, "--via", "ssh", "--socks", "127.0.0.1:0", n.quic)
	if line := checkOneLine(t, err, exitFailure); !strings.Contains(line, "host key mismatch") || !strings.Contains(line, n.hostKey) {
		t.Errorf("connect to a vault node by --pin alone: %q", line)
	}
	r, err := startConnect(t, "--state", state, "--pin", n.fp, "--host-key", n.hostKey, "--socks", "", "-L", "127.0.0.1:0:"+echo, n.quic)
	if err != nil {
		t.Fatalf("connect with the vault's host key: %v", err)
	}
	echoVia(t, r.addr(t, "local 127.0.0.1:0:"+echo), "vault host key")
	r.stop(t)
}
