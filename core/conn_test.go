package core_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"os"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/alknet/alknet/core"
)

// TestFromBidiRoundTrip checks that the stream FromBidi yields is a working duplex:
// bytes go both ways and CloseWrite is a half-close.
func TestFromBidiRoundTrip(t *testing.T) {
	server, client := newDuplex()
	remote := &net.TCPAddr{IP: net.IPv4(192, 0, 2, 7), Port: 4433}
	conn := core.FromBidi(server, "alknet/test", remote)

	if got := conn.RemoteALPN(); got != "alknet/test" {
		t.Errorf("RemoteALPN() = %q, want %q", got, "alknet/test")
	}
	if got := conn.RemoteAddr(); got != net.Addr(remote) {
		t.Errorf("RemoteAddr() = %v, want the constructor's %v", got, remote)
	}
	if !conn.SingleStream() {
		t.Error("SingleStream() = false for FromBidi, want true")
	}

	s, err := conn.AcceptBi(t.Context())
	if err != nil {
		t.Fatalf("first AcceptBi: %v", err)
	}
	if s != core.BiStream(server) {
		t.Fatalf("first AcceptBi returned %v, want the wrapped stream", s)
	}

	// client -> server
	errc := writeAsync(client, []byte("ping"))
	if got := readN(t, s, 4); got != "ping" {
		t.Errorf("server read %q, want %q", got, "ping")
	}
	if err := <-errc; err != nil {
		t.Fatalf("client write: %v", err)
	}
	// server -> client
	errc = writeAsync(s, []byte("pong"))
	if got := readN(t, client, 4); got != "pong" {
		t.Errorf("client read %q, want %q", got, "pong")
	}
	if err := <-errc; err != nil {
		t.Fatalf("server write: %v", err)
	}

	// Half-close from the client: the server sees EOF and can still answer.
	if err := client.CloseWrite(); err != nil {
		t.Fatalf("client CloseWrite: %v", err)
	}
	if n, err := s.Read(make([]byte, 8)); n != 0 || err != io.EOF {
		t.Fatalf("server read after client CloseWrite = %d, %v; want 0, io.EOF", n, err)
	}
	errc = writeAsync(s, []byte("late"))
	if got := readN(t, client, 4); got != "late" {
		t.Errorf("client read after its own CloseWrite %q, want %q", got, "late")
	}
	if err := <-errc; err != nil {
		t.Fatalf("server write after client half-close: %v", err)
	}
	if err := s.CloseWrite(); err != nil {
		t.Fatalf("server CloseWrite: %v", err)
	}
	if b, err := io.ReadAll(client); err != nil || len(b) != 0 {
		t.Fatalf("client ReadAll after server CloseWrite = %q, %v; want empty, nil", b, err)
	}

	if _, err := conn.AcceptBi(t.Context()); !errors.Is(err, core.ErrConnectionClosed) {
		t.Errorf("second AcceptBi error = %v, want ErrConnectionClosed", err)
	}
	if _, err := conn.OpenBi(t.Context()); !errors.Is(err, core.ErrStreamClosed) {
		t.Errorf("OpenBi after AcceptBi error = %v, want ErrStreamClosed", err)
	}
}

// TestSingleStreamYieldOnce checks the take-once contract: the one stream goes to
// whichever of AcceptBi and OpenBi comes first; afterwards AcceptBi reports
// ErrConnectionClosed and OpenBi ErrStreamClosed, every time.
func TestSingleStreamYieldOnce(t *testing.T) {
	type step struct {
		op         string // "accept", "open" or "close"
		cancelled  bool   // call with an already cancelled context
		wantStream bool
		wantErr    error
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"accept first", []step{
			{op: "accept", wantStream: true},
			{op: "accept", wantErr: core.ErrConnectionClosed},
			{op: "open", wantErr: core.ErrStreamClosed},
			{op: "accept", wantErr: core.ErrConnectionClosed},
			{op: "open", wantErr: core.ErrStreamClosed},
		}},
		{"open first (client side)", []step{
			{op: "open", wantStream: true},
			{op: "open", wantErr: core.ErrStreamClosed},
			{op: "accept", wantErr: core.ErrConnectionClosed},
		}},
		{"closed before anyone took it", []step{
			{op: "close"},
			{op: "accept", wantErr: core.ErrConnectionClosed},
			{op: "open", wantErr: core.ErrStreamClosed},
		}},
		{"cancelled context does not take the stream", []step{
			{op: "accept", cancelled: true, wantErr: context.Canceled},
			{op: "open", cancelled: true, wantErr: context.Canceled},
			{op: "accept", wantStream: true},
			{op: "accept", wantErr: core.ErrConnectionClosed},
		}},
		{"cancelled context after take", []step{
			{op: "open", wantStream: true},
			{op: "accept", cancelled: true, wantErr: context.Canceled},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			server, _ := newDuplex()
			conn := core.FromBidi(server, "alknet/test", nil)
			for i, st := range tt.steps {
				ctx := t.Context()
				if st.cancelled {
					c, cancel := context.WithCancel(ctx)
					cancel()
					ctx = c
				}
				var (
					s   core.BiStream
					err error
				)
				switch st.op {
				case "accept":
					s, err = conn.AcceptBi(ctx)
				case "open":
					s, err = conn.OpenBi(ctx)
				case "close":
					conn.Close(core.CloseNormal, "")
					continue
				}
				if st.wantStream {
					if err != nil || s != core.BiStream(server) {
						t.Fatalf("step %d %s: got %v, %v; want the stream", i, st.op, s, err)
					}
					continue
				}
				if s != nil || !errors.Is(err, st.wantErr) {
					t.Fatalf("step %d %s: got %v, %v; want nil, %v", i, st.op, s, err, st.wantErr)
				}
			}
		})
	}
}

// TestSingleStreamConcurrentTakers checks that racing AcceptBi and OpenBi calls hand
// the stream to exactly one caller.
func TestSingleStreamConcurrentTakers(t *testing.T) {
	const n = 16
	server, _ := newDuplex()
	conn := core.FromBidi(server, "alknet/test", nil)
	start := make(chan struct{})
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		winners int
		bad     []error
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			var (
				s    core.BiStream
				err  error
				want error
			)
			if i%2 == 0 {
				s, err = conn.AcceptBi(context.Background())
				want = core.ErrConnectionClosed
			} else {
				s, err = conn.OpenBi(context.Background())
				want = core.ErrStreamClosed
			}
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil && s == core.BiStream(server):
				winners++
			case !errors.Is(err, want):
				bad = append(bad, err)
			}
		}()
	}
	close(start)
	wg.Wait()
	if winners != 1 {
		t.Errorf("%d callers got the stream, want exactly 1", winners)
	}
	if len(bad) > 0 {
		t.Errorf("unexpected errors from losing callers: %v", bad)
	}
}

// TestSingleStreamAcceptLoopTerminates checks that a handler looping on AcceptBi until
// ErrConnectionClosed (the multi-stream idiom) ends cleanly on a single stream.
func TestSingleStreamAcceptLoopTerminates(t *testing.T) {
	server, _ := newDuplex()
	conn := core.FromBidi(server, "alknet/test", nil)
	streams := 0
	for i := 0; ; i++ {
		if i > 10 {
			t.Fatal("AcceptBi loop did not terminate")
		}
		_, err := conn.AcceptBi(t.Context())
		if errors.Is(err, core.ErrConnectionClosed) {
			break
		}
		if err != nil {
			t.Fatalf("AcceptBi: %v", err)
		}
		streams++
	}
	if streams != 1 {
		t.Errorf("loop got %d streams, want 1", streams)
	}
}

// TestSingleStreamClose checks that Connection.Close closes the stream exactly once,
// whether or not it was taken, and that the peer then reads EOF.
func TestSingleStreamClose(t *testing.T) {
	for _, taken := range []bool{false, true} {
		name := "untaken"
		if taken {
			name = "taken"
		}
		t.Run(name, func(t *testing.T) {
			server, client := newDuplex()
			conn := core.FromBidi(server, "alknet/test", nil)
			if taken {
				if _, err := conn.AcceptBi(t.Context()); err != nil {
					t.Fatalf("AcceptBi: %v", err)
				}
			}
			conn.Close(core.CloseInternalError, "boom")
			conn.Close(core.CloseNormal, "again")
			if got := server.closes.Load(); got != 1 {
				t.Errorf("stream closed %d times, want 1", got)
			}
			if b, err := io.ReadAll(client); err != nil || len(b) != 0 {
				t.Errorf("peer read after Close = %q, %v; want EOF", b, err)
			}
			if _, err := conn.AcceptBi(t.Context()); !errors.Is(err, core.ErrConnectionClosed) {
				t.Errorf("AcceptBi after Close = %v, want ErrConnectionClosed", err)
			}
		})
	}
}

// TestNewConnectionDelegates checks that a Connection over a custom source forwards
// AcceptBi, OpenBi, RemoteAddr and Close (code and reason verbatim) and adds nothing.
func TestNewConnectionDelegates(t *testing.T) {
	stream, _ := newDuplex()
	remote := &net.UDPAddr{IP: net.ParseIP("2001:db8::1"), Port: 443}
	srcErr := errors.New("source failure")
	src := &fakeSource{stream: stream, remote: remote}
	conn := core.NewConnection(src, "alknet/call")

	ctx := context.WithValue(t.Context(), ctxKey{}, "marker")
	if s, err := conn.AcceptBi(ctx); err != nil || s != core.BiStream(stream) {
		t.Errorf("AcceptBi = %v, %v; want the source's stream", s, err)
	}
	if s, err := conn.OpenBi(ctx); err != nil || s != core.BiStream(stream) {
		t.Errorf("OpenBi = %v, %v; want the source's stream (a custom source may yield many)", s, err)
	}
	if got := conn.RemoteAddr(); got != net.Addr(remote) {
		t.Errorf("RemoteAddr = %v, want %v", got, remote)
	}
	if got := conn.RemoteALPN(); got != "alknet/call" {
		t.Errorf("RemoteALPN = %q, want alknet/call", got)
	}
	if conn.SingleStream() {
		t.Error("SingleStream() = true for a source without SingleStream, want false")
	}
	if got := conn.LocalAddr(); got != nil {
		t.Errorf("LocalAddr = %v for a source without LocalAddr, want nil", got)
	}
	if _, ok := conn.TLSConnectionState(); ok {
		t.Error("TLSConnectionState ok for a source without TLS, want false")
	}
	if got := conn.PeerFingerprint(); got != "" {
		t.Errorf("PeerFingerprint = %q for a source without TLS, want empty", got)
	}
	conn.Close(42, "shutting down")

	src.err = srcErr
	src.stream = nil
	if _, err := conn.AcceptBi(ctx); err != srcErr {
		t.Errorf("AcceptBi error = %v, want the source's error unchanged", err)
	}

	wantCalls := []string{"AcceptBi", "OpenBi", "RemoteAddr", "Close", "AcceptBi"}
	if got := src.callLog(); !slices.Equal(got, wantCalls) {
		t.Errorf("source calls = %v, want %v", got, wantCalls)
	}
	src.mu.Lock()
	defer src.mu.Unlock()
	if src.closeCode != 42 || src.closeReason != "shutting down" {
		t.Errorf("source Close got (%d, %q), want (42, %q)", src.closeCode, src.closeReason, "shutting down")
	}
	for i, v := range src.ctxValues {
		if v != "marker" {
			t.Errorf("call %d: source saw context value %v, want the caller's context", i, v)
		}
	}
}

func TestSetIdentityOnce(t *testing.T) {
	stream, _ := newDuplex()
	conn := core.FromBidi(stream, "alknet/test", nil)
	if id, ok := conn.Identity(); ok || !reflect.DeepEqual(id, core.Identity{}) {
		t.Fatalf("Identity() before SetIdentity = %+v, %v; want zero, false", id, ok)
	}
	first := core.Identity{ID: "alice", Scopes: []string{"admin"}}
	if err := conn.SetIdentity(first); err != nil {
		t.Fatalf("first SetIdentity: %v", err)
	}
	err := conn.SetIdentity(core.Identity{ID: "mallory"})
	if !errors.Is(err, core.ErrIdentityAlreadySet) {
		t.Fatalf("second SetIdentity error = %v, want ErrIdentityAlreadySet", err)
	}
	if id, ok := conn.Identity(); !ok || id.ID != "alice" {
		t.Errorf("Identity() = %+v, %v; want alice, true", id, ok)
	}
}

func TestSetIdentityConcurrentOneWinner(t *testing.T) {
	const n = 32
	stream, _ := newDuplex()
	conn := core.FromBidi(stream, "alknet/test", nil)
	start := make(chan struct{})
	results := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			results[i] = conn.SetIdentity(core.Identity{ID: string(rune('A' + i))})
		}()
	}
	close(start)
	wg.Wait()
	winner := -1
	for i, err := range results {
		switch {
		case err == nil:
			if winner >= 0 {
				t.Fatalf("SetIdentity succeeded for both %d and %d", winner, i)
			}
			winner = i
		case !errors.Is(err, core.ErrIdentityAlreadySet):
			t.Errorf("SetIdentity %d: %v, want ErrIdentityAlreadySet", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no SetIdentity call succeeded")
	}
	if id, ok := conn.Identity(); !ok || id.ID != string(rune('A'+winner)) {
		t.Errorf("Identity() = %+v, %v; want the winner %q", id, ok, string(rune('A'+winner)))
	}
}

// TestIdentityDeepCopy checks that neither the value passed to SetIdentity nor the value
// Identity returns shares memory with what the Connection keeps.
func TestIdentityDeepCopy(t *testing.T) {
	stream, _ := newDuplex()
	conn := core.FromBidi(stream, "alknet/test", nil)
	in := core.Identity{
		ID:        "alice",
		Scopes:    []string{"relay:connect"},
		Resources: map[string][]string{"service": {"gitea"}},
	}
	want := core.Identity{
		ID:        "alice",
		Scopes:    []string{"relay:connect"},
		Resources: map[string][]string{"service": {"gitea"}},
	}
	if err := conn.SetIdentity(in); err != nil {
		t.Fatal(err)
	}
	in.Scopes[0] = "admin"
	in.Resources["service"][0] = "everything"
	in.Resources["extra"] = []string{"x"}

	got, _ := conn.Identity()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("after mutating the input, Identity() = %+v, want %+v", got, want)
	}
	got.Scopes[0] = "admin"
	got.Resources["service"][0] = "everything"
	delete(got.Resources, "service")
	again, _ := conn.Identity()
	if !reflect.DeepEqual(again, want) {
		t.Fatalf("after mutating a returned copy, Identity() = %+v, want %+v", again, want)
	}
}

// deadlineStream is a BiStream with deadline methods and a local address.
type deadlineStream struct {
	*pipeStream
	mu        sync.Mutex
	deadlines []string
	local     net.Addr
}

func (d *deadlineStream) note(s string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.deadlines = append(d.deadlines, s)
	return nil
}
func (d *deadlineStream) SetDeadline(time.Time) error      { return d.note("both") }
func (d *deadlineStream) SetReadDeadline(time.Time) error  { return d.note("read") }
func (d *deadlineStream) SetWriteDeadline(time.Time) error { return d.note("write") }
func (d *deadlineStream) LocalAddr() net.Addr              { return d.local }

func TestNetConn(t *testing.T) {
	local := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}
	remote := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 2}

	t.Run("net.Conn passes through", func(t *testing.T) {
		a, b := net.Pipe()
		defer a.Close()
		defer b.Close()
		s := pipeConn{a}
		if got := core.NetConn(s, local, remote); got != net.Conn(s) {
			t.Errorf("NetConn(net.Conn) = %v, want the same value", got)
		}
	})

	t.Run("no deadlines", func(t *testing.T) {
		server, client := newDuplex()
		nc := core.NetConn(server, local, remote)
		if nc.LocalAddr() != net.Addr(local) || nc.RemoteAddr() != net.Addr(remote) {
			t.Errorf("addresses = %v, %v; want %v, %v", nc.LocalAddr(), nc.RemoteAddr(), local, remote)
		}
		for name, set := range map[string]func(time.Time) error{
			"SetDeadline": nc.SetDeadline, "SetReadDeadline": nc.SetReadDeadline, "SetWriteDeadline": nc.SetWriteDeadline,
		} {
			if err := set(time.Time{}); !errors.Is(err, os.ErrNoDeadline) {
				t.Errorf("%s = %v, want os.ErrNoDeadline", name, err)
			}
		}
		errc := writeAsync(nc, []byte("via net.Conn"))
		if got := readN(t, client, len("via net.Conn")); got != "via net.Conn" {
			t.Errorf("peer read %q", got)
		}
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
		if err := nc.Close(); err != nil {
			t.Fatal(err)
		}
		if server.closes.Load() != 1 {
			t.Error("Close on the adapter did not close the stream")
		}
	})

	t.Run("nil addresses", func(t *testing.T) {
		server, _ := newDuplex()
		nc := core.NetConn(server, nil, nil)
		if nc.LocalAddr() != nil || nc.RemoteAddr() != nil {
			t.Errorf("addresses = %v, %v; want nil, nil", nc.LocalAddr(), nc.RemoteAddr())
		}
	})

	t.Run("deadlines forwarded", func(t *testing.T) {
		p, _ := newDuplex()
		ds := &deadlineStream{pipeStream: p}
		nc := core.NetConn(ds, nil, nil)
		for _, f := range []func(time.Time) error{nc.SetDeadline, nc.SetReadDeadline, nc.SetWriteDeadline} {
			if err := f(time.Time{}); err != nil {
				t.Fatal(err)
			}
		}
		ds.mu.Lock()
		defer ds.mu.Unlock()
		if want := []string{"both", "read", "write"}; !slices.Equal(ds.deadlines, want) {
			t.Errorf("forwarded deadline calls = %v, want %v", ds.deadlines, want)
		}
	})
}

// pipeConn is a net.Conn that also has CloseWrite, so it is a BiStream.
type pipeConn struct{ net.Conn }

func (p pipeConn) CloseWrite() error { return nil }

// tlsStateStream is a BiStream that reports a TLS state the way *tls.Conn does.
type tlsStateStream struct {
	*deadlineStream
	state tls.ConnectionState
}

func (s *tlsStateStream) ConnectionState() tls.ConnectionState { return s.state }

// TestFromBidiOptionalInterfaces checks that LocalAddr and the TLS state of the wrapped
// stream reach the Connection, and that a stream without TLS reports none.
func TestFromBidiOptionalInterfaces(t *testing.T) {
	k := keys(t)
	der := selfSignedDER(t, k.ec.Public(), k.ec)
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	local := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9}

	t.Run("plain stream", func(t *testing.T) {
		p, _ := newDuplex()
		conn := core.FromBidi(p, "alknet/test", nil)
		if got := conn.LocalAddr(); got != nil {
			t.Errorf("LocalAddr = %v, want nil", got)
		}
		if _, ok := conn.TLSConnectionState(); ok {
			t.Error("TLSConnectionState ok = true for a stream without TLS")
		}
		if got := conn.PeerFingerprint(); got != "" {
			t.Errorf("PeerFingerprint = %q, want empty", got)
		}
	})

	t.Run("tls stream", func(t *testing.T) {
		p, _ := newDuplex()
		s := &tlsStateStream{
			deadlineStream: &deadlineStream{pipeStream: p, local: local},
			state:          tls.ConnectionState{NegotiatedProtocol: "alknet/test", PeerCertificates: []*x509.Certificate{cert}},
		}
		conn := core.FromBidi(s, "alknet/test", nil)
		if got := conn.LocalAddr(); got != net.Addr(local) {
			t.Errorf("LocalAddr = %v, want %v", got, local)
		}
		st, ok := conn.TLSConnectionState()
		if !ok || st.NegotiatedProtocol != "alknet/test" {
			t.Errorf("TLSConnectionState = %q, %v; want alknet/test, true", st.NegotiatedProtocol, ok)
		}
		if got, want := conn.PeerFingerprint(), core.FingerprintFromCert(cert); got != want || !sha256FPRe.MatchString(got) {
			t.Errorf("PeerFingerprint = %q, want %q", got, want)
		}
	})

	t.Run("tls stream without client certificate", func(t *testing.T) {
		p, _ := newDuplex()
		s := &tlsStateStream{deadlineStream: &deadlineStream{pipeStream: p}, state: tls.ConnectionState{HandshakeComplete: true}}
		conn := core.FromBidi(s, "alknet/test", nil)
		if _, ok := conn.TLSConnectionState(); !ok {
			t.Error("TLSConnectionState ok = false for a TLS stream")
		}
		if got := conn.PeerFingerprint(); got != "" {
			t.Errorf("PeerFingerprint = %q, want empty", got)
		}
	})
}

func TestAnonymousAuthContext(t *testing.T) {
	got := core.AnonymousAuthContext("alknet/call")
	want := core.AuthContext{ALPN: "alknet/call"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("AnonymousAuthContext = %+v, want %+v", got, want)
	}
}

func TestServeStreams(t *testing.T) {
	t.Run("single stream: serves it, waits for it, returns nil", func(t *testing.T) {
		a, b := newDuplex()
		conn := core.FromBidi(b, "alknet/test", nil)
		served := make(chan struct{})
		done := make(chan error, 1)
		go func() {
			done <- core.ServeStreams(context.Background(), conn, func(s core.BiStream) {
				defer close(served)
				if _, err := io.Copy(s, s); err != nil {
					t.Error(err)
				}
				_ = s.CloseWrite()
			})
		}()
		werr := writeAsync(a, []byte("ping"))
		if err := <-werr; err != nil {
			t.Fatal(err)
		}
		_ = a.CloseWrite()
		if got := readN(t, a, 4); got != "ping" {
			t.Fatalf("echo = %q", got)
		}
		if err := <-done; err != nil {
			t.Fatalf("ServeStreams = %v, want nil", err)
		}
		select {
		case <-served:
		default:
			t.Fatal("ServeStreams returned before serve finished")
		}
	})
	t.Run("other accept errors are returned", func(t *testing.T) {
		src := &fakeSource{err: core.ErrStreamTimeout}
		err := core.ServeStreams(context.Background(), core.NewConnection(src, "x"), func(core.BiStream) {
			t.Error("serve called")
		})
		if !errors.Is(err, core.ErrStreamTimeout) {
			t.Fatalf("ServeStreams = %v", err)
		}
	})
}
