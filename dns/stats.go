package dns

import (
	"strconv"
	"sync/atomic"

	mdns "github.com/miekg/dns"
)

// transport names a carrier in [Stats].
type transport int

const (
	transportDoQ transport = iota
	transportDoT
	transportPlain
	numTransports
)

// String returns "doq", "dot" or "plain".
func (t transport) String() string {
	switch t {
	case transportDoQ:
		return "doq"
	case transportDoT:
		return "dot"
	case transportPlain:
		return "plain"
	}
	return "unknown"
}

// numRcodes covers every rcode up to BADCOOKIE (23); higher ones count as "OTHER".
const numRcodes = mdns.RcodeBadCookie + 1

// Stats is a snapshot of what a [Server] answered, per transport. It holds counts
// only: query names are never recorded.
type Stats struct {
	// DoQ counts DNS over QUIC ("doq" and "alknet/dns").
	DoQ TransportStats
	// DoT counts DNS over TLS ("dot").
	DoT TransportStats
	// Plain counts queries the server answered as an mdns.Handler (ListenPlain).
	Plain TransportStats
}

// TransportStats counts one transport's answers and failures.
type TransportStats struct {
	// Responses counts answered queries by rcode name ("NOERROR", "NXDOMAIN",
	// "FORMERR", ...; "OTHER" above BADCOOKIE); rcodes never sent are absent.
	Responses map[string]uint64
	// ProtocolErrors counts connections closed for a protocol violation.
	ProtocolErrors uint64
	// ExcessiveLoad counts DoQ streams reset with DOQ_EXCESSIVE_LOAD.
	ExcessiveLoad uint64
	// InternalErrors counts queries whose handler panicked.
	InternalErrors uint64
}

// Total returns the number of answered queries.
func (t TransportStats) Total() uint64 {
	var n uint64
	for _, v := range t.Responses {
		n += v
	}
	return n
}

// stats is the live counters behind Stats.
type stats struct {
	t [numTransports]transportCounters
}

type transportCounters struct {
	rcodes         [numRcodes + 1]atomic.Uint64 // the last is OTHER
	protocolErrors atomic.Uint64
	excessiveLoad  atomic.Uint64
	internalErrors atomic.Uint64
}

func (s *stats) transport(t transport) *transportCounters { return &s.t[t] }

func (c *transportCounters) count(rcode int) {
	if rcode < 0 || rcode >= numRcodes {
		rcode = numRcodes
	}
	c.rcodes[rcode].Add(1)
}

func (c *transportCounters) snapshot() TransportStats {
	out := TransportStats{
		Responses:      make(map[string]uint64),
		ProtocolErrors: c.protocolErrors.Load(),
		ExcessiveLoad:  c.excessiveLoad.Load(),
		InternalErrors: c.internalErrors.Load(),
	}
	for i := range c.rcodes {
		n := c.rcodes[i].Load()
		if n == 0 {
			continue
		}
		name := "OTHER"
		if i < numRcodes {
			if s, ok := mdns.RcodeToString[i]; ok {
				name = s
			} else {
				name = "RCODE" + strconv.Itoa(i)
			}
		}
		out.Responses[name] += n
	}
	return out
}

// Stats returns a snapshot of the server's counters.
func (s *Server) Stats() Stats {
	return Stats{
		DoQ:   s.stats.transport(transportDoQ).snapshot(),
		DoT:   s.stats.transport(transportDoT).snapshot(),
		Plain: s.stats.transport(transportPlain).snapshot(),
	}
}
