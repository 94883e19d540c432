package ssh

import (
	"sync/atomic"

	gossh "golang.org/x/crypto/ssh"
)

// Stats is a snapshot of a [Server]'s counters. It holds counts only: users,
// commands, subsystem names and forwarding destinations are never recorded.
type Stats struct {
	// Sessions counts connections that authenticated; ActiveSessions those still open.
	Sessions       uint64
	ActiveSessions int64
	// HandshakeFailures counts connections whose SSH handshake (authentication
	// included) failed or timed out.
	HandshakeFailures uint64
	// Exec, Subsystem, DirectTCPIP and RemoteForward count requests by outcome.
	Exec          Outcomes
	Subsystem     Outcomes
	DirectTCPIP   Outcomes // direct-tcpip channels (local forwards, ProxyJump)
	RemoteForward Outcomes // tcpip-forward requests
}

// Outcomes counts requests accepted and refused.
type Outcomes struct {
	Accepted, Refused uint64
}

// sshCounters are the live counters behind Stats.
type sshCounters struct {
	sessions, handshakeFailures     atomic.Uint64
	active                          atomic.Int64
	exec, subsystem, direct, remote outcomeCounters
}

type outcomeCounters struct{ accepted, refused atomic.Uint64 }

func (c *outcomeCounters) count(ok bool) {
	if ok {
		c.accepted.Add(1)
	} else {
		c.refused.Add(1)
	}
}

func (c *outcomeCounters) snapshot() Outcomes {
	return Outcomes{Accepted: c.accepted.Load(), Refused: c.refused.Load()}
}

// Stats returns a snapshot of the server's counters.
func (s *Server) Stats() Stats {
	c := &s.stats
	return Stats{
		Sessions:          c.sessions.Load(),
		ActiveSessions:    c.active.Load(),
		HandshakeFailures: c.handshakeFailures.Load(),
		Exec:              c.exec.snapshot(),
		Subsystem:         c.subsystem.snapshot(),
		DirectTCPIP:       c.direct.snapshot(),
		RemoteForward:     c.remote.snapshot(),
	}
}

// countedChannel counts a channel open request's outcome before the client learns it.
type countedChannel struct {
	gossh.NewChannel
	c *outcomeCounters
}

func (ch countedChannel) Accept() (gossh.Channel, <-chan *gossh.Request, error) {
	c, reqs, err := ch.NewChannel.Accept()
	if err == nil {
		ch.c.accepted.Add(1)
	}
	return c, reqs, err
}

func (ch countedChannel) Reject(reason gossh.RejectionReason, message string) error {
	ch.c.refused.Add(1)
	return ch.NewChannel.Reject(reason, message)
}
