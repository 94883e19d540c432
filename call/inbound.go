package call

// Inbound requests: the peer's calls and subscriptions served from the registry
// (handleRequest, serveRequest), their aborts, auth_token attempts under the
// connection's limit, and the revocation watch of a connection's credential.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/alknet/alknet/core"
)

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

// inboundReq is one request of the peer running on this side.
type inboundReq struct {
	cancel  context.CancelFunc
	aborted atomic.Bool // by call.aborted
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
	core.LogAuthFailure(c.ctx, c.log, core.AuthFailure{ALPN: c.logALPN(), Remote: c.remote, Peer: tokenPeer(tok), Reason: "invalid auth_token"})
	return nil, nil
}

// logALPN is the protocol the connection's auth-failure lines name.
func (c *Conn) logALPN() string {
	if c.alpn != "" {
		return c.alpn
	}
	return ALPN
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
		core.LogAuthFailure(c.ctx, c.log, core.AuthFailure{ALPN: c.logALPN(), Remote: c.remote, Peer: peer, Reason: err.Error()})
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
		return in.aborted.Load() || c.closed
	}
	// Answers are written without the request's context, which may just have expired
	// (a TIMEOUT answer must still go out), and without the connection's: closing the
	// connection closes the stream, which ends a write the peer does not read.
	wctx := context.WithoutCancel(c.ctx)
	// answer sends e, or, for a non-nil out, the call.responded envelope of out
	// (validated by the registry) without building it.
	answer := func(e Envelope, out json.RawMessage) {
		if aborted() {
			return
		}
		release()
		var err error
		if out != nil {
			err = sendResponded(wctx, s, id, out)
		} else {
			err = s.send(wctx, e)
		}
		if errors.Is(err, ErrFrameInvalid) && e.Type != EvError {
			err = s.send(wctx, NewErrorEnvelope(id, NewCallError(CodeInternal, "answer not sent: "+err.Error())))
		}
		if err != nil {
			c.log.Debug("call: reply not sent", "id", id, "err", err)
		}
	}
	send := func(e Envelope) { answer(e, nil) }
	if reg != nil && reg.Spec.Type == Subscription {
		fs, _ := s.(*frameStream)
		if fs != nil && !fs.shared {
			fs.startWriter()
		}
		// Per event: no lock of the connection (closing it cancels ctx), and on a byte
		// stream the frame is encoded straight into the writer's batch (emit has
		// validated out already).
		head := respondedFrameHead(id)
		emit := func(out json.RawMessage) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			if in.aborted.Load() {
				return context.Canceled
			}
			if fs != nil && fs.hasWriter.Load() {
				return fs.enqueueResponded(ctx, head, out)
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
	if len(out) == 0 {
		out = json.RawMessage("null")
	}
	answer(Envelope{Type: EvResponded}, out)
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
		in.aborted.Store(true)
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
