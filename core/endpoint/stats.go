package endpoint

import "sync/atomic"

// ConnKey is a key of [Stats.AcceptedBy]: the transport a connection came by
// ("quic", "tcp+tls", or "dispatch" for Endpoint.Dispatch) and the ALPN of the handler
// that took it (always a registered one, so never a string a client chose).
type ConnKey struct {
	Transport string
	ALPN      string
}

// streamGauge counts the bidirectional QUIC streams of one served connection that are
// open: accepted or opened, and not yet closed by the handler (Close). It ends with
// its connection, so a handler that never closes a stream inflates it only while the
// connection lasts.
type streamGauge struct {
	open  atomic.Int64
	total *atomic.Uint64 // the endpoint's count of streams; nil on dialed connections
}

// opened counts a new stream.
func (g *streamGauge) opened() {
	if g == nil {
		return
	}
	g.open.Add(1)
	if g.total != nil {
		g.total.Add(1)
	}
}

// closed counts a stream's first Close.
func (g *streamGauge) closed() {
	if g != nil {
		g.open.Add(-1)
	}
}

// activeStreams sums the open streams of the connections whose handlers run.
func (e *Endpoint) activeStreams() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for t := range e.conns {
		if t.streams != nil {
			n += int(max(t.streams.open.Load(), 0))
		}
	}
	return n
}
