package call

// The hardening hooks of message transports (NewMessageConn), which the WebSocket
// path of the http module wires: auth attempts, the transport's close, busy marks,
// reserved envelopes and CloseWithError.

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"sync"
	"testing"

	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/core/coretest"
	"github.com/alknet/alknet/core/endpoint"
)

// hardMsg is a message Conn whose sent envelopes and transport closes are recorded.
type hardMsg struct {
	c      *Conn
	sent   chan Envelope
	closed chan *core.CloseError
}

func hardNewMsg(t testing.TB, d *Dispatcher, id *core.Identity, opts ...MessageOption) *hardMsg {
	t.Helper()
	m := &hardMsg{sent: make(chan Envelope, 64), closed: make(chan *core.CloseError, 2)}
	opts = append(opts, WithClose(func(code uint32, reason string) {
		m.closed <- &core.CloseError{Code: code, Reason: reason}
	}))
	m.c = d.NewMessageConn(t.Context(), id, func(_ context.Context, env Envelope) error {
		m.sent <- env
		return nil
	}, opts...)
	t.Cleanup(func() { m.c.Close() })
	return m
}

// request feeds a t/whoami request with token and returns its answer (or fails when
// none comes).
func (m *hardMsg) whoami(t testing.TB, id string, token []byte) string {
	t.Helper()
	env, err := NewRequest(id, "t/whoami", nil, token, nil)
	if err != nil {
		t.Fatal(err)
	}
	m.c.HandleEnvelope(t.Context(), env)
	got := engWait(t, m.sent, "the answer of "+id)
	out, err := ParseResponded(got)
	if got.ID != id || got.Type != EvResponded || err != nil {
		t.Fatalf("answer %s %s %s", got.Type, got.ID, got.Payload)
	}
	var who string
	if err := json.Unmarshal(out, &who); err != nil {
		t.Fatal(err)
	}
	return who
}

// hardMsgDispatcher returns a Dispatcher over a live configuration with an API key,
// logging into logs.
func hardMsgDispatcher(t testing.TB, lim core.Limits, logs *coretest.LogBuffer) (*Dispatcher, core.AuthToken) {
	t.Helper()
	key, entry, err := core.NewAPIKey([]string{"demo"}, "")
	if err != nil {
		t.Fatal(err)
	}
	cfg := core.DynamicConfig{Limits: lim}
	cfg.Auth.APIKeys = []core.APIKeyEntry{entry}
	store, err := core.NewDynamicStore(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &Dispatcher{
		Registry:   hardRegistry(t),
		Identities: core.NewConfigIdentityProvider(store, nil),
		Limits:     store.Limits,
		Logger:     logs.Logger(),
	}, key
}

// A message Conn counts failed auth_tokens like Handle does, writes the auth-failure
// lines itself (with the transport's remote address), and closes its transport
// through WithClose once the attempts are used up.
func TestHardenMessageConnAuthAttempts(t *testing.T) {
	logs := coretest.NewLogBuffer()
	d, key := hardMsgDispatcher(t, core.Limits{MaxAuthAttempts: 2}, logs)
	remote := &net.TCPAddr{IP: net.ParseIP("203.0.113.9"), Port: 5123}
	m := hardNewMsg(t, d, &core.Identity{ID: "browser"}, WithRemoteAddr(remote))
	if who := m.whoami(t, "ok", key.Raw); who != string(key.Raw[:core.APIKeyPrefixLen]) {
		t.Fatalf("the right key: %q", who)
	}
	for _, id := range []string{"bad-1", "bad-2"} {
		if who := m.whoami(t, id, []byte("alk_zzzzsecret")); who != "browser" {
			t.Fatalf("%s: %q, want the connection identity", id, who)
		}
	}
	env, _ := NewRequest("late", "t/whoami", nil, key.Raw, nil)
	m.c.HandleEnvelope(t.Context(), env)
	ce := engWait(t, m.closed, "the transport to be closed")
	if ce.Code != core.CloseAuthRequired || ce.Reason != "too many authentication attempts" {
		t.Fatalf("transport closed with %v", ce)
	}
	engWait(t, m.c.Done(), "the Conn to end")
	if err := m.c.Err(); !errors.Is(err, core.ErrTooManyAuthAttempts) || !errors.Is(err, core.ErrAuthRequired) {
		t.Fatalf("Err() = %v", err)
	}
	select {
	case got := <-m.sent:
		t.Fatalf("the request after the limit was answered: %s %s", got.Type, got.Payload)
	default:
	}
	if n := len(logs.Lines(`msg="auth failure"`, "remote_ip=203.0.113.9", "alpn=alknet/call", "peer=alk_zzzz", `reason="invalid auth_token"`)); n != 2 {
		t.Fatalf("%d invalid-token lines, want 2:\n%s", n, logs)
	}
	if n := len(logs.Lines(`msg="auth failure"`, "remote_ip=203.0.113.9", "peer=browser", "too many authentication attempts")); n != 1 {
		t.Fatalf("%d closing lines, want 1:\n%s", n, logs)
	}
}

// WithAuthAttempts shares the count with the transport's own credential checks.
func TestHardenMessageConnSharedAttempts(t *testing.T) {
	d, key := hardMsgDispatcher(t, core.Limits{}, coretest.NewLogBuffer())
	a := core.NewAuthAttempts(2)
	a.Fail() // the transport refused a credential of this client already
	m := hardNewMsg(t, d, &core.Identity{ID: "browser"}, WithAuthAttempts(a))
	m.whoami(t, "bad", []byte("nope"))
	env, _ := NewRequest("late", "t/whoami", nil, key.Raw, nil)
	m.c.HandleEnvelope(t.Context(), env)
	engWait(t, m.closed, "the transport to be closed")
	if a.Failed() != 2 {
		t.Fatalf("%d failures counted, want 2", a.Failed())
	}
}

// WithBusy: the transport is marked busy from the first running request to the end of
// the last; HandleEnvelopeReserved releases a request's bytes once it is answered and
// other envelopes' at once.
func TestHardenMessageConnBusyAndReserved(t *testing.T) {
	started := make(chan struct{}, 2)
	release := make(chan struct{})
	reg := hardRegistry(t, engQuery("t/hold", func(ctx context.Context, _ *OpContext, _ json.RawMessage) (json.RawMessage, error) {
		started <- struct{}{}
		select {
		case <-release:
			return json.RawMessage(`"done"`), nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}))
	var mu sync.Mutex
	busy, marks := 0, 0
	m := hardNewMsg(t, &Dispatcher{Registry: reg}, nil, WithBusy(func() func() {
		mu.Lock()
		defer mu.Unlock()
		busy++
		marks++
		return func() {
			mu.Lock()
			defer mu.Unlock()
			busy--
		}
	}))
	state := func() (int, int) {
		mu.Lock()
		defer mu.Unlock()
		return busy, marks
	}
	b := core.NewBudget(core.BudgetScopeConn, 1<<20, nil)
	for _, id := range []string{"r1", "r2"} {
		env := engRequest(t, id, "t/hold", nil)
		if err := b.Reserve(1000); err != nil {
			t.Fatal(err)
		}
		m.c.HandleEnvelopeReserved(t.Context(), env, b, 1000)
		engWait(t, started, "the request to start")
	}
	if n, k := state(); n != 1 || k != 1 {
		t.Fatalf("busy %d (marks %d) with two requests running, want one mark", n, k)
	}
	if used := b.Used(); used != 2000 {
		t.Fatalf("%d bytes reserved with two requests running, want 2000", used)
	}
	// An answer to nothing, reserved too: released at once.
	_ = b.Reserve(500)
	m.c.HandleEnvelopeReserved(t.Context(), NewResponded("nobody", nil), b, 500)
	if used := b.Used(); used != 2000 {
		t.Fatalf("%d bytes reserved after a stray answer, want 2000", used)
	}
	close(release)
	engWait(t, m.sent, "an answer")
	engWait(t, m.sent, "the other answer")
	// The answers were handed over after their bytes and marks were released.
	if used := b.Used(); used != 0 {
		t.Fatalf("%d bytes reserved after the answers", used)
	}
	hardWaitFor(t, "the busy mark to end", func() bool { n, _ := state(); return n == 0 })
}

// CloseWithError ends a connection with a code and reason the peer sees: on a message
// transport through WithClose, on QUIC as the connection's close.
func TestHardenCloseWithError(t *testing.T) {
	m := hardNewMsg(t, &Dispatcher{}, &core.Identity{ID: "browser"})
	if err := m.c.CloseWithError(core.CloseAuthRequired, "credential revoked"); err != nil {
		t.Fatal(err)
	}
	if ce := engWait(t, m.closed, "the transport to be closed"); ce.Code != core.CloseAuthRequired || ce.Reason != "credential revoked" {
		t.Fatalf("transport closed with %v", ce)
	}
	if ce, ok := errors.AsType[*core.CloseError](m.c.Err()); !ok || ce.Code != core.CloseAuthRequired {
		t.Fatalf("Err() = %v", m.c.Err())
	}

	h := hardStart(t, &Dispatcher{}, core.Limits{})
	c := h.dial(t, h.alice, endpoint.NetworkQUIC)
	if _, err := c.Call(engCtx(t), "t/echo", 1); err != nil {
		t.Fatal(err)
	}
	sc := h.serverConnOf(t, c)
	if err := sc.CloseWithError(core.CloseAuthRequired, "credential revoked"); err != nil {
		t.Fatal(err)
	}
	engWait(t, c.Done(), "the client to see the close")
	if ce, ok := errors.AsType[*core.CloseError](c.Err()); !ok || ce.Code != core.CloseAuthRequired || ce.Reason != "credential revoked" || !ce.Remote {
		t.Fatalf("client Err() = %v", c.Err())
	}
	// Handle reports the deliberate close as a close, not as a failure.
	if hh := h.waitHandled(t); !errors.Is(hh.err, core.ErrConnectionClosed) {
		t.Fatalf("Handle returned %v", hh.err)
	}
}
