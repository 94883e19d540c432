// Package endpoint accepts QUIC and TCP+TLS connections and routes each one, by the ALPN
// negotiated in its handshake, to the handler registered for it in a [core.Registry]. It
// also dials such endpoints ([Dial]).
//
// One Endpoint serves any number of listeners: a QUIC listener (UDP) and its TCP+TLS
// twin, usually on the same port number ([Endpoint.Listen]). Unknown ALPNs are refused in
// the handshake; a TCP client that offers no ALPN is closed without a handler. Every
// connection runs its handler in its own goroutine with panic recovery, under limits read
// live from a [core.Limits] source: concurrent connections in total and per remote
// address, handshake time, streams per QUIC connection, the idle time after which a
// connection without traffic and not marked busy ([core.Connection.Busy]) is closed, and
// the memory budgets each connection gets ([core.Connection.Budget]: its own, under its
// address's, under the endpoint's). [Endpoint.Shutdown] stops
// accepting, cancels handler contexts, waits up to the drain timeout and then closes what
// is left.
//
// Logs: one line per connection (msg="connection") with transport, ALPN, remote address,
// peer, fingerprint, outcome and duration; refusals as msg="connection refused" with a
// reason (rate-limited); authentication failures in core's shared format
// ([core.LogAuthFailure]).
package endpoint

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/alknet/alknet/core"
)

// Defaults of [Config].
const (
	// DefaultDrainTimeout is how long Shutdown waits for handlers before closing their
	// connections.
	DefaultDrainTimeout = 2 * time.Second
	// DefaultMaxIncomingStreams caps concurrent bidirectional streams a peer may open on
	// one QUIC connection.
	DefaultMaxIncomingStreams = 100
	// DefaultMaxIdleTimeout closes a QUIC connection after this long without traffic.
	DefaultMaxIdleTimeout = 30 * time.Second
	// DefaultKeepAlivePeriod is how often a quiet QUIC connection sends a keep-alive, so
	// long SSH or git sessions outlive the idle timeout.
	DefaultKeepAlivePeriod = 15 * time.Second
	// DefaultCloseLinger is how long a connection whose handler returned nil stays open
	// for the peer to finish reading and close it first.
	DefaultCloseLinger = 2 * time.Second
)

// maxLingerDiscard bounds what a lingering TCP+TLS close reads and discards.
const maxLingerDiscard = 1 << 20

// ErrEndpointClosed is returned by the Serve and Listen methods once Shutdown began.
var ErrEndpointClosed = errors.New("endpoint closed")

// Transport names used in logs.
const (
	transportQUIC     = "quic"
	transportTCP      = "tcp+tls"
	transportDispatch = "dispatch"
)

// Config configures an [Endpoint]. Only TLS is required.
type Config struct {
	// TLS is the server TLS configuration, normally tlsconf.ServerConfig. The endpoint
	// uses a copy whose NextProtos are the registry's ALPNs (plus "acme-tls/1" when TLS
	// lists it, for ACME certificate managers).
	//
	// Session tickets (TLS 1.3 resumption; never 0-RTT) are issued and accepted on every
	// listener under one set of ticket keys: those set on TLS with SetSessionTicketKeys
	// before New, else keys crypto/tls makes and rotates daily. A configuration that
	// TLS.GetConfigForClient returns uses them too, unless it sets WrapSession or
	// UnwrapSession (keys set with SetSessionTicketKeys on it are not used: wrap with
	// its EncryptTicket and DecryptTicket instead). TLS.SessionTicketsDisabled turns
	// resumption off; WrapSession or UnwrapSession on TLS itself are used as they are.
	// A resumed connection is served as a new one: its client certificate, restored
	// from the ticket, is the one its first handshake verified, and its fingerprint is
	// resolved through Identities again, so a peer revoked since gets what an unknown
	// peer gets.
	TLS *tls.Config
	// Identities resolves client certificate fingerprints to identities. Nil resolves
	// nothing: every AuthContext then has a nil Identity.
	Identities core.IdentityProvider
	// Limits returns the live limits and is called for every new connection, so a reload
	// applies to the next one (for example (*core.DynamicStore).Limits). Nil means the
	// defaults of core.Limits.
	Limits func() core.Limits
	// DrainTimeout is how long Shutdown waits for handlers to return after cancelling
	// their contexts, before it closes their connections (0: DefaultDrainTimeout;
	// negative: no wait).
	DrainTimeout time.Duration
	// MaxIncomingStreams caps concurrent streams a peer may open on one QUIC connection
	// (0: DefaultMaxIncomingStreams; negative: none). Unidirectional streams are never
	// allowed unless MaxIncomingUniStreams says so.
	MaxIncomingStreams int64
	// MaxIncomingUniStreams caps concurrent unidirectional streams a peer may open on one
	// QUIC connection, whatever its ALPN (0 or negative: none, the default: a peer that
	// opens one anyway breaks QUIC's stream limit and the connection closes with
	// STREAM_LIMIT_ERROR). Handlers see them with core.Connection.AcceptUni; a stream no
	// handler accepts keeps its slot until the connection ends. DNS over QUIC wants 1, so
	// that it can close a connection whose peer opens one with its own protocol error
	// code.
	//
	// Handlers that need unidirectional streams for themselves (HTTP/3) say so with
	// core.UniStreamHandler instead: the listener then grants the most any of them asks
	// for (or this value, if larger), and while this value is 0 a peer that opens one on
	// a connection of any other handler has its connection closed with
	// core.CloseLimitExceeded, so those handlers see no difference.
	MaxIncomingUniStreams int64
	// MaxIdleTimeout closes a silent QUIC connection (0: DefaultMaxIdleTimeout).
	MaxIdleTimeout time.Duration
	// KeepAlivePeriod is the QUIC keep-alive interval (0: DefaultKeepAlivePeriod;
	// negative: no keep-alives).
	KeepAlivePeriod time.Duration
	// CloseLinger applies when a handler returns nil: closing at once would drop bytes
	// the peer has not received yet (QUIC discards unacknowledged stream data on close; a
	// TCP close with unread input resets). So the endpoint first waits, up to CloseLinger,
	// for the peer to close (on TCP+TLS after sending close_notify and discarding input).
	// Peers that close after reading end the linger at once; shutdown's force-close ends it
	// too. 0: DefaultCloseLinger; negative: close at once.
	CloseLinger time.Duration
	// TCPDefaultALPN is the protocol a TCP+TLS client that offers no ALPN at all is
	// served as; it must be registered. Set it to "http/1.1" to serve HTTP clients that
	// send none, such as Go's net/http for a WebSocket upgrade (it drops ALPN from
	// upgrade requests) or plain TLS tools. Empty (the default): such a connection is
	// refused (no_handler). QUIC always negotiates an ALPN.
	TCPDefaultALPN string
	// Logger receives connection, refusal and auth-failure lines (nil: discard).
	Logger *slog.Logger
}

// Endpoint dispatches incoming connections to handlers by ALPN. Create it with [New].
type Endpoint struct {
	reg    *core.Registry
	idp    core.IdentityProvider
	limits func() core.Limits
	drain  time.Duration
	linger time.Duration
	// tcpDefaultALPN serves TCP+TLS clients that offer no ALPN ("": refused).
	tcpDefaultALPN string
	log            *slog.Logger
	quicTLS        *tls.Config
	tcpTLS         *tls.Config
	quicCfg        *quic.Config
	// uniRefused: the listener grants unidirectional streams only for the handlers that
	// declare them (core.UniStreamHandler); other connections refuse them.
	uniRefused bool

	ctx    context.Context // cancelled when shutdown begins
	cancel context.CancelFunc

	lim     *limiter
	budgets *core.BudgetPool
	stats   *counters
	rlog    *refusalLog

	mu      sync.Mutex
	closing bool
	conns   map[*tracked]struct{}
	drained chan struct{} // closed once closing and no handler runs
	quicLns []*quicListener
	tcpLns  []net.Listener
	loops   sync.WaitGroup // accept loops

	shutOnce  sync.Once
	forceOnce sync.Once
	force     chan struct{}
	done      chan struct{}
}

type quicListener struct {
	tr *quic.Transport
	ln *quic.Listener
	pc net.PacketConn
}

// tracked is a connection whose handler runs.
type tracked struct {
	force   func()       // drops the transport connection at once
	streams *streamGauge // its open QUIC streams; nil on other transports
}

// New returns an endpoint serving the handlers of reg. Register every handler first: the
// TLS configuration advertises the ALPNs reg has now.
func New(reg *core.Registry, cfg Config) (*Endpoint, error) {
	if reg == nil {
		return nil, errors.New("endpoint: nil registry")
	}
	if cfg.TLS == nil {
		return nil, errors.New("endpoint: Config.TLS is required (see tlsconf.ServerConfig)")
	}
	if len(cfg.TLS.Certificates) == 0 && cfg.TLS.GetCertificate == nil && cfg.TLS.GetConfigForClient == nil {
		return nil, errors.New("endpoint: Config.TLS has no certificate")
	}
	alpns := reg.ALPNs()
	if len(alpns) == 0 {
		return nil, errors.New("endpoint: no handlers registered")
	}
	if slices.Contains(cfg.TLS.NextProtos, core.ALPNACME) {
		alpns = append(alpns, core.ALPNACME)
	}
	if d := cfg.TCPDefaultALPN; d != "" {
		if _, ok := reg.Get(d); !ok {
			return nil, fmt.Errorf("endpoint: Config.TCPDefaultALPN %q has no handler", d)
		}
	}
	e := &Endpoint{
		reg:            reg,
		tcpDefaultALPN: cfg.TCPDefaultALPN,
		idp:            cfg.Identities,
		limits:         cfg.Limits,
		drain:          cfg.DrainTimeout,
		log:            cfg.Logger,
		lim:            newLimiter(),
		budgets:        core.NewBudgetPool(core.DefaultMaxBufferedBytes),
		stats:          newCounters(),
		rlog:           newRefusalLog(),
		conns:          make(map[*tracked]struct{}),
		drained:        make(chan struct{}),
		force:          make(chan struct{}),
		done:           make(chan struct{}),
	}
	if e.limits == nil {
		e.limits = func() core.Limits { return core.Limits{} }
	}
	switch {
	case e.drain == 0:
		e.drain = DefaultDrainTimeout
	case e.drain < 0:
		e.drain = 0
	}
	switch e.linger = cfg.CloseLinger; {
	case e.linger == 0:
		e.linger = DefaultCloseLinger
	case e.linger < 0:
		e.linger = 0
	}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	e.ctx, e.cancel = context.WithCancel(context.Background())
	tickets := newSessionTickets(cfg.TLS)
	e.quicTLS = e.serverTLS(cfg.TLS, alpns, tickets)
	e.tcpTLS = e.serverTLS(cfg.TLS, alpns, tickets)

	base := quicConfig(cfg.MaxIncomingStreams, cfg.MaxIdleTimeout, cfg.KeepAlivePeriod)
	uni := max(cfg.MaxIncomingUniStreams, 0)
	if declared := declaredUniStreams(reg); declared > uni {
		uni = declared
		e.uniRefused = cfg.MaxIncomingUniStreams <= 0
	}
	if uni > 0 {
		base.MaxIncomingUniStreams = uni
	}
	e.quicCfg = base.Clone()
	e.quicCfg.GetConfigForClient = func(*quic.ClientInfo) (*quic.Config, error) {
		c := base.Clone()
		c.HandshakeIdleTimeout = e.limits().Effective().HandshakeTimeout
		return c, nil
	}
	return e, nil
}

// quicConfig returns the QUIC settings shared by the endpoint and Dial, with the
// documented defaults for zero values (negative streams: none; negative keep-alive: off).
func quicConfig(streams int64, idle, keepAlive time.Duration) *quic.Config {
	if streams == 0 {
		streams = DefaultMaxIncomingStreams
	}
	if idle <= 0 {
		idle = DefaultMaxIdleTimeout
	}
	switch {
	case keepAlive == 0:
		keepAlive = DefaultKeepAlivePeriod
	case keepAlive < 0:
		keepAlive = 0
	}
	return &quic.Config{
		HandshakeIdleTimeout:  core.DefaultHandshakeTimeout,
		MaxIdleTimeout:        idle,
		KeepAlivePeriod:       keepAlive,
		MaxIncomingStreams:    streams,
		MaxIncomingUniStreams: -1,
	}
}

// serverTLS returns a copy of base advertising alpns that counts clients offering none
// of them (the handshake then fails with no_application_protocol), with session tickets
// under the endpoint's shared keys (tickets may be nil).
func (e *Endpoint) serverTLS(base *tls.Config, alpns []string, tickets *sessionTickets) *tls.Config {
	c := base.Clone()
	c.NextProtos = slices.Clone(alpns)
	tickets.install(c)
	next := base.GetConfigForClient
	c.GetConfigForClient = func(chi *tls.ClientHelloInfo) (*tls.Config, error) {
		// A TCP client offering no ALPN completes its handshake; dispatch closes it.
		hc, tcp := chi.Conn.(*handshakeConn)
		if !overlaps(alpns, chi.SupportedProtos) && !(tcp && len(chi.SupportedProtos) == 0) {
			if tcp {
				hc.unknownALPN = true
			}
			e.refuse(chi.Context(), slog.LevelDebug, RefusedUnknownALPN,
				slog.String("remote_ip", core.RemoteIP(chi.Conn.RemoteAddr())),
				slog.Any("offered", chi.SupportedProtos))
		}
		if next != nil {
			cfg, err := next(chi)
			return tickets.forClient(cfg), err
		}
		return nil, nil
	}
	return c
}

func overlaps(server, client []string) bool {
	for _, c := range client {
		if slices.Contains(server, c) {
			return true
		}
	}
	return false
}

// handshakeConn carries per-connection handshake facts from GetConfigForClient.
type handshakeConn struct {
	net.Conn
	unknownALPN bool
}

// CloseWrite half-closes the TCP connection (used by tls.Conn.CloseWrite callers).
func (c *handshakeConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// Listen binds a QUIC (UDP) listener and a TCP+TLS listener on the same host and port
// number and starts serving both. With port 0 both get the same free port. It returns
// once both are bound; Shutdown stops them.
func (e *Endpoint) Listen(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("endpoint: listen %q: %w", addr, err)
	}
	// A UDP port whose TCP twin is taken (most often by the local end of an outgoing
	// connection on a busy machine) is given back and another tried; on a machine with
	// tens of thousands of outgoing connections one in a few ports can be taken.
	const attempts = 64
	for i := 0; ; i++ {
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			return fmt.Errorf("endpoint: listen quic %s: %w", addr, err)
		}
		tcpAddr := addr
		if port == "0" {
			tcpAddr = net.JoinHostPort(host, fmt.Sprint(pc.LocalAddr().(*net.UDPAddr).Port))
		}
		ln, err := net.Listen("tcp", tcpAddr)
		if err != nil {
			pc.Close()
			if port == "0" && errors.Is(err, syscall.EADDRINUSE) && i < attempts {
				continue // that UDP port's TCP twin is taken: try another port
			}
			return fmt.Errorf("endpoint: listen tcp %s: %w", tcpAddr, err)
		}
		ql, err := e.startQUIC(pc)
		if err != nil {
			ln.Close()
			return err
		}
		if err := e.startTCP(ln); err != nil {
			return err
		}
		go func() { e.logServeErr(transportQUIC, e.acceptQUIC(ql)) }()
		go func() { e.logServeErr(transportTCP, e.acceptTCP(ln)) }()
		return nil
	}
}

// ListenQUIC binds a QUIC listener on the UDP address and starts serving it.
func (e *Endpoint) ListenQUIC(addr string) error {
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return fmt.Errorf("endpoint: listen quic %s: %w", addr, err)
	}
	ql, err := e.startQUIC(pc)
	if err != nil {
		return err
	}
	go func() { e.logServeErr(transportQUIC, e.acceptQUIC(ql)) }()
	return nil
}

// ListenTCP binds a TCP+TLS listener on the address and starts serving it.
func (e *Endpoint) ListenTCP(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("endpoint: listen tcp %s: %w", addr, err)
	}
	if err := e.startTCP(ln); err != nil {
		return err
	}
	go func() { e.logServeErr(transportTCP, e.acceptTCP(ln)) }()
	return nil
}

func (e *Endpoint) logServeErr(transport string, err error) {
	if err != nil && !errors.Is(err, ErrEndpointClosed) {
		e.log.Error("listener stopped", slog.String("transport", transport), slog.Any("error", err))
	}
}

// ServeQUIC serves QUIC connections arriving on pc until Shutdown, then returns
// ErrEndpointClosed. The endpoint owns pc and closes it.
func (e *Endpoint) ServeQUIC(pc net.PacketConn) error {
	ql, err := e.startQUIC(pc)
	if err != nil {
		return err
	}
	return e.acceptQUIC(ql)
}

// ServeTCP serves TCP+TLS connections accepted from ln until Shutdown, then returns
// ErrEndpointClosed. The endpoint owns ln and closes it.
func (e *Endpoint) ServeTCP(ln net.Listener) error {
	if err := e.startTCP(ln); err != nil {
		return err
	}
	return e.acceptTCP(ln)
}

func (e *Endpoint) startQUIC(pc net.PacketConn) (*quicListener, error) {
	tr := &quic.Transport{Conn: pc, ConnContext: e.quicConnContext}
	ln, err := tr.Listen(e.quicTLS, e.quicCfg)
	if err != nil {
		tr.Close()
		pc.Close()
		return nil, fmt.Errorf("endpoint: quic listen: %w", err)
	}
	ql := &quicListener{tr: tr, ln: ln, pc: pc}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closing {
		ln.Close()
		tr.Close()
		pc.Close()
		return nil, ErrEndpointClosed
	}
	e.quicLns = append(e.quicLns, ql)
	e.loops.Add(1)
	return ql, nil
}

func (e *Endpoint) startTCP(ln net.Listener) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closing {
		ln.Close()
		return ErrEndpointClosed
	}
	e.tcpLns = append(e.tcpLns, ln)
	e.loops.Add(1)
	return nil
}

// QUICAddr returns the address of the first QUIC listener, or nil.
func (e *Endpoint) QUICAddr() net.Addr {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.quicLns) == 0 {
		return nil
	}
	return e.quicLns[0].ln.Addr()
}

// TCPAddr returns the address of the first TCP+TLS listener, or nil.
func (e *Endpoint) TCPAddr() net.Addr {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.tcpLns) == 0 {
		return nil
	}
	return e.tcpLns[0].Addr()
}

// ALPNs returns the protocols the endpoint advertises, in preference order.
func (e *Endpoint) ALPNs() []string { return slices.Clone(e.tcpTLS.NextProtos) }

// Stats returns a snapshot of the endpoint's counters.
func (e *Endpoint) Stats() Stats {
	s := e.stats.snapshot()
	s.Connections = e.lim.open()
	s.ActiveStreams = e.activeStreams()
	return s
}

// refuse logs a refusal (rate-limited) and then counts it, so that whoever sees the
// counter move finds the line written.
func (e *Endpoint) refuse(ctx context.Context, level slog.Level, reason RefuseReason, attrs ...slog.Attr) {
	e.rlog.log(ctx, e.log, level, reason, attrs...)
	e.stats.refuse(reason)
}

func (e *Endpoint) isClosing() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.closing
}

// errRefused makes quic-go answer CONNECTION_REFUSED before the handshake.
var errRefused = errors.New("connection refused")

// quicConnContext runs before the QUIC handshake: it refuses new connections during
// shutdown and above MaxConnections. The slot is released when the connection's context
// ends (handshake failure or close).
func (e *Endpoint) quicConnContext(ctx context.Context, info *quic.ClientInfo) (context.Context, error) {
	if e.isClosing() {
		e.stats.refuse(RefusedShutdown)
		return nil, errRefused
	}
	lim := e.limits().Effective()
	if !e.lim.acquire(lim.MaxConnections) {
		e.refuse(ctx, slog.LevelWarn, RefusedMaxConnections,
			slog.String("transport", transportQUIC),
			slog.String("remote_ip", core.RemoteIP(info.RemoteAddr)),
			slog.Int("limit", lim.MaxConnections))
		return nil, errRefused
	}
	// A handshake that fails releases the slot when its context ends; a connection that
	// gets through hands the slot to handleQUIC (see takeQUICSlot).
	release := sync.OnceFunc(e.lim.release)
	stop := context.AfterFunc(ctx, func() {
		// Not stopped by takeQUICSlot: the connection ended in its handshake.
		e.stats.quicHandshakeFailed.Add(1)
		release()
	})
	return context.WithValue(ctx, quicSlotKey{}, quicSlot{stop: stop, release: release}), nil
}

// quicSlotKey carries a QUIC connection's MaxConnections slot in its context.
type quicSlotKey struct{}

type quicSlot struct {
	stop    func() bool // stops the release-on-close callback
	release func()
}

// takeQUICSlot takes over the release of qc's MaxConnections slot from the context
// callback (saving a goroutine per connection) and returns the release to call when the
// connection is done; a no-op when the connection already closed and released it.
func takeQUICSlot(qc *quic.Conn) func() {
	if slot, ok := qc.Context().Value(quicSlotKey{}).(quicSlot); ok && slot.stop() {
		return slot.release
	}
	return func() {}
}

// quicAcceptors is how many goroutines wait in Accept on each QUIC listener. quic-go
// queues at most 32 handshaken connections and refuses the rest with
// CONNECTION_REFUSED; every acceptor parked in Accept takes a connection off that queue
// the moment it arrives, even before the scheduler runs it, so a burst of handshakes
// finishing together on a busy machine is not refused.
const quicAcceptors = 16

func (e *Endpoint) acceptQUIC(ql *quicListener) error {
	defer e.loops.Done()
	errs := make(chan error, quicAcceptors)
	for range quicAcceptors {
		go func() { errs <- e.acceptQUICLoop(ql) }()
	}
	err := <-errs
	_ = ql.ln.Close() // stop the other acceptors too
	for range quicAcceptors - 1 {
		<-errs
	}
	return err
}

func (e *Endpoint) acceptQUICLoop(ql *quicListener) error {
	for {
		qc, err := ql.ln.Accept(context.Background())
		if err != nil {
			if e.isClosing() {
				return ErrEndpointClosed
			}
			return fmt.Errorf("endpoint: quic accept: %w", err)
		}
		go e.handleQUIC(qc)
	}
}

// handleQUIC runs for a connection whose handshake finished: the per-IP cap (checked
// here, on an address the handshake validated, so a spoofed source cannot use up
// another host's quota), then dispatch.
func (e *Endpoint) handleQUIC(qc *quic.Conn) {
	st := qc.ConnectionState().TLS
	fp := ""
	if len(st.PeerCertificates) > 0 {
		fp = core.FingerprintFromCert(st.PeerCertificates[0])
	}
	release := takeQUICSlot(qc)
	lim := e.limits().Effective()
	ipKey := ""
	if ip, ok := core.AddrIP(qc.RemoteAddr()); ok {
		if key, counted := lim.PerIPKey(ip); counted {
			if !e.lim.acquireIP(key, lim.MaxConnectionsPerIP) {
				e.refusePerIP(qc.Context(), transportQUIC, ip.String(), lim.MaxConnectionsPerIP)
				_ = qc.CloseWithError(quic.ApplicationErrorCode(core.CloseRefused), perIPReason(ip.String(), lim.MaxConnectionsPerIP))
				release()
				return
			}
			releaseGlobal := release
			release = func() { e.lim.releaseIP(key); releaseGlobal() }
			ipKey = key.String()
		}
	}
	idle := newIdleWatch(lim.IdleTimeout, func() {
		_ = qc.CloseWithError(quic.ApplicationErrorCode(core.CloseIdleTimeout), idleReason)
	})
	src := &quicSource{c: qc, idle: idle, streams: &streamGauge{total: &e.stats.streams}}
	if e.uniRefused && !e.acceptsUni(st.NegotiatedProtocol) {
		src.noUni = true
		go refuseUniStreams(qc, st.NegotiatedProtocol)
	}
	conn := core.NewConnection(src, st.NegotiatedProtocol)
	budget, releaseBudget := e.budgets.NewConn(lim, ipKey)
	conn.SetBudget(budget)
	releaseSlots := release
	release = func() { idle.stop(); releaseBudget(); releaseSlots() }
	e.serve(incoming{
		conn:      conn,
		fp:        fp,
		resumed:   st.DidResume,
		transport: transportQUIC,
		streams:   src.streams,
		connCtx:   qc.Context(),
		idle:      idle,
		force:     func() { _ = qc.CloseWithError(quic.ApplicationErrorCode(core.CloseNormal), "shutdown") },
		release:   release,
		linger: func(d time.Duration) {
			t := time.NewTimer(d)
			defer t.Stop()
			select {
			case <-qc.Context().Done():
			case <-t.C:
			}
		},
	})
}

func perIPReason(ip string, limit int) string {
	return fmt.Sprintf("refused: too many concurrent connections from %s (limit %d)", ip, limit)
}

func (e *Endpoint) refusePerIP(ctx context.Context, transport, ip string, limit int) {
	e.refuse(ctx, slog.LevelWarn, RefusedPerIP,
		slog.String("transport", transport),
		slog.String("remote_ip", ip),
		slog.Int("limit", limit))
}

func (e *Endpoint) acceptTCP(ln net.Listener) error {
	defer e.loops.Done()
	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if e.isClosing() {
				return ErrEndpointClosed
			}
			if isTemporaryAcceptError(err) {
				// Out of file descriptors or similar: back off as net/http does.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				e.log.Warn("tcp accept error; retrying", slog.Any("error", err), slog.Duration("delay", backoff))
				select {
				case <-time.After(backoff):
				case <-e.ctx.Done():
				}
				continue
			}
			return fmt.Errorf("endpoint: tcp accept: %w", err)
		}
		backoff = 0
		e.admitTCP(c)
	}
}

func isTemporaryAcceptError(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.ENOMEM) ||
		errors.Is(err, syscall.ECONNABORTED)
}

// admitTCP applies the connection caps before the handshake (a TCP source address is
// already validated) and starts the handshake in its own goroutine, so the accept loop
// never waits on a client.
func (e *Endpoint) admitTCP(c net.Conn) {
	lim := e.limits().Effective()
	ctx := e.ctx
	if !e.lim.acquire(lim.MaxConnections) {
		e.refuse(ctx, slog.LevelWarn, RefusedMaxConnections,
			slog.String("transport", transportTCP),
			slog.String("remote_ip", core.RemoteIP(c.RemoteAddr())),
			slog.Int("limit", lim.MaxConnections))
		c.Close()
		return
	}
	release := e.lim.release
	ipKey := ""
	if ip, ok := core.AddrIP(c.RemoteAddr()); ok {
		if key, counted := lim.PerIPKey(ip); counted {
			if !e.lim.acquireIP(key, lim.MaxConnectionsPerIP) {
				e.lim.release()
				e.refusePerIP(ctx, transportTCP, ip.String(), lim.MaxConnectionsPerIP)
				c.Close()
				return
			}
			release = func() { e.lim.releaseIP(key); e.lim.release() }
			ipKey = key.String()
		}
	}
	go e.handshakeTCP(c, lim, ipKey, sync.OnceFunc(release))
}

func (e *Endpoint) handshakeTCP(c net.Conn, lim core.Limits, ipKey string, release func()) {
	timeout := lim.HandshakeTimeout
	hc := &handshakeConn{Conn: c}
	tc := tls.Server(hc, e.tcpTLS)
	ctx, cancel := context.WithTimeout(e.ctx, timeout)
	err := tc.HandshakeContext(ctx)
	timedOut := errors.Is(ctx.Err(), context.DeadlineExceeded)
	cancel()
	if err != nil {
		_ = c.Close()
		release()
		switch {
		case hc.unknownALPN:
			// counted and logged when the ClientHello arrived
		case e.isClosing():
			e.stats.refuse(RefusedShutdown)
		case timedOut:
			e.refuse(e.ctx, slog.LevelInfo, RefusedHandshakeTimeout,
				slog.String("transport", transportTCP),
				slog.String("remote_ip", core.RemoteIP(c.RemoteAddr())),
				slog.Duration("timeout", timeout))
		default:
			e.refuse(e.ctx, slog.LevelDebug, RefusedHandshakeFailed,
				slog.String("transport", transportTCP),
				slog.String("remote_ip", core.RemoteIP(c.RemoteAddr())),
				slog.Any("error", err))
		}
		return
	}
	st := tc.ConnectionState()
	fp := ""
	if len(st.PeerCertificates) > 0 {
		fp = core.FingerprintFromCert(st.PeerCertificates[0])
	}
	src := newTLSSource(tc)
	// The idle time starts after the handshake: a close sends close_notify (bounded by
	// closeNotifyTimeout) so a client learns why.
	src.s.idle = newIdleWatch(lim.IdleTimeout, func() { _ = src.s.Close() })
	alpn := st.NegotiatedProtocol
	if alpn == "" {
		// The client offered no ALPN (an offer without a match fails the handshake).
		alpn = e.tcpDefaultALPN
	}
	conn := core.NewConnection(src, alpn)
	budget, releaseBudget := e.budgets.NewConn(lim, ipKey)
	conn.SetBudget(budget)
	e.serve(incoming{
		conn:      conn,
		fp:        fp,
		resumed:   st.DidResume,
		transport: transportTCP,
		idle:      src.s.idle,
		force:     src.s.forceClose,
		release:   func() { src.s.idle.stop(); releaseBudget(); release() },
		linger: func(d time.Duration) {
			if err := src.s.CloseWrite(); err != nil {
				return
			}
			_ = tc.SetReadDeadline(time.Now().Add(d))
			_, _ = io.CopyN(io.Discard, tc, maxLingerDiscard)
		},
	})
}

// Dispatch hands conn, which arrived some other way (a channel inside another protocol,
// a stream of a future transport), to the handler registered for its ALPN, exactly as
// the listeners do: the same ACME guard, no-handler close, identity resolution from
// fingerprint, panic recovery, logging and shutdown behaviour. It does not block and
// does not apply the connection caps (conn lives inside a connection already counted).
func (e *Endpoint) Dispatch(conn *core.Connection, fingerprint string) {
	go e.serve(incoming{
		conn:      conn,
		fp:        fingerprint,
		transport: transportDispatch,
		force:     func() { conn.Close(core.CloseNormal, "shutdown") },
		release:   func() {},
	})
}

// incoming is a connection ready for dispatch, with the transport's hooks.
type incoming struct {
	conn      *core.Connection
	fp        string // the client certificate's fingerprint ("": none)
	resumed   bool   // the TLS handshake resumed a session (fp is the first handshake's)
	transport string
	streams   *streamGauge        // the connection's open QUIC streams; may be nil
	connCtx   context.Context     // done when the transport connection closes; may be nil
	idle      *idleWatch          // the idle timeout; may be nil
	force     func()              // drops the connection at once (shutdown)
	release   func()              // frees its limit slots
	linger    func(time.Duration) // waits for the peer to close first; may be nil
}

// serve dispatches one connection and, if a handler takes it, runs the handler to the end.
func (e *Endpoint) serve(in incoming) {
	defer in.release()
	conn, fp, transport := in.conn, in.fp, in.transport
	alpn := conn.RemoteALPN()
	if alpn == core.ALPNACME {
		e.stats.refuse(RefusedACME)
		conn.Close(core.CloseNormal, "acme done")
		return
	}
	h, ok := e.reg.Get(alpn)
	if !ok {
		e.refuse(e.ctx, slog.LevelWarn, RefusedNoHandler,
			slog.String("transport", transport),
			slog.String("remote_ip", core.RemoteIP(conn.RemoteAddr())),
			slog.String("alpn", fmt.Sprintf("%q", alpn)))
		conn.Close(core.CloseNormal, "no handler")
		return
	}
	auth := core.AuthContext{ALPN: alpn, RemoteAddr: conn.RemoteAddr(), TLSClientFingerprint: fp}
	if fp != "" && e.idp != nil {
		if id, ok := e.idp.ResolveFromFingerprint(fp); ok {
			auth.Identity = id
		}
	}
	t := &tracked{force: in.force, streams: in.streams}
	if !e.track(t) {
		e.stats.refuse(RefusedShutdown)
		conn.Close(core.CloseNormal, "shutting down")
		return
	}
	defer e.untrack(t)
	e.stats.accept(transport, alpn)
	if in.resumed {
		e.stats.resumed.Add(1)
	}
	e.stats.addActive(alpn, 1)
	defer e.stats.addActive(alpn, -1)
	e.run(h, in, auth)
}

func (e *Endpoint) track(t *tracked) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closing {
		return false
	}
	e.conns[t] = struct{}{}
	return true
}

func (e *Endpoint) untrack(t *tracked) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.conns, t)
	if e.closing && len(e.conns) == 0 {
		closeOnce(e.drained)
	}
}

func closeOnce(ch chan struct{}) {
	select {
	case <-ch:
	default:
		close(ch)
	}
}

// panicError is what a recovered handler panic becomes.
type panicError struct {
	value any
	stack []byte
}

func (p *panicError) Error() string { return fmt.Sprintf("handler panic: %v", p.value) }

func callHandler(ctx context.Context, h core.Handler, conn *core.Connection, auth core.AuthContext) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &panicError{value: r, stack: debug.Stack()}
		}
	}()
	return h.Handle(ctx, conn, auth)
}

// run calls the handler, closes the connection with the code its result calls for, and
// writes the connection's log line.
func (e *Endpoint) run(h core.Handler, in incoming, auth core.AuthContext) {
	conn, transport := in.conn, in.transport
	start := time.Now()
	// The handler's context ends with the connection (when the transport says so) and
	// with shutdown. Deriving from the connection and watching the endpoint costs a
	// goroutine only at shutdown.
	parent := e.ctx
	if in.connCtx != nil {
		parent = in.connCtx
	}
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	if in.connCtx != nil {
		stop := context.AfterFunc(e.ctx, cancel)
		defer stop()
	}
	err := callHandler(ctx, h, conn, auth)

	code, reason, outcome, level := core.CloseNormal, "", "ok", slog.LevelInfo
	var pe *panicError
	switch {
	case in.idle.timedOut() && !errors.As(err, &pe):
		// Whatever the handler made of its reads failing.
		code, reason, outcome, err = core.CloseIdleTimeout, idleReason, "idle_timeout", nil
	case err == nil:
	case errors.As(err, &pe):
		code, reason, outcome, level = core.CloseInternalError, "internal error", "panic", slog.LevelError
	case errors.Is(err, core.ErrAuthRequired):
		code, reason, outcome, level = core.CloseAuthRequired, core.ErrAuthRequired.Error(), "auth_failed", slog.LevelWarn
	case errors.Is(err, core.ErrConnectionClosed):
		outcome = "closed"
	case errors.Is(err, context.Canceled) && e.ctx.Err() != nil:
		reason, outcome = "shutdown", "shutdown"
	default:
		code, reason, outcome, level = core.CloseInternalError, err.Error(), "error", slog.LevelError
	}
	if outcome == "ok" && in.linger != nil && e.linger > 0 {
		in.linger(e.linger)
	}
	// Log first, close last: whoever sees the close finds the lines written.
	defer conn.Close(code, reason)

	peer := "-"
	if id, ok := conn.Identity(); ok {
		peer = id.ID
	} else if auth.Identity != nil {
		peer = auth.Identity.ID
	}
	fp := auth.TLSClientFingerprint
	if fp == "" {
		fp = "-"
	}
	attrs := []slog.Attr{
		slog.String("transport", transport),
		slog.String("alpn", auth.ALPN),
		slog.String("remote", addrString(auth.RemoteAddr)),
		slog.String("peer", peer),
		slog.String("fingerprint", fp),
		slog.String("outcome", outcome),
		slog.Duration("duration", time.Since(start)),
	}
	if err != nil && outcome != "closed" && outcome != "shutdown" {
		attrs = append(attrs, slog.String("error", err.Error()))
	}
	if pe != nil {
		attrs = append(attrs, slog.String("stack", string(pe.stack)))
	}
	e.log.LogAttrs(context.Background(), level, "connection", attrs...)
	if outcome == "auth_failed" {
		core.LogAuthFailure(context.Background(), e.log, core.AuthFailure{
			ALPN: auth.ALPN, Remote: auth.RemoteAddr, Peer: peerOrFingerprint(peer, auth.TLSClientFingerprint), Reason: err.Error(),
		})
	}
}

func peerOrFingerprint(peer, fp string) string {
	if peer != "-" {
		return peer
	}
	return fp
}

func addrString(a net.Addr) string {
	if a == nil {
		return "-"
	}
	return a.String()
}

// Shutdown stops the endpoint: listeners stop accepting at once (new TCP dials are
// refused, new QUIC handshakes get CONNECTION_REFUSED), handler contexts are cancelled,
// and Shutdown waits until every handler has returned, the drain timeout has passed, or
// ctx is done, whichever comes first. Connections still open then are closed, listeners
// and sockets released, and Shutdown returns: nil, or ctx's error if ctx ended the wait.
// It returns at once when no handler runs; calling it again waits for the first call's
// work and returns nil.
func (e *Endpoint) Shutdown(ctx context.Context) error {
	e.shutOnce.Do(func() {
		e.mu.Lock()
		e.closing = true
		if len(e.conns) == 0 {
			closeOnce(e.drained)
		}
		tcpLns := slices.Clone(e.tcpLns)
		e.mu.Unlock()
		for _, ln := range tcpLns {
			_ = ln.Close()
		}
		e.cancel()
		go e.finish()
	})
	select {
	case <-e.done:
		return nil
	case <-ctx.Done():
		e.forceOnce.Do(func() { close(e.force) })
		<-e.done
		return ctx.Err()
	}
}

// Close shuts down without draining: handler contexts are cancelled and every connection
// is closed at once.
func (e *Endpoint) Close() error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := e.Shutdown(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// finish waits for the drain, closes what is left, then the listeners and sockets.
func (e *Endpoint) finish() {
	timer := time.NewTimer(e.drain)
	select {
	case <-e.drained:
	case <-timer.C:
	case <-e.force:
	}
	timer.Stop()
	e.mu.Lock()
	left := make([]*tracked, 0, len(e.conns))
	for t := range e.conns {
		left = append(left, t)
	}
	quicLns := slices.Clone(e.quicLns)
	e.mu.Unlock()
	if len(left) > 0 {
		e.log.Warn("drain timeout: closing connections", slog.Int("connections", len(left)))
	}
	for _, t := range left {
		t.force()
	}
	for _, ql := range quicLns {
		_ = ql.ln.Close()
		_ = ql.tr.Close()
		_ = ql.pc.Close()
	}
	e.loops.Wait()
	close(e.done)
}
