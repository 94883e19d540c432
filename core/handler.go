package core

import (
	"context"
	"fmt"
	"slices"
	"sync"
)

// Handler serves the connections of one ALPN. Handle runs in its own goroutine for each
// connection, for as long as the conversation lasts:
//
//   - ctx is cancelled when the endpoint starts shutting down (and, on QUIC, when the
//     connection closes); the endpoint force-closes the connection after its drain timeout
//     whatever Handle does.
//   - auth is what the endpoint resolved from the TLS handshake; a handler that finishes
//     authentication at the protocol level keeps the result in a local variable (and may
//     record it with [Connection.SetIdentity] for logs), never by mutating auth.
//   - When Handle returns, the endpoint closes the connection: nil and [ErrConnectionClosed]
//     close with [CloseNormal], [ErrAuthRequired] with [CloseAuthRequired], anything else
//     with [CloseInternalError] and the error text. On QUIC, bytes the peer has not yet
//     acknowledged are lost at that point, so a protocol in which the server speaks last
//     should let the client close (loop on [Connection.AcceptBi] until it reports
//     [ErrConnectionClosed]).
//   - A panic is recovered by the endpoint and affects only this connection.
type Handler interface {
	Handle(ctx context.Context, conn *Connection, auth AuthContext) error
}

// ProtocolHandler is a [Handler] that names its own ALPN, such as "alknet/call".
type ProtocolHandler interface {
	Handler
	ALPN() string
}

// UniStreamHandler is a [Handler] whose connections carry unidirectional streams the
// peer opens, such as HTTP/3's control and QPACK streams.
//
// QUIC grants unidirectional streams for a whole listener, before the handshake says
// which ALPN a connection speaks. So an endpoint allows every QUIC connection the most
// that any registered UniStreamHandler asks for (or endpoint.Config.MaxIncomingUniStreams,
// if larger), and on the connections of every other handler a peer that opens one
// anyway has its connection closed with [CloseLimitExceeded], as QUIC itself closes a
// connection whose peer opens a stream it was not granted. Only when
// endpoint.Config.MaxIncomingUniStreams allows them do all handlers see them.
type UniStreamHandler interface {
	Handler
	// MaxIncomingUniStreams is how many concurrent unidirectional streams a peer may
	// open on one connection of this handler.
	MaxIncomingUniStreams() int64
}

// HandlerFunc adapts an ordinary function to [Handler].
type HandlerFunc func(ctx context.Context, conn *Connection, auth AuthContext) error

// Handle calls f.
func (f HandlerFunc) Handle(ctx context.Context, conn *Connection, auth AuthContext) error {
	return f(ctx, conn, auth)
}

// ALPNACME is the protocol name of the ACME TLS-ALPN-01 challenge. It can never be
// registered; the endpoint closes such connections after the handshake.
const ALPNACME = "acme-tls/1"

// MaxALPNLength is the longest protocol name TLS can carry.
const MaxALPNLength = 255

// Registry maps ALPN protocol names to handlers, like [net/http.ServeMux] maps paths.
// It is safe for concurrent use; an endpoint takes its ALPN list when it is built, so
// register every handler before that.
type Registry struct {
	mu       sync.RWMutex
	handlers map[string]Handler
	order    []string
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{handlers: make(map[string]Handler)}
}

// Register adds h under h.ALPN().
func (r *Registry) Register(h ProtocolHandler) error {
	if h == nil {
		return fmt.Errorf("%w: nil handler", ErrInvalidALPN)
	}
	return r.RegisterAs(h.ALPN(), h)
}

// RegisterAs adds h under alpn; one handler may serve several ALPNs (h2 and http/1.1).
// It returns an error wrapping [ErrInvalidALPN] for an empty name, a name longer than
// [MaxALPNLength] bytes or [ALPNACME], and [ErrDuplicateALPN] when alpn is taken.
func (r *Registry) RegisterAs(alpn string, h Handler) error {
	switch {
	case alpn == "":
		return fmt.Errorf("%w: empty name", ErrInvalidALPN)
	case len(alpn) > MaxALPNLength:
		return fmt.Errorf("%w: %d bytes, longer than %d", ErrInvalidALPN, len(alpn), MaxALPNLength)
	case alpn == ALPNACME:
		return fmt.Errorf("%w: %q is reserved for ACME challenges", ErrInvalidALPN, alpn)
	case h == nil:
		return fmt.Errorf("%w: nil handler for %q", ErrInvalidALPN, alpn)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.handlers == nil {
		r.handlers = make(map[string]Handler)
	}
	if _, ok := r.handlers[alpn]; ok {
		return fmt.Errorf("%w: %q", ErrDuplicateALPN, alpn)
	}
	r.handlers[alpn] = h
	r.order = append(r.order, alpn)
	return nil
}

// Get returns the handler registered for alpn.
func (r *Registry) Get(alpn string) (Handler, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	h, ok := r.handlers[alpn]
	return h, ok
}

// ALPNs returns the registered names in registration order, which is the server's
// preference order in the TLS handshake.
func (r *Registry) ALPNs() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return slices.Clone(r.order)
}
