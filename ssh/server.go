package ssh

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	gossh "golang.org/x/crypto/ssh"

	"github.com/alknet/alknet/core"
)

// ALPN is the protocol the server claims: SSH-2 over the connection's first stream.
const ALPN = "alknet/ssh"

// Scopes the server checks.
const (
	// ScopeExec lets an identity run commands through AllowListExecutor.
	ScopeExec = "ssh:exec"
	// ScopeRemoteForward lets an identity ask for remote (tcpip-forward) listeners on
	// the node's loopback interface.
	ScopeRemoteForward = "ssh:remote-forward"
)

// Defaults of Config.
const (
	DefaultMaxAuthAttempts   = 6
	DefaultHandshakeTimeout  = 30 * time.Second
	DefaultDialTimeout       = 10 * time.Second
	DefaultMaxRemoteForwards = 16
)

// Permissions extension keys the server sets on an authenticated connection.
const (
	// ExtIdentity holds the JSON of the authenticated core.Identity.
	ExtIdentity = "alknet-identity"
	// ExtFingerprint holds the KeyFingerprint of the key that authenticated (for a
	// certificate, its signed key).
	ExtFingerprint = "alknet-key-fingerprint"
)

// ErrConfig is wrapped by the errors of NewServer and Reload for an invalid Config.
var ErrConfig = errors.New("ssh: invalid configuration")

// Executor runs exec requests. Start validates the request and starts the command; an
// error refuses the request (the client sees "exec request failed"; the session stays
// up). wait blocks until the command has ended and its output has been written, and
// returns its exit status. AllowListExecutor is the module's implementation.
type Executor interface {
	Start(ctx context.Context, req ExecRequest) (wait func() uint32, err error)
}

// ExecRequest is one exec request of an authenticated session.
type ExecRequest struct {
	// Identity is who asked.
	Identity core.Identity
	// User is the SSH user name of the login.
	User string
	// Command is the command line as the client sent it.
	Command string
	// Env holds the environment variables the client set that the server accepts,
	// as NAME=value: only GIT_PROTOCOL (git's protocol version request), every other
	// env request is refused.
	Env []string
	// Stdin, Stdout and Stderr are the session channel's streams.
	Stdin          io.Reader
	Stdout, Stderr io.Writer
}

// SubsystemHandler serves a subsystem (such as "sftp") on a session channel until it
// returns; the channel is closed afterwards, with exit status 0 when it returned nil and
// 1 otherwise. The hook is keyed by name in
// Config.Subsystems, so that another module can serve it without importing this one.
type SubsystemHandler func(ctx context.Context, ch Channel, id core.Identity) error

// Channel is what a subsystem handler gets: the session channel's byte stream, with
// half-close (CloseWrite sends EOF to the client) and the stderr stream.
type Channel interface {
	io.Reader
	io.Writer
	Close() error
	CloseWrite() error
	Stderr() io.ReadWriter
}

// Dialer opens the TCP connections of direct-tcpip channels; *net.Dialer is one.
type Dialer interface {
	DialContext(ctx context.Context, network, addr string) (net.Conn, error)
}

// Config configures a Server. Every field is read when a connection starts; Reload
// swaps the whole Config for new connections.
type Config struct {
	// HostKey is the server's host key; required. The assembly layer passes the node's
	// Ed25519 key (NewSigner), or the vault's SSH host key, or one parsed with
	// ParsePrivateKey.
	HostKey gossh.Signer
	// Identities resolves the fingerprints (KeyFingerprint) of client keys; nil
	// accepts no plain key.
	Identities core.IdentityProvider
	// CertAuthorities are the CAs whose user certificates are accepted.
	CertAuthorities []CertAuthority
	// MaxAuthAttempts bounds failed authentication attempts per connection (0:
	// DefaultMaxAuthAttempts; negative: unlimited).
	MaxAuthAttempts int
	// HandshakeTimeout bounds the SSH handshake and authentication
	// (DefaultHandshakeTimeout).
	HandshakeTimeout time.Duration
	// Exec runs exec requests; nil refuses them all.
	Exec Executor
	// Subsystems serve subsystem requests by name; others are refused.
	Subsystems map[string]SubsystemHandler
	// Forwarding decides direct-tcpip channels; the zero value denies all.
	Forwarding ForwardingPolicy
	// Resolver resolves forwarding destination names (nil: net.DefaultResolver):
	// while the policy is checked when a cidr rule needs their addresses (see
	// ForwardingPolicy.Check), else only once the policy has allowed them.
	Resolver Resolver
	// Dialer dials allowed destinations (nil: a net.Dialer with DefaultDialTimeout).
	Dialer Dialer
	// MaxRemoteForwards bounds the tcpip-forward listeners of one connection
	// (DefaultMaxRemoteForwards).
	MaxRemoteForwards int
	// MaxConnectionsPerIP bounds the connections from one IP that Serve accepts on a
	// net.Listener (0: unlimited). On alknet/ssh the endpoint's limits apply instead.
	MaxConnectionsPerIP int
	// Logger receives the connection and auth lines; nil discards them. Forwarding
	// destinations are never logged.
	Logger *slog.Logger
	// Clock is the time certificates are checked against (nil: time.Now).
	Clock func() time.Time
}

// Server is an SSH server. It is a core.ProtocolHandler for alknet/ssh and also serves
// plain net.Listeners (Serve) and connections (ServeConn) with the same
// configuration.
type Server struct {
	cfg   atomic.Pointer[Config]
	ips   ipCounter
	stats sshCounters
}

// NewServer validates cfg and returns a Server.
func NewServer(cfg Config) (*Server, error) {
	s := &Server{}
	if err := s.Reload(cfg); err != nil {
		return nil, err
	}
	return s, nil
}

// Reload validates cfg and makes it the configuration of new connections; open ones
// keep theirs. On error the old configuration stays.
func (s *Server) Reload(cfg Config) error {
	if cfg.HostKey == nil {
		return fmt.Errorf("%w: HostKey is nil", ErrConfig)
	}
	for i, ca := range cfg.CertAuthorities {
		if ca.Key == nil {
			return fmt.Errorf("%w: CertAuthorities[%d] has no key", ErrConfig, i)
		}
	}
	c := cfg
	c.Subsystems = make(map[string]SubsystemHandler, len(cfg.Subsystems))
	for k, v := range cfg.Subsystems {
		c.Subsystems[k] = v
	}
	s.cfg.Store(&c)
	return nil
}

// ALPN reports "alknet/ssh".
func (s *Server) ALPN() string { return ALPN }

// Handle serves SSH on the connection's first stream. Further streams are refused
// (one SSH session per connection). The peer's QUIC or TLS identity plays no part:
// SSH authenticates on its own. Once SSH authentication has succeeded the
// connection is marked busy (core.Connection.Busy) until it ends, so that an idle
// session is not closed by the endpoint's idle timeout, as OpenSSH keeps idle
// sessions; a connection that never authenticates is still closed by it.
func (s *Server) Handle(ctx context.Context, conn *core.Connection, _ core.AuthContext) error {
	st, err := conn.AcceptBi(ctx)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var extra sync.WaitGroup
	if !conn.SingleStream() {
		extra.Go(func() {
			for {
				x, err := conn.AcceptBi(ctx)
				if err != nil {
					return
				}
				_ = x.Close()
			}
		})
	}
	transport := TransportQUIC
	if conn.SingleStream() {
		transport = TransportTLS
	}
	nc := &tcpAddrConn{Conn: core.NetConn(st, conn.LocalAddr(), conn.RemoteAddr())}
	err = s.serveConn(ctx, nc, transport, conn.Busy)
	cancel()
	extra.Wait()
	return err
}

// tcpAddrConn presents a UDP (QUIC) remote address as a TCP one, so that
// gossh's source-address check of certificates, which only knows TCP addresses,
// works over QUIC.
type tcpAddrConn struct{ net.Conn }

func (c *tcpAddrConn) RemoteAddr() net.Addr {
	if u, ok := c.Conn.RemoteAddr().(*net.UDPAddr); ok {
		return &net.TCPAddr{IP: u.IP, Port: u.Port, Zone: u.Zone}
	}
	return c.Conn.RemoteAddr()
}

// Serve accepts connections on ln and serves each with transport "tcp" until ctx is
// done or ln fails; it closes ln and returns after every connection has ended.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// A close callback already running is waited for before returning (as in
	// SOCKS5Server.Serve): a second ln.Close would return at once while the first may
	// not have released the socket yet.
	closed := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(closed)
		_ = ln.Close()
	})
	defer func() {
		if !stop() {
			<-closed
		}
	}()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		ip, _ := core.AddrIP(c.RemoteAddr())
		max := s.cfg.Load().MaxConnectionsPerIP
		if !s.ips.acquire(ip, max) {
			s.logger().LogAttrs(ctx, slog.LevelInfo, "connection rejected",
				slog.String("remote_addr", c.RemoteAddr().String()), slog.String("reason", "too many connections from this address"))
			_ = c.Close()
			continue
		}
		wg.Go(func() {
			defer s.ips.release(ip)
			_ = s.ServeConn(ctx, c, TransportTCP)
		})
	}
}

// ServeConn serves one SSH connection over nc (closed when it returns) with the
// current configuration; transport names it for forwarding rules (TransportQUIC,
// TransportTLS or TransportTCP). It returns when the client disconnects or ctx is
// done.
func (s *Server) ServeConn(ctx context.Context, nc net.Conn, transport string) error {
	return s.serveConn(ctx, nc, transport, nil)
}

// serveConn is ServeConn; busy, when not nil, is called once the client has
// authenticated, and the function it returns when the connection ends.
func (s *Server) serveConn(ctx context.Context, nc net.Conn, transport string, busy func() (done func())) error {
	defer nc.Close()
	cfg := s.cfg.Load()
	log := s.logger()
	remote := nc.RemoteAddr().String()
	start := time.Now()
	log.LogAttrs(ctx, slog.LevelInfo, "connection opened", slog.String("remote_addr", remote), slog.String("transport", transport))
	defer func() {
		log.LogAttrs(ctx, slog.LevelInfo, "connection closed", slog.String("remote_addr", remote), slog.Duration("duration", time.Since(start)))
	}()

	timeout := cfg.HandshakeTimeout
	if timeout <= 0 {
		timeout = DefaultHandshakeTimeout
	}
	_ = nc.SetDeadline(time.Now().Add(timeout))
	stopHandshake := context.AfterFunc(ctx, func() { _ = nc.Close() })
	sconn, chans, reqs, err := gossh.NewServerConn(nc, s.serverConfig(ctx, cfg, log))
	stopHandshake()
	if err != nil {
		s.stats.handshakeFailures.Add(1)
		return fmt.Errorf("ssh: handshake: %w", err)
	}
	_ = nc.SetDeadline(time.Time{})
	id, err := identityOf(sconn.Permissions)
	if err != nil {
		_ = sconn.Close()
		return err
	}
	if busy != nil {
		done := busy()
		defer done()
	}
	s.stats.sessions.Add(1)
	s.stats.active.Add(1)
	defer s.stats.active.Add(-1)
	sess := &session{
		srv: s, cfg: cfg, conn: sconn, id: id, transport: transport, log: log,
		forwards: map[string]net.Listener{},
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { _ = sconn.Close() })
	defer stop()
	sess.wg.Go(func() { sess.globalRequests(ctx, reqs) })
	for nch := range chans {
		sess.channel(ctx, nch)
	}
	cancel()
	sess.closeForwards()
	sess.wg.Wait()
	return nil
}

func (s *Server) logger() *slog.Logger {
	if l := s.cfg.Load().Logger; l != nil {
		return l
	}
	return slog.New(slog.DiscardHandler)
}

// serverConfig is the gossh configuration of one connection.
func (s *Server) serverConfig(ctx context.Context, cfg *Config, log *slog.Logger) *gossh.ServerConfig {
	now := cfg.Clock
	if now == nil {
		now = time.Now
	}
	tries := cfg.MaxAuthAttempts
	switch {
	case tries == 0:
		tries = DefaultMaxAuthAttempts
	case tries < 0:
		tries = -1
	}
	checker := &gossh.CertChecker{
		IsUserAuthority: func(k gossh.PublicKey) bool { _, ok := findCA(cfg.CertAuthorities, k); return ok },
		Clock:           now,
	}
	// Only for the auth log line: which key the last attempt used. Authorization reads
	// the Permissions of the key that was verified, never this.
	var lastKey atomic.Value
	sc := &gossh.ServerConfig{
		MaxAuthTries: tries,
		PublicKeyCallback: func(meta gossh.ConnMetadata, key gossh.PublicKey) (*gossh.Permissions, error) {
			lastKey.Store(keyLabel(key))
			if cert, ok := key.(*gossh.Certificate); ok {
				return certPermissions(checker, cfg, meta, cert)
			}
			fp := KeyFingerprint(key)
			if cfg.Identities == nil {
				return nil, errors.New("unknown key")
			}
			id, ok := cfg.Identities.ResolveFromFingerprint(fp)
			if !ok || id == nil {
				return nil, errors.New("unknown key")
			}
			return withIdentity(&gossh.Permissions{}, *id, fp)
		},
		AuthLogCallback: func(meta gossh.ConnMetadata, method string, err error) {
			if method == "none" {
				return // every client probes "none" first; not an attempt
			}
			result := "accept"
			if err != nil {
				result = "reject"
			}
			fp, _ := lastKey.Load().(string)
			if method != "publickey" {
				fp = "-"
			}
			log.LogAttrs(ctx, slog.LevelInfo, "auth attempt",
				slog.String("remote_addr", meta.RemoteAddr().String()),
				slog.String("user", clipUser(meta.User())),
				slog.String("method", method),
				slog.String("key_fingerprint", fp),
				slog.String("result", result))
			if err != nil {
				core.LogAuthFailure(ctx, log, core.AuthFailure{Remote: meta.RemoteAddr(), ALPN: ALPN, Reason: "ssh " + method + " rejected"})
			}
		},
	}
	sc.AddHostKey(cfg.HostKey)
	return sc
}

// certPermissions checks a user certificate against the CAs and returns its own
// Permissions (so gossh enforces source-address) with the identity added.
func certPermissions(checker *gossh.CertChecker, cfg *Config, meta gossh.ConnMetadata, cert *gossh.Certificate) (*gossh.Permissions, error) {
	if len(cert.ValidPrincipals) == 0 {
		// gossh accepts a certificate without principals for any user; OpenSSH does
		// not, and the identity would be whatever name the client sent.
		return nil, errors.New("certificate has no principals")
	}
	perms, err := checker.Authenticate(meta, cert)
	if err != nil {
		return nil, err
	}
	ca, _ := findCA(cfg.CertAuthorities, cert.SignatureKey)
	if ca.PermitPortForwarding {
		if _, ok := cert.Extensions["permit-port-forwarding"]; !ok {
			return nil, errors.New("certificate lacks permit-port-forwarding required by its CA")
		}
	}
	id := core.Identity{ID: meta.User(), Scopes: append([]string(nil), ca.Scopes...)}
	// Copy, never rebuild: the copy keeps CriticalOptions (source-address).
	p := &gossh.Permissions{CriticalOptions: make(map[string]string, len(perms.CriticalOptions)), Extensions: make(map[string]string, len(perms.Extensions)+2)}
	for k, v := range perms.CriticalOptions {
		p.CriticalOptions[k] = v
	}
	for k, v := range perms.Extensions {
		p.Extensions[k] = v
	}
	return withIdentity(p, id, KeyFingerprint(cert.Key))
}

// withIdentity records id and fp in p's extensions.
func withIdentity(p *gossh.Permissions, id core.Identity, fp string) (*gossh.Permissions, error) {
	b, err := json.Marshal(id)
	if err != nil {
		return nil, err
	}
	if p.Extensions == nil {
		p.Extensions = map[string]string{}
	}
	p.Extensions[ExtIdentity] = string(b)
	p.Extensions[ExtFingerprint] = fp
	return p, nil
}

// identityOf reads the identity the successful auth recorded.
func identityOf(p *gossh.Permissions) (core.Identity, error) {
	var id core.Identity
	if p == nil || p.Extensions[ExtIdentity] == "" {
		return id, errors.New("ssh: authenticated connection without identity")
	}
	if err := json.Unmarshal([]byte(p.Extensions[ExtIdentity]), &id); err != nil {
		return id, fmt.Errorf("ssh: identity: %w", err)
	}
	return id, nil
}

// findCA returns the CA whose key is k.
func findCA(cas []CertAuthority, k gossh.PublicKey) (CertAuthority, bool) {
	kb := k.Marshal()
	for _, ca := range cas {
		if string(ca.Key.Marshal()) == string(kb) {
			return ca, true
		}
	}
	return CertAuthority{}, false
}

// keyLabel is what the auth line shows for a key: its fingerprint, or for a
// certificate the fingerprint of the signed key.
func keyLabel(k gossh.PublicKey) string {
	if c, ok := k.(*gossh.Certificate); ok {
		return KeyFingerprint(c.Key)
	}
	return KeyFingerprint(k)
}

// clipUser bounds a client-chosen user name in logs.
func clipUser(u string) string {
	const max = 64
	if len(u) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(u[cut]) {
			cut--
		}
		u = u[:cut] + "…"
	}
	return strings.ToValidUTF8(u, "\ufffd")
}

// ipCounter counts connections per IP for Serve.
type ipCounter struct {
	mu sync.Mutex
	n  map[netip.Addr]int
}

func (c *ipCounter) acquire(ip netip.Addr, max int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[netip.Addr]int{}
	}
	if max > 0 && c.n[ip] >= max {
		return false
	}
	c.n[ip]++
	return true
}

func (c *ipCounter) release(ip netip.Addr) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n[ip]--; c.n[ip] <= 0 {
		delete(c.n, ip)
	}
}
