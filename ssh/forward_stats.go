package ssh

import "sync/atomic"

// ForwardStats is a snapshot of a [Forwarder]'s counters, over every connection it
// served. It holds counts only: identities and destinations are never recorded.
type ForwardStats struct {
	// Opened counts forwarded connections whose destination connected; Active those
	// still carrying bytes (remote-forward connections included).
	Opened uint64
	Active int64
	// Refused counts forwards the forwarding policy refused: a denied or a reserved
	// destination (ReasonDenied, ReasonReserved).
	Refused uint64
	// DialFailed counts allowed forwards whose destination did not resolve, refused
	// the connection or did not answer in time (ReasonResolve, ReasonConnectFailed,
	// ReasonConnectTimeout).
	DialFailed uint64
	// Rejected counts streams refused before the policy decided: a malformed or too
	// long header, an invalid destination, too many streams or no memory budget left.
	Rejected uint64
	// BytesUp counts the bytes written to destinations, BytesDown those written back
	// to clients, as they move (remote forwards included: up is what the client sends).
	BytesUp, BytesDown uint64
	// RemoteForward counts listen requests (-R) by outcome; RemoteConnections the
	// connections to remote-forward listeners handed to clients.
	RemoteForward     Outcomes
	RemoteConnections uint64
}

// forwardCounters are the live counters behind ForwardStats.
type forwardCounters struct {
	opened, refused, dialFailed, rejected atomic.Uint64
	active                                atomic.Int64
	bytesUp, bytesDown                    atomic.Uint64
	remote                                outcomeCounters
	remoteConns                           atomic.Uint64
}

// refusal counts a forward connect refused with reason.
func (c *forwardCounters) refusal(reason string) {
	switch reason {
	case ReasonDenied, ReasonReserved:
		c.refused.Add(1)
	case ReasonResolve, ReasonConnectFailed, ReasonConnectTimeout:
		c.dialFailed.Add(1)
	default:
		c.rejected.Add(1)
	}
}

// Stats returns a snapshot of the Forwarder's counters.
func (f *Forwarder) Stats() ForwardStats {
	c := &f.stats
	return ForwardStats{
		Opened:            c.opened.Load(),
		Active:            c.active.Load(),
		Refused:           c.refused.Load(),
		DialFailed:        c.dialFailed.Load(),
		Rejected:          c.rejected.Load(),
		BytesUp:           c.bytesUp.Load(),
		BytesDown:         c.bytesDown.Load(),
		RemoteForward:     c.remote.snapshot(),
		RemoteConnections: c.remoteConns.Load(),
	}
}
