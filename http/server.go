package http

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path"
	"sync"
	"sync/atomic"
	"time"

	"github.com/alknet/alknet/call"
	"github.com/alknet/alknet/core"
)

// ALPN is the protocol the handler claims by default: HTTP/1.1 and prior-knowledge h2
// over QUIC streams, for native clients. The same handler also serves "h2" and
// "http/1.1" on the TCP+TLS listener (register it under those names with
// core.Registry.RegisterAs).
const ALPN = "alknet/http"

// Default limits; see Limits.
const (
	DefaultMaxBodyBytes            = 1 << 20
	DefaultMaxBatchItems           = 100
	DefaultMaxSSELineBytes         = 1 << 20
	DefaultMaxSubscriptionsPerConn = 16
	DefaultMaxHeaderBytes          = 64 << 10
	DefaultReadHeaderTimeout       = 10 * time.Second
	DefaultIdleTimeout             = 2 * time.Minute
	DefaultSSEKeepAlive            = 15 * time.Second
	DefaultBodyReadTimeout         = 30 * time.Second
)

// Limits bounds what one client can make the handler hold. Zero fields take the
// defaults.
//
// The node's own limits (core.Limits, through Config.NodeLimits) apply on top: the
// bodies of /call, /batch, /subscribe and /mcp and every WebSocket message are
// buffered against the connection's memory budget (core.Connection.Budget: per
// connection, per remote address, per node); a body or message from a caller without
// an identity is capped at core.Limits.MaxAnonymousFrameBytes when MaxBodyBytes is
// larger; failed Bearer tokens count against core.Limits.MaxAuthAttempts per
// connection; and the endpoint closes a connection idle between requests after
// core.Limits.IdleTimeout (30 s), before IdleTimeout below (2 min) would, but never
// while a request runs (a long call, an SSE stream, a WebSocket).
type Limits struct {
	// MaxBodyBytes caps a request body (/call, /batch, /subscribe): larger bodies are
	// answered 413 with an HTTP_413 CallError (DefaultMaxBodyBytes, 1 MiB). A caller
	// without an identity (no Bearer token that resolves, no known client
	// certificate) gets the smaller of this and core.Limits.MaxAnonymousFrameBytes.
	// The body is read incrementally, never allocated from its announced length, and
	// held against the connection's memory budget until the request is done: a body
	// the budget has no room for is answered 503 with a retryable HTTP_503 CallError
	// naming the limit (details.limit) and Retry-After: 1.
	MaxBodyBytes int64
	// MaxBatchItems caps the calls in one /batch: more are answered 413 with an
	// HTTP_413 CallError (DefaultMaxBatchItems, 100).
	MaxBatchItems int
	// MaxSSELineBytes caps one /subscribe output as a single `data:` line: a larger
	// output ends the stream with an `event: error` INTERNAL CallError naming the
	// limit (DefaultMaxSSELineBytes, 1 MiB).
	MaxSSELineBytes int
	// MaxSubscriptionsPerConn caps the open /subscribe streams of one connection: one
	// more is answered 429 with a retryable HTTP_429 CallError and Retry-After: 1
	// (DefaultMaxSubscriptionsPerConn, 16).
	MaxSubscriptionsPerConn int
	// MaxHeaderBytes caps a request's headers (DefaultMaxHeaderBytes, 64 KiB).
	MaxHeaderBytes int
	// ReadHeaderTimeout bounds reading a request's headers (DefaultReadHeaderTimeout).
	ReadHeaderTimeout time.Duration
	// IdleTimeout closes a connection (or QUIC stream) idle between requests
	// (DefaultIdleTimeout). On a node the endpoint's core.Limits.IdleTimeout (30 s by
	// default) closes an idle connection first: the handler marks the connection busy
	// only while a request runs.
	IdleTimeout time.Duration
	// BodyReadTimeout bounds reading a request body, on every route, from the moment
	// the handler starts (DefaultBodyReadTimeout, 30 s): a client that stalls is
	// answered 408 with an HTTP_408 CallError (on the gateway routes) and its
	// connection closed (HTTP/1.1; on h2 only the stream ends). Reads after the body
	// has ended are not bounded, so SSE streams and WebSockets live on. It needs a
	// server whose ResponseWriter supports http.ResponseController.SetReadDeadline
	// (net/http's does).
	BodyReadTimeout time.Duration
	// SSEKeepAlive is the interval of `: ping` comments on a quiet /subscribe stream
	// (DefaultSSEKeepAlive).
	SSEKeepAlive time.Duration
}

// withDefaults returns l with zero fields set to their defaults.
func (l Limits) withDefaults() Limits {
	if l.MaxBodyBytes <= 0 {
		l.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if l.MaxBatchItems <= 0 {
		l.MaxBatchItems = DefaultMaxBatchItems
	}
	if l.MaxSSELineBytes <= 0 {
		l.MaxSSELineBytes = DefaultMaxSSELineBytes
	}
	if l.MaxSubscriptionsPerConn <= 0 {
		l.MaxSubscriptionsPerConn = DefaultMaxSubscriptionsPerConn
	}
	if l.MaxHeaderBytes <= 0 {
		l.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if l.ReadHeaderTimeout <= 0 {
		l.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	if l.IdleTimeout <= 0 {
		l.IdleTimeout = DefaultIdleTimeout
	}
	if l.SSEKeepAlive <= 0 {
		l.SSEKeepAlive = DefaultSSEKeepAlive
	}
	if l.BodyReadTimeout <= 0 {
		l.BodyReadTimeout = DefaultBodyReadTimeout
	}
	return l
}

// Config configures a Handler.
type Config struct {
	// Registry holds the operations the gateway serves; required.
	Registry *call.Registry
	// Identities resolves Bearer tokens; nil leaves every caller anonymous.
	Identities core.IdentityProvider
	// Ownership answers resource ownership questions for access control; may be nil.
	Ownership core.OwnershipProvider
	// ALPN is the protocol Handler.ALPN reports (default ALPN, "alknet/http").
	ALPN string
	// CallTimeout bounds each gateway call (0: DefaultCallTimeout).
	CallTimeout time.Duration
	// Decoy answers every request no route matches (nil: DecoyNotFound, an nginx 404).
	Decoy http.Handler
	// Routes are the embedder's extra routes, consulted when no reserved route
	// (/healthz, /search, /schema, /call, /batch, /subscribe, /openapi.json) matches;
	// reserved routes win on collision. They run behind the Bearer layer (read the
	// caller with IdentityFrom), are not operations and do not appear in /search or
	// /openapi.json. The mux must not change after New.
	Routes *http.ServeMux
	// MCP, when set, builds the handler mounted at /mcp (every method) behind the
	// Bearer layer, from the handler's Gateway: the to_mcp projection of the
	// github.com/alknet/alknet/http/mcp package, kept out of this package so that
	// embedders who do not use MCP do not link its SDK. Nil: /mcp is the decoy. MCP
	// sessions outlive connections: when the returned handler is an io.Closer (the
	// mcp package's is), close it yourself once the node has stopped.
	MCP func(*Gateway) http.Handler
	// WebSocket configures GET /alknet/call, the call protocol for browsers.
	WebSocket WebSocketConfig
	// Limits bounds requests; zero fields take the defaults.
	Limits Limits
	// NodeLimits returns the node's live limits (on a node, the DynamicStore's
	// Limits method, which the endpoint reads too); nil: core's defaults. Each
	// connection reads them once, when it starts: MaxAuthAttempts (failed Bearer
	// tokens per connection) and MaxAnonymousFrameBytes (the body and message cap of
	// a caller without an identity). The memory budgets and the idle timeout are the
	// endpoint's, on the core.Connection.
	NodeLimits func() core.Limits
	// Logger receives connection-level errors at Debug and the auth failure lines
	// (core.LogAuthFailure: a failed Bearer token, a connection refused for too many
	// attempts, a revoked credential) at Warn; nil discards them. Request bodies,
	// tokens and operation inputs are never logged; an auth failure names an API
	// key's public prefix at most.
	Logger *slog.Logger
}

// Handler is the HTTP surface of a node: /healthz, the five gateway routes
// (/search, /schema, /call, /batch, /subscribe), /openapi.json, the embedder's extra
// routes and the decoy for everything else.
//
// It is a core.ProtocolHandler (Handle serves one connection: every QUIC stream, or
// the one TCP+TLS stream, as HTTP/1.1 or prior-knowledge h2 with one net/http server
// per connection) and an http.Handler, so it can also be mounted in an embedder's own
// net/http server. The router is built once, in New. A Handler is safe for concurrent
// use.
type Handler struct {
	alpn     string
	gw       *Gateway
	reserved *http.ServeMux
	routes   *http.ServeMux
	extra    http.Handler // routes behind the Bearer layer
	mcp      http.Handler // nil: /mcp is the decoy
	ws       *wsServer    // nil: /alknet/call is the decoy
	bearer   func(http.Handler) http.Handler
	decoy    http.Handler
	limits   Limits
	node     func() core.Limits // nil: core's defaults
	logger   *slog.Logger
	chunks   chunkPool // scratch buffers for reading bodies and messages
	stats    httpCounters
	altSvc   altSvc // AdvertiseHTTP3
}

// ErrConfig is wrapped by the errors New returns for an invalid Config.
var ErrConfig = errors.New("http: invalid configuration")

// New builds a Handler from cfg.
func New(cfg Config) (*Handler, error) {
	if cfg.Registry == nil {
		return nil, fmt.Errorf("%w: Registry is nil", ErrConfig)
	}
	h := &Handler{
		alpn: cfg.ALPN,
		gw: &Gateway{
			Registry:   cfg.Registry,
			Identities: cfg.Identities,
			Ownership:  cfg.Ownership,
			Timeout:    cfg.CallTimeout,
		},
		routes: cfg.Routes,
		decoy:  cfg.Decoy,
		limits: cfg.Limits.withDefaults(),
		node:   cfg.NodeLimits,
		logger: cfg.Logger,
	}
	if h.alpn == "" {
		h.alpn = ALPN
	}
	if len(h.alpn) > core.MaxALPNLength {
		return nil, fmt.Errorf("%w: ALPN longer than %d bytes", ErrConfig, core.MaxALPNLength)
	}
	if h.decoy == nil {
		h.decoy = DecoyNotFound()
	}
	if h.logger == nil {
		h.logger = slog.New(slog.DiscardHandler)
	}
	h.bearer = h.bearerLayer
	if cfg.MCP != nil {
		if h.mcp = cfg.MCP(h.gw); h.mcp == nil {
			return nil, fmt.Errorf("%w: MCP returned a nil handler", ErrConfig)
		}
	}
	ws, err := newWSServer(h, cfg.WebSocket)
	if err != nil {
		return nil, err
	}
	h.ws = ws
	h.reserved = h.reservedRoutes()
	if h.routes != nil {
		h.extra = h.bearer(h.routes)
	}
	return h, nil
}

// ALPN reports the protocol the handler was configured with.
func (h *Handler) ALPN() string { return h.alpn }

// Gateway returns the dispatch spine the handler's routes use, for other surfaces (an
// MCP projection, a custom route) that must behave identically.
func (h *Handler) Gateway() *Gateway { return h.gw }

// ServeHTTP routes r: a reserved route, else an extra route, else the decoy. A path
// that is not in canonical form (//x, /a/../b, a trailing slash) goes to the decoy
// rather than to the mux's redirect, which would reveal the server.
//
// A request body is read under Limits.BodyReadTimeout, whatever route serves it.
// Every request is counted by route and status class (see Stats).
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ss := &serveState{}
	w = ss.sw.wrap(w)
	route := routeOther
	defer func() { h.stats.observe(route, ss.sw.status) }()
	r = h.bodyDeadline(w, r, ss)
	p := r.URL.Path
	if p == "" || p[0] != '/' || path.Clean(p) != p {
		h.decoy.ServeHTTP(w, r)
		return
	}
	if hd, pattern := h.reserved.Handler(r); pattern != "" {
		route = reservedRoute(pattern)
		hd.ServeHTTP(w, r)
		return
	}
	if h.routes != nil {
		if _, pattern := h.routes.Handler(r); pattern != "" {
			route = routeExtra
			// Through the mux itself, which sets r.Pattern and the path values.
			h.extra.ServeHTTP(w, r)
			return
		}
	}
	h.decoy.ServeHTTP(w, r)
}

// ConnContext attaches per-connection state (the subscription limit, the count of
// failed Bearer tokens) to a connection's base context. Set it as
// http.Server.ConnContext when mounting the Handler in your own server; without it,
// MaxSubscriptionsPerConn and core.Limits.MaxAuthAttempts are not enforced there
// (a connection that used up its attempts is answered 429 with Connection: close,
// which closes an HTTP/1.1 connection and makes an h2 one go away). There is no
// memory budget in your own server. Handle does this itself. In your own server,
// WebSocket connections (/alknet/call) do not end on Server.Shutdown, which does not
// track hijacked connections: they end when the client leaves.
func (h *Handler) ConnContext(ctx context.Context, c net.Conn) context.Context {
	limits := h.nodeLimits()
	st := &connState{
		maxSubs:  int64(h.limits.MaxSubscriptionsPerConn),
		limits:   limits,
		attempts: core.NewAuthAttempts(limits.MaxAuthAttempts),
	}
	if c != nil {
		st.remote = c.RemoteAddr()
	}
	return context.WithValue(ctx, connStateKey{}, st)
}

// nodeLimits returns the node's effective limits now.
func (h *Handler) nodeLimits() core.Limits {
	if h.node == nil {
		return core.Limits{}.Effective()
	}
	return h.node().Effective()
}

// connStateKey is the context key of a connection's *connState.
type connStateKey struct{}

// connState is what the handler keeps per connection.
type connState struct {
	subs    atomic.Int64
	maxSubs int64
	// shutdown is done when the node begins shutting down: open subscriptions end.
	shutdown context.Context
	// conn is the core connection served (nil in an embedder's server); its Budget
	// holds buffered bodies and messages.
	conn *core.Connection
	// alpn is the connection's protocol, for auth failure lines ("" in an
	// embedder's server: read from the request).
	alpn   string
	remote net.Addr
	// identified reports an identity from the TLS handshake (a known client
	// certificate).
	identified bool
	// limits are the node's effective limits when the connection started.
	limits   core.Limits
	attempts *core.AuthAttempts
}

// budget returns the connection's memory budget; nil (no limit) without a core
// connection.
func (s *connState) budget() *core.Budget {
	if s == nil || s.conn == nil {
		return nil
	}
	return s.conn.Budget()
}

// acquireSub takes one subscription slot; false when the connection is at its limit.
func (s *connState) acquireSub() bool {
	if s.subs.Add(1) > s.maxSubs {
		s.subs.Add(-1)
		return false
	}
	return true
}

func (s *connState) releaseSub() { s.subs.Add(-1) }

// connStateFrom returns the connection state in ctx, nil when there is none.
func connStateFrom(ctx context.Context) *connState {
	s, _ := ctx.Value(connStateKey{}).(*connState)
	return s
}

// Handle serves one connection until it closes or ctx is done: every QUIC stream (or
// the connection's single TCP+TLS stream) is an HTTP/1.1 or prior-knowledge h2
// connection of one net/http server. When ctx is done it stops accepting streams,
// ends open subscriptions, lets requests in flight finish and returns once every
// stream is closed (the endpoint force-closes the connection after its drain timeout).
func (h *Handler) Handle(ctx context.Context, conn *core.Connection, auth core.AuthContext) error {
	if auth.Identity != nil {
		// Observability only: the gateway authorises per request from the Bearer token.
		_ = conn.SetIdentity(*auth.Identity)
	}
	base, cancelBase := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelBase()
	limits := h.nodeLimits()
	alpn := auth.ALPN
	if alpn == "" {
		alpn = conn.RemoteALPN()
	}
	state := &connState{
		maxSubs:    int64(h.limits.MaxSubscriptionsPerConn),
		shutdown:   ctx,
		conn:       conn,
		alpn:       alpn,
		remote:     conn.RemoteAddr(),
		identified: auth.Identity != nil,
		limits:     limits,
		attempts:   core.NewAuthAttempts(limits.MaxAuthAttempts),
	}
	base = context.WithValue(base, connStateKey{}, state)

	ln := newStreamListener(conn.LocalAddr())
	tracker := newConnTracker()
	// The endpoint's idle timeout does not close the connection while a request runs
	// (a long call, an SSE stream, a WebSocket for its whole life), only between
	// requests.
	requests := inflight{busy: conn.Busy}
	tcp := overTCPTLS(conn) // its responses advertise HTTP/3 (AdvertiseHTTP3)
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !requests.add() {
				return
			}
			defer requests.done()
			if tcp {
				if v := h.altSvc.get(); v != "" {
					w.Header().Set("Alt-Svc", v)
				}
			}
			h.ServeHTTP(w, r)
		}),
		Protocols: &protocols,
		// OPTIONS * goes to ServeHTTP (the decoy), not net/http's built-in answer.
		DisableGeneralOptionsHandler: true,
		ReadHeaderTimeout:            h.limits.ReadHeaderTimeout,
		IdleTimeout:                  h.limits.IdleTimeout,
		MaxHeaderBytes:               h.limits.MaxHeaderBytes,
		BaseContext:                  func(net.Listener) context.Context { return base },
		ErrorLog:                     slog.NewLogLogger(h.logger.Handler(), slog.LevelDebug),
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(ln)
	}()

	for {
		s, err := conn.AcceptBi(ctx)
		if err != nil {
			break
		}
		nc := core.NetConn(s, conn.LocalAddr(), conn.RemoteAddr())
		if !ln.push(tracker.track(nc)) {
			_ = nc.Close()
			break
		}
	}
	tracker.acceptDone()

	select {
	case <-tracker.idle():
	case <-ctx.Done():
		// Graceful: no new requests, idle streams closed, requests in flight finish
		// (subscriptions end on ctx); the endpoint's drain timeout bounds the wait.
		_ = srv.Shutdown(context.WithoutCancel(ctx))
		<-tracker.idle()
	}
	_ = srv.Close()
	<-served
	cancelBase()
	requests.closeAndWait()
	return nil
}

// streamListener hands the streams of one connection to an http.Server as a
// net.Listener.
type streamListener struct {
	addr  net.Addr
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newStreamListener(addr net.Addr) *streamListener {
	return &streamListener{addr: addr, conns: make(chan net.Conn), done: make(chan struct{})}
}

// push hands c to Accept; false once the listener is closed.
func (l *streamListener) push(c net.Conn) bool {
	select {
	case l.conns <- c:
		return true
	case <-l.done:
		return false
	}
}

// Accept returns the next stream, or net.ErrClosed once the listener is closed.
func (l *streamListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close stops Accept.
func (l *streamListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

// Addr is the connection's local address.
func (l *streamListener) Addr() net.Addr {
	if l.addr == nil {
		return &net.TCPAddr{}
	}
	return l.addr
}

// connTracker knows when every stream handed to the server has closed (also a
// hijacked one: its Close goes through the tracked wrapper) after the accept loop
// ended.
type connTracker struct {
	mu       sync.Mutex
	open     int
	accepted bool
	idleCh   chan struct{}
}

func newConnTracker() *connTracker { return &connTracker{idleCh: make(chan struct{})} }

// track counts c until its first Close.
func (t *connTracker) track(c net.Conn) net.Conn {
	t.mu.Lock()
	t.open++
	t.mu.Unlock()
	return &trackedConn{Conn: c, onClose: t.closed}
}

func (t *connTracker) closed() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.open--
	t.check()
}

// acceptDone records that no more streams will come.
func (t *connTracker) acceptDone() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.accepted = true
	t.check()
}

func (t *connTracker) check() {
	if t.accepted && t.open == 0 {
		select {
		case <-t.idleCh:
		default:
			close(t.idleCh)
		}
	}
}

// idle is closed once the accept loop ended and every stream closed.
func (t *connTracker) idle() <-chan struct{} { return t.idleCh }

// trackedConn reports its first Close.
type trackedConn struct {
	net.Conn
	once    sync.Once
	onClose func()
}

func (c *trackedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.onClose)
	return err
}

// inflight counts the requests being served, so Handle returns only after their
// handlers have.
type inflight struct {
	mu     sync.Mutex
	n      int
	closed bool
	zero   chan struct{}
	// busy, when set, marks the connection busy (core.Connection.Busy) while n > 0: it
	// is called when the first request starts and what it returns when the last ends.
	busy     func() (done func())
	busyDone func()
}

// add counts a request; false once closeAndWait has begun.
func (f *inflight) add() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return false
	}
	f.n++
	if f.n == 1 && f.busy != nil {
		f.busyDone = f.busy()
	}
	return true
}

func (f *inflight) done() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n--
	if f.n == 0 {
		if f.busyDone != nil {
			f.busyDone()
			f.busyDone = nil
		}
		if f.zero != nil {
			close(f.zero)
			f.zero = nil
		}
	}
}

// closeAndWait refuses new requests and waits for those being served.
func (f *inflight) closeAndWait() {
	f.mu.Lock()
	f.closed = true
	if f.n == 0 {
		f.mu.Unlock()
		return
	}
	ch := make(chan struct{})
	f.zero = ch
	f.mu.Unlock()
	<-ch
}
