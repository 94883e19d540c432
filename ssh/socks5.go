package ssh

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	gossh "golang.org/x/crypto/ssh"
)

// DefaultSOCKS5HandshakeTimeout bounds the SOCKS5 greeting and request of one client
// connection when [SOCKS5Server.HandshakeTimeout] is zero.
const DefaultSOCKS5HandshakeTimeout = 10 * time.Second

// ErrHostUnreachable reports that the tunnel could not reach the requested host. An
// [Opener] returns it (possibly wrapped) to make [SOCKS5Server] answer with the SOCKS5
// reply "host unreachable" (0x04).
var ErrHostUnreachable = errors.New("ssh: host unreachable")

// Opener opens a connection to host:port through the tunnel, typically as an SSH
// direct-tcpip channel on a node. host is passed exactly as the SOCKS5 client gave it: a
// textual IPv4 address, a textual IPv6 address without brackets, or a domain name that is
// not resolved locally (SOCKS5h semantics; the node resolves it).
//
// The returned error selects the SOCKS5 reply: a [gossh.OpenChannelError] with reason
// [gossh.Prohibited] gives "not allowed by ruleset" (0x02), [gossh.ConnectionFailed] gives
// "connection refused" (0x05), [ErrHostUnreachable], [context.DeadlineExceeded] or any
// error whose Timeout method reports true gives "host unreachable" (0x04), anything else
// "general failure" (0x01). An alknet/forward refusal ([ForwardRefusal]) maps as
// [ForwardOpener] says. When the returned conn implements CloseWrite() error, the
// server half-closes it when the client finishes sending.
type Opener interface {
	// Open opens a connection to host:port. ctx is the connection's context: it is done
	// when the server stops.
	Open(ctx context.Context, host string, port uint16) (net.Conn, error)
}

// SOCKS5Server is a SOCKS5 proxy (RFC 1928) that accepts only the CONNECT command and
// the "no authentication required" method, and hands every CONNECT to an [Opener]. It is
// meant for a loopback listener (alknet connect --socks 127.0.0.1:1080).
//
// Replies to failed requests carry the RFC 1928 codes: 0x07 for BIND, UDP ASSOCIATE and
// any other command; 0x08 for an unknown address type; 0x01 for an empty domain name or
// one that contains a NUL byte; the Opener's error maps to a code as described on
// [Opener]. Successful replies carry the bound address 0.0.0.0:0, since the tunnel has no
// meaningful local address.
//
// Neither the target host nor the target port is ever logged, nor included in the text
// of an error the server returns (errors from the Opener stay reachable through
// [errors.Is] and [errors.As]).
//
// A SOCKS5Server must not be modified while it serves; one value may serve many
// listeners and connections at once.
type SOCKS5Server struct {
	// Opener opens the tunnelled connections. Required.
	Opener Opener
	// HandshakeTimeout bounds the greeting and the request of each client connection,
	// and each reply write. Zero means DefaultSOCKS5HandshakeTimeout. It does not bound
	// Opener.Open, which gets the connection's context.
	HandshakeTimeout time.Duration
	// Logger receives connection counts and failures, never targets. Nil discards.
	Logger *slog.Logger
}

// SOCKS5 protocol constants (RFC 1928).
const (
	socks5Version = 0x05

	socks5MethodNoAuth       = 0x00
	socks5MethodNoAcceptable = 0xFF

	socks5CmdConnect = 0x01

	socks5AtypIPv4   = 0x01
	socks5AtypDomain = 0x03
	socks5AtypIPv6   = 0x04

	socks5ReplySucceeded           = 0x00
	socks5ReplyGeneralFailure      = 0x01
	socks5ReplyNotAllowed          = 0x02
	socks5ReplyHostUnreachable     = 0x04
	socks5ReplyConnectionRefused   = 0x05
	socks5ReplyCommandNotSupported = 0x07
	socks5ReplyAddrNotSupported    = 0x08
)

// socks5MaxDrain bounds how much unread client input is discarded after a failure reply
// (see socks5Linger).
const socks5MaxDrain = 4096

// Errors the server reports for protocol violations; none carries a target.
var (
	errSOCKS5NoOpener = errors.New("ssh: socks5: no Opener")
	errSOCKS5Version  = errors.New("ssh: socks5: unsupported protocol version")
	errSOCKS5NoMethod = errors.New("ssh: socks5: client offers no acceptable method")
	errSOCKS5Command  = errors.New("ssh: socks5: command not supported")
	errSOCKS5AddrType = errors.New("ssh: socks5: address type not supported")
	errSOCKS5Domain   = errors.New("ssh: socks5: invalid domain name")
	errSOCKS5NilConn  = errors.New("ssh: socks5: Opener returned no connection")
)

// socks5RedactedError wraps an error whose text may name the target (an Opener error, a
// relay error on the tunnelled conn): Error shows only msg, Unwrap keeps the cause.
type socks5RedactedError struct {
	msg string
	err error
}

func (e *socks5RedactedError) Error() string { return e.msg }
func (e *socks5RedactedError) Unwrap() error { return e.err }

func (s *SOCKS5Server) logger() *slog.Logger {
	if s.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Logger
}

func (s *SOCKS5Server) handshakeTimeout() time.Duration {
	if s.HandshakeTimeout > 0 {
		return s.HandshakeTimeout
	}
	return DefaultSOCKS5HandshakeTimeout
}

// Serve accepts SOCKS5 clients on ln and serves each in its own goroutine (see
// [SOCKS5Server.ServeConn]) until ctx is done or ln fails. Serve owns ln and closes it.
// When ctx is done it closes ln and every open client connection. When the accept loop
// ends for another reason (ln closed by someone else, or a permanent accept error), it
// also cancels the connections it started. Serve returns only after all its connection
// goroutines have finished: ctx.Err() when ctx ended it, nil when ln was closed, or the
// accept error. Temporary accept errors are retried with a short backoff.
func (s *SOCKS5Server) Serve(ctx context.Context, ln net.Listener) error {
	if s.Opener == nil {
		ln.Close()
		return errSOCKS5NoOpener
	}
	log := s.logger()
	connCtx, cancel := context.WithCancel(ctx)
	// Wait for a running close callback before returning: a second ln.Close returns
	// at once while the first may not have released the socket yet, so without the
	// wait ln could still accept connections after Serve returned.
	closed := make(chan struct{})
	stopClose := context.AfterFunc(ctx, func() {
		defer close(closed)
		ln.Close()
	})
	var wg sync.WaitGroup
	defer func() {
		if !stopClose() {
			<-closed
		}
		ln.Close()
		cancel()
		wg.Wait()
	}()

	var served uint64
	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				log.Info("socks5: stopped", slog.Uint64("connections", served))
				return ctx.Err()
			}
			if errors.Is(err, net.ErrClosed) {
				log.Info("socks5: listener closed", slog.Uint64("connections", served))
				return nil
			}
			var tmp interface{ Temporary() bool }
			if errors.As(err, &tmp) && tmp.Temporary() {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				log.Warn("socks5: accept failed; retrying", slog.Any("error", err), slog.Duration("backoff", backoff))
				t := time.NewTimer(backoff)
				select {
				case <-t.C:
				case <-ctx.Done():
					t.Stop()
				}
				continue
			}
			log.Error("socks5: accept failed", slog.Any("error", err), slog.Uint64("connections", served))
			return err
		}
		backoff = 0
		served++
		wg.Go(func() { _ = s.ServeConn(connCtx, c) })
	}
}

// ServeConn serves one SOCKS5 client on c: it reads the greeting and the request under
// HandshakeTimeout, opens the target through the Opener, replies, then copies both ways
// until both directions have finished. When one side finishes sending, the other side is
// half-closed with CloseWrite if its conn supports it, and closed otherwise. When ctx is
// done, c and the tunnelled conn are closed. ServeConn always closes c, and returns nil
// after a relay that ended normally, ctx.Err() when ctx ended it, or an error describing
// the failure (never naming the target).
func (s *SOCKS5Server) ServeConn(ctx context.Context, c net.Conn) error {
	if s.Opener == nil {
		c.Close()
		return errSOCKS5NoOpener
	}
	log := s.logger()
	h := &socks5Conn{s: s, c: c, timeout: s.handshakeTimeout()}

	// Close c (and, once set, the tunnelled conn) when ctx is done; wait for that
	// callback before returning so that nothing outlives ServeConn.
	var mu sync.Mutex
	var target net.Conn
	cbDone := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(cbDone)
		c.Close()
		mu.Lock()
		defer mu.Unlock()
		if target != nil {
			target.Close()
		}
	})
	defer func() {
		if !stop() {
			<-cbDone
		}
		c.Close()
	}()

	host, port, err := h.handshake()
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		log.Debug("socks5: handshake failed", slog.Any("error", err))
		return err
	}
	if err := c.SetDeadline(time.Time{}); err != nil {
		return err
	}

	t, err := s.Opener.Open(ctx, host, port)
	if err == nil && t == nil {
		err = errSOCKS5NilConn
	}
	if err != nil {
		code := socks5OpenReply(err)
		log.Info("socks5: open failed", slog.String("reply", socks5ReplyText(code)))
		h.fail(code)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return &socks5RedactedError{msg: "ssh: socks5: open failed: " + socks5ReplyText(code), err: err}
	}
	mu.Lock()
	target = t
	mu.Unlock()
	if ctx.Err() != nil { // the callback may have run before target was set
		t.Close()
		return ctx.Err()
	}
	defer t.Close()

	if err := h.reply(socks5ReplySucceeded); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return err
	}
	log.Debug("socks5: tunnel opened")

	up, down, err := socks5Relay(c, t)
	log.Debug("socks5: tunnel closed", slog.Int64("bytes_up", up), slog.Int64("bytes_down", down))
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err != nil {
		return &socks5RedactedError{msg: "ssh: socks5: relay failed", err: err}
	}
	return nil
}

// socks5Conn holds the fixed buffer used for one client's handshake.
type socks5Conn struct {
	s       *SOCKS5Server
	c       net.Conn
	timeout time.Duration
	// buf holds the largest handshake message piece: 255 methods, or a 255-byte domain
	// name followed by the 2-byte port.
	buf [257]byte
}

// handshake reads the greeting and the CONNECT request, replying to the greeting and
// to failed requests. It returns the target as given by the client.
func (h *socks5Conn) handshake() (host string, port uint16, err error) {
	if err := h.c.SetDeadline(time.Now().Add(h.timeout)); err != nil {
		return "", 0, err
	}
	b := h.buf[:]

	// Greeting: VER NMETHODS METHODS...
	if _, err := io.ReadFull(h.c, b[:2]); err != nil {
		return "", 0, err
	}
	if b[0] != socks5Version {
		return "", 0, errSOCKS5Version
	}
	methods := b[:b[1]]
	if _, err := io.ReadFull(h.c, methods); err != nil {
		return "", 0, err
	}
	noAuth := false
	for _, m := range methods {
		if m == socks5MethodNoAuth {
			noAuth = true
			break
		}
	}
	if !noAuth {
		if err := h.write([]byte{socks5Version, socks5MethodNoAcceptable}); err == nil {
			h.linger()
		}
		return "", 0, errSOCKS5NoMethod
	}
	if err := h.write([]byte{socks5Version, socks5MethodNoAuth}); err != nil {
		return "", 0, err
	}

	// Request: VER CMD RSV ATYP DST.ADDR DST.PORT. RSV is not checked.
	if _, err := io.ReadFull(h.c, b[:4]); err != nil {
		return "", 0, err
	}
	if b[0] != socks5Version {
		return "", 0, errSOCKS5Version
	}
	cmd, atyp := b[1], b[3]
	var addrLen int
	switch atyp {
	case socks5AtypIPv4:
		addrLen = 4
	case socks5AtypIPv6:
		addrLen = 16
	case socks5AtypDomain:
		if _, err := io.ReadFull(h.c, b[:1]); err != nil {
			return "", 0, err
		}
		addrLen = int(b[0])
	default:
		// The rest of the request cannot be parsed.
		if cmd != socks5CmdConnect {
			h.fail(socks5ReplyCommandNotSupported)
			return "", 0, errSOCKS5Command
		}
		h.fail(socks5ReplyAddrNotSupported)
		return "", 0, errSOCKS5AddrType
	}
	// Read the whole request even for an unsupported command, so that closing after the
	// reply does not reset the connection over unread data.
	if _, err := io.ReadFull(h.c, b[:addrLen+2]); err != nil {
		return "", 0, err
	}
	if cmd != socks5CmdConnect {
		h.fail(socks5ReplyCommandNotSupported)
		return "", 0, errSOCKS5Command
	}
	addr := b[:addrLen]
	port = uint16(b[addrLen])<<8 | uint16(b[addrLen+1])
	switch atyp {
	case socks5AtypIPv4:
		host = netip.AddrFrom4([4]byte(addr)).String()
	case socks5AtypIPv6:
		host = netip.AddrFrom16([16]byte(addr)).String()
	default:
		if addrLen == 0 || socks5HasNUL(addr) {
			h.fail(socks5ReplyGeneralFailure)
			return "", 0, errSOCKS5Domain
		}
		host = string(addr)
	}
	return host, port, nil
}

func socks5HasNUL(b []byte) bool {
	for _, x := range b {
		if x == 0 {
			return true
		}
	}
	return false
}

// write writes p to the client under a fresh write deadline, then clears it.
func (h *socks5Conn) write(p []byte) error {
	if err := h.c.SetWriteDeadline(time.Now().Add(h.timeout)); err != nil {
		return err
	}
	if _, err := h.c.Write(p); err != nil {
		return err
	}
	return h.c.SetWriteDeadline(time.Time{})
}

// reply sends a request reply with code and the bound address 0.0.0.0:0.
func (h *socks5Conn) reply(code byte) error {
	return h.write([]byte{socks5Version, code, 0x00, socks5AtypIPv4, 0, 0, 0, 0, 0, 0})
}

// fail sends a failure reply and lingers so that the reply reaches the client.
func (h *socks5Conn) fail(code byte) {
	if h.reply(code) == nil {
		h.linger()
	}
}

// linger half-closes c when it can, then discards a bounded amount of client input
// until the client closes or HandshakeTimeout expires. Closing a TCP socket with unread
// input sends a reset, which can destroy a reply the client has not read yet.
func (h *socks5Conn) linger() {
	if cw, ok := h.c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	if h.c.SetReadDeadline(time.Now().Add(h.timeout)) != nil {
		return
	}
	var b [512]byte
	for n := 0; n < socks5MaxDrain; {
		m, err := h.c.Read(b[:])
		n += m
		if err != nil {
			return
		}
	}
}

// socks5OpenReply maps an Opener error to a SOCKS5 reply code.
func socks5OpenReply(err error) byte {
	if code, ok := forwardRefusalReply(err); ok {
		return code
	}
	var oce *gossh.OpenChannelError
	if errors.As(err, &oce) {
		switch oce.Reason {
		case gossh.Prohibited:
			return socks5ReplyNotAllowed
		case gossh.ConnectionFailed:
			return socks5ReplyConnectionRefused
		default: // UnknownChannelType, ResourceShortage, anything else
			return socks5ReplyGeneralFailure
		}
	}
	if errors.Is(err, ErrHostUnreachable) || errors.Is(err, context.DeadlineExceeded) {
		return socks5ReplyHostUnreachable
	}
	var te interface{ Timeout() bool }
	if errors.As(err, &te) && te.Timeout() {
		return socks5ReplyHostUnreachable
	}
	return socks5ReplyGeneralFailure
}

// socks5ReplyText names a reply code for logs and errors.
func socks5ReplyText(code byte) string {
	switch code {
	case socks5ReplySucceeded:
		return "succeeded"
	case socks5ReplyGeneralFailure:
		return "general failure"
	case socks5ReplyNotAllowed:
		return "not allowed by ruleset"
	case socks5ReplyHostUnreachable:
		return "host unreachable"
	case socks5ReplyConnectionRefused:
		return "connection refused"
	case socks5ReplyCommandNotSupported:
		return "command not supported"
	case socks5ReplyAddrNotSupported:
		return "address type not supported"
	default:
		return "reply " + strconv.Itoa(int(code))
	}
}

// socks5Relay copies client→target and target→client until both directions finish.
// When a direction ends with EOF, the receiving side is half-closed (or closed when it
// cannot half-close); when it ends with an error, both conns are closed so that the
// other direction stops too. It returns the bytes copied each way and the first error.
func socks5Relay(client, target net.Conn) (up, down int64, err error) {
	type result struct {
		n   int64
		err error
	}
	upc := make(chan result, 1)
	go func() {
		n, err := io.Copy(target, client)
		socks5Finish(target, client, err)
		upc <- result{n, err}
	}()
	down, derr := io.Copy(client, target)
	socks5Finish(client, target, derr)
	r := <-upc
	up = r.n
	switch {
	case !socks5ClosedErr(r.err):
		err = r.err
	case !socks5ClosedErr(derr):
		err = derr
	}
	return up, down, err
}

// socks5ClosedErr reports whether err is nil or comes from a conn the relay closed
// itself (after an EOF on a conn that cannot half-close, or an error the other way).
func socks5ClosedErr(err error) bool {
	return err == nil || errors.Is(err, net.ErrClosed) || errors.Is(err, io.ErrClosedPipe)
}

// socks5Finish ends one copy direction into dst from src.
func socks5Finish(dst, src net.Conn, err error) {
	if err != nil {
		dst.Close()
		src.Close()
		return
	}
	if cw, ok := dst.(interface{ CloseWrite() error }); ok {
		if cw.CloseWrite() == nil {
			return
		}
	}
	dst.Close()
}
