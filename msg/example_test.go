package msg_test

import (
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"log"
	"log/slog"
	"time"

	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/core/endpoint"
	"github.com/alknet/alknet/core/tlsconf"
	"github.com/alknet/alknet/msg"
)

// Bob publishes a signed key bundle for his X25519 key; Alice seals a message to it,
// signed with her identity key; Bob opens it and learns who sent it.
func ExampleSeal() {
	alicePub, alice, _ := ed25519.GenerateKey(rand.Reader)
	bobPub, bob, _ := ed25519.GenerateKey(rand.Reader)
	bobX, _ := ecdh.X25519().GenerateKey(rand.Reader)
	bundle, err := msg.NewKeyBundle(bob, bobX.PublicKey(), time.Now().Add(30*24*time.Hour))
	if err != nil {
		log.Fatal(err)
	}

	env, err := msg.Seal(alice, bobPub, bundle, []byte("lunch at noon?"), "text/plain", msg.WithTTL(24*time.Hour))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("to bob's mailbox:", env.To == msg.Mailbox(bobPub), "ttl:", env.TTL)

	m, err := msg.Open(bobX, bobPub, env)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s (%s), from alice: %v\n", m.Body, m.ContentType, m.From.Equal(alicePub))
	// Output:
	// to bob's mailbox: true ttl: 86400
	// lunch at noon? (text/plain), from alice: true
}

// A node hosts Bob's mailbox; Alice (a known peer with scope msg:send) sends him a
// message; Bob fetches, opens and acknowledges it.
func ExampleNewServer() {
	ctx := context.Background()
	quiet := slog.New(slog.DiscardHandler)
	bobPub, bob, _ := ed25519.GenerateKey(rand.Reader)
	_, alice, _ := ed25519.GenerateKey(rand.Reader)

	// The node: a msg server over a memory store, hosting Bob's mailbox.
	store := msg.NewMemStore()
	defer store.Close()
	srv, err := msg.NewServer(msg.Config{Store: msg.StoreMemory}, store, msg.Hosted(bobPub), msg.WithLogger(quiet))
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	reg := core.NewRegistry()
	_ = reg.Register(srv)
	peers, _ := core.NewDynamicStore(core.DynamicConfig{Auth: core.AuthPolicy{Peers: []core.PeerEntry{
		{PeerID: "alice", Fingerprints: []string{tlsconf.Fingerprint(alice)}, Scopes: []string{msg.ScopeSend}, Enabled: true},
	}}})
	nodeKey, _ := tlsconf.GenerateKey()
	nodeCert, _ := tlsconf.Certificate(nodeKey)
	ep, err := endpoint.New(reg, endpoint.Config{
		TLS: tlsconf.ServerConfig(nodeCert), Identities: core.NewConfigIdentityProvider(peers, nil), Logger: quiet,
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := ep.Listen("127.0.0.1:0"); err != nil {
		log.Fatal(err)
	}
	defer ep.Shutdown(ctx)
	dial := func(key ed25519.PrivateKey) *msg.Client {
		cert, _ := tlsconf.Certificate(key)
		c, err := msg.Dial(ctx, ep.QUICAddr().String(), endpoint.DialOptions{
			TLS: tlsconf.ClientOptions{Pin: tlsconf.Fingerprint(nodeKey), Certificate: &cert},
		})
		if err != nil {
			log.Fatal(err)
		}
		return c
	}

	// Bob publishes his key bundle.
	bobX, _ := ecdh.X25519().GenerateKey(rand.Reader)
	bundle, _ := msg.NewKeyBundle(bob, bobX.PublicKey(), time.Now().Add(30*24*time.Hour))
	bobClient := dial(bob)
	defer bobClient.Close()
	if err := bobClient.PutKeys(ctx, bundle); err != nil {
		log.Fatal(err)
	}

	// Alice sends: Send gets and verifies Bob's bundle, seals and delivers.
	aliceClient := dial(alice)
	defer aliceClient.Close()
	if _, err := aliceClient.Send(ctx, alice, bobPub, []byte("hi bob"), "text/plain"); err != nil {
		log.Fatal(err)
	}

	// Bob fetches (waiting up to a minute for something to arrive), opens and acks.
	page, err := bobClient.Fetch(ctx, msg.FetchOptions{Wait: time.Minute})
	if err != nil {
		log.Fatal(err)
	}
	for _, f := range page.Envelopes {
		m, err := msg.Open(bobX, bobPub, f.Envelope)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s\n", m.Body)
		if _, err := bobClient.Ack(ctx, m.ID); err != nil {
			log.Fatal(err)
		}
	}
	st := srv.Stats()
	fmt.Println(st.Deliveries, "delivery,", st.Acked, "acked")
	// Output:
	// hi bob
	// 1 delivery, 1 acked
}
