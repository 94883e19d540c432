package call

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"

	"github.com/alknet/alknet/core"
)

// §5.3: calls in both directions at once on one connection, and a server handler
// calling back into the client's registry while the client's call is running.
func TestEngineConcurrentBidirectional(t *testing.T) {
	engModes(t, func(t *testing.T, mode string) {
		var serverConn struct {
			sync.Mutex
			c *Conn
		}
		srvReg := engRegistry(t,
			engEcho("srv/echo"),
			// srv/relay asks the client (over the connection the request came in on)
			// to echo its input and answers what the client said, tagged.
			engQuery("srv/relay", func(ctx context.Context, _ *OpContext, in json.RawMessage) (json.RawMessage, error) {
				serverConn.Lock()
				c := serverConn.c
				serverConn.Unlock()
				out, err := c.Call(ctx, "cli/echo", in)
				if err != nil {
					return nil, err
				}
				return json.RawMessage(fmt.Sprintf(`{"relayed":%s}`, out)), nil
			}),
		)
		cliReg := engRegistry(t, engEcho("cli/echo"))
		p := engNewPair(t, mode, &Dispatcher{Registry: srvReg}, &Dispatcher{Registry: cliReg}, nil, nil)
		serverConn.Lock()
		serverConn.c = p.server
		serverConn.Unlock()
		ctx := engCtx(t)

		const n = 32
		type result struct {
			kind string
			i    int
			out  json.RawMessage
			err  error
		}
		results := make(chan result, 3*n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				out, err := p.client.Call(ctx, "srv/echo", map[string]int{"c2s": i})
				results <- result{"c2s", i, out, err}
			})
			wg.Go(func() {
				out, err := p.server.Call(ctx, "/cli/echo", map[string]int{"s2c": i})
				results <- result{"s2c", i, out, err}
			})
			wg.Go(func() {
				out, err := p.client.Call(ctx, "srv/relay", map[string]int{"relay": i})
				results <- result{"relay", i, out, err}
			})
		}
		wg.Wait()
		close(results)
		seen := map[string]int{}
		for r := range results {
			if r.err != nil {
				t.Fatalf("%s call %d: %v", r.kind, r.i, r.err)
			}
			want := fmt.Sprintf(`{"%s":%d}`, r.kind, r.i)
			if r.kind == "relay" {
				want = fmt.Sprintf(`{"relayed":{"relay":%d}}`, r.i)
			}
			if string(r.out) != want {
				t.Fatalf("%s call %d = %s, want %s", r.kind, r.i, r.out, want)
			}
			seen[r.kind]++
		}
		for _, k := range []string{"c2s", "s2c", "relay"} {
			if seen[k] != n {
				t.Fatalf("%d %s results, want %d", seen[k], k, n)
			}
		}
	})
}

// Dispatcher.OnConnect exists "so the accepting side can call back into the peer":
// a callback started from it must work on QUIC and on the single TCP+TLS stream.
func TestEngineOnConnectCallback(t *testing.T) {
	for _, mode := range []string{modeQUIC, modeTCP} {
		t.Run(mode, func(t *testing.T) {
			results := make(chan engOut, 1)
			srv := &Dispatcher{
				Registry: NewRegistry(),
				OnConnect: func(c *Conn) {
					go func() {
						ctx, cancel := context.WithTimeout(context.Background(), engTimeout)
						defer cancel()
						out, err := c.Call(ctx, "cli/echo", "hello from OnConnect")
						results <- engOut{out, err}
					}()
				},
			}
			p := engNewPair(t, mode, srv, &Dispatcher{Registry: engRegistry(t, engEcho("cli/echo"))}, nil, nil)
			r := engWait(t, results, "the OnConnect callback")
			if r.err != nil || string(r.out) != `"hello from OnConnect"` {
				t.Fatalf("callback from OnConnect = %s, %v", r.out, r.err)
			}
			// The connection still works both ways afterwards.
			if _, err := p.client.Call(engCtx(t), OpServicesList, nil); err != nil {
				t.Fatalf("client call after the callback: %v", err)
			}
			if out, err := p.server.Call(engCtx(t), "cli/echo", 1); err != nil || string(out) != "1" {
				t.Fatalf("server call after the callback: %s, %v", out, err)
			}
		})
	}
}

// engWho is the output of engWhoAmI.
type engWho struct {
	Identity     *core.Identity `json:"identity"`
	ForwardedFor *core.Identity `json:"forwarded_for"`
}

// engWhoAmI answers the identity the call was checked against and its forwarded_for.
func engWhoAmI() Handler {
	return func(_ context.Context, oc *OpContext, _ json.RawMessage) (json.RawMessage, error) {
		return json.Marshal(engWho{oc.Identity, oc.ForwardedFor})
	}
}

func engCallWho(t testing.TB, ctx context.Context, c *Conn, op string, opts ...CallOption) engWho {
	t.Helper()
	out, err := c.Call(ctx, op, nil, opts...)
	if err != nil {
		t.Fatalf("call: %v", err)
	}
	var w engWho
	if err := json.Unmarshal(out, &w); err != nil {
		t.Fatalf("decode %s: %v", out, err)
	}
	return w
}

func engWhoID(id *core.Identity) string {
	if id == nil {
		return "<nil>"
	}
	return id.ID
}

// §5.6 at the wire: auth_token, its fallback, authentication required, forwarded_for.
func TestEngineAuthToken(t *testing.T) {
	idp := engIDP{tokens: map[string]*core.Identity{
		"tok-admin": {ID: "token-admin", Scopes: []string{"admin"}},
	}}
	newServer := func() *Dispatcher {
		admin := engQuery("sec/admin", engWhoAmI())
		admin.Spec.Access.RequiredScopes = []string{"admin"}
		return &Dispatcher{Identities: idp, Registry: engRegistry(t, engQuery("sec/whoami", engWhoAmI()), admin)}
	}
	engModes(t, func(t *testing.T, mode string) {
		t.Run("known connection", func(t *testing.T) {
			cli := &core.Identity{ID: "cli", Scopes: []string{"basic"}}
			p := engNewPair(t, mode, newServer(), &Dispatcher{}, cli, nil)
			ctx := engCtx(t)

			w := engCallWho(t, ctx, p.client, "sec/whoami")
			if engWhoID(w.Identity) != "cli" || w.ForwardedFor != nil {
				t.Fatalf("no token: identity %s, forwarded_for %v; want cli, nil", engWhoID(w.Identity), w.ForwardedFor)
			}
			_, err := p.client.Call(ctx, "sec/admin", nil)
			engWantErr(t, err, CodeForbidden, "missing required scope: admin")

			// A resolving token replaces the connection identity for that request.
			w = engCallWho(t, ctx, p.client, "sec/admin", WithAuthToken([]byte("tok-admin")))
			if engWhoID(w.Identity) != "token-admin" {
				t.Fatalf("with token: identity %s, want token-admin", engWhoID(w.Identity))
			}
			// ... only for that request.
			w = engCallWho(t, ctx, p.client, "sec/whoami")
			if engWhoID(w.Identity) != "cli" {
				t.Fatalf("after a token call: identity %s, want cli", engWhoID(w.Identity))
			}
			_, err = p.client.Call(ctx, "sec/admin", nil)
			engWantErr(t, err, CodeForbidden, "missing required scope: admin")

			// A token that does not resolve falls back silently to the connection.
			w = engCallWho(t, ctx, p.client, "sec/whoami", WithAuthToken([]byte("tok-bogus")))
			if engWhoID(w.Identity) != "cli" {
				t.Fatalf("bad token: identity %s, want the connection's (cli)", engWhoID(w.Identity))
			}
			_, err = p.client.Call(ctx, "sec/admin", nil, WithAuthToken([]byte("tok-bogus")))
			engWantErr(t, err, CodeForbidden, "missing required scope: admin")

			// forwarded_for reaches the handler but never authorizes.
			alice := &core.Identity{ID: "alice", Scopes: []string{"admin"}}
			w = engCallWho(t, ctx, p.client, "sec/whoami", WithForwardedFor(alice))
			if engWhoID(w.Identity) != "cli" || engWhoID(w.ForwardedFor) != "alice" || len(w.ForwardedFor.Scopes) != 1 {
				t.Fatalf("forwarded_for: identity %s, forwarded_for %+v; want cli, alice[admin]", engWhoID(w.Identity), w.ForwardedFor)
			}
			_, err = p.client.Call(ctx, "sec/admin", nil, WithForwardedFor(alice))
			engWantErr(t, err, CodeForbidden, "missing required scope: admin")

			// The token went on the wire as auth_token, once per call that set it.
			var tokens int
			for _, e := range p.wire.all(fromClient) {
				if e.Type != EvRequested {
					continue
				}
				req, cerr := ParseRequest(e)
				if cerr != nil {
					t.Fatalf("client sent a malformed request: %v", cerr)
				}
				if len(req.AuthToken) > 0 {
					tokens++
				}
			}
			if tokens != 3 {
				t.Fatalf("%d requests carried an auth_token, want 3", tokens)
			}
		})
		t.Run("anonymous connection", func(t *testing.T) {
			p := engNewPair(t, mode, newServer(), &Dispatcher{}, nil, nil)
			ctx := engCtx(t)
			w := engCallWho(t, ctx, p.client, "sec/whoami")
			if w.Identity != nil {
				t.Fatalf("anonymous: identity %+v, want nil", w.Identity)
			}
			_, err := p.client.Call(ctx, "sec/admin", nil)
			engWantErr(t, err, CodeForbidden, "authentication required")
			_, err = p.client.Call(ctx, "sec/admin", nil, WithAuthToken([]byte("tok-bogus")))
			engWantErr(t, err, CodeForbidden, "authentication required")
			_, err = p.client.Call(ctx, "sec/admin", nil, WithForwardedFor(&core.Identity{ID: "alice", Scopes: []string{"admin"}}))
			engWantErr(t, err, CodeForbidden, "authentication required")
			w = engCallWho(t, ctx, p.client, "sec/admin", WithAuthToken([]byte("tok-admin")))
			if engWhoID(w.Identity) != "token-admin" {
				t.Fatalf("anonymous with token: identity %s, want token-admin", engWhoID(w.Identity))
			}
		})
	})
}
