package http

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"

	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/core/endpoint"
)

// ClientTransport is an http.RoundTripper for native clients of a node's HTTP surface
// over core's dialer: on QUIC every HTTP connection is a new stream of one shared
// connection negotiating ALPN (redialled when it is lost); on TCP+TLS every HTTP
// connection is its own TCP+TLS connection. HTTP/1.1 or prior-knowledge h2 is spoken
// inside, as the Handler expects. Request URLs use the "http" scheme (the stream is
// already encrypted); their host is only the Host header.
//
//	t := alkhttp.NewClientTransport(addr, alkhttp.ALPN, dialOpts, true)
//	defer t.Close()
//	c := &http.Client{Transport: t}
//	resp, err := c.Post("http://node/call", "application/json", body)
type ClientTransport struct {
	addr string
	alpn string
	opts endpoint.DialOptions
	rt   *http.Transport

	mu     sync.Mutex
	conn   *core.Connection
	closed bool
}

// NewClientTransport returns a transport to the node at addr ("host:port") asking for
// alpn (normally ALPN; "h2" or "http/1.1" on TCP+TLS) with opts, speaking h2 when h2
// is true and HTTP/1.1 otherwise.
func NewClientTransport(addr, alpn string, opts endpoint.DialOptions, h2 bool) *ClientTransport {
	t := &ClientTransport{addr: addr, alpn: alpn, opts: opts}
	var p http.Protocols
	if h2 {
		p.SetUnencryptedHTTP2(true)
	} else {
		p.SetHTTP1(true)
	}
	t.rt = &http.Transport{
		DialContext:         t.dial,
		Protocols:           &p,
		Proxy:               nil,
		MaxIdleConnsPerHost: 64,
		ForceAttemptHTTP2:   h2,
	}
	return t
}

// ErrTransportClosed is returned by a ClientTransport after Close.
var ErrTransportClosed = errors.New("http: client transport closed")

// RoundTrip sends one request.
func (t *ClientTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	return t.rt.RoundTrip(r)
}

// Close closes idle HTTP connections and the shared QUIC connection; requests in
// flight on it fail.
func (t *ClientTransport) Close() error {
	t.mu.Lock()
	t.closed = true
	c := t.conn
	t.conn = nil
	t.mu.Unlock()
	t.rt.CloseIdleConnections()
	if c != nil {
		c.Close(core.CloseNormal, "")
	}
	return nil
}

// dial gives the HTTP transport one byte stream.
func (t *ClientTransport) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	if t.opts.Network == endpoint.NetworkTCP {
		c, err := endpoint.Dial(ctx, t.addr, t.alpn, t.opts)
		if err != nil {
			return nil, err
		}
		return ownStream(ctx, c)
	}
	for attempt := 0; ; attempt++ {
		c, single, err := t.shared(ctx)
		if err != nil {
			return nil, err
		}
		if single {
			// NetworkAuto fell back to TCP+TLS: that connection carries one stream.
			return ownStream(ctx, c)
		}
		s, err := c.OpenBi(ctx)
		if err == nil {
			return core.NetConn(s, c.LocalAddr(), c.RemoteAddr()), nil
		}
		t.drop(c)
		if attempt == 1 || ctx.Err() != nil {
			return nil, fmt.Errorf("http: open stream: %w", err)
		}
	}
}

// ownStream returns the single stream of c as a net.Conn that closes c with it.
func ownStream(ctx context.Context, c *core.Connection) (net.Conn, error) {
	s, err := c.OpenBi(ctx)
	if err != nil {
		c.Close(core.CloseNormal, "")
		return nil, err
	}
	return &ownedConn{Conn: core.NetConn(s, c.LocalAddr(), c.RemoteAddr()), owner: c}, nil
}

// shared returns the shared QUIC connection, dialling it when there is none; single
// reports a fresh single-stream connection the caller owns instead.
func (t *ClientTransport) shared(ctx context.Context) (c *core.Connection, single bool, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, false, ErrTransportClosed
	}
	if t.conn != nil {
		return t.conn, false, nil
	}
	c, err = endpoint.Dial(ctx, t.addr, t.alpn, t.opts)
	if err != nil {
		return nil, false, err
	}
	if c.SingleStream() {
		return c, true, nil
	}
	t.conn = c
	return c, false, nil
}

// drop forgets c (after it failed to open a stream) and closes it.
func (t *ClientTransport) drop(c *core.Connection) {
	t.mu.Lock()
	if t.conn == c {
		t.conn = nil
	}
	t.mu.Unlock()
	c.Close(core.CloseNormal, "")
}

// ownedConn closes the connection that carries its single stream.
type ownedConn struct {
	net.Conn
	owner *core.Connection
	once  sync.Once
}

func (c *ownedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.owner.Close(core.CloseNormal, "") })
	return err
}
