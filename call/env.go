package call

import (
	"context"
	"encoding/json"
	"slices"
	"sync"
)

// PeerRef names the peer a composed call is routed to; an empty Peer means any.
type PeerRef struct{ Peer string }

// OperationEnv is the environment handlers compose through ([OpContext.Call]). It is an
// interface so that overlays (a session's operations, a connection's imported ones,
// the operations of several peers) can be stacked.
//
// Every implementation follows the same rules (call.md §3):
//   - parent nil, or an operation its Scoped env does not allow, gives NOT_FOUND
//     before any lookup (existence is never revealed);
//   - an unknown operation gives NOT_FOUND, a Subscription INVALID_OPERATION_TYPE
//     (composition is request/response only);
//   - the child runs with the context of [NewChildContext], on the context of
//     [PolicyContext], through the same checks as [Registry.Invoke]: access control
//     against the parent's authority, input validation, error mapping.
//
// The peer-related methods use "" for the environment itself: a single-source
// environment (LocalEnv, a connection's overlay) has no peers of its own.
type OperationEnv interface {
	// Invoke composes ns/op from any source.
	Invoke(ctx context.Context, ns, op string, in json.RawMessage, parent *OpContext, p AbortPolicy) (json.RawMessage, *CallError)
	// InvokePeer composes ns/op from peer (any source for PeerRef{}).
	InvokePeer(ctx context.Context, peer PeerRef, ns, op string, in json.RawMessage, parent *OpContext, p AbortPolicy) (json.RawMessage, *CallError)
	// Contains reports whether name can be routed to (regardless of scope and access).
	Contains(name string) bool
	// PeerContains reports whether peer serves name ("": any source).
	PeerContains(peer, name string) bool
	// PeerIDs lists the peers, in the order they were attached.
	PeerIDs() []string
	// PeerOperations lists the names peer serves, sorted ("": every name reachable
	// from any source).
	PeerOperations(peer string) []string
}

// LocalEnv returns the environment of the operations in r, with no peers.
func LocalEnv(r *Registry) OperationEnv { return localEnv{r: r} }

// localEnv composes through one registry.
type localEnv struct{ r *Registry }

// Invoke implements OperationEnv.
func (e localEnv) Invoke(ctx context.Context, ns, op string, in json.RawMessage, parent *OpContext, p AbortPolicy) (json.RawMessage, *CallError) {
	name := joinName(ns, op)
	if parent == nil || !parent.Scoped.Allows(name) {
		return nil, ErrNotFound(name)
	}
	return composeOn(ctx, e.r, name, in, parent, p)
}

// InvokePeer implements OperationEnv: only PeerRef{} (the registry itself) is served.
func (e localEnv) InvokePeer(ctx context.Context, peer PeerRef, ns, op string, in json.RawMessage, parent *OpContext, p AbortPolicy) (json.RawMessage, *CallError) {
	if peer.Peer != "" {
		return nil, ErrNotFound(joinName(ns, op))
	}
	return e.Invoke(ctx, ns, op, in, parent, p)
}

// Contains implements OperationEnv.
func (e localEnv) Contains(name string) bool { return e.r != nil && e.r.contains(name) }

// PeerContains implements OperationEnv.
func (e localEnv) PeerContains(peer, name string) bool { return peer == "" && e.Contains(name) }

// PeerIDs implements OperationEnv: none.
func (localEnv) PeerIDs() []string { return nil }

// PeerOperations implements OperationEnv: every registered name (Internal ones
// included) for "", nothing for a peer.
func (e localEnv) PeerOperations(peer string) []string {
	if peer != "" || e.r == nil {
		return nil
	}
	return e.r.names()
}

// composeOn runs the composed call name on r once the scope check has passed.
func composeOn(ctx context.Context, r *Registry, name string, in json.RawMessage, parent *OpContext, p AbortPolicy) (json.RawMessage, *CallError) {
	if r == nil {
		return nil, ErrNotFound(name)
	}
	e := r.get(name)
	if e == nil {
		return nil, ErrNotFound(name)
	}
	if e.reg.Spec.Type == Subscription {
		return nil, Errorf(CodeInvalidOperationType, "operation %s is a subscription and cannot be composed", name)
	}
	child := NewChildContext(parent, &e.reg, p)
	cctx, cancel, cerr := policyContext(ctx, p)
	if cerr != nil {
		return nil, cerr
	}
	defer cancel()
	return r.Invoke(cctx, name, in, child)
}

// PeerCompositeEnv routes composed calls across a base environment (the node's
// registry), an optional session overlay and the environments of attached peers
// (ADR-067, ADR-068):
//   - any source (Invoke, or InvokePeer with PeerRef{}): the session if it contains
//     the operation, then the peers in the order they were attached, then the base;
//   - a specific peer: that peer's environment only, NOT_FOUND if it does not serve the
//     operation (no fallthrough). The parent's scope must allow the operation, or pin
//     it to that peer ([ScopedEnv.AllowsPeer]).
//
// It is safe for concurrent use; attaching and detaching do not affect calls already
// routed.
type PeerCompositeEnv struct {
	mu      sync.RWMutex
	base    OperationEnv
	session OperationEnv
	peers   map[string]OperationEnv
	order   []string
}

// NewPeerCompositeEnv returns an environment over base (nil: empty) with no session and
// no peers.
func NewPeerCompositeEnv(base OperationEnv) *PeerCompositeEnv {
	return &PeerCompositeEnv{base: base, peers: map[string]OperationEnv{}}
}

// AttachPeer adds (or replaces, keeping its position) the environment of peer.
func (e *PeerCompositeEnv) AttachPeer(peer string, env OperationEnv) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.peers[peer]; !ok {
		e.order = append(e.order, peer)
	}
	e.peers[peer] = env
}

// DetachPeer removes peer; detaching an unknown peer does nothing.
func (e *PeerCompositeEnv) DetachPeer(peer string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.peers[peer]; !ok {
		return
	}
	delete(e.peers, peer)
	e.order = slices.DeleteFunc(e.order, func(p string) bool { return p == peer })
}

// WithSession returns a copy of e with env as its session overlay (nil: none); e itself
// is unchanged.
func (e *PeerCompositeEnv) WithSession(env OperationEnv) *PeerCompositeEnv {
	c := e.Clone()
	c.session = env
	return c
}

// Clone returns an independent copy: attaching or detaching peers on one does not
// affect the other. The environments themselves are shared.
func (e *PeerCompositeEnv) Clone() *PeerCompositeEnv {
	e.mu.RLock()
	defer e.mu.RUnlock()
	c := &PeerCompositeEnv{base: e.base, session: e.session, peers: make(map[string]OperationEnv, len(e.peers)), order: slices.Clone(e.order)}
	for k, v := range e.peers {
		c.peers[k] = v
	}
	return c
}

// snapshot returns the session, the peers' environments in order, and the base.
func (e *PeerCompositeEnv) snapshot() (session OperationEnv, peers []OperationEnv, base OperationEnv) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	peers = make([]OperationEnv, 0, len(e.order))
	for _, p := range e.order {
		peers = append(peers, e.peers[p])
	}
	return e.session, peers, e.base
}

// route returns the environment serving name from any source, or nil.
func (e *PeerCompositeEnv) route(name string) OperationEnv {
	session, peers, base := e.snapshot()
	if session != nil && session.Contains(name) {
		return session
	}
	for _, p := range peers {
		if p != nil && p.Contains(name) {
			return p
		}
	}
	if base != nil && base.Contains(name) {
		return base
	}
	return nil
}

// peer returns the environment of peer, or nil.
func (e *PeerCompositeEnv) peer(peer string) OperationEnv {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.peers[peer]
}

// Invoke implements OperationEnv: any source.
func (e *PeerCompositeEnv) Invoke(ctx context.Context, ns, op string, in json.RawMessage, parent *OpContext, p AbortPolicy) (json.RawMessage, *CallError) {
	name := joinName(ns, op)
	if parent == nil || !parent.Scoped.Allows(name) {
		return nil, ErrNotFound(name)
	}
	env := e.route(name)
	if env == nil {
		return nil, ErrNotFound(name)
	}
	return env.Invoke(ctx, ns, op, in, parent, p)
}

// InvokePeer implements OperationEnv: PeerRef{} is [PeerCompositeEnv.Invoke]; a
// specific peer is served by that peer's environment only.
func (e *PeerCompositeEnv) InvokePeer(ctx context.Context, peer PeerRef, ns, op string, in json.RawMessage, parent *OpContext, p AbortPolicy) (json.RawMessage, *CallError) {
	if peer.Peer == "" {
		return e.Invoke(ctx, ns, op, in, parent, p)
	}
	name := joinName(ns, op)
	if parent == nil || !parent.Scoped.AllowsPeer(peer.Peer, name) {
		return nil, ErrNotFound(name)
	}
	env := e.peer(peer.Peer)
	if env == nil || !env.Contains(name) {
		return nil, ErrNotFound(name)
	}
	// The peer's environment checks the scope again with Allows; the pin has been
	// honoured here, so it gets a parent whose scope allows exactly this operation.
	pinned := *parent
	pinned.Scoped = ScopedEnv{AllowedOps: map[string]struct{}{name: {}}}
	return env.Invoke(ctx, ns, op, in, &pinned, p)
}

// Contains implements OperationEnv.
func (e *PeerCompositeEnv) Contains(name string) bool { return e.route(name) != nil }

// PeerContains implements OperationEnv ("": any source).
func (e *PeerCompositeEnv) PeerContains(peer, name string) bool {
	if peer == "" {
		return e.Contains(name)
	}
	env := e.peer(peer)
	return env != nil && env.Contains(name)
}

// PeerIDs implements OperationEnv: the attached peers in insertion order.
func (e *PeerCompositeEnv) PeerIDs() []string {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return slices.Clone(e.order)
}

// PeerOperations implements OperationEnv: the sorted names peer's environment serves;
// for "" every name reachable from any source (session, peers and base).
func (e *PeerCompositeEnv) PeerOperations(peer string) []string {
	if peer != "" {
		env := e.peer(peer)
		if env == nil {
			return nil
		}
		return sortedUnique(env.PeerOperations(""))
	}
	session, peers, base := e.snapshot()
	var all []string
	for _, env := range append(append([]OperationEnv{session}, peers...), base) {
		if env != nil {
			all = append(all, env.PeerOperations("")...)
		}
	}
	return sortedUnique(all)
}

// sortedUnique returns a sorted copy of names without duplicates.
func sortedUnique(names []string) []string {
	names = slices.Clone(names)
	slices.Sort(names)
	return slices.Compact(names)
}
