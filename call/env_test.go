package call

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alknet/alknet/core"
)

// invokeRoot runs name as a wire request would: a root context built from the
// registration, composing through LocalEnv(r).
func invokeRoot(ctx context.Context, r *Registry, name string, in json.RawMessage, id *core.Identity) (json.RawMessage, *CallError) {
	reg, _ := r.Lookup(name)
	oc := NewRootContext("", id, nil, reg, LocalEnv(r), nil)
	return r.Invoke(ctx, name, in, oc)
}

// composer returns a Local registration with an authority and a scope that calls
// target and returns its output.
func composer(name, target string, auth *CompositionAuthority, scope ...string) Registration {
	return Registration{
		Spec: NewSpec(name, Query),
		Once: func(ctx context.Context, oc *OpContext, in json.RawMessage) (json.RawMessage, error) {
			return oc.Call(ctx, target, in)
		},
		Authority: auth,
		Scoped:    NewScopedEnv(scope...),
	}
}

func TestComposeScopedEnv(t *testing.T) {
	r := NewRegistry()
	auth := &CompositionAuthority{Label: "composer"}
	mustRegister(t, r,
		onceReg("notes/get", echo),
		onceReg("notes/delete", echo),
		composer("app/in", "notes/get", auth, "notes/get"),
		composer("app/out", "notes/delete", auth, "notes/get"),
		composer("app/unknown", "notes/nope", auth, "notes/get"),
		composer("app/slash", "/notes/get", auth, "/notes/get"),
	)
	if out, cerr := invokeRoot(t.Context(), r, "app/in", json.RawMessage(`{"a":1}`), nil); cerr != nil || string(out) != `{"a":1}` {
		t.Fatalf("in scope: %s %v", out, cerr)
	}
	if _, cerr := invokeRoot(t.Context(), r, "app/slash", nil, nil); cerr != nil {
		t.Fatalf("slash form: %v", cerr)
	}
	_, outErr := invokeRoot(t.Context(), r, "app/out", nil, nil)
	_, unkErr := invokeRoot(t.Context(), r, "app/unknown", nil, nil)
	wantCode(t, outErr, CodeNotFound)
	wantCode(t, unkErr, CodeNotFound)
	if outErr.Message != "operation not found: notes/delete" || unkErr.Message != "operation not found: notes/nope" {
		t.Fatalf("messages %q %q", outErr.Message, unkErr.Message)
	}
	// Nil parent and a context without an environment.
	if _, cerr := LocalEnv(r).Invoke(t.Context(), "notes", "get", nil, nil, AbortDependents); cerr == nil || cerr.Code != CodeNotFound {
		t.Fatalf("nil parent: %v", cerr)
	}
	if _, cerr := (&OpContext{Scoped: *NewScopedEnv("notes/get")}).Call(t.Context(), "notes/get", nil); cerr == nil || cerr.Code != CodeNotFound {
		t.Fatalf("nil env: %v", cerr)
	}
}

func TestComposeChildContext(t *testing.T) {
	r := NewRegistry()
	auth := &CompositionAuthority{Label: "notes-app", Scopes: []string{"admin"}, Resources: map[string][]string{"db": {"write"}}}
	childAuth := &CompositionAuthority{Label: "child-auth"}
	var parentOC, childOC *OpContext
	var childCaps []byte
	target := Registration{
		Spec: NewSpec("db/write", Mutation),
		Once: func(_ context.Context, oc *OpContext, in json.RawMessage) (json.RawMessage, error) {
			childOC = oc
			childCaps, _ = oc.Caps.Get("db")
			return in, nil
		},
		Authority: childAuth,
		Scoped:    NewScopedEnv("x/y"),
	}
	target.Spec.Visibility = Internal
	target.Spec.Access.RequiredScopes = []string{"admin"}
	target.Spec.Access.ResourceType = strp("db")
	target.Spec.Access.ResourceAction = strp("write")
	target.Caps = core.NewCapabilities(map[string][]byte{"api_key:db": []byte("child-own-secret")})
	parent := Registration{
		Spec: NewSpec("app/save", Mutation),
		Once: func(ctx context.Context, oc *OpContext, in json.RawMessage) (json.RawMessage, error) {
			parentOC = oc
			oc.Metadata["trace"] = "parent-only"
			return oc.Call(ctx, "db/write", in)
		},
		Authority: auth,
		Scoped:    NewScopedEnv("db/write"),
		Caps:      core.NewCapabilities(map[string][]byte{"api_key:db": []byte("parent-secret")}),
	}
	mustRegister(t, r, target, parent)

	reg, _ := r.Lookup("app/save")
	user := &core.Identity{ID: "alice", Scopes: []string{"user"}}
	fwd := &core.Identity{ID: "end-user"}
	own := core.NewInMemoryOwnership()
	if err := own.Record(t.Context(), &core.Identity{ID: "notes-app"}, "db", "main"); err != nil {
		t.Fatal(err)
	}
	root := NewRootContext("wire-1", user, fwd, reg, LocalEnv(r), own)
	if _, cerr := r.Invoke(t.Context(), "app/save", json.RawMessage(`{}`), root); cerr != nil {
		t.Fatal(cerr)
	}
	if parentOC != root || parentOC.IsInternal() || parentOC.ForwardedFor != fwd || parentOC.Identity != user {
		t.Fatalf("root context: %+v", parentOC)
	}
	c := childOC
	switch {
	case c == nil:
		t.Fatal("child did not run")
	case !c.IsInternal():
		t.Error("child not internal")
	case c.RequestID == "" || c.RequestID == root.RequestID || len(c.RequestID) != 36 || strings.Contains(c.RequestID, "write"):
		t.Errorf("child request id %q", c.RequestID)
	case c.ParentRequestID != "wire-1":
		t.Errorf("parent id %q", c.ParentRequestID)
	case c.Identity == nil || c.Identity.ID != "notes-app" || !c.Identity.HasScope("admin") || c.Identity.Resources["db"][0] != "write":
		t.Errorf("child identity %+v, want the parent's authority", c.Identity)
	case c.HandlerIdentity != childAuth:
		t.Errorf("child authority %+v", c.HandlerIdentity)
	case c.ForwardedFor != nil:
		t.Error("forwarded_for propagated")
	case len(c.Metadata) != 0 || c.Metadata == nil:
		t.Errorf("metadata propagated: %v", c.Metadata)
	case !c.Scoped.Allows("x/y") || c.Scoped.Allows("db/write"):
		t.Errorf("child scope %+v", c.Scoped)
	case c.Env == nil || c.Ownership != root.Ownership:
		t.Error("env or ownership not inherited")
	case string(childCaps) != "parent-secret":
		t.Errorf("child caps %q, want the parent's", childCaps)
	case c.AbortPolicy != AbortDependents:
		t.Errorf("policy %v", c.AbortPolicy)
	}
	// The authority is copied: changing the child's identity leaves it alone.
	c.Identity.Scopes[0] = "changed"
	if auth.Scopes[0] != "admin" {
		t.Fatal("AsIdentity aliases the authority")
	}
	if (*CompositionAuthority)(nil).AsIdentity() != nil {
		t.Fatal("nil authority gives an identity")
	}
}

func TestComposeAuthoritySwitch(t *testing.T) {
	r := NewRegistry()
	admin := onceReg("admin/reindex", echo)
	admin.Spec.Access.RequiredScopes = []string{"admin"}
	var ran atomic.Int32
	admin.Once = func(_ context.Context, _ *OpContext, in json.RawMessage) (json.RawMessage, error) {
		ran.Add(1)
		return in, nil
	}
	mustRegister(t, r, admin,
		composer("app/strong", "admin/reindex", &CompositionAuthority{Label: "strong", Scopes: []string{"admin"}}, "admin/reindex"),
		composer("app/weak", "admin/reindex", &CompositionAuthority{Label: "weak"}, "admin/reindex"),
	)
	// The caller lacks admin, the strong authority has it: allowed.
	if _, cerr := invokeRoot(t.Context(), r, "app/strong", nil, &core.Identity{ID: "u"}); cerr != nil {
		t.Fatalf("strong: %v", cerr)
	}
	// The caller has admin, the weak authority does not: denied.
	_, cerr := invokeRoot(t.Context(), r, "app/weak", nil, &core.Identity{ID: "root", Scopes: []string{"admin"}})
	wantCode(t, cerr, CodeForbidden)
	if cerr.Message != "missing required scope: admin" || ran.Load() != 1 {
		t.Fatalf("weak: %v, ran %d", cerr, ran.Load())
	}
}

func TestLeafCannotCompose(t *testing.T) {
	r := NewRegistry()
	var leafErr, noAuthErr *CallError
	leaf := Registration{
		Spec: NewSpec("peer/fwd", Query),
		Once: func(ctx context.Context, oc *OpContext, in json.RawMessage) (json.RawMessage, error) {
			_, leafErr = oc.Call(ctx, "notes/get", in)
			return nil, nil
		},
		Provenance: ProvenanceFromCall,
	}
	restricted := onceReg("notes/get", echo)
	restricted.Spec.Access.RequiredScopes = []string{"notes:read"}
	// A Local op with a scope but no authority composes as nobody.
	noAuth := Registration{
		Spec: NewSpec("app/noauth", Query),
		Once: func(ctx context.Context, oc *OpContext, in json.RawMessage) (json.RawMessage, error) {
			_, noAuthErr = oc.Call(ctx, "notes/get", in)
			return nil, nil
		},
		Scoped: NewScopedEnv("notes/get"),
	}
	mustRegister(t, r, leaf, restricted, noAuth)
	id := &core.Identity{ID: "alice", Scopes: []string{"notes:read"}}
	if _, cerr := invokeRoot(t.Context(), r, "peer/fwd", nil, id); cerr != nil {
		t.Fatal(cerr)
	}
	wantCode(t, leafErr, CodeNotFound)
	if _, cerr := invokeRoot(t.Context(), r, "app/noauth", nil, id); cerr != nil {
		t.Fatal(cerr)
	}
	wantCode(t, noAuthErr, CodeForbidden)
	if noAuthErr.Message != "authentication required" {
		t.Fatalf("no authority: %v", noAuthErr)
	}
}

func TestComposeInternalAndSubscription(t *testing.T) {
	r := NewRegistry()
	hidden := onceReg("core/hidden", echo)
	hidden.Spec.Visibility = Internal
	watch := Registration{Spec: NewSpec("metrics/watch", Subscription), Stream: func(context.Context, *OpContext, json.RawMessage, func(json.RawMessage) error) error {
		t.Error("subscription ran")
		return nil
	}}
	schema := onceReg("typed/op", echo)
	schema.Spec.InputSchema = json.RawMessage(`{"type":"string"}`)
	auth := &CompositionAuthority{Label: "app"}
	mustRegister(t, r, hidden, watch, schema,
		composer("app/hidden", "core/hidden", auth, "core/hidden"),
		composer("app/watch", "metrics/watch", auth, "metrics/watch"),
		composer("app/typed", "typed/op", auth, "typed/op"),
	)
	if out, cerr := invokeRoot(t.Context(), r, "app/hidden", json.RawMessage(`7`), nil); cerr != nil || string(out) != "7" {
		t.Fatalf("internal by composition: %s %v", out, cerr)
	}
	_, cerr := invokeRoot(t.Context(), r, "app/watch", nil, nil)
	wantCode(t, cerr, CodeInvalidOperationType)
	_, cerr = invokeRoot(t.Context(), r, "app/typed", json.RawMessage(`7`), nil)
	wantCode(t, cerr, CodeInvalidInput)
}

// TestDeadlineInherited checks a 3-deep tree: every level sees the root's deadline,
// under both policies.
func TestDeadlineInherited(t *testing.T) {
	for _, pol := range []AbortPolicy{AbortDependents, ContinueRunning} {
		t.Run(pol.String(), func(t *testing.T) {
			r := NewRegistry()
			var deadlines [3]time.Time
			var has [3]bool
			level := func(i int, next string) Handler {
				return func(ctx context.Context, oc *OpContext, in json.RawMessage) (json.RawMessage, error) {
					deadlines[i], has[i] = ctx.Deadline()
					if next == "" {
						return in, nil
					}
					oc.AbortPolicy = pol
					return oc.Call(ctx, next, in)
				}
			}
			auth := &CompositionAuthority{Label: "tree"}
			mustRegister(t, r,
				Registration{Spec: NewSpec("tree/a", Query), Once: level(0, "tree/b"), Authority: auth, Scoped: NewScopedEnv("tree/b")},
				Registration{Spec: NewSpec("tree/b", Query), Once: level(1, "tree/c"), Authority: auth, Scoped: NewScopedEnv("tree/c")},
				Registration{Spec: NewSpec("tree/c", Query), Once: level(2, "")},
			)
			dl := time.Now().Add(time.Hour)
			ctx, cancel := context.WithDeadline(t.Context(), dl)
			defer cancel()
			if _, cerr := invokeRoot(ctx, r, "tree/a", nil, nil); cerr != nil {
				t.Fatal(cerr)
			}
			for i := range deadlines {
				if !has[i] || !deadlines[i].Equal(dl) {
					t.Fatalf("level %d deadline %v (%v), want %v", i, deadlines[i], has[i], dl)
				}
			}
		})
	}
}

// TestAbortCascade cancels the root context of parent → child → grandchild.
func TestAbortCascade(t *testing.T) {
	r := NewRegistry()
	grandStarted := make(chan struct{})
	var errs [3]error
	level := func(i int, next string) Handler {
		return func(ctx context.Context, oc *OpContext, in json.RawMessage) (json.RawMessage, error) {
			var out json.RawMessage
			var cerr *CallError
			if next == "" {
				close(grandStarted)
				<-ctx.Done()
			} else {
				out, cerr = oc.Call(ctx, next, in)
			}
			errs[i] = ctx.Err()
			if cerr != nil {
				return nil, cerr
			}
			return out, ctx.Err()
		}
	}
	auth := &CompositionAuthority{Label: "tree"}
	mustRegister(t, r,
		Registration{Spec: NewSpec("tree/parent", Query), Once: level(0, "tree/child"), Authority: auth, Scoped: NewScopedEnv("tree/child")},
		Registration{Spec: NewSpec("tree/child", Query), Once: level(1, "tree/grand"), Authority: auth, Scoped: NewScopedEnv("tree/grand")},
		Registration{Spec: NewSpec("tree/grand", Query), Once: level(2, "")},
	)
	ctx, cancel := context.WithCancel(t.Context())
	res := make(chan *CallError, 1)
	go func() { _, cerr := invokeRoot(ctx, r, "tree/parent", nil, nil); res <- cerr }()
	<-grandStarted
	cancel()
	cerr := <-res
	if cerr == nil || cerr.Code != CodeInternal || cerr.Message != "request aborted" {
		t.Fatalf("root result %#v", cerr)
	}
	for i, err := range errs {
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("level %d ctx err %v", i, err)
		}
	}
}

func TestContinueRunning(t *testing.T) {
	r := NewRegistry()
	childStarted := make(chan struct{})
	release := make(chan struct{})
	var childCancelled atomic.Bool
	child := onceReg("job/child", func(ctx context.Context, _ *OpContext, _ json.RawMessage) (json.RawMessage, error) {
		close(childStarted)
		<-release
		childCancelled.Store(ctx.Err() != nil)
		return json.RawMessage(`"finished"`), nil
	})
	var lateRan atomic.Int32
	late := onceReg("job/late", func(context.Context, *OpContext, json.RawMessage) (json.RawMessage, error) {
		lateRan.Add(1)
		return nil, nil
	})
	parentSawCancel := make(chan struct{})
	var childOut json.RawMessage
	var childErr, lateErr *CallError
	parent := Registration{
		Spec: NewSpec("job/parent", Query),
		Once: func(ctx context.Context, oc *OpContext, in json.RawMessage) (json.RawMessage, error) {
			oc.AbortPolicy = ContinueRunning
			childOut, childErr = oc.Call(ctx, "job/child", in)
			<-ctx.Done()
			close(parentSawCancel)
			_, lateErr = oc.Env.Invoke(ctx, "job", "late", nil, oc, ContinueRunning)
			return nil, ctx.Err()
		},
		Authority: &CompositionAuthority{Label: "jobs"},
		Scoped:    NewScopedEnv("job/child", "job/late"),
	}
	mustRegister(t, r, child, late, parent)
	ctx, cancel := context.WithCancel(t.Context())
	res := make(chan *CallError, 1)
	go func() { _, cerr := invokeRoot(ctx, r, "job/parent", nil, nil); res <- cerr }()
	<-childStarted
	cancel() // the parent is aborted while the child runs
	close(release)
	<-parentSawCancel
	<-res
	if childErr != nil || string(childOut) != `"finished"` {
		t.Fatalf("started child: %s %v", childOut, childErr)
	}
	if childCancelled.Load() {
		t.Fatal("started child was cancelled with its parent")
	}
	if lateRan.Load() != 0 {
		t.Fatal("a child of an aborted parent started")
	}
	if lateErr == nil || lateErr.Code != CodeInternal || lateErr.Message != "request aborted" {
		t.Fatalf("unstarted child: %#v", lateErr)
	}
	// Past the deadline: TIMEOUT, not started.
	past, pcancel := context.WithDeadline(t.Context(), time.Now().Add(-time.Minute))
	defer pcancel()
	_, cerr := LocalEnv(r).Invoke(past, "job", "late", nil, NewRootContext("", nil, nil, &Registration{Scoped: NewScopedEnv("job/late")}, nil, nil), ContinueRunning)
	if cerr == nil || cerr.Code != CodeTimeout || lateRan.Load() != 0 {
		t.Fatalf("past deadline: %#v", cerr)
	}
}

func TestPolicyContext(t *testing.T) {
	dl := time.Now().Add(time.Hour)
	ctx, cancel := context.WithDeadline(t.Context(), dl)
	c, ccancel, cerr := PolicyContext(ctx, ContinueRunning)
	if cerr != nil {
		t.Fatal(cerr)
	}
	defer ccancel()
	cancel()
	if c.Err() != nil {
		t.Fatal("detached context cancelled with its parent")
	}
	if got, ok := c.Deadline(); !ok || !got.Equal(dl) {
		t.Fatalf("deadline %v %v", got, ok)
	}
	if _, _, cerr := PolicyContext(ctx, AbortDependents); cerr == nil || cerr.Message != "request aborted" {
		t.Fatalf("done ctx: %v", cerr)
	}
}

// constReg returns a registry serving name with a handler returning tag.
func constReg(t *testing.T, tag string, names ...string) *Registry {
	r := NewBareRegistry()
	for _, n := range names {
		mustRegister(t, r, onceReg(n, func(context.Context, *OpContext, json.RawMessage) (json.RawMessage, error) {
			return json.RawMessage(`"` + tag + `"`), nil
		}))
	}
	return r
}

func TestPeerCompositeRouting(t *testing.T) {
	base := LocalEnv(constReg(t, "base", "x/get", "base/only"))
	peerA := LocalEnv(constReg(t, "A", "x/get", "a/only", "shared/op"))
	peerB := LocalEnv(constReg(t, "B", "x/get", "b/only", "shared/op"))
	session := LocalEnv(constReg(t, "session", "x/get"))
	env := NewPeerCompositeEnv(base)
	env.AttachPeer("peer-b", peerB)
	env.AttachPeer("peer-a", peerA)

	parent := func(scope *ScopedEnv) *OpContext {
		return NewRootContext("", nil, nil, &Registration{Authority: &CompositionAuthority{Label: "hub"}, Scoped: scope}, env, nil)
	}
	all := NewScopedEnv("x/get", "base/only", "a/only", "b/only", "shared/op", "none/op", "c/only")
	call := func(e OperationEnv, peer, name string, scope *ScopedEnv) (string, *CallError) {
		ns, op := splitName(name)
		out, cerr := e.InvokePeer(t.Context(), PeerRef{Peer: peer}, ns, op, nil, parent(scope), AbortDependents)
		return string(out), cerr
	}
	expect := func(e OperationEnv, peer, name, want string) {
		t.Helper()
		got, cerr := call(e, peer, name, all)
		if want == "" {
			wantCode(t, cerr, CodeNotFound)
			return
		}
		if cerr != nil || got != `"`+want+`"` {
			t.Fatalf("%s@%q = %s %v, want %s", name, peer, got, cerr, want)
		}
	}
	// Any: peers in insertion order, then base.
	expect(env, "", "x/get", "B")
	expect(env, "", "shared/op", "B")
	expect(env, "", "a/only", "A")
	expect(env, "", "base/only", "base")
	expect(env, "", "none/op", "")
	// Session first.
	withSession := env.WithSession(session)
	expect(withSession, "", "x/get", "session")
	expect(withSession, "", "a/only", "A")
	expect(env, "", "x/get", "B") // WithSession left env alone
	// Specific: no fallthrough.
	expect(env, "peer-a", "x/get", "A")
	expect(env, "peer-a", "shared/op", "A")
	expect(env, "peer-a", "b/only", "")
	expect(env, "peer-a", "base/only", "")
	expect(env, "nobody", "x/get", "")
	// Scope: outside it NOT_FOUND; a pin allows one peer only, and not Any.
	if _, cerr := call(env, "", "x/get", NewScopedEnv("a/only")); cerr == nil || cerr.Code != CodeNotFound {
		t.Fatalf("out of scope: %v", cerr)
	}
	pinned := &ScopedEnv{PeerPinned: map[string]struct{}{"peer-a/shared/op": {}}}
	if got, cerr := call(env, "peer-a", "shared/op", pinned); cerr != nil || got != `"A"` {
		t.Fatalf("pinned: %s %v", got, cerr)
	}
	for _, peer := range []string{"peer-b", ""} {
		if _, cerr := call(env, peer, "shared/op", pinned); cerr == nil || cerr.Code != CodeNotFound {
			t.Fatalf("pin leaked to %q: %v", peer, cerr)
		}
	}
	// Introspection.
	if got := strings.Join(env.PeerIDs(), ","); got != "peer-b,peer-a" {
		t.Fatalf("PeerIDs = %s", got)
	}
	if got := strings.Join(env.PeerOperations("peer-a"), ","); got != "a/only,shared/op,x/get" {
		t.Fatalf("PeerOperations(peer-a) = %s", got)
	}
	if got := strings.Join(withSession.PeerOperations(""), ","); got != "a/only,b/only,base/only,shared/op,x/get" {
		t.Fatalf("PeerOperations(\"\") = %s", got)
	}
	if env.PeerOperations("nobody") != nil || !env.PeerContains("peer-a", "a/only") || env.PeerContains("peer-a", "b/only") || !env.PeerContains("", "base/only") {
		t.Fatal("PeerContains/PeerOperations")
	}
	if !env.Contains("a/only") || env.Contains("none/op") {
		t.Fatal("Contains")
	}
	// Clone, Attach, Detach are independent.
	clone := env.Clone()
	clone.DetachPeer("peer-b")
	clone.AttachPeer("peer-c", LocalEnv(constReg(t, "C", "c/only")))
	expect(clone, "", "x/get", "A")
	expect(env, "", "x/get", "B")
	expect(env, "", "c/only", "")
	expect(clone, "", "c/only", "C")
	if strings.Join(env.PeerIDs(), ",") != "peer-b,peer-a" || strings.Join(clone.PeerIDs(), ",") != "peer-a,peer-c" {
		t.Fatalf("ids %v / %v", env.PeerIDs(), clone.PeerIDs())
	}
	// Re-attaching keeps the position; detaching an unknown peer does nothing.
	env.AttachPeer("peer-b", LocalEnv(constReg(t, "B2", "x/get")))
	expect(env, "", "x/get", "B2")
	env.DetachPeer("ghost")
	env.DetachPeer("peer-b")
	expect(env, "", "x/get", "A")
	if strings.Join(env.PeerIDs(), ",") != "peer-a" {
		t.Fatalf("after detach %v", env.PeerIDs())
	}
	// An empty base.
	empty := NewPeerCompositeEnv(nil)
	expect(empty, "", "x/get", "")
	if empty.PeerOperations("") != nil && len(empty.PeerOperations("")) != 0 {
		t.Fatal("empty env lists ops")
	}
}

func TestLocalEnvPeers(t *testing.T) {
	r := constReg(t, "L", "x/get")
	env := LocalEnv(r)
	if env.PeerIDs() != nil || env.PeerOperations("p") != nil || env.PeerContains("p", "x/get") || !env.PeerContains("", "x/get") {
		t.Fatal("local env peers")
	}
	if got := env.PeerOperations(""); len(got) != 1 || got[0] != "x/get" {
		t.Fatalf("ops %v", got)
	}
	oc := NewRootContext("", nil, nil, &Registration{Scoped: NewScopedEnv("x/get")}, env, nil)
	if _, cerr := env.InvokePeer(t.Context(), PeerRef{Peer: "p"}, "x", "get", nil, oc, AbortDependents); cerr == nil || cerr.Code != CodeNotFound {
		t.Fatalf("specific peer on local env: %v", cerr)
	}
	if out, cerr := oc.CallPeer(t.Context(), "", "/x/get", nil); cerr != nil || string(out) != `"L"` {
		t.Fatalf("CallPeer any: %s %v", out, cerr)
	}
}
