package call

// The Conn itself: its state, its lifecycle (Identity, Done, Err, Close,
// CloseWithError, shutdown), the busy marks, and the read side that feeds it — the
// QUIC accept loop, the frame read loop and the routing of every received envelope.

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/alknet/alknet/core"
)

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
	alpn         string                           // for auth-failure lines ("": ALPN)
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
		if !already {
			fs.requestFinish()
		}
		select {
		case <-fs.wdone:
		case <-t.C:
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
	if fs.buffered && fs.fr == nil {
		if err := c.reserveReadBuffer(fs); err != nil {
			c.dropStream(fs, err)
			fs.peerFinished()
			return err
		}
	}
	if fs.fr != nil {
		defer c.releaseReadBuffer(fs)
	}
	var batch eventBatch
	for {
		var env Envelope
		var n int64
		var err error
		if fs.fr != nil {
			env, n, err = c.readBuffered(fs, &batch)
		} else {
			env, n, err = readFrameBudget(fs.s, c.frameMax, c.budget, c.exactBody())
		}
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

// exactBody is the longest frame body read into one buffer of its announced length
// (within the frame limit, reserved in the budget before it is allocated): 1 MiB from
// a peer with an identity, 64 KiB from an anonymous one, whose longer frames are read
// into a buffer that grows as bytes come (the hardening of issue 13: an anonymous
// peer's announced size is never allocated beyond what the first buffer holds).
func (c *Conn) exactBody() int {
	if c.identity != nil {
		return frameExactAlloc
	}
	return budgetFirstAlloc
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
