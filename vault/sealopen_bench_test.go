package vault

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"testing"
)

// BenchmarkSealOpenJSON is the bench's seal-open row inside the package: Encrypt a
// 1 KiB plaintext, marshal the blob, parse it back and Decrypt it ("vault"), against
// the same JSON shape written by hand with one cipher.AEAD built up front ("stdlib").
func BenchmarkSealOpenJSON(b *testing.B) {
	v := New()
	if err := v.Unlock([]byte(abandonAbout), nil); err != nil {
		b.Fatal(err)
	}
	defer v.Lock()
	pt := bytes.Repeat([]byte("x"), 1024)
	b.Run("vault", func(b *testing.B) {
		b.SetBytes(int64(len(pt)))
		b.ReportAllocs()
		for b.Loop() {
			ed, err := v.Encrypt(pt, CurrentKeyVersion)
			if err != nil {
				b.Fatal(err)
			}
			blob, err := json.Marshal(ed)
			if err != nil {
				b.Fatal(err)
			}
			ed2, err := ParseEncryptedData(blob)
			if err != nil {
				b.Fatal(err)
			}
			out, err := v.Decrypt(ed2)
			if err != nil {
				b.Fatal(err)
			}
			wipe(out)
		}
	})
	b.Run("stdlib", func(b *testing.B) {
		key, err := v.EncryptionKeyForVersion(CurrentKeyVersion)
		if err != nil {
			b.Fatal(err)
		}
		block, err := aes.NewCipher(key.private.bytes())
		key.Destroy()
		if err != nil {
			b.Fatal(err)
		}
		gcm, err := cipher.NewGCM(block)
		if err != nil {
			b.Fatal(err)
		}
		type blobShape struct {
			KeyVersion uint32 `json:"key_version"`
			Salt       string `json:"salt"`
			IV         string `json:"iv"`
			Data       string `json:"data"`
		}
		b.SetBytes(int64(len(pt)))
		b.ReportAllocs()
		for b.Loop() {
			var salt [SaltSize]byte
			var iv [NonceSize]byte
			_, _ = rand.Read(salt[:])
			_, _ = rand.Read(iv[:])
			blob, err := json.Marshal(blobShape{
				KeyVersion: CurrentKeyVersion,
				Salt:       base64.StdEncoding.EncodeToString(salt[:]),
				IV:         base64.StdEncoding.EncodeToString(iv[:]),
				Data:       base64.StdEncoding.EncodeToString(gcm.Seal(nil, iv[:], pt, nil)),
			})
			if err != nil {
				b.Fatal(err)
			}
			var got blobShape
			if err := json.Unmarshal(blob, &got); err != nil {
				b.Fatal(err)
			}
			ivb, err := base64.StdEncoding.DecodeString(got.IV)
			if err != nil || len(ivb) != NonceSize {
				b.Fatal("iv", err)
			}
			data, err := base64.StdEncoding.DecodeString(got.Data)
			if err != nil {
				b.Fatal(err)
			}
			out, err := gcm.Open(data[:0], ivb, data, nil)
			if err != nil {
				b.Fatal(err)
			}
			wipe(out)
		}
	})
}
