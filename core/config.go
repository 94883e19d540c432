package core

import (
	"crypto/subtle"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"time"
)

// Defaults of [Limits]. A zero field in Limits means "use the default"; a negative
// connection count means "no limit".
const (
	// DefaultMaxConnections caps concurrent connections per endpoint, counting those still
	// in their handshake.
	DefaultMaxConnections = 10000
	// DefaultMaxConnectionsPerIP caps concurrent connections from one remote address.
	DefaultMaxConnectionsPerIP = 100
	// DefaultIPv6PrefixLen groups IPv6 peers by their /64 for the per-IP cap, since one
	// host usually owns a whole /64. 128 counts each address on its own.
	DefaultIPv6PrefixLen = 64
	// DefaultHandshakeTimeout bounds the TLS handshake on TCP (slowloris) and the QUIC
	// handshake idle time.
	DefaultHandshakeTimeout = 5 * time.Second
	// DefaultMaxAuthAttempts is how many failed protocol-level authentication attempts a
	// handler answers per connection (tokens, Bearer headers, WebSocket subprotocols); the
	// next presentation of a credential closes the connection.
	DefaultMaxAuthAttempts = 5
	// DefaultIdleTimeout closes a connection that carried no traffic for this long while
	// its handler did not mark it busy ([Connection.Busy]). It equals the QUIC idle time.
	DefaultIdleTimeout = 30 * time.Second
	// DefaultMaxBufferedBytes is the node's budget for inbound bytes buffered by
	// handlers (call frames, WebSocket messages, HTTP bodies) across all connections.
	DefaultMaxBufferedBytes int64 = 256 << 20
	// DefaultMaxBufferedBytesPerIP is the same budget for the connections of one remote
	// address (IPv6: per IPv6PrefixLen prefix), so one host cannot take the node's whole
	// budget.
	DefaultMaxBufferedBytesPerIP int64 = 128 << 20
	// DefaultMaxBufferedBytesPerConn is the same budget for one connection: one frame of
	// the call protocol's largest size (64 MiB).
	DefaultMaxBufferedBytesPerConn int64 = 64 << 20
	// DefaultMaxAnonymousFrameBytes caps one inbound frame or message on a connection
	// without an identity (no known client certificate), whatever larger cap a handler
	// allows identified peers.
	DefaultMaxAnonymousFrameBytes int64 = 1 << 20
)

// Limits are the live, reloadable resource limits of an endpoint.
type Limits struct {
	// MaxConnections caps concurrent connections (0: DefaultMaxConnections; <0: none).
	MaxConnections int `json:"max_connections"`
	// MaxConnectionsPerIP caps concurrent connections from one remote IP
	// (0: DefaultMaxConnectionsPerIP; <0: none).
	MaxConnectionsPerIP int `json:"max_connections_per_ip"`
	// PerIPExempt lists networks (loopback, a cluster range) not subject to
	// MaxConnectionsPerIP. They still count towards MaxConnections.
	PerIPExempt []netip.Prefix `json:"per_ip_exempt"`
	// IPv6PrefixLen is the prefix by which IPv6 peers are grouped for the per-IP cap
	// (0: DefaultIPv6PrefixLen; 1 to 128).
	IPv6PrefixLen int `json:"ipv6_prefix_len"`
	// HandshakeTimeout bounds a handshake (0: DefaultHandshakeTimeout).
	HandshakeTimeout time.Duration `json:"handshake_timeout"`
	// MaxAuthAttempts is how many failed protocol-level authentication attempts a
	// handler answers per connection before the next attempt closes it
	// (0: DefaultMaxAuthAttempts; <0: none). See [AuthAttempts].
	MaxAuthAttempts int `json:"max_auth_attempts"`
	// IdleTimeout closes a connection without traffic for this long unless its handler
	// marked it busy (0: DefaultIdleTimeout; <0: none).
	IdleTimeout time.Duration `json:"idle_timeout"`
	// MaxBufferedBytes is the node-wide budget of inbound bytes buffered by handlers
	// (0: DefaultMaxBufferedBytes; <0: none). See [Budget].
	MaxBufferedBytes int64 `json:"max_buffered_bytes"`
	// MaxBufferedBytesPerIP is that budget per remote address, grouped like
	// MaxConnectionsPerIP; PerIPExempt networks are exempt
	// (0: DefaultMaxBufferedBytesPerIP; <0: none).
	MaxBufferedBytesPerIP int64 `json:"max_buffered_bytes_per_ip"`
	// MaxBufferedBytesPerConn is that budget per connection
	// (0: DefaultMaxBufferedBytesPerConn; <0: none).
	MaxBufferedBytesPerConn int64 `json:"max_buffered_bytes_per_conn"`
	// MaxAnonymousFrameBytes caps one inbound frame, message or body on a connection
	// without an identity (0: DefaultMaxAnonymousFrameBytes; <0: only the handler's own
	// cap). Handlers apply the smaller of this and their own cap to such connections.
	MaxAnonymousFrameBytes int64 `json:"max_anonymous_frame_bytes"`
}

// Effective returns l with every zero field replaced by its default.
func (l Limits) Effective() Limits {
	if l.MaxConnections == 0 {
		l.MaxConnections = DefaultMaxConnections
	}
	if l.MaxConnectionsPerIP == 0 {
		l.MaxConnectionsPerIP = DefaultMaxConnectionsPerIP
	}
	if l.IPv6PrefixLen == 0 {
		l.IPv6PrefixLen = DefaultIPv6PrefixLen
	}
	if l.HandshakeTimeout == 0 {
		l.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if l.MaxAuthAttempts == 0 {
		l.MaxAuthAttempts = DefaultMaxAuthAttempts
	}
	if l.IdleTimeout == 0 {
		l.IdleTimeout = DefaultIdleTimeout
	}
	if l.MaxBufferedBytes == 0 {
		l.MaxBufferedBytes = DefaultMaxBufferedBytes
	}
	if l.MaxBufferedBytesPerIP == 0 {
		l.MaxBufferedBytesPerIP = DefaultMaxBufferedBytesPerIP
	}
	if l.MaxBufferedBytesPerConn == 0 {
		l.MaxBufferedBytesPerConn = DefaultMaxBufferedBytesPerConn
	}
	if l.MaxAnonymousFrameBytes == 0 {
		l.MaxAnonymousFrameBytes = DefaultMaxAnonymousFrameBytes
	}
	return l
}

// FrameLimit returns the cap on one inbound frame for a connection: handlerMax (a
// handler's own cap, > 0) for an identified connection, and the smaller of handlerMax and
// MaxAnonymousFrameBytes for one without an identity. l must be effective ([Limits.Effective]).
func (l Limits) FrameLimit(identified bool, handlerMax int64) int64 {
	if identified || l.MaxAnonymousFrameBytes <= 0 {
		return handlerMax
	}
	return min(handlerMax, l.MaxAnonymousFrameBytes)
}

// PerIPKey returns the address the per-IP cap counts addr under (its IPv6 prefix, the
// plain address for IPv4), and false when addr is exempt or invalid.
func (l Limits) PerIPKey(addr netip.Addr) (netip.Addr, bool) {
	if !addr.IsValid() {
		return netip.Addr{}, false
	}
	addr = addr.Unmap().WithZone("")
	for _, p := range l.PerIPExempt {
		if p.Contains(addr) {
			return netip.Addr{}, false
		}
	}
	if addr.Is6() {
		bits := l.IPv6PrefixLen
		if bits <= 0 || bits > 128 {
			bits = DefaultIPv6PrefixLen
		}
		if p, err := addr.Prefix(bits); err == nil {
			return p.Addr(), true
		}
	}
	return addr, true
}

// DynamicConfig is the live configuration: trust and limits. Publish it through a
// [DynamicStore]; a published snapshot is never modified.
type DynamicConfig struct {
	Auth   AuthPolicy `json:"auth"`
	Limits Limits     `json:"limits"`
}

// DefaultDynamicConfig returns a configuration with no peers, no API keys and the
// default limits spelled out.
func DefaultDynamicConfig() DynamicConfig {
	return DynamicConfig{Limits: Limits{}.Effective()}
}

// Clone returns a deep copy.
func (c DynamicConfig) Clone() DynamicConfig {
	out := c
	out.Auth.Peers = make([]PeerEntry, len(c.Auth.Peers))
	for i, p := range c.Auth.Peers {
		out.Auth.Peers[i] = p.Clone()
	}
	out.Auth.APIKeys = make([]APIKeyEntry, len(c.Auth.APIKeys))
	for i, k := range c.Auth.APIKeys {
		k.Scopes = slices.Clone(k.Scopes)
		out.Auth.APIKeys[i] = k
	}
	out.Limits.PerIPExempt = slices.Clone(c.Limits.PerIPExempt)
	return out
}

// ConfigError is a validation failure; its text names the offending entry.
// errors.Is(err, ErrInvalidConfig) holds for it.
type ConfigError struct{ Msg string }

// Error returns the message naming the offending entry.
func (e *ConfigError) Error() string { return e.Msg }

// Is reports whether target is ErrInvalidConfig.
func (e *ConfigError) Is(target error) bool { return target == ErrInvalidConfig }

func configErrorf(format string, args ...any) error {
	return &ConfigError{Msg: fmt.Sprintf(format, args...)}
}

// ValidatePeerIDs reports the first empty or duplicate peer id ("duplicate peer_id: X").
func (p AuthPolicy) ValidatePeerIDs() error {
	seen := make(map[string]struct{}, len(p.Peers))
	for i, peer := range p.Peers {
		if peer.PeerID == "" {
			return configErrorf("peers[%d]: empty peer_id", i)
		}
		if _, dup := seen[peer.PeerID]; dup {
			return configErrorf("duplicate peer_id: %s", peer.PeerID)
		}
		seen[peer.PeerID] = struct{}{}
	}
	return nil
}

// Validate checks the whole configuration: unique peer ids, well-formed and unique
// fingerprints and token hashes, well-formed API keys, sane limits. The error names the
// first problem found.
func (c DynamicConfig) Validate() error {
	if err := c.Auth.ValidatePeerIDs(); err != nil {
		return err
	}
	fps := make(map[string]string)
	hashes := make(map[string]string)
	for i, p := range c.Auth.Peers {
		for j, fp := range p.Fingerprints {
			if _, _, err := ParseFingerprint(fp); err != nil {
				return configErrorf("peers[%d] (%s): fingerprints[%d]: %v", i, p.PeerID, j, err)
			}
			if other, dup := fps[fp]; dup && other == p.PeerID {
				return configErrorf("peers[%d] (%s): fingerprint %s is listed twice", i, p.PeerID, fp)
			} else if dup {
				return configErrorf("peers[%d] (%s): fingerprint %s is also listed for peer %s", i, p.PeerID, fp, other)
			}
			fps[fp] = p.PeerID
		}
		if p.AuthTokenHash != "" {
			if err := validateHash(p.AuthTokenHash); err != nil {
				return configErrorf("peers[%d] (%s): auth_token_hash: %v", i, p.PeerID, err)
			}
			if other, dup := hashes[p.AuthTokenHash]; dup {
				return configErrorf("peers[%d] (%s): auth_token_hash is also used by peer %s", i, p.PeerID, other)
			}
			hashes[p.AuthTokenHash] = p.PeerID
		}
	}
	for i, k := range c.Auth.APIKeys {
		if len(k.Prefix) != APIKeyPrefixLen || !strings.HasPrefix(k.Prefix, APIKeyPrefix) {
			return configErrorf("api_keys[%d]: prefix %q must be the first %d characters of the token, starting %q", i, truncate(k.Prefix, 40), APIKeyPrefixLen, APIKeyPrefix)
		}
		if err := validateHash(k.Hash); err != nil {
			return configErrorf("api_keys[%d] (%s): hash: %v", i, k.Prefix, err)
		}
		if k.ExpiresAt < 0 {
			return configErrorf("api_keys[%d] (%s): expires_at %d is negative", i, k.Prefix, k.ExpiresAt)
		}
	}
	l := c.Limits
	if l.HandshakeTimeout < 0 {
		return configErrorf("limits: handshake_timeout %s is negative", l.HandshakeTimeout)
	}
	if l.IPv6PrefixLen < 0 || l.IPv6PrefixLen > 128 {
		return configErrorf("limits: ipv6_prefix_len %d is outside 0..128", l.IPv6PrefixLen)
	}
	for i, p := range l.PerIPExempt {
		if !p.IsValid() {
			return configErrorf("limits: per_ip_exempt[%d] is not a valid network", i)
		}
	}
	return nil
}

func validateHash(h string) error {
	const prefix = "sha256:"
	if !strings.HasPrefix(h, prefix) || len(h) != len(prefix)+64 {
		return fmt.Errorf("want sha256:<64 lowercase hex>, got %q", truncate(h, 80))
	}
	for i := len(prefix); i < len(h); i++ {
		c := h[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return fmt.Errorf("want sha256:<64 lowercase hex>, got %q", truncate(h, 80))
		}
	}
	return nil
}

// snapshot is one published configuration with its lookup index.
type snapshot struct {
	cfg  *DynamicConfig
	byFP map[string]int // fingerprint -> index of an enabled peer
	// changed is closed when a reload replaces this snapshot.
	changed chan struct{}
}

func newSnapshot(c DynamicConfig) *snapshot {
	cp := c.Clone()
	s := &snapshot{cfg: &cp, byFP: make(map[string]int), changed: make(chan struct{})}
	for i, p := range cp.Auth.Peers {
		if !p.Enabled {
			continue
		}
		for _, fp := range p.Fingerprints {
			if _, ok := s.byFP[fp]; !ok {
				s.byFP[fp] = i
			}
		}
	}
	return s
}

// DynamicStore publishes [DynamicConfig] snapshots. Readers never lock: Load returns the
// current snapshot, which is never modified afterwards. Reload validates a new
// configuration and swaps it in atomically, or keeps the old one and returns the error.
// Effects are immediate for the next resolution; connections already established keep
// the identity they resolved.
type DynamicStore struct {
	p atomic.Pointer[snapshot]
}

// NewDynamicStore validates cfg and returns a store publishing it.
func NewDynamicStore(cfg DynamicConfig) (*DynamicStore, error) {
	s := &DynamicStore{}
	if err := s.Reload(cfg); err != nil {
		return nil, err
	}
	return s, nil
}

// Load returns the current snapshot. Treat it as read-only.
func (s *DynamicStore) Load() *DynamicConfig { return s.load().cfg }

func (s *DynamicStore) load() *snapshot {
	if p := s.p.Load(); p != nil {
		return p
	}
	return emptySnapshot
}

var emptySnapshot = newSnapshot(DynamicConfig{})

// Reload validates cfg and publishes a deep copy of it. On error the current snapshot
// stays.
func (s *DynamicStore) Reload(cfg DynamicConfig) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if old := s.p.Swap(newSnapshot(cfg)); old != nil {
		close(old.changed)
	}
	return nil
}

// Changed returns a channel closed at the next successful Reload, so a handler can
// re-check the credentials of its open connections ([WatchRevocation]).
func (s *DynamicStore) Changed() <-chan struct{} {
	for {
		if p := s.p.Load(); p != nil {
			return p.changed
		}
		s.p.CompareAndSwap(nil, newSnapshot(DynamicConfig{}))
	}
}

// Limits returns the current limits with defaults applied.
func (s *DynamicStore) Limits() Limits { return s.load().cfg.Limits.Effective() }

// ConfigIdentityProvider resolves identities from the current snapshot of a
// [DynamicStore] on every call, so a reload grants and revokes for the next resolution.
type ConfigIdentityProvider struct {
	store *DynamicStore
	now   func() time.Time
}

// NewConfigIdentityProvider returns a provider reading store. now is the clock for API key
// expiry; nil means time.Now.
func NewConfigIdentityProvider(store *DynamicStore, now func() time.Time) *ConfigIdentityProvider {
	if now == nil {
		now = time.Now
	}
	return &ConfigIdentityProvider{store: store, now: now}
}

// Changed returns a channel closed at the store's next reload; it implements
// [ReloadNotifier].
func (p *ConfigIdentityProvider) Changed() <-chan struct{} { return p.store.Changed() }

// ResolveFromFingerprint returns the identity of the enabled peer listing fp
// (exact, case-sensitive match).
func (p *ConfigIdentityProvider) ResolveFromFingerprint(fp string) (*Identity, bool) {
	if fp == "" {
		return nil, false
	}
	snap := p.store.load()
	i, ok := snap.byFP[fp]
	if !ok {
		return nil, false
	}
	id := snap.cfg.Auth.Peers[i].Identity()
	return &id, true
}

// ResolveFromToken resolves a token: first the enabled peer whose auth_token_hash matches,
// then, for tokens starting "alk_", the API key whose prefix equals the token's first
// eight bytes, whose hash matches and which has not expired. Hashes are compared in
// constant time against every candidate.
func (p *ConfigIdentityProvider) ResolveFromToken(tok AuthToken) (*Identity, bool) {
	if len(tok.Raw) == 0 {
		return nil, false
	}
	snap := p.store.load()
	h := []byte(HashToken(tok.Raw))
	match := -1
	for i, peer := range snap.cfg.Auth.Peers {
		if peer.AuthTokenHash == "" {
			continue
		}
		if subtle.ConstantTimeCompare(h, []byte(peer.AuthTokenHash)) == 1 && peer.Enabled && match < 0 {
			match = i
		}
	}
	if match >= 0 {
		id := snap.cfg.Auth.Peers[match].Identity()
		return &id, true
	}
	if len(tok.Raw) < APIKeyPrefixLen || string(tok.Raw[:len(APIKeyPrefix)]) != APIKeyPrefix {
		return nil, false
	}
	prefix := string(tok.Raw[:APIKeyPrefixLen])
	now := p.now().Unix()
	for _, k := range snap.cfg.Auth.APIKeys {
		if k.Prefix != prefix {
			continue
		}
		if subtle.ConstantTimeCompare(h, []byte(k.Hash)) != 1 {
			continue
		}
		if k.ExpiresAt != 0 && now >= k.ExpiresAt {
			continue
		}
		return &Identity{ID: k.Prefix, Scopes: slices.Clone(k.Scopes), Resources: map[string][]string{}}, true
	}
	return nil, false
}
