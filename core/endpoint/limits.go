package endpoint

import (
	"context"
	"log/slog"
	"maps"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// RefuseReason names why the endpoint closed a connection before any handler ran.
type RefuseReason string

// Refusal reasons, as counted in [Stats.Refused] and logged as reason=.
const (
	// RefusedMaxConnections: Limits.MaxConnections concurrent connections were open.
	RefusedMaxConnections RefuseReason = "max_connections"
	// RefusedPerIP: Limits.MaxConnectionsPerIP connections from the address were open.
	RefusedPerIP RefuseReason = "max_connections_per_ip"
	// RefusedHandshakeTimeout: the TCP+TLS handshake did not finish in time.
	RefusedHandshakeTimeout RefuseReason = "handshake_timeout"
	// RefusedHandshakeFailed: the TCP+TLS handshake failed.
	RefusedHandshakeFailed RefuseReason = "handshake_failed"
	// RefusedUnknownALPN: the client offered no registered ALPN (the handshake fails).
	RefusedUnknownALPN RefuseReason = "unknown_alpn"
	// RefusedNoHandler: the handshake negotiated no ALPN (a TCP client that sent none).
	RefusedNoHandler RefuseReason = "no_handler"
	// RefusedACME: an ACME TLS-ALPN-01 challenge connection, closed after the handshake.
	RefusedACME RefuseReason = "acme"
	// RefusedShutdown: the endpoint was shutting down.
	RefusedShutdown RefuseReason = "shutdown"
)

var allReasons = []RefuseReason{
	RefusedMaxConnections, RefusedPerIP, RefusedHandshakeTimeout, RefusedHandshakeFailed,
	RefusedUnknownALPN, RefusedNoHandler, RefusedACME, RefusedShutdown,
}

// Stats is a snapshot of an endpoint's counters.
type Stats struct {
	// Accepted counts connections handed to a handler.
	Accepted uint64
	// Refused counts connections closed before any handler ran, by reason.
	Refused map[RefuseReason]uint64
	// Active counts connections whose handler is running, by ALPN.
	Active map[string]int
	// Connections is the number of open connections, including those in their handshake.
	Connections int
	// AcceptedBy splits Accepted by transport and ALPN.
	AcceptedBy map[ConnKey]uint64
	// QUICHandshakeFailures counts QUIC connections that ended before their handshake
	// finished (failed or timed out); TCP+TLS ones count in Refused, as
	// RefusedHandshakeFailed and RefusedHandshakeTimeout.
	QUICHandshakeFailures uint64
	// Streams counts the bidirectional QUIC streams of served connections, accepted or
	// opened (a TCP+TLS connection is its one stream).
	Streams uint64
	// ActiveStreams is the number of those streams open now: not yet closed by their
	// handler, on connections whose handler runs.
	ActiveStreams int
	// Resumed counts the accepted connections (in Accepted) whose TLS handshake resumed
	// a session from a ticket instead of making a full handshake.
	Resumed uint64
}

// counters are the endpoint's statistics.
type counters struct {
	accepted atomic.Uint64
	resumed  atomic.Uint64
	refused  map[RefuseReason]*atomic.Uint64 // fixed key set, built once

	quicHandshakeFailed atomic.Uint64
	streams             atomic.Uint64

	mu         sync.Mutex
	active     map[string]int
	acceptedBy map[ConnKey]uint64 // keys: fixed transports x registered ALPNs
}

func newCounters() *counters {
	c := &counters{refused: make(map[RefuseReason]*atomic.Uint64, len(allReasons)), active: make(map[string]int), acceptedBy: make(map[ConnKey]uint64)}
	for _, r := range allReasons {
		c.refused[r] = new(atomic.Uint64)
	}
	return c
}

func (c *counters) refuse(r RefuseReason) { c.refused[r].Add(1) }

// accept counts a connection a handler took.
func (c *counters) accept(transport, alpn string) {
	c.accepted.Add(1)
	c.mu.Lock()
	c.acceptedBy[ConnKey{Transport: transport, ALPN: alpn}]++
	c.mu.Unlock()
}

func (c *counters) addActive(alpn string, d int) {
	c.mu.Lock()
	c.active[alpn] += d
	if c.active[alpn] == 0 {
		delete(c.active, alpn)
	}
	c.mu.Unlock()
}

func (c *counters) snapshot() Stats {
	s := Stats{
		Accepted: c.accepted.Load(), Refused: make(map[RefuseReason]uint64),
		QUICHandshakeFailures: c.quicHandshakeFailed.Load(), Streams: c.streams.Load(),
		Resumed: c.resumed.Load(),
	}
	for r, n := range c.refused {
		if v := n.Load(); v > 0 {
			s.Refused[r] = v
		}
	}
	c.mu.Lock()
	s.Active = maps.Clone(c.active)
	s.AcceptedBy = maps.Clone(c.acceptedBy)
	c.mu.Unlock()
	return s
}

// limiter counts open connections, in total and per remote address key.
type limiter struct {
	mu    sync.Mutex
	total int
	perIP map[netip.Addr]int
}

func newLimiter() *limiter { return &limiter{perIP: make(map[netip.Addr]int)} }

// acquire reserves a global slot; max < 0 means no limit.
func (l *limiter) acquire(max int) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if max >= 0 && l.total >= max {
		return false
	}
	l.total++
	return true
}

func (l *limiter) release() {
	l.mu.Lock()
	l.total--
	l.mu.Unlock()
}

func (l *limiter) open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.total
}

// acquireIP reserves a slot for key; max < 0 means no limit.
func (l *limiter) acquireIP(key netip.Addr, max int) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if max >= 0 && l.perIP[key] >= max {
		return false
	}
	l.perIP[key]++
	return true
}

func (l *limiter) releaseIP(key netip.Addr) {
	l.mu.Lock()
	if l.perIP[key] <= 1 {
		delete(l.perIP, key)
	} else {
		l.perIP[key]--
	}
	l.mu.Unlock()
}

// At most refusalLogBurst "connection refused" lines per reason are written in each
// refusalLogInterval, so a flood of refused connections cannot flood the log; the first
// line of the next interval reports how many were suppressed.
const (
	refusalLogInterval = time.Second
	refusalLogBurst    = 10
)

// refusalLog rate-limits the "connection refused" lines.
type refusalLog struct {
	mu     sync.Mutex
	window map[RefuseReason]time.Time
	count  map[RefuseReason]int
	skip   map[RefuseReason]int
}

func newRefusalLog() *refusalLog {
	return &refusalLog{window: make(map[RefuseReason]time.Time), count: make(map[RefuseReason]int), skip: make(map[RefuseReason]int)}
}

func (r *refusalLog) log(ctx context.Context, l *slog.Logger, level slog.Level, reason RefuseReason, attrs ...slog.Attr) {
	if !l.Enabled(ctx, level) {
		return
	}
	now := time.Now()
	r.mu.Lock()
	if now.Sub(r.window[reason]) >= refusalLogInterval {
		r.window[reason] = now
		r.count[reason] = 0
	}
	if r.count[reason] >= refusalLogBurst {
		r.skip[reason]++
		r.mu.Unlock()
		return
	}
	r.count[reason]++
	skipped := r.skip[reason]
	r.skip[reason] = 0
	r.mu.Unlock()
	attrs = append([]slog.Attr{slog.String("reason", string(reason))}, attrs...)
	if skipped > 0 {
		attrs = append(attrs, slog.Int("suppressed", skipped))
	}
	l.LogAttrs(ctx, level, "connection refused", attrs...)
}
