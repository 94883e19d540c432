package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime/pprof"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/alknet/alknet/call"
	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/core/endpoint"
	alkhttp "github.com/alknet/alknet/http"
	"github.com/alknet/alknet/http/mcp"
)

// Metric kinds of the mcp benchmark, for -only and (with the payload and callers)
// profile labels: the sweep of callers sharing one session per arm, the row of -conns
// clients each with a session (and a connection) of its own, and new sessions/s.
const (
	mcpMetricCall    = "call"
	mcpMetricSession = "session"
)

// mcpMetrics lists the metric kinds in table order.
var mcpMetrics = []string{mcpMetricCall, kindConns, mcpMetricSession}

// Arm names of the mcp benchmark, for -arms and profile labels ("arm").
const (
	mcpArmAlknet = "alknet-mcp"
	mcpArmRaw    = "sdk-raw"
	mcpArmTyped  = "sdk-typed"
)

// mcpArms lists the arms in column order.
var mcpArms = []string{mcpArmAlknet, mcpArmRaw, mcpArmTyped}

// mcpArmTitles are the column headers of the arms.
var mcpArmTitles = map[string]string{
	mcpArmAlknet: "alknet /mcp TCP+TLS h2",
	mcpArmRaw:    "go-sdk raw tool TLS h2",
	mcpArmTyped:  "go-sdk typed tool TLS h2",
}

const (
	// mcpGoalRatio is the goal: call-tool calls/s with many callers on one session at
	// least this share of the raw SDK server's.
	mcpGoalRatio = 0.9
	// mcpScope is the scope bench/echo requires on the alknet arm, held by the bench
	// token's peer.
	mcpScope = "bench"
	// mcpBaseServer and mcpBaseTool name the baselines' server and their one tool.
	mcpBaseServer = "bench-go-sdk"
	mcpBaseTool   = "echo"
)

type mcpBenchOptions struct {
	runOptions
	sweepOptions
	parallel int
}

func runMCP(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o := mcpBenchOptions{}
	fs := newFlagSet("mcp", "Compares the to_mcp projection of a call registry (alkhttp.Config.MCP = mcp.Mount(nil),\n"+
		"/mcp of the alknet HTTP handler on an endpoint's TCP+TLS listener, h2; the call tool\n"+
		"running bench/echo) with the MCP Go SDK used directly (sdk.NewStreamableHTTPHandler on\n"+
		"a plain net/http TLS h2 server, one echo tool returning its arguments as\n"+
		"structuredContent: a raw Server.AddTool handler and a typed sdk.AddTool one), the\n"+
		"client the SDK's (StreamableClientTransport), on loopback: tool calls/s and latency\n"+
		"for each -payload size with each -concurrency of callers on one session and with\n"+
		"-conns clients each with a session and a connection of its own (one table per\n"+
		"payload), and new sessions/s (initialize + 1 call + close) with -sessions-parallel\n"+
		"callers. The default full run takes about 3 minutes.", stderr)
	o.sharedFlags(fs, orderRotating, mcpMetrics, mcpArms, "arm, side, metric")
	o.roundsDefault(fs, 3)
	fs.DurationVar(&o.duration, "duration", 500*time.Millisecond, "length of one round per row and arm")
	o.sweepFlags(fs, "session (one h2 connection)", "a session and a connection")
	fs.IntVar(&o.parallel, "sessions-parallel", 4, "concurrent callers opening sessions in the "+mcpMetricSession+" metric")
	fs.DurationVar(&o.settle, "settle", 50*time.Millisecond, "pause after each arm, after a GC")
	help, err := parseFlags(fs, args, stderr, "smoke run: 1 round, 200ms, "+quickSweepUsage+" (flags given explicitly win)", o.quickSweep(o.quickOverrides()))
	if help || err != nil {
		return err
	}
	if err := o.validate(o.checkSweep(), atLeast1("-sessions-parallel", o.parallel)); err != nil {
		return err
	}
	return armBench[mcpBenchOptions, *mcpFixture]{
		metrics: mcpMetrics,
		arms:    mcpArms,
		start:   newMCPFixture,
		warm: func(o mcpBenchOptions) mcpBenchOptions {
			o.duration = min(o.duration, 200*time.Millisecond)
			return o
		},
		report: mcpReport,
	}.run(ctx, o, stdout, stderr)
}

// mcpArmState is one arm: its long-lived session, how to open a fresh one, and the
// tool call that echoes.
type mcpArmState struct {
	name    string
	session *sdk.ClientSession
	many    []*sdk.ClientSession // the conns row's sessions, a connection each
	// own opens a session, with the Bearer token, over base, a transport of its own.
	own func(ctx context.Context, base http.RoundTripper) (*sdk.ClientSession, error)
	// connect opens a new session, with the Bearer token unless anonymous.
	connect func(ctx context.Context, anonymous bool) (*sdk.ClientSession, error)
	// params returns the tool call that echoes in.
	params func(in []byte) *sdk.CallToolParams
	// server and tools are the server name and tool names the arm must announce.
	server string
	tools  []string
	// lastStatus is the status of the last answer to an anonymous request.
	lastStatus *atomic.Int32
}

// echo makes the arm's echo tool call with in on cs and returns the text of its one
// content block; an isError result is an error.
func (st *mcpArmState) echo(ctx context.Context, cs *sdk.ClientSession, in []byte) (*sdk.CallToolResult, []byte, error) {
	res, err := cs.CallTool(ctx, st.params(in))
	if err != nil {
		return nil, nil, err
	}
	if res.IsError {
		return res, nil, fmt.Errorf("tool error: %s", contentText(res))
	}
	if len(res.Content) != 1 {
		return res, nil, fmt.Errorf("%d content blocks, want 1", len(res.Content))
	}
	tc, ok := res.Content[0].(*sdk.TextContent)
	if !ok {
		return res, nil, fmt.Errorf("content block %T, want text", res.Content[0])
	}
	return res, []byte(tc.Text), nil
}

// contentText joins the text blocks of res, for error messages.
func contentText(res *sdk.CallToolResult) string {
	var parts []string
	for _, c := range res.Content {
		if tc, ok := c.(*sdk.TextContent); ok {
			parts = append(parts, tc.Text)
		}
	}
	return strings.Join(parts, " ")
}

// mcpCaller is a session of an arm as the unary rows see it.
type mcpCaller struct {
	st *mcpArmState
	cs *sdk.ClientSession
}

func (c mcpCaller) echo(ctx context.Context, in []byte) ([]byte, error) {
	_, out, err := c.st.echo(ctx, c.cs, in)
	return out, err
}

// mcpFixture holds the servers and the clients of every arm.
type mcpFixture struct {
	server identity
	token  string // the Bearer token every client presents
	client *sdk.Client
	arms   []string
	state  map[string]*mcpArmState
	lat    latBuffers
	closers
}

func newMCPFixture(ctx context.Context, arms []string, o mcpBenchOptions) (_ *mcpFixture, err error) {
	f := &mcpFixture{
		arms:   arms,
		state:  make(map[string]*mcpArmState),
		lat:    make(latBuffers),
		client: sdk.NewClient(&sdk.Implementation{Name: "bench", Version: "1"}, nil),
	}
	defer func() {
		if err != nil {
			f.close()
		}
	}()
	selected, err := selectMetrics(o.only, mcpMetrics)
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
		var st *mcpArmState
		switch a {
		case mcpArmAlknet:
			st, err = f.startAlknet(ctx, a)
		case mcpArmRaw:
			st, err = f.startSDK(ctx, a, false)
		case mcpArmTyped:
			st, err = f.startSDK(ctx, a, true)
		}
		if err != nil {
			return nil, fmt.Errorf("start %s: %w", a, err)
		}
		pprof.Do(ctx, pprof.Labels("arm", a, "side", "client"), func(ctx context.Context) {
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			st.session, err = st.connect(cctx, false)
		})
		if err != nil {
			return nil, fmt.Errorf("start %s: connect: %w", a, err)
		}
		f.add(func(context.Context) error { return st.session.Close() })
		f.state[a] = st
		if !selected[kindConns] || o.conns == 0 {
			continue
		}
		// A stock h2 transport each (one connection each), made here: the closers are
		// not safe for concurrent use.
		trs := make([]*http.Transport, o.conns)
		for k := range trs {
			if _, trs[k], err = f.stockH2Client(f.server.fp); err != nil {
				return nil, err
			}
		}
		pprof.Do(ctx, pprof.Labels("arm", a, "side", "client"), func(ctx context.Context) {
			st.many, err = openClients(ctx, o.conns, func(ctx context.Context, k int) (*sdk.ClientSession, error) { return st.own(ctx, trs[k]) },
				func(cs *sdk.ClientSession) { _ = cs.Close() })
		})
		if err != nil {
			return nil, fmt.Errorf("start %s: %w", a, err)
		}
		f.add(func(context.Context) error {
			var errs []error
			for _, cs := range st.many {
				errs = append(errs, cs.Close())
			}
			return errors.Join(errs...)
		})
	}
	return f, nil
}

// settle collects garbage and pauses after each arm. Sessions need no wait: a
// client's Close returns once the server has answered its DELETE.
func (f *mcpFixture) settle(ctx context.Context, pause time.Duration) error {
	return gcPause(ctx, pause)
}

// roundTripFunc is an http.RoundTripper made of a function.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// mcpHTTPClients returns the clients of an arm over base (the arm's h2 transport):
// one presenting the Bearer token on every request, one presenting none that records
// the status of each answer in status.
func (f *mcpFixture) mcpHTTPClients(base http.RoundTripper, status *atomic.Int32) (authed, anonymous *http.Client) {
	auth := "Bearer " + f.token
	authed = &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		r = r.Clone(r.Context())
		r.Header.Set("Authorization", auth)
		return base.RoundTrip(r)
	})}
	anonymous = &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		resp, err := base.RoundTrip(r)
		if err == nil {
			status.Store(int32(resp.StatusCode))
		}
		return resp, err
	})}
	return authed, anonymous
}

// connector returns the connect func of an arm whose MCP endpoint is url: the SDK's
// streamable client transport (default options) over one of hc's clients.
func (f *mcpFixture) connector(url string, authed, anonymous *http.Client) func(ctx context.Context, anon bool) (*sdk.ClientSession, error) {
	return func(ctx context.Context, anon bool) (*sdk.ClientSession, error) {
		hc := authed
		if anon {
			hc = anonymous
		}
		return f.client.Connect(ctx, &sdk.StreamableClientTransport{Endpoint: url, HTTPClient: hc}, nil)
	}
}

// ownSession returns the own func of an arm whose MCP endpoint is url: a session over
// a transport of its own, the Bearer token on every request.
func (f *mcpFixture) ownSession(url string) func(ctx context.Context, base http.RoundTripper) (*sdk.ClientSession, error) {
	return func(ctx context.Context, base http.RoundTripper) (*sdk.ClientSession, error) {
		authed, _ := f.mcpHTTPClients(base, new(atomic.Int32))
		return f.client.Connect(ctx, &sdk.StreamableClientTransport{Endpoint: url, HTTPClient: authed}, nil)
	}
}

// mcpEchoRegistry is what the alknet arm's gateway serves: bench/echo, a Query
// returning its input, callable only with the scope mcpScope (so the token matters).
func mcpEchoRegistry() (*call.Registry, error) {
	spec := call.NewSpec(benchEchoOp, call.Query)
	spec.Access.RequiredScopes = []string{mcpScope}
	reg := call.NewRegistry()
	err := reg.Register(call.Registration{
		Spec: spec,
		Once: func(_ context.Context, _ *call.OpContext, in json.RawMessage) (json.RawMessage, error) {
			return in, nil
		},
	})
	if err != nil {
		return nil, err
	}
	return reg, nil
}

// startAlknet starts an endpoint listening on TCP+TLS only whose registry serves the
// alknet HTTP handler with the MCP projection mounted (alkhttp.Config.MCP =
// mcp.Mount(nil)), identities from the node's store (the bench token known as peer
// bench-client with scope bench), on alknet/http, h2 and http/1.1, as a node does.
// Its clients are the stock h2 client of the http benchmark, with and without the
// token.
func (f *mcpFixture) startAlknet(ctx context.Context, name string) (*mcpArmState, error) {
	store, err := sweepStore(core.DynamicConfig{
		Auth: core.AuthPolicy{Peers: []core.PeerEntry{{
			PeerID: "bench-client", AuthTokenHash: core.HashToken([]byte(f.token)), Scopes: []string{mcpScope}, Enabled: true,
		}}},
	})
	if err != nil {
		return nil, err
	}
	creg, err := mcpEchoRegistry()
	if err != nil {
		return nil, err
	}
	discard := slog.New(slog.DiscardHandler)
	h, err := alkhttp.New(alkhttp.Config{
		Registry:   creg,
		Identities: core.NewConfigIdentityProvider(store, nil),
		Logger:     discard,
		MCP:        mcp.Mount(nil),
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

	_, tr, err := f.stockH2Client(f.server.fp)
	if err != nil {
		return nil, err
	}
	status := new(atomic.Int32)
	authed, anonymous := f.mcpHTTPClients(tr, status)
	return &mcpArmState{
		name:    name,
		connect: f.connector("https://"+addr+alkhttp.MCPPath, authed, anonymous),
		own:     f.ownSession("https://" + addr + alkhttp.MCPPath),
		params: func(in []byte) *sdk.CallToolParams {
			args := make([]byte, 0, len(in)+48)
			args = append(args, `{"operation":"`+benchEchoOp+`","input":`...)
			args = append(args, in...)
			args = append(args, '}')
			return &sdk.CallToolParams{Name: mcp.ToolCall, Arguments: json.RawMessage(args)}
		},
		server:     mcp.ServerName,
		tools:      []string{mcp.ToolBatch, mcp.ToolCall, mcp.ToolSchema, mcp.ToolSearch},
		lastStatus: status,
	}, nil
}

// startSDK starts a baseline: what a user of the MCP Go SDK writes without alknet, a
// net/http server over crypto/tls (the same certificate and TLS settings, ALPN h2 and
// http/1.1) serving sdk.NewStreamableHTTPHandler (default options) behind a Bearer
// check (SHA-256 of the token compared in constant time, 401 otherwise), its server
// holding one tool, echo, that returns its arguments as structuredContent and the
// same JSON in one text block. typed selects how the tool is written: the SDK's
// recommended sdk.AddTool with map[string]any in and out (input and output schemas
// inferred and checked, arguments decoded and the output encoded by the SDK), else
// Server.AddTool with a raw handler that hands the arguments back as they came.
func (f *mcpFixture) startSDK(ctx context.Context, name string, typed bool) (*mcpArmState, error) {
	srv := sdk.NewServer(&sdk.Implementation{Name: mcpBaseServer, Version: "1"}, nil)
	if typed {
		sdk.AddTool(srv, &sdk.Tool{Name: mcpBaseTool, Description: "Echo the arguments."},
			func(_ context.Context, _ *sdk.CallToolRequest, in map[string]any) (*sdk.CallToolResult, map[string]any, error) {
				return nil, in, nil
			})
	} else {
		srv.AddTool(&sdk.Tool{Name: mcpBaseTool, Description: "Echo the arguments.", InputSchema: json.RawMessage(`{"type":"object"}`)},
			func(_ context.Context, req *sdk.CallToolRequest) (*sdk.CallToolResult, error) {
				args := req.Params.Arguments
				if len(args) == 0 {
					args = json.RawMessage("{}")
				}
				return &sdk.CallToolResult{
					StructuredContent: args,
					Content:           []sdk.Content{&sdk.TextContent{Text: string(args)}},
				}, nil
			})
	}
	tokenHash := sha256.Sum256([]byte(f.token))
	mcpHandler := sdk.NewStreamableHTTPHandler(func(*http.Request) *sdk.Server { return srv }, nil)
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		h := sha256.Sum256([]byte(tok))
		if !ok || subtle.ConstantTimeCompare(h[:], tokenHash[:]) != 1 {
			w.Header().Set("WWW-Authenticate", "Bearer")
			http.Error(w, "401 Unauthorized", http.StatusUnauthorized)
			return
		}
		mcpHandler.ServeHTTP(w, r)
	})

	mux := http.NewServeMux()
	mux.Handle("/mcp", handler)
	addr, err := f.serveTLS(ctx, name, f.server.cert, tlsBaseline{
		handler: mux,
		protos:  []string{"h2", "http/1.1"},
		beforeShutdown: func() {
			for ss := range srv.Sessions() {
				_ = ss.Close()
			}
		},
	})
	if err != nil {
		return nil, err
	}

	_, tr, err := f.stockH2Client(f.server.fp)
	if err != nil {
		return nil, err
	}
	status := new(atomic.Int32)
	authed, anonymous := f.mcpHTTPClients(tr, status)
	return &mcpArmState{
		name:    name,
		connect: f.connector("https://"+addr+"/mcp", authed, anonymous),
		own:     f.ownSession("https://" + addr + "/mcp"),
		params: func(in []byte) *sdk.CallToolParams {
			return &sdk.CallToolParams{Name: mcpBaseTool, Arguments: json.RawMessage(in)}
		},
		server:     mcpBaseServer,
		tools:      []string{mcpBaseTool},
		lastStatus: status,
	}, nil
}

// check makes sure, once and untimed, that every arm announces its server and tools,
// echoes the exact payload of every size (structuredContent and text, byte for byte;
// the largest -concurrency of callers with distinct payloads at once on the
// long-lived session, then one call on each of the conns row's sessions, all at
// once), serves a fresh session, and refuses a caller without the token.
func (f *mcpFixture) check(ctx context.Context, o mcpBenchOptions) error {
	ctx, cancel := context.WithTimeout(ctx, 2*callTimeout)
	defer cancel()
	for _, name := range f.arms {
		st := f.state[name]
		var err error
		pprof.Do(ctx, pprof.Labels("arm", name, "side", "client", "metric", "check"), func(ctx context.Context) {
			err = checkMCPArm(ctx, st, o.sweepOptions)
		})
		if err != nil {
			return fmt.Errorf("check %s: %w", name, err)
		}
	}
	return nil
}

func checkMCPArm(ctx context.Context, st *mcpArmState, o sweepOptions) error {
	if got := st.session.InitializeResult().ServerInfo.Name; got != st.server {
		return fmt.Errorf("server %q, want %q", got, st.server)
	}
	tools, err := st.session.ListTools(ctx, nil)
	if err != nil {
		return fmt.Errorf("tools/list: %w", err)
	}
	var names []string
	for _, t := range tools.Tools {
		names = append(names, t.Name)
	}
	slices.Sort(names)
	if !slices.Equal(names, st.tools) {
		return fmt.Errorf("tools %v, want %v", names, st.tools)
	}
	// echo returns the text block when structuredContent is the same bytes.
	echo := func(ctx context.Context, cs *sdk.ClientSession, in []byte) ([]byte, error) {
		res, text, err := st.echo(ctx, cs, in)
		if err != nil {
			return nil, err
		}
		sc, err := json.Marshal(res.StructuredContent)
		if err != nil {
			return nil, fmt.Errorf("structuredContent: %w", err)
		}
		if !bytes.Equal(sc, text) {
			return nil, fmt.Errorf("structuredContent of %d bytes %.40q… differs from the text block of %d bytes %.40q…", len(sc), sc, len(text), text)
		}
		return text, nil
	}
	if err := checkEchoes(ctx, o.payloads, []*sdk.ClientSession{st.session}, o.maxConcurrency(), echo); err != nil {
		return err
	}
	if err := checkEchoes(ctx, o.payloads, st.many, 1, echo); err != nil {
		return err
	}
	fresh, err := st.connect(ctx, false)
	if err != nil {
		return fmt.Errorf("fresh session: %w", err)
	}
	err = checkEchoes(ctx, o.payloads[:1], []*sdk.ClientSession{fresh}, 1, echo)
	if cerr := fresh.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("fresh session: close: %w", cerr)
	}
	if err != nil {
		return err
	}
	return checkAnonymous(ctx, st)
}

// checkAnonymous checks that a caller without the token is refused: the baselines
// answer 401 to its initialize; the alknet arm serves anonymous MCP sessions (the
// Bearer layer resolves identities, the operations' access rules gate them) and
// answers its call of bench/echo with a FORBIDDEN tool error.
func checkAnonymous(ctx context.Context, st *mcpArmState) error {
	st.lastStatus.Store(0)
	cs, err := st.connect(ctx, true)
	if st.name != mcpArmAlknet {
		if err == nil {
			_ = cs.Close()
			return errors.New("session without a token accepted")
		}
		if s := st.lastStatus.Load(); s != http.StatusUnauthorized {
			return fmt.Errorf("session without a token: %w (status %d), want 401", err, s)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("anonymous session: %w", err)
	}
	defer cs.Close()
	res, _, err := st.echo(ctx, cs, sweepPayload(0, minPayload))
	if err == nil {
		return errors.New("bench/echo without a token answered")
	}
	if res == nil {
		return fmt.Errorf("bench/echo without a token: %w, want a FORBIDDEN tool error", err)
	}
	var cerr struct {
		Code string `json:"code"`
	}
	sc, _ := json.Marshal(res.StructuredContent)
	if json.Unmarshal(sc, &cerr) != nil || cerr.Code != string(call.CodeForbidden) {
		return fmt.Errorf("bench/echo without a token: %s, want code %s", sc, call.CodeForbidden)
	}
	return nil
}

// mcpSessionOnce opens a fresh session (initialize, notifications/initialized, the
// standalone SSE stream), makes one echo call on it and closes it (DELETE).
func mcpSessionOnce(ctx context.Context, st *mcpArmState, payload []byte) error {
	cs, err := st.connect(ctx, false)
	if err != nil {
		return err
	}
	_, out, err := st.echo(ctx, cs, payload)
	if cerr := cs.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close: %w", cerr)
	}
	if err == nil && len(out) != len(payload) {
		err = fmt.Errorf("echo: got %d bytes, want %d", len(out), len(payload))
	}
	return err
}

func (f *mcpFixture) metrics(o mcpBenchOptions, selected map[string]bool) []*callMetric {
	var out []*callMetric
	for _, cell := range o.cells(selected, mcpMetricCall) {
		payload := sweepPayload(0, cell.payload)
		key := cell.key(mcpMetricCall)
		who := cell.who("caller")
		if !cell.conns {
			who += " on one session"
		}
		m := &callMetric{key: key, label: "tool calls/s, " + who, unit: "call", unary: true, payload: cell.payload, who: who}
		for _, name := range f.arms {
			st := f.state[name]
			clients := []echoClient{mcpCaller{st: st, cs: st.session}}
			if cell.conns {
				clients = clients[:0]
				for _, cs := range st.many {
					clients = append(clients, mcpCaller{st: st, cs: cs})
				}
			}
			m.arms = append(m.arms, f.lat.arm(key, name, cell.callers, func(ctx context.Context, lat [][]time.Duration) (sample, error) {
				return unaryRoundEach(ctx, clients, payload, o.duration, lat)
			}))
		}
		out = append(out, m)
	}
	if selected[mcpMetricSession] {
		payload := sweepPayload(0, o.goalPayload())
		sess := &callMetric{key: mcpMetricSession, label: fmt.Sprintf("new sessions/s: initialize + 1 call + close (%d %s)", o.parallel, plural(o.parallel, "caller")), unit: "session"}
		for _, name := range f.arms {
			st := f.state[name]
			sess.arms = append(sess.arms, &callArm{arm: newArm(name, func(ctx context.Context) (sample, error) {
				return connsRound(ctx, o.parallel, o.duration, func(ctx context.Context) error { return mcpSessionOnce(ctx, st, payload) })
			})})
		}
		out = append(out, sess)
	}
	return out
}

func mcpReport(w io.Writer, o mcpBenchOptions, arms []string, ms []*callMetric, loadBefore, otherCPU string) {
	machine := armMachine(library{"go-sdk", "github.com/modelcontextprotocol/go-sdk"})
	reportHeader(w, "mcp", machine, loadBefore, otherCPU, fmt.Sprintf(
		"one process, loopback; %s: the go-sdk arms' tool arguments, the alknet arm's input (its arguments add %d bytes: {\"operation\":\"%s\",\"input\":…}); "+
			"%s; "+
			"client: the go-sdk's sdk.NewClient + StreamableClientTransport (default options: SSE answers, standalone SSE stream) "+
			"over a stock net/http h2 transport pinning the server, a Bearer token on every request; "+
			"a correctness check (server and tools announced, byte-exact structuredContent and text at every size on every session, a fresh session, a caller without the token refused) "+
			"and a warm-up pass, then %d %s (arms interleaved, starting one arm later each round), %s per round and arm; medians over the rounds; "+
			"every arm is TLS 1.3 with the same Ed25519 certificate, ALPN h2: "+
			"alknet is /mcp of alkhttp.Handler with MCP: mcp.Mount(nil) on an endpoint's TCP+TLS listener, "+
			"tool call with {\"operation\":\"%s\",\"input\":<payload>} (a Query returning its input, scope %q required, the token a peer of the node's store); "+
			"the baselines are sdk.NewStreamableHTTPHandler (default options) on a net/http server over crypto/tls behind a SHA-256 constant-time Bearer check, "+
			"tool echo with the payload as arguments: raw is Server.AddTool handing the arguments back as structuredContent and one text block, "+
			"typed is sdk.AddTool with map[string]any in and out (schemas inferred and checked by the SDK); "+
			"session: %d callers for %s, each repeating connect (initialize + notifications/initialized + standalone SSE GET) + 1 call of the %s payload + close (DELETE) on the arm's h2 connection; "+
			"%s, at most %d MCP sessions (mcp default, kept); the h2 servers keep Go's default of %d concurrent streams per connection, so beyond that a stock h2 client opens a second connection; "+
			"ratio columns: alknet/baseline for rates, baseline/alknet for latencies, so above 1 means alknet is better",
		o.payloadShape(), len(`{"operation":"`+benchEchoOp+`","input":}`), benchEchoOp,
		o.sweepRows("session per arm (one h2 connection)", "a session and an h2 connection"),
		o.rounds, plural(o.rounds, "round"), o.duration, benchEchoOp, mcpScope, o.parallel, o.duration, byteSize(o.goalPayload()),
		o.alknetLimits(false), mcp.DefaultMaxSessions, h2MaxStreams))

	sweepTables(w, o.sweepOptions, ms, func() *armTable {
		t := newArmTable(arms, mcpArmTitles)
		if a := slices.Index(arms, mcpArmAlknet); a >= 0 {
			if b := slices.Index(arms, mcpArmRaw); b >= 0 {
				t.addRatio(a, b, "alknet vs go-sdk raw")
			}
			if b := slices.Index(arms, mcpArmTyped); b >= 0 {
				t.addRatio(a, b, "alknet vs go-sdk typed")
			}
		}
		return t
	}, "tool call ")
	fmt.Fprintf(w, "\n%s\n", mcpGoalLine(ms, o.sweepOptions))

	fmt.Fprintf(w, "\nPer-round samples (rate; p50 latency for the call rows); CPU time and heap allocations per operation, medians over the rounds (whole process: client and server):\n\n")
	perRoundTable(w, ms, true)
}

// mcpGoalLine states whether the goal was met: tool calls/s with many callers on one
// session at least mcpGoalRatio× the raw SDK server's, at the sweep's goal cell (see
// sweepOptions.goalMany).
func mcpGoalLine(ms []*callMetric, o sweepOptions) string {
	many := sweepCell{payload: o.goalPayload(), callers: o.goalMany()}
	return ratioGoalLine(ms, fmt.Sprintf("goal: /mcp call-tool calls/s with many callers on one session ≥ %.1f× the go-sdk used directly (raw tool) — ", mcpGoalRatio), many.key(mcpMetricCall), mcpArmAlknet, mcpArmRaw, mcpGoalRatio) +
		goalAt(o.goalPayload(), many.who("caller"))
}
