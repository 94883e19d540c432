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
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
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
// report, and shuts the fixture down.
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
	other, err := callRounds(ctx, c.rounds, ms, settle, c.cpuprofile, stderr)
	if err != nil {
		return err
	}
	if err := writeAllocProfile(c.memprofile); err != nil {
		return err
	}
	b.report(stdout, o, armSel, ms, loadBefore, other)
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
