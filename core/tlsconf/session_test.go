package tlsconf_test

import (
	"crypto/tls"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/core/tlsconf"
)

// clientFingerprint is the fingerprint of the client certificate a server saw.
func clientFingerprint(st tls.ConnectionState) string {
	if len(st.PeerCertificates) == 0 {
		return ""
	}
	return core.FingerprintFromCert(st.PeerCertificates[0])
}

// pinnedClient is a client configuration pinning server, presenting client (nil: no
// certificate) and resuming through sessions.
func pinnedClient(t *testing.T, server, client *nodeIdentity, sessions *tlsconf.SessionCache, verify func(string, tls.ConnectionState) error) *tls.Config {
	t.Helper()
	opts := tlsconf.ClientOptions{Pin: server.fp, NextProtos: []string{testALPN}, Sessions: sessions, VerifyServer: verify}
	if client != nil {
		cert := client.cert
		opts.Certificate = &cert
	}
	cfg, err := tlsconf.ClientConfig(opts)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// dialResumed dials with cfg and returns whether the connection resumed and the client
// fingerprint the server saw.
func dialResumed(t *testing.T, srv *tlsServer, cfg *tls.Config) (resumed bool, serverSaw string) {
	t.Helper()
	c, res, err := srv.dial(t, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if c.ConnectionState().DidResume != res.state.DidResume {
		t.Fatalf("client resumed %v, server %v", c.ConnectionState().DidResume, res.state.DidResume)
	}
	return res.state.DidResume, clientFingerprint(res.state)
}

func TestSessionsResumeWithTheFirstIdentities(t *testing.T) {
	server, client := newNode(t), newNode(t)
	srv := nodeServer(t, server)
	sessions := tlsconf.NewSessionCache(4)
	var verified atomic.Int32
	var failVerify atomic.Bool
	cfg := pinnedClient(t, &server, &client, sessions, func(fp string, cs tls.ConnectionState) error {
		verified.Add(1)
		if fp != server.fp {
			t.Errorf("VerifyServer got %s, want %s", fp, server.fp)
		}
		if failVerify.Load() {
			return errors.New("refused by VerifyServer")
		}
		return nil
	})

	if resumed, saw := dialResumed(t, srv, cfg); resumed || saw != client.fp {
		t.Fatalf("first connection: resumed %v, server saw %q", resumed, saw)
	}
	if sessions.Len() != 1 {
		t.Fatalf("cache holds %d sessions after the first connection, want 1", sessions.Len())
	}
	for i := range 2 {
		if resumed, saw := dialResumed(t, srv, cfg); !resumed || saw != client.fp {
			t.Fatalf("reconnection %d: resumed %v, server saw %q, want %q", i, resumed, saw, client.fp)
		}
	}
	if got := verified.Load(); got != 3 {
		t.Fatalf("VerifyServer ran %d times over one full and two resumed handshakes, want 3", got)
	}
	// The pin check and VerifyServer still decide on a resumed connection.
	failVerify.Store(true)
	if _, _, err := srv.dial(t, cfg); err == nil {
		t.Fatal("a resumed connection VerifyServer refuses succeeded")
	}
}

// ticketServer serves with the configuration cur holds at each handshake, on one
// address: a client cannot tell the servers apart by address.
func ticketServer(t *testing.T, first *tls.Config) (*tlsServer, *atomic.Pointer[tls.Config]) {
	t.Helper()
	var cur atomic.Pointer[tls.Config]
	cur.Store(first)
	base := first.Clone()
	base.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) { return cur.Load(), nil }
	return startTLSServer(t, base), &cur
}

// serverWithKeys is the server configuration of n issuing tickets under key.
func serverWithKeys(n nodeIdentity, key [32]byte) *tls.Config {
	cfg := tlsconf.ServerConfig(n.cert)
	cfg.NextProtos = []string{testALPN}
	cfg.SetSessionTicketKeys([][32]byte{key})
	return cfg
}

func TestSessionsKeyedByPin(t *testing.T) {
	a, b, client := newNode(t), newNode(t), newNode(t)
	keyA, keyB := [32]byte{1}, [32]byte{2}
	srv, cur := ticketServer(t, serverWithKeys(a, keyA))
	sessions := tlsconf.NewSessionCache(4)
	pinA := pinnedClient(t, &a, &client, sessions, nil)
	dialResumed(t, srv, pinA)
	if resumed, _ := dialResumed(t, srv, pinA); !resumed {
		t.Fatal("the test needs the second connection to A to resume")
	}

	t.Run("another key never resumes", func(t *testing.T) {
		// B has its own ticket keys: A's session is offered (it is A that is pinned),
		// B cannot open it, makes a full handshake and fails the pin.
		cur.Store(serverWithKeys(b, keyB))
		if _, _, err := srv.dial(t, pinA); !errors.Is(err, tlsconf.ErrFingerprintMismatch) {
			t.Fatalf("A's pin against B: %v, want ErrFingerprintMismatch", err)
		}
	})
	t.Run("the cache is keyed by pin, not address", func(t *testing.T) {
		// B shares A's ticket keys, so it would accept A's session and the connection
		// would carry A's certificate: pinning B at the same address must not offer it.
		cur.Store(serverWithKeys(b, keyA))
		pinB := pinnedClient(t, &b, &client, sessions, nil)
		if resumed, saw := dialResumed(t, srv, pinB); resumed || saw != client.fp {
			t.Fatalf("B's pin: resumed %v (server saw %q); a session made with A was offered", resumed, saw)
		}
		if resumed, _ := dialResumed(t, srv, pinB); !resumed {
			t.Fatal("B's own session did not resume")
		}
	})
	t.Run("A again", func(t *testing.T) {
		// crypto/tls dropped A's session when the handshake that offered it failed.
		cur.Store(serverWithKeys(a, keyA))
		if resumed, _ := dialResumed(t, srv, pinA); resumed {
			t.Fatal("a session offered in a failed handshake was kept")
		}
		if resumed, _ := dialResumed(t, srv, pinA); !resumed {
			t.Fatal("A's new session did not resume")
		}
	})
}

func TestSessionsKeyedByClientCertificate(t *testing.T) {
	server, alice, bob := newNode(t), newNode(t), newNode(t)
	srv := nodeServer(t, server)
	sessions := tlsconf.NewSessionCache(4)
	asAlice := pinnedClient(t, &server, &alice, sessions, nil)
	asBob := pinnedClient(t, &server, &bob, sessions, nil)
	anonymous := pinnedClient(t, &server, nil, sessions, nil)

	dialResumed(t, srv, asAlice)
	for _, tc := range []struct {
		name string
		cfg  *tls.Config
		want string
	}{
		{"bob", asBob, bob.fp},
		{"anonymous", anonymous, ""},
	} {
		// A session Alice made would carry Alice's certificate: nobody else gets it.
		if resumed, saw := dialResumed(t, srv, tc.cfg); resumed || saw != tc.want {
			t.Fatalf("%s's first connection: resumed %v, server saw %q, want %q", tc.name, resumed, saw, tc.want)
		}
		if resumed, saw := dialResumed(t, srv, tc.cfg); !resumed || saw != tc.want {
			t.Fatalf("%s's reconnection: resumed %v, server saw %q, want %q", tc.name, resumed, saw, tc.want)
		}
	}
	if resumed, saw := dialResumed(t, srv, asAlice); !resumed || saw != alice.fp {
		t.Fatalf("alice's reconnection: resumed %v, server saw %q", resumed, saw)
	}
	if sessions.Len() != 3 {
		t.Fatalf("cache holds %d sessions, want 3 (one per client identity)", sessions.Len())
	}
}

func TestSessionsNeedPin(t *testing.T) {
	server := newNode(t)
	srv := nodeServer(t, server)
	sessions := tlsconf.NewSessionCache(4)
	cfg, err := tlsconf.ClientConfig(tlsconf.ClientOptions{
		NextProtos:   []string{testALPN},
		Sessions:     sessions,
		VerifyServer: func(string, tls.ConnectionState) error { return nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if resumed, _ := dialResumed(t, srv, cfg); resumed {
			t.Fatal("a configuration without Pin resumed")
		}
	}
	if sessions.Len() != 0 {
		t.Fatalf("cache holds %d sessions of an unpinned server", sessions.Len())
	}
}
