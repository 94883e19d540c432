package ssh_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/alknet/alknet/ssh"
)

// socksFailSafe bounds every blocking client operation in these tests, so that a bug
// fails a test instead of hanging it. It is never used for synchronisation.
const socksFailSafe = 10 * time.Second

// socksOpenerFunc adapts a function to ssh.Opener.
type socksOpenerFunc func(ctx context.Context, host string, port uint16) (net.Conn, error)

func (f socksOpenerFunc) Open(ctx context.Context, host string, port uint16) (net.Conn, error) {
	return f(ctx, host, port)
}

// socksTCPServer runs handle on every connection accepted on a loopback listener. It
// stops and waits for its goroutines at cleanup.
func socksTCPServer(t *testing.T, handle func(c *net.TCPConn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]struct{}{}
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = struct{}{}
			mu.Unlock()
			wg.Go(func() {
				defer c.Close()
				handle(c.(*net.TCPConn))
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// socksEcho echoes as it reads, and half-closes after the client's EOF.
func socksEcho(c *net.TCPConn) {
	if _, err := io.Copy(c, c); err == nil {
		c.CloseWrite()
	}
}

// socksDialOpener dials addr whatever the target, and records the targets it got.
type socksDialOpener struct {
	addr    string
	mu      sync.Mutex
	targets []string
	opened  atomic.Int64
	closed  atomic.Int64
}

func (o *socksDialOpener) Open(ctx context.Context, host string, port uint16) (net.Conn, error) {
	o.mu.Lock()
	o.targets = append(o.targets, net.JoinHostPort(host, fmt.Sprint(port)))
	o.mu.Unlock()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", o.addr)
	if err != nil {
		return nil, err
	}
	o.opened.Add(1)
	return &socksCountingConn{TCPConn: c.(*net.TCPConn), closed: &o.closed}, nil
}

// socksCountingConn counts its first Close.
type socksCountingConn struct {
	*net.TCPConn
	once   sync.Once
	closed *atomic.Int64
}

func (c *socksCountingConn) Close() error {
	c.once.Do(func() { c.closed.Add(1) })
	return c.TCPConn.Close()
}

// startSOCKS runs srv.Serve on a loopback listener until cleanup, and checks that Serve
// returns after the cancel.
func startSOCKS(t *testing.T, srv *ssh.SOCKS5Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("Serve = %v, want context.Canceled", err)
			}
		case <-time.After(socksFailSafe):
			t.Errorf("Serve did not return after cancel")
		}
	})
	return ln.Addr().String()
}

func socksDial(t *testing.T, addr string) *net.TCPConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	c.SetDeadline(time.Now().Add(socksFailSafe))
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

// socksPair returns both ends of a loopback TCP connection.
func socksPair(t *testing.T) (client, server *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	defer ln.Close()
	client = socksDial(t, ln.Addr().String())
	s, err := ln.Accept()
	if err != nil {
		t.Fatalf("accept: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return client, s.(*net.TCPConn)
}

// serveConnAsync runs srv.ServeConn on the server end of a loopback pair and returns
// the client end and ServeConn's result.
func serveConnAsync(t *testing.T, srv *ssh.SOCKS5Server) (*net.TCPConn, <-chan error) {
	t.Helper()
	client, server := socksPair(t)
	return client, serveOnAsync(t, srv, client, server)
}

// serveOnAsync runs srv.ServeConn on server, the far end of client, and returns
// ServeConn's result; cleanup closes client and waits for ServeConn.
func serveOnAsync(t *testing.T, srv *ssh.SOCKS5Server, client, server net.Conn) <-chan error {
	t.Helper()
	done := make(chan error, 1)
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		done <- srv.ServeConn(context.Background(), server)
	}()
	t.Cleanup(func() {
		client.Close()
		select {
		case <-finished:
		case <-time.After(socksFailSafe):
			t.Errorf("ServeConn did not return")
		}
	})
	return done
}

func socksWrite(t *testing.T, c net.Conn, b []byte) {
	t.Helper()
	if _, err := c.Write(b); err != nil {
		t.Fatalf("write: %v", err)
	}
}

func socksRead(t *testing.T, c net.Conn, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := io.ReadFull(c, b); err != nil {
		t.Fatalf("read %d bytes: %v (got % x)", n, err, b)
	}
	return b
}

// socksExpectClosed checks that the server sends nothing more and closes.
func socksExpectClosed(t *testing.T, c net.Conn) {
	t.Helper()
	var b [16]byte
	n, err := c.Read(b[:])
	if n != 0 || err == nil {
		t.Fatalf("read after end = %d bytes (% x), %v; want closed", n, b[:n], err)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection not closed: %v", err)
	}
}

// socksEnd checks that the server closes c after its last reply, closes the client
// side (a failure reply keeps the server reading until the client leaves), and returns
// ServeConn's result.
func socksEnd(t *testing.T, c net.Conn, done <-chan error) error {
	t.Helper()
	socksExpectClosed(t, c)
	c.Close()
	return <-done
}

// socksConnect sends the greeting and a request, checks the method reply, and returns
// the 10-byte request reply.
func socksConnect(t *testing.T, c net.Conn, req []byte) []byte {
	t.Helper()
	socksWrite(t, c, []byte{5, 1, 0})
	if got := socksRead(t, c, 2); !bytes.Equal(got, []byte{5, 0}) {
		t.Fatalf("method reply = % x, want 05 00", got)
	}
	socksWrite(t, c, req)
	return socksRead(t, c, 10)
}

func socksReply(code byte) []byte { return []byte{5, code, 0, 1, 0, 0, 0, 0, 0, 0} }

func socksDomainReq(cmd byte, host string, port uint16) []byte {
	b := []byte{5, cmd, 0, 3, byte(len(host))}
	b = append(b, host...)
	return append(b, byte(port>>8), byte(port))
}

func TestSOCKS5Greeting(t *testing.T) {
	many := make([]byte, 255)
	for i := range many {
		many[i] = byte(i + 1)
	}
	many[254] = 0 // no authentication comes last
	tests := []struct {
		name  string
		send  []byte
		reply []byte // nil: closed without a reply
	}{
		{"no acceptable method", []byte{5, 2, 1, 2}, []byte{5, 0xFF}},
		{"no methods", []byte{5, 0}, []byte{5, 0xFF}},
		{"gssapi only", []byte{5, 1, 1}, []byte{5, 0xFF}},
		{"version 4", []byte{4, 1}, nil},
		{"version 0", []byte{0, 1}, nil},
		{"255 methods with no-auth last", append([]byte{5, 255}, many...), []byte{5, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var calls atomic.Int64
			srv := &ssh.SOCKS5Server{Opener: socksOpenerFunc(func(context.Context, string, uint16) (net.Conn, error) {
				calls.Add(1)
				return nil, errors.New("unexpected")
			})}
			c, done := serveConnAsync(t, srv)
			socksWrite(t, c, tt.send)
			if tt.reply != nil {
				if got := socksRead(t, c, len(tt.reply)); !bytes.Equal(got, tt.reply) {
					t.Fatalf("reply = % x, want % x", got, tt.reply)
				}
			}
			if tt.reply == nil || tt.reply[1] == 0xFF {
				if err := socksEnd(t, c, done); err == nil {
					t.Fatalf("ServeConn = nil, want an error")
				}
			}
			if calls.Load() != 0 {
				t.Fatalf("Opener called")
			}
		})
	}
}

func TestSOCKS5RequestErrors(t *testing.T) {
	tests := []struct {
		name string
		req  []byte
		code byte
	}{
		{"bind", []byte{5, 2, 0, 1, 127, 0, 0, 1, 0, 80}, 0x07},
		{"udp associate", []byte{5, 3, 0, 1, 0, 0, 0, 0, 0, 0}, 0x07},
		{"unknown command domain", socksDomainReq(0x09, "example.invalid", 80), 0x07},
		{"bind ipv6", append(append([]byte{5, 2, 0, 4}, make([]byte, 16)...), 0, 80), 0x07},
		{"unknown command and atyp", []byte{5, 0x42, 0, 0x07}, 0x07},
		{"atyp 0x02", []byte{5, 1, 0, 2}, 0x08},
		{"atyp 0x05", []byte{5, 1, 0, 5, 1, 2, 3, 4, 0, 80}, 0x08},
		{"atyp 0x00", []byte{5, 1, 0, 0}, 0x08},
		{"empty domain", []byte{5, 1, 0, 3, 0, 0, 80}, 0x01},
		{"domain with NUL", socksDomainReq(1, "evil\x00.example", 80), 0x01},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var calls atomic.Int64
			srv := &ssh.SOCKS5Server{Opener: socksOpenerFunc(func(context.Context, string, uint16) (net.Conn, error) {
				calls.Add(1)
				return nil, errors.New("unexpected")
			})}
			c, done := serveConnAsync(t, srv)
			if got := socksConnect(t, c, tt.req); !bytes.Equal(got, socksReply(tt.code)) {
				t.Fatalf("reply = % x, want % x", got, socksReply(tt.code))
			}
			if err := socksEnd(t, c, done); err == nil {
				t.Fatalf("ServeConn = nil, want an error")
			}
			if calls.Load() != 0 {
				t.Fatalf("Opener called")
			}
		})
	}
}

func TestSOCKS5RequestBadVersion(t *testing.T) {
	srv := &ssh.SOCKS5Server{Opener: socksOpenerFunc(func(context.Context, string, uint16) (net.Conn, error) {
		return nil, errors.New("unexpected")
	})}
	c, done := serveConnAsync(t, srv)
	socksWrite(t, c, []byte{5, 1, 0})
	socksRead(t, c, 2)
	socksWrite(t, c, []byte{4, 1, 0, 1})
	if err := socksEnd(t, c, done); err == nil {
		t.Fatalf("ServeConn = nil, want an error")
	}
}

// socksTimeoutErr is a net.Error timeout that is not context.DeadlineExceeded.
type socksTimeoutErr struct{}

func (socksTimeoutErr) Error() string   { return "i/o timeout" }
func (socksTimeoutErr) Timeout() bool   { return true }
func (socksTimeoutErr) Temporary() bool { return true }

func TestSOCKS5OpenErrors(t *testing.T) {
	const host, port = "open-error-target.invalid", 47123
	tests := []struct {
		name string
		err  error
		code byte
	}{
		{"prohibited", &gossh.OpenChannelError{Reason: gossh.Prohibited, Message: "denied " + host}, 0x02},
		{"wrapped prohibited", fmt.Errorf("open: %w", &gossh.OpenChannelError{Reason: gossh.Prohibited}), 0x02},
		{"connection failed", &gossh.OpenChannelError{Reason: gossh.ConnectionFailed, Message: "dial tcp " + host + ":47123: refused"}, 0x05},
		{"unknown channel type", &gossh.OpenChannelError{Reason: gossh.UnknownChannelType}, 0x01},
		{"resource shortage", &gossh.OpenChannelError{Reason: gossh.ResourceShortage}, 0x01},
		{"host unreachable", ssh.ErrHostUnreachable, 0x04},
		{"wrapped host unreachable", fmt.Errorf("lookup %s: %w", host, ssh.ErrHostUnreachable), 0x04},
		{"deadline exceeded", fmt.Errorf("open: %w", context.DeadlineExceeded), 0x04},
		{"os deadline", &net.OpError{Op: "dial", Net: "tcp", Err: os.ErrDeadlineExceeded}, 0x04},
		{"net timeout", socksTimeoutErr{}, 0x04},
		{"other", errors.New("boom " + host), 0x01},
		{"canceled", context.Canceled, 0x01},
		{"nil conn and nil error", nil, 0x01},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := &ssh.SOCKS5Server{Opener: socksOpenerFunc(func(context.Context, string, uint16) (net.Conn, error) {
				return nil, tt.err
			})}
			c, done := serveConnAsync(t, srv)
			if got := socksConnect(t, c, socksDomainReq(1, host, port)); !bytes.Equal(got, socksReply(tt.code)) {
				t.Fatalf("reply = % x, want % x", got, socksReply(tt.code))
			}
			err := socksEnd(t, c, done)
			if err == nil {
				t.Fatalf("ServeConn = nil, want an error")
			}
			if tt.err != nil && !errors.Is(err, tt.err) {
				t.Fatalf("ServeConn = %v, does not wrap %v", err, tt.err)
			}
			if msg := err.Error(); strings.Contains(msg, host) || strings.Contains(msg, "47123") {
				t.Fatalf("ServeConn error %q names the target", msg)
			}
		})
	}
}

func TestSOCKS5Targets(t *testing.T) {
	tests := []struct {
		name string
		req  []byte
		host string
		port uint16
	}{
		{"ipv4", []byte{5, 1, 0, 1, 192, 0, 2, 7, 0x01, 0xBB}, "192.0.2.7", 443},
		{"ipv4 any port max", []byte{5, 1, 0, 1, 0, 0, 0, 0, 0xFF, 0xFF}, "0.0.0.0", 65535},
		{"ipv6 loopback", append(append([]byte{5, 1, 0, 4}, net.IPv6loopback...), 0, 22), "::1", 22},
		{"ipv6", append(append([]byte{5, 1, 0, 4}, net.ParseIP("2001:db8::1:0:0:1")...), 0x1F, 0x90), "2001:db8::1:0:0:1", 8080},
		{"ipv4-mapped ipv6", append(append([]byte{5, 1, 0, 4}, net.ParseIP("::ffff:192.0.2.1").To16()...), 0, 80), "::ffff:192.0.2.1", 80},
		{"domain", socksDomainReq(1, "example.invalid", 80), "example.invalid", 80},
		{"domain kept as is", socksDomainReq(1, "Mixed.Case.EXAMPLE.", 0), "Mixed.Case.EXAMPLE.", 0},
		{"domain 255 bytes", socksDomainReq(1, strings.Repeat("a", 255), 1), strings.Repeat("a", 255), 1},
		{"domain that looks like an address", socksDomainReq(1, "127.0.0.1", 9), "127.0.0.1", 9},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			type target struct {
				host string
				port uint16
			}
			got := make(chan target, 1)
			srv := &ssh.SOCKS5Server{Opener: socksOpenerFunc(func(_ context.Context, host string, port uint16) (net.Conn, error) {
				got <- target{host, port}
				return nil, ssh.ErrHostUnreachable
			})}
			c, _ := serveConnAsync(t, srv)
			if r := socksConnect(t, c, tt.req); !bytes.Equal(r, socksReply(0x04)) {
				t.Fatalf("reply = % x, want % x", r, socksReply(0x04))
			}
			if g := <-got; g.host != tt.host || g.port != tt.port {
				t.Fatalf("Opener got (%q, %d), want (%q, %d)", g.host, g.port, tt.host, tt.port)
			}
		})
	}
}

func TestSOCKS5Echo1MiB(t *testing.T) {
	opener := &socksDialOpener{addr: socksTCPServer(t, socksEcho)}
	addr := startSOCKS(t, &ssh.SOCKS5Server{Opener: opener})
	c := socksDial(t, addr)
	if got := socksConnect(t, c, socksDomainReq(1, "example.invalid", 7)); !bytes.Equal(got, socksReply(0)) {
		t.Fatalf("reply = % x, want success", got)
	}
	data := make([]byte, 1<<20)
	rand.Read(data)
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write(data)
		if err == nil {
			err = c.CloseWrite()
		}
		werr <- err
	}()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("read echo: %v", err)
	}
	if err := <-werr; err != nil {
		t.Fatalf("write: %v", err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("echo differs: got %d bytes, want %d", len(got), len(data))
	}
	opener.mu.Lock()
	defer opener.mu.Unlock()
	if len(opener.targets) != 1 || opener.targets[0] != "example.invalid:7" {
		t.Fatalf("targets = %q", opener.targets)
	}
}

func TestSOCKS5HalfClose(t *testing.T) {
	tests := []struct {
		name string
		// target serves the tunnelled connection and returns what it read.
		target func(c *net.TCPConn) string
		// client runs on the client side after a successful CONNECT.
		client func(t *testing.T, c *net.TCPConn)
		// received is what the target must have read.
		received string
	}{
		{
			name: "client closes first; reply follows the EOF",
			target: func(c *net.TCPConn) string {
				b, _ := io.ReadAll(c) // returns only at the client's EOF
				c.Write([]byte("saw EOF after " + string(b)))
				c.CloseWrite()
				return string(b)
			},
			client: func(t *testing.T, c *net.TCPConn) {
				socksWrite(t, c, []byte("request"))
				if err := c.CloseWrite(); err != nil {
					t.Fatalf("CloseWrite: %v", err)
				}
				got, err := io.ReadAll(c)
				if err != nil {
					t.Fatalf("read: %v", err)
				}
				if string(got) != "saw EOF after request" {
					t.Fatalf("client got %q", got)
				}
			},
			received: "request",
		},
		{
			name: "target closes first; client still sends",
			target: func(c *net.TCPConn) string {
				c.Write([]byte("banner"))
				c.CloseWrite()
				b, _ := io.ReadAll(c)
				return string(b)
			},
			client: func(t *testing.T, c *net.TCPConn) {
				got, err := io.ReadAll(c) // EOF from the target's half-close
				if err != nil {
					t.Fatalf("read: %v", err)
				}
				if string(got) != "banner" {
					t.Fatalf("client got %q", got)
				}
				socksWrite(t, c, []byte("still sending"))
				if err := c.CloseWrite(); err != nil {
					t.Fatalf("CloseWrite: %v", err)
				}
			},
			received: "still sending",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			received := make(chan string, 1)
			opener := &socksDialOpener{addr: socksTCPServer(t, func(c *net.TCPConn) { received <- tt.target(c) })}
			c, done := serveConnAsync(t, &ssh.SOCKS5Server{Opener: opener})
			if got := socksConnect(t, c, socksDomainReq(1, "example.invalid", 7)); !bytes.Equal(got, socksReply(0)) {
				t.Fatalf("reply = % x, want success", got)
			}
			tt.client(t, c)
			if r := <-received; r != tt.received {
				t.Fatalf("target received %q, want %q", r, tt.received)
			}
			if err := <-done; err != nil {
				t.Fatalf("ServeConn = %v, want nil", err)
			}
			if o, cl := opener.opened.Load(), opener.closed.Load(); o != 1 || cl != 1 {
				t.Fatalf("opened %d, closed %d tunnelled conns", o, cl)
			}
		})
	}
}

func TestSOCKS5TargetWithoutCloseWrite(t *testing.T) {
	// A tunnelled conn that cannot half-close is closed when the client finishes.
	targetDone := make(chan string, 1)
	srv := &ssh.SOCKS5Server{Opener: socksOpenerFunc(func(context.Context, string, uint16) (net.Conn, error) {
		proxySide, targetSide := net.Pipe()
		go func() {
			defer targetSide.Close()
			targetSide.Write([]byte("banner"))
			b, _ := io.ReadAll(targetSide)
			targetDone <- string(b)
		}()
		return proxySide, nil
	})}
	c, done := serveConnAsync(t, srv)
	if got := socksConnect(t, c, socksDomainReq(1, "example.invalid", 7)); !bytes.Equal(got, socksReply(0)) {
		t.Fatalf("reply = % x, want success", got)
	}
	if got := socksRead(t, c, 6); string(got) != "banner" {
		t.Fatalf("got %q", got)
	}
	socksWrite(t, c, []byte("bye"))
	if err := c.CloseWrite(); err != nil {
		t.Fatalf("CloseWrite: %v", err)
	}
	if got := <-targetDone; got != "bye" {
		t.Fatalf("target read %q", got)
	}
	if rest, err := io.ReadAll(c); err != nil || len(rest) != 0 {
		t.Fatalf("after close: %q, %v; want EOF", rest, err)
	}
	if err := <-done; err != nil {
		t.Fatalf("ServeConn = %v, want nil", err)
	}
}

// socksExpiringConn puts the handshake deadline under the test's control: a deadline
// the server sets is recorded but not armed on the socket until expire is called, which
// moves every armed deadline (and every later one) into the past, as if HandshakeTimeout
// had run out at that moment. The server still times out through the socket's own
// deadline, but how long the machine takes to schedule it no longer matters.
type socksExpiringConn struct {
	*net.TCPConn
	mu          sync.Mutex
	expired     bool
	first       time.Time // the first non-zero deadline the server set
	read, write bool      // a non-zero read (write) deadline is set
}

// socksPast is a deadline that has always passed.
var socksPast = time.Unix(1, 0)

func (c *socksExpiringConn) set(t time.Time, read, write bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.first.IsZero() {
		c.first = t // stays zero until a non-zero deadline is set
	}
	if read {
		c.read = !t.IsZero()
	}
	if write {
		c.write = !t.IsZero()
	}
	var d time.Time // a deadline that has not expired yet is left unarmed
	if !t.IsZero() && c.expired {
		d = socksPast
	}
	switch {
	case read && write:
		return c.TCPConn.SetDeadline(d)
	case read:
		return c.TCPConn.SetReadDeadline(d)
	default:
		return c.TCPConn.SetWriteDeadline(d)
	}
}

func (c *socksExpiringConn) SetDeadline(t time.Time) error      { return c.set(t, true, true) }
func (c *socksExpiringConn) SetReadDeadline(t time.Time) error  { return c.set(t, true, false) }
func (c *socksExpiringConn) SetWriteDeadline(t time.Time) error { return c.set(t, false, true) }

// expire makes the server's deadlines, set and to be set, run out now.
func (c *socksExpiringConn) expire(t *testing.T) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.expired = true
	if c.read {
		if err := c.TCPConn.SetReadDeadline(socksPast); err != nil && !errors.Is(err, net.ErrClosed) {
			t.Fatalf("expire read deadline: %v", err)
		}
	}
	if c.write {
		if err := c.TCPConn.SetWriteDeadline(socksPast); err != nil && !errors.Is(err, net.ErrClosed) {
			t.Fatalf("expire write deadline: %v", err)
		}
	}
}

// firstDeadline returns the first non-zero deadline the server set.
func (c *socksExpiringConn) firstDeadline() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.first
}

func TestSOCKS5HandshakeTimeout(t *testing.T) {
	// The handshake deadline is HandshakeTimeout from the start of ServeConn, and
	// covers the whole greeting and request: whatever the client got before it
	// expires, the server then closes and ServeConn reports a timeout. The deadline is
	// expired by the test (socksExpiringConn) once the client has read what the server
	// must send first; a real 20 ms deadline could expire before a busy machine even
	// ran the server, which then closed before sending the method reply.
	tests := []struct {
		name string
		send []byte
		want []byte // what the server sends before closing
	}{
		{"nothing", nil, nil},
		{"partial greeting", []byte{5}, nil},
		{"missing methods", []byte{5, 3, 0}, nil},
		{"greeting only", []byte{5, 1, 0}, []byte{5, 0}},
		{"partial request", []byte{5, 1, 0, 5, 1, 0, 3, 10, 'e', 'x'}, []byte{5, 0}},
	}
	const timeout = time.Hour // never reached: the test expires the deadline
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := &ssh.SOCKS5Server{
				HandshakeTimeout: timeout,
				Opener: socksOpenerFunc(func(context.Context, string, uint16) (net.Conn, error) {
					return nil, errors.New("unexpected")
				}),
			}
			client, server := socksPair(t)
			sc := &socksExpiringConn{TCPConn: server}
			start := time.Now()
			done := serveOnAsync(t, srv, client, sc)
			if tt.send != nil {
				socksWrite(t, client, tt.send)
			}
			if tt.want != nil {
				if got := socksRead(t, client, len(tt.want)); !bytes.Equal(got, tt.want) {
					t.Fatalf("got % x, want % x", got, tt.want)
				}
			}
			sc.expire(t)
			err := socksEnd(t, client, done)
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				t.Fatalf("ServeConn = %v, want a timeout", err)
			}
			// The first deadline was set once ServeConn had started, HandshakeTimeout
			// ahead (a bound, not a threshold: both sides hold on any machine).
			first := sc.firstDeadline()
			if first.Before(start.Add(timeout)) || first.After(time.Now().Add(timeout)) {
				t.Fatalf("first deadline %v, want HandshakeTimeout after ServeConn started (%v)", first, start.Add(timeout))
			}
		})
	}
	t.Run("real deadline", func(t *testing.T) {
		// A silent client is dropped by the socket deadline itself. Whenever the
		// 20 ms run out, the server has nothing to send: the outcome does not
		// depend on scheduling.
		srv := &ssh.SOCKS5Server{
			HandshakeTimeout: 20 * time.Millisecond,
			Opener: socksOpenerFunc(func(context.Context, string, uint16) (net.Conn, error) {
				return nil, errors.New("unexpected")
			}),
		}
		c, done := serveConnAsync(t, srv)
		err := socksEnd(t, c, done)
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("ServeConn = %v, want a timeout", err)
		}
	})
}

// socksDeadlineConn records the read and write deadlines set on a TCP conn.
type socksDeadlineConn struct {
	*net.TCPConn
	mu          sync.Mutex
	read, write time.Time
	sets        int
}

func (c *socksDeadlineConn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	c.read, c.write = t, t
	c.sets++
	c.mu.Unlock()
	return c.TCPConn.SetDeadline(t)
}

func (c *socksDeadlineConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	c.read = t
	c.sets++
	c.mu.Unlock()
	return c.TCPConn.SetReadDeadline(t)
}

func (c *socksDeadlineConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	c.write = t
	c.sets++
	c.mu.Unlock()
	return c.TCPConn.SetWriteDeadline(t)
}

func TestSOCKS5HandshakeTimeoutCleared(t *testing.T) {
	// Once the tunnel is up, no handshake deadline is left on the client conn.
	opener := &socksDialOpener{addr: socksTCPServer(t, socksEcho)}
	srv := &ssh.SOCKS5Server{Opener: opener, HandshakeTimeout: time.Minute}
	client, server := socksPair(t)
	dc := &socksDeadlineConn{TCPConn: server}
	done := make(chan error, 1)
	go func() { done <- srv.ServeConn(context.Background(), dc) }()
	if got := socksConnect(t, client, socksDomainReq(1, "example.invalid", 7)); !bytes.Equal(got, socksReply(0)) {
		t.Fatalf("reply = % x, want success", got)
	}
	// The echo proves the relay runs, which starts after the success reply.
	socksWrite(t, client, []byte("ping"))
	if got := socksRead(t, client, 4); string(got) != "ping" {
		t.Fatalf("echo = %q", got)
	}
	dc.mu.Lock()
	read, write, sets := dc.read, dc.write, dc.sets
	dc.mu.Unlock()
	if sets == 0 || !read.IsZero() || !write.IsZero() {
		t.Fatalf("after the handshake: %d deadline calls, read deadline %v, write deadline %v; want both cleared", sets, read, write)
	}
	client.CloseWrite()
	if _, err := io.ReadAll(client); err != nil {
		t.Fatalf("read: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("ServeConn = %v", err)
	}
}

func TestSOCKS5ServeCancel(t *testing.T) {
	opener := &socksDialOpener{addr: socksTCPServer(t, socksEcho)}
	blocked := make(chan struct{}, 1)
	var blockedReturned atomic.Bool
	srv := &ssh.SOCKS5Server{Opener: socksOpenerFunc(func(ctx context.Context, host string, port uint16) (net.Conn, error) {
		if host == "blocking.invalid" {
			blocked <- struct{}{}
			<-ctx.Done()
			blockedReturned.Store(true)
			return nil, ctx.Err()
		}
		return opener.Open(ctx, host, port)
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	addr := ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()

	// Three established tunnels, one Open blocked on ctx, one idle mid-handshake.
	var tunnels []*net.TCPConn
	for range 3 {
		c := socksDial(t, addr)
		if got := socksConnect(t, c, socksDomainReq(1, "example.invalid", 7)); !bytes.Equal(got, socksReply(0)) {
			t.Fatalf("reply = % x, want success", got)
		}
		socksWrite(t, c, []byte("x"))
		socksRead(t, c, 1)
		tunnels = append(tunnels, c)
	}
	b := socksDial(t, addr)
	socksWrite(t, b, []byte{5, 1, 0})
	socksRead(t, b, 2)
	socksWrite(t, b, socksDomainReq(1, "blocking.invalid", 1))
	<-blocked
	idle := socksDial(t, addr)
	socksWrite(t, idle, []byte{5})

	cancel()
	select {
	case err := <-served:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Serve = %v, want context.Canceled", err)
		}
	case <-time.After(socksFailSafe):
		t.Fatalf("Serve did not return after cancel")
	}
	// Serve has returned, so every connection goroutine has finished: each tunnelled
	// conn is closed, the blocked Open has returned, every client sees the close.
	if o, cl := opener.opened.Load(), opener.closed.Load(); o != 3 || cl != 3 {
		t.Fatalf("opened %d, closed %d tunnelled conns", o, cl)
	}
	if !blockedReturned.Load() {
		t.Fatalf("blocked Open still running after Serve returned")
	}
	for _, c := range tunnels {
		socksExpectClosed(t, c)
	}
	socksExpectClosed(t, idle)
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Fatalf("listener still accepting after Serve returned")
	}
}

func TestSOCKS5ServeListenerClosed(t *testing.T) {
	opener := &socksDialOpener{addr: socksTCPServer(t, socksEcho)}
	srv := &ssh.SOCKS5Server{Opener: opener}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(context.Background(), ln) }()
	c := socksDial(t, ln.Addr().String())
	if got := socksConnect(t, c, socksDomainReq(1, "example.invalid", 7)); !bytes.Equal(got, socksReply(0)) {
		t.Fatalf("reply = % x, want success", got)
	}
	ln.Close()
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("Serve = %v, want nil", err)
		}
	case <-time.After(socksFailSafe):
		t.Fatalf("Serve did not return after the listener closed")
	}
	socksExpectClosed(t, c)
	if o, cl := opener.opened.Load(), opener.closed.Load(); o != 1 || cl != 1 {
		t.Fatalf("opened %d, closed %d tunnelled conns", o, cl)
	}
}

func TestSOCKS5NoOpener(t *testing.T) {
	srv := &ssh.SOCKS5Server{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	if err := srv.Serve(context.Background(), ln); err == nil {
		t.Fatalf("Serve without Opener = nil")
	}
	if _, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("listener not closed: %v", err)
	}
	client, server := socksPair(t)
	if err := srv.ServeConn(context.Background(), server); err == nil {
		t.Fatalf("ServeConn without Opener = nil")
	}
	socksExpectClosed(t, client)
}

// socksLogBuffer is a bytes.Buffer safe for concurrent use.
type socksLogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *socksLogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *socksLogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestSOCKS5LogsNoTargets(t *testing.T) {
	echo := socksTCPServer(t, socksEcho)
	var logs socksLogBuffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv := &ssh.SOCKS5Server{
		Logger: logger,
		Opener: socksOpenerFunc(func(ctx context.Context, host string, port uint16) (net.Conn, error) {
			switch host {
			case "allowed-secret.invalid":
				var d net.Dialer
				return d.DialContext(ctx, "tcp", echo)
			case "denied-secret.invalid":
				return nil, &gossh.OpenChannelError{Reason: gossh.Prohibited, Message: fmt.Sprintf("%s:%d denied", host, port)}
			default:
				return nil, fmt.Errorf("dial tcp %s: %w", net.JoinHostPort(host, fmt.Sprint(port)), ssh.ErrHostUnreachable)
			}
		}),
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()
	addr := ln.Addr().String()

	tests := []struct {
		req  []byte
		code byte
	}{
		{socksDomainReq(1, "allowed-secret.invalid", 54321), 0x00},
		{socksDomainReq(1, "denied-secret.invalid", 54322), 0x02},
		{[]byte{5, 1, 0, 1, 198, 51, 100, 77, 0xD4, 0x33}, 0x04}, // 198.51.100.77:54323
		{socksDomainReq(2, "bind-secret.invalid", 54324), 0x07},
	}
	for _, tt := range tests {
		c := socksDial(t, addr)
		if got := socksConnect(t, c, tt.req); !bytes.Equal(got, socksReply(tt.code)) {
			t.Fatalf("reply = % x, want % x", got, socksReply(tt.code))
		}
		if tt.code == 0 {
			socksWrite(t, c, []byte("hi"))
			socksRead(t, c, 2)
			c.CloseWrite()
			io.ReadAll(c)
		}
		c.Close()
	}
	cancel()
	if err := <-served; !errors.Is(err, context.Canceled) {
		t.Fatalf("Serve = %v", err)
	}
	out := logs.String()
	if !strings.Contains(out, "socks5:") {
		t.Fatalf("no socks5 log lines:\n%s", out)
	}
	for _, secret := range []string{"secret", "198.51.100.77", "54321", "54322", "54323", "54324"} {
		if strings.Contains(out, secret) {
			t.Fatalf("log names a target (%q):\n%s", secret, out)
		}
	}
}

// socksExampleOpener opens every target to an in-process echo server, standing in for an
// SSH direct-tcpip channel.
type socksExampleOpener struct{ addr string }

func (o socksExampleOpener) Open(ctx context.Context, host string, port uint16) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "tcp", o.addr)
}

func ExampleSOCKS5Server() {
	// An echo server plays the part of the remote target.
	echoLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	var echoWG sync.WaitGroup
	echoWG.Go(func() {
		for {
			c, err := echoLn.Accept()
			if err != nil {
				return
			}
			echoWG.Go(func() {
				io.Copy(c, c)
				c.Close()
			})
		}
	})
	defer echoWG.Wait()
	defer echoLn.Close()

	// The SOCKS5 proxy, as alknet connect --socks 127.0.0.1:1080 runs it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	srv := &ssh.SOCKS5Server{Opener: socksExampleOpener{addr: echoLn.Addr().String()}}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()

	// A SOCKS5 client, written by hand.
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		panic(err)
	}
	c.Write([]byte{5, 1, 0}) // version 5, one method: no authentication
	method := make([]byte, 2)
	io.ReadFull(c, method)
	fmt.Printf("method reply: % x\n", method)

	host := "example.invalid" // resolved by the node, not here
	req := append([]byte{5, 1, 0, 3, byte(len(host))}, host...)
	req = append(req, 0, 80) // port 80
	c.Write(req)
	reply := make([]byte, 10)
	io.ReadFull(c, reply)
	fmt.Printf("connect reply: % x\n", reply)

	c.Write([]byte("hello through the tunnel"))
	c.(*net.TCPConn).CloseWrite()
	echoed, _ := io.ReadAll(c)
	fmt.Printf("echo: %s\n", echoed)
	c.Close()

	cancel()
	fmt.Println("serve:", <-served)
	// Output:
	// method reply: 05 00
	// connect reply: 05 00 00 01 00 00 00 00 00 00
	// echo: hello through the tunnel
	// serve: context canceled
}
