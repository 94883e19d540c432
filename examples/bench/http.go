package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go/http3"

	"github.com/alknet/alknet/call"
	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/core/endpoint"
	"github.com/alknet/alknet/core/tlsconf"
	alkhttp "github.com/alknet/alknet/http"
)

// Metric kinds of the http benchmark, for -only and (with the payload and clients)
// profile labels: the sweep of clients sharing one transport per arm, and the row of
// -conns clients each with a transport (a connection) of its own.
const httpMetricCall = "call"

// httpMetrics lists the metric kinds in table order.
var httpMetrics = []string{httpMetricCall, kindConns}

// Arm names of the http benchmark, for -arms and profile labels ("arm").
const (
	httpArmTCP  = "alknet-tcp"
	httpArmQUIC = "alknet-quic"
	httpArmH3   = "alknet-h3"
	httpArmBase = "net-http"
)

// httpArms lists the arms in column order.
var httpArms = []string{httpArmTCP, httpArmQUIC, httpArmH3, httpArmBase}

// httpArmTitles are the column headers of the arms.
var httpArmTitles = map[string]string{
	httpArmTCP:  "alknet TCP+TLS h2",
	httpArmQUIC: "alknet QUIC alknet/http h2",
	httpArmH3:   "alknet QUIC h3",
	httpArmBase: "net/http TLS h2",
}

// httpRatioTitles are the headers of the ratio columns, one per alknet arm (each
// against the net/http baseline).
var httpRatioTitles = map[string]string{
	httpArmTCP:  "TCP+TLS vs net/http",
	httpArmQUIC: "QUIC vs net/http",
	httpArmH3:   "h3 vs net/http",
}

const (
	// httpGoalRatio is the goal: /call requests/s over TCP+TLS h2 at least
	// this share of net/http's.
	httpGoalRatio = 0.9
	// httpMaxBody caps a request body in the baseline (alkhttp.DefaultMaxBodyBytes in
	// the gateway).
	httpMaxBody = 1 << 20
	// h2MaxStreams is the concurrent streams Go's HTTP/2 server allows per connection
	// by default; neither the gateway nor, to match it, the baseline changes it.
	h2MaxStreams = 250
)

type httpBenchOptions struct {
	runOptions
	sweepOptions
}

func runHTTP(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	quietQUICBufferWarning()
	o := httpBenchOptions{}
	fs := newFlagSet("http", "Compares the alknet HTTP gateway (POST /call on an endpoint, h2 over TCP+TLS from a\n"+
		"stock net/http client, and h2 over a QUIC stream of the alknet/http ALPN from\n"+
		"alkhttp.ClientTransport, and HTTP/3 on the h3 ALPN from quic-go's http3 client)\n"+
		"with a plain net/http TLS h2 server doing the same work, on loopback: /call\n"+
		"requests/s and latency for each -payload size with each -concurrency of clients\n"+
		"sharing one client transport and with -conns clients each with its own (one table\n"+
		"per payload). The default full run takes about 3 minutes.", stderr)
	o.sharedFlags(fs, orderRotating, httpMetrics, httpArms, "arm, side, metric")
	o.roundsDefault(fs, 4)
	fs.DurationVar(&o.duration, "duration", 400*time.Millisecond, "length of one round per row and arm")
	o.sweepFlags(fs, "client transport (one connection)", "a client transport (a connection)")
	fs.DurationVar(&o.settle, "settle", 50*time.Millisecond, "pause after each arm, after a GC")
	help, err := parseFlags(fs, args, stderr, "smoke run: 1 round, 200ms, "+quickSweepUsage+" (flags given explicitly win)", o.quickSweep(o.quickOverrides()))
	if help || err != nil {
		return err
	}
	if err := o.validate(o.checkSweep()); err != nil {
		return err
	}
	return armBench[httpBenchOptions, *httpFixture]{
		metrics: httpMetrics,
		arms:    httpArms,
		start:   newHTTPFixture,
		warm: func(o httpBenchOptions) httpBenchOptions {
			o.duration = min(o.duration, 200*time.Millisecond)
			return o
		},
		report: httpReport,
	}.run(ctx, o, stdout, stderr)
}

// httpClient is one arm's client side: one http.Client (one h2 or h3 connection)
// shared by every caller, the URL of the server's /call and the HTTP major version its
// answers come in.
type httpClient struct {
	c     *http.Client
	url   string
	proto int
}

// httpFixture holds the servers and the client of every arm and, for the conns row,
// its -conns clients with a transport each.
type httpFixture struct {
	server  identity
	arms    []string                 // selected arms, column order
	clients map[string]*httpClient   // by arm
	many    map[string][]*httpClient // by arm: the conns row's clients
	lat     latBuffers
	closers
}

func newHTTPFixture(ctx context.Context, arms []string, o httpBenchOptions) (_ *httpFixture, err error) {
	f := &httpFixture{arms: arms, clients: make(map[string]*httpClient), many: make(map[string][]*httpClient), lat: make(latBuffers)}
	defer func() {
		if err != nil {
			f.close()
		}
	}()
	selected, err := selectMetrics(o.only, httpMetrics)
	if err != nil {
		return nil, err
	}
	if f.server, err = newIdentity(); err != nil {
		return nil, err
	}
	for _, a := range arms {
		var dial func() (*httpClient, error)
		switch a {
		case httpArmTCP:
			dial, err = f.startAlknet(ctx, a, endpoint.NetworkTCP, o.sweepMaxStreams())
		case httpArmQUIC:
			dial, err = f.startAlknet(ctx, a, endpoint.NetworkQUIC, o.sweepMaxStreams())
		case httpArmH3:
			dial, err = f.startH3(ctx, a, o.sweepMaxStreams())
		case httpArmBase:
			dial, err = f.startNetHTTP(ctx, a)
		}
		if err != nil {
			return nil, fmt.Errorf("start %s: %w", a, err)
		}
		// The transports connect at their first request (the check).
		if f.clients[a], err = dial(); err != nil {
			return nil, fmt.Errorf("start %s: %w", a, err)
		}
		if !selected[kindConns] {
			continue
		}
		for range o.conns {
			c, err := dial()
			if err != nil {
				return nil, fmt.Errorf("start %s: %w", a, err)
			}
			f.many[a] = append(f.many[a], c)
		}
	}
	return f, nil
}

// settle collects garbage and pauses after each arm.
func (f *httpFixture) settle(ctx context.Context, pause time.Duration) error {
	return gcPause(ctx, pause)
}

// httpEchoRegistry is what the gateway serves: bench/echo, a Query returning its input.
func httpEchoRegistry() (*call.Registry, error) {
	reg := call.NewRegistry()
	err := reg.Register(call.Registration{
		Spec: call.NewSpec(benchEchoOp, call.Query),
		Once: func(_ context.Context, _ *call.OpContext, in json.RawMessage) (json.RawMessage, error) {
			return in, nil
		},
	})
	if err != nil {
		return nil, err
	}
	return reg, nil
}

// stockH2Client is the client of the TCP+TLS arms: a stock http.Transport speaking h2
// over TLS that pins the server's key, presenting no client certificate (as a browser
// or curl would). Its idle connections are closed with c.
func (c *closers) stockH2Client(serverFP string) (*http.Client, *http.Transport, error) {
	cfg, err := tlsconf.ClientConfig(tlsconf.ClientOptions{Pin: serverFP, NextProtos: []string{"h2"}})
	if err != nil {
		return nil, nil, err
	}
	tr := &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true}
	c.add(func(context.Context) error { tr.CloseIdleConnections(); return nil })
	return &http.Client{Transport: tr}, tr, nil
}

// startAlknet starts an endpoint listening on network only (room for maxStreams
// concurrent QUIC streams per connection) whose registry serves the gateway handler on
// alknet/http, h2 and http/1.1, and returns how to make a client, each with a
// transport of its own: the stock h2 client on TCP+TLS, alkhttp.ClientTransport
// (prior-knowledge h2 on a stream of one alknet/http connection) on QUIC. No client
// presents a certificate or a token: every call is anonymous.
func (f *httpFixture) startAlknet(ctx context.Context, name string, network endpoint.Network, maxStreams int64) (func() (*httpClient, error), error) {
	addr, err := f.startGateway(ctx, name, network, maxStreams, false)
	if err != nil {
		return nil, err
	}
	if network == endpoint.NetworkTCP {
		return func() (*httpClient, error) {
			c, _, err := f.stockH2Client(f.server.fp)
			if err != nil {
				return nil, err
			}
			return &httpClient{c: c, url: "https://" + addr + "/call", proto: 2}, nil
		}, nil
	}
	return func() (*httpClient, error) {
		tr := alkhttp.NewClientTransport(addr, alkhttp.ALPN, endpoint.DialOptions{
			Network: endpoint.NetworkQUIC,
			TLS:     tlsconf.ClientOptions{Pin: f.server.fp},
		}, true)
		f.add(func(context.Context) error { return tr.Close() })
		return &httpClient{c: &http.Client{Transport: tr}, url: "http://" + addr + "/call", proto: 2}, nil
	}, nil
}

// startGateway starts an endpoint listening on network only (room for maxStreams
// concurrent QUIC streams per connection) whose registry serves the gateway handler
// on alknet/http, h2, http/1.1 and, with h3, through Handler.HTTP3 on h3, and returns
// its address.
func (f *httpFixture) startGateway(ctx context.Context, name string, network endpoint.Network, maxStreams int64, h3 bool) (string, error) {
	store, err := sweepStore(core.DynamicConfig{})
	if err != nil {
		return "", err
	}
	creg, err := httpEchoRegistry()
	if err != nil {
		return "", err
	}
	discard := slog.New(slog.DiscardHandler)
	h, err := alkhttp.New(alkhttp.Config{Registry: creg, Logger: discard})
	if err != nil {
		return "", err
	}
	reg := core.NewRegistry()
	for _, alpn := range []string{alkhttp.ALPN, "h2", "http/1.1"} {
		if err := reg.RegisterAs(alpn, h); err != nil {
			return "", err
		}
	}
	if h3 {
		if err := reg.Register(h.HTTP3()); err != nil {
			return "", err
		}
	}
	ep, err := newSweepEndpoint(reg, f.server.cert, store, discard, maxStreams)
	if err != nil {
		return "", err
	}
	addr, err := listenArm(ctx, ep, name, network)
	if err != nil {
		return "", err
	}
	f.add(ep.Shutdown)
	return addr, nil
}

// startH3 starts an endpoint listening on QUIC only whose registry serves the gateway
// handler on alknet/http, h2, http/1.1 and, through Handler.HTTP3, h3, and returns how
// to make a client: quic-go's http3.Transport pinning the server's key (one QUIC
// connection each), presenting no client certificate or token.
func (f *httpFixture) startH3(ctx context.Context, name string, maxStreams int64) (func() (*httpClient, error), error) {
	addr, err := f.startGateway(ctx, name, endpoint.NetworkQUIC, maxStreams, true)
	if err != nil {
		return nil, err
	}
	return func() (*httpClient, error) {
		cfg, err := tlsconf.ClientConfig(tlsconf.ClientOptions{Pin: f.server.fp})
		if err != nil {
			return nil, err
		}
		tr := &http3.Transport{TLSClientConfig: cfg}
		f.add(func(context.Context) error { return tr.Close() })
		return &httpClient{c: &http.Client{Transport: tr}, url: "https://" + addr + "/call", proto: 3}, nil
	}, nil
}

// startNetHTTP starts the baseline: what a user would write without alknet, a
// net/http server over crypto/tls (the same certificate and TLS settings, ALPN h2 and
// http/1.1) whose POST /call does the work of a minimal gateway (see
// serveBaselineCall). Its clients are the stock h2 client of the TCP+TLS arm.
func (f *httpFixture) startNetHTTP(ctx context.Context, name string) (func() (*httpClient, error), error) {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /call", serveBaselineCall)
	addr, err := f.serveTLS(ctx, name, f.server.cert, tlsBaseline{handler: mux, protos: []string{"h2", "http/1.1"}})
	if err != nil {
		return nil, err
	}
	return func() (*httpClient, error) {
		c, _, err := f.stockH2Client(f.server.fp)
		if err != nil {
			return nil, err
		}
		return &httpClient{c: c, url: "https://" + addr + "/call", proto: 2}, nil
	}, nil
}

// gatewayRequest is the body of a /call.
type gatewayRequest struct {
	Operation string          `json:"operation"`
	Input     json.RawMessage `json:"input"`
}

// gatewayOK is the body of a successful /call.
type gatewayOK struct {
	RequestID string          `json:"request_id"`
	Result    string          `json:"result"`
	Output    json.RawMessage `json:"output"`
}

// serveBaselineCall is the baseline's POST /call, what a minimal gateway does: decode
// {"operation", "input"} (at most httpMaxBody bytes), check the operation, run it (an
// echo) and answer {"request_id": a fresh UUIDv4, "result": "ok", "output"} with the
// headers the alknet gateway sends.
func serveBaselineCall(w http.ResponseWriter, r *http.Request) {
	var req gatewayRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, httpMaxBody)).Decode(&req); err != nil {
		http.Error(w, "request body is not a JSON object {operation, input}", http.StatusBadRequest)
		return
	}
	if req.Operation != benchEchoOp {
		http.Error(w, "unknown operation", http.StatusNotFound)
		return
	}
	if len(req.Input) == 0 {
		req.Input = json.RawMessage("null")
	}
	b, err := json.Marshal(gatewayOK{RequestID: call.NewID(), Result: "ok", Output: req.Input})
	if err != nil {
		http.Error(w, "response not serialisable", http.StatusInternalServerError)
		return
	}
	b = append(b, '\n')
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}

// isUUIDv4 reports whether s is a version 4, RFC 4122 variant UUID in 36-character form.
func isUUIDv4(s string) bool {
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' || s[14] != '4' {
		return false
	}
	if !strings.ContainsRune("89ab", rune(s[19])) {
		return false
	}
	_, err := hex.DecodeString(s[0:8] + s[9:13] + s[14:18] + s[19:23] + s[24:])
	return err == nil
}

// callBody returns the /call request body for input.
func callBody(input string) []byte {
	return []byte(`{"operation":"` + benchEchoOp + `","input":` + input + `}`)
}

// post sends body to c's /call.
func (c *httpClient) post(ctx context.Context, body []byte) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	return c.c.Do(req)
}

// check makes sure, once and untimed, that every arm answers /call correctly over its
// protocol (h2, or h3 on the h3 arm) at every payload size: the largest -concurrency
// of concurrent calls with distinct inputs on the arm's client, then one call on each
// of the conns row's clients, all at once. Each answer must be 200 {"request_id": a
// UUIDv4, "result": "ok", "output": the input, byte for byte}, and the request ids
// distinct.
func (f *httpFixture) check(ctx context.Context, o httpBenchOptions) error {
	ctx, cancel := context.WithTimeout(ctx, 2*callTimeout)
	defer cancel()
	for _, name := range f.arms {
		var err error
		pprof.Do(ctx, pprof.Labels("arm", name, "side", "client", "metric", "check"), func(ctx context.Context) {
			err = checkHTTPArm(ctx, o.payloads, []*httpClient{f.clients[name]}, o.maxConcurrency())
			if err == nil && len(f.many[name]) > 0 {
				err = checkHTTPArm(ctx, o.payloads, f.many[name], 1)
			}
		})
		if err != nil {
			return fmt.Errorf("check %s: %w", name, err)
		}
	}
	return nil
}

// checkHTTPArm checks the answers of n concurrent calls on each of clients at each
// payload size, and that their request ids are distinct.
func checkHTTPArm(ctx context.Context, sizes []int, clients []*httpClient, n int) error {
	var mu sync.Mutex
	seen := make(map[string]bool)
	return checkEchoes(ctx, sizes, clients, n, func(ctx context.Context, c *httpClient, in []byte) ([]byte, error) {
		id, err := checkCall(ctx, c, in)
		if err != nil {
			return nil, err
		}
		mu.Lock()
		defer mu.Unlock()
		if seen[id] {
			return nil, fmt.Errorf("request id %s answered twice", id)
		}
		seen[id] = true
		return in, nil
	})
}

// checkCall sends one /call of bench/echo with input and checks the answer in full
// (the output byte for byte); it returns the request id.
func checkCall(ctx context.Context, c *httpClient, input []byte) (string, error) {
	resp, err := c.post(ctx, callBody(string(input)))
	if err != nil {
		return "", err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return "", fmt.Errorf("read answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %d: %s", resp.StatusCode, body)
	}
	if resp.ProtoMajor != c.proto {
		return "", fmt.Errorf("answered over %s, want HTTP/%d", resp.Proto, c.proto)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		return "", fmt.Errorf("content type %q, want application/json", ct)
	}
	var ok gatewayOK
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ok); err != nil {
		return "", fmt.Errorf("answer %q: %w", body, err)
	}
	switch {
	case ok.Result != "ok":
		return "", fmt.Errorf("result %q, want ok: %s", ok.Result, body)
	case !isUUIDv4(ok.RequestID):
		return "", fmt.Errorf("request id %q is not a UUIDv4", ok.RequestID)
	case !bytes.Equal(ok.Output, input):
		return "", fmt.Errorf("output of %d bytes %.40q…, want %d bytes %.40q…", len(ok.Output), ok.Output, len(input), input)
	}
	return ok.RequestID, nil
}

func (f *httpFixture) metrics(o httpBenchOptions, selected map[string]bool) []*callMetric {
	var out []*callMetric
	for _, cell := range o.cells(selected, httpMetricCall) {
		input := sweepPayload(0, cell.payload)
		body := callBody(string(input))
		wantOutput := append([]byte(`"output":`), input...)
		key := cell.key(httpMetricCall)
		m := &callMetric{key: key, label: "/call requests/s, " + cell.who("client"), unit: "request", unary: true, payload: cell.payload, who: cell.who("client")}
		for _, name := range f.arms {
			clients := []*httpClient{f.clients[name]}
			if cell.conns {
				clients = f.many[name]
			}
			m.arms = append(m.arms, f.lat.arm(key, name, cell.callers, func(ctx context.Context, lat [][]time.Duration) (sample, error) {
				return httpRound(ctx, clients, body, wantOutput, o.duration, lat)
			}))
		}
		out = append(out, m)
	}
	return out
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

// httpRound runs len(lat) callers for d, caller k on clients[k mod len(clients)], each
// repeating a /call with body, and returns requests/s (see latencyRound). Any request
// that fails, is not answered 200 or whose answer lacks wantOutput fails the round.
func httpRound(ctx context.Context, clients []*httpClient, body, wantOutput []byte, d time.Duration, lat [][]time.Duration) (sample, error) {
	var next atomic.Int64
	return latencyRound(ctx, d, lat, "request", func() func(context.Context) (time.Time, error) {
		c := clients[int(next.Add(1)-1)%len(clients)]
		var answer bytes.Buffer
		return func(ctx context.Context) (time.Time, error) {
			resp, err := c.post(ctx, body)
			if err != nil {
				return time.Time{}, err
			}
			answer.Reset()
			_, err = answer.ReadFrom(resp.Body)
			resp.Body.Close()
			t1 := time.Now()
			if err != nil {
				return t1, fmt.Errorf("read answer: %w", err)
			}
			if resp.StatusCode != http.StatusOK {
				return t1, fmt.Errorf("status %d: %s", resp.StatusCode, answer.Bytes())
			}
			if !bytes.Contains(answer.Bytes(), wantOutput) {
				return t1, fmt.Errorf("answer %.80q… lacks the output", answer.Bytes())
			}
			return t1, nil
		}
	})
}

func httpReport(w io.Writer, o httpBenchOptions, arms []string, ms []*callMetric, loadBefore, otherCPU string) {
	machine := armMachine(library{"quic-go", "github.com/quic-go/quic-go"})
	reportHeader(w, "http", machine, loadBefore, otherCPU, fmt.Sprintf(
		"one process, loopback; POST /call of bench/echo, anonymous, its input one of the %s (the body adds %d bytes: {\"operation\":\"%s\",\"input\":…}); "+
			"%s; "+
			"a correctness check (byte-exact outputs at every size, every client) and a warm-up pass, then %d %s (arms interleaved, starting one arm later each round), "+
			"%s per round and arm; medians over the rounds; "+
			"every arm is TLS 1.3 with the same Ed25519 certificate: alknet TCP+TLS h2 is a stock net/http client (ALPN h2) to the endpoint's TCP+TLS listener, "+
			"alknet QUIC is alkhttp.ClientTransport (prior-knowledge h2 on one stream of an alknet/http QUIC connection), "+
			"alknet QUIC h3 is quic-go's http3.Transport to the endpoint's h3 handler (Handler.HTTP3, http3.Server.ServeQUICConn), "+
			"net/http TLS h2 is a net/http server over crypto/tls whose handler decodes the request with encoding/json, checks the operation and answers with a fresh UUIDv4; "+
			"%s; the h2 servers (the gateway's and net/http's) keep Go's default of %d concurrent streams per connection, so beyond that a stock h2 client opens a second connection; "+
			"ratio columns: alknet/net/http for rates, net/http/alknet for latencies, so above 1 means alknet is better",
		o.payloadShape(), len(callBody("")), benchEchoOp,
		o.sweepRows("client transport per arm (one h2 or h3 connection)", "a client transport (a connection)"),
		o.rounds, plural(o.rounds, "round"), o.duration, o.alknetLimits(true), h2MaxStreams))

	sweepTables(w, o.sweepOptions, ms, func() *armTable {
		t := newArmTable(arms, httpArmTitles)
		t.addBaselineRatios(arms, httpArmBase, httpRatioTitles)
		return t
	}, "/call ")
	fmt.Fprintf(w, "\n%s\n", httpGoalLine(ms, o.sweepOptions))
	if g := httpAllocsGoalLine(ms, o.sweepOptions); g != "" {
		fmt.Fprintf(w, "\n%s\n", g)
	}

	fmt.Fprintf(w, "\nPer-round samples (requests/s; p50 latency); CPU time and heap allocations per request, medians over the rounds (whole process: client and server):\n\n")
	perRoundTable(w, ms, true)
}

// httpAllocsGoal is issue 20's bound on heap allocations per /call over TCP+TLS h2,
// client and server together (whole process), with one client.
const httpAllocsGoal = 128

// httpAllocsGoalLine states whether the median allocations per /call over TCP+TLS h2
// with one client, at the goal payload, stay within httpAllocsGoal ("" when that cell
// did not run).
func httpAllocsGoalLine(ms []*callMetric, o sweepOptions) string {
	one := sweepCell{payload: o.goalPayload(), callers: o.goalOne()}
	a := findArm(ms, one.key(httpMetricCall), httpArmTCP)
	if a == nil || len(*a.samples) == 0 {
		return ""
	}
	n := median(values(*a.samples, sample.allocsPerOp))
	verdict := "not met"
	if n <= httpAllocsGoal {
		verdict = "met"
	}
	return fmt.Sprintf("allocation goal (a count, not a timing: judged however busy the machine): heap allocations per /call over TCP+TLS h2 (client and server) ≤ %d — %s (%.0f, %.2f× the bound)", httpAllocsGoal, verdict, n, n/httpAllocsGoal) +
		goalAt(o.goalPayload(), one.who("client"))
}

// httpGoalLine states whether the goal was met: /call requests/s with many
// clients over TCP+TLS h2 at least httpGoalRatio× the net/http baseline's, at the
// sweep's goal cell (see sweepOptions.goalMany).
func httpGoalLine(ms []*callMetric, o sweepOptions) string {
	many := sweepCell{payload: o.goalPayload(), callers: o.goalMany()}
	return ratioGoalLine(ms, fmt.Sprintf("goal: /call requests/s over TCP+TLS h2 ≥ %.1f× net/http TLS h2 — ", httpGoalRatio), many.key(httpMetricCall), httpArmTCP, httpArmBase, httpGoalRatio) +
		goalAt(o.goalPayload(), many.who("client"))
}
