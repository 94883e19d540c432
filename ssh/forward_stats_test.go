package ssh_test

import (
	"io"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/alknet/alknet/core/endpoint"
	"github.com/alknet/alknet/ssh"
)

// TestForwarderStats: every outcome of a stream lands in its counter, bytes are
// counted each way, and Active goes back to zero once the forwards end. Each check
// waits for the forward's log line, which is written after its counters.
func TestForwarderStats(t *testing.T) {
	_, echoPort := stEchoServer(t)
	closed := stClosedPort(t)
	policy := stPolicy(t, ssh.Deny, "cidr:127.0.0.0/8", ssh.Allow)
	policy.Rules[0].Principals = []string{"alice", "carol"}
	n := fwStart(t, ssh.ForwardConfig{Forwarding: policy})
	if got := n.fwd.Stats(); got != (ssh.ForwardStats{}) {
		t.Fatalf("stats before any stream: %+v", got)
	}
	alice := n.dial(t, n.alice, endpoint.NetworkQUIC)
	lines := 0
	next := func() {
		t.Helper()
		lines++
		n.logs.wait(t, "forward", lines)
	}

	// Served: 1000 bytes each way.
	c, err := fwOpen(t, alice, "127.0.0.1", echoPort)
	if err != nil {
		t.Fatal(err)
	}
	if got := n.fwd.Stats(); got.Opened != 1 || got.Active != 1 {
		t.Errorf("while open: %+v, want 1 opened and active", got)
	}
	stEcho(t, c, 1000)
	_ = c.Close()
	next()
	want := ssh.ForwardStats{Opened: 1, BytesUp: 1000, BytesDown: 1000}
	if got := n.fwd.Stats(); got != want {
		t.Fatalf("after one echo: %+v, want %+v", got, want)
	}

	// Refused by policy (bob has no rule), a failed dial, a malformed header.
	bob := n.dial(t, n.bob, endpoint.NetworkQUIC)
	_, err = fwOpen(t, bob, "127.0.0.1", echoPort)
	fwRefused(t, "bob", err, ssh.ReasonDenied)
	next()
	_, err = fwOpen(t, alice, "127.0.0.1", closed)
	fwRefused(t, "closed port", err, ssh.ReasonConnectFailed)
	next()
	if got := fwRaw(t, alice, "tcp nope\n"); got != "error "+ssh.ReasonMalformedHeader+"\n" {
		t.Fatalf("malformed header: %q", got)
	}
	next()
	want.Refused, want.DialFailed, want.Rejected = 1, 1, 1
	if got := n.fwd.Stats(); got != want {
		t.Fatalf("after the refusals: %+v, want %+v", got, want)
	}

	// Remote forwards: alice lacks the scope; carol listens and gets one connection
	// whose 2 bytes go to the client (down) and 3 back (up).
	_, _, err = ssh.ListenForward(stCtx(t), alice, "127.0.0.1", 0)
	fwRefused(t, "alice listen", err, ssh.ReasonRemoteDenied)
	next()
	carol := n.dial(t, n.carol, endpoint.NetworkQUIC)
	ctl, port, err := ssh.ListenForward(stCtx(t), carol, "127.0.0.1", 0)
	if err != nil {
		t.Fatal(err)
	}
	tc, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(int(port))))
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	_ = tc.SetDeadline(time.Now().Add(stFailSafe))
	st, err := carol.AcceptBi(stCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ssh.AcceptForwarded(st); err != nil {
		t.Fatal(err)
	}
	if _, err := tc.Write([]byte("hi")); err != nil {
		t.Fatal(err)
	}
	_ = tc.(*net.TCPConn).CloseWrite()
	if got, err := io.ReadAll(st); err != nil || string(got) != "hi" {
		t.Fatalf("client side of the remote forward: %q, %v", got, err)
	}
	if _, err := io.WriteString(st, "abc"); err != nil {
		t.Fatal(err)
	}
	_ = st.CloseWrite()
	if got, err := io.ReadAll(tc); err != nil || string(got) != "abc" {
		t.Fatalf("TCP side of the remote forward: %q, %v", got, err)
	}
	next() // the remote connection's line
	_ = ctl.Close()
	next() // the listen's line
	want.RemoteForward = ssh.Outcomes{Accepted: 1, Refused: 1}
	want.RemoteConnections = 1
	want.BytesUp += 3
	want.BytesDown += 2
	if got := n.fwd.Stats(); got != want {
		t.Fatalf("after the remote forward: %+v, want %+v", got, want)
	}
}
