package endpoint_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"go.uber.org/goleak"

	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/core/coretest"
	"github.com/alknet/alknet/core/endpoint"
	"github.com/alknet/alknet/core/tlsconf"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testTimeout bounds every wait in these tests; it is a safety net, never a measurement.
const testTimeout = 20 * time.Second

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

var networks = []endpoint.Network{endpoint.NetworkQUIC, endpoint.NetworkTCP}

// seen is what a recording handler observed.
type seen struct {
	name string
	auth core.AuthContext
}

// recorder answers every connection's first stream with its name and reports what it saw.
func recorder(name string, out chan<- seen) core.Handler {
	return core.HandlerFunc(func(ctx context.Context, conn *core.Connection, auth core.AuthContext) error {
		out <- seen{name: name, auth: auth}
		s, err := conn.AcceptBi(ctx)
		if err != nil {
			return err
		}
		if _, err := io.Copy(io.Discard, s); err != nil {
			return err
		}
		if _, err := io.WriteString(s, name); err != nil {
			return err
		}
		return s.CloseWrite() // the endpoint lingers until the client has read and closed
	})
}

func newRegistry(t *testing.T, handlers map[string]core.Handler) *core.Registry {
	t.Helper()
	reg := core.NewRegistry()
	for alpn, h := range handlers {
		if err := reg.RegisterAs(alpn, h); err != nil {
			t.Fatal(err)
		}
	}
	return reg
}

func TestTwoHandlersRouteByALPN(t *testing.T) {
	out := make(chan seen, 8)
	reg := newRegistry(t, map[string]core.Handler{
		"alknet/call": recorder("call", out),
		"alknet/ssh":  recorder("ssh", out),
	})
	alice := coretest.NewIdentity(t)
	cfg := core.DynamicConfig{Auth: core.AuthPolicy{Peers: []core.PeerEntry{alice.Peer("alice", "admin")}}}
	srv := coretest.NewServer(t, reg, coretest.WithConfig(cfg))
	stranger := coretest.NewIdentity(t)

	for _, n := range networks {
		for _, tc := range []struct {
			alpn, want string
			client     *coretest.Identity
			wantID     string
		}{
			{"alknet/call", "call", alice, "alice"},
			{"alknet/ssh", "ssh", alice, "alice"},
			{"alknet/call", "call", stranger, ""},
			{"alknet/ssh", "ssh", nil, ""},
		} {
			t.Run(fmt.Sprintf("%s/%s", n, tc.alpn), func(t *testing.T) {
				ctx := testCtx(t)
				conn := srv.Dial(t, tc.alpn, tc.client, n)
				got, err := coretest.RoundTrip(ctx, conn, []byte("hi"))
				if err != nil {
					t.Fatal(err)
				}
				if string(got) != tc.want {
					t.Fatalf("reached %q, want %q", got, tc.want)
				}
				s := <-out
				if s.name != tc.want || s.auth.ALPN != tc.alpn {
					t.Fatalf("handler %q saw ALPN %q", s.name, s.auth.ALPN)
				}
				if s.auth.RemoteAddr == nil {
					t.Fatal("RemoteAddr is nil")
				}
				if ip, ok := core.AddrIP(s.auth.RemoteAddr); !ok || ip != netip.MustParseAddr("127.0.0.1") {
					t.Fatalf("RemoteAddr = %v", s.auth.RemoteAddr)
				}
				wantFP := ""
				if tc.client != nil {
					wantFP = tc.client.Fingerprint
				}
				if s.auth.TLSClientFingerprint != wantFP {
					t.Fatalf("fingerprint = %q, want %q", s.auth.TLSClientFingerprint, wantFP)
				}
				switch {
				case tc.wantID == "" && s.auth.Identity != nil:
					t.Fatalf("identity = %+v, want none", *s.auth.Identity)
				case tc.wantID != "" && (s.auth.Identity == nil || s.auth.Identity.ID != tc.wantID):
					t.Fatalf("identity = %+v, want %s", s.auth.Identity, tc.wantID)
				case tc.wantID != "" && !s.auth.Identity.HasScope("admin"):
					t.Fatalf("identity scopes = %v", s.auth.Identity.Scopes)
				}
			})
		}
	}
}

// countingRegistry registers on "alknet/echo" a handler that only counts its runs.
func countingRegistry(t *testing.T) (*core.Registry, *atomic.Int32) {
	t.Helper()
	ran := new(atomic.Int32)
	reg := newRegistry(t, map[string]core.Handler{
		"alknet/echo": core.HandlerFunc(func(context.Context, *core.Connection, core.AuthContext) error {
			ran.Add(1)
			return nil
		}),
	})
	return reg, ran
}

func TestUnknownALPNRefusedInHandshake(t *testing.T) {
	reg, ran := countingRegistry(t)
	srv := coretest.NewServer(t, reg)
	for _, n := range networks {
		t.Run(n.String(), func(t *testing.T) {
			_, err := srv.DialErr(testCtx(t), "alknet/nope", coretest.NewIdentity(t), n)
			if !errors.Is(err, endpoint.ErrALPNRefused) {
				t.Fatalf("dial error = %v, want ErrALPNRefused", err)
			}
			var de *endpoint.DialError
			if !errors.As(err, &de) || de.ALPN != "alknet/nope" {
				t.Fatalf("want a DialError naming the ALPN, got %v", err)
			}
		})
	}
	if n := ran.Load(); n != 0 {
		t.Fatalf("handler ran %d times", n)
	}
	if got := srv.Endpoint.Stats().Refused[endpoint.RefusedUnknownALPN]; got != 2 {
		t.Fatalf("refused unknown_alpn = %d, want 2", got)
	}
}

func TestTCPClientWithoutALPNClosedWithoutHandler(t *testing.T) {
	reg, ran := countingRegistry(t)
	srv := coretest.NewServer(t, reg)
	conf, err := tlsconf.ClientConfig(tlsconf.ClientOptions{Pin: srv.Identity.Fingerprint})
	if err != nil {
		t.Fatal(err)
	}
	tc, err := tls.Dial("tcp", srv.Addr, conf)
	if err != nil {
		t.Fatalf("handshake without ALPN should succeed: %v", err)
	}
	defer tc.Close()
	if p := tc.ConnectionState().NegotiatedProtocol; p != "" {
		t.Fatalf("negotiated %q", p)
	}
	_ = tc.SetReadDeadline(time.Now().Add(testTimeout))
	if n, err := tc.Read(make([]byte, 1)); err == nil || n != 0 {
		t.Fatalf("read = %d, %v; want the server to close", n, err)
	}
	if ran.Load() != 0 {
		t.Fatal("handler ran")
	}
	waitFor(t, func() bool { return srv.Endpoint.Stats().Refused[endpoint.RefusedNoHandler] == 1 })
	if len(srv.Logs.Lines(`msg="connection refused"`, "reason=no_handler", `alpn="\"\""`)) != 1 {
		t.Fatalf("want one no_handler line, logs:\n%s", srv.Logs)
	}
}

// With TCPDefaultALPN, a TCP+TLS client that offers no ALPN is served by that handler
// (as "http/1.1" serves Go's net/http WebSocket upgrades, which send none); a client
// offering an ALPN still gets exactly what it asked for.
func TestTCPDefaultALPN(t *testing.T) {
	got := make(chan string, 2)
	reg := newRegistry(t, map[string]core.Handler{
		"alknet/echo": core.HandlerFunc(func(_ context.Context, c *core.Connection, _ core.AuthContext) error {
			got <- c.RemoteALPN()
			return nil
		}),
	})
	srv := coretest.NewServer(t, reg, coretest.WithEndpointConfig(func(c *endpoint.Config) { c.TCPDefaultALPN = "alknet/echo" }))
	conf, err := tlsconf.ClientConfig(tlsconf.ClientOptions{Pin: srv.Identity.Fingerprint})
	if err != nil {
		t.Fatal(err)
	}
	tc, err := tls.Dial("tcp", srv.Addr, conf)
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	select {
	case alpn := <-got:
		if alpn != "alknet/echo" {
			t.Fatalf("handler saw ALPN %q", alpn)
		}
	case <-testCtx(t).Done():
		t.Fatal("the default handler did not run")
	}
	if n := srv.Endpoint.Stats().Refused[endpoint.RefusedNoHandler]; n != 0 {
		t.Fatalf("refused no_handler = %d", n)
	}

	if _, err := endpoint.New(reg, endpoint.Config{TLS: tlsconf.ServerConfig(srv.Identity.Cert), TCPDefaultALPN: "h2"}); err == nil ||
		!strings.Contains(err.Error(), "TCPDefaultALPN") {
		t.Fatalf("New with an unregistered TCPDefaultALPN = %v", err)
	}
}

// waitFor polls cond (it reads counters the server updates after closing a connection).
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestACMEGuard(t *testing.T) {
	reg, ran := countingRegistry(t)
	srv := coretest.NewServer(t, reg, coretest.WithEndpointConfig(func(c *endpoint.Config) {
		c.TLS.NextProtos = []string{core.ALPNACME}
	}))
	if got := srv.Endpoint.ALPNs(); strings.Join(got, ",") != "alknet/echo,acme-tls/1" {
		t.Fatalf("ALPNs = %v", got)
	}
	// The endpoint closes right after the handshake: on a busy machine the close can
	// reach the client before Dial has returned, so it shows in Dial's error.
	conn, err := srv.DialErr(testCtx(t), core.ALPNACME, nil, endpoint.NetworkQUIC)
	if err != nil {
		var ae *quic.ApplicationError
		if !errors.As(err, &ae) || ae.ErrorMessage != "acme done" || ae.ErrorCode != quic.ApplicationErrorCode(core.CloseNormal) || !ae.Remote {
			t.Fatalf("want close 0 \"acme done\", got %v", err)
		}
	} else {
		defer conn.Close(core.CloseNormal, "")
		_, err := conn.AcceptBi(testCtx(t))
		var ce *core.CloseError
		if !errors.As(err, &ce) || ce.Reason != "acme done" || ce.Code != core.CloseNormal || !ce.Remote {
			t.Fatalf("want close 0 \"acme done\", got %v", err)
		}
	}
	if ran.Load() != 0 {
		t.Fatal("handler ran")
	}
	if srv.Endpoint.Stats().Refused[endpoint.RefusedACME] != 1 {
		t.Fatal("acme refusal not counted")
	}
}

func TestOpenSSLClientOnTCPTwin(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl not installed (CI installs it): ", err)
	}
	reg := newRegistry(t, map[string]core.Handler{"alknet/echo": coretest.Echo()})
	srv := coretest.NewServer(t, reg)
	ctx := testCtx(t)
	msg := "hello from openssl"
	stdin, stdinW := io.Pipe()
	stdout := &watchWriter{want: msg, seen: make(chan struct{})}
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, openssl, "s_client", "-connect", srv.Addr, "-alpn", "alknet/echo", "-quiet", "-no_ign_eof")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(stdinW, msg+"\n"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-stdout.seen:
	case <-ctx.Done():
		t.Fatalf("openssl did not get the echo; stdout %q stderr %q", stdout.String(), stderr.String())
	}
	stdinW.Close() // s_client quits on stdin EOF
	_ = cmd.Wait()
	waitFor(t, func() bool {
		return len(srv.Logs.Lines(`msg=connection`, "transport=tcp+tls", "alpn=alknet/echo")) == 1
	})
}

// watchWriter records output and closes seen once it contains want.
type watchWriter struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	want string
	seen chan struct{}
	done bool
}

func (w *watchWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if !w.done && strings.Contains(w.buf.String(), w.want) {
		w.done = true
		close(w.seen)
	}
	return len(p), nil
}

func (w *watchWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// blocker holds every connection until release is closed, reporting each start.
type blocker struct {
	started chan struct{}
	release chan struct{}
}

func newBlocker(n int) *blocker {
	return &blocker{started: make(chan struct{}, n), release: make(chan struct{})}
}

func (b *blocker) Handle(ctx context.Context, conn *core.Connection, _ core.AuthContext) error {
	b.started <- struct{}{}
	select {
	case <-b.release:
	case <-ctx.Done():
	}
	return nil
}

func (b *blocker) wait(t *testing.T, n int) {
	t.Helper()
	for range n {
		select {
		case <-b.started:
		case <-time.After(testTimeout):
			t.Fatal("handler did not start")
		}
	}
}

// blockingServer serves "alknet/block" with a blocker under limits, and holds n
// connections open from client (nil: no certificate) over network, their handlers running.
func blockingServer(t *testing.T, limits core.Limits, network endpoint.Network, client *coretest.Identity, n int) (*blocker, *coretest.Server) {
	t.Helper()
	b := newBlocker(8)
	t.Cleanup(func() { close(b.release) })
	reg := newRegistry(t, map[string]core.Handler{"alknet/block": b})
	srv := coretest.NewServer(t, reg, coretest.WithConfig(core.DynamicConfig{Limits: limits}))
	for range n {
		srv.Dial(t, "alknet/block", client, network)
	}
	b.wait(t, n)
	return b, srv
}

func TestPerIPLimit(t *testing.T) {
	for _, n := range networks {
		t.Run(n.String(), func(t *testing.T) {
			client := coretest.NewIdentity(t)
			b, srv := blockingServer(t, core.Limits{MaxConnectionsPerIP: 2}, n, client, 2)

			ctx := testCtx(t)
			conn, err := srv.DialErr(ctx, "alknet/block", client, n)
			if err == nil {
				defer conn.Close(core.CloseNormal, "")
				// QUIC: the handshake completed on a validated address, then the endpoint
				// closed with the refusal code and reason.
				s, err := conn.OpenBi(ctx)
				if err == nil {
					_, err = s.Read(make([]byte, 1))
				}
				var ce *core.CloseError
				switch {
				case errors.As(err, &ce):
					if ce.Code != core.CloseRefused || !strings.Contains(ce.Reason, "too many concurrent connections from 127.0.0.1 (limit 2)") {
						t.Fatalf("close = %d %q", ce.Code, ce.Reason)
					}
				case n == endpoint.NetworkTCP && err != nil:
					// TCP: refused before the handshake; the connection just closes.
				default:
					t.Fatalf("third connection was not refused: %v", err)
				}
			}
			waitFor(t, func() bool { return srv.Endpoint.Stats().Refused[endpoint.RefusedPerIP] == 1 })
			lines := srv.Logs.Lines(`level=WARN msg="connection refused" reason=max_connections_per_ip`, "remote_ip=127.0.0.1", "limit=2")
			if len(lines) != 1 {
				t.Fatalf("want one refusal line, logs:\n%s", srv.Logs)
			}
			select {
			case <-b.started:
				t.Fatal("handler ran for the refused connection")
			default:
			}
			if got := srv.Endpoint.Stats().Active["alknet/block"]; got != 2 {
				t.Fatalf("active = %d, want 2", got)
			}
		})
	}
}

func TestPerIPLimitExemptNetwork(t *testing.T) {
	for _, n := range networks {
		t.Run(n.String(), func(t *testing.T) {
			limits := core.Limits{
				MaxConnectionsPerIP: 1,
				PerIPExempt:         []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
			}
			_, srv := blockingServer(t, limits, n, nil, 3)
			if r := srv.Endpoint.Stats().Refused[endpoint.RefusedPerIP]; r != 0 {
				t.Fatalf("refused %d exempt connections", r)
			}
		})
	}
}

func TestMaxConnections(t *testing.T) {
	for _, n := range networks {
		t.Run(n.String(), func(t *testing.T) {
			_, srv := blockingServer(t, core.Limits{MaxConnections: 2, MaxConnectionsPerIP: -1}, n, nil, 2)
			_, err := srv.DialErr(testCtx(t), "alknet/block", nil, n)
			if err == nil {
				t.Fatal("third connection was accepted")
			}
			var te *quic.TransportError
			if n == endpoint.NetworkQUIC && (!errors.As(err, &te) || te.ErrorCode != quic.ConnectionRefused) {
				t.Fatalf("want CONNECTION_REFUSED, got %v", err)
			}
			// quic-go retransmits the Initial until it hears the refusal, and each arrival
			// is a refused attempt, so QUIC may count more than one.
			waitFor(t, func() bool { return srv.Endpoint.Stats().Refused[endpoint.RefusedMaxConnections] >= 1 })
			if len(srv.Logs.Lines("reason=max_connections ", "limit=2")) < 1 {
				t.Fatalf("want one refusal line, logs:\n%s", srv.Logs)
			}
		})
	}
}

func TestTCPHandshakeTimeout(t *testing.T) {
	reg := newRegistry(t, map[string]core.Handler{"alknet/echo": coretest.Echo()})
	cfg := core.DynamicConfig{Limits: core.Limits{HandshakeTimeout: 100 * time.Millisecond}}
	srv := coretest.NewServer(t, reg, coretest.WithConfig(cfg))
	c, err := net.Dial("tcp", srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Never send a ClientHello: the server must cut the connection.
	_ = c.SetReadDeadline(time.Now().Add(testTimeout))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("server sent data to a silent client")
	} else if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatal("server never closed the silent connection")
	}
	waitFor(t, func() bool { return srv.Endpoint.Stats().Refused[endpoint.RefusedHandshakeTimeout] == 1 })
	waitFor(t, func() bool { return srv.Endpoint.Stats().Connections == 0 })
	if len(srv.Logs.Lines("reason=handshake_timeout", "remote_ip=127.0.0.1")) != 1 {
		t.Fatalf("want a handshake_timeout line, logs:\n%s", srv.Logs)
	}
}

func TestHandlerPanicAndErrorsStayOnTheirConnection(t *testing.T) {
	reg := newRegistry(t, map[string]core.Handler{
		"alknet/panic": core.HandlerFunc(func(context.Context, *core.Connection, core.AuthContext) error {
			panic("boom")
		}),
		"alknet/fail": core.HandlerFunc(func(context.Context, *core.Connection, core.AuthContext) error {
			return errors.New("disk on fire")
		}),
		"alknet/auth": core.HandlerFunc(func(context.Context, *core.Connection, core.AuthContext) error {
			return fmt.Errorf("bad token: %w", core.ErrAuthRequired)
		}),
		"alknet/echo": coretest.Echo(),
	})
	srv := coretest.NewServer(t, reg)
	ctx := testCtx(t)
	healthy := srv.Dial(t, "alknet/echo", nil, endpoint.NetworkQUIC)

	for _, tc := range []struct {
		alpn   string
		code   uint32
		reason string
	}{
		{"alknet/panic", core.CloseInternalError, "internal error"},
		{"alknet/fail", core.CloseInternalError, "disk on fire"},
		{"alknet/auth", core.CloseAuthRequired, "authentication required"},
	} {
		conn := srv.Dial(t, tc.alpn, nil, endpoint.NetworkQUIC)
		_, err := conn.AcceptBi(ctx)
		var ce *core.CloseError
		if !errors.As(err, &ce) || ce.Code != tc.code || ce.Reason != tc.reason {
			t.Fatalf("%s: close = %v, want code %d %q", tc.alpn, err, tc.code, tc.reason)
		}
		if !errors.Is(err, core.ErrConnectionClosed) {
			t.Fatalf("%s: %v is not ErrConnectionClosed", tc.alpn, err)
		}
		// The other connection and the accept loop are unaffected.
		if got, err := coretest.RoundTrip(ctx, healthy, []byte("still here")); err != nil || string(got) != "still here" {
			t.Fatalf("after %s: healthy connection got %q, %v", tc.alpn, got, err)
		}
		fresh := srv.Dial(t, "alknet/echo", nil, endpoint.NetworkTCP)
		if got, err := coretest.RoundTrip(ctx, fresh, []byte("new")); err != nil || string(got) != "new" {
			t.Fatalf("after %s: new connection got %q, %v", tc.alpn, got, err)
		}
	}
	waitFor(t, func() bool { return len(srv.Logs.Lines("msg=connection", "alpn=alknet/auth")) == 1 })
	if l := srv.Logs.Lines("level=ERROR msg=connection", "alpn=alknet/panic", "outcome=panic", "stack="); len(l) != 1 {
		t.Fatalf("want a panic line with a stack, logs:\n%s", srv.Logs)
	}
	if l := srv.Logs.Lines("level=ERROR msg=connection", "alpn=alknet/fail", "outcome=error", `error="disk on fire"`); len(l) != 1 {
		t.Fatalf("want an error line, logs:\n%s", srv.Logs)
	}
	if l := srv.Logs.Lines(`level=WARN msg="auth failure" remote_ip=127.0.0.1 alpn=alknet/auth peer=- reason="bad token: authentication required"`); len(l) != 1 {
		t.Fatalf("want one auth failure line, logs:\n%s", srv.Logs)
	}
}

func TestManyConcurrentConnectionsWithSlowHandler(t *testing.T) {
	const n = 200
	var (
		mu      sync.Mutex
		arrived int
		all     = make(chan struct{})
	)
	// Each handler waits until all n are running at once: only possible when nothing is
	// serialised behind a slow handler.
	slow := core.HandlerFunc(func(ctx context.Context, conn *core.Connection, _ core.AuthContext) error {
		mu.Lock()
		arrived++
		if arrived == n {
			close(all)
		}
		mu.Unlock()
		select {
		case <-all:
		case <-ctx.Done():
			return ctx.Err()
		}
		s, err := conn.AcceptBi(ctx)
		if err != nil {
			return err
		}
		if _, err := io.Copy(s, s); err != nil {
			return err
		}
		return s.CloseWrite()
	})
	reg := newRegistry(t, map[string]core.Handler{"alknet/slow": slow})
	cfg := core.DynamicConfig{Limits: core.Limits{MaxConnectionsPerIP: -1, HandshakeTimeout: testTimeout}}
	srv := coretest.NewServer(t, reg, coretest.WithConfig(cfg))
	ctx := testCtx(t)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			network := networks[i%2]
			opts := srv.DialOptions(nil, network)
			opts.HandshakeTimeout = testTimeout
			conn, err := endpoint.Dial(ctx, srv.Addr, "alknet/slow", opts)
			if err != nil {
				errs <- err
				return
			}
			defer conn.Close(core.CloseNormal, "")
			msg := fmt.Sprintf("conn %d", i)
			got, err := coretest.RoundTrip(ctx, conn, []byte(msg))
			if err != nil || string(got) != msg {
				errs <- fmt.Errorf("%s: got %q, %v", msg, got, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := srv.Endpoint.Stats().Accepted; got != n {
		t.Fatalf("accepted %d, want %d", got, n)
	}
}

func TestReloadGrantsAndRevokesForNextConnection(t *testing.T) {
	out := make(chan seen, 8)
	reg := newRegistry(t, map[string]core.Handler{"alknet/who": recorder("who", out)})
	srv := coretest.NewServer(t, reg)
	bob := coretest.NewIdentity(t)
	idOf := func() string {
		t.Helper()
		conn := srv.Dial(t, "alknet/who", bob, endpoint.NetworkQUIC)
		if _, err := coretest.RoundTrip(testCtx(t), conn, nil); err != nil {
			t.Fatal(err)
		}
		conn.Close(core.CloseNormal, "")
		s := <-out
		if s.auth.Identity == nil {
			return ""
		}
		return s.auth.Identity.ID
	}
	if id := idOf(); id != "" {
		t.Fatalf("unknown peer resolved to %q", id)
	}
	granted := core.DynamicConfig{Auth: core.AuthPolicy{Peers: []core.PeerEntry{bob.Peer("bob")}}}
	if err := srv.Store.Reload(granted); err != nil {
		t.Fatal(err)
	}
	if id := idOf(); id != "bob" {
		t.Fatalf("after grant: %q", id)
	}
	revoked := granted.Clone()
	revoked.Auth.Peers[0].Enabled = false
	if err := srv.Store.Reload(revoked); err != nil {
		t.Fatal(err)
	}
	if id := idOf(); id != "" {
		t.Fatalf("after revoke: %q", id)
	}
}

func TestReloadLoopWhileConnectionsResolve(t *testing.T) {
	reg := newRegistry(t, map[string]core.Handler{
		"alknet/who": core.HandlerFunc(func(ctx context.Context, conn *core.Connection, auth core.AuthContext) error {
			s, err := conn.AcceptBi(ctx)
			if err != nil {
				return err
			}
			id := "-"
			if auth.Identity != nil {
				id = auth.Identity.ID
			}
			if _, err := io.WriteString(s, id); err != nil {
				return err
			}
			return s.CloseWrite()
		}),
	})
	srv := coretest.NewServer(t, reg)
	carol := coretest.NewIdentity(t)
	on := core.DynamicConfig{Auth: core.AuthPolicy{Peers: []core.PeerEntry{carol.Peer("carol")}}}
	off := core.DynamicConfig{}
	stop := make(chan struct{})
	reloaderDone := make(chan struct{})
	go func() {
		defer close(reloaderDone)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			cfg := off
			if i%2 == 0 {
				cfg = on
			}
			if err := srv.Store.Reload(cfg); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	ctx := testCtx(t)
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			conn, err := srv.DialErr(ctx, "alknet/who", carol, networks[i%2])
			if err != nil {
				t.Error(err)
				return
			}
			defer conn.Close(core.CloseNormal, "")
			got, err := coretest.RoundTrip(ctx, conn, nil)
			if err != nil {
				t.Error(err)
				return
			}
			if s := string(got); s != "carol" && s != "-" {
				t.Errorf("resolved to %q", s)
			}
		})
	}
	wg.Wait()
	close(stop)
	<-reloaderDone
}

func TestStreamSemantics(t *testing.T) {
	// The handler reads the client's whole message (until its half-close), then answers
	// with its length, then checks that a single-stream connection has no second stream.
	second := make(chan error, 2)
	reg := newRegistry(t, map[string]core.Handler{
		"alknet/len": core.HandlerFunc(func(ctx context.Context, conn *core.Connection, _ core.AuthContext) error {
			s, err := conn.AcceptBi(ctx)
			if err != nil {
				return err
			}
			b, err := io.ReadAll(s)
			if err != nil {
				return err
			}
			if _, err := fmt.Fprintf(s, "%d", len(b)); err != nil {
				return err
			}
			if err := s.CloseWrite(); err != nil {
				return err
			}
			if conn.SingleStream() {
				_, err := conn.AcceptBi(ctx)
				second <- err
				_, err = conn.OpenBi(ctx)
				second <- err
				// Wait for the client to close before closing ourselves.
				_, _ = s.Read(make([]byte, 1))
				return nil
			}
			_, err = conn.AcceptBi(ctx)
			if errors.Is(err, core.ErrConnectionClosed) {
				return nil
			}
			return err
		}),
	})
	srv := coretest.NewServer(t, reg)
	for _, n := range networks {
		t.Run(n.String(), func(t *testing.T) {
			ctx := testCtx(t)
			conn := srv.Dial(t, "alknet/len", coretest.NewIdentity(t), n)
			if conn.SingleStream() != (n == endpoint.NetworkTCP) {
				t.Fatalf("SingleStream = %v", conn.SingleStream())
			}
			if conn.LocalAddr() == nil || conn.RemoteAddr() == nil {
				t.Fatal("missing addresses")
			}
			if fp := conn.PeerFingerprint(); fp != srv.Identity.Fingerprint {
				t.Fatalf("client sees server fingerprint %q", fp)
			}
			s, err := conn.OpenBi(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := s.(net.Conn); !ok {
				t.Fatalf("%T is not a net.Conn", s)
			}
			payload := bytes.Repeat([]byte("x"), 300<<10)
			if _, err := s.Write(payload); err != nil {
				t.Fatal(err)
			}
			if err := s.CloseWrite(); err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(s)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != fmt.Sprint(len(payload)) {
				t.Fatalf("got %q", got)
			}
			if n == endpoint.NetworkTCP {
				if _, err := conn.OpenBi(ctx); !errors.Is(err, core.ErrStreamClosed) {
					t.Fatalf("second OpenBi on TCP = %v, want ErrStreamClosed", err)
				}
				if err := <-second; !errors.Is(err, core.ErrConnectionClosed) {
					t.Fatalf("server's second AcceptBi = %v", err)
				}
				if err := <-second; !errors.Is(err, core.ErrStreamClosed) {
					t.Fatalf("server's OpenBi = %v", err)
				}
			}
			conn.Close(core.CloseNormal, "")
		})
	}
}

func TestStreamErrorsMapToCoreSentinels(t *testing.T) {
	gotReset := make(chan error, 1)
	reg := newRegistry(t, map[string]core.Handler{
		"alknet/reset": core.HandlerFunc(func(ctx context.Context, conn *core.Connection, _ core.AuthContext) error {
			s, err := conn.AcceptBi(ctx)
			if err != nil {
				return err
			}
			// The client resets its side: our read fails with ErrStreamClosed.
			_, err = io.ReadAll(s)
			gotReset <- err
			_, err = conn.AcceptBi(ctx)
			return err
		}),
	})
	srv := coretest.NewServer(t, reg)
	ctx := testCtx(t)
	conn := srv.Dial(t, "alknet/reset", nil, endpoint.NetworkQUIC)
	s, err := conn.OpenBi(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write([]byte("partial")); err != nil {
		t.Fatal(err)
	}
	s.(interface{ CancelWrite(quic.StreamErrorCode) }).CancelWrite(7)
	err = <-gotReset
	var se *quic.StreamError
	if !errors.Is(err, core.ErrStreamClosed) || !errors.As(err, &se) || se.ErrorCode != 7 {
		t.Fatalf("server read after reset = %v, want ErrStreamClosed wrapping the stream error", err)
	}
	// Reading a stream whose deadline passed: ErrStreamTimeout, and the error itself is
	// a net.Error timeout (net/http type-asserts it rather than using errors.As).
	s2, err := conn.OpenBi(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_ = s2.(net.Conn).SetReadDeadline(time.Now().Add(-time.Second))
	_, err = s2.Read(make([]byte, 1))
	var ne net.Error
	if !errors.Is(err, core.ErrStreamTimeout) || !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("read past deadline = %v", err)
	}
	if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
		t.Fatalf("read past deadline = %T, want a net.Error with Timeout() true", err)
	}
	// Closing the connection locally: later calls report ErrConnectionClosed.
	conn.Close(core.CloseNormal, "")
	if _, err := conn.OpenBi(ctx); !errors.Is(err, core.ErrConnectionClosed) {
		t.Fatalf("OpenBi after close = %v", err)
	}
}

func TestMaxIncomingStreams(t *testing.T) {
	reg := newRegistry(t, map[string]core.Handler{"alknet/echo": coretest.Echo()})
	srv := coretest.NewServer(t, reg, coretest.WithEndpointConfig(func(c *endpoint.Config) {
		c.MaxIncomingStreams = 2
	}))
	conn := srv.Dial(t, "alknet/echo", nil, endpoint.NetworkQUIC)
	ctx := testCtx(t)
	s1, err := conn.OpenBi(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.OpenBi(ctx); err != nil {
		t.Fatal(err)
	}
	// A third concurrent stream must wait for credit; it cannot be opened now.
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if _, err := conn.OpenBi(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("third stream: %v, want to block", err)
	}
	// Finishing one stream returns its credit.
	if err := s1.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(s1); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.OpenBi(ctx); err != nil {
		t.Fatalf("stream after credit returned: %v", err)
	}
}

func TestShutdown(t *testing.T) {
	t.Run("idle returns at once and twice is safe", func(t *testing.T) {
		reg := newRegistry(t, map[string]core.Handler{"alknet/echo": coretest.Echo()})
		srv := coretest.NewServer(t, reg, coretest.WithEndpointConfig(func(c *endpoint.Config) {
			c.DrainTimeout = time.Hour // an idle endpoint must not wait for it
		}))
		if err := srv.Endpoint.Shutdown(testCtx(t)); err != nil {
			t.Fatal(err)
		}
		if err := srv.Endpoint.Shutdown(testCtx(t)); err != nil {
			t.Fatal(err)
		}
		if err := srv.Endpoint.ListenQUIC("127.0.0.1:0"); !errors.Is(err, endpoint.ErrEndpointClosed) {
			t.Fatalf("listen after shutdown = %v", err)
		}
	})

	t.Run("cancels handlers, refuses new dials, drains", func(t *testing.T) {
		cancelled := make(chan struct{}, 2)
		started := make(chan struct{}, 2)
		reg := newRegistry(t, map[string]core.Handler{
			"alknet/wait": core.HandlerFunc(func(ctx context.Context, conn *core.Connection, _ core.AuthContext) error {
				started <- struct{}{}
				<-ctx.Done()
				cancelled <- struct{}{}
				return ctx.Err()
			}),
		})
		srv := coretest.NewServer(t, reg, coretest.WithEndpointConfig(func(c *endpoint.Config) {
			c.DrainTimeout = time.Hour // handlers return by themselves once cancelled
		}))
		for _, n := range networks {
			srv.Dial(t, "alknet/wait", nil, n)
		}
		<-started
		<-started
		if err := srv.Endpoint.Shutdown(testCtx(t)); err != nil {
			t.Fatal(err)
		}
		<-cancelled
		<-cancelled
		for _, n := range networks {
			// Nothing listens any more: QUIC gets no answer at all, so keep its wait short.
			opts := srv.DialOptions(nil, n)
			opts.HandshakeTimeout = 300 * time.Millisecond
			if _, err := endpoint.Dial(testCtx(t), srv.Addr, "alknet/wait", opts); err == nil {
				t.Fatalf("%s dial after shutdown succeeded", n)
			}
		}
		if l := srv.Logs.Lines("msg=connection", "outcome=shutdown"); len(l) != 2 {
			t.Fatalf("want two shutdown outcomes, logs:\n%s", srv.Logs)
		}
	})

	t.Run("new dials fail while draining", func(t *testing.T) {
		b := newBlocker(2)
		reg := newRegistry(t, map[string]core.Handler{
			"alknet/stubborn": core.HandlerFunc(func(ctx context.Context, conn *core.Connection, a core.AuthContext) error {
				b.started <- struct{}{}
				<-b.release // ignores ctx
				return nil
			}),
		})
		srv := coretest.NewServer(t, reg, coretest.WithEndpointConfig(func(c *endpoint.Config) {
			c.DrainTimeout = time.Hour
			c.CloseLinger = -1
		}))
		srv.Dial(t, "alknet/stubborn", nil, endpoint.NetworkQUIC)
		b.wait(t, 1)
		shutdownDone := make(chan error, 1)
		go func() { shutdownDone <- srv.Endpoint.Shutdown(context.Background()) }()
		// Shutdown has begun once the TCP listener refuses connections.
		waitFor(t, func() bool {
			c, err := net.Dial("tcp", srv.Addr)
			if err == nil {
				c.Close()
			}
			return err != nil
		})
		_, err := srv.DialErr(testCtx(t), "alknet/stubborn", nil, endpoint.NetworkQUIC)
		var te *quic.TransportError
		if !errors.As(err, &te) || te.ErrorCode != quic.ConnectionRefused {
			t.Fatalf("QUIC dial while draining = %v, want CONNECTION_REFUSED", err)
		}
		select {
		case err := <-shutdownDone:
			t.Fatalf("Shutdown returned %v while a handler was draining", err)
		default:
		}
		close(b.release)
		if err := <-shutdownDone; err != nil {
			t.Fatal(err)
		}
	})

	t.Run("returns after the drain timeout when a handler ignores cancellation", func(t *testing.T) {
		b := newBlocker(2)
		defer close(b.release)
		forced := make(chan error, 1)
		reg := newRegistry(t, map[string]core.Handler{
			"alknet/stubborn": core.HandlerFunc(func(ctx context.Context, conn *core.Connection, _ core.AuthContext) error {
				b.started <- struct{}{}
				<-b.release // ignores ctx
				_, err := conn.AcceptBi(context.Background())
				forced <- err
				return nil
			}),
		})
		srv := coretest.NewServer(t, reg, coretest.WithEndpointConfig(func(c *endpoint.Config) {
			c.DrainTimeout = 50 * time.Millisecond
		}))
		conn := srv.Dial(t, "alknet/stubborn", nil, endpoint.NetworkQUIC)
		b.wait(t, 1)
		if err := srv.Endpoint.Shutdown(testCtx(t)); err != nil {
			t.Fatal(err)
		}
		// The connection was force-closed: the client sees the shutdown close.
		_, err := conn.AcceptBi(testCtx(t))
		var ce *core.CloseError
		if !errors.As(err, &ce) || ce.Reason != "shutdown" {
			t.Fatalf("client saw %v, want close \"shutdown\"", err)
		}
		if !strings.Contains(srv.Logs.String(), "drain timeout: closing connections") {
			t.Fatalf("no drain timeout line, logs:\n%s", srv.Logs)
		}
		b.release <- struct{}{} // let the stubborn handler finish
		if err := <-forced; !errors.Is(err, core.ErrConnectionClosed) {
			t.Fatalf("stubborn handler's AcceptBi = %v", err)
		}
	})

	t.Run("ctx expiry ends the drain early", func(t *testing.T) {
		b := newBlocker(2)
		defer close(b.release)
		reg := newRegistry(t, map[string]core.Handler{
			"alknet/stubborn": core.HandlerFunc(func(ctx context.Context, conn *core.Connection, _ core.AuthContext) error {
				b.started <- struct{}{}
				<-b.release
				return nil
			}),
		})
		srv := coretest.NewServer(t, reg, coretest.WithEndpointConfig(func(c *endpoint.Config) {
			c.DrainTimeout = time.Hour
		}))
		srv.Dial(t, "alknet/stubborn", nil, endpoint.NetworkTCP)
		b.wait(t, 1)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := srv.Endpoint.Shutdown(ctx); !errors.Is(err, context.Canceled) {
			t.Fatalf("Shutdown = %v, want context.Canceled", err)
		}
	})
}

func TestDispatchExternalConnection(t *testing.T) {
	out := make(chan seen, 1)
	reg := newRegistry(t, map[string]core.Handler{"alknet/inner": recorder("inner", out)})
	alice := coretest.NewIdentity(t)
	cfg := core.DynamicConfig{Auth: core.AuthPolicy{Peers: []core.PeerEntry{alice.Peer("alice")}}}
	srv := coretest.NewServer(t, reg, coretest.WithConfig(cfg))

	a, b := net.Pipe()
	defer a.Close()
	remote := &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 4242}
	srv.Endpoint.Dispatch(core.FromBidi(pipeStream{b}, "alknet/inner", remote), alice.Fingerprint)
	s := <-out
	if s.auth.Identity == nil || s.auth.Identity.ID != "alice" || s.auth.RemoteAddr != remote {
		t.Fatalf("dispatched handler saw %+v", s.auth)
	}
}

// pipeStream gives a net.Pipe end a CloseWrite (closing it entirely: net.Pipe has no
// half-close); the test only checks what the handler saw.
type pipeStream struct{ net.Conn }

func (p pipeStream) CloseWrite() error { return p.Conn.Close() }

func TestHandlerThatWritesAndReturnsDeliversEverything(t *testing.T) {
	payload := bytes.Repeat([]byte("0123456789abcdef"), 256<<10/16*4) // 1 MiB
	reg := newRegistry(t, map[string]core.Handler{
		"alknet/burst": core.HandlerFunc(func(ctx context.Context, conn *core.Connection, _ core.AuthContext) error {
			s, err := conn.AcceptBi(ctx)
			if err != nil {
				return err
			}
			if _, err := s.Write(payload); err != nil {
				return err
			}
			return s.CloseWrite() // and return at once: the linger keeps the bytes alive
		}),
	})
	srv := coretest.NewServer(t, reg)
	for _, n := range networks {
		t.Run(n.String(), func(t *testing.T) {
			conn := srv.Dial(t, "alknet/burst", nil, n)
			got, err := coretest.RoundTrip(testCtx(t), conn, []byte("go"))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, payload) {
				t.Fatalf("got %d bytes, want %d", len(got), len(payload))
			}
		})
	}
}

func TestDialAutoFallsBackToTCP(t *testing.T) {
	reg := newRegistry(t, map[string]core.Handler{"alknet/echo": coretest.Echo()})
	id := coretest.NewIdentity(t)
	ep, err := endpoint.New(reg, endpoint.Config{TLS: tlsconf.ServerConfig(id.Cert)})
	if err != nil {
		t.Fatal(err)
	}
	defer ep.Close()
	// Only the TCP+TLS twin listens: QUIC packets go unanswered, as behind a UDP block.
	if err := ep.ListenTCP("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	opts := endpoint.DialOptions{
		Network:       endpoint.NetworkAuto,
		FallbackDelay: 50 * time.Millisecond,
		TLS:           tlsconf.ClientOptions{Pin: id.Fingerprint},
	}
	ctx := testCtx(t)
	conn, err := endpoint.Dial(ctx, ep.TCPAddr().String(), "alknet/echo", opts)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(core.CloseNormal, "")
	if !conn.SingleStream() {
		t.Fatal("auto dial did not fall back to TCP+TLS")
	}
	if got, err := coretest.RoundTrip(ctx, conn, []byte("via tcp")); err != nil || string(got) != "via tcp" {
		t.Fatalf("got %q, %v", got, err)
	}
}

func TestDialAutoPrefersQUIC(t *testing.T) {
	reg := newRegistry(t, map[string]core.Handler{"alknet/echo": coretest.Echo()})
	srv := coretest.NewServer(t, reg)
	opts := srv.DialOptions(nil, endpoint.NetworkAuto)
	opts.FallbackDelay = time.Minute // TCP would only start if QUIC failed
	conn, err := endpoint.Dial(testCtx(t), srv.Addr, "alknet/echo", opts)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(core.CloseNormal, "")
	if conn.SingleStream() {
		t.Fatal("auto dial used TCP+TLS although QUIC was up")
	}
}

func TestDialVerifiesServer(t *testing.T) {
	reg := newRegistry(t, map[string]core.Handler{"alknet/echo": coretest.Echo()})
	srv := coretest.NewServer(t, reg)
	other := coretest.NewIdentity(t)
	for _, n := range []endpoint.Network{endpoint.NetworkQUIC, endpoint.NetworkTCP, endpoint.NetworkAuto} {
		t.Run(n.String(), func(t *testing.T) {
			opts := endpoint.DialOptions{Network: n, FallbackDelay: time.Millisecond, TLS: tlsconf.ClientOptions{Pin: other.Fingerprint}}
			_, err := endpoint.Dial(testCtx(t), srv.Addr, "alknet/echo", opts)
			var fm *tlsconf.FingerprintMismatchError
			if !errors.Is(err, tlsconf.ErrFingerprintMismatch) || !errors.As(err, &fm) || fm.Got != srv.Identity.Fingerprint || fm.Want != other.Fingerprint {
				t.Fatalf("dial with the wrong pin = %v", err)
			}
			opts.TLS = tlsconf.ClientOptions{}
			if _, err := endpoint.Dial(testCtx(t), srv.Addr, "alknet/echo", opts); !errors.Is(err, tlsconf.ErrNoServerVerification) {
				t.Fatalf("dial without verification = %v", err)
			}
		})
	}
}

func TestQUICHandshakeTimeoutReleasesTheSlot(t *testing.T) {
	reg := newRegistry(t, map[string]core.Handler{"alknet/echo": coretest.Echo()})
	// Long enough for the test to see the pending handshake counted, even on a busy machine.
	cfg := core.DynamicConfig{Limits: core.Limits{HandshakeTimeout: 500 * time.Millisecond}}
	srv := coretest.NewServer(t, reg, coretest.WithConfig(cfg))
	// A relay that delivers the client's first packet (its Initial) and nothing else:
	// the server starts a handshake that never finishes.
	relay, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer relay.Close()
	upstream, err := net.Dial("udp", srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer upstream.Close()
	relayed := make(chan struct{})
	go func() {
		buf := make([]byte, 2048)
		n, _, err := relay.ReadFrom(buf)
		if err == nil {
			_, _ = upstream.Write(buf[:n])
		}
		close(relayed)
		for {
			if _, _, err := relay.ReadFrom(buf); err != nil {
				return
			}
		}
	}()
	dialDone := make(chan error, 1)
	go func() {
		opts := srv.DialOptions(nil, endpoint.NetworkQUIC)
		opts.HandshakeTimeout = 3 * time.Second
		_, err := endpoint.Dial(context.Background(), relay.LocalAddr().String(), "alknet/echo", opts)
		dialDone <- err
	}()
	<-relayed
	waitFor(t, func() bool { return srv.Endpoint.Stats().Connections == 1 })
	// The handshake times out on the server and its MaxConnections slot is released.
	waitFor(t, func() bool { return srv.Endpoint.Stats().Connections == 0 })
	if err := <-dialDone; err == nil {
		t.Fatal("dial through the black hole succeeded")
	}
	if srv.Endpoint.Stats().Accepted != 0 {
		t.Fatal("a handler ran")
	}
}
