package ssh

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/alknet/alknet/core"
)

// ALPNForward is the protocol of a Forwarder: TCP forwarding in which every forwarded
// connection is its own QUIC stream, without SSH inside.
//
// The client opens a bidirectional stream and writes one header line naming the
// destination, then the connection's bytes; the server answers one line, "ok" or
// "error <reason>", and after "ok" the stream carries the destination's bytes.
// Half-close goes through both ways (a FIN on the stream half-closes the TCP
// connection, and the other way round); an error resets the stream. The header's
// grammar (see ForwardHeader) is:
//
//	header = "tcp" SP host SP port LF / "ping" LF / "listen" SP host SP port LF
//	host   = 1*253( ALPHA / DIGIT / "-" / "." / "_" / ":" )   ; name, IPv4 or IPv6 (no brackets, no zone)
//	port   = %x31-39 *4DIGIT                                    ; 1 to 65535, no leading zero
//	reply  = "ok" LF / "error" SP reason LF                     ; reason: printable ASCII, at most 64 bytes
//
// "ping" asks nothing: the server answers "ok" and ends the stream, so that a client
// learns that the node serves it (PingForward) without naming a destination; it is
// not logged. "listen" asks for a remote forward (-R; see ListenForward), which
// opens streams from the node to the client. The TLS client certificate is the identity (anonymous connections are closed with
// core.CloseAuthRequired) and the same ForwardingPolicy as direct-tcpip decides, with
// transport TransportQUIC (or TransportTLS on the TCP+TLS twin, which carries a single
// forwarded connection).
const ALPNForward = "alknet/forward"

// Defaults of ForwardConfig.
const (
	// DefaultMaxForwardHeader is the longest header line the grammar allows: "tcp ",
	// a host of MaxHostLength bytes, " ", five digits and the newline.
	DefaultMaxForwardHeader = 4 + MaxHostLength + 1 + 5 + 1
	// DefaultMaxForwardStreams bounds the forwarded connections open at once on one
	// QUIC connection.
	DefaultMaxForwardStreams = 128
	// DefaultForwardHeaderTimeout bounds the wait for a stream's header line.
	DefaultForwardHeaderTimeout = 10 * time.Second
	// DefaultForwardIdleTimeout closes a forwarded connection that moved no byte
	// either way for this long.
	DefaultForwardIdleTimeout = 15 * time.Minute
)

// maxForwardReply bounds a reply line: "error " and a reason of at most 64 bytes.
const (
	maxForwardReason = 64
	maxForwardReply  = len("error ") + maxForwardReason + 1
)

// forwardCopyBuffer is the size of each direction's copy buffer, reserved in the
// connection's memory budget for as long as the forward lasts.
const forwardCopyBuffer = 32 << 10

// Stream error codes of alknet/forward: the code a stream is reset with.
const (
	// ForwardResetError resets a forwarded stream whose TCP side failed (or the other
	// way round): the peer sees an error, not an orderly end.
	ForwardResetError = 1
)

// Errors of the alknet/forward protocol.
var (
	// ErrForwardHeader is wrapped by every error of ParseForwardHeader.
	ErrForwardHeader = errors.New("ssh: invalid forward header")
	// ErrForwardRefused is wrapped by DialForward's error when the server answered
	// "error <reason>"; errors.As finds the *ForwardRefusal with the reason.
	ErrForwardRefused = errors.New("ssh: forward refused")
)

// Reasons a Forwarder refuses a stream with; the client sees them in ForwardRefusal.
const (
	ReasonMalformedHeader = "malformed header"
	ReasonHeaderTooLong   = "header too long"
	ReasonTooManyStreams  = "too many streams"
	ReasonOverBudget      = "over memory budget"
	ReasonDenied          = "forwarding denied by policy"
	ReasonReserved        = "reserved destination"
	ReasonInvalidDest     = "invalid destination"
	ReasonResolve         = "name resolution failed"
	ReasonConnectFailed   = "connect failed"
	ReasonConnectTimeout  = "connect timeout"
)

// ForwardConfig configures a Forwarder. Every limit has a default for its zero value.
type ForwardConfig struct {
	// Forwarding decides every stream, as it decides direct-tcpip channels; the zero
	// value denies all.
	Forwarding ForwardingPolicy
	// Resolver resolves destination names (nil: net.DefaultResolver), as for
	// Config.Resolver.
	Resolver Resolver
	// Dialer dials allowed destinations (nil: a net.Dialer without TCP keep-alive,
	// as OpenSSH's sshd dials forwarded destinations: IdleTimeout ends a forward
	// whose destination went away).
	Dialer Dialer
	// DialTimeout bounds the dial of one destination, every address tried included
	// (0: DefaultDialTimeout). A dial cut short by it is refused with
	// ReasonConnectTimeout.
	DialTimeout time.Duration
	// MaxHeaderLength bounds the header line, its newline included (0:
	// DefaultMaxForwardHeader). A longer one is refused with ReasonHeaderTooLong
	// before more of it is read.
	MaxHeaderLength int
	// MaxStreams bounds the forwarded connections open at once on one connection (0:
	// DefaultMaxForwardStreams). A stream beyond it is refused with
	// ReasonTooManyStreams.
	MaxStreams int
	// MaxRemoteForwards bounds the remote-forward listeners of one connection (0:
	// DefaultMaxRemoteForwards); a listen request beyond it is refused with
	// ReasonTooManyListeners. Remote forwards need ScopeRemoteForward and a loopback
	// address, as tcpip-forward requests do.
	MaxRemoteForwards int
	// HeaderTimeout bounds the wait for the header line (0:
	// DefaultForwardHeaderTimeout).
	HeaderTimeout time.Duration
	// IdleTimeout closes a forwarded connection that moved no byte either way for
	// this long (0: DefaultForwardIdleTimeout; negative: never). It is checked every
	// quarter of it, so a quiet forward ends at most a quarter of it later.
	IdleTimeout time.Duration
	// Logger receives one line per forwarded stream ("forward"), with the identity,
	// the outcome and the byte counts; never the destination. Nil discards them.
	Logger *slog.Logger
}

// Forwarder serves ALPNForward: a core.ProtocolHandler for the endpoint.
type Forwarder struct {
	cfg   atomic.Pointer[ForwardConfig]
	bufs  sync.Pool // *[forwardCopyBuffer]byte, the copy buffers of ended forwards
	stats forwardCounters
}

// NewForwarder validates cfg and returns a Forwarder.
func NewForwarder(cfg ForwardConfig) (*Forwarder, error) {
	f := &Forwarder{}
	if err := f.Reload(cfg); err != nil {
		return nil, err
	}
	return f, nil
}

// Reload validates cfg (its policy with ForwardingPolicy.Validate, no negative limit
// but IdleTimeout) and makes it the configuration of new streams. On error the old
// configuration stays.
func (f *Forwarder) Reload(cfg ForwardConfig) error {
	if err := cfg.Forwarding.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	switch {
	case cfg.MaxHeaderLength < 0:
		return fmt.Errorf("%w: negative MaxHeaderLength", ErrConfig)
	case cfg.MaxStreams < 0:
		return fmt.Errorf("%w: negative MaxStreams", ErrConfig)
	case cfg.MaxRemoteForwards < 0:
		return fmt.Errorf("%w: negative MaxRemoteForwards", ErrConfig)
	case cfg.DialTimeout < 0:
		return fmt.Errorf("%w: negative DialTimeout", ErrConfig)
	case cfg.HeaderTimeout < 0:
		return fmt.Errorf("%w: negative HeaderTimeout", ErrConfig)
	}
	c := cfg
	f.cfg.Store(&c)
	return nil
}

// ALPN reports ALPNForward.
func (f *Forwarder) ALPN() string { return ALPNForward }

// Handle serves every stream the peer opens as one forwarded connection, until the
// connection closes. A connection without a client identity is closed with
// core.CloseAuthRequired before any stream is read. While a forward is open the
// connection is busy (core.Connection.Busy): each forward has its own idle timeout.
func (f *Forwarder) Handle(ctx context.Context, conn *core.Connection, auth core.AuthContext) error {
	if auth.Identity == nil {
		conn.Close(core.CloseAuthRequired, "unauthenticated: alknet/forward needs a client certificate of a known peer")
		return fmt.Errorf("%w: alknet/forward: no known client certificate", core.ErrAuthRequired)
	}
	fc := &forwardConn{
		cfg: f.cfg.Load(), conn: conn, id: auth.Identity.Clone(), transport: TransportQUIC, bufs: &f.bufs,
		stats: &f.stats,
	}
	if conn.SingleStream() {
		fc.transport = TransportTLS
	}
	fc.log = fc.cfg.Logger
	if fc.log == nil {
		fc.log = slog.New(slog.DiscardHandler)
	}
	return core.ServeStreams(ctx, conn, func(st core.BiStream) { fc.serve(ctx, st) })
}

// forwardConn is one alknet/forward connection.
type forwardConn struct {
	cfg       *ForwardConfig
	conn      *core.Connection
	id        core.Identity
	transport string
	log       *slog.Logger
	bufs      *sync.Pool
	stats     *forwardCounters
	open      atomic.Int64 // forwards open now
	listeners atomic.Int64 // remote-forward listeners open now
}

// limit returns v, or def when v is zero.
func limit[T int | time.Duration](v, def T) T {
	if v == 0 {
		return def
	}
	return v
}

// serve handles one stream from header to close, and logs its one line.
func (fc *forwardConn) serve(ctx context.Context, st core.BiStream) {
	start := time.Now()
	var up, down atomic.Int64
	outcome, rule := fc.forward(ctx, st, &up, &down)
	if outcome == outcomePing || !fc.log.Enabled(ctx, slog.LevelInfo) {
		return
	}
	attrs := []slog.Attr{
		slog.String("identity", fc.id.ID), slog.String("transport", fc.transport),
		slog.String("outcome", outcome),
	}
	if rule != nil {
		attrs = append(attrs, slog.Int("rule", *rule))
	}
	attrs = append(attrs, slog.Int64("bytes_up", up.Load()), slog.Int64("bytes_down", down.Load()),
		slog.Duration("duration", time.Since(start)))
	fc.log.LogAttrs(ctx, slog.LevelInfo, "forward", attrs...)
}

// outcomePing is forward's outcome for a ping, which serve does not log.
const outcomePing = "ping"

// forward refuses or serves st; outcome is "ok", "closed" (served, ended by an error)
// or the refusal reason, rule the deciding rule of a policy refusal.
func (fc *forwardConn) forward(ctx context.Context, st core.BiStream, up, down *atomic.Int64) (outcome string, rule *int) {
	nc := core.NetConn(st, nil, nil)
	maxStreams := limit(fc.cfg.MaxStreams, DefaultMaxForwardStreams)
	if fc.open.Add(1) > int64(maxStreams) {
		fc.open.Add(-1)
		fc.stats.rejected.Add(1)
		refuseStream(st, ReasonTooManyStreams)
		return ReasonTooManyStreams, nil
	}
	defer fc.open.Add(-1)

	// The header buffer and both copy buffers, held until the forward ends.
	headerMax := limit(fc.cfg.MaxHeaderLength, DefaultMaxForwardHeader)
	budget, reserved := fc.conn.Budget(), int64(max(headerMax, 16)+2*forwardCopyBuffer)
	if err := budget.Reserve(reserved); err != nil {
		fc.stats.rejected.Add(1)
		refuseStream(st, ReasonOverBudget)
		return ReasonOverBudget, nil
	}
	defer budget.Release(reserved)

	br := bufio.NewReaderSize(st, headerMax)
	_ = nc.SetReadDeadline(time.Now().Add(limit(fc.cfg.HeaderTimeout, DefaultForwardHeaderTimeout)))
	h, err := readForwardHeader(br, headerMax)
	if err == nil && h.kind == headerPing {
		_, _ = io.WriteString(st, "ok\n")
		_ = st.CloseWrite()
		_ = st.Close()
		return outcomePing, nil
	}
	if err != nil {
		reason := ReasonMalformedHeader
		if errors.Is(err, errHeaderTooLong) {
			reason = ReasonHeaderTooLong
		}
		fc.stats.rejected.Add(1)
		refuseStream(st, reason)
		return reason, nil
	}
	_ = nc.SetReadDeadline(time.Time{})
	if h.kind == headerListen {
		return fc.listen(ctx, st, br, h.host, h.port), nil
	}

	c, reason, rule := fc.connect(ctx, h.host, h.port)
	if c == nil {
		fc.stats.refusal(reason)
		refuseStream(st, reason)
		return reason, rule
	}
	fc.stats.opened.Add(1)
	fc.stats.active.Add(1)
	defer fc.stats.active.Add(-1)
	if _, err := io.WriteString(st, "ok\n"); err != nil {
		_ = c.Close()
		resetStream(st)
		return "closed", nil
	}
	done := fc.conn.Busy()
	defer done()
	stop := context.AfterFunc(ctx, func() { _ = c.Close(); resetStream(st) })
	defer stop()
	if fc.pipe(st, br, c, up, down) {
		return "ok", nil
	}
	return "closed", nil
}

// connect decides and dials host:port; on refusal c is nil and reason says why, with
// rule the deciding rule of a policy refusal.
func (fc *forwardConn) connect(ctx context.Context, host string, port uint16) (c net.Conn, reason string, rule *int) {
	resolver := fc.cfg.Resolver
	if resolver == nil {
		resolver = net.DefaultResolver
	}
	d, err := fc.cfg.Forwarding.Check(ctx, resolver, &fc.id, fc.transport, host, port)
	switch {
	case err != nil && errors.Is(err, ErrResolve):
		return nil, ReasonResolve, nil
	case err != nil:
		return nil, ReasonInvalidDest, nil
	case d.Reserved:
		return nil, ReasonReserved, nil
	case !d.Allowed:
		return nil, ReasonDenied, &d.Rule
	}
	dctx, cancel := context.WithTimeout(ctx, limit(fc.cfg.DialTimeout, DefaultDialTimeout))
	defer cancel()
	addrs := d.Addrs
	if d.Unresolved {
		addrs, err = LookupDestination(dctx, resolver, host)
		if err != nil {
			return nil, ReasonResolve, nil
		}
	}
	for _, a := range addrs {
		c, err = fc.dial(dctx, netip.AddrPortFrom(a, port))
		if err == nil {
			return c, "", nil
		}
		if dctx.Err() != nil {
			return nil, ReasonConnectTimeout, nil
		}
	}
	return nil, ReasonConnectFailed, nil
}

// dial connects to addr with the configured Dialer or, without one, with a
// net.Dialer that sets no TCP keep-alive (as sshd; four setsockopt calls fewer per
// forward). Not net.Dialer.DialTCP: its local address, even the zero one, binds the
// socket before connecting, and a bound port must be free of every TIME_WAIT, which a
// busy node runs out of.
func (fc *forwardConn) dial(ctx context.Context, addr netip.AddrPort) (net.Conn, error) {
	if fc.cfg.Dialer != nil {
		return fc.cfg.Dialer.DialContext(ctx, "tcp", addr.String())
	}
	d := net.Dialer{KeepAlive: -1}
	return d.DialContext(ctx, "tcp", addr.String())
}

// refuseStream answers a refusal line and ends the stream: the client reads the line
// and EOF; what it sent is discarded.
func refuseStream(st core.BiStream, reason string) {
	_, _ = io.WriteString(st, "error "+reason+"\n")
	_ = st.CloseWrite()
	_ = st.Close()
}

// streamCanceller is a QUIC stream that can be reset each way.
type streamCanceller interface {
	CancelRead(quic.StreamErrorCode)
	CancelWrite(quic.StreamErrorCode)
}

// resetStream aborts st both ways (QUIC RESET_STREAM and STOP_SENDING), or closes it
// on a transport without resets.
func resetStream(st core.BiStream) {
	if c, ok := st.(streamCanceller); ok {
		c.CancelWrite(ForwardResetError)
		c.CancelRead(ForwardResetError)
	}
	_ = st.Close()
}

// resetTCP closes c with a TCP reset (linger 0) where it can, so that the
// destination sees an abort rather than an orderly end.
func resetTCP(c net.Conn) {
	if t, ok := c.(*net.TCPConn); ok {
		_ = t.SetLinger(0)
	}
	_ = c.Close()
}

// readerOnly hides a WriterTo, so that io.CopyBuffer uses the reserved buffer
// (countingWriter has no ReaderFrom either).
type readerOnly struct{ io.Reader }

// countingWriter counts what it writes, in the forward's count n and the
// Forwarder's total.
type countingWriter struct {
	w     io.Writer
	n     *atomic.Int64
	total *atomic.Uint64
}

func (c countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n.Add(int64(n))
	c.total.Add(uint64(n))
	return n, err
}

// pipe is pipeForward with two copy buffers from the Forwarder's pool, the
// configured idle timeout and the Forwarder's counters.
func (fc *forwardConn) pipe(st core.BiStream, br io.Reader, c net.Conn, up, down *atomic.Int64) bool {
	a, b := fc.buffer(), fc.buffer()
	defer fc.bufs.Put(a)
	defer fc.bufs.Put(b)
	return pipeForward(st, br, c, limit(fc.cfg.IdleTimeout, DefaultForwardIdleTimeout),
		countingWriter{c, up, &fc.stats.bytesUp}, countingWriter{st, down, &fc.stats.bytesDown}, a[:], b[:])
}

// buffer returns a copy buffer from the pool, or a new one.
func (fc *forwardConn) buffer() *[forwardCopyBuffer]byte {
	if b, ok := fc.bufs.Get().(*[forwardCopyBuffer]byte); ok {
		return b
	}
	return new([forwardCopyBuffer]byte)
}

// idleTicks is how many checks of an idle watch in a row must see no byte moved:
// the watch checks every idle/idleTicks, so a quiet forward ends between idle and
// idle*(idleTicks+1)/idleTicks after its last byte.
const idleTicks = 4

// idleWatch aborts a forward once its byte counts stayed the same for idle: a timer
// per forward that compares the counts every idle/idleTicks, so that moving bytes
// costs nothing but the counting.
type idleWatch struct {
	period   time.Duration
	up, down *atomic.Int64
	abort    func()

	mu      sync.Mutex
	timer   *time.Timer
	stopped bool
	seen    int64 // up+down at the last check
	quiet   int   // checks in a row that saw no change
}

// watchIdle starts an idle watch; stop it with stop.
func watchIdle(idle time.Duration, up, down *atomic.Int64, abort func()) *idleWatch {
	w := &idleWatch{period: max(idle/idleTicks, 1), up: up, down: down, abort: abort, seen: up.Load() + down.Load()}
	w.mu.Lock()
	w.timer = time.AfterFunc(w.period, w.check)
	w.mu.Unlock()
	return w
}

func (w *idleWatch) check() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped {
		return
	}
	if n := w.up.Load() + w.down.Load(); n != w.seen {
		w.seen, w.quiet = n, 0
	} else if w.quiet++; w.quiet >= idleTicks {
		w.abort()
		return
	}
	w.timer.Reset(w.period)
}

func (w *idleWatch) stop() {
	w.mu.Lock()
	w.stopped = true
	w.timer.Stop()
	w.mu.Unlock()
}

// pipeForward copies between the stream (read through br, which may hold bytes
// after the header) and the destination c, through upBuf and downBuf, until both
// directions end, carrying half-closes through: up writes to c, down to st, each
// counting the bytes. The destination-to-stream copy runs in the calling goroutine,
// the other in one new goroutine. An error on either side resets both; idle (when
// positive) closes a forward that moved nothing for that long. ok reports an
// orderly end both ways.
func pipeForward(st core.BiStream, br io.Reader, c net.Conn, idle time.Duration, up, down countingWriter, upBuf, downBuf []byte) (ok bool) {
	var failed atomic.Bool
	var once sync.Once
	abort := func() {
		once.Do(func() {
			failed.Store(true)
			resetStream(st)
			resetTCP(c)
		})
	}
	if idle > 0 {
		w := watchIdle(idle, up.n, down.n, abort)
		defer w.stop()
	}
	var wg sync.WaitGroup
	// Stream to destination: FIN half-closes the TCP connection.
	wg.Go(func() {
		_, err := io.CopyBuffer(up, readerOnly{br}, upBuf)
		if err != nil {
			abort()
			return
		}
		if tc, ok := c.(halfCloser); ok {
			_ = tc.CloseWrite()
		}
	})
	// Destination to stream: the TCP FIN half-closes the stream.
	if _, err := io.CopyBuffer(down, readerOnly{c}, downBuf); err != nil {
		abort()
	} else {
		_ = st.CloseWrite()
	}
	wg.Wait()
	_ = st.Close()
	_ = c.Close()
	return !failed.Load()
}
