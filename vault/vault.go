package vault

import (
	"bytes"
	"container/list"
	"crypto/cipher"
	"crypto/ed25519"
	"fmt"
	"sync"
	"time"
)

// KeyType is the kind of a derived key.
type KeyType int

// Key types.
const (
	// KeyTypeEd25519 is a SLIP-0010 Ed25519 signing key.
	KeyTypeEd25519 KeyType = iota + 1
	// KeyTypeAES256GCM is a 32-byte AES-256-GCM key derived like an Ed25519 node (the
	// node's private key bytes are the AES key).
	KeyTypeAES256GCM
	// KeyTypeSecp256k1 is a BIP32 secp256k1 key (Ethereum). Not built in: deriving it
	// returns ErrUnsupportedKeyType.
	KeyTypeSecp256k1
)

// String returns "ed25519", "aes-256-gcm", "secp256k1" or "KeyType(n)".
func (t KeyType) String() string {
	switch t {
	case KeyTypeEd25519:
		return "ed25519"
	case KeyTypeAES256GCM:
		return "aes-256-gcm"
	case KeyTypeSecp256k1:
		return "secp256k1"
	}
	return fmt.Sprintf("KeyType(%d)", int(t))
}

// DerivedKey is a key derived from the vault's seed. It prints and marshals as
// [Redacted], refuses to be unmarshalled, and Destroy wipes it. Each call that returns
// one returns a fresh copy owned by the caller.
type DerivedKey struct {
	redacted
	typ     KeyType
	path    string
	private *secretBytes
	public  []byte
}

// Type returns the key's type.
func (k *DerivedKey) Type() KeyType { return k.typ }

// Path returns the derivation path.
func (k *DerivedKey) Path() string { return k.path }

// PublicKey returns a copy of the public key: 32 bytes for Ed25519, nil for an AES key.
func (k *DerivedKey) PublicKey() []byte { return bytes.Clone(k.public) }

// PrivateKey returns a copy of the private key bytes: the 32-byte SLIP-0010 key (an
// RFC 8032 seed for Ed25519, the AES key for AES-256-GCM). The caller should wipe it.
// After Destroy it returns nil.
func (k *DerivedKey) PrivateKey() []byte {
	if k == nil || k.private == nil {
		return nil
	}
	return bytes.Clone(k.private.bytes())
}

// Ed25519 returns the key as an ed25519.PrivateKey (64 bytes), owned by the caller.
// It fails for other key types and after Destroy.
func (k *DerivedKey) Ed25519() (ed25519.PrivateKey, error) {
	if k == nil || k.private == nil {
		return nil, ErrDestroyed
	}
	if k.typ != KeyTypeEd25519 {
		return nil, fmt.Errorf("%w: %s key is not an Ed25519 key", ErrUnsupportedKeyType, k.typ)
	}
	return ed25519.NewKeyFromSeed(k.private.bytes()), nil
}

// Destroy wipes the private key.
func (k *DerivedKey) Destroy() {
	if k == nil || k.private == nil {
		return
	}
	k.private.wipe()
	k.private = nil
}

// clone returns an independent copy.
func (k *DerivedKey) clone() *DerivedKey {
	return &DerivedKey{typ: k.typ, path: k.path, private: k.private.clone(), public: bytes.Clone(k.public)}
}

// Cache defaults.
const (
	// DefaultCacheTTL is how long a derived key stays cached.
	DefaultCacheTTL = time.Hour
	// DefaultCacheSize is the most keys the cache holds; the least recently used one is
	// evicted (and wiped) beyond it.
	DefaultCacheSize = 64
)

// Option configures a Vault.
type Option func(*Vault)

// WithCacheTTL sets how long derived keys stay cached (default DefaultCacheTTL).
// A TTL ≤ 0 disables the cache.
func WithCacheTTL(d time.Duration) Option { return func(v *Vault) { v.ttl = d } }

// WithCacheSize sets the most cached keys (default DefaultCacheSize). A size ≤ 0
// disables the cache.
func WithCacheSize(n int) Option { return func(v *Vault) { v.size = n } }

// WithClock sets the clock used for cache expiry (default time.Now); for tests.
func WithClock(now func() time.Time) Option { return func(v *Vault) { v.now = now } }

// Vault holds a seed while unlocked and derives keys from it. It starts locked. All
// methods are safe for concurrent use; every derive, encrypt and decrypt on a locked
// vault returns ErrLocked. The vault is a local library: it has no network surface and
// nothing in it is ever sent over the wire except public keys its caller chooses to send.
type Vault struct {
	ttl  time.Duration
	size int
	now  func() time.Time

	mu    sync.Mutex
	seed  *Seed
	cache map[cacheKey]*list.Element
	lru   *list.List // of *cacheEntry, most recent at the front
	// derivations counts SLIP-0010 derivations (cache misses), for tests.
	derivations uint64
}

type cacheKey struct {
	typ  KeyType
	path string
}

type cacheEntry struct {
	key     cacheKey
	dk      *DerivedKey
	expires time.Time
	// aead is AES-256-GCM under dk, built on the first Encrypt or Decrypt with an
	// AES-256-GCM key and dropped with the entry. Its key schedule cannot be wiped (the
	// standard library keeps it); before the cache held it, every Encrypt and Decrypt
	// built one and left it to the garbage collector, so holding one per cached key
	// leaves fewer copies in memory, not more.
	aead cipher.AEAD
}

// New returns a locked vault.
func New(opts ...Option) *Vault {
	v := &Vault{ttl: DefaultCacheTTL, size: DefaultCacheSize, now: time.Now}
	for _, o := range opts {
		o(v)
	}
	v.cache = make(map[cacheKey]*list.Element)
	v.lru = list.New()
	return v
}

// Unlock parses phrase as a BIP39 mnemonic and unlocks the vault with the seed of
// phrase and passphrase (nil is the empty passphrase). It returns ErrAlreadyUnlocked
// when unlocked, or a *MnemonicError. A wrong passphrase cannot be detected: it unlocks
// a different, valid seed. phrase and passphrase are not retained.
func (v *Vault) Unlock(phrase, passphrase []byte) error {
	if v.IsUnlocked() {
		return ErrAlreadyUnlocked
	}
	m, err := ParseMnemonic(phrase)
	if err != nil {
		return err
	}
	defer m.Destroy()
	return v.UnlockMnemonic(m, passphrase)
}

// UnlockMnemonic unlocks the vault with m's seed for passphrase. m is not retained.
func (v *Vault) UnlockMnemonic(m *Mnemonic, passphrase []byte) error {
	if v.IsUnlocked() {
		return ErrAlreadyUnlocked
	}
	seed, err := m.Seed(passphrase)
	if err != nil {
		return err
	}
	return v.unlockSeed(seed)
}

// UnlockSeed unlocks the vault with a copy of seed (for seeds that do not come from a
// mnemonic). The caller keeps ownership of seed.
func (v *Vault) UnlockSeed(seed *Seed) error {
	b := seed.Bytes()
	if b == nil {
		return ErrDestroyed
	}
	defer wipe(b)
	s, err := NewSeed(b)
	if err != nil {
		return err
	}
	return v.unlockSeed(s)
}

// UnlockNew generates a mnemonic of words words, unlocks the vault with it (empty
// passphrase) and returns it so the user can write it down. The caller owns the
// mnemonic and should Destroy it once shown.
func (v *Vault) UnlockNew(words int) (*Mnemonic, error) {
	if v.IsUnlocked() {
		return nil, ErrAlreadyUnlocked
	}
	m, err := NewMnemonic(words)
	if err != nil {
		return nil, err
	}
	if err := v.UnlockMnemonic(m, nil); err != nil {
		m.Destroy()
		return nil, err
	}
	return m, nil
}

// unlockSeed takes ownership of seed.
func (v *Vault) unlockSeed(seed *Seed) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.seed != nil {
		seed.Destroy()
		return ErrAlreadyUnlocked
	}
	v.seed = seed
	return nil
}

// Lock wipes the seed and every cached key. It is idempotent.
func (v *Vault) Lock() {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.seed.Destroy()
	v.seed = nil
	v.clearCacheLocked()
}

// IsUnlocked reports whether the vault holds a seed.
func (v *Vault) IsUnlocked() bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.seed != nil
}

// Derive returns the key of type t at path. Ed25519 and AES-256-GCM keys use SLIP-0010
// (hardened indices only: ErrNotHardened); secp256k1 is not built in
// (ErrUnsupportedKeyType). The caller owns the result and should Destroy it.
func (v *Vault) Derive(t KeyType, path string) (*DerivedKey, error) {
	switch t {
	case KeyTypeEd25519, KeyTypeAES256GCM:
	default:
		return nil, fmt.Errorf("%w: %s", ErrUnsupportedKeyType, t)
	}
	p, err := ParsePath(path)
	if err != nil {
		return nil, err
	}
	canonical := p.String()
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.seed == nil {
		return nil, ErrLocked
	}
	ck := cacheKey{typ: t, path: canonical}
	if ent := v.cacheEntryLocked(ck); ent != nil {
		return ent.dk.clone(), nil
	}
	dk, err := v.deriveLocked(t, p, path)
	if err != nil {
		return nil, err
	}
	if v.cachePutLocked(ck, dk) {
		return dk.clone(), nil
	}
	return dk, nil
}

// deriveLocked derives the key of type t at p (given as path) from the seed, which
// must be present; the caller owns the result.
func (v *Vault) deriveLocked(t KeyType, p Path, path string) (*DerivedKey, error) {
	ek, err := deriveEd25519(v.seed, p, path)
	if err != nil {
		return nil, err
	}
	defer ek.Destroy()
	v.derivations++
	dk := &DerivedKey{typ: t, path: p.String(), private: ek.key.clone()}
	if t == KeyTypeEd25519 {
		dk.public = ek.PublicKey()
	}
	return dk, nil
}

// DeriveEd25519 returns the Ed25519 key at path (see Derive).
func (v *Vault) DeriveEd25519(path string) (*DerivedKey, error) {
	return v.Derive(KeyTypeEd25519, path)
}

// DeriveEncryptionKey returns the AES-256-GCM key at path (see Derive).
func (v *Vault) DeriveEncryptionKey(path string) (*DerivedKey, error) {
	return v.Derive(KeyTypeAES256GCM, path)
}

// EncryptionKeyForVersion returns the AES-256-GCM key of EncryptedData key version
// kv, derived at EncryptionPath(kv).
func (v *Vault) EncryptionKeyForVersion(kv uint32) (*DerivedKey, error) {
	path, err := EncryptionPath(kv)
	if err != nil {
		return nil, err
	}
	return v.DeriveEncryptionKey(path)
}

// Encrypt seals plaintext under the key of version kv (use CurrentKeyVersion) with a
// fresh random nonce and salt.
func (v *Vault) Encrypt(plaintext []byte, kv uint32) (*EncryptedData, error) {
	gcm, err := v.aeadForVersion(kv)
	if err != nil {
		return nil, err
	}
	return sealWith(gcm, kv, plaintext), nil
}

// Decrypt validates e and decrypts it with the key of its version. A wrong key and a
// tampered or corrupted blob all give ErrDecrypt; a badly shaped blob gives
// ErrMalformedBlob. The caller owns the plaintext and should wipe it.
func (v *Vault) Decrypt(e *EncryptedData) ([]byte, error) {
	if e == nil {
		return nil, fmt.Errorf("%w: nil blob", ErrMalformedBlob)
	}
	iv, data, err := e.decode()
	if err != nil {
		return nil, err
	}
	gcm, err := v.aeadForVersion(e.KeyVersion)
	if err != nil {
		return nil, err
	}
	return openWith(gcm, iv, data)
}

// aeadForVersion returns AES-256-GCM under the key of version kv: the cached key's
// cipher.AEAD, built once per cached key, or, with the cache disabled, one built from a
// key derived for this call and wiped before returning. The AEAD stays usable after
// Lock, as a key copy returned by Derive does, so an operation under way completes.
func (v *Vault) aeadForVersion(kv uint32) (cipher.AEAD, error) {
	path, err := EncryptionPath(kv) // already canonical
	if err != nil {
		return nil, err
	}
	ck := cacheKey{typ: KeyTypeAES256GCM, path: path}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.seed == nil {
		return nil, ErrLocked
	}
	if ent := v.cacheEntryLocked(ck); ent != nil {
		if ent.aead == nil {
			if ent.aead, err = newGCM(ent.dk.private.bytes()); err != nil {
				return nil, err
			}
		}
		return ent.aead, nil
	}
	p, err := ParsePath(path)
	if err != nil {
		return nil, err
	}
	dk, err := v.deriveLocked(KeyTypeAES256GCM, p, path)
	if err != nil {
		return nil, err
	}
	gcm, err := newGCM(dk.private.bytes())
	if v.cachePutLocked(ck, dk) {
		if err == nil {
			v.cache[ck].Value.(*cacheEntry).aead = gcm
		}
	} else {
		dk.Destroy()
	}
	if err != nil {
		return nil, err
	}
	return gcm, nil
}

// Rotate decrypts e with its version's key and encrypts the plaintext again under
// version to, with a new nonce and salt. The caller stores the result; old versions stay
// derivable, so a partial rotation is safe.
func (v *Vault) Rotate(e *EncryptedData, to uint32) (*EncryptedData, error) {
	if err := checkKeyVersion(to); err != nil {
		return nil, err
	}
	pt, err := v.Decrypt(e)
	if err != nil {
		return nil, err
	}
	defer wipe(pt)
	return v.Encrypt(pt, to)
}

// EvictExpired wipes and removes every cached key whose TTL has passed. Expired entries
// are also dropped lazily when looked up.
func (v *Vault) EvictExpired() {
	v.mu.Lock()
	defer v.mu.Unlock()
	now := v.now()
	for e := v.lru.Back(); e != nil; {
		prev := e.Prev()
		if ent := e.Value.(*cacheEntry); !now.Before(ent.expires) {
			v.removeLocked(e)
		}
		e = prev
	}
}

func (v *Vault) cacheEnabled() bool { return v.ttl > 0 && v.size > 0 }

// cacheEntryLocked returns the live cache entry of k, or nil.
func (v *Vault) cacheEntryLocked(k cacheKey) *cacheEntry {
	e, ok := v.cache[k]
	if !ok {
		return nil
	}
	ent := e.Value.(*cacheEntry)
	if !v.now().Before(ent.expires) {
		v.removeLocked(e)
		return nil
	}
	v.lru.MoveToFront(e)
	return ent
}

// cachePutLocked stores dk (taking ownership) and evicts beyond the size bound. It
// reports false, leaving dk to the caller, when the cache is disabled.
func (v *Vault) cachePutLocked(k cacheKey, dk *DerivedKey) bool {
	if !v.cacheEnabled() {
		return false
	}
	v.cache[k] = v.lru.PushFront(&cacheEntry{key: k, dk: dk, expires: v.now().Add(v.ttl)})
	for v.lru.Len() > v.size {
		v.removeLocked(v.lru.Back())
	}
	return true
}

func (v *Vault) removeLocked(e *list.Element) {
	ent := v.lru.Remove(e).(*cacheEntry)
	delete(v.cache, ent.key)
	ent.dk.Destroy()
}

func (v *Vault) clearCacheLocked() {
	for e := v.lru.Front(); e != nil; e = e.Next() {
		e.Value.(*cacheEntry).dk.Destroy()
	}
	v.lru.Init()
	clear(v.cache)
}
