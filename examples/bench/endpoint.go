package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/core/endpoint"
	"github.com/alknet/alknet/core/tlsconf"
	"github.com/alknet/alknet/examples/echo"
)

// sinkALPN is the bench's sink protocol: the server reads a stream to EOF, answers with
// the byte count (8 bytes, big endian) and half-closes.
const sinkALPN = "alknet/bench-sink"

const (
	// writeSize is the size of each client write in the bulk transfers.
	writeSize = 64 << 10
	// sinkReadSize is the server's read buffer in the sink (both arms).
	sinkReadSize = 64 << 10
	// echoBufSize is the baseline echo's copy buffer, the same as examples/echo's.
	echoBufSize = 32 << 10
	// opTimeout bounds one dial + echo in the connections benchmark.
	opTimeout = 10 * time.Second
)

// Metric keys, for -only and profile labels.
const (
	metricConns           = "conns"
	metricConnsResumed    = "conns-resumed"
	metricTCPConns        = "tcp-conns"
	metricTCPConnsResumed = "tcp-conns-resumed"
	metricQUICBulk        = "quic-bulk"
	metricTCPBulk         = "tcp-bulk"
)

// endpointMetrics lists the metric keys in table order.
var endpointMetrics = []string{metricConns, metricConnsResumed, metricTCPConns, metricTCPConnsResumed, metricQUICBulk, metricTCPBulk}

type endpointOptions struct {
	runOptions
	parallel  int
	bulkBytes byteSize
}

func runEndpoint(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	quietQUICBufferWarning()

	o := endpointOptions{bulkBytes: 256 << 20}
	fs := newFlagSet("endpoint", "Compares an alknet endpoint with bare quic-go and crypto/tls on loopback:\n"+
		"new and resumed (TLS session ticket) QUIC and TCP+TLS connections/s, QUIC and TCP+TLS\n"+
		"single-stream bulk throughput.", stderr)
	o.sharedFlags(fs, orderPair, endpointMetrics, nil, "arm, side, metric")
	fs.DurationVar(&o.duration, "duration", 2*time.Second, "length of one connections/s round per arm")
	fs.IntVar(&o.parallel, "conns-parallel", 4, "concurrent dialers in the connections/s benchmark")
	fs.Var(&o.bulkBytes, "bulk-bytes", "`size` of each bulk transfer (bytes, or with a KiB, MiB or GiB suffix)")
	fs.DurationVar(&o.settle, "settle", 100*time.Millisecond, "pause after each arm, once its connections are gone")
	help, err := parseFlags(fs, args, stderr, "smoke run: 1 round, 300ms, 16 MiB (flags given explicitly win)", map[string]func(){
		"rounds":     func() { o.rounds = 1 },
		"duration":   func() { o.duration = 300 * time.Millisecond },
		"bulk-bytes": func() { o.bulkBytes = 16 << 20 },
		"settle":     func() { o.settle = 20 * time.Millisecond },
	})
	if help || err != nil {
		return err
	}
	if err := o.validate(atLeast1("-conns-parallel", o.parallel), positive("-bulk-bytes", o.bulkBytes)); err != nil {
		return err
	}
	selected, err := selectMetrics(o.only, endpointMetrics)
	if err != nil {
		return err
	}

	loadBefore := loadAverage()
	f, err := newFixture(ctx)
	if err != nil {
		return err
	}
	defer f.close()

	active := selectedOf(f.metrics(o), selected)

	settle := func(ctx context.Context) error { return f.settle(ctx, o.settle) }
	// One short untimed pass of every arm first.
	warm := o
	warm.duration = min(o.duration, 200*time.Millisecond)
	warm.bulkBytes = min(o.bulkBytes, 16<<20)
	if err := warmUp(ctx, f.metrics(warm), selected, settle); err != nil {
		return err
	}

	other, err := runRounds(ctx, o.rounds, active, settle, o.cpuprofile, stderr, "side", "client")
	if err != nil {
		return err
	}
	if err := writeAllocProfile(o.memprofile); err != nil {
		return err
	}
	report(stdout, o, active, loadBefore, other)
	return f.shutdown()
}

func (f *fixture) metrics(o endpointOptions) []*metric {
	n := int64(o.bulkBytes)
	return []*metric{
		f.connsMetric(o, metricConns, "new QUIC connections/s (handshake + echo)", "quic-go", endpoint.NetworkQUIC, false),
		f.connsMetric(o, metricConnsResumed, "resumed QUIC connections/s (session ticket, no 0-RTT)", "quic-go", endpoint.NetworkQUIC, true),
		f.connsMetric(o, metricTCPConns, "new TCP+TLS connections/s (handshake + echo)", "crypto/tls", endpoint.NetworkTCP, false),
		f.connsMetric(o, metricTCPConnsResumed, "resumed TCP+TLS connections/s (session ticket)", "crypto/tls", endpoint.NetworkTCP, true),
		{
			key: metricQUICBulk, label: fmt.Sprintf("QUIC single-stream bulk, MB/s (%s)", o.bulkBytes), unit: "transfer", baseName: "quic-go",
			alknet:   newArm("alknet", func(ctx context.Context) (sample, error) { return f.alknetBulk(ctx, endpoint.NetworkQUIC, n) }),
			baseline: newArm("baseline", func(ctx context.Context) (sample, error) { return f.baselineQUICBulk(ctx, n) }),
		},
		{
			key: metricTCPBulk, label: fmt.Sprintf("TCP+TLS single-stream bulk, MB/s (%s)", o.bulkBytes), unit: "transfer", baseName: "crypto/tls",
			alknet:   newArm("alknet", func(ctx context.Context) (sample, error) { return f.alknetBulk(ctx, endpoint.NetworkTCP, n) }),
			baseline: newArm("baseline", func(ctx context.Context) (sample, error) { return f.baselineTLSBulk(ctx, n) }),
		},
	}
}

func report(w io.Writer, o endpointOptions, ms []*metric, loadBefore, otherCPU string) {
	machine := machineInfo(time.Now(), library{"quic-go", "github.com/quic-go/quic-go"})
	if l := udpBufferCaps(); l != "" {
		machine = append(machine, l)
	}
	reportHeader(w, "endpoint", machine, loadBefore, otherCPU, fmt.Sprintf(
		"a warm-up pass, then %d rounds (arms interleaved alknet, baseline), %s per connections/s round with %d parallel dialers, bulk %s in %d KiB writes; medians, ratio = alknet/baseline (higher is better)",
		o.rounds, o.duration, o.parallel, o.bulkBytes, writeSize>>10))
	reportTables(w, ms, "whole process: client and server")
}

// identity is a key pair with its self-signed certificate.
type identity struct {
	cert tls.Certificate
	pub  ed25519.PublicKey
	fp   string
}

func newIdentity() (identity, error) {
	key, err := tlsconf.GenerateKey()
	if err != nil {
		return identity{}, err
	}
	cert, err := tlsconf.Certificate(key)
	if err != nil {
		return identity{}, err
	}
	return identity{cert: cert, pub: key.Public().(ed25519.PublicKey), fp: tlsconf.Fingerprint(key)}, nil
}

// fixture holds both servers: the alknet endpoint (QUIC and TCP+TLS on one port) and the
// baselines (a bare quic-go listener and a crypto/tls listener), and the client settings.
type fixture struct {
	server, client identity

	ep     *endpoint.Endpoint
	epAddr string

	base       *baselineServer
	clientQUIC *quic.Config
	clientTLS  map[string]*tls.Config // by ALPN
	// resume holds the client session caches of the resumed-connections metrics, one
	// per network and arm (the alknet client's and the baselines' are the same kind of
	// thing: an LRU of tickets that every dialer of the arm shares).
	resume map[endpoint.Network]*resumeClients
}

// resumeClients are one network's resuming clients: alknet's session cache and the
// baseline's client configuration with crypto/tls's own LRU cache.
type resumeClients struct {
	sessions *tlsconf.SessionCache
	baseTLS  *tls.Config
}

func newFixture(ctx context.Context) (*fixture, error) {
	f := &fixture{}
	var err error
	if f.server, err = newIdentity(); err != nil {
		return nil, err
	}
	if f.client, err = newIdentity(); err != nil {
		return nil, err
	}

	// The alknet arm: an endpoint as a deployment would run it.
	store, err := benchClientStore(f.client.fp)
	if err != nil {
		return nil, err
	}
	reg := core.NewRegistry()
	if err := reg.Register(echo.Handler{}); err != nil {
		return nil, err
	}
	if err := reg.RegisterAs(sinkALPN, sinkHandler()); err != nil {
		return nil, err
	}
	f.ep, err = newEndpoint(reg, f.server.cert, store, slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo})))
	if err != nil {
		return nil, err
	}
	// Goroutines inherit profile labels from the goroutine that starts them, so the
	// listeners' and connections' samples carry arm and side.
	pprof.Do(ctx, pprof.Labels("arm", "alknet", "side", "server"), func(context.Context) {
		err = f.ep.Listen("127.0.0.1:0")
	})
	if err != nil {
		_ = f.ep.Close()
		return nil, err
	}
	f.epAddr = f.ep.QUICAddr().String()

	// The baselines, with the same certificate and TLS settings, and quic.Config values
	// equal to the endpoint's and Dial's defaults, so only alknet's own work differs.
	pprof.Do(ctx, pprof.Labels("arm", "baseline", "side", "server"), func(context.Context) {
		f.base, err = startBaseline(f.server.cert)
	})
	if err != nil {
		_ = f.ep.Close()
		return nil, err
	}
	f.clientQUIC = &quic.Config{
		HandshakeIdleTimeout:  endpoint.DefaultDialHandshakeTimeout,
		MaxIdleTimeout:        endpoint.DefaultMaxIdleTimeout,
		KeepAlivePeriod:       endpoint.DefaultKeepAlivePeriod,
		MaxIncomingStreams:    endpoint.DefaultMaxIncomingStreams,
		MaxIncomingUniStreams: -1,
	}
	f.clientTLS = map[string]*tls.Config{
		echo.ALPN: baselineClientTLS(f.client.cert, f.server.pub, echo.ALPN),
		sinkALPN:  baselineClientTLS(f.client.cert, f.server.pub, sinkALPN),
	}
	f.resume = make(map[endpoint.Network]*resumeClients)
	for _, n := range []endpoint.Network{endpoint.NetworkQUIC, endpoint.NetworkTCP} {
		base := baselineClientTLS(f.client.cert, f.server.pub, echo.ALPN)
		base.ClientSessionCache = tls.NewLRUClientSessionCache(0)
		f.resume[n] = &resumeClients{sessions: tlsconf.NewSessionCache(0), baseTLS: base}
	}
	return f, nil
}

// shutdown stops both servers cleanly; close is the deferred fallback.
func (f *fixture) shutdown() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := f.ep.Shutdown(ctx)
	return errors.Join(err, f.base.close())
}

func (f *fixture) close() {
	_ = f.ep.Close()
	_ = f.base.close()
}

// dialOptions is what an alknet client passes: its certificate and the server's pin.
func (f *fixture) dialOptions(network endpoint.Network) endpoint.DialOptions {
	cert := f.client.cert
	return endpoint.DialOptions{Network: network, TLS: tlsconf.ClientOptions{Certificate: &cert, Pin: f.server.fp}}
}

// connsMetric is the connections/s metric over network: every connection a full
// handshake, or (resumed) resuming a session an earlier connection of the same arm got.
func (f *fixture) connsMetric(o endpointOptions, key, label, baseName string, network endpoint.Network, resumed bool) *metric {
	opts := f.dialOptions(network)
	base := f.clientTLS[echo.ALPN]
	if resumed {
		opts.TLS.Sessions = f.resume[network].sessions
		base = f.resume[network].baseTLS
	}
	alknet := func(ctx context.Context) (bool, error) { return f.alknetEcho(ctx, opts) }
	baseline := func(ctx context.Context) (bool, error) { return f.baselineQUICEcho(ctx, base) }
	if network == endpoint.NetworkTCP {
		baseline = func(ctx context.Context) (bool, error) { return f.baselineTLSEcho(ctx, base) }
	}
	return &metric{
		key: key, label: label, unit: "conn", baseName: baseName,
		alknet:   newArm("alknet", connsArm(o, alknet, resumed)),
		baseline: newArm("baseline", connsArm(o, baseline, resumed)),
	}
}

// errNotResumed fails a connection of a resumed-connections round that made a full
// handshake, so that those rounds count resumed connections only.
var errNotResumed = errors.New("the connection did not resume its TLS session")

// maxPrimeConns bounds the connections that may pass before the first one resumes.
const maxPrimeConns = 10

// connsArm is one arm's connections/s round of op, which reports whether its
// handshake resumed. With resumed, the first round (the warm-up) first connects until
// a connection resumes, so the arm's session cache holds a session, and every measured
// connection that does not resume fails.
func connsArm(o endpointOptions, op func(context.Context) (bool, error), resumed bool) func(context.Context) (sample, error) {
	var primed bool // rounds of an arm run one after another
	return func(ctx context.Context) (sample, error) {
		for i := 0; resumed && !primed; i++ {
			if i == maxPrimeConns {
				return sample{}, fmt.Errorf("no resumed connection in %d: %w", maxPrimeConns, errNotResumed)
			}
			opCtx, cancel := context.WithTimeout(ctx, opTimeout)
			did, err := op(opCtx)
			cancel()
			if err != nil {
				return sample{}, err
			}
			primed = did
		}
		return connsRound(ctx, o.parallel, o.duration, func(ctx context.Context) error {
			did, err := op(ctx)
			if err == nil && resumed && !did {
				return errNotResumed
			}
			return err
		})
	}
}

// settle waits until the servers have let go of every connection of the last round,
// collects garbage and pauses, so one arm's teardown does not run during the next.
func (f *fixture) settle(ctx context.Context, pause time.Duration) error {
	deadline := time.Now().Add(10 * time.Second)
	for f.ep.Stats().Connections > 0 || f.base.active.Load() > 0 {
		if time.Now().After(deadline) {
			return fmt.Errorf("connections still open 10s after a round: alknet %d, baseline %d", f.ep.Stats().Connections, f.base.active.Load())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	return gcPause(ctx, pause)
}

// connsRound runs parallel dialers for d, each repeating op, and returns connections/s.
// A failed op counts as an error; more than 1 % errors fail the round.
func connsRound(ctx context.Context, parallel int, d time.Duration, op func(context.Context) error) (sample, error) {
	var ok, failed atomic.Int64
	var firstErr error
	var errOnce sync.Once
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for range parallel {
		wg.Go(func() {
			for time.Now().Before(deadline) && ctx.Err() == nil && failed.Load() < 100 {
				opCtx, cancel := context.WithTimeout(ctx, opTimeout)
				err := op(opCtx)
				cancel()
				if err != nil {
					failed.Add(1)
					errOnce.Do(func() { firstErr = err })
					continue
				}
				ok.Add(1)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := ctx.Err(); err != nil {
		return sample{}, err
	}
	n, nf := ok.Load(), failed.Load()
	if n == 0 || nf*100 > n+nf {
		return sample{}, fmt.Errorf("%d of %d connections failed, first: %w", nf, n+nf, firstErr)
	}
	return sample{value: float64(n) / elapsed.Seconds(), ops: int(n)}, nil
}

// echoMsg is the one byte each connection echoes.
var echoMsg = []byte{0x5a}

// alknetEcho dials the endpoint with opts, echoes one byte on one stream and closes.
// It reports whether the handshake resumed a TLS session.
func (f *fixture) alknetEcho(ctx context.Context, opts endpoint.DialOptions) (resumed bool, err error) {
	conn, err := endpoint.Dial(ctx, f.epAddr, echo.ALPN, opts)
	if err != nil {
		return false, err
	}
	defer conn.Close(core.CloseNormal, "")
	st, _ := conn.TLSConnectionState()
	s, err := conn.OpenBi(ctx)
	if err != nil {
		return false, err
	}
	return st.DidResume, echoOnce(s, s.CloseWrite)
}

// baselineQUICEcho does the same with quic-go alone.
func (f *fixture) baselineQUICEcho(ctx context.Context, cfg *tls.Config) (resumed bool, err error) {
	qc, err := quic.DialAddr(ctx, f.base.quicAddr, cfg, f.clientQUIC)
	if err != nil {
		return false, err
	}
	defer qc.CloseWithError(0, "")
	s, err := qc.OpenStreamSync(ctx)
	if err != nil {
		return false, err
	}
	return qc.ConnectionState().TLS.DidResume, echoOnce(s, s.Close)
}

// baselineTLSEcho does the same with crypto/tls over TCP.
func (f *fixture) baselineTLSEcho(ctx context.Context, cfg *tls.Config) (resumed bool, err error) {
	d := tls.Dialer{Config: cfg}
	c, err := d.DialContext(ctx, "tcp", f.base.tlsAddr)
	if err != nil {
		return false, err
	}
	tc := c.(*tls.Conn)
	defer tc.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = tc.SetDeadline(dl)
	}
	return tc.ConnectionState().DidResume, echoOnce(tc, tc.CloseWrite)
}

// echoOnce writes echoMsg, half-closes and reads the echo to EOF.
func echoOnce(rw io.ReadWriter, closeWrite func() error) error {
	if _, err := rw.Write(echoMsg); err != nil {
		return err
	}
	if err := closeWrite(); err != nil {
		return err
	}
	var buf [16]byte
	n := 0
	for {
		m, err := rw.Read(buf[n:])
		n += m
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if n == len(buf) {
			return errors.New("echo: too many bytes")
		}
	}
	if !bytes.Equal(buf[:n], echoMsg) {
		return fmt.Errorf("echo: got %x, want %x", buf[:n], echoMsg)
	}
	return nil
}

// bulkTimeout bounds one transfer: generous, at 1 MB/s plus a minute.
func bulkTimeout(n int64) time.Duration {
	return time.Minute + time.Duration(n/1e6)*time.Second
}

// alknetBulk sends n bytes to the endpoint's sink over one stream of network.
func (f *fixture) alknetBulk(ctx context.Context, network endpoint.Network, n int64) (sample, error) {
	ctx, cancel := context.WithTimeout(ctx, bulkTimeout(n))
	defer cancel()
	conn, err := endpoint.Dial(ctx, f.epAddr, sinkALPN, f.dialOptions(network))
	if err != nil {
		return sample{}, err
	}
	defer conn.Close(core.CloseNormal, "")
	start := time.Now()
	s, err := conn.OpenBi(ctx)
	if err != nil {
		return sample{}, err
	}
	return bulk(ctx, s, s.CloseWrite, n, start)
}

// baselineQUICBulk does the same with quic-go alone.
func (f *fixture) baselineQUICBulk(ctx context.Context, n int64) (sample, error) {
	ctx, cancel := context.WithTimeout(ctx, bulkTimeout(n))
	defer cancel()
	qc, err := quic.DialAddr(ctx, f.base.quicAddr, f.clientTLS[sinkALPN], f.clientQUIC)
	if err != nil {
		return sample{}, err
	}
	defer qc.CloseWithError(0, "")
	start := time.Now()
	s, err := qc.OpenStreamSync(ctx)
	if err != nil {
		return sample{}, err
	}
	return bulk(ctx, s, s.Close, n, start)
}

// baselineTLSBulk does the same with crypto/tls over TCP.
func (f *fixture) baselineTLSBulk(ctx context.Context, n int64) (sample, error) {
	ctx, cancel := context.WithTimeout(ctx, bulkTimeout(n))
	defer cancel()
	d := tls.Dialer{Config: f.clientTLS[sinkALPN]}
	c, err := d.DialContext(ctx, "tcp", f.base.tlsAddr)
	if err != nil {
		return sample{}, err
	}
	tc := c.(*tls.Conn)
	defer tc.Close()
	start := time.Now()
	return bulk(ctx, tc, tc.CloseWrite, n, start)
}

// bulk writes n bytes in writeSize writes, half-closes, reads the sink's count to EOF
// and returns MB/s since start. ctx ending unblocks it through the stream's deadline.
func bulk(ctx context.Context, rw io.ReadWriter, closeWrite func() error, n int64, start time.Time) (sample, error) {
	if d, ok := rw.(interface{ SetDeadline(time.Time) error }); ok {
		stop := context.AfterFunc(ctx, func() { _ = d.SetDeadline(time.Unix(1, 0)) })
		defer stop()
	}
	buf := make([]byte, writeSize)
	for i := range buf {
		buf[i] = byte(i * 7)
	}
	for left := n; left > 0; {
		chunk := buf[:min(int64(len(buf)), left)]
		if _, err := rw.Write(chunk); err != nil {
			return sample{}, fmt.Errorf("write: %w", err)
		}
		left -= int64(len(chunk))
	}
	if err := closeWrite(); err != nil {
		return sample{}, fmt.Errorf("close write: %w", err)
	}
	var reply [8]byte
	if _, err := io.ReadFull(rw, reply[:]); err != nil {
		return sample{}, fmt.Errorf("read count: %w", err)
	}
	var extra [1]byte
	if m, err := rw.Read(extra[:]); m != 0 || err != io.EOF {
		return sample{}, fmt.Errorf("after the count: %d bytes, %v (want EOF)", m, err)
	}
	elapsed := time.Since(start)
	if got := int64(binary.BigEndian.Uint64(reply[:])); got != n {
		return sample{}, fmt.Errorf("sink counted %d bytes, sent %d", got, n)
	}
	return sample{value: float64(n) / elapsed.Seconds() / 1e6, ops: 1}, nil
}

// sinkStream reads r to EOF and writes the byte count (8 bytes, big endian) to w. Both
// arms' servers use it.
func sinkStream(rw io.ReadWriter) error {
	buf := make([]byte, sinkReadSize)
	var n uint64
	for {
		m, err := rw.Read(buf)
		n += uint64(m)
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	var reply [8]byte
	binary.BigEndian.PutUint64(reply[:], n)
	_, err := rw.Write(reply[:])
	return err
}

// sinkHandler serves sinkALPN on the endpoint, shaped like examples/echo: every stream
// the peer opens is sunk concurrently until the connection closes.
func sinkHandler() core.Handler {
	return core.HandlerFunc(func(ctx context.Context, conn *core.Connection, _ core.AuthContext) error {
		return core.ServeStreams(ctx, conn, func(s core.BiStream) {
			if err := sinkStream(s); err != nil {
				_ = s.Close()
				return
			}
			_ = s.CloseWrite()
		})
	})
}

// byteSize is a flag value in bytes that accepts KiB, MiB and GiB suffixes.
type byteSize int64

func (b byteSize) String() string {
	v := int64(b)
	for _, u := range []struct {
		suffix string
		size   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if v >= u.size && v%u.size == 0 {
			return strconv.FormatInt(v/u.size, 10) + " " + u.suffix
		}
	}
	return strconv.FormatInt(v, 10) + " B"
}

func (b *byteSize) Set(s string) error {
	s = strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		size   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}} {
		if rest, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = strings.TrimSpace(rest), u.size
			break
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < 0 || v > (1<<62)/mult {
		return fmt.Errorf("want a byte count such as 16MiB, got %q", s)
	}
	*b = byteSize(v * mult)
	return nil
}
