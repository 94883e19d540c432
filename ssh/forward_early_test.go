package ssh_test

import (
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/core/endpoint"
	"github.com/alknet/alknet/ssh"
)

// TestOpenForward: bytes written before the node's answer reach the destination;
// a refusal is the error of the first Read and of later Writes, and a Write-only
// client learns it from the Write that finds the stream ended.
func TestOpenForward(t *testing.T) {
	_, echoPort := stEchoServer(t)
	n := fwStart(t, ssh.ForwardConfig{Forwarding: stPolicy(t, ssh.Deny, "cidr:127.0.0.0/8", ssh.Allow)})
	conn := n.dial(t, n.alice, endpoint.NetworkQUIC)
	ctx := stCtx(t)
	echo := net.JoinHostPort("127.0.0.1", strconv.Itoa(int(echoPort)))

	t.Run("served", func(t *testing.T) {
		c, err := ssh.OpenForward(ctx, conn, echo)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		stEcho(t, c, 100_000)
	})

	t.Run("refused on read", func(t *testing.T) {
		c, err := ssh.OpenForward(ctx, conn, "192.0.2.1:80")
		if err != nil {
			t.Fatalf("OpenForward: %v, want the refusal later", err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(stFailSafe))
		if _, err := c.Write([]byte("GET / HTTP/1.0\r\n\r\n")); err != nil {
			t.Fatalf("write before the answer: %v", err)
		}
		_, err = c.Read(make([]byte, 10))
		fwRefused(t, "read", err, ssh.ReasonDenied)
		_, err = c.Write([]byte("x"))
		fwRefused(t, "write after the refusal", err, ssh.ReasonDenied)
	})

	t.Run("refused on write", func(t *testing.T) {
		c, err := ssh.OpenForward(ctx, conn, "192.0.2.1:80")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(stFailSafe))
		buf := make([]byte, 16<<10)
		for {
			if _, err = c.Write(buf); err != nil {
				break
			}
		}
		fwRefused(t, "write", err, ssh.ReasonDenied)
	})

	t.Run("bad destination", func(t *testing.T) {
		if _, err := ssh.OpenForward(ctx, conn, "no-port"); !errors.Is(err, ssh.ErrForwardHeader) {
			t.Fatalf("OpenForward without a port: %v, want ErrForwardHeader", err)
		}
	})

	// The destination's first bytes may come with the answer: none is lost.
	t.Run("answer and data together", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		greeting := make(chan error, 1)
		go func() {
			s, err := ln.Accept()
			if err == nil {
				_, err = io.WriteString(s, "220 hello\r\n")
				_ = s.Close()
			}
			greeting <- err
		}()
		c, err := ssh.OpenForward(ctx, conn, ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(stFailSafe))
		if err := stWaitErr(t, "greeting", greeting); err != nil {
			t.Fatal(err)
		}
		if got, err := io.ReadAll(c); err != nil || string(got) != "220 hello\r\n" {
			t.Fatalf("read %q, %v", got, err)
		}
	})
}

// TestForwardTunnelLocalRefused: a -L forward to a denied target opens its stream
// without waiting (OpenForward), and the refusal ends the local connection.
func TestForwardTunnelLocalRefused(t *testing.T) {
	n := fwStart(t, ssh.ForwardConfig{Forwarding: stPolicy(t, ssh.Allow, "cidr:10.0.0.0/8", ssh.Deny)})
	tun := &ssh.ForwardTunnel{
		Dial: func(ctx context.Context) (*core.Connection, error) {
			return n.ts.DialErr(ctx, ssh.ALPNForward, n.alice, endpoint.NetworkQUIC)
		},
		Local: []ssh.ForwardSpec{{BindHost: "127.0.0.1", Host: "10.0.0.1", Port: 80}},
	}
	if err := tun.Listen(); err != nil {
		t.Fatal(err)
	}
	fwConnected(t, fwRunTunnel(t, tun))
	c, err := net.Dial("tcp", tun.LocalAddrs()[0].String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(stFailSafe))
	// The local client reads the end of its connection and no byte; the fail-safe
	// deadline would make it a timeout.
	if got, err := io.ReadAll(c); len(got) != 0 {
		t.Fatalf("read %q, %v from a refused forward", got, err)
	} else if ne := net.Error(nil); errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the refused forward's local connection stayed open: %v", err)
	}
	if recs := n.logs.wait(t, "forward", 1); recs[0].Attr["outcome"] != ssh.ReasonDenied {
		t.Fatalf("line %q, want outcome %q", recs[0].Line, ssh.ReasonDenied)
	}
}
