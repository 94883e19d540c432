package ssh_test

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/alknet/alknet/ssh"
)

// stTunnelEnv is a node for tunnel tests: alice may forward anywhere on loopback
// (and "echo-host.test", which the node resolves to 127.0.0.1) and remote-forward.
type stTunnelEnv struct {
	node     *stNode
	echoAddr string
	echoPort uint16
	dial     func(ctx context.Context) (*ssh.Client, error)

	mu      sync.Mutex
	dials   int
	clients []*ssh.Client
}

func stNewTunnelEnv(t *testing.T) *stTunnelEnv {
	t.Helper()
	user := stSigner(t)
	e := &stTunnelEnv{}
	e.echoAddr, e.echoPort = stEchoServer(t)
	e.node = stStartTCP(t, ssh.Config{
		Identities: stNewIdentities().add(user, "alice", ssh.ScopeRemoteForward),
		Resolver:   stResolver{"echo-host.test": {stMustAddr("127.0.0.1")}, "private.test": {stMustAddr("10.0.0.1")}},
		Forwarding: stPolicy(t, ssh.Deny, "cidr:127.0.0.0/8", ssh.Allow),
	})
	e.dial = func(ctx context.Context) (*ssh.Client, error) {
		c, err := e.node.connect(ctx, ssh.ClientConfig{Signer: user, HostKey: e.node.Pin})
		e.mu.Lock()
		defer e.mu.Unlock()
		e.dials++
		if err == nil {
			e.clients = append(e.clients, c)
		}
		return c, err
	}
	return e
}

// lastClient returns the client of the latest successful dial.
func (e *stTunnelEnv) lastClient() *ssh.Client {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.clients[len(e.clients)-1]
}

// stRunTunnel runs tun until the test ends (or stop is called) and returns the
// channel OnConnect reports on and a stop function that cancels Run and waits for it.
func stRunTunnel(t *testing.T, tun *ssh.Tunnel) (<-chan []net.Addr, func() error) {
	t.Helper()
	connected := make(chan []net.Addr, 16)
	tun.OnConnect = func(remote []net.Addr) { connected <- remote }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tun.Run(ctx) }()
	var once sync.Once
	var runErr error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(stFailSafe):
				runErr = errors.New("Run did not return after its context was cancelled")
			}
		})
		return runErr
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return connected, stop
}

// stConnected waits for the next OnConnect.
func stConnected(t testing.TB, ch <-chan []net.Addr) []net.Addr {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(stFailSafe):
		t.Fatal("tunnel never connected")
		return nil
	}
}

// TestTunnelLocalForward: -L listeners are known after Listen, and carry connections
// to targets on the node's side (a name is resolved by the node).
func TestTunnelLocalForward(t *testing.T) {
	e := stNewTunnelEnv(t)
	logs := stNewLogs()
	tun := &ssh.Tunnel{
		Dial: e.dial,
		Local: []ssh.ForwardSpec{
			{BindHost: "127.0.0.1", BindPort: 0, Host: "127.0.0.1", Port: e.echoPort},
			{BindHost: "127.0.0.1", BindPort: 0, Host: "echo-host.test", Port: e.echoPort},
			{BindHost: "127.0.0.1", BindPort: 0, Host: "private.test", Port: e.echoPort},
		},
		MinBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond,
		Logger: logs.logger(),
	}
	if _, err := tun.Open(stCtx(t), "127.0.0.1", e.echoPort); !errors.Is(err, ssh.ErrNotConnected) {
		t.Fatalf("Open before Run: %v, want ErrNotConnected", err)
	}
	if err := tun.Listen(); err != nil {
		t.Fatal(err)
	}
	addrs := tun.LocalAddrs()
	if len(addrs) != 3 {
		t.Fatalf("LocalAddrs %v", addrs)
	}
	if err := tun.Listen(); err != nil { // idempotent
		t.Fatal(err)
	}
	if again := tun.LocalAddrs(); again[0].String() != addrs[0].String() {
		t.Fatalf("second Listen changed the addresses: %v then %v", addrs, again)
	}
	connected, stop := stRunTunnel(t, tun)
	if remote := stConnected(t, connected); len(remote) != 0 {
		t.Fatalf("OnConnect with %v, want no remote forwards", remote)
	}
	for _, a := range addrs[:2] {
		c, err := net.Dial("tcp", a.String())
		if err != nil {
			t.Fatal(err)
		}
		stEcho(t, c, 1<<20)
		_ = c.Close()
	}
	// A target the node refuses: the local connection is closed.
	c, err := net.Dial("tcp", addrs[2].String())
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(stFailSafe))
	if b, err := io.ReadAll(c); len(b) != 0 || stIsTimeout(err) {
		t.Fatalf("denied forward: read %q, %v; want the connection closed", b, err)
	}
	_ = c.Close()
	// Through Tunnel.Open as well.
	conn, err := tun.Open(stCtx(t), "127.0.0.1", e.echoPort)
	if err != nil {
		t.Fatal(err)
	}
	stEcho(t, conn, 1000)
	_ = conn.Close()

	if err := stop(); err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if c, err := net.Dial("tcp", a.String()); err == nil {
			_ = c.Close()
			t.Errorf("local listener %s still open after Run returned", a)
		}
	}
	stNoTargetsLogged(t, logs, []string{"echo-host.test", "private.test"}, e.echoPort)
}

func stIsTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// stNoTargetsLogged checks that no log line names a target host or port.
func stNoTargetsLogged(t testing.TB, logs *stLogs, hosts []string, ports ...uint16) {
	t.Helper()
	s := logs.String()
	for _, h := range hosts {
		if regexp.MustCompile(regexp.QuoteMeta(h)).MatchString(s) {
			t.Errorf("tunnel log names target %s:\n%s", h, s)
		}
	}
	for _, p := range ports {
		if regexp.MustCompile(`\b` + strconv.Itoa(int(p)) + `\b`).MatchString(s) {
			t.Errorf("tunnel log names port %d:\n%s", p, s)
		}
	}
}

// TestTunnelRemoteForward: -R forwards are registered on connect, OnConnect reports
// their addresses (nil for a refused one), and connections reach the local target.
func TestTunnelRemoteForward(t *testing.T) {
	e := stNewTunnelEnv(t)
	tun := &ssh.Tunnel{
		Dial: e.dial,
		Remote: []ssh.ForwardSpec{
			{BindHost: "127.0.0.1", BindPort: 0, Host: "127.0.0.1", Port: e.echoPort},
			{BindHost: "0.0.0.0", BindPort: 0, Host: "127.0.0.1", Port: e.echoPort}, // refused: not loopback
		},
		MinBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond,
	}
	connected, _ := stRunTunnel(t, tun)
	remote := stConnected(t, connected)
	if len(remote) != 2 || remote[0] == nil || remote[1] != nil {
		t.Fatalf("OnConnect(%v), want [addr nil]", remote)
	}
	ta, ok := remote[0].(*net.TCPAddr)
	if !ok || ta.Port == 0 || !ta.IP.IsLoopback() {
		t.Fatalf("remote forward address %v", remote[0])
	}
	for range 2 {
		c, err := net.Dial("tcp", remote[0].String())
		if err != nil {
			t.Fatal(err)
		}
		stEcho(t, c, 256<<10)
		_ = c.Close()
	}
}

// stSOCKSConnect performs a SOCKS5 no-auth CONNECT to a domain by hand and returns the
// reply code.
func stSOCKSConnect(t testing.TB, c net.Conn, host string, port uint16) byte {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(stFailSafe))
	if _, err := c.Write([]byte{5, 1, 0}); err != nil {
		t.Fatal(err)
	}
	greet := make([]byte, 2)
	if _, err := io.ReadFull(c, greet); err != nil || greet[0] != 5 || greet[1] != 0 {
		t.Fatalf("greeting reply %x, %v", greet, err)
	}
	req := append([]byte{5, 1, 0, 3, byte(len(host))}, host...)
	req = binary.BigEndian.AppendUint16(req, port)
	if _, err := c.Write(req); err != nil {
		t.Fatal(err)
	}
	rep := make([]byte, 10)
	if _, err := io.ReadFull(c, rep); err != nil {
		t.Fatalf("connect reply: %v", err)
	}
	if rep[0] != 5 || rep[2] != 0 || rep[3] != 1 {
		t.Fatalf("connect reply %x", rep)
	}
	_ = c.SetDeadline(time.Time{})
	return rep[1]
}

// TestTunnelSOCKS: the tunnel's SOCKS5 listener sends domains unresolved to the node,
// which reaches an echo server on its side.
func TestTunnelSOCKS(t *testing.T) {
	e := stNewTunnelEnv(t)
	logs := stNewLogs()
	tun := &ssh.Tunnel{
		Dial:       e.dial,
		Local:      []ssh.ForwardSpec{{BindHost: "127.0.0.1", BindPort: 0, Host: "127.0.0.1", Port: e.echoPort}},
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
	socks := addrs[1].String()
	connected, _ := stRunTunnel(t, tun)
	stConnected(t, connected)

	c, err := net.Dial("tcp", socks)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if code := stSOCKSConnect(t, c, "echo-host.test", e.echoPort); code != 0 {
		t.Fatalf("CONNECT echo-host.test: reply %#x", code)
	}
	stEcho(t, c, 512<<10)

	// A destination the node's policy denies: "not allowed by ruleset".
	c2, err := net.Dial("tcp", socks)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if code := stSOCKSConnect(t, c2, "private.test", 80); code != 2 {
		t.Fatalf("CONNECT to a denied destination: reply %#x, want 0x02", code)
	}
	stNoTargetsLogged(t, logs, []string{"echo-host.test", "private.test"}, e.echoPort)
}

// TestTunnelReconnect: when the connection is lost, Run dials again, registers the
// remote forwards on the new connection, and the local listeners keep working.
func TestTunnelReconnect(t *testing.T) {
	e := stNewTunnelEnv(t)
	tun := &ssh.Tunnel{
		Dial:       e.dial,
		Local:      []ssh.ForwardSpec{{BindHost: "127.0.0.1", BindPort: 0, Host: "127.0.0.1", Port: e.echoPort}},
		Remote:     []ssh.ForwardSpec{{BindHost: "127.0.0.1", BindPort: 0, Host: "127.0.0.1", Port: e.echoPort}},
		MinBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond,
	}
	if err := tun.Listen(); err != nil {
		t.Fatal(err)
	}
	local := tun.LocalAddrs()[0].String()
	connected, stop := stRunTunnel(t, tun)
	first := stConnected(t, connected)
	if first[0] == nil {
		t.Fatal("remote forward refused on the first connection")
	}

	// Kill the connection under the tunnel.
	_ = e.lastClient().Close()
	second := stConnected(t, connected)
	if second[0] == nil {
		t.Fatal("remote forward not registered again after reconnecting")
	}
	e.mu.Lock()
	dials := e.dials
	e.mu.Unlock()
	if dials != 2 {
		t.Fatalf("%d dials, want 2", dials)
	}
	c, err := net.Dial("tcp", second[0].String())
	if err != nil {
		t.Fatal(err)
	}
	stEcho(t, c, 10000)
	_ = c.Close()
	c, err = net.Dial("tcp", local)
	if err != nil {
		t.Fatal(err)
	}
	stEcho(t, c, 10000)
	_ = c.Close()

	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// TestTunnelReconnectAfterServerRestart: the node going away and coming back on the
// same address is survived.
func TestTunnelReconnectAfterServerRestart(t *testing.T) {
	e := stNewTunnelEnv(t)
	addr := e.node.Addr
	cfg := e.node.Cfg
	tun := &ssh.Tunnel{Dial: e.dial, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}
	connected, _ := stRunTunnel(t, tun)
	stConnected(t, connected)
	e.node.stop(t) // Serve returns: the tunnel's connection is gone and dials fail

	// Serve the same configuration on the same address again.
	srv, err := ssh.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot listen on %s again: %v", addr, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	defer func() {
		cancel()
		stWaitErr(t, "Serve", done)
	}()
	stConnected(t, connected)
	conn, err := tun.Open(stCtx(t), "127.0.0.1", e.echoPort)
	if err != nil {
		t.Fatal(err)
	}
	stEcho(t, conn, 1000)
	_ = conn.Close()
}

// TestTunnelDialRetry: failed dials are retried with backoff until one succeeds.
func TestTunnelDialRetry(t *testing.T) {
	e := stNewTunnelEnv(t)
	var mu sync.Mutex
	calls := 0
	logs := stNewLogs()
	tun := &ssh.Tunnel{
		Dial: func(ctx context.Context) (*ssh.Client, error) {
			mu.Lock()
			calls++
			n := calls
			mu.Unlock()
			if n <= 3 {
				return nil, errors.New("st: dial failed on purpose")
			}
			return e.dial(ctx)
		},
		MinBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond,
		Logger: logs.logger(),
	}
	connected, _ := stRunTunnel(t, tun)
	stConnected(t, connected)
	mu.Lock()
	defer mu.Unlock()
	if calls != 4 {
		t.Fatalf("%d dial calls, want 4", calls)
	}
	if len(logs.records("ssh tunnel: dial failed")) != 3 {
		t.Errorf("want 3 dial failed lines:\n%s", logs)
	}
}

// TestTunnelRunStops: Run returns nil on cancel even while waiting out a long
// backoff; a nil Dial is ErrConfig; a listener that cannot be opened is an error.
func TestTunnelRunStops(t *testing.T) {
	dialed := make(chan struct{}, 1)
	tun := &ssh.Tunnel{
		Dial: func(context.Context) (*ssh.Client, error) {
			select {
			case dialed <- struct{}{}:
			default:
			}
			return nil, errors.New("st: down")
		},
		MinBackoff: time.Hour,
		SOCKS:      []string{"127.0.0.1:0"},
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tun.Run(ctx) }()
	select {
	case <-dialed:
	case <-time.After(stFailSafe):
		t.Fatal("Run never dialled")
	}
	cancel()
	if err := stWaitErr(t, "Run after cancel", done); err != nil {
		t.Fatalf("Run: %v, want nil", err)
	}

	if err := (&ssh.Tunnel{}).Run(context.Background()); !errors.Is(err, ssh.ErrConfig) {
		t.Fatalf("Run without Dial: %v, want ErrConfig", err)
	}

	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	port := uint16(busy.Addr().(*net.TCPAddr).Port)
	bad := &ssh.Tunnel{
		Dial: func(context.Context) (*ssh.Client, error) { return nil, errors.New("unused") },
		Local: []ssh.ForwardSpec{
			{BindHost: "127.0.0.1", BindPort: 0, Host: "x", Port: 1},
			{BindHost: "127.0.0.1", BindPort: port, Host: "x", Port: 1},
		},
	}
	if err := bad.Run(context.Background()); err == nil {
		t.Fatal("Run with a busy local port succeeded")
	}
	if len(bad.LocalAddrs()) != 0 {
		t.Fatalf("LocalAddrs after a failed Listen: %v", bad.LocalAddrs())
	}
	if err := (&ssh.Tunnel{SOCKS: []string{"not an address"}}).Listen(); err == nil {
		t.Fatal("Listen on a bad SOCKS address succeeded")
	}
}

// TestTunnelRunCancelClosesListeners: whenever ctx is cancelled, Run closes its local
// listeners and returns. (Closing them through context.AfterFunc with a deferred
// stop() lost that race: Run could wake on ctx.Done and unregister the callbacks
// before the cancellation reached them, and hang in Accept. And SOCKS5Server.Serve
// returned while its own close callback was still closing the SOCKS listener: the
// second Close returns at once, so the port still accepted after Run returned.)
func TestTunnelRunCancelClosesListeners(t *testing.T) {
	for i := range 200 {
		dialed := make(chan struct{}, 1)
		tun := &ssh.Tunnel{
			Dial: func(context.Context) (*ssh.Client, error) {
				select {
				case dialed <- struct{}{}:
				default:
				}
				return nil, errors.New("st: down")
			},
			MinBackoff: time.Hour,
			SOCKS:      []string{"127.0.0.1:0"},
		}
		for range 8 {
			tun.Local = append(tun.Local, ssh.ForwardSpec{BindHost: "127.0.0.1", Host: "127.0.0.1", Port: 1})
		}
		if err := tun.Listen(); err != nil {
			t.Fatal(err)
		}
		addrs := tun.LocalAddrs()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- tun.Run(ctx) }()
		<-dialed // Run is waiting out its backoff
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("iteration %d: Run: %v", i, err)
			}
		case <-time.After(stFailSafe):
			t.Fatalf("iteration %d: Run did not return after cancel (are the listeners closed on return?)", i)
		}
		for _, a := range addrs {
			if c, err := net.Dial("tcp", a.String()); err == nil {
				_ = c.Close()
				t.Fatalf("iteration %d: listener %s open after Run returned", i, a)
			}
		}
	}
}

// TestTunnelClose: Close closes what Listen opened, for a tunnel that never runs.
func TestTunnelClose(t *testing.T) {
	if err := (&ssh.Tunnel{}).Close(); err != nil {
		t.Fatalf("Close before Listen: %v", err)
	}
	tun := &ssh.Tunnel{
		Local: []ssh.ForwardSpec{{BindHost: "127.0.0.1", Host: "127.0.0.1", Port: 1}},
		SOCKS: []string{"127.0.0.1:0"},
	}
	if err := tun.Listen(); err != nil {
		t.Fatal(err)
	}
	addrs := tun.LocalAddrs()
	if err := tun.Close(); err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		stMustRefuse(t, a.String())
	}
}
