package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/core/endpoint"
	"github.com/alknet/alknet/core/tlsconf"
)

// The payload and concurrency sweeps of the call, http, ws and mcp benchmarks: every
// echo row runs once per payload size (-payload) and per number of callers sharing one
// connection (-concurrency), plus a row per payload where -conns clients each have a
// connection of their own (one caller each, the load of a gateway with many clients).
// The report prints one table per payload.

const (
	// defaultPayloads, defaultConcurrency and defaultConns are the sweep's defaults.
	defaultPayloads    = "64,1024,65536"
	defaultConcurrency = "1,64,256"
	defaultConns       = 256

	// minPayload is the smallest echo payload: the JSON object's fixed part and a
	// caller number. maxPayload is the largest, below the 1 MiB default body, message
	// and anonymous-frame caps of every server in these benchmarks.
	minPayload = 32
	maxPayload = 512 << 10
	// maxCallers caps one entry of -concurrency and -conns.
	maxCallers = 4096

	// sweepIdleTimeout is the alknet endpoints' idle timeout in the sweeps (core's
	// default is 30 s): the -conns clients' connections sit idle while the other rows
	// run, longer than that.
	sweepIdleTimeout = 5 * time.Minute

	// Metric kinds of the sweeps, for -only: the rows on one shared connection, and
	// the row of -conns clients each on its own connection.
	kindConns = "conns"
)

// sizeList is a flag value: a comma-separated list of byte sizes ("64,1024,65536" or
// "64B,1KiB,64KiB"), each between minPayload and maxPayload, none twice.
type sizeList []int

func (l sizeList) String() string {
	parts := make([]string, len(l))
	for i, v := range l {
		parts[i] = byteSize(v).String()
	}
	return strings.Join(parts, ", ")
}

func (l *sizeList) Set(s string) error {
	var out sizeList
	for part := range strings.SplitSeq(s, ",") {
		var b byteSize
		if err := b.Set(part); err != nil {
			return err
		}
		if b < minPayload || b > maxPayload {
			return fmt.Errorf("payload %s out of range: want %d B to %s", byteSize(b), minPayload, byteSize(maxPayload))
		}
		if slices.Contains(out, int(b)) {
			return fmt.Errorf("payload %s listed twice", byteSize(b))
		}
		out = append(out, int(b))
	}
	*l = out
	return nil
}

// intList is a flag value: a comma-separated list of counts, each from 1 to
// maxCallers, none twice.
type intList []int

func (l intList) String() string {
	parts := make([]string, len(l))
	for i, v := range l {
		parts[i] = strconv.Itoa(v)
	}
	return strings.Join(parts, ",")
}

func (l *intList) Set(s string) error {
	var out intList
	for part := range strings.SplitSeq(s, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(part))
		if err != nil || v < 1 || v > maxCallers {
			return fmt.Errorf("want counts from 1 to %d, got %q", maxCallers, strings.TrimSpace(part))
		}
		if slices.Contains(out, v) {
			return fmt.Errorf("%d listed twice", v)
		}
		out = append(out, v)
	}
	*l = out
	return nil
}

// sweepOptions are the sweep flags: -payload, -concurrency and -conns.
type sweepOptions struct {
	payloads    sizeList
	concurrency intList
	conns       int // clients with a connection each; 0: no conns row
}

// sweepFlags registers -payload, -concurrency (what names the callers' connection:
// "connection", "socket", "session") and -conns (each names what a client is).
func (s *sweepOptions) sweepFlags(fs *flag.FlagSet, what, each string) {
	_ = s.payloads.Set(defaultPayloads)
	_ = s.concurrency.Set(defaultConcurrency)
	fs.Var(&s.payloads, "payload", "comma-separated echo payload sizes (64, 1KiB, 64KiB...): JSON documents of exactly that many bytes; one table each")
	fs.Var(&s.concurrency, "concurrency", "comma-separated numbers of concurrent callers sharing one "+what+": a row each")
	fs.IntVar(&s.conns, "conns", defaultConns, "clients with "+each+" of their own, one caller each, in the "+kindConns+" row (0: no such row)")
}

// roundsDefault makes n the default of -rounds (registered by sharedFlags with 5),
// for the sweeps whose matrix would take too long with 5.
func (o *runOptions) roundsDefault(fs *flag.FlagSet, n int) {
	o.rounds = n
	fs.Lookup("rounds").DefValue = strconv.Itoa(n)
}

// quickSweep is the -quick part of the sweep flags: one 64-byte payload, 1 and 64
// callers, 16 clients with their own connection.
func (s *sweepOptions) quickSweep(set map[string]func()) map[string]func() {
	set["payload"] = func() { s.payloads = sizeList{64} }
	set["concurrency"] = func() { s.concurrency = intList{1, 64} }
	set["conns"] = func() { s.conns = 16 }
	return set
}

// quickSweepUsage describes quickSweep after the benchmark's own smoke settings.
const quickSweepUsage = "payload 64, concurrency 1,64, 16 conns"

func (s sweepOptions) checkSweep() error {
	if s.conns < 0 || s.conns > maxCallers {
		return fmt.Errorf("-conns must be from 0 to %d", maxCallers)
	}
	return nil
}

// maxConcurrency is the largest number of callers on one connection.
func (s sweepOptions) maxConcurrency() int { return slices.Max(s.concurrency) }

// maxCallersAtOnce is the most callers a row or a check runs at once.
func (s sweepOptions) maxCallersAtOnce() int { return max(s.maxConcurrency(), s.conns) }

// sweepMaxStreams is the alknet endpoints' cap on concurrent QUIC streams per
// connection in the sweeps: room for every caller of the largest -concurrency and the
// client's idle call streams (endpoint.DefaultMaxIncomingStreams is 100).
func (s sweepOptions) sweepMaxStreams() int64 {
	return max(endpoint.DefaultMaxIncomingStreams, int64(2*s.maxConcurrency()+16))
}

// goalPayload is the payload the goal lines are judged at: the smallest listed (the
// goals were set with 64-byte payloads).
func (s sweepOptions) goalPayload() int { return slices.Min(s.payloads) }

// goalMany is the "many callers" the goal lines are judged at: 64 where listed (the
// figure the goals were set with), else the largest listed.
func (s sweepOptions) goalMany() int {
	if slices.Contains(s.concurrency, 64) {
		return 64
	}
	return s.maxConcurrency()
}

// goalOne is the "1 caller" the goal lines are judged at: 1 where listed, else the
// smallest listed.
func (s sweepOptions) goalOne() int { return slices.Min(s.concurrency) }

// sweepCell is one row of a payload's table: callers on one shared connection, or
// (conns) as many clients each on its own connection.
type sweepCell struct {
	payload int
	callers int
	conns   bool
}

// key is the cell's metric key, for the per-round table and profile labels:
// "unary/1KiB/64", "conns/64KiB/256".
func (c sweepCell) key(kind string) string {
	if c.conns {
		kind = kindConns
	}
	return fmt.Sprintf("%s/%s/%d", kind, strings.ReplaceAll(byteSize(c.payload).String(), " ", ""), c.callers)
}

// who names the callers of the cell for row labels: "1 caller", "64 callers", "256
// clients, a connection each".
func (c sweepCell) who(caller string) string {
	if c.conns {
		return fmt.Sprintf("%d %s, a connection each", c.callers, plural(c.callers, "client"))
	}
	return fmt.Sprintf("%d %s", c.callers, plural(c.callers, caller))
}

// cells returns the cells of the sweep selected by kind (the shared-connection rows)
// and kindConns, payload by payload, the conns row last in each.
func (s sweepOptions) cells(selected map[string]bool, kind string) []sweepCell {
	var out []sweepCell
	for _, p := range s.payloads {
		if selected[kind] {
			for _, n := range s.concurrency {
				out = append(out, sweepCell{payload: p, callers: n})
			}
		}
		if selected[kindConns] && s.conns > 0 {
			out = append(out, sweepCell{payload: p, callers: s.conns, conns: true})
		}
	}
	return out
}

// sweepPayload returns the echo payload of caller k: the JSON object
// {"caller":k,"data":"xx…"} of exactly size bytes (size ≥ minPayload).
func sweepPayload(k, size int) []byte {
	b := make([]byte, 0, size)
	b = append(b, `{"caller":`...)
	b = strconv.AppendInt(b, int64(k), 10)
	b = append(b, `,"data":"`...)
	for len(b) < size-2 {
		b = append(b, 'x')
	}
	return append(b, `"}`...)
}

// payloadShape describes the echo payloads for settings lines.
func (s sweepOptions) payloadShape() string {
	return fmt.Sprintf("echo payloads of %s: each a JSON object {\"caller\":k,\"data\":\"xx…\"} of exactly that many bytes", s.payloads)
}

// sweepRows describes the rows for settings lines: what callers share and the conns row.
func (s sweepOptions) sweepRows(shared, each string) string {
	r := fmt.Sprintf("rows of %s concurrent callers sharing one %s", strings.ReplaceAll(s.concurrency.String(), ",", ", "), shared)
	if s.conns > 0 {
		r += fmt.Sprintf(", and a row of %d clients each with %s of its own (one caller each, all opened before the rounds and kept open)", s.conns, each)
	}
	return r
}

// alknetLimits describes the endpoint limits the sweeps set, for settings lines.
func (s sweepOptions) alknetLimits(quic bool) string {
	l := fmt.Sprintf("alknet endpoints set explicitly: no connection limit per IP (default %d), idle timeout %s (default %s)",
		core.DefaultMaxConnectionsPerIP, sweepIdleTimeout, core.DefaultIdleTimeout)
	if quic {
		l += fmt.Sprintf(", %d concurrent QUIC streams per connection (default %d)", s.sweepMaxStreams(), endpoint.DefaultMaxIncomingStreams)
	}
	return l
}

// sweepStore returns cfg's identity store with the limits of the sweeps: no
// connection limit per IP, sweepIdleTimeout.
func sweepStore(cfg core.DynamicConfig) (*core.DynamicStore, error) {
	cfg.Limits.MaxConnectionsPerIP = -1
	cfg.Limits.IdleTimeout = sweepIdleTimeout
	return core.NewDynamicStore(cfg)
}

// newSweepEndpoint is newEndpoint with room for maxStreams concurrent QUIC streams per
// connection.
func newSweepEndpoint(reg *core.Registry, cert tls.Certificate, store *core.DynamicStore, logger *slog.Logger, maxStreams int64) (*endpoint.Endpoint, error) {
	return endpoint.New(reg, endpoint.Config{
		TLS:                tlsconf.ServerConfig(cert),
		Identities:         core.NewConfigIdentityProvider(store, nil),
		Limits:             store.Limits,
		Logger:             logger,
		MaxIncomingStreams: maxStreams,
	})
}

// openClients opens n clients with open, at most 8 at a time, each within 30 s; it
// returns them in order, or the first error (having closed those it opened, with
// closeOne).
func openClients[C any](ctx context.Context, n int, open func(ctx context.Context, k int) (C, error), closeOne func(C)) ([]C, error) {
	out := make([]C, n)
	ok := make([]bool, n)
	errs := make([]error, n)
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for k := range n {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			octx, cancel := context.WithTimeout(ctx, callTimeout)
			defer cancel()
			out[k], errs[k] = open(octx, k)
			ok[k] = errs[k] == nil
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		for k, c := range out {
			if ok[k] {
				closeOne(c)
			}
		}
		return nil, fmt.Errorf("open %d clients: %w", n, err)
	}
	return out, nil
}

// unaryRoundEach runs len(lat) callers for d, caller k calling through
// clients[k mod len(clients)], each repeating an echo of payload, and returns calls/s
// (see latencyRound).
func unaryRoundEach(ctx context.Context, clients []echoClient, payload []byte, d time.Duration, lat [][]time.Duration) (sample, error) {
	var next atomic.Int64
	return latencyRound(ctx, d, lat, "call", func() func(context.Context) (time.Time, error) {
		c := clients[int(next.Add(1)-1)%len(clients)]
		return func(ctx context.Context) (time.Time, error) {
			out, err := c.echo(ctx, payload)
			t1 := time.Now()
			if err != nil {
				return t1, err
			}
			if len(out) != len(payload) {
				return t1, fmt.Errorf("echo: got %d bytes, want %d", len(out), len(payload))
			}
			return t1, nil
		}
	})
}

// checkEchoes checks, once and untimed, that every client of clients echoes the exact
// payload of each size, concurrently, n callers per client (each with its own
// payload), through echo.
func checkEchoes[C any](ctx context.Context, sizes []int, clients []C, n int, echo func(ctx context.Context, c C, in []byte) ([]byte, error)) error {
	for _, size := range sizes {
		errs := make([]error, len(clients)*n)
		var wg sync.WaitGroup
		for i, c := range clients {
			for j := range n {
				k := i*n + j
				wg.Go(func() {
					in := sweepPayload(k, size)
					out, err := echo(ctx, c, in)
					switch {
					case err != nil:
						errs[k] = fmt.Errorf("echo of %s: %w", byteSize(size), err)
					case !bytes.Equal(out, in):
						errs[k] = fmt.Errorf("echo of %s: got %d bytes %.40q…, want %.40q…", byteSize(size), len(out), out, in)
					}
				})
			}
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return err
		}
	}
	return nil
}

// sweepTables writes one table per payload of ms (their sweep cells in sweep order),
// then, when some metrics are not swept (payload 0), a table of those: the rate rows,
// then the p50 and p99 latency rows of the unary metrics labelled prefix "p50
// latency, " who. newTable returns a table with the arms and ratio columns.
func sweepTables(w io.Writer, o sweepOptions, ms []*callMetric, newTable func() *armTable, prefix string) {
	for _, p := range o.payloads {
		var of []*callMetric
		for _, m := range ms {
			if m.payload == p {
				of = append(of, m)
			}
		}
		if len(of) == 0 {
			continue
		}
		fmt.Fprintf(w, "\nPayload %s (a JSON object of exactly %d bytes):\n\n", byteSize(p), p)
		t := newTable()
		for _, m := range of {
			t.addRate(m)
		}
		for _, m := range of {
			if m.unary {
				t.addLatencies(m, prefix, m.who)
			}
		}
		t.write(w)
	}
	var rest []*callMetric
	for _, m := range ms {
		if m.payload == 0 {
			rest = append(rest, m)
		}
	}
	if len(rest) == 0 {
		return
	}
	fmt.Fprintf(w, "\nNot swept:\n\n")
	t := newTable()
	for _, m := range rest {
		t.addRate(m)
		if m.unary {
			t.addLatencies(m, prefix, m.who)
		}
	}
	t.write(w)
}

// goalAt names the cells a goal line is judged at, to follow it: " (judged at the
// 64 B payload, 64 callers and 1)".
func goalAt(payload int, who ...string) string {
	return fmt.Sprintf(" (judged at the %s payload, %s)", byteSize(payload), strings.Join(who, " and "))
}
