package sftp

import "sync/atomic"

// Session outcomes of [Stats.Sessions], as logged in "sftp session closed".
const (
	OutcomeOK             = "ok"
	OutcomeIdleTimeout    = "idle_timeout"
	OutcomePacketTooLarge = "packet_too_large"
	OutcomeClosed         = "closed"
	OutcomeBadMessage     = "bad_message"
	OutcomeError          = "error"
)

// outcomes are the session outcomes by counter index.
var outcomes = [...]string{OutcomeOK, OutcomeIdleTimeout, OutcomePacketTooLarge, OutcomeClosed, OutcomeBadMessage, OutcomeError}

// Outcomes returns every key [Stats.Sessions] may hold.
func Outcomes() []string { return append([]string(nil), outcomes[:]...) }

// Stats is a snapshot of a [Server]'s counters. It holds counts only: paths, export
// names and identities are never recorded.
type Stats struct {
	// Sessions counts finished sessions by outcome (see Outcomes); outcomes never seen
	// are absent.
	Sessions map[string]uint64
	// ActiveSessions is the number of sessions running.
	ActiveSessions int64
	// Refused counts sessions refused for MaxSessionsPerIdentity.
	Refused uint64
	// BytesIn and BytesOut count SFTP protocol bytes received and sent by finished
	// sessions (file data and the packets around it).
	BytesIn, BytesOut uint64
	// FilesRead and FilesWritten count files opened for reading and writing by
	// finished sessions.
	FilesRead, FilesWritten uint64
}

// sftpCounters are the live counters behind Stats.
type sftpCounters struct {
	sessions                [len(outcomes)]atomic.Uint64
	active                  atomic.Int64
	refused                 atomic.Uint64
	bytesIn, bytesOut       atomic.Uint64
	filesRead, filesWritten atomic.Uint64
}

// end counts a finished session.
func (c *sftpCounters) end(outcome string, in, out, read, written int64) {
	i := len(outcomes) - 1
	for j, o := range outcomes {
		if o == outcome {
			i = j
			break
		}
	}
	c.sessions[i].Add(1)
	c.bytesIn.Add(uint64(max(in, 0)))
	c.bytesOut.Add(uint64(max(out, 0)))
	c.filesRead.Add(uint64(max(read, 0)))
	c.filesWritten.Add(uint64(max(written, 0)))
}

// Stats returns a snapshot of the server's counters.
func (s *Server) Stats() Stats {
	c := &s.stats
	st := Stats{
		Sessions:       make(map[string]uint64),
		ActiveSessions: c.active.Load(),
		Refused:        c.refused.Load(),
		BytesIn:        c.bytesIn.Load(),
		BytesOut:       c.bytesOut.Load(),
		FilesRead:      c.filesRead.Load(),
		FilesWritten:   c.filesWritten.Load(),
	}
	for i := range c.sessions {
		if n := c.sessions[i].Load(); n > 0 {
			st.Sessions[outcomes[i]] = n
		}
	}
	return st
}
