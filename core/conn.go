package core

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// BiStream is one bidirectional byte stream: a QUIC stream, a TLS connection, an SSH
// channel. The same value is the reader and the writer.
//
// The streams the endpoint and the dialer hand out also implement [net.Conn]
// (addresses and deadlines); use [NetConn] to get one from any BiStream.
type BiStream interface {
	io.Reader
	io.Writer
	// CloseWrite half-closes: the peer reads io.EOF after the bytes already written,
	// while this side can go on reading. QUIC sends FIN; TLS sends close_notify and
	// shuts down the TCP write side.
	CloseWrite() error
	// Close closes both directions and releases the stream.
	Close() error
}

// BidiStreamSource is what a transport implements to become a [Connection].
type BidiStreamSource interface {
	// AcceptBi waits for the next stream the peer opens.
	AcceptBi(ctx context.Context) (BiStream, error)
	// OpenBi opens a new stream to the peer.
	OpenBi(ctx context.Context) (BiStream, error)
	// RemoteAddr returns the peer's address, or nil when the transport has none.
	RemoteAddr() net.Addr
	// Close closes the whole connection. Transports with application close codes
	// (QUIC) send code and reason; others ignore them.
	Close(code uint32, reason string)
}

// Optional interfaces a BidiStreamSource may implement; [Connection] forwards to them.
type (
	localAddrer interface{ LocalAddr() net.Addr }
	tlsStater   interface {
		TLSConnectionState() tls.ConnectionState
	}
	busier      interface{ Busy() func() }
	uniAccepter interface {
		AcceptUni(ctx context.Context) (io.Reader, error)
	}
)

// Connection is what a handler is given: one transport connection with its negotiated
// ALPN. Use it the same way whatever carries it:
//
//   - QUIC: every AcceptBi/OpenBi is a new bidirectional stream; once the connection is
//     gone they report [ErrConnectionClosed].
//   - Single stream (TCP+TLS, an SSH channel, a WebSocket): the one stream goes to the
//     first AcceptBi or OpenBi call, whichever comes first (a server accepts it, a client
//     opens it). After that AcceptBi reports [ErrConnectionClosed] and OpenBi reports
//     [ErrStreamClosed]. Protocols that need several logical streams multiplex inside;
//     [Connection.SingleStream] tells which kind a connection is.
type Connection struct {
	src    BidiStreamSource
	alpn   string
	id     atomic.Pointer[Identity]
	budget *Budget
}

// NewConnection wraps a transport as a Connection that negotiated alpn.
func NewConnection(src BidiStreamSource, alpn string) *Connection {
	return &Connection{src: src, alpn: alpn}
}

// FromBidi wraps a single stream as a Connection: AcceptBi yields s once.
func FromBidi(s BiStream, alpn string, remote net.Addr) *Connection {
	return NewConnection(NewSingleStreamSource(s, remote), alpn)
}

// Source returns the transport the connection wraps (what [NewConnection] was given),
// for the transport's own package to reach its type again: endpoint.QUICConn uses it to
// hand a handler the QUIC connection under a Connection.
func (c *Connection) Source() BidiStreamSource { return c.src }

// AcceptBi waits for the next stream opened by the peer.
func (c *Connection) AcceptBi(ctx context.Context) (BiStream, error) { return c.src.AcceptBi(ctx) }

// OpenBi opens a stream to the peer.
func (c *Connection) OpenBi(ctx context.Context) (BiStream, error) { return c.src.OpenBi(ctx) }

// AcceptUni waits for the next unidirectional stream the peer opens and returns its
// receive side. Protocols in which such a stream is a peer error (DNS over QUIC) watch
// for one with it. QUIC connections from an endpoint see them only when the endpoint
// allows them for every handler (endpoint.Config.MaxIncomingUniStreams) or the handler
// is a [UniStreamHandler]; otherwise a peer cannot open one (or has its connection
// closed when it does) and AcceptUni waits until ctx ends or the connection closes
// ([ErrConnectionClosed]).
// Transports without unidirectional streams (TCP+TLS, single streams) return an error
// wrapping [errors.ErrUnsupported] at once.
func (c *Connection) AcceptUni(ctx context.Context) (io.Reader, error) {
	if u, ok := c.src.(uniAccepter); ok {
		return u.AcceptUni(ctx)
	}
	return nil, fmt.Errorf("core: accept unidirectional stream: %w", errors.ErrUnsupported)
}

// Budget returns the connection's memory budget for buffered inbound bytes (see
// [Budget]); nil, which has no limit, when the transport set none.
func (c *Connection) Budget() *Budget { return c.budget }

// SetBudget sets the connection's memory budget. Transports call it before the handler
// runs; the endpoint gives every connection one under its address's and the node's.
func (c *Connection) SetBudget(b *Budget) { c.budget = b }

// Busy marks the connection as doing work: until done is called, an idle timeout (the
// endpoint's [Limits.IdleTimeout]) does not close it, however quiet it is. Handlers call
// it while a request runs and, for the life of a connection, once it has authenticated
// (an SSH session, a peer connection with an identity), so that only connections that
// neither work nor proved who they are get closed for idling. Calls nest; done is
// idempotent. On transports without an idle timeout it does nothing.
func (c *Connection) Busy() (done func()) {
	if b, ok := c.src.(busier); ok {
		return b.Busy()
	}
	return func() {}
}

// SingleStream reports whether the connection carries only one stream (TCP+TLS and
// other single-stream carriers).
func (c *Connection) SingleStream() bool {
	s, ok := c.src.(interface{ SingleStream() bool })
	return ok && s.SingleStream()
}

// RemoteALPN returns the protocol negotiated in the handshake ("" when none was).
func (c *Connection) RemoteALPN() string { return c.alpn }

// RemoteAddr returns the peer's address, or nil when unknown.
func (c *Connection) RemoteAddr() net.Addr { return c.src.RemoteAddr() }

// LocalAddr returns the local address, or nil when the transport does not say.
func (c *Connection) LocalAddr() net.Addr {
	if l, ok := c.src.(localAddrer); ok {
		return l.LocalAddr()
	}
	return nil
}

// TLSConnectionState returns the TLS state of the handshake that carried this connection,
// and false when the transport has none.
func (c *Connection) TLSConnectionState() (tls.ConnectionState, bool) {
	if s, ok := c.src.(*singleStream); ok {
		return s.tlsState()
	}
	if t, ok := c.src.(tlsStater); ok {
		return t.TLSConnectionState(), true
	}
	return tls.ConnectionState{}, false
}

// PeerFingerprint returns the fingerprint of the certificate the peer presented
// (see [FingerprintFromCert]), or "" when it presented none.
func (c *Connection) PeerFingerprint() string {
	st, ok := c.TLSConnectionState()
	if !ok || len(st.PeerCertificates) == 0 {
		return ""
	}
	return FingerprintFromCert(st.PeerCertificates[0])
}

// Close closes the connection with an application code and reason (see CloseNormal
// and the other Close constants). The reason must not carry secrets.
func (c *Connection) Close(code uint32, reason string) { c.src.Close(code, reason) }

// SetIdentity records the identity a handler resolved, for logs and audit. Only the
// first call succeeds; later calls return [ErrIdentityAlreadySet].
func (c *Connection) SetIdentity(id Identity) error {
	cp := id.Clone()
	if !c.id.CompareAndSwap(nil, &cp) {
		return ErrIdentityAlreadySet
	}
	return nil
}

// Identity returns a copy of the identity recorded with SetIdentity.
func (c *Connection) Identity() (Identity, bool) {
	p := c.id.Load()
	if p == nil {
		return Identity{}, false
	}
	return p.Clone(), true
}

// singleStream yields one stream once.
type singleStream struct {
	mu     sync.Mutex
	s      BiStream
	taken  bool
	remote net.Addr
	closed chan struct{}
	once   sync.Once
}

// NewSingleStreamSource returns a [BidiStreamSource] over one stream: the first AcceptBi
// or OpenBi returns s; afterwards AcceptBi reports [ErrConnectionClosed] and OpenBi
// [ErrStreamClosed] without waiting, and Close closes s. If s implements LocalAddr or
// TLSConnectionState (as *tls.Conn does through a wrapper), the Connection exposes them.
func NewSingleStreamSource(s BiStream, remote net.Addr) BidiStreamSource {
	return &singleStream{s: s, remote: remote, closed: make(chan struct{})}
}

func (s *singleStream) take(ctx context.Context, gone error) (BiStream, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.taken {
		return nil, gone
	}
	select {
	case <-s.closed:
		return nil, gone
	default:
	}
	s.taken = true
	return s.s, nil
}

func (s *singleStream) AcceptBi(ctx context.Context) (BiStream, error) {
	return s.take(ctx, ErrConnectionClosed)
}

func (s *singleStream) OpenBi(ctx context.Context) (BiStream, error) {
	return s.take(ctx, ErrStreamClosed)
}

func (s *singleStream) SingleStream() bool { return true }

func (s *singleStream) RemoteAddr() net.Addr { return s.remote }

func (s *singleStream) LocalAddr() net.Addr {
	if l, ok := s.s.(localAddrer); ok {
		return l.LocalAddr()
	}
	return nil
}

func (s *singleStream) TLSConnectionState() tls.ConnectionState {
	st, _ := s.tlsState()
	return st
}

// tlsState returns the wrapped stream's TLS state, and false when it has none.
func (s *singleStream) tlsState() (tls.ConnectionState, bool) {
	if t, ok := s.s.(tlsStater); ok {
		return t.TLSConnectionState(), true
	}
	if t, ok := s.s.(interface{ ConnectionState() tls.ConnectionState }); ok {
		return t.ConnectionState(), true
	}
	return tls.ConnectionState{}, false
}

func (s *singleStream) Close(uint32, string) {
	s.once.Do(func() {
		close(s.closed)
		_ = s.s.Close()
	})
}

// NetConn returns s as a [net.Conn]: s itself when it already is one, otherwise a
// wrapper whose addresses are the given ones (may be nil) and whose deadline methods
// forward to s when it has them and fail with [os.ErrNoDeadline] otherwise.
func NetConn(s BiStream, local, remote net.Addr) net.Conn {
	if c, ok := s.(net.Conn); ok {
		return c
	}
	return &netConn{BiStream: s, local: local, remote: remote}
}

type netConn struct {
	BiStream
	local, remote net.Addr
}

func (c *netConn) LocalAddr() net.Addr  { return c.local }
func (c *netConn) RemoteAddr() net.Addr { return c.remote }

func (c *netConn) SetDeadline(t time.Time) error {
	if d, ok := c.BiStream.(interface{ SetDeadline(time.Time) error }); ok {
		return d.SetDeadline(t)
	}
	return os.ErrNoDeadline
}

func (c *netConn) SetReadDeadline(t time.Time) error {
	if d, ok := c.BiStream.(interface{ SetReadDeadline(time.Time) error }); ok {
		return d.SetReadDeadline(t)
	}
	return os.ErrNoDeadline
}

func (c *netConn) SetWriteDeadline(t time.Time) error {
	if d, ok := c.BiStream.(interface{ SetWriteDeadline(time.Time) error }); ok {
		return d.SetWriteDeadline(t)
	}
	return os.ErrNoDeadline
}

// ServeStreams calls serve for every stream the peer opens on conn, each in its own
// goroutine, until the connection closes (on a single-stream connection: after its one
// stream). It then waits for every serve call to return and returns nil, or the accept
// error when it is not [ErrConnectionClosed] (a cancelled ctx, for instance). It is the
// loop most multi-stream handlers need:
//
//	func (h *Handler) Handle(ctx context.Context, conn *core.Connection, _ core.AuthContext) error {
//		return core.ServeStreams(ctx, conn, h.serveStream)
//	}
func ServeStreams(ctx context.Context, conn *Connection, serve func(BiStream)) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		s, err := conn.AcceptBi(ctx)
		if err != nil {
			if errors.Is(err, ErrConnectionClosed) {
				return nil
			}
			return err
		}
		wg.Go(func() { serve(s) })
	}
}
