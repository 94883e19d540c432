package main

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/core/endpoint"
	"github.com/alknet/alknet/examples/echo"
)

// baselineServer is what a user would write without alknet: a quic-go listener whose
// accept loop serves the echo and sink protocols by negotiated ALPN, and a crypto/tls
// listener serving the sink.
type baselineServer struct {
	quicLn   *quic.Listener
	quicAddr string
	tlsLn    net.Listener
	tlsAddr  string

	active atomic.Int64 // connections being served

	mu     sync.Mutex
	closed bool
	conns  map[io.Closer]struct{}
	wg     sync.WaitGroup

	closeOnce sync.Once
	closeErr  error
}

// baselineServerTLS has the settings of tlsconf.ServerConfig: the same certificate,
// client certificates requested (not verified), TLS 1.3 minimum.
func baselineServerTLS(cert tls.Certificate) *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequestClientCert,
		MinVersion:   tls.VersionTLS13,
		NextProtos:   []string{echo.ALPN, sinkALPN},
	}
}

// baselineClientTLS presents cert and pins the server's Ed25519 key.
func baselineClientTLS(cert tls.Certificate, serverKey ed25519.PublicKey, alpn string) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		NextProtos: []string{alpn},
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return &cert, nil
		},
		InsecureSkipVerify: true, // replaced by the pin check
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("server presented no certificate")
			}
			if k, ok := cs.PeerCertificates[0].PublicKey.(ed25519.PublicKey); !ok || !k.Equal(serverKey) {
				return errors.New("server key does not match the pin")
			}
			return nil
		},
	}
}

func startBaseline(cert tls.Certificate) (*baselineServer, error) {
	b := &baselineServer{conns: make(map[io.Closer]struct{})}
	ql, err := quic.ListenAddr("127.0.0.1:0", baselineServerTLS(cert), &quic.Config{
		HandshakeIdleTimeout:  core.DefaultHandshakeTimeout,
		MaxIdleTimeout:        endpoint.DefaultMaxIdleTimeout,
		KeepAlivePeriod:       endpoint.DefaultKeepAlivePeriod,
		MaxIncomingStreams:    endpoint.DefaultMaxIncomingStreams,
		MaxIncomingUniStreams: -1,
	})
	if err != nil {
		return nil, err
	}
	tl, err := tls.Listen("tcp", "127.0.0.1:0", baselineServerTLS(cert))
	if err != nil {
		ql.Close()
		return nil, err
	}
	b.quicLn, b.quicAddr = ql, ql.Addr().String()
	b.tlsLn, b.tlsAddr = tl, tl.Addr().String()
	b.wg.Go(b.acceptQUIC)
	b.wg.Go(b.acceptTLS)
	return b, nil
}

// track registers c for close; false once closing.
func (b *baselineServer) track(c io.Closer) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return false
	}
	b.conns[c] = struct{}{}
	b.active.Add(1)
	return true
}

func (b *baselineServer) untrack(c io.Closer) {
	b.mu.Lock()
	delete(b.conns, c)
	b.mu.Unlock()
	b.active.Add(-1)
}

func (b *baselineServer) acceptQUIC() {
	for {
		qc, err := b.quicLn.Accept(context.Background())
		if err != nil {
			return
		}
		c := quicCloser{qc}
		if !b.track(c) {
			_ = qc.CloseWithError(0, "shutting down")
			continue
		}
		b.wg.Go(func() {
			defer b.untrack(c)
			serveQUICConn(qc)
		})
	}
}

type quicCloser struct{ c *quic.Conn }

func (q quicCloser) Close() error { return q.c.CloseWithError(0, "shutdown") }

// serveQUICConn serves each stream the peer opens by the connection's ALPN until the
// connection closes.
func serveQUICConn(qc *quic.Conn) {
	defer qc.CloseWithError(0, "")
	serve := echoQUICStream
	if qc.ConnectionState().TLS.NegotiatedProtocol == sinkALPN {
		serve = sinkQUICStream
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		s, err := qc.AcceptStream(context.Background())
		if err != nil {
			return
		}
		wg.Go(func() { serve(s) })
	}
}

// echoQUICStream is examples/echo's stream loop on a bare quic-go stream.
func echoQUICStream(s *quic.Stream) {
	buf := make([]byte, echoBufSize)
	if _, err := io.CopyBuffer(s, onlyReader{s}, buf); err != nil {
		s.CancelRead(0)
		_ = s.Close()
		return
	}
	_ = s.Close()
}

func sinkQUICStream(s *quic.Stream) {
	if err := sinkStream(s); err != nil {
		s.CancelRead(0)
	}
	_ = s.Close()
}

// onlyReader hides WriterTo so CopyBuffer uses the buffer, as examples/echo does.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

func (b *baselineServer) acceptTLS() {
	for {
		c, err := b.tlsLn.Accept()
		if err != nil {
			return
		}
		if !b.track(c) {
			_ = c.Close()
			continue
		}
		b.wg.Go(func() {
			defer b.untrack(c)
			serveTLSConn(c.(*tls.Conn))
		})
	}
}

// serveTLSConn runs the handshake (bounded like the endpoint's), then the echo or the
// sink as the ALPN says.
func serveTLSConn(tc *tls.Conn) {
	defer tc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), core.DefaultHandshakeTimeout)
	err := tc.HandshakeContext(ctx)
	cancel()
	if err != nil {
		return
	}
	switch tc.ConnectionState().NegotiatedProtocol {
	case sinkALPN:
		err = sinkStream(tc)
	case echo.ALPN:
		_ = tc.SetDeadline(time.Now().Add(opTimeout))
		_, err = io.CopyBuffer(tc, onlyReader{tc}, make([]byte, echoBufSize))
	default:
		return
	}
	if err != nil {
		return
	}
	_ = tc.SetWriteDeadline(time.Now().Add(time.Second))
	_ = tc.CloseWrite()
}

// close stops both listeners, closes the connections still served and waits for every
// goroutine.
func (b *baselineServer) close() error {
	b.closeOnce.Do(func() {
		b.mu.Lock()
		b.closed = true
		conns := make([]io.Closer, 0, len(b.conns))
		for c := range b.conns {
			conns = append(conns, c)
		}
		b.mu.Unlock()
		b.closeErr = errors.Join(b.quicLn.Close(), b.tlsLn.Close())
		for _, c := range conns {
			_ = c.Close()
		}
		b.wg.Wait()
	})
	return b.closeErr
}
