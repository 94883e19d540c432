package main

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/core/endpoint"
	"github.com/alknet/alknet/core/tlsconf"
)

// quietQUICBufferWarning stops quic-go from logging once when it cannot enlarge the
// UDP socket buffers. The machine's limits are printed in the report instead, so keep
// the table clean.
func quietQUICBufferWarning() {
	if _, set := os.LookupEnv("QUIC_GO_DISABLE_RECEIVE_BUFFER_WARNING"); !set {
		_ = os.Setenv("QUIC_GO_DISABLE_RECEIVE_BUFFER_WARNING", "true")
	}
}

// runOptions are the options every benchmark has; each benchmark's options embed them
// (vault has no -settle and no -arms, endpoint no -arms: those stay zero).
type runOptions struct {
	rounds     int
	duration   time.Duration
	settle     time.Duration
	only       string
	arms       string
	cpuprofile string
	memprofile string
}

func (o runOptions) shared() runOptions { return o }

// quickUsage is the -quick usage of the benchmarks whose smoke run is quickOverrides.
const quickUsage = "smoke run: 1 round, 200ms (flags given explicitly win)"

// quickOverrides is the usual -quick smoke run: 1 round of 200 ms, a 10 ms settle.
func (o *runOptions) quickOverrides() map[string]func() {
	return map[string]func(){
		"rounds":   func() { o.rounds = 1 },
		"duration": func() { o.duration = 200 * time.Millisecond },
		"settle":   func() { o.settle = 10 * time.Millisecond },
	}
}

// How a round orders the arms, for the -rounds usage.
const (
	orderRotating = "in an order that rotates by round"
	orderPair     = "alknet then baseline"
)

// newFlagSet returns the flag set of the benchmark name: its usage is the command
// line, about, then the flags.
func newFlagSet(name, about string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: bench %s [flags]\n\n%s\n\nflags:\n", name, about)
		fs.PrintDefaults()
	}
	return fs
}

// sharedFlags registers -rounds (order says how a round orders the arms), -only (a
// subset of metrics), -arms (a subset of arms; not registered when arms is nil),
// -cpuprofile (its profile labels listed) and -memprofile.
func (o *runOptions) sharedFlags(fs *flag.FlagSet, order string, metrics, arms []string, labels string) {
	fs.IntVar(&o.rounds, "rounds", 5, "rounds; each runs every metric once per arm, "+order)
	fs.StringVar(&o.only, "only", "", "comma-separated subset of metrics to run: "+strings.Join(metrics, ", "))
	if arms != nil {
		fs.StringVar(&o.arms, "arms", "", "comma-separated subset of arms to run: "+strings.Join(arms, ", "))
	}
	fs.StringVar(&o.cpuprofile, "cpuprofile", "", "write a CPU profile of the measurements to `file` (labels: "+labels+")")
	fs.StringVar(&o.memprofile, "memprofile", "", "write an allocation profile to `file` at the end")
}

// validate checks -rounds and -duration, then own (the benchmark's own checks, nil
// where they pass), then -settle, and returns the first failure.
func (o runOptions) validate(own ...error) error {
	return cmp.Or(
		atLeast1("-rounds", o.rounds),
		positive("-duration", o.duration),
		cmp.Or(own...),
		notNegative("-settle", o.settle),
	)
}

func atLeast1(flag string, v int) error {
	if v < 1 {
		return fmt.Errorf("%s must be at least 1", flag)
	}
	return nil
}

func positive[T ~int64](flag string, v T) error {
	if v <= 0 {
		return fmt.Errorf("%s must be positive", flag)
	}
	return nil
}

func notNegative[T ~int64](flag string, v T) error {
	if v < 0 {
		return fmt.Errorf("%s must not be negative", flag)
	}
	return nil
}

// gcPause collects garbage and pauses, so that one arm's garbage and teardown are not
// charged to the next.
func gcPause(ctx context.Context, pause time.Duration) error {
	runtime.GC()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(pause):
		return nil
	}
}

// closers are what a fixture has to close, in the order it started them.
type closers []func(context.Context) error

func (c *closers) add(f func(context.Context) error) { *c = append(*c, f) }

// tlsBaseline is a plain net/http TLS server a baseline arm runs (see serveTLS).
type tlsBaseline struct {
	handler http.Handler
	protos  []string // ALPN
	// wrap, when set, wraps the listener (to count connections, say).
	wrap func(net.Listener) net.Listener
	// base, when set, is the servers' base context.
	base context.Context
	// beforeShutdown and afterShutdown, when set, run around its shutdown: ending what
	// Shutdown does not (hijacked connections, sessions), and waiting for it.
	beforeShutdown, afterShutdown func()
}

// serveTLS serves b on a loopback listener with cert (labelled as arm name's server in
// CPU profiles) until c shuts down, and returns its address.
func (c *closers) serveTLS(ctx context.Context, name string, cert tls.Certificate, b tlsBaseline) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	tlsCfg := tlsconf.ServerConfig(cert)
	tlsCfg.NextProtos = b.protos
	srv := &http.Server{
		Handler:   b.handler,
		TLSConfig: tlsCfg,
		ErrorLog:  log.New(io.Discard, "", 0),
	}
	if b.base != nil {
		srv.BaseContext = func(net.Listener) context.Context { return b.base }
	}
	served := ln
	if b.wrap != nil {
		served = b.wrap(ln)
	}
	var wg sync.WaitGroup
	pprof.Do(ctx, pprof.Labels("arm", name, "side", "server"), func(context.Context) {
		wg.Go(func() { _ = srv.ServeTLS(served, "", "") })
	})
	c.add(func(ctx context.Context) error {
		if b.beforeShutdown != nil {
			b.beforeShutdown()
		}
		err := srv.Shutdown(ctx)
		if err != nil {
			_ = srv.Close()
		}
		wg.Wait()
		if b.afterShutdown != nil {
			b.afterShutdown()
		}
		return err
	})
	return ln.Addr().String(), nil
}

// shutdown closes everything cleanly, last started first.
func (c *closers) shutdown() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var errs []error
	for i := len(*c) - 1; i >= 0; i-- {
		errs = append(errs, (*c)[i](ctx))
	}
	*c = nil
	return errors.Join(errs...)
}

// close is the deferred fallback of shutdown.
func (c *closers) close() { _ = c.shutdown() }

// benchClientStore is the identity store of the alknet servers: the bench client's
// certificate fingerprint fp known as peer bench-client, no connection limit per IP.
func benchClientStore(fp string) (*core.DynamicStore, error) {
	return core.NewDynamicStore(core.DynamicConfig{
		Auth: core.AuthPolicy{Peers: []core.PeerEntry{{
			PeerID: "bench-client", Fingerprints: []string{fp}, Scopes: []string{"bench"}, Enabled: true,
		}}},
		Limits: core.Limits{MaxConnectionsPerIP: -1},
	})
}

// newEndpoint returns an endpoint of the alknet servers: reg's handlers, TLS with cert,
// the identities and limits of store, logging to logger.
func newEndpoint(reg *core.Registry, cert tls.Certificate, store *core.DynamicStore, logger *slog.Logger) (*endpoint.Endpoint, error) {
	return endpoint.New(reg, endpoint.Config{
		TLS:        tlsconf.ServerConfig(cert),
		Identities: core.NewConfigIdentityProvider(store, nil),
		Limits:     store.Limits,
		Logger:     logger,
	})
}

// listenArm makes ep listen on network only, on a loopback port, under the profile
// labels of the arm's server side, and returns its address; ep is closed where that
// fails.
func listenArm(ctx context.Context, ep *endpoint.Endpoint, name string, network endpoint.Network) (string, error) {
	var addr string
	var err error
	pprof.Do(ctx, pprof.Labels("arm", name, "side", "server"), func(context.Context) {
		if network == endpoint.NetworkTCP {
			if err = ep.ListenTCP("127.0.0.1:0"); err == nil {
				addr = ep.TCPAddr().String()
			}
			return
		}
		if err = ep.ListenQUIC("127.0.0.1:0"); err == nil {
			addr = ep.QUICAddr().String()
		}
	})
	if err != nil {
		_ = ep.Close()
		return "", err
	}
	return addr, nil
}

// armFixture is the started fixture of a benchmark whose every metric runs on each
// selected arm (call, http, ssh); O is the benchmark's options.
type armFixture[O any] interface {
	// check makes sure, once and untimed, that every arm does its work correctly.
	check(ctx context.Context, o O) error
	// metrics returns the selected metrics, measured with the options o.
	metrics(o O, selected map[string]bool) []*callMetric
	// settle runs after each arm: it brings the process back to rest and pauses.
	// A fixture that runs external processes (sftp's sshd) also has a method
	// helperCPU() time.Duration, their CPU time so far, which run does not count as
	// other processes' (see profiledRoundsWith).
	settle(ctx context.Context, pause time.Duration) error
	shutdown() error
	close()
}

// armBench is a benchmark whose every metric runs on each selected arm, as runArms
// runs it.
type armBench[O interface{ shared() runOptions }, F armFixture[O]] struct {
	metrics, arms []string // every metric key and arm name, in table order
	// start starts the fixture of the selected arms (in column order).
	start func(ctx context.Context, arms []string, o O) (F, error)
	// warm returns the options of the untimed warm-up pass.
	warm   func(o O) O
	report func(w io.Writer, o O, arms []string, ms []*callMetric, loadBefore, otherCPU string)
}

// run runs b with the parsed and valid options o: it selects the metrics and arms,
// starts the fixture and checks it, runs one short untimed pass of every arm (lazy
// initialisation, heap growth, the latency buffers, the windows of the long-lived
// connections), measures the rounds, writes the allocation profile where asked and the
// report (its goal verdicts withheld where the machine was too busy: judgeGoals), and
// shuts the fixture down.
func (b armBench[O, F]) run(ctx context.Context, o O, stdout, stderr io.Writer) error {
	c := o.shared()
	selected, err := selectMetrics(c.only, b.metrics)
	if err != nil {
		return err
	}
	armSel, err := selectArms(c.arms, b.arms)
	if err != nil {
		return err
	}

	loadBefore := loadAverage()
	f, err := b.start(ctx, armSel, o)
	if err != nil {
		return err
	}
	defer f.close()
	if err := f.check(ctx, o); err != nil {
		return err
	}

	ms := f.metrics(o, selected)
	settle := func(ctx context.Context) error { return f.settle(ctx, c.settle) }
	if err := warmUpArms(ctx, f.metrics(b.warm(o), selected), settle); err != nil {
		return err
	}
	var helperCPU func() time.Duration
	if h, ok := any(f).(interface{ helperCPU() time.Duration }); ok {
		helperCPU = h.helperCPU
	}
	other, err := callRounds(ctx, c.rounds, ms, settle, c.cpuprofile, helperCPU, stderr)
	if err != nil {
		return err
	}
	if err := writeAllocProfile(c.memprofile); err != nil {
		return err
	}
	// The report is written whole once its goal verdicts are judged against how busy
	// the machine was (judgeGoals).
	var report strings.Builder
	b.report(&report, o, armSel, ms, loadBefore, other)
	if _, err := io.WriteString(stdout, judgeGoals(report.String(), other)); err != nil {
		return err
	}
	return f.shutdown()
}

// ratioGoalLine completes goal with whether arm's median rate on metric is at least
// ratio× base's: "met (0.95×)", "not met (0.83×)", or what is missing.
func ratioGoalLine(ms []*callMetric, goal, metric, arm, base string, ratio float64) string {
	a, b := findArm(ms, metric, arm), findArm(ms, metric, base)
	if a == nil || b == nil || b.median() == 0 {
		return goal + fmt.Sprintf("not measured (needs metric %s and arms %s, %s)", metric, arm, base)
	}
	r := a.median() / b.median()
	verdict := "not met"
	if r >= ratio {
		verdict = "met"
	}
	return goal + fmt.Sprintf("%s (%.2f×)", verdict, r)
}

// Shared by the benchmarks that measure calls: the echo operation (call, http, mcp,
// ws; its payloads are sweepPayload's) and the bound on their calls.
const (
	benchEchoOp = "bench/echo"

	// callTimeout bounds the calls of one round beyond its duration.
	callTimeout = 30 * time.Second
)

// selectArms parses -arms against the benchmark's arms (all, in column order);
// empty selects all.
func selectArms(list string, all []string) ([]string, error) {
	if list == "" {
		return slices.Clone(all), nil
	}
	want := make(map[string]bool)
	for a := range strings.SplitSeq(list, ",") {
		a = strings.TrimSpace(a)
		if !slices.Contains(all, a) {
			return nil, fmt.Errorf("-arms: unknown arm %q (want %s)", a, strings.Join(all, ", "))
		}
		want[a] = true
	}
	var out []string
	for _, a := range all {
		if want[a] {
			out = append(out, a)
		}
	}
	return out, nil
}

// warmUpArms runs one untimed round of every arm of ms, settling after each.
func warmUpArms(ctx context.Context, ms []*callMetric, settle func(context.Context) error) error {
	for _, m := range ms {
		for _, a := range m.arms {
			if err := warmUpArm(ctx, m.key, a.arm, settle); err != nil {
				return err
			}
		}
	}
	return nil
}

// echoClient is what the unary rows need of a client.
type echoClient interface {
	// echo calls the echo operation with in and returns its output.
	echo(ctx context.Context, in []byte) ([]byte, error)
}

// callArm is one arm of one metric: its samples, and for the unary metrics the
// per-caller latency buffers (reused by every round) and each round's p50 and p99.
type callArm struct {
	*arm
	lat      [][]time.Duration
	p50, p99 []float64 // ns, one per measured round
}

// callMetric is one metric measured on every selected arm.
type callMetric struct {
	key   string
	label string // the throughput row's label
	unit  string // per-op column of the per-round table
	unary bool
	arms  []*callArm
	// payload is the echo payload's size in bytes on the rows of a sweep (see
	// sweepTables), 0 elsewhere; who names the callers in its latency rows.
	payload int
	who     string
}

// latBuffers holds the per-caller latency buffers of each metric and arm
// ("unary-n/alknet-quic"), shared by the warm-up and the measured rounds so that only
// the warm-up grows them.
type latBuffers map[string][][]time.Duration

// arm returns the arm name of the metric key with workers latency buffers, whose
// rounds run round on them.
func (l latBuffers) arm(key, name string, workers int, round func(ctx context.Context, lat [][]time.Duration) (sample, error)) *callArm {
	buf := l[key+"/"+name]
	if len(buf) != workers {
		buf = make([][]time.Duration, workers)
		l[key+"/"+name] = buf
	}
	a := &callArm{lat: buf}
	a.arm = newArm(name, func(ctx context.Context) (sample, error) { return round(ctx, a.lat) })
	return a
}

// latencyRound runs len(lat) workers for d, each repeating the operation newOp made
// for it, and returns operations/s. An operation returns when its answer arrived (what
// it checks after that is not timed); each worker records the duration of each of its
// operations in its lat buffer. Any failed operation fails the round, and so does
// none completing ("no <what> completed").
func latencyRound(ctx context.Context, d time.Duration, lat [][]time.Duration, what string, newOp func() func(context.Context) (time.Time, error)) (sample, error) {
	ctx, cancel := context.WithTimeout(ctx, d+callTimeout)
	defer cancel()
	var failed atomic.Bool
	var firstErr error
	var errOnce sync.Once
	fail := func(err error) {
		errOnce.Do(func() { firstErr = err })
		failed.Store(true)
	}
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for w := range lat {
		wg.Go(func() {
			op := newOp()
			buf := lat[w][:0]
			t0 := time.Now()
			for t0.Before(deadline) && !failed.Load() {
				t1, err := op(ctx)
				if err != nil {
					fail(err)
					break
				}
				buf = append(buf, t1.Sub(t0))
				t0 = t1
			}
			lat[w] = buf
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if firstErr != nil {
		return sample{}, firstErr
	}
	n := 0
	for _, b := range lat {
		n += len(b)
	}
	if n == 0 {
		return sample{}, fmt.Errorf("no %s completed", what)
	}
	return sample{value: float64(n) / elapsed.Seconds(), ops: n}, nil
}

// percentiles returns the p50 and p99 of the durations in lat, in ns, sorting them
// into scratch.
func percentiles(lat [][]time.Duration, scratch []time.Duration) (p50, p99 float64, _ []time.Duration) {
	scratch = scratch[:0]
	for _, b := range lat {
		scratch = append(scratch, b...)
	}
	if len(scratch) == 0 {
		return 0, 0, scratch
	}
	slices.Sort(scratch)
	at := func(q float64) float64 {
		i := int(math.Ceil(q*float64(len(scratch)))) - 1
		return float64(scratch[max(0, min(i, len(scratch)-1))])
	}
	return at(0.50), at(0.99), scratch
}

// callRounds measures every arm of every metric rounds times, interleaved: in each
// round, for each metric, every arm once, starting one arm later each round, with
// settle after each arm. Latency percentiles are computed after each arm, outside the
// measured time. It writes a CPU profile to cpuprofile unless it is empty, reports
// progress, and returns the share of the machine's CPU that other processes used
// (helperCPU, when not nil, being the fixture's own external processes: see
// profiledRoundsWith).
func callRounds(ctx context.Context, rounds int, ms []*callMetric, settle func(context.Context) error, cpuprofile string, helperCPU func() time.Duration, progress io.Writer) (string, error) {
	var scratch []time.Duration
	return profiledRoundsWith(cpuprofile, helperCPU, func() error {
		for r := range rounds {
			for _, m := range ms {
				line := fmt.Sprintf("round %d/%d %-8s", r+1, rounds, m.key)
				for i := range m.arms {
					a := m.arms[(i+r)%len(m.arms)]
					s, err := measure(ctx, a.arm, "metric", m.key, "side", "client")
					if err != nil {
						return fmt.Errorf("round %d, %s, %s: %w", r+1, m.key, a.name, err)
					}
					*a.samples = append(*a.samples, s)
					if m.unary {
						var p50, p99 float64
						p50, p99, scratch = percentiles(a.lat, scratch)
						a.p50 = append(a.p50, p50)
						a.p99 = append(a.p99, p99)
					}
					if err := settle(ctx); err != nil {
						return err
					}
				}
				for _, a := range m.arms {
					line += fmt.Sprintf("  %s %s", a.name, formatValue(a.last().value))
				}
				fmt.Fprintln(progress, line)
			}
		}
		return nil
	})
}
