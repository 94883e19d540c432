package http

import (
	"context"
	"encoding/json"
	"time"

	"github.com/alknet/alknet/call"
	"github.com/alknet/alknet/core"
)

// DefaultCallTimeout bounds one gateway call (each /call, /search, /schema and each
// /batch item). Subscriptions have no deadline: they end with the client.
const DefaultCallTimeout = 30 * time.Second

// Gateway is the dispatch spine every HTTP-facing surface shares (the /call, /batch,
// /search, /schema and /subscribe routes, and the MCP tools): one concrete type, so all
// of them build the same root context and reach the same access checks.
//
// A wire-ingress call's root context is never internal and has no forwarded-for
// identity; its identity is the resolved Bearer identity (nil for none), its
// capabilities and scoped environment those of the target registration, its
// composition environment the registry itself (no peers), and its request id a fresh
// UUIDv4. Internal operations answer NOT_FOUND exactly as unknown ones do, before any
// access check.
//
// The zero value is not usable; set Registry. A Gateway is safe for concurrent use.
type Gateway struct {
	// Registry holds the operations; required.
	Registry *call.Registry
	// Identities resolves Bearer tokens; nil resolves nothing (every caller anonymous).
	Identities core.IdentityProvider
	// Ownership answers resource ownership questions for access control; may be nil.
	Ownership core.OwnershipProvider
	// Timeout bounds each call (0: DefaultCallTimeout).
	Timeout time.Duration
}

// Result is the outcome of one gateway call: its request id and either its output or
// its error.
type Result struct {
	// RequestID is the call's fresh request id.
	RequestID string
	// Output is the operation's output when Err is nil (JSON null for none).
	Output json.RawMessage
	// Err is the call's error, nil on success.
	Err *call.CallError
	// DeclaredStatus is the HTTP status the operation declares for Err's code in its
	// ErrorSchemas (ErrorDefinition.HTTPStatus), 0 when it declares none.
	DeclaredStatus int
}

// Status is the HTTP status of the result: 200 on success, the declared status of an
// operation-level error when it is a client or server error status (400 to 599), else
// StatusFor.
func (r Result) Status(authenticated bool) int {
	if r.Err != nil && r.DeclaredStatus >= 400 && r.DeclaredStatus <= 599 {
		return r.DeclaredStatus
	}
	return StatusFor(r.Err, authenticated)
}

// ResolveBearer resolves a Bearer token (the bytes after "Bearer ") to an identity;
// nil when it does not resolve or no IdentityProvider is set.
func (g *Gateway) ResolveBearer(token []byte) *core.Identity {
	if g.Identities == nil || len(token) == 0 {
		return nil
	}
	id, ok := g.Identities.ResolveFromToken(core.AuthToken{Raw: token})
	if !ok {
		return nil
	}
	return id
}

// Invoke runs the Query or Mutation op (one leading "/" accepted) for identity (nil
// for an anonymous caller) with input (nil is JSON null), bounded by the gateway's
// timeout and by ctx.
func (g *Gateway) Invoke(ctx context.Context, identity *core.Identity, op string, input json.RawMessage) Result {
	oc := g.rootContext(identity, op)
	ctx, cancel := context.WithTimeout(ctx, g.timeout())
	defer cancel()
	if input == nil {
		input = json.RawMessage("null")
	}
	out, err := g.Registry.Invoke(ctx, op, input, oc)
	if err != nil {
		return Result{RequestID: oc.RequestID, Err: err, DeclaredStatus: declaredStatus(g.Registry, op, err.Code)}
	}
	if out == nil {
		out = json.RawMessage("null")
	}
	return Result{RequestID: oc.RequestID, Output: out}
}

// InvokeStream runs the Subscription op for identity with the checks of Invoke and no
// deadline: it ends when the handler does or ctx is done. emit receives each output,
// never concurrently; an error from emit ends the subscription (its handler sees the
// call cancelled). It returns the request id and, when the stream did not end
// normally, the error: NOT_FOUND for unknown and Internal operations,
// INVALID_OPERATION_TYPE for a Query or Mutation, FORBIDDEN, INVALID_INPUT, or the
// handler's error.
func (g *Gateway) InvokeStream(ctx context.Context, identity *core.Identity, op string, input json.RawMessage, emit func(json.RawMessage) error) (string, *call.CallError) {
	oc := g.rootContext(identity, op)
	if input == nil {
		input = json.RawMessage("null")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var emitErr error
	err := g.Registry.InvokeStream(ctx, op, input, oc, func(out json.RawMessage) error {
		if emitErr != nil {
			return emitErr
		}
		if e := emit(out); e != nil {
			emitErr = e
			cancel()
			return e
		}
		return nil
	})
	if emitErr != nil {
		// The stream ended because the output could not be delivered (the client left,
		// or an output broke a limit): that is the error, not the handler's reaction.
		return oc.RequestID, call.ToCallError(emitErr)
	}
	return oc.RequestID, err
}

// Schema answers the /schema route and the MCP schema tool: the spec of the External
// operation name. Unknown and Internal operations give NOT_FOUND before any access
// check; an External operation whose access rule rejects the caller gives that
// FORBIDDEN (401 or 403 on HTTP) instead of the NOT_FOUND of services/schema.
func (g *Gateway) Schema(ctx context.Context, identity *core.Identity, name string) Result {
	if reg, ok := g.Registry.Lookup(name); ok && reg.Spec.Visibility == call.External {
		if err := reg.Spec.Access.Check(identity, "", nil); err != nil {
			return Result{RequestID: call.NewID(), Err: err}
		}
	}
	in, err := json.Marshal(struct {
		Name string `json:"name"`
	}{name})
	if err != nil {
		return Result{RequestID: call.NewID(), Err: call.NewCallError(call.CodeInternal, "schema request not serialisable")}
	}
	return g.Invoke(ctx, identity, call.OpServicesSchema, in)
}

// declaredStatus is the HTTP status op declares for code, 0 for none. Protocol codes
// keep their own mapping.
func declaredStatus(reg *call.Registry, op, code string) int {
	switch code {
	case call.CodeNotFound, call.CodeForbidden, call.CodeInvalidInput, call.CodeInvalidOperationType, call.CodeInternal, call.CodeTimeout:
		return 0
	}
	r, ok := reg.Lookup(op)
	if !ok {
		return 0
	}
	for _, d := range r.Spec.ErrorSchemas {
		if d.Code == code && d.HTTPStatus != nil {
			return *d.HTTPStatus
		}
	}
	return 0
}

// rootContext builds the root OpContext of a wire-ingress call to op.
func (g *Gateway) rootContext(identity *core.Identity, op string) *call.OpContext {
	var reg *call.Registration
	if r, ok := g.Registry.Lookup(op); ok {
		reg = r
	}
	return call.NewRootContext("", identity, nil, reg, call.LocalEnv(g.Registry), g.Ownership)
}

func (g *Gateway) timeout() time.Duration {
	if g.Timeout > 0 {
		return g.Timeout
	}
	return DefaultCallTimeout
}
