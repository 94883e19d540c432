package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/core/endpoint"
	"github.com/alknet/alknet/core/tlsconf"
	"github.com/alknet/alknet/msg"
	alksftp "github.com/alknet/alknet/sftp"
)

// metricsTap passes serve's stdout on without its "listen metrics" line, whose
// address it hands over, so that the usual five-line check of startServe holds.
type metricsTap struct {
	w    io.Writer
	addr chan string
}

func (m *metricsTap) Write(p []byte) (int, error) {
	var keep []byte
	for _, line := range bytes.SplitAfter(p, []byte("\n")) {
		if rest, ok := bytes.CutPrefix(line, []byte("listen metrics ")); ok {
			select {
			case m.addr <- string(bytes.TrimSpace(rest)):
			default:
			}
			continue
		}
		keep = append(keep, line...)
	}
	if _, err := m.w.Write(keep); err != nil {
		return 0, err
	}
	return len(p), nil
}

// scrapeMetrics GETs /metrics and parses it with the Prometheus text parser.
func scrapeMetrics(t *testing.T, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/plain")
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("scrape: %s\n%s", resp.Status, b)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// sample returns the sum of the series of name whose labels include labels (pairs of
// name and value): counter and gauge values, histogram sample counts; 0 when none.
func sample(fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	f := fams[name]
	if f == nil {
		return 0
	}
	var sum float64
next:
	for _, m := range f.Metric {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, l := range m.Label {
				if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			sum += m.Counter.GetValue()
		case m.Gauge != nil:
			sum += m.Gauge.GetValue()
		case m.Histogram != nil:
			sum += float64(m.Histogram.GetSampleCount())
		}
	}
	return sum
}

// gitLsRemote asks the node's alknet/git for path's references as the client key of
// state, ends the negotiation at once (a flush) and reads to the end: the operation
// has been counted when the node closes the stream.
func gitLsRemote(t *testing.T, n *node, cert tls.Certificate, path string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	conn, err := endpoint.Dial(ctx, n.quic, "alknet/git", endpoint.DialOptions{TLS: tlsconf.ClientOptions{Pin: n.fp, Certificate: &cert}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(core.CloseNormal, "")
	st, err := conn.OpenBi(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	line := "git-upload-pack " + path + "\x00host=alknet\x00"
	if _, err := fmt.Fprintf(st, "%04x%s0000", len(line)+4, line); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(st)
	if err != nil {
		t.Fatalf("git ls-remote %s: %v", path, err)
	}
	return string(b)
}

// seriesSets returns, for every alknet_ family, the set of its label sets.
func seriesSets(fams map[string]*dto.MetricFamily) map[string]map[string]bool {
	out := map[string]map[string]bool{}
	for name, f := range fams {
		if !strings.HasPrefix(name, "alknet_") {
			continue
		}
		set := map[string]bool{}
		for _, m := range f.Metric {
			var b strings.Builder
			for _, l := range m.Label {
				fmt.Fprintf(&b, "%s=%q,", l.GetName(), l.GetValue())
			}
			set[b.String()] = true
		}
		out[name] = set
	}
	return out
}

// TestServeMetrics runs serve --metrics 127.0.0.1:0, drives HTTP, call, SSH, DNS, git and sftp
// traffic and a reload, and checks the scraped values move; then, after 1,000 requests
// with random paths and random operation names, that no family gained a series and no
// label carries what a client sent.
func TestServeMetrics(t *testing.T) {
	state, fp := newClientState(t)
	addrCh := make(chan string, 1)
	cfg := dnsConfig(t, "[dns]\norigin = \"alk.test\"\nlisten_plain = \"127.0.0.1:0\"\n"+
		"[[sftp.exports]]\nname = \"data\"\nroot = \"srv/data\"\n[git]\nroot = \"repos\"\nengine = \"go-git\"\n"+
		peerTOML("alice", fp, "ssh:exec", "sftp:read:data", "git:read:org/*"))
	if err := os.MkdirAll(filepath.Join(filepath.Dir(cfg), "srv", "data"), 0o755); err != nil {
		t.Fatal(err)
	}
	mustRun(t, "", "git", "init", "--config", cfg, "org/repo")
	key, _, err := tlsconf.LoadOrCreateKey(filepath.Join(state, keyFileName), "test")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tlsconf.Certificate(key)
	if err != nil {
		t.Fatal(err)
	}
	n := startServeWith(t, func(c *cli) { c.stdout = &metricsTap{w: c.stdout, addr: addrCh} }, "--config", cfg, "--metrics", "127.0.0.1:0")
	var maddr string
	select {
	case maddr = <-addrCh:
	default:
		t.Fatal("serve printed no listen metrics line before ready")
	}
	if host, port, err := net.SplitHostPort(maddr); err != nil || host != "127.0.0.1" || port == "0" {
		t.Fatalf("listen metrics %q: want 127.0.0.1 with a bound port", maddr)
	}
	before := scrapeMetrics(t, maddr)
	if _, ok := before["go_goroutines"]; !ok {
		t.Error("no Go runtime metrics")
	}

	// HTTP over h2 on the TCP+TLS listener, pinned to the node.
	tc, err := tlsconf.ClientConfig(tlsconf.ClientOptions{Pin: n.fp})
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{TLSClientConfig: tc, ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	hc := &http.Client{Transport: tr, Timeout: 60 * time.Second}
	do := func(method, path, body string) int {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), method, "https://"+n.tcp+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if c := do(http.MethodGet, "/healthz", ""); c != http.StatusOK {
		t.Fatalf("GET /healthz: %d", c)
	}
	if c := do(http.MethodPost, "/call", `{"operation":"services/list"}`); c != http.StatusOK {
		t.Fatalf("POST /call services/list: %d", c)
	}
	// alknet/call over QUIC.
	if r := runCall(t, n.callArgs(nil, "services/list")...); r.err != nil {
		t.Fatalf("alknet call services/list: %v\n%s", r.err, r.stderr)
	}
	// SSH: a session whose exec is refused (the node runs no commands).
	c := dialSSH(t, n, state)
	if out, _, err := execGo(t, c, "echo hi"); err == nil && strings.Contains(out, "hi") {
		t.Errorf("exec without exec_allow ran: %q", out)
	}
	// DNS on the plain listener.
	q := new(mdns.Msg)
	q.SetQuestion("alk.test.", mdns.TypeSOA)
	dc := &mdns.Client{Net: "udp", Timeout: 30 * time.Second}
	r, _, err := dc.ExchangeContext(t.Context(), q, net.JoinHostPort("127.0.0.1", plainPort(t, n)))
	if err != nil {
		t.Fatalf("dns SOA alk.test.: %v", err)
	}
	rcode := mdns.RcodeToString[r.Rcode]
	// git: references of a repository, and of one that does not exist.
	if out := gitLsRemote(t, n, cert, "/org/repo.git"); strings.Contains(out, "ERR") {
		t.Fatalf("git ls-remote: %q", out)
	}
	if out := gitLsRemote(t, n, cert, "/org/nope-"+fp[8:16]+".git"); !strings.Contains(out, "ERR") {
		t.Fatalf("git ls-remote of a missing repository: %q", out)
	}
	// sftp: a session that lists the export, open while scraped.
	fc, err := alksftp.Dial(t.Context(), n.quic, endpoint.DialOptions{TLS: tlsconf.ClientOptions{Pin: n.fp, Certificate: &cert}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fc.ReadDir("/data"); err != nil {
		t.Fatalf("sftp ls /data: %v", err)
	}
	if g := sample(scrapeMetrics(t, maddr), "alknet_sftp_sessions_active"); g != 1 {
		t.Errorf("alknet_sftp_sessions_active = %v with a session open, want 1", g)
	}
	if err := fc.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return sample(scrapeMetrics(t, maddr), "alknet_sftp_sessions_total") == 1 })
	if err := n.triggerReload(); err != nil {
		t.Fatalf("reload: %v", err)
	}

	random := func() string {
		b := make([]byte, 8)
		_, _ = rand.Read(b)
		return "rnd" + hex.EncodeToString(b)
	}
	// One of each kind first: the series they create exist before the 1,000.
	do(http.MethodGet, "/"+random(), "")
	do(http.MethodPost, "/call", `{"operation":"`+random()+`/x"}`)

	after := scrapeMetrics(t, maddr)
	moved := []struct {
		name   string
		labels []string
		min    float64
	}{
		{"alknet_http_requests_total", []string{"route", "healthz", "class", "2xx"}, 1},
		{"alknet_http_requests_total", []string{"route", "call", "class", "2xx"}, 1},
		{"alknet_http_requests_total", []string{"route", "other", "class", "4xx"}, 1},
		{"alknet_call_operations_total", []string{"operation", "services/list", "code", "OK"}, 2},
		{"alknet_call_operations_total", []string{"operation", "unknown", "code", "NOT_FOUND"}, 1},
		{"alknet_call_operation_duration_seconds", []string{"operation", "services/list"}, 2},
		{"alknet_connections_accepted_total", []string{"transport", "tcp+tls", "alpn", "h2"}, 1},
		{"alknet_connections_accepted_total", []string{"transport", "quic", "alpn", "alknet/call"}, 1},
		{"alknet_connections_accepted_total", []string{"transport", "quic", "alpn", "alknet/ssh"}, 1},
		{"alknet_streams_total", nil, 2},
		{"alknet_ssh_sessions_total", nil, 1},
		{"alknet_ssh_requests_total", []string{"kind", "exec", "outcome", "refused"}, 1},
		{"alknet_dns_responses_total", []string{"transport", "plain", "rcode", rcode}, 1},
		{"alknet_reloads_total", []string{"outcome", "ok"}, 1},
		{"alknet_git_operations_total", []string{"service", "git-upload-pack"}, 2},
		{"alknet_git_operations_total", []string{"service", "git-upload-pack", "outcome", "not_found"}, 1},
		{"alknet_git_bytes_total", []string{"direction", "out"}, 1},
		{"alknet_sftp_bytes_total", []string{"direction", "in"}, 1},
		{"alknet_connections_accepted_total", []string{"alpn", "alknet/sftp"}, 1},
	}
	for _, m := range moved {
		got, was := sample(after, m.name, m.labels...), sample(before, m.name, m.labels...)
		if got-was < m.min {
			t.Errorf("%s%v moved %v -> %v, want at least +%v", m.name, m.labels, was, got, m.min)
		}
	}
	if g := sample(after, "alknet_ssh_sessions_active"); g != 1 {
		t.Errorf("alknet_ssh_sessions_active = %v, want 1 (the session is open)", g)
	}

	// 1,000 requests with random paths and random operation names.
	const rounds = 500
	for range rounds {
		do(http.MethodGet, "/"+random()+"/"+random(), "")
		do(http.MethodPost, "/call", `{"operation":"`+random()+`/`+random()+`"}`)
	}
	final := scrapeMetrics(t, maddr)
	if d := sample(final, "alknet_http_requests_total", "route", "other", "class", "4xx") - sample(after, "alknet_http_requests_total", "route", "other", "class", "4xx"); d != rounds {
		t.Errorf("other 4xx moved by %v, want %d", d, rounds)
	}
	if d := sample(final, "alknet_call_operations_total", "operation", "unknown", "code", "NOT_FOUND") - sample(after, "alknet_call_operations_total", "operation", "unknown", "code", "NOT_FOUND"); d != rounds {
		t.Errorf("unknown NOT_FOUND moved by %v, want %d", d, rounds)
	}
	was, now := seriesSets(after), seriesSets(final)
	for name, set := range now {
		if len(set) != len(was[name]) {
			t.Errorf("%s: %d series after the random requests, %d before", name, len(set), len(was[name]))
		}
		for s := range set {
			if !was[name][s] {
				t.Errorf("%s: new series {%s}", name, s)
			}
			if strings.Contains(s, "rnd") {
				t.Errorf("%s: a label carries a client's string: {%s}", name, s)
			}
		}
	}
	for _, name := range []string{
		"alknet_connections_accepted_total", "alknet_connections_active", "alknet_connections_open", "alknet_connections_resumed_total",
		"alknet_quic_handshake_failures_total", "alknet_streams_total", "alknet_streams_active", "alknet_reloads_total",
		"alknet_call_operations_total", "alknet_call_operation_duration_seconds", "alknet_http_requests_total",
		"alknet_ssh_sessions_total", "alknet_ssh_sessions_active", "alknet_ssh_handshake_failures_total", "alknet_ssh_requests_total",
		"alknet_dns_responses_total", "alknet_dns_protocol_errors_total",
	} {
		if _, ok := now[name]; !ok {
			t.Errorf("no %s", name)
		}
	}

	// Shutdown closes the metrics listener.
	n.stop(t)
	if conn, err := net.DialTimeout("tcp", maddr, 10*time.Second); err == nil {
		conn.Close()
		t.Error("the metrics listener accepts connections after serve returned")
	}
}

// TestServeMetricsUsage: --metrics takes HOST:PORT; a bad one is a usage error before
// any key is made.
func TestServeMetricsUsage(t *testing.T) {
	for _, addr := range []string{"nonsense", "127.0.0.1:99999"} {
		var stdout, stderr syncBuffer
		state := t.TempDir()
		c := &cli{stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr}
		err := c.run(t.Context(), []string{"serve", "--state", state, "--listen", "127.0.0.1:0", "--metrics", addr})
		if line := checkOneLine(t, err, exitUsage); !strings.Contains(line, "--metrics") {
			t.Errorf("--metrics %q: %q", addr, line)
		}
		if ents, _ := os.ReadDir(state); len(ents) != 0 {
			t.Errorf("--metrics %q: serve wrote %d files before failing", addr, len(ents))
		}
	}
}

// TestServeMetricsMsg: msg registrations and deliveries move the msg counters, and the
// store's totals (a bbolt store in the state directory) count the envelope held.
func TestServeMetricsMsg(t *testing.T) {
	alice, aliceFP := newClientState(t)
	addrCh := make(chan string, 1)
	path := filepath.Join(t.TempDir(), "alknet.toml")
	writeFile(t, path, msgConfig(`max_mailbox_messages = 100`, msgPeers{aliceFP: {msg.ScopeMailbox, msg.ScopeSend}}))
	n := startServeWith(t, func(c *cli) { c.stdout = &metricsTap{w: c.stdout, addr: addrCh} }, "--config", path, "--metrics", "127.0.0.1:0")
	var maddr string
	select {
	case maddr = <-addrCh:
	default:
		t.Fatal("serve printed no listen metrics line before ready")
	}
	mustRun(t, "", append(n.msgArgs("register", alice), n.quic)...)
	sendID(t, n, alice, aliceFP, "hello")
	fams := scrapeMetrics(t, maddr)
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"alknet_msg_requests_total", []string{"operation", "keys_put"}, 1},
		{"alknet_msg_requests_total", []string{"operation", "deliver"}, 1},
		{"alknet_msg_stored", []string{"kind", "envelopes"}, 1},
		{"alknet_msg_stored", []string{"kind", "mailboxes"}, 1},
		{"alknet_msg_mailbox_envelopes", nil, 1},
	} {
		if got := sample(fams, c.name, c.labels...); got < c.want {
			t.Errorf("%s%v = %v, want at least %v", c.name, c.labels, got, c.want)
		}
	}
}
