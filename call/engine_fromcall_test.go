package call

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/core/coretest"
	"github.com/alknet/alknet/core/endpoint"
	"github.com/alknet/alknet/core/tlsconf"
)

// engImportServer is a server registry for FromCall: pub/echo, pub/who (answers its
// identity and forwarded_for), pub/watch (a subscription emitting in lock-step with
// the test), pub/admin (needs scope admin) and pub/hidden (Internal).
type engImportServer struct {
	reg   *Registry
	steps chan chan struct{} // pub/watch: one gate per event after the first
}

func newEngImportServer(t testing.TB) *engImportServer {
	s := &engImportServer{steps: make(chan chan struct{}, 4)}
	admin := engEcho("pub/admin")
	admin.Spec.Access.RequiredScopes = []string{"admin"}
	hidden := engEcho("pub/hidden")
	hidden.Spec.Visibility = Internal
	s.reg = engRegistry(t, engEcho("pub/echo"), engQuery("pub/who", engWhoAmI()), admin, hidden,
		engSub("pub/watch", func(ctx context.Context, _ *OpContext, in json.RawMessage, emit func(json.RawMessage) error) error {
			var n int
			if err := json.Unmarshal(in, &n); err != nil {
				return err
			}
			for i := 1; i <= n; i++ {
				if i > 1 {
					// The next event goes out only once the test saw this one.
					gate := make(chan struct{})
					s.steps <- gate
					select {
					case <-gate:
					case <-ctx.Done():
						return ctx.Err()
					}
				}
				b, _ := json.Marshal(i)
				if err := emit(b); err != nil {
					return err
				}
			}
			return nil
		}))
	return s
}

func engRegNames(regs []Registration) []string {
	var names []string
	for _, r := range regs {
		names = append(names, r.Spec.Name)
	}
	slices.Sort(names)
	return names
}

// §4, §5.4: FromCall imports exactly the External operations the caller may see, as
// Internal forwarding leaves unless Expose; NamespacePrefix and Filter apply.
func TestEngineFromCallImport(t *testing.T) {
	engModes(t, func(t *testing.T, mode string) {
		s := newEngImportServer(t)
		p := engNewPair(t, mode, &Dispatcher{Registry: s.reg}, &Dispatcher{}, &core.Identity{ID: "cli", Scopes: []string{"basic"}}, nil)
		ctx := engCtx(t)

		regs, err := FromCall(ctx, p.client, FromCallConfig{})
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"pub/echo", "pub/who", "pub/watch", OpServicesList, OpServicesSchema}
		slices.Sort(want)
		if got := engRegNames(regs); !slices.Equal(got, want) {
			t.Fatalf("imported %v, want %v (no pub/admin, no pub/hidden)", got, want)
		}
		for _, r := range regs {
			switch {
			case r.Spec.Visibility != Internal:
				t.Fatalf("%s imported as %s, want internal", r.Spec.Name, r.Spec.Visibility)
			case r.Provenance != ProvenanceFromCall:
				t.Fatalf("%s provenance %s", r.Spec.Name, r.Provenance)
			case r.Authority != nil || r.Scoped != nil || r.Caps.Len() != 0:
				t.Fatalf("%s is not a bare leaf: %+v", r.Spec.Name, r)
			case r.Spec.Name == "pub/watch" && (r.Spec.Type != Subscription || r.Stream == nil || r.Once != nil):
				t.Fatalf("pub/watch imported as %s", r.Spec.Type)
			case r.Spec.Name == "pub/echo" && (r.Spec.Type != Query || r.Once == nil):
				t.Fatalf("pub/echo imported as %s", r.Spec.Type)
			}
		}

		regs, err = FromCall(ctx, p.client, FromCallConfig{Expose: true, NamespacePrefix: "peer", Filter: map[string]bool{"pub/echo": true, "pub/admin": true, "pub/hidden": true, "pub/none": true}})
		if err != nil {
			t.Fatal(err)
		}
		if len(regs) != 1 {
			t.Fatalf("filtered import = %v, want [peer/pub/echo]", engRegNames(regs))
		}
		if r := regs[0]; r.Spec.Name != "peer/pub/echo" || r.Spec.Namespace != "peer" || r.Spec.Visibility != External {
			t.Fatalf("prefixed, exposed import = %s (namespace %s, %s)", r.Spec.Name, r.Spec.Namespace, r.Spec.Visibility)
		}
		// An exposed import is callable from outside: a root call on a local
		// registry forwards to the peer under the remote name.
		local := engRegistry(t, regs...)
		out, cerr := local.Invoke(ctx, "peer/pub/echo", json.RawMessage(`"via prefix"`), nil)
		if cerr != nil || string(out) != `"via prefix"` {
			t.Fatalf("exposed import = %s, %v", out, cerr)
		}
		// A caller with scope admin sees (and imports) pub/admin.
		admin := engNewPair(t, mode, &Dispatcher{Registry: s.reg}, &Dispatcher{}, &core.Identity{ID: "root", Scopes: []string{"admin"}}, nil)
		regs, err = FromCall(ctx, admin.client, FromCallConfig{Filter: map[string]bool{"pub/admin": true}})
		if err != nil || len(regs) != 1 || regs[0].Spec.Name != "pub/admin" {
			t.Fatalf("admin import = %v, %v", engRegNames(regs), err)
		}
		if regs[0].Spec.Access.RequiredScopes[0] != "admin" {
			t.Fatalf("imported access control lost: %+v", regs[0].Spec.Access)
		}
	})
}

// §4: a remote listing the same name twice is an AdapterSamePeerCollision.
func TestEngineFromCallCollision(t *testing.T) {
	engModes(t, func(t *testing.T, mode string) {
		reg := NewBareRegistry()
		mustRegister(t, reg,
			engQuery(OpServicesList, func(context.Context, *OpContext, json.RawMessage) (json.RawMessage, error) {
				return json.RawMessage(`{"operations":[{"name":"dup/op","namespace":"dup","op_type":"query"},{"name":"dup/op","namespace":"dup","op_type":"query"}]}`), nil
			}),
			engQuery(OpServicesSchema, func(context.Context, *OpContext, json.RawMessage) (json.RawMessage, error) {
				return json.Marshal(NewSpec("dup/op", Query))
			}),
		)
		p := engNewPair(t, mode, &Dispatcher{Registry: reg}, &Dispatcher{}, nil, nil)
		for _, cfg := range []FromCallConfig{{}, {NamespacePrefix: "x"}} {
			_, err := FromCall(engCtx(t), p.client, cfg)
			ae, ok := errors.AsType[*AdapterError](err)
			if !ok || ae.Kind != AdapterSamePeerCollision {
				t.Fatalf("FromCall(%+v) = %v, want AdapterSamePeerCollision", cfg, err)
			}
		}
	})
}

// §4, §5.4: imported operations forward: through the connection's overlay by
// composition, subscriptions event by event, with the caller's identity as
// forwarded_for (which the remote does not authorize with).
func TestEngineFromCallForwarding(t *testing.T) {
	engModes(t, func(t *testing.T, mode string) {
		s := newEngImportServer(t)
		p := engNewPair(t, mode, &Dispatcher{Registry: s.reg}, &Dispatcher{}, &core.Identity{ID: "cli"}, nil)
		ctx := engCtx(t)
		regs, err := FromCall(ctx, p.client, FromCallConfig{})
		if err != nil {
			t.Fatal(err)
		}
		if err := p.client.RegisterImported(regs...); err != nil {
			t.Fatal(err)
		}
		if err := p.client.RegisterImported(regs[0]); err == nil {
			t.Fatal("registering an import twice succeeded")
		}

		t.Run("composition through the overlay", func(t *testing.T) {
			var composed atomic.Int32
			cliReg := engRegistry(t, Registration{
				Spec: NewSpec("local/compose", Query),
				Once: func(ctx context.Context, oc *OpContext, in json.RawMessage) (json.RawMessage, error) {
					composed.Add(1)
					return oc.Call(ctx, "pub/echo", in)
				},
				Authority: &CompositionAuthority{Label: "composer"},
				Scoped:    NewScopedEnv("pub/echo"),
			})
			env := NewPeerCompositeEnv(LocalEnv(cliReg))
			env.AttachPeer("srv", p.client.OverlayEnv())
			reg, _ := cliReg.Lookup("local/compose")
			out, cerr := cliReg.Invoke(ctx, "local/compose", json.RawMessage(`{"k":"v"}`), NewRootContext("", nil, nil, reg, env, nil))
			if cerr != nil || string(out) != `{"k":"v"}` || composed.Load() != 1 {
				t.Fatalf("composed forward = %s, %v", out, cerr)
			}
			// The imported op is Internal: not callable as a root.
			if _, cerr := LocalEnv(NewBareRegistry()).Invoke(ctx, "pub", "echo", nil, nil, AbortDependents); cerr == nil {
				t.Fatal("composition without a parent succeeded")
			}
			if !p.client.OverlayEnv().Contains("pub/echo") || p.client.OverlayEnv().Contains("pub/admin") {
				t.Fatal("overlay contents wrong")
			}
		})

		t.Run("forwarded_for", func(t *testing.T) {
			local := NewBareRegistry()
			for _, r := range regs {
				r.Spec.Visibility = External
				mustRegister(t, local, r)
			}
			alice := &core.Identity{ID: "alice", Scopes: []string{"admin"}}
			reg, _ := local.Lookup("pub/who")
			out, cerr := local.Invoke(ctx, "pub/who", nil, NewRootContext("", alice, nil, reg, nil, nil))
			if cerr != nil {
				t.Fatal(cerr)
			}
			var w engWho
			if err := json.Unmarshal(out, &w); err != nil {
				t.Fatal(err)
			}
			if engWhoID(w.Identity) != "cli" || engWhoID(w.ForwardedFor) != "alice" {
				t.Fatalf("remote saw identity %s forwarded_for %s; want cli, alice", engWhoID(w.Identity), engWhoID(w.ForwardedFor))
			}
			// No caller identity: no forwarded_for.
			out, cerr = local.Invoke(ctx, "pub/who", nil, nil)
			if cerr != nil {
				t.Fatal(cerr)
			}
			w = engWho{}
			_ = json.Unmarshal(out, &w)
			if w.ForwardedFor != nil {
				t.Fatalf("forwarded_for without a caller identity: %+v", w.ForwardedFor)
			}
		})

		t.Run("subscription event by event", func(t *testing.T) {
			local := NewBareRegistry()
			for _, r := range regs {
				r.Spec.Visibility = External
				mustRegister(t, local, r)
			}
			events := make(chan string)
			res := make(chan *CallError, 1)
			go func() {
				res <- local.InvokeStream(ctx, "pub/watch", json.RawMessage(`3`), nil, func(out json.RawMessage) error {
					select {
					case events <- string(out):
						return nil
					case <-ctx.Done():
						return ctx.Err()
					}
				})
			}()
			for i, want := range []string{"1", "2", "3"} {
				if i > 0 {
					// The remote emits the next event only now: the forwarder must
					// have passed the previous one on without waiting for the end.
					close(engWait(t, s.steps, "the remote to wait for the next step"))
				}
				if got := engWait(t, events, "a forwarded event"); got != want {
					t.Fatalf("event %d = %s, want %s", i, got, want)
				}
			}
			if cerr := engWait(t, res, "the forwarded subscription to end"); cerr != nil {
				t.Fatalf("forwarded subscription ended with %v", cerr)
			}
		})
	})
}

// Dial: a pinned server over QUIC and TCP+TLS; the server's fingerprint resolves to
// the identity its calls back into the client are checked against. A wrong pin
// fails the dial.
func TestEngineDial(t *testing.T) {
	for _, network := range []endpoint.Network{endpoint.NetworkQUIC, endpoint.NetworkTCP} {
		t.Run(network.String(), func(t *testing.T) {
			srvDisp := &Dispatcher{Registry: engRegistry(t, engEcho("srv/echo"))}
			s := engStartServer(t, srvDisp, nil, nil)
			restricted := engQuery("cli/restricted", engWhoAmI())
			restricted.Spec.Access.RequiredScopes = []string{"callback"}
			cliDisp := &Dispatcher{
				Registry:   engRegistry(t, restricted),
				Identities: engIDP{fingerprints: map[string]*core.Identity{s.srv.Identity.Fingerprint: {ID: "the-server", Scopes: []string{"callback"}}}},
			}
			ctx := engCtx(t)
			c, err := Dial(ctx, s.srv.Addr, DialOptions{Transport: s.srv.DialOptions(s.client, network), Dispatcher: cliDisp})
			if err != nil {
				t.Fatalf("Dial: %v", err)
			}
			t.Cleanup(func() { c.Close() })
			if id := c.Identity(); id == nil || id.ID != "the-server" {
				t.Fatalf("the client sees the server as %+v, want the-server", id)
			}
			if out, err := c.Call(ctx, "srv/echo", "hi"); err != nil || string(out) != `"hi"` {
				t.Fatalf("call = %s, %v", out, err)
			}
			sc := engWait(t, s.conns, "the server Conn")
			w := engCallWho(t, ctx, sc, "cli/restricted")
			if engWhoID(w.Identity) != "the-server" {
				t.Fatalf("the callback ran as %s", engWhoID(w.Identity))
			}

			// Without a resolving identity the callback is anonymous and refused.
			c2, err := Dial(ctx, s.srv.Addr, DialOptions{Transport: s.srv.DialOptions(s.client, network), Dispatcher: &Dispatcher{Registry: engRegistry(t, restricted)}})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c2.Close() })
			if _, err := c2.Call(ctx, OpServicesList, nil); err != nil {
				t.Fatal(err)
			}
			sc2 := engWait(t, s.conns, "the second server Conn")
			_, err = sc2.Call(ctx, "cli/restricted", nil)
			engWantErr(t, err, CodeForbidden, "authentication required")

			// A wrong pin fails.
			opts := s.srv.DialOptions(s.client, network)
			opts.TLS.Pin = coretest.NewIdentity(t).Fingerprint
			if c3, err := Dial(ctx, s.srv.Addr, DialOptions{Transport: opts}); err == nil {
				c3.Close()
				t.Fatal("Dial with a wrong pin succeeded")
			} else if !errors.Is(err, tlsconf.ErrFingerprintMismatch) {
				t.Fatalf("Dial with a wrong pin = %v, want ErrFingerprintMismatch", err)
			}
		})
	}
}

// §4: FromCall's failures are classified.
func TestEngineFromCallErrors(t *testing.T) {
	discovery := func(list, schema string) *Registry {
		reg := NewBareRegistry()
		if list != "" {
			mustRegister(t, reg, engQuery(OpServicesList, func(context.Context, *OpContext, json.RawMessage) (json.RawMessage, error) {
				return json.RawMessage(list), nil
			}))
		}
		mustRegister(t, reg, engQuery(OpServicesSchema, func(context.Context, *OpContext, json.RawMessage) (json.RawMessage, error) {
			return json.RawMessage(schema), nil
		}))
		return reg
	}
	forbidden := engQuery(OpServicesList, engWhoAmI())
	forbidden.Spec.Access.RequiredScopes = []string{"discovery"}
	locked := NewBareRegistry()
	mustRegister(t, locked, forbidden)
	cases := []struct {
		name string
		reg  *Registry
		want AdapterErrorKind
	}{
		{"unknown op_type", discovery(`{"operations":[{"name":"a/b"}]}`, `{"name":"a/b","op_type":"stream"}`), AdapterSchemaParse},
		{"schema of another op", discovery(`{"operations":[{"name":"a/b"}]}`, `{"name":"a/c","op_type":"query"}`), AdapterSchemaParse},
		{"list not JSON of the shape", discovery(`{"operations":7}`, `{}`), AdapterSchemaParse},
		{"no discovery", discovery("", `{}`), AdapterDiscoveryFailed},
		{"discovery forbidden", locked, AdapterUnauthorized},
	}
	engModes(t, func(t *testing.T, mode string) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				p := engNewPair(t, mode, &Dispatcher{Registry: tc.reg}, &Dispatcher{}, nil, nil)
				_, err := FromCall(engCtx(t), p.client, FromCallConfig{})
				ae, ok := errors.AsType[*AdapterError](err)
				if !ok || ae.Kind != tc.want {
					t.Fatalf("FromCall = %v, want kind %s", err, tc.want)
				}
			})
		}
		t.Run("connection closed", func(t *testing.T) {
			p := engNewPair(t, mode, &Dispatcher{}, &Dispatcher{}, nil, nil)
			p.client.Close()
			_, err := FromCall(engCtx(t), p.client, FromCallConfig{})
			ae, ok := errors.AsType[*AdapterError](err)
			if !ok || ae.Kind != AdapterTransport {
				t.Fatalf("FromCall on a closed Conn = %v, want kind transport", err)
			}
		})
	})
}

// §2.4, §4: an imported operation passes the remote's declared error codes (with
// details) through, and a cancelled forwarded subscription aborts its own wire id.
func TestEngineFromCallErrorsAndStreamAbort(t *testing.T) {
	engModes(t, func(t *testing.T, mode string) {
		fail := engQuery("pub/fail", func(context.Context, *OpContext, json.RawMessage) (json.RawMessage, error) {
			return nil, &CallError{Code: "NOTE_MISSING", Message: "no such note", Details: json.RawMessage(`{"noteId":"n-9"}`)}
		})
		fail.Spec.ErrorSchemas = []ErrorDefinition{{Code: "NOTE_MISSING", Description: "missing"}}
		subStarted := make(chan string, 1)
		subEnded := make(chan error, 1)
		feed := engSub("pub/feed", func(ctx context.Context, oc *OpContext, _ json.RawMessage, emit func(json.RawMessage) error) error {
			if err := emit(json.RawMessage(`"hello"`)); err != nil {
				return err
			}
			subStarted <- oc.RequestID
			<-ctx.Done()
			subEnded <- ctx.Err()
			return ctx.Err()
		})
		p := engNewPair(t, mode, &Dispatcher{Registry: engRegistry(t, fail, feed)}, &Dispatcher{}, nil, nil)
		ctx := engCtx(t)
		regs, err := FromCall(ctx, p.client, FromCallConfig{Expose: true, Filter: map[string]bool{"pub/fail": true, "pub/feed": true}})
		if err != nil {
			t.Fatal(err)
		}
		local := engRegistry(t, regs...)

		_, cerr := local.Invoke(ctx, "pub/fail", nil, nil)
		if cerr == nil || cerr.Code != "NOTE_MISSING" || string(cerr.Details) != `{"noteId":"n-9"}` {
			t.Fatalf("imported declared error = %+v, want NOTE_MISSING with its details", cerr)
		}

		sctx, cancel := context.WithCancel(ctx)
		got := make(chan string, 1)
		res := make(chan *CallError, 1)
		go func() {
			res <- local.InvokeStream(sctx, "pub/feed", nil, nil, func(out json.RawMessage) error {
				got <- string(out)
				return nil
			})
		}()
		if ev := engWait(t, got, "the forwarded event"); ev != `"hello"` {
			t.Fatalf("forwarded event %s", ev)
		}
		wireID := engWait(t, subStarted, "the remote subscription")
		cancel()
		if err := engWait(t, subEnded, "the remote subscription to be cancelled"); !errors.Is(err, context.Canceled) {
			t.Fatalf("remote subscription ended with %v", err)
		}
		engWait(t, res, "the forwarded subscription to end")
		p.wire.waitType(t, fromClient, wireID, EvAborted)
	})
}
