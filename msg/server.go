package msg

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/alknet/alknet/core"
)

// Scopes a peer's identity may carry.
const (
	// ScopeSend lets a peer deliver envelopes to the mailboxes this node hosts.
	ScopeSend = "msg:send"
	// ScopeMailbox makes this node host the peer's mailbox (with WithPeerMailboxes).
	ScopeMailbox = "msg:mailbox"
)

// CodeNotFound answers keys.get for a hosted mailbox whose owner has published no key
// bundle yet.
const CodeNotFound ErrorCode = "NOT_FOUND"

// Server is the alknet/msg handler: it keeps the mailboxes it hosts in a [Store],
// accepts deliveries for them, and lets each mailbox's owner publish a key bundle,
// fetch and acknowledge. Create it with [NewServer]; it implements core's
// ProtocolHandler. Close stops its purge ticker (not the store, which the caller owns).
type Server struct {
	cfg      Config // effective
	store    Store
	log      *slog.Logger
	now      func() time.Time
	limits   func() core.Limits
	hosted   map[string]bool
	hostFunc func(ed25519.PublicKey) bool
	peers    core.IdentityProvider
	sendRate *rateLimiter
	anonRate *rateLimiter
	stats    counters

	stop      chan struct{}
	stopOnce  sync.Once
	purgeDone chan struct{}
}

// Option adjusts NewServer.
type Option func(*Server)

// WithLogger sets the logger (default: slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(s *Server) { s.log = l } }

// WithClock sets the clock that stamps deliveries, expires envelopes and rate-limits
// (default: time.Now). Long-poll waits and stream deadlines use real time.
func WithClock(now func() time.Time) Option { return func(s *Server) { s.now = now } }

// WithLimits sets the source of the endpoint's live limits (the anonymous frame cap
// applies to connections without an identity); default: core's defaults.
func WithLimits(f func() core.Limits) Option { return func(s *Server) { s.limits = f } }

// Hosted makes the server host the mailboxes of keys (the node's own identity key).
func Hosted(keys ...ed25519.PublicKey) Option {
	return func(s *Server) {
		for _, k := range keys {
			s.hosted[Mailbox(k)] = true
		}
	}
}

// WithHostFunc adds a decision for mailboxes not named by Hosted: f reports whether the
// server hosts the mailbox of owner. It is called on every request and must not block.
func WithHostFunc(f func(owner ed25519.PublicKey) bool) Option {
	return func(s *Server) { s.hostFunc = f }
}

// WithPeerMailboxes hosts the mailbox of every peer p resolves (by the "ed25519:"
// fingerprint of the mailbox key) to an identity with scope msg:mailbox.
func WithPeerMailboxes(p core.IdentityProvider) Option { return func(s *Server) { s.peers = p } }

// NewServer returns a server over store with cfg (validated; zero fields take their
// defaults). Unless cfg.PurgeInterval is negative it starts a ticker that purges expired
// envelopes; Close stops it.
func NewServer(cfg Config, store Store, opts ...Option) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if store == nil {
		return nil, fmt.Errorf("%w: no store", ErrInvalidConfig)
	}
	cfg = cfg.Effective()
	s := &Server{
		cfg: cfg, store: store, log: slog.Default(), now: time.Now,
		limits:   func() core.Limits { return core.Limits{} },
		hosted:   make(map[string]bool),
		sendRate: newRateLimiter(cfg.SendsPerMinute),
		anonRate: newRateLimiter(cfg.AnonymousSendsPerMinute),
		stop:     make(chan struct{}),
	}
	for _, o := range opts {
		o(s)
	}
	if cfg.PurgeInterval > 0 {
		s.purgeDone = make(chan struct{})
		go s.purgeLoop(time.Duration(cfg.PurgeInterval))
	}
	s.log.Info("msg server started", slog.String("store", cfg.Store), slog.Bool("allow_anonymous", cfg.AllowAnonymous),
		slog.Int64("max_frame_bytes", int64(cfg.MaxFrameBytes)))
	return s, nil
}

// ALPN reports "alknet/msg".
func (s *Server) ALPN() string { return ALPN }

// Close stops the purge ticker. It does not close the store. It is idempotent.
func (s *Server) Close() error {
	s.stopOnce.Do(func() { close(s.stop) })
	if s.purgeDone != nil {
		<-s.purgeDone
	}
	return nil
}

func (s *Server) purgeLoop(every time.Duration) {
	defer close(s.purgeDone)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), every)
			n, err := s.Purge(ctx)
			cancel()
			if err != nil {
				s.log.Warn("msg purge failed", slog.String("error", err.Error()))
			} else if n > 0 {
				s.log.Info("msg purge", slog.Int("purged", n))
			}
		}
	}
}

// Purge deletes every envelope expired at the server's clock now, and returns how many.
// The ticker calls it; tests and operators may too.
func (s *Server) Purge(ctx context.Context) (int, error) {
	n, err := s.store.PurgeExpired(ctx, s.now())
	if err != nil {
		return 0, fmt.Errorf("msg: purge: %w", err)
	}
	s.stats.purged.Add(uint64(n))
	return n, nil
}

// Stats is a snapshot of a server's counters since it started.
type Stats struct {
	Deliveries uint64 // envelopes accepted (duplicates not counted)
	Duplicates uint64 // deliveries answered with an earlier acceptance
	Fetches    uint64 // fetch requests answered ok
	Fetched    uint64 // envelopes returned by them
	Acks       uint64 // ack requests answered ok
	Acked      uint64 // envelopes they deleted
	KeysPut    uint64
	KeysGet    uint64
	Purged     uint64               // envelopes deleted as expired
	Refused    map[ErrorCode]uint64 // requests refused, by code
}

type counters struct {
	deliveries, duplicates, fetches, fetched, acks, acked, keysPut, keysGet, purged atomic.Uint64
	mu                                                                              sync.Mutex
	refused                                                                         map[ErrorCode]uint64
}

func (c *counters) refuse(code ErrorCode) {
	c.mu.Lock()
	if c.refused == nil {
		c.refused = make(map[ErrorCode]uint64)
	}
	c.refused[code]++
	c.mu.Unlock()
}

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	c := &s.stats
	st := Stats{
		Deliveries: c.deliveries.Load(), Duplicates: c.duplicates.Load(), Fetches: c.fetches.Load(),
		Fetched: c.fetched.Load(), Acks: c.acks.Load(), Acked: c.acked.Load(), KeysPut: c.keysPut.Load(),
		KeysGet: c.keysGet.Load(), Purged: c.purged.Load(), Refused: make(map[ErrorCode]uint64),
	}
	c.mu.Lock()
	for k, v := range c.refused {
		st.Refused[k] = v
	}
	c.mu.Unlock()
	return st
}

// peer is what the server knows of a connection.
type peer struct {
	key      ed25519.PublicKey // the TLS client key, nil when none or not Ed25519
	identity *core.Identity    // nil when unknown
	rateKey  string            // anonymous rate-limit key: the remote address's prefix
	label    string            // for logs: identity id, or "anonymous"
	fp       string            // short fingerprint, for logs
	budget   *core.Budget
	frameCap int
	remote   net.Addr // for auth failure lines
	authPeer string   // for auth failure lines: identity id or fingerprint, "" when none
}

// Handle serves one alknet/msg connection until it closes: on QUIC one request and one
// response per bidirectional stream the client opens, each stream in its own goroutine
// (a client that closes a stream early cancels its request); on a single-stream
// connection (TCP+TLS) requests and responses alternate on the one stream, which the
// server closes after RequestTimeout without a request. The owner checks compare the
// Ed25519 key the peer proved in the TLS handshake with the mailbox key.
func (s *Server) Handle(ctx context.Context, conn *core.Connection, auth core.AuthContext) error {
	p := &peer{identity: auth.Identity, label: "anonymous", budget: conn.Budget()}
	fp := auth.TLSClientFingerprint
	if fp == "" {
		fp = conn.PeerFingerprint()
	}
	if k, err := core.PublicKeyFromFingerprint(fp); err == nil {
		p.key = k
		p.fp = shortID(Mailbox(k))
	}
	if auth.Identity != nil {
		p.label = auth.Identity.ID
	}
	lim := s.limits().Effective()
	addr := auth.RemoteAddr
	if addr == nil {
		addr = conn.RemoteAddr()
	}
	p.remote = addr
	p.authPeer = fp
	if auth.Identity != nil {
		p.authPeer = auth.Identity.ID
	}
	p.rateKey = "addr:" + core.RemoteIP(addr)
	if a, ok := core.AddrIP(addr); ok {
		if k, ok := lim.PerIPKey(a); ok {
			p.rateKey = "addr:" + k.String()
		}
	}
	p.frameCap = int(lim.FrameLimit(auth.Identity != nil, int64(s.cfg.MaxFrameBytes)))
	single := conn.SingleStream()
	err := core.ServeStreams(ctx, conn, func(st core.BiStream) {
		// A panic (a store bug) ends this stream only, not the node.
		defer func() {
			if r := recover(); r != nil {
				s.log.Error("msg stream panicked", slog.String("identity", p.label), slog.Any("panic", r), slog.String("stack", string(debug.Stack())))
				_ = st.Close()
			}
		}()
		if single {
			s.serveSequence(ctx, conn, p, st)
			return
		}
		done := conn.Busy()
		defer done()
		s.serveStream(ctx, p, st)
	})
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// serveStream answers the one request of a stream (QUIC).
func (s *Server) serveStream(ctx context.Context, p *peer, st core.BiStream) {
	start := time.Now()
	nc := core.NetConn(st, nil, nil)
	_ = nc.SetReadDeadline(start.Add(RequestTimeout))
	frame, reserved, err := ReadFrame(st, p.frameCap, p.budget)
	if err != nil {
		defer st.Close()
		s.refuseFrame(ctx, p, st, nc, err, start)
		_ = st.CloseWrite()
		return
	}
	defer p.budget.Release(reserved)
	// One frame per stream: from here a read ends at the client's FIN; anything else (a
	// reset, more bytes) cancels the request.
	_ = nc.SetReadDeadline(time.Time{})
	rctx, cancel := context.WithCancel(ctx)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		var b [1]byte
		if n, err := st.Read(b[:]); n > 0 || err != io.EOF {
			cancel()
		}
	}()
	// On QUIC the stream's context ends when the client stops reading (it closed the
	// stream: the call was cancelled).
	if sc, ok := st.(interface{ Context() context.Context }); ok {
		stop := context.AfterFunc(sc.Context(), cancel)
		defer stop()
	}
	defer func() {
		cancel()
		_ = st.Close()
		<-watched
	}()
	if s.answer(ctx, rctx, p, st, nc, frame, start) {
		_ = st.CloseWrite()
	}
}

// maxSkippedFrame is the largest oversized frame a single-stream connection reads past
// (without keeping it) to answer TOO_LARGE and stay usable; a larger one ends it.
const maxSkippedFrame = 2 * MaxFrameBytesLimit

// serveSequence answers the requests of a single-stream connection (TCP+TLS) one after
// the other: request, response, request, response, until the client half-closes, sends
// something that is not a frame, or stays silent for RequestTimeout. Cancelling a call
// there means closing the connection.
func (s *Server) serveSequence(ctx context.Context, conn *core.Connection, p *peer, st core.BiStream) {
	defer st.Close()
	nc := core.NetConn(st, nil, nil)
	for ctx.Err() == nil {
		_ = nc.SetReadDeadline(time.Now().Add(RequestTimeout))
		frame, reserved, err := ReadFrame(st, p.frameCap, p.budget)
		start := time.Now()
		if err != nil {
			// A frame over the cap but not absurdly so is skipped, so that the client,
			// still writing it, reads the refusal and the stream stays in step.
			if fe, ok := errors.AsType[*FrameSizeError](err); ok && fe.Size <= maxSkippedFrame {
				_ = nc.SetReadDeadline(time.Now().Add(RequestTimeout))
				if _, cerr := io.CopyN(io.Discard, st, fe.Size); cerr == nil {
					s.refuseFrame(ctx, p, st, nc, err, start)
					continue
				}
			}
			s.refuseFrame(ctx, p, st, nc, err, start)
			return
		}
		done := conn.Busy()
		ok := s.answer(ctx, ctx, p, st, nc, frame, start)
		done()
		p.budget.Release(reserved)
		if !ok {
			return
		}
	}
}

// refuseFrame answers a frame that could not be read (too large, over the memory
// budget, malformed); a peer that went away, reset or was too slow gets nothing.
func (s *Server) refuseFrame(ctx context.Context, p *peer, st core.BiStream, nc net.Conn, err error, start time.Time) {
	var resp *Error
	switch {
	case errors.Is(err, ErrFrameTooLarge) || errors.Is(err, core.ErrBudgetExceeded):
		resp = errorf(CodeTooLarge, "%v", trimPrefix(err))
	case errors.Is(err, ErrMalformed):
		resp = errorf(CodeBadRequest, "%v", trimPrefix(err))
	default:
		if err != io.EOF {
			s.log.Debug("msg stream ended before a request", slog.String("identity", p.label), slog.String("error", err.Error()))
		}
		return
	}
	s.stats.refuse(resp.Code)
	b := encodeResponse(errorResponse{Error: resp})
	s.logOp(ctx, p, "", "", 0, len(b)-frameHeaderSize, 0, resp, start)
	s.respond(ctx, p, st, nc, b)
}

// answer runs one request under rctx (ctx is the connection's) and writes its
// response; it reports whether the response was written.
func (s *Server) answer(ctx, rctx context.Context, p *peer, st core.BiStream, nc net.Conn, frame []byte, start time.Time) bool {
	op, mailbox, resp, count, refusal := s.safeDispatch(rctx, p, frame)
	if refusal != nil {
		s.stats.refuse(refusal.Code)
		resp = errorResponse{Error: refusal}
	}
	if rctx.Err() != nil && ctx.Err() == nil {
		// The client cancelled: it reads no answer.
		s.logOp(ctx, p, op, mailbox, len(frame), 0, count, &Error{Code: "CANCELLED", Message: "the client cancelled the request"}, start)
		return false
	}
	b := encodeResponse(resp)
	// The line is written before the answer, so that whoever reads the answer finds it.
	s.logOp(ctx, p, op, mailbox, len(frame), len(b)-frameHeaderSize, count, refusal, start)
	return s.respond(ctx, p, st, nc, b)
}

// safeDispatch is dispatch with a panic (a store bug) turned into an INTERNAL refusal.
func (s *Server) safeDispatch(ctx context.Context, p *peer, frame []byte) (op, mailbox string, resp any, count int, refusal *Error) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("msg request panicked", slog.String("identity", p.label), slog.String("op", op), slog.Any("panic", r), slog.String("stack", string(debug.Stack())))
			resp, refusal = nil, errorf(CodeInternal, "internal error")
		}
	}()
	return s.dispatch(ctx, p, frame)
}

// encodeResponse encodes a response as a whole frame: frameHeaderSize bytes for the
// length prefix (filled in by writeFramed), then the JSON body.
func encodeResponse(resp any) []byte {
	if fr, ok := resp.(*fetchResponse); ok {
		// In one pass: no encoding/json copy of the envelopes, nor a second one into the frame.
		return fr.appendJSON(make([]byte, frameHeaderSize, frameHeaderSize+fr.encodedSizeBound()))
	}
	b, err := json.Marshal(resp)
	if err != nil {
		b, _ = json.Marshal(errorResponse{Error: errorf(CodeInternal, "internal error")})
	}
	return append(make([]byte, frameHeaderSize, frameHeaderSize+len(b)), b...)
}

// respond writes b, a frame from encodeResponse, and reports whether it was written.
func (s *Server) respond(ctx context.Context, p *peer, st core.BiStream, nc net.Conn, b []byte) bool {
	err := nc.SetWriteDeadline(time.Now().Add(RequestTimeout))
	if err == nil || errors.Is(err, os.ErrNoDeadline) {
		err = writeFramed(st, b)
	}
	if err != nil {
		s.log.LogAttrs(ctx, slog.LevelDebug, "msg response not written", slog.String("identity", p.label), slog.String("error", err.Error()))
		return false
	}
	return true
}

// logOp writes the one line per operation: who, what, which mailbox (short), sizes and
// the outcome. Never bodies, keys or envelope contents.
func (s *Server) logOp(ctx context.Context, p *peer, op, mailbox string, in, out, count int, refusal *Error, start time.Time) {
	attrs := []slog.Attr{
		slog.String("identity", p.label), slog.String("op", op),
		slog.Int("bytes_in", in), slog.Int("bytes_out", out),
		slog.Duration("duration", time.Since(start)),
	}
	if p.fp != "" {
		attrs = append(attrs, slog.String("peer", p.fp))
	}
	if mailbox != "" {
		attrs = append(attrs, slog.String("mailbox", shortID(mailbox)))
	}
	if count > 0 {
		attrs = append(attrs, slog.Int("count", count))
	}
	level, outcome := slog.LevelInfo, "ok"
	if refusal != nil {
		outcome = string(refusal.Code)
		attrs = append(attrs, slog.String("reason", refusal.Message))
		if refusal.Code == CodeInternal {
			level = slog.LevelWarn
		}
	}
	attrs = append(attrs, slog.String("outcome", outcome))
	s.log.LogAttrs(ctx, level, "msg request", attrs...)
	if refusal != nil && refusal.Code == CodeUnauthorized {
		// A request without the key or scope it needs: core's shared line, which
		// fail2ban matches for every handler.
		core.LogAuthFailure(ctx, s.log, core.AuthFailure{ALPN: ALPN, Remote: p.remote, Peer: p.authPeer, Reason: refusal.Message})
	}
}

// shortID shortens a mailbox id for logs.
func shortID(mailbox string) string {
	if len(mailbox) > 12 {
		return mailbox[:12]
	}
	return mailbox
}

// trimPrefix drops the "msg: malformed input: " noise from errors sent to peers.
func trimPrefix(err error) string {
	msg := err.Error()
	for _, p := range []string{ErrMalformed.Error() + ": ", "msg: "} {
		if len(msg) > len(p) && msg[:len(p)] == p {
			msg = msg[len(p):]
		}
	}
	return msg
}
