package endpoint

import (
	"fmt"

	"github.com/quic-go/quic-go"

	"github.com/alknet/alknet/core"
)

// QUICConn returns the QUIC connection under conn, for a handler that runs a protocol
// library which needs the connection itself (quic-go's http3.Server.ServeQUICConn); ok is
// false for any other transport (TCP+TLS, a dispatched connection).
//
// What the handler does on it directly bypasses the endpoint's bookkeeping of streams:
// streams it accepts or opens there are not traffic for the idle timeout (mark the
// connection busy with core.Connection.Busy while it works), and it may accept
// unidirectional streams only when its handler is a core.UniStreamHandler or
// Config.MaxIncomingUniStreams allows them. Closing it, or letting Handle return, ends
// the connection as usual.
func QUICConn(conn *core.Connection) (qc *quic.Conn, ok bool) {
	if conn == nil {
		return nil, false
	}
	src, ok := conn.Source().(*quicSource)
	if !ok {
		return nil, false
	}
	return src.c, true
}

// declaredUniStreams returns the most unidirectional streams a handler of reg asks for
// (core.UniStreamHandler); 0 when none does.
func declaredUniStreams(reg *core.Registry) int64 {
	var n int64
	for _, alpn := range reg.ALPNs() {
		if h, ok := reg.Get(alpn); ok {
			if u, ok := h.(core.UniStreamHandler); ok {
				n = max(n, u.MaxIncomingUniStreams())
			}
		}
	}
	return n
}

// acceptsUni reports whether the handler of alpn takes unidirectional streams.
func (e *Endpoint) acceptsUni(alpn string) bool {
	h, ok := e.reg.Get(alpn)
	if !ok {
		return false
	}
	u, ok := h.(core.UniStreamHandler)
	return ok && u.MaxIncomingUniStreams() > 0
}

// uniRefusedReason is the close reason of a connection whose peer opened a
// unidirectional stream its protocol has none of.
const uniRefusedReason = "unidirectional streams not accepted on %q"

// refuseUniStreams closes qc with core.CloseLimitExceeded as soon as its peer opens a
// unidirectional stream: the listener grants them for another protocol's handlers
// (core.UniStreamHandler), and this connection's protocol has none, so a peer that
// opens one breaks the protocol as it would have broken QUIC's stream limit. It returns
// when the connection ends.
func refuseUniStreams(qc *quic.Conn, alpn string) {
	st, err := qc.AcceptUniStream(qc.Context())
	if err != nil {
		return
	}
	st.CancelRead(0)
	_ = qc.CloseWithError(quic.ApplicationErrorCode(core.CloseLimitExceeded), fmt.Sprintf(uniRefusedReason, alpn))
}
