package call

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
)

// OperationAdapter imports operations from somewhere else (a peer, an OpenAPI
// document, an MCP server) as forwarding registrations.
type OperationAdapter interface {
	Import(ctx context.Context) ([]Registration, error)
}

// AdapterErrorKind classifies an import failure.
type AdapterErrorKind int

// Adapter error kinds.
const (
	// AdapterDiscoveryFailed: listing the remote operations failed.
	AdapterDiscoveryFailed AdapterErrorKind = iota + 1
	// AdapterSchemaParse: a remote spec could not be understood.
	AdapterSchemaParse
	// AdapterTransport: the connection failed.
	AdapterTransport
	// AdapterUnauthorized: the remote refused this side.
	AdapterUnauthorized
	// AdapterSamePeerCollision: two imported operations got the same name.
	AdapterSamePeerCollision
)

// String returns the kind's name.
func (k AdapterErrorKind) String() string {
	switch k {
	case AdapterDiscoveryFailed:
		return "discovery failed"
	case AdapterSchemaParse:
		return "schema parse"
	case AdapterTransport:
		return "transport"
	case AdapterUnauthorized:
		return "unauthorized"
	case AdapterSamePeerCollision:
		return "same-peer name collision"
	}
	return fmt.Sprintf("AdapterErrorKind(%d)", int(k))
}

// AdapterError is an import failure; Op names the operation concerned, when one is.
type AdapterError struct {
	Kind AdapterErrorKind
	Op   string
	Err  error
}

// Error names the kind, the operation and the cause.
func (e *AdapterError) Error() string {
	if e.Op != "" {
		return fmt.Sprintf("call: import: %s: %s: %v", e.Kind, e.Op, e.Err)
	}
	return fmt.Sprintf("call: import: %s: %v", e.Kind, e.Err)
}

// Unwrap returns the cause.
func (e *AdapterError) Unwrap() error { return e.Err }

// FromCallConfig configures FromCall.
type FromCallConfig struct {
	// NamespacePrefix, when set, is put before every imported name: "peer-a" imports
	// the remote "notes/get" as "peer-a/notes/get".
	NamespacePrefix string
	// Filter, when non-nil, imports only the remote names it maps to true.
	Filter map[string]bool
	// Expose keeps the remote visibility (External) so the imported operations can be
	// called from the wire here. By default they are Internal: reachable only by
	// composition (decision 3).
	Expose bool
}

// FromCall imports the operations the peer on c lists for this side (services/list,
// then services/schema for each) as forwarding leaves: calling one here calls the
// peer on c, passing the caller's identity as forwarded_for, and cancelling it sends
// call.aborted for its own wire id. The registrations have ProvenanceFromCall, no
// authority, no scoped env and no capabilities; register them with
// c.RegisterImported (the connection's overlay) or in a Registry.
func FromCall(ctx context.Context, c *Conn, cfg FromCallConfig) ([]Registration, error) {
	raw, err := c.Call(ctx, "services/list", nil)
	if err != nil {
		return nil, adapterError(AdapterDiscoveryFailed, "", err)
	}
	var list struct {
		Operations []struct {
			Name string `json:"name"`
		} `json:"operations"`
	}
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, &AdapterError{Kind: AdapterSchemaParse, Op: "services/list", Err: err}
	}
	names := make([]string, 0, len(list.Operations))
	for _, op := range list.Operations {
		if cfg.Filter == nil || cfg.Filter[op.Name] {
			names = append(names, op.Name)
		}
	}
	sort.Strings(names)

	seen := make(map[string]bool, len(names))
	regs := make([]Registration, 0, len(names))
	for _, remote := range names {
		raw, err := c.Call(ctx, "services/schema", map[string]string{"name": remote})
		if err != nil {
			return nil, adapterError(AdapterDiscoveryFailed, remote, err)
		}
		var spec OperationSpec
		if err := json.Unmarshal(raw, &spec); err != nil {
			return nil, &AdapterError{Kind: AdapterSchemaParse, Op: remote, Err: err}
		}
		if spec.Name != remote {
			return nil, &AdapterError{Kind: AdapterSchemaParse, Op: remote, Err: fmt.Errorf("services/schema returned the spec of %q", spec.Name)}
		}
		local := remote
		if cfg.NamespacePrefix != "" {
			local = cfg.NamespacePrefix + "/" + remote
		}
		if seen[local] {
			return nil, &AdapterError{Kind: AdapterSamePeerCollision, Op: local, Err: errors.New("imported twice")}
		}
		seen[local] = true
		renamed := NewSpec(local, spec.Type)
		spec.Name, spec.Namespace = renamed.Name, renamed.Namespace
		if !cfg.Expose {
			spec.Visibility = Internal
		}
		reg := Registration{Spec: spec, Provenance: ProvenanceFromCall}
		if spec.Type == Subscription {
			reg.Stream = forwardStream(c, remote)
		} else {
			reg.Once = forwardOnce(c, remote)
		}
		regs = append(regs, reg)
	}
	return regs, nil
}

// adapterError classifies a discovery call's failure.
func adapterError(kind AdapterErrorKind, op string, err error) error {
	if ce, ok := errors.AsType[*CallError](err); ok {
		switch ce.Code {
		case CodeForbidden:
			kind = AdapterUnauthorized
		case CodeInternal:
			if ce.Message == ErrConnectionClosed().Message {
				kind = AdapterTransport
			}
		}
	}
	return &AdapterError{Kind: kind, Op: op, Err: err}
}

// forwardOnce forwards a Query or Mutation to the peer.
func forwardOnce(c *Conn, remote string) Handler {
	return func(ctx context.Context, oc *OpContext, input json.RawMessage) (json.RawMessage, error) {
		return c.Call(ctx, remote, input, WithForwardedFor(oc.Identity))
	}
}

// forwardStream forwards a subscription to the peer, event by event.
func forwardStream(c *Conn, remote string) StreamHandler {
	return func(ctx context.Context, oc *OpContext, input json.RawMessage, emit func(json.RawMessage) error) error {
		sub, err := c.Subscribe(ctx, remote, input, WithForwardedFor(oc.Identity))
		if err != nil {
			return err
		}
		defer sub.Close()
		for {
			out, err := sub.Next(ctx)
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return err
			}
			if err := emit(out); err != nil {
				return err
			}
		}
	}
}

// RegisterImported adds registrations (typically from FromCall) to this connection's
// overlay: reachable by composition through OverlayEnv (and through the environment
// of requests this connection serves), gone when the connection closes.
func (c *Conn) RegisterImported(regs ...Registration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrConnectionClosed()
	}
	for _, reg := range regs {
		if err := c.overlay.Register(reg); err != nil {
			return err
		}
	}
	return nil
}

// OverlayEnv returns the composition environment of this connection's imported
// operations. After the connection closes it contains nothing.
func (c *Conn) OverlayEnv() OperationEnv { return overlayEnv{c: c} }

// overlayEnv resolves the connection's overlay at each use, so that it empties when
// the connection closes.
type overlayEnv struct{ c *Conn }

func (e overlayEnv) env() OperationEnv {
	e.c.mu.Lock()
	defer e.c.mu.Unlock()
	if e.c.closed {
		return LocalEnv(NewBareRegistry())
	}
	return LocalEnv(e.c.overlay)
}

func (e overlayEnv) Invoke(ctx context.Context, ns, op string, in json.RawMessage, parent *OpContext, p AbortPolicy) (json.RawMessage, *CallError) {
	return e.env().Invoke(ctx, ns, op, in, parent, p)
}

func (e overlayEnv) InvokePeer(ctx context.Context, peer PeerRef, ns, op string, in json.RawMessage, parent *OpContext, p AbortPolicy) (json.RawMessage, *CallError) {
	return e.env().InvokePeer(ctx, peer, ns, op, in, parent, p)
}

func (e overlayEnv) Contains(name string) bool { return e.env().Contains(name) }

func (e overlayEnv) PeerContains(peer, name string) bool { return e.env().PeerContains(peer, name) }

func (e overlayEnv) PeerIDs() []string { return e.env().PeerIDs() }

func (e overlayEnv) PeerOperations(peer string) []string { return e.env().PeerOperations(peer) }
