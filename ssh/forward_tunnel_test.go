package ssh_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/core/endpoint"
	"github.com/alknet/alknet/ssh"
)

// fwRunTunnel runs tun until the test ends and returns the channel OnConnect
// reports on.
func fwRunTunnel(t *testing.T, tun *ssh.ForwardTunnel) <-chan []net.Addr {
	t.Helper()
	connected := make(chan []net.Addr, 16)
	tun.OnConnect = func(remote []net.Addr) { connected <- remote }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tun.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := stWaitErr(t, "ForwardTunnel.Run", done); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return connected
}

// fwConnected waits for the next OnConnect and returns its remote addresses.
func fwConnected(t testing.TB, ch <-chan []net.Addr) []net.Addr {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(stFailSafe):
		t.Fatal("forward tunnel never connected")
		return nil
	}
}

// TestForwardTunnel: -L and SOCKS5 over alknet/forward, SOCKS5 replies from the
// node's refusals, a stock curl through the SOCKS5 listener, and a reconnection
// after the connection is lost; no target in the tunnel's or the node's logs.
func TestForwardTunnel(t *testing.T) {
	_, echoPort := stEchoServer(t)
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello over %s", r.Host)
	}))
	defer web.Close()
	webPort := netip.MustParseAddrPort(web.Listener.Addr().String()).Port()
	n := fwStart(t, ssh.ForwardConfig{
		Resolver: stResolver{
			"echo-host.test": {stMustAddr("127.0.0.1")},
			"web.test":       {stMustAddr("127.0.0.1")},
			"private.test":   {stMustAddr("10.0.0.1")},
		},
		Forwarding: stPolicy(t, ssh.Allow, "cidr:10.0.0.0/8", ssh.Deny),
	})
	var mu sync.Mutex
	var conns []*core.Connection
	logs := stNewLogs()
	tun := &ssh.ForwardTunnel{
		Dial: func(ctx context.Context) (*core.Connection, error) {
			c, err := n.ts.DialErr(ctx, ssh.ALPNForward, n.alice, endpoint.NetworkQUIC)
			if err == nil {
				mu.Lock()
				conns = append(conns, c)
				mu.Unlock()
			}
			return c, err
		},
		Local:      []ssh.ForwardSpec{{BindHost: "127.0.0.1", Host: "echo-host.test", Port: echoPort}},
		SOCKS:      []string{"127.0.0.1:0"},
		MinBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond,
		Logger: logs.logger(),
	}
	if err := tun.Listen(); err != nil {
		t.Fatal(err)
	}
	addrs := tun.LocalAddrs()
	if len(addrs) != 2 {
		t.Fatalf("LocalAddrs %v, want the -L then the SOCKS listener", addrs)
	}
	local, socks := addrs[0].String(), addrs[1].String()
	connected := fwRunTunnel(t, tun)
	fwConnected(t, connected)

	dial := func(addr string) net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	stEcho(t, dial(local), 256<<10)

	c := dial(socks)
	if code := stSOCKSConnect(t, c, "echo-host.test", echoPort); code != 0 {
		t.Fatalf("CONNECT echo-host.test: reply %#x", code)
	}
	stEcho(t, c, 256<<10)
	for _, tc := range []struct {
		host string
		port uint16
		code byte
	}{
		{"private.test", 80, 2},           // denied by policy: not allowed by ruleset
		{"alknet-control", 1, 2},          // reserved
		{"127.0.0.1", stClosedPort(t), 5}, // connection refused
		{"nowhere.test", 80, 4},           // unresolvable: host unreachable
	} {
		if code := stSOCKSConnect(t, dial(socks), tc.host, tc.port); code != tc.code {
			t.Fatalf("CONNECT %s: reply %#x, want %#x", tc.host, code, tc.code)
		}
	}

	t.Run("curl --socks5-hostname", func(t *testing.T) {
		curl, err := exec.LookPath("curl")
		if err != nil {
			t.Skip("curl not installed")
		}
		ctx := stCtx(t)
		out, err := exec.CommandContext(ctx, curl, "-sS", "--max-time", "30", "--socks5-hostname", socks,
			"http://web.test:"+strconv.Itoa(int(webPort))+"/").CombinedOutput()
		if err != nil {
			t.Fatalf("curl: %v: %s", err, out)
		}
		if want := "hello over web.test:" + strconv.Itoa(int(webPort)); string(out) != want {
			t.Fatalf("curl got %q, want %q", out, want)
		}
	})

	// The connection is lost: the tunnel dials again and -L works on the new one.
	mu.Lock()
	conns[0].Close(core.CloseNormal, "")
	mu.Unlock()
	fwConnected(t, connected)
	stEcho(t, dial(local), 1000)

	stNoTargetsLogged(t, logs, []string{"echo-host.test", "private.test", "web.test", "nowhere.test"}, echoPort, webPort)
	// The node's ports are checked by TestForwardLogsNoDestination (durations aside).
	stNoTargetsLogged(t, n.logs, []string{"echo-host.test", "private.test", "web.test", "nowhere.test"})
}

// TestForwardTunnelNotConnected: Open before any connection reports
// ErrNotConnected, and Run without Dial is a configuration error.
func TestForwardTunnelNotConnected(t *testing.T) {
	tun := &ssh.ForwardTunnel{}
	if _, err := tun.Open(stCtx(t), "127.0.0.1", 1); !errors.Is(err, ssh.ErrNotConnected) {
		t.Fatalf("Open: %v, want ErrNotConnected", err)
	}
	if err := tun.Run(stCtx(t)); !errors.Is(err, ssh.ErrConfig) {
		t.Fatalf("Run without Dial: %v, want ErrConfig", err)
	}
}

// TestForwardTunnelRemote: -R over alknet/forward. An identity with the
// ssh:remote-forward scope gets loopback listeners whose connections come back as
// streams the node opens; a non-loopback bind and one past MaxRemoteForwards are
// refused; an identity without the scope gets none.
func TestForwardTunnelRemote(t *testing.T) {
	_, echoPort := stEchoServer(t)
	echo := net.JoinHostPort("127.0.0.1", strconv.Itoa(int(echoPort)))
	n := fwStart(t, ssh.ForwardConfig{Forwarding: stPolicy(t, ssh.Allow), MaxRemoteForwards: 2})
	carol := n.carol
	spec := func(bind string) ssh.ForwardSpec {
		return ssh.ForwardSpec{BindHost: bind, Host: "127.0.0.1", Port: echoPort}
	}
	logs := stNewLogs()
	tun := &ssh.ForwardTunnel{
		Dial: func(ctx context.Context) (*core.Connection, error) {
			return n.ts.DialErr(ctx, ssh.ALPNForward, carol, endpoint.NetworkQUIC)
		},
		Remote:     []ssh.ForwardSpec{spec("127.0.0.1"), spec("0.0.0.0"), spec("localhost"), spec("127.0.0.1")},
		MinBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond,
		Logger: logs.logger(),
	}
	remote := fwConnected(t, fwRunTunnel(t, tun))
	if len(remote) != 4 || remote[0] == nil || remote[1] != nil || remote[2] == nil || remote[3] != nil {
		t.Fatalf("OnConnect(%v), want [addr nil addr nil] (not loopback; over MaxRemoteForwards)", remote)
	}
	for _, a := range []net.Addr{remote[0], remote[2]} {
		ta := a.(*net.TCPAddr)
		if ta.Port == 0 || !ta.IP.IsLoopback() {
			t.Fatalf("remote forward address %v", a)
		}
		for range 2 {
			c, err := net.Dial("tcp", a.String())
			if err != nil {
				t.Fatal(err)
			}
			stEcho(t, c, 256<<10)
			_ = c.Close()
		}
	}
	// Two refused listen requests, four forwarded connections.
	outcomes := map[string]int{}
	for _, r := range n.logs.wait(t, "forward", 6) {
		if r.Attr["identity"] != "carol" {
			t.Errorf("line %q: want identity carol", r.Line)
		}
		outcomes[r.Attr["direction"]+" "+r.Attr["outcome"]]++
	}
	if outcomes["remote ok"] != 4 || outcomes[" "+ssh.ReasonRemoteDenied] != 1 || outcomes[" "+ssh.ReasonTooManyListeners] != 1 {
		t.Errorf("log outcomes %v, want 4 remote ok, one not loopback, one over the limit", outcomes)
	}
	stNoTargetsLogged(t, logs, []string{echo}, echoPort)

	// Without the scope: refused.
	conn := n.dial(t, n.alice, endpoint.NetworkQUIC)
	_, _, err := ssh.ListenForward(stCtx(t), conn, "127.0.0.1", 0)
	fwRefused(t, "alice without the scope", err, ssh.ReasonRemoteDenied)
}

// TestForwardListenClosesWithItsStream: closing the control stream closes the
// listener on the node.
func TestForwardListenClosesWithItsStream(t *testing.T) {
	n := fwStart(t, ssh.ForwardConfig{Forwarding: stPolicy(t, ssh.Allow)})
	carol := n.carol
	conn := n.dial(t, carol, endpoint.NetworkQUIC)
	ctl, port, err := ssh.ListenForward(stCtx(t), conn, "127.0.0.1", 0)
	if err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(int(port)))
	_ = ctl.Close()
	// The listen's own line is written once the listener is closed.
	if recs := n.logs.wait(t, "forward", 1); recs[0].Attr["outcome"] != "ok" {
		t.Fatalf("line %q", recs[0].Line)
	}
	if c, err := net.Dial("tcp", addr); err == nil {
		_ = c.Close()
		t.Fatal("the remote listener is still open after its control stream closed")
	}
}
