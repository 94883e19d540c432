package ssh

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/alknet/alknet/core"
)

// DialForward opens one forwarded connection to dest ("host:port"; an IPv6 host in
// brackets) over conn, an ALPNForward connection: a new stream, its header, and the
// server's answer. The returned net.Conn carries that stream (CloseWrite half-closes
// it; it is a core.BiStream), with any destination bytes that came with the answer. A refusal is an error wrapping ErrForwardRefused (errors.As
// gives the *ForwardRefusal); a dest the header cannot carry wraps ErrForwardHeader.
// ctx bounds opening the stream and waiting for the answer, not the connection. A
// TCP+TLS connection carries one stream, so one forwarded connection: use QUIC for
// more.
func DialForward(ctx context.Context, conn *core.Connection, dest string) (net.Conn, error) {
	line, err := destHeader(dest)
	if err != nil {
		return nil, err
	}
	return openForward(ctx, conn, line)
}

// destHeader returns the header line asking for dest ("host:port").
func destHeader(dest string) (string, error) {
	host, ps, err := net.SplitHostPort(dest)
	if err != nil {
		return "", fmt.Errorf("%w: destination: %w", ErrForwardHeader, err)
	}
	port, err := strconv.ParseUint(ps, 10, 16)
	if err != nil {
		return "", fmt.Errorf("%w: destination port", ErrForwardHeader)
	}
	return ForwardHeader(host, uint16(port))
}

// PingForward checks that the node serves this client on conn, an ALPNForward
// connection, without naming any destination: nil when it answers a ping. A node
// that refuses the client (no known client certificate) has closed the connection,
// and the error says so (wrapping core.ErrConnectionClosed or the close's error).
func PingForward(ctx context.Context, conn *core.Connection) error {
	c, err := openForward(ctx, conn, pingHeader)
	if err != nil {
		return err
	}
	_ = c.Close() // the node has ended the stream: nothing to report
	return nil
}

// openForward opens a stream, sends line and waits for the answer.
func openForward(ctx context.Context, conn *core.Connection, line string) (net.Conn, error) {
	c, err := startForward(ctx, conn, line)
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { resetStream(c.st) })
	err = c.answer()
	if !stop() {
		return nil, fmt.Errorf("ssh: forward: %w", context.Cause(ctx))
	}
	if err != nil {
		_ = c.st.Close()
		return nil, err
	}
	return c, nil
}

// startForward opens a stream and sends line.
func startForward(ctx context.Context, conn *core.Connection, line string) (*earlyForward, error) {
	st, err := conn.OpenBi(ctx)
	if err != nil {
		return nil, fmt.Errorf("ssh: forward: open stream: %w", err)
	}
	if _, err := io.WriteString(st, line); err != nil {
		_ = st.Close()
		return nil, fmt.Errorf("ssh: forward: write header: %w", err)
	}
	return &earlyForward{Conn: core.NetConn(st, conn.LocalAddr(), conn.RemoteAddr()), st: st}, nil
}

// writeAndReadReply sends the header and reads the reply line a byte at a time, so
// that no byte after it is taken from the stream.
func writeAndReadReply(st core.BiStream, line string) (string, error) {
	if _, err := io.WriteString(st, line); err != nil {
		return "", fmt.Errorf("ssh: forward: write header: %w", err)
	}
	var buf [maxForwardReply]byte
	var b [1]byte
	for n := 0; ; {
		if _, err := io.ReadFull(st, b[:]); err != nil {
			return "", fmt.Errorf("ssh: forward: read reply: %w", err)
		}
		if b[0] == '\n' {
			return string(buf[:n]), nil
		}
		if n == len(buf) {
			return "", fmt.Errorf("%w: reply longer than %d bytes", ErrForwardHeader, maxForwardReply)
		}
		buf[n] = b[0]
		n++
	}
}

// OpenForward is DialForward without waiting for the node's answer: it opens a
// stream, sends the header and returns, so that the first bytes written travel with
// the header instead of a round trip later. The answer is read before the first byte
// the returned conn yields: a refusal is then the error of that Read and of every
// later Read and Write, wrapping ErrForwardRefused (errors.As gives the
// *ForwardRefusal) as DialForward's does, and a Write that fails because the node
// ended the stream reports the refusal too. The node discards what was written
// before a refusal. ctx bounds opening the stream, not the connection. Use
// DialForward where the answer must be known before going on (a SOCKS5 reply), and
// OpenForward where the caller's own client learns of a refusal as a closed
// connection either way (a local forward).
func OpenForward(ctx context.Context, conn *core.Connection, dest string) (net.Conn, error) {
	line, err := destHeader(dest)
	if err != nil {
		return nil, err
	}
	c, err := startForward(ctx, conn, line)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// earlyForward is the conn of OpenForward and DialForward: the stream, whose first bytes are the node's
// answer, read once by whichever of Read and Write needs it first.
type earlyForward struct {
	net.Conn
	st core.BiStream

	mu   sync.Mutex  // held while the answer is read
	done atomic.Bool // the answer is read: err and rest are set
	err  error       // the refusal, or why the answer could not be read
	rest []byte      // bytes after the answer not yet returned, in buf
	buf  [maxForwardReply]byte
}

// answer reads the node's answer once and returns its error.
func (c *earlyForward) answer() error {
	if c.done.Load() {
		return c.err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done.Load() {
		return c.err
	}
	for n := 0; ; {
		if n == len(c.buf) {
			c.err = fmt.Errorf("%w: reply longer than %d bytes", ErrForwardHeader, maxForwardReply)
			break
		}
		m, err := c.Conn.Read(c.buf[n:])
		if i := bytes.IndexByte(c.buf[n:n+m], '\n'); i >= 0 {
			c.rest = c.buf[n+i+1 : n+m]
			c.err = parseForwardReply(string(c.buf[:n+i]))
			break
		}
		n += m
		if err != nil {
			c.err = fmt.Errorf("ssh: forward: read reply: %w", err)
			break
		}
	}
	c.done.Store(true)
	return c.err
}

// Read returns the destination's bytes after the node's answer, or the refusal.
func (c *earlyForward) Read(p []byte) (int, error) {
	if err := c.answer(); err != nil {
		return 0, err
	}
	if len(c.rest) > 0 {
		n := copy(p, c.rest)
		c.rest = c.rest[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// Write sends p to the destination; once the node refused, it returns the refusal.
func (c *earlyForward) Write(p []byte) (int, error) {
	if c.done.Load() && c.err != nil {
		return 0, c.err
	}
	n, err := c.Conn.Write(p)
	if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
		// The node ends a refused stream after its answer: report the answer.
		if aerr := c.answer(); errors.Is(aerr, ErrForwardRefused) {
			return n, aerr
		}
	}
	return n, err
}

// CloseWrite half-closes the stream.
func (c *earlyForward) CloseWrite() error { return c.st.CloseWrite() }
