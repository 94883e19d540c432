package call

// Issue 13 (hardening): memory budgets, the anonymous frame cap, idle connections,
// authentication attempts, revocation and protocol errors, each attacked through a
// real endpoint.

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/core/endpoint"
)

// An anonymous QUIC connection opens streams that each announce a frame as large as
// it may send and send most of it without finishing: the streams the connection's
// budget cannot hold are reset (code 5, core.CloseLimitExceeded), what is buffered
// stays within the budget, and other clients are still answered.
func TestHardenPartialFramesQUIC(t *testing.T) {
	const budget = 4 << 20
	const streams, frame, sent = 10, 1 << 20, 900 << 10 // frame: the anonymous cap
	h := hardStart(t, &Dispatcher{}, core.Limits{MaxBufferedBytesPerConn: budget})
	ctx := engCtx(t)
	raw := h.raw(t, h.anon, endpoint.NetworkQUIC)
	var wg sync.WaitGroup
	t.Cleanup(func() {
		raw.Close(core.CloseNormal, "")
		wg.Wait()
	})
	reads := make(chan error, streams)
	for range streams {
		s, err := raw.OpenBi(ctx)
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			b := binary.BigEndian.AppendUint32(make([]byte, 0, 4+sent), frame)
			_, _ = s.Write(append(b, make([]byte, sent)...))
		})
		wg.Go(func() { reads <- hardDrain(s) })
	}
	sc := h.serverConnAt(t, raw.LocalAddr())
	for i := range streams - budget/frame {
		err := engWait(t, reads, "the server to reset a stream over the budget")
		if code, ok := hardStreamCode(err); !ok || code != quic.StreamErrorCode(core.CloseLimitExceeded) {
			t.Fatalf("stream %d ended with %v, want a reset with code %d", i, err, core.CloseLimitExceeded)
		}
	}
	if used := sc.streams.Budget().Used(); used > budget {
		t.Fatalf("the connection buffers %d bytes, over its budget of %d", used, budget)
	}
	// Other connections, identified or not, are still answered.
	for _, id := range []struct {
		name string
		c    *Conn
	}{{"alice", h.dial(t, h.alice, endpoint.NetworkQUIC)}, {"anonymous", h.dial(t, h.anon, endpoint.NetworkQUIC)}} {
		if out, err := id.c.Call(ctx, "t/echo", "hi"); err != nil || string(out) != `"hi"` {
			t.Fatalf("%s during the attack: %s, %v", id.name, out, err)
		}
	}
	// The server ends the connection (a client's close could be lost in the UDP
	// traffic it sent, leaving the server to notice only at its idle timeout).
	sc.Close()
	hh := h.waitHandled(t)
	if !errors.Is(hh.err, core.ErrBudgetExceeded) || !strings.Contains(hh.err.Error(), "max_buffered_bytes_per_conn of 4194304 bytes") {
		t.Fatalf("Handle returned %v, want the budget error", hh.err)
	}
	if used := hh.conn.Budget().Used(); used != 0 {
		t.Fatalf("%d bytes still reserved after the connection ended", used)
	}
	hardWaitFor(t, "the connection line", func() bool {
		return len(h.srv.Logs.Lines("msg=connection", "outcome=error", "max_buffered_bytes_per_conn")) == 1
	})
}

// Six anonymous TCP+TLS connections each send most of a frame: each is closed once
// its buffer would pass its budget, the connection line names the limit, and an
// identified client is still answered.
func TestHardenPartialFramesTCP(t *testing.T) {
	const budget = 512 << 10
	const conns, frame, sent = 6, 1 << 20, 900 << 10
	h := hardStart(t, &Dispatcher{}, core.Limits{MaxBufferedBytesPerConn: budget})
	ctx := engCtx(t)
	var wg sync.WaitGroup
	var raws []*core.Connection
	t.Cleanup(func() {
		for _, r := range raws {
			r.Close(core.CloseNormal, "")
		}
		wg.Wait()
	})
	reads := make(chan error, conns)
	for range conns {
		raw := h.raw(t, h.anon, endpoint.NetworkTCP)
		raws = append(raws, raw)
		s, err := raw.OpenBi(ctx)
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			b := binary.BigEndian.AppendUint32(make([]byte, 0, 4+sent), frame)
			_, _ = s.Write(append(b, make([]byte, sent)...))
		})
		wg.Go(func() { reads <- hardDrain(s) })
	}
	for range conns {
		engWait(t, reads, "the server to close a connection over its budget")
	}
	for range conns {
		hh := h.waitHandled(t)
		if !errors.Is(hh.err, core.ErrBudgetExceeded) || !strings.Contains(hh.err.Error(), "max_buffered_bytes_per_conn of 524288 bytes") {
			t.Fatalf("Handle returned %v, want the budget error", hh.err)
		}
		if used := hh.conn.Budget().Used(); used != 0 {
			t.Fatalf("%d bytes still reserved after the connection ended", used)
		}
	}
	if out, err := h.dial(t, h.alice, endpoint.NetworkTCP).Call(ctx, "t/echo", "hi"); err != nil || string(out) != `"hi"` {
		t.Fatalf("alice after the attack: %s, %v", out, err)
	}
	hardWaitFor(t, "the connection lines", func() bool {
		return len(h.srv.Logs.Lines("msg=connection", "outcome=error", "max_buffered_bytes_per_conn")) == conns
	})
}

// Limits.MaxAnonymousFrameBytes: a connection without an identity may send a frame of
// exactly the cap, not one byte more; an identified connection may.
func TestHardenAnonymousFrameCap(t *testing.T) {
	const capBytes = int(core.DefaultMaxAnonymousFrameBytes)
	hardEach(t, func(t *testing.T, n endpoint.Network) {
		h := hardStart(t, &Dispatcher{}, core.Limits{})
		anon := hardNewRawConn(t, h, h.anon, n)
		frame, k := hardLenFrame(t, "at-cap", capBytes)
		hardWantLen(t, anon.send(frame), "at-cap", k)

		alice := hardNewRawConn(t, h, h.alice, n)
		frame, k = hardLenFrame(t, "over", capBytes+1)
		hardWantLen(t, alice.send(frame), "over", k)

		hardWantRefused(t, h, n, anon.send(frame), ErrFrameInvalid, "exceeds the limit of 1048576 bytes")
	})
}

// The connection's budget holds a frame of exactly its size (on a single-stream
// connection, its size less the stream's read buffer, which the budget holds too),
// again and again on one connection (a request's bytes are released before its answer
// goes out), and not one byte more.
func TestHardenConnBudgetEdge(t *testing.T) {
	const budget = 256 << 10
	hardEach(t, func(t *testing.T, n endpoint.Network) {
		h := hardStart(t, &Dispatcher{}, core.Limits{MaxBufferedBytesPerConn: budget})
		r := hardNewRawConn(t, h, h.alice, n)
		edge := budget
		if n == endpoint.NetworkTCP {
			edge -= frameReadBuffer
		}
		for i := range 3 {
			id := fmt.Sprintf("at-budget-%d", i)
			frame, k := hardLenFrame(t, id, edge)
			hardWantLen(t, r.send(frame), id, k)
		}
		frame, _ := hardLenFrame(t, "over", edge+1)
		hardWantRefused(t, h, n, r.send(frame), core.ErrBudgetExceeded, "max_buffered_bytes_per_conn of 262144 bytes")
	})
}

// A frame length above the cap is refused before anything is read or reserved.
func TestHardenOversizedLength(t *testing.T) {
	hardEach(t, func(t *testing.T, n endpoint.Network) {
		h := hardStart(t, &Dispatcher{}, core.Limits{})
		r := hardNewRawConn(t, h, h.anon, n)
		s := r.send(binary.BigEndian.AppendUint32(nil, 48<<20))
		hardWantRefused(t, h, n, s, ErrFrameInvalid, "frame length 50331648 exceeds the limit of 1048576 bytes")
	})
}

// hardWhoami calls t/whoami with token (none when nil).
func hardWhoami(ctx context.Context, c *Conn, token []byte) (string, error) {
	var opts []CallOption
	if token != nil {
		opts = append(opts, WithAuthToken(token))
	}
	out, err := c.Call(ctx, "t/whoami", nil, opts...)
	if err != nil {
		return "", err
	}
	var id string
	err = json.Unmarshal(out, &id)
	return id, err
}

// Limits.MaxAuthAttempts: that many auth_tokens that do not resolve are answered
// (with the connection identity, call.md §2.3) and logged as auth failures, without
// the token; the next token, right or wrong, closes the connection
// (core.CloseAuthRequired, "too many authentication attempts").
func TestHardenAuthAttempts(t *testing.T) {
	hardEach(t, func(t *testing.T, n endpoint.Network) {
		h := hardStart(t, &Dispatcher{}, core.Limits{})
		ctx := engCtx(t)
		c := h.dial(t, h.anon, n)
		prefix := string(h.key.Raw[:core.APIKeyPrefixLen])
		if id, err := hardWhoami(ctx, c, h.key.Raw); err != nil || id != prefix {
			t.Fatalf("the right key: %q, %v", id, err)
		}
		bad := []byte("alk_badXsekrit-token-text")
		for i := range core.DefaultMaxAuthAttempts {
			if id, err := hardWhoami(ctx, c, bad); err != nil || id != "" {
				t.Fatalf("wrong token %d: %q, %v (want the anonymous connection identity)", i, id, err)
			}
		}
		_, err := hardWhoami(ctx, c, h.key.Raw)
		engWantErr(t, err, CodeInternal, "connection closed")
		engWait(t, c.Done(), "the connection to close")
		hh := h.waitHandled(t)
		if !errors.Is(hh.err, core.ErrAuthRequired) || !errors.Is(hh.err, core.ErrTooManyAuthAttempts) {
			t.Fatalf("Handle returned %v", hh.err)
		}
		if n == endpoint.NetworkQUIC {
			ce, ok := errors.AsType[*core.CloseError](c.Err())
			if !ok || ce.Code != core.CloseAuthRequired || ce.Reason != "too many authentication attempts" {
				t.Fatalf("client saw %v, want close code %d", c.Err(), core.CloseAuthRequired)
			}
		}
		lines := h.srv.Logs.Lines(`msg="auth failure"`, "remote_ip=127.0.0.1", "alpn=alknet/call", "peer=alk_badX", `reason="invalid auth_token"`)
		if len(lines) != core.DefaultMaxAuthAttempts {
			t.Fatalf("want %d auth failure lines, logs:\n%s", core.DefaultMaxAuthAttempts, h.srv.Logs)
		}
		hardWaitFor(t, "the auth_failed connection line", func() bool {
			return len(h.srv.Logs.Lines("msg=connection", "outcome=auth_failed")) == 1
		})
		if logs := h.srv.Logs.String(); strings.Contains(logs, "sekrit") || strings.Contains(logs, string(h.key.Raw)) {
			t.Fatalf("a token was logged:\n%s", logs)
		}
	})
}

// The limit and one past it, with a configured MaxAuthAttempts; a negative one has
// no limit.
func TestHardenAuthAttemptsEdge(t *testing.T) {
	bad := []byte("not-a-token")
	for _, tc := range []struct {
		name   string
		max    int
		fails  int
		closes bool
	}{
		{"below the limit", 2, 1, false},
		{"at the limit", 2, 2, true},
		{"no limit", -1, 20, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := hardStart(t, &Dispatcher{}, core.Limits{MaxAuthAttempts: tc.max})
			ctx := engCtx(t)
			c := h.dial(t, h.alice, endpoint.NetworkQUIC)
			for i := range tc.fails {
				if id, err := hardWhoami(ctx, c, bad); err != nil || id != "alice" {
					t.Fatalf("wrong token %d: %q, %v (want the connection identity)", i, id, err)
				}
			}
			id, err := hardWhoami(ctx, c, h.key.Raw)
			if tc.closes {
				engWantErr(t, err, CodeInternal, "connection closed")
				if h.srv.Logs.Lines(`msg="auth failure"`, "peer=-", `reason="invalid auth_token"`) == nil {
					t.Fatalf("no auth failure line for a token that is not an API key:\n%s", h.srv.Logs)
				}
				return
			}
			if err != nil || id != string(h.key.Raw[:core.APIKeyPrefixLen]) {
				t.Fatalf("the right key after %d failures: %q, %v", tc.fails, id, err)
			}
		})
	}
}

// A peer disabled by a reload loses its open connections (core.CloseAuthRequired,
// "credential revoked"), with an auth failure line; a reload that keeps it does not.
func TestHardenRevocation(t *testing.T) {
	hardEach(t, func(t *testing.T, n endpoint.Network) {
		h := hardStart(t, &Dispatcher{}, core.Limits{})
		ctx := engCtx(t)
		c := h.dial(t, h.alice, n)
		anon := h.dial(t, h.anon, n)
		if id, err := hardWhoami(ctx, c, nil); err != nil || id != "alice" {
			t.Fatalf("whoami: %q, %v", id, err)
		}
		if _, err := hardWhoami(ctx, anon, nil); err != nil {
			t.Fatal(err)
		}
		keep := h.cfg.Clone()
		keep.Limits.MaxAuthAttempts = 3
		if err := h.srv.Store.Reload(keep); err != nil {
			t.Fatal(err)
		}
		if id, err := hardWhoami(ctx, c, nil); err != nil || id != "alice" {
			t.Fatalf("whoami after a reload that keeps alice: %q, %v", id, err)
		}
		revoke := keep.Clone()
		revoke.Auth.Peers[0].Enabled = false
		if err := h.srv.Store.Reload(revoke); err != nil {
			t.Fatal(err)
		}
		engWait(t, c.Done(), "the revoked connection to close")
		hh := h.waitHandled(t)
		if !errors.Is(hh.err, core.ErrAuthRequired) || !strings.Contains(hh.err.Error(), "credential revoked") {
			t.Fatalf("Handle returned %v", hh.err)
		}
		if n == endpoint.NetworkQUIC {
			ce, ok := errors.AsType[*core.CloseError](c.Err())
			if !ok || ce.Code != core.CloseAuthRequired || ce.Reason != "credential revoked" {
				t.Fatalf("client saw %v, want close code %d \"credential revoked\"", c.Err(), core.CloseAuthRequired)
			}
		}
		hardWaitFor(t, "the auth failure line", func() bool {
			return len(h.srv.Logs.Lines(`msg="auth failure"`, "peer=alice", "credential revoked")) == 1
		})
		// The anonymous connection had nothing to revoke.
		if _, err := hardWhoami(ctx, anon, nil); err != nil {
			t.Fatalf("anonymous connection after the reload: %v", err)
		}
	})
}

// Limits.IdleTimeout: an anonymous connection that does nothing is closed and its slot
// freed.
func TestHardenIdleAnonymousClosed(t *testing.T) {
	hardEach(t, func(t *testing.T, n endpoint.Network) {
		h := hardStart(t, &Dispatcher{}, core.Limits{IdleTimeout: 150 * time.Millisecond})
		c := h.dial(t, h.anon, n)
		if _, err := c.Call(engCtx(t), "t/echo", 1); err != nil {
			t.Fatal(err)
		}
		engWait(t, c.Done(), "the idle connection to close")
		hardWaitFor(t, "the slot to be freed", func() bool { return h.srv.Endpoint.Stats().Connections == 0 })
		if len(h.srv.Logs.Lines("msg=connection", "outcome=idle_timeout")) != 1 {
			t.Fatalf("no idle_timeout line:\n%s", h.srv.Logs)
		}
	})
}

// A quiet connection is not idle while a request or a subscription of its runs, or a
// call this side made to it, nor at all when it has an identity. The clock is a
// second anonymous connection opened after them: once the idle timeout has closed it,
// the others have been quiet for longer than the timeout.
func TestHardenIdleBusyKeepsConnection(t *testing.T) {
	hardEach(t, func(t *testing.T, n endpoint.Network) {
		started := make(chan string, 3)
		release := make(chan struct{})
		wait := func(name string) Handler {
			return func(ctx context.Context, _ *OpContext, _ json.RawMessage) (json.RawMessage, error) {
				started <- name
				select {
				case <-release:
					return json.Marshal(name + " done")
				case <-ctx.Done():
					return nil, ctx.Err()
				}
			}
		}
		reg := hardRegistry(t,
			engQuery("t/slow", wait("slow")),
			engSub("t/quiet", func(ctx context.Context, _ *OpContext, _ json.RawMessage, emit func(json.RawMessage) error) error {
				started <- "quiet"
				select {
				case <-release:
					return emit(json.RawMessage(`"tick"`))
				case <-ctx.Done():
					return ctx.Err()
				}
			}),
		)
		h := hardStart(t, &Dispatcher{Registry: reg}, core.Limits{IdleTimeout: 200 * time.Millisecond})
		ctx := engCtx(t)
		alice := h.dial(t, h.alice, n)
		if _, err := alice.Call(ctx, "t/echo", 1); err != nil {
			t.Fatal(err)
		}

		// An anonymous client running a query and a subscription on the server.
		busy := h.dial(t, h.anon, n)
		slow := engGo(ctx, busy, "t/slow", nil)
		sub, err := busy.Subscribe(ctx, "t/quiet", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		// An anonymous client the server is calling.
		callee := h.dialWith(t, &Dispatcher{Registry: engRegistry(t, engQuery("c/slow", wait("callee")))}, h.anon, n)
		if _, err := callee.Call(ctx, "t/echo", 1); err != nil {
			t.Fatal(err)
		}
		back := engGo(ctx, h.serverConnOf(t, callee), "c/slow", nil)
		for range 3 {
			engWait(t, started, "the handlers to start")
		}

		clock := h.dial(t, h.anon, n)
		if _, err := clock.Call(ctx, "t/echo", 1); err != nil {
			t.Fatal(err)
		}
		engWait(t, clock.Done(), "the idle clock connection to close")

		close(release)
		if r := engWait(t, slow, "the slow query"); r.err != nil || string(r.out) != `"slow done"` {
			t.Fatalf("slow query: %s, %v", r.out, r.err)
		}
		if ev, err := sub.Next(ctx); err != nil || string(ev) != `"tick"` {
			t.Fatalf("quiet subscription: %s, %v", ev, err)
		}
		if r := engWait(t, back, "the server's call"); r.err != nil || string(r.out) != `"callee done"` {
			t.Fatalf("the server's call to an anonymous client: %s, %v", r.out, r.err)
		}
		if id, err := hardWhoami(ctx, alice, nil); err != nil || id != "alice" {
			t.Fatalf("identified connection after a quiet spell: %q, %v", id, err)
		}
		// Their work done, the anonymous connections are idle again.
		sub.Close()
		engWait(t, busy.Done(), "the busy connection to close once idle")
		engWait(t, callee.Done(), "the callee's connection to close once idle")
		hardWaitFor(t, "only alice's slot to be held", func() bool { return h.srv.Endpoint.Stats().Connections == 1 })
	})
}

// Protocol errors make Handle return an error, so the connection line says
// outcome=error with the reason.
func TestHardenProtocolErrorOutcome(t *testing.T) {
	hardEach(t, func(t *testing.T, n endpoint.Network) {
		h := hardStart(t, &Dispatcher{}, core.Limits{})
		r := hardNewRawConn(t, h, h.anon, n)
		s := r.send([]byte{0, 0, 0, 0})
		engWait(t, s.done, "the server to drop the stream")
		if n == endpoint.NetworkQUIC {
			h.serverConnAt(t, r.conn.LocalAddr()).Close()
		}
		hh := h.waitHandled(t)
		if !errors.Is(hh.err, ErrFrameInvalid) {
			t.Fatalf("Handle returned %v, want ErrFrameInvalid", hh.err)
		}
		hardWaitFor(t, "the connection line", func() bool {
			return len(h.srv.Logs.Lines("msg=connection", "outcome=error", "zero-length frame")) == 1
		})
	})
}

// An operation name longer than MaxNameLen is refused without being echoed; an
// unknown name of a legal length is echoed (call.md §5.5).
func TestHardenLongOperationName(t *testing.T) {
	engModes(t, func(t *testing.T, mode string) {
		r := engNewRaw(t, mode, &Dispatcher{}, nil)
		long := "x/" + strings.Repeat("y", 64<<10)
		r.send(engRequest(t, "long", long, nil))
		env := r.wire.waitType(t, fromServer, "long", EvError)
		ce, err := ParseError(env)
		if err != nil {
			t.Fatal(err)
		}
		if ce.Code != CodeInvalidInput || len(env.Payload) > 256 || strings.Contains(ce.Message, "yyyy") {
			t.Fatalf("answer %s %.200q (%d bytes)", ce.Code, ce.Message, len(env.Payload))
		}
		legal := "x/" + strings.Repeat("z", MaxNameLen-2)
		r.send(engRequest(t, "legal", legal, nil))
		ce, _ = ParseError(r.wire.waitType(t, fromServer, "legal", EvError))
		if ce.Code != CodeNotFound || ce.Message != "operation not found: "+legal {
			t.Fatalf("answer %s %.300q", ce.Code, ce.Message)
		}
	})
	_, ce := NewRegistry().Invoke(t.Context(), "x/"+strings.Repeat("y", 1<<20), nil, nil)
	if ce == nil || ce.Code != CodeNotFound || len(ce.Message) > 128 {
		t.Fatalf("Invoke of a long name: %.200v", ce)
	}
}

// An envelope whose id is not valid UTF-8 (raw bytes or a lone surrogate escape) is
// invalid: answering it would rewrite the id to U+FFFD.
func TestHardenInvalidUTF8ID(t *testing.T) {
	for _, id := range []string{"\"\xff\xfe\"", `"a\ud800"`, `"\udc00b"`} {
		body := `{"type":"call.requested","id":` + id + `,"payload":{"operationId":"/services/list"}}`
		if _, err := DecodeEnvelope([]byte(body)); !errors.Is(err, ErrEnvelopeInvalid) {
			t.Fatalf("DecodeEnvelope(%q) = %v, want ErrEnvelopeInvalid", body, err)
		}
		for _, mode := range []string{modeQUIC, modeTCP} {
			t.Run(mode, func(t *testing.T) {
				r := engNewRaw(t, mode, &Dispatcher{}, nil)
				s := r.sendJSON(body)
				engWait(t, s.done, "the server to drop the stream")
				if envs := s.envs(); len(envs) != 0 {
					t.Fatalf("the server answered: %v", envs)
				}
			})
		}
	}
	// A valid pair and a literal U+FFFD stay as they are.
	for _, id := range []string{`"\ud83d\ude00"`, "\"\uFFFD\"", "\"\xef\xbf\xbd\""} {
		env, err := DecodeEnvelope([]byte(`{"type":"t","id":` + id + `,"payload":{}}`))
		if err != nil || !bytes.ContainsAny([]byte(env.ID), "\U0001F600\uFFFD") {
			t.Fatalf("DecodeEnvelope with id %s: %q, %v", id, env.ID, err)
		}
	}
}

func TestExactString(t *testing.T) {
	for tok, want := range map[string]bool{
		`"plain"`:              true,
		`"\u00e9"`:             true,
		"\"\u00e9\"":           true,
		`"\ud83d\ude00"`:       true,
		`"\uDBFF\uDFFF"`:       true,
		`"\\ud800"`:            true, // an escaped backslash, then text
		`"a\"\\\/\b\f\n\r\t"`:  true,
		`"\ud83d"`:             false,
		`"\ud83d\u0041"`:       false,
		`"\ud83dx\ude00"`:      false,
		`"\\\ud800"`:           false,
		`"\uDC00"`:             false,
		`"x\udfff"`:            false,
		"\"\xff\"":             false,
		"\"\xed\xa0\x80\"":     false, // a surrogate encoded in UTF-8
		`"\ud800\ud800\udc00"`: false,
	} {
		if got := exactString([]byte(tok)); got != want {
			t.Errorf("exactString(%s) = %v, want %v", tok, got, want)
		}
	}
}
