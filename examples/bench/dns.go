package main

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mdns "github.com/miekg/dns"
	"github.com/quic-go/quic-go"

	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/core/endpoint"
	alkdns "github.com/alknet/alknet/dns"
)

// Metric keys of the dns benchmark, for -only and profile labels.
const (
	metricDNSStream1 = "streams-1"
	metricDNSStreamN = "streams-n"
	metricDNSConnsN  = "conns-n"
)

// dnsMetrics lists the metric keys in table order.
var dnsMetrics = []string{metricDNSStream1, metricDNSStreamN, metricDNSConnsN}

// Arm names of the dns benchmark, for -arms and profile labels ("arm").
const (
	armDNSAlknet = "alknet-doq"
	armDNSBare   = "quicgo-doq"
	armDNSUDP    = "miekg-udp"
)

// dnsArms lists the arms in column order.
var dnsArms = []string{armDNSAlknet, armDNSBare, armDNSUDP}

// dnsArmTitles are the column headers of the arms.
var dnsArmTitles = map[string]string{
	armDNSAlknet: "alknet DoQ",
	armDNSBare:   "bare quic-go DoQ",
	armDNSUDP:    "miekg/dns UDP (ceiling)",
}

// dnsGoal is the goal: alknet's DoQ queries/s at least this share of the bare
// quic-go DoQ loop's, in every metric.
const dnsGoal = 0.95

// dnsZoneOrigin is the static zone the query mix asks an A record of.
const dnsZoneOrigin = "bench.example."

// dnsZone is the static zone's master file.
const dnsZone = `$ORIGIN bench.example.
$TTL 3600
@    IN SOA ns1 hostmaster 1 7200 3600 1209600 300
@    IN NS  ns1
ns1  IN A   192.0.2.1
www  IN A   192.0.2.80
`

type dnsBenchOptions struct {
	runOptions
	streams int
	conns   int
}

func runDNS(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	quietQUICBufferWarning()
	o := dnsBenchOptions{}
	fs := newFlagSet("dns", "Compares alknet's DNS over QUIC (dns.Server on the endpoint, ALPN doq) with the same\n"+
		"zone handler behind a bare quic-go DoQ loop, and with miekg/dns over plain UDP (the\n"+
		"ceiling), on loopback: queries/s and p50/p99 latency with 1 and -streams concurrent\n"+
		"streams on one connection, and with -conns connections. The DoQ arms share one raw\n"+
		"quic-go client, so only the server differs.", stderr)
	o.sharedFlags(fs, orderRotating, dnsMetrics, dnsArms, "arm, side, metric")
	fs.DurationVar(&o.duration, "duration", 2*time.Second, "length of one round per metric and arm")
	fs.IntVar(&o.streams, "streams", 64, "concurrent queries (streams) on one connection in the "+metricDNSStreamN+" metric")
	fs.IntVar(&o.conns, "conns", 64, "connections, one querier each, in the "+metricDNSConnsN+" metric")
	fs.DurationVar(&o.settle, "settle", 50*time.Millisecond, "pause after each arm, after a GC")
	help, err := parseFlags(fs, args, stderr, quickUsage, o.quickOverrides())
	if help || err != nil {
		return err
	}
	if err := o.validate(atLeast1("-streams", o.streams), atLeast1("-conns", o.conns)); err != nil {
		return err
	}
	return armBench[dnsBenchOptions, *dnsFixture]{
		metrics: dnsMetrics,
		arms:    dnsArms,
		start:   newDNSFixture,
		warm: func(o dnsBenchOptions) dnsBenchOptions {
			o.duration = min(o.duration, 300*time.Millisecond)
			return o
		},
		report: dnsReport,
	}.run(ctx, o, stdout, stderr)
}

// dnsQuery is one query of the mix, as each kind of client sends it.
type dnsQuery struct {
	msg    *mdns.Msg // the question, for the UDP client (a copy per querier) and the check
	framed []byte    // DoQ: 2-octet length and the query packed with ID 0
}

// dnsQueryMix returns the queries every arm sends, in turn: the node's discovery TXT
// record "_alknet.<z32>." and an A record of the static zone, both with EDNS(0) (UDP
// size 1232, no options).
func dnsQueryMix(nodeName string) ([]dnsQuery, error) {
	var out []dnsQuery
	for _, q := range []struct {
		name  string
		qtype uint16
	}{{alkdns.DiscoveryLabel + "." + nodeName, mdns.TypeTXT}, {"www." + dnsZoneOrigin, mdns.TypeA}} {
		m := new(mdns.Msg)
		m.SetQuestion(q.name, q.qtype)
		m.SetEdns0(alkdns.EDNSUDPSize, false)
		m.Id = 0
		wire, err := m.Pack()
		if err != nil {
			return nil, err
		}
		framed := binary.BigEndian.AppendUint16(make([]byte, 0, 2+len(wire)), uint16(len(wire)))
		out = append(out, dnsQuery{msg: m, framed: append(framed, wire...)})
	}
	return out, nil
}

// dnsQuerier sends queries for one worker of a round.
type dnsQuerier interface {
	// query sends query k of the mix and returns when its answer arrived; it checks
	// only the answer's header (NOERROR, at least one answer, the expected ID).
	query(ctx context.Context, k int) error
}

// dnsArmClient is one arm's client side.
type dnsArmClient interface {
	// prepare readies workers queriers for a round of the metric key, untimed: the
	// DoQ clients make sure each connection answers (redialing one that does not, so
	// that the server's idle timeout between rounds does not fail the round).
	prepare(ctx context.Context, key string, workers int) error
	// querier returns worker w's querier of the metric key.
	querier(key string, w int) dnsQuerier
	// exchange sends m and returns the whole response, for the correctness check.
	exchange(ctx context.Context, key string, w int, m *mdns.Msg) (*mdns.Msg, error)
}

// dnsFixture holds the servers and clients of every arm.
type dnsFixture struct {
	server, client identity
	handler        *alkdns.Handler
	queries        []dnsQuery
	arms           []string                // selected arms, column order
	clients        map[string]dnsArmClient // by arm
	lat            latBuffers
	closers
}

// newDNSFixture builds the zone handler (the node zone of the server's key and a
// static zone) and starts the selected arms, each serving that same handler.
func newDNSFixture(ctx context.Context, arms []string, o dnsBenchOptions) (_ *dnsFixture, err error) {
	f := &dnsFixture{arms: arms, clients: make(map[string]dnsArmClient), lat: make(latBuffers)}
	defer func() {
		if err != nil {
			f.close()
		}
	}()
	if f.server, err = newIdentity(); err != nil {
		return nil, err
	}
	if f.client, err = newIdentity(); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "alknet-bench-dns-")
	if err != nil {
		return nil, err
	}
	f.add(func(context.Context) error { return os.RemoveAll(dir) })
	zoneFile := filepath.Join(dir, "bench.example.zone")
	if err := os.WriteFile(zoneFile, []byte(dnsZone), 0o600); err != nil {
		return nil, err
	}
	// What a node with a [dns] table of one zone file runs; it publishes the DoQ ALPNs
	// at the default DoQ port (the records are the same size whatever the port).
	cfg := alkdns.Config{Zones: []string{zoneFile}}
	f.handler, err = alkdns.NewHandler(cfg,
		alkdns.WithNodeKey(f.server.pub),
		alkdns.WithServices([]string{alkdns.ALPNDoQ, alkdns.ALPN}, []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:853")}),
		alkdns.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		return nil, err
	}
	if f.queries, err = dnsQueryMix(alkdns.NodeName(f.server.pub, cfg.Origin)); err != nil {
		return nil, err
	}
	for _, a := range arms {
		var c dnsArmClient
		switch a {
		case armDNSAlknet:
			c, err = f.startAlknet(ctx, a, cfg, o.conns)
		case armDNSBare:
			c, err = f.startBare(ctx, a, o.conns)
		case armDNSUDP:
			c, err = f.startUDP(ctx, a, max(o.streams, o.conns))
		}
		if err != nil {
			return nil, fmt.Errorf("start %s: %w", a, err)
		}
		f.clients[a] = c
	}
	return f, nil
}

// startAlknet starts an endpoint serving dns.Server (the node's [dns] defaults:
// padding on, 100 streams per connection, 5 s query and 30 s idle timeouts) under doq,
// alknet/dns and dot, QUIC only, and returns the raw DoQ client of it.
func (f *dnsFixture) startAlknet(ctx context.Context, name string, cfg alkdns.Config, conns int) (dnsArmClient, error) {
	logger := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))
	srv, err := alkdns.NewServer(cfg.ServerConfig(f.handler, logger))
	if err != nil {
		return nil, err
	}
	reg := core.NewRegistry()
	if err := srv.Register(reg); err != nil {
		return nil, err
	}
	store, err := benchClientStore(f.client.fp)
	if err != nil {
		return nil, err
	}
	ep, err := newEndpoint(reg, f.server.cert, store, logger)
	if err != nil {
		return nil, err
	}
	addr, err := listenArm(ctx, ep, name, endpoint.NetworkQUIC)
	if err != nil {
		return nil, err
	}
	f.add(ep.Shutdown)
	return f.newDoQClient(ctx, name, addr, conns)
}

// startBare starts the bare quic-go DoQ loop serving the zone handler and returns the
// raw DoQ client of it.
func (f *dnsFixture) startBare(ctx context.Context, name string, conns int) (dnsArmClient, error) {
	var b *bareDoQ
	var err error
	pprof.Do(ctx, pprof.Labels("arm", name, "side", "server"), func(context.Context) {
		b, err = startBareDoQ(f.server.cert, f.handler)
	})
	if err != nil {
		return nil, err
	}
	f.add(func(context.Context) error { return b.close() })
	return f.newDoQClient(ctx, name, b.addr, conns)
}

// newDoQClient returns the raw DoQ client of the server at addr, which the arm's
// connections are dialed by: one shared by the stream metrics, conns for the
// connection metric (dialed by prepare, then kept).
func (f *dnsFixture) newDoQClient(ctx context.Context, name, addr string, conns int) (dnsArmClient, error) {
	c := &doqClient{
		name:    name,
		addr:    addr,
		tls:     baselineClientTLS(f.client.cert, f.server.pub, alkdns.ALPNDoQ),
		conns:   make([]*quic.Conn, 1+conns),
		queries: f.queries,
		quic: &quic.Config{
			HandshakeIdleTimeout:  endpoint.DefaultDialHandshakeTimeout,
			MaxIdleTimeout:        endpoint.DefaultMaxIdleTimeout,
			KeepAlivePeriod:       endpoint.DefaultKeepAlivePeriod,
			MaxIncomingStreams:    -1, // DoQ servers open no streams
			MaxIncomingUniStreams: -1,
		},
	}
	f.add(func(context.Context) error { c.closeAll(); return nil })
	if err := c.prepare(ctx, metricDNSStream1, 1); err != nil {
		return nil, err
	}
	return c, nil
}

// startUDP serves the zone handler with miekg/dns's UDP server on loopback and returns
// its client: socks UDP sockets, one per querier.
func (f *dnsFixture) startUDP(ctx context.Context, name string, socks int) (dnsArmClient, error) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	started := make(chan struct{})
	srv := &mdns.Server{PacketConn: pc, Handler: f.handler, NotifyStartedFunc: func() { close(started) }}
	served := make(chan error, 1)
	pprof.Do(ctx, pprof.Labels("arm", name, "side", "server"), func(context.Context) {
		go func() { served <- srv.ActivateAndServe() }()
	})
	select {
	case <-started:
	case err := <-served:
		return nil, fmt.Errorf("miekg/dns UDP server: %w", err)
	case <-time.After(10 * time.Second):
		_ = pc.Close()
		<-served
		return nil, errors.New("miekg/dns UDP server did not start within 10s")
	}
	f.add(func(ctx context.Context) error {
		err := srv.ShutdownContext(ctx)
		<-served
		return err
	})
	c := &udpClient{
		client: &mdns.Client{Net: "udp", Timeout: alkdns.DefaultQueryTimeout},
		socks:  make([]*mdns.Conn, socks),
		msgs:   make([][]*mdns.Msg, socks),
	}
	f.add(func(context.Context) error { return c.close() })
	addr := pc.LocalAddr().String()
	for i := range c.socks {
		if c.socks[i], err = c.client.Dial(addr); err != nil {
			return nil, err
		}
		for _, q := range f.queries {
			m := q.msg.Copy()
			m.Id = mdns.Id()
			c.msgs[i] = append(c.msgs[i], m)
		}
	}
	return c, nil
}

// settle collects garbage and pauses after each arm.
func (f *dnsFixture) settle(ctx context.Context, pause time.Duration) error {
	return gcPause(ctx, pause)
}

// check makes sure, once and untimed, that every arm answers each query of the mix
// with exactly what the handler answers (rcode, flags, answer section): once on one
// connection, then with -streams queries at once on it, then once on each of -conns
// connections at once.
func (f *dnsFixture) check(ctx context.Context, o dnsBenchOptions) error {
	ctx, cancel := context.WithTimeout(ctx, 2*callTimeout)
	defer cancel()
	for _, name := range f.arms {
		c := f.clients[name]
		var err error
		pprof.Do(ctx, pprof.Labels("arm", name, "side", "client", "metric", "check"), func(ctx context.Context) {
			err = f.checkArm(ctx, c, o)
		})
		if err != nil {
			return fmt.Errorf("check %s: %w", name, err)
		}
	}
	return nil
}

func (f *dnsFixture) checkArm(ctx context.Context, c dnsArmClient, o dnsBenchOptions) error {
	one := func(key string, w, k int) error {
		q := f.queries[k%len(f.queries)]
		want := f.handler.Answer(q.msg)
		got, err := c.exchange(ctx, key, w, q.msg)
		if err != nil {
			return fmt.Errorf("%s %s: %w", q.msg.Question[0].Name, mdns.TypeToString[q.msg.Question[0].Qtype], err)
		}
		return sameAnswer(got, want)
	}
	parallel := func(key string, workers int) error {
		if err := c.prepare(ctx, key, workers); err != nil {
			return err
		}
		errs := make([]error, workers)
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() { errs[w] = one(key, w, w) })
		}
		wg.Wait()
		return errors.Join(errs...)
	}
	if err := c.prepare(ctx, metricDNSStream1, 1); err != nil {
		return err
	}
	for k := range f.queries {
		if err := one(metricDNSStream1, 0, k); err != nil {
			return err
		}
	}
	if err := parallel(metricDNSStreamN, o.streams); err != nil {
		return err
	}
	return parallel(metricDNSConnsN, o.conns)
}

// sameAnswer reports how got differs from want in what the transports must not
// change: rcode, the AA bit and the answer section.
func sameAnswer(got, want *mdns.Msg) error {
	if got.Rcode != want.Rcode || got.Authoritative != want.Authoritative || !got.Response {
		return fmt.Errorf("got rcode %s, AA %v, QR %v; want rcode %s, AA %v, QR true",
			mdns.RcodeToString[got.Rcode], got.Authoritative, got.Response, mdns.RcodeToString[want.Rcode], want.Authoritative)
	}
	if len(want.Answer) == 0 {
		return errors.New("the handler gives no answer records: the query mix is wrong")
	}
	if len(got.Answer) != len(want.Answer) {
		return fmt.Errorf("got %d answer records, want %d", len(got.Answer), len(want.Answer))
	}
	for i := range want.Answer {
		if g, w := got.Answer[i].String(), want.Answer[i].String(); g != w {
			return fmt.Errorf("answer %d: got %q, want %q", i, g, w)
		}
	}
	return nil
}

func (f *dnsFixture) metrics(o dnsBenchOptions, selected map[string]bool) []*callMetric {
	metric := func(key, label string, workers int) *callMetric {
		m := &callMetric{key: key, label: label, unit: "query", unary: true}
		for _, name := range f.arms {
			c := f.clients[name]
			m.arms = append(m.arms, f.lat.arm(key, name, workers, func(ctx context.Context, lat [][]time.Duration) (sample, error) {
				return dnsRound(ctx, c, key, len(f.queries), o.duration, lat)
			}))
		}
		return m
	}
	all := []*callMetric{
		metric(metricDNSStream1, "queries/s, 1 stream", 1),
		metric(metricDNSStreamN, fmt.Sprintf("queries/s, %d streams on one connection", o.streams), o.streams),
		metric(metricDNSConnsN, fmt.Sprintf("queries/s, %d connections", o.conns), o.conns),
	}
	var out []*callMetric
	for _, m := range all {
		if selected[m.key] {
			out = append(out, m)
		}
	}
	return out
}

// dnsRound readies the arm's queriers (untimed), then runs len(lat) workers for d,
// each sending the query mix in turn (worker w starting at query w), and returns
// queries/s.
func dnsRound(ctx context.Context, c dnsArmClient, key string, mix int, d time.Duration, lat [][]time.Duration) (sample, error) {
	pctx, cancel := context.WithTimeout(ctx, callTimeout)
	err := c.prepare(pctx, key, len(lat))
	cancel()
	if err != nil {
		return sample{}, fmt.Errorf("prepare: %w", err)
	}
	var next atomic.Int32
	return latencyRound(ctx, d, lat, "query", func() func(context.Context) (time.Time, error) {
		w := int(next.Add(1) - 1)
		q := c.querier(key, w)
		k := w
		return func(ctx context.Context) (time.Time, error) {
			err := q.query(ctx, k%mix)
			k++
			return time.Now(), err
		}
	})
}

// checkHeader checks a response's header as the timed path does: QR set, NOERROR, at
// least one answer record, and the ID id.
func checkHeader(b []byte, id uint16) error {
	if len(b) < 12 {
		return fmt.Errorf("response of %d bytes is shorter than a DNS header", len(b))
	}
	if got := binary.BigEndian.Uint16(b); got != id {
		return fmt.Errorf("response ID %d, want %d", got, id)
	}
	if b[2]&0x80 == 0 {
		return errors.New("response without QR")
	}
	if rc := int(b[3] & 0xf); rc != mdns.RcodeSuccess {
		return fmt.Errorf("response rcode %s", mdns.RcodeToString[rc])
	}
	if binary.BigEndian.Uint16(b[6:]) == 0 {
		return errors.New("response without answer records")
	}
	return nil
}

// doqClient is the raw quic-go DoQ client both DoQ arms use: conns[0] is the one
// connection of the stream metrics, conns[1:] those of the connection metric.
type doqClient struct {
	name    string
	addr    string
	tls     *tls.Config
	quic    *quic.Config
	queries []dnsQuery
	conns   []*quic.Conn // set by prepare, read by the round's queriers
}

// connsOf returns the indices in conns of the metric key's connections when it runs
// workers queriers: conns[0] for the stream metrics, one each for the connection
// metric.
func (c *doqClient) connsOf(key string, workers int) (first, n int) {
	if key == metricDNSConnsN {
		return 1, workers
	}
	return 0, 1
}

// conn returns worker w's connection in the metric key.
func (c *doqClient) conn(key string, w int) *quic.Conn {
	if key == metricDNSConnsN {
		return c.conns[1+w]
	}
	return c.conns[0]
}

func (c *doqClient) prepare(ctx context.Context, key string, workers int) error {
	first, n := c.connsOf(key, workers)
	if first+n > len(c.conns) {
		return fmt.Errorf("%d connections asked for, %d set up", n, len(c.conns)-first)
	}
	probe := c.queries[0].framed
	for i := first; i < first+n; i++ {
		if qc := c.conns[i]; qc != nil {
			if _, err := doqExchange(ctx, qc, probe, nil); err == nil {
				continue
			}
			_ = qc.CloseWithError(0, "")
			c.conns[i] = nil
		}
		// The connection's goroutines carry the labels of the goroutine that dials it:
		// arm and side, not the metric that happened to dial it first.
		var qc *quic.Conn
		var err error
		pprof.Do(context.Background(), pprof.Labels("arm", c.name, "side", "client"), func(context.Context) {
			qc, err = quic.DialAddr(ctx, c.addr, c.tls, c.quic)
		})
		if err != nil {
			return fmt.Errorf("dial: %w", err)
		}
		c.conns[i] = qc
	}
	return nil
}

func (c *doqClient) querier(key string, w int) dnsQuerier {
	return &doqQuerier{conn: c.conn(key, w), queries: c.queries}
}

func (c *doqClient) exchange(ctx context.Context, key string, w int, m *mdns.Msg) (*mdns.Msg, error) {
	q := m.Copy() // Pack writes into the OPT record, which callers share
	q.Id = 0
	wire, err := q.Pack()
	if err != nil {
		return nil, err
	}
	framed := binary.BigEndian.AppendUint16(nil, uint16(len(wire)))
	b, err := doqExchange(ctx, c.conn(key, w), append(framed, wire...), nil)
	if err != nil {
		return nil, err
	}
	if err := checkHeader(b, 0); err != nil {
		return nil, err
	}
	r := new(mdns.Msg)
	if err := r.Unpack(b); err != nil {
		return nil, err
	}
	return r, nil
}

func (c *doqClient) closeAll() {
	for i, qc := range c.conns {
		if qc != nil {
			_ = qc.CloseWithError(0, "")
			c.conns[i] = nil
		}
	}
}

// doqQuerier is one worker's side of a DoQ connection; buf is its response buffer.
type doqQuerier struct {
	conn    *quic.Conn
	queries []dnsQuery
	buf     []byte
}

func (q *doqQuerier) query(ctx context.Context, k int) error {
	b, err := doqExchange(ctx, q.conn, q.queries[k].framed, q.buf)
	if err != nil {
		return err
	}
	q.buf = b
	return checkHeader(b, 0)
}

// doqRequestCancelled is DOQ_REQUEST_CANCELLED (RFC 9250 §4.3): the code the client
// resets a stream with when it gives up on it.
const doqRequestCancelled quic.StreamErrorCode = 0x3

// doqExchange sends framed (a length-prefixed query with ID 0) on a new stream of
// conn, half-closes the stream, and reads the one response frame into buf (grown as
// needed) and then the stream's end (RFC 9250 §4.2). ctx's deadline bounds it.
func doqExchange(ctx context.Context, conn *quic.Conn, framed, buf []byte) ([]byte, error) {
	st, err := conn.OpenStreamSync(ctx)
	if err != nil {
		return nil, fmt.Errorf("open stream: %w", err)
	}
	if d, ok := ctx.Deadline(); ok {
		_ = st.SetDeadline(d)
	}
	resp, err := doqStreamExchange(st, framed, buf)
	if err != nil {
		st.CancelRead(doqRequestCancelled)
		st.CancelWrite(doqRequestCancelled)
		return nil, err
	}
	return resp, nil
}

func doqStreamExchange(st *quic.Stream, framed, buf []byte) ([]byte, error) {
	if _, err := st.Write(framed); err != nil {
		return nil, fmt.Errorf("send query: %w", err)
	}
	if err := st.Close(); err != nil {
		return nil, fmt.Errorf("send FIN: %w", err)
	}
	b, err := readDoQFrame(st, buf)
	if err != nil {
		return nil, fmt.Errorf("read response: %w", err)
	}
	if err := readDoQEnd(st); err != nil {
		return nil, fmt.Errorf("read response end: %w", err)
	}
	return b, nil
}

// readDoQFrame reads a 2-octet length and that many bytes into buf, grown as needed.
func readDoQFrame(r io.Reader, buf []byte) ([]byte, error) {
	var hdr [2]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint16(hdr[:]))
	buf = slices.Grow(buf[:0], n)[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, err
	}
	return buf, nil
}

// readDoQEnd checks that the stream ends after the one message.
func readDoQEnd(r io.Reader) error {
	var one [1]byte
	n, err := io.ReadFull(r, one[:])
	switch {
	case n > 0:
		return errors.New("more than one message on a stream")
	case errors.Is(err, io.EOF):
		return nil
	}
	return err
}

// udpClient is miekg/dns's client over one UDP socket per querier; msgs[i] are socket
// i's copies of the query mix, each with its own ID.
type udpClient struct {
	client *mdns.Client
	socks  []*mdns.Conn
	msgs   [][]*mdns.Msg
}

func (c *udpClient) prepare(_ context.Context, _ string, workers int) error {
	if workers > len(c.socks) {
		return fmt.Errorf("%d sockets asked for, %d set up", workers, len(c.socks))
	}
	return nil
}

func (c *udpClient) querier(_ string, w int) dnsQuerier {
	return udpQuerier{client: c.client, conn: c.socks[w], msgs: c.msgs[w]}
}

func (c *udpClient) exchange(ctx context.Context, _ string, w int, m *mdns.Msg) (*mdns.Msg, error) {
	q := m.Copy()
	q.Id = mdns.Id()
	r, _, err := c.client.ExchangeWithConnContext(ctx, q, c.socks[w])
	return r, err
}

func (c *udpClient) close() error {
	var errs []error
	for _, s := range c.socks {
		if s != nil {
			errs = append(errs, s.Close())
		}
	}
	return errors.Join(errs...)
}

type udpQuerier struct {
	client *mdns.Client
	conn   *mdns.Conn
	msgs   []*mdns.Msg
}

func (q udpQuerier) query(ctx context.Context, k int) error {
	r, _, err := q.client.ExchangeWithConnContext(ctx, q.msgs[k], q.conn)
	if err != nil {
		return err
	}
	if r.Rcode != mdns.RcodeSuccess || len(r.Answer) == 0 {
		return fmt.Errorf("response rcode %s with %d answer records", mdns.RcodeToString[r.Rcode], len(r.Answer))
	}
	return nil
}

func dnsReport(w io.Writer, o dnsBenchOptions, arms []string, ms []*callMetric, loadBefore, otherCPU string) {
	machine := armMachine(
		library{"quic-go", "github.com/quic-go/quic-go"},
		library{"miekg/dns", "github.com/miekg/dns"})
	reportHeader(w, "dns", machine, loadBefore, otherCPU, fmt.Sprintf(
		"one process, loopback; every arm serves the same zone handler (dns.NewHandler: the node zone of an Ed25519 key "+
			"with its discovery records, and a static zone); query mix: _alknet.<z32>. TXT and www.%s A in turn, with EDNS(0) (UDP size 1232, no padding option); "+
			"the DoQ arms share one raw quic-go client (a stream per query, ID 0, FIN after the query, the response read to the stream's end), "+
			"TLS 1.3 with the same Ed25519 certificates and the endpoint's quic.Config values; the UDP arm is miekg/dns's server and client, one socket per querier; "+
			"before each round every connection of the round answers one untimed query (redialed where the server closed it for idling); "+
			"a correctness check and a warm-up pass, then %d rounds (arms interleaved, starting one arm later each round), %s per round, metric and arm; "+
			"medians over the rounds; ratio columns: alknet/other for rates, other/alknet for latencies, so above 1 means alknet is better",
		dnsZoneOrigin, o.rounds, o.duration))

	a, b, c := slices.Index(arms, armDNSAlknet), slices.Index(arms, armDNSBare), slices.Index(arms, armDNSUDP)
	for _, m := range ms {
		fmt.Fprintf(w, "### %s\n\n", strings.TrimPrefix(m.label, "queries/s, "))
		t := newArmTable(arms, dnsArmTitles)
		if a >= 0 && b >= 0 {
			t.addRatio(a, b, "alknet / quic-go")
		}
		if a >= 0 && c >= 0 {
			t.addRatio(a, c, "alknet / UDP")
		}
		t.addRate(m)
		t.addLatencies(m, "", strings.TrimPrefix(m.label, "queries/s, "))
		t.write(w)
		fmt.Fprintln(w)
	}
	if g := dnsGoalLine(ms); g != "" {
		fmt.Fprintf(w, "%s\n\n", g)
	}
	fmt.Fprintf(w, "Per-round samples (queries/s; p50 latency); CPU time and heap allocations per query, medians over the rounds (whole process: client and server):\n\n")
	perRoundTable(w, ms, true)
}

// dnsGoalLine states, per metric, whether alknet's DoQ queries/s reached dnsGoal× the
// bare quic-go loop's.
func dnsGoalLine(ms []*callMetric) string {
	var parts []string
	for _, m := range ms {
		x, y := findArm(ms, m.key, armDNSAlknet), findArm(ms, m.key, armDNSBare)
		if x == nil || y == nil || y.median() == 0 {
			continue
		}
		r := x.median() / y.median()
		verdict := "missed"
		if r >= dnsGoal {
			verdict = "met"
		}
		parts = append(parts, fmt.Sprintf("%s %.2f× (%s)", strings.TrimPrefix(m.label, "queries/s, "), r, verdict))
	}
	if len(parts) == 0 {
		return ""
	}
	return fmt.Sprintf("Goal (alknet DoQ queries/s ≥ %.2f× the bare quic-go DoQ loop's): %s.", dnsGoal, strings.Join(parts, "; "))
}
