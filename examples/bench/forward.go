package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime/pprof"
	"strconv"
	"sync"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/core/endpoint"
	"github.com/alknet/alknet/core/tlsconf"
	"github.com/alknet/alknet/examples/echo"
	alkssh "github.com/alknet/alknet/ssh"
)

// Metric keys of the forward benchmark.
const (
	fwdMetricBulk  = "bulk"
	fwdMetricConns = "conns"
	fwdMetricPar1  = "par1"
	fwdMetricPar16 = "par16"
	fwdMetricPar64 = "par64"
)

// fwdMetrics lists the metric keys in table order.
var fwdMetrics = []string{fwdMetricBulk, fwdMetricConns, fwdMetricPar1, fwdMetricPar16, fwdMetricPar64}

// fwdParallel is the number of forwarded connections of each parallel metric.
var fwdParallel = map[string]int{fwdMetricPar1: 1, fwdMetricPar16: 16, fwdMetricPar64: 64}

// Arm names of the forward benchmark.
const (
	// fwdArmForward is alknet/forward on an endpoint: a QUIC stream per forwarded
	// connection to an in-process TCP target.
	fwdArmForward = "alknet-forward"
	// fwdArmQUIC is a raw quic-go stream to a sink or echo served on the stream
	// itself (no TCP hop): the ceiling.
	fwdArmQUIC = "quic-go"
	// fwdArmSSH is direct-tcpip through a server and client written with
	// x/crypto/ssh alone, over TCP.
	fwdArmSSH = "xssh-tcp"
	// fwdArmTCP is a plain TCP connection dialed straight to the sink or echo: the
	// TCP hop that both the forward and direct-tcpip pay on the server, alone (a
	// floor, not a competitor).
	fwdArmTCP = "tcp"
)

// fwdArms lists the arms in column order.
var fwdArms = []string{fwdArmForward, fwdArmQUIC, fwdArmSSH, fwdArmTCP}

var fwdArmTitles = map[string]string{
	fwdArmForward: "alknet/forward QUIC",
	fwdArmQUIC:    "raw quic-go stream",
	fwdArmSSH:     "x/crypto/ssh TCP",
	fwdArmTCP:     "plain TCP to the target (floor)",
}

var fwdQUICRatioTitles = map[string]string{fwdArmForward: "forward vs quic-go"}
var fwdSSHRatioTitles = map[string]string{fwdArmForward: "forward vs x/crypto/ssh", fwdArmQUIC: "quic-go vs x/crypto/ssh"}

// The goals.
const (
	fwdBulkGoal  = 0.95 // single-connection bulk against a raw quic-go stream
	fwdConnsGoal = 2.0  // forwarded connections/s against SSH over TCP
	fwdPar64Goal = 1.0  // 64 parallel forwarded connections' throughput against SSH over TCP
)

type fwdBenchOptions struct {
	runOptions
	parallel  int
	bulkBytes byteSize
}

func runForward(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	quietQUICBufferWarning()
	o := fwdBenchOptions{bulkBytes: 64 << 20}
	fs := newFlagSet("forward", "Compares alknet/forward (a QUIC stream per forwarded TCP connection, no SSH\n"+
		"inside) with a raw quic-go stream and with direct-tcpip through x/crypto/ssh over\n"+
		"TCP, on loopback: bulk through one forwarded connection, forwarded connections/s on\n"+
		"one long-lived connection, and the aggregate throughput of 1, 16 and 64 forwarded\n"+
		"connections at once.", stderr)
	o.sharedFlags(fs, orderRotating, fwdMetrics, fwdArms, "arm, side, metric")
	fs.DurationVar(&o.duration, "duration", 2*time.Second, "length of one "+fwdMetricConns+" round per arm")
	fs.IntVar(&o.parallel, "conns-parallel", 4, "concurrent openers in the "+fwdMetricConns+" metric")
	fs.Var(&o.bulkBytes, "bulk-bytes", "`size` of one "+fwdMetricBulk+" round, and the total of each parallel round (bytes, or with a KiB, MiB or GiB suffix)")
	fs.DurationVar(&o.settle, "settle", 50*time.Millisecond, "pause after each arm, once its connections are gone, after a GC")
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
	return armBench[fwdBenchOptions, *fwdFixture]{
		metrics: fwdMetrics,
		arms:    fwdArms,
		start:   newFwdFixture,
		warm: func(o fwdBenchOptions) fwdBenchOptions {
			o.duration = min(o.duration, 300*time.Millisecond)
			o.bulkBytes = min(o.bulkBytes, 16<<20)
			return o
		},
		report: fwdReport,
	}.run(ctx, o, stdout, stderr)
}

// fwdStream is one forwarded connection (or raw stream) as the rounds use it.
type fwdStream struct {
	io.ReadWriter
	closeWrite func() error
	close      func()
}

// fwdFixture holds every arm's server and long-lived client connection.
type fwdFixture struct {
	arms   []string
	target *sshTarget
	// open opens a forwarded connection (or raw stream) of an arm to the sink or the
	// echo.
	open map[string]func(ctx context.Context, sink bool) (fwdStream, error)
	closers
}

func newFwdFixture(ctx context.Context, arms []string, _ fwdBenchOptions) (_ *fwdFixture, err error) {
	f := &fwdFixture{arms: arms, open: make(map[string]func(context.Context, bool) (fwdStream, error))}
	defer func() {
		if err != nil {
			f.close()
		}
	}()
	if f.target, err = startSSHTarget(); err != nil {
		return nil, err
	}
	f.add(func(context.Context) error { return f.target.close() })
	server, err := newSSHKey()
	if err != nil {
		return nil, err
	}
	client, err := newSSHKey()
	if err != nil {
		return nil, err
	}
	for _, a := range arms {
		pprof.Do(ctx, pprof.Labels("arm", a, "side", "server"), func(ctx context.Context) {
			switch a {
			case fwdArmForward:
				err = f.startForward(ctx, server, client)
			case fwdArmQUIC:
				err = f.startQUIC(ctx, server, client)
			case fwdArmSSH:
				err = f.startSSH(ctx, server, client)
			case fwdArmTCP:
				f.startTCP()
			}
		})
		if err != nil {
			return nil, fmt.Errorf("start %s: %w", a, err)
		}
	}
	return f, nil
}

// targetPort is the target's sink or echo port.
func (f *fwdFixture) targetPort(sink bool) uint16 {
	if sink {
		return f.target.sinkPort()
	}
	return f.target.echoPort()
}

func (f *fwdFixture) startForward(ctx context.Context, server, client sshKey) error {
	store, err := benchClientStore(client.fp)
	if err != nil {
		return err
	}
	fwd, err := alkssh.NewForwarder(alkssh.ForwardConfig{
		Forwarding: alkssh.ForwardingPolicy{Default: alkssh.Allow},
		MaxStreams: 1024,
	})
	if err != nil {
		return err
	}
	reg := core.NewRegistry()
	if err := reg.Register(fwd); err != nil {
		return err
	}
	ep, err := newEndpoint(reg, server.cert, store, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	addr, err := listenArm(ctx, ep, fwdArmForward, endpoint.NetworkQUIC)
	if err != nil {
		return err
	}
	f.add(ep.Shutdown)
	cert := client.cert
	conn, err := endpoint.Dial(ctx, addr, alkssh.ALPNForward, endpoint.DialOptions{
		Network: endpoint.NetworkQUIC, TLS: tlsconf.ClientOptions{Certificate: &cert, Pin: server.fp},
	})
	if err != nil {
		return err
	}
	f.add(func(context.Context) error { conn.Close(core.CloseNormal, ""); return nil })
	f.open[fwdArmForward] = func(ctx context.Context, sink bool) (fwdStream, error) {
		// OpenForward, as alknet connect's -L: the first bytes go out with the header,
		// and the node's answer is read before the first byte back.
		c, err := alkssh.OpenForward(ctx, conn, net.JoinHostPort("127.0.0.1", strconv.Itoa(int(f.targetPort(sink)))))
		if err != nil {
			return fwdStream{}, err
		}
		return fwdStream{ReadWriter: c, closeWrite: c.(interface{ CloseWrite() error }).CloseWrite, close: func() { _ = c.Close() }}, nil
	}
	return nil
}

func (f *fwdFixture) startQUIC(ctx context.Context, server, client sshKey) error {
	base, err := startBaseline(server.cert)
	if err != nil {
		return err
	}
	f.add(func(context.Context) error { return base.close() })
	cfg := &quic.Config{
		HandshakeIdleTimeout:  endpoint.DefaultDialHandshakeTimeout,
		MaxIdleTimeout:        endpoint.DefaultMaxIdleTimeout,
		KeepAlivePeriod:       endpoint.DefaultKeepAlivePeriod,
		MaxIncomingStreams:    endpoint.DefaultMaxIncomingStreams,
		MaxIncomingUniStreams: -1,
	}
	serverPub := server.key.Public().(ed25519.PublicKey)
	dial := func(alpn string) (*quic.Conn, error) {
		qc, err := quic.DialAddr(ctx, base.quicAddr, baselineClientTLS(client.cert, serverPub, alpn), cfg)
		if err != nil {
			return nil, err
		}
		f.add(func(context.Context) error { return qc.CloseWithError(0, "") })
		return qc, nil
	}
	sinkConn, err := dial(sinkALPN)
	if err != nil {
		return err
	}
	echoConn, err := dial(echo.ALPN)
	if err != nil {
		return err
	}
	f.open[fwdArmQUIC] = func(ctx context.Context, sink bool) (fwdStream, error) {
		qc := echoConn
		if sink {
			qc = sinkConn
		}
		s, err := qc.OpenStreamSync(ctx)
		if err != nil {
			return fwdStream{}, err
		}
		return fwdStream{ReadWriter: s, closeWrite: s.Close, close: func() { s.CancelRead(0); _ = s.Close() }}, nil
	}
	return nil
}

func (f *fwdFixture) startSSH(ctx context.Context, server, client sshKey) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := newBareSSHServer(server.signer, client.signer)
	srv.serve(context.WithoutCancel(ctx), fwdArmSSH, ln)
	f.add(func(context.Context) error { return srv.close() })
	c, err := dialBareSSH(ctx, ln.Addr().String(), "bench", client.signer, server.signer.PublicKey())
	if err != nil {
		return err
	}
	f.add(func(context.Context) error { return c.Close() })
	f.open[fwdArmSSH] = func(ctx context.Context, sink bool) (fwdStream, error) {
		ch, err := c.Open(ctx, "127.0.0.1", f.targetPort(sink))
		if err != nil {
			return fwdStream{}, err
		}
		return fwdStream{ReadWriter: ch, closeWrite: ch.(interface{ CloseWrite() error }).CloseWrite, close: func() { _ = ch.Close() }}, nil
	}
	return nil
}

// startTCP makes the floor arm: a TCP connection dialed straight to the target.
func (f *fwdFixture) startTCP() {
	f.open[fwdArmTCP] = func(ctx context.Context, sink bool) (fwdStream, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(int(f.targetPort(sink)))))
		if err != nil {
			return fwdStream{}, err
		}
		tc := c.(*net.TCPConn)
		return fwdStream{ReadWriter: tc, closeWrite: tc.CloseWrite, close: func() { _ = tc.Close() }}, nil
	}
}

// check echoes a 1 MiB random payload byte-exact through every arm, half-close
// included.
func (f *fwdFixture) check(ctx context.Context, _ fwdBenchOptions) error {
	ctx, cancel := context.WithTimeout(ctx, 2*callTimeout)
	defer cancel()
	payload := make([]byte, sshCheckSize)
	if _, err := rand.Read(payload); err != nil {
		return err
	}
	for _, name := range f.arms {
		if err := f.echo(ctx, name, payload); err != nil {
			return fmt.Errorf("check %s: %w", name, err)
		}
	}
	return nil
}

// echo sends payload through a new forwarded connection of arm to the echo and
// checks what comes back.
func (f *fwdFixture) echo(ctx context.Context, arm string, payload []byte) error {
	s, err := f.open[arm](ctx, false)
	if err != nil {
		return err
	}
	defer s.close()
	stop := context.AfterFunc(ctx, s.close)
	defer stop()
	werr := make(chan error, 1)
	go func() {
		_, err := s.Write(payload)
		if err == nil {
			err = s.closeWrite()
		}
		werr <- err
	}()
	got, rerr := io.ReadAll(s)
	if err := <-werr; err != nil {
		return fmt.Errorf("write: %w", err)
	}
	if rerr != nil {
		return fmt.Errorf("read after %d bytes: %w", len(got), rerr)
	}
	if !bytes.Equal(got, payload) {
		return fmt.Errorf("echo: got %d bytes, want %d identical bytes", len(got), len(payload))
	}
	return nil
}

// parallelBulk sends n bytes in all through p forwarded connections at once, each
// to the sink, and returns the aggregate MB/s.
func (f *fwdFixture) parallelBulk(ctx context.Context, arm string, p int, n int64) (sample, error) {
	ctx, cancel := context.WithTimeout(ctx, bulkTimeout(n))
	defer cancel()
	each := max(n/int64(p), 1)
	start := time.Now()
	errs := make([]error, p)
	var wg sync.WaitGroup
	for i := range p {
		wg.Go(func() {
			s, err := f.open[arm](ctx, true)
			if err != nil {
				errs[i] = err
				return
			}
			defer s.close()
			stop := context.AfterFunc(ctx, s.close)
			defer stop()
			_, errs[i] = bulk(ctx, s, s.closeWrite, each, start)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return sample{}, err
	}
	total := each * int64(p)
	s := sample{value: float64(total) / time.Since(start).Seconds() / 1e6, ops: p}
	if total >= 1<<20 {
		s.ops = int(total >> 20)
	}
	return s, nil
}

// openClose is one forwarded connection: open to the echo, one byte there and back,
// half-close, EOF, close.
func (f *fwdFixture) openClose(ctx context.Context, arm string) error {
	return f.echo(ctx, arm, []byte{42})
}

func (f *fwdFixture) metrics(o fwdBenchOptions, selected map[string]bool) []*callMetric {
	n := int64(o.bulkBytes)
	ms := []*callMetric{
		{key: fwdMetricBulk, label: fmt.Sprintf("bulk through one forwarded connection, MB/s (%s)", o.bulkBytes), unit: bulkUnit(n)},
		{key: fwdMetricConns, label: fmt.Sprintf("forwarded connections/s on one connection: open, 1 byte echoed, closed (%d %s)", o.parallel, plural(o.parallel, "opener")), unit: "conn"},
	}
	for _, key := range []string{fwdMetricPar1, fwdMetricPar16, fwdMetricPar64} {
		p := fwdParallel[key]
		ms = append(ms, &callMetric{key: key, label: fmt.Sprintf("aggregate MB/s of %d forwarded %s at once (%s in all)", p, plural(p, "connection"), o.bulkBytes), unit: bulkUnit(n)})
	}
	for _, name := range f.arms {
		for _, m := range ms {
			var round func(ctx context.Context) (sample, error)
			switch m.key {
			case fwdMetricBulk:
				round = func(ctx context.Context) (sample, error) { return f.parallelBulk(ctx, name, 1, n) }
			case fwdMetricConns:
				round = func(ctx context.Context) (sample, error) {
					return connsRound(ctx, o.parallel, o.duration, func(ctx context.Context) error { return f.openClose(ctx, name) })
				}
			default:
				p := fwdParallel[m.key]
				round = func(ctx context.Context) (sample, error) { return f.parallelBulk(ctx, name, p, n) }
			}
			m.arms = append(m.arms, &callArm{arm: newArm(name, round)})
		}
	}
	var out []*callMetric
	for _, m := range ms {
		if selected[m.key] {
			out = append(out, m)
		}
	}
	return out
}

// settle waits until the target has let go of every connection of the last round,
// collects garbage and pauses.
func (f *fwdFixture) settle(ctx context.Context, pause time.Duration) error {
	deadline := time.Now().Add(sshRestTimeout)
	for f.target.active.Load() > 0 {
		if time.Now().After(deadline) {
			return fmt.Errorf("%d target connections still open %s after a round", f.target.active.Load(), sshRestTimeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	return gcPause(ctx, pause)
}

func fwdReport(w io.Writer, o fwdBenchOptions, arms []string, ms []*callMetric, loadBefore, otherCPU string) {
	machine := armMachine(
		library{"quic-go", "github.com/quic-go/quic-go"},
		library{"x/crypto", "golang.org/x/crypto"})
	reportHeader(w, "forward", machine, loadBefore, otherCPU, fmt.Sprintf(
		"one process, loopback; alknet/forward QUIC is alknet's ssh.Forwarder registered on an endpoint (ALPN alknet/forward, TLS 1.3, the client presenting a known certificate, every destination allowed) "+
			"and ssh.OpenForward (as alknet connect's -L: the first bytes go out with the header, the node's answer is read before the first byte back) on one long-lived connection, each forwarded connection a stream to an in-process TCP sink or echo on 127.0.0.1; "+
			"raw quic-go stream is a bare quic-go server whose streams are the sink or echo themselves (no TCP hop), the ceiling; "+
			"x/crypto/ssh TCP is a server and client written with golang.org/x/crypto/ssh alone, direct-tcpip channels on one long-lived connection to the same TCP target; "+
			"plain TCP to the target is a floor, not a competitor: a TCP connection dialed straight to the same sink or echo, the hop both forwarding arms pay on their server; "+
			"a correctness check (a %d MiB random payload echoed byte-exact through each arm) and a warm-up pass, then %d %s (arms interleaved); "+
			"bulk: one forwarded connection to the sink, %s written in %d KiB writes, half-closed, the sink's count read, timed from the open; "+
			"conns: %d openers for %s, each repeating open + 1 byte echoed + half-close + close; "+
			"par1/par16/par64: that many forwarded connections at once sharing %s, aggregate MB/s; "+
			"medians over the rounds, higher is better",
		sshCheckSize>>20, o.rounds, plural(o.rounds, "round"), o.bulkBytes, writeSize>>10, o.parallel, o.duration, o.bulkBytes))
	t := newArmTable(arms, fwdArmTitles)
	t.addBaselineRatios(arms, fwdArmQUIC, fwdQUICRatioTitles)
	t.addBaselineRatios(arms, fwdArmSSH, fwdSSHRatioTitles)
	for _, m := range ms {
		t.addRate(m)
	}
	t.write(w)
	fmt.Fprintf(w, "\n%s\n", ratioGoalLine(ms, fmt.Sprintf("goal: single-connection bulk over alknet/forward ≥ %.2f× a raw quic-go stream — ", fwdBulkGoal), fwdMetricBulk, fwdArmForward, fwdArmQUIC, fwdBulkGoal))
	fmt.Fprintf(w, "\nreported: single-connection bulk over alknet/forward against x/crypto/ssh over TCP — %s\n", fwdRatio(ms, fwdMetricBulk, fwdArmForward, fwdArmSSH))
	fmt.Fprintf(w, "\n%s\n", ratioGoalLine(ms, fmt.Sprintf("goal: forwarded connections/s over alknet/forward ≥ %.1f× x/crypto/ssh over TCP — ", fwdConnsGoal), fwdMetricConns, fwdArmForward, fwdArmSSH, fwdConnsGoal))
	fmt.Fprintf(w, "\n%s\n", ratioGoalLine(ms, fmt.Sprintf("goal: 64 parallel forwarded connections' throughput over alknet/forward ≥ %.1f× x/crypto/ssh over TCP — ", fwdPar64Goal), fwdMetricPar64, fwdArmForward, fwdArmSSH, fwdPar64Goal))
	for _, l := range fwdFloorLines(ms) {
		fmt.Fprintf(w, "\n%s\n", l)
	}
	fmt.Fprintf(w, "\nPer-round samples; CPU time and heap allocations per operation, medians over the rounds (whole process: client, server and target):\n\n")
	perRoundTable(w, ms, false)
}

// fwdCPU is the median CPU time per operation of arm on metric, 0 when not measured.
func fwdCPU(ms []*callMetric, metric, arm string) float64 {
	a := findArm(ms, metric, arm)
	if a == nil || len(*a.samples) == 0 {
		return 0
	}
	return median(values(*a.samples, sample.cpuPerOp))
}

// fwdFloorLines says what each goal can reach at best, from CPU per operation: a
// forwarded connection is a QUIC stream plus the node's TCP hop to the target, so
// the raw quic-go stream and plain TCP to the target together are its floor.
func fwdFloorLines(ms []*callMetric) []string {
	var out []string
	quic, tcp, xssh := fwdCPU(ms, fwdMetricConns, fwdArmQUIC), fwdCPU(ms, fwdMetricConns, fwdArmTCP), fwdCPU(ms, fwdMetricConns, fwdArmSSH)
	if quic > 0 && tcp > 0 && xssh > 0 {
		tcpRate := "?"
		if a := findArm(ms, fwdMetricConns, fwdArmTCP); a != nil {
			tcpRate = formatValue(a.median())
		}
		out = append(out, fmt.Sprintf("floor: forwarded connections/s — plain TCP to the target alone (dial, 1 byte echoed, close) %s/s at %s of CPU each, a raw quic-go stream %s: "+
			"a forwarded connection needs both (%s), so on CPU it reaches at most %.2f× x/crypto/ssh over TCP (%s per direct-tcpip channel)",
			tcpRate, formatDuration(tcp), formatDuration(quic), formatDuration(tcp+quic), xssh/(tcp+quic), formatDuration(xssh)))
	}
	quic, tcp = fwdCPU(ms, fwdMetricBulk, fwdArmQUIC), fwdCPU(ms, fwdMetricBulk, fwdArmTCP)
	if quic > 0 && tcp > 0 {
		out = append(out, fmt.Sprintf("floor: single-connection bulk — the TCP hop alone costs %s of CPU per MiB, the raw quic-go stream %s: "+
			"at the forward's floor (%s) and the quic-go arm's share of the machine, the forward reaches at most %.2f× the raw stream",
			formatDuration(tcp), formatDuration(quic), formatDuration(tcp+quic), quic/(tcp+quic)))
	}
	if a, b := findArm(ms, fwdMetricPar64, fwdArmQUIC), findArm(ms, fwdMetricPar64, fwdArmSSH); a != nil && b != nil && b.median() > 0 {
		out = append(out, fmt.Sprintf("floor: 64 parallel forwarded connections — a raw quic-go stream per connection, without any TCP hop, moves %.2f× x/crypto/ssh over TCP: the forward's ceiling",
			a.median()/b.median()))
	}
	return out
}

// fwdRatio is arm's median on metric over base's, "0.51×", or what is missing.
func fwdRatio(ms []*callMetric, metric, arm, base string) string {
	a, b := findArm(ms, metric, arm), findArm(ms, metric, base)
	if a == nil || b == nil || b.median() == 0 {
		return fmt.Sprintf("not measured (needs metric %s and arms %s, %s)", metric, arm, base)
	}
	return fmt.Sprintf("%.2f×", a.median()/b.median())
}
