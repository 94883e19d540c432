package tlsconf

import (
	"container/list"
	"crypto/tls"
	"sync"

	"github.com/alknet/alknet/core"
)

// DefaultSessionCacheCapacity is the capacity of a [SessionCache] made with a capacity
// below 1.
const DefaultSessionCacheCapacity = 64

// SessionCache keeps TLS 1.3 session tickets for clients, so that a client that
// reconnects to a server it pinned resumes its session: the handshake then skips both
// certificate signatures (the server's CertificateVerify and the client's), and only
// the key exchange remains (resumption always runs a fresh ECDHE; 0-RTT is never used).
//
// Pass one cache per process in [ClientOptions.Sessions]. It holds one session per
// server pin and client certificate: a session made by one client identity is never
// offered by another, and a session made with one server pinned is never offered when
// another fingerprint is pinned, whatever address the server has. Sessions are used
// for pinned servers only (see ClientOptions.Sessions). The least recently used
// session goes first when the cache is full.
//
// A resumed connection carries the identities its first handshake verified: the
// server's certificate restored from the session (the pin check and VerifyServer run
// on it again), and on the server the client certificate restored from the ticket,
// which the server looks up again in its current peer list. A session stays usable
// while the server accepts its ticket (crypto/tls: at most 7 days).
//
// It is safe for concurrent use.
type SessionCache struct {
	capacity int

	mu  sync.Mutex
	lru list.List // of *sessionEntry, most recently used first
	m   map[string]*list.Element
}

type sessionEntry struct {
	key string
	cs  *tls.ClientSessionState
}

// NewSessionCache returns an empty cache holding up to capacity sessions (below 1:
// [DefaultSessionCacheCapacity]).
func NewSessionCache(capacity int) *SessionCache {
	if capacity < 1 {
		capacity = DefaultSessionCacheCapacity
	}
	return &SessionCache{capacity: capacity, m: make(map[string]*list.Element)}
}

// Len returns the number of sessions held.
func (c *SessionCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}

func (c *SessionCache) get(key string) (*tls.ClientSessionState, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.m[key]
	if !ok {
		return nil, false
	}
	c.lru.MoveToFront(el)
	return el.Value.(*sessionEntry).cs, true
}

// put stores cs under key; a nil cs removes the entry (crypto/tls does so for a
// session it found unusable).
func (c *SessionCache) put(key string, cs *tls.ClientSessionState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.m[key]; ok {
		if cs == nil {
			c.lru.Remove(el)
			delete(c.m, key)
			return
		}
		el.Value.(*sessionEntry).cs = cs
		c.lru.MoveToFront(el)
		return
	}
	if cs == nil {
		return
	}
	c.m[key] = c.lru.PushFront(&sessionEntry{key: key, cs: cs})
	for c.lru.Len() > c.capacity {
		oldest := c.lru.Back()
		c.lru.Remove(oldest)
		delete(c.m, oldest.Value.(*sessionEntry).key)
	}
}

// sessionView is the tls.ClientSessionCache of one client configuration: every session
// it stores and finds is under its own key (pin and client certificate), whatever key
// crypto/tls passes (the server's name or address).
type sessionView struct {
	cache *SessionCache
	key   string
}

func (v sessionView) Get(string) (*tls.ClientSessionState, bool) { return v.cache.get(v.key) }

func (v sessionView) Put(_ string, cs *tls.ClientSessionState) { v.cache.put(v.key, cs) }

// sessionKey is the cache key of a client configuration pinning pin and presenting
// cert (nil: none): the pin and the fingerprint of the client certificate's key.
func sessionKey(pin string, cert *tls.Certificate) string {
	client := "-"
	switch {
	case cert == nil:
	case cert.Leaf != nil:
		client = core.FingerprintFromCert(cert.Leaf)
	case len(cert.Certificate) > 0:
		client = core.FingerprintFromDER(cert.Certificate[0])
	}
	return pin + " " + client
}
