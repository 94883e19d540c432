package http_test

import (
	"context"
	"encoding/json"
	"errors"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/alknet/alknet/call"
	"github.com/alknet/alknet/core"
	alkhttp "github.com/alknet/alknet/http"
)

// htGuard bounds every wait on a channel a handler closes. It is a failure guard
// only, never a synchronisation: the tests proceed as soon as the channel closes.
const htGuard = 10 * time.Second

// Tokens the fake identity provider resolves.
const (
	htTokAdmin = "tok-admin" // identity "alice", scopes admin and demo
	htTokUser  = "tok-user"  // identity "bob", scope user
)

// htIdentities is a map-based core.IdentityProvider: token -> identity.
type htIdentities map[string]*core.Identity

func (htIdentities) ResolveFromFingerprint(string) (*core.Identity, bool) { return nil, false }

func (m htIdentities) ResolveFromToken(tok core.AuthToken) (*core.Identity, bool) {
	id, ok := m[string(tok.Raw)]
	if !ok {
		return nil, false
	}
	c := id.Clone()
	return &c, true
}

// htIDs returns the fake provider with the two test tokens.
func htIDs() htIdentities {
	return htIdentities{
		htTokAdmin: {ID: "alice", Scopes: []string{"admin", "demo"}},
		htTokUser:  {ID: "bob", Scopes: []string{"user"}},
	}
}

// htUUIDv4 is the form of call.NewID.
var htUUIDv4 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// htEcho answers its input unchanged.
func htEcho(_ context.Context, _ *call.OpContext, in json.RawMessage) (json.RawMessage, error) {
	return in, nil
}

// htMustRegister registers reg or fails the test.
func htMustRegister(t *testing.T, r *call.Registry, reg call.Registration) {
	t.Helper()
	if err := r.Register(reg); err != nil {
		t.Fatalf("Register(%s): %v", reg.Spec.Name, err)
	}
}

// htInputSchema is the input schema of demo/validated.
const htInputSchema = `{"type":"object","required":["msg"],"properties":{"msg":{"type":"string"}}}`

// htRegistry returns a registry with the operations most tests share:
//
//	demo/echo       External Query, answers its input
//	demo/null       External Query, answers a nil output
//	admin/op        External Query, requires scope admin, answers {"ok":true}
//	demo/secret     Internal Query, requires scope admin (never reachable from outside)
//	demo/validated  External Query with htInputSchema
//	demo/ticks      External Subscription emitting indented {"n":1}, {"n":2}
//	demo/hidden     Internal Subscription
//	admin/ticks     External Subscription, requires scope admin
func htRegistry(t *testing.T) *call.Registry {
	t.Helper()
	r := call.NewRegistry()
	htMustRegister(t, r, call.Registration{Spec: call.NewSpec("demo/echo", call.Query), Once: htEcho})
	htMustRegister(t, r, call.Registration{
		Spec: call.NewSpec("demo/null", call.Query),
		Once: func(context.Context, *call.OpContext, json.RawMessage) (json.RawMessage, error) { return nil, nil },
	})
	admin := call.NewSpec("admin/op", call.Query)
	admin.Access = call.AccessControl{RequiredScopes: []string{"admin"}}
	htMustRegister(t, r, call.Registration{
		Spec: admin,
		Once: func(context.Context, *call.OpContext, json.RawMessage) (json.RawMessage, error) {
			return json.RawMessage(`{"ok":true}`), nil
		},
	})
	secret := call.NewSpec("demo/secret", call.Query)
	secret.Visibility = call.Internal
	secret.Access = call.AccessControl{RequiredScopes: []string{"admin"}}
	htMustRegister(t, r, call.Registration{Spec: secret, Once: func(context.Context, *call.OpContext, json.RawMessage) (json.RawMessage, error) {
		t.Errorf("the Internal operation demo/secret ran")
		return nil, nil
	}})
	validated := call.NewSpec("demo/validated", call.Query)
	validated.InputSchema = json.RawMessage(htInputSchema)
	htMustRegister(t, r, call.Registration{Spec: validated, Once: htEcho})
	htMustRegister(t, r, call.Registration{
		Spec: call.NewSpec("demo/ticks", call.Subscription),
		Stream: func(_ context.Context, _ *call.OpContext, _ json.RawMessage, emit func(json.RawMessage) error) error {
			for _, out := range []string{"{\n  \"n\": 1\n}", "{ \"n\" : 2 }"} {
				if err := emit(json.RawMessage(out)); err != nil {
					return err
				}
			}
			return nil
		},
	})
	hidden := call.NewSpec("demo/hidden", call.Subscription)
	hidden.Visibility = call.Internal
	htMustRegister(t, r, call.Registration{Spec: hidden, Stream: func(context.Context, *call.OpContext, json.RawMessage, func(json.RawMessage) error) error {
		t.Errorf("the Internal subscription demo/hidden ran")
		return nil
	}})
	adminTicks := call.NewSpec("admin/ticks", call.Subscription)
	adminTicks.Access = call.AccessControl{RequiredScopes: []string{"admin"}}
	htMustRegister(t, r, call.Registration{Spec: adminTicks, Stream: func(_ context.Context, _ *call.OpContext, _ json.RawMessage, emit func(json.RawMessage) error) error {
		return emit(json.RawMessage(`"admin"`))
	}})
	return r
}

// htGateway returns a gateway over htRegistry with the fake identities.
func htGateway(t *testing.T) *alkhttp.Gateway {
	t.Helper()
	return &alkhttp.Gateway{Registry: htRegistry(t), Identities: htIDs()}
}

// htIdentity resolves one of the test tokens ("" is anonymous).
func htIdentity(t *testing.T, tok string) *core.Identity {
	t.Helper()
	if tok == "" {
		return nil
	}
	id, ok := htIDs().ResolveFromToken(core.AuthToken{Raw: []byte(tok)})
	if !ok {
		t.Fatalf("token %q does not resolve", tok)
	}
	return id
}

// htListedNames decodes a services/list output into its operation names.
func htListedNames(t *testing.T, out json.RawMessage) []string {
	t.Helper()
	var list struct {
		Operations []struct {
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
			OpType    string `json:"op_type"`
		} `json:"operations"`
	}
	if err := json.Unmarshal(out, &list); err != nil {
		t.Fatalf("services/list output %s: %v", out, err)
	}
	names := make([]string, 0, len(list.Operations))
	for _, op := range list.Operations {
		if op.Namespace == "" || op.OpType == "" || !strings.HasPrefix(op.Name, op.Namespace+"/") {
			t.Fatalf("services/list entry %+v is incomplete", op)
		}
		names = append(names, op.Name)
	}
	return names
}

// The names every caller sees, and those only the admin token adds.
var (
	htPublicOps = []string{"demo/echo", "demo/null", "demo/ticks", "demo/validated", "services/list", "services/schema"}
	htAdminOps  = []string{"admin/op", "admin/ticks", "demo/echo", "demo/null", "demo/ticks", "demo/validated", "services/list", "services/schema"}
)

func TestGatewayResolveBearer(t *testing.T) {
	gw := htGateway(t)
	tests := []struct {
		name  string
		gw    *alkhttp.Gateway
		token string
		want  string // identity id, "" for nil
	}{
		{"admin token", gw, htTokAdmin, "alice"},
		{"user token", gw, htTokUser, "bob"},
		{"unknown token", gw, "nope", ""},
		{"empty token", gw, "", ""},
		{"no identity provider", &alkhttp.Gateway{Registry: gw.Registry}, htTokAdmin, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := tt.gw.ResolveBearer([]byte(tt.token))
			got := ""
			if id != nil {
				got = id.ID
			}
			if got != tt.want {
				t.Fatalf("ResolveBearer(%q) = %q, want %q", tt.token, got, tt.want)
			}
		})
	}
}

func TestGatewayInvoke(t *testing.T) {
	gw := htGateway(t)
	tests := []struct {
		name     string
		token    string
		op       string
		input    json.RawMessage
		wantOut  string
		wantCode string
	}{
		{"ok with output", "", "demo/echo", json.RawMessage(`{"a":[1,2]}`), `{"a":[1,2]}`, ""},
		{"leading slash stripped", "", "/demo/echo", json.RawMessage(`"x"`), `"x"`, ""},
		{"nil input is null", "", "demo/echo", nil, `null`, ""},
		{"nil output is null", "", "demo/null", json.RawMessage(`{}`), `null`, ""},
		{"unknown", "", "demo/nosuch", nil, "", call.CodeNotFound},
		{"unknown with token", htTokAdmin, "demo/nosuch", nil, "", call.CodeNotFound},
		{"internal anonymous", "", "demo/secret", nil, "", call.CodeNotFound},
		{"internal with scopes", htTokAdmin, "demo/secret", nil, "", call.CodeNotFound},
		{"internal leading slash", htTokAdmin, "/demo/secret", nil, "", call.CodeNotFound},
		{"restricted anonymous", "", "admin/op", nil, "", call.CodeForbidden},
		{"restricted wrong scope", htTokUser, "admin/op", nil, "", call.CodeForbidden},
		{"restricted ok", htTokAdmin, "admin/op", nil, `{"ok":true}`, ""},
		{"schema violation", "", "demo/validated", json.RawMessage(`{}`), "", call.CodeInvalidInput},
		{"schema ok", "", "demo/validated", json.RawMessage(`{"msg":"hi"}`), `{"msg":"hi"}`, ""},
		{"subscription", "", "demo/ticks", nil, "", call.CodeInvalidOperationType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := gw.Invoke(context.Background(), htIdentity(t, tt.token), tt.op, tt.input)
			if !htUUIDv4.MatchString(res.RequestID) {
				t.Fatalf("RequestID %q is not a UUIDv4", res.RequestID)
			}
			if tt.wantCode != "" {
				if res.Err == nil || res.Err.Code != tt.wantCode {
					t.Fatalf("Invoke(%s) = %s, %v; want %s", tt.op, res.Output, res.Err, tt.wantCode)
				}
				if res.Output != nil {
					t.Fatalf("Invoke(%s) failed with output %s", tt.op, res.Output)
				}
				return
			}
			if res.Err != nil {
				t.Fatalf("Invoke(%s): %v", tt.op, res.Err)
			}
			if string(res.Output) != tt.wantOut {
				t.Fatalf("Invoke(%s) output = %s, want %s", tt.op, res.Output, tt.wantOut)
			}
		})
	}
}

// Internal operations answer exactly what unknown ones answer, whatever the caller
// holds: the same code, retryability, details and message apart from the name.
func TestGatewayInternalIndistinguishableFromUnknown(t *testing.T) {
	gw := htGateway(t)
	for _, tok := range []string{"", htTokUser, htTokAdmin} {
		internal := gw.Invoke(context.Background(), htIdentity(t, tok), "demo/secret", nil).Err
		unknown := gw.Invoke(context.Background(), htIdentity(t, tok), "demo/nosuch", nil).Err
		if internal == nil || unknown == nil {
			t.Fatalf("token %q: internal %v, unknown %v; want two errors", tok, internal, unknown)
		}
		gotMsg := strings.Replace(internal.Message, "demo/secret", "NAME", 1)
		wantMsg := strings.Replace(unknown.Message, "demo/nosuch", "NAME", 1)
		if internal.Code != unknown.Code || gotMsg != wantMsg || internal.Retryable != unknown.Retryable || string(internal.Details) != string(unknown.Details) {
			t.Fatalf("token %q: internal %+v differs from unknown %+v", tok, internal, unknown)
		}
		if internal.Code != call.CodeNotFound || gotMsg != "operation not found: NAME" {
			t.Fatalf("token %q: internal error %+v, want NOT_FOUND \"operation not found: demo/secret\"", tok, internal)
		}
	}
}

func TestGatewayServicesListFilteredByScopes(t *testing.T) {
	gw := htGateway(t)
	tests := []struct {
		token string
		want  []string
	}{
		{"", htPublicOps},
		{htTokUser, htPublicOps},
		{htTokAdmin, htAdminOps},
	}
	for _, tt := range tests {
		res := gw.Invoke(context.Background(), htIdentity(t, tt.token), call.OpServicesList, json.RawMessage(`{}`))
		if res.Err != nil {
			t.Fatalf("token %q: services/list: %v", tt.token, res.Err)
		}
		if got := htListedNames(t, res.Output); !slices.Equal(got, tt.want) {
			t.Fatalf("token %q: services/list = %v, want %v", tt.token, got, tt.want)
		}
	}
}

// htSeen is what a handler observed of its call.
type htSeen struct {
	oc          *call.OpContext
	internal    bool
	hasDeadline bool
	remaining   time.Duration
	capKey      []byte
	capOK       bool
}

// htObserver registers ns/observe (a Query) and ns/observe-stream (a Subscription)
// with capabilities; each sends what its handler saw on the returned channel.
func htObserver(t *testing.T, r *call.Registry) <-chan htSeen {
	t.Helper()
	seen := make(chan htSeen, 2)
	caps := core.NewCapabilities(map[string][]byte{"api_key:svc": []byte("s3cret")})
	authority := &call.CompositionAuthority{Label: "observer", Scopes: []string{"compose"}}
	scoped := call.NewScopedEnv("demo/echo")
	observe := func(ctx context.Context, oc *call.OpContext) {
		s := htSeen{oc: oc, internal: oc.IsInternal()}
		if dl, ok := ctx.Deadline(); ok {
			s.hasDeadline, s.remaining = true, time.Until(dl)
		}
		s.capKey, s.capOK = oc.Caps.Lookup("api_key:svc")
		seen <- s
	}
	htMustRegister(t, r, call.Registration{
		Spec:      call.NewSpec("ns/observe", call.Query),
		Caps:      caps,
		Authority: authority,
		Scoped:    scoped,
		Once: func(ctx context.Context, oc *call.OpContext, _ json.RawMessage) (json.RawMessage, error) {
			observe(ctx, oc)
			return json.RawMessage(`"seen"`), nil
		},
	})
	htMustRegister(t, r, call.Registration{
		Spec:      call.NewSpec("ns/observe-stream", call.Subscription),
		Caps:      caps,
		Authority: authority,
		Scoped:    scoped,
		Stream: func(ctx context.Context, oc *call.OpContext, _ json.RawMessage, _ func(json.RawMessage) error) error {
			observe(ctx, oc)
			return nil
		},
	})
	return seen
}

// htOwnership is a core.OwnershipProvider that owns nothing; tests compare it by
// identity.
type htOwnership struct{ name string }

func (*htOwnership) Owns(*core.Identity, string, string, string) bool { return false }
func (*htOwnership) OwnedResources(*core.Identity, string) []string   { return nil }
func (*htOwnership) OwnsAny(*core.Identity, string) bool              { return false }

// htCheckRoot checks the security fields of a wire-ingress root context: built for
// the ns/observe registrations of htObserver by gw.
func htCheckRoot(t *testing.T, gw *alkhttp.Gateway, s htSeen, caller *core.Identity, requestID string) {
	t.Helper()
	if s.oc.HandlerIdentity == nil || s.oc.HandlerIdentity.Label != "observer" {
		t.Fatalf("root context HandlerIdentity = %+v, want the registration's authority", s.oc.HandlerIdentity)
	}
	if !s.oc.Scoped.Allows("demo/echo") || s.oc.Scoped.Allows("demo/null") {
		t.Fatalf("root context Scoped = %+v, want the registration's scoped env", s.oc.Scoped)
	}
	if s.oc.Env == nil || !s.oc.Env.Contains("demo/echo") || len(s.oc.Env.PeerIDs()) != 0 {
		t.Fatalf("root context Env does not route to the registry (or has peers)")
	}
	if len(s.oc.Metadata) != 0 {
		t.Fatalf("root context Metadata = %v, want empty", s.oc.Metadata)
	}
	if s.oc.AbortPolicy != call.AbortDependents {
		t.Fatalf("root context AbortPolicy = %v, want abort-dependents", s.oc.AbortPolicy)
	}
	if s.oc.Ownership != gw.Ownership {
		t.Fatalf("root context Ownership = %v, want the gateway's %v", s.oc.Ownership, gw.Ownership)
	}
	if s.internal {
		t.Fatalf("root context is internal")
	}
	if s.oc.ForwardedFor != nil {
		t.Fatalf("root context ForwardedFor = %+v, want nil", s.oc.ForwardedFor)
	}
	if s.oc.ParentRequestID != "" {
		t.Fatalf("root context ParentRequestID = %q, want empty", s.oc.ParentRequestID)
	}
	if s.oc.Identity != caller {
		t.Fatalf("root context Identity = %+v, want the caller %+v", s.oc.Identity, caller)
	}
	if !s.capOK || string(s.capKey) != "s3cret" {
		t.Fatalf("root context Caps lack the registration's capability (ok=%v)", s.capOK)
	}
	if !htUUIDv4.MatchString(s.oc.RequestID) {
		t.Fatalf("root context RequestID %q is not a UUIDv4", s.oc.RequestID)
	}
	if s.oc.RequestID != requestID {
		t.Fatalf("root context RequestID %q differs from the result's %q", s.oc.RequestID, requestID)
	}
}

func TestGatewayRootContext(t *testing.T) {
	tests := []struct {
		name    string
		timeout time.Duration
		bound   time.Duration
		token   string
	}{
		{"default timeout anonymous", 0, alkhttp.DefaultCallTimeout, ""},
		{"custom timeout with identity", time.Hour, time.Hour, htTokAdmin},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gw := htGateway(t)
			gw.Timeout = tt.timeout
			gw.Ownership = &htOwnership{"gateway"}
			seen := htObserver(t, gw.Registry)
			caller := htIdentity(t, tt.token)
			res := gw.Invoke(context.Background(), caller, "ns/observe", nil)
			if res.Err != nil || string(res.Output) != `"seen"` {
				t.Fatalf("Invoke = %s, %v", res.Output, res.Err)
			}
			s := <-seen
			htCheckRoot(t, gw, s, caller, res.RequestID)
			if !s.hasDeadline {
				t.Fatalf("the handler's context has no deadline")
			}
			if s.remaining <= 0 || s.remaining > tt.bound {
				t.Fatalf("the handler's deadline is %v away, want within (0, %v]", s.remaining, tt.bound)
			}
		})
	}
}

// Two calls get two different request ids.
func TestGatewayFreshRequestIDs(t *testing.T) {
	gw := htGateway(t)
	a := gw.Invoke(context.Background(), nil, "demo/echo", nil)
	b := gw.Invoke(context.Background(), nil, "demo/echo", nil)
	if a.RequestID == b.RequestID {
		t.Fatalf("two calls share the request id %q", a.RequestID)
	}
}

func TestGatewayStreamRootContext(t *testing.T) {
	gw := htGateway(t)
	gw.Ownership = &htOwnership{"gateway"}
	seen := htObserver(t, gw.Registry)
	caller := htIdentity(t, htTokUser)
	rid, err := gw.InvokeStream(context.Background(), caller, "ns/observe-stream", nil, func(json.RawMessage) error { return nil })
	if err != nil {
		t.Fatalf("InvokeStream: %v", err)
	}
	s := <-seen
	htCheckRoot(t, gw, s, caller, rid)
	if s.hasDeadline {
		t.Fatalf("a subscription's context has a deadline (%v away); want none", s.remaining)
	}
}

func TestGatewayTimeout(t *testing.T) {
	gw := htGateway(t)
	// Long enough that the call is admitted before the deadline on a busy machine (with
	// a millisecond the deadline could pass before the handler ran, and nothing would
	// observe it); the handler then blocks until its context ends.
	gw.Timeout = 200 * time.Millisecond
	observed := make(chan struct{})
	htMustRegister(t, gw.Registry, call.Registration{
		Spec: call.NewSpec("demo/slow", call.Query),
		Once: func(ctx context.Context, _ *call.OpContext, _ json.RawMessage) (json.RawMessage, error) {
			select {
			case <-ctx.Done():
				close(observed)
				return nil, ctx.Err()
			case <-time.After(htGuard):
				return nil, errors.New("the gateway timeout never fired")
			}
		},
	})
	res := gw.Invoke(context.Background(), nil, "demo/slow", nil)
	if res.Err == nil || res.Err.Code != call.CodeTimeout || !res.Err.Retryable {
		t.Fatalf("Invoke = %s, %+v; want a retryable TIMEOUT", res.Output, res.Err)
	}
	select {
	case <-observed:
	case <-time.After(htGuard):
		t.Fatalf("the handler did not observe its context ending")
	}
}

func TestGatewayInvokeStream(t *testing.T) {
	gw := htGateway(t)
	tests := []struct {
		name     string
		token    string
		op       string
		wantOuts []string
		wantCode string
	}{
		{"ok in order", "", "demo/ticks", []string{"{\n  \"n\": 1\n}", "{ \"n\" : 2 }"}, ""},
		{"leading slash", "", "/demo/ticks", []string{"{\n  \"n\": 1\n}", "{ \"n\" : 2 }"}, ""},
		{"query", "", "demo/echo", nil, call.CodeInvalidOperationType},
		{"unknown", "", "demo/nosuch", nil, call.CodeNotFound},
		{"internal", htTokAdmin, "demo/hidden", nil, call.CodeNotFound},
		{"restricted anonymous", "", "admin/ticks", nil, call.CodeForbidden},
		{"restricted wrong scope", htTokUser, "admin/ticks", nil, call.CodeForbidden},
		{"restricted ok", htTokAdmin, "admin/ticks", []string{`"admin"`}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var outs []string
			rid, err := gw.InvokeStream(context.Background(), htIdentity(t, tt.token), tt.op, nil, func(out json.RawMessage) error {
				outs = append(outs, string(out))
				return nil
			})
			if !htUUIDv4.MatchString(rid) {
				t.Fatalf("request id %q is not a UUIDv4", rid)
			}
			if tt.wantCode != "" {
				if err == nil || err.Code != tt.wantCode {
					t.Fatalf("InvokeStream(%s) = %v, want %s", tt.op, err, tt.wantCode)
				}
			} else if err != nil {
				t.Fatalf("InvokeStream(%s) = %v, want nil", tt.op, err)
			}
			if !slices.Equal(outs, tt.wantOuts) {
				t.Fatalf("InvokeStream(%s) emitted %q, want %q", tt.op, outs, tt.wantOuts)
			}
		})
	}
}

// An emit error ends the subscription: the handler's context is cancelled (it is not
// told through emit alone) and the emit error is what InvokeStream returns.
func TestGatewayInvokeStreamEmitError(t *testing.T) {
	tests := []struct {
		name     string
		emitErr  error
		wantCode string
		wantMsg  string
	}{
		{"plain error", errors.New("client gone"), call.CodeInternal, "client gone"},
		{"call error", call.NewCallError("HTTP_413", "too big"), "HTTP_413", "too big"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gw := htGateway(t)
			cancelled := make(chan struct{})
			htMustRegister(t, gw.Registry, call.Registration{
				Spec: call.NewSpec("demo/stubborn", call.Subscription),
				Stream: func(ctx context.Context, _ *call.OpContext, _ json.RawMessage, emit func(json.RawMessage) error) error {
					_ = emit(json.RawMessage(`1`)) // the error is ignored on purpose
					select {
					case <-ctx.Done():
						close(cancelled)
						return errors.New("handler reacted to cancellation")
					case <-time.After(htGuard):
						return errors.New("context never cancelled")
					}
				},
			})
			calls := 0
			_, err := gw.InvokeStream(context.Background(), nil, "demo/stubborn", nil, func(json.RawMessage) error {
				calls++
				return tt.emitErr
			})
			select {
			case <-cancelled:
			default:
				t.Fatalf("the handler's context was not cancelled after the emit error")
			}
			if calls != 1 {
				t.Fatalf("emit called %d times, want 1", calls)
			}
			if err == nil || err.Code != tt.wantCode || err.Message != tt.wantMsg {
				t.Fatalf("InvokeStream = %+v, want %s %q", err, tt.wantCode, tt.wantMsg)
			}
		})
	}
}

// Cancelling the caller's context cancels the subscription's handler.
func TestGatewayInvokeStreamCallerCancel(t *testing.T) {
	gw := htGateway(t)
	started := make(chan struct{})
	cancelled := make(chan struct{})
	htMustRegister(t, gw.Registry, call.Registration{
		Spec: call.NewSpec("demo/forever", call.Subscription),
		Stream: func(ctx context.Context, _ *call.OpContext, _ json.RawMessage, _ func(json.RawMessage) error) error {
			close(started)
			select {
			case <-ctx.Done():
				close(cancelled)
				return ctx.Err()
			case <-time.After(htGuard):
				return errors.New("never cancelled")
			}
		},
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan *call.CallError, 1)
	go func() {
		_, err := gw.InvokeStream(ctx, nil, "demo/forever", nil, func(json.RawMessage) error { return nil })
		done <- err
	}()
	<-started
	cancel()
	select {
	case <-cancelled:
	case <-time.After(htGuard):
		t.Fatalf("the handler did not see the cancellation")
	}
	if err := <-done; err == nil {
		t.Fatalf("InvokeStream ended normally after cancellation; want an error")
	}
}

func TestGatewaySchema(t *testing.T) {
	gw := htGateway(t)
	tests := []struct {
		name     string
		token    string
		op       string
		wantCode string
	}{
		{"ok", "", "demo/validated", ""},
		{"ok leading slash", "", "/demo/validated", ""},
		{"restricted ok", htTokAdmin, "admin/op", ""},
		{"restricted anonymous", "", "admin/op", call.CodeForbidden},
		{"restricted wrong scope", htTokUser, "admin/op", call.CodeForbidden},
		{"internal anonymous", "", "demo/secret", call.CodeNotFound},
		{"internal with scopes", htTokAdmin, "demo/secret", call.CodeNotFound},
		{"unknown", htTokAdmin, "demo/nosuch", call.CodeNotFound},
		{"empty name", "", "", call.CodeNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := gw.Schema(context.Background(), htIdentity(t, tt.token), tt.op)
			if !htUUIDv4.MatchString(res.RequestID) {
				t.Fatalf("request id %q is not a UUIDv4", res.RequestID)
			}
			if tt.wantCode != "" {
				if res.Err == nil || res.Err.Code != tt.wantCode {
					t.Fatalf("Schema(%s) = %s, %v; want %s", tt.op, res.Output, res.Err, tt.wantCode)
				}
				return
			}
			if res.Err != nil {
				t.Fatalf("Schema(%s): %v", tt.op, res.Err)
			}
			reg, _ := gw.Registry.Lookup(tt.op)
			want, err := json.Marshal(reg.Spec)
			if err != nil {
				t.Fatal(err)
			}
			if string(res.Output) != string(want) {
				t.Fatalf("Schema(%s) = %s, want %s", tt.op, res.Output, want)
			}
			var spec map[string]json.RawMessage
			if err := json.Unmarshal(res.Output, &spec); err != nil {
				t.Fatal(err)
			}
			for _, k := range []string{"name", "namespace", "op_type", "visibility", "input_schema", "output_schema", "error_schemas", "access_control"} {
				if _, ok := spec[k]; !ok {
					t.Fatalf("Schema(%s) output lacks %q: %s", tt.op, k, res.Output)
				}
			}
		})
	}
	// The input schema comes back as registered.
	res := gw.Schema(context.Background(), nil, "demo/validated")
	var spec struct {
		InputSchema json.RawMessage `json:"input_schema"`
	}
	if err := json.Unmarshal(res.Output, &spec); err != nil || string(spec.InputSchema) != htInputSchema {
		t.Fatalf("input_schema = %s (%v), want %s", spec.InputSchema, err, htInputSchema)
	}
}

// A handler reached through the gateway composes with its own authority and scoped
// environment, Internal operations included; the caller's identity does not leak in.
func TestGatewayComposition(t *testing.T) {
	gw := htGateway(t)
	inner := call.NewSpec("ns/inner", call.Query)
	inner.Visibility = call.Internal
	inner.Access = call.AccessControl{RequiredScopes: []string{"compose"}}
	htMustRegister(t, gw.Registry, call.Registration{Spec: inner, Once: func(_ context.Context, oc *call.OpContext, in json.RawMessage) (json.RawMessage, error) {
		if !oc.IsInternal() || oc.Identity == nil || oc.Identity.ID != "composer" {
			return nil, call.NewCallError(call.CodeInternal, "inner call has the wrong context")
		}
		return in, nil
	}})
	htMustRegister(t, gw.Registry, call.Registration{
		Spec:      call.NewSpec("ns/outer", call.Query),
		Authority: &call.CompositionAuthority{Label: "composer", Scopes: []string{"compose"}},
		Scoped:    call.NewScopedEnv("ns/inner"),
		Once: func(ctx context.Context, oc *call.OpContext, in json.RawMessage) (json.RawMessage, error) {
			out, err := oc.Call(ctx, "ns/inner", in)
			if err != nil {
				return nil, err
			}
			return out, nil
		},
	})
	for _, tok := range []string{"", htTokUser} {
		res := gw.Invoke(context.Background(), htIdentity(t, tok), "ns/outer", json.RawMessage(`"x"`))
		if res.Err != nil || string(res.Output) != `"x"` {
			t.Fatalf("token %q: ns/outer = %s, %v; want \"x\"", tok, res.Output, res.Err)
		}
	}
	// From outside, ns/inner does not exist.
	if res := gw.Invoke(context.Background(), htIdentity(t, htTokAdmin), "ns/inner", nil); res.Err == nil || res.Err.Code != call.CodeNotFound {
		t.Fatalf("ns/inner from outside = %v, want NOT_FOUND", res.Err)
	}
}

// Exactly one leading "/" is accepted (as the Gateway's documentation says and
// Registry.Invoke does): "//demo/echo" names no operation, on every gateway method.
func TestGatewayOneLeadingSlashOnly(t *testing.T) {
	gw := htGateway(t)
	if res := gw.Invoke(context.Background(), nil, "//demo/echo", nil); res.Err == nil || res.Err.Code != call.CodeNotFound {
		t.Fatalf("Invoke(//demo/echo) = %s, %v; want NOT_FOUND", res.Output, res.Err)
	}
	if _, err := gw.InvokeStream(context.Background(), nil, "//demo/ticks", nil, func(json.RawMessage) error { return nil }); err == nil || err.Code != call.CodeNotFound {
		t.Fatalf("InvokeStream(//demo/ticks) = %v; want NOT_FOUND", err)
	}
	if res := gw.Schema(context.Background(), nil, "//demo/echo"); res.Err == nil || res.Err.Code != call.CodeNotFound {
		t.Fatalf("Schema(//demo/echo) = %s, %v; want NOT_FOUND", res.Output, res.Err)
	}
}
