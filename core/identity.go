package core

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"slices"
)

// Identity is who a connection or request acts as, once resolved.
type Identity struct {
	// ID is the stable peer id (PeerEntry.PeerID), the API key's public prefix, or a
	// composition label.
	ID string `json:"id"`
	// Scopes are coarse permissions such as "admin" or "ssh:exec".
	Scopes []string `json:"scopes"`
	// Resources lists resource ids by type, such as {"service": ["gitea"]}.
	Resources map[string][]string `json:"resources"`
}

// Clone returns a deep copy, so a handler cannot change a configuration snapshot.
func (id Identity) Clone() Identity {
	out := Identity{ID: id.ID, Scopes: slices.Clone(id.Scopes)}
	if id.Resources != nil {
		out.Resources = make(map[string][]string, len(id.Resources))
		for k, v := range id.Resources {
			out.Resources[k] = slices.Clone(v)
		}
	}
	return out
}

// HasScope reports whether the identity carries scope.
func (id Identity) HasScope(scope string) bool { return slices.Contains(id.Scopes, scope) }

// AuthContext is what the endpoint learned about a connection during the handshake.
type AuthContext struct {
	// Identity is the peer resolved from the client certificate, or nil when the
	// endpoint resolved nothing (no certificate, unknown or disabled peer). Handlers may
	// still authenticate the peer at the protocol level.
	Identity *Identity
	// ALPN is the negotiated protocol; always set.
	ALPN string
	// RemoteAddr is informational (NAT and proxies); it may be nil.
	RemoteAddr net.Addr
	// TLSClientFingerprint is the client certificate's fingerprint ("" when the client
	// sent none). It is kept even when Identity is nil, for logs.
	TLSClientFingerprint string
}

// AnonymousAuthContext returns the context of a connection that resolved nothing.
func AnonymousAuthContext(alpn string) AuthContext { return AuthContext{ALPN: alpn} }

// AuthToken is an opaque credential presented at the protocol level (a Bearer token, an
// `alk_` API key). It prints, logs and marshals as [REDACTED].
type AuthToken struct{ Raw []byte }

// String returns "[REDACTED]".
func (AuthToken) String() string { return redacted }

// GoString returns "[REDACTED]".
func (AuthToken) GoString() string { return redacted }

// LogValue keeps tokens out of slog output.
func (AuthToken) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalJSON writes "[REDACTED]".
func (AuthToken) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }

// Format prints "[REDACTED]" for every verb.
func (AuthToken) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(redacted)) }

// Wipe overwrites the token bytes with zeros.
func (t *AuthToken) Wipe() { clear(t.Raw) }

const redacted = "[REDACTED]"

// IdentityProvider resolves credentials to identities. Both methods are on the hot path
// (every connection, every request) and must not block. They return copies the caller
// may keep.
type IdentityProvider interface {
	// ResolveFromFingerprint resolves a TLS or SSH key fingerprint.
	ResolveFromFingerprint(fp string) (*Identity, bool)
	// ResolveFromToken resolves a peer token or an `alk_` API key.
	ResolveFromToken(tok AuthToken) (*Identity, bool)
}

// IdentityStore is an IdentityProvider that can also be managed. The configuration-backed
// provider deliberately is not one: its write path is a reload.
type IdentityStore interface {
	IdentityProvider
	// PutPeer inserts or replaces the peer with p.PeerID.
	PutPeer(ctx context.Context, p PeerEntry) error
	// UpdatePeer replaces the peer peerID with p (which may rename it); an error
	// wrapping [ErrNotFound] when it is absent.
	UpdatePeer(ctx context.Context, peerID string, p PeerEntry) error
	// RemovePeer deletes the peer; an error wrapping [ErrNotFound] when it is absent.
	RemovePeer(ctx context.Context, peerID string) error
}

// PeerEntry is one known peer: a stable id and the credentials that prove it.
// Rotating a credential means editing Fingerprints or AuthTokenHash; PeerID (and every
// rule that names it) stays.
type PeerEntry struct {
	// PeerID is the stable logical id; unique within a configuration.
	PeerID string `json:"peer_id"`
	// Fingerprints are "ed25519:<64 lowercase hex>" keys or "SHA256:<64 lowercase hex>"
	// certificate hashes, matched exactly.
	Fingerprints []string `json:"fingerprints"`
	// AuthTokenHash is an optional "sha256:<64 lowercase hex>" of the peer's token.
	AuthTokenHash string `json:"auth_token_hash,omitempty"`
	// Scopes granted to the peer.
	Scopes []string `json:"scopes"`
	// Resources granted to the peer, by resource type.
	Resources map[string][]string `json:"resources"`
	// DisplayName is for humans only.
	DisplayName string `json:"display_name,omitempty"`
	// Enabled false keeps the peer known but revoked: it resolves to nothing.
	Enabled bool `json:"enabled"`
}

// Identity returns the identity this peer resolves to.
func (p PeerEntry) Identity() Identity {
	return Identity{ID: p.PeerID, Scopes: p.Scopes, Resources: p.Resources}.Clone()
}

// Clone returns a deep copy.
func (p PeerEntry) Clone() PeerEntry {
	out := p
	out.Fingerprints = slices.Clone(p.Fingerprints)
	out.Scopes = slices.Clone(p.Scopes)
	out.Resources = cloneResources(p.Resources)
	return out
}

func cloneResources(m map[string][]string) map[string][]string {
	if m == nil {
		return nil
	}
	out := maps.Clone(m)
	for k, v := range out {
		out[k] = slices.Clone(v)
	}
	return out
}

// APIKeyPrefix starts every API key token.
const APIKeyPrefix = "alk_"

// APIKeyPrefixLen is the length of the public part of an API key ("alk_" and four more
// characters) that identifies its entry. It may be logged; alone it authenticates nothing.
const APIKeyPrefixLen = 8

// APIKeyEntry is one API key, stored by hash.
type APIKeyEntry struct {
	// Prefix is the token's first [APIKeyPrefixLen] characters; it becomes the identity id.
	Prefix string `json:"prefix"`
	// Hash is "sha256:<64 lowercase hex>" of the whole token.
	Hash string `json:"hash"`
	// Scopes granted to the key. API keys never carry resources.
	Scopes []string `json:"scopes"`
	// Description is for humans only.
	Description string `json:"description,omitempty"`
	// ExpiresAt is the expiry in unix seconds; the key stops working when the clock
	// reaches it. 0 means it never expires.
	ExpiresAt int64 `json:"expires_at,omitempty"`
}

// AuthPolicy is the trust configuration: known peers and API keys.
type AuthPolicy struct {
	Peers   []PeerEntry   `json:"peers"`
	APIKeys []APIKeyEntry `json:"api_keys"`
}

// HashToken returns "sha256:<64 lowercase hex>" of the raw token bytes, the form stored
// in PeerEntry.AuthTokenHash and APIKeyEntry.Hash. Unlike the Rust original, which
// decoded the token lossily to UTF-8 first, the bytes are hashed as they are.
func HashToken(tok []byte) string {
	sum := sha256.Sum256(tok)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// apiKeyRandomBytes is the entropy of a generated API key (192 bits).
const apiKeyRandomBytes = 24

// NewAPIKey generates an API key: the token to hand to its user (shown once; wipe it
// when done) and the entry to store in the configuration.
func NewAPIKey(scopes []string, description string) (AuthToken, APIKeyEntry, error) {
	var b [apiKeyRandomBytes]byte
	if _, err := rand.Read(b[:]); err != nil {
		return AuthToken{}, APIKeyEntry{}, fmt.Errorf("generate API key: %w", err)
	}
	raw := make([]byte, 0, len(APIKeyPrefix)+base64.RawURLEncoding.EncodedLen(len(b)))
	raw = append(raw, APIKeyPrefix...)
	raw = base64.RawURLEncoding.AppendEncode(raw, b[:])
	clear(b[:])
	entry := APIKeyEntry{
		Prefix:      string(raw[:APIKeyPrefixLen]),
		Hash:        HashToken(raw),
		Scopes:      slices.Clone(scopes),
		Description: description,
	}
	return AuthToken{Raw: raw}, entry, nil
}
