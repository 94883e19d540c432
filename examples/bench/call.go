package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/alknet/alknet/call"
	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/core/endpoint"
	"github.com/alknet/alknet/core/tlsconf"
)

// Metric kinds of the call benchmark, for -only and (with the payload and callers)
// profile labels: the unary sweep on one connection per arm, the row of -conns
// clients each with a connection of its own, and the subscription.
const (
	metricUnary  = "unary"
	metricEvents = "events"
)

// callMetrics lists the metric kinds in table order.
var callMetrics = []string{metricUnary, kindConns, metricEvents}

// Arm names, for -arms and profile labels ("arm").
const (
	armAlknetQUIC = "alknet-quic"
	armAlknetTCP  = "alknet-tcp"
	armGRPCTLS    = "grpc-tls"
	armGRPCH2C    = "grpc-h2c"
)

// callArms lists the arms in column order.
var callArms = []string{armAlknetQUIC, armAlknetTCP, armGRPCTLS, armGRPCH2C}

// armTitles are the column headers of the arms.
var armTitles = map[string]string{
	armAlknetQUIC: "alknet QUIC",
	armAlknetTCP:  "alknet TCP+TLS",
	armGRPCTLS:    "gRPC TLS",
	armGRPCH2C:    "gRPC h2c",
}

func isAlknetArm(name string) bool { return strings.HasPrefix(name, "alknet") }

// The operations both servers serve (the echo operation is benchEchoOp).
const (
	benchEventsOp = "bench/events"

	grpcBenchService = "alknet.bench.Bench"
	grpcEchoMethod   = "/" + grpcBenchService + "/Echo"
	grpcEventsMethod = "/" + grpcBenchService + "/Events"
)

type callBenchOptions struct {
	runOptions
	sweepOptions
	events int
}

func runCall(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	quietQUICBufferWarning()
	o := callBenchOptions{}
	fs := newFlagSet("call", "Compares the alknet call protocol (call.Dial over QUIC and TCP+TLS) with gRPC-go\n"+
		"(TLS and plaintext h2c) on loopback: unary echo calls/s and latency for each\n"+
		"-payload size with each -concurrency of callers on one connection and with -conns\n"+
		"clients each on its own connection (one table per payload), subscription events/s.\n"+
		"The default full run takes about 4 minutes.", stderr)
	o.sharedFlags(fs, orderRotating, callMetrics, callArms, "arm, side, metric")
	fs.DurationVar(&o.duration, "duration", 500*time.Millisecond, "length of one unary round per row and arm")
	o.sweepFlags(fs, "connection", "a call.Conn or grpc.ClientConn")
	fs.IntVar(&o.events, "events", 100000, "events of the one subscription of an events round")
	fs.DurationVar(&o.settle, "settle", 50*time.Millisecond, "pause after each arm, after a GC")
	help, err := parseFlags(fs, args, stderr, "smoke run: 1 round, 200ms, 5000 events, "+quickSweepUsage+" (flags given explicitly win)", o.quickSweep(map[string]func(){
		"rounds":   func() { o.rounds = 1 },
		"duration": func() { o.duration = 200 * time.Millisecond },
		"events":   func() { o.events = 5000 },
		"settle":   func() { o.settle = 10 * time.Millisecond },
	}))
	if help || err != nil {
		return err
	}
	if err := o.validate(o.checkSweep(), atLeast1("-events", o.events)); err != nil {
		return err
	}
	return armBench[callBenchOptions, *callFixture]{
		metrics: callMetrics,
		arms:    callArms,
		start:   newCallFixture,
		warm: func(o callBenchOptions) callBenchOptions {
			o.duration = min(o.duration, 200*time.Millisecond)
			o.events = min(o.events, 20000)
			return o
		},
		report: callReport,
	}.run(ctx, o, stdout, stderr)
}

// callClient is one arm's client side: one connection shared by every caller.
type callClient interface {
	echoClient
	// events subscribes to n events and passes each one to each, in order, until the
	// stream ends; it fails unless exactly n arrived.
	events(ctx context.Context, n int, each func(i int, ev []byte) error) error
}

// callFixture holds the servers, the one client connection of every arm and, for the
// conns row, its -conns clients with a connection each.
type callFixture struct {
	server, client identity
	arms           []string                // selected arms, column order
	clients        map[string]callClient   // by arm
	many           map[string][]echoClient // by arm: the conns row's clients
	lat            latBuffers              // of the unary metrics
	closers
}

// newCallFixture starts the selected arms, and opens the conns row's clients where it
// is selected. -events is the longest subscription the bench runs: the alknet TCP+TLS
// client buffers that many events (see startAlknet).
func newCallFixture(ctx context.Context, arms []string, o callBenchOptions) (_ *callFixture, err error) {
	f := &callFixture{arms: arms, clients: make(map[string]callClient), many: make(map[string][]echoClient), lat: make(latBuffers)}
	defer func() {
		if err != nil {
			f.close()
		}
	}()
	selected, err := selectMetrics(o.only, callMetrics)
	if err != nil {
		return nil, err
	}
	if f.server, err = newIdentity(); err != nil {
		return nil, err
	}
	if f.client, err = newIdentity(); err != nil {
		return nil, err
	}
	for _, a := range arms {
		var dial func(ctx context.Context, subBuffer int) (callClient, error)
		switch a {
		case armAlknetQUIC:
			dial, err = f.startAlknet(ctx, a, endpoint.NetworkQUIC, o.sweepMaxStreams())
		case armAlknetTCP:
			dial, err = f.startAlknet(ctx, a, endpoint.NetworkTCP, o.sweepMaxStreams())
		case armGRPCTLS:
			dial, err = f.startGRPC(ctx, a, true)
		case armGRPCH2C:
			dial, err = f.startGRPC(ctx, a, false)
		}
		if err != nil {
			return nil, fmt.Errorf("start %s: %w", a, err)
		}
		subBuffer := 0
		if a == armAlknetTCP {
			subBuffer = o.events
		}
		var c callClient
		pprof.Do(ctx, pprof.Labels("arm", a, "side", "client"), func(ctx context.Context) {
			c, err = dial(ctx, subBuffer)
		})
		if err != nil {
			return nil, fmt.Errorf("start %s: %w", a, err)
		}
		f.clients[a] = c
		if !selected[kindConns] || o.conns == 0 {
			continue
		}
		pprof.Do(ctx, pprof.Labels("arm", a, "side", "client"), func(ctx context.Context) {
			var many []callClient
			many, err = openClients(ctx, o.conns, func(ctx context.Context, _ int) (callClient, error) { return dial(ctx, 0) }, func(callClient) {})
			for _, m := range many {
				f.many[a] = append(f.many[a], m)
			}
		})
		if err != nil {
			return nil, fmt.Errorf("start %s: %w", a, err)
		}
	}
	return f, nil
}

// settle collects garbage and pauses after each arm.
func (f *callFixture) settle(ctx context.Context, pause time.Duration) error {
	return gcPause(ctx, pause)
}

// benchRegistry is what the alknet servers serve: bench/echo (a Query returning its
// input) and bench/events (a Subscription emitting {"n": N} events).
func benchRegistry() (*call.Registry, error) {
	reg := call.NewRegistry()
	if err := reg.Register(call.Registration{
		Spec: call.NewSpec(benchEchoOp, call.Query),
		Once: func(_ context.Context, _ *call.OpContext, in json.RawMessage) (json.RawMessage, error) {
			return in, nil
		},
	}); err != nil {
		return nil, err
	}
	if err := reg.Register(call.Registration{
		Spec: call.NewSpec(benchEventsOp, call.Subscription),
		Stream: func(_ context.Context, _ *call.OpContext, in json.RawMessage, emit func(json.RawMessage) error) error {
			n, err := parseEventsInput(in)
			if err != nil {
				return err
			}
			for i := range n {
				if err := emit(eventPayload(i)); err != nil {
					return err
				}
			}
			return nil
		},
	}); err != nil {
		return nil, err
	}
	return reg, nil
}

// startAlknet starts an endpoint serving the call protocol on network only (room for
// maxStreams concurrent QUIC streams per connection), and returns how to dial it with
// call.Dial: the client certificate, the server's fingerprint pinned. Every client
// dialled is closed with f.
//
// subBuffer, when positive, is a client's subscription buffer. On TCP+TLS every call
// shares one stream, so the client cannot push back on one subscription: when its
// buffer is full it aborts the subscription (call.DefaultSubscriptionBuffer, 64 events)
// rather than stall the connection, and a handler emitting as fast as it can outruns
// a consumer on 2 CPUs within a few hundred events. The TCP+TLS arm's main client
// therefore buffers a whole subscription; QUIC keeps the default (a full buffer stops
// reading that stream and QUIC flow control pushes back).
func (f *callFixture) startAlknet(ctx context.Context, name string, network endpoint.Network, maxStreams int64) (func(ctx context.Context, subBuffer int) (callClient, error), error) {
	store, err := sweepStore(core.DynamicConfig{
		Auth: core.AuthPolicy{Peers: []core.PeerEntry{{
			PeerID: "bench-client", Fingerprints: []string{f.client.fp}, Scopes: []string{"bench"}, Enabled: true,
		}}},
	})
	if err != nil {
		return nil, err
	}
	creg, err := benchRegistry()
	if err != nil {
		return nil, err
	}
	reg := core.NewRegistry()
	if err := reg.Register(&call.Dispatcher{Registry: creg}); err != nil {
		return nil, err
	}
	ep, err := newSweepEndpoint(reg, f.server.cert, store, slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo})), maxStreams)
	if err != nil {
		return nil, err
	}
	addr, err := listenArm(ctx, ep, name, network)
	if err != nil {
		return nil, err
	}
	f.add(ep.Shutdown)

	cert := f.client.cert
	var mu sync.Mutex
	return func(ctx context.Context, subBuffer int) (callClient, error) {
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		conn, err := call.Dial(dctx, addr, call.DialOptions{
			Transport: endpoint.DialOptions{
				Network: network,
				TLS:     tlsconf.ClientOptions{Certificate: &cert, Pin: f.server.fp},
			},
			Dispatcher: &call.Dispatcher{SubscriptionBuffer: subBuffer},
		})
		if err != nil {
			return nil, err
		}
		mu.Lock()
		f.add(func(context.Context) error { return conn.Close() })
		mu.Unlock()
		return alknetCallClient{conn}, nil
	}, nil
}

type alknetCallClient struct{ c *call.Conn }

func (a alknetCallClient) echo(ctx context.Context, in []byte) ([]byte, error) {
	return a.c.Call(ctx, benchEchoOp, json.RawMessage(in))
}

func (a alknetCallClient) events(ctx context.Context, n int, each func(int, []byte) error) error {
	s, err := a.c.Subscribe(ctx, benchEventsOp, json.RawMessage(eventsInput(n)))
	if err != nil {
		return err
	}
	defer s.Close()
	return readEvents(n, func() ([]byte, error) { return s.Next(ctx) }, each)
}

// The gRPC arms: a hand-written service descriptor (what protoc-gen-go-grpc would
// generate for a service with a unary Echo and a server-streaming Events method) and a
// codec that passes the same JSON bytes as the alknet arms.

// rawCodec is a gRPC codec for messages that are already encoded: []byte or *[]byte
// out, *[]byte in.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) {
	switch m := v.(type) {
	case []byte:
		return m, nil
	case *[]byte:
		return *m, nil
	}
	return nil, fmt.Errorf("rawCodec: cannot marshal %T", v)
}

// Unmarshal keeps data: gRPC hands a codec of this interface a fresh copy of the
// message (mem.BufferSlice.Materialize).
func (rawCodec) Unmarshal(data []byte, v any) error {
	p, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("rawCodec: cannot unmarshal into %T", v)
	}
	*p = data
	return nil
}

func (rawCodec) Name() string { return "json" }

// grpcBenchServer is the service interface of the descriptor.
type grpcBenchServer interface {
	Echo(ctx context.Context, in []byte) ([]byte, error)
	Events(in []byte, stream grpc.ServerStream) error
}

var grpcBenchDesc = grpc.ServiceDesc{
	ServiceName: grpcBenchService,
	HandlerType: (*grpcBenchServer)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Echo",
		Handler: func(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
			var in []byte
			if err := dec(&in); err != nil {
				return nil, err
			}
			if interceptor == nil {
				return srv.(grpcBenchServer).Echo(ctx, in)
			}
			info := &grpc.UnaryServerInfo{Server: srv, FullMethod: grpcEchoMethod}
			return interceptor(ctx, in, info, func(ctx context.Context, req any) (any, error) {
				return srv.(grpcBenchServer).Echo(ctx, req.([]byte))
			})
		},
	}},
	Streams: []grpc.StreamDesc{{
		StreamName:    "Events",
		ServerStreams: true,
		Handler: func(srv any, stream grpc.ServerStream) error {
			var in []byte
			if err := stream.RecvMsg(&in); err != nil {
				return err
			}
			return srv.(grpcBenchServer).Events(in, stream)
		},
	}},
	Metadata: "bench.proto",
}

// grpcBench serves the same operations as benchRegistry.
type grpcBench struct{}

func (grpcBench) Echo(_ context.Context, in []byte) ([]byte, error) { return in, nil }

func (grpcBench) Events(in []byte, stream grpc.ServerStream) error {
	n, err := parseEventsInput(in)
	if err != nil {
		return err
	}
	for i := range n {
		if err := stream.SendMsg(eventPayload(i)); err != nil {
			return err
		}
	}
	return nil
}

// startGRPC starts a gRPC server on TCP loopback, with TLS (the alknet server's
// certificate and settings) or plaintext (h2c), and returns how to open a client
// connection to it (a grpc.ClientConn each, closed with f).
func (f *callFixture) startGRPC(ctx context.Context, name string, useTLS bool) (func(ctx context.Context, subBuffer int) (callClient, error), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	opts := []grpc.ServerOption{grpc.ForceServerCodec(rawCodec{})}
	clientCreds := insecure.NewCredentials()
	if useTLS {
		opts = append(opts, grpc.Creds(credentials.NewTLS(tlsconf.ServerConfig(f.server.cert))))
		clientCreds = credentials.NewTLS(baselineClientTLS(f.client.cert, f.server.pub, "h2"))
	}
	srv := grpc.NewServer(opts...)
	srv.RegisterService(&grpcBenchDesc, grpcBench{})
	var wg sync.WaitGroup
	pprof.Do(ctx, pprof.Labels("arm", name, "side", "server"), func(context.Context) {
		wg.Go(func() { _ = srv.Serve(ln) })
	})
	f.add(func(context.Context) error {
		srv.Stop()
		wg.Wait()
		return nil
	})

	var mu sync.Mutex
	return func(ctx context.Context, _ int) (callClient, error) {
		cc, err := grpc.NewClient("passthrough:///"+ln.Addr().String(),
			grpc.WithTransportCredentials(clientCreds),
			grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{})))
		if err != nil {
			return nil, err
		}
		cc.Connect()
		mu.Lock()
		f.add(func(context.Context) error { return cc.Close() })
		mu.Unlock()
		return grpcCallClient{cc}, nil
	}, nil
}

type grpcCallClient struct{ cc *grpc.ClientConn }

func (g grpcCallClient) echo(ctx context.Context, in []byte) ([]byte, error) {
	var out []byte
	err := g.cc.Invoke(ctx, grpcEchoMethod, in, &out)
	return out, err
}

func (g grpcCallClient) events(ctx context.Context, n int, each func(int, []byte) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := g.cc.NewStream(ctx, &grpcBenchDesc.Streams[0], grpcEventsMethod)
	if err != nil {
		return err
	}
	if err := st.SendMsg(eventsInput(n)); err != nil {
		return err
	}
	if err := st.CloseSend(); err != nil {
		return err
	}
	return readEvents(n, func() ([]byte, error) {
		var ev []byte
		err := st.RecvMsg(&ev)
		return ev, err
	}, each)
}

// readEvents passes each event next returns to each, in order, until next returns
// io.EOF; it fails unless exactly n arrived.
func readEvents(n int, next func() ([]byte, error), each func(int, []byte) error) error {
	for i := 0; ; i++ {
		ev, err := next()
		if err == io.EOF {
			return countErr(i, n)
		}
		if err != nil {
			return fmt.Errorf("after %d events: %w", i, err)
		}
		if err := each(i, ev); err != nil {
			return err
		}
	}
}

func countErr(got, want int) error {
	if got != want {
		return fmt.Errorf("subscription ended after %d events, want %d", got, want)
	}
	return nil
}

// eventsInput is the subscription's input: {"n":N}.
func eventsInput(n int) []byte {
	b := strconv.AppendInt([]byte(`{"n":`), int64(n), 10)
	return append(b, '}')
}

func parseEventsInput(in []byte) (int, error) {
	var v struct {
		N int `json:"n"`
	}
	if err := json.Unmarshal(in, &v); err != nil {
		return 0, err
	}
	if v.N < 0 {
		return 0, errors.New("n must not be negative")
	}
	return v.N, nil
}

// eventPayload is event i: {"seq":i}, a fresh slice (emit and SendMsg may keep it).
func eventPayload(i int) []byte {
	b := make([]byte, 0, 24)
	b = append(b, `{"seq":`...)
	b = strconv.AppendInt(b, int64(i), 10)
	return append(b, '}')
}

// check makes sure, once and untimed, that every arm echoes the exact payload of
// every size (the largest -concurrency of callers with distinct payloads at once on
// the arm's connection, then one call on each of the conns row's clients, all at
// once) and delivers every event of a subscription of -events events, in order.
func (f *callFixture) check(ctx context.Context, o callBenchOptions) error {
	ctx, cancel := context.WithTimeout(ctx, 2*callTimeout)
	defer cancel()
	echo := func(ctx context.Context, c echoClient, in []byte) ([]byte, error) { return c.echo(ctx, in) }
	for _, name := range f.arms {
		c := f.clients[name]
		var err error
		pprof.Do(ctx, pprof.Labels("arm", name, "side", "client", "metric", "check"), func(ctx context.Context) {
			err = checkEchoes(ctx, o.payloads, []echoClient{c}, o.maxConcurrency(), echo)
			if err == nil {
				err = checkEchoes(ctx, o.payloads, f.many[name], 1, echo)
			}
			if err == nil {
				err = c.events(ctx, o.events, func(i int, ev []byte) error {
					if want := eventPayload(i); !bytes.Equal(ev, want) {
						return fmt.Errorf("event %d: got %q, want %q", i, ev, want)
					}
					return nil
				})
			}
		})
		if err != nil {
			return fmt.Errorf("check %s: %w", name, err)
		}
	}
	return nil
}

func (f *callFixture) metrics(o callBenchOptions, selected map[string]bool) []*callMetric {
	var out []*callMetric
	for _, cell := range o.cells(selected, metricUnary) {
		payload := sweepPayload(0, cell.payload)
		key := cell.key(metricUnary)
		m := &callMetric{key: key, label: "unary echo calls/s, " + cell.who("caller"), unit: "call", unary: true, payload: cell.payload, who: cell.who("caller")}
		for _, name := range f.arms {
			clients := []echoClient{f.clients[name]}
			if cell.conns {
				clients = f.many[name]
			}
			m.arms = append(m.arms, f.lat.arm(key, name, cell.callers, func(ctx context.Context, lat [][]time.Duration) (sample, error) {
				return unaryRoundEach(ctx, clients, payload, o.duration, lat)
			}))
		}
		out = append(out, m)
	}
	if selected[metricEvents] {
		events := &callMetric{key: metricEvents, label: fmt.Sprintf("subscription events/s (%d events)", o.events), unit: "event"}
		for _, name := range f.arms {
			c := f.clients[name]
			events.arms = append(events.arms, &callArm{arm: newArm(name, func(ctx context.Context) (sample, error) {
				return eventsRound(ctx, c, o.events)
			})})
		}
		out = append(out, events)
	}
	return out
}

// eventsRound subscribes to n events and returns events/s, timed from Subscribe to the
// last event.
func eventsRound(ctx context.Context, c callClient, n int) (sample, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout+time.Duration(n)*10*time.Microsecond)
	defer cancel()
	start := time.Now()
	var last time.Time
	err := c.events(ctx, n, func(i int, _ []byte) error {
		if i == n-1 {
			last = time.Now()
		}
		return nil
	})
	if err != nil {
		return sample{}, err
	}
	return sample{value: float64(n) / last.Sub(start).Seconds(), ops: n}, nil
}

func callReport(w io.Writer, o callBenchOptions, arms []string, ms []*callMetric, loadBefore, otherCPU string) {
	machine := armMachine(
		library{"quic-go", "github.com/quic-go/quic-go"},
		library{"grpc-go", "google.golang.org/grpc"})
	reportHeader(w, "call", machine, loadBefore, otherCPU, fmt.Sprintf(
		"one process, loopback; %s; %s; "+
			"a correctness check (byte-exact echoes at every size, every client) and a warm-up pass, then %d %s (arms interleaved, starting one arm later each round), "+
			"%s per unary round and arm, %d events ({\"seq\":i}) per subscription round on the arm's first connection; medians over the rounds; "+
			"alknet QUIC, alknet TCP+TLS and gRPC TLS are TLS 1.3 with the same Ed25519 certificates, gRPC h2c is plaintext HTTP/2 over TCP; "+
			"%s; gRPC servers keep their defaults (no stream limit); "+
			"ratio columns: alknet/gRPC for rates, gRPC/alknet for latencies, so above 1 means alknet is better",
		o.payloadShape(), o.sweepRows("connection per arm", "a connection (a call.Conn or a grpc.ClientConn)"), o.rounds, plural(o.rounds, "round"), o.duration, o.events, o.alknetLimits(true)))

	sweepTables(w, o.sweepOptions, ms, func() *armTable {
		t := newArmTable(arms, armTitles)
		for i, a := range arms {
			if !isAlknetArm(a) {
				continue
			}
			for j, b := range arms {
				if !isAlknetArm(b) {
					t.addRatio(i, j, fmt.Sprintf("%s vs %s", strings.TrimPrefix(armTitles[a], "alknet "), armTitles[b]))
				}
			}
		}
		return t
	}, "unary echo ")
	if g := goalLine(ms, arms, o.sweepOptions); g != "" {
		fmt.Fprintf(w, "\n%s\n", g)
	}
	if g := eventsGoalLine(ms, arms); g != "" {
		fmt.Fprintf(w, "\n%s\n", g)
	}

	fmt.Fprintf(w, "\nPer-round samples (rate; p50 latency for the unary rows); CPU time and heap allocations per operation, medians over the rounds (whole process: client and server):\n\n")
	perRoundTable(w, ms, true)
}

// eventsGoalLine states whether each alknet arm's subscription events/s is at least
// each gRPC arm's server streaming (issue 20: ≥ 1.0× over QUIC and TCP+TLS); "" when
// the events metric did not run.
func eventsGoalLine(ms []*callMetric, arms []string) string {
	var parts []string
	for _, a := range arms {
		if !isAlknetArm(a) {
			continue
		}
		for _, g := range arms {
			if isAlknetArm(g) {
				continue
			}
			x, b := findArm(ms, metricEvents, a), findArm(ms, metricEvents, g)
			if x == nil || b == nil || b.median() == 0 {
				continue
			}
			r := x.median() / b.median()
			verdict := "missed"
			if r >= 1.0 {
				verdict = "met"
			}
			parts = append(parts, fmt.Sprintf("%s %.2f× %s (%s)", strings.TrimPrefix(armTitles[a], "alknet "), r, armTitles[g], verdict))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return "Goal (subscription events/s ≥ 1.0× gRPC server streaming, over QUIC and over TCP+TLS): " + strings.Join(parts, "; ") + "."
}

// goalLine states whether alknet over QUIC met the goal against each gRPC arm:
// calls/s with many callers ≥ 1.0× gRPC's, and p50 latency with one caller ≤ gRPC's,
// at the sweep's goal cells (see sweepOptions.goalMany).
func goalLine(ms []*callMetric, arms []string, o sweepOptions) string {
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "missed"
	}
	many := sweepCell{payload: o.goalPayload(), callers: o.goalMany()}
	one := sweepCell{payload: o.goalPayload(), callers: o.goalOne()}
	var parts []string
	for _, g := range arms {
		if isAlknetArm(g) {
			continue
		}
		if q, b := findArm(ms, many.key(metricUnary), armAlknetQUIC), findArm(ms, many.key(metricUnary), g); q != nil && b != nil {
			r := q.median() / b.median()
			parts = append(parts, fmt.Sprintf("QUIC calls/s with many callers %.2f× %s (%s)", r, armTitles[g], verdict(r >= 1.0)))
		}
		if q, b := findArm(ms, one.key(metricUnary), armAlknetQUIC), findArm(ms, one.key(metricUnary), g); q != nil && b != nil {
			qa, ba := median(q.p50), median(b.p50)
			parts = append(parts, fmt.Sprintf("QUIC p50 with 1 caller %s vs %s %s (%s)", formatDuration(qa), armTitles[g], formatDuration(ba), verdict(qa <= ba)))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return "Goal (QUIC calls/s with many callers ≥ 1.0× gRPC, QUIC p50 with 1 caller ≤ gRPC's): " + strings.Join(parts, "; ") + "." +
		goalAt(o.goalPayload(), many.who("caller"), one.who("caller"))
}
