package vault

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// abandonPhrase is the BIP39 all-zero-entropy 12-word phrase.
const abandonPhrase = "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about"

// §9.3: SLIP-0010 keys of abandonPhrase with the empty passphrase.
const (
	vecIdentityPriv = "603aa5c626317fda4afd87b902e5c9de76c33f40834005245e1c5a675e92d700"
	vecIdentityPub  = "e78c2766a792f09bfccb51493968ac322283e8d021a30063784d806929762ecc"
	vecSSHHostPriv  = "be2dfaff0d268c833fd9c653b9bd352cef3ec2b211db804211c9f912b63dc3ab"
	vecSSHHostPub   = "6a9dd5c41915fba6cc22b8760263aba45b068cae7bead1d069c7b8eeb0118134"
	vecDevice1Priv  = "550f05587732eeb6bd0de879f77b89e3593a655733f794be9a05dad90c3a1d24"
	vecDevice1Pub   = "733961f7573657324f22e91f06ea4f0b359e2efa0ccffc954616dadee7444daa"
	vecAESKeyV2     = "fbed5fa9110df4214baa259a4cd6bd3902373231472d317b8f3686b1d63df17a"
	vecAESKeyV3     = "3ddaf7a4485d755c959c883347420fdc9fa2a64fb1edae8a5f312e82c210f0f0"
)

// mustHex decodes s or fails the test.
func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

// fakeClock is a manually advanced clock for WithClock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// unlocked returns a vault unlocked with abandonPhrase and the empty passphrase.
func unlocked(t testing.TB, opts ...Option) *Vault {
	t.Helper()
	v := New(opts...)
	if err := v.Unlock([]byte(abandonPhrase), nil); err != nil {
		t.Fatalf("Unlock: %v", err)
	}
	return v
}

// derivations returns the vault's derivation counter.
func derivations(v *Vault) uint64 {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.derivations
}

// cacheLen returns the number of cache entries, checking map and list agree.
func cacheLen(t *testing.T, v *Vault) int {
	t.Helper()
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.cache) != v.lru.Len() {
		t.Fatalf("cache map has %d entries, LRU list %d", len(v.cache), v.lru.Len())
	}
	return len(v.cache)
}

// cachedPrivate returns the internal private-key slice of the cache entry (t, path), or nil.
func cachedPrivate(v *Vault, typ KeyType, path string) []byte {
	v.mu.Lock()
	defer v.mu.Unlock()
	e, ok := v.cache[cacheKey{typ: typ, path: path}]
	if !ok {
		return nil
	}
	return e.Value.(*cacheEntry).dk.private.bytes()
}

func mustDeriveKey(t *testing.T, v *Vault, typ KeyType, path string) *DerivedKey {
	t.Helper()
	k, err := v.Derive(typ, path)
	if err != nil {
		t.Fatalf("Derive(%s, %q): %v", typ, path, err)
	}
	return k
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

func TestVaultRegressionVectors(t *testing.T) {
	t.Parallel()
	v := unlocked(t)
	for _, tc := range []struct {
		path, priv, pub string
	}{
		{PathIdentity, vecIdentityPriv, vecIdentityPub},
		{DevicePath(0), vecIdentityPriv, vecIdentityPub},
		{PathSSHHost, vecSSHHostPriv, vecSSHHostPub},
		{DevicePath(1), vecDevice1Priv, vecDevice1Pub},
		{"m/74h/0h/0h/1h", vecDevice1Priv, vecDevice1Pub},
	} {
		t.Run(tc.path, func(t *testing.T) {
			k, err := v.DeriveEd25519(tc.path)
			if err != nil {
				t.Fatalf("DeriveEd25519: %v", err)
			}
			if k.Type() != KeyTypeEd25519 {
				t.Errorf("Type() = %v", k.Type())
			}
			if got := hex.EncodeToString(k.PrivateKey()); got != tc.priv {
				t.Errorf("private = %s, want %s", got, tc.priv)
			}
			if got := hex.EncodeToString(k.PublicKey()); got != tc.pub {
				t.Errorf("public = %s, want %s", got, tc.pub)
			}
			priv, err := k.Ed25519()
			if err != nil {
				t.Fatalf("Ed25519(): %v", err)
			}
			pub, ok := priv.Public().(ed25519.PublicKey)
			if !ok || hex.EncodeToString(pub) != tc.pub {
				t.Errorf("Ed25519().Public() = %x, want %s", pub, tc.pub)
			}
			if len(priv) != ed25519.PrivateKeySize {
				t.Errorf("Ed25519() is %d bytes", len(priv))
			}
			if p, _ := ParsePath(tc.path); k.Path() != p.String() {
				t.Errorf("Path() = %q, want %q", k.Path(), p.String())
			}
		})
	}
	for _, tc := range []struct {
		version uint32
		path    string
		key     string
	}{
		{2, PathEncryptionV2, vecAESKeyV2},
		{3, "m/74'/2'/0'/1'", vecAESKeyV3},
	} {
		t.Run(fmt.Sprintf("AES v%d", tc.version), func(t *testing.T) {
			k, err := v.EncryptionKeyForVersion(tc.version)
			if err != nil {
				t.Fatalf("EncryptionKeyForVersion: %v", err)
			}
			if got := hex.EncodeToString(k.PrivateKey()); got != tc.key {
				t.Errorf("key = %s, want %s", got, tc.key)
			}
			if k.Type() != KeyTypeAES256GCM || k.Path() != tc.path || k.PublicKey() != nil {
				t.Errorf("type %v, path %q, public %x", k.Type(), k.Path(), k.PublicKey())
			}
			if _, err := k.Ed25519(); !errors.Is(err, ErrUnsupportedKeyType) {
				t.Errorf("Ed25519() of an AES key: %v, want ErrUnsupportedKeyType", err)
			}
			k2, err := v.DeriveEncryptionKey(tc.path)
			if err != nil || !bytes.Equal(k2.PrivateKey(), k.PrivateKey()) {
				t.Errorf("DeriveEncryptionKey(%q) differs from version %d: %v", tc.path, tc.version, err)
			}
		})
	}
}

func TestVaultSecp256k1Unsupported(t *testing.T) {
	t.Parallel()
	v := unlocked(t)
	k, err := v.Derive(KeyTypeSecp256k1, PathEthereum)
	if k != nil || !errors.Is(err, ErrUnsupportedKeyType) {
		t.Errorf("Derive(secp256k1, %q) = %v, %v, want ErrUnsupportedKeyType", PathEthereum, k, err)
	}
	for _, typ := range []KeyType{0, KeyType(99), -1} {
		if _, err := v.Derive(typ, PathIdentity); !errors.Is(err, ErrUnsupportedKeyType) {
			t.Errorf("Derive(%v): %v, want ErrUnsupportedKeyType", typ, err)
		}
	}
	// The Ethereum path is not a SLIP-0010 Ed25519 path.
	_, err = v.DeriveEd25519(PathEthereum)
	wantPathError(t, err, true)
	_, err = v.DeriveEncryptionKey(PathEthereum)
	wantPathError(t, err, true)
	_, err = v.DeriveEd25519("m/x")
	wantPathError(t, err, false)
}

func TestKeyTypeString(t *testing.T) {
	t.Parallel()
	for typ, want := range map[KeyType]string{
		KeyTypeEd25519:       "ed25519",
		KeyTypeAES256GCM:     "aes-256-gcm",
		KeyTypeSecp256k1:     "secp256k1",
		KeyType(0):           "KeyType(0)",
		KeyType(42):          "KeyType(42)",
		KeyTypeSecp256k1 + 1: "KeyType(4)",
	} {
		if got := typ.String(); got != want {
			t.Errorf("KeyType(%d).String() = %q, want %q", int(typ), got, want)
		}
	}
}

func TestVaultDecryptVector(t *testing.T) {
	t.Parallel()
	v := unlocked(t)
	ed, err := ParseEncryptedData([]byte(vectorBlob))
	if err != nil {
		t.Fatal(err)
	}
	pt, err := v.Decrypt(ed)
	if err != nil {
		t.Fatalf("Decrypt(§9.5 blob): %v", err)
	}
	if string(pt) != vectorPlaintext {
		t.Errorf("Decrypt = %q, want %q", pt, vectorPlaintext)
	}
	flipped, err := ParseEncryptedData([]byte(vectorBlobFlipped))
	if err != nil {
		t.Fatal(err)
	}
	pt, err = v.Decrypt(flipped)
	if pt != nil {
		t.Errorf("Decrypt of the flipped blob returned %q", pt)
	}
	wantBlobError(t, err, ErrDecrypt)
	// The same blob marked as version 3 is authenticated under another key.
	v3 := *ed
	v3.KeyVersion = 3
	_, err = v.Decrypt(&v3)
	wantBlobError(t, err, ErrDecrypt)
}

func TestVaultDecryptBadBlobs(t *testing.T) {
	t.Parallel()
	v := unlocked(t)
	good, err := v.Encrypt([]byte("x"), 2)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		blob *EncryptedData
		want error
	}{
		{"nil", nil, ErrMalformedBlob},
		{"zero value", &EncryptedData{}, ErrUnsupportedKeyVersion},
		{"version 1", &EncryptedData{KeyVersion: 1, Salt: good.Salt, IV: good.IV, Data: good.Data}, ErrUnsupportedKeyVersion},
		{"version too large", &EncryptedData{KeyVersion: maxKeyVersion + 1, Salt: good.Salt, IV: good.IV, Data: good.Data}, ErrUnsupportedKeyVersion},
		{"iv 8 bytes", &EncryptedData{KeyVersion: 2, Salt: good.Salt, IV: b64n(8), Data: good.Data}, ErrMalformedBlob},
		{"iv 13 bytes", &EncryptedData{KeyVersion: 2, Salt: good.Salt, IV: b64n(13), Data: good.Data}, ErrMalformedBlob},
		{"data 15 bytes", &EncryptedData{KeyVersion: 2, Salt: good.Salt, IV: good.IV, Data: b64n(15)}, ErrMalformedBlob},
		{"data empty", &EncryptedData{KeyVersion: 2, Salt: good.Salt, IV: good.IV, Data: ""}, ErrMalformedBlob},
		{"data 16 bytes", &EncryptedData{KeyVersion: 2, Salt: good.Salt, IV: good.IV, Data: b64n(16)}, ErrDecrypt},
		{"bad salt", &EncryptedData{KeyVersion: 2, Salt: "x", IV: good.IV, Data: good.Data}, ErrMalformedBlob},
		{"unpadded data", &EncryptedData{KeyVersion: 2, Salt: good.Salt, IV: good.IV, Data: strings.TrimRight(good.Data, "=")}, ErrMalformedBlob},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pt, err := v.Decrypt(tc.blob)
			if pt != nil {
				t.Errorf("Decrypt returned %q", pt)
			}
			wantBlobError(t, err, tc.want)
			if tc.blob != nil {
				_, err = v.Rotate(tc.blob, 3)
				wantBlobError(t, err, tc.want)
			}
		})
	}
}

func TestVaultEncryptRoundTrip(t *testing.T) {
	t.Parallel()
	v := unlocked(t)
	for _, version := range []uint32{2, 3, 17, maxKeyVersion} {
		for _, pt := range []string{"", "sk-test-123", strings.Repeat("\x00\xff", 1000)} {
			a, err := v.Encrypt([]byte(pt), version)
			if err != nil {
				t.Fatalf("Encrypt(v%d): %v", version, err)
			}
			if a.KeyVersion != version {
				t.Errorf("KeyVersion = %d, want %d", a.KeyVersion, version)
			}
			wantDecodedLen(t, "salt", a.Salt, SaltSize)
			wantDecodedLen(t, "iv", a.IV, NonceSize)
			wantDecodedLen(t, "data", a.Data, len(pt)+TagSize)
			got, err := v.Decrypt(a)
			if err != nil || string(got) != pt {
				t.Fatalf("Decrypt(Encrypt(%q, v%d)) = %q, %v", pt, version, got, err)
			}
			b, err := v.Encrypt([]byte(pt), version)
			if err != nil {
				t.Fatal(err)
			}
			if a.IV == b.IV || a.Data == b.Data {
				t.Errorf("two encryptions share iv or data")
			}
			// Through the JSON wire form.
			raw, err := json.Marshal(a)
			if err != nil {
				t.Fatal(err)
			}
			parsed, err := ParseEncryptedData(raw)
			if err != nil {
				t.Fatalf("ParseEncryptedData(%s): %v", raw, err)
			}
			if got, err := v.Decrypt(parsed); err != nil || string(got) != pt {
				t.Errorf("Decrypt(parsed) = %q, %v", got, err)
			}
		}
	}
	// The blob is the AES-GCM of the documented key: open with the §9.3 v2 key works.
	a, err := v.Encrypt([]byte("check"), 2)
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := openBlob(mustHex(t, vecAESKeyV2), a); err != nil || string(pt) != "check" {
		t.Errorf("open with the §9.3 v2 key = %q, %v", pt, err)
	}
	for _, bad := range []uint32{0, 1, maxKeyVersion + 1} {
		if ed, err := v.Encrypt([]byte("x"), bad); ed != nil || !errors.Is(err, ErrUnsupportedKeyVersion) {
			t.Errorf("Encrypt(v%d) = %v, %v, want ErrUnsupportedKeyVersion", bad, ed, err)
		}
	}
	// Encrypt does not retain or modify the plaintext.
	pt := []byte("plain")
	if _, err := v.Encrypt(pt, 2); err != nil || string(pt) != "plain" {
		t.Errorf("Encrypt modified its input: %q, %v", pt, err)
	}
}

func TestVaultRotate(t *testing.T) {
	t.Parallel()
	v := unlocked(t)
	old, err := v.Encrypt([]byte("sk-rotate"), 2)
	if err != nil {
		t.Fatal(err)
	}
	oldCopy := *old
	rotated, err := v.Rotate(old, 3)
	if err != nil {
		t.Fatalf("Rotate(v2 -> v3): %v", err)
	}
	if rotated.KeyVersion != 3 {
		t.Errorf("rotated KeyVersion = %d, want 3", rotated.KeyVersion)
	}
	if rotated.Data == old.Data || rotated.IV == old.IV || rotated.Salt == old.Salt {
		t.Errorf("rotated blob reuses data, iv or salt")
	}
	if *old != oldCopy {
		t.Errorf("Rotate modified the old blob")
	}
	if pt, err := v.Decrypt(rotated); err != nil || string(pt) != "sk-rotate" {
		t.Errorf("Decrypt(rotated) = %q, %v", pt, err)
	}
	if pt, err := v.Decrypt(old); err != nil || string(pt) != "sk-rotate" {
		t.Errorf("Decrypt(old v2 blob) after rotation = %q, %v", pt, err)
	}
	if pt, err := openBlob(mustHex(t, vecAESKeyV3), rotated); err != nil || string(pt) != "sk-rotate" {
		t.Errorf("rotated blob does not open with the §9.3 v3 key: %q, %v", pt, err)
	}
	if _, err := openBlob(mustHex(t, vecAESKeyV2), rotated); !errors.Is(err, ErrDecrypt) {
		t.Errorf("rotated blob opens with the v2 key: %v", err)
	}
	// The §9.5 vector rotates too.
	vec, err := ParseEncryptedData([]byte(vectorBlob))
	if err != nil {
		t.Fatal(err)
	}
	r, err := v.Rotate(vec, 4)
	if err != nil {
		t.Fatalf("Rotate(§9.5, 4): %v", err)
	}
	if pt, err := v.Decrypt(r); err != nil || string(pt) != vectorPlaintext || r.KeyVersion != 4 {
		t.Errorf("Decrypt(rotated vector) = %q, %v (version %d)", pt, err, r.KeyVersion)
	}
	// Same version: still a fresh blob.
	same, err := v.Rotate(old, 2)
	if err != nil || same.Data == old.Data {
		t.Errorf("Rotate(v2 -> v2) = %+v, %v", same, err)
	}
	// Bad targets and bad blobs.
	for _, to := range []uint32{0, 1, maxKeyVersion + 1} {
		if r, err := v.Rotate(old, to); r != nil || !errors.Is(err, ErrUnsupportedKeyVersion) {
			t.Errorf("Rotate(to %d) = %v, %v, want ErrUnsupportedKeyVersion", to, r, err)
		}
	}
	flipped, err := ParseEncryptedData([]byte(vectorBlobFlipped))
	if err != nil {
		t.Fatal(err)
	}
	if r, err := v.Rotate(flipped, 3); r != nil || !errors.Is(err, ErrDecrypt) {
		t.Errorf("Rotate(tampered) = %v, %v, want ErrDecrypt", r, err)
	}
	if r, err := v.Rotate(nil, 3); r != nil || !errors.Is(err, ErrMalformedBlob) {
		t.Errorf("Rotate(nil) = %v, %v, want ErrMalformedBlob", r, err)
	}
}

func TestVaultWrongPassphrase(t *testing.T) {
	t.Parallel()
	v := New()
	if err := v.Unlock([]byte(abandonPhrase), []byte("TREZOR")); err != nil {
		t.Fatalf("Unlock with a passphrase: %v", err)
	}
	k, err := v.DeriveEd25519(PathIdentity)
	if err != nil {
		t.Fatal(err)
	}
	if hex.EncodeToString(k.PublicKey()) == vecIdentityPub {
		t.Errorf("a different passphrase gives the same identity")
	}
	vec, err := ParseEncryptedData([]byte(vectorBlob))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Decrypt(vec); !errors.Is(err, ErrDecrypt) {
		t.Errorf("Decrypt with the wrong passphrase: %v, want ErrDecrypt", err)
	}
}

func TestVaultLifecycle(t *testing.T) {
	t.Parallel()
	v := New()
	if v.IsUnlocked() {
		t.Fatalf("a new vault is unlocked")
	}
	blob, err := ParseEncryptedData([]byte(vectorBlob))
	if err != nil {
		t.Fatal(err)
	}
	wantLocked := func(t *testing.T) {
		t.Helper()
		for name, call := range map[string]func() error{
			"Derive":                  func() error { _, err := v.Derive(KeyTypeEd25519, PathIdentity); return err },
			"DeriveEd25519":           func() error { _, err := v.DeriveEd25519(PathIdentity); return err },
			"DeriveEncryptionKey":     func() error { _, err := v.DeriveEncryptionKey(PathEncryptionV2); return err },
			"EncryptionKeyForVersion": func() error { _, err := v.EncryptionKeyForVersion(2); return err },
			"Encrypt":                 func() error { _, err := v.Encrypt([]byte("x"), 2); return err },
			"Decrypt":                 func() error { _, err := v.Decrypt(blob); return err },
			"Rotate":                  func() error { _, err := v.Rotate(blob, 3); return err },
		} {
			if err := call(); !errors.Is(err, ErrLocked) {
				t.Errorf("%s while locked: %v, want ErrLocked", name, err)
			}
		}
		if v.IsUnlocked() {
			t.Errorf("IsUnlocked() = true")
		}
	}
	t.Run("new vault is locked", wantLocked)
	v.Lock() // Lock on a locked vault is fine.
	v.EvictExpired()

	if err := v.Unlock([]byte(abandonPhrase), nil); err != nil {
		t.Fatalf("Unlock: %v", err)
	}
	if !v.IsUnlocked() {
		t.Fatalf("IsUnlocked() = false after Unlock")
	}
	first, err := v.DeriveEd25519(PathIdentity)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := v.Encrypt([]byte("lifecycle"), 2)
	if err != nil {
		t.Fatal(err)
	}

	// Every way of unlocking again is refused and leaves the seed alone.
	if err := v.Unlock([]byte(abandonPhrase), nil); !errors.Is(err, ErrAlreadyUnlocked) {
		t.Errorf("second Unlock: %v, want ErrAlreadyUnlocked", err)
	}
	if err := v.Unlock([]byte(bip39Vectors[4].phrase), nil); !errors.Is(err, ErrAlreadyUnlocked) {
		t.Errorf("Unlock with another phrase: %v, want ErrAlreadyUnlocked", err)
	}
	if err := v.Unlock([]byte("not a phrase"), nil); !errors.Is(err, ErrAlreadyUnlocked) {
		t.Errorf("Unlock with garbage while unlocked: %v, want ErrAlreadyUnlocked", err)
	}
	if m, err := v.UnlockNew(12); m != nil || !errors.Is(err, ErrAlreadyUnlocked) {
		t.Errorf("UnlockNew while unlocked: %v, %v, want ErrAlreadyUnlocked", m, err)
	}
	if err := v.UnlockMnemonic(mustParseMnemonic(t, bip39Vectors[4].phrase), nil); !errors.Is(err, ErrAlreadyUnlocked) {
		t.Errorf("UnlockMnemonic while unlocked: %v, want ErrAlreadyUnlocked", err)
	}
	if err := v.UnlockSeed(mustSeed1(t)); !errors.Is(err, ErrAlreadyUnlocked) {
		t.Errorf("UnlockSeed while unlocked: %v, want ErrAlreadyUnlocked", err)
	}
	if k, err := v.DeriveEd25519(PathIdentity); err != nil || hex.EncodeToString(k.PublicKey()) != vecIdentityPub {
		t.Errorf("seed changed by a refused unlock: %v", err)
	}

	v.Lock()
	t.Run("locked after Lock", wantLocked)
	if _, err := v.Decrypt(enc); !errors.Is(err, ErrLocked) {
		t.Errorf("Decrypt of an old blob after Lock: %v, want ErrLocked", err)
	}
	v.Lock() // twice is fine
	t.Run("locked after second Lock", wantLocked)

	if err := v.Unlock([]byte(abandonPhrase), nil); err != nil {
		t.Fatalf("re-Unlock: %v", err)
	}
	again, err := v.DeriveEd25519(PathIdentity)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again.PrivateKey(), first.PrivateKey()) || !bytes.Equal(again.PublicKey(), first.PublicKey()) {
		t.Errorf("re-Unlock with the same phrase gives another key")
	}
	if pt, err := v.Decrypt(enc); err != nil || string(pt) != "lifecycle" {
		t.Errorf("Decrypt after re-Unlock = %q, %v", pt, err)
	}
}

func TestVaultUnlockInvalidMnemonic(t *testing.T) {
	t.Parallel()
	v := New()
	for _, tc := range []struct {
		phrase string
		want   error
	}{
		{strings.TrimSpace(strings.Repeat("abandon ", 12)), ErrChecksum},
		{strings.Repeat("abandon ", 11) + "About", ErrUnknownWord},
		{"", ErrWordCount},
	} {
		err := v.Unlock([]byte(tc.phrase), nil)
		wantMnemonicError(t, err, tc.want)
		if v.IsUnlocked() {
			t.Fatalf("vault unlocked by an invalid phrase")
		}
	}
	if err := v.UnlockMnemonic(nil, nil); !errors.Is(err, ErrDestroyed) || v.IsUnlocked() {
		t.Errorf("UnlockMnemonic(nil): %v", err)
	}
	m := mustParseMnemonic(t, abandonPhrase)
	m.Destroy()
	if err := v.UnlockMnemonic(m, nil); !errors.Is(err, ErrDestroyed) || v.IsUnlocked() {
		t.Errorf("UnlockMnemonic(destroyed): %v", err)
	}
	// Unlock does not modify or retain the caller's phrase.
	phrase := []byte(abandonPhrase)
	pass := []byte("pw")
	if err := v.Unlock(phrase, pass); err != nil {
		t.Fatal(err)
	}
	if string(phrase) != abandonPhrase || string(pass) != "pw" {
		t.Errorf("Unlock modified its arguments")
	}
	k1, _ := v.DeriveEd25519(PathIdentity)
	clear(phrase)
	clear(pass)
	k2, _ := v.DeriveEd25519(PathSSHHost)
	v.Lock()
	w := New()
	if err := w.Unlock([]byte(abandonPhrase), []byte("pw")); err != nil {
		t.Fatal(err)
	}
	w1, _ := w.DeriveEd25519(PathIdentity)
	w2, _ := w.DeriveEd25519(PathSSHHost)
	if !bytes.Equal(k1.PublicKey(), w1.PublicKey()) || !bytes.Equal(k2.PublicKey(), w2.PublicKey()) {
		t.Errorf("the vault depends on the caller's phrase buffer after Unlock")
	}
}

func TestVaultUnlockNew(t *testing.T) {
	t.Parallel()
	v := New()
	m, err := v.UnlockNew(24)
	if err != nil {
		t.Fatalf("UnlockNew(24): %v", err)
	}
	if !v.IsUnlocked() || m.Words() != 24 {
		t.Fatalf("unlocked %v, %d words", v.IsUnlocked(), m.Words())
	}
	k, err := v.DeriveEd25519(PathIdentity)
	if err != nil {
		t.Fatal(err)
	}
	// The returned mnemonic (empty passphrase) reproduces the vault.
	w := New()
	if err := w.Unlock(m.Phrase(), nil); err != nil {
		t.Fatalf("Unlock(returned phrase): %v", err)
	}
	k2, err := w.DeriveEd25519(PathIdentity)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(k.PublicKey(), k2.PublicKey()) {
		t.Errorf("the returned mnemonic does not reproduce the vault's identity")
	}
	m.Destroy()
	if _, err := v.DeriveEd25519(PathSSHHost); err != nil {
		t.Errorf("derive after destroying the returned mnemonic: %v", err)
	}
	for _, words := range []int{0, 11, 13, 27} {
		u := New()
		m, err := u.UnlockNew(words)
		if m != nil {
			t.Errorf("UnlockNew(%d) returned a mnemonic", words)
		}
		wantMnemonicError(t, err, ErrWordCount)
		if u.IsUnlocked() {
			t.Errorf("UnlockNew(%d) unlocked the vault", words)
		}
	}
}

func TestVaultUnlockSeed(t *testing.T) {
	t.Parallel()
	v := New()
	seed := mustSeed1(t)
	if err := v.UnlockSeed(seed); err != nil {
		t.Fatalf("UnlockSeed: %v", err)
	}
	seed.Destroy() // the vault holds its own copy
	k, err := v.DeriveEd25519("m/0H/1H")
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(k.PrivateKey()); got != slip10Vector1[2].priv {
		t.Errorf("private = %s, want %s", got, slip10Vector1[2].priv)
	}
	u := New()
	if err := u.UnlockSeed(seed); !errors.Is(err, ErrDestroyed) || u.IsUnlocked() {
		t.Errorf("UnlockSeed(destroyed): %v", err)
	}
	if err := u.UnlockSeed(nil); !errors.Is(err, ErrDestroyed) || u.IsUnlocked() {
		t.Errorf("UnlockSeed(nil): %v", err)
	}
	// The seed from a mnemonic gives the same keys as Unlock.
	w := New()
	if err := w.UnlockSeed(mustSeed(t, mustParseMnemonic(t, abandonPhrase), nil)); err != nil {
		t.Fatal(err)
	}
	if k, err := w.DeriveEd25519(PathIdentity); err != nil || hex.EncodeToString(k.PublicKey()) != vecIdentityPub {
		t.Errorf("UnlockSeed(seed of abandonPhrase) identity: %v", err)
	}
}

func TestVaultDefaults(t *testing.T) {
	t.Parallel()
	v := New()
	if v.ttl != DefaultCacheTTL || v.size != DefaultCacheSize || v.now == nil {
		t.Errorf("defaults: ttl %v, size %d", v.ttl, v.size)
	}
	if DefaultCacheTTL != time.Hour || DefaultCacheSize != 64 {
		t.Errorf("DefaultCacheTTL %v, DefaultCacheSize %d; vault.md §6 says 1h and 64", DefaultCacheTTL, DefaultCacheSize)
	}
}

func TestCacheHitDoesNotRederive(t *testing.T) {
	t.Parallel()
	v := unlocked(t, WithClock(newFakeClock().Now))
	a := mustDeriveKey(t, v, KeyTypeEd25519, PathIdentity)
	if n := derivations(v); n != 1 {
		t.Fatalf("derivations after the first derive = %d, want 1", n)
	}
	for range 3 {
		b := mustDeriveKey(t, v, KeyTypeEd25519, PathIdentity)
		if !bytes.Equal(a.PrivateKey(), b.PrivateKey()) || !bytes.Equal(a.PublicKey(), b.PublicKey()) {
			t.Errorf("cached key differs")
		}
	}
	// Another spelling of the same path is the same entry.
	mustDeriveKey(t, v, KeyTypeEd25519, "m/74h/0H/0'/0h")
	if n := derivations(v); n != 1 {
		t.Errorf("derivations after cache hits = %d, want 1", n)
	}
	if n := cacheLen(t, v); n != 1 {
		t.Errorf("cache has %d entries, want 1", n)
	}
	// Encrypt and Decrypt reuse the cached encryption key.
	blob, err := v.Encrypt([]byte("x"), 2)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Decrypt(blob); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Encrypt([]byte("y"), 2); err != nil {
		t.Fatal(err)
	}
	if n := derivations(v); n != 2 {
		t.Errorf("derivations after Encrypt, Decrypt, Encrypt = %d, want 2", n)
	}
}

func TestCacheExpiry(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	const ttl = 10 * time.Minute
	v := unlocked(t, WithClock(clock.Now), WithCacheTTL(ttl))
	mustDeriveKey(t, v, KeyTypeEd25519, PathIdentity)
	clock.Advance(ttl - time.Nanosecond)
	mustDeriveKey(t, v, KeyTypeEd25519, PathIdentity)
	if n := derivations(v); n != 1 {
		t.Fatalf("derivations just before the TTL = %d, want 1", n)
	}
	// The hit does not extend the entry's life.
	clock.Advance(time.Nanosecond)
	old := cachedPrivate(v, KeyTypeEd25519, PathIdentity)
	k := mustDeriveKey(t, v, KeyTypeEd25519, PathIdentity)
	if n := derivations(v); n != 2 {
		t.Errorf("derivations at the TTL = %d, want 2 (expired entry re-derived)", n)
	}
	if !allZero(old) {
		t.Errorf("the expired entry was not wiped")
	}
	if hex.EncodeToString(k.PublicKey()) != vecIdentityPub {
		t.Errorf("re-derived key differs")
	}
	if n := cacheLen(t, v); n != 1 {
		t.Errorf("cache has %d entries, want 1", n)
	}
}

func TestCacheEvictExpired(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	const ttl = time.Hour
	v := unlocked(t, WithClock(clock.Now), WithCacheTTL(ttl))
	mustDeriveKey(t, v, KeyTypeEd25519, PathIdentity)
	mustDeriveKey(t, v, KeyTypeAES256GCM, PathEncryptionV2)
	clock.Advance(ttl / 2)
	mustDeriveKey(t, v, KeyTypeEd25519, PathSSHHost)
	early := [][]byte{
		cachedPrivate(v, KeyTypeEd25519, PathIdentity),
		cachedPrivate(v, KeyTypeAES256GCM, PathEncryptionV2),
	}
	late := cachedPrivate(v, KeyTypeEd25519, PathSSHHost)
	v.EvictExpired()
	if n := cacheLen(t, v); n != 3 {
		t.Fatalf("EvictExpired before any TTL removed entries: %d left", n)
	}
	clock.Advance(ttl / 2)
	v.EvictExpired()
	if n := cacheLen(t, v); n != 1 {
		t.Fatalf("after EvictExpired %d entries, want 1", n)
	}
	if cachedPrivate(v, KeyTypeEd25519, PathSSHHost) == nil {
		t.Errorf("the unexpired entry was evicted")
	}
	for i, b := range early {
		if !allZero(b) {
			t.Errorf("evicted entry %d was not wiped", i)
		}
	}
	if allZero(late) {
		t.Errorf("the unexpired entry was wiped")
	}
	clock.Advance(ttl)
	v.EvictExpired()
	if n := cacheLen(t, v); n != 0 || !allZero(late) {
		t.Errorf("after the last TTL: %d entries, wiped %v", n, allZero(late))
	}
	before := derivations(v)
	mustDeriveKey(t, v, KeyTypeEd25519, PathSSHHost)
	if derivations(v) != before+1 {
		t.Errorf("derive after EvictExpired did not re-derive")
	}
}

func TestCacheLRUEviction(t *testing.T) {
	t.Parallel()
	v := unlocked(t, WithClock(newFakeClock().Now), WithCacheSize(2))
	a, b, c := DevicePath(1), DevicePath(2), DevicePath(3)
	mustDeriveKey(t, v, KeyTypeEd25519, a)
	mustDeriveKey(t, v, KeyTypeEd25519, b)
	mustDeriveKey(t, v, KeyTypeEd25519, a) // a is now the most recently used
	bPriv := cachedPrivate(v, KeyTypeEd25519, b)
	if derivations(v) != 2 || bPriv == nil {
		t.Fatalf("setup: %d derivations", derivations(v))
	}
	mustDeriveKey(t, v, KeyTypeEd25519, c) // evicts b
	if n := cacheLen(t, v); n != 2 {
		t.Errorf("cache has %d entries, want the size 2", n)
	}
	if cachedPrivate(v, KeyTypeEd25519, b) != nil {
		t.Errorf("the least recently used entry was not evicted")
	}
	if !allZero(bPriv) {
		t.Errorf("the evicted entry was not wiped")
	}
	n := derivations(v)
	mustDeriveKey(t, v, KeyTypeEd25519, a)
	mustDeriveKey(t, v, KeyTypeEd25519, c)
	if derivations(v) != n {
		t.Errorf("a and c are not cached")
	}
	k := mustDeriveKey(t, v, KeyTypeEd25519, b)
	if derivations(v) != n+1 {
		t.Errorf("b was not re-derived")
	}
	if p, _ := ParsePath(b); k.Path() != p.String() {
		t.Errorf("Path() = %q", k.Path())
	}
	// Fill far beyond the size.
	for i := range uint32(20) {
		mustDeriveKey(t, v, KeyTypeAES256GCM, DevicePath(100+i))
	}
	if n := cacheLen(t, v); n != 2 {
		t.Errorf("cache has %d entries, want 2", n)
	}
}

func TestCacheLockEmpties(t *testing.T) {
	t.Parallel()
	v := unlocked(t, WithClock(newFakeClock().Now))
	mustDeriveKey(t, v, KeyTypeEd25519, PathIdentity)
	mustDeriveKey(t, v, KeyTypeAES256GCM, PathEncryptionV2)
	if n := cacheLen(t, v); n != 2 {
		t.Fatalf("cache has %d entries", n)
	}
	v.Lock()
	if n := cacheLen(t, v); n != 0 {
		t.Errorf("cache has %d entries after Lock", n)
	}
	if err := v.Unlock([]byte(abandonPhrase), nil); err != nil {
		t.Fatal(err)
	}
	before := derivations(v)
	mustDeriveKey(t, v, KeyTypeEd25519, PathIdentity)
	if derivations(v) != before+1 {
		t.Errorf("derive after Lock/Unlock hit a stale cache entry")
	}
}

func TestCacheKeyTypesDoNotCollide(t *testing.T) {
	t.Parallel()
	v := unlocked(t, WithClock(newFakeClock().Now))
	for _, p := range []string{PathIdentity, PathEncryptionV2} {
		ed, err := v.DeriveEd25519(p)
		if err != nil {
			t.Fatal(err)
		}
		aes, err := v.DeriveEncryptionKey(p)
		if err != nil {
			t.Fatal(err)
		}
		if ed.Type() != KeyTypeEd25519 || aes.Type() != KeyTypeAES256GCM {
			t.Errorf("%s: types %v and %v", p, ed.Type(), aes.Type())
		}
		if !bytes.Equal(ed.PrivateKey(), aes.PrivateKey()) {
			t.Errorf("%s: the Ed25519 and AES keys differ; both are the SLIP-0010 key", p)
		}
		if len(ed.PublicKey()) != ed25519.PublicKeySize || aes.PublicKey() != nil {
			t.Errorf("%s: public keys %x / %x", p, ed.PublicKey(), aes.PublicKey())
		}
		// Again, now from the cache, in the other order.
		aes2, _ := v.DeriveEncryptionKey(p)
		ed2, _ := v.DeriveEd25519(p)
		if aes2.Type() != KeyTypeAES256GCM || ed2.Type() != KeyTypeEd25519 || aes2.PublicKey() != nil || ed2.PublicKey() == nil {
			t.Errorf("%s: cached types %v and %v", p, aes2.Type(), ed2.Type())
		}
	}
	if n := derivations(v); n != 4 {
		t.Errorf("derivations = %d, want 4 (2 paths x 2 types)", n)
	}
	if n := cacheLen(t, v); n != 4 {
		t.Errorf("cache has %d entries, want 4", n)
	}
	// The Ed25519 entry at the v2 path does not poison EncryptionKeyForVersion.
	k, err := v.EncryptionKeyForVersion(2)
	if err != nil || k.Type() != KeyTypeAES256GCM || hex.EncodeToString(k.PrivateKey()) != vecAESKeyV2 {
		t.Errorf("EncryptionKeyForVersion(2) = %v, %v", k, err)
	}
}

func TestCacheDisabled(t *testing.T) {
	t.Parallel()
	for name, opts := range map[string][]Option{
		"size 0":            {WithCacheSize(0)},
		"size -1":           {WithCacheSize(-1)},
		"ttl 0":             {WithCacheTTL(0)},
		"ttl -1h":           {WithCacheTTL(-time.Hour)},
		"size 0 with clock": {WithCacheSize(0), WithClock(newFakeClock().Now)},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			v := unlocked(t, opts...)
			for i := range 3 {
				k := mustDeriveKey(t, v, KeyTypeEd25519, PathIdentity)
				if hex.EncodeToString(k.PublicKey()) != vecIdentityPub {
					t.Errorf("identity differs")
				}
				k.Destroy()
				if n := derivations(v); n != uint64(i+1) {
					t.Errorf("derivations = %d, want %d (no cache)", n, i+1)
				}
			}
			if n := cacheLen(t, v); n != 0 {
				t.Errorf("disabled cache has %d entries", n)
			}
			blob, err := v.Encrypt([]byte("nocache"), 3)
			if err != nil {
				t.Fatal(err)
			}
			if pt, err := v.Decrypt(blob); err != nil || string(pt) != "nocache" {
				t.Errorf("Decrypt = %q, %v", pt, err)
			}
			if _, err := v.Rotate(blob, 2); err != nil {
				t.Errorf("Rotate: %v", err)
			}
			v.EvictExpired()
			v.Lock()
		})
	}
}

func TestReturnedKeysAreCopies(t *testing.T) {
	t.Parallel()
	for name, opts := range map[string][]Option{
		"cached":   {WithClock(newFakeClock().Now)},
		"uncached": {WithCacheSize(0)},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			v := unlocked(t, opts...)
			a := mustDeriveKey(t, v, KeyTypeEd25519, PathIdentity)
			a.Destroy()
			if a.PrivateKey() != nil {
				t.Errorf("PrivateKey after Destroy is not nil")
			}
			if _, err := a.Ed25519(); !errors.Is(err, ErrDestroyed) {
				t.Errorf("Ed25519 after Destroy: %v, want ErrDestroyed", err)
			}
			a.Destroy() // idempotent
			b := mustDeriveKey(t, v, KeyTypeEd25519, PathIdentity)
			if got := hex.EncodeToString(b.PrivateKey()); got != vecIdentityPriv {
				t.Fatalf("derive after destroying an earlier result = %s", got)
			}
			// Accessors return copies too.
			clear(b.PrivateKey())
			clear(b.PublicKey())
			if priv, err := b.Ed25519(); err == nil {
				clear(priv)
			}
			if hex.EncodeToString(b.PrivateKey()) != vecIdentityPriv || hex.EncodeToString(b.PublicKey()) != vecIdentityPub {
				t.Errorf("wiping returned slices changed the key")
			}
			c := mustDeriveKey(t, v, KeyTypeEd25519, PathIdentity)
			if hex.EncodeToString(c.PrivateKey()) != vecIdentityPriv || hex.EncodeToString(c.PublicKey()) != vecIdentityPub {
				t.Errorf("wiping returned slices changed the cache")
			}
			// Encryption keys: Destroy does not break Encrypt/Decrypt.
			ek, err := v.EncryptionKeyForVersion(2)
			if err != nil {
				t.Fatal(err)
			}
			ek.Destroy()
			blob, err := v.Encrypt([]byte("copy"), 2)
			if err != nil {
				t.Fatal(err)
			}
			if pt, err := v.Decrypt(blob); err != nil || string(pt) != "copy" {
				t.Errorf("Decrypt after destroying a returned key = %q, %v", pt, err)
			}
			var nilKey *DerivedKey
			nilKey.Destroy()
			if nilKey.PrivateKey() != nil {
				t.Errorf("nil DerivedKey has a private key")
			}
		})
	}
}

// TestWipe keeps references to the internal secret slices and checks that Destroy and
// Lock zero them.
func TestWipe(t *testing.T) {
	t.Parallel()
	t.Run("Mnemonic", func(t *testing.T) {
		m := mustParseMnemonic(t, abandonPhrase)
		b := m.phrase.bytes()
		if allZero(b) || string(b) != abandonPhrase {
			t.Fatalf("setup")
		}
		m.Destroy()
		if !allZero(b) {
			t.Errorf("phrase not wiped: %q", b)
		}
		g, err := NewMnemonic(24)
		if err != nil {
			t.Fatal(err)
		}
		b = g.phrase.bytes()
		g.Destroy()
		if !allZero(b) {
			t.Errorf("generated phrase not wiped")
		}
	})
	t.Run("Seed", func(t *testing.T) {
		s := mustSeed(t, mustParseMnemonic(t, abandonPhrase), nil)
		b := s.b.bytes()
		if hex.EncodeToString(b) != abandonAboutEmptySeed {
			t.Fatalf("setup")
		}
		s.Destroy()
		if !allZero(b) || len(b) != SeedSize {
			t.Errorf("seed not wiped: %x", b)
		}
		s2 := mustSeed1(t)
		b = s2.b.bytes()
		s2.Destroy()
		if !allZero(b) {
			t.Errorf("NewSeed seed not wiped")
		}
	})
	t.Run("ExtendedKey", func(t *testing.T) {
		k := mustDerive(t, mustSeed1(t), "m/0H/1H")
		key, cc := k.key.bytes(), k.chainCode.bytes()
		if allZero(key) || allZero(cc) {
			t.Fatalf("setup")
		}
		k.Destroy()
		if !allZero(key) || !allZero(cc) {
			t.Errorf("extended key not wiped: %x %x", key, cc)
		}
	})
	t.Run("DerivedKey", func(t *testing.T) {
		v := unlocked(t)
		for _, typ := range []KeyType{KeyTypeEd25519, KeyTypeAES256GCM} {
			k := mustDeriveKey(t, v, typ, PathIdentity)
			b := k.private.bytes()
			if hex.EncodeToString(b) != vecIdentityPriv {
				t.Fatalf("setup")
			}
			k.Destroy()
			if !allZero(b) {
				t.Errorf("%s key not wiped", typ)
			}
		}
	})
	t.Run("Vault Lock", func(t *testing.T) {
		v := unlocked(t, WithClock(newFakeClock().Now))
		blob, err := v.Encrypt([]byte("wipe me"), 2)
		if err != nil {
			t.Fatal(err)
		}
		mustDeriveKey(t, v, KeyTypeEd25519, PathIdentity)
		mustDeriveKey(t, v, KeyTypeEd25519, PathSSHHost)
		mustDeriveKey(t, v, KeyTypeAES256GCM, PathIdentity)
		mustDeriveKey(t, v, KeyTypeAES256GCM, "m/74'/2'/0'/1'")
		var retained [][]byte
		v.mu.Lock()
		retained = append(retained, v.seed.b.bytes())
		for e := v.lru.Front(); e != nil; e = e.Next() {
			retained = append(retained, e.Value.(*cacheEntry).dk.private.bytes())
		}
		v.mu.Unlock()
		if len(retained) != 6 { // seed + 5 cache entries (v2 AES key from Encrypt)
			t.Fatalf("retained %d slices, want 6", len(retained))
		}
		for i, b := range retained {
			if allZero(b) {
				t.Fatalf("setup: slice %d is already zero", i)
			}
		}
		v.Lock()
		for i, b := range retained {
			if !allZero(b) {
				t.Errorf("slice %d (of %d) not wiped by Lock: %x", i, len(b), b)
			}
		}
		if v.IsUnlocked() {
			t.Errorf("IsUnlocked() after Lock")
		}
		if _, err := v.Decrypt(blob); !errors.Is(err, ErrLocked) {
			t.Errorf("Decrypt after Lock: %v, want ErrLocked", err)
		}
		if err := v.Unlock([]byte(abandonPhrase), nil); err != nil {
			t.Fatal(err)
		}
		if pt, err := v.Decrypt(blob); err != nil || string(pt) != "wipe me" {
			t.Errorf("Decrypt after re-Unlock = %q, %v", pt, err)
		}
		if k := mustDeriveKey(t, v, KeyTypeEd25519, PathIdentity); hex.EncodeToString(k.PrivateKey()) != vecIdentityPriv {
			t.Errorf("identity after re-Unlock differs")
		}
	})
	t.Run("Vault UnlockSeed copy", func(t *testing.T) {
		v := New()
		if err := v.UnlockSeed(mustSeed1(t)); err != nil {
			t.Fatal(err)
		}
		v.mu.Lock()
		b := v.seed.b.bytes()
		v.mu.Unlock()
		v.Lock()
		if !allZero(b) {
			t.Errorf("seed from UnlockSeed not wiped by Lock")
		}
	})
}

// TestConcurrentUseWithLockUnlock runs derives, Encrypts, Decrypts and Rotates on many
// goroutines while others Lock and Unlock; run it with -race.
func TestConcurrentUseWithLockUnlock(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	v := unlocked(t, WithCacheSize(3), WithClock(clock.Now), WithCacheTTL(time.Minute))
	seed := mustSeed(t, mustParseMnemonic(t, abandonPhrase), nil)
	mnemonic := mustParseMnemonic(t, abandonPhrase)
	blob, err := ParseEncryptedData([]byte(vectorBlob))
	if err != nil {
		t.Fatal(err)
	}
	const (
		workers    = 6
		iterations = 40
	)
	paths := []string{PathIdentity, PathSSHHost, DevicePath(1), DevicePath(2), PathEncryptionV2}
	want := map[string]string{PathIdentity: vecIdentityPub, PathSSHHost: vecSSHHostPub, DevicePath(1): vecDevice1Pub}

	var (
		wg    sync.WaitGroup
		errMu sync.Mutex
		fails []string
	)
	fail := func(format string, args ...any) {
		errMu.Lock()
		defer errMu.Unlock()
		if len(fails) < 20 {
			fails = append(fails, fmt.Sprintf(format, args...))
		}
	}
	var succeeded, locked atomic.Int64
	acceptable := func(op string, err error) bool {
		if err == nil {
			succeeded.Add(1)
			return true
		}
		if errors.Is(err, ErrLocked) {
			locked.Add(1)
		}
		if !errors.Is(err, ErrLocked) && !errors.Is(err, ErrAlreadyUnlocked) {
			fail("%s: unexpected error %v", op, err)
		}
		return false
	}
	start := make(chan struct{})
	run := func(f func(i int)) {
		wg.Go(func() {
			<-start
			for i := range iterations {
				f(i)
			}
		})
	}
	for w := range workers {
		run(func(i int) { // derive
			p := paths[(i+w)%len(paths)]
			k, err := v.DeriveEd25519(p)
			if acceptable("DeriveEd25519", err) {
				if pub, ok := want[p]; ok && hex.EncodeToString(k.PublicKey()) != pub {
					fail("DeriveEd25519(%s) gave a wrong key", p)
				}
				k.Destroy()
			}
			k, err = v.DeriveEncryptionKey(p)
			if acceptable("DeriveEncryptionKey", err) {
				if k.Type() != KeyTypeAES256GCM {
					fail("DeriveEncryptionKey type %v", k.Type())
				}
				k.Destroy()
			}
		})
		run(func(i int) { // encrypt + decrypt own blob
			pt := fmt.Appendf(nil, "secret-%d-%d", w, i)
			e, err := v.Encrypt(pt, 2+uint32(i%3))
			if !acceptable("Encrypt", err) {
				return
			}
			got, err := v.Decrypt(e)
			if acceptable("Decrypt(own)", err) && !bytes.Equal(got, pt) {
				fail("Decrypt(own) = %q, want %q", got, pt)
			}
		})
		run(func(i int) { // decrypt the vector + rotate it
			got, err := v.Decrypt(blob)
			if acceptable("Decrypt(vector)", err) && string(got) != vectorPlaintext {
				fail("Decrypt(vector) = %q", got)
			}
			r, err := v.Rotate(blob, 3+uint32(i%2))
			if acceptable("Rotate", err) {
				got, err := v.Decrypt(r)
				if acceptable("Decrypt(rotated)", err) && string(got) != vectorPlaintext {
					fail("Decrypt(rotated) = %q", got)
				}
			}
			if _, err := v.EncryptionKeyForVersion(2); !acceptable("EncryptionKeyForVersion", err) {
				return
			}
		})
	}
	for l := range 2 {
		run(func(i int) { // lock / unlock
			v.Lock()
			switch (i + l) % 3 {
			case 0:
				acceptable("Unlock", v.Unlock([]byte(abandonPhrase), nil))
			case 1:
				acceptable("UnlockSeed", v.UnlockSeed(seed))
			case 2:
				acceptable("UnlockMnemonic", v.UnlockMnemonic(mnemonic, nil))
			}
			_ = v.IsUnlocked()
		})
	}
	run(func(int) { // expire entries
		clock.Advance(20 * time.Second)
		v.EvictExpired()
	})
	close(start)
	wg.Wait()
	t.Logf("%d calls succeeded, %d returned ErrLocked", succeeded.Load(), locked.Load())
	for _, f := range fails {
		t.Error(f)
	}
	// The vault is still usable.
	v.Lock()
	if err := v.Unlock([]byte(abandonPhrase), nil); err != nil {
		t.Fatal(err)
	}
	if k, err := v.DeriveEd25519(PathIdentity); err != nil || hex.EncodeToString(k.PublicKey()) != vecIdentityPub {
		t.Errorf("after the concurrent run: %v", err)
	}
	if n := cacheLen(t, v); n > 3 {
		t.Errorf("cache has %d entries, more than its size 3", n)
	}
}

// TestEncryptedDataBlobShape: the JSON form has exactly the four frozen fields.
func TestEncryptedDataBlobShape(t *testing.T) {
	t.Parallel()
	v := unlocked(t)
	e, err := v.Encrypt([]byte("shape"), CurrentKeyVersion)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		t.Fatal(err)
	}
	if len(fields) != 4 || string(fields["key_version"]) != "2" {
		t.Errorf("blob %s: want exactly key_version, salt, iv, data with key_version 2", raw)
	}
	for _, k := range []string{"salt", "iv", "data"} {
		var s string
		if err := json.Unmarshal(fields[k], &s); err != nil {
			t.Errorf("%s is not a string: %v", k, err)
			continue
		}
		if _, err := base64.StdEncoding.Strict().DecodeString(s); err != nil || len(s)%4 != 0 {
			t.Errorf("%s %q is not padded standard base64", k, s)
		}
	}
	if !strings.HasPrefix(string(raw), `{"key_version":2,"salt":"`) {
		t.Errorf("field order: %s", raw)
	}
}
