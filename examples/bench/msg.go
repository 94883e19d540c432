package main

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/core/endpoint"
	"github.com/alknet/alknet/core/tlsconf"
	"github.com/alknet/alknet/msg"
)

// Metric keys of the msg benchmark, for -only and profile labels: deliver and fetch
// (fetch+ack) with 1 sender/owner or -senders of them, 1 KiB and 64 KiB bodies, and
// seal+open.
const (
	metricMsgDeliver1Small = "deliver-1-1k"
	metricMsgFetch1Small   = "fetch-1-1k"
	metricMsgDeliverNSmall = "deliver-n-1k"
	metricMsgFetchNSmall   = "fetch-n-1k"
	metricMsgDeliver1Large = "deliver-1-64k"
	metricMsgFetch1Large   = "fetch-1-64k"
	metricMsgDeliverNLarge = "deliver-n-64k"
	metricMsgFetchNLarge   = "fetch-n-64k"
	metricMsgSealSmall     = "seal-1k"
	metricMsgSealLarge     = "seal-64k"
)

// msgMetrics lists the metric keys in the order a round runs them: each fetch metric
// right after the deliver metric whose envelopes it consumes.
var msgMetrics = []string{
	metricMsgDeliver1Small, metricMsgFetch1Small, metricMsgDeliverNSmall, metricMsgFetchNSmall,
	metricMsgDeliver1Large, metricMsgFetch1Large, metricMsgDeliverNLarge, metricMsgFetchNLarge,
	metricMsgSealSmall, metricMsgSealLarge,
}

// Arm names of the msg benchmark, for -arms and profile labels ("arm"): a store arm is
// msg.Server on that store behind an endpoint; the crypto arms run in one goroutine.
const (
	armMsgMemory   = "memory"
	armMsgBolt     = "bbolt"
	armMsgPostgres = "postgres"
	armMsgSeal     = "msg-seal"
	armMsgHPKE     = "hpke"
)

// msgArms lists the arms in column order.
var msgArms = []string{armMsgMemory, armMsgBolt, armMsgPostgres, armMsgSeal, armMsgHPKE}

// msgStoreArms are the arms of the deliver and fetch metrics, msgCryptoArms those of the
// seal metrics.
var (
	msgStoreArms  = []string{armMsgMemory, armMsgBolt, armMsgPostgres}
	msgCryptoArms = []string{armMsgSeal, armMsgHPKE}
)

// msgArmTitles are the column headers of the arms.
var msgArmTitles = map[string]string{
	armMsgMemory:   "memory",
	armMsgBolt:     "bbolt",
	armMsgPostgres: "postgres",
	armMsgSeal:     "msg Seal+Open",
	armMsgHPKE:     "crypto/hpke (ceiling)",
}

// The body sizes of the benchmark, and the content type every envelope carries.
const (
	msgSmallBody   = 1 << 10
	msgLargeBody   = 64 << 10
	msgContentType = "application/octet-stream"
)

// msgFrameBytes is the servers' max_frame_bytes: the highest a node may set, so that a
// fetch page carries several 64 KiB envelopes (a page stays within the frame cap).
const msgFrameBytes = msg.MaxFrameBytesLimit

// msgPGDSNEnv names the environment variable the postgres arm's DSN comes from when
// -pg-dsn is not given (the one msg/pgstore's tests use).
const msgPGDSNEnv = "ALKNET_TEST_POSTGRES_DSN"

type msgBenchOptions struct {
	runOptions
	senders    int
	poolSmall  int
	poolLarge  int
	batch      int
	pgDSN      string
	postgresOK bool // a DSN was given: the postgres arm can run
}

func runMsg(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	quietQUICBufferWarning()
	o := msgBenchOptions{}
	fs := newFlagSet("msg", "Measures the msg module's sealed store-and-forward messaging on loopback: msg.Server on\n"+
		"the endpoint over QUIC with each store (memory, bbolt in a temp dir, PostgreSQL when a\n"+
		"DSN is given), msg.Client on real connections: deliveries/s and fetch+ack/s (envelopes)\n"+
		"with 1 and -senders concurrent senders (and as many mailbox owners fetching), 1 KiB\n"+
		"and 64 KiB bodies, p50/p99 per delivery and per fetch+ack page; and msg.Seal+msg.Open\n"+
		"per second against a plain crypto/hpke seal+open of the same suite and body size (the\n"+
		"ceiling). Envelopes are sealed before the rounds (a pool per metric); a deliver round\n"+
		"ends after -duration or when its pool is used up, a fetch round when the mailboxes\n"+
		"are empty.", stderr)
	o.sharedFlags(fs, orderRotating, msgMetrics, msgArms, "arm, side, metric")
	fs.DurationVar(&o.duration, "duration", 2*time.Second, "length of one round per metric and arm (at most)")
	fs.IntVar(&o.senders, "senders", 64, "concurrent senders (and mailboxes, each fetched by its owner) in the -n- metrics")
	fs.IntVar(&o.poolSmall, "pool-1k", 20000, "envelopes sealed before the rounds for each 1 KiB deliver metric")
	fs.IntVar(&o.poolLarge, "pool-64k", 1500, "envelopes sealed before the rounds for each 64 KiB deliver metric")
	fs.IntVar(&o.batch, "batch", msg.MaxFetchLimit, "envelopes asked for per fetch (the server also caps a page at max_frame_bytes)")
	fs.StringVar(&o.pgDSN, "pg-dsn", "", "PostgreSQL DSN of the postgres arm (default: $"+msgPGDSNEnv+"; none: the arm is skipped)")
	fs.DurationVar(&o.settle, "settle", 50*time.Millisecond, "pause after each arm, after a GC")
	help, err := parseFlags(fs, args, stderr, "smoke run: 1 round, 200ms, pools of 400 and 40 envelopes (flags given explicitly win)", map[string]func(){
		"rounds":   func() { o.rounds = 1 },
		"duration": func() { o.duration = 200 * time.Millisecond },
		"settle":   func() { o.settle = 10 * time.Millisecond },
		"pool-1k":  func() { o.poolSmall = 400 },
		"pool-64k": func() { o.poolLarge = 40 },
	})
	if help || err != nil {
		return err
	}
	if o.pgDSN == "" {
		o.pgDSN = os.Getenv(msgPGDSNEnv)
	}
	o.postgresOK = o.pgDSN != ""
	var batchErr error
	if o.batch < 1 || o.batch > msg.MaxFetchLimit {
		batchErr = fmt.Errorf("-batch must be 1 to %d", msg.MaxFetchLimit)
	}
	if err := o.validate(atLeast1("-senders", o.senders), atLeast1("-pool-1k", o.poolSmall), atLeast1("-pool-64k", o.poolLarge), batchErr); err != nil {
		return err
	}
	if !o.postgresOK && o.arms != "" && slices.Contains(strings.Split(o.arms, ","), armMsgPostgres) {
		return fmt.Errorf("-arms %s: no DSN (set -pg-dsn or $%s)", armMsgPostgres, msgPGDSNEnv)
	}
	arms := msgArms
	if !o.postgresOK {
		arms = slices.DeleteFunc(slices.Clone(msgArms), func(a string) bool { return a == armMsgPostgres })
	}
	return msgBench{
		metrics: msgMetrics,
		arms:    arms,
		warm: func(o msgBenchOptions) msgBenchOptions {
			o.duration = min(o.duration, 300*time.Millisecond)
			return o
		},
	}.run(ctx, o, stdout, stderr)
}

// msgBench runs the msg benchmark like armBench runs the others, with a prepare step
// (untimed, not counted) before each arm's round: draining or filling its mailboxes.
type msgBench struct {
	metrics, arms []string
	warm          func(o msgBenchOptions) msgBenchOptions
}

func (b msgBench) run(ctx context.Context, o msgBenchOptions, stdout, stderr io.Writer) error {
	selected, err := selectMetrics(o.only, b.metrics)
	if err != nil {
		return err
	}
	armSel, err := selectArms(o.arms, b.arms)
	if err != nil {
		return err
	}
	loadBefore := loadAverage()
	f, err := newMsgFixture(ctx, armSel, selected, o)
	if err != nil {
		return err
	}
	defer f.close()
	if err := f.check(ctx); err != nil {
		return err
	}
	settle := func(ctx context.Context) error { return gcPause(ctx, o.settle) }
	// One short untimed pass of every arm first.
	for _, m := range f.metrics(b.warm(o), selected) {
		for _, a := range m.arms {
			if err := msgPrepare(ctx, a); err != nil {
				return fmt.Errorf("warm-up, %s, %s, prepare: %w", m.key, a.name, err)
			}
			if err := warmUpArm(ctx, m.key, a.arm, settle); err != nil {
				return err
			}
		}
	}
	ms := f.metrics(o, selected)
	other, err := msgRounds(ctx, o.rounds, ms, settle, o.cpuprofile, stderr)
	if err != nil {
		return err
	}
	if err := writeAllocProfile(o.memprofile); err != nil {
		return err
	}
	f.report(stdout, o, armSel, ms, loadBefore, other)
	return f.shutdown()
}

func msgPrepare(ctx context.Context, a *callArm) error {
	if a.prepare == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 2*callTimeout)
	defer cancel()
	return a.prepare(ctx)
}

// msgRounds is callRounds with each arm's prepare step run before its round, untimed
// and outside the CPU and allocation counts.
func msgRounds(ctx context.Context, rounds int, ms []*callMetric, settle func(context.Context) error, cpuprofile string, progress io.Writer) (string, error) {
	var scratch []time.Duration
	return profiledRounds(cpuprofile, func() error {
		for r := range rounds {
			for _, m := range ms {
				line := fmt.Sprintf("round %d/%d %-13s", r+1, rounds, m.key)
				for i := range m.arms {
					a := m.arms[(i+r)%len(m.arms)]
					if err := msgPrepare(ctx, a); err != nil {
						return fmt.Errorf("round %d, %s, %s, prepare: %w", r+1, m.key, a.name, err)
					}
					s, err := measure(ctx, a.arm, "metric", m.key, "side", "client")
					if err != nil {
						return fmt.Errorf("round %d, %s, %s: %w", r+1, m.key, a.name, err)
					}
					*a.samples = append(*a.samples, s)
					var p50, p99 float64
					p50, p99, scratch = percentiles(a.lat, scratch)
					a.p50 = append(a.p50, p50)
					a.p99 = append(a.p99, p99)
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

// msgParty is a key holder of the benchmark: the server, the sender, or a mailbox owner
// (with its X25519 key and signed bundle).
type msgParty struct {
	key    ed25519.PrivateKey
	pub    ed25519.PublicKey
	cert   tls.Certificate
	fp     string
	x      *msgX25519
	bundle msg.KeyBundle
}

func newMsgParty() (*msgParty, error) {
	key, err := tlsconf.GenerateKey()
	if err != nil {
		return nil, err
	}
	cert, err := tlsconf.Certificate(key)
	if err != nil {
		return nil, err
	}
	return &msgParty{key: key, pub: key.Public().(ed25519.PublicKey), cert: cert, fp: tlsconf.Fingerprint(key)}, nil
}

// msgPoolKey names a pool of pre-sealed envelopes: the deliver metric that sends it.
type msgPoolKey = string

// msgPool is a deliver metric's envelopes, sealed before the rounds: envelope i is to
// owner i % owners, by the sender.
type msgPool struct {
	key    msgPoolKey
	owners int
	body   int
	envs   []*msg.Envelope
	// ids and mailboxes are by owner: the ids of the envelopes to it, its mailbox id.
	ids       [][][msg.IDSize]byte
	mailboxes []string
}

// msgFixture holds the parties, the pools and the started arms.
type msgFixture struct {
	server, sender *msgParty
	owners         []*msgParty
	pools          map[msgPoolKey]*msgPool
	stores         map[string]*msgStoreArm // by arm
	arms           []string                // selected, column order
	pgVersion      string                  // the postgres arm's server version
	seal           map[int]*msgSealBench   // by body size
	lat            latBuffers
	closers
}

// msgDeliverMetrics are the deliver metrics: their owners (1 or -senders) and body size.
func msgDeliverMetrics(o msgBenchOptions) map[string]struct{ owners, body, pool int } {
	return map[string]struct{ owners, body, pool int }{
		metricMsgDeliver1Small: {1, msgSmallBody, o.poolSmall},
		metricMsgDeliverNSmall: {o.senders, msgSmallBody, o.poolSmall},
		metricMsgDeliver1Large: {1, msgLargeBody, o.poolLarge},
		metricMsgDeliverNLarge: {o.senders, msgLargeBody, o.poolLarge},
	}
}

// msgFetchOf maps each fetch metric to the deliver metric whose pool it consumes.
var msgFetchOf = map[string]string{
	metricMsgFetch1Small: metricMsgDeliver1Small,
	metricMsgFetchNSmall: metricMsgDeliverNSmall,
	metricMsgFetch1Large: metricMsgDeliver1Large,
	metricMsgFetchNLarge: metricMsgDeliverNLarge,
}

func newMsgFixture(ctx context.Context, arms []string, selected map[string]bool, o msgBenchOptions) (_ *msgFixture, err error) {
	f := &msgFixture{arms: arms, pools: make(map[msgPoolKey]*msgPool), stores: make(map[string]*msgStoreArm),
		seal: make(map[int]*msgSealBench), lat: make(latBuffers)}
	defer func() {
		if err != nil {
			f.close()
		}
	}()
	if f.server, err = newMsgParty(); err != nil {
		return nil, err
	}
	if f.sender, err = newMsgParty(); err != nil {
		return nil, err
	}
	for range o.senders {
		p, err := newMsgParty()
		if err != nil {
			return nil, err
		}
		if p.x, err = newMsgX25519(); err != nil {
			return nil, err
		}
		if p.bundle, err = msg.NewKeyBundle(p.key, p.x.priv.PublicKey(), time.Now().Add(24*time.Hour)); err != nil {
			return nil, err
		}
		f.owners = append(f.owners, p)
	}
	// The pools of the selected deliver and fetch metrics, sealed on every CPU.
	storeArms := intersect(arms, msgStoreArms)
	if len(storeArms) > 0 {
		for key, d := range msgDeliverMetrics(o) {
			need := selected[key]
			for fetch, deliver := range msgFetchOf {
				need = need || (deliver == key && selected[fetch])
			}
			if !need {
				continue
			}
			if f.pools[key], err = f.sealPool(ctx, key, d.owners, d.body, d.pool); err != nil {
				return nil, err
			}
		}
	}
	for _, a := range storeArms {
		sa, err := f.startStore(ctx, a, o)
		if err != nil {
			return nil, fmt.Errorf("start %s: %w", a, err)
		}
		f.stores[a] = sa
	}
	if len(intersect(arms, msgCryptoArms)) > 0 {
		for _, n := range []int{msgSmallBody, msgLargeBody} {
			if f.seal[n], err = newMsgSealBench(f.sender, f.owners[0], n); err != nil {
				return nil, err
			}
		}
	}
	return f, nil
}

// intersect returns the names of all that are in sel, in all's order.
func intersect(sel, all []string) []string {
	var out []string
	for _, a := range all {
		if slices.Contains(sel, a) {
			out = append(out, a)
		}
	}
	return out
}

// sealPool seals n envelopes of body bytes from the sender, envelope i to owner
// i % owners, with a 1-day TTL.
func (f *msgFixture) sealPool(ctx context.Context, key string, owners, body, n int) (*msgPool, error) {
	p := &msgPool{key: key, owners: owners, body: body, envs: make([]*msg.Envelope, n), ids: make([][][msg.IDSize]byte, owners)}
	b := msgBody(body)
	workers := runtime.NumCPU()
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n && ctx.Err() == nil; i += workers {
				o := f.owners[i%owners]
				p.envs[i], errs[w] = msg.Seal(f.sender.key, o.pub, o.bundle, b, msgContentType, msg.WithTTL(24*time.Hour))
				if errs[w] != nil {
					return
				}
			}
		})
	}
	wg.Wait()
	if err := cmpErr(ctx.Err(), errors.Join(errs...)); err != nil {
		return nil, fmt.Errorf("seal the %s pool: %w", key, err)
	}
	for i, e := range p.envs {
		p.ids[i%owners] = append(p.ids[i%owners], e.ID)
	}
	for _, o := range f.owners[:owners] {
		p.mailboxes = append(p.mailboxes, msg.Mailbox(o.pub))
	}
	return p, nil
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// msgBody returns a body of n bytes (a repeating pattern).
func msgBody(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + 3)
	}
	return b
}

// shutdown stops everything cleanly; close is the deferred fallback.
func (f *msgFixture) shutdown() error { return f.closers.shutdown() }

func (f *msgFixture) close() { f.closers.close() }

// storeArmsOf returns the selected store arms, column order.
func (f *msgFixture) storeArmsOf() []string { return intersect(f.arms, msgStoreArms) }

func (f *msgFixture) metrics(o msgBenchOptions, selected map[string]bool) []*callMetric {
	var out []*callMetric
	add := func(key string, m *callMetric) {
		if selected[key] && len(m.arms) > 0 {
			out = append(out, m)
		}
	}
	deliverers := msgDeliverMetrics(o)
	for _, key := range msgMetrics {
		switch key {
		case metricMsgSealSmall, metricMsgSealLarge:
			n := msgSmallBody
			if key == metricMsgSealLarge {
				n = msgLargeBody
			}
			m := &callMetric{key: key, label: fmt.Sprintf("seal+open/s, %s", msgSizeLabel(n)), unit: "seal+open", unary: true}
			for _, name := range intersect(f.arms, msgCryptoArms) {
				sb := f.seal[n]
				m.arms = append(m.arms, f.lat.arm(key, name, 1, func(ctx context.Context, lat [][]time.Duration) (sample, error) {
					return sb.round(ctx, name, o.duration, lat)
				}))
			}
			add(key, m)
		default:
			deliverKey, isFetch := msgFetchOf[key]
			if !isFetch {
				deliverKey = key
			}
			d := deliverers[deliverKey]
			pool := f.pools[deliverKey]
			if pool == nil {
				continue
			}
			m := &callMetric{key: key, unary: true}
			who := msgWho(d.owners, d.body)
			if isFetch {
				m.label, m.unit = "fetch+ack envelopes/s, "+who, "envelope"
			} else {
				m.label, m.unit = "deliveries/s, "+who, "delivery"
			}
			for _, name := range f.storeArmsOf() {
				sa := f.stores[name]
				var a *callArm
				if isFetch {
					a = f.lat.arm(key, name, d.owners, func(ctx context.Context, lat [][]time.Duration) (sample, error) {
						return sa.fetchRound(ctx, pool, o.batch, o.duration, lat)
					})
					a.prepare = func(ctx context.Context) error { return sa.prepareFetch(ctx, f, pool, o.duration) }
				} else {
					a = f.lat.arm(key, name, d.owners, func(ctx context.Context, lat [][]time.Duration) (sample, error) {
						return sa.deliverRound(ctx, pool, o.duration, lat)
					})
					a.prepare = func(ctx context.Context) error { return sa.prepareDeliver(ctx, f) }
				}
				m.arms = append(m.arms, a)
			}
			add(key, m)
		}
	}
	return out
}

// msgWho describes a metric's concurrency and body size ("64 senders, 1 KiB").
func msgWho(owners, body int) string {
	who := "1 sender"
	if owners > 1 {
		who = fmt.Sprintf("%d senders", owners)
	}
	return who + ", " + msgSizeLabel(body)
}

func msgSizeLabel(n int) string { return byteSize(n).String() }

// check makes sure, once and untimed, that every store arm delivers, fetches and acks
// an envelope of each size intact (opened by its owner), answers a repeated delivery as
// a duplicate, and that the crypto arms round-trip their bodies.
func (f *msgFixture) check(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*callTimeout)
	defer cancel()
	for _, name := range f.storeArmsOf() {
		sa := f.stores[name]
		var err error
		pprof.Do(ctx, pprof.Labels("arm", name, "side", "client", "metric", "check"), func(ctx context.Context) {
			err = sa.check(ctx, f.sender, f.owners[0])
		})
		if err != nil {
			return fmt.Errorf("check %s: %w", name, err)
		}
	}
	for n, sb := range f.seal {
		if err := sb.check(); err != nil {
			return fmt.Errorf("check seal+open of %s: %w", msgSizeLabel(n), err)
		}
	}
	return nil
}

func (f *msgFixture) report(w io.Writer, o msgBenchOptions, arms []string, ms []*callMetric, loadBefore, otherCPU string) {
	machine := armMachine(
		library{"quic-go", "github.com/quic-go/quic-go"},
		library{"bbolt", "go.etcd.io/bbolt"},
		library{"pgx", "github.com/jackc/pgx/v5"})
	switch {
	case !o.postgresOK:
		machine = append(machine, "postgres: skipped (no DSN)")
	case slices.Contains(arms, armMsgPostgres):
		machine = append(machine, "postgres: "+f.pgVersion+" (a schema of its own, dropped after the run)")
	}
	smallPad, largePad := msg.FrameSizeForBody(msgSmallBody, len(msgContentType)), msg.FrameSizeForBody(msgLargeBody, len(msgContentType))
	reportHeader(w, "msg", machine, loadBefore, otherCPU, fmt.Sprintf(
		"one process, loopback; each store arm is msg.NewServer on its store (memory; bbolt in a temp dir; postgres in a schema of its own, "+
			"pgxpool defaults) registered on an endpoint listening on QUIC, max_frame_bytes %s, sends_per_minute and mailbox quotas raised out of the way; "+
			"clients are msg.Client over their own QUIC connections: %d sender connections (one identity with scope msg:send) and a connection per mailbox owner; "+
			"envelopes (content type %s, deliver frames of up to %d and %d bytes for 1 KiB and 64 KiB bodies) are sealed before the rounds, "+
			"%d (1 KiB) and %d (64 KiB) per deliver metric, envelope i to owner i mod senders; "+
			"a deliver round sends them until -duration or the pool is used up (emptied untimed first); "+
			"a fetch+ack round has each owner fetch pages of up to %d (cursor to cursor) and ack each page's ids until its mailbox is empty or -duration, "+
			"consuming what the deliver round before it delivered (filled untimed otherwise); "+
			"fetch+ack rates count envelopes, their latencies are per page (fetch + ack); seal+open: one goroutine, msg.Seal (bundle verified, signed, "+
			"HPKE X25519/HKDF-SHA256/ChaCha20-Poly1305, padded) then msg.Open, against crypto/hpke Seal+Open of the bare body with the same suite; "+
			"a correctness check and a warm-up pass, then %d rounds (arms interleaved, starting one arm later each round), at most %s per round, metric and arm; "+
			"medians over the rounds; ratio columns: arm/other for rates, other/arm for latencies, so above 1 means the first arm is better",
		byteSize(msgFrameBytes), o.senders, msgContentType, smallPad, largePad, o.poolSmall, o.poolLarge, o.batch, o.rounds, o.duration))

	mem, bolt, pg := slices.Index(arms, armMsgMemory), slices.Index(arms, armMsgBolt), slices.Index(arms, armMsgPostgres)
	storeCols := intersect(arms, msgStoreArms)
	sb, hp := slices.Index(intersect(arms, msgCryptoArms), armMsgSeal), slices.Index(intersect(arms, msgCryptoArms), armMsgHPKE)
	for _, size := range []int{msgSmallBody, msgLargeBody} {
		var t *armTable
		for _, m := range ms {
			if m.unit == "seal+open" || !strings.HasSuffix(m.label, ", "+msgSizeLabel(size)) {
				continue
			}
			if t == nil {
				t = newArmTable(storeCols, msgArmTitles)
				if mem >= 0 && bolt >= 0 {
					t.addRatio(slices.Index(storeCols, armMsgBolt), slices.Index(storeCols, armMsgMemory), "bbolt / memory")
				}
				if mem >= 0 && pg >= 0 {
					t.addRatio(slices.Index(storeCols, armMsgPostgres), slices.Index(storeCols, armMsgMemory), "postgres / memory")
				}
			}
			who := strings.SplitN(m.label, ", ", 2)[1]
			t.addRate(m)
			prefix := "deliver "
			if m.unit == "envelope" {
				prefix = "fetch+ack page "
			}
			t.addLatencies(m, prefix, who)
		}
		if t != nil {
			fmt.Fprintf(w, "### %s bodies\n\n", msgSizeLabel(size))
			t.write(w)
			fmt.Fprintln(w)
		}
	}
	var st *armTable
	for _, m := range ms {
		if m.unit != "seal+open" {
			continue
		}
		if st == nil {
			cols := intersect(arms, msgCryptoArms)
			st = newArmTable(cols, msgArmTitles)
			if sb >= 0 && hp >= 0 {
				st.addRatio(sb, hp, "msg / hpke")
			}
		}
		st.addRate(m)
		st.addLatencies(m, "seal+open ", strings.TrimPrefix(m.label, "seal+open/s, "))
	}
	if st != nil {
		fmt.Fprintf(w, "### seal+open\n\n")
		st.write(w)
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "Per-round samples (rate; p50 latency); CPU time and heap allocations per operation, medians over the rounds (whole process: clients and server):\n\n")
	perRoundTable(w, ms, true)
}

// msgServerConfig is every store arm's server configuration.
func msgServerConfig(store string) msg.Config {
	cfg := msg.Config{
		Store:              store,
		MaxFrameBytes:      msg.Size(msgFrameBytes),
		SendsPerMinute:     1 << 30,
		MaxMailboxMessages: 1 << 30,
		MaxMailboxBytes:    msg.Size(1 << 40),
	}
	if store == msg.StorePostgres {
		// The server never opens a store by name (the benchmark opened it): this only
		// passes validation.
		cfg.PostgresDSNFile = "opened-by-the-benchmark"
	}
	return cfg
}

// msgEndpoint starts an endpoint serving srv on QUIC, knowing the sender (scope
// msg:send) and the owners, and returns its address.
func (f *msgFixture) msgEndpoint(ctx context.Context, name string, srv *msg.Server) (string, error) {
	peers := []core.PeerEntry{{PeerID: "sender", Fingerprints: []string{f.sender.fp}, Scopes: []string{msg.ScopeSend}, Enabled: true}}
	for i, o := range f.owners {
		peers = append(peers, core.PeerEntry{PeerID: fmt.Sprintf("owner-%d", i), Fingerprints: []string{o.fp}, Enabled: true})
	}
	store, err := core.NewDynamicStore(core.DynamicConfig{
		Auth:   core.AuthPolicy{Peers: peers},
		Limits: core.Limits{MaxConnectionsPerIP: -1},
	})
	if err != nil {
		return "", err
	}
	reg := core.NewRegistry()
	if err := reg.Register(srv); err != nil {
		return "", err
	}
	ep, err := newEndpoint(reg, f.server.cert, store, slog.New(slog.DiscardHandler))
	if err != nil {
		return "", err
	}
	addr, err := listenArm(ctx, ep, name, endpoint.NetworkQUIC)
	if err != nil {
		return "", err
	}
	f.add(ep.Shutdown)
	return addr, nil
}

// dial returns a msg client of the server at addr as party p, its connection's
// goroutines labelled with the arm and side; the caller closes it.
func (f *msgFixture) dial(ctx context.Context, name, addr string, p *msgParty) (*msg.Client, error) {
	cert := p.cert
	var c *msg.Client
	var err error
	pprof.Do(context.Background(), pprof.Labels("arm", name, "side", "client"), func(context.Context) {
		dctx, cancel := context.WithTimeout(ctx, callTimeout)
		defer cancel()
		c, err = msg.Dial(dctx, addr, endpoint.DialOptions{Network: endpoint.NetworkQUIC, TLS: tlsconf.ClientOptions{Certificate: &cert, Pin: f.server.fp}})
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}
