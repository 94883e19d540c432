package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/quic-go/quic-go"
	gossh "golang.org/x/crypto/ssh"

	"github.com/alknet/alknet/call"
	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/core/endpoint"
	"github.com/alknet/alknet/core/tlsconf"
	alkhttp "github.com/alknet/alknet/http"
	alkssh "github.com/alknet/alknet/ssh"
)

// The soak test's bounds. The load runs for soakDuration (well inside the 60 s);
// the live heap (what the last garbage collection found reachable), sampled every
// soakSampleEvery, must stay under soakHeapBound: the node's memory budget in this
// configuration is 64 MiB for the whole node, 32 MiB per address, so attackers from one
// address can make it hold at most 32 MiB of their input, and the rest is the
// well-behaved load and the test's own clients. The live heap, not the heap's objects,
// is what the budgets bound: the objects include garbage not yet collected, which on a
// machine busy with other work reached 125 MiB while the live heap stayed small.
// Measured: a 30 MiB peak of objects; before the budgets the same run reached 538 MiB.
const (
	soakDuration    = 20 * time.Second
	soakSampleEvery = 50 * time.Millisecond
	soakHeapBound   = 128 << 20
	// soakAttacker is the attackers' source address: per-address limits keep them
	// apart from the well-behaved clients on 127.0.0.1, as on a real network.
	soakAttacker = "127.0.0.2"
	// soakIdle is the node's idle timeout in this test.
	soakIdle = 3 * time.Second
)

// soakConfig is the node's configuration: small budgets and a short idle timeout so that
// the attacks meet them within the test, a peer (alice: call with an identity, SSH exec
// and forwards to the echo server) and an API key (HTTP, WebSocket).
func soakConfig(aliceFP, apiKeyTOML string, echoPort int, extra string) string {
	return fmt.Sprintf(`[limits]
max_connections = 400
max_connections_per_ip = 40
idle_timeout = %q
max_buffered_bytes = 67108864
max_buffered_bytes_per_ip = 33554432
max_buffered_bytes_per_conn = 8388608
max_anonymous_frame_bytes = 1048576
max_auth_attempts = 5

[ssh]
exec_allow = ["echo"]
[ssh.forwarding]
default = "deny"
[[ssh.forwarding.rules]]
target = "ports:127.0.0.1:%d-%d"
action = "allow"
principals = ["alice"]

`, soakIdle.String(), echoPort, echoPort) + peerTOML("alice", aliceFP, "demo", "ssh:exec") + apiKeyTOML + extra
}

// soakStats counts what the well-behaved clients saw. Every failure is recorded with its
// text; the test fails if there is any.
type soakStats struct {
	mu       sync.Mutex
	failures []string
	ok       map[string]*atomic.Int64
}

func newSoakStats(kinds ...string) *soakStats {
	s := &soakStats{ok: make(map[string]*atomic.Int64)}
	for _, k := range kinds {
		s.ok[k] = new(atomic.Int64)
	}
	return s
}

func (s *soakStats) fail(kind string, format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.failures) < 50 {
		s.failures = append(s.failures, kind+": "+fmt.Sprintf(format, args...))
	}
}

func (s *soakStats) success(kind string) { s.ok[kind].Add(1) }

// soakLoop runs f until ctx ends, counting rounds.
func soakLoop(ctx context.Context, wg *sync.WaitGroup, f func(ctx context.Context, round int)) {
	wg.Go(func() {
		for round := 0; ctx.Err() == nil; round++ {
			f(ctx, round)
		}
	})
}

// TestSoak runs a node under mixed well-behaved load (call unary and subscriptions over
// QUIC and TCP+TLS, HTTP /call and SSE, WebSocket, SSH exec and forwards), with clients
// killed mid-stream, two reloads (one invalid), and the four attacks of the hardening
// issue running throughout from another address: partial oversized call frames on QUIC
// and TCP+TLS, idle connections, wrong tokens on one connection (call and HTTP), and
// SSH forwards to names no rule allows. Afterwards every well-behaved request got its
// right answer, no well-behaved client was refused, the heap stayed under
// soakHeapBound, and the goroutines return to where they were.
func TestSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("soak test: skipped with -short")
	}
	echoAddr := echoServer(t, "127.0.0.1:0")
	baseline := runtime.NumGoroutine()
	_, echoPortStr, _ := net.SplitHostPort(echoAddr)
	echoPort, _ := strconv.Atoi(echoPortStr)
	state, aliceFP := newClientState(t)
	token, keyTOML, _ := apiKey(t, "demo")
	configPath := filepath.Join(t.TempDir(), "alknet.toml")
	writeFile(t, configPath, soakConfig(aliceFP, keyTOML, echoPort, ""))
	n := startServe(t, "--config", configPath, "--log-level", "warn")

	aliceKey, err := tlsconf.LoadKey(filepath.Join(state, keyFileName))
	if err != nil {
		t.Fatal(err)
	}
	aliceCert, err := tlsconf.Certificate(aliceKey)
	if err != nil {
		t.Fatal(err)
	}

	stats := newSoakStats("call", "subscribe", "http", "sse", "ws", "ssh-exec", "ssh-forward", "killed",
		"attack-memory", "attack-idle", "attack-auth", "attack-ssh")
	ctx, stop := context.WithTimeout(t.Context(), soakDuration)
	defer stop()
	var wg sync.WaitGroup

	// Heap sampling.
	var heapMax atomic.Uint64
	wg.Go(func() {
		sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
		tick := time.NewTicker(soakSampleEvery)
		defer tick.Stop()
		for {
			metrics.Read(sample)
			if v := sample[0].Value.Uint64(); v > heapMax.Load() {
				heapMax.Store(v)
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	})

	// Well-behaved clients.
	for _, network := range []endpoint.Network{endpoint.NetworkQUIC, endpoint.NetworkTCP} {
		for w := range 2 {
			soakLoop(ctx, &wg, func(ctx context.Context, round int) {
				soakCallClient(ctx, stats, n, network, aliceCert, w*1000+round)
			})
		}
	}
	for w := range 2 {
		soakLoop(ctx, &wg, func(ctx context.Context, round int) { soakHTTPClient(ctx, stats, n, token, w*1000+round) })
	}
	soakLoop(ctx, &wg, func(ctx context.Context, round int) { soakWebSocketClient(ctx, stats, n, token, round) })
	soakLoop(ctx, &wg, func(ctx context.Context, round int) {
		soakSSHClient(ctx, stats, n, sshSigner(t, state), echoAddr, round)
	})

	// Attackers.
	for _, network := range []endpoint.Network{endpoint.NetworkQUIC, endpoint.NetworkTCP} {
		soakLoop(ctx, &wg, func(ctx context.Context, _ int) { soakMemoryAttack(ctx, stats, n, network) })
		soakLoop(ctx, &wg, func(ctx context.Context, _ int) { soakCallAuthAttack(ctx, stats, n, network) })
	}
	for range 8 {
		soakLoop(ctx, &wg, func(ctx context.Context, _ int) { soakIdleAttack(ctx, stats, n) })
	}
	soakLoop(ctx, &wg, func(ctx context.Context, _ int) { soakHTTPAuthAttack(ctx, stats, n) })
	soakLoop(ctx, &wg, func(ctx context.Context, _ int) {
		soakSSHProbe(ctx, stats, n, sshSigner(t, state))
	})

	// Two reloads: a valid one (a second API key) and an invalid one, which leaves the
	// configuration as it was.
	wg.Go(func() {
		select {
		case <-ctx.Done():
			return
		case <-time.After(soakDuration / 3):
		}
		_, key2, _ := apiKey(t, "demo")
		writeFile(t, configPath, soakConfig(aliceFP, keyTOML, echoPort, key2))
		if err := n.triggerReload(); err != nil {
			stats.fail("reload", "valid reload: %v", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(soakDuration / 3):
		}
		writeFile(t, configPath, "[limits]\nmax_connections = \"many\"\n")
		if err := n.triggerReload(); err == nil {
			stats.fail("reload", "invalid reload accepted")
		}
	})

	wg.Wait()

	for _, f := range stats.failures {
		t.Error(f)
	}
	for kind, c := range stats.ok {
		t.Logf("%s: %d", kind, c.Load())
		if c.Load() == 0 {
			t.Errorf("%s: nothing completed", kind)
		}
	}
	if h := heapMax.Load(); h > soakHeapBound {
		t.Errorf("heap reached %d MiB, bound %d MiB", h>>20, soakHeapBound>>20)
	} else {
		t.Logf("heap peak %d MiB (bound %d MiB)", h>>20, soakHeapBound>>20)
	}
	logs := n.stderr.String()
	for _, want := range []string{`msg="auth failure" remote_ip=127.0.0.1 alpn=alknet/call`, `msg="auth failure" remote_ip=127.0.0.2 alpn=http/1.1`} {
		if !strings.Contains(logs, want) {
			t.Errorf("no %q line in the node's log", want)
		}
	}
	if strings.Contains(logs, token) || strings.Contains(logs, "secret-db") {
		t.Error("the node logged a token or a forwarding destination")
	}
	n.stop(t)
	soakWaitGoroutines(t, baseline)
}

// soakWaitGoroutines waits until the goroutines are back at the baseline (the node and
// every client are gone); goleak then checks the rest at the end of the package.
func soakWaitGoroutines(t *testing.T, baseline int) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for runtime.NumGoroutine() > baseline {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines, baseline %d:\n%s", runtime.NumGoroutine(), baseline, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// soakDialOptions pins the node; cert (may be nil) is the client's certificate.
func soakDialOptions(n *node, network endpoint.Network, cert *tls.Certificate) endpoint.DialOptions {
	return endpoint.DialOptions{Network: network, TLS: tlsconf.ClientOptions{Pin: n.fp, Certificate: cert}}
}

// soakCallClient is one call connection with an identity: unary calls, a subscription
// read to its end, and one killed mid-stream every few rounds.
func soakCallClient(ctx context.Context, stats *soakStats, n *node, network endpoint.Network, cert tls.Certificate, round int) {
	kind := "call"
	conn, err := endpoint.Dial(ctx, n.quic, call.ALPN, soakDialOptions(n, network, &cert))
	if err != nil {
		if ctx.Err() == nil {
			stats.fail(kind, "%s dial: %v", network, err)
		}
		return
	}
	defer conn.Close(core.CloseNormal, "")
	c, err := (&call.Dispatcher{}).Serve(ctx, conn, nil)
	if err != nil {
		stats.fail(kind, "%s serve: %v", network, err)
		return
	}
	defer c.Close()
	for i := range 20 {
		in := fmt.Sprintf(`{"round":%d,"i":%d}`, round, i)
		out, err := c.Call(ctx, "demo/echo", json.RawMessage(in))
		if ctx.Err() != nil {
			return
		}
		if err != nil || string(out) != in {
			stats.fail(kind, "%s demo/echo: %s, %v", network, out, err)
			return
		}
		stats.success(kind)
	}
	sub, err := c.Subscribe(ctx, "demo/ticks", map[string]int{"count": 5, "interval_ms": 1})
	if err != nil {
		if ctx.Err() == nil {
			stats.fail("subscribe", "%s: %v", network, err)
		}
		return
	}
	for want := 1; want <= 5; want++ {
		ev, err := sub.Next(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil || string(ev) != fmt.Sprintf(`{"n":%d}`, want) {
			stats.fail("subscribe", "%s event %d: %s, %v", network, want, ev, err)
			return
		}
	}
	if _, err := sub.Next(ctx); !errors.Is(err, io.EOF) && ctx.Err() == nil {
		stats.fail("subscribe", "%s after the last event: %v, want io.EOF", network, err)
		return
	}
	stats.success("subscribe")
	if round%3 == 0 {
		// Killed mid-stream: a long subscription, the connection dropped after two events.
		sub, err := c.Subscribe(ctx, "demo/ticks", map[string]int{"count": 10000, "interval_ms": 1})
		if err == nil {
			_, err = sub.Next(ctx)
		}
		if err == nil {
			_, err = sub.Next(ctx)
		}
		if err != nil && ctx.Err() == nil {
			stats.fail("subscribe", "%s long subscription: %v", network, err)
			return
		}
		conn.Close(core.CloseNormal, "killed")
		stats.success("killed")
	}
}

// soakHTTPTransport is an HTTP client for the node's TCP+TLS listener (h2 and
// HTTP/1.1), closing its idle connections before the node's idle timeout would.
func soakHTTPTransport(n *node, h2 bool) *http.Transport {
	protos := []string{"http/1.1"}
	if h2 {
		protos = []string{"h2", "http/1.1"}
	}
	cfg, err := tlsconf.ClientConfig(tlsconf.ClientOptions{Pin: n.fp, NextProtos: protos})
	if err != nil {
		panic(err) // a pin from the node's own output is always valid
	}
	return &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: h2, IdleConnTimeout: soakIdle / 4}
}

// soakHTTPClient makes /call requests and reads an SSE subscription, sometimes
// abandoning it mid-stream.
func soakHTTPClient(ctx context.Context, stats *soakStats, n *node, token string, round int) {
	tr := soakHTTPTransport(n, round%2 == 0)
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: waitTimeout}
	base := "https://" + n.tcp
	for i := range 10 {
		body := fmt.Sprintf(`{"operation":"demo/echo","input":{"round":%d,"i":%d}}`, round, i)
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/call", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			stats.fail("http", "/call: %v", err)
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		want := fmt.Sprintf(`"result":"ok","output":{"round":%d,"i":%d}}`, round, i)
		if err != nil || resp.StatusCode != http.StatusOK || !bytes.Contains(b, []byte(want)) {
			if ctx.Err() == nil {
				stats.fail("http", "/call: %d %s %v", resp.StatusCode, b, err)
			}
			return
		}
		stats.success("http")
	}
	count := 5
	if round%3 == 0 {
		count = 10000 // abandoned after two events
	}
	body := fmt.Sprintf(`{"operation":"demo/ticks","input":{"count":%d,"interval_ms":1}}`, count)
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req, _ := http.NewRequestWithContext(sctx, http.MethodPost, base+"/subscribe", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if ctx.Err() != nil {
		return
	}
	if err != nil || resp.StatusCode != http.StatusOK {
		stats.fail("sse", "/subscribe: %v %v", resp, err)
		return
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	got := 0
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, ":") {
			continue
		}
		if want := fmt.Sprintf(`data: {"n":%d}`, got+1); line != want {
			if ctx.Err() == nil {
				stats.fail("sse", "line %q, want %q", line, want)
			}
			return
		}
		got++
		if count > 5 && got == 2 {
			cancel()
			stats.success("killed")
			return
		}
	}
	if ctx.Err() != nil {
		return
	}
	if got != count {
		stats.fail("sse", "%d events, want %d (%v)", got, count, sc.Err())
		return
	}
	stats.success("sse")
}

// soakWebSocketClient calls demo/echo over the WebSocket /alknet/call and sometimes
// drops the socket with a subscription running.
func soakWebSocketClient(ctx context.Context, stats *soakStats, n *node, token string, round int) {
	tr := soakHTTPTransport(n, false)
	defer tr.CloseIdleConnections()
	ws, _, err := websocket.Dial(ctx, "wss://"+n.tcp+alkhttp.WebSocketPath, &websocket.DialOptions{
		HTTPClient:   &http.Client{Transport: tr},
		Subprotocols: []string{alkhttp.WebSocketSubprotocol, alkhttp.WebSocketBearerPrefix + token},
	})
	if err != nil {
		if ctx.Err() == nil {
			stats.fail("ws", "dial: %v", err)
		}
		return
	}
	defer ws.CloseNow()
	for i := range 10 {
		id := strconv.Itoa(i)
		in := fmt.Sprintf(`{"round":%d,"i":%d}`, round, i)
		req, _ := call.NewRequest(id, "/demo/echo", json.RawMessage(in), nil, nil)
		b, _ := call.EncodeEnvelope(req)
		if err := ws.Write(ctx, websocket.MessageBinary, b); err != nil {
			if ctx.Err() == nil {
				stats.fail("ws", "write: %v", err)
			}
			return
		}
		_, data, err := ws.Read(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			stats.fail("ws", "read: %v", err)
			return
		}
		env, err := call.DecodeEnvelope(data)
		if err != nil {
			stats.fail("ws", "envelope: %v", err)
			return
		}
		out, err := call.ParseResponded(env)
		if err != nil || env.ID != id || string(out) != in {
			stats.fail("ws", "answer %s: %s %v", data, out, err)
			return
		}
		stats.success("ws")
	}
	if round%3 == 0 {
		req, _ := call.NewRequest("sub", "/demo/ticks", json.RawMessage(`{"count":10000,"interval_ms":1}`), nil, nil)
		b, _ := call.EncodeEnvelope(req)
		if ws.Write(ctx, websocket.MessageBinary, b) == nil {
			_, _, _ = ws.Read(ctx)
		}
		_ = ws.CloseNow() // killed mid-stream
		stats.success("killed")
		return
	}
	_ = ws.Close(websocket.StatusNormalClosure, "")
}

// soakSSHClient runs a command and forwards to the echo server over alknet/ssh,
// sometimes dropping a forward mid-stream.
func soakSSHClient(ctx context.Context, stats *soakStats, n *node, signer gossh.Signer, echoAddr string, round int) {
	network := endpoint.NetworkQUIC
	if round%2 == 1 {
		network = endpoint.NetworkTCP
	}
	c, err := alkssh.Dial(ctx, n.quic, alkssh.ClientConfig{
		Transport: soakDialOptions(n, network, nil),
		Signer:    signer,
		HostKey:   n.hostKey,
	})
	if err != nil {
		if ctx.Err() == nil {
			stats.fail("ssh-exec", "%s dial: %v", network, err)
		}
		return
	}
	defer c.Close()
	s, err := c.NewSession()
	if err != nil {
		if ctx.Err() == nil {
			stats.fail("ssh-exec", "session: %v", err)
		}
		return
	}
	want := fmt.Sprintf("soak %d\n", round)
	out, err := s.Output(fmt.Sprintf("echo soak %d", round))
	s.Close()
	if ctx.Err() != nil {
		return
	}
	if err != nil || string(out) != want {
		stats.fail("ssh-exec", "echo: %q, %v", out, err)
		return
	}
	stats.success("ssh-exec")
	for i := range 3 {
		fc, err := c.DialContext(ctx, "tcp", echoAddr)
		if err != nil {
			if ctx.Err() == nil {
				stats.fail("ssh-forward", "open: %v", err)
			}
			return
		}
		msg := fmt.Sprintf("forward %d/%d", round, i)
		_ = fc.SetDeadline(time.Now().Add(waitTimeout))
		if _, err := io.WriteString(fc, msg); err != nil {
			fc.Close()
			stats.fail("ssh-forward", "write: %v", err)
			return
		}
		if i == 2 && round%3 == 0 {
			fc.Close() // killed mid-stream
			stats.success("killed")
			continue
		}
		got := make([]byte, len(msg))
		_, err = io.ReadFull(fc, got)
		fc.Close()
		if ctx.Err() != nil {
			return
		}
		if err != nil || string(got) != msg {
			stats.fail("ssh-forward", "echo: %q, %v", got, err)
			return
		}
		stats.success("ssh-forward")
	}
}

// soakAttackerTLS is the attackers' TLS configuration: no client certificate, the node
// pinned.
func soakAttackerTLS(n *node, alpn string) *tls.Config {
	cfg, err := tlsconf.ClientConfig(tlsconf.ClientOptions{Pin: n.fp, NextProtos: []string{alpn}})
	if err != nil {
		panic(err)
	}
	return cfg
}

// soakAttackerDial opens an anonymous connection from soakAttacker: streams is how many
// byte streams the caller wants (QUIC: one per stream; TCP+TLS: the connection itself).
func soakAttackerDial(ctx context.Context, n *node, network endpoint.Network, alpn string) (open func() (io.WriteCloser, error), closeAll func(), err error) {
	if network == endpoint.NetworkTCP {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(soakAttacker)}, Timeout: 5 * time.Second}
		tc, err := (&tls.Dialer{NetDialer: &d, Config: soakAttackerTLS(n, alpn)}).DialContext(ctx, "tcp", n.tcp)
		if err != nil {
			return nil, nil, err
		}
		used := false
		return func() (io.WriteCloser, error) {
			if used {
				return nil, errors.New("one stream")
			}
			used = true
			return tc, nil
		}, func() { tc.Close() }, nil
	}
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(soakAttacker)})
	if err != nil {
		return nil, nil, err
	}
	tr := &quic.Transport{Conn: pc}
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	qc, err := tr.Dial(dctx, net.UDPAddrFromAddrPort(netip.MustParseAddrPort(n.quic)), soakAttackerTLS(n, alpn), &quic.Config{})
	if err != nil {
		tr.Close()
		pc.Close()
		return nil, nil, err
	}
	return func() (io.WriteCloser, error) {
			s, err := qc.OpenStreamSync(ctx)
			if err != nil {
				return nil, err
			}
			return s, nil
		}, func() {
			_ = qc.CloseWithError(0, "")
			tr.Close()
			pc.Close()
		}, nil
}

// soakMemoryAttack is attack 1: an anonymous call connection whose streams announce
// 64 MiB frames and send as much of them as the node takes, and (the variant within the
// anonymous frame cap) 1 MiB frames left one byte short.
func soakMemoryAttack(ctx context.Context, stats *soakStats, n *node, network endpoint.Network) {
	open, closeAll, err := soakAttackerDial(ctx, n, network, call.ALPN)
	if err != nil {
		return // refused by a limit: that is the point
	}
	defer closeAll()
	var wg sync.WaitGroup
	streams := 10
	if network == endpoint.NetworkTCP {
		streams = 1
	}
	chunk := make([]byte, 64<<10)
	for i := range streams {
		s, err := open()
		if err != nil {
			break
		}
		wg.Go(func() {
			announce, send := uint32(64<<20), 48<<20
			if i%2 == 1 {
				announce, send = 1<<20, 1<<20-1
			}
			var prefix [4]byte
			binary.BigEndian.PutUint32(prefix[:], announce)
			if _, err := s.Write(prefix[:]); err != nil {
				return
			}
			for sent := 0; sent < send && ctx.Err() == nil; sent += len(chunk) {
				if d, ok := s.(interface{ SetWriteDeadline(time.Time) error }); ok {
					_ = d.SetWriteDeadline(time.Now().Add(soakIdle))
				}
				if _, err := s.Write(chunk[:min(len(chunk), send-sent)]); err != nil {
					return
				}
			}
		})
	}
	wg.Wait()
	stats.success("attack-memory")
	// Hold what was sent until the node lets go of it or the test ends.
	select {
	case <-ctx.Done():
	case <-time.After(soakIdle):
	}
}

// soakIdleAttack is attack 2: anonymous TCP+TLS connections on alknet/call and
// alknet/echo that never send a byte after the handshake, held until the node closes
// them.
func soakIdleAttack(ctx context.Context, stats *soakStats, n *node) {
	for _, alpn := range []string{call.ALPN, "alknet/echo"} {
		open, closeAll, err := soakAttackerDial(ctx, n, endpoint.NetworkTCP, alpn)
		if err != nil {
			select { // refused by a limit: try again a little later
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		s, _ := open()
		rd := s.(io.Reader)
		closed := make(chan struct{})
		go func() {
			_, _ = io.Copy(io.Discard, rd) // returns when the node closes the connection
			close(closed)
		}()
		select {
		case <-closed:
			stats.success("attack-idle")
		case <-ctx.Done():
		}
		closeAll()
		<-closed
	}
}

// soakCallAuthAttack is attack 3 on alknet/call: wrong auth_tokens on one connection
// until the node closes it. (It comes from 127.0.0.1, as endpoint.Dial picks no source
// address: the attempt limit is per connection, so it does not touch the others.)
func soakCallAuthAttack(ctx context.Context, stats *soakStats, n *node, network endpoint.Network) {
	opts := soakDialOptions(n, network, nil)
	conn, err := endpoint.Dial(ctx, n.quic, call.ALPN, opts)
	if err != nil {
		return
	}
	defer conn.Close(core.CloseNormal, "")
	c, err := (&call.Dispatcher{}).Serve(ctx, conn, nil)
	if err != nil {
		return
	}
	defer c.Close()
	for i := 0; ctx.Err() == nil && i < 100; i++ {
		tok := []byte(fmt.Sprintf("alk_bad%024d", i))
		if _, err := c.Call(ctx, "demo/whoami", nil, call.WithAuthToken(tok)); err != nil {
			var ce *call.CallError
			if !errors.As(err, &ce) { // the connection is gone: closed by the node
				stats.success("attack-auth")
				return
			}
		}
	}
}

// soakHTTPAuthAttack is attack 3 on the gateway: wrong Bearer tokens on one keep-alive
// connection until the node closes it.
func soakHTTPAuthAttack(ctx context.Context, stats *soakStats, n *node) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(soakAttacker)}, Timeout: 5 * time.Second}
	tc, err := (&tls.Dialer{NetDialer: &d, Config: soakAttackerTLS(n, "http/1.1")}).DialContext(ctx, "tcp", n.tcp)
	if err != nil {
		return
	}
	defer tc.Close()
	br := bufio.NewReader(tc)
	for i := 0; ctx.Err() == nil && i < 100; i++ {
		_ = tc.SetDeadline(time.Now().Add(waitTimeout))
		body := `{"operation":"demo/whoami"}`
		fmt.Fprintf(tc, "POST /call HTTP/1.1\r\nHost: node\r\nAuthorization: Bearer alk_bad%024d\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", i, len(body), body)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			stats.success("attack-auth")
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.Close {
			stats.success("attack-auth")
			return
		}
	}
}

// soakSSHProbe is attack 4: a logged-in user asks for forwards to internal names no
// rule allows; each is refused like any denied destination.
func soakSSHProbe(ctx context.Context, stats *soakStats, n *node, signer gossh.Signer) {
	c, err := alkssh.Dial(ctx, n.quic, alkssh.ClientConfig{
		Transport: soakDialOptions(n, endpoint.NetworkQUIC, nil),
		Signer:    signer,
		HostKey:   n.hostKey,
	})
	if err != nil {
		return
	}
	defer c.Close()
	for _, dest := range []string{"secret-db.internal:5432", "localhost:9000"} {
		_, err := c.DialContext(ctx, "tcp", dest)
		var oe *gossh.OpenChannelError
		if ctx.Err() != nil {
			return
		}
		if !errors.As(err, &oe) || oe.Reason != gossh.Prohibited {
			stats.fail("attack-ssh", "forward to a denied destination: %v, want administratively prohibited", err)
			return
		}
	}
	stats.success("attack-ssh")
}
