package vault

import (
	"bytes"
	"testing"
)

func BenchmarkSeed(b *testing.B) {
	m := mustMnemonic(b, abandonAbout)
	b.ReportAllocs()
	for b.Loop() {
		s, err := m.Seed([]byte("TREZOR"))
		if err != nil {
			b.Fatal(err)
		}
		s.Destroy()
	}
}

func BenchmarkParseMnemonic(b *testing.B) {
	phrase := []byte(abandonAbout)
	b.ReportAllocs()
	for b.Loop() {
		m, err := ParseMnemonic(phrase)
		if err != nil {
			b.Fatal(err)
		}
		m.Destroy()
	}
}

func BenchmarkDeriveEd25519(b *testing.B) {
	seed, _ := NewSeed(bytes.Repeat([]byte{7}, 64))
	b.ReportAllocs()
	for b.Loop() {
		k, err := DeriveEd25519(seed, PathIdentity)
		if err != nil {
			b.Fatal(err)
		}
		k.Destroy()
	}
}

// BenchmarkVaultDerive measures a cached derive (the common case: a copy of the
// cached key) and an uncached one.
func BenchmarkVaultDerive(b *testing.B) {
	for _, bc := range []struct {
		name string
		opts []Option
	}{{"cached", nil}, {"uncached", []Option{WithCacheSize(0)}}} {
		b.Run(bc.name, func(b *testing.B) {
			v := New(bc.opts...)
			if err := v.Unlock([]byte(abandonAbout), nil); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				k, err := v.DeriveEd25519(PathIdentity)
				if err != nil {
					b.Fatal(err)
				}
				k.Destroy()
			}
		})
	}
}

func BenchmarkEncryptDecrypt(b *testing.B) {
	v := New()
	if err := v.Unlock([]byte(abandonAbout), nil); err != nil {
		b.Fatal(err)
	}
	pt := bytes.Repeat([]byte("x"), 1024)
	b.SetBytes(int64(len(pt)))
	b.ReportAllocs()
	for b.Loop() {
		ed, err := v.Encrypt(pt, CurrentKeyVersion)
		if err != nil {
			b.Fatal(err)
		}
		out, err := v.Decrypt(ed)
		if err != nil {
			b.Fatal(err)
		}
		wipe(out)
	}
}

func BenchmarkParseEncryptedData(b *testing.B) {
	blob := []byte(`{"key_version":2,"salt":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","iv":"DA0ODxAREhMUFRYX","data":"w1j3EjEFq6LZ4xgwGr8Sn8luZSNPyTF9G+Ot"}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseEncryptedData(blob); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpenKeystore measures an unlock with the default Argon2id parameters
// (t=3, 64 MiB, p=4): the cost a node pays once at start.
func BenchmarkOpenKeystore(b *testing.B) {
	data, err := SealKeystore(mustMnemonic(b, abandonAbout), nil, []byte("pw"), DefaultKeystoreParams())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		m, _, err := OpenKeystore(data, []byte("pw"), DefaultKeystoreLimits())
		if err != nil {
			b.Fatal(err)
		}
		m.Destroy()
	}
}
