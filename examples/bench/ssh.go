package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/core/endpoint"
	"github.com/alknet/alknet/core/tlsconf"
	alkssh "github.com/alknet/alknet/ssh"
)

// Metric keys of the ssh benchmark, for -only and profile labels.
const (
	sshMetricBulk      = "bulk"
	sshMetricHandshake = "handshake"
	// sshMetricResumed is sshMetricHandshake with the endpoint arms resuming their TLS
	// session (tlsconf.SessionCache); the other arms have no TLS and repeat the
	// handshake metric.
	sshMetricResumed = "handshake-resumed"
)

// sshMetrics lists the metric keys in table order.
var sshMetrics = []string{sshMetricBulk, sshMetricHandshake, sshMetricResumed}

// sshGoalMetrics are the metrics the goal lines judge.
var sshGoalMetrics = []string{sshMetricBulk, sshMetricHandshake}

// Arm names of the ssh benchmark, for -arms and profile labels ("arm").
const (
	sshArmQUIC = "alknet-quic"
	sshArmTLS  = "alknet-tls"
	// sshArmTCP is alknet's ssh.Server on a plain TCP listener, dialled with
	// alknet's ssh.NewClientConn: alknet's ssh layer without the endpoint.
	sshArmTCP = "alknet-tcp"
	// sshArmBare is a server and a client written with x/crypto/ssh alone
	// (sshbare.go), no alknet type on either side.
	sshArmBare = "xssh-tcp"
	// sshArmOpenSSH is OpenSSH's sshd on loopback, dialled with the bare
	// x/crypto/ssh client.
	sshArmOpenSSH = "openssh"
)

// sshArms lists the arms in column order.
var sshArms = []string{sshArmQUIC, sshArmTLS, sshArmTCP, sshArmBare, sshArmOpenSSH}

// sshArmTitles are the column headers of the arms.
var sshArmTitles = map[string]string{
	sshArmQUIC:    "alknet/ssh QUIC",
	sshArmTLS:     "alknet/ssh TCP+TLS",
	sshArmTCP:     "alknet/ssh TCP",
	sshArmBare:    "x/crypto/ssh TCP",
	sshArmOpenSSH: "OpenSSH sshd TCP",
}

// sshBareRatioTitles are the headers of the ratio columns against the bare
// x/crypto/ssh arm, one per alknet arm.
var sshBareRatioTitles = map[string]string{
	sshArmQUIC: "QUIC vs x/crypto/ssh",
	sshArmTLS:  "TCP+TLS vs x/crypto/ssh",
	sshArmTCP:  "alknet TCP vs x/crypto/ssh",
}

// sshOpenSSHRatioTitles are the headers of the ratio columns against OpenSSH, one per
// other arm.
var sshOpenSSHRatioTitles = map[string]string{
	sshArmQUIC: "QUIC vs OpenSSH",
	sshArmTLS:  "TCP+TLS vs OpenSSH",
	sshArmTCP:  "alknet TCP vs OpenSSH",
	sshArmBare: "x/crypto/ssh vs OpenSSH",
}

const (
	// sshLayerGoalRatio is the goal for alknet's ssh layer: direct-tcpip
	// throughput and handshake rate of alknet's ssh.Server and client on plain TCP at
	// least this share of the bare x/crypto/ssh server and client's.
	sshLayerGoalRatio = 0.95
	// sshGoalRatio is the earlier goal: direct-tcpip throughput and handshake rate over
	// alknet/ssh QUIC at least this share of (bare) x/crypto/ssh over TCP's.
	sshGoalRatio = 0.9
	// sshCheckSize is the random payload the correctness check echoes through each arm.
	sshCheckSize = 1 << 20
	// sshRestTimeout bounds the wait for the servers to let go of a round's connections.
	sshRestTimeout = 10 * time.Second
)

type sshBenchOptions struct {
	runOptions
	parallel  int
	bulkBytes byteSize
	sshdBin   string // the sshd binary ("" looks it up)
	// host and client are the keys of every arm, sshd the OpenSSH server when the
	// openssh arm runs (started before the fixture, so that an sshd that cannot start
	// leaves the arm out with a note rather than failing the run).
	host, client sshKey
	sshd         *sshdProcess
	// note says why the openssh arm is missing, when it is.
	note string
}

func runSSH(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	quietQUICBufferWarning()
	o := sshBenchOptions{bulkBytes: 64 << 20}
	fs := newFlagSet("ssh", "Compares alknet/ssh over QUIC (and over the endpoint's TCP+TLS twin), and alknet's\n"+
		"ssh.Server and client on a plain TCP listener, with a server and client written with\n"+
		"x/crypto/ssh alone and with OpenSSH's sshd (when installed; a temporary configuration,\n"+
		"run in the foreground), on loopback: bulk throughput through one direct-tcpip channel\n"+
		"to an in-process TCP sink, and new connections/s (connection + SSH handshake +\n"+
		"publickey auth, closed) with -conns-parallel dialers.", stderr)
	o.sharedFlags(fs, orderRotating, sshMetrics, sshArms, "arm, side, metric")
	fs.DurationVar(&o.duration, "duration", 2*time.Second, "length of one handshake round per arm")
	fs.IntVar(&o.parallel, "conns-parallel", 4, "concurrent dialers in the "+sshMetricHandshake+" metric")
	fs.Var(&o.bulkBytes, "bulk-bytes", "`size` written through the channel in one "+sshMetricBulk+" round (bytes, or with a KiB, MiB or GiB suffix)")
	fs.DurationVar(&o.settle, "settle", 50*time.Millisecond, "pause after each arm, once its connections are gone, after a GC")
	fs.StringVar(&o.sshdBin, "sshd", "", "sshd binary of the "+sshArmOpenSSH+" arm (default: sshd in PATH, else /usr/sbin/sshd)")
	help, err := parseFlags(fs, args, stderr, "smoke run: 1 round, 300ms, 8 MiB (flags given explicitly win)", map[string]func(){
		"rounds":     func() { o.rounds = 1 },
		"duration":   func() { o.duration = 300 * time.Millisecond },
		"bulk-bytes": func() { o.bulkBytes = 8 << 20 },
		"settle":     func() { o.settle = 10 * time.Millisecond },
	})
	if help || err != nil {
		return err
	}
	if err := o.validate(atLeast1("-conns-parallel", o.parallel), positive("-bulk-bytes", o.bulkBytes)); err != nil {
		return err
	}
	arms, err := selectArms(o.arms, sshArms)
	if err != nil {
		return err
	}
	if o.host, err = newSSHKey(); err != nil {
		return err
	}
	if o.client, err = newSSHKey(); err != nil {
		return err
	}
	if slices.Contains(arms, sshArmOpenSSH) {
		if err := o.startOpenSSH(ctx, arms, stderr); err != nil {
			return err
		}
		if o.sshd != nil {
			defer o.sshd.stop()
		}
	}
	return armBench[sshBenchOptions, *sshFixture]{
		metrics: sshMetrics,
		arms:    sshArms,
		start:   newSSHFixture,
		warm: func(o sshBenchOptions) sshBenchOptions {
			o.duration = min(o.duration, 300*time.Millisecond)
			o.bulkBytes = min(o.bulkBytes, 16<<20)
			return o
		},
		report: sshReport,
	}.run(ctx, o, stdout, stderr)
}

// startOpenSSH starts sshd for the openssh arm. Where sshd is not installed or does not
// start, it leaves the arm out with a note when the arms were not chosen with -arms,
// and fails otherwise.
func (o *sshBenchOptions) startOpenSSH(ctx context.Context, arms []string, stderr io.Writer) error {
	bin, err := findSSHD(o.sshdBin)
	var why string
	if err != nil {
		why = fmt.Sprintf("missing: %v (Debian: apt-get install openssh-server)", err)
	} else {
		o.sshdBin = bin
		o.sshd, err = startSSHD(ctx, bin, sshdConfig{forwarding: true}, o.host, o.client)
		if err != nil {
			why = fmt.Sprintf("sshd could not start: %s (as a user other than root, sshd may need its privilege separation directory: sudo mkdir -p /run/sshd)",
				strings.Join(strings.Fields(err.Error()), " "))
		}
	}
	if why == "" {
		return nil
	}
	if o.arms != "" {
		return fmt.Errorf("-arms %s: %s", sshArmOpenSSH, why)
	}
	o.arms = strings.Join(slices.DeleteFunc(slices.Clone(arms), func(a string) bool { return a == sshArmOpenSSH }), ",")
	o.note = fmt.Sprintf("the %s arm did not run: %s", sshArmOpenSSH, why)
	fmt.Fprintln(stderr, "bench ssh:", o.note)
	return nil
}

// sshKey is an Ed25519 key as both sides of the bench use it: an SSH signer, and for
// the alknet arms a TLS certificate carrying the same key (one key file serves both, as
// on a node).
type sshKey struct {
	key    ed25519.PrivateKey
	signer gossh.Signer
	cert   tls.Certificate
	fp     string // tlsconf.Fingerprint, equal to alkssh.KeyFingerprint of the signer
}

func newSSHKey() (sshKey, error) {
	key, err := tlsconf.GenerateKey()
	if err != nil {
		return sshKey{}, err
	}
	cert, err := tlsconf.Certificate(key)
	if err != nil {
		return sshKey{}, err
	}
	signer, err := alkssh.NewSigner(key)
	if err != nil {
		return sshKey{}, err
	}
	k := sshKey{key: key, signer: signer, cert: cert, fp: tlsconf.Fingerprint(key)}
	if got := alkssh.KeyFingerprint(signer.PublicKey()); got != k.fp {
		return sshKey{}, fmt.Errorf("SSH fingerprint %s differs from the TLS one %s", got, k.fp)
	}
	return k, nil
}

// sshTarget is the in-process TCP server the direct-tcpip channels connect to: a sink
// (read to EOF, answer the byte count, half-close; sinkStream) and an echo, on two
// loopback ports.
type sshTarget struct {
	sinkLn, echoLn net.Listener
	active         atomic.Int64 // connections being served
	mu             sync.Mutex
	conns          map[net.Conn]struct{}
	closed         bool
	wg             sync.WaitGroup
}

func startSSHTarget() (*sshTarget, error) {
	t := &sshTarget{conns: make(map[net.Conn]struct{})}
	var err error
	if t.sinkLn, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		return nil, err
	}
	if t.echoLn, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		_ = t.sinkLn.Close()
		return nil, err
	}
	t.wg.Go(func() { t.serve(t.sinkLn, sinkStream) })
	t.wg.Go(func() {
		t.serve(t.echoLn, func(rw io.ReadWriter) error {
			// Through plain Reader and Writer, so that the copy goes through the
			// buffer rather than the connection's ReadFrom (splice) from itself.
			_, err := io.CopyBuffer(struct{ io.Writer }{rw}, struct{ io.Reader }{rw}, make([]byte, echoBufSize))
			return err
		})
	})
	return t, nil
}

// serve accepts on ln until it closes, running each connection through fn and then
// half-closing it (so the peer reads the answer to EOF) before closing it.
func (t *sshTarget) serve(ln net.Listener, fn func(io.ReadWriter) error) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		t.mu.Lock()
		if t.closed {
			t.mu.Unlock()
			_ = c.Close()
			return
		}
		t.conns[c] = struct{}{}
		t.active.Add(1)
		t.wg.Add(1)
		t.mu.Unlock()
		go func() {
			defer t.wg.Done()
			defer t.active.Add(-1)
			if err := fn(c); err == nil {
				if tc, ok := c.(*net.TCPConn); ok {
					_ = tc.CloseWrite()
					// Wait for the peer's close so that the answer is never reset away.
					_, _ = io.Copy(io.Discard, c)
				}
			}
			_ = c.Close()
			t.mu.Lock()
			delete(t.conns, c)
			t.mu.Unlock()
		}()
	}
}

func (t *sshTarget) sinkPort() uint16 { return uint16(t.sinkLn.Addr().(*net.TCPAddr).Port) }
func (t *sshTarget) echoPort() uint16 { return uint16(t.echoLn.Addr().(*net.TCPAddr).Port) }

func (t *sshTarget) close() error {
	t.mu.Lock()
	t.closed = true
	_ = t.sinkLn.Close()
	_ = t.echoLn.Close()
	for c := range t.conns {
		_ = c.Close()
	}
	t.mu.Unlock()
	t.wg.Wait()
	return nil
}

// countingListener counts the connections it accepted that are not closed yet, so
// that settle can wait for the plain TCP SSH server to let go of a round's.
type countingListener struct {
	net.Listener
	active *atomic.Int64
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.active.Add(1)
	return &countedConn{Conn: c, active: l.active}, nil
}

type countedConn struct {
	net.Conn
	active *atomic.Int64
	once   sync.Once
}

func (c *countedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.active.Add(-1) })
	return err
}

// sshClient is an SSH client connection as the rounds use it: alknet's *ssh.Client,
// or the bare x/crypto/ssh one.
type sshClient interface {
	// Open opens a direct-tcpip channel to host:port.
	Open(ctx context.Context, host string, port uint16) (net.Conn, error)
	Close() error
}

// sshArmState is one arm: its SSH server, its target, the long-lived client the bulk
// rounds open their channels on, and how to dial a fresh connection.
type sshArmState struct {
	name   string
	target *sshTarget
	client sshClient
	// dial opens a new SSH connection and logs in.
	dial func(ctx context.Context) (sshClient, error)
	// dialResumed is dial resuming the TLS session of an earlier dialResumed, and
	// resumed counts the server's resumed connections so far; both are nil on the arms
	// without TLS.
	dialResumed func(ctx context.Context) (sshClient, error)
	resumed     func() uint64
	// open counts the server's open connections (resting: the long-lived client's).
	open func() int
	// helperCPU, when set, is the CPU time of the arm's server processes (sshd).
	helperCPU func() time.Duration
}

// sshFixture holds every arm.
type sshFixture struct {
	host, client sshKey
	sshd         *sshdProcess // nil unless the openssh arm runs; runSSH stops it
	arms         []string     // selected arms, column order
	state        map[string]*sshArmState
	closers
}

func newSSHFixture(ctx context.Context, arms []string, o sshBenchOptions) (_ *sshFixture, err error) {
	f := &sshFixture{arms: arms, state: make(map[string]*sshArmState), host: o.host, client: o.client, sshd: o.sshd}
	defer func() {
		if err != nil {
			f.close()
		}
	}()
	for _, a := range arms {
		var st *sshArmState
		st, err = f.startArm(ctx, a)
		if err != nil {
			return nil, fmt.Errorf("start %s: %w", a, err)
		}
		f.state[a] = st
	}
	return f, nil
}

// newSSHServer is the server every arm runs: the host key, the client's key known by
// its fingerprint, every direct-tcpip destination allowed.
func (f *sshFixture) newSSHServer() (*alkssh.Server, *core.DynamicStore, error) {
	store, err := benchClientStore(f.client.fp)
	if err != nil {
		return nil, nil, err
	}
	srv, err := alkssh.NewServer(alkssh.Config{
		HostKey:    f.host.signer,
		Identities: core.NewConfigIdentityProvider(store, nil),
		Forwarding: alkssh.ForwardingPolicy{Default: alkssh.Allow},
	})
	return srv, store, err
}

// clientConfig is the SSH client's configuration; transport is only used by ssh.Dial.
func (f *sshFixture) clientConfig(network endpoint.Network) alkssh.ClientConfig {
	cert := f.client.cert
	return alkssh.ClientConfig{
		Transport: endpoint.DialOptions{
			Network: network,
			TLS:     tlsconf.ClientOptions{Certificate: &cert, Pin: f.host.fp},
		},
		Signer:  f.client.signer,
		HostKey: alkssh.KeyFingerprint(f.host.signer.PublicKey()),
	}
}

// startArm starts the arm's target and server under the labels arm and side (so their
// goroutines carry them in a CPU profile) and dials its long-lived client.
func (f *sshFixture) startArm(ctx context.Context, name string) (*sshArmState, error) {
	st := &sshArmState{name: name}
	var err error
	pprof.Do(ctx, pprof.Labels("arm", name, "side", "target"), func(context.Context) {
		st.target, err = startSSHTarget()
	})
	if err != nil {
		return nil, err
	}
	f.add(func(context.Context) error { return st.target.close() })

	switch name {
	case sshArmQUIC, sshArmTLS, sshArmTCP:
		if err := f.startAlknetArm(ctx, st); err != nil {
			return nil, err
		}
	case sshArmBare:
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		addr := ln.Addr().String()
		active := new(atomic.Int64)
		srv := newBareSSHServer(f.host.signer, f.client.signer)
		srv.serve(context.WithoutCancel(ctx), name, countingListener{Listener: ln, active: active})
		f.add(func(context.Context) error { return srv.close() })
		st.dial = func(ctx context.Context) (sshClient, error) {
			return dialBareSSH(ctx, addr, "bench", f.client.signer, f.host.signer.PublicKey())
		}
		st.open = func() int { return int(active.Load()) }
	case sshArmOpenSSH:
		if f.sshd == nil {
			return nil, errors.New("sshd is not running")
		}
		sshd := f.sshd
		st.dial = func(ctx context.Context) (sshClient, error) {
			return dialBareSSH(ctx, sshd.addr, sshd.user, f.client.signer, f.host.signer.PublicKey())
		}
		st.helperCPU = sshd.cpu
	default:
		return nil, fmt.Errorf("unknown arm %q", name)
	}

	pprof.Do(ctx, pprof.Labels("arm", name, "side", "client"), func(ctx context.Context) {
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		st.client, err = st.dial(dctx)
	})
	if err != nil {
		return nil, err
	}
	f.add(func(context.Context) error { _ = st.client.Close(); return nil })
	if name == sshArmOpenSSH {
		// sshd runs a process (or two) per connection: at rest, those of the
		// long-lived client's, counted as one connection as on the other arms.
		sshd := f.sshd
		restProcs := sshd.procs()
		st.open = func() int { return sshd.procs() - restProcs + 1 }
	}
	return st, nil
}

// startAlknetArm starts the arm st's alknet ssh.Server: registered on an endpoint
// listening on QUIC or TCP+TLS, or on a plain TCP listener (sshArmTCP).
func (f *sshFixture) startAlknetArm(ctx context.Context, st *sshArmState) error {
	name := st.name
	srv, store, err := f.newSSHServer()
	if err != nil {
		return err
	}
	switch name {
	case sshArmQUIC, sshArmTLS:
		network := endpoint.NetworkQUIC
		if name == sshArmTLS {
			network = endpoint.NetworkTCP
		}
		reg := core.NewRegistry()
		if err := reg.Register(srv); err != nil {
			return err
		}
		ep, err := newEndpoint(reg, f.host.cert, store, slog.New(slog.DiscardHandler))
		if err != nil {
			return err
		}
		addr, err := listenArm(ctx, ep, name, network)
		if err != nil {
			return err
		}
		f.add(ep.Shutdown)
		cfg := f.clientConfig(network)
		st.dial = func(ctx context.Context) (sshClient, error) { return alknetClient(alkssh.Dial(ctx, addr, cfg)) }
		resumeCfg := f.clientConfig(network)
		resumeCfg.Transport.TLS.Sessions = tlsconf.NewSessionCache(0)
		st.dialResumed = func(ctx context.Context) (sshClient, error) { return alknetClient(alkssh.Dial(ctx, addr, resumeCfg)) }
		st.resumed = func() uint64 { return ep.Stats().Resumed }
		st.open = func() int { return ep.Stats().Connections }
	case sshArmTCP:
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		addr := ln.Addr().String()
		active := new(atomic.Int64)
		sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		var wg sync.WaitGroup
		pprof.Do(sctx, pprof.Labels("arm", name, "side", "server"), func(sctx context.Context) {
			wg.Go(func() { _ = srv.Serve(sctx, countingListener{Listener: ln, active: active}) })
		})
		f.add(func(context.Context) error {
			cancel()
			wg.Wait()
			return nil
		})
		cfg := f.clientConfig(endpoint.NetworkTCP)
		st.dial = func(ctx context.Context) (sshClient, error) {
			var d net.Dialer
			nc, err := d.DialContext(ctx, "tcp", addr)
			if err != nil {
				return nil, err
			}
			return alknetClient(alkssh.NewClientConn(ctx, nc, addr, cfg))
		}
		st.open = func() int { return int(active.Load()) }
	}
	return nil
}

// alknetClient returns c as an sshClient, and a nil interface with err.
func alknetClient(c *alkssh.Client, err error) (sshClient, error) {
	if err != nil {
		return nil, err
	}
	return c, nil
}

// settle waits until every arm's server and target are back to rest (the long-lived
// client's connection only), collects garbage and pauses, so that one arm's teardown
// does not run during the next.
func (f *sshFixture) settle(ctx context.Context, pause time.Duration) error {
	deadline := time.Now().Add(sshRestTimeout)
	for {
		busy := ""
		for _, name := range f.arms {
			st := f.state[name]
			if n, t := st.open(), st.target.active.Load(); n > 1 || t > 0 {
				busy += fmt.Sprintf(" %s: %d SSH connections, %d target connections;", name, n, t)
			}
		}
		if busy == "" {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("connections still open %s after a round:%s", sshRestTimeout, strings.TrimSuffix(busy, ";"))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	return gcPause(ctx, pause)
}

// openChannel opens a direct-tcpip channel on c to port on the target's loopback and
// arranges for it to close when ctx ends (channels have no deadlines). stop undoes
// that; the caller closes the channel.
func openChannel(ctx context.Context, c sshClient, port uint16) (ch net.Conn, closeWrite func() error, stop func() bool, err error) {
	ch, err = c.Open(ctx, "127.0.0.1", port)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("open direct-tcpip: %w", err)
	}
	hc, ok := ch.(interface{ CloseWrite() error })
	if !ok {
		_ = ch.Close()
		return nil, nil, nil, fmt.Errorf("direct-tcpip channel %T cannot half-close", ch)
	}
	stop = context.AfterFunc(ctx, func() { _ = ch.Close() })
	return ch, hc.CloseWrite, stop, nil
}

// check makes sure, once and untimed, that every arm carries a 1 MiB random payload
// through a direct-tcpip channel to the echo and back byte-exact, half-close included,
// and that a fresh connection logs in.
func (f *sshFixture) check(ctx context.Context, _ sshBenchOptions) error {
	ctx, cancel := context.WithTimeout(ctx, 2*callTimeout)
	defer cancel()
	payload := make([]byte, sshCheckSize)
	if _, err := rand.Read(payload); err != nil {
		return err
	}
	for _, name := range f.arms {
		st := f.state[name]
		var err error
		pprof.Do(ctx, pprof.Labels("arm", name, "side", "client", "metric", "check"), func(ctx context.Context) {
			err = checkEcho(ctx, st, payload)
			if err == nil {
				err = sshHandshakeOnce(ctx, st.dial)
			}
		})
		if err != nil {
			return fmt.Errorf("check %s: %w", name, err)
		}
	}
	return nil
}

func checkEcho(ctx context.Context, st *sshArmState, payload []byte) error {
	ch, closeWrite, stop, err := openChannel(ctx, st.client, st.target.echoPort())
	if err != nil {
		return err
	}
	defer stop()
	defer ch.Close()
	werr := make(chan error, 1)
	go func() {
		_, err := ch.Write(payload)
		if err == nil {
			err = closeWrite()
		}
		werr <- err
	}()
	got, rerr := io.ReadAll(ch)
	if err := <-werr; err != nil {
		return fmt.Errorf("write: %w", err)
	}
	if rerr != nil {
		return fmt.Errorf("read after %d bytes: %w", len(got), rerr)
	}
	if !bytes.Equal(got, payload) {
		i := 0
		for i < min(len(got), len(payload)) && got[i] == payload[i] {
			i++
		}
		return fmt.Errorf("echo: got %d bytes, want %d; first difference at byte %d", len(got), len(payload), i)
	}
	return nil
}

// sshHandshakeOnce opens a new connection with dial, logs in and closes it.
func sshHandshakeOnce(ctx context.Context, dial func(context.Context) (sshClient, error)) error {
	c, err := dial(ctx)
	if err != nil {
		return err
	}
	_ = c.Close()
	return nil
}

// sshResumedRound is the handshake round of sshMetricResumed on arm st: on an arm with
// TLS, every connection resumes the TLS session of an earlier one (the first round,
// the warm-up, first connects until the server counts a resumed connection), and a
// round in which the server counted fewer resumed connections than the round made
// fails. Arms without TLS run the handshake round.
func sshResumedRound(o sshBenchOptions, st *sshArmState) func(context.Context) (sample, error) {
	if st.dialResumed == nil {
		return func(ctx context.Context) (sample, error) {
			return connsRound(ctx, o.parallel, o.duration, func(ctx context.Context) error { return sshHandshakeOnce(ctx, st.dial) })
		}
	}
	primed := false // rounds of an arm run one after another
	return func(ctx context.Context) (sample, error) {
		for i := 0; !primed; i++ {
			if i == maxPrimeConns {
				return sample{}, fmt.Errorf("no resumed connection in %d: %w", maxPrimeConns, errNotResumed)
			}
			before := st.resumed()
			if err := sshHandshakeOnce(ctx, st.dialResumed); err != nil {
				return sample{}, err
			}
			primed = st.resumed() > before
		}
		before := st.resumed()
		s, err := connsRound(ctx, o.parallel, o.duration, func(ctx context.Context) error { return sshHandshakeOnce(ctx, st.dialResumed) })
		if err == nil {
			if got := st.resumed() - before; got < uint64(s.ops) {
				err = fmt.Errorf("%d of %d connections resumed: %w", got, s.ops, errNotResumed)
			}
		}
		return s, err
	}
}

// sshBulk opens a direct-tcpip channel on the arm's long-lived client to its sink,
// writes n bytes, half-closes and reads the sink's count to EOF (bulk), and returns
// MB/s timed from the channel open. With n of at least 1 MiB, ops counts MiB, so the
// per-op columns are per MiB.
func sshBulk(ctx context.Context, st *sshArmState, n int64) (sample, error) {
	ctx, cancel := context.WithTimeout(ctx, bulkTimeout(n))
	defer cancel()
	start := time.Now()
	ch, closeWrite, stop, err := openChannel(ctx, st.client, st.target.sinkPort())
	if err != nil {
		return sample{}, err
	}
	defer stop()
	defer ch.Close()
	s, err := bulk(ctx, ch, closeWrite, n, start)
	if err != nil && ctx.Err() != nil {
		err = fmt.Errorf("%w (%w)", err, ctx.Err())
	}
	if n >= 1<<20 {
		s.ops = int(n >> 20)
	}
	return s, err
}

// bulkUnit is the per-op unit of the bulk rows.
func bulkUnit(n int64) string {
	if n >= 1<<20 {
		return "MiB"
	}
	return "transfer"
}

func (f *sshFixture) metrics(o sshBenchOptions, selected map[string]bool) []*callMetric {
	n := int64(o.bulkBytes)
	bulkM := &callMetric{key: sshMetricBulk, label: fmt.Sprintf("direct-tcpip bulk through one channel, MB/s (%s)", o.bulkBytes), unit: bulkUnit(n)}
	hsM := &callMetric{key: sshMetricHandshake, label: fmt.Sprintf("new connections/s: connect + SSH handshake + publickey auth, closed (%d %s)", o.parallel, plural(o.parallel, "dialer")), unit: "conn"}
	resM := &callMetric{key: sshMetricResumed, label: fmt.Sprintf("the same, TLS session resumed (alknet/ssh QUIC and TCP+TLS; the TCP arms have no TLS) (%d %s)", o.parallel, plural(o.parallel, "dialer")), unit: "conn"}
	for _, name := range f.arms {
		st := f.state[name]
		bulkM.arms = append(bulkM.arms, &callArm{arm: newArm(name, func(ctx context.Context) (sample, error) {
			return sshBulk(ctx, st, n)
		})})
		hsM.arms = append(hsM.arms, &callArm{arm: newArm(name, func(ctx context.Context) (sample, error) {
			return connsRound(ctx, o.parallel, o.duration, func(ctx context.Context) error { return sshHandshakeOnce(ctx, st.dial) })
		})})
		resM.arms = append(resM.arms, &callArm{arm: newArm(name, sshResumedRound(o, st))})
		bulkM.arms[len(bulkM.arms)-1].helperCPU = st.helperCPU
		hsM.arms[len(hsM.arms)-1].helperCPU = st.helperCPU
		resM.arms[len(resM.arms)-1].helperCPU = st.helperCPU
	}
	var out []*callMetric
	for _, m := range []*callMetric{bulkM, hsM, resM} {
		if selected[m.key] {
			out = append(out, m)
		}
	}
	return out
}

func sshReport(w io.Writer, o sshBenchOptions, arms []string, ms []*callMetric, loadBefore, otherCPU string) {
	machine := armMachine(
		library{"quic-go", "github.com/quic-go/quic-go"},
		library{"x/crypto", "golang.org/x/crypto"})
	if slices.Contains(arms, sshArmOpenSSH) {
		machine = append(machine, "OpenSSH: "+sshdVersion(o.sshdBin))
	}
	if o.note != "" {
		machine = append(machine, "note: "+o.note)
	}
	procs := "one process"
	if slices.Contains(arms, sshArmOpenSSH) {
		procs = "one process and sshd"
	}
	reportHeader(w, "ssh", machine, loadBefore, otherCPU, fmt.Sprintf(
		"%s, loopback; every arm has an Ed25519 host key, publickey auth of an Ed25519 client key, its library's default key exchange and cipher, "+
			"and every direct-tcpip destination allowed: "+
			"alknet/ssh QUIC and TCP+TLS are alknet's ssh.Server registered on an endpoint (ALPN alknet/ssh, TLS 1.3 with a certificate of the host key, the client presenting one of its key) "+
			"dialled with alknet's ssh.Dial; alknet/ssh TCP is the same ssh.Server's Serve on a plain TCP listener dialled with net.Dial + alknet's ssh.NewClientConn (alknet's ssh layer without the endpoint); "+
			"x/crypto/ssh TCP is a server and a client written with golang.org/x/crypto/ssh alone (ssh.NewServerConn, direct-tcpip dialled and io.Copy'd both ways; ssh.NewClientConn + Client.DialContext), no alknet type on either side; "+
			"OpenSSH sshd TCP is sshd -D -e with a temporary configuration (127.0.0.1, AllowTcpForwarding local, UsePAM no) dialled with that bare x/crypto/ssh client, a process per connection; "+
			"a correctness check (a %d MiB random payload echoed byte-exact through a direct-tcpip channel of each arm) and a warm-up pass, "+
			"then %d %s (arms interleaved, starting one arm later each round); "+
			"bulk: one long-lived SSH connection per arm, each round opens one direct-tcpip channel to an in-process TCP sink on 127.0.0.1, writes %s in %d KiB writes, half-closes and reads the sink's byte count, timed from the channel open; "+
			"handshake: %d dialers for %s, each repeating new connection + SSH handshake + publickey auth + close (QUIC and TLS handshakes included on the endpoint arms); "+
			"medians over the rounds; ratio columns against x/crypto/ssh and against OpenSSH, higher is better",
		procs, sshCheckSize>>20, o.rounds, plural(o.rounds, "round"), o.bulkBytes, writeSize>>10, o.parallel, o.duration))

	t := newArmTable(arms, sshArmTitles)
	t.addBaselineRatios(arms, sshArmBare, sshBareRatioTitles)
	t.addBaselineRatios(arms, sshArmOpenSSH, sshOpenSSHRatioTitles)
	for _, m := range ms {
		t.addRate(m)
	}
	t.write(w)
	fmt.Fprintf(w, "\n%s\n", sshGoalLine(ms, fmt.Sprintf("goal: alknet's ssh layer on plain TCP (ssh.Server + ssh.NewClientConn) ≥ %.2f× bare x/crypto/ssh, direct-tcpip throughput and handshake rate — ", sshLayerGoalRatio),
		sshArmTCP, sshArmBare, sshLayerGoalRatio))
	fmt.Fprintf(w, "\n%s\n", sshGoalLine(ms, fmt.Sprintf("goal: direct-tcpip throughput and handshake rate over alknet/ssh QUIC ≥ %.1f× bare x/crypto/ssh over TCP — ", sshGoalRatio),
		sshArmQUIC, sshArmBare, sshGoalRatio))
	if line := sshResumeLine(ms); line != "" {
		fmt.Fprintf(w, "\n%s\n", line)
	}

	fmt.Fprintf(w, "\nPer-round samples; CPU time and heap allocations per operation, medians over the rounds (whole process: client, server and target; the %s arm's CPU adds sshd's processes', from /proc):\n\n", sshArmOpenSSH)
	perRoundTable(w, ms, false)
}

// sshResumeLine compares, on each endpoint arm measured, the handshake rate and CPU
// time per connection with the TLS session resumed against a full TLS handshake; ""
// when neither metric ran.
func sshResumeLine(ms []*callMetric) string {
	var parts []string
	for _, name := range []string{sshArmQUIC, sshArmTLS} {
		n, r := findArm(ms, sshMetricHandshake, name), findArm(ms, sshMetricResumed, name)
		if n == nil || r == nil || n.median() == 0 {
			continue
		}
		cpu := func(a *callArm) string { return formatDuration(median(values(*a.samples, sample.cpuPerOp))) }
		parts = append(parts, fmt.Sprintf("%s %s/s resumed vs %s/s new (%s×), CPU/conn %s vs %s",
			sshArmTitles[name], formatValue(r.median()), formatValue(n.median()), ratio(r.median(), n.median()), cpu(r), cpu(n)))
	}
	if len(parts) == 0 {
		return ""
	}
	return "TLS session resumption (SSH handshakes over the endpoint): " + strings.Join(parts, "; ")
}

// sshGoalLine completes goal with whether arm's median rates on every ssh metric are at
// least ratio× base's: "met (bulk 0.97×, handshake 0.96×)", "missed (…)", or what
// is missing.
func sshGoalLine(ms []*callMetric, goal, arm, base string, ratio float64) string {
	var parts []string
	met := true
	for _, key := range sshGoalMetrics {
		a, b := findArm(ms, key, arm), findArm(ms, key, base)
		if a == nil || b == nil || b.median() == 0 {
			return goal + fmt.Sprintf("not measured (needs metrics %s and arms %s, %s)",
				strings.Join(sshGoalMetrics, ", "), arm, base)
		}
		r := a.median() / b.median()
		met = met && r >= ratio
		parts = append(parts, fmt.Sprintf("%s %s×", key, strconv.FormatFloat(r, 'f', 2, 64)))
	}
	verdict := "missed"
	if met {
		verdict = "met"
	}
	return goal + fmt.Sprintf("%s (%s)", verdict, strings.Join(parts, ", "))
}

// helperCPU is the CPU time of sshd's processes so far, zero without the openssh arm.
func (f *sshFixture) helperCPU() time.Duration {
	if f.sshd == nil {
		return 0
	}
	return f.sshd.cpu()
}
