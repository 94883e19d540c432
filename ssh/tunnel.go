package ssh

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"
)

// Defaults of Tunnel.
const (
	DefaultMinBackoff = time.Second
	DefaultMaxBackoff = 30 * time.Second
)

// ErrNotConnected is returned by Tunnel.Open while no SSH connection is up.
var ErrNotConnected = errors.New("ssh: tunnel not connected")

// Tunnel keeps an SSH connection to a node up and serves forwards over it: local
// forwards (-L: connections to a local listener are opened as direct-tcpip channels
// to a target on the node's side), remote forwards (-R: a listener on the node's
// loopback whose connections are dialled to a local target) and SOCKS5 proxies. When
// the connection is lost, connections through it end, local listeners stay, and Run
// redials with exponential backoff (MinBackoff doubling up to MaxBackoff, forever),
// registering the remote forwards again on the new connection.
type Tunnel struct {
	// Dial opens a new SSH connection (such as a closure over Dial); required.
	Dial func(ctx context.Context) (*Client, error)
	// Local are the -L forwards.
	Local []ForwardSpec
	// Remote are the -R forwards.
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

	mu     sync.Mutex
	client *Client
	lns    localListeners
}

// Listen opens the local listeners (-L and SOCKS) so that their addresses are known
// (LocalAddrs) before Run; Run calls it when it has not been called.
func (t *Tunnel) Listen() error { return t.lns.open(t.Local, t.SOCKS) }

// Close closes the local listeners opened by Listen; use it when Run will not be called
// (Run closes them itself when it returns).
func (t *Tunnel) Close() error { return t.lns.close() }

// LocalAddrs returns the addresses of the local listeners after Listen: the -L
// forwards in order, then the SOCKS5 proxies.
func (t *Tunnel) LocalAddrs() []net.Addr { return t.lns.addrs() }

// Open opens a direct-tcpip channel to host:port through the current connection.
func (t *Tunnel) Open(ctx context.Context, host string, port uint16) (net.Conn, error) {
	t.mu.Lock()
	c := t.client
	t.mu.Unlock()
	if c == nil {
		return nil, ErrNotConnected
	}
	return c.Open(ctx, host, port)
}

// Run serves the forwards until ctx is done, then closes everything and returns nil;
// it returns an error only when the local listeners cannot be opened or Dial is nil.
func (t *Tunnel) Run(ctx context.Context) error {
	if t.Dial == nil {
		return fmt.Errorf("%w: Tunnel.Dial is nil", ErrConfig)
	}
	if err := t.Listen(); err != nil {
		return err
	}
	life := tunnelLife[*Client]{
		name: "ssh tunnel", logger: t.Logger, listeners: t.lns.get(), local: t.Local,
		serveLocal: t.serveLocal, opener: t, minBackoff: t.MinBackoff, maxBackoff: t.MaxBackoff,
		dial: t.Dial,
		connected: func(ctx context.Context, c *Client, wg *sync.WaitGroup, log *slog.Logger) {
			t.setClient(c)
			remote := t.startRemote(ctx, c, wg)
			if t.OnConnect != nil {
				t.OnConnect(remote)
			}
			done := make(chan struct{})
			go func() { _ = c.Wait(); close(done) }()
			select {
			case <-ctx.Done():
			case <-done:
				log.LogAttrs(ctx, slog.LevelWarn, "ssh tunnel: connection lost")
			}
			t.setClient(nil)
			_ = c.Close()
			<-done
		},
	}
	life.run(ctx)
	return nil
}

// tunnelLife is what Tunnel and ForwardTunnel share: local listeners (the -L forwards
// first, then the SOCKS5 proxies) served for the whole run, and a connection to the
// node redialled with backoff until ctx is done.
type tunnelLife[C any] struct {
	name       string // log prefix: "ssh tunnel", "forward tunnel"
	logger     *slog.Logger
	listeners  []net.Listener
	local      []ForwardSpec
	serveLocal func(context.Context, net.Listener, ForwardSpec)
	opener     Opener // what the SOCKS5 proxies open through
	minBackoff time.Duration
	maxBackoff time.Duration
	dial       func(context.Context) (C, error)
	// connected serves one connection and returns once it is lost or ctx is done,
	// having closed it.
	connected func(ctx context.Context, c C, wg *sync.WaitGroup, log *slog.Logger)
}

// run serves the listeners and the connections until ctx is done, then closes the
// listeners and waits for everything it started.
func (l tunnelLife[C]) run(ctx context.Context) {
	log := l.logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer func() {
		// Closed here, not by a context callback, so that they are closed when run
		// returns.
		cancel()
		for _, ln := range l.listeners {
			_ = ln.Close()
		}
		wg.Wait()
	}()
	for i, ln := range l.listeners {
		if i < len(l.local) {
			f := l.local[i]
			wg.Go(func() { l.serveLocal(ctx, ln, f) })
		} else {
			wg.Go(func() { _ = (&SOCKS5Server{Opener: l.opener, Logger: log}).Serve(ctx, ln) })
		}
	}
	minB, maxB := l.minBackoff, l.maxBackoff
	if minB <= 0 {
		minB = DefaultMinBackoff
	}
	if maxB < minB {
		maxB = max(DefaultMaxBackoff, minB)
	}
	backoff := minB
	for ctx.Err() == nil {
		c, err := l.dial(ctx)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			log.LogAttrs(ctx, slog.LevelWarn, l.name+": dial failed", slog.String("err", err.Error()), slog.Duration("retry_in", backoff))
			if !sleep(ctx, backoff) {
				break
			}
			backoff = min(backoff*2, maxB)
			continue
		}
		backoff = minB
		log.LogAttrs(ctx, slog.LevelInfo, l.name+": connected")
		l.connected(ctx, c, &wg, log)
	}
}

func (t *Tunnel) setClient(c *Client) {
	t.mu.Lock()
	t.client = c
	t.mu.Unlock()
}

// serveLocal opens a channel to f's target for every connection to ln.
func (t *Tunnel) serveLocal(ctx context.Context, ln net.Listener, f ForwardSpec) {
	acceptEach(ln, func(c net.Conn) {
		stop := context.AfterFunc(ctx, func() { _ = c.Close() })
		defer stop()
		ch, err := t.Open(ctx, f.Host, f.Port)
		if err != nil {
			_ = c.Close()
			return
		}
		pipe(c, ch)
	})
}

// startRemote asks the node for the -R listeners on c and serves them until c ends;
// it returns the bound addresses (nil for a refused one).
func (t *Tunnel) startRemote(ctx context.Context, c *Client, wg *sync.WaitGroup) []net.Addr {
	out := make([]net.Addr, len(t.Remote))
	for i, f := range t.Remote {
		ln, err := c.Listen("tcp", net.JoinHostPort(f.BindHost, strconv.Itoa(int(f.BindPort))))
		if err != nil {
			if t.Logger != nil {
				t.Logger.LogAttrs(ctx, slog.LevelWarn, "ssh tunnel: remote forward refused", slog.Int("forward", i))
			}
			continue
		}
		out[i] = ln.Addr()
		wg.Go(func() {
			acceptEach(ln, func(rc net.Conn) {
				stop := context.AfterFunc(ctx, func() { _ = rc.Close() })
				defer stop()
				var d net.Dialer
				lc, err := d.DialContext(ctx, "tcp", f.TargetAddress())
				if err != nil {
					_ = rc.Close()
					return
				}
				pipe(rc, lc)
			})
		})
	}
	return out
}

// sleep waits d or until ctx is done; false when ctx ended it.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// localListeners are a tunnel's local listeners (the -L forwards in order, then the
// SOCKS5 proxies), opened once by Listen and served by Run.
type localListeners struct {
	mu  sync.Mutex
	lns []net.Listener
}

// open opens the listeners unless they are open already; on error none stays open.
func (l *localListeners) open(local []ForwardSpec, socks []string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lns != nil {
		return nil
	}
	lns, err := listenLocal(local, socks)
	if err != nil {
		return err
	}
	l.lns = lns
	return nil
}

// get returns the listeners (nil before open).
func (l *localListeners) get() []net.Listener {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lns
}

// close closes the listeners.
func (l *localListeners) close() error {
	for _, ln := range l.get() {
		_ = ln.Close()
	}
	return nil
}

// addrs returns the listeners' addresses, in order.
func (l *localListeners) addrs() []net.Addr {
	lns := l.get()
	out := make([]net.Addr, len(lns))
	for i, ln := range lns {
		out[i] = ln.Addr()
	}
	return out
}

// listenLocal opens the -L listeners, then the SOCKS5 ones; on error none stays open.
func listenLocal(local []ForwardSpec, socks []string) ([]net.Listener, error) {
	var lns []net.Listener
	fail := func(err error) ([]net.Listener, error) {
		for _, ln := range lns {
			_ = ln.Close()
		}
		return nil, err
	}
	for _, f := range local {
		ln, err := net.Listen("tcp", net.JoinHostPort(f.BindHost, strconv.Itoa(int(f.BindPort))))
		if err != nil {
			return fail(fmt.Errorf("ssh: local forward %s: %w", f, err))
		}
		lns = append(lns, ln)
	}
	for _, a := range socks {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			return fail(fmt.Errorf("ssh: SOCKS5 listener %s: %w", a, err))
		}
		lns = append(lns, ln)
	}
	return lns, nil
}
