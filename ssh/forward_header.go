package ssh

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// errHeaderTooLong is readForwardHeader's error for a line past the limit.
var errHeaderTooLong = fmt.Errorf("%w: header too long", ErrForwardHeader)

// pingHeader is the header line of a ping.
const pingHeader = "ping\n"

// ForwardHeader returns the header line (newline included) that asks an
// alknet/forward server for host:port. host is a name, an IPv4 address or an IPv6
// address, without brackets; the error wraps ErrForwardHeader when the line would
// not parse (ParseForwardHeader).
func ForwardHeader(host string, port uint16) (string, error) {
	line := "tcp " + host + " " + strconv.Itoa(int(port)) + "\n"
	if _, _, err := ParseForwardHeader(line); err != nil {
		return "", err
	}
	return line, nil
}

// ParseForwardHeader parses one header line of ALPNForward, its final newline
// included: "tcp <host> <port>\n" with a host of 1 to MaxHostLength bytes of
// letters, digits, '-', '.', '_' and ':' (no brackets, no zone, no space, no control
// byte) and a decimal port from 1 to 65535 without leading zero or sign. Every error
// wraps ErrForwardHeader and never quotes the line. The host is further checked by
// the policy (ForwardingPolicy.Check).
func ParseForwardHeader(line string) (host string, port uint16, err error) {
	rest, ok := strings.CutSuffix(line, "\n")
	if !ok {
		return "", 0, fmt.Errorf("%w: no newline at the end", ErrForwardHeader)
	}
	rest, ok = strings.CutPrefix(rest, "tcp ")
	if !ok {
		return "", 0, fmt.Errorf("%w: want \"tcp <host> <port>\"", ErrForwardHeader)
	}
	host, ps, ok := strings.Cut(rest, " ")
	if !ok {
		return "", 0, fmt.Errorf("%w: no port", ErrForwardHeader)
	}
	if host == "" || len(host) > MaxHostLength {
		return "", 0, fmt.Errorf("%w: host of %d bytes (want 1 to %d)", ErrForwardHeader, len(host), MaxHostLength)
	}
	for i := 0; i < len(host); i++ {
		c := host[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == ':') {
			return "", 0, fmt.Errorf("%w: host byte %d not allowed", ErrForwardHeader, i)
		}
	}
	if ps == "" || len(ps) > 5 || ps[0] == '0' {
		return "", 0, fmt.Errorf("%w: port not 1 to 65535", ErrForwardHeader)
	}
	n := 0
	for i := 0; i < len(ps); i++ {
		c := ps[i]
		if c < '0' || c > '9' {
			return "", 0, fmt.Errorf("%w: port not decimal", ErrForwardHeader)
		}
		n = n*10 + int(c-'0')
	}
	if n > 65535 {
		return "", 0, fmt.Errorf("%w: port not 1 to 65535", ErrForwardHeader)
	}
	return host, uint16(n), nil
}

// The kinds of header line.
const (
	headerTCP    = iota // "tcp <host> <port>"
	headerPing          // "ping"
	headerListen        // "listen <host> <port>"
)

// forwardHeader is one parsed header line.
type forwardHeader struct {
	kind int
	host string
	port uint16
}

// readForwardHeader reads one header line of at most max bytes from br, whose buffer
// holds at least max bytes, and parses it. Bytes after the newline stay in br.
func readForwardHeader(br *bufio.Reader, max int) (forwardHeader, error) {
	line, err := br.ReadSlice('\n')
	switch {
	case errors.Is(err, bufio.ErrBufferFull) || len(line) > max:
		return forwardHeader{}, errHeaderTooLong
	case errors.Is(err, io.EOF):
		return forwardHeader{}, fmt.Errorf("%w: stream ended within the header", ErrForwardHeader)
	case err != nil:
		return forwardHeader{}, fmt.Errorf("%w: %w", ErrForwardHeader, err)
	}
	if string(line) == pingHeader {
		return forwardHeader{kind: headerPing}, nil
	}
	if rest, ok := strings.CutPrefix(string(line), "listen "); ok {
		host, port, err := ParseForwardHeader("tcp " + rest)
		if err != nil && strings.HasSuffix(rest, " 0\n") {
			// Port 0 asks the node for a free port.
			host, _, err = ParseForwardHeader("tcp " + strings.TrimSuffix(rest, "0\n") + "1\n")
			port = 0
		}
		return forwardHeader{kind: headerListen, host: host, port: port}, err
	}
	host, port, err := ParseForwardHeader(string(line))
	return forwardHeader{kind: headerTCP, host: host, port: port}, err
}

// parseForwardReply parses a reply line without its newline: nil for "ok", a
// *ForwardRefusal for "error <reason>", an error wrapping ErrForwardHeader otherwise.
func parseForwardReply(line string) error {
	if line == "ok" {
		return nil
	}
	reason, ok := strings.CutPrefix(line, "error ")
	if !ok || reason == "" || len(reason) > maxForwardReason {
		return fmt.Errorf("%w: malformed reply", ErrForwardHeader)
	}
	for i := 0; i < len(reason); i++ {
		if reason[i] < 0x20 || reason[i] > 0x7e {
			return fmt.Errorf("%w: malformed reply", ErrForwardHeader)
		}
	}
	return &ForwardRefusal{Reason: reason}
}

// ForwardRefusal is a server's "error <reason>" answer to a forward request; it
// wraps ErrForwardRefused.
type ForwardRefusal struct {
	// Reason is the server's reason, such as ReasonDenied.
	Reason string
}

// Error returns "ssh: forward refused: <reason>".
func (e *ForwardRefusal) Error() string { return ErrForwardRefused.Error() + ": " + e.Reason }

// Unwrap returns ErrForwardRefused.
func (e *ForwardRefusal) Unwrap() error { return ErrForwardRefused }
