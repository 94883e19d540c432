package ssh_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/core/coretest"
	"github.com/alknet/alknet/core/endpoint"
	"github.com/alknet/alknet/ssh"
)

// fwNode is a Forwarder served by a coretest endpoint, with three known peers: alice
// (identity "alice"), bob (identity "bob", scope "fwd") and carol (identity "carol",
// scope ssh:remote-forward).
type fwNode struct {
	ts         *coretest.Server
	fwd        *ssh.Forwarder
	logs       *stLogs
	alice, bob *coretest.Identity
	carol      *coretest.Identity
}

// fwStart serves cfg (its Logger set to the node's log capture when nil).
func fwStart(t testing.TB, cfg ssh.ForwardConfig) *fwNode {
	t.Helper()
	return fwStartLimits(t, cfg, core.Limits{})
}

// fwStartLimits is fwStart with the endpoint's limits.
func fwStartLimits(t testing.TB, cfg ssh.ForwardConfig, limits core.Limits) *fwNode {
	t.Helper()
	logs := stNewLogs()
	if cfg.Logger == nil {
		cfg.Logger = logs.logger()
	}
	fwd, err := ssh.NewForwarder(cfg)
	if err != nil {
		t.Fatal(err)
	}
	reg := core.NewRegistry()
	if err := reg.Register(fwd); err != nil {
		t.Fatal(err)
	}
	alice, bob, carol := coretest.NewIdentity(t), coretest.NewIdentity(t), coretest.NewIdentity(t)
	ts := coretest.NewServer(t, reg, coretest.WithConfig(core.DynamicConfig{Auth: core.AuthPolicy{
		Peers: []core.PeerEntry{alice.Peer("alice"), bob.Peer("bob", "fwd"), carol.Peer("carol", ssh.ScopeRemoteForward)},
	}, Limits: limits}))
	return &fwNode{ts: ts, fwd: fwd, logs: logs, alice: alice, bob: bob, carol: carol}
}

// dial connects who over network; t.Cleanup closes the connection.
func (n *fwNode) dial(t testing.TB, who *coretest.Identity, network endpoint.Network) *core.Connection {
	t.Helper()
	return n.ts.Dial(t, ssh.ALPNForward, who, network)
}

// fwOpen asks for host:port over conn.
func fwOpen(t testing.TB, conn *core.Connection, host string, port uint16) (net.Conn, error) {
	t.Helper()
	return ssh.DialForward(stCtx(t), conn, net.JoinHostPort(host, strconv.Itoa(int(port))))
}

// fwRefused checks that err is the server's refusal with reason.
func fwRefused(t testing.TB, what string, err error, reason string) {
	t.Helper()
	var r *ssh.ForwardRefusal
	if !errors.As(err, &r) || !errors.Is(err, ssh.ErrForwardRefused) {
		t.Fatalf("%s: %v (%T), want a *ssh.ForwardRefusal", what, err, err)
	}
	if r.Reason != reason {
		t.Fatalf("%s: refused with %q, want %q", what, r.Reason, reason)
	}
}

// fwRaw opens a stream, writes raw, half-closes and returns everything the server
// sends back.
func fwRaw(t testing.TB, conn *core.Connection, raw string) string {
	t.Helper()
	st, err := conn.OpenBi(stCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	_ = core.NetConn(st, nil, nil).SetDeadline(time.Now().Add(stFailSafe))
	if _, err := io.WriteString(st, raw); err != nil {
		t.Fatal(err)
	}
	_ = st.CloseWrite()
	got, err := io.ReadAll(st)
	if err != nil {
		t.Fatalf("raw stream: %v (after %q)", err, got)
	}
	return string(got)
}

// TestForward: the cases of TestDirectTCPIP, on alknet/forward.
func TestForward(t *testing.T) {
	_, echoPort := stEchoServer(t)
	var dialed sync.Map
	n := fwStart(t, ssh.ForwardConfig{
		Resolver: stResolver{
			"echo-host.test":    {stMustAddr("127.0.0.1")},
			"denied.test":       {stMustAddr("127.0.0.1")},
			"private-host.test": {stMustAddr("10.1.2.3")},
			"mixed-host.test":   {stMustAddr("127.0.0.1"), stMustAddr("10.1.2.3")},
		},
		Dialer: stDialerFunc(func(ctx context.Context, network, addr string) (net.Conn, error) {
			dialed.Store(addr, true)
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		}),
		Forwarding: stPolicy(t, ssh.Allow, "cidr:10.0.0.0/8", ssh.Deny, "ports:denied.test:1-65535", ssh.Deny),
	})
	conn := n.dial(t, n.alice, endpoint.NetworkQUIC)

	t.Run("allowed, 1 MiB", func(t *testing.T) {
		c, err := fwOpen(t, conn, "127.0.0.1", echoPort)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		stEcho(t, c, 1<<20)
	})
	t.Run("hostname dialled by its vetted address", func(t *testing.T) {
		dialed.Clear()
		c, err := fwOpen(t, conn, "echo-host.test", echoPort)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		stEcho(t, c, 1000)
		want := netip.AddrPortFrom(stMustAddr("127.0.0.1"), echoPort).String()
		if _, ok := dialed.Load(want); !ok {
			t.Fatalf("%s not dialled (the resolved address, not the name)", want)
		}
	})
	t.Run("concurrent forwards", func(t *testing.T) {
		var wg sync.WaitGroup
		var failed atomic.Bool
		for range 8 {
			wg.Go(func() {
				c, err := fwOpen(t, conn, "127.0.0.1", echoPort)
				if err != nil {
					failed.Store(true)
					return
				}
				defer c.Close()
				stEcho(t, c, 64<<10)
			})
		}
		wg.Wait()
		if failed.Load() {
			t.Fatal("a concurrent forward failed to open")
		}
	})
	t.Run("bytes right after the header", func(t *testing.T) {
		got := fwRaw(t, conn, "tcp 127.0.0.1 "+strconv.Itoa(int(echoPort))+"\npipelined")
		if got != "ok\npipelined" {
			t.Fatalf("got %q, want the reply and the echo", got)
		}
	})

	_, err := fwOpen(t, conn, "denied.test", 443)
	fwRefused(t, "denied", err, ssh.ReasonDenied)
	_, err = fwOpen(t, conn, "10.1.2.3", 22)
	fwRefused(t, "denied CIDR literal", err, ssh.ReasonDenied)
	_, err = fwOpen(t, conn, "private-host.test", 22)
	fwRefused(t, "hostname resolving into a denied CIDR", err, ssh.ReasonDenied)
	_, err = fwOpen(t, conn, "mixed-host.test", echoPort)
	fwRefused(t, "hostname with one denied address", err, ssh.ReasonDenied)
	_, err = fwOpen(t, conn, "alknet-control", 1)
	fwRefused(t, "reserved under allow-by-default", err, ssh.ReasonReserved)
	_, err = fwOpen(t, conn, "ALKNET-Control.", 1)
	fwRefused(t, "reserved, other spelling", err, ssh.ReasonReserved)
	_, err = fwOpen(t, conn, "127.0.0.1", stClosedPort(t))
	fwRefused(t, "unreachable", err, ssh.ReasonConnectFailed)
	_, err = fwOpen(t, conn, "nowhere.test", 80)
	fwRefused(t, "unresolvable", err, ssh.ReasonResolve)
	_, err = fwOpen(t, conn, "a:b", 80)
	fwRefused(t, "invalid host", err, ssh.ReasonInvalidDest)
	_, err = fwOpen(t, conn, "bad host", 80)
	if !errors.Is(err, ssh.ErrForwardHeader) {
		t.Fatalf("host with a space: %v, want ErrForwardHeader before anything is sent", err)
	}

	for _, raw := range []string{
		"", "tcp 127.0.0.1\n", "tcp 127.0.0.1 80", "tcp bad host 80\n", "TCP 127.0.0.1 80\n",
		"tcp [::1] 80\n", "tcp 127.0.0.1 0\n", "tcp 127.0.0.1 65536\n", "tcp 127.0.0.1 080\n",
		"tcp 127.0.0.1 80\r\n", "tcp fe80::1%eth0 80\n", "tcp a\x00b 80\n", "tcp  127.0.0.1 80\n",
	} {
		if got := fwRaw(t, conn, raw); got != "error "+ssh.ReasonMalformedHeader+"\n" {
			t.Fatalf("header %q: got %q, want the malformed header refusal", raw, got)
		}
	}

	// The connection survived every refusal.
	c, err := fwOpen(t, conn, "127.0.0.1", echoPort)
	if err != nil {
		t.Fatal(err)
	}
	stEcho(t, c, 10)
	_ = c.Close()
}

// TestForwardZeroPolicyDeniesAll: the zero ForwardingPolicy denies everything.
func TestForwardZeroPolicyDeniesAll(t *testing.T) {
	_, echoPort := stEchoServer(t)
	n := fwStart(t, ssh.ForwardConfig{})
	_, err := fwOpen(t, n.dial(t, n.alice, endpoint.NetworkQUIC), "127.0.0.1", echoPort)
	fwRefused(t, "zero policy", err, ssh.ReasonDenied)
}

// TestForwardRulesSeeIdentityAndTransport: rules match the TLS client identity (by
// ID and by scope) and the transport (quic, or tls on the TCP+TLS twin, where a
// connection carries one forward).
func TestForwardRulesSeeIdentityAndTransport(t *testing.T) {
	for _, tc := range []struct {
		name    string
		network endpoint.Network
	}{{ssh.TransportQUIC, endpoint.NetworkQUIC}, {ssh.TransportTLS, endpoint.NetworkTCP}} {
		t.Run(tc.name, func(t *testing.T) {
			_, echoPort := stEchoServer(t)
			anyT, _ := ssh.ParseTarget("any")
			n := fwStart(t, ssh.ForwardConfig{Forwarding: ssh.ForwardingPolicy{Default: ssh.Deny, Rules: []ssh.Rule{
				{Target: anyT, Action: ssh.Allow, Principals: []string{"alice"}, Transports: []string{tc.name}},
				{Target: anyT, Action: ssh.Allow, Principals: []string{"fwd"}, Transports: []string{"tcp"}},
			}}})
			c, err := fwOpen(t, n.dial(t, n.alice, tc.network), "127.0.0.1", echoPort)
			if err != nil {
				t.Fatalf("alice over %s: %v", tc.name, err)
			}
			stEcho(t, c, 100)
			_ = c.Close()
			_, err = fwOpen(t, n.dial(t, n.bob, tc.network), "127.0.0.1", echoPort)
			fwRefused(t, "bob (scope rule for another transport)", err, ssh.ReasonDenied)
			recs := n.logs.wait(t, "forward", 2)
			if recs[0].Attr["identity"] == recs[1].Attr["identity"] || recs[0].Attr["transport"] != tc.name {
				t.Fatalf("log lines %q and %q: want each identity and transport %s", recs[0].Line, recs[1].Line, tc.name)
			}
		})
	}
}

// TestForwardAnonymousRefused: a connection without a known client certificate is
// closed before any stream is served.
func TestForwardAnonymousRefused(t *testing.T) {
	_, echoPort := stEchoServer(t)
	n := fwStart(t, ssh.ForwardConfig{Forwarding: stPolicy(t, ssh.Allow)})
	for _, who := range []*coretest.Identity{nil, coretest.NewIdentity(t)} {
		ctx := stCtx(t)
		conn, err := n.ts.DialErr(ctx, ssh.ALPNForward, who, endpoint.NetworkQUIC)
		if err != nil {
			continue // refused at the handshake: as good
		}
		c, err := ssh.DialForward(ctx, conn, net.JoinHostPort("127.0.0.1", strconv.Itoa(int(echoPort))))
		if err == nil {
			_ = c.Close()
			t.Fatal("an anonymous connection was forwarded")
		}
		conn.Close(core.CloseNormal, "")
	}
	if recs := n.logs.records("forward"); len(recs) != 0 {
		t.Fatalf("forward lines for refused connections: %v", recs)
	}
}

// TestForwardLogsNoDestination: whatever happens to a forward, neither its log
// line nor the endpoint's lines name the destination (host, address or port).
func TestForwardLogsNoDestination(t *testing.T) {
	_, echoPort := stEchoServer(t)
	closed := stClosedPort(t)
	n := fwStart(t, ssh.ForwardConfig{
		Resolver: stResolver{
			"secret-dest.test":    {stMustAddr("127.0.0.1")},
			"hidden-private.test": {stMustAddr("10.9.8.7")},
		},
		Forwarding: stPolicy(t, ssh.Allow, "cidr:10.0.0.0/8", ssh.Deny, "host:concealed-deny.test", ssh.Deny),
	})
	conn := n.dial(t, n.alice, endpoint.NetworkQUIC)
	c, err := fwOpen(t, conn, "secret-dest.test", echoPort)
	if err != nil {
		t.Fatal(err)
	}
	stEcho(t, c, 1000)
	_ = c.Close()
	_, err = fwOpen(t, conn, "hidden-private.test", 4321)
	fwRefused(t, "cidr", err, ssh.ReasonDenied)
	_, err = fwOpen(t, conn, "concealed-deny.test", 4321)
	fwRefused(t, "host rule", err, ssh.ReasonDenied)
	_, err = fwOpen(t, conn, "unknown-secret.test", 4321)
	fwRefused(t, "unresolvable", err, ssh.ReasonResolve)
	_, err = fwOpen(t, conn, "127.0.0.1", closed)
	fwRefused(t, "closed port", err, ssh.ReasonConnectFailed)

	recs := n.logs.wait(t, "forward", 5)
	outcomes := map[string]int{}
	for _, r := range recs {
		outcomes[r.Attr["outcome"]]++
		if r.Attr["identity"] != "alice" {
			t.Errorf("line %q: want identity alice", r.Line)
		}
		for k, v := range r.Attr {
			if k == "duration" {
				continue // digits of a duration could look like a port
			}
			for _, secret := range []string{strconv.Itoa(int(echoPort)), strconv.Itoa(int(closed)), "4321", "10.9.8.7", "127.0.0.1"} {
				if strings.Contains(v, secret) {
					t.Errorf("line %q: %s=%q names the destination (%s)", r.Line, k, v, secret)
				}
			}
		}
	}
	if outcomes["ok"] != 1 || outcomes[ssh.ReasonDenied] != 2 || outcomes[ssh.ReasonResolve] != 1 || outcomes[ssh.ReasonConnectFailed] != 1 {
		t.Errorf("outcomes %v, want one ok, two denied, one unresolvable, one connect failure", outcomes)
	}
	all := n.logs.String() + n.ts.Logs.String()
	for _, name := range []string{"secret-dest", "hidden-private", "concealed-deny", "unknown-secret"} {
		if strings.Contains(all, name) {
			t.Errorf("the logs name %s:\n%s", name, all)
		}
	}
}

// TestForwardHalfClose: each side's end of input reaches the other while the other
// direction keeps going.
func TestForwardHalfClose(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := netip.MustParseAddrPort(ln.Addr().String()).Port()
	n := fwStart(t, ssh.ForwardConfig{Forwarding: stPolicy(t, ssh.Allow)})
	conn := n.dial(t, n.alice, endpoint.NetworkQUIC)

	// serve runs one destination connection through fn.
	serve := func(fn func(c *net.TCPConn) error) <-chan error {
		done := make(chan error, 1)
		go func() {
			c, err := ln.Accept()
			if err != nil {
				done <- err
				return
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(stFailSafe))
			done <- fn(c.(*net.TCPConn))
		}()
		return done
	}

	t.Run("client to destination", func(t *testing.T) {
		// The destination reads to EOF, then answers on the still open direction.
		done := serve(func(c *net.TCPConn) error {
			b, err := io.ReadAll(c)
			if err != nil {
				return err
			}
			if _, err := io.WriteString(c, "got "+string(b)); err != nil {
				return err
			}
			return c.CloseWrite()
		})
		c, err := fwOpen(t, conn, "127.0.0.1", port)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(stFailSafe))
		if _, err := io.WriteString(c, "request"); err != nil {
			t.Fatal(err)
		}
		if err := c.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(c)
		if err != nil || string(got) != "got request" {
			t.Fatalf("read %q, %v; want the answer after the half-close", got, err)
		}
		if err := stWaitErr(t, "destination", done); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("destination to client", func(t *testing.T) {
		// The destination speaks and half-closes first, then reads the client.
		got := make(chan string, 1)
		done := serve(func(c *net.TCPConn) error {
			if _, err := io.WriteString(c, "banner"); err != nil {
				return err
			}
			if err := c.CloseWrite(); err != nil {
				return err
			}
			b, err := io.ReadAll(c)
			got <- string(b)
			return err
		})
		c, err := fwOpen(t, conn, "127.0.0.1", port)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(stFailSafe))
		b, err := io.ReadAll(c)
		if err != nil || string(b) != "banner" {
			t.Fatalf("read %q, %v; want the banner then EOF", b, err)
		}
		if _, err := io.WriteString(c, "reply after EOF"); err != nil {
			t.Fatal(err)
		}
		_ = c.(interface{ CloseWrite() error }).CloseWrite()
		if err := stWaitErr(t, "destination", done); err != nil {
			t.Fatal(err)
		}
		if s := <-got; s != "reply after EOF" {
			t.Fatalf("destination read %q", s)
		}
	})
	recs := n.logs.wait(t, "forward", 2)
	for _, r := range recs {
		if r.Attr["outcome"] != "ok" {
			t.Fatalf("line %q: want outcome ok", r.Line)
		}
	}
}

// TestForwardPing: a known client's ping is answered "ok" and not logged; an
// anonymous client's fails, since its connection is closed.
func TestForwardPing(t *testing.T) {
	_, echoPort := stEchoServer(t)
	n := fwStart(t, ssh.ForwardConfig{Forwarding: stPolicy(t, ssh.Allow)})
	conn := n.dial(t, n.alice, endpoint.NetworkQUIC)
	for range 2 {
		if err := ssh.PingForward(stCtx(t), conn); err != nil {
			t.Fatalf("ping: %v", err)
		}
	}
	c, err := fwOpen(t, conn, "127.0.0.1", echoPort)
	if err != nil {
		t.Fatal(err)
	}
	stEcho(t, c, 10)
	_ = c.Close()
	if recs := n.logs.wait(t, "forward", 1); len(recs) != 1 {
		t.Fatalf("forward lines %v, want the forward's alone (pings are not logged)", recs)
	}
	if got := fwRaw(t, conn, "ping\nextra"); got != "ok\n" {
		t.Fatalf("ping with bytes after it: %q", got)
	}

	ctx := stCtx(t)
	anon, err := n.ts.DialErr(ctx, ssh.ALPNForward, nil, endpoint.NetworkQUIC)
	if err != nil {
		return // refused at the handshake: as good
	}
	defer anon.Close(core.CloseNormal, "")
	if err := ssh.PingForward(ctx, anon); err == nil {
		t.Fatal("an anonymous client's ping was answered")
	}
}

// TestSettingsForwardConfig: the [ssh] table's policy becomes the Forwarder's, on
// top of the base configuration; an invalid table is an error.
func TestSettingsForwardConfig(t *testing.T) {
	s := ssh.Settings{Forwarding: ssh.ForwardingSettings{Rules: []ssh.RuleSettings{{Target: "cidr:127.0.0.0/8", Action: "allow", Principals: []string{"alice"}}}}}
	fc, err := s.ForwardConfig(ssh.ForwardConfig{MaxStreams: 3})
	if err != nil {
		t.Fatal(err)
	}
	if fc.MaxStreams != 3 || fc.Forwarding.Default != ssh.Deny || len(fc.Forwarding.Rules) != 1 ||
		fc.Forwarding.Rules[0].Action != ssh.Allow || fc.Forwarding.Rules[0].Target.String() != "cidr:127.0.0.0/8" {
		t.Fatalf("ForwardConfig = %+v", fc)
	}
	if _, err := ssh.NewForwarder(fc); err != nil {
		t.Fatal(err)
	}
	s.Forwarding.Rules[0].Target = "nowhere:"
	if _, err := s.ForwardConfig(ssh.ForwardConfig{}); err == nil {
		t.Fatal("an invalid target was accepted")
	}
	if _, err := ssh.NewForwarder(ssh.ForwardConfig{MaxStreams: -1}); !errors.Is(err, ssh.ErrConfig) {
		t.Fatalf("negative MaxStreams: %v, want ErrConfig", err)
	}
}
