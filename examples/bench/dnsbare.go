package main

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"net"
	"sync"
	"time"

	mdns "github.com/miekg/dns"
	"github.com/quic-go/quic-go"

	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/core/endpoint"
)

// The dns benchmark's baseline: what a user would write to serve a miekg/dns handler
// over DNS over QUIC (RFC 9250) with quic-go alone. No alknet type takes part in
// serving; only the quic.Config values are the endpoint's defaults, so that both DoQ
// arms run quic-go with the same settings.

// DoQ application error codes (RFC 9250 §4.3) the bare server uses.
const (
	bareDoQProtocolError quic.ApplicationErrorCode = 0x2
	bareDoQInternalError quic.StreamErrorCode      = 0x1
	bareDoQCancelled     quic.StreamErrorCode      = 0x3
)

// bareDoQQueryTimeout bounds the receipt of one query and the write of its answer, as
// the alknet server's default QueryTimeout does.
const bareDoQQueryTimeout = 5 * time.Second

// bareDoQ is a quic-go listener whose accept loop answers each stream's one query with
// a miekg/dns handler. It owns its quic.Transport, so that close ends every goroutine
// at once (a ListenAddr listener stops reading its socket only once its last closed
// connection is forgotten).
type bareDoQ struct {
	tr   *quic.Transport
	ln   *quic.Listener
	addr string
	h    mdns.Handler

	mu     sync.Mutex
	closed bool
	conns  map[*quic.Conn]struct{}
	wg     sync.WaitGroup
}

// startBareDoQ listens on a loopback port with cert (ALPN doq) and serves h.
func startBareDoQ(cert tls.Certificate, h mdns.Handler) (*bareDoQ, error) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	tr := &quic.Transport{Conn: pc}
	ln, err := tr.Listen(&tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequestClientCert,
		MinVersion:   tls.VersionTLS13,
		NextProtos:   []string{"doq"},
	}, &quic.Config{
		HandshakeIdleTimeout:  core.DefaultHandshakeTimeout,
		MaxIdleTimeout:        endpoint.DefaultMaxIdleTimeout,
		KeepAlivePeriod:       endpoint.DefaultKeepAlivePeriod,
		MaxIncomingStreams:    endpoint.DefaultMaxIncomingStreams,
		MaxIncomingUniStreams: -1,
	})
	if err != nil {
		_ = tr.Close()
		_ = pc.Close()
		return nil, err
	}
	b := &bareDoQ{tr: tr, ln: ln, addr: ln.Addr().String(), h: h, conns: make(map[*quic.Conn]struct{})}
	b.wg.Go(b.accept)
	return b, nil
}

func (b *bareDoQ) accept() {
	for {
		qc, err := b.ln.Accept(context.Background())
		if err != nil {
			return
		}
		b.mu.Lock()
		if b.closed {
			b.mu.Unlock()
			_ = qc.CloseWithError(0, "shutdown")
			return
		}
		b.conns[qc] = struct{}{}
		b.wg.Go(func() { b.serveConn(qc) })
		b.mu.Unlock()
	}
}

// serveConn answers every stream of qc, each in its own goroutine, until qc closes.
func (b *bareDoQ) serveConn(qc *quic.Conn) {
	defer func() {
		b.mu.Lock()
		delete(b.conns, qc)
		b.mu.Unlock()
	}()
	for {
		st, err := qc.AcceptStream(context.Background())
		if err != nil {
			return
		}
		b.wg.Go(func() { b.serveStream(qc, st) })
	}
}

// serveStream reads the stream's query (2-octet length, message, FIN), runs the
// handler and writes its answer, then closes the stream.
func (b *bareDoQ) serveStream(qc *quic.Conn, st *quic.Stream) {
	_ = st.SetDeadline(time.Now().Add(bareDoQQueryTimeout))
	wire, err := readDoQFrame(st, nil)
	if err == nil {
		err = readDoQEnd(st)
	}
	if err != nil {
		st.CancelRead(bareDoQCancelled)
		st.CancelWrite(bareDoQCancelled)
		return
	}
	q := new(mdns.Msg)
	if err := q.Unpack(wire); err != nil || q.Id != 0 {
		_ = qc.CloseWithError(bareDoQProtocolError, "bad query")
		return
	}
	w := &bareWriter{local: qc.LocalAddr(), remote: qc.RemoteAddr()}
	b.h.ServeDNS(w, q)
	resp := w.raw
	if w.msg != nil {
		resp, err = w.msg.Pack()
	}
	if err != nil || len(resp) < 12 || len(resp) > 65535 {
		st.CancelRead(bareDoQInternalError)
		st.CancelWrite(bareDoQInternalError)
		return
	}
	binary.BigEndian.PutUint16(resp, 0)
	out := binary.BigEndian.AppendUint16(make([]byte, 0, 2+len(resp)), uint16(len(resp)))
	if _, err := st.Write(append(out, resp...)); err != nil {
		st.CancelWrite(bareDoQCancelled)
		return
	}
	_ = st.Close()
}

// close stops accepting, closes every connection, stops the transport and waits for
// the goroutines.
func (b *bareDoQ) close() error {
	b.mu.Lock()
	b.closed = true
	conns := make([]*quic.Conn, 0, len(b.conns))
	for qc := range b.conns {
		conns = append(conns, qc)
	}
	b.mu.Unlock()
	err := b.ln.Close()
	for _, qc := range conns {
		_ = qc.CloseWithError(0, "shutdown")
	}
	b.wg.Wait()
	return errors.Join(err, b.tr.Close(), b.tr.Conn.Close())
}

// bareWriter is the smallest mdns.ResponseWriter: it keeps what the handler writes.
type bareWriter struct {
	local, remote net.Addr
	msg           *mdns.Msg
	raw           []byte
}

var _ mdns.ResponseWriter = (*bareWriter)(nil)

func (w *bareWriter) LocalAddr() net.Addr  { return w.local }
func (w *bareWriter) RemoteAddr() net.Addr { return w.remote }
func (w *bareWriter) Network() string      { return "doq" }

func (w *bareWriter) WriteMsg(m *mdns.Msg) error {
	w.msg, w.raw = m, nil
	return nil
}

func (w *bareWriter) Write(b []byte) (int, error) {
	w.msg, w.raw = nil, append([]byte(nil), b...)
	return len(b), nil
}

func (w *bareWriter) Close() error        { return nil }
func (w *bareWriter) TsigStatus() error   { return errors.New("no TSIG") }
func (w *bareWriter) TsigTimersOnly(bool) {}
func (w *bareWriter) Hijack()             {}
