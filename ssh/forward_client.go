package ssh

import (
	"context"
	"fmt"
	"io"
	"net"
	"strconv"

	"github.com/alknet/alknet/core"
)

// DialForward opens one forwarded connection to dest ("host:port"; an IPv6 host in
// brackets) over conn, an ALPNForward connection: a new stream, its header, and the
// server's answer. The returned net.Conn is that stream (CloseWrite half-closes it; it
// is a core.BiStream). A refusal is an error wrapping ErrForwardRefused (errors.As
// gives the *ForwardRefusal); a dest the header cannot carry wraps ErrForwardHeader.
// ctx bounds opening the stream and waiting for the answer, not the connection. A
// TCP+TLS connection carries one stream, so one forwarded connection: use QUIC for
// more.
func DialForward(ctx context.Context, conn *core.Connection, dest string) (net.Conn, error) {
	host, ps, err := net.SplitHostPort(dest)
	if err != nil {
		return nil, fmt.Errorf("%w: destination: %w", ErrForwardHeader, err)
	}
	port, err := strconv.ParseUint(ps, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("%w: destination port", ErrForwardHeader)
	}
	line, err := ForwardHeader(host, uint16(port))
	if err != nil {
		return nil, err
	}
	return openForward(ctx, conn, line)
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
	st, err := conn.OpenBi(ctx)
	if err != nil {
		return nil, fmt.Errorf("ssh: forward: open stream: %w", err)
	}
	nc := core.NetConn(st, conn.LocalAddr(), conn.RemoteAddr())
	stop := context.AfterFunc(ctx, func() { resetStream(st) })
	reply, err := writeAndReadReply(st, line)
	if !stop() {
		return nil, fmt.Errorf("ssh: forward: %w", context.Cause(ctx))
	}
	if err != nil {
		_ = st.Close()
		return nil, err
	}
	if err := parseForwardReply(reply); err != nil {
		_ = st.Close()
		return nil, err
	}
	return nc, nil
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
