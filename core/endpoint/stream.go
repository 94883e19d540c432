package endpoint

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
	"syscall"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/alknet/alknet/core"
)

// quicSource adapts a *quic.Conn to core.BidiStreamSource: a new stream per AcceptBi
// and OpenBi.
type quicSource struct {
	c       *quic.Conn
	idle    *idleWatch   // nil: no idle timeout (dialed connections)
	streams *streamGauge // nil: not counted (dialed connections)
	// noUni: the endpoint refuses this connection's unidirectional streams (see
	// refuseUniStreams); AcceptUni never yields one.
	noUni bool
}

func (s *quicSource) AcceptBi(ctx context.Context) (core.BiStream, error) {
	st, err := s.c.AcceptStream(ctx)
	if err != nil {
		return nil, mapErr("accept", err)
	}
	s.idle.touch()
	s.streams.opened()
	return &quicStream{Stream: st, conn: s.c, idle: s.idle, gauge: s.streams}, nil
}

func (s *quicSource) OpenBi(ctx context.Context) (core.BiStream, error) {
	st, err := s.c.OpenStreamSync(ctx)
	if err != nil {
		return nil, mapErr("open", err)
	}
	s.idle.touch()
	s.streams.opened()
	return &quicStream{Stream: st, conn: s.c, idle: s.idle, gauge: s.streams}, nil
}

// AcceptUni implements core.Connection.AcceptUni: the receive side of the next
// unidirectional stream the peer opens.
func (s *quicSource) AcceptUni(ctx context.Context) (io.Reader, error) {
	if s.noUni {
		// As when QUIC grants none: wait for ctx or the connection's end.
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-s.c.Context().Done():
			return nil, mapErr("accept", context.Cause(s.c.Context()))
		}
	}
	st, err := s.c.AcceptUniStream(ctx)
	if err != nil {
		return nil, mapErr("accept", err)
	}
	s.idle.touch()
	return st, nil
}

// Busy implements core.Connection.Busy.
func (s *quicSource) Busy() func() { return s.idle.Busy() }

func (s *quicSource) RemoteAddr() net.Addr { return s.c.RemoteAddr() }
func (s *quicSource) LocalAddr() net.Addr  { return s.c.LocalAddr() }

func (s *quicSource) TLSConnectionState() tls.ConnectionState { return s.c.ConnectionState().TLS }

func (s *quicSource) Close(code uint32, reason string) {
	_ = s.c.CloseWithError(quic.ApplicationErrorCode(code), truncateReason(reason))
}

// maxReasonLen keeps close reasons well inside one packet.
const maxReasonLen = 256

func truncateReason(r string) string {
	if len(r) > maxReasonLen {
		return r[:maxReasonLen]
	}
	return r
}

// quicStream is one QUIC stream as a core.BiStream and a net.Conn.
type quicStream struct {
	*quic.Stream
	conn   *quic.Conn
	idle   *idleWatch
	gauge  *streamGauge
	closed atomic.Bool // counted closed in gauge
}

func (s *quicStream) Read(p []byte) (int, error) {
	n, err := s.Stream.Read(p)
	if n > 0 {
		s.idle.touch()
	}
	if err != nil && err != io.EOF {
		err = mapErr("read", err)
	}
	return n, err
}

func (s *quicStream) Write(p []byte) (int, error) {
	n, err := s.Stream.Write(p)
	if n > 0 {
		s.idle.touch()
	}
	if err != nil {
		err = mapErr("write", err)
	}
	return n, err
}

// CloseWrite sends FIN.
func (s *quicStream) CloseWrite() error { return mapErr("close", s.Stream.Close()) }

// Close closes both directions: FIN for the write side (if not yet sent) and
// STOP_SENDING for the read side, so neither peer nor goroutines hang.
func (s *quicStream) Close() error {
	if s.closed.CompareAndSwap(false, true) {
		s.gauge.closed()
	}
	s.Stream.CancelRead(0)
	return mapErr("close", s.Stream.Close())
}

func (s *quicStream) LocalAddr() net.Addr  { return s.conn.LocalAddr() }
func (s *quicStream) RemoteAddr() net.Addr { return s.conn.RemoteAddr() }

// mapErr classifies a quic-go or TLS error under core's sentinels, keeping the original
// reachable with errors.As. io.EOF and context errors pass through unchanged.
func mapErr(op string, err error) error {
	if err == nil || err == io.EOF || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var (
		idle      *quic.IdleTimeoutError
		hsTimeout *quic.HandshakeTimeoutError
		appErr    *quic.ApplicationError
		trErr     *quic.TransportError
		reset     *quic.StatelessResetError
		strErr    *quic.StreamError
	)
	switch {
	case errors.As(err, &appErr):
		return &core.CloseError{Code: uint32(min(uint64(appErr.ErrorCode), uint64(^uint32(0)))), Reason: appErr.ErrorMessage, Remote: appErr.Remote, Err: err}
	case errors.As(err, &idle), errors.As(err, &hsTimeout):
		return fmt.Errorf("%w: %w: %w", core.ErrConnectionClosed, core.ErrStreamTimeout, err)
	case errors.As(err, &strErr), errors.Is(err, quic.ErrStreamClosed):
		return fmt.Errorf("%w: %w", core.ErrStreamClosed, err)
	case errors.Is(err, os.ErrDeadlineExceeded):
		return &deadlineError{err: err}
	case errors.As(err, &trErr), errors.As(err, &reset),
		errors.Is(err, quic.ErrServerClosed), errors.Is(err, net.ErrClosed),
		errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return fmt.Errorf("%w: %w", core.ErrConnectionClosed, err)
	case errors.Is(err, core.ErrConnectionClosed), errors.Is(err, core.ErrStreamClosed), errors.Is(err, core.ErrStreamTimeout):
		return err
	}
	return &core.StreamError{Op: op, Err: err}
}

// closeNotifyTimeout bounds the close_notify write when a TLS connection is closed
// normally, so a peer that stopped reading cannot hold the closing goroutine.
const closeNotifyTimeout = time.Second

// tlsStream is the one stream of a TCP+TLS connection.
type tlsStream struct {
	*tls.Conn
	idle      *idleWatch // nil: no idle timeout (dialed connections); set before use
	closeOnce sync.Once
	closeErr  error
}

func (s *tlsStream) Read(p []byte) (int, error) {
	n, err := s.Conn.Read(p)
	if n > 0 {
		s.idle.touch()
	}
	if err != nil && err != io.EOF {
		err = mapErr("read", err)
	}
	return n, err
}

func (s *tlsStream) Write(p []byte) (int, error) {
	n, err := s.Conn.Write(p)
	if n > 0 {
		s.idle.touch()
	}
	if err != nil {
		err = mapErr("write", err)
	}
	return n, err
}

// CloseWrite sends close_notify and shuts down the TCP write side, so the peer reads EOF
// while this side keeps reading.
func (s *tlsStream) CloseWrite() error {
	if err := s.Conn.CloseWrite(); err != nil {
		return mapErr("close", err)
	}
	if cw, ok := s.Conn.NetConn().(interface{ CloseWrite() error }); ok {
		return mapErr("close", cw.CloseWrite())
	}
	return nil
}

// Close sends close_notify (bounded by closeNotifyTimeout) and closes the connection.
func (s *tlsStream) Close() error {
	s.closeOnce.Do(func() {
		_ = s.Conn.SetWriteDeadline(time.Now().Add(closeNotifyTimeout))
		s.closeErr = s.Conn.Close()
	})
	return s.closeErr
}

// forceClose drops the TCP connection without a TLS goodbye.
func (s *tlsStream) forceClose() { _ = s.Conn.NetConn().Close() }

func (s *tlsStream) TLSConnectionState() tls.ConnectionState { return s.Conn.ConnectionState() }

// tlsSource is a TCP+TLS connection: one stream, yielded once.
type tlsSource struct {
	core.BidiStreamSource
	s *tlsStream
}

func newTLSSource(tc *tls.Conn) *tlsSource {
	s := &tlsStream{Conn: tc}
	return &tlsSource{BidiStreamSource: core.NewSingleStreamSource(s, tc.RemoteAddr()), s: s}
}

func (t *tlsSource) LocalAddr() net.Addr                     { return t.s.LocalAddr() }
func (t *tlsSource) TLSConnectionState() tls.ConnectionState { return t.s.ConnectionState() }

// Busy implements core.Connection.Busy.
func (t *tlsSource) Busy() func() { return t.s.idle.Busy() }

// SingleStream is not promoted from the embedded interface, whose method set lacks it.
func (t *tlsSource) SingleStream() bool { return true }

// deadlineError is a passed read or write deadline. It is a net.Error whose Timeout is
// true, as the net.Conn contract asks (net/http asserts the type directly to tell an
// aborted background read from a lost connection), and it matches both
// core.ErrStreamTimeout and os.ErrDeadlineExceeded with errors.Is.
type deadlineError struct{ err error }

func (e *deadlineError) Error() string   { return core.ErrStreamTimeout.Error() + ": " + e.err.Error() }
func (e *deadlineError) Timeout() bool   { return true }
func (e *deadlineError) Temporary() bool { return true }
func (e *deadlineError) Unwrap() []error { return []error{core.ErrStreamTimeout, e.err} }
