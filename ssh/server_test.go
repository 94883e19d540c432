package ssh_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/core/coretest"
	"github.com/alknet/alknet/core/endpoint"
	"github.com/alknet/alknet/ssh"
)

// TestRoundTrip runs exec over TCP loopback, QUIC and TCP+TLS: output, exit status
// and stdin streaming.
func TestRoundTrip(t *testing.T) {
	for _, st := range stStarters {
		t.Run(st.name, func(t *testing.T) {
			user := stSigner(t)
			n := st.start(t, ssh.Config{
				Identities: stNewIdentities().add(user, "alice", ssh.ScopeExec),
				Exec:       stEchoExec(),
			})
			c := n.mustDial(t, user)

			r := stRun(t, c.Client, `echo hello 'big world'`, nil)
			if r.Err != nil || r.Stdout != "hello big world\n" || r.Stderr != "" {
				t.Fatalf("echo: stdout %q stderr %q err %v; want %q, no error", r.Stdout, r.Stderr, r.Err, "hello big world\n")
			}

			r = stRun(t, c.Client, "false", nil)
			var ee *gossh.ExitError
			if !errors.As(r.Err, &ee) || ee.ExitStatus() != 1 {
				t.Fatalf("false: err %v (%T), want *gossh.ExitError with status 1", r.Err, r.Err)
			}

			in := bytes.Repeat([]byte("stdin streaming\x00\xff"), 20000) // 340 kB, beyond a window
			r = stRun(t, c.Client, "cat", in)
			if r.Err != nil || r.Stdout != string(in) {
				t.Fatalf("cat: %d bytes back (want %d), err %v", len(r.Stdout), len(in), r.Err)
			}

			// Several sessions at once on one connection.
			outs := make(chan stResult, 4)
			for i := range 4 {
				go func() { outs <- stRun(t, c.Client, "echo "+strconv.Itoa(i), nil) }()
			}
			var got []string
			for range 4 {
				select {
				case r := <-outs:
					if r.Err != nil {
						t.Fatalf("concurrent exec: %v", r.Err)
					}
					got = append(got, r.Stdout)
				case <-time.After(stFailSafe):
					t.Fatal("concurrent exec did not finish")
				}
			}
			slices.Sort(got)
			if !slices.Equal(got, []string{"0\n", "1\n", "2\n", "3\n"}) {
				t.Fatalf("concurrent exec output %q", got)
			}
		})
	}
}

// TestServerALPN pins the handler's protocol name.
func TestServerALPN(t *testing.T) {
	srv, err := ssh.NewServer(ssh.Config{HostKey: stSigner(t)})
	if err != nil {
		t.Fatal(err)
	}
	if srv.ALPN() != "alknet/ssh" || ssh.ALPN != "alknet/ssh" {
		t.Fatalf("ALPN = %q / %q, want alknet/ssh", srv.ALPN(), ssh.ALPN)
	}
}

// TestNewServerConfigErrors: a missing host key or a CA without a key is ErrConfig;
// a failed Reload keeps the old configuration.
func TestNewServerConfigErrors(t *testing.T) {
	if _, err := ssh.NewServer(ssh.Config{}); !errors.Is(err, ssh.ErrConfig) {
		t.Errorf("NewServer without HostKey: %v, want ErrConfig", err)
	}
	if _, err := ssh.NewServer(ssh.Config{HostKey: stSigner(t), CertAuthorities: []ssh.CertAuthority{{Comment: "no key"}}}); !errors.Is(err, ssh.ErrConfig) {
		t.Errorf("NewServer with keyless CA: %v, want ErrConfig", err)
	}

	user := stSigner(t)
	n := stStartTCP(t, ssh.Config{Identities: stNewIdentities().add(user, "alice", ssh.ScopeExec), Exec: stEchoExec()})
	if err := n.Srv.Reload(ssh.Config{}); !errors.Is(err, ssh.ErrConfig) {
		t.Fatalf("Reload without HostKey: %v, want ErrConfig", err)
	}
	c := n.mustDial(t, user) // still the old configuration: same host key, same identities
	stMustEcho(t, c.Client)
}

// TestReloadSubsystemsCopied: the server copies the Subsystems map, so a caller
// mutating its map afterwards changes nothing.
func TestReloadSubsystemsCopied(t *testing.T) {
	user := stSigner(t)
	subs := stSubsystems()
	n := stStartTCP(t, ssh.Config{Identities: stNewIdentities().add(user, "alice"), Subsystems: subs})
	delete(subs, stWhoamiName)
	c := n.mustDial(t, user)
	if id := stIdentityOf(t, c.Client); id.ID != "alice" {
		t.Fatalf("identity %q, want alice", id.ID)
	}
}

// TestServeMaxConnectionsPerIP: with a cap of 1, a second concurrent connection from
// 127.0.0.1 is closed before its handshake while the first keeps working, and the
// slot is freed when the first ends.
func TestServeMaxConnectionsPerIP(t *testing.T) {
	user := stSigner(t)
	n := stStartTCP(t, ssh.Config{
		Identities:          stNewIdentities().add(user, "alice", ssh.ScopeExec),
		Exec:                stEchoExec(),
		MaxConnectionsPerIP: 1,
	})
	first := n.mustDial(t, user)
	if _, err := n.dial(t, ssh.ClientConfig{Signer: user}); err == nil {
		t.Fatal("second connection from the same IP logged in; want it closed")
	}
	rej := n.Logs.wait(t, "connection rejected", 1)
	if !strings.HasPrefix(rej[0].Attr["remote_addr"], "127.0.0.1:") {
		t.Errorf("connection rejected line without remote_addr: %s", rej[0].Line)
	}
	stMustEcho(t, first.Client)

	// Freed on close: "connection closed" is logged just before the slot is released,
	// so a few attempts may still be refused; each attempt is a full handshake.
	_ = first.Close()
	n.Logs.wait(t, "connection closed", 1)
	var err error
	for range 200 {
		var c *ssh.Client
		if c, err = n.dial(t, ssh.ClientConfig{Signer: user}); err == nil {
			stMustEcho(t, c.Client)
			break
		}
	}
	if err != nil {
		t.Fatalf("connection after the first one closed: %v", err)
	}
}

// TestServeUnlimitedConnections: MaxConnectionsPerIP 0 is unlimited.
func TestServeUnlimitedConnections(t *testing.T) {
	user := stSigner(t)
	n := stStartTCP(t, ssh.Config{Identities: stNewIdentities().add(user, "alice", ssh.ScopeExec), Exec: stEchoExec()})
	var cs []*ssh.Client
	for range 5 {
		cs = append(cs, n.mustDial(t, user))
	}
	for _, c := range cs {
		stMustEcho(t, c.Client)
	}
	if rs := n.Logs.records("connection rejected"); len(rs) != 0 {
		t.Fatalf("connections rejected: %v", rs)
	}
}

// TestServeReturnsOnCancel: Serve returns nil after its context is cancelled, with an
// authenticated connection open and another one stuck before its SSH version line.
func TestServeReturnsOnCancel(t *testing.T) {
	user := stSigner(t)
	n := stStartTCP(t, ssh.Config{Identities: stNewIdentities().add(user, "alice", ssh.ScopeExec), Exec: stEchoExec()})
	c := n.mustDial(t, user)
	silent, err := net.Dial("tcp", n.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	n.Logs.wait(t, "connection opened", 2)

	n.stop(t) // fails the test unless Serve returns nil within the fail-safe

	waitDone := make(chan error, 1)
	go func() { waitDone <- c.Wait() }()
	stWaitErr(t, "client Wait after server stop", waitDone)
	_ = silent.SetReadDeadline(time.Now().Add(stFailSafe))
	if _, err := io.ReadAll(silent); err != nil && !errors.Is(err, net.ErrClosed) && !stIsConnReset(err) {
		t.Fatalf("silent connection: %v, want it closed by the server", err)
	}
	if _, err := net.Dial("tcp", n.Addr); err == nil {
		t.Fatal("listener still accepting after Serve returned")
	}
}

func stIsConnReset(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "reset by peer") || strings.Contains(err.Error(), "broken pipe"))
}

// TestServeListenerError: Serve returns the listener's error when the listener fails
// on its own.
func TestServeListenerError(t *testing.T) {
	srv, err := ssh.NewServer(ssh.Config{HostKey: stSigner(t)})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_ = ln.Close()
	done := make(chan error, 1)
	go func() { done <- srv.Serve(context.Background(), ln) }()
	if err := stWaitErr(t, "Serve on a closed listener", done); err == nil {
		t.Fatal("Serve on a closed listener returned nil")
	}
}

// TestServerHandshakeTimeout: a client that never speaks is dropped after
// HandshakeTimeout. (The server's version line is written under the same deadline,
// so on a busy machine the 50 ms can run out before it is sent: whatever arrives
// must start that line, but it may be missing. Without the timeout the read would
// end with the fail-safe deadline instead of EOF.)
func TestServerHandshakeTimeout(t *testing.T) {
	n := stStartTCP(t, ssh.Config{HandshakeTimeout: 50 * time.Millisecond})
	c, err := net.Dial("tcp", n.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(stFailSafe))
	b, err := io.ReadAll(c) // the server's version line, then EOF
	if err != nil && !stIsConnReset(err) {
		t.Fatalf("read: %v (want EOF from the server's timeout)", err)
	}
	const version = "SSH-2.0-"
	if k := min(len(b), len(version)); string(b[:k]) != version[:k] {
		t.Fatalf("server sent %q, want nothing or its SSH version line", b)
	}
	n.Logs.wait(t, "connection closed", 1)
}

// TestServeConnContextCancel: ServeConn returns when its context ends, for an
// authenticated connection.
func TestServeConnContextCancel(t *testing.T) {
	user := stSigner(t)
	host := stSigner(t)
	srv, err := ssh.NewServer(ssh.Config{HostKey: host, Identities: stNewIdentities().add(user, "alice")})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		done <- srv.ServeConn(ctx, c, ssh.TransportTCP)
	}()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c, err := ssh.NewClientConn(stCtx(t), nc, ln.Addr().String(), ssh.ClientConfig{Signer: user, HostKey: ssh.KeyFingerprint(host.PublicKey())})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cancel()
	if err := stWaitErr(t, "ServeConn after cancel", done); err != nil {
		t.Fatalf("ServeConn: %v, want nil", err)
	}
	waitDone := make(chan error, 1)
	go func() { waitDone <- c.Wait() }()
	stWaitErr(t, "client Wait", waitDone)
}

// TestHandleExtraStreamsRefused: on alknet/ssh over QUIC the first stream carries SSH
// and further streams are closed, without disturbing the session.
func TestHandleExtraStreamsRefused(t *testing.T) {
	user := stSigner(t)
	host := stSigner(t)
	srv, err := ssh.NewServer(ssh.Config{
		HostKey: host, Identities: stNewIdentities().add(user, "alice", ssh.ScopeExec), Exec: stEchoExec(),
	})
	if err != nil {
		t.Fatal(err)
	}
	reg := core.NewRegistry()
	if err := reg.Register(srv); err != nil {
		t.Fatal(err)
	}
	ts := coretest.NewServer(t, reg)
	conn := ts.Dial(t, ssh.ALPN, coretest.NewIdentity(t), endpoint.NetworkQUIC)
	ctx := stCtx(t)
	st, err := conn.OpenBi(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ssh.NewClientConn(ctx, core.NetConn(st, conn.LocalAddr(), conn.RemoteAddr()), ts.Addr, ssh.ClientConfig{Signer: user, HostKey: ssh.KeyFingerprint(host.PublicKey())})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	stMustEcho(t, c.Client)

	extra, err := conn.OpenBi(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	if _, err := extra.Write([]byte("SSH-2.0-second\r\n")); err != nil {
		t.Fatal(err)
	}
	if d, ok := extra.(interface{ SetReadDeadline(time.Time) error }); ok {
		_ = d.SetReadDeadline(time.Now().Add(stFailSafe))
	}
	b, err := io.ReadAll(extra)
	if len(b) != 0 {
		t.Fatalf("second stream answered %q (err %v); want it closed", b, err)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("second stream was never closed by the server")
	}
	stMustEcho(t, c.Client)
}

// TestHandleAuthenticatedConnectionOutlivesIdleTimeout: on alknet/ssh an
// authenticated session stays up however long it is quiet (the handler marks the
// connection busy), while a connection that never authenticates is closed by the
// endpoint's idle timeout. Two such connections, opened one after the other once the
// session went quiet, are the clock: when the second is closed, the session has been
// quiet for more than twice the idle timeout.
func TestHandleAuthenticatedConnectionOutlivesIdleTimeout(t *testing.T) {
	for _, network := range []endpoint.Network{endpoint.NetworkQUIC, endpoint.NetworkTCP} {
		t.Run(network.String(), func(t *testing.T) {
			user, host := stSigner(t), stSigner(t)
			srv, err := ssh.NewServer(ssh.Config{
				HostKey: host, Identities: stNewIdentities().add(user, "alice", ssh.ScopeExec), Exec: stEchoExec(),
				HandshakeTimeout: 3 * stFailSafe,
			})
			if err != nil {
				t.Fatal(err)
			}
			reg := core.NewRegistry()
			if err := reg.Register(srv); err != nil {
				t.Fatal(err)
			}
			const idle = 150 * time.Millisecond
			ts := coretest.NewServer(t, reg, coretest.WithConfig(core.DynamicConfig{Limits: core.Limits{IdleTimeout: idle}}))
			client := coretest.NewIdentity(t)
			ctx := stCtx(t)
			c, err := ssh.Dial(ctx, ts.Addr, ssh.ClientConfig{Transport: ts.DialOptions(client, network), Signer: user, HostKey: ssh.KeyFingerprint(host.PublicKey())})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			stMustEcho(t, c.Client)

			for i := range 2 {
				conn := ts.Dial(t, ssh.ALPN, client, network)
				st, err := conn.OpenBi(ctx)
				if err != nil {
					t.Fatal(err)
				}
				// A version line and nothing more: the server answers with its own and
				// its key exchange offer, then waits for a login that never comes.
				if _, err := st.Write([]byte("SSH-2.0-quiet\r\n")); err != nil {
					t.Fatal(err)
				}
				if d, ok := st.(interface{ SetReadDeadline(time.Time) error }); ok {
					_ = d.SetReadDeadline(time.Now().Add(stFailSafe))
				}
				// Only the idle timeout closes it before the fail-safe: the SSH
				// handshake timeout is longer.
				_, err = io.Copy(io.Discard, st)
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					t.Fatalf("unauthenticated connection %d never closed", i)
				}
				var ce *core.CloseError
				if network == endpoint.NetworkQUIC && (!errors.As(err, &ce) || ce.Code != core.CloseIdleTimeout) {
					t.Fatalf("unauthenticated connection %d closed with %v, want the idle timeout", i, err)
				}
			}
			stMustEcho(t, c.Client) // the quiet session is still up
		})
	}
}

// TestLogEventShapes pins the three connection events and the auth lines, over every
// transport: "connection opened" (remote_addr, transport), "auth attempt"
// (remote_addr, user, key_fingerprint, result), "connection closed" (remote_addr,
// duration), and the shared fail2ban line on rejects.
func TestLogEventShapes(t *testing.T) {
	for _, st := range stStarters {
		t.Run(st.name, func(t *testing.T) {
			good, bad := stSigner(t), stSigner(t)
			n := st.start(t, ssh.Config{Identities: stNewIdentities().add(good, "alice")})

			if _, err := n.dial(t, ssh.ClientConfig{Signer: bad, User: "mallory"}); err == nil {
				t.Fatal("unknown key logged in")
			}
			c, err := n.dial(t, ssh.ClientConfig{Signer: good, User: "alice"})
			if err != nil {
				t.Fatal(err)
			}
			_ = c.Close()
			closed := n.Logs.wait(t, "connection closed", 2)

			opened := n.Logs.records("connection opened")
			if len(opened) != 2 {
				t.Fatalf("%d connection opened lines, want 2:\n%s", len(opened), n.Logs)
			}
			for _, r := range opened {
				stCheckShape(t, r, "INFO", "remote_addr", "transport")
				if r.Attr["transport"] != n.Transport {
					t.Errorf("transport=%q, want %q", r.Attr["transport"], n.Transport)
				}
				if !strings.HasPrefix(r.Attr["remote_addr"], "127.0.0.1:") {
					t.Errorf("remote_addr=%q, want 127.0.0.1:<port>", r.Attr["remote_addr"])
				}
			}
			for _, r := range closed {
				stCheckShape(t, r, "INFO", "remote_addr", "duration")
				if _, err := time.ParseDuration(r.Attr["duration"]); err != nil {
					t.Errorf("duration=%q: %v", r.Attr["duration"], err)
				}
			}

			attempts := n.Logs.records("auth attempt")
			var accepts, rejects []stRecord
			for _, r := range attempts {
				// "method" is an extra attribute the server adds; the four of the
				// spec must be there.
				stCheckShape(t, r, "INFO", "remote_addr", "user", "method", "key_fingerprint", "result")
				switch r.Attr["result"] {
				case "accept":
					accepts = append(accepts, r)
				case "reject":
					rejects = append(rejects, r)
				default:
					t.Errorf("result=%q, want accept or reject", r.Attr["result"])
				}
			}
			if len(accepts) != 1 || accepts[0].Attr["user"] != "alice" ||
				accepts[0].Attr["key_fingerprint"] != ssh.KeyFingerprint(good.PublicKey()) {
				t.Errorf("accept lines %v, want one for alice with the good key", accepts)
			}
			if len(rejects) != 1 || rejects[0].Attr["user"] != "mallory" ||
				rejects[0].Attr["key_fingerprint"] != ssh.KeyFingerprint(bad.PublicKey()) {
				t.Errorf("reject lines %v, want one for mallory with the unknown key", rejects)
			}
			fails := n.Logs.records(core.AuthFailureMessage)
			if len(fails) != 1 {
				t.Fatalf("%d auth failure lines, want 1:\n%s", len(fails), n.Logs)
			}
			f := fails[0]
			if f.Attr["level"] != "WARN" || f.Attr["remote_ip"] != "127.0.0.1" || f.Attr["alpn"] != ssh.ALPN {
				t.Errorf("auth failure line %q: want level=WARN remote_ip=127.0.0.1 alpn=alknet/ssh", f.Line)
			}
			if !regexp.MustCompile(`msg="auth failure" remote_ip=127\.0\.0\.1 `).MatchString(f.Line) {
				t.Errorf("auth failure line %q does not match the fail2ban regex", f.Line)
			}
		})
	}
}

// stCheckShape checks a record's level and that its attributes after msg are exactly
// keys, in order.
func stCheckShape(t testing.TB, r stRecord, level string, keys ...string) {
	t.Helper()
	if r.Attr["level"] != level {
		t.Errorf("%q: level %q, want %s", r.Line, r.Attr["level"], level)
	}
	i := slices.Index(r.Keys, "msg")
	if i < 0 || !slices.Equal(r.Keys[i+1:], keys) {
		t.Errorf("%q: attributes %v, want %v", r.Line, r.Keys, keys)
	}
}

// TestLogsNoForwardDestination: direct-tcpip channels that are allowed, denied by
// policy, reserved, unresolvable or unreachable leave no log line naming the
// destination host or port.
func TestLogsNoForwardDestination(t *testing.T) {
	const (
		host       = "target-host.test"
		deniedHost = "denied-host.test"
		deadHost   = "dead-host.test"
		deniedPort = 47211
	)
	user := stSigner(t)
	echoAddr, echoPort := stEchoServer(t)
	_ = echoAddr
	closed := stClosedPort(t)
	n := stStartTCP(t, ssh.Config{
		Identities: stNewIdentities().add(user, "alice"),
		Resolver: stResolver{
			host:       {stMustAddr("127.0.0.1")},
			deniedHost: {stMustAddr("10.9.8.7")},
			deadHost:   {stMustAddr("127.0.0.1")},
		},
		Forwarding: stPolicy(t, ssh.Allow, "cidr:10.0.0.0/8", ssh.Deny, "ports:"+host+":"+strconv.Itoa(deniedPort), ssh.Deny),
	})
	c := n.mustDial(t, user)
	ctx := stCtx(t)

	conn, err := c.Open(ctx, host, echoPort)
	if err != nil {
		t.Fatalf("allowed forward: %v", err)
	}
	stEcho(t, conn, 4096)
	_ = conn.Close()

	probes := []struct {
		host string
		port uint16
	}{
		{host, deniedPort},          // denied by a ports rule
		{deniedHost, echoPort},      // resolves into a denied CIDR
		{deadHost, closed},          // unreachable
		{"unknown-host.test", 4321}, // does not resolve
		{"alknet-control", 0},       // reserved
	}
	for _, p := range probes {
		if conn, err := c.Open(ctx, p.host, p.port); err == nil {
			_ = conn.Close()
			t.Fatalf("forward to %s:%d opened", p.host, p.port)
		}
	}
	stMustHaveSession(t, c.Client)
	_ = c.Close()
	n.stop(t)

	logs := n.Logs.String()
	if len(n.Logs.records("forwarding denied")) < 2 {
		t.Errorf("want forwarding denied lines (rule, identity) for the refusals:\n%s", logs)
	}
	for _, p := range probes {
		if strings.Contains(logs, p.host) {
			t.Errorf("log names destination host %q:\n%s", p.host, logs)
		}
	}
	for _, port := range []uint16{echoPort, deniedPort, closed, 4321} {
		if regexp.MustCompile(`\b` + strconv.Itoa(int(port)) + `\b`).MatchString(logs) {
			t.Errorf("log names destination port %d:\n%s", port, logs)
		}
	}
	for _, r := range n.Logs.records("forwarding denied") {
		if r.Attr["identity"] != "alice" {
			t.Errorf("forwarding denied line without identity: %q", r.Line)
		}
	}
}

// stMustHaveSession checks the connection still carries sessions (a session channel
// opens and a subsystem-less session closes cleanly).
func stMustHaveSession(t testing.TB, c *gossh.Client) {
	t.Helper()
	sess, err := c.NewSession()
	if err != nil {
		t.Fatalf("connection no longer usable: %v", err)
	}
	_ = sess.Close()
}
