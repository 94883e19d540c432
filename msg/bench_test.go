package msg

import (
	"crypto/ecdh"
	"crypto/hpke"
	"crypto/rand"
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
