package msg

import (
	"sync"
	"time"
)

// rateLimiter is a token bucket per key (a sender identity, an anonymous address):
// perMinute tokens refilled evenly over a minute, bursts of up to perMinute. Keys whose
// bucket is full again are forgotten once the table grows past maxRateKeys.
type rateLimiter struct {
	mu        sync.Mutex
	perMinute float64
	buckets   map[string]*bucket
}

type bucket struct {
	tokens float64
	at     time.Time
}

// maxRateKeys is the table size past which full buckets are dropped.
const maxRateKeys = 4096

func newRateLimiter(perMinute int) *rateLimiter {
	return &rateLimiter{perMinute: float64(perMinute), buckets: make(map[string]*bucket)}
}

// allow takes one token of key at now, and reports whether there was one.
func (r *rateLimiter) allow(key string, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	b, ok := r.buckets[key]
	if !ok {
		if len(r.buckets) >= maxRateKeys {
			r.prune(now)
		}
		b = &bucket{tokens: r.perMinute, at: now}
		r.buckets[key] = b
	}
	r.refill(b, now)
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

func (r *rateLimiter) refill(b *bucket, now time.Time) {
	if el := now.Sub(b.at); el > 0 {
		b.tokens = min(r.perMinute, b.tokens+el.Minutes()*r.perMinute)
		b.at = now
	}
}

// prune forgets the keys whose bucket has refilled: they behave like new keys.
func (r *rateLimiter) prune(now time.Time) {
	for k, b := range r.buckets {
		r.refill(b, now)
		if b.tokens >= r.perMinute {
			delete(r.buckets, k)
		}
	}
}
