package endpoint_test

import (
	"crypto/tls"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/core/coretest"
	"github.com/alknet/alknet/core/endpoint"
	"github.com/alknet/alknet/core/tlsconf"
)

// whoServer serves "alknet/who" with a recorder that reports each connection's
// AuthContext on out.
func whoServer(t *testing.T, out chan seen, opts ...coretest.Option) *coretest.Server {
	t.Helper()
	reg := newRegistry(t, map[string]core.Handler{"alknet/who": recorder("who", out)})
	return coretest.NewServer(t, reg, opts...)
}

// resumingOptions are srv's dial options for client over n, resuming through sessions.
func resumingOptions(srv *coretest.Server, client *coretest.Identity, n endpoint.Network, sessions *tlsconf.SessionCache) endpoint.DialOptions {
	opts := srv.DialOptions(client, n)
	opts.TLS.Sessions = sessions
	return opts
}

// connectOnce dials "alknet/who" with opts, round-trips one stream, closes and returns
// whether the handshake resumed and what the handler saw.
func connectOnce(t *testing.T, srv *coretest.Server, opts endpoint.DialOptions, out <-chan seen) (resumed bool, auth core.AuthContext) {
	t.Helper()
	ctx := testCtx(t)
	conn, err := endpoint.Dial(ctx, srv.Addr, "alknet/who", opts)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(core.CloseNormal, "")
	st, ok := conn.TLSConnectionState()
	if !ok {
		t.Fatal("no TLS state on a dialed connection")
	}
	if qc, ok := endpoint.QUICConn(conn); ok && qc.ConnectionState().Used0RTT {
		t.Fatal("the connection used 0-RTT")
	}
	if _, err := coretest.RoundTrip(ctx, conn, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-out:
		return st.DidResume, s.auth
	case <-ctx.Done():
		t.Fatal("the handler did not report")
	}
	return false, core.AuthContext{}
}

// waitForSession waits until sessions holds n sessions: the server's ticket arrives
// after the handshake, on QUIC in the background.
func waitForSession(t *testing.T, sessions *tlsconf.SessionCache, n int) {
	t.Helper()
	waitFor(t, func() bool { return sessions.Len() == n })
}

func identityID(a core.AuthContext) string {
	if a.Identity == nil {
		return ""
	}
	return a.Identity.ID
}

func TestResumedConnectionKeepsIdentity(t *testing.T) {
	for _, n := range networks {
		t.Run(n.String(), func(t *testing.T) {
			out := make(chan seen, 4)
			alice := coretest.NewIdentity(t)
			srv := whoServer(t, out, coretest.WithConfig(core.DynamicConfig{Auth: core.AuthPolicy{Peers: []core.PeerEntry{alice.Peer("alice", "admin")}}}))
			sessions := tlsconf.NewSessionCache(4)
			opts := resumingOptions(srv, alice, n, sessions)
			var verified atomic.Int32
			opts.TLS.VerifyServer = func(fp string, _ tls.ConnectionState) error {
				verified.Add(1)
				if fp != srv.Identity.Fingerprint {
					return fmt.Errorf("server %s, want %s", fp, srv.Identity.Fingerprint)
				}
				return nil
			}

			resumed, auth := connectOnce(t, srv, opts, out)
			if resumed || identityID(auth) != "alice" || auth.TLSClientFingerprint != alice.Fingerprint {
				t.Fatalf("first connection: resumed %v, identity %q, fingerprint %q", resumed, identityID(auth), auth.TLSClientFingerprint)
			}
			waitForSession(t, sessions, 1)
			resumed, auth = connectOnce(t, srv, opts, out)
			if !resumed {
				t.Fatal("the reconnection did not resume")
			}
			if identityID(auth) != "alice" || !auth.Identity.HasScope("admin") || auth.TLSClientFingerprint != alice.Fingerprint {
				t.Fatalf("resumed connection: identity %+v, fingerprint %q", auth.Identity, auth.TLSClientFingerprint)
			}
			if got := verified.Load(); got != 2 {
				t.Fatalf("the pin's VerifyServer ran %d times over a full and a resumed handshake, want 2", got)
			}
			if st := srv.Endpoint.Stats(); st.Resumed != 1 || st.Accepted != 2 {
				t.Fatalf("stats: %d resumed of %d accepted, want 1 of 2", st.Resumed, st.Accepted)
			}
		})
	}
}

func TestResumedConnectionOfRevokedPeer(t *testing.T) {
	for _, n := range networks {
		t.Run(n.String(), func(t *testing.T) {
			out := make(chan seen, 4)
			bob := coretest.NewIdentity(t)
			granted := core.DynamicConfig{Auth: core.AuthPolicy{Peers: []core.PeerEntry{bob.Peer("bob")}}}
			srv := whoServer(t, out, coretest.WithConfig(granted))
			sessions := tlsconf.NewSessionCache(4)
			opts := resumingOptions(srv, bob, n, sessions)
			if _, auth := connectOnce(t, srv, opts, out); identityID(auth) != "bob" {
				t.Fatalf("granted peer resolved to %q", identityID(auth))
			}
			waitForSession(t, sessions, 1)

			revoked := granted.Clone()
			revoked.Auth.Peers[0].Enabled = false
			if err := srv.Store.Reload(revoked); err != nil {
				t.Fatal(err)
			}
			// What a revoked peer gets on a full handshake (no session to offer).
			resumed, full := connectOnce(t, srv, resumingOptions(srv, bob, n, tlsconf.NewSessionCache(1)), out)
			if resumed {
				t.Fatal("a fresh cache resumed")
			}
			// The same peer resuming the session its granted connection made.
			resumed, auth := connectOnce(t, srv, opts, out)
			if !resumed {
				t.Fatal("the reconnection did not resume")
			}
			if auth.Identity != nil || full.Identity != nil {
				t.Fatalf("revoked peer resolved: resumed %+v, full handshake %+v", auth.Identity, full.Identity)
			}
			if auth.TLSClientFingerprint != bob.Fingerprint || full.TLSClientFingerprint != bob.Fingerprint {
				t.Fatalf("fingerprints: resumed %q, full handshake %q, want %q", auth.TLSClientFingerprint, full.TLSClientFingerprint, bob.Fingerprint)
			}

			// Granted again: the resumed connection resolves as a full one would.
			if err := srv.Store.Reload(granted); err != nil {
				t.Fatal(err)
			}
			if resumed, auth := connectOnce(t, srv, opts, out); !resumed || identityID(auth) != "bob" {
				t.Fatalf("after the grant: resumed %v, identity %q", resumed, identityID(auth))
			}
		})
	}
}

func TestResumptionAcrossListeners(t *testing.T) {
	for _, tc := range []struct {
		name string
		opt  coretest.Option
	}{
		{"shared config", coretest.WithEndpointConfig(func(*endpoint.Config) {})},
		{"GetConfigForClient", coretest.WithEndpointConfig(func(c *endpoint.Config) {
			// A fresh configuration per handshake, as a caller choosing certificates
			// per client might return: it has ticket keys of its own that must not
			// be used.
			base := c.TLS
			c.TLS = &tls.Config{
				GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
					cfg := tlsconf.ServerConfig(base.Certificates[0])
					cfg.NextProtos = []string{"alknet/who"}
					return cfg, nil
				},
			}
		})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := make(chan seen, 4)
			carol := coretest.NewIdentity(t)
			srv := whoServer(t, out, tc.opt)
			sessions := tlsconf.NewSessionCache(4)
			connectOnce(t, srv, resumingOptions(srv, carol, endpoint.NetworkQUIC, sessions), out)
			waitForSession(t, sessions, 1)
			// One session per pin and client: each connection replaces it with the
			// ticket its server sent, so the transports alternate tickets.
			for i, n := range []endpoint.Network{endpoint.NetworkTCP, endpoint.NetworkQUIC, endpoint.NetworkTCP, endpoint.NetworkTCP, endpoint.NetworkQUIC, endpoint.NetworkQUIC} {
				resumed, auth := connectOnce(t, srv, resumingOptions(srv, carol, n, sessions), out)
				if !resumed || auth.TLSClientFingerprint != carol.Fingerprint {
					t.Fatalf("connection %d over %s: resumed %v, fingerprint %q", i, n, resumed, auth.TLSClientFingerprint)
				}
				waitFor(t, func() bool { return srv.Endpoint.Stats().Resumed == uint64(i+1) })
			}
		})
	}
}

func TestSessionTicketsDisabled(t *testing.T) {
	out := make(chan seen, 4)
	dave := coretest.NewIdentity(t)
	srv := whoServer(t, out, coretest.WithEndpointConfig(func(c *endpoint.Config) { c.TLS.SessionTicketsDisabled = true }))
	for _, n := range networks {
		sessions := tlsconf.NewSessionCache(4)
		for range 2 {
			if resumed, _ := connectOnce(t, srv, resumingOptions(srv, dave, n, sessions), out); resumed {
				t.Fatalf("%s: resumed with tickets disabled", n)
			}
		}
		if sessions.Len() != 0 {
			t.Fatalf("%s: the server issued a ticket with tickets disabled", n)
		}
	}
}
