package msg

import (
	"crypto/ed25519"
	"log/slog"
	"time"

	"crypto/ecdh"
	"crypto/hpke"
	"crypto/rand"
	"encoding/json"
	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/core/coretest"
	"github.com/alknet/alknet/core/endpoint"
	"testing"
)

// BenchmarkSealOpen seals and opens a 1 KiB body; BenchmarkHPKE is the ceiling: a plain
// crypto/hpke seal and open of the same padded size.
func BenchmarkSealOpen(b *testing.B) {
	alice, bob := newParty(b), newParty(b)
	body := make([]byte, 1<<10)
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		env, err := Seal(alice.sig, bob.pub, bob.bundle, body, "application/octet-stream", WithTime(testNow))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := Open(bob.x, bob.pub, env); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkHPKE(b *testing.B) {
	x, _ := ecdh.X25519().GenerateKey(rand.Reader)
	k, _ := hpke.NewDHKEMPrivateKey(x)
	pk := k.PublicKey()
	pt := make([]byte, innerFixedSize+paddedSize(1<<10+30))
	b.SetBytes(1 << 10)
	for b.Loop() {
		ct, err := hpke.Seal(pk, hpke.HKDFSHA256(), hpke.ChaCha20Poly1305(), nil, pt)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := hpke.Open(k, hpke.HKDFSHA256(), hpke.ChaCha20Poly1305(), nil, ct); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeDeliver decodes a deliver request carrying a 64 KiB body, as the
// server does for every delivery.
func BenchmarkDecodeDeliver(b *testing.B) {
	alice, bob := newParty(b), newParty(b)
	env, err := Seal(alice.sig, bob.pub, bob.bundle, make([]byte, 64<<10), "application/octet-stream", WithTime(testNow))
	if err != nil {
		b.Fatal(err)
	}
	frame, _ := json.Marshal(deliverRequest{Op: OpDeliver, Envelope: env})
	b.SetBytes(int64(len(frame)))
	for b.Loop() {
		if _, err := decodeRequest(frame); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkServerDeliver delivers pre-sealed 1 KiB envelopes over QUIC on loopback into
// a memory store, one at a time.
func BenchmarkServerDeliver(b *testing.B) {
	store := NewMemStore()
	defer store.Close()
	owner, sender := coretest.NewIdentity(b), coretest.NewIdentity(b)
	ownerPub := owner.Key.Public().(ed25519.PublicKey)
	srv, err := NewServer(Config{PurgeInterval: -1, SendsPerMinute: 1 << 30}, store, Hosted(ownerPub), WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	reg := core.NewRegistry()
	_ = reg.Register(srv)
	ep := coretest.NewServer(b, reg, coretest.WithConfig(core.DynamicConfig{Auth: core.AuthPolicy{Peers: []core.PeerEntry{sender.Peer("sender", ScopeSend)}}}))
	c := NewClient(ep.Dial(b, ALPN, sender, endpoint.NetworkQUIC))
	x, _ := ecdh.X25519().GenerateKey(rand.Reader)
	bundle, _ := NewKeyBundle(owner.Key, x.PublicKey(), time.Now().Add(time.Hour))
	envs := make([]*Envelope, b.N)
	for i := range envs {
		if envs[i], err = Seal(sender.Key, ownerPub, bundle, make([]byte, 1<<10), "", WithTTL(time.Hour)); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for i := range b.N {
		if _, err := c.Deliver(b.Context(), envs[i]); err != nil {
			b.Fatal(err)
		}
	}
}

// seal64K returns an envelope carrying a 64 KiB body (padded to 128 KiB).
func seal64K(b *testing.B) *Envelope {
	alice, bob := newParty(b), newParty(b)
	env, err := Seal(alice.sig, bob.pub, bob.bundle, make([]byte, 64<<10), "application/octet-stream", WithTime(testNow))
	if err != nil {
		b.Fatal(err)
	}
	return env
}

// BenchmarkEncodeDeliver encodes the request frame of a 64 KiB delivery, as
// Client.Deliver does for every call.
func BenchmarkEncodeDeliver(b *testing.B) {
	env := seal64K(b)
	frame, err := encodeRequestFrame(deliverRequest{Op: OpDeliver, Envelope: env})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(frame)))
	for b.Loop() {
		if _, err := encodeRequestFrame(deliverRequest{Op: OpDeliver, Envelope: env}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkServerListPage lists one fetch page of a mailbox holding 40 envelopes of
// a 64 KiB body on a memory store under a 2 MiB frame cap (11 fit), as fetch does.
func BenchmarkServerListPage(b *testing.B) {
	store := NewMemStore()
	defer store.Close()
	owner := newParty(b)
	srv, err := NewServer(Config{PurgeInterval: -1, MaxFrameBytes: MaxFrameBytesLimit}, store, Hosted(owner.pub), WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	data, _ := seal64K(b).MarshalJSON()
	mailbox := Mailbox(owner.pub)
	for i := range 40 {
		e := StoredEnvelope{Mailbox: mailbox, AcceptedAt: testNow.Add(time.Duration(i)), ExpiresAt: testNow.Add(time.Hour), Data: data}
		e.ID[0], e.ID[1] = byte(i), 1
		if _, _, err := store.Put(b.Context(), e, Quota{}); err != nil {
			b.Fatal(err)
		}
	}
	srv.now = func() time.Time { return testNow }
	for b.Loop() {
		items, _, refusal := srv.list(b.Context(), mailbox, "", 100)
		if refusal != nil || len(items) != 11 {
			b.Fatalf("list: %d items, %v", len(items), refusal)
		}
	}
}

// BenchmarkEncodeFetchPage encodes the response frame of a fetch page of 11 envelopes
// of a 64 KiB body (a 2 MiB frame), as the server does for every such fetch.
func BenchmarkEncodeFetchPage(b *testing.B) {
	data, _ := seal64K(b).MarshalJSON()
	fr := &fetchResponse{OK: true, Next: "cursor"}
	for range 11 {
		fr.Envelopes = append(fr.Envelopes, fetchedEnvelope{AcceptedAt: 1, ExpiresAt: 2, Envelope: data})
	}
	b.SetBytes(int64(len(encodeResponse(fr))))
	for b.Loop() {
		_ = encodeResponse(fr)
	}
}
