package ssh_test

import (
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/core/endpoint"
	"github.com/alknet/alknet/ssh"
)

// TestForwardHeaderLength: a header of exactly MaxHeaderLength bytes is served, one
// byte longer is refused, for the default (the longest host) and a set limit.
func TestForwardHeaderLength(t *testing.T) {
	_, echoPort := stEchoServer(t)
	ps := strconv.Itoa(int(echoPort))
	longest := strings.Repeat("a", 63) + "." + strings.Repeat("b", 63) + "." + strings.Repeat("c", 63) + "." + strings.Repeat("d", 61)
	if len(longest) != ssh.MaxHostLength {
		t.Fatalf("test host of %d bytes", len(longest))
	}
	resolver := stResolver{longest: {stMustAddr("127.0.0.1")}, "a.test": {stMustAddr("127.0.0.1")}, "ab.test": {stMustAddr("127.0.0.1")}}

	t.Run("default", func(t *testing.T) {
		n := fwStart(t, ssh.ForwardConfig{Resolver: resolver, Forwarding: stPolicy(t, ssh.Allow)})
		conn := n.dial(t, n.alice, endpoint.NetworkQUIC)
		at := "tcp " + longest + " 65535\n"
		if len(at) != ssh.DefaultMaxForwardHeader {
			t.Fatalf("header of %d bytes, want %d", len(at), ssh.DefaultMaxForwardHeader)
		}
		// At the limit: parsed and decided (65535 is closed, so the dial fails).
		if got := fwRaw(t, conn, at); got != "error "+ssh.ReasonConnectFailed+"\n" && got != "ok\n" {
			t.Fatalf("header at the limit: %q, want it served", got)
		}
		if got := fwRaw(t, conn, "tcp "+longest+"a 65535\n"); got != "error "+ssh.ReasonHeaderTooLong+"\n" {
			t.Fatalf("header one byte over: %q", got)
		}
		if got := fwRaw(t, conn, "tcp "+strings.Repeat("x", 4000)); got != "error "+ssh.ReasonHeaderTooLong+"\n" {
			t.Fatalf("header without end: %q", got)
		}
	})
	t.Run("set", func(t *testing.T) {
		at := "tcp a.test " + ps + "\n"
		n := fwStart(t, ssh.ForwardConfig{Resolver: resolver, Forwarding: stPolicy(t, ssh.Allow), MaxHeaderLength: len(at)})
		conn := n.dial(t, n.alice, endpoint.NetworkQUIC)
		if got := fwRaw(t, conn, at+"x"); got != "ok\nx" {
			t.Fatalf("header at the limit: %q", got)
		}
		if got := fwRaw(t, conn, "tcp ab.test "+ps+"\n"); got != "error "+ssh.ReasonHeaderTooLong+"\n" {
			t.Fatalf("header one byte over: %q", got)
		}
	})
}

// TestForwardMaxStreams: at MaxStreams open forwards the next is refused; once one
// ends, a new one is served.
func TestForwardMaxStreams(t *testing.T) {
	_, echoPort := stEchoServer(t)
	n := fwStart(t, ssh.ForwardConfig{Forwarding: stPolicy(t, ssh.Allow), MaxStreams: 2})
	conn := n.dial(t, n.alice, endpoint.NetworkQUIC)
	var open []net.Conn
	for i := range 2 {
		c, err := fwOpen(t, conn, "127.0.0.1", echoPort)
		if err != nil {
			t.Fatalf("forward %d of 2: %v", i+1, err)
		}
		defer c.Close()
		open = append(open, c)
	}
	_, err := fwOpen(t, conn, "127.0.0.1", echoPort)
	fwRefused(t, "third forward", err, ssh.ReasonTooManyStreams)
	n.logs.wait(t, "forward", 1)

	stEcho(t, open[0], 100) // ends the first forward both ways
	_ = open[0].Close()
	n.logs.wait(t, "forward", 2) // its line is written once it no longer counts
	c, err := fwOpen(t, conn, "127.0.0.1", echoPort)
	if err != nil {
		t.Fatalf("after one ended: %v", err)
	}
	stEcho(t, c, 100)
	_ = c.Close()
	stEcho(t, open[1], 100)
}

// TestForwardDialTimeout: the dial runs under DialTimeout and a dial it cuts short
// is refused with ReasonConnectTimeout; the connection goes on.
func TestForwardDialTimeout(t *testing.T) {
	_, echoPort := stEchoServer(t)
	const timeout = 50 * time.Millisecond
	type hookResult struct {
		entered, deadline time.Time
		hasDeadline       bool
		err               error
	}
	hooked := make(chan hookResult, 1)
	n := fwStart(t, ssh.ForwardConfig{
		Forwarding:  stPolicy(t, ssh.Allow),
		DialTimeout: timeout,
		Dialer: stDialerFunc(func(ctx context.Context, network, addr string) (net.Conn, error) {
			if addr != "127.0.0.2:9" {
				var d net.Dialer
				return d.DialContext(ctx, network, addr)
			}
			res := hookResult{entered: time.Now()}
			res.deadline, res.hasDeadline = ctx.Deadline()
			select {
			case <-ctx.Done():
				res.err = ctx.Err()
			case <-time.After(stFailSafe):
				res.err = errors.New("dial not ended by its timeout")
			}
			hooked <- res
			return nil, res.err
		}),
	})
	conn := n.dial(t, n.alice, endpoint.NetworkQUIC)
	before := time.Now()
	_, err := fwOpen(t, conn, "127.0.0.2", 9)
	fwRefused(t, "blackholed destination", err, ssh.ReasonConnectTimeout)
	res := <-hooked
	if !errors.Is(res.err, context.DeadlineExceeded) {
		t.Fatalf("the dial ended with %v, want its deadline", res.err)
	}
	if !res.hasDeadline || res.deadline.Before(before.Add(timeout)) || res.deadline.After(res.entered.Add(timeout)) {
		t.Fatalf("dial deadline %v (set %v), want DialTimeout from the start of the dial", res.deadline, res.hasDeadline)
	}
	c, err := fwOpen(t, conn, "127.0.0.1", echoPort)
	if err != nil {
		t.Fatalf("after the timeout: %v", err)
	}
	stEcho(t, c, 100)
	_ = c.Close()
}

// TestForwardHeaderAndIdleTimeouts: a stream that never finishes its header is
// refused, and a forward that moves nothing is reset, each by its timeout.
func TestForwardHeaderAndIdleTimeouts(t *testing.T) {
	_, echoPort := stEchoServer(t)
	n := fwStart(t, ssh.ForwardConfig{
		Forwarding:    stPolicy(t, ssh.Allow),
		HeaderTimeout: 50 * time.Millisecond,
		IdleTimeout:   50 * time.Millisecond,
	})
	conn := n.dial(t, n.alice, endpoint.NetworkQUIC)
	ctx := stCtx(t)

	st, err := conn.OpenBi(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	_ = core.NetConn(st, nil, nil).SetDeadline(time.Now().Add(stFailSafe))
	if _, err := io.WriteString(st, "tcp 127.0"); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(st) // the write side stays open: only the timeout ends it
	if err != nil || string(got) != "error "+ssh.ReasonMalformedHeader+"\n" {
		t.Fatalf("unfinished header: %q, %v", got, err)
	}

	c, err := fwOpen(t, conn, "127.0.0.1", echoPort)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(stFailSafe))
	if _, err := io.ReadAll(c); err == nil {
		t.Fatal("an idle forward ended without an error, want a reset")
	} else if ne := net.Error(nil); errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("idle forward not reset (the fail-safe ended it): %v", err)
	}
	recs := n.logs.wait(t, "forward", 2)
	if recs[1].Attr["outcome"] != "closed" {
		t.Fatalf("line %q: want outcome closed", recs[1].Line)
	}
}

func FuzzForwardHeader(f *testing.F) {
	for _, s := range []string{
		"tcp 127.0.0.1 80\n", "tcp example.com 443\n", "tcp ::1 22\n", "tcp a_b.test 65535\n",
		"tcp 127.0.0.1 0\n", "tcp 127.0.0.1 65536\n", "tcp 127.0.0.1 080\n", "tcp [::1] 22\n",
		"tcp fe80::1%eth0 22\n", "tcp a b 1\n", "tcp a 1", "tcp a 1\r\n", "TCP a 1\n", "tcp  a 1\n",
		"tcp a +1\n", "tcp a\x00 1\n", "", "\n", "tcp " + strings.Repeat("a", 254) + " 1\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		host, port, err := ssh.ParseForwardHeader(line)
		if err != nil {
			if !errors.Is(err, ssh.ErrForwardHeader) {
				t.Fatalf("ParseForwardHeader(%q): %v does not wrap ErrForwardHeader", line, err)
			}
			if len(err.Error()) > 100 {
				t.Fatalf("ParseForwardHeader(%q): error %q is long enough to quote the header", line, err)
			}
			return
		}
		if port == 0 || host == "" || len(host) > ssh.MaxHostLength || len(line) > ssh.DefaultMaxForwardHeader {
			t.Fatalf("ParseForwardHeader(%q) accepted host %q port %d", line, host, port)
		}
		again, err := ssh.ForwardHeader(host, port)
		if err != nil || again != line {
			t.Fatalf("ParseForwardHeader(%q) = %q, %d, but ForwardHeader gives %q, %v", line, host, port, again, err)
		}
	})
}

// fwBytesStream is a core.BiStream reading from fixed bytes.
type fwBytesStream struct{ io.Reader }

func (fwBytesStream) Write(p []byte) (int, error) { return len(p), nil }
func (fwBytesStream) CloseWrite() error           { return nil }
func (fwBytesStream) Close() error                { return nil }

func FuzzAcceptForwarded(f *testing.F) {
	for _, s := range []string{"forwarded 1\n", "forwarded 65535\nrest", "forwarded 0\n", "forwarded 65536\n",
		"forwarded 01\n", "forwarded\n", "forwarded 1", "", "forwarded  1\n", "forwarded 123456789\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		port, err := ssh.AcceptForwarded(fwBytesStream{strings.NewReader(s)})
		if err != nil {
			if !errors.Is(err, ssh.ErrForwardHeader) {
				t.Fatalf("AcceptForwarded(%q): %v does not wrap ErrForwardHeader", s, err)
			}
			return
		}
		if want := "forwarded " + strconv.Itoa(int(port)) + "\n"; port == 0 || !strings.HasPrefix(s, want) {
			t.Fatalf("AcceptForwarded(%q) = %d", s, port)
		}
	})
}

// TestForwardMemoryBudget: each forward reserves its header and copy buffers in the
// connection's budget; with room for exactly one, a second open forward is refused
// until the first ends.
func TestForwardMemoryBudget(t *testing.T) {
	_, echoPort := stEchoServer(t)
	perForward := int64(ssh.DefaultMaxForwardHeader + 2*32<<10)
	n := fwStartLimits(t, ssh.ForwardConfig{Forwarding: stPolicy(t, ssh.Allow)}, core.Limits{MaxBufferedBytesPerConn: perForward})
	conn := n.dial(t, n.alice, endpoint.NetworkQUIC)
	first, err := fwOpen(t, conn, "127.0.0.1", echoPort)
	if err != nil {
		t.Fatalf("the forward that fits: %v", err)
	}
	_, err = fwOpen(t, conn, "127.0.0.1", echoPort)
	fwRefused(t, "a second forward", err, ssh.ReasonOverBudget)
	stEcho(t, first, 100)
	_ = first.Close()
	n.logs.wait(t, "forward", 2) // the first's line: its reservation is released
	c, err := fwOpen(t, conn, "127.0.0.1", echoPort)
	if err != nil {
		t.Fatalf("after the first ended: %v", err)
	}
	stEcho(t, c, 100)
	_ = c.Close()
}
