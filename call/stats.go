package call

import (
	"sync/atomic"
	"time"
)

// latencyBounds are the upper bounds of the latency histogram buckets: Prometheus's
// default buckets, 5 ms to 10 s.
var latencyBounds = [...]time.Duration{
	5 * time.Millisecond, 10 * time.Millisecond, 25 * time.Millisecond, 50 * time.Millisecond,
	100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond,
	time.Second, 2500 * time.Millisecond, 5 * time.Second, 10 * time.Second,
}

// LatencyBuckets returns the upper bounds, in seconds, of the buckets of
// [Histogram.Buckets]: 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10 (the
// Prometheus default buckets). A new slice each call.
func LatencyBuckets() []float64 {
	out := make([]float64, len(latencyBounds))
	for i, b := range latencyBounds {
		out[i] = b.Seconds()
	}
	return out
}

// StatsCodeOK and StatsCodeOther are the [OperationStats.Codes] keys of a success and
// of an error whose code an operation declared itself (not a protocol code).
const (
	StatsCodeOK    = "OK"
	StatsCodeOther = "OTHER"
)

// statsCodes are the code keys, by counter index.
var statsCodes = [...]string{
	StatsCodeOK, CodeNotFound, CodeForbidden, CodeInvalidInput, CodeInvalidOperationType,
	CodeInternal, CodeTimeout, StatsCodeOther,
}

// StatsCodes returns every key [OperationStats.Codes] may hold: StatsCodeOK, the six
// protocol codes and StatsCodeOther. Codes an operation declares are counted as
// StatsCodeOther, so the set is fixed whatever the operations answer.
func StatsCodes() []string { return append([]string(nil), statsCodes[:]...) }

func codeIndex(cerr *CallError) int {
	if cerr == nil {
		return 0
	}
	switch cerr.Code {
	case CodeNotFound:
		return 1
	case CodeForbidden:
		return 2
	case CodeInvalidInput:
		return 3
	case CodeInvalidOperationType:
		return 4
	case CodeInternal:
		return 5
	case CodeTimeout:
		return 6
	}
	return 7
}

// Stats is a snapshot of a [Registry]'s counters: every Invoke and InvokeStream, from
// the wire, the HTTP gateway and composed calls alike. Operations are keyed by the
// names the server registered; calls of names it does not hold count under Unknown,
// so no key is ever chosen by a client.
type Stats struct {
	// Operations holds the registered operations' counters, by name. An operation that
	// is unregistered takes its counters with it.
	Operations map[string]OperationStats
	// Unknown counts calls of names the registry does not hold (all NOT_FOUND).
	Unknown OperationStats
}

// OperationStats is one operation's counters.
type OperationStats struct {
	// Codes counts finished calls by outcome: StatsCodeOK, a protocol code, or
	// StatsCodeOther (see StatsCodes). Codes never seen are absent.
	Codes map[string]uint64
	// Latency is the time Queries and Mutations took, admission checks included;
	// subscriptions, which last as long as their client wants, are not in it.
	Latency Histogram
}

// Histogram is a latency distribution over the bounds of LatencyBuckets.
type Histogram struct {
	// Count is the number of observations.
	Count uint64
	// Sum is their total.
	Sum time.Duration
	// Buckets holds, for each bound of LatencyBuckets in order, the number of
	// observations at or below it (cumulative, as Prometheus counts them).
	Buckets []uint64
}

// opCounters are one operation's live counters: fixed arrays of atomics, so counting
// takes no lock and allocates nothing.
type opCounters struct {
	codes   [len(statsCodes)]atomic.Uint64
	buckets [len(latencyBounds) + 1]atomic.Uint64 // the last is +Inf
	sum     atomic.Int64                          // nanoseconds
}

// observe counts a finished call; a negative d records no latency.
func (c *opCounters) observe(cerr *CallError, d time.Duration) {
	c.codes[codeIndex(cerr)].Add(1)
	if d < 0 {
		return
	}
	i := 0
	for i < len(latencyBounds) && d > latencyBounds[i] {
		i++
	}
	c.buckets[i].Add(1)
	c.sum.Add(int64(d))
}

func (c *opCounters) snapshot() OperationStats {
	s := OperationStats{Codes: make(map[string]uint64)}
	for i := range c.codes {
		if n := c.codes[i].Load(); n > 0 {
			s.Codes[statsCodes[i]] = n
		}
	}
	s.Latency.Buckets = make([]uint64, len(latencyBounds))
	var cum uint64
	for i := range c.buckets {
		cum += c.buckets[i].Load()
		if i < len(latencyBounds) {
			s.Latency.Buckets[i] = cum
		}
	}
	s.Latency.Count = cum
	s.Latency.Sum = time.Duration(c.sum.Load())
	return s
}

// observe counts a call of e (nil: a name the registry does not hold) that started at
// start; latency is recorded for one-shot calls only.
func (r *Registry) observe(e *entry, start time.Time, cerr *CallError, once bool) {
	c := &r.unknown
	if e != nil {
		c = e.stats
	}
	d := time.Duration(-1)
	if once {
		d = time.Since(start)
	}
	c.observe(cerr, d)
}

// Stats returns a snapshot of the registry's counters.
func (r *Registry) Stats() Stats {
	r.mu.RLock()
	entries := make(map[string]*opCounters, len(r.ops))
	for name, e := range r.ops {
		entries[name] = e.stats
	}
	r.mu.RUnlock()
	s := Stats{Operations: make(map[string]OperationStats, len(entries)), Unknown: r.unknown.snapshot()}
	for name, c := range entries {
		s.Operations[name] = c.snapshot()
	}
	return s
}
