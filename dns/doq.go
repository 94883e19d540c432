package dns

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	mdns "github.com/miekg/dns"
	"github.com/quic-go/quic-go"

	"github.com/alknet/alknet/core"
)

// ALPN protocol names the [Server] serves.
const (
	// ALPNDoQ is DNS over QUIC's IANA token (RFC 9250), the one stock clients offer.
	ALPNDoQ = "doq"
	// ALPN is Alknet's own name for the same protocol, byte for byte.
	ALPN = "alknet/dns"
	// ALPNDoT is DNS over TLS (RFC 7858) on the TCP+TLS listener.
	ALPNDoT = "dot"
)

// ErrorCode is a DNS over QUIC application error code (RFC 9250 §4.3), sent in QUIC
// CONNECTION_CLOSE and stream resets.
type ErrorCode uint64

// DoQ error codes.
const (
	// DoQNoError closes a connection that is done, such as an idle one.
	DoQNoError ErrorCode = 0x0
	// DoQInternalError resets a stream the server failed to answer (a handler panic).
	DoQInternalError ErrorCode = 0x1
	// DoQProtocolError closes a connection whose peer broke the protocol.
	DoQProtocolError ErrorCode = 0x2
	// DoQRequestCancelled resets a stream whose query the client gave up.
	DoQRequestCancelled ErrorCode = 0x3
	// DoQExcessiveLoad resets a stream the server refuses for load (MaxStreamsPerConn).
	DoQExcessiveLoad ErrorCode = 0x4
	// DoQUnspecifiedError is for errors no other code describes.
	DoQUnspecifiedError ErrorCode = 0x5
	// DoQErrorReserved is reserved by RFC 9250 to keep implementations from relying on
	// code values.
	DoQErrorReserved ErrorCode = 0xd098ea5e
)

// String returns the RFC name of the code, such as "DOQ_PROTOCOL_ERROR".
func (c ErrorCode) String() string {
	switch c {
	case DoQNoError:
		return "DOQ_NO_ERROR"
	case DoQInternalError:
		return "DOQ_INTERNAL_ERROR"
	case DoQProtocolError:
		return "DOQ_PROTOCOL_ERROR"
	case DoQRequestCancelled:
		return "DOQ_REQUEST_CANCELLED"
	case DoQExcessiveLoad:
		return "DOQ_EXCESSIVE_LOAD"
	case DoQUnspecifiedError:
		return "DOQ_UNSPECIFIED_ERROR"
	case DoQErrorReserved:
		return "DOQ_ERROR_RESERVED"
	}
	return fmt.Sprintf("DOQ_ERROR(0x%x)", uint64(c))
}

// Defaults of [ServerConfig].
const (
	// DefaultMaxStreamsPerConn caps the queries one connection may have in flight.
	DefaultMaxStreamsPerConn = 100
	// DefaultQueryTimeout bounds how long a client may take to send one whole query
	// (and its FIN, on DoQ) and to read the response.
	DefaultQueryTimeout = 5 * time.Second
	// DefaultIdleTimeout closes a connection that has no query in flight for this long.
	DefaultIdleTimeout = 30 * time.Second
)

// Wire limits.
const (
	// minMessage is the size of a DNS header: a shorter message is a protocol error.
	minMessage = 12
	// maxMessage is the largest message a 2-octet length can frame.
	maxMessage = 65535
	// paddingBlock is the RFC 8467 block length for responses.
	paddingBlock = 468
)

// Errors a connection ends with. Each wraps [ErrProtocol] or names the limit.
var (
	// ErrProtocol is a DoQ/DoT protocol violation by the peer; DoQ closes the
	// connection with DOQ_PROTOCOL_ERROR.
	ErrProtocol = errors.New("dns: protocol error")
	// ErrWrongTransport is a DoQ ALPN on a single-stream (TCP+TLS) connection, or dot
	// on QUIC.
	ErrWrongTransport = errors.New("dns: ALPN used on the wrong transport")
)

// ServerConfig configures a [Server]. Only Handler is required.
type ServerConfig struct {
	// Handler answers every query (usually the zone handler, *Handler). It sees the
	// query as sent, except that DoQ queries always have ID 0; whatever it writes gets
	// the transport's ID (0 on DoQ) and padding.
	Handler mdns.Handler
	// MaxStreamsPerConn caps the queries one connection may have in flight (0:
	// DefaultMaxStreamsPerConn). On DoQ a stream past the cap is reset with
	// DOQ_EXCESSIVE_LOAD; on DoT the server stops reading until one finishes.
	MaxStreamsPerConn int
	// QueryTimeout bounds, per query, the time to receive it whole (on DoQ including
	// the FIN) and to write its response (0: DefaultQueryTimeout). A DoQ stream that
	// misses it is a protocol error.
	QueryTimeout time.Duration
	// IdleTimeout closes a connection that has no query in flight for this long (0:
	// DefaultIdleTimeout): DoQ with CONNECTION_CLOSE DOQ_NO_ERROR (RFC 9250 §5.5), DoT
	// by closing the TLS connection. A DoQ connection counts as busy for the endpoint
	// (core.Connection.Busy) while it lives, so this timeout rules, not the endpoint's.
	IdleTimeout time.Duration
	// Padding pads responses to queries that carried an EDNS(0) padding option to a
	// multiple of 468 octets (RFC 7830, RFC 8467). The zero value is off.
	Padding bool
	// Logger receives protocol errors and handler panics, never query names (nil:
	// discard).
	Logger *slog.Logger
}

// Validate reports the first invalid field.
func (c ServerConfig) Validate() error {
	switch {
	case c.Handler == nil:
		return errors.New("dns: ServerConfig.Handler is required")
	case c.MaxStreamsPerConn < 0:
		return fmt.Errorf("dns: ServerConfig.MaxStreamsPerConn %d is negative", c.MaxStreamsPerConn)
	case c.QueryTimeout < 0:
		return fmt.Errorf("dns: ServerConfig.QueryTimeout %v is negative", c.QueryTimeout)
	case c.IdleTimeout < 0:
		return fmt.Errorf("dns: ServerConfig.IdleTimeout %v is negative", c.IdleTimeout)
	}
	return nil
}

func (c ServerConfig) withDefaults() ServerConfig {
	if c.MaxStreamsPerConn == 0 {
		c.MaxStreamsPerConn = DefaultMaxStreamsPerConn
	}
	if c.QueryTimeout == 0 {
		c.QueryTimeout = DefaultQueryTimeout
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Server serves an [mdns.Handler] over DNS over QUIC (ALPNs "doq" and "alknet/dns") and
// DNS over TLS ("dot") as a core handler, and counts what it answers ([Server.Stats]).
// DNS needs no authentication: every connection is served, anonymous ones included.
type Server struct {
	cfg   ServerConfig
	stats stats
}

// NewServer validates cfg and returns a server.
func NewServer(cfg ServerConfig) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Server{cfg: cfg.withDefaults()}, nil
}

// Register registers s under ALPNDoQ and ALPN (DNS over QUIC) and ALPNDoT (DNS over
// TLS on the TCP+TLS twin).
func (s *Server) Register(reg *core.Registry) error {
	for _, alpn := range []string{ALPNDoQ, ALPN, ALPNDoT} {
		if err := reg.RegisterAs(alpn, s); err != nil {
			return fmt.Errorf("dns: register %s: %w", alpn, err)
		}
	}
	return nil
}

// MaxIncomingUniStreams implements core.UniStreamHandler: a DoQ peer may open one
// unidirectional stream, so that the server sees it and closes the connection with
// DOQ_PROTOCOL_ERROR as RFC 9250 §4.3 requires, instead of QUIC refusing the stream
// (or the endpoint closing the connection with its own limit code).
func (s *Server) MaxIncomingUniStreams() int64 { return 1 }

// Handle serves one connection until it closes: DoQ on a QUIC connection (one query per
// stream), DoT on a single-stream one (pipelined queries). A DoQ ALPN on a single-stream
// connection or "dot" on QUIC is closed at once with an error wrapping
// [ErrWrongTransport]; under any other ALPN the transport decides. A DoQ protocol error
// closes the connection with DOQ_PROTOCOL_ERROR and returns an error wrapping
// [ErrProtocol] and core.ErrConnectionClosed. auth is not used.
func (s *Server) Handle(ctx context.Context, conn *core.Connection, _ core.AuthContext) error {
	alpn, single := conn.RemoteALPN(), conn.SingleStream()
	switch {
	case single && (alpn == ALPNDoQ || alpn == ALPN):
		err := fmt.Errorf("%w: %q is DNS over QUIC; over TCP+TLS use %q", ErrWrongTransport, alpn, ALPNDoT)
		conn.Close(uint32(DoQProtocolError), err.Error())
		return err
	case !single && alpn == ALPNDoT:
		err := fmt.Errorf("%w: %q is DNS over TLS on TCP; over QUIC use %q", ErrWrongTransport, alpn, ALPNDoQ)
		conn.Close(uint32(DoQProtocolError), err.Error())
		return err
	case single:
		return s.serveDoT(ctx, conn)
	}
	return s.serveDoQ(ctx, conn)
}

// streamCanceler is a QUIC stream, which can be reset with an application error code.
type streamCanceler interface {
	CancelRead(quic.StreamErrorCode)
	CancelWrite(quic.StreamErrorCode)
}

// resetStream aborts both directions of st with code (a plain close where the stream
// has no codes).
func resetStream(st core.BiStream, code ErrorCode) {
	if sc, ok := st.(streamCanceler); ok {
		sc.CancelRead(quic.StreamErrorCode(code))
		sc.CancelWrite(quic.StreamErrorCode(code))
		return
	}
	_ = st.Close()
}

// doqConn is the state of one DoQ connection.
type doqConn struct {
	s      *Server
	conn   *core.Connection
	cancel context.CancelFunc
	idle   *idleTimer
	once   sync.Once
	perr   error // the protocol error that closed the connection; set in once
}

// idleTimer calls fire once no query has been in flight for d.
type idleTimer struct {
	d       time.Duration
	mu      sync.Mutex
	t       *time.Timer
	active  int
	stopped bool
}

func newIdleTimer(d time.Duration, fire func()) *idleTimer {
	i := &idleTimer{d: d}
	i.mu.Lock()
	defer i.mu.Unlock()
	i.t = time.AfterFunc(d, func() {
		i.mu.Lock()
		busy := i.active > 0
		i.mu.Unlock()
		if !busy {
			fire()
		}
	})
	return i
}

// begin marks a query in flight.
func (i *idleTimer) begin() {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.active++
	i.t.Stop()
}

// end marks a query done; the idle time counts from the last one.
func (i *idleTimer) end() {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.active--; i.active == 0 && !i.stopped {
		i.t.Reset(i.d)
	}
}

func (i *idleTimer) stop() {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.stopped = true
	i.t.Stop()
}

// protocolError closes the connection with DOQ_PROTOCOL_ERROR (the first call wins).
func (c *doqConn) protocolError(err error) {
	c.once.Do(func() {
		c.perr = err
		c.s.stats.transport(transportDoQ).protocolErrors.Add(1)
		c.s.cfg.Logger.Debug("dns: doq protocol error", slog.String("remote", addrString(c.conn.RemoteAddr())), slog.String("error", err.Error()))
		c.conn.Close(uint32(DoQProtocolError), err.Error())
		c.cancel()
	})
}

func (s *Server) serveDoQ(ctx context.Context, conn *core.Connection) error {
	var wg sync.WaitGroup
	defer wg.Wait() // after cancel (deferred below, so run first)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	c := &doqConn{s: s, conn: conn, cancel: cancel}
	busy := conn.Busy() // this connection's idle timeout is c.idle's
	defer busy()
	c.idle = newIdleTimer(s.cfg.IdleTimeout, func() {
		conn.Close(uint32(DoQNoError), "idle timeout")
		cancel()
	})
	defer c.idle.stop()

	// RFC 9250 §4.3: a peer opening a unidirectional stream is a protocol error.
	wg.Go(func() {
		if _, err := conn.AcceptUni(ctx); err == nil {
			c.protocolError(fmt.Errorf("%w: peer opened a unidirectional stream", ErrProtocol))
		}
	})

	slots := make(chan struct{}, s.cfg.MaxStreamsPerConn)
	for {
		st, err := conn.AcceptBi(ctx)
		if err != nil {
			cancel()
			wg.Wait()
			// Every stream goroutine is done: c.perr is settled.
			if c.perr != nil {
				return fmt.Errorf("%w: %w", core.ErrConnectionClosed, c.perr)
			}
			if errors.Is(err, core.ErrConnectionClosed) || ctx.Err() != nil {
				return nil
			}
			return err
		}
		select {
		case slots <- struct{}{}:
		default:
			s.stats.transport(transportDoQ).excessiveLoad.Add(1)
			resetStream(st, DoQExcessiveLoad)
			continue
		}
		c.idle.begin()
		wg.Go(func() {
			defer func() { <-slots }()
			defer c.idle.end()
			s.serveDoQStream(c, st)
		})
	}
}

// serveDoQStream answers the one query of st.
func (s *Server) serveDoQStream(c *doqConn, st core.BiStream) {
	nc := core.NetConn(st, c.conn.LocalAddr(), c.conn.RemoteAddr())
	_ = nc.SetDeadline(time.Now().Add(s.cfg.QueryTimeout))
	res := c.conn.Budget().Reservation()
	defer res.Release()
	q, err := readStreamQuery(nc, res)
	if err != nil {
		switch {
		case errors.Is(err, ErrProtocol):
			c.protocolError(err)
		case errors.Is(err, core.ErrBudgetExceeded):
			s.stats.transport(transportDoQ).excessiveLoad.Add(1)
			resetStream(st, DoQExcessiveLoad)
		default:
			// The peer reset the stream or the connection went away: nothing to answer.
			resetStream(st, DoQRequestCancelled)
		}
		return
	}
	resp, err := s.answerStream(q, c.conn)
	switch {
	case errors.Is(err, errHandlerPanic):
		resetStream(st, DoQInternalError)
		return
	case err != nil:
		c.protocolError(err)
		return
	}
	if err := writeFrame(nc, resp); err != nil {
		resetStream(st, DoQRequestCancelled)
		return
	}
	_ = st.CloseWrite()
}

// errHandlerPanic is a query whose handler panicked: DoQ resets its stream with
// DOQ_INTERNAL_ERROR.
var errHandlerPanic = errors.New("dns: handler panic")

// answerStream answers the DoQ query b (see answer), turning a handler panic into an
// error wrapping errHandlerPanic. The connection counts as busy meanwhile.
func (s *Server) answerStream(b []byte, conn *core.Connection) (resp []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			s.stats.transport(transportDoQ).internalErrors.Add(1)
			s.cfg.Logger.Error("dns: handler panic", slog.String("transport", transportDoQ.String()), slog.Any("panic", r))
			resp, err = nil, fmt.Errorf("%w: %v", errHandlerPanic, r)
		}
	}()
	done := conn.Busy()
	defer done()
	return s.answer(b, transportDoQ, conn, true)
}

// readStreamQuery reads one DoQ stream's content: a 2-octet length, that many bytes
// (at least a DNS header) and then the stream's end, buffering as readFrameIn does.
// Any deviation is an error wrapping [ErrProtocol]; a budget error wraps
// core.ErrBudgetExceeded; other errors are the transport's (a reset stream, a closed
// connection).
func readStreamQuery(r io.Reader, res *core.Reservation) ([]byte, error) {
	b, err := readFrameIn(r, res)
	if err != nil {
		return nil, err
	}
	var one [1]byte
	n, err := io.ReadFull(r, one[:])
	switch {
	case n > 0:
		return nil, fmt.Errorf("%w: more than one message on a stream", ErrProtocol)
	case errors.Is(err, io.EOF):
		return b, nil
	case isTimeout(err):
		return nil, fmt.Errorf("%w: no FIN after the query", ErrProtocol)
	}
	return nil, err
}

// frameChunk is the first buffer of a frame's body; it doubles as bytes arrive.
const frameChunk = 1024

// readFrame reads one length-prefixed DNS message without a memory budget (see
// readFrameIn).
func readFrame(r io.Reader) ([]byte, error) { return readFrameIn(r, nil) }

// readFrameIn reads one length-prefixed DNS message. A length under 12, the stream
// ending inside the frame, or the deadline passing there wraps [ErrProtocol]. The
// buffer grows with the bytes that arrive (never to more than twice what arrived plus
// frameChunk, nor past the announced length), and each growth is reserved in res first
// (nil: no budget); a reservation that fails returns its error, which wraps
// core.ErrBudgetExceeded. The caller releases res.
func readFrameIn(r io.Reader, res *core.Reservation) ([]byte, error) {
	var hdr [2]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		switch {
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			return nil, fmt.Errorf("%w: stream ended before a message length", ErrProtocol)
		case isTimeout(err):
			return nil, fmt.Errorf("%w: no message before the query timeout", ErrProtocol)
		}
		return nil, err
	}
	n := int(binary.BigEndian.Uint16(hdr[:]))
	if n < minMessage {
		return nil, fmt.Errorf("%w: message length %d is shorter than a DNS header (%d)", ErrProtocol, n, minMessage)
	}
	b, err := readBody(r, n, res)
	if err != nil {
		switch {
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			return nil, fmt.Errorf("%w: stream ended inside a %d-byte message", ErrProtocol, n)
		case isTimeout(err):
			return nil, fmt.Errorf("%w: %d-byte message incomplete at the query timeout", ErrProtocol, n)
		}
		return nil, err
	}
	return b, nil
}

// readBody reads exactly n bytes, growing its buffer as they arrive.
func readBody(r io.Reader, n int, res *core.Reservation) ([]byte, error) {
	var b []byte
	for len(b) < n {
		if len(b) == cap(b) {
			size := min(n, max(frameChunk, 2*cap(b)))
			if res != nil {
				if err := res.Grow(int64(size - cap(b))); err != nil {
					return nil, err
				}
			}
			b = append(make([]byte, 0, size), b...)
		}
		m, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+m]
		if err != nil {
			if errors.Is(err, io.EOF) && len(b) < n {
				err = io.ErrUnexpectedEOF
			}
			if len(b) == n {
				break
			}
			return nil, err
		}
	}
	return b, nil
}

// writeFrame writes the length prefix and msg in one write.
func writeFrame(w io.Writer, msg []byte) error {
	buf := make([]byte, 2+len(msg))
	binary.BigEndian.PutUint16(buf, uint16(len(msg)))
	copy(buf[2:], msg)
	_, err := w.Write(buf)
	return err
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, core.ErrStreamTimeout) || errors.Is(err, context.DeadlineExceeded) ||
		(errors.As(err, &ne) && ne.Timeout())
}

// answer runs the handler on the wire query b and returns the packed response. On DoQ
// (doq true) the query's ID must be 0 and it may not carry edns-tcp-keepalive: both
// return an error wrapping [ErrProtocol]. A query that does not unpack gets FORMERR.
func (s *Server) answer(b []byte, t transport, conn *core.Connection, doq bool) ([]byte, error) {
	ts := s.stats.transport(t)
	id := binary.BigEndian.Uint16(b)
	if doq && id != 0 {
		return nil, fmt.Errorf("%w: message ID %d, DoQ requires 0", ErrProtocol, id)
	}
	q := new(mdns.Msg)
	if err := q.Unpack(b); err != nil {
		ts.count(mdns.RcodeFormatError)
		return formErr(b), nil
	}
	if doq {
		if opt := q.IsEdns0(); opt != nil {
			for _, o := range opt.Option {
				if o.Option() == mdns.EDNS0TCPKEEPALIVE {
					return nil, fmt.Errorf("%w: query carries edns-tcp-keepalive", ErrProtocol)
				}
			}
		}
	}
	w := &responseWriter{conn: conn, transport: t}
	s.cfg.Handler.ServeDNS(w, q)
	out := s.finish(q, w, id, doq)
	ts.count(out.rcode)
	return out.wire, nil
}

// response is a packed response and the rcode it carries.
type response struct {
	wire  []byte
	rcode int
}

// finish turns what the handler wrote into the wire response without changing the
// handler's message (it may be shared): the transport's ID, the OPT record's options
// (the handler's padding dropped, and on DoQ edns-tcp-keepalive too), padding when
// asked for, and SERVFAIL when there is nothing to send or it does not fit 65535 octets.
func (s *Server) finish(q *mdns.Msg, w *responseWriter, id uint16, doq bool) response {
	switch {
	case w.msg != nil:
		m := *w.msg
		m.Id = id
		var pad *mdns.EDNS0_PADDING
		m.Extra, pad = responseExtra(m.Extra, q, doq, s.cfg.Padding && queryPadded(q))
		b, err := m.Pack()
		if err == nil && pad != nil {
			// RFC 8467 block-length padding: a multiple of 468 octets, when it fits.
			if n := (paddingBlock - len(b)%paddingBlock) % paddingBlock; n > 0 && len(b)+n <= maxMessage {
				pad.Padding = make([]byte, n)
				b, err = m.Pack()
			}
		}
		if err == nil && len(b) <= maxMessage {
			return response{wire: b, rcode: m.Rcode}
		}
	case len(w.raw) >= minMessage && len(w.raw) <= maxMessage:
		b := w.raw
		binary.BigEndian.PutUint16(b, id)
		return response{wire: b, rcode: int(b[3] & 0xf)}
	}
	return response{wire: servFail(q, id), rcode: mdns.RcodeServerFailure}
}

// responseExtra returns a copy of a response's additional section whose OPT record is
// the response's own: without padding options, without edns-tcp-keepalive on DoQ, and
// with an empty padding option (returned, for the caller to size) when pad is set. A
// response without OPT gets one when it is to be padded.
func responseExtra(extra []mdns.RR, q *mdns.Msg, doq, pad bool) ([]mdns.RR, *mdns.EDNS0_PADDING) {
	out := make([]mdns.RR, 0, len(extra)+1)
	var opt *mdns.OPT
	for _, rr := range extra {
		if o, ok := rr.(*mdns.OPT); ok && opt == nil {
			cp := *o
			cp.Option = nil
			for _, e := range o.Option {
				if c := e.Option(); c == mdns.EDNS0PADDING || (doq && c == mdns.EDNS0TCPKEEPALIVE) {
					continue
				}
				cp.Option = append(cp.Option, e)
			}
			opt = &cp
			rr = opt
		}
		out = append(out, rr)
	}
	if !pad {
		return out, nil
	}
	if opt == nil {
		opt = &mdns.OPT{Hdr: mdns.RR_Header{Name: ".", Rrtype: mdns.TypeOPT}}
		size := uint16(mdns.MinMsgSize)
		if qo := q.IsEdns0(); qo != nil {
			size = qo.UDPSize()
		}
		opt.SetUDPSize(size)
		out = append(out, opt)
	}
	p := &mdns.EDNS0_PADDING{}
	opt.Option = append(opt.Option, p)
	return out, p
}

// servFail is a SERVFAIL answer to q (question echoed, nothing else but its OPT).
func servFail(q *mdns.Msg, id uint16) []byte {
	m := new(mdns.Msg)
	m.SetRcode(q, mdns.RcodeServerFailure)
	m.Id = id
	if opt := q.IsEdns0(); opt != nil {
		m.SetEdns0(opt.UDPSize(), false)
	}
	b, err := m.Pack()
	if err != nil || len(b) > maxMessage {
		m.Question = nil
		m.Extra = nil
		b, _ = m.Pack() // a bare header always packs
	}
	return b
}

// formErr answers a query whose header parsed but whose body did not: FORMERR with the
// query's ID, opcode and RD bit, and no sections.
func formErr(b []byte) []byte {
	out := make([]byte, minMessage)
	copy(out, b[:2])
	out[2] = 0x80 | b[2]&0x79 // QR, the opcode and RD
	out[3] = mdns.RcodeFormatError
	return out
}

// queryPadded reports whether q carried an EDNS(0) padding option.
func queryPadded(q *mdns.Msg) bool {
	opt := q.IsEdns0()
	if opt == nil {
		return false
	}
	for _, o := range opt.Option {
		if o.Option() == mdns.EDNS0PADDING {
			return true
		}
	}
	return false
}

// responseWriter is the mdns.ResponseWriter a transport gives the handler: it keeps
// what the handler writes for the transport to frame.
type responseWriter struct {
	conn      *core.Connection
	transport transport
	msg       *mdns.Msg
	raw       []byte
}

var _ mdns.ResponseWriter = (*responseWriter)(nil)

var _ core.UniStreamHandler = (*Server)(nil)

// LocalAddr returns the connection's local address.
func (w *responseWriter) LocalAddr() net.Addr { return w.conn.LocalAddr() }

// RemoteAddr returns the client's address.
func (w *responseWriter) RemoteAddr() net.Addr { return w.conn.RemoteAddr() }

// Network returns "doq" or "dot" (the transport, for handlers that care).
func (w *responseWriter) Network() string { return w.transport.String() }

// WriteMsg keeps m as the response (the last write wins).
func (w *responseWriter) WriteMsg(m *mdns.Msg) error {
	w.msg, w.raw = m, nil
	return nil
}

// Write keeps b, a packed message, as the response.
func (w *responseWriter) Write(b []byte) (int, error) {
	w.msg, w.raw = nil, append([]byte(nil), b...)
	return len(b), nil
}

// Close does nothing: the transport ends the stream.
func (w *responseWriter) Close() error { return nil }

// TsigStatus reports that no TSIG was checked.
func (w *responseWriter) TsigStatus() error { return nil }

// TsigTimersOnly does nothing: TSIG is not supported.
func (w *responseWriter) TsigTimersOnly(bool) {}

// Hijack does nothing: the transport keeps the stream.
func (w *responseWriter) Hijack() {}

// ConnectionState returns the TLS state of the connection (mdns.ConnectionStater).
func (w *responseWriter) ConnectionState() *tls.ConnectionState {
	st, ok := w.conn.TLSConnectionState()
	if !ok {
		return nil
	}
	return &st
}

func addrString(a net.Addr) string {
	if a == nil {
		return "-"
	}
	return a.String()
}
