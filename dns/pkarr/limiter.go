package pkarr

import (
	"container/list"
	"net/netip"
	"time"
)

// lru is a bounded map with least-recently-used eviction. It is not safe for
// concurrent use; its owner locks.
type lru[K comparable, V any] struct {
	max   int
	ll    *list.List // front = most recently used; values are *lruItem
	items map[K]*list.Element
}

type lruItem[K comparable, V any] struct {
	key K
	val V
}

func newLRU[K comparable, V any](max int) *lru[K, V] {
	return &lru[K, V]{max: max, ll: list.New(), items: make(map[K]*list.Element)}
}

// get returns the value for k and marks it used.
func (c *lru[K, V]) get(k K) (V, bool) {
	if e, ok := c.items[k]; ok {
		c.ll.MoveToFront(e)
		return e.Value.(*lruItem[K, V]).val, true
	}
	var zero V
	return zero, false
}

// put stores v under k, evicting the least recently used entries past the bound; it
// returns how many were evicted.
func (c *lru[K, V]) put(k K, v V) (evicted int) {
	if e, ok := c.items[k]; ok {
		e.Value.(*lruItem[K, V]).val = v
		c.ll.MoveToFront(e)
		return 0
	}
	c.items[k] = c.ll.PushFront(&lruItem[K, V]{key: k, val: v})
	for c.ll.Len() > c.max {
		last := c.ll.Back()
		c.ll.Remove(last)
		delete(c.items, last.Value.(*lruItem[K, V]).key)
		evicted++
	}
	return evicted
}

func (c *lru[K, V]) len() int { return c.ll.Len() }

// bucket is a token bucket: rate tokens per minute, up to burst.
type bucket struct {
	tokens float64
	last   time.Time
}

// rateTable holds one bucket per client prefix, bounded by an LRU so that many
// addresses cannot grow it without limit. An evicted client starts again with a full
// bucket, which costs an attacker one address per reset.
type rateTable struct {
	perMinute float64
	burst     float64
	buckets   *lru[netip.Prefix, *bucket]
}

func newRateTable(perMinute, burst, maxClients int) *rateTable {
	if perMinute <= 0 {
		return nil // unlimited
	}
	return &rateTable{perMinute: float64(perMinute), burst: float64(burst), buckets: newLRU[netip.Prefix, *bucket](maxClients)}
}

// allow takes a token for client at now, or reports how long until one is available.
// A nil table allows everything.
func (t *rateTable) allow(client netip.Prefix, now time.Time) (ok bool, retryAfter time.Duration) {
	if t == nil {
		return true, 0
	}
	b, found := t.buckets.get(client)
	if !found {
		b = &bucket{tokens: t.burst, last: now}
		t.buckets.put(client, b)
	}
	if elapsed := now.Sub(b.last); elapsed > 0 {
		b.tokens = min(t.burst, b.tokens+elapsed.Minutes()*t.perMinute)
		b.last = now
	}
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	wait := time.Duration((1 - b.tokens) / t.perMinute * float64(time.Minute))
	return false, wait
}

// clientPrefix is the rate-limit key for a request's remote address: the IPv4 address,
// or the /64 of an IPv6 address (one host usually holds a whole /64). An address that
// does not parse shares one bucket with all such requests.
func clientPrefix(remoteAddr string) netip.Prefix {
	ap, err := netip.ParseAddrPort(remoteAddr)
	var a netip.Addr
	if err == nil {
		a = ap.Addr()
	} else if a, err = netip.ParseAddr(remoteAddr); err != nil {
		return netip.Prefix{}
	}
	a = a.Unmap()
	if a.Is4() {
		return netip.PrefixFrom(a, 32)
	}
	p, _ := a.WithZone("").Prefix(64)
	return p
}
