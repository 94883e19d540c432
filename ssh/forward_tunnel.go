package ssh

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/alknet/alknet/core"
)

// ForwardOpener is an Opener over one ALPNForward connection: each Open is a new
// stream (DialForward), so a SOCKS5Server on it forwards without SSH. A refusal maps
// to the SOCKS5 reply as a direct-tcpip refusal does: policy and reserved
// destinations "not allowed by ruleset", a failed connect "connection refused", an
// unresolvable name or a connect timeout "host unreachable".
type ForwardOpener struct {
	// Conn is the ALPNForward connection.
	Conn *core.Connection
}

// Open opens one forwarded connection to host:port.
func (o ForwardOpener) Open(ctx context.Context, host string, port uint16) (net.Conn, error) {
	return DialForward(ctx, o.Conn, net.JoinHostPort(host, strconv.Itoa(int(port))))
}

// forwardRefusalReply maps a ForwardRefusal to a SOCKS5 reply code; ok is false for
// other errors.
func forwardRefusalReply(err error) (code byte, ok bool) {
	var r *ForwardRefusal
	if !errors.As(err, &r) {
		return 0, false
	}
	switch r.Reason {
	case ReasonDenied, ReasonReserved:
		return socks5ReplyNotAllowed, true
	case ReasonConnectFailed:
		return socks5ReplyConnectionRefused, true
	case ReasonResolve, ReasonConnectTimeout:
		return socks5ReplyHostUnreachable, true
	}
	return socks5ReplyGeneralFailure, true
}

// ForwardTunnel keeps an ALPNForward connection to a node up and serves local
// forwards (-L), remote forwards (-R) and SOCKS5 proxies over it, every forwarded
// connection on its own stream. It behaves as Tunnel does: local listeners opened
// first and kept across reconnections, exponential backoff between dials, the
// remote forwards asked for again on each new connection.
type ForwardTunnel struct {
	// Dial opens a new ALPNForward connection (such as a closure over
	// endpoint.Dial); required.
	Dial func(ctx context.Context) (*core.Connection, error)
	// Local are the -L forwards.
	Local []ForwardSpec
	// Remote are the -R forwards (the identity needs ScopeRemoteForward).
	Remote []ForwardSpec
	// SOCKS are the addresses of SOCKS5 proxies to run ("127.0.0.1:1080").
	SOCKS []string
	// MinBackoff and MaxBackoff bound the wait between dial attempts
	// (DefaultMinBackoff, DefaultMaxBackoff).
	MinBackoff, MaxBackoff time.Duration
	// OnConnect, when set, is called after each successful dial, with the addresses
	// the node bound for the remote forwards (in Remote's order; nil for one that
	// failed).
	OnConnect func(remote []net.Addr)
	// Logger receives connection state changes; targets are never logged.
	Logger *slog.Logger

	mu   sync.Mutex
	conn *core.Connection
	lns  localListeners
}

// Listen opens the local listeners (-L, then SOCKS) so that their addresses are known
// (LocalAddrs) before Run; Run calls it when it has not been called.
func (t *ForwardTunnel) Listen() error { return t.lns.open(t.Local, t.SOCKS) }

// Close closes the local listeners opened by Listen; use it when Run will not be
// called.
func (t *ForwardTunnel) Close() error { return t.lns.close() }

// LocalAddrs returns the addresses of the local listeners after Listen: the -L
// forwards in order, then the SOCKS5 proxies.
func (t *ForwardTunnel) LocalAddrs() []net.Addr { return t.lns.addrs() }

// Open opens a forwarded connection to host:port through the current connection;
// ErrNotConnected while there is none.
func (t *ForwardTunnel) Open(ctx context.Context, host string, port uint16) (net.Conn, error) {
	t.mu.Lock()
	c := t.conn
	t.mu.Unlock()
	if c == nil {
		return nil, ErrNotConnected
	}
	return ForwardOpener{Conn: c}.Open(ctx, host, port)
}

// Run serves the forwards until ctx is done, then closes everything and returns nil;
// it returns an error only when the local listeners cannot be opened or Dial is nil.
func (t *ForwardTunnel) Run(ctx context.Context) error {
	if t.Dial == nil {
		return fmt.Errorf("%w: ForwardTunnel.Dial is nil", ErrConfig)
	}
	if err := t.Listen(); err != nil {
		return err
	}
	life := tunnelLife[*core.Connection]{
		name: "forward tunnel", logger: t.Logger, listeners: t.lns.get(), local: t.Local,
		serveLocal: t.serveLocal, opener: t, minBackoff: t.MinBackoff, maxBackoff: t.MaxBackoff,
		dial: t.Dial,
		connected: func(ctx context.Context, c *core.Connection, _ *sync.WaitGroup, log *slog.Logger) {
			t.setConn(c)
			remote, targets := t.startRemote(ctx, c, log)
			if t.OnConnect != nil {
				t.OnConnect(remote)
			}
			t.serveForwarded(ctx, c, targets, log)
			if ctx.Err() == nil {
				log.LogAttrs(ctx, slog.LevelWarn, "forward tunnel: connection lost")
			}
			t.setConn(nil)
			c.Close(core.CloseNormal, "")
		},
	}
	life.run(ctx)
	return nil
}

// startRemote asks the node for the -R listeners on conn; it returns their addresses
// on the node (nil for a refused one) and the local target of each bound port. The
// control streams stay open until the connection ends.
func (t *ForwardTunnel) startRemote(ctx context.Context, conn *core.Connection, log *slog.Logger) ([]net.Addr, map[uint16]string) {
	out := make([]net.Addr, len(t.Remote))
	targets := make(map[uint16]string, len(t.Remote))
	for i, f := range t.Remote {
		_, port, err := ListenForward(ctx, conn, f.BindHost, f.BindPort)
		if err != nil {
			log.LogAttrs(ctx, slog.LevelWarn, "forward tunnel: remote forward refused", slog.Int("forward", i))
			continue
		}
		ip, _ := netip.ParseAddr(f.BindHost)
		if f.BindHost == "localhost" || !ip.IsValid() {
			ip = netip.MustParseAddr("127.0.0.1")
		}
		out[i] = net.TCPAddrFromAddrPort(netip.AddrPortFrom(ip.Unmap(), port))
		targets[port] = f.TargetAddress()
	}
	return out, targets
}

// serveForwarded connects every stream the node opens on conn (a connection to a
// remote listener) to its local target, until conn closes or ctx is done; it returns
// once every such connection has ended.
func (t *ForwardTunnel) serveForwarded(ctx context.Context, conn *core.Connection, targets map[uint16]string, log *slog.Logger) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		st, err := conn.AcceptBi(ctx)
		if err != nil {
			return
		}
		wg.Go(func() {
			port, err := AcceptForwarded(st)
			target, ok := targets[port]
			if err != nil || !ok {
				resetStream(st)
				return
			}
			var d net.Dialer
			dctx, cancel := context.WithTimeout(ctx, DefaultDialTimeout)
			lc, err := d.DialContext(dctx, "tcp", target)
			cancel()
			if err != nil {
				log.LogAttrs(ctx, slog.LevelWarn, "forward tunnel: remote forward target unreachable")
				resetStream(st)
				return
			}
			stop := context.AfterFunc(ctx, func() { _ = lc.Close(); resetStream(st) })
			defer stop()
			pipe(core.NetConn(st, nil, nil), lc)
		})
	}
}

func (t *ForwardTunnel) setConn(c *core.Connection) {
	t.mu.Lock()
	t.conn = c
	t.mu.Unlock()
}

// serveLocal opens a forwarded connection to f's target for every connection to ln,
// without waiting for the node's answer (OpenForward): the local client's first
// bytes go out with the header, and a refusal closes its connection all the same.
func (t *ForwardTunnel) serveLocal(ctx context.Context, ln net.Listener, f ForwardSpec) {
	dest := net.JoinHostPort(f.Host, strconv.Itoa(int(f.Port)))
	acceptEach(ln, func(c net.Conn) {
		stop := context.AfterFunc(ctx, func() { _ = c.Close() })
		defer stop()
		t.mu.Lock()
		conn := t.conn
		t.mu.Unlock()
		if conn == nil {
			_ = c.Close()
			return
		}
		fc, err := OpenForward(ctx, conn, dest)
		if err != nil {
			_ = c.Close()
			return
		}
		pipe(c, refusalCloses{Conn: fc, local: c})
	})
}

// refusalCloses is a forwarded connection that closes the local connection when the
// node's answer is a refusal, as a refused DialForward would have.
type refusalCloses struct {
	net.Conn
	local net.Conn
}

func (r refusalCloses) Read(p []byte) (int, error) {
	n, err := r.Conn.Read(p)
	if errors.Is(err, ErrForwardRefused) {
		_ = r.local.Close()
	}
	return n, err
}

// CloseWrite half-closes the forwarded connection.
func (r refusalCloses) CloseWrite() error { return r.Conn.(halfCloser).CloseWrite() }
