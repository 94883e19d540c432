package core

import (
	"context"
	"crypto/subtle"
	"slices"
	"sync"
)

// StoreErrorKind classifies a [StoreError].
type StoreErrorKind int

// Store error kinds.
const (
	// StoreBackend is a failure of the storage behind the store.
	StoreBackend StoreErrorKind = iota
	// StoreNotFound means the entry does not exist; errors.Is(err, ErrNotFound) holds.
	StoreNotFound
	// StoreSerialization is a failure to encode or decode an entry.
	StoreSerialization
)

// StoreError is returned by the stores in this package. Its text is
// "backend error: <detail>", "not found: <detail>" or "serialization error: <detail>".
type StoreError struct {
	Kind   StoreErrorKind
	Detail string
	Err    error // underlying cause, may be nil
}

// Error returns the kind's prefix and the detail.
func (e *StoreError) Error() string {
	switch e.Kind {
	case StoreNotFound:
		return "not found: " + e.Detail
	case StoreSerialization:
		return "serialization error: " + e.Detail
	default:
		return "backend error: " + e.Detail
	}
}

// Unwrap returns the underlying cause.
func (e *StoreError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrNotFound) hold for StoreNotFound.
func (e *StoreError) Is(target error) bool { return e.Kind == StoreNotFound && target == ErrNotFound }

// EncryptedData is a sealed secret as the vault produces it. Byte fields marshal as
// padded standard base64 (the Rust original wrote number arrays; such stores need
// converting).
type EncryptedData struct {
	KeyVersion uint32 `json:"key_version"`
	Salt       []byte `json:"salt"`
	IV         []byte `json:"iv"`
	Data       []byte `json:"data"`
}

// CredentialStore keeps sealed outbound credentials by provider name. It never decrypts:
// only the vault does.
type CredentialStore interface {
	// Get returns the sealed credential for provider; a missing one is normal.
	Get(provider string) (EncryptedData, bool)
	// Put stores d for provider, replacing any previous entry.
	Put(ctx context.Context, provider string, d EncryptedData) error
	// Delete removes provider's entry; deleting a missing one is not an error.
	Delete(ctx context.Context, provider string) error
}

// InMemoryCredentialStore is a CredentialStore held in memory.
type InMemoryCredentialStore struct {
	mu sync.RWMutex
	m  map[string]EncryptedData
}

// NewInMemoryCredentialStore returns a store seeded with entries (copied).
func NewInMemoryCredentialStore(entries map[string]EncryptedData) *InMemoryCredentialStore {
	s := &InMemoryCredentialStore{m: make(map[string]EncryptedData, len(entries))}
	for k, v := range entries {
		s.m[k] = cloneEncrypted(v)
	}
	return s
}

func cloneEncrypted(d EncryptedData) EncryptedData {
	return EncryptedData{KeyVersion: d.KeyVersion, Salt: slices.Clone(d.Salt), IV: slices.Clone(d.IV), Data: slices.Clone(d.Data)}
}

// Get implements CredentialStore.
func (s *InMemoryCredentialStore) Get(provider string) (EncryptedData, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	d, ok := s.m[provider]
	if !ok {
		return EncryptedData{}, false
	}
	return cloneEncrypted(d), true
}

// Put implements CredentialStore.
func (s *InMemoryCredentialStore) Put(_ context.Context, provider string, d EncryptedData) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = make(map[string]EncryptedData)
	}
	s.m[provider] = cloneEncrypted(d)
	return nil
}

// Delete implements CredentialStore.
func (s *InMemoryCredentialStore) Delete(_ context.Context, provider string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, provider)
	return nil
}

// OwnershipProvider answers who owns which resource. It is synchronous (the call
// dispatcher asks it on every access check); owners are compared by Identity.ID.
type OwnershipProvider interface {
	// Owns reports whether id owns the resource. The action is accepted for future
	// per-action rules and ignored by the in-memory provider.
	Owns(id *Identity, resourceType, resourceID, action string) bool
	// OwnedResources lists the ids of resources of resourceType owned by id.
	OwnedResources(id *Identity, resourceType string) []string
	// OwnsAny reports whether id owns at least one resource of resourceType.
	OwnsAny(id *Identity, resourceType string) bool
}

// OwnershipStore is the write side, called by the handler that manages a resource's life.
type OwnershipStore interface {
	OwnershipProvider
	// Record makes id the owner of the resource, replacing any previous owner.
	Record(ctx context.Context, id *Identity, resourceType, resourceID string) error
	// Revoke forgets the resource's owner; revoking an unknown resource is not an error.
	Revoke(ctx context.Context, resourceType, resourceID string) error
}

type resourceKey struct{ typ, id string }

// InMemoryOwnership is an OwnershipStore held in memory.
type InMemoryOwnership struct {
	mu     sync.RWMutex
	owners map[resourceKey]string
}

// NewInMemoryOwnership returns an empty ownership store.
func NewInMemoryOwnership() *InMemoryOwnership {
	return &InMemoryOwnership{owners: make(map[resourceKey]string)}
}

// Owns implements OwnershipProvider.
func (o *InMemoryOwnership) Owns(id *Identity, resourceType, resourceID, _ string) bool {
	if id == nil {
		return false
	}
	o.mu.RLock()
	defer o.mu.RUnlock()
	owner, ok := o.owners[resourceKey{resourceType, resourceID}]
	return ok && owner == id.ID
}

// OwnedResources implements OwnershipProvider; the result is sorted.
func (o *InMemoryOwnership) OwnedResources(id *Identity, resourceType string) []string {
	if id == nil {
		return nil
	}
	o.mu.RLock()
	defer o.mu.RUnlock()
	var out []string
	for k, owner := range o.owners {
		if k.typ == resourceType && owner == id.ID {
			out = append(out, k.id)
		}
	}
	slices.Sort(out)
	return out
}

// OwnsAny implements OwnershipProvider.
func (o *InMemoryOwnership) OwnsAny(id *Identity, resourceType string) bool {
	if id == nil {
		return false
	}
	o.mu.RLock()
	defer o.mu.RUnlock()
	for k, owner := range o.owners {
		if k.typ == resourceType && owner == id.ID {
			return true
		}
	}
	return false
}

// Record implements OwnershipStore.
func (o *InMemoryOwnership) Record(_ context.Context, id *Identity, resourceType, resourceID string) error {
	if id == nil {
		return &StoreError{Kind: StoreBackend, Detail: "record ownership: nil identity"}
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.owners == nil {
		o.owners = make(map[resourceKey]string)
	}
	o.owners[resourceKey{resourceType, resourceID}] = id.ID
	return nil
}

// Revoke implements OwnershipStore.
func (o *InMemoryOwnership) Revoke(_ context.Context, resourceType, resourceID string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.owners, resourceKey{resourceType, resourceID})
	return nil
}

// InMemoryIdentityStore is an [IdentityStore] of peers held in memory (no API keys).
// Resolution follows the same rules as [ConfigIdentityProvider].
type InMemoryIdentityStore struct {
	mu    sync.RWMutex
	peers []PeerEntry
}

// NewInMemoryIdentityStore returns a store seeded with peers (copied).
func NewInMemoryIdentityStore(peers ...PeerEntry) *InMemoryIdentityStore {
	s := &InMemoryIdentityStore{}
	for _, p := range peers {
		s.peers = append(s.peers, p.Clone())
	}
	return s
}

// ResolveFromFingerprint implements IdentityProvider.
func (s *InMemoryIdentityStore) ResolveFromFingerprint(fp string) (*Identity, bool) {
	if fp == "" {
		return nil, false
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, p := range s.peers {
		if p.Enabled && slices.Contains(p.Fingerprints, fp) {
			id := p.Identity()
			return &id, true
		}
	}
	return nil, false
}

// ResolveFromToken implements IdentityProvider (peer tokens only).
func (s *InMemoryIdentityStore) ResolveFromToken(tok AuthToken) (*Identity, bool) {
	if len(tok.Raw) == 0 {
		return nil, false
	}
	h := []byte(HashToken(tok.Raw))
	s.mu.RLock()
	defer s.mu.RUnlock()
	match := -1
	for i, p := range s.peers {
		if p.AuthTokenHash != "" && subtle.ConstantTimeCompare(h, []byte(p.AuthTokenHash)) == 1 && p.Enabled && match < 0 {
			match = i
		}
	}
	if match < 0 {
		return nil, false
	}
	id := s.peers[match].Identity()
	return &id, true
}

// PutPeer implements IdentityStore.
func (s *InMemoryIdentityStore) PutPeer(_ context.Context, p PeerEntry) error {
	if p.PeerID == "" {
		return &StoreError{Kind: StoreBackend, Detail: "put peer: empty peer_id"}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.peers {
		if s.peers[i].PeerID == p.PeerID {
			s.peers[i] = p.Clone()
			return nil
		}
	}
	s.peers = append(s.peers, p.Clone())
	return nil
}

// UpdatePeer implements IdentityStore.
func (s *InMemoryIdentityStore) UpdatePeer(_ context.Context, peerID string, p PeerEntry) error {
	if p.PeerID == "" {
		return &StoreError{Kind: StoreBackend, Detail: "update peer: empty peer_id"}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	at, clash := -1, false
	for i := range s.peers {
		if s.peers[i].PeerID == peerID {
			at = i
		} else if s.peers[i].PeerID == p.PeerID {
			clash = true
		}
	}
	if at < 0 {
		return &StoreError{Kind: StoreNotFound, Detail: "peer " + peerID}
	}
	if clash {
		return &StoreError{Kind: StoreBackend, Detail: "update peer: peer_id " + p.PeerID + " already exists"}
	}
	s.peers[at] = p.Clone()
	return nil
}

// RemovePeer implements IdentityStore.
func (s *InMemoryIdentityStore) RemovePeer(_ context.Context, peerID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.peers {
		if s.peers[i].PeerID == peerID {
			s.peers = slices.Delete(s.peers, i, i+1)
			return nil
		}
	}
	return &StoreError{Kind: StoreNotFound, Detail: "peer " + peerID}
}
