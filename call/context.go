package call

import (
	"context"
	"encoding/json"

	"github.com/alknet/alknet/core"
)

// AbortPolicy says what happens to a composed child call when its parent is aborted.
// It is chosen by the composing handler and never appears on the wire.
type AbortPolicy int

// Abort policies.
const (
	// AbortDependents (the default) runs the child on the parent's context: aborting
	// the parent cancels the child, and its children in turn.
	AbortDependents AbortPolicy = iota
	// ContinueRunning lets a child that has started finish after its parent is aborted
	// (it keeps the parent's deadline). A child whose parent is already aborted never
	// starts.
	ContinueRunning
)

// String returns "abort-dependents" or "continue-running".
func (p AbortPolicy) String() string {
	if p == ContinueRunning {
		return "continue-running"
	}
	return "abort-dependents"
}

// OpContext is what a handler learns about the call it serves. Deadlines and
// cancellation are carried by the context.Context passed alongside, never by fields.
//
// A wire (or HTTP gateway) request gets a root context from [NewRootContext]; a
// composed call gets a child context built by the [OperationEnv] ([NewChildContext]).
// Handlers must treat the context as read-only.
type OpContext struct {
	// RequestID is this call's id: the wire id for a root, a fresh UUIDv4 for a child.
	RequestID string
	// ParentRequestID is the composing call's RequestID; "" for a root.
	ParentRequestID string
	// Identity is who called: the connection (or token) identity for a root, the
	// composing handler's authority as an identity for a composed call. Access control
	// is checked against it.
	Identity *core.Identity
	// HandlerIdentity is this operation's own composition authority, the identity its
	// composed calls are made with; nil for leaves.
	HandlerIdentity *CompositionAuthority
	// ForwardedFor is the end user a forwarding hub acted for (wire ingress only). It is
	// informational: access control never reads it, and it is not passed to children.
	ForwardedFor *core.Identity
	// Caps holds the outbound credentials the handler may use.
	Caps core.Capabilities
	// Metadata is scratch space for this call only: fresh per call, never propagated to
	// children or the wire. Never put secrets in it.
	Metadata map[string]any
	// Scoped is the set of operations this handler may compose (empty for leaves).
	Scoped ScopedEnv
	// Env is the composition environment.
	Env OperationEnv
	// AbortPolicy is the policy [OpContext.Call] composes with.
	AbortPolicy AbortPolicy
	// Ownership answers resource ownership questions; it may be nil.
	Ownership core.OwnershipProvider

	internal bool
}

// IsInternal reports whether this call was made by composition (true) or arrived from
// outside (false). Only the package's environments create internal contexts.
func (oc *OpContext) IsInternal() bool { return oc != nil && oc.internal }

// NewRootContext builds the root OpContext of a request arriving from outside (wire,
// HTTP gateway): not internal, a fresh Metadata map, AbortDependents, and, when reg is
// not nil, HandlerIdentity, Caps and Scoped from the registration (all empty for an
// unknown operation, which Invoke answers with NOT_FOUND anyway). An empty requestID is
// replaced by a fresh one.
func NewRootContext(requestID string, identity, forwardedFor *core.Identity, reg *Registration, env OperationEnv, own core.OwnershipProvider) *OpContext {
	if requestID == "" {
		requestID = NewID()
	}
	oc := &OpContext{
		RequestID:    requestID,
		Identity:     identity,
		ForwardedFor: forwardedFor,
		Metadata:     map[string]any{},
		Env:          env,
		AbortPolicy:  AbortDependents,
		Ownership:    own,
	}
	if reg != nil {
		oc.HandlerIdentity = reg.Authority
		oc.Caps = reg.Caps
		if reg.Scoped != nil {
			oc.Scoped = *reg.Scoped
		}
	}
	return oc
}

// NewChildContext builds the context of a call composed by parent to the operation
// reg (call.md §3): a fresh request id, ParentRequestID = parent.RequestID, Identity =
// the parent's authority as an identity, HandlerIdentity = reg.Authority, no
// ForwardedFor, the parent's Caps, empty Metadata, reg's own Scoped (empty for leaves),
// the parent's Env and Ownership, internal, and policy p.
//
// [OperationEnv] implementations outside this package use it to obey the composition
// rules; the ones here ([LocalEnv], [PeerCompositeEnv]) call it themselves.
func NewChildContext(parent *OpContext, reg *Registration, p AbortPolicy) *OpContext {
	child := &OpContext{
		RequestID:   NewID(),
		Metadata:    map[string]any{},
		AbortPolicy: p,
		internal:    true,
	}
	if parent != nil {
		child.ParentRequestID = parent.RequestID
		child.Identity = parent.HandlerIdentity.AsIdentity()
		child.Caps = parent.Caps
		child.Env = parent.Env
		child.Ownership = parent.Ownership
	}
	if reg != nil {
		child.HandlerIdentity = reg.Authority
		if reg.Scoped != nil {
			child.Scoped = *reg.Scoped
		}
	}
	return child
}

// Call composes the operation name ("notes/get") through oc.Env with oc.AbortPolicy:
// oc.Env.Invoke(ctx, namespace, rest, in, oc, oc.AbortPolicy). It answers NOT_FOUND
// when there is no environment.
func (oc *OpContext) Call(ctx context.Context, name string, in json.RawMessage) (json.RawMessage, *CallError) {
	name = stripSlash(name)
	if oc == nil || oc.Env == nil {
		return nil, ErrNotFound(name)
	}
	ns, op := splitName(name)
	return oc.Env.Invoke(ctx, ns, op, in, oc, oc.AbortPolicy)
}

// CallPeer is [OpContext.Call] routed to one peer ("" means any):
// oc.Env.InvokePeer(ctx, PeerRef{peer}, namespace, rest, in, oc, oc.AbortPolicy).
func (oc *OpContext) CallPeer(ctx context.Context, peer, name string, in json.RawMessage) (json.RawMessage, *CallError) {
	name = stripSlash(name)
	if oc == nil || oc.Env == nil {
		return nil, ErrNotFound(name)
	}
	ns, op := splitName(name)
	return oc.Env.InvokePeer(ctx, PeerRef{Peer: peer}, ns, op, in, oc, oc.AbortPolicy)
}

// policyContext returns the context a child runs on under policy p, or the error of a
// child that must not start because ctx is already done.
func policyContext(ctx context.Context, p AbortPolicy) (context.Context, context.CancelFunc, *CallError) {
	if err := ctx.Err(); err != nil {
		return nil, nil, ToCallError(err)
	}
	if p != ContinueRunning {
		return ctx, func() {}, nil
	}
	detached := context.WithoutCancel(ctx)
	if dl, ok := ctx.Deadline(); ok {
		c, cancel := context.WithDeadline(detached, dl)
		return c, cancel, nil
	}
	return detached, func() {}, nil
}

// PolicyContext returns the context a composed child must run on under policy p, for
// [OperationEnv] implementations outside this package. When ctx is already done the
// child must not start: the error is TIMEOUT (deadline) or INTERNAL "request aborted".
// Otherwise AbortDependents gives ctx itself, and ContinueRunning gives a context that
// ignores ctx's cancellation but keeps its deadline. Call cancel when the child is done.
func PolicyContext(ctx context.Context, p AbortPolicy) (child context.Context, cancel context.CancelFunc, err *CallError) {
	return policyContext(ctx, p)
}
