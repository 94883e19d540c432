package call

// The Dispatcher: its configuration, defaults and limits, and the three ways it starts
// a Conn — Handle (an accepted connection), Serve (a dialled one) and NewMessageConn (a
// message transport such as WebSocket) with its options.

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"time"

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
// is read, and so is the 16 KiB read buffer of a single-stream connection's stream (and
// of each subscription stream this side opens) while it is read. A frame over either
// limit resets its QUIC stream (application error code 5,
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
// when it has one; the 16 KiB read buffer of a single-stream connection's stream is
// reserved in it too (a budget that cannot hold it ends the connection with
// core.CloseLimitExceeded and a reason naming the limit).
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
	alpn     string
	attempts *core.AuthAttempts
	close    func(code uint32, reason string)
	busy     func() (done func())
}

// WithRemoteAddr gives the transport's remote address, for the auth-failure log lines.
func WithRemoteAddr(addr net.Addr) MessageOption {
	return func(o *messageOptions) { o.remote = addr }
}

// WithALPN names the transport's protocol in the auth-failure log lines (for a
// WebSocket, the ALPN of the HTTP connection it came over: "h2", "http/1.1",
// "alknet/http"); without it the lines say "alknet/call".
func WithALPN(alpn string) MessageOption {
	return func(o *messageOptions) { o.alpn = alpn }
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
	c.alpn = o.alpn
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
