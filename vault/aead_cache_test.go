package vault

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"
)

// EncryptionPath must give the canonical form of its path: aeadForVersion uses it as
// the cache key without parsing it, and Derive caches under the parsed path's String.
func TestEncryptionPathCanonical(t *testing.T) {
	t.Parallel()
	// Version 2 returns the constant; it must be the path the general rule builds.
	if p, err := EncryptionPath(minKeyVersion); err != nil || p != "m/74'/2'/0'/0'" {
		t.Errorf("EncryptionPath(2) = %q, %v; want m/74'/2'/0'/0'", p, err)
	}
	for _, kv := range []uint32{minKeyVersion, CurrentKeyVersion, 3, 1000, maxKeyVersion} {
		path, err := EncryptionPath(kv)
		if err != nil {
			t.Fatalf("EncryptionPath(%d): %v", kv, err)
		}
		p, err := ParsePath(path)
		if err != nil {
			t.Fatalf("ParsePath(%q): %v", path, err)
		}
		if p.String() != path {
			t.Errorf("EncryptionPath(%d) = %q, canonical form %q", kv, path, p.String())
		}
	}
}

// cachedAEADs counts the cache entries holding a built cipher.AEAD.
func cachedAEADs(v *Vault) int {
	v.mu.Lock()
	defer v.mu.Unlock()
	n := 0
	for e := v.lru.Front(); e != nil; e = e.Next() {
		if e.Value.(*cacheEntry).aead != nil {
			n++
		}
	}
	return n
}

func TestEncryptDecryptShareCachedKey(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	const ttl = 10 * time.Minute
	v := unlocked(t, WithClock(clock.Now), WithCacheTTL(ttl))
	pt := []byte("a secret")
	ed, err := v.Encrypt(pt, CurrentKeyVersion)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		got, err := v.Decrypt(ed)
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("Decrypt = %q, %v", got, err)
		}
	}
	if _, err := v.Encrypt(pt, CurrentKeyVersion); err != nil {
		t.Fatal(err)
	}
	if n := derivations(v); n != 1 {
		t.Errorf("derivations after 2 encrypts and 3 decrypts = %d, want 1", n)
	}
	if n := cachedAEADs(v); n != 1 {
		t.Errorf("cached AEADs = %d, want 1", n)
	}
	// A Derive of the same key hits the same entry.
	k := mustDeriveKey(t, v, KeyTypeAES256GCM, PathEncryptionV2)
	k.Destroy()
	if n := derivations(v); n != 1 {
		t.Errorf("derivations after Derive of the encryption key = %d, want 1", n)
	}

	// The AEAD goes with its entry when the TTL passes.
	clock.Advance(ttl)
	old := cachedPrivate(v, KeyTypeAES256GCM, PathEncryptionV2)
	got, err := v.Decrypt(ed)
	if err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("Decrypt after expiry = %q, %v", got, err)
	}
	if n := derivations(v); n != 2 {
		t.Errorf("derivations after expiry = %d, want 2", n)
	}
	if !allZero(old) {
		t.Errorf("the expired key was not wiped")
	}

	// Lock drops it too, and refuses both operations.
	v.Lock()
	if n := cachedAEADs(v); n != 0 {
		t.Errorf("cached AEADs after Lock = %d, want 0", n)
	}
	if _, err := v.Encrypt(pt, CurrentKeyVersion); !errors.Is(err, ErrLocked) {
		t.Errorf("Encrypt when locked: %v, want ErrLocked", err)
	}
	if _, err := v.Decrypt(ed); !errors.Is(err, ErrLocked) {
		t.Errorf("Decrypt when locked: %v, want ErrLocked", err)
	}
	if err := v.Unlock([]byte(abandonPhrase), nil); err != nil {
		t.Fatal(err)
	}
	if got, err := v.Decrypt(ed); err != nil || !bytes.Equal(got, pt) {
		t.Errorf("Decrypt after unlocking again = %q, %v", got, err)
	}
}

func TestEncryptDecryptWithoutCache(t *testing.T) {
	t.Parallel()
	v := unlocked(t, WithCacheSize(0))
	cached := unlocked(t)
	pt := []byte("a secret")
	ed, err := v.Encrypt(pt, CurrentKeyVersion)
	if err != nil {
		t.Fatal(err)
	}
	// Both vaults hold the same seed: either opens the other's blob.
	if got, err := cached.Decrypt(ed); err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("cached vault's Decrypt = %q, %v", got, err)
	}
	ed2, err := cached.Encrypt(pt, 3)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := v.Decrypt(ed2); err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("uncached vault's Decrypt = %q, %v", got, err)
	}
	if n := derivations(v); n != 2 {
		t.Errorf("derivations without a cache = %d, want 2 (one per call)", n)
	}
	if v.lru.Len() != 0 {
		t.Errorf("the disabled cache holds %d entries", v.lru.Len())
	}
}

// checkField (Validate, no output kept) and decodeField (Decrypt) must accept and
// reject the same text, including around checkField's chunk boundary.
func TestCheckFieldAgreesWithDecodeField(t *testing.T) {
	t.Parallel()
	valid := func(n int) string { return base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xa5}, n)) }
	var cases []string
	for _, n := range []int{0, 1, 2, 3, 16, 17, 18, 765, 766, 767, 768, 769, 770, 1536, 1537, 4000} {
		s := valid(n)
		cases = append(cases, s, s+"====", s+"AA==", s+"A===", s+"\n", strings.ToUpper(s))
		if len(s) > 0 {
			cases = append(cases, s[:len(s)-1], s[1:], s[:len(s)-1]+"!")
		}
	}
	// Padding at the end of the first chunk, then more data: valid per chunk, invalid
	// as a whole.
	cases = append(cases,
		valid(765)+"QQ=="+valid(3),
		valid(765)+"QUE="+valid(300),
		valid(762)+"QQ=="+valid(3),
		valid(768)[:checkChunk-2]+"==",
		"QR==",                         // non-zero trailing bits
		valid(768)[:checkChunk]+"QR==", // the same after a full chunk
		strings.Repeat("=", 8),         // padding only
		valid(768)[:checkChunk]+"====", // a group of padding alone
	)
	for _, s := range cases {
		_, decErr := decodeField("data", s, 0, -1)
		chkErr := checkField("data", s, 0, -1)
		if (decErr == nil) != (chkErr == nil) {
			t.Errorf("len %d %.20q…: decodeField %v, checkField %v", len(s), s, decErr, chkErr)
		}
		if chkErr != nil && !errors.Is(chkErr, ErrMalformedBlob) {
			t.Errorf("checkField error %v does not wrap ErrMalformedBlob", chkErr)
		}
		for _, lim := range [][2]int{{TagSize, -1}, {SaltSize, SaltSize}, {NonceSize, NonceSize}} {
			_, decErr := decodeField("x", s, lim[0], lim[1])
			chkErr := checkField("x", s, lim[0], lim[1])
			if (decErr == nil) != (chkErr == nil) || (decErr != nil && decErr.Error() != chkErr.Error()) {
				t.Errorf("len %d limits %v: decodeField %v, checkField %v", len(s), lim, decErr, chkErr)
			}
		}
	}
}
