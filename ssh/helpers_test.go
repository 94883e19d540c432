package ssh_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/core/coretest"
	"github.com/alknet/alknet/core/endpoint"
	"github.com/alknet/alknet/ssh"
)

// stFailSafe bounds every blocking wait of these tests so that a bug fails a test
// instead of hanging it. It is never used to synchronise anything.
const stFailSafe = 10 * time.Second

// stCtx is a context bounded by stFailSafe and cancelled at the end of the test.
func stCtx(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), stFailSafe)
	t.Cleanup(cancel)
	return ctx
}

// ---------------------------------------------------------------------------------
// Keys and identities

// stSigner returns a fresh Ed25519 signer.
func stSigner(t testing.TB) gossh.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSigner(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// stECDSASigner returns a fresh ECDSA P-256 signer.
func stECDSASigner(t testing.TB) gossh.Signer {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := gossh.NewSignerFromKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// stIdentities is a map-based core.IdentityProvider keyed by ssh.KeyFingerprint.
type stIdentities struct {
	mu sync.Mutex
	m  map[string]core.Identity
}

func stNewIdentities() *stIdentities { return &stIdentities{m: map[string]core.Identity{}} }

// add maps the key of s to identity id with scopes; it returns p for chaining.
func (p *stIdentities) add(s gossh.Signer, id string, scopes ...string) *stIdentities {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.m[ssh.KeyFingerprint(s.PublicKey())] = core.Identity{ID: id, Scopes: scopes}
	return p
}

// clone returns an independent copy (for Reload tests).
func (p *stIdentities) clone() *stIdentities {
	p.mu.Lock()
	defer p.mu.Unlock()
	c := stNewIdentities()
	for k, v := range p.m {
		c.m[k] = v.Clone()
	}
	return c
}

func (p *stIdentities) remove(s gossh.Signer) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.m, ssh.KeyFingerprint(s.PublicKey()))
}

// ResolveFromFingerprint implements core.IdentityProvider.
func (p *stIdentities) ResolveFromFingerprint(fp string) (*core.Identity, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	id, ok := p.m[fp]
	if !ok {
		return nil, false
	}
	c := id.Clone()
	return &c, true
}

// ResolveFromToken implements core.IdentityProvider; SSH never uses tokens.
func (p *stIdentities) ResolveFromToken(core.AuthToken) (*core.Identity, bool) { return nil, false }

// stCA is a certificate authority for tests.
type stCA struct {
	Signer gossh.Signer
}

func stNewCA(t testing.TB) *stCA { return &stCA{Signer: stSigner(t)} }

// authority returns the CertAuthority entry of the CA with scopes.
func (ca *stCA) authority(scopes ...string) ssh.CertAuthority {
	return ssh.CertAuthority{Key: ca.Signer.PublicKey(), Comment: "st-ca", Scopes: scopes}
}

// cert signs a user certificate for user's key: principal "alice", valid from an
// hour ago to an hour from now, unless mutate changes it.
func (ca *stCA) cert(t testing.TB, user gossh.Signer, mutate func(c *gossh.Certificate)) *gossh.Certificate {
	t.Helper()
	now := time.Now()
	c := &gossh.Certificate{
		Key:             user.PublicKey(),
		Serial:          1,
		CertType:        gossh.UserCert,
		KeyId:           "st-cert",
		ValidPrincipals: []string{"alice"},
		ValidAfter:      uint64(now.Add(-time.Hour).Unix()),
		ValidBefore:     uint64(now.Add(time.Hour).Unix()),
		Permissions:     gossh.Permissions{CriticalOptions: map[string]string{}, Extensions: map[string]string{}},
	}
	if mutate != nil {
		mutate(c)
	}
	if err := c.SignCert(rand.Reader, ca.Signer); err != nil {
		t.Fatal(err)
	}
	return c
}

// ---------------------------------------------------------------------------------
// Logs

// stLogs captures a server's log lines (slog text handler, time dropped) and lets a
// test wait for a line without sleeping.
type stLogs struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{}
}

func stNewLogs() *stLogs { return &stLogs{changed: make(chan struct{})} }

func (l *stLogs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	close(l.changed)
	l.changed = make(chan struct{})
	return len(p), nil
}

// logger returns a debug-level text logger writing into l, without the time
// attribute (so that no timestamp digits can look like a port).
func (l *stLogs) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{
		Level: slog.LevelDebug,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))
}

func (l *stLogs) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// stRecord is one parsed log line: its attributes in order.
type stRecord struct {
	Line string
	Keys []string
	Attr map[string]string
}

// records returns the parsed lines whose msg is msg.
func (l *stLogs) records(msg string) []stRecord {
	var out []stRecord
	for _, line := range strings.Split(l.String(), "\n") {
		if line == "" {
			continue
		}
		r := stParseLogLine(line)
		if r.Attr["msg"] == msg {
			out = append(out, r)
		}
	}
	return out
}

// wait blocks until at least n lines with msg have been logged, then returns them.
func (l *stLogs) wait(t testing.TB, msg string, n int) []stRecord {
	t.Helper()
	timer := time.NewTimer(stFailSafe)
	defer timer.Stop()
	for {
		l.mu.Lock()
		ch := l.changed
		l.mu.Unlock()
		if rs := l.records(msg); len(rs) >= n {
			return rs
		}
		select {
		case <-ch:
		case <-timer.C:
			t.Fatalf("no %d log lines %q within %v; log:\n%s", n, msg, stFailSafe, l.String())
		}
	}
}

// waitAddr blocks until a line with msg and remote_addr addr has been logged.
func (l *stLogs) waitAddr(t testing.TB, msg, addr string) stRecord {
	t.Helper()
	timer := time.NewTimer(stFailSafe)
	defer timer.Stop()
	for {
		l.mu.Lock()
		ch := l.changed
		l.mu.Unlock()
		for _, r := range l.records(msg) {
			if r.Attr["remote_addr"] == addr {
				return r
			}
		}
		select {
		case <-ch:
		case <-timer.C:
			t.Fatalf("no log line %q for %s within %v; log:\n%s", msg, addr, stFailSafe, l.String())
		}
	}
}

// stParseLogLine parses one line of slog's text handler.
func stParseLogLine(line string) stRecord {
	r := stRecord{Line: line, Attr: map[string]string{}}
	rest := line
	for {
		rest = strings.TrimLeft(rest, " ")
		eq := strings.IndexByte(rest, '=')
		if eq < 0 {
			return r
		}
		key := rest[:eq]
		rest = rest[eq+1:]
		var val string
		if strings.HasPrefix(rest, `"`) {
			i := 1
			for i < len(rest) && rest[i] != '"' {
				if rest[i] == '\\' {
					i++
				}
				i++
			}
			if i >= len(rest) {
				i = len(rest) - 1
			}
			q := rest[:i+1]
			if u, err := strconv.Unquote(q); err == nil {
				val = u
			} else {
				val = q
			}
			rest = rest[i+1:]
		} else if sp := strings.IndexByte(rest, ' '); sp >= 0 {
			val, rest = rest[:sp], rest[sp:]
		} else {
			val, rest = rest, ""
		}
		r.Keys = append(r.Keys, key)
		r.Attr[key] = val
	}
}

// ---------------------------------------------------------------------------------
// Servers

// stNode is a running ssh.Server reachable over one transport.
type stNode struct {
	Srv       *ssh.Server
	Host      gossh.Signer
	Pin       string
	Logs      *stLogs
	Transport string // "tcp", "quic" or "tls": what the server logs and matches rules on
	Addr      string
	Cfg       ssh.Config // the configuration the server started with (host key and logger filled in)

	connect func(ctx context.Context, cc ssh.ClientConfig) (*ssh.Client, error)
	stopFn  func() error
}

// stFill completes cfg with a host key and a log capture when it has none.
func stFill(t testing.TB, cfg *ssh.Config) (gossh.Signer, *stLogs) {
	t.Helper()
	if cfg.HostKey == nil {
		cfg.HostKey = stSigner(t)
	}
	logs := stNewLogs()
	if cfg.Logger == nil {
		cfg.Logger = logs.logger()
	}
	return cfg.HostKey, logs
}

// stStartTCP serves cfg with Serve on a TCP loopback listener; t.Cleanup stops it
// and waits for Serve to return.
func stStartTCP(t testing.TB, cfg ssh.Config) *stNode {
	t.Helper()
	host, logs := stFill(t, &cfg)
	srv, err := ssh.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	var once sync.Once
	var serveErr error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case serveErr = <-done:
			case <-time.After(stFailSafe):
				serveErr = errors.New("Serve did not return after its context was cancelled")
			}
		})
		return serveErr
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	addr := ln.Addr().String()
	n := &stNode{Srv: srv, Host: host, Pin: ssh.KeyFingerprint(host.PublicKey()), Logs: logs, Transport: ssh.TransportTCP, Addr: addr, Cfg: cfg, stopFn: stop}
	n.connect = func(ctx context.Context, cc ssh.ClientConfig) (*ssh.Client, error) {
		var d net.Dialer
		nc, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		return ssh.NewClientConn(ctx, nc, addr, cc)
	}
	return n
}

// stStartCore serves cfg as the alknet/ssh handler of a coretest endpoint, reached
// over QUIC or TCP+TLS.
func stStartCore(t testing.TB, cfg ssh.Config, network endpoint.Network) *stNode {
	t.Helper()
	host, logs := stFill(t, &cfg)
	srv, err := ssh.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	reg := core.NewRegistry()
	if err := reg.Register(srv); err != nil {
		t.Fatal(err)
	}
	ts := coretest.NewServer(t, reg)
	client := coretest.NewIdentity(t)
	transport := ssh.TransportQUIC
	if network == endpoint.NetworkTCP {
		transport = ssh.TransportTLS
	}
	n := &stNode{Srv: srv, Host: host, Pin: ssh.KeyFingerprint(host.PublicKey()), Logs: logs, Transport: transport, Addr: ts.Addr, Cfg: cfg}
	n.connect = func(ctx context.Context, cc ssh.ClientConfig) (*ssh.Client, error) {
		cc.Transport = ts.DialOptions(client, network)
		return ssh.Dial(ctx, ts.Addr, cc)
	}
	n.stopFn = func() error { return nil }
	return n
}

// stStarters are the three ways to reach a server, for table-driven tests.
var stStarters = []struct {
	name  string
	start func(t testing.TB, cfg ssh.Config) *stNode
}{
	{"tcp", stStartTCP},
	{"quic", func(t testing.TB, cfg ssh.Config) *stNode { return stStartCore(t, cfg, endpoint.NetworkQUIC) }},
	{"tls", func(t testing.TB, cfg ssh.Config) *stNode { return stStartCore(t, cfg, endpoint.NetworkTCP) }},
}

// dial logs in with cc (HostKey defaults to the node's pin); on success t.Cleanup
// closes the client.
func (n *stNode) dial(t testing.TB, cc ssh.ClientConfig) (*ssh.Client, error) {
	t.Helper()
	if cc.HostKey == "" {
		cc.HostKey = n.Pin
	}
	ctx, cancel := context.WithTimeout(context.Background(), stFailSafe)
	defer cancel()
	c, err := n.connect(ctx, cc)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { _ = c.Close() })
	return c, nil
}

// mustDial logs in with signer as user (DefaultUser when empty) or fails the test.
func (n *stNode) mustDial(t testing.TB, signer gossh.Signer) *ssh.Client {
	t.Helper()
	c, err := n.dial(t, ssh.ClientConfig{Signer: signer})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	return c
}

// stop stops a TCP node and waits for Serve to return (a no-op for core nodes).
func (n *stNode) stop(t testing.TB) {
	t.Helper()
	if err := n.stopFn(); err != nil {
		t.Fatalf("Serve: %v", err)
	}
}

// stRawDial logs in to a TCP node with a hand-made gossh configuration.
func stRawDial(t testing.TB, n *stNode, cc *gossh.ClientConfig) (*gossh.Client, error) {
	t.Helper()
	if cc.HostKeyCallback == nil {
		cc.HostKeyCallback = gossh.FixedHostKey(n.Host.PublicKey())
	}
	cc.Timeout = stFailSafe
	nc, err := net.DialTimeout("tcp", n.Addr, stFailSafe)
	if err != nil {
		t.Fatal(err)
	}
	_ = nc.SetDeadline(time.Now().Add(stFailSafe))
	sc, chans, reqs, err := gossh.NewClientConn(nc, n.Addr, cc)
	if err != nil {
		_ = nc.Close()
		return nil, err
	}
	_ = nc.SetDeadline(time.Time{})
	c := gossh.NewClient(sc, chans, reqs)
	t.Cleanup(func() { _ = c.Close() })
	return c, nil
}

// ---------------------------------------------------------------------------------
// Sessions

// stResult is the outcome of one exec.
type stResult struct {
	Stdout, Stderr string
	Err            error
}

// stRun runs cmd on a new session with stdin (nil: none) and returns its output and
// Run's error; it fails the test if the session cannot be opened or Run hangs.
func stRun(t testing.TB, c *gossh.Client, cmd string, stdin []byte) stResult {
	t.Helper()
	sess, err := c.NewSession()
	if err != nil {
		t.Fatalf("new session: %v", err)
	}
	defer sess.Close()
	var out, errb bytes.Buffer
	sess.Stdout, sess.Stderr = &out, &errb
	if stdin != nil {
		sess.Stdin = bytes.NewReader(stdin)
	}
	done := make(chan error, 1)
	go func() { done <- sess.Run(cmd) }()
	select {
	case err = <-done:
	case <-time.After(stFailSafe):
		_ = sess.Close()
		t.Fatalf("exec %q did not finish within %v", cmd, stFailSafe)
	}
	return stResult{Stdout: out.String(), Stderr: errb.String(), Err: err}
}

// stExitStatus returns the exit status in err (0 for nil, -1 when err is not an
// exit status).
func stExitStatus(err error) int {
	if err == nil {
		return 0
	}
	var ee *gossh.ExitError
	if errors.As(err, &ee) {
		return ee.ExitStatus()
	}
	return -1
}

// stMustEcho checks that the connection is usable: exec "echo alive" prints
// "alive\n" (the server must allow echo for the identity).
func stMustEcho(t testing.TB, c *gossh.Client) {
	t.Helper()
	r := stRun(t, c, "echo alive", nil)
	if r.Err != nil || r.Stdout != "alive\n" {
		t.Fatalf("connection not usable: exec echo alive = %q, %v", r.Stdout, r.Err)
	}
}

// stEchoExec is an executor allowing echo, false, cat and env for ScopeExec.
func stEchoExec() *ssh.AllowListExecutor {
	return &ssh.AllowListExecutor{Allow: []string{"echo", "false", "cat", "env"}}
}

// stWhoamiName is the subsystem stWhoami serves.
const stWhoamiName = "st-whoami"

// stWhoami is a subsystem that writes the JSON of the session's identity.
func stWhoami(_ context.Context, ch ssh.Channel, id core.Identity) error {
	return json.NewEncoder(ch).Encode(id)
}

// stSubsystems returns a Subsystems map with stWhoami.
func stSubsystems() map[string]ssh.SubsystemHandler {
	return map[string]ssh.SubsystemHandler{stWhoamiName: stWhoami}
}

// stIdentityOf asks the st-whoami subsystem who the connection is.
func stIdentityOf(t testing.TB, c *gossh.Client) core.Identity {
	t.Helper()
	sess, err := c.NewSession()
	if err != nil {
		t.Fatalf("new session: %v", err)
	}
	defer sess.Close()
	out, err := sess.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := sess.RequestSubsystem(stWhoamiName); err != nil {
		t.Fatalf("subsystem %s: %v", stWhoamiName, err)
	}
	b, err := io.ReadAll(out)
	if err != nil {
		t.Fatalf("read identity: %v", err)
	}
	var id core.Identity
	if err := json.Unmarshal(b, &id); err != nil {
		t.Fatalf("identity %q: %v", b, err)
	}
	return id
}

// ---------------------------------------------------------------------------------
// TCP helpers

// stEchoServer runs a TCP echo server on 127.0.0.1 that half-closes after the
// client's EOF; t.Cleanup stops it and every connection.
func stEchoServer(t testing.TB) (addr string, port uint16) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns = map[net.Conn]bool{}
	)
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = true
			mu.Unlock()
			wg.Go(func() {
				defer func() {
					mu.Lock()
					delete(conns, c)
					mu.Unlock()
					_ = c.Close()
				}()
				if _, err := io.Copy(c, c); err == nil {
					_ = c.(*net.TCPConn).CloseWrite()
				}
				_, _ = io.Copy(io.Discard, c)
			})
		}
	})
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		for c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	ap := netip.MustParseAddrPort(ln.Addr().String())
	return ln.Addr().String(), ap.Port()
}

// stClosedPort returns a loopback port nothing listens on (one that was just freed).
func stClosedPort(t testing.TB) uint16 {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := netip.MustParseAddrPort(ln.Addr().String()).Port()
	_ = ln.Close()
	return port
}

// stEcho writes n random bytes to c (concurrently with reading), half-closes c and
// checks that exactly the same bytes come back before EOF.
func stEcho(t testing.TB, c io.ReadWriter, n int) {
	t.Helper()
	if dc, ok := c.(interface{ SetDeadline(time.Time) error }); ok {
		_ = dc.SetDeadline(time.Now().Add(stFailSafe))
	}
	msg := make([]byte, n)
	_, _ = rand.Read(msg)
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write(msg)
		if err == nil {
			if cw, ok := c.(interface{ CloseWrite() error }); ok {
				err = cw.CloseWrite()
			} else {
				err = fmt.Errorf("%T cannot half-close", c)
			}
		}
		werr <- err
	}()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("echo read: %v (after %d bytes)", err, len(got))
	}
	if err := <-werr; err != nil {
		t.Fatalf("echo write: %v", err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatalf("echo: got %d bytes, want %d identical bytes", len(got), len(msg))
	}
}

// stResolver is a fake ssh.Resolver over a fixed map.
type stResolver map[string][]netip.Addr

func (r stResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	a, ok := r[strings.TrimSuffix(host, ".")]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return a, nil
}

// stPolicy builds a forwarding policy from (target, action) pairs.
func stPolicy(t testing.TB, def ssh.Action, rules ...any) ssh.ForwardingPolicy {
	t.Helper()
	p := ssh.ForwardingPolicy{Default: def}
	for i := 0; i+1 < len(rules); i += 2 {
		tg, err := ssh.ParseTarget(rules[i].(string))
		if err != nil {
			t.Fatal(err)
		}
		p.Rules = append(p.Rules, ssh.Rule{Target: tg, Action: rules[i+1].(ssh.Action)})
	}
	return p
}

// stWaitErr waits for an error from ch within the fail-safe.
func stWaitErr(t testing.TB, what string, ch <-chan error) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(stFailSafe):
		t.Fatalf("%s did not return within %v", what, stFailSafe)
		return nil
	}
}

// stMustAddr parses an IP address.
func stMustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }
