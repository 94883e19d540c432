package msg

import (
	"crypto/ecdh"
	"crypto/hpke"
	"crypto/rand"
	"encoding/json"
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
