package call

// Test harness of the engine suite (engine_*_test.go): bounded waits, a wire tap that
// records every envelope each side writes (QUIC, TCP+TLS and message transports), a
// connected pair of real Conns built on that tap, and a raw peer that speaks frames
// or envelopes to a server Dispatcher directly.

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/core/coretest"
	"github.com/alknet/alknet/core/endpoint"
)

// engTimeout bounds every wait of the engine suite: a hang fails fast and says what
// it was waiting for.
const engTimeout = 10 * time.Second

// engWait receives one value from ch or fails the test after engTimeout.
func engWait[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	timer := time.NewTimer(engTimeout)
	defer timer.Stop()
	select {
	case v := <-ch:
		return v
	case <-timer.C:
		t.Fatalf("timed out after %v waiting for %s", engTimeout, what)
	}
	var zero T
	return zero
}

// engCtx is the test's context bounded by engTimeout.
func engCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), engTimeout)
	t.Cleanup(cancel)
	return ctx
}

// engWantErr checks that err is a *CallError with code and a message containing msg.
func engWantErr(t testing.TB, err error, code, msg string) *CallError {
	t.Helper()
	ce, ok := errors.AsType[*CallError](err)
	if !ok || ce == nil {
		t.Fatalf("error = %v (%T), want a *CallError %s %q", err, err, code, msg)
	}
	if ce.Code != code || !strings.Contains(ce.Message, msg) {
		t.Fatalf("error = %s %q (retryable %v), want %s containing %q", ce.Code, ce.Message, ce.Retryable, code, msg)
	}
	return ce
}

// engOut is the result of a call made in a goroutine.
type engOut struct {
	out json.RawMessage
	err error
}

// engGo runs c.Call in a goroutine and returns the channel of its result.
func engGo(ctx context.Context, c *Conn, op string, in any, opts ...CallOption) <-chan engOut {
	ch := make(chan engOut, 1)
	go func() {
		out, err := c.Call(ctx, op, in, opts...)
		ch <- engOut{out, err}
	}()
	return ch
}

// engSignal is a channel closed once.
type engSignal struct {
	once sync.Once
	ch   chan struct{}
}

func newEngSignal() *engSignal { return &engSignal{ch: make(chan struct{})} }

func (s *engSignal) fire()                 { s.once.Do(func() { close(s.ch) }) }
func (s *engSignal) done() <-chan struct{} { return s.ch }

// ---------------------------------------------------------------------------------
// Wire tap

// engDir is who wrote an envelope.
type engDir int

const (
	fromClient engDir = iota
	fromServer
)

func (d engDir) String() string {
	if d == fromClient {
		return "client→server"
	}
	return "server→client"
}

// engWire records every envelope each side writes, in order per side. Recording
// happens before the transport write, so once a side's Conn has been closed (Close
// waits for its goroutines) its record is complete.
type engWire struct {
	// afterWrite, when set, runs after each envelope has been handed to the
	// transport, in the writer's goroutine (it may block the writer).
	afterWrite atomic.Pointer[func(engDir, Envelope)]

	gateMu sync.Mutex
	gate   chan struct{} // while not nil, the server's reads wait for it to close

	mu       sync.Mutex
	sent     [2][]Envelope
	readEnds [2]int // streams whose reading ended (EOF or error), by reader
	changed  chan struct{}
}

func newEngWire() *engWire { return &engWire{changed: make(chan struct{})} }

func (w *engWire) record(d engDir, env Envelope) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.sent[d] = append(w.sent[d], env)
	close(w.changed)
	w.changed = make(chan struct{})
}

// holdServerReads makes the server's tapped streams stop reading (the peer's
// writes then block once the transport's buffers are full) until the returned
// function is called.
func (w *engWire) holdServerReads() (release func()) {
	g := make(chan struct{})
	w.gateMu.Lock()
	w.gate = g
	w.gateMu.Unlock()
	return func() {
		w.gateMu.Lock()
		if w.gate == g {
			w.gate = nil
		}
		w.gateMu.Unlock()
		close(g)
	}
}

// wrote runs the afterWrite hook.
func (w *engWire) wrote(d engDir, env Envelope) {
	if f := w.afterWrite.Load(); f != nil {
		(*f)(d, env)
	}
}

func (w *engWire) readGate() chan struct{} {
	w.gateMu.Lock()
	defer w.gateMu.Unlock()
	return w.gate
}

// readEnded counts a stream whose reading by d ended.
func (w *engWire) readEnded(d engDir) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.readEnds[d]++
	close(w.changed)
	w.changed = make(chan struct{})
}

// waitReadEnd waits until reading of n streams by d has ended (tapped streams only).
func (w *engWire) waitReadEnd(t testing.TB, d engDir, n int) {
	t.Helper()
	timer := time.NewTimer(engTimeout)
	defer timer.Stop()
	for {
		w.mu.Lock()
		got, ch := w.readEnds[d], w.changed
		w.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-ch:
		case <-timer.C:
			t.Fatalf("timed out waiting for %s to read the end of %d streams (%d so far)", d, n, got)
		}
	}
}

// all returns what d wrote so far.
func (w *engWire) all(d engDir) []Envelope {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]Envelope(nil), w.sent[d]...)
}

// with returns what d wrote with id (and of type typ, unless typ is "").
func (w *engWire) with(d engDir, id, typ string) []Envelope {
	var out []Envelope
	for _, e := range w.all(d) {
		if e.ID == id && (typ == "" || e.Type == typ) {
			out = append(out, e)
		}
	}
	return out
}

// waitFor waits until d has written an envelope matching pred and returns it.
func (w *engWire) waitFor(t testing.TB, d engDir, what string, pred func(Envelope) bool) Envelope {
	t.Helper()
	timer := time.NewTimer(engTimeout)
	defer timer.Stop()
	for {
		w.mu.Lock()
		for _, e := range w.sent[d] {
			if pred(e) {
				w.mu.Unlock()
				return e
			}
		}
		ch := w.changed
		w.mu.Unlock()
		select {
		case <-ch:
		case <-timer.C:
			t.Fatalf("timed out after %v waiting for %s (%s); the wire holds:\n%s", engTimeout, what, d, w.dump())
			return Envelope{}
		}
	}
}

// waitType waits for an envelope of typ with id written by d.
func (w *engWire) waitType(t testing.TB, d engDir, id, typ string) Envelope {
	t.Helper()
	return w.waitFor(t, d, fmt.Sprintf("%s id=%s", typ, id), func(e Envelope) bool { return e.ID == id && e.Type == typ })
}

// requestID waits for the call.requested of operation op ("/ns/name") written by d
// and returns its id.
func (w *engWire) requestID(t testing.TB, d engDir, op string) string {
	t.Helper()
	return w.waitFor(t, d, "call.requested of "+op, func(e Envelope) bool {
		if e.Type != EvRequested {
			return false
		}
		p, cerr := ParseRequest(e)
		return cerr == nil && "/"+p.OperationName() == op
	}).ID
}

func (w *engWire) dump() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var b strings.Builder
	for d := range w.sent {
		for _, e := range w.sent[d] {
			fmt.Fprintf(&b, "  %s %s id=%s payload=%.200s\n", engDir(d), e.Type, e.ID, e.Payload)
		}
	}
	return b.String()
}

// engTapStream records the frames written on a stream. The engine writes one whole
// frame per Write (WriteFrame); partial frames are buffered anyway.
type engTapStream struct {
	core.BiStream
	w   *engWire
	dir engDir

	mu      sync.Mutex
	buf     []byte
	endOnce sync.Once
}

func (s *engTapStream) Write(p []byte) (int, error) {
	var envs []Envelope
	s.mu.Lock()
	s.buf = append(s.buf, p...)
	for len(s.buf) >= 4 {
		n := int(binary.BigEndian.Uint32(s.buf))
		if len(s.buf) < 4+n {
			break
		}
		if env, err := DecodeEnvelope(s.buf[4 : 4+n]); err == nil {
			s.w.record(s.dir, env)
			envs = append(envs, env)
		}
		s.buf = s.buf[4+n:]
	}
	s.mu.Unlock()
	n, err := s.BiStream.Write(p)
	for _, env := range envs {
		s.w.wrote(s.dir, env)
	}
	return n, err
}

// SetWriteDeadline, SetReadDeadline and SetDeadline forward to the tapped stream
// (QUIC and TLS streams have them; the engine uses them to abandon blocked writes).
func (s *engTapStream) SetWriteDeadline(t time.Time) error {
	return core.NetConn(s.BiStream, nil, nil).SetWriteDeadline(t)
}

func (s *engTapStream) SetReadDeadline(t time.Time) error {
	return core.NetConn(s.BiStream, nil, nil).SetReadDeadline(t)
}

func (s *engTapStream) SetDeadline(t time.Time) error {
	return core.NetConn(s.BiStream, nil, nil).SetDeadline(t)
}

// CancelRead and CancelWrite forward a QUIC stream reset.
func (s *engTapStream) CancelRead(code quic.StreamErrorCode) {
	if c, ok := s.BiStream.(interface{ CancelRead(quic.StreamErrorCode) }); ok {
		c.CancelRead(code)
	}
}

func (s *engTapStream) CancelWrite(code quic.StreamErrorCode) {
	if c, ok := s.BiStream.(interface{ CancelWrite(quic.StreamErrorCode) }); ok {
		c.CancelWrite(code)
	}
}

// Read counts the end of reading (once per stream).
func (s *engTapStream) Read(p []byte) (int, error) {
	if s.dir == fromServer {
		if g := s.w.readGate(); g != nil {
			<-g
		}
	}
	n, err := s.BiStream.Read(p)
	if err != nil {
		s.endOnce.Do(func() { s.w.readEnded(s.dir) })
	}
	return n, err
}

// engTapSource is a core.BidiStreamSource over a Connection whose streams are tapped.
type engTapSource struct {
	conn *core.Connection
	w    *engWire
	dir  engDir
}

// engTap returns conn with every frame it writes recorded in w as written by dir; the
// tapped connection keeps conn's memory budget and idle timeout.
func engTap(conn *core.Connection, w *engWire, dir engDir) *core.Connection {
	tc := core.NewConnection(&engTapSource{conn: conn, w: w, dir: dir}, conn.RemoteALPN())
	tc.SetBudget(conn.Budget())
	return tc
}

// Busy forwards to the tapped connection.
func (s *engTapSource) Busy() func() { return s.conn.Busy() }

func (s *engTapSource) wrap(st core.BiStream) core.BiStream {
	return &engTapStream{BiStream: st, w: s.w, dir: s.dir}
}

func (s *engTapSource) AcceptBi(ctx context.Context) (core.BiStream, error) {
	st, err := s.conn.AcceptBi(ctx)
	if err != nil {
		return nil, err
	}
	return s.wrap(st), nil
}

func (s *engTapSource) OpenBi(ctx context.Context) (core.BiStream, error) {
	st, err := s.conn.OpenBi(ctx)
	if err != nil {
		return nil, err
	}
	return s.wrap(st), nil
}

func (s *engTapSource) RemoteAddr() net.Addr             { return s.conn.RemoteAddr() }
func (s *engTapSource) Close(code uint32, reason string) { s.conn.Close(code, reason) }
func (s *engTapSource) SingleStream() bool               { return s.conn.SingleStream() }
func (s *engTapSource) TLSConnectionState() tls.ConnectionState {
	st, _ := s.conn.TLSConnectionState()
	return st
}

// ---------------------------------------------------------------------------------
// Servers and pairs

// engServer is a loopback endpoint serving a Dispatcher, with the server side's
// writes tapped.
type engServer struct {
	srv    *coretest.Server
	client *coretest.Identity // the certificate clients present
	conns  chan *Conn         // server-side Conns, as accepted
}

// engStartServer serves d on a loopback endpoint (QUIC and TCP+TLS). A client
// presenting s.client is known as clientIdentity (nil: anonymous).
func engStartServer(t testing.TB, d *Dispatcher, w *engWire, clientIdentity *core.Identity) *engServer {
	t.Helper()
	if d.Registry == nil {
		d.Registry = NewRegistry()
	}
	s := &engServer{client: coretest.NewIdentity(t), conns: make(chan *Conn, 16)}
	onConnect := d.OnConnect
	d.OnConnect = func(c *Conn) {
		if onConnect != nil {
			onConnect(c)
		}
		s.conns <- c
	}
	var cfg core.DynamicConfig
	if clientIdentity != nil {
		p := s.client.Peer(clientIdentity.ID, clientIdentity.Scopes...)
		p.Resources = clientIdentity.Resources
		cfg.Auth.Peers = []core.PeerEntry{p}
	}
	reg := core.NewRegistry()
	h := core.HandlerFunc(func(ctx context.Context, conn *core.Connection, auth core.AuthContext) error {
		if w != nil {
			conn = engTap(conn, w, fromServer)
		}
		return d.Handle(ctx, conn, auth)
	})
	if err := reg.RegisterAs(ALPN, h); err != nil {
		t.Fatal(err)
	}
	s.srv = coretest.NewServer(t, reg, coretest.WithConfig(cfg))
	return s
}

func engNetwork(mode string) endpoint.Network {
	if mode == modeTCP {
		return endpoint.NetworkTCP
	}
	return endpoint.NetworkQUIC
}

// engPair is a connected pair of Conns whose writes are recorded in wire.
type engPair struct {
	pair
	mode string
	wire *engWire
	// loseTransport drops the transport under both Conns without Close: the QUIC or
	// TCP connection is closed under the client Conn, the message transport stops.
	loseTransport func()
}

// engNewPair connects a client Dispatcher to a server Dispatcher in mode, with
// the wire tapped on both sides. clientIdentity is how the server
// sees the client, serverIdentity how the client sees the server.
func engNewPair(t testing.TB, mode string, server, client *Dispatcher, clientIdentity, serverIdentity *core.Identity) *engPair {
	t.Helper()
	w := newEngWire()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the wire of the failed test (%s):\n%s", mode, w.dump())
		}
	})
	if mode == modeMessage {
		return engMessagePair(t, w, server, client, clientIdentity, serverIdentity)
	}
	s := engStartServer(t, server, w, clientIdentity)
	ctx, cancel := context.WithTimeout(t.Context(), engTimeout)
	defer cancel()
	raw, err := endpoint.Dial(ctx, s.srv.Addr, ALPN, s.srv.DialOptions(s.client, engNetwork(mode)))
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	c, err := client.Serve(context.Background(), engTap(raw, w, fromClient), serverIdentity)
	if err != nil {
		raw.Close(core.CloseNormal, "")
		t.Fatalf("Serve: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	// The server accepts the connection once the client speaks. Any answer will do
	// (the server's registry may lack services/list or refuse it).
	if _, err := c.Call(ctx, OpServicesList, nil); err != nil {
		if ce, ok := errors.AsType[*CallError](err); !ok || ce.Code == CodeInternal {
			t.Fatalf("first call: %v", err)
		}
	}
	sc := engWait(t, s.conns, "the server to accept the connection")
	t.Cleanup(func() { sc.Close() })
	return &engPair{
		pair:          pair{client: c, server: sc},
		mode:          mode,
		wire:          w,
		loseTransport: func() { raw.Close(core.CloseNormal, "transport lost") },
	}
}

// engMessagePair joins two message Conns with in-memory queues, one pump goroutine
// per direction, as a WebSocket would.
func engMessagePair(t testing.TB, w *engWire, server, client *Dispatcher, clientIdentity, serverIdentity *core.Identity) *engPair {
	if server.Registry == nil {
		server.Registry = NewRegistry()
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	toServer := make(chan Envelope, 4096)
	toClient := make(chan Envelope, 4096)
	send := func(d engDir, ch chan Envelope) func(context.Context, Envelope) error {
		return func(_ context.Context, env Envelope) error {
			if ctx.Err() != nil {
				return io.ErrClosedPipe
			}
			w.record(d, env)
			select {
			case ch <- env:
				w.wrote(d, env)
				return nil
			case <-ctx.Done():
				return io.ErrClosedPipe
			}
		}
	}
	s := server.NewMessageConn(ctx, clientIdentity, send(fromServer, toClient))
	c := client.NewMessageConn(ctx, serverIdentity, send(fromClient, toServer))
	pump := func(ch chan Envelope, to *Conn) {
		defer wg.Done()
		for {
			select {
			case env := <-ch:
				to.HandleEnvelope(ctx, env)
			case <-ctx.Done():
				return
			}
		}
	}
	wg.Add(2)
	go pump(toServer, s)
	go pump(toClient, c)
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		c.Close()
		s.Close()
	})
	return &engPair{pair: pair{client: c, server: s}, mode: modeMessage, wire: w, loseTransport: cancel}
}

// closeBoth closes both Conns (server first); afterwards the wire record is
// complete.
func (p *engPair) closeBoth() {
	p.server.Close()
	p.client.Close()
}

// ---------------------------------------------------------------------------------
// Raw peer

// engRaw is a raw client of a server Dispatcher: it writes envelopes or raw bytes
// itself. On QUIC every send uses a new stream; on TCP+TLS the one stream; in
// message mode it feeds the server Conn's HandleEnvelope. What the server writes is
// recorded in wire (fromServer) before it reaches the transport.
type engRaw struct {
	t    testing.TB
	mode string
	wire *engWire

	srv    *engServer
	conn   *core.Connection // quic, tcp
	shared *engRawStream    // tcp

	server *Conn // message mode: at once; quic/tcp: once accepted (serverConn)

	wg sync.WaitGroup
}

// engRawStream is one stream of a raw peer; a goroutine reads it until it ends.
type engRawStream struct {
	s    core.BiStream
	mu   sync.Mutex
	got  []Envelope
	done chan error // the error that ended reading
}

// envs returns what was read on the stream so far.
func (s *engRawStream) envs() []Envelope {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Envelope(nil), s.got...)
}

func engNewRaw(t testing.TB, mode string, d *Dispatcher, clientIdentity *core.Identity) *engRaw {
	t.Helper()
	r := &engRaw{t: t, mode: mode, wire: newEngWire()}
	if mode == modeMessage {
		if d.Registry == nil {
			d.Registry = NewRegistry()
		}
		ctx, cancel := context.WithCancel(context.Background())
		r.server = d.NewMessageConn(ctx, clientIdentity, func(_ context.Context, env Envelope) error {
			r.wire.record(fromServer, env)
			return nil
		})
		t.Cleanup(func() {
			cancel()
			r.server.Close()
		})
		return r
	}
	r.srv = engStartServer(t, d, r.wire, clientIdentity)
	ctx, cancel := context.WithTimeout(t.Context(), engTimeout)
	defer cancel()
	conn, err := r.srv.srv.DialErr(ctx, ALPN, r.srv.client, engNetwork(mode))
	if err != nil {
		t.Fatalf("raw dial: %v", err)
	}
	r.conn = conn
	t.Cleanup(func() {
		conn.Close(core.CloseNormal, "")
		r.wg.Wait()
		if r.server != nil {
			r.server.Close()
		}
	})
	if mode == modeTCP {
		s, err := conn.OpenBi(ctx)
		if err != nil {
			t.Fatalf("open the TCP stream: %v", err)
		}
		r.shared = r.read(s)
	}
	return r
}

// read starts the reader of s.
func (r *engRaw) read(s core.BiStream) *engRawStream {
	rs := &engRawStream{s: s, done: make(chan error, 1)}
	r.wg.Go(func() {
		for {
			env, err := ReadFrame(s, 0)
			if err != nil {
				rs.done <- err
				return
			}
			rs.mu.Lock()
			rs.got = append(rs.got, env)
			rs.mu.Unlock()
		}
	})
	return rs
}

// serverConn returns the server-side Conn (waiting for it on QUIC and TCP).
func (r *engRaw) serverConn() *Conn {
	r.t.Helper()
	if r.server == nil {
		r.server = engWait(r.t, r.srv.conns, "the server to accept the raw connection")
	}
	return r.server
}

// stream returns the stream a send goes on: the shared one (TCP), or a new one
// (QUIC). Message mode has none.
func (r *engRaw) stream() *engRawStream {
	r.t.Helper()
	switch r.mode {
	case modeTCP:
		return r.shared
	case modeQUIC:
		ctx, cancel := context.WithTimeout(r.t.Context(), engTimeout)
		defer cancel()
		s, err := r.conn.OpenBi(ctx)
		if err != nil {
			r.t.Fatalf("open a raw stream: %v", err)
		}
		return r.read(s)
	}
	return nil
}

// send writes env: on a new stream that it then half-closes (QUIC, as the Rust
// client does), on the shared stream (TCP), or into HandleEnvelope (message). It
// returns the stream used (nil in message mode).
func (r *engRaw) send(env Envelope) *engRawStream {
	r.t.Helper()
	if r.mode == modeMessage {
		r.server.HandleEnvelope(r.t.Context(), env)
		return nil
	}
	s := r.stream()
	if err := WriteFrame(s.s, env, 0); err != nil {
		r.t.Fatalf("write %s: %v", env.Type, err)
	}
	if r.mode == modeQUIC {
		if err := s.s.CloseWrite(); err != nil {
			r.t.Fatalf("half-close: %v", err)
		}
	}
	return s
}

// sendJSON sends an envelope given as its JSON text, which may be malformed: on a
// byte stream as one frame, in message mode decoded first (a message transport
// drops envelopes that do not decode).
func (r *engRaw) sendJSON(body string) *engRawStream {
	r.t.Helper()
	if r.mode == modeMessage {
		env, err := DecodeEnvelope([]byte(body))
		if err != nil {
			r.t.Fatalf("message mode needs a decodable envelope: %v", err)
		}
		return r.send(env)
	}
	s := r.stream()
	b := binary.BigEndian.AppendUint32(nil, uint32(len(body)))
	if _, err := s.s.Write(append(b, body...)); err != nil {
		r.t.Fatalf("write: %v", err)
	}
	if r.mode == modeQUIC {
		_ = s.s.CloseWrite()
	}
	return s
}

// request returns a call.requested envelope.
func engRequest(t testing.TB, id, op string, in any) Envelope {
	t.Helper()
	input, err := encodeInput(in)
	if err != nil {
		t.Fatal(err)
	}
	env, err := NewRequest(id, op, input, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

// ---------------------------------------------------------------------------------
// Identities and operations

// engIDP is a fake IdentityProvider: tokens and fingerprints map to identities.
type engIDP struct {
	tokens       map[string]*core.Identity
	fingerprints map[string]*core.Identity
}

func (p engIDP) ResolveFromFingerprint(fp string) (*core.Identity, bool) {
	id, ok := p.fingerprints[fp]
	if !ok {
		return nil, false
	}
	c := id.Clone()
	return &c, true
}

func (p engIDP) ResolveFromToken(tok core.AuthToken) (*core.Identity, bool) {
	id, ok := p.tokens[string(tok.Raw)]
	if !ok {
		return nil, false
	}
	c := id.Clone()
	return &c, true
}

// engQuery is a Query registration.
func engQuery(name string, h Handler) Registration {
	return Registration{Spec: NewSpec(name, Query), Once: h}
}

// engSub is a Subscription registration.
func engSub(name string, h StreamHandler) Registration {
	return Registration{Spec: NewSpec(name, Subscription), Stream: h}
}

// engEcho answers its input.
func engEcho(name string) Registration {
	return engQuery(name, func(_ context.Context, _ *OpContext, in json.RawMessage) (json.RawMessage, error) {
		return in, nil
	})
}

// engRegistry returns a registry (with discovery) holding regs.
func engRegistry(t testing.TB, regs ...Registration) *Registry {
	t.Helper()
	r := NewRegistry()
	mustRegister(t, r, regs...)
	return r
}

// engModes runs f once per transport mode.
func engModes(t *testing.T, f func(t *testing.T, mode string)) {
	for _, mode := range allModes {
		t.Run(mode, func(t *testing.T) { f(t, mode) })
	}
}

// engStartServerRaw serves reg (any handlers) on a loopback endpoint; clients present
// s.client, which the server does not know.
func engStartServerRaw(t testing.TB, reg *core.Registry) *engServer {
	t.Helper()
	s := &engServer{client: coretest.NewIdentity(t), conns: make(chan *Conn, 16)}
	s.srv = coretest.NewServer(t, reg)
	return s
}
