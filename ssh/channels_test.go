package ssh_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/ssh"
)

// stCatCheck runs cat on sess (whose stdin stays open until Start has returned, so
// no reply race can occur) and checks that msg comes back.
func stCatCheck(t testing.TB, sess *gossh.Session, msg string) {
	t.Helper()
	in, err := sess.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	sess.Stdout = &out
	if err := sess.Start("cat"); err != nil {
		t.Fatalf("exec cat on the session: %v", err)
	}
	if _, err := io.WriteString(in, msg); err != nil {
		t.Fatal(err)
	}
	_ = in.Close()
	done := make(chan error, 1)
	go func() { done <- sess.Wait() }()
	if err := stWaitErr(t, "cat", done); err != nil || out.String() != msg {
		t.Fatalf("cat: %q, %v; want %q", out.String(), err, msg)
	}
}

// TestSessionRefusedRequests: shell, pty-req, x11-req, agent forwarding, env and
// unknown session requests are refused with the session and the connection still
// usable.
func TestSessionRefusedRequests(t *testing.T) {
	user := stSigner(t)
	n := stStartTCP(t, ssh.Config{Identities: stNewIdentities().add(user, "alice", ssh.ScopeExec), Exec: stEchoExec()})
	c := n.mustDial(t, user)
	sess, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()

	if err := sess.RequestPty("xterm", 24, 80, gossh.TerminalModes{}); err == nil {
		t.Error("pty-req accepted")
	}
	x11 := gossh.Marshal(struct {
		Single   bool
		Protocol string
		Cookie   string
		Screen   uint32
	}{false, "MIT-MAGIC-COOKIE-1", "00112233445566778899aabbccddeeff", 0})
	for _, req := range []struct {
		name    string
		payload []byte
	}{
		{"x11-req", x11},
		{"auth-agent-req@openssh.com", nil},
		{"env", gossh.Marshal(struct{ Name, Value string }{"LANG", "C"})},
		{"shell", nil},
		{"signal", gossh.Marshal(struct{ Signal string }{"KILL"})},
		{"st-unknown@example.com", []byte{1, 2, 3}},
		{"exec", []byte{0, 0, 0, 9, 'x'}}, // malformed exec payload
		{"subsystem", []byte{0xff}},       // malformed subsystem payload
	} {
		ok, err := sess.SendRequest(req.name, true, req.payload)
		if err != nil || ok {
			t.Fatalf("%s: ok=%v err=%v, want refused", req.name, ok, err)
		}
		if req.name == "exec" || req.name == "subsystem" {
			// A refused exec or subsystem closes the session (so that OpenSSH does
			// not wait); start a new one.
			_ = sess.Close()
			if sess, err = c.NewSession(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := sess.Setenv("LANG", "C"); err == nil {
		t.Error("env accepted")
	}
	if err := sess.Shell(); err == nil {
		t.Error("shell accepted")
	}
	// Refusals without a reply wanted must not disturb the session either.
	for _, name := range []string{"pty-req", "env", "shell", "window-change"} {
		if _, err := sess.SendRequest(name, false, nil); err != nil {
			t.Fatalf("%s without reply: %v", name, err)
		}
	}
	stCatCheck(t, sess, "same session still works")
	stMustEcho(t, c.Client)
}

// TestSessionRefusedExecClosesChannel: a refused exec is taken, its reason written to
// stderr and the channel closed with exit status 126, as OpenSSH's ForceCommand wrappers
// do, so that a client neither waits for output nor misses why.
func TestSessionRefusedExecClosesChannel(t *testing.T) {
	user := stSigner(t)
	n := stStartTCP(t, ssh.Config{Identities: stNewIdentities().add(user, "alice", ssh.ScopeExec), Exec: stEchoExec()})
	c := n.mustDial(t, user)
	ch, reqs, err := c.OpenChannel("session", nil)
	if err != nil {
		t.Fatal(err)
	}
	go gossh.DiscardRequests(reqs)
	defer ch.Close()
	ok, err := ch.SendRequest("exec", true, gossh.Marshal(struct{ Command string }{"rm -rf /"}))
	if err != nil || !ok {
		t.Fatalf("exec rm: ok=%v err=%v, want taken (and refused on stderr)", ok, err)
	}
	done := make(chan error, 1)
	go func() { _, err := io.ReadAll(ch); done <- err }()
	if err := stWaitErr(t, "read after refused exec", done); err != nil {
		t.Fatalf("read: %v", err)
	}
	// The reason reached the client's stderr.
	if errOut, err := io.ReadAll(ch.Stderr()); err != nil || string(errOut) != "exec refused: program not allowed\n" {
		t.Errorf("stderr after the refused exec: %q, %v", errOut, err)
	}
	stMustEcho(t, c.Client)
}

// TestSessionRefusalReasons: refused exec and subsystem requests tell the client why
// on stderr, without paths or system errors.
func TestSessionRefusalReasons(t *testing.T) {
	user := stSigner(t)
	ids := stNewIdentities().add(user, "alice")
	for _, tc := range []struct {
		name     string
		cfg      ssh.Config
		req      string
		payload  []byte
		wantText string
	}{
		{"no executor", ssh.Config{Identities: ids}, "exec", gossh.Marshal(struct{ Command string }{"echo hi"}), "exec refused: this server runs no commands\n"},
		{"no scope", ssh.Config{Identities: ids, Exec: stEchoExec()}, "exec", gossh.Marshal(struct{ Command string }{"echo hi"}), "exec refused: identity lacks scope ssh:exec\n"},
		{"other executor", ssh.Config{Identities: ids, Exec: failingExec{}}, "exec", gossh.Marshal(struct{ Command string }{"echo hi"}), "exec refused: command not allowed\n"},
		{"unknown subsystem", ssh.Config{Identities: ids}, "subsystem", gossh.Marshal(struct{ Name string }{"st-nope"}), "subsystem \"st-nope\" refused: not served here\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := stStartTCP(t, tc.cfg)
			c := n.mustDial(t, user)
			ch, reqs, err := c.OpenChannel("session", nil)
			if err != nil {
				t.Fatal(err)
			}
			go gossh.DiscardRequests(reqs)
			defer ch.Close()
			if ok, err := ch.SendRequest(tc.req, true, tc.payload); err != nil || !ok {
				t.Fatalf("%s: ok=%v err=%v, want taken (and refused on stderr)", tc.req, ok, err)
			}
			var got []byte
			done := make(chan error, 1)
			go func() {
				var err error
				got, err = io.ReadAll(ch.Stderr())
				done <- err
			}()
			if err := stWaitErr(t, "stderr after the refusal", done); err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.wantText {
				t.Errorf("stderr %q, want %q", got, tc.wantText)
			}
		})
	}
}

// stRefusedSubsystem requests the subsystem name on sess, which the server must take
// and then end with its refusal, and returns what the server wrote to stderr.
func stRefusedSubsystem(t *testing.T, sess *gossh.Session, name string) string {
	t.Helper()
	stderr, err := sess.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := sess.RequestSubsystem(name); err != nil {
		t.Fatalf("subsystem %s: %v, want it taken (and refused on stderr)", name, err)
	}
	var got []byte
	done := make(chan error, 1)
	go func() {
		var err error
		got, err = io.ReadAll(stderr)
		done <- err
	}()
	if err := stWaitErr(t, "stderr of a refused subsystem", done); err != nil {
		t.Fatal(err)
	}
	return string(got)
}

// failingExec refuses every command with an error of its own.
type failingExec struct{}

func (failingExec) Start(context.Context, ssh.ExecRequest) (func() uint32, error) {
	return nil, errors.New("/secret/path: no such file")
}

// TestSessionSecondExecRefused: a session runs one command; a second exec or a
// subsystem on it is refused while the first runs.
func TestSessionSecondExecRefused(t *testing.T) {
	user := stSigner(t)
	n := stStartTCP(t, ssh.Config{Identities: stNewIdentities().add(user, "alice", ssh.ScopeExec), Exec: stEchoExec(), Subsystems: stSubsystems()})
	c := n.mustDial(t, user)
	sess, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	in, _ := sess.StdinPipe()
	var out bytes.Buffer
	sess.Stdout = &out
	if err := sess.Start("cat"); err != nil {
		t.Fatal(err)
	}
	for _, r := range []struct {
		name    string
		payload []byte
	}{
		{"exec", gossh.Marshal(struct{ Command string }{"echo second"})},
		{"subsystem", gossh.Marshal(struct{ Name string }{stWhoamiName})},
	} {
		if ok, err := sess.SendRequest(r.name, true, r.payload); err != nil || ok {
			t.Fatalf("second %s: ok=%v err=%v, want refused", r.name, ok, err)
		}
	}
	_, _ = io.WriteString(in, "first")
	_ = in.Close()
	done := make(chan error, 1)
	go func() { done <- sess.Wait() }()
	if err := stWaitErr(t, "cat", done); err != nil || out.String() != "first" {
		t.Fatalf("first command: %q, %v", out.String(), err)
	}
}

// TestSessionReplyBeforeClose: the reply to exec and subsystem must reach the
// client before the channel closes, even for a command or subsystem that ends at
// once (otherwise the client sees the request fail with EOF). A regression is a
// scheduling race, which shows up reliably under -race.
func TestSessionReplyBeforeClose(t *testing.T) {
	user := stSigner(t)
	n := stStartTCP(t, ssh.Config{
		Identities: stNewIdentities().add(user, "alice", ssh.ScopeExec),
		Exec:       stInstantExec{},
		Subsystems: map[string]ssh.SubsystemHandler{"st-nop": func(context.Context, ssh.Channel, core.Identity) error { return nil }},
	})
	c := n.mustDial(t, user)
	const rounds = 3000
	execFails, subFails := 0, 0
	var firstErr error
	for range rounds {
		sess, err := c.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		if err := sess.Start("anything"); err != nil {
			execFails++
			firstErr = err
		}
		_ = sess.Close()
		if sess, err = c.NewSession(); err != nil {
			t.Fatal(err)
		}
		if err := sess.RequestSubsystem("st-nop"); err != nil {
			subFails++
			firstErr = err
		}
		_ = sess.Close()
	}
	if execFails+subFails > 0 {
		t.Fatalf("%d/%d execs and %d/%d subsystem requests failed (e.g. %v): the server closed the channel before replying",
			execFails, rounds, subFails, rounds, firstErr)
	}
}

// stInstantExec is an Executor whose commands end at once with status 0.
type stInstantExec struct{}

func (stInstantExec) Start(context.Context, ssh.ExecRequest) (func() uint32, error) {
	return func() uint32 { return 0 }, nil
}

// TestSubsystemHook: the hook gets the identity and a Channel it can read, write,
// half-close and write stderr on; its error ends the channel; its context ends when
// the client closes the channel.
func TestSubsystemHook(t *testing.T) {
	user := stSigner(t)
	type call struct {
		id    core.Identity
		input string
	}
	calls := make(chan call, 1)
	ctxDone := make(chan struct{})
	n := stStartTCP(t, ssh.Config{
		Identities: stNewIdentities().add(user, "alice", "s1"),
		Subsystems: map[string]ssh.SubsystemHandler{
			"st-halfclose": func(ctx context.Context, ch ssh.Channel, id core.Identity) error {
				if _, err := io.WriteString(ch, "hello"); err != nil {
					return err
				}
				if _, err := io.WriteString(ch.Stderr(), "to stderr"); err != nil {
					return err
				}
				if err := ch.CloseWrite(); err != nil {
					return err
				}
				b, err := io.ReadAll(ch) // the client sends only after reading our EOF
				calls <- call{id, string(b)}
				return err
			},
			"st-fail": func(context.Context, ssh.Channel, core.Identity) error {
				return errors.New("st-fail failed")
			},
			"st-block": func(ctx context.Context, ch ssh.Channel, _ core.Identity) error {
				<-ctx.Done()
				close(ctxDone)
				return ctx.Err()
			},
		},
	})
	c := n.mustDial(t, user)

	sess, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	in, _ := sess.StdinPipe()
	out, _ := sess.StdoutPipe()
	errp, _ := sess.StderrPipe()
	if err := sess.RequestSubsystem("st-halfclose"); err != nil {
		t.Fatal(err)
	}
	stderr := make(chan []byte, 1)
	go func() { b, _ := io.ReadAll(errp); stderr <- b }()
	got, err := io.ReadAll(out)
	if err != nil || string(got) != "hello" {
		t.Fatalf("stdout %q, %v", got, err)
	}
	if _, err := io.WriteString(in, "after the server's EOF"); err != nil {
		t.Fatal(err)
	}
	_ = in.Close()
	select {
	case cl := <-calls:
		if cl.id.ID != "alice" || len(cl.id.Scopes) != 1 || cl.id.Scopes[0] != "s1" {
			t.Errorf("hook identity %+v", cl.id)
		}
		if cl.input != "after the server's EOF" {
			t.Errorf("hook read %q", cl.input)
		}
	case <-time.After(stFailSafe):
		t.Fatal("hook did not finish")
	}
	if b := <-stderr; string(b) != "to stderr" {
		t.Errorf("stderr %q", b)
	}
	done := make(chan error, 1)
	go func() { done <- sess.Wait() }()
	stWaitErr(t, "session end", done)
	_ = sess.Close()

	// A failing hook ends the channel; the connection stays.
	sess, _ = c.NewSession()
	out, _ = sess.StdoutPipe()
	if err := sess.RequestSubsystem("st-fail"); err != nil && !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
	rd := make(chan error, 1)
	go func() { _, err := io.ReadAll(out); rd <- err }()
	if err := stWaitErr(t, "read from failed subsystem", rd); err != nil {
		t.Fatal(err)
	}
	_ = sess.Close()
	n.Logs.wait(t, "subsystem ended", 1)

	// Closing the channel cancels the hook's context.
	sess, _ = c.NewSession()
	if err := sess.RequestSubsystem("st-block"); err != nil {
		t.Fatal(err)
	}
	_ = sess.Close()
	select {
	case <-ctxDone:
	case <-time.After(stFailSafe):
		t.Fatal("hook context not cancelled after the client closed the channel")
	}

	// An unknown subsystem is refused (exit status 1, the reason on stderr), and the
	// connection stays usable.
	sess, _ = c.NewSession()
	if got := stRefusedSubsystem(t, sess, "sftp"); got != "subsystem \"sftp\" refused: not served here\n" {
		t.Fatalf("unknown subsystem: stderr %q, want the reason", got)
	}
	_ = sess.Close()
	stMustHaveSession(t, c.Client)
}

// TestUnknownChannelTypes: channel types other than session and direct-tcpip are
// rejected with UnknownChannelType.
func TestUnknownChannelTypes(t *testing.T) {
	user := stSigner(t)
	n := stStartTCP(t, ssh.Config{Identities: stNewIdentities().add(user, "alice", ssh.ScopeExec), Exec: stEchoExec()})
	c := n.mustDial(t, user)
	for _, typ := range []string{"st-unknown", "x11", "forwarded-tcpip", "direct-streamlocal@openssh.com", "auth-agent@openssh.com"} {
		_, _, err := c.OpenChannel(typ, []byte("payload"))
		var oce *gossh.OpenChannelError
		if !errors.As(err, &oce) || oce.Reason != gossh.UnknownChannelType {
			t.Errorf("%s: %v, want UnknownChannelType", typ, err)
		}
	}
	for _, typ := range []string{"tcpip-forward", "streamlocal-forward@openssh.com", "st-unknown@example.com", "keepalive@openssh.com"} {
		ok, _, err := c.SendRequest(typ, true, nil)
		if err != nil || ok {
			t.Errorf("global %s: ok=%v err=%v, want refused", typ, ok, err)
		}
	}
	stMustEcho(t, c.Client)
}

// stOpenErr asserts err is an OpenChannelError with reason (and message, when not
// empty).
func stOpenErr(t testing.TB, what string, err error, reason gossh.RejectionReason, msg string) {
	t.Helper()
	var oce *gossh.OpenChannelError
	if !errors.As(err, &oce) {
		t.Fatalf("%s: %v (%T), want *gossh.OpenChannelError", what, err, err)
	}
	if oce.Reason != reason || (msg != "" && oce.Message != msg) {
		t.Fatalf("%s: reason %v message %q, want %v %q", what, oce.Reason, oce.Message, reason, msg)
	}
}

// TestDirectTCPIP covers direct-tcpip under the forwarding policy.
func TestDirectTCPIP(t *testing.T) {
	user := stSigner(t)
	echoAddr, echoPort := stEchoServer(t)
	var dialed sync.Map
	n := stStartTCP(t, ssh.Config{
		Identities: stNewIdentities().add(user, "alice", ssh.ScopeExec),
		Exec:       stEchoExec(),
		Resolver: stResolver{
			"echo-host.test":    {stMustAddr("127.0.0.1")},
			"denied.test":       {stMustAddr("127.0.0.1")},
			"private-host.test": {stMustAddr("10.1.2.3")},
			"mixed-host.test":   {stMustAddr("127.0.0.1"), stMustAddr("10.1.2.3")},
		},
		Dialer: stDialerFunc(func(ctx context.Context, network, addr string) (net.Conn, error) {
			dialed.Store(addr, true)
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		}),
		Forwarding: stPolicy(t, ssh.Allow, "cidr:10.0.0.0/8", ssh.Deny, "ports:denied.test:1-65535", ssh.Deny),
	})
	c := n.mustDial(t, user)
	ctx := stCtx(t)

	t.Run("allowed via Open, 1 MiB", func(t *testing.T) {
		conn, err := c.Open(ctx, "127.0.0.1", echoPort)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		stEcho(t, conn, 1<<20)
	})
	t.Run("allowed via Dial, 1 MiB", func(t *testing.T) {
		conn, err := c.Dial("tcp", echoAddr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		stEcho(t, conn, 1<<20)
	})
	t.Run("hostname dialled by its vetted address", func(t *testing.T) {
		dialed.Clear()
		conn, err := c.Open(ctx, "echo-host.test", echoPort)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		stEcho(t, conn, 1000)
		want := netip.AddrPortFrom(stMustAddr("127.0.0.1"), echoPort).String()
		if _, ok := dialed.Load(want); !ok {
			var got []any
			dialed.Range(func(k, _ any) bool { got = append(got, k); return true })
			t.Fatalf("dialled %v, want %s (the resolved address, not the name)", got, want)
		}
	})
	t.Run("concurrent channels", func(t *testing.T) {
		var wg sync.WaitGroup
		var failed atomic.Bool
		for range 8 {
			wg.Go(func() {
				conn, err := c.Open(ctx, "127.0.0.1", echoPort)
				if err != nil {
					failed.Store(true)
					return
				}
				defer conn.Close()
				stEcho(t, conn, 64<<10)
			})
		}
		wg.Wait()
		if failed.Load() {
			t.Fatal("a concurrent channel failed to open")
		}
	})

	_, err := c.Open(ctx, "denied.test", 443)
	stOpenErr(t, "denied", err, gossh.Prohibited, "forwarding denied by policy")
	_, err = c.Open(ctx, "10.1.2.3", 22)
	stOpenErr(t, "denied CIDR literal", err, gossh.Prohibited, "forwarding denied by policy")
	_, err = c.Open(ctx, "private-host.test", 22)
	stOpenErr(t, "hostname resolving into a denied CIDR", err, gossh.Prohibited, "forwarding denied by policy")
	_, err = c.Open(ctx, "mixed-host.test", echoPort)
	stOpenErr(t, "hostname with one denied address", err, gossh.Prohibited, "forwarding denied by policy")
	_, err = c.Open(ctx, "alknet-control", 0)
	stOpenErr(t, "reserved under allow-by-default", err, gossh.Prohibited, "")
	_, err = c.Open(ctx, "ALKNET-Control.", 0)
	stOpenErr(t, "reserved, other spelling", err, gossh.Prohibited, "")
	_, err = c.Open(ctx, "127.0.0.1", stClosedPort(t))
	stOpenErr(t, "unreachable", err, gossh.ConnectionFailed, "")
	_, err = c.Open(ctx, "nowhere.test", 80)
	stOpenErr(t, "unresolvable", err, gossh.ConnectionFailed, "")
	_, err = c.Open(ctx, "bad host", 80)
	stOpenErr(t, "invalid host", err, gossh.ConnectionFailed, "")

	_, _, err = c.OpenChannel("direct-tcpip", []byte{1, 2, 3})
	stOpenErr(t, "malformed payload", err, gossh.ConnectionFailed, "")
	_, _, err = c.OpenChannel("direct-tcpip", nil)
	stOpenErr(t, "empty payload", err, gossh.ConnectionFailed, "")
	_, _, err = c.OpenChannel("direct-tcpip", gossh.Marshal(struct {
		Host       string
		Port       uint32
		OriginAddr string
		OriginPort uint32
	}{"127.0.0.1", 70000, "127.0.0.1", 1}))
	stOpenErr(t, "port above 65535", err, gossh.ConnectionFailed, "")

	stMustEcho(t, c.Client) // the session survived every refusal
	conn, err := c.Open(ctx, "127.0.0.1", echoPort)
	if err != nil {
		t.Fatal(err)
	}
	stEcho(t, conn, 10)
	_ = conn.Close()
}

// stDialerFunc adapts a function to ssh.Dialer.
type stDialerFunc func(ctx context.Context, network, addr string) (net.Conn, error)

func (f stDialerFunc) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	return f(ctx, network, addr)
}

// stCountingResolver is a fake ssh.Resolver over a fixed map (every other name: no
// such host) that counts its lookups.
type stCountingResolver struct {
	addrs map[string][]netip.Addr
	calls atomic.Int32
}

func (r *stCountingResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	r.calls.Add(1)
	a, ok := r.addrs[host]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return a, nil
}

// TestDirectTCPIPDeniedNameNotResolved: over a plain x/crypto/ssh client, a name no
// rule allows (here one that does not resolve) is refused exactly like an address
// no rule allows: same reason, same message, same log line, and no lookup. A name
// a host rule allows is looked up only to be dialled.
func TestDirectTCPIPDeniedNameNotResolved(t *testing.T) {
	user := stSigner(t)
	_, echoPort := stEchoServer(t)
	resolver := &stCountingResolver{addrs: map[string][]netip.Addr{"echo-host.test": {stMustAddr("127.0.0.1")}}}
	n := stStartTCP(t, ssh.Config{
		Identities: stNewIdentities().add(user, "alice"),
		Resolver:   resolver,
		Forwarding: stPolicy(t, ssh.Deny,
			"cidr:10.0.0.0/8", ssh.Deny,
			"ports:*.test:"+strconv.Itoa(int(echoPort)), ssh.Allow),
	})
	c, err := stRawDial(t, n, &gossh.ClientConfig{User: "alice", Auth: []gossh.AuthMethod{gossh.PublicKeys(user)}})
	if err != nil {
		t.Fatalf("login: %v", err)
	}

	_, nameErr := c.Dial("tcp", "secret-db.internal:5432")
	_, addrErr := c.Dial("tcp", "192.0.2.7:5432")
	var byName, byAddr *gossh.OpenChannelError
	if !errors.As(nameErr, &byName) || !errors.As(addrErr, &byAddr) {
		t.Fatalf("name: %v; address: %v; want two *gossh.OpenChannelError", nameErr, addrErr)
	}
	if *byName != *byAddr {
		t.Fatalf("name refused with %v %q, address with %v %q", byName.Reason, byName.Message, byAddr.Reason, byAddr.Message)
	}
	stOpenErr(t, "denied name", nameErr, gossh.Prohibited, "forwarding denied by policy")
	lines := n.Logs.wait(t, "forwarding denied", 2)
	if len(lines) != 2 || lines[0].Line != lines[1].Line {
		t.Fatalf("log lines differ:\n%s", n.Logs.String())
	}
	if calls := resolver.calls.Load(); calls != 0 {
		t.Fatalf("%d lookups for refused destinations, want none", calls)
	}

	// Allowed by its name alone: looked up once, to be dialled.
	conn, err := c.Dial("tcp", net.JoinHostPort("echo-host.test", strconv.Itoa(int(echoPort))))
	if err != nil {
		t.Fatalf("allowed name: %v", err)
	}
	stEcho(t, conn, 100)
	_ = conn.Close()
	if calls := resolver.calls.Load(); calls != 1 {
		t.Fatalf("%d lookups for an allowed name, want 1", calls)
	}
	// Allowed by its name but not resolvable: only then is resolution failure told.
	_, err = c.Dial("tcp", "missing.test:"+strconv.Itoa(int(echoPort)))
	stOpenErr(t, "allowed but unresolvable", err, gossh.ConnectionFailed, "name resolution failed")
}

// stResolverFunc adapts a function to ssh.Resolver.
type stResolverFunc func(ctx context.Context, network, host string) ([]netip.Addr, error)

func (f stResolverFunc) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	return f(ctx, network, host)
}

// TestDirectTCPIPUnresolvableNameLikeDeniedAddress: over a plain x/crypto/ssh
// client, under a policy whose cidr rule could allow a name (so the server looks
// it up), a name that does not resolve, or whose lookup fails with a server
// failure, is refused exactly like an address the policy refuses: same reason,
// same message, same log line. A name resolving into the cidr is allowed.
func TestDirectTCPIPUnresolvableNameLikeDeniedAddress(t *testing.T) {
	user := stSigner(t)
	_, echoPort := stEchoServer(t)
	var lookups atomic.Int32
	resolver := stResolverFunc(func(_ context.Context, _, host string) ([]netip.Addr, error) {
		lookups.Add(1)
		switch host {
		case "echo-host.test":
			return []netip.Addr{stMustAddr("127.0.0.1")}, nil
		case "servfail.internal":
			return nil, &net.DNSError{Err: "server misbehaving", Name: host, IsTemporary: true}
		}
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	})
	n := stStartTCP(t, ssh.Config{
		Identities: stNewIdentities().add(user, "alice"),
		Resolver:   resolver,
		Forwarding: stPolicy(t, ssh.Deny, "cidr:127.0.0.0/8", ssh.Allow),
	})
	c, err := stRawDial(t, n, &gossh.ClientConfig{User: "alice", Auth: []gossh.AuthMethod{gossh.PublicKeys(user)}})
	if err != nil {
		t.Fatalf("login: %v", err)
	}

	_, addrErr := c.Dial("tcp", "192.0.2.7:5432")
	var byAddr *gossh.OpenChannelError
	if !errors.As(addrErr, &byAddr) {
		t.Fatalf("address: %v, want *gossh.OpenChannelError", addrErr)
	}
	stOpenErr(t, "denied address", addrErr, gossh.Prohibited, "forwarding denied by policy")
	names := []string{"secret-db.internal", "servfail.internal"}
	for _, name := range names {
		_, nameErr := c.Dial("tcp", net.JoinHostPort(name, "5432"))
		var byName *gossh.OpenChannelError
		if !errors.As(nameErr, &byName) {
			t.Fatalf("%s: %v, want *gossh.OpenChannelError", name, nameErr)
		}
		if *byName != *byAddr {
			t.Fatalf("%s refused with %v %q, address with %v %q", name, byName.Reason, byName.Message, byAddr.Reason, byAddr.Message)
		}
	}
	lines := n.Logs.wait(t, "forwarding denied", 1+len(names))
	for _, l := range lines[1:] {
		if l.Line != lines[0].Line {
			t.Fatalf("log lines differ:\n%s", n.Logs.String())
		}
	}
	if got := lookups.Load(); got != int32(len(names)) {
		t.Fatalf("%d lookups, want %d: the policy must look the names up", got, len(names))
	}

	// The cidr rule allows a name resolving into it.
	conn, err := c.Dial("tcp", net.JoinHostPort("echo-host.test", strconv.Itoa(int(echoPort))))
	if err != nil {
		t.Fatalf("name resolving into the cidr: %v", err)
	}
	stEcho(t, conn, 100)
	_ = conn.Close()
}

// TestDirectTCPIPDialTimeout: the Dialer's timeout bounds the dial of a
// direct-tcpip channel. Here a net.Dialer with a short Timeout meets a
// destination that never answers (its control hook blocks until the dial's
// context ends, as a blackholed connect would): the dial's context carries the
// Timeout as its deadline and ends by it, and the channel is refused with
// ConnectionFailed while the connection stays up.
func TestDirectTCPIPDialTimeout(t *testing.T) {
	user := stSigner(t)
	_, echoPort := stEchoServer(t)
	blackhole := netip.AddrPortFrom(stMustAddr("127.0.0.1"), stClosedPort(t)).String()
	const timeout = 50 * time.Millisecond
	type hookResult struct {
		entered, deadline time.Time
		hasDeadline       bool
		err               error
	}
	hooked := make(chan hookResult, 1)
	dialer := &net.Dialer{
		Timeout: timeout,
		ControlContext: func(ctx context.Context, _, address string, _ syscall.RawConn) error {
			if address != blackhole {
				return nil
			}
			res := hookResult{entered: time.Now()}
			res.deadline, res.hasDeadline = ctx.Deadline()
			select {
			case <-ctx.Done():
				res.err = ctx.Err()
			case <-time.After(stFailSafe): // fail-safe: the Timeout was ignored
				res.err = errors.New("dial not ended by its timeout")
			}
			hooked <- res
			return res.err
		},
	}
	n := stStartTCP(t, ssh.Config{
		Identities: stNewIdentities().add(user, "alice"),
		Dialer:     dialer,
		Forwarding: stPolicy(t, ssh.Allow),
	})
	c := n.mustDial(t, user)
	ctx := stCtx(t)

	before := time.Now()
	_, err := c.Open(ctx, "127.0.0.1", netip.MustParseAddrPort(blackhole).Port())
	stOpenErr(t, "blackholed destination", err, gossh.ConnectionFailed, "connect failed")
	var res hookResult
	select {
	case res = <-hooked:
	default:
		t.Fatal("the channel was refused without dialling the destination")
	}
	if !errors.Is(res.err, context.DeadlineExceeded) {
		t.Fatalf("the dial ended with %v, want its deadline", res.err)
	}
	// The deadline is the Timeout from the start of the dial: no earlier than
	// Timeout after the open was sent, no later than Timeout after the dial began.
	if !res.hasDeadline || res.deadline.Before(before.Add(timeout)) || res.deadline.After(res.entered.Add(timeout)) {
		t.Fatalf("dial deadline %v (set %v), want the Timeout from the start of the dial", res.deadline, res.hasDeadline)
	}

	// The connection survived, and the dialer still reaches other destinations.
	conn, err := c.Open(ctx, "127.0.0.1", echoPort)
	if err != nil {
		t.Fatalf("after the timeout: %v", err)
	}
	stEcho(t, conn, 100)
	_ = conn.Close()
}

// TestDirectTCPIPZeroPolicyDeniesAll: the zero ForwardingPolicy denies everything.
func TestDirectTCPIPZeroPolicyDeniesAll(t *testing.T) {
	user := stSigner(t)
	_, echoPort := stEchoServer(t)
	n := stStartTCP(t, ssh.Config{Identities: stNewIdentities().add(user, "alice")})
	c := n.mustDial(t, user)
	_, err := c.Open(stCtx(t), "127.0.0.1", echoPort)
	stOpenErr(t, "zero policy", err, gossh.Prohibited, "forwarding denied by policy")
}

// TestDirectTCPIPRulesSeeIdentityAndTransport: rules match the session's identity
// (by ID and by scope) and the transport it arrived on.
func TestDirectTCPIPRulesSeeIdentityAndTransport(t *testing.T) {
	for _, st := range stStarters {
		t.Run(st.name, func(t *testing.T) {
			alice, bob := stSigner(t), stSigner(t)
			_, echoPort := stEchoServer(t)
			anyT, _ := ssh.ParseTarget("any")
			n := st.start(t, ssh.Config{
				Identities: stNewIdentities().add(alice, "alice").add(bob, "bob", "fwd"),
				Forwarding: ssh.ForwardingPolicy{Default: ssh.Deny, Rules: []ssh.Rule{
					{Target: anyT, Action: ssh.Allow, Principals: []string{"alice"}, Transports: []string{st.name}},
					{Target: anyT, Action: ssh.Allow, Principals: []string{"fwd"}, Transports: []string{"other"}},
				}},
			})
			ctx := stCtx(t)
			ca := n.mustDial(t, alice)
			conn, err := ca.Open(ctx, "127.0.0.1", echoPort)
			if err != nil {
				t.Fatalf("alice over %s: %v", st.name, err)
			}
			stEcho(t, conn, 100)
			_ = conn.Close()
			cb := n.mustDial(t, bob)
			_, err = cb.Open(ctx, "127.0.0.1", echoPort)
			stOpenErr(t, "bob (scope rule for another transport)", err, gossh.Prohibited, "forwarding denied by policy")
		})
	}
}

// stForwardReq is the payload of tcpip-forward and cancel-tcpip-forward.
type stForwardReq struct {
	Addr string
	Port uint32
}

// TestRemoteForward covers tcpip-forward: scope, loopback only, port 0, cancel.
func TestRemoteForward(t *testing.T) {
	fwd, plain := stSigner(t), stSigner(t)
	n := stStartTCP(t, ssh.Config{Identities: stNewIdentities().add(fwd, "alice", ssh.ScopeRemoteForward).add(plain, "bob")})

	t.Run("without scope", func(t *testing.T) {
		c := n.mustDial(t, plain)
		if ln, err := c.Listen("tcp", "127.0.0.1:0"); err == nil {
			_ = ln.Close()
			t.Fatal("remote forward granted without ssh:remote-forward")
		}
	})
	t.Run("non-loopback binds", func(t *testing.T) {
		c := n.mustDial(t, fwd)
		for _, addr := range []string{"0.0.0.0", "", "192.0.2.1", "::", "example.com", "localhost.evil.test"} {
			ok, _, err := c.SendRequest("tcpip-forward", true, gossh.Marshal(stForwardReq{addr, 0}))
			if err != nil || ok {
				t.Errorf("bind %q: ok=%v err=%v, want refused", addr, ok, err)
			}
		}
		if ok, _, _ := c.SendRequest("tcpip-forward", true, []byte{1}); ok {
			t.Error("malformed tcpip-forward accepted")
		}
		if ok, _, _ := c.SendRequest("tcpip-forward", true, gossh.Marshal(stForwardReq{"127.0.0.1", 70000})); ok {
			t.Error("tcpip-forward to port 70000 accepted")
		}
	})
	t.Run("localhost", func(t *testing.T) {
		c := n.mustDial(t, fwd)
		ok, reply, err := c.SendRequest("tcpip-forward", true, gossh.Marshal(stForwardReq{"localhost", 0}))
		if err != nil || !ok {
			t.Fatalf("bind localhost: ok=%v err=%v", ok, err)
		}
		var p struct{ Port uint32 }
		if err := gossh.Unmarshal(reply, &p); err != nil || p.Port == 0 {
			t.Fatalf("reply %x: %v", reply, err)
		}
	})
	t.Run("port 0 round trip", func(t *testing.T) {
		c := n.mustDial(t, fwd)
		ln, err := c.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		addr := ln.Addr().(*net.TCPAddr)
		if addr.Port == 0 || !addr.IP.IsLoopback() {
			t.Fatalf("listener address %v", addr)
		}
		stForwardEcho(t, ln, addr.String())
	})
	t.Run("explicit port, cancel", func(t *testing.T) {
		c := n.mustDial(t, fwd)
		port := stClosedPort(t)
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(int(port)))
		ln, err := c.Listen("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		stForwardEcho(t, ln, addr)
		if err := ln.Close(); err != nil {
			t.Fatalf("cancel: %v", err)
		}
		stMustRefuse(t, addr)
		// The same port can be forwarded again.
		ln, err = c.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("forward again after cancel: %v", err)
		}
		_ = ln.Close()
		if ok, _, _ := c.SendRequest("cancel-tcpip-forward", true, gossh.Marshal(stForwardReq{"127.0.0.1", uint32(port)})); ok {
			t.Error("cancel of a forward that does not exist accepted")
		}
	})
	t.Run("port 0 cancel", func(t *testing.T) {
		// The client cancels a port-0 forward by the port the server allocated
		// (that is what gossh's Listener.Close and OpenSSH send).
		c := n.mustDial(t, fwd)
		ln, err := c.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		if err := ln.Close(); err != nil {
			t.Errorf("cancel of a port-0 forward: %v (the server must key remote forwards by the bound port)", err)
		}
		stMustRefuse(t, addr)
	})
	t.Run("two port-0 forwards", func(t *testing.T) {
		c := n.mustDial(t, fwd)
		ln1, err := c.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln1.Close()
		ln2, err := c.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("second port-0 forward on one connection: %v (the server must key remote forwards by the bound port)", err)
		}
		defer ln2.Close()
		stForwardEcho(t, ln2, ln2.Addr().String())
	})
	t.Run("listeners closed with the connection", func(t *testing.T) {
		c := n.mustDial(t, fwd)
		port := stClosedPort(t)
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(int(port)))
		if _, err := c.Listen("tcp", addr); err != nil {
			t.Fatal(err)
		}
		_ = c.Close()
		n.Logs.waitAddr(t, "connection closed", c.LocalAddr().String())
		stMustRefuse(t, addr)
	})
}

// stForwardEcho connects to addr (a remote-forward listener on the node) and checks
// that the connection arrives on ln and carries bytes both ways.
func stForwardEcho(t testing.TB, ln net.Listener, addr string) {
	t.Helper()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	outside, err := net.DialTimeout("tcp", addr, stFailSafe)
	if err != nil {
		t.Fatalf("connect to the forwarded port: %v", err)
	}
	defer outside.Close()
	var inside net.Conn
	select {
	case inside = <-accepted:
	case <-time.After(stFailSafe):
		t.Fatal("forwarded connection never reached the client")
	}
	if inside == nil {
		t.Fatal("accept failed")
	}
	defer inside.Close()
	go func() {
		_, _ = io.Copy(inside, inside)
		_ = inside.(interface{ CloseWrite() error }).CloseWrite()
	}()
	stEcho(t, outside, 256<<10)
}

// stMustRefuse checks that nothing accepts connections on addr.
func stMustRefuse(t testing.TB, addr string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, stFailSafe)
	if err == nil {
		_ = c.Close()
		t.Fatalf("%s still accepts connections", addr)
	}
}

// TestRemoteForwardLimit: MaxRemoteForwards bounds a connection's listeners, and a
// cancelled one frees its slot.
func TestRemoteForwardLimit(t *testing.T) {
	fwd := stSigner(t)
	n := stStartTCP(t, ssh.Config{Identities: stNewIdentities().add(fwd, "alice", ssh.ScopeRemoteForward), MaxRemoteForwards: 2})
	c := n.mustDial(t, fwd)
	listen := func() (net.Listener, error) {
		return c.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(int(stClosedPort(t)))))
	}
	ln1, err := listen()
	if err != nil {
		t.Fatal(err)
	}
	ln2, err := listen()
	if err != nil {
		t.Fatal(err)
	}
	defer ln2.Close()
	if ln3, err := listen(); err == nil {
		_ = ln3.Close()
		t.Fatal("third remote forward granted with MaxRemoteForwards 2")
	}
	if err := ln1.Close(); err != nil {
		t.Fatal(err)
	}
	ln4, err := listen()
	if err != nil {
		t.Fatalf("forward after a cancel freed a slot: %v", err)
	}
	defer ln4.Close()

	// Another connection has its own budget.
	c2 := n.mustDial(t, fwd)
	ln5, err := c2.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(int(stClosedPort(t)))))
	if err != nil {
		t.Fatalf("second connection: %v", err)
	}
	_ = ln5.Close()
}

// TestRemoteForwardDuplicate: the same address cannot be forwarded twice at once.
func TestRemoteForwardDuplicate(t *testing.T) {
	fwd := stSigner(t)
	n := stStartTCP(t, ssh.Config{Identities: stNewIdentities().add(fwd, "alice", ssh.ScopeRemoteForward)})
	c := n.mustDial(t, fwd)
	port := uint32(stClosedPort(t))
	if ok, _, err := c.SendRequest("tcpip-forward", true, gossh.Marshal(stForwardReq{"127.0.0.1", port})); err != nil || !ok {
		t.Fatalf("first: ok=%v err=%v", ok, err)
	}
	if ok, _, _ := c.SendRequest("tcpip-forward", true, gossh.Marshal(stForwardReq{"127.0.0.1", port})); ok {
		t.Fatal("second forward of the same address accepted")
	}
	if ok, _, _ := c.SendRequest("cancel-tcpip-forward", true, gossh.Marshal(stForwardReq{"127.0.0.1", port})); !ok {
		t.Fatal("cancel refused")
	}
}

// TestQuietForwardEndsWithTheConnection: a forwarded connection whose destination
// takes the EOF but never closes does not outlive its SSH connection: the server
// stops (Serve returns) while the destination still holds its end open.
func TestQuietForwardEndsWithTheConnection(t *testing.T) {
	quiet, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer quiet.Close()
	release := make(chan struct{})
	defer close(release)
	go func() {
		c, err := quiet.Accept()
		if err != nil {
			return
		}
		_, _ = io.Copy(io.Discard, c)
		<-release // keeps its end open until the test ends
		_ = c.Close()
	}()
	user := stSigner(t)
	n := stStartTCP(t, ssh.Config{
		Identities: stNewIdentities().add(user, "alice"),
		Forwarding: ssh.ForwardingPolicy{Default: ssh.Allow},
	})
	c, err := n.dial(t, ssh.ClientConfig{Signer: user})
	if err != nil {
		t.Fatal(err)
	}
	port := uint16(quiet.Addr().(*net.TCPAddr).Port)
	ch, err := c.Open(stCtx(t), "127.0.0.1", port)
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	_ = c.Close()
	if err := n.stopFn(); err != nil {
		t.Fatalf("server held by a quiet forwarded connection: %v", err)
	}
}
