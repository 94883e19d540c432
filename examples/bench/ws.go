package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime/pprof"
	"strings"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/alknet/alknet/call"
	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/core/endpoint"
	"github.com/alknet/alknet/core/tlsconf"
	alkhttp "github.com/alknet/alknet/http"
)

// Metric kinds of the ws benchmark, for -only and (with the payload and callers)
// profile labels: the sweep of callers sharing one socket per arm, the row of -conns
// clients each with a socket of its own, and new connections/s.
const (
	wsMetricCall = "call"
	wsMetricConn = "conn"
)

// wsMetrics lists the metric kinds in table order.
var wsMetrics = []string{wsMetricCall, kindConns, wsMetricConn}

// Arm names of the ws benchmark, for -arms and profile labels ("arm").
const (
	wsArmAlknet = "alknet-ws"
	wsArmBase   = "net-http-ws"
)

// wsArms lists the arms in column order.
var wsArms = []string{wsArmAlknet, wsArmBase}

// wsArmTitles are the column headers of the arms.
var wsArmTitles = map[string]string{
	wsArmAlknet: "alknet /alknet/call TCP+TLS",
	wsArmBase:   "net/http + coder/websocket TLS",
}

// wsRatioTitles are the headers of the ratio columns: the alknet arm against the
// baseline.
var wsRatioTitles = map[string]string{
	wsArmAlknet: "alknet vs net/http+websocket",
}

const (
	// wsGoalRatio is the goal: calls/s with many callers on one socket at least this
	// share of the baseline's.
	wsGoalRatio = 0.9
	// wsBasePath and wsBaseSubprotocol are the baseline's route and subprotocol.
	wsBasePath        = "/rpc"
	wsBaseSubprotocol = "bench.rpc"
	// wsRestTimeout bounds the wait for the servers to let go of a round's connections.
	wsRestTimeout = 10 * time.Second
)

type wsBenchOptions struct {
	runOptions
	sweepOptions
	parallel int
}

func runWS(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o := wsBenchOptions{}
	fs := newFlagSet("ws", "Compares the call protocol over WebSocket (GET /alknet/call of the alknet HTTP handler\n"+
		"on an endpoint's TCP+TLS listener, HTTP/1.1 upgrade, one binary message per\n"+
		"EventEnvelope, client: call.Dispatcher.NewMessageConn pumping a coder/websocket\n"+
		"socket) with a plain net/http TLS server whose coder/websocket handler answers\n"+
		"hand-rolled JSON-RPC-style {id, method, params} requests, on loopback: echo calls/s\n"+
		"and latency for each -payload size with each -concurrency of callers on one socket\n"+
		"and with -conns clients each on its own socket (one table per payload), and new\n"+
		"connections/s (dial + TLS + upgrade + first call + close) with -conns-parallel dialers.\n"+
		"The default full run takes about 2 minutes.", stderr)
	o.sharedFlags(fs, orderRotating, wsMetrics, wsArms, "arm, side, metric")
	fs.DurationVar(&o.duration, "duration", 700*time.Millisecond, "length of one round per row and arm")
	o.sweepFlags(fs, "socket", "a socket (a TCP+TLS connection)")
	fs.IntVar(&o.parallel, "conns-parallel", 4, "concurrent dialers in the "+wsMetricConn+" metric")
	fs.DurationVar(&o.settle, "settle", 50*time.Millisecond, "pause after each arm, once its connections are gone, after a GC")
	help, err := parseFlags(fs, args, stderr, "smoke run: 1 round, 200ms, "+quickSweepUsage+" (flags given explicitly win)", o.quickSweep(o.quickOverrides()))
	if help || err != nil {
		return err
	}
	if err := o.validate(o.checkSweep(), atLeast1("-conns-parallel", o.parallel)); err != nil {
		return err
	}
	return armBench[wsBenchOptions, *wsFixture]{
		metrics: wsMetrics,
		arms:    wsArms,
		start:   newWSFixture,
		warm: func(o wsBenchOptions) wsBenchOptions {
			o.duration = min(o.duration, 200*time.Millisecond)
			return o
		},
		report: wsReport,
	}.run(ctx, o, stdout, stderr)
}

// wsClient is one client socket: callers share it, each call correlated by its id.
type wsClient interface {
	// echo calls the echo operation with in and returns its output.
	echo(ctx context.Context, in []byte) ([]byte, error)
	// subprotocol is the subprotocol the server selected.
	subprotocol() string
	// close says goodbye (close handshake) and waits for the socket's reader.
	close() error
}

// wsArmState is one arm: its long-lived socket, the conns row's sockets, how to open
// a fresh one, and the count of its server's open connections.
type wsArmState struct {
	name   string
	client wsClient
	many   []wsClient // the conns row's sockets
	// dial opens a new socket, with the Bearer token unless anonymous.
	dial func(ctx context.Context, anonymous bool) (wsClient, error)
	// open counts the server's open connections (resting: the long-lived sockets').
	open func() int
	// tr is the arm's client transport (TLS, HTTP/1.1), for the upgrades.
	tr *http.Transport
}

// wsFixture holds the servers and the clients of every arm.
type wsFixture struct {
	server identity
	token  string // the Bearer token every client presents
	arms   []string
	state  map[string]*wsArmState
	lat    latBuffers
	closers
}

func newWSFixture(ctx context.Context, arms []string, o wsBenchOptions) (_ *wsFixture, err error) {
	f := &wsFixture{arms: arms, state: make(map[string]*wsArmState), lat: make(latBuffers)}
	defer func() {
		if err != nil {
			f.close()
		}
	}()
	selected, err := selectMetrics(o.only, wsMetrics)
	if err != nil {
		return nil, err
	}
	if f.server, err = newIdentity(); err != nil {
		return nil, err
	}
	tok := make([]byte, 32)
	_, _ = rand.Read(tok)
	f.token = base64.RawURLEncoding.EncodeToString(tok)
	for _, a := range arms {
		var st *wsArmState
		switch a {
		case wsArmAlknet:
			st, err = f.startAlknet(ctx, a)
		case wsArmBase:
			st, err = f.startBaseline(ctx, a)
		}
		if err != nil {
			return nil, fmt.Errorf("start %s: %w", a, err)
		}
		pprof.Do(ctx, pprof.Labels("arm", a, "side", "client"), func(ctx context.Context) {
			dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			st.client, err = st.dial(dctx, false)
		})
		if err != nil {
			return nil, fmt.Errorf("start %s: dial: %w", a, err)
		}
		f.add(func(context.Context) error { return st.client.close() })
		f.state[a] = st
		if !selected[kindConns] || o.conns == 0 {
			continue
		}
		pprof.Do(ctx, pprof.Labels("arm", a, "side", "client"), func(ctx context.Context) {
			st.many, err = openClients(ctx, o.conns, func(ctx context.Context, _ int) (wsClient, error) { return st.dial(ctx, false) },
				func(c wsClient) { _ = c.close() })
		})
		if err != nil {
			return nil, fmt.Errorf("start %s: %w", a, err)
		}
		f.add(func(context.Context) error {
			var errs []error
			for _, c := range st.many {
				errs = append(errs, c.close())
			}
			return errors.Join(errs...)
		})
	}
	return f, nil
}

// h1Client is the client transport of both arms: an http.Transport over TLS pinning
// the server's key, offering ALPN http/1.1 (a WebSocket upgrade needs HTTP/1.1).
//
// It dials TLS itself (DialTLSContext): http.Transport clears NextProtos for a request
// that needs HTTP/1 (an Upgrade), so a stock transport's WebSocket handshake offers no
// ALPN at all, and the endpoint, which dispatches TCP+TLS connections by ALPN, refuses
// it (no_handler). The baseline accepts either; both arms use this client. Its idle
// connections are closed with c.
func (c *closers) h1Client(serverFP string) (*http.Client, *http.Transport, error) {
	cfg, err := tlsconf.ClientConfig(tlsconf.ClientOptions{Pin: serverFP, NextProtos: []string{"http/1.1"}})
	if err != nil {
		return nil, nil, err
	}
	d := &tls.Dialer{Config: cfg}
	tr := &http.Transport{DialTLSContext: d.DialContext}
	c.add(func(context.Context) error { tr.CloseIdleConnections(); return nil })
	return &http.Client{Transport: tr}, tr, nil
}

// dialOptions are the options of a client upgrade: the Bearer token unless anonymous,
// the arm's subprotocol, no compression.
func (f *wsFixture) dialOptions(hc *http.Client, subprotocol string, anonymous bool) *websocket.DialOptions {
	o := &websocket.DialOptions{
		HTTPClient:      hc,
		Subprotocols:    []string{subprotocol},
		CompressionMode: websocket.CompressionDisabled,
	}
	if !anonymous {
		o.HTTPHeader = http.Header{"Authorization": {"Bearer " + f.token}}
	}
	return o
}

// startAlknet starts an endpoint listening on TCP+TLS only whose registry serves the
// alknet HTTP handler (bench/echo, identities from the node's store: the bench token
// known as peer bench-client) on alknet/http, h2 and http/1.1, as a node does.
func (f *wsFixture) startAlknet(ctx context.Context, name string) (*wsArmState, error) {
	store, err := core.NewDynamicStore(core.DynamicConfig{
		Auth: core.AuthPolicy{Peers: []core.PeerEntry{{
			PeerID: "bench-client", AuthTokenHash: core.HashToken([]byte(f.token)), Scopes: []string{"bench"}, Enabled: true,
		}}},
		Limits: core.Limits{MaxConnectionsPerIP: -1},
	})
	if err != nil {
		return nil, err
	}
	creg, err := httpEchoRegistry()
	if err != nil {
		return nil, err
	}
	discard := slog.New(slog.DiscardHandler)
	h, err := alkhttp.New(alkhttp.Config{
		Registry:   creg,
		Identities: core.NewConfigIdentityProvider(store, nil),
		Logger:     discard,
	})
	if err != nil {
		return nil, err
	}
	reg := core.NewRegistry()
	for _, alpn := range []string{alkhttp.ALPN, "h2", "http/1.1"} {
		if err := reg.RegisterAs(alpn, h); err != nil {
			return nil, err
		}
	}
	ep, err := newEndpoint(reg, f.server.cert, store, discard)
	if err != nil {
		return nil, err
	}
	addr, err := listenArm(ctx, ep, name, endpoint.NetworkTCP)
	if err != nil {
		return nil, err
	}
	f.add(ep.Shutdown)

	hc, tr, err := f.h1Client(f.server.fp)
	if err != nil {
		return nil, err
	}
	url := "wss://" + addr + alkhttp.WebSocketPath
	d := &call.Dispatcher{}
	return &wsArmState{
		name: name,
		dial: func(ctx context.Context, anonymous bool) (wsClient, error) {
			return dialAlknetWS(ctx, d, url, f.dialOptions(hc, alkhttp.WebSocketSubprotocol, anonymous))
		},
		open: func() int { return ep.Stats().Connections },
		tr:   tr,
	}, nil
}

// alknetWSClient is the alknet arm's client, what an embedder writes: a call.Conn
// from Dispatcher.NewMessageConn whose send writes one binary message per envelope,
// and a goroutine feeding every received message to HandleEnvelope.
type alknetWSClient struct {
	ws     *websocket.Conn
	c      *call.Conn
	cancel context.CancelFunc
	done   chan struct{} // closed when the reader has returned
}

func dialAlknetWS(ctx context.Context, d *call.Dispatcher, url string, opts *websocket.DialOptions) (wsClient, error) {
	ws, resp, err := websocket.Dial(ctx, url, opts)
	if err != nil {
		return nil, upgradeError(resp, err)
	}
	ws.SetReadLimit(alkhttp.DefaultWSMaxMessageBytes)
	cctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	a := &alknetWSClient{ws: ws, cancel: cancel, done: make(chan struct{})}
	a.c = d.NewMessageConn(cctx, nil, func(ctx context.Context, env call.Envelope) error {
		b, err := call.EncodeEnvelope(env)
		if err != nil {
			return err
		}
		return ws.Write(ctx, websocket.MessageBinary, b)
	})
	go a.read(cctx)
	return a, nil
}

// read feeds received envelopes to the Conn until the socket ends, then closes it.
func (a *alknetWSClient) read(ctx context.Context) {
	defer close(a.done)
	defer a.c.Close()
	for {
		typ, data, err := a.ws.Read(ctx)
		if err != nil {
			return
		}
		if typ != websocket.MessageBinary {
			_ = a.ws.Close(websocket.StatusProtocolError, "text messages not supported")
			return
		}
		env, err := call.DecodeEnvelope(data)
		if err != nil {
			_ = a.ws.Close(websocket.StatusProtocolError, "invalid EventEnvelope")
			return
		}
		a.c.HandleEnvelope(ctx, env)
	}
}

func (a *alknetWSClient) echo(ctx context.Context, in []byte) ([]byte, error) {
	return a.c.Call(ctx, benchEchoOp, json.RawMessage(in))
}

func (a *alknetWSClient) subprotocol() string { return a.ws.Subprotocol() }

func (a *alknetWSClient) close() error {
	_ = a.c.Close()
	err := a.ws.Close(websocket.StatusNormalClosure, "")
	<-a.done
	a.cancel()
	return err
}

// upgradeError adds the status of a refused upgrade to err.
func upgradeError(resp *http.Response, err error) error {
	if resp != nil {
		return &refusedUpgrade{status: resp.StatusCode, err: err}
	}
	return err
}

type refusedUpgrade struct {
	status int
	err    error
}

func (e *refusedUpgrade) Error() string {
	return fmt.Sprintf("upgrade refused (%d): %v", e.status, e.err)
}
func (e *refusedUpgrade) Unwrap() error { return e.err }

// startBaseline starts the baseline: what a user would write without alknet, a
// net/http server over crypto/tls (the same certificate and TLS settings, ALPN
// http/1.1) whose GET /rpc checks the Bearer token, upgrades with coder/websocket and
// answers JSON-RPC-style requests (see rpcServer).
func (f *wsFixture) startBaseline(ctx context.Context, name string) (*wsArmState, error) {
	active := new(atomic.Int64)
	rpc := &rpcServer{tokenHash: sha256.Sum256([]byte(f.token))}
	mux := http.NewServeMux()
	mux.Handle("GET "+wsBasePath, rpc)
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	addr, err := f.serveTLS(ctx, name, f.server.cert, tlsBaseline{
		handler: mux,
		protos:  []string{"http/1.1"},
		wrap:    func(ln net.Listener) net.Listener { return countingListener{Listener: ln, active: active} },
		base:    sctx,
		// Hijacked connections outlive Shutdown: cancelling the base context ends
		// their handlers.
		beforeShutdown: cancel,
		afterShutdown:  rpc.conns.Wait,
	})
	if err != nil {
		cancel()
		return nil, err
	}

	hc, tr, err := f.h1Client(f.server.fp)
	if err != nil {
		return nil, err
	}
	url := "wss://" + addr + wsBasePath
	return &wsArmState{
		name: name,
		dial: func(ctx context.Context, anonymous bool) (wsClient, error) {
			return dialRPC(ctx, url, f.dialOptions(hc, wsBaseSubprotocol, anonymous))
		},
		open: func() int { return int(active.Load()) },
		tr:   tr,
	}, nil
}

// settle waits until every arm's server is back to rest (the long-lived sockets'
// connections only), collects garbage and pauses, so that one arm's teardown does not
// run during the next.
func (f *wsFixture) settle(ctx context.Context, pause time.Duration) error {
	deadline := time.Now().Add(wsRestTimeout)
	for {
		busy := ""
		for _, name := range f.arms {
			st := f.state[name]
			if n := st.open(); n > 1+len(st.many) {
				busy += fmt.Sprintf(" %s: %d connections;", name, n)
			}
		}
		if busy == "" {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("connections still open %s after a round:%s", wsRestTimeout, strings.TrimSuffix(busy, ";"))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	return gcPause(ctx, pause)
}

// check makes sure, once and untimed, that every arm selected its subprotocol, echoes
// the exact payload of every size (the largest -concurrency of callers with distinct
// payloads at once on the long-lived socket, then one call on each of the conns row's
// sockets, all at once), serves a fresh socket, and refuses an upgrade without the
// token with 401.
func (f *wsFixture) check(ctx context.Context, o wsBenchOptions) error {
	ctx, cancel := context.WithTimeout(ctx, 2*callTimeout)
	defer cancel()
	for _, name := range f.arms {
		st := f.state[name]
		var err error
		pprof.Do(ctx, pprof.Labels("arm", name, "side", "client", "metric", "check"), func(ctx context.Context) {
			err = checkWSArm(ctx, st, o.sweepOptions)
		})
		if err != nil {
			return fmt.Errorf("check %s: %w", name, err)
		}
	}
	return nil
}

func checkWSArm(ctx context.Context, st *wsArmState, o sweepOptions) error {
	want := map[string]string{wsArmAlknet: alkhttp.WebSocketSubprotocol, wsArmBase: wsBaseSubprotocol}[st.name]
	if got := st.client.subprotocol(); got != want {
		return fmt.Errorf("subprotocol %q, want %q", got, want)
	}
	echo := func(ctx context.Context, c wsClient, in []byte) ([]byte, error) { return c.echo(ctx, in) }
	if err := checkEchoes(ctx, o.payloads, []wsClient{st.client}, o.maxConcurrency(), echo); err != nil {
		return err
	}
	if err := checkEchoes(ctx, o.payloads, st.many, 1, echo); err != nil {
		return err
	}
	fresh, err := st.dial(ctx, false)
	if err != nil {
		return fmt.Errorf("fresh socket: %w", err)
	}
	err = checkEchoes(ctx, o.payloads[:1], []wsClient{fresh}, 1, echo)
	if cerr := fresh.close(); err == nil && cerr != nil {
		err = fmt.Errorf("fresh socket: close: %w", cerr)
	}
	if err != nil {
		return err
	}
	anon, err := st.dial(ctx, true)
	if err == nil {
		_ = anon.close()
		return errors.New("upgrade without a token accepted")
	}
	var ru *refusedUpgrade
	if !errors.As(err, &ru) || ru.status != http.StatusUnauthorized {
		return fmt.Errorf("upgrade without a token: %w, want 401", err)
	}
	// The refused upgrade left an idle HTTP/1.1 connection in the pool.
	st.tr.CloseIdleConnections()
	return nil
}

// wsConnOnce opens a fresh socket (dial + TLS + upgrade), makes one echo call on it
// and closes it with the close handshake.
func wsConnOnce(ctx context.Context, st *wsArmState, payload []byte) error {
	c, err := st.dial(ctx, false)
	if err != nil {
		return err
	}
	out, err := c.echo(ctx, payload)
	if cerr := c.close(); err == nil && cerr != nil {
		err = fmt.Errorf("close: %w", cerr)
	}
	if err == nil && len(out) != len(payload) {
		err = fmt.Errorf("echo: got %d bytes, want %d", len(out), len(payload))
	}
	return err
}

func (f *wsFixture) metrics(o wsBenchOptions, selected map[string]bool) []*callMetric {
	var out []*callMetric
	for _, cell := range o.cells(selected, wsMetricCall) {
		payload := sweepPayload(0, cell.payload)
		key := cell.key(wsMetricCall)
		who := cell.who("caller")
		if !cell.conns {
			who += " on one socket"
		}
		m := &callMetric{key: key, label: "echo calls/s, " + who, unit: "call", unary: true, payload: cell.payload, who: who}
		for _, name := range f.arms {
			st := f.state[name]
			clients := []echoClient{st.client}
			if cell.conns {
				clients = clients[:0]
				for _, c := range st.many {
					clients = append(clients, c)
				}
			}
			m.arms = append(m.arms, f.lat.arm(key, name, cell.callers, func(ctx context.Context, lat [][]time.Duration) (sample, error) {
				return unaryRoundEach(ctx, clients, payload, o.duration, lat)
			}))
		}
		out = append(out, m)
	}
	if selected[wsMetricConn] {
		payload := sweepPayload(0, o.goalPayload())
		conn := &callMetric{key: wsMetricConn, label: fmt.Sprintf("new connections/s: dial + TLS + upgrade + 1 call + close (%d %s)", o.parallel, plural(o.parallel, "dialer")), unit: "conn"}
		for _, name := range f.arms {
			st := f.state[name]
			conn.arms = append(conn.arms, &callArm{arm: newArm(name, func(ctx context.Context) (sample, error) {
				return connsRound(ctx, o.parallel, o.duration, func(ctx context.Context) error { return wsConnOnce(ctx, st, payload) })
			})})
		}
		out = append(out, conn)
	}
	return out
}

// wsMessageSizes returns what one echo's request and answer messages add to the
// payload on each arm (the alknet ids are UUIDs; the baseline's id is taken as 5
// digits).
func wsMessageSizes() (alkReq, alkResp, baseReq, baseResp int) {
	in := sweepPayload(0, minPayload)
	id := call.NewID()
	if env, err := call.NewRequest(id, benchEchoOp, in, nil, nil); err == nil {
		b, _ := call.EncodeEnvelope(env)
		alkReq = len(b) - len(in)
	}
	b, _ := call.EncodeEnvelope(call.NewResponded(id, in))
	alkResp = len(b) - len(in)
	b, _ = json.Marshal(rpcRequest{ID: 12345, Method: benchEchoOp, Params: in})
	baseReq = len(b) - len(in)
	b, _ = json.Marshal(rpcResponse{ID: 12345, Result: in})
	baseResp = len(b) - len(in)
	return
}

func wsReport(w io.Writer, o wsBenchOptions, arms []string, ms []*callMetric, loadBefore, otherCPU string) {
	machine := armMachine(library{"coder/websocket", "github.com/coder/websocket"})
	aq, ar, bq, br := wsMessageSizes()
	reportHeader(w, "ws", machine, loadBefore, otherCPU, fmt.Sprintf(
		"one process, loopback; %s, the echo's input, its messages %d/%d bytes longer (request/answer) on alknet and %d/%d on the baseline; "+
			"%s; callers sharing a socket correlate answers by id; "+
			"a correctness check (subprotocol, byte-exact echoes at every size on every socket, a fresh socket, 401 without the token) and a warm-up pass, "+
			"then %d %s (arms interleaved, starting one arm later each round), %s per round and arm; medians over the rounds; "+
			"both arms are TLS 1.3 with the same Ed25519 certificate, HTTP/1.1 upgrade, coder/websocket on both sides, no compression, a Bearer token checked at the upgrade: "+
			"alknet is GET /alknet/call of alkhttp.Handler (registry with bench/echo) on an endpoint's TCP+TLS listener, one binary message per EventEnvelope, "+
			"its client a call.Conn from (&call.Dispatcher{}).NewMessageConn with a goroutine pumping the socket into HandleEnvelope; "+
			"the baseline is a net/http server over crypto/tls whose coder/websocket handler decodes {id, method, params} text messages with encoding/json "+
			"and answers {id, result} from a goroutine per request, its client a hand-rolled id→channel map; "+
			"conn: %d dialers for %s, each repeating dial + TLS + upgrade + 1 call of the %s payload + close handshake; "+
			"%s; both servers read messages of up to %s (alkhttp.DefaultWSMaxMessageBytes, set on the baseline too); "+
			"ratio columns: alknet/baseline for rates, baseline/alknet for latencies, so above 1 means alknet is better",
		o.payloadShape(), aq, ar, bq, br, o.sweepRows("socket per arm", "a socket (a TCP+TLS connection)"),
		o.rounds, plural(o.rounds, "round"), o.duration, o.parallel, o.duration, byteSize(o.goalPayload()),
		o.alknetLimits(false), byteSize(alkhttp.DefaultWSMaxMessageBytes)))

	sweepTables(w, o.sweepOptions, ms, func() *armTable {
		t := newArmTable(arms, wsArmTitles)
		t.addBaselineRatios(arms, wsArmBase, wsRatioTitles)
		return t
	}, "echo ")
	fmt.Fprintf(w, "\n%s\n", wsGoalLine(ms, o.sweepOptions))

	fmt.Fprintf(w, "\nPer-round samples (rate; p50 latency for the call rows); CPU time and heap allocations per operation, medians over the rounds (whole process: client and server):\n\n")
	perRoundTable(w, ms, true)
}

// wsGoalLine states whether the goal was met: echo calls/s with many callers on one
// socket at least wsGoalRatio× the baseline's, at the sweep's goal cell (see
// sweepOptions.goalMany).
func wsGoalLine(ms []*callMetric, o sweepOptions) string {
	many := sweepCell{payload: o.goalPayload(), callers: o.goalMany()}
	return ratioGoalLine(ms, fmt.Sprintf("goal: /alknet/call echo calls/s with many callers on one socket ≥ %.1f× net/http + coder/websocket — ", wsGoalRatio), many.key(wsMetricCall), wsArmAlknet, wsArmBase, wsGoalRatio) +
		goalAt(o.goalPayload(), many.who("caller"))
}
