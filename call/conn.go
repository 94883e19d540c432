package call

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/alknet/alknet/core"
)

// Dispatcher defaults.
const (
	// DefaultCallTimeout is the root deadline of a Query or Mutation, inbound and
	// outbound, when the caller's context has none. Subscriptions have no deadline.
	DefaultCallTimeout = 30 * time.Second
	// DefaultMaxInflight is the most inbound requests one connection may have running
	// at once; more are answered with an INTERNAL error marked retryable.
	DefaultMaxInflight = 1024
	// DefaultSubscriptionBuffer is how many events of one outgoing subscription are
	// held for a slow consumer. On a stream of its own (QUIC) a full buffer stops
	// reading, so QUIC flow control pushes back on the sender; on a shared stream
	// (TCP+TLS, WebSocket) the subscription is aborted with a local error instead,
	// because blocking would stall every other call. Events are never dropped silently.
	DefaultSubscriptionBuffer = 64
	// HalfCloseGrace is how long a single-stream connection stays up after the peer
	// finished its side (EOF), so that requests still running can answer.
	HalfCloseGrace = 2 * time.Second
	// MaxIdleCallStreams is the default of Dispatcher.IdleCallStreams.
	MaxIdleCallStreams = 8
)

// Dispatcher serves the call protocol on connections: it answers the peer's requests
// from Registry and runs this side's outgoing calls. The same engine serves both the
// accepting side (Dispatcher is a core.Handler for ALPN "alknet/call") and the dialing
// side (Serve). Its fields are read when a connection starts; do not change them
// afterwards.
type Dispatcher struct {
	// Registry holds the operations this side serves. Nil serves only an empty
	// registry (every request gets NOT_FOUND), which suits a pure client.
	Registry *Registry
	// Identities resolves a request's auth_token; when it resolves, that identity
	// replaces the connection identity for that request only. A token that does not
	// resolve falls back to the connection identity (call.md §2.3), counts as a failed
	// attempt and is logged as an auth failure (core.LogAuthFailure; the token never
	// is): once Limits().MaxAuthAttempts attempts of a connection failed, its next
	// token, right or wrong, closes it (core.CloseAuthRequired, "too many
	// authentication attempts"). Nil: tokens are ignored.
	//
	// On the accepting side it must be the provider the endpoint resolved the
	// connection with: when it implements core.ReloadNotifier (a
	// core.ConfigIdentityProvider does), a connection with an identity is re-checked
	// after every reload, and one whose certificate no longer resolves to the same
	// identity (peer disabled or removed) is closed (core.CloseAuthRequired,
	// "credential revoked").
	Identities core.IdentityProvider
	// Ownership answers the resource-ownership part of access control. May be nil.
	Ownership core.OwnershipProvider
	// DefaultTimeout is the root deadline of Queries and Mutations (0:
	// DefaultCallTimeout).
	DefaultTimeout time.Duration
	// MaxFrameSize bounds one frame on byte streams, read and write (0: MaxFrameSize;
	// larger values are clamped to it). A connection Handle accepts without an identity
	// reads frames of at most Limits().MaxAnonymousFrameBytes (1 MiB by default), see
	// InboundFrameLimit.
	MaxFrameSize int
	// MaxInflight bounds the inbound requests running at once on one connection
	// (0: DefaultMaxInflight; < 0: unlimited).
	MaxInflight int
	// SubscriptionBuffer is the buffer of each outgoing subscription (0:
	// DefaultSubscriptionBuffer).
	SubscriptionBuffer int
	// IdleCallStreams is how many QUIC streams of finished Queries and Mutations a
	// connection keeps open for its next calls, one call at a time per stream, which
	// saves opening a stream per call (0: MaxIdleCallStreams). Idle streams count
	// against the peer's limit of incoming streams (an endpoint's MaxIncomingStreams,
	// 100 by default). Negative: every call opens its own stream and finishes its
	// write side after the request, as the original Rust client does. Subscriptions
	// always get a stream of their own.
	IdleCallStreams int
	// OverlayOnly marks the connections of this dispatcher as not peers, as for
	// browsers on WebSocket: the operations such a connection serves, once imported
	// with RegisterImported, are reachable only through its OverlayEnv, never as a peer
	// entry of the composition environment of the requests it sends (a peer route
	// naming its identity finds nothing).
	OverlayOnly bool
	// OnConnect, when set, is called with every connection Handle accepts, before
	// its requests are served, so the accepting side can call back into the peer.
	OnConnect func(*Conn)
	// Logger receives debug and error lines; nil discards them. Tokens, inputs and
	// outputs are never logged.
	Logger *slog.Logger
	// Limits returns the live limits (the assembly passes (*core.DynamicStore).Limits),
	// read when a connection starts: MaxAnonymousFrameBytes and MaxAuthAttempts. Nil
	// means core's defaults. The memory budget of a connection is the endpoint's
	// (core.Connection.Budget): frame bodies are reserved in it as they are read, and a
	// request's bytes stay reserved until it has been answered.
	Limits func() core.Limits
}

func (d *Dispatcher) limits() core.Limits {
	if d.Limits == nil {
		return core.Limits{}.Effective()
	}
	return d.Limits().Effective()
}

// InboundFrameLimit returns the cap on one inbound frame (or message) of a connection
// whose identity is id: MaxFrameSize, lowered to Limits().MaxAnonymousFrameBytes when id
// is nil. Handle applies it; a message transport applies it to its messages.
func (d *Dispatcher) InboundFrameLimit(id *core.Identity) int {
	return int(d.limits().FrameLimit(id != nil, int64(d.maxFrame())))
}

func (d *Dispatcher) timeout() time.Duration {
	if d.DefaultTimeout > 0 {
		return d.DefaultTimeout
	}
	return DefaultCallTimeout
}

func (d *Dispatcher) maxFrame() int {
	if d.MaxFrameSize <= 0 || d.MaxFrameSize > MaxFrameSize {
		return MaxFrameSize
	}
	return d.MaxFrameSize
}

func (d *Dispatcher) maxInflight() int {
	switch {
	case d.MaxInflight == 0:
		return DefaultMaxInflight
	case d.MaxInflight < 0:
		return 0
	}
	return d.MaxInflight
}

func (d *Dispatcher) subBuffer() int {
	if d.SubscriptionBuffer > 0 {
		return d.SubscriptionBuffer
	}
	return DefaultSubscriptionBuffer
}

func (d *Dispatcher) idleCallStreams() int {
	if d.IdleCallStreams == 0 {
		return MaxIdleCallStreams
	}
	return max(d.IdleCallStreams, 0)
}

func (d *Dispatcher) logger() *slog.Logger {
	if d.Logger != nil {
		return d.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// ALPN returns "alknet/call", so a Dispatcher registers with core.Registry.Register.
func (d *Dispatcher) ALPN() string { return ALPN }

// Handle serves one accepted connection until it closes or ctx is cancelled; it
// implements core.Handler. The connection identity is auth.Identity.
//
// A connection without an identity reads frames of at most InboundFrameLimit(nil);
// every frame body is reserved in the connection's memory budget (conn.Budget()) as it
// is read. A frame over either limit resets its QUIC stream (application error code 5,
// core.CloseLimitExceeded) or, on a single-stream connection, closes the connection
// with that code and a reason naming the limit. While a request, a subscription or an
// outgoing call runs — and for the whole life of a connection with an identity — the
// connection is marked busy (conn.Busy), so the endpoint's idle timeout closes only
// anonymous connections with nothing to do.
//
// Handle returns nil when the connection ended normally. It returns the error that
// ended it when this side closed it — a protocol violation or limit on a single stream
// (wrapping ErrFrameInvalid, ErrEnvelopeInvalid or core.ErrBudgetExceeded), too many
// authentication attempts or a revoked credential (both wrapping core.ErrAuthRequired)
// — and otherwise the first protocol violation of one of its QUIC streams, so the
// endpoint's connection line reports it.
func (d *Dispatcher) Handle(ctx context.Context, conn *core.Connection, auth core.AuthContext) error {
	lim := d.limits()
	c := d.newConn(ctx, auth.Identity, lim)
	c.streams = conn
	c.frameMax = int(lim.FrameLimit(auth.Identity != nil, int64(d.maxFrame())))
	c.budget = conn.Budget()
	c.remote = auth.RemoteAddr
	c.endpointLogs = true
	if auth.Identity != nil {
		// A peer may sit quietly on its connection, and this side may call it: busy
		// for its whole life (so its requests need no marks of their own).
		done := conn.Busy()
		defer done()
		defer c.watchRevocation(auth)()
	} else {
		c.busy = conn.Busy
	}
	var fs *frameStream
	if conn.SingleStream() {
		s, err := conn.AcceptBi(ctx)
		if err != nil {
			c.shutdown(err)
			c.wg.Wait()
			return c.handleErr() // a credential revoked before the stream came
		}
		fs = c.newFrameStream(s, true)
		fs.startWriter()
		c.shared = fs
	}
	// The transport is set up: OnConnect may call the peer right away.
	if d.OnConnect != nil {
		d.OnConnect(c)
	}
	if fs != nil {
		c.run(func() { _ = c.readLoop(fs) })
	} else {
		c.run(c.acceptLoop)
	}
	select {
	case <-c.done:
	case <-ctx.Done():
		c.shutdown(ctx.Err())
	}
	c.wg.Wait()
	return c.handleErr()
}

// watchRevocation closes the connection when a reload of d.Identities stops resolving
// the client certificate to the connection's identity; it returns the func that ends
// the watch. It watches nothing when d.Identities does not report reloads.
func (c *Conn) watchRevocation(auth core.AuthContext) (stop func()) {
	idp := c.d.Identities
	if _, ok := idp.(core.ReloadNotifier); !ok || auth.TLSClientFingerprint == "" {
		return func() {}
	}
	fp, want := auth.TLSClientFingerprint, auth.Identity.ID
	still := func() bool {
		id, ok := idp.ResolveFromFingerprint(fp)
		return ok && id.ID == want
	}
	revoke := func() {
		c.closeWith(core.CloseAuthRequired, reasonRevoked, fmt.Errorf("%w: %s", core.ErrAuthRequired, reasonRevoked))
	}
	// A reload between the endpoint's resolution and this check counts too.
	if !still() {
		revoke()
		return func() {}
	}
	return core.WatchRevocation(c.ctx, idp, still, revoke)
}

// Close reasons of connections this side ends (never carrying a secret).
const (
	reasonRevoked         = "credential revoked"
	reasonTooManyAttempts = "too many authentication attempts"
)

// handleErr is what Handle returns: why this side ended the connection, or the first
// protocol violation of one of its streams, or nil.
func (c *Conn) handleErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.endErr != nil {
		return c.endErr
	}
	return c.streamErr
}

// Serve starts serving conn, a connection this side dialled, and returns at once: the
// returned Conn makes calls to the peer and answers the peer's calls from d.Registry.
// id is the peer's identity as this side sees it (for example the identity its pinned
// fingerprint resolves to), or nil. ctx bounds the whole connection. Frames are read
// up to MaxFrameSize whatever id is (this side chose the peer), within conn's budget
// when it has one.
func (d *Dispatcher) Serve(ctx context.Context, conn *core.Connection, id *core.Identity) (*Conn, error) {
	c := d.newConn(ctx, id, d.limits())
	c.streams = conn
	c.budget = conn.Budget()
	c.remote = conn.RemoteAddr()
	c.busy = conn.Busy
	if conn.SingleStream() {
		s, err := conn.OpenBi(ctx)
		if err != nil {
			c.shutdown(err)
			return nil, fmt.Errorf("call: open stream: %w", err)
		}
		fs := c.newFrameStream(s, true)
		fs.startWriter()
		c.shared = fs
		c.run(func() { _ = c.readLoop(fs) })
	} else {
		c.run(c.acceptLoop)
	}
	c.run(func() {
		select {
		case <-c.done:
		case <-c.ctx.Done():
			c.shutdown(c.ctx.Err())
		}
	})
	return c, nil
}

// MessageOption configures a Conn made by NewMessageConn.
type MessageOption func(*messageOptions)

type messageOptions struct {
	remote   net.Addr
	attempts *core.AuthAttempts
	close    func(code uint32, reason string)
	busy     func() (done func())
}

// WithRemoteAddr gives the transport's remote address, for the auth-failure log lines.
func WithRemoteAddr(addr net.Addr) MessageOption {
	return func(o *messageOptions) { o.remote = addr }
}

// WithAuthAttempts counts the connection's failed auth_tokens in a, which the transport
// may share with its own credential checks (a Bearer header, a subprotocol token).
// Without it the Conn counts in a fresh one allowing Limits().MaxAuthAttempts failures.
func WithAuthAttempts(a *core.AuthAttempts) MessageOption {
	return func(o *messageOptions) { o.attempts = a }
}

// WithClose sets how the Conn closes its transport when it ends the connection itself:
// too many authentication attempts (core.CloseAuthRequired, "too many authentication
// attempts"), or Conn.CloseWithError. It is called at most once, possibly from inside
// HandleEnvelope, and must not block (a WebSocket server, say, closes with status 1008
// and the reason from another goroutine, or cancels its read loop's context).
func WithClose(close func(code uint32, reason string)) MessageOption {
	return func(o *messageOptions) { o.close = close }
}

// WithBusy marks the transport busy while a request, a subscription or an outgoing call
// runs (busy is called when the first starts, its done when the last ends), as
// core.Connection.Busy does for the endpoint's idle timeout.
func WithBusy(busy func() (done func())) MessageOption {
	return func(o *messageOptions) { o.busy = busy }
}

// NewMessageConn returns a Conn over a message transport such as WebSocket, where one
// message carries one envelope: the transport feeds every received envelope to
// HandleEnvelope (or HandleEnvelopeReserved) and send delivers outgoing ones (send is
// never called concurrently). id is the connection identity. Close the Conn when the
// transport closes; watch Done for the Conn ending by itself (see WithClose).
func (d *Dispatcher) NewMessageConn(ctx context.Context, id *core.Identity, send func(context.Context, Envelope) error, opts ...MessageOption) *Conn {
	var o messageOptions
	for _, f := range opts {
		f(&o)
	}
	c := d.newConn(ctx, id, d.limits())
	c.shared = &messageSink{fn: send}
	c.remote = o.remote
	if o.attempts != nil {
		c.auth = o.attempts
	}
	c.closer = o.close
	c.busy = o.busy
	c.run(func() {
		select {
		case <-c.done:
		case <-c.ctx.Done():
			c.shutdown(c.ctx.Err())
		}
	})
	return c
}

// Conn is one call-protocol connection, from either side. It answers the peer's
// requests and makes calls to the peer (Call, Subscribe); it is safe for concurrent
// use.
type Conn struct {
	d        *Dispatcher
	ctx      context.Context
	cancel   context.CancelCauseFunc
	identity *core.Identity
	log      *slog.Logger
	base     *Registry // d.Registry, or an empty one

	// Exactly one transport: streams (QUIC multi-stream when shared is nil), or a
	// shared sink (single stream, or a message transport).
	streams *core.Connection
	shared  sink

	wg sync.WaitGroup // the transport's loops, waited for by Close and Handle

	mu        sync.Mutex
	inbound   map[string]*inboundReq
	pending   map[string]*pendingCall
	overlay   *Registry
	idle      []*frameStream // reusable call streams (QUIC), guarded by mu
	closed    bool
	closeErr  error
	endErr    error // why this side ended the connection (Handle's result)
	streamErr error // the first protocol violation of a stream
	done      chan struct{}

	frameMax     int                              // the cap on an inbound frame
	budget       *core.Budget                     // inbound frame bodies are reserved here (nil: none)
	remote       net.Addr                         // for auth-failure lines; may be nil
	endpointLogs bool                             // Handle: the endpoint logs the auth failure that ends the connection
	closer       func(code uint32, reason string) // message transports: closes the transport

	authMu sync.Mutex // serialises token checks, so no more than the limit fail
	auth   *core.AuthAttempts

	busy     func() (done func()) // marks the transport busy; nil: no idle timeout
	busyMu   sync.Mutex
	busyN    int    // requests, subscriptions and outgoing calls running
	busyDone func() // ends the busy mark taken when busyN became 1
}

func (d *Dispatcher) newConn(ctx context.Context, id *core.Identity, lim core.Limits) *Conn {
	base := d.Registry
	if base == nil {
		base = NewBareRegistry()
	}
	c := &Conn{
		base:     base,
		d:        d,
		identity: id,
		log:      d.logger(),
		inbound:  make(map[string]*inboundReq),
		pending:  make(map[string]*pendingCall),
		overlay:  NewBareRegistry(),
		done:     make(chan struct{}),
		frameMax: d.maxFrame(),
		auth:     core.NewAuthAttempts(lim.MaxAuthAttempts),
	}
	c.ctx, c.cancel = context.WithCancelCause(context.WithValue(ctx, connKey{}, c))
	return c
}

// connKey is the context key of the Conn a request arrived on.
type connKey struct{}

// ConnFrom returns the connection the request whose handler context is ctx arrived
// on (also for the calls it composes), so a handler can call back into the peer — a
// browser's operations, say, through c.OverlayEnv after importing them with FromCall.
// It returns nil outside a request served by a Conn (the HTTP gateway, say).
func ConnFrom(ctx context.Context) *Conn {
	c, _ := ctx.Value(connKey{}).(*Conn)
	return c
}

// run starts f in a goroutine the Conn waits for.
func (c *Conn) run(f func()) { c.wg.Go(f) }

// Identity returns the connection identity (nil for an anonymous peer).
func (c *Conn) Identity() *core.Identity { return c.identity }

// Done is closed once the connection has ended and every pending call has failed.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err returns why the connection ended (nil while it is open). When this side ended it
// (CloseWithError, too many authentication attempts, a revoked credential, a protocol
// violation on a single stream) it is a *core.CloseError with the code and reason sent,
// wrapping the cause.
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closeErr
}

// Close ends the connection: inbound handlers are cancelled, pending calls fail with
// INTERNAL "connection closed", the imported overlay is dropped, and Close waits for
// the Conn's transport goroutines (not for handlers, which end when they honour their
// cancelled context; answers they produce afterwards are dropped).
func (c *Conn) Close() error {
	if fs, ok := c.shared.(*frameStream); ok {
		// Let the writer send what is queued (an abort, say) and finish the stream
		// before the connection goes; a peer that does not read gets
		// closeFlushTimeout.
		t := time.NewTimer(closeFlushTimeout)
		fs.mu.Lock()
		already := fs.wroteDone
		fs.wroteDone = true
		fs.mu.Unlock()
		expired := false
		if !already {
			select {
			case fs.queue <- nil:
			case <-fs.stopW:
			case <-t.C:
				expired = true
			}
		}
		if !expired {
			select {
			case <-fs.wdone:
			case <-t.C:
			}
		}
		t.Stop()
	}
	c.shutdown(nil)
	if c.streams != nil {
		c.streams.Close(core.CloseNormal, "")
	}
	if c.shared != nil {
		c.shared.close()
	}
	c.wg.Wait()
	return nil
}

// CloseWithError ends the connection at once, closing its transport with code and
// reason (see the core.Close constants; on QUIC the peer receives them; a message
// transport gets them through WithClose): inbound handlers are cancelled and pending
// calls fail as with Close, but queued frames are not flushed. Err then reports a
// *core.CloseError with code and reason. The reason must not carry a secret. Use it to
// end a connection whose credential was revoked (core.CloseAuthRequired, "credential
// revoked"), say.
func (c *Conn) CloseWithError(code uint32, reason string) error {
	c.closeWith(code, reason, &core.CloseError{Code: code, Reason: reason})
	c.wg.Wait()
	return nil
}

// closeWith ends the connection with a close code and reason; cause is what Handle
// returns.
func (c *Conn) closeWith(code uint32, reason string, cause error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	if c.endErr == nil {
		c.endErr = cause
	}
	c.mu.Unlock()
	// The code goes out before shutdown closes the transport normally.
	if c.streams != nil {
		c.streams.Close(code, reason)
	}
	if c.closer != nil {
		c.closer(code, reason)
	}
	c.shutdown(&core.CloseError{Code: code, Reason: reason, Err: cause})
}

// noteViolation records the first protocol violation of a stream.
func (c *Conn) noteViolation(err error) {
	c.mu.Lock()
	if c.streamErr == nil {
		c.streamErr = err
	}
	c.mu.Unlock()
}

// hold marks the connection busy for one more request, subscription or outgoing call;
// unhold ends one.
func (c *Conn) hold() {
	if c.busy == nil {
		return
	}
	c.busyMu.Lock()
	if c.busyN++; c.busyN == 1 {
		c.busyDone = c.busy()
	}
	c.busyMu.Unlock()
}

func (c *Conn) unhold() {
	if c.busy == nil {
		return
	}
	c.busyMu.Lock()
	if c.busyN--; c.busyN == 0 {
		c.busyDone()
		c.busyDone = nil
	}
	c.busyMu.Unlock()
}

// shutdown marks the connection closed once: it cancels inbound handlers, fails every
// pending call, drops the overlay and closes Done.
func (c *Conn) shutdown(cause error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	if cause == nil {
		cause = core.ErrConnectionClosed
	}
	c.closeErr = cause
	pending := c.pending
	c.pending = make(map[string]*pendingCall)
	c.overlay = NewBareRegistry()
	c.mu.Unlock()

	// Close the transport before cancelling the handlers: a handler that ends on the
	// cancellation must not get to finish its stream cleanly first, which the peer
	// would read as a missing answer rather than as the connection closing.
	if c.streams != nil {
		c.streams.Close(core.CloseNormal, "")
	}
	if c.shared != nil {
		c.shared.close()
	}
	c.cancel(cause)
	for _, p := range pending {
		p.finish(callResult{err: ErrConnectionClosed()})
	}
	close(c.done)
}

// sink writes envelopes to the peer.
type sink interface {
	send(ctx context.Context, env Envelope) error
	// shared reports whether every call of the connection uses this sink.
	isShared() bool
	close()
}

// messageSink sends over a message transport, one envelope per message.
type messageSink struct {
	mu sync.Mutex
	fn func(context.Context, Envelope) error
}

func (m *messageSink) send(ctx context.Context, env Envelope) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.fn(ctx, env)
}

func (*messageSink) isShared() bool { return true }
func (*messageSink) close()         {}

// frameStream is one byte stream carrying length-prefixed frames, with serialised
// writes and a count of inbound requests still answering on it.
type frameStream struct {
	c      *Conn
	s      core.BiStream
	shared bool

	wmu sync.Mutex

	mu        sync.Mutex
	active    int  // inbound requests answering on this stream
	readDone  bool // the peer finished its side (or reading failed)
	wroteDone bool // CloseWrite was called
	closeOnce sync.Once

	// reusable marks a stream this side opened for Queries and Mutations, one at a
	// time, and keeps open between them (guarded by Conn.mu with cur and dead).
	queue chan []byte   // shared streams: frames for the writer (nil: finish)
	stopW chan struct{} // shared streams: closed by close
	wdone chan struct{} // shared streams: closed when the writer has ended

	reusable bool
	cur      *pendingCall // the call using it
	dead     bool         // reading or writing failed: never reuse
	closed   atomic.Bool  // close ran (also from a write abandoned at a deadline)

	hasWriter atomic.Bool // a batching writer owns the stream's writes (startWriter)
}

func (c *Conn) newFrameStream(s core.BiStream, shared bool) *frameStream {
	return &frameStream{c: c, s: s, shared: shared}
}

// send writes one frame. On a stream of its own (QUIC) it writes directly, and a write
// still blocked (the peer does not read) when ctx ends is abandoned by closing the
// stream. On the shared stream of a single-stream connection it hands the frame to the
// stream's writer, which batches frames into few writes: send returns once the frame
// is queued (or with ctx's error when the queue stays full until ctx ends); a write
// error ends the connection.
func (f *frameStream) send(ctx context.Context, env Envelope) error {
	if f.hasWriter.Load() {
		return f.enqueue(ctx, env)
	}
	if ctx.Done() == nil {
		return f.write(env)
	}
	stop := context.AfterFunc(ctx, f.abortWrite)
	err := f.write(env)
	if !stop() {
		// ctx ended during the write, or right after it: abortWrite has closed the
		// stream either way, so report the context's end even if the frame went out
		// (the caller then aborts the request elsewhere).
		return ctx.Err()
	}
	return err
}

// closeFlushTimeout bounds how long Close waits for a shared stream's writer to send
// what is queued.
const closeFlushTimeout = 2 * time.Second

// sharedQueueLen is how many frames may wait for a shared stream's writer.
const sharedQueueLen = 256

// sharedWriteBuffer is the size of a shared stream writer's buffer.
const sharedWriteBuffer = 64 << 10

// startWriter gives the stream a batching writer: the shared stream of a single-stream
// connection from the start, and the stream of a subscription being served (so its
// events go out in few writes). It is a no-op when the stream has one already or is
// closed.
func (f *frameStream) startWriter() {
	f.mu.Lock()
	if f.hasWriter.Load() || f.closed.Load() {
		f.mu.Unlock()
		return
	}
	f.queue = make(chan []byte, sharedQueueLen)
	f.stopW = make(chan struct{})
	f.wdone = make(chan struct{})
	f.hasWriter.Store(true)
	f.mu.Unlock()
	f.c.run(func() {
		defer close(f.wdone)
		f.writeLoop()
	})
}

// enqueue encodes env and queues it for the writer.
func (f *frameStream) enqueue(ctx context.Context, env Envelope) error {
	frame, err := appendFrame(nil, env, f.c.d.maxFrame())
	if err != nil {
		return err
	}
	select {
	case <-f.stopW:
		return fmt.Errorf("call: write frame: %w", core.ErrConnectionClosed)
	default:
	}
	select {
	case f.queue <- frame:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-f.stopW:
		return fmt.Errorf("call: write frame: %w", core.ErrConnectionClosed)
	}
}

// writeLoop writes queued frames through a buffer, flushing whenever the queue is
// empty. A nil frame finishes the write side after everything before it.
func (f *frameStream) writeLoop() {
	bw := bufio.NewWriterSize(f.s, sharedWriteBuffer)
	fail := func(err error) {
		f.c.log.Debug("call: write failed; closing the stream", "err", err)
		f.close()
		if f.shared {
			f.c.shutdown(err)
		}
	}
	for {
		var frame []byte
		select {
		case frame = <-f.queue:
		case <-f.stopW:
			return
		}
		// One batch: every frame queued now, written and flushed under the write lock
		// (direct writes on the same stream wait for it).
		f.wmu.Lock()
		finish := false
		var err error
		for {
			if frame == nil {
				finish = true
				break
			}
			if _, err = bw.Write(frame); err != nil {
				break
			}
			select {
			case frame = <-f.queue:
				continue
			default:
			}
			break
		}
		if err == nil {
			err = bw.Flush()
		}
		if err == nil && finish {
			_ = f.s.CloseWrite()
		}
		f.wmu.Unlock()
		if err != nil {
			fail(err)
			return
		}
		if finish {
			f.close()
			if f.shared {
				f.c.shutdown(nil)
			}
			return
		}
	}
}

// abortWrite fails a blocked write (through a past write deadline, which QUIC and TLS
// streams support) and closes the stream.
func (f *frameStream) abortWrite() {
	if d, ok := f.s.(interface{ SetWriteDeadline(time.Time) error }); ok {
		_ = d.SetWriteDeadline(time.Unix(1, 0))
	}
	f.close()
}

func (f *frameStream) write(env Envelope) error {
	f.wmu.Lock()
	defer f.wmu.Unlock()
	return WriteFrame(f.s, env, f.c.d.maxFrame())
}

func (f *frameStream) isShared() bool { return f.shared }

func (f *frameStream) close() {
	f.closeOnce.Do(func() {
		f.mu.Lock()
		f.closed.Store(true)
		stopW := f.stopW
		f.mu.Unlock()
		if stopW != nil {
			close(stopW)
		}
		_ = f.s.Close()
	})
}

// streamCanceler is a QUIC stream, which can be reset with an application error code.
type streamCanceler interface {
	CancelRead(quic.StreamErrorCode)
	CancelWrite(quic.StreamErrorCode)
}

// reset resets both directions of a QUIC stream with code (other streams are just
// closed) and closes it.
func (f *frameStream) reset(code uint32) {
	if sc, ok := f.s.(streamCanceler); ok {
		sc.CancelRead(quic.StreamErrorCode(code))
		sc.CancelWrite(quic.StreamErrorCode(code))
	}
	f.close()
}

// addActive counts an inbound request that will answer on f.
func (f *frameStream) addActive() {
	f.mu.Lock()
	f.active++
	f.mu.Unlock()
}

// doneActive uncounts one; when the peer has finished its side and nothing answers on
// the stream any more, this side finishes too.
func (f *frameStream) doneActive() {
	f.mu.Lock()
	f.active--
	finish := f.active == 0 && f.readDone
	f.mu.Unlock()
	if finish {
		f.finishWrite()
	}
}

// peerFinished records that reading ended; it finishes the write side when no
// inbound request still answers on the stream.
func (f *frameStream) peerFinished() {
	f.mu.Lock()
	f.readDone = true
	finish := f.active == 0
	f.mu.Unlock()
	if finish {
		f.finishWrite()
	}
}

func (f *frameStream) finishWrite() {
	f.mu.Lock()
	already := f.wroteDone
	f.wroteDone = true
	f.mu.Unlock()
	if f.hasWriter.Load() {
		// The writer finishes after the answers queued before this point.
		if !already {
			select {
			case f.queue <- nil:
			case <-f.stopW:
			}
		}
		return
	}
	if !already {
		f.wmu.Lock()
		_ = f.s.CloseWrite()
		f.wmu.Unlock()
	}
	f.close()
}

// acceptLoop accepts the peer's streams (QUIC) until the connection ends.
func (c *Conn) acceptLoop() {
	for {
		s, err := c.streams.AcceptBi(c.ctx)
		if err != nil {
			c.shutdown(err)
			return
		}
		fs := c.newFrameStream(s, false)
		c.run(func() { _ = c.readLoop(fs) })
	}
}

// readLoop reads envelopes from one stream and routes them. A framing or JSON error
// ends that stream only; on the shared stream of a single-stream connection it ends
// the connection.
// It returns the error that ended reading.
func (c *Conn) readLoop(fs *frameStream) error {
	for {
		env, n, err := ReadFrameBudget(fs.s, c.frameMax, c.budget)
		if err != nil {
			clean := errors.Is(err, ErrClosed) && errors.Is(err, io.EOF)
			if !clean {
				c.dropStream(fs, err)
			} else if fs.shared {
				// The peer half-closed the connection: nothing more will answer this
				// side's calls, but its running requests still get their answers.
				// The connection ends when they are done, or after HalfCloseGrace
				// (a peer that closed completely looks the same from here).
				c.failPending(ErrConnectionClosed())
				c.run(func() {
					t := time.NewTimer(HalfCloseGrace)
					defer t.Stop()
					select {
					case <-c.done:
					case <-t.C:
						c.shutdown(nil)
					}
				})
			}
			fs.peerFinished()
			return err
		}
		c.route(fs, env, held{c.budget, n})
	}
}

// dropStream ends a stream whose reading failed with err. A frame over a limit (its
// length, or a memory budget) resets a QUIC stream with code core.CloseLimitExceeded
// and closes a single-stream connection with that code and a reason naming the limit;
// other protocol violations close the stream (a single-stream connection: the
// connection). Violations are recorded for Handle's result.
func (c *Conn) dropStream(fs *frameStream, err error) {
	limit := errors.Is(err, core.ErrBudgetExceeded) || errors.Is(err, ErrFrameTooLarge)
	violation := limit || errors.Is(err, ErrFrameInvalid) || errors.Is(err, ErrEnvelopeInvalid)
	c.log.Debug("call: stream dropped", "err", err)
	if violation {
		c.noteViolation(err)
	}
	switch {
	case fs.shared && limit:
		reason := err.Error()
		if be, ok := errors.AsType[*core.BudgetError](err); ok {
			reason = be.Error()
		}
		c.closeWith(core.CloseLimitExceeded, reason, err)
	case fs.shared && violation:
		c.closeWith(core.CloseInternalError, err.Error(), err)
	case fs.shared:
		fs.close()
		c.shutdown(err)
	case limit:
		fs.reset(core.CloseLimitExceeded)
	default:
		fs.close()
	}
}

// held is a number of bytes reserved in a budget for one received envelope.
type held struct {
	b *core.Budget
	n int64
}

func (h held) release() { h.b.Release(h.n) }

// HandleEnvelope routes one envelope received on a message transport (see
// NewMessageConn). Requests start their handlers in their own goroutines; it never
// blocks on a handler.
func (c *Conn) HandleEnvelope(ctx context.Context, env Envelope) {
	c.HandleEnvelopeReserved(ctx, env, nil, 0)
}

// HandleEnvelopeReserved is HandleEnvelope for an envelope whose buffer the transport
// reserved in b (n bytes, as a message of that size was read): the Conn releases them
// once it is done with the envelope — for a request, once it has been answered, so a
// peer cannot hold more memory in running requests than its budget.
func (c *Conn) HandleEnvelopeReserved(ctx context.Context, env Envelope, b *core.Budget, n int64) {
	if c.shared == nil {
		b.Release(n)
		return
	}
	c.route(c.shared, env, held{b, n})
}

// route dispatches one envelope that arrived on s; h is released when the envelope is
// done with.
func (c *Conn) route(s sink, env Envelope, h held) {
	switch env.Type {
	case EvRequested:
		c.handleRequest(s, env, h)
		return
	case EvAborted:
		c.handleAbort(env.ID)
	case EvResponded, EvCompleted, EvError:
		c.handleResponse(s, env)
	default:
		c.log.Debug("call: unknown envelope type ignored", "type", env.Type)
	}
	h.release()
}

// inboundReq is one request of the peer running on this side.
type inboundReq struct {
	cancel  context.CancelFunc
	aborted bool // by call.aborted (guarded by Conn.mu)
}

// handleRequest starts the peer's request in its own goroutine. It resolves the
// request's auth_token first, in the reading goroutine, so that the connection's
// attempt limit holds however many requests arrive at once. h is released once the
// request has been answered.
func (c *Conn) handleRequest(s sink, env Envelope, h held) {
	ctx := c.ctx
	reply := func(e Envelope) {
		h.release()
		if err := s.send(ctx, e); err != nil {
			c.log.Debug("call: reply not sent", "id", e.ID, "err", err)
		}
	}
	if env.ID == "" {
		reply(NewErrorEnvelope(env.ID, NewCallError(CodeInvalidInput, "request without an id")))
		return
	}
	req, cerr := ParseRequest(env)
	if cerr != nil {
		reply(NewErrorEnvelope(env.ID, cerr))
		return
	}
	name := req.OperationName()
	if len(name) > MaxNameLen {
		clear(req.AuthToken)
		reply(NewErrorEnvelope(env.ID, Errorf(CodeInvalidInput, "invalid request: operation name of %d bytes exceeds the limit of %d bytes", len(name), MaxNameLen)))
		return
	}
	identity := c.identity
	if len(req.AuthToken) > 0 {
		tid, err := c.resolveToken(req.AuthToken)
		clear(req.AuthToken)
		if err != nil {
			h.release()
			c.authExhausted(err)
			return
		}
		if tid != nil {
			identity = tid
		}
	}
	reg, _ := c.registry().Lookup(name)
	stream := reg != nil && reg.Spec.Type == Subscription

	var rctx context.Context
	var cancel context.CancelFunc
	if stream {
		rctx, cancel = context.WithCancel(c.ctx)
	} else {
		rctx, cancel = context.WithTimeout(c.ctx, c.d.timeout())
	}
	in := &inboundReq{cancel: cancel}

	c.mu.Lock()
	switch {
	case c.closed:
		c.mu.Unlock()
		cancel()
		h.release()
		return
	case c.inbound[env.ID] != nil:
		c.mu.Unlock()
		cancel()
		reply(NewErrorEnvelope(env.ID, NewCallError(CodeInvalidInput, "duplicate request id")))
		return
	case c.d.maxInflight() > 0 && len(c.inbound) >= c.d.maxInflight():
		c.mu.Unlock()
		cancel()
		e := NewCallError(CodeInternal, fmt.Sprintf("too many concurrent requests on this connection (limit %d)", c.d.maxInflight()))
		e.Retryable = true
		reply(NewErrorEnvelope(env.ID, e))
		return
	}
	c.inbound[env.ID] = in
	c.mu.Unlock()
	c.hold()

	fs, _ := s.(*frameStream)
	if fs != nil {
		fs.addActive()
	}
	// Requests are not in c.wg: Close and Handle do not wait for a handler that
	// ignores its context (its answer is dropped once the connection is gone).
	go func() {
		// release frees the request's id, in-flight slot and memory; it runs before
		// the final answer is written, so a caller that waits for each answer before
		// sending the next request never finds them still taken.
		var once sync.Once
		release := func() {
			once.Do(func() {
				c.mu.Lock()
				delete(c.inbound, env.ID)
				c.mu.Unlock()
				h.release()
			})
		}
		defer func() {
			release()
			cancel()
			if fs != nil {
				fs.doneActive()
			}
			c.unhold()
		}()
		c.serveRequest(rctx, s, env.ID, req, identity, reg, in, release)
	}()
}

// resolveToken resolves a request's auth_token under the connection's attempt limit:
// the token's identity, or nil (the connection identity applies) when it does not
// resolve — a failed attempt, logged — or no provider is set. It returns an error
// wrapping core.ErrTooManyAuthAttempts when the connection has no attempt left.
func (c *Conn) resolveToken(tok []byte) (*core.Identity, error) {
	if c.d.Identities == nil {
		return nil, nil
	}
	c.authMu.Lock()
	defer c.authMu.Unlock()
	if err := c.auth.Allow(); err != nil {
		return nil, err
	}
	if id, ok := c.d.Identities.ResolveFromToken(core.AuthToken{Raw: tok}); ok {
		return id, nil
	}
	c.auth.Fail()
	core.LogAuthFailure(c.ctx, c.log, core.AuthFailure{ALPN: ALPN, Remote: c.remote, Peer: tokenPeer(tok), Reason: "invalid auth_token"})
	return nil, nil
}

// tokenPeer is what an auth-failure line names for a token: its API-key prefix
// ("alk_" and four more characters of the key alphabet), public by design, or "-".
func tokenPeer(tok []byte) string {
	if len(tok) < core.APIKeyPrefixLen || string(tok[:len(core.APIKeyPrefix)]) != core.APIKeyPrefix {
		return "-"
	}
	for _, b := range tok[len(core.APIKeyPrefix):core.APIKeyPrefixLen] {
		if !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '-' || b == '_') {
			return "-"
		}
	}
	return string(tok[:core.APIKeyPrefixLen])
}

// authExhausted closes a connection that presented a token after using up its
// attempts. Under Handle the endpoint writes the auth-failure line from Handle's
// error; elsewhere the Conn writes it.
func (c *Conn) authExhausted(err error) {
	if !c.endpointLogs {
		peer := "-"
		if c.identity != nil {
			peer = c.identity.ID
		}
		core.LogAuthFailure(c.ctx, c.log, core.AuthFailure{ALPN: ALPN, Remote: c.remote, Peer: peer, Reason: err.Error()})
	}
	c.closeWith(core.CloseAuthRequired, reasonTooManyAttempts, fmt.Errorf("%w: %w", core.ErrAuthRequired, err))
}

// serveRequest runs one inbound request for identity and writes its answer unless it
// was aborted.
func (c *Conn) serveRequest(ctx context.Context, s sink, id string, req RequestPayload, identity *core.Identity, reg *Registration, in *inboundReq, release func()) {
	oc := NewRootContext(id, identity, req.ForwardedFor, reg, c.rootEnv(), c.d.Ownership)
	name := req.OperationName()
	input := req.Input
	if len(input) == 0 {
		input = json.RawMessage("null")
	}
	aborted := func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return in.aborted || c.closed
	}
	// Answers are written without the request's context, which may just have expired
	// (a TIMEOUT answer must still go out), and without the connection's: closing the
	// connection closes the stream, which ends a write the peer does not read.
	wctx := context.WithoutCancel(c.ctx)
	send := func(e Envelope) {
		if aborted() {
			return
		}
		release()
		err := s.send(wctx, e)
		if errors.Is(err, ErrFrameInvalid) && e.Type != EvError {
			err = s.send(wctx, NewErrorEnvelope(id, NewCallError(CodeInternal, "answer not sent: "+err.Error())))
		}
		if err != nil {
			c.log.Debug("call: reply not sent", "id", id, "err", err)
		}
	}
	if reg != nil && reg.Spec.Type == Subscription {
		if fs, ok := s.(*frameStream); ok && !fs.shared {
			fs.startWriter()
		}
		emit := func(out json.RawMessage) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			if aborted() {
				return context.Canceled
			}
			return s.send(ctx, NewResponded(id, out))
		}
		if cerr := c.registry().InvokeStream(ctx, name, input, oc, emit); cerr != nil {
			send(NewErrorEnvelope(id, cerr))
			return
		}
		send(NewCompleted(id))
		return
	}
	out, cerr := c.registry().Invoke(ctx, name, input, oc)
	if cerr != nil {
		send(NewErrorEnvelope(id, cerr))
		return
	}
	send(NewResponded(id, out))
}

// registry returns the registry inbound requests are served from.
func (c *Conn) registry() *Registry { return c.base }

// rootEnv is the composition environment of an inbound request: the local registry,
// with this connection's imported overlay attached under the peer's id (anonymous
// peers and OverlayOnly connections get no entry).
func (c *Conn) rootEnv() OperationEnv { return connEnv{c: c} }

// connEnv is rootEnv's environment, built only when a handler composes (most never
// do).
type connEnv struct{ c *Conn }

func (e connEnv) env() OperationEnv {
	env := NewPeerCompositeEnv(LocalEnv(e.c.registry()))
	if e.c.identity != nil && e.c.identity.ID != "" && !e.c.d.OverlayOnly {
		env.AttachPeer(e.c.identity.ID, e.c.OverlayEnv())
	}
	return env
}

func (e connEnv) Invoke(ctx context.Context, ns, op string, in json.RawMessage, parent *OpContext, p AbortPolicy) (json.RawMessage, *CallError) {
	return e.env().Invoke(ctx, ns, op, in, parent, p)
}

func (e connEnv) InvokePeer(ctx context.Context, peer PeerRef, ns, op string, in json.RawMessage, parent *OpContext, p AbortPolicy) (json.RawMessage, *CallError) {
	return e.env().InvokePeer(ctx, peer, ns, op, in, parent, p)
}

func (e connEnv) Contains(name string) bool { return e.env().Contains(name) }

func (e connEnv) PeerContains(peer, name string) bool { return e.env().PeerContains(peer, name) }

func (e connEnv) PeerIDs() []string { return e.env().PeerIDs() }

func (e connEnv) PeerOperations(peer string) []string { return e.env().PeerOperations(peer) }

// handleAbort cancels the request id names: an inbound request of the peer, or one of
// this side's calls that the peer gave up answering. Unknown ids are ignored.
func (c *Conn) handleAbort(id string) {
	c.mu.Lock()
	in := c.inbound[id]
	if in != nil {
		in.aborted = true
	}
	p := c.pending[id]
	if p != nil {
		delete(c.pending, id)
	}
	c.mu.Unlock()
	if in != nil {
		in.cancel()
	}
	if p != nil {
		p.finish(callResult{err: NewCallError(CodeInternal, "request aborted by the peer")})
	}
}

// handleResponse delivers a responded, completed or error envelope to the pending
// call it answers; envelopes for unknown ids (late answers) are dropped.
func (c *Conn) handleResponse(s sink, env Envelope) {
	c.mu.Lock()
	p := c.pending[env.ID]
	if p == nil {
		c.mu.Unlock()
		return
	}
	terminal := env.Type != EvResponded || !p.sub
	if terminal {
		delete(c.pending, env.ID)
	}
	c.mu.Unlock()

	switch env.Type {
	case EvResponded:
		out, err := ParseResponded(env)
		if err != nil {
			p.finish(callResult{err: NewCallError(CodeInternal, "malformed response: "+err.Error())})
			c.forget(env.ID)
			return
		}
		if !p.sub {
			p.finish(callResult{out: out})
			return
		}
		if !p.deliver(out, !s.isShared()) {
			// The consumer is too slow on a shared stream: end the subscription
			// instead of dropping events or stalling the connection.
			c.forget(env.ID)
			_ = c.sendAbort(p)
			p.finish(callResult{err: NewCallError(CodeInternal, fmt.Sprintf("subscription buffer full (%d events): the consumer is too slow", cap(p.events)))})
		}
	case EvCompleted:
		p.finish(callResult{eof: true})
	case EvError:
		cerr, err := ParseError(env)
		if err != nil {
			cerr = NewCallError(CodeInternal, "malformed error: "+err.Error())
		}
		p.finish(callResult{err: cerr})
	}
}

// failPending fails every pending outgoing call with err.
func (c *Conn) failPending(err *CallError) {
	c.mu.Lock()
	pending := c.pending
	c.pending = make(map[string]*pendingCall)
	c.mu.Unlock()
	for _, p := range pending {
		p.finish(callResult{err: err})
	}
}

// forget removes a pending call.
func (c *Conn) forget(id string) {
	c.mu.Lock()
	delete(c.pending, id)
	c.mu.Unlock()
}

// callResult is the terminal outcome of an outgoing call.
type callResult struct {
	out json.RawMessage
	err error
	eof bool
}

// pendingCall is one outgoing call or subscription waiting for answers.
type pendingCall struct {
	id     string
	sub    bool
	stream *frameStream // the call's own stream (QUIC), nil on a shared sink

	events chan json.RawMessage // subscriptions: outputs in order
	result chan callResult      // the terminal outcome, buffered 1

	once   sync.Once
	quit   chan struct{} // closed by finish, unblocks a delivery waiting for room
	unhold func()        // ends the busy mark of the call (set once it is registered)
}

func newPending(id string, sub bool, buf int) *pendingCall {
	p := &pendingCall{id: id, sub: sub, result: make(chan callResult, 1), quit: make(chan struct{})}
	if sub {
		p.events = make(chan json.RawMessage, buf)
	}
	return p
}

// finish records the terminal outcome once.
func (p *pendingCall) finish(r callResult) {
	p.once.Do(func() {
		p.result <- r
		close(p.quit)
		if p.unhold != nil {
			p.unhold()
		}
		if p.stream != nil && !p.stream.reusable {
			p.stream.close()
		}
	})
}

// deliver queues one subscription event. With block it waits for room (QUIC flow
// control then pushes back on the peer); otherwise it reports false when the buffer is
// full.
func (p *pendingCall) deliver(out json.RawMessage, block bool) bool {
	if block {
		select {
		case p.events <- out:
		case <-p.quit:
		}
		return true
	}
	select {
	case p.events <- out:
		return true
	default:
		return false
	}
}

// CallOption sets a per-call option.
type CallOption func(*callOptions)

type callOptions struct {
	token        []byte
	forwardedFor *core.Identity
}

// WithAuthToken sends token as the request's auth_token: when the peer resolves it,
// that identity replaces the connection identity for this request only. The token is
// copied; it is never logged.
func WithAuthToken(token []byte) CallOption {
	t := append([]byte(nil), token...)
	return func(o *callOptions) { o.token = t }
}

// WithForwardedFor sends id as the request's forwarded_for: informational metadata
// about the end user on whose behalf this call is made. The peer never uses it for
// authorization.
func WithForwardedFor(id *core.Identity) CallOption {
	return func(o *callOptions) { o.forwardedFor = id }
}

// Call runs operation op on the peer with input in (JSON-encoded with encoding/json
// unless it is a json.RawMessage) and returns its output. A remote failure is a
// *CallError; a Query or Mutation whose ctx has no deadline gets the dispatcher's
// default timeout (TIMEOUT, retryable). Cancelling ctx sends call.aborted to the peer
// and returns ctx.Err().
func (c *Conn) Call(ctx context.Context, op string, in any, opts ...CallOption) (json.RawMessage, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.d.timeout())
		defer cancel()
	}
	p, err := c.start(ctx, op, in, false, opts)
	if err != nil {
		return nil, err
	}
	defer c.releaseStream(p)
	select {
	case r := <-p.result:
		return r.out, r.err
	case <-ctx.Done():
		c.mu.Lock()
		_, live := c.pending[p.id]
		delete(c.pending, p.id)
		c.mu.Unlock()
		if !live {
			// The answer raced the context and won: it is being delivered.
			r := <-p.result
			return r.out, r.err
		}
		return nil, c.abandonLive(ctx, p)
	}
}

// takeStream returns an idle call stream for p, or opens a new one (QUIC).
func (c *Conn) takeStream(ctx context.Context, p *pendingCall) (*frameStream, error) {
	c.mu.Lock()
	if n := len(c.idle); n > 0 {
		fs := c.idle[n-1]
		c.idle = c.idle[:n-1]
		fs.cur = p
		c.mu.Unlock()
		return fs, nil
	}
	c.mu.Unlock()
	s, err := c.streams.OpenBi(ctx)
	if err != nil {
		return nil, err
	}
	fs := c.newFrameStream(s, false)
	fs.reusable = true
	fs.cur = p
	c.run(func() { c.callStreamLoop(fs) })
	return fs, nil
}

// releaseStream puts p's call stream back for the next call, or closes it when it
// failed or enough streams are idle already.
func (c *Conn) releaseStream(p *pendingCall) {
	fs := p.stream
	if fs == nil || !fs.reusable {
		return
	}
	c.mu.Lock()
	keep := !fs.dead && !fs.closed.Load() && !c.closed && len(c.idle) < c.d.idleCallStreams()
	fs.cur = nil
	if keep {
		c.idle = append(c.idle, fs)
	} else {
		fs.dead = true
	}
	c.mu.Unlock()
	if !keep {
		fs.finishWrite()
	}
}

// callStreamLoop reads the answers on a reusable call stream until it ends; a call
// still waiting on it then fails.
func (c *Conn) callStreamLoop(fs *frameStream) {
	err := c.readLoop(fs)
	c.mu.Lock()
	fs.dead = true
	c.idle = slices.DeleteFunc(c.idle, func(x *frameStream) bool { return x == fs })
	p := fs.cur
	live := false
	if p != nil {
		_, live = c.pending[p.id]
		delete(c.pending, p.id)
	}
	c.mu.Unlock()
	fs.close()
	if !live {
		return
	}
	if errors.Is(err, core.ErrConnectionClosed) || c.ctx.Err() != nil {
		p.finish(callResult{err: ErrConnectionClosed()})
		return
	}
	p.finish(callResult{err: NewCallError(CodeInternal, "stream closed before the answer")})
}

// abandon ends p after its ctx ended: when it was still pending it tells the peer with
// call.aborted. It returns TIMEOUT for a deadline or ctx.Err() for a cancellation.
func (c *Conn) abandon(ctx context.Context, p *pendingCall) error {
	c.mu.Lock()
	_, live := c.pending[p.id]
	delete(c.pending, p.id)
	c.mu.Unlock()
	if !live {
		return ctx.Err()
	}
	return c.abandonLive(ctx, p)
}

// abandonLive is abandon for a call already removed from the pending table.
func (c *Conn) abandonLive(ctx context.Context, p *pendingCall) error {
	_ = c.sendAbort(p)
	err := ctxError(ctx.Err())
	p.finish(callResult{err: err})
	return err
}

// ctxError is what a call returns when its context ended: TIMEOUT (retryable) for a
// deadline, the context's error for a cancellation.
func ctxError(err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return ErrTimedOut()
	}
	return err
}

// start sends the request of a new outgoing call and registers it as pending.
func (c *Conn) start(ctx context.Context, op string, in any, sub bool, opts []CallOption) (*pendingCall, error) {
	if err := ctx.Err(); err != nil {
		return nil, ctxError(err)
	}
	var o callOptions
	for _, f := range opts {
		f(&o)
	}
	// The option keeps its own copy for reuse; this one is wiped after sending.
	o.token = append([]byte(nil), o.token...)
	defer clear(o.token)
	input, err := encodeInput(in)
	if err != nil {
		return nil, err
	}
	id := NewID()
	env, err := NewRequest(id, op, input, o.token, o.forwardedFor)
	if err != nil {
		return nil, err
	}
	p := newPending(id, sub, c.d.subBuffer())
	switch {
	case c.shared == nil && !sub && c.d.idleCallStreams() > 0:
		// QUIC Query or Mutation: an idle call stream, or a new one kept for reuse.
		fs, err := c.takeStream(ctx, p)
		if err != nil {
			return nil, c.sendError(ctx, err)
		}
		p.stream = fs
	case c.shared == nil:
		// QUIC subscription (or call without stream reuse): a stream of its own,
		// opened before the call is registered so that finishing it can always
		// close the stream.
		s, err := c.streams.OpenBi(ctx)
		if err != nil {
			return nil, c.sendError(ctx, err)
		}
		p.stream = c.newFrameStream(s, false)
	}
	// Busy from before the call is registered until finish, which may run as soon as
	// it is.
	c.hold()
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		c.unhold()
		if p.stream != nil {
			p.stream.close()
		}
		return nil, ErrConnectionClosed()
	}
	c.pending[id] = p
	p.unhold = c.unhold
	c.mu.Unlock()

	switch {
	case c.shared != nil:
		err = c.shared.send(ctx, env)
	case p.stream.reusable:
		if err = p.stream.send(ctx, env); err != nil {
			c.mu.Lock()
			p.stream.dead = true
			c.mu.Unlock()
			p.stream.close()
		}
	default:
		err = c.startStream(ctx, p, env)
	}
	if err != nil {
		c.forget(id)
		p.finish(callResult{err: err})
		c.releaseStream(p)
		if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
			// The context ended while the request was being written: the peer may
			// have the whole request. An abort makes sure it does not run it for
			// nothing: queued behind the write on a shared stream, on a stream of its
			// own on QUIC (the request's stream is closed).
			if c.shared != nil {
				c.run(func() { _ = c.shared.send(c.ctx, NewAborted(id)) })
			} else {
				c.run(func() { _ = c.sendAbort(&pendingCall{id: id}) })
			}
		}
		return nil, c.sendError(ctx, err)
	}
	return p, nil
}

// sendError reports a failure to send a request.
func (c *Conn) sendError(ctx context.Context, err error) error {
	switch {
	case ctx.Err() != nil:
		return ctxError(ctx.Err())
	case c.ctx.Err() != nil, errors.Is(err, core.ErrConnectionClosed):
		return ErrConnectionClosed()
	}
	return NewCallError(CodeInternal, "send request: "+err.Error())
}

// startStream writes the request on the call's own QUIC stream, finishes the write
// side and reads the answers on it.
func (c *Conn) startStream(ctx context.Context, p *pendingCall, env Envelope) error {
	fs := p.stream
	if err := fs.send(ctx, env); err != nil {
		fs.close()
		return err
	}
	fs.mu.Lock()
	fs.wroteDone = true
	fs.mu.Unlock()
	if err := fs.s.CloseWrite(); err != nil {
		fs.close()
		return err
	}
	c.run(func() {
		err := c.readLoop(fs)
		// The answer stream ended; a call still pending on it lost its answer.
		c.mu.Lock()
		_, live := c.pending[p.id]
		if live {
			delete(c.pending, p.id)
		}
		c.mu.Unlock()
		if !live {
			return
		}
		if errors.Is(err, core.ErrConnectionClosed) || c.ctx.Err() != nil {
			p.finish(callResult{err: ErrConnectionClosed()})
			return
		}
		p.finish(callResult{err: NewCallError(CodeInternal, "stream closed before the answer")})
	})
	return nil
}

// abortAckTimeout bounds how long sendAbort waits, on QUIC, for the peer to finish
// the stream that carried call.aborted.
const abortAckTimeout = 2 * time.Second

// sendAbort sends call.aborted for p: on the shared sink, or on a fresh stream (QUIC).
// On QUIC it waits (at most abortAckTimeout) until the peer has read the abort and
// finished that stream, so that closing the connection right afterwards cannot
// overtake the abort.
func (c *Conn) sendAbort(p *pendingCall) error {
	env := NewAborted(p.id)
	if p.stream != nil && p.stream.reusable {
		// The call's stream stays open: the abort goes on it, and an answer that
		// crosses it is dropped as an unknown id.
		err := p.stream.send(c.ctx, env)
		if err != nil {
			c.mu.Lock()
			p.stream.dead = true
			c.mu.Unlock()
		}
		return err
	}
	if p.stream != nil {
		p.stream.close()
	}
	if c.shared != nil {
		return c.shared.send(c.ctx, env)
	}
	ctx, cancel := context.WithTimeout(c.ctx, abortAckTimeout)
	defer cancel()
	s, err := c.streams.OpenBi(ctx)
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { _ = s.Close() })
	defer func() {
		stop()
		_ = s.Close()
	}()
	if err := WriteFrame(s, env, c.d.maxFrame()); err != nil {
		return err
	}
	if err := s.CloseWrite(); err != nil {
		return err
	}
	// The peer finishes its side once it has handled the abort.
	_, err = io.Copy(io.Discard, io.LimitReader(s, int64(c.d.maxFrame())))
	return err
}

// encodeInput turns a Call input into JSON.
func encodeInput(in any) (json.RawMessage, error) {
	switch v := in.(type) {
	case nil:
		return json.RawMessage("null"), nil
	case json.RawMessage:
		if len(v) == 0 {
			return json.RawMessage("null"), nil
		}
		if !json.Valid(v) {
			return nil, NewCallError(CodeInvalidInput, "input is not valid JSON")
		}
		return v, nil
	}
	b, err := json.Marshal(in)
	if err != nil {
		return nil, NewCallError(CodeInvalidInput, "encode input: "+err.Error())
	}
	return b, nil
}

// Stream is the event stream of an outgoing subscription: Next returns its events in
// order; Close aborts it.
type Stream struct {
	c         *Conn
	p         *pendingCall
	ctx       context.Context
	cancel    context.CancelFunc
	stop      func() bool
	abortOnce sync.Once
	err       error
}

// Subscribe starts subscription op on the peer. Events are read with Next; Close (or
// cancelling ctx) aborts it on the wire. A subscription has no deadline unless ctx
// has one.
func (c *Conn) Subscribe(ctx context.Context, op string, in any, opts ...CallOption) (*Stream, error) {
	sctx, cancel := context.WithCancel(ctx)
	p, err := c.start(sctx, op, in, true, opts)
	if err != nil {
		cancel()
		return nil, err
	}
	s := &Stream{c: c, p: p, ctx: sctx, cancel: cancel}
	s.stop = context.AfterFunc(sctx, s.abort)
	return s, nil
}

// abort ends the subscription locally and, when it was still live, on the wire. It
// runs once; a second caller waits for the first to finish.
func (s *Stream) abort() {
	s.abortOnce.Do(func() { _ = s.c.abandon(s.ctx, s.p) })
}

// Next returns the next event. It returns io.EOF once the peer completed the
// subscription, a *CallError when the peer ended it with an error, and ctx.Err() when
// ctx (of this Next call) ends first; the subscription stays live in that last case.
func (s *Stream) Next(ctx context.Context) (json.RawMessage, error) {
	if s.err != nil {
		return nil, s.err
	}
	// Events already delivered come before the terminal outcome.
	select {
	case out := <-s.p.events:
		return out, nil
	default:
	}
	select {
	case out := <-s.p.events:
		return out, nil
	case r := <-s.p.result:
		// Drain events that raced with the terminal outcome.
		select {
		case out := <-s.p.events:
			s.p.result <- r
			return out, nil
		default:
		}
		s.err = r.err
		if r.eof {
			s.err = io.EOF
		}
		if s.err == nil {
			s.err = io.EOF
		}
		s.stop()
		s.cancel()
		return nil, s.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Close aborts the subscription (sending call.aborted if it is still live) and
// releases it; the abort has been sent when it returns. It is safe to call more than
// once.
func (s *Stream) Close() error {
	s.cancel()
	// Abort synchronously, so that the abort is on the wire when Close returns (and
	// wait for the one a cancelled context may have started).
	s.abort()
	return nil
}
