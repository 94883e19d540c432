package dns

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	mdns "github.com/miekg/dns"
	"github.com/quic-go/quic-go"

	"github.com/alknet/alknet/core"
)

// Exchange sends the query m over conn and returns the response, with m's ID.
//
// On a QUIC connection (DoQ: "doq" or "alknet/dns") it opens one stream, sends m with
// ID 0 (RFC 9250), half-closes, reads exactly one response and checks that the stream
// ends there; any number of Exchange calls may run at once on one connection. On a
// single-stream connection (DoT: "dot" over TCP+TLS) it takes the connection's one
// stream, so it works once per connection: use a [Client] for several queries there.
// Cancelling ctx resets a DoQ stream with DOQ_REQUEST_CANCELLED. A response that breaks
// the protocol returns an error wrapping [ErrProtocol]; without a deadline on ctx the
// exchange may take DefaultQueryTimeout. m is not modified.
func Exchange(ctx context.Context, conn *core.Connection, m *mdns.Msg) (*mdns.Msg, error) {
	return NewClient(conn).Exchange(ctx, m)
}

// Client sends queries over one connection: DoQ (one stream per query, concurrent
// calls allowed) or DoT (the connection's one stream, real message IDs, one query at a
// time: concurrent Exchange calls wait for each other). Its zero value is not usable;
// call [NewClient].
type Client struct {
	conn *core.Connection

	mu     sync.Mutex // DoT: one exchange at a time
	dot    core.BiStream
	broken error
}

// NewClient returns a client for conn, a connection dialed with ALPNDoQ, ALPN or
// ALPNDoT (see endpoint.Dial).
func NewClient(conn *core.Connection) *Client { return &Client{conn: conn} }

// Exchange sends m and returns its response, with m's ID; see the package function
// [Exchange]. Without a deadline on ctx, an exchange may take DefaultQueryTimeout. On
// DoT an exchange interrupted by ctx leaves the stream mid-message, so
// the client then fails every later call with the same error.
func (c *Client) Exchange(ctx context.Context, m *mdns.Msg) (*mdns.Msg, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultQueryTimeout)
		defer cancel()
	}
	if c.conn.SingleStream() {
		return c.exchangeDoT(ctx, m)
	}
	return c.exchangeDoQ(ctx, m)
}

func (c *Client) exchangeDoQ(ctx context.Context, m *mdns.Msg) (*mdns.Msg, error) {
	q := m.Copy() // Pack may write into the OPT record: callers may share m
	q.Id = 0
	wire, err := q.Pack()
	if err != nil {
		return nil, fmt.Errorf("dns: pack query: %w", err)
	}
	if len(wire) > maxMessage {
		return nil, fmt.Errorf("dns: query of %d bytes is over %d", len(wire), maxMessage)
	}
	st, err := c.conn.OpenBi(ctx)
	if err != nil {
		return nil, fmt.Errorf("dns: open stream: %w", err)
	}
	nc := core.NetConn(st, c.conn.LocalAddr(), c.conn.RemoteAddr())
	if d, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(d)
	}
	stop := context.AfterFunc(ctx, func() { resetStream(st, DoQRequestCancelled) })
	defer stop()
	resp, err := exchangeStream(nc, wire)
	if err != nil {
		resetStream(st, DoQRequestCancelled)
		if ctx.Err() != nil {
			return nil, fmt.Errorf("dns: exchange: %w (%w)", ctx.Err(), err)
		}
		return nil, err
	}
	_ = st.Close()
	if resp.Id != 0 {
		return nil, fmt.Errorf("%w: response ID %d, DoQ requires 0", ErrProtocol, resp.Id)
	}
	resp.Id = m.Id
	return resp, nil
}

// exchangeStream writes the framed query, half-closes and reads the one response that
// must end the stream.
func exchangeStream(s io.ReadWriter, wire []byte) (*mdns.Msg, error) {
	if err := writeFrame(s, wire); err != nil {
		return nil, sendError(s, "send query", err)
	}
	if cw, ok := s.(interface{ CloseWrite() error }); ok {
		if err := cw.CloseWrite(); err != nil {
			return nil, sendError(s, "send FIN", err)
		}
	}
	b, err := readFrame(s)
	if err != nil {
		return nil, fmt.Errorf("dns: read response: %w", err)
	}
	var one [1]byte
	if n, err := io.ReadFull(s, one[:]); n > 0 {
		return nil, fmt.Errorf("%w: more than one response on a stream", ErrProtocol)
	} else if !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("dns: read response end: %w", err)
	}
	resp := new(mdns.Msg)
	if err := resp.Unpack(b); err != nil {
		return nil, fmt.Errorf("%w: response does not unpack: %w", ErrProtocol, err)
	}
	return resp, nil
}

// sendError is the error of a failed send on a DoQ stream. A server that refuses a
// stream (DOQ_EXCESSIVE_LOAD) resets both directions; when the send side learns it
// first, the read side carries the server's code, so that is the error to report.
func sendError(s io.Reader, op string, err error) error {
	var se *quic.StreamError
	if _, rerr := s.Read(make([]byte, 1)); errors.As(rerr, &se) {
		return fmt.Errorf("dns: %s: %w", op, rerr)
	}
	return fmt.Errorf("dns: %s: %w", op, err)
}

func (c *Client) exchangeDoT(ctx context.Context, m *mdns.Msg) (*mdns.Msg, error) {
	wire, err := m.Copy().Pack() // Pack may write into the OPT record: callers may share m
	if err != nil {
		return nil, fmt.Errorf("dns: pack query: %w", err)
	}
	if len(wire) > maxMessage {
		return nil, fmt.Errorf("dns: query of %d bytes is over %d", len(wire), maxMessage)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.broken != nil {
		return nil, c.broken
	}
	if c.dot == nil {
		st, err := c.conn.OpenBi(ctx)
		if err != nil {
			return nil, fmt.Errorf("dns: dot stream: %w", err)
		}
		c.dot = st
	}
	nc := core.NetConn(c.dot, c.conn.LocalAddr(), c.conn.RemoteAddr())
	d, _ := ctx.Deadline()
	_ = nc.SetDeadline(d) // zero: none
	stop := context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Now()) })
	defer stop()
	resp, err := exchangeDoTFrame(nc, wire, m.Id)
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("dns: exchange: %w (%w)", ctx.Err(), err)
		}
		c.broken = fmt.Errorf("dns: dot client unusable after a failed exchange: %w", err)
		return nil, err
	}
	return resp, nil
}

func exchangeDoTFrame(nc io.ReadWriter, wire []byte, id uint16) (*mdns.Msg, error) {
	if err := writeFrame(nc, wire); err != nil {
		return nil, fmt.Errorf("dns: send query: %w", err)
	}
	b, err := readFrame(nc)
	if err != nil {
		return nil, fmt.Errorf("dns: read response: %w", err)
	}
	resp := new(mdns.Msg)
	if err := resp.Unpack(b); err != nil {
		return nil, fmt.Errorf("%w: response does not unpack: %w", ErrProtocol, err)
	}
	if resp.Id != id {
		return nil, fmt.Errorf("%w: response ID %d to query ID %d", ErrProtocol, resp.Id, id)
	}
	return resp, nil
}

// Close closes a DoT client's stream (DoQ clients hold none). The connection stays the
// caller's to close.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.broken == nil {
		c.broken = errors.New("dns: client closed")
	}
	if c.dot != nil {
		return c.dot.Close()
	}
	return nil
}
