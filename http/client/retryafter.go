package client

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// retryAfterMemory remembers, per exact URL, until when the upstream asked not to
// be called again. It is bounded: when full, expired entries are dropped first,
// then the entry with the earliest deadline is evicted.
type retryAfterMemory struct {
	mu        sync.Mutex
	capacity  int
	deadlines map[string]time.Time
}

func newRetryAfterMemory(capacity int) *retryAfterMemory {
	return &retryAfterMemory{capacity: capacity, deadlines: make(map[string]time.Time)}
}

// remember records deadline for key, replacing any earlier record of key.
// A deadline not after now is not recorded.
func (m *retryAfterMemory) remember(key string, deadline, now time.Time) {
	if !deadline.After(now) {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.deadlines[key]; !ok {
		m.makeRoomLocked(m.capacity-1, now)
	}
	m.deadlines[key] = deadline
}

// remaining returns how long a request to key must still wait at now, dropping the
// entry once it has expired.
func (m *retryAfterMemory) remaining(key string, now time.Time) time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	deadline, ok := m.deadlines[key]
	if !ok {
		return 0
	}
	if !deadline.After(now) {
		delete(m.deadlines, key)
		return 0
	}
	return deadline.Sub(now)
}

// setCapacity changes the bound, evicting entries if there are now too many.
func (m *retryAfterMemory) setCapacity(capacity int, now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.capacity = capacity
	m.makeRoomLocked(capacity, now)
}

// makeRoomLocked shrinks the memory to at most limit entries: expired entries
// first, then the earliest deadlines.
func (m *retryAfterMemory) makeRoomLocked(limit int, now time.Time) {
	if len(m.deadlines) <= limit {
		return
	}
	for k, d := range m.deadlines {
		if !d.After(now) {
			delete(m.deadlines, k)
		}
	}
	for len(m.deadlines) > limit && len(m.deadlines) > 0 {
		var (
			earliestKey string
			earliest    time.Time
			first       = true
		)
		for k, d := range m.deadlines {
			if first || d.Before(earliest) {
				earliestKey, earliest, first = k, d, false
			}
		}
		delete(m.deadlines, earliestKey)
	}
}

// len returns the number of entries, expired ones included.
func (m *retryAfterMemory) len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.deadlines)
}

// memoryKey is the exact URL a Retry-After deadline applies to:
// scheme://host/path?query, without userinfo or fragment; scheme and host are
// lower-cased.
func memoryKey(u *url.URL) string {
	k := url.URL{
		Scheme:   strings.ToLower(u.Scheme),
		Opaque:   u.Opaque,
		Host:     strings.ToLower(u.Host),
		Path:     u.Path,
		RawPath:  u.RawPath,
		RawQuery: u.RawQuery,
		OmitHost: u.OmitHost,
	}
	return k.String()
}

// maxRetryAfterSeconds is the largest delta-seconds a time.Duration can hold.
const maxRetryAfterSeconds = math.MaxInt64 / int64(time.Second)

// parseRetryAfter parses a Retry-After value, delta-seconds or HTTP-date, into the
// delay it asks for at now. It reports false for a missing, malformed, zero or
// past value.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if strings.Trim(v, "0123456789") == "" {
		secs, err := strconv.ParseInt(v, 10, 64)
		if err != nil || secs <= 0 || secs > maxRetryAfterSeconds {
			return 0, false
		}
		return time.Duration(secs) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	d := t.Sub(now)
	if d <= 0 {
		return 0, false
	}
	return d, true
}

// ErrRetryAfter is matched (errors.Is) by the error of a request to a URL whose
// upstream asked, with Retry-After, to wait longer than the request's context allows:
// the request fails at once with a *RetryAfterError instead of waiting out its
// deadline.
var ErrRetryAfter = errors.New("http client: upstream asked to retry later")

// RetryAfterError is the error of a request refused by the Retry-After memory.
type RetryAfterError struct {
	// Host is the upstream (no path or query: they may carry credentials).
	Host string
	// Wait is how long the upstream asked to wait from now.
	Wait time.Duration
}

func (e *RetryAfterError) Error() string {
	return fmt.Sprintf("http client: %s asked to retry in %s, beyond the request's deadline", e.Host, e.Wait.Round(time.Second))
}

// Is matches ErrRetryAfter.
func (e *RetryAfterError) Is(target error) bool { return target == ErrRetryAfter }

// RetryAfter reports the wait, so that callers that do not import this package can
// still forward it (the OpenAPI importer turns it into a retryable HTTP_429).
func (e *RetryAfterError) RetryAfter() time.Duration { return e.Wait }
