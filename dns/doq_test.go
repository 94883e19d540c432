package dns

import (
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	"github.com/quic-go/quic-go"

	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/core/coretest"
	"github.com/alknet/alknet/core/endpoint"
	"github.com/alknet/alknet/core/tlsconf"
)

// transportTimeout bounds every wait in the transport tests; a safety net only.
const transportTimeout = 60 * time.Second

func transportCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), transportTimeout)
	t.Cleanup(cancel)
	return ctx
}

// testZone is a small mdns.Handler for the transport tests:
//   - "<label>.example." TXT answers one TXT "hello <label>";
//   - "big.example." answers 40 TXT records of 100 bytes (over 512 bytes);
//   - "huge.example." answers more than 65535 bytes;
//   - "panic.example." panics;
//   - "block.example." signals entered and waits for release;
//   - "silent.example." writes nothing;
//   - anything else is REFUSED.
type testZone struct {
	entered chan struct{}
	release chan struct{}
}

func newTestZone() *testZone {
	return &testZone{entered: make(chan struct{}, 100), release: make(chan struct{})}
}

func (z *testZone) ServeDNS(w mdns.ResponseWriter, r *mdns.Msg) {
	m := new(mdns.Msg)
	m.SetReply(r)
	if opt := r.IsEdns0(); opt != nil {
		m.SetEdns0(opt.UDPSize(), false)
	}
	name := strings.ToLower(r.Question[0].Name)
	txt := func(s string) mdns.RR {
		return &mdns.TXT{Hdr: mdns.RR_Header{Name: r.Question[0].Name, Rrtype: mdns.TypeTXT, Class: mdns.ClassINET, Ttl: 60}, Txt: []string{s}}
	}
	switch {
	case name == "panic.example.":
		panic("test handler panic")
	case name == "silent.example.":
		return
	case name == "block.example.":
		z.entered <- struct{}{}
		<-z.release
		m.Answer = append(m.Answer, txt("unblocked"))
	case name == "big.example.":
		for i := range 40 {
			m.Answer = append(m.Answer, txt(fmt.Sprintf("%03d%s", i, strings.Repeat("x", 97))))
		}
	case name == "huge.example.":
		for i := range 300 {
			m.Answer = append(m.Answer, txt(fmt.Sprintf("%03d%s", i, strings.Repeat("y", 250))))
		}
	case strings.HasSuffix(name, ".example."):
		m.Authoritative = true
		m.Answer = append(m.Answer, txt("hello "+strings.TrimSuffix(name, ".example.")))
	default:
		m.Rcode = mdns.RcodeRefused
	}
	_ = w.WriteMsg(m)
}

// dnsFixture is an endpoint serving a Server over QUIC and TCP+TLS on 127.0.0.1.
type dnsFixture struct {
	srv  *coretest.Server
	dns  *Server
	zone *testZone
}

func newDNSFixture(t *testing.T, cfg ServerConfig, opts ...coretest.Option) *dnsFixture {
	t.Helper()
	zone := newTestZone()
	if cfg.Handler == nil {
		cfg.Handler = zone
	}
	s, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	reg := core.NewRegistry()
	if err := s.Register(reg); err != nil {
		t.Fatal(err)
	}
	// No endpoint.Config.MaxIncomingUniStreams: the server declares the one
	// unidirectional stream it needs (core.UniStreamHandler).
	srv := coretest.NewServer(t, reg, opts...)
	// Registered after the server's shutdown, so it runs first: blocked queries end.
	t.Cleanup(func() {
		select {
		case <-zone.release:
		default:
			close(zone.release)
		}
	})
	return &dnsFixture{srv: srv, dns: s, zone: zone}
}

func txtQuery(name string) *mdns.Msg {
	m := new(mdns.Msg)
	m.SetQuestion(name, mdns.TypeTXT)
	m.Id = 0
	return m
}

func pack(t *testing.T, m *mdns.Msg) []byte {
	t.Helper()
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func frame(b []byte) []byte {
	out := binary.BigEndian.AppendUint16(nil, uint16(len(b)))
	return append(out, b...)
}

// rawStream sends data on a new stream, half-closes it when fin is set, and returns
// everything the server sends until the stream ends, or the error that ended it.
func rawStream(ctx context.Context, conn *core.Connection, data []byte, fin bool) ([]byte, error) {
	st, err := conn.OpenBi(ctx)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	if _, err := st.Write(data); err != nil {
		return nil, err
	}
	if fin {
		if err := st.CloseWrite(); err != nil {
			return nil, err
		}
	}
	return io.ReadAll(st)
}

// wantProtocolClose waits for conn to be closed by the server with DOQ_PROTOCOL_ERROR.
func wantProtocolClose(t *testing.T, ctx context.Context, conn *core.Connection, err error) {
	t.Helper()
	if err == nil {
		// The stream may have ended first; the next accept sees the connection close.
		_, err = conn.AcceptBi(ctx)
	}
	var ce *core.CloseError
	if !errors.As(err, &ce) || ce.Code != uint32(DoQProtocolError) || !ce.Remote {
		t.Fatalf("got %v, want the server to close with DOQ_PROTOCOL_ERROR (0x2)", err)
	}
}

func unpackResp(t *testing.T, b []byte) *mdns.Msg {
	t.Helper()
	if len(b) < 2 || int(binary.BigEndian.Uint16(b)) != len(b)-2 {
		t.Fatalf("response is not one framed message: % x", b)
	}
	m := new(mdns.Msg)
	if err := m.Unpack(b[2:]); err != nil {
		t.Fatal(err)
	}
	return m
}

func wantTXT(t *testing.T, m *mdns.Msg, want string) {
	t.Helper()
	if m.Rcode != mdns.RcodeSuccess || len(m.Answer) != 1 {
		t.Fatalf("response %v, want one answer", m)
	}
	txt, ok := m.Answer[0].(*mdns.TXT)
	if !ok || len(txt.Txt) != 1 || txt.Txt[0] != want {
		t.Fatalf("answer %v, want TXT %q", m.Answer[0], want)
	}
}

// Conformance 1 and 11: one query gets one response with ID 0 and QR, then the FIN.
func TestDoQOneQuery(t *testing.T) {
	f := newDNSFixture(t, ServerConfig{})
	for _, alpn := range []string{ALPNDoQ, ALPN} {
		t.Run(alpn, func(t *testing.T) {
			ctx := transportCtx(t)
			conn := f.srv.Dial(t, alpn, nil, endpoint.NetworkQUIC)
			got, err := rawStream(ctx, conn, frame(pack(t, txtQuery("one.example."))), true)
			if err != nil {
				t.Fatal(err) // io.ReadAll returned: the server sent FIN after the response
			}
			m := unpackResp(t, got)
			if m.Id != 0 || !m.Response || !m.Authoritative {
				t.Fatalf("header %+v, want ID 0, QR, AA", m.MsgHdr)
			}
			wantTXT(t, m, "hello one")
		})
	}
	if n := f.dns.Stats().DoQ.Responses["NOERROR"]; n != 2 {
		t.Fatalf("stats count %d NOERROR, want 2", n)
	}
}

// Conformance 2: 50 concurrent streams on one connection.
func TestDoQConcurrentStreams(t *testing.T) {
	f := newDNSFixture(t, ServerConfig{})
	ctx := transportCtx(t)
	conn := f.srv.Dial(t, ALPNDoQ, nil, endpoint.NetworkQUIC)
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for i := range 50 {
		wg.Go(func() {
			q := txtQuery(fmt.Sprintf("n%d.example.", i))
			q.Id = uint16(1000 + i) // Exchange sends 0 and restores this
			r, err := Exchange(ctx, conn, q)
			switch {
			case err != nil:
				errs <- err
			case r.Id != q.Id:
				errs <- fmt.Errorf("stream %d: ID %d, want the caller's %d", i, r.Id, q.Id)
			case len(r.Answer) != 1 || r.Answer[0].(*mdns.TXT).Txt[0] != fmt.Sprintf("hello n%d", i):
				errs <- fmt.Errorf("stream %d: answer %v", i, r.Answer)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// Conformance 3, 4, 5, 7 and the length floor: each protocol error closes the
// connection with 0x2.
func TestDoQProtocolErrors(t *testing.T) {
	q := pack(t, txtQuery("p.example."))
	withID := txtQuery("p.example.")
	withID.Id = 7
	keepalive := txtQuery("p.example.")
	keepalive.SetEdns0(1232, false)
	keepalive.IsEdns0().Option = append(keepalive.IsEdns0().Option, &mdns.EDNS0_TCP_KEEPALIVE{Code: mdns.EDNS0TCPKEEPALIVE})
	cases := []struct {
		name string
		data []byte
	}{
		{"3 non-zero ID", frame(pack(t, withID))},
		{"4 two queries on one stream", append(frame(q), frame(q)...)},
		{"4 one extra byte", append(frame(q), 0)},
		{"5 FIN inside the message", append([]byte{0, 100}, make([]byte, 40)...)},
		{"5 FIN inside the length", []byte{0}},
		{"5 FIN without a message", nil},
		{"7 edns-tcp-keepalive", frame(pack(t, keepalive))},
		{"length under a header", frame(make([]byte, 11))},
	}
	f := newDNSFixture(t, ServerConfig{})
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := transportCtx(t)
			conn := f.srv.Dial(t, ALPNDoQ, nil, endpoint.NetworkQUIC)
			_, err := rawStream(ctx, conn, tc.data, true)
			wantProtocolClose(t, ctx, conn, err)
			if n := f.dns.Stats().DoQ.ProtocolErrors; n != uint64(i+1) {
				t.Fatalf("stats: %d protocol errors, want %d", n, i+1)
			}
		})
	}
}

// Conformance 6: a unidirectional stream from the client closes the connection with 0x2.
func TestDoQUniStreamIsProtocolError(t *testing.T) {
	f := newDNSFixture(t, ServerConfig{})
	ctx := transportCtx(t)
	tc, err := tlsconf.ClientConfig(tlsconf.ClientOptions{Pin: f.srv.Identity.Fingerprint, NextProtos: []string{ALPNDoQ}})
	if err != nil {
		t.Fatal(err)
	}
	qc, err := quic.DialAddr(ctx, f.srv.Addr, tc, &quic.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer qc.CloseWithError(0, "")
	us, err := qc.OpenUniStreamSync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := us.Write(frame(pack(t, txtQuery("u.example.")))); err != nil {
		t.Fatal(err)
	}
	select {
	case <-qc.Context().Done():
	case <-ctx.Done():
		t.Fatal("connection still open after a unidirectional stream")
	}
	var ae *quic.ApplicationError
	if err := context.Cause(qc.Context()); !errors.As(err, &ae) || ae.ErrorCode != quic.ApplicationErrorCode(DoQProtocolError) || !ae.Remote {
		t.Fatalf("closed with %v, want DOQ_PROTOCOL_ERROR from the server", err)
	}
}

// Conformance 8: a query without FIN fails at the query timeout, and the stream's
// goroutine ends (goleak in TestMain checks it).
func TestDoQMissingFIN(t *testing.T) {
	f := newDNSFixture(t, ServerConfig{QueryTimeout: 100 * time.Millisecond})
	ctx := transportCtx(t)
	conn := f.srv.Dial(t, ALPNDoQ, nil, endpoint.NetworkQUIC)
	_, err := rawStream(ctx, conn, frame(pack(t, txtQuery("nofin.example."))), false)
	wantProtocolClose(t, ctx, conn, err)

	// A frame that never completes meets the same deadline.
	conn = f.srv.Dial(t, ALPNDoQ, nil, endpoint.NetworkQUIC)
	_, err = rawStream(ctx, conn, []byte{0, 40, 1, 2}, false)
	wantProtocolClose(t, ctx, conn, err)
}

// Conformance 9: a client resetting its stream mid-query costs only that stream.
func TestDoQClientResetsStream(t *testing.T) {
	f := newDNSFixture(t, ServerConfig{})
	ctx := transportCtx(t)
	conn := f.srv.Dial(t, ALPNDoQ, nil, endpoint.NetworkQUIC)
	st, err := conn.OpenBi(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Write(frame(pack(t, txtQuery("r.example.")))[:7]); err != nil {
		t.Fatal(err)
	}
	sc, ok := st.(streamCanceler)
	if !ok {
		t.Fatal("a QUIC stream cannot be reset")
	}
	sc.CancelWrite(quic.StreamErrorCode(DoQRequestCancelled))
	var se *quic.StreamError
	if _, err := io.ReadAll(st); !errors.As(err, &se) {
		t.Fatalf("read after reset: %v, want a stream error", err)
	}
	_ = st.Close()
	r, err := Exchange(ctx, conn, txtQuery("after.example."))
	if err != nil {
		t.Fatalf("the connection did not survive a reset stream: %v", err)
	}
	wantTXT(t, r, "hello after")
}

// Conformance 10: streams past MaxStreamsPerConn are reset with DOQ_EXCESSIVE_LOAD.
func TestDoQExcessiveLoad(t *testing.T) {
	f := newDNSFixture(t, ServerConfig{MaxStreamsPerConn: 2})
	ctx := transportCtx(t)
	conn := f.srv.Dial(t, ALPNDoQ, nil, endpoint.NetworkQUIC)
	results := make(chan error, 2)
	for range 2 {
		go func() {
			r, err := Exchange(ctx, conn, txtQuery("block.example."))
			if err == nil && (len(r.Answer) != 1 || r.Answer[0].(*mdns.TXT).Txt[0] != "unblocked") {
				err = fmt.Errorf("blocked query answered %v", r.Answer)
			}
			results <- err
		}()
	}
	for range 2 {
		select {
		case <-f.zone.entered:
		case <-ctx.Done():
			t.Fatal("the blocking queries did not reach the handler")
		}
	}
	_, err := Exchange(ctx, conn, txtQuery("third.example."))
	var se *quic.StreamError
	if !errors.As(err, &se) || se.ErrorCode != quic.StreamErrorCode(DoQExcessiveLoad) || !se.Remote {
		t.Fatalf("third stream: %v, want a reset with DOQ_EXCESSIVE_LOAD", err)
	}
	close(f.zone.release)
	for range 2 {
		if err := <-results; err != nil {
			t.Fatal(err)
		}
	}
	if r, err := Exchange(ctx, conn, txtQuery("later.example.")); err != nil {
		t.Fatalf("query after the load passed: %v", err)
	} else {
		wantTXT(t, r, "hello later")
	}
	if n := f.dns.Stats().DoQ.ExcessiveLoad; n != 1 {
		t.Fatalf("stats: %d excessive-load resets, want 1", n)
	}
}

// Conformance 12 (core's): a client offering only an unknown ALPN fails the handshake.
func TestDoQUnknownALPNRefused(t *testing.T) {
	f := newDNSFixture(t, ServerConfig{})
	ctx := transportCtx(t)
	conn, err := f.srv.DialErr(ctx, "dns-over-nothing", nil, endpoint.NetworkQUIC)
	if err == nil {
		conn.Close(0, "")
		t.Fatal("handshake with an unknown ALPN succeeded")
	}
	if !errors.Is(err, endpoint.ErrALPNRefused) {
		t.Fatalf("dial: %v, want ErrALPNRefused", err)
	}
}

// paddedQuery is a query carrying an (empty) EDNS(0) padding option.
func paddedQuery(name string) *mdns.Msg {
	q := txtQuery(name)
	q.SetEdns0(1232, false)
	q.IsEdns0().Option = append(q.IsEdns0().Option, &mdns.EDNS0_PADDING{Padding: make([]byte, 8)})
	return q
}

// Conformance 13: a padded query gets a response padded to a multiple of 468 octets.
func TestDoQPadding(t *testing.T) {
	for _, tc := range []struct {
		name    string
		padding bool
		query   *mdns.Msg
		padded  bool
	}{
		{"padded query", true, paddedQuery("pad.example."), true},
		{"big padded query", true, paddedQuery("big.example."), true},
		{"unpadded query", true, txtQuery("pad.example."), false},
		{"padding off", false, paddedQuery("pad.example."), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newDNSFixture(t, ServerConfig{Padding: tc.padding})
			ctx := transportCtx(t)
			conn := f.srv.Dial(t, ALPNDoQ, nil, endpoint.NetworkQUIC)
			got, err := rawStream(ctx, conn, frame(pack(t, tc.query)), true)
			if err != nil {
				t.Fatal(err)
			}
			n := len(got) - 2
			m := unpackResp(t, got)
			if m.Rcode != mdns.RcodeSuccess || len(m.Answer) == 0 {
				t.Fatalf("response %v", m)
			}
			if padded := n%paddingBlock == 0; padded != tc.padded {
				t.Fatalf("response of %d octets; want padded to %d-octet blocks: %v", n, paddingBlock, tc.padded)
			}
		})
	}
}

// Unpack failures get FORMERR with ID 0; oversized responses SERVFAIL; a handler that
// writes nothing SERVFAIL; a panic resets only its stream with DOQ_INTERNAL_ERROR.
func TestDoQBadQueriesAndHandlers(t *testing.T) {
	f := newDNSFixture(t, ServerConfig{})
	ctx := transportCtx(t)
	conn := f.srv.Dial(t, ALPNDoQ, nil, endpoint.NetworkQUIC)

	garbage := []byte{0, 0, 0x01, 0, 0, 1, 0, 0, 0, 0, 0, 0, 5, 'a'} // QDCOUNT 1, a cut name
	got, err := rawStream(ctx, conn, frame(garbage), true)
	if err != nil {
		t.Fatal(err)
	}
	if m := unpackResp(t, got); m.Id != 0 || !m.Response || m.Rcode != mdns.RcodeFormatError || !m.RecursionDesired {
		t.Fatalf("garbage query answered %+v, want FORMERR with ID 0 and RD echoed", m.MsgHdr)
	}

	for _, name := range []string{"huge.example.", "silent.example."} {
		got, err = rawStream(ctx, conn, frame(pack(t, txtQuery(name))), true)
		if err != nil {
			t.Fatal(err)
		}
		if m := unpackResp(t, got); m.Id != 0 || m.Rcode != mdns.RcodeServerFailure || m.Question[0].Name != name {
			t.Fatalf("%s answered %v, want SERVFAIL", name, m)
		}
	}

	_, err = Exchange(ctx, conn, txtQuery("panic.example."))
	var se *quic.StreamError
	if !errors.As(err, &se) || se.ErrorCode != quic.StreamErrorCode(DoQInternalError) {
		t.Fatalf("panicking handler: %v, want a reset with DOQ_INTERNAL_ERROR", err)
	}
	r, err := Exchange(ctx, conn, txtQuery("still.example."))
	if err != nil {
		t.Fatalf("connection after a panic: %v", err)
	}
	wantTXT(t, r, "hello still")

	st := f.dns.Stats().DoQ
	if st.Responses["FORMERR"] != 1 || st.Responses["SERVFAIL"] != 2 || st.InternalErrors != 1 || st.ProtocolErrors != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// A DoQ ALPN on TCP+TLS and dot on QUIC are closed with ErrWrongTransport.
func TestWrongTransport(t *testing.T) {
	s, err := NewServer(ServerConfig{Handler: newTestZone()})
	if err != nil {
		t.Fatal(err)
	}
	// Each ALPN's handler reports what Handle returned.
	returned := make(chan error, 3)
	reg := core.NewRegistry()
	for _, alpn := range []string{ALPNDoQ, ALPN, ALPNDoT} {
		err := reg.RegisterAs(alpn, core.HandlerFunc(func(ctx context.Context, conn *core.Connection, auth core.AuthContext) error {
			err := s.Handle(ctx, conn, auth)
			returned <- err
			return err
		}))
		if err != nil {
			t.Fatal(err)
		}
	}
	srv := coretest.NewServer(t, reg)
	ctx := transportCtx(t)
	for _, tc := range []struct {
		alpn    string
		network endpoint.Network
	}{{ALPNDoQ, endpoint.NetworkTCP}, {ALPN, endpoint.NetworkTCP}, {ALPNDoT, endpoint.NetworkQUIC}} {
		conn := srv.Dial(t, tc.alpn, nil, tc.network)
		_, err := Exchange(ctx, conn, txtQuery("w.example."))
		if err == nil {
			t.Fatalf("%s over %s answered", tc.alpn, tc.network)
		}
		var ce *core.CloseError
		if tc.network == endpoint.NetworkQUIC && (!errors.As(err, &ce) || !strings.Contains(ce.Reason, "over QUIC use \"doq\"")) {
			t.Fatalf("%s over QUIC: %v, want a close reason naming doq", tc.alpn, err)
		}
		if err := <-returned; !errors.Is(err, ErrWrongTransport) {
			t.Fatalf("%s over %s: Handle returned %v, want ErrWrongTransport", tc.alpn, tc.network, err)
		}
	}
}

func TestServerConfigValidate(t *testing.T) {
	h := newTestZone()
	for _, tc := range []struct {
		cfg  ServerConfig
		want string
	}{
		{ServerConfig{}, "Handler is required"},
		{ServerConfig{Handler: h, MaxStreamsPerConn: -1}, "MaxStreamsPerConn"},
		{ServerConfig{Handler: h, QueryTimeout: -1}, "QueryTimeout"},
		{ServerConfig{Handler: h, IdleTimeout: -1}, "IdleTimeout"},
		{ServerConfig{Handler: h}, ""},
	} {
		err := tc.cfg.Validate()
		if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("Validate(%+v) = %v, want %q", tc.cfg, err, tc.want)
		}
	}
	s, err := NewServer(ServerConfig{Handler: h})
	if err != nil {
		t.Fatal(err)
	}
	if s.cfg.MaxStreamsPerConn != DefaultMaxStreamsPerConn || s.cfg.QueryTimeout != DefaultQueryTimeout || s.cfg.IdleTimeout != DefaultIdleTimeout {
		t.Fatalf("defaults not applied: %+v", s.cfg)
	}
	if DoQExcessiveLoad.String() != "DOQ_EXCESSIVE_LOAD" || ErrorCode(9).String() != "DOQ_ERROR(0x9)" {
		t.Fatal("ErrorCode names")
	}
}

// kdig runs Knot's kdig with args and returns its output, skipping when it is missing.
func kdig(t *testing.T, args ...string) string {
	t.Helper()
	path, err := exec.LookPath("kdig")
	if err != nil {
		t.Skip("kdig not installed (apt-get install knot-dnsutils)")
	}
	ctx := transportCtx(t)
	out, err := exec.CommandContext(ctx, path, append([]string{"+timeout=10", "+retry=0"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("kdig %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// A stock DoQ client: kdig +quic against the "doq" ALPN.
func TestKdigQUIC(t *testing.T) {
	f := newDNSFixture(t, ServerConfig{Padding: true})
	host, port, err := net.SplitHostPort(f.srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	out := kdig(t, "+quic", "@"+host, "-p", port, "kdig.example.", "TXT")
	if !strings.Contains(out, "NOERROR") || !strings.Contains(out, `"hello kdig"`) {
		t.Fatalf("kdig +quic output lacks the answer:\n%s", out)
	}
	if n := f.dns.Stats().DoQ.Responses["NOERROR"]; n != 1 {
		t.Fatalf("stats: %d DoQ NOERROR, want 1", n)
	}
}

// A DoQ connection with no query in flight for IdleTimeout is closed with DOQ_NO_ERROR;
// a query in flight keeps it open.
func TestDoQIdleTimeout(t *testing.T) {
	f := newDNSFixture(t, ServerConfig{IdleTimeout: 50 * time.Millisecond})
	ctx := transportCtx(t)
	conn := f.srv.Dial(t, ALPNDoQ, nil, endpoint.NetworkQUIC)
	blocked := make(chan error, 1)
	go func() {
		_, err := Exchange(ctx, conn, txtQuery("block.example."))
		blocked <- err
	}()
	<-f.zone.entered
	// The query is in flight; however long the test machine takes, the connection
	// stays. Let it be answered, then the idle time starts.
	close(f.zone.release)
	if err := <-blocked; err != nil {
		t.Fatalf("a query in flight was cut by the idle timeout: %v", err)
	}
	_, err := conn.AcceptBi(ctx)
	var ce *core.CloseError
	if !errors.As(err, &ce) || ce.Code != uint32(DoQNoError) || !ce.Remote || ce.Reason != "idle timeout" {
		t.Fatalf("idle connection ended with %v, want DOQ_NO_ERROR from the server", err)
	}
}

// sharedReply answers every query with one shared message, as a caching handler might.
type sharedReply struct{ m *mdns.Msg }

func (h sharedReply) ServeDNS(w mdns.ResponseWriter, _ *mdns.Msg) { _ = w.WriteMsg(h.m) }

// The server never changes the handler's message (ID, OPT) and, on DoQ, strips
// edns-tcp-keepalive and the handler's own padding from what it sends.
func TestDoQSharedResponseUntouched(t *testing.T) {
	shared := new(mdns.Msg)
	shared.SetQuestion("shared.example.", mdns.TypeTXT)
	shared.Response, shared.Id = true, 77
	shared.Answer = []mdns.RR{&mdns.TXT{Hdr: mdns.RR_Header{Name: "shared.example.", Rrtype: mdns.TypeTXT, Class: mdns.ClassINET, Ttl: 60}, Txt: []string{"shared"}}}
	shared.SetEdns0(1232, false)
	shared.IsEdns0().Option = []mdns.EDNS0{
		&mdns.EDNS0_TCP_KEEPALIVE{Code: mdns.EDNS0TCPKEEPALIVE, Timeout: 10},
		&mdns.EDNS0_PADDING{Padding: make([]byte, 3)},
	}
	f := newDNSFixture(t, ServerConfig{Handler: sharedReply{shared}, Padding: true})
	ctx := transportCtx(t)
	conn := f.srv.Dial(t, ALPNDoQ, nil, endpoint.NetworkQUIC)
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for range 20 {
		wg.Go(func() {
			got, err := rawStream(ctx, conn, frame(pack(t, paddedQuery("shared.example."))), true)
			if err != nil {
				errs <- err
				return
			}
			if (len(got)-2)%paddingBlock != 0 {
				errs <- fmt.Errorf("response of %d octets is not padded", len(got)-2)
				return
			}
			m := new(mdns.Msg)
			if err := m.Unpack(got[2:]); err != nil {
				errs <- err
				return
			}
			opts := m.IsEdns0().Option
			if m.Id != 0 || len(opts) != 1 || opts[0].Option() != mdns.EDNS0PADDING {
				errs <- fmt.Errorf("response ID %d with options %v, want ID 0 and only padding", m.Id, opts)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if opts := shared.IsEdns0().Option; shared.Id != 77 || len(opts) != 2 || len(opts[1].(*mdns.EDNS0_PADDING).Padding) != 3 {
		t.Fatalf("handler's message changed: ID %d, options %v", shared.Id, opts)
	}
}

// The zone handler behind every transport: the node's discovery TXT over DoQ (Exchange
// and kdig +quic, as spec §1.8 names), DoT (kdig +tls) and the plain listener (kdig
// over UDP).
func TestTransportsServeTheZoneHandler(t *testing.T) {
	key := coretest.NewIdentity(t).Key.Public().(ed25519.PublicKey)
	h, err := NewHandler(Config{Origin: "alk.dev"},
		WithNodeKey(key),
		WithServices([]string{ALPNDoQ, ALPNDoT}, []netip.AddrPort{netip.MustParseAddrPort("192.0.2.1:853")}),
		WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	f := newDNSFixture(t, ServerConfig{Handler: h, Padding: true})
	name := "_alknet." + NodeName(key, "alk.dev")
	ctx := transportCtx(t)

	conn := f.srv.Dial(t, ALPNDoQ, nil, endpoint.NetworkQUIC)
	q := paddedQuery(name)
	q.Id = 99
	r, err := Exchange(ctx, conn, q)
	if err != nil {
		t.Fatal(err)
	}
	if r.Id != 99 || !r.Authoritative || r.Rcode != mdns.RcodeSuccess || len(r.Answer) != 1 {
		t.Fatalf("discovery answer %v", r)
	}
	if txt := strings.Join(r.Answer[0].(*mdns.TXT).Txt, " "); !strings.Contains(txt, "alpn=doq,dot") || !strings.Contains(txt, "addr=192.0.2.1:853") {
		t.Fatalf("discovery TXT %q", txt)
	}

	host, port, err := net.SplitHostPort(f.srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	for _, mode := range []string{"+quic", "+tls"} {
		out := kdig(t, mode, "@"+host, "-p", port, name, "TXT")
		if !strings.Contains(out, "NOERROR") || !strings.Contains(out, "v=alknet1") {
			t.Fatalf("kdig %s output lacks the discovery record:\n%s", mode, out)
		}
	}
	p := startPlain(t, f.dns)
	phost, pport, err := net.SplitHostPort(p.UDPAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	if out := kdig(t, "@"+phost, "-p", pport, name, "TXT"); !strings.Contains(out, "v=alknet1") {
		t.Fatalf("kdig over plain UDP output lacks the discovery record:\n%s", out)
	}
	st := f.dns.Stats()
	if st.DoQ.Responses["NOERROR"] != 2 || st.DoT.Responses["NOERROR"] != 1 || st.Plain.Responses["NOERROR"] != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// bigQuery is a query of about size bytes (an EDNS(0) padding option fills it).
func bigQuery(name string, size int) *mdns.Msg {
	q := txtQuery(name)
	q.SetEdns0(1232, false)
	q.IsEdns0().Option = append(q.IsEdns0().Option, &mdns.EDNS0_PADDING{Padding: make([]byte, size)})
	return q
}

// A query whose bytes do not fit the connection's memory budget is refused: its DoQ
// stream is reset with DOQ_EXCESSIVE_LOAD, its DoT connection closed; queries that fit
// pass.
func TestQueriesReserveTheConnectionBudget(t *testing.T) {
	f := newDNSFixture(t, ServerConfig{}, coretest.WithConfig(core.DynamicConfig{Limits: core.Limits{MaxBufferedBytesPerConn: 1500}}))
	ctx := transportCtx(t)
	conn := f.srv.Dial(t, ALPNDoQ, nil, endpoint.NetworkQUIC)
	_, err := Exchange(ctx, conn, bigQuery("big.example.", 2000))
	var se *quic.StreamError
	if !errors.As(err, &se) || se.ErrorCode != quic.StreamErrorCode(DoQExcessiveLoad) {
		t.Fatalf("query over the budget: %v, want a reset with DOQ_EXCESSIVE_LOAD", err)
	}
	// A new connection: the refused stream's bytes may not be released yet on this one.
	conn = f.srv.Dial(t, ALPNDoQ, nil, endpoint.NetworkQUIC)
	r, err := Exchange(ctx, conn, bigQuery("fits.example.", 1000))
	if err != nil {
		t.Fatalf("query within the budget: %v", err)
	}
	wantTXT(t, r, "hello fits")

	dot := f.srv.Dial(t, ALPNDoT, nil, endpoint.NetworkTCP)
	if _, err := Exchange(ctx, dot, bigQuery("big.example.", 2000)); err == nil {
		t.Fatal("DoT query over the budget answered")
	}
	if lines := f.srv.Logs.Lines("max_buffered_bytes_per_conn"); len(lines) != 1 {
		t.Fatalf("log lines naming the budget: %q", lines)
	}
}
