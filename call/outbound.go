package call

// Outbound calls: this side's Call and Subscribe to the peer, the pending-call table
// and the answers it receives, QUIC call streams kept for reuse, aborts, and the
// per-call options (WithAuthToken, WithForwardedFor).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/alknet/alknet/core"
)

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
		one := [1]json.RawMessage{out}
		if !p.events.deliver(one[:], !s.isShared(), p.quit) {
			c.overflow(p)
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

// overflow ends a subscription whose consumer is too slow on a shared stream, instead
// of dropping events or stalling the connection.
func (c *Conn) overflow(p *pendingCall) {
	c.forget(p.id)
	_ = c.sendAbort(p)
	p.finish(callResult{err: NewCallError(CodeInternal, fmt.Sprintf("subscription buffer full (%d events): the consumer is too slow", p.events.max))})
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

	events *eventQueue     // subscriptions: outputs in order
	result chan callResult // the terminal outcome, buffered 1

	once   sync.Once
	quit   chan struct{} // closed by finish, unblocks a delivery waiting for room
	unhold func()        // ends the busy mark of the call (set once it is registered)
}

func newPending(id string, sub bool, buf int) *pendingCall {
	p := &pendingCall{id: id, sub: sub, result: make(chan callResult, 1), quit: make(chan struct{})}
	if sub {
		p.events = newEventQueue(buf)
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
	req, err := newOutRequest(id, op, input, o.token, o.forwardedFor, false) // encodeInput validated it
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
		if fs, ok := c.shared.(*frameStream); ok {
			err = fs.sendRequest(ctx, &req)
		} else {
			err = c.shared.send(ctx, req.envelope())
		}
	case p.stream.reusable:
		if err = p.stream.sendRequest(ctx, &req); err != nil {
			c.mu.Lock()
			p.stream.dead = true
			c.mu.Unlock()
			p.stream.close()
		}
	default:
		err = c.startStream(ctx, p, &req)
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
	case errors.Is(err, core.ErrBudgetExceeded):
		return err // the read buffer of the call's stream (reserveReadBuffer)
	}
	return NewCallError(CodeInternal, "send request: "+err.Error())
}

// startStream writes the request on the call's own QUIC stream, finishes the write
// side and reads the answers on it.
func (c *Conn) startStream(ctx context.Context, p *pendingCall, req *outRequest) error {
	fs := p.stream
	// The answers are read through a buffer, reserved before the request goes out
	// (readLoop releases it).
	if err := c.reserveReadBuffer(fs); err != nil {
		fs.close()
		return err
	}
	if err := fs.sendRequest(ctx, req); err != nil {
		c.releaseReadBuffer(fs)
		fs.close()
		return err
	}
	fs.mu.Lock()
	fs.wroteDone = true
	fs.mu.Unlock()
	if err := fs.s.CloseWrite(); err != nil {
		c.releaseReadBuffer(fs)
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
		if !validPayload(v) {
			return nil, NewCallError(CodeInvalidInput, "input is not valid JSON")
		}
		return v, nil
	}
	b, err := json.Marshal(in)
	if err != nil {
		return nil, NewCallError(CodeInvalidInput, "encode input: "+err.Error())
	}
	if !validPayload(b) {
		// Nested deeper than an envelope can carry (see maxPayloadDepth).
		return nil, NewCallError(CodeInvalidInput, "input nests too deep")
	}
	return b, nil
}

// Stream is the event stream of an outgoing subscription: Next returns its events in
// order; Close aborts it. Next is for one goroutine at a time (Close may be called
// from any).
type Stream struct {
	c         *Conn
	p         *pendingCall
	local     []json.RawMessage // events taken from p.events, returned from li on
	li        int
	ctx       context.Context
	cancel    context.CancelFunc
	stop      func() bool
	abortOnce sync.Once
	err       error
}

// Subscribe starts subscription op on the peer. Events are read with Next; Close (or
// cancelling ctx) aborts it on the wire. A subscription has no deadline unless ctx
// has one. On QUIC its stream is read through a 16 KiB buffer reserved in the
// connection's memory budget until the stream ends: a budget that cannot hold it
// fails Subscribe with an error wrapping core.ErrBudgetExceeded (the budget's
// *core.BudgetError names the limit).
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
// The event is the caller's to keep; a small one shares a block of a few KiB with the
// events that arrived with it, which stays in memory while any of them is referenced.
func (s *Stream) Next(ctx context.Context) (json.RawMessage, error) {
	if s.err != nil {
		return nil, s.err
	}
	for {
		// Events already delivered come before the terminal outcome.
		if s.li < len(s.local) {
			out := s.local[s.li]
			s.local[s.li] = nil
			s.li++
			s.p.events.returned()
			return out, nil
		}
		if s.p.events.take(&s.local) {
			s.li = 0
			continue
		}
		select {
		case <-s.p.events.wake:
		case r := <-s.p.result:
			// Events that raced with the terminal outcome come first.
			if s.p.events.take(&s.local) {
				s.li = 0
				s.p.result <- r
				continue
			}
			s.err = r.err
			if r.eof || s.err == nil {
				s.err = io.EOF
			}
			s.stop()
			s.cancel()
			return nil, s.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
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
