package git

import "sync/atomic"

// Operation outcomes of [Stats.Operations], as logged in "git operation" ("bad_request"
// is a request line that did not parse, which names no service).
const (
	OutcomeOK          = "ok"
	OutcomeRefused     = "refused"
	OutcomeIdleTimeout = "idle_timeout"
	OutcomeTimeout     = "timeout"
	OutcomeError       = "error"
	OutcomeNotFound    = "not_found"
	OutcomeReadOnly    = "read_only"
	OutcomeUnsupported = "unsupported"
	OutcomeLimit       = "limit"
	OutcomeBadRequest  = "bad_request"
)

var outcomes = [...]string{
	OutcomeOK, OutcomeRefused, OutcomeIdleTimeout, OutcomeTimeout, OutcomeError,
	OutcomeNotFound, OutcomeReadOnly, OutcomeUnsupported, OutcomeLimit, OutcomeBadRequest,
}

// ServiceOther is the [Stats.Operations] key of requests that name no known service.
const ServiceOther = "other"

var services = [...]string{ServiceUploadPack, ServiceReceivePack, ServiceUploadArchive, ServiceOther}

// Outcomes returns every outcome key [Stats.Operations] may hold.
func Outcomes() []string { return append([]string(nil), outcomes[:]...) }

// Services returns every service key [Stats.Operations] may hold: the three git
// services and ServiceOther.
func Services() []string { return append([]string(nil), services[:]...) }

// Stats is a snapshot of a [Server]'s counters. It holds counts only: repository
// names, refs and identities are never recorded.
type Stats struct {
	// Operations counts finished operations by service (see Services) and then by
	// outcome (see Outcomes); pairs never seen are absent.
	Operations map[string]map[string]uint64
	// BytesIn and BytesOut count the bytes operations read from and wrote to clients
	// (packs, negotiation and reference advertisements).
	BytesIn, BytesOut uint64
	// Active is the number of operations running.
	Active int64
}

// gitCounters are the live counters behind Stats.
type gitCounters struct {
	ops               [len(services)][len(outcomes)]atomic.Uint64
	bytesIn, bytesOut atomic.Uint64
	active            atomic.Int64
}

func indexOf(list []string, v string) int {
	for i, s := range list {
		if s == v {
			return i
		}
	}
	return len(list) - 1
}

// end counts a finished operation.
func (c *gitCounters) end(service, outcome string, in, out int64) {
	c.ops[indexOf(services[:], service)][indexOf(outcomes[:], outcome)].Add(1)
	c.bytesIn.Add(uint64(max(in, 0)))
	c.bytesOut.Add(uint64(max(out, 0)))
}

// Stats returns a snapshot of the server's counters.
func (s *Server) Stats() Stats {
	c := &s.stats
	st := Stats{
		Operations: make(map[string]map[string]uint64),
		BytesIn:    c.bytesIn.Load(),
		BytesOut:   c.bytesOut.Load(),
		Active:     c.active.Load(),
	}
	for i := range c.ops {
		for j := range c.ops[i] {
			n := c.ops[i][j].Load()
			if n == 0 {
				continue
			}
			m := st.Operations[services[i]]
			if m == nil {
				m = make(map[string]uint64)
				st.Operations[services[i]] = m
			}
			m[outcomes[j]] = n
		}
	}
	return st
}
