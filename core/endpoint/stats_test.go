package endpoint_test

import (
	"context"
	"errors"
	"io"
	"testing"

	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/core/coretest"
	"github.com/alknet/alknet/core/endpoint"
)

// TestStatsStreamsAndTransports: served connections count by transport and ALPN;
// QUIC streams count when accepted and leave ActiveStreams when their handler closes
// them; a QUIC handshake that fails counts as one.
func TestStatsStreamsAndTransports(t *testing.T) {
	const alpn = "alknet/st"
	reg := newRegistry(t, map[string]core.Handler{alpn: core.HandlerFunc(func(ctx context.Context, conn *core.Connection, _ core.AuthContext) error {
		a, err := conn.AcceptBi(ctx)
		if err != nil {
			return err
		}
		var b [1]byte
		if _, err := io.ReadFull(a, b[:]); err != nil {
			return err
		}
		if _, err := a.Write(b[:]); err != nil {
			return err
		}
		if conn.SingleStream() {
			return a.CloseWrite()
		}
		// The second stream is closed by the handler before it answers on the first.
		s, err := conn.AcceptBi(ctx)
		if err != nil {
			return err
		}
		if _, err := io.ReadFull(s, b[:]); err != nil {
			return err
		}
		_ = s.Close()
		if _, err := a.Write([]byte("k")); err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, a)
		return nil
	})})
	srv := coretest.NewServer(t, reg)
	ctx := testCtx(t)
	client := coretest.NewIdentity(t)

	conn := srv.Dial(t, alpn, client, endpoint.NetworkQUIC)
	a, err := conn.OpenBi(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var b [1]byte
	if _, err := a.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(a, b[:]); err != nil {
		t.Fatal(err)
	}
	s := srv.Endpoint.Stats()
	if s.Streams != 1 || s.ActiveStreams != 1 || s.AcceptedBy[endpoint.ConnKey{Transport: "quic", ALPN: alpn}] != 1 {
		t.Fatalf("after one stream: streams %d active %d by %v", s.Streams, s.ActiveStreams, s.AcceptedBy)
	}
	st, err := conn.OpenBi(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Write([]byte("c")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(a, b[:]); err != nil || b[0] != 'k' {
		t.Fatalf("read k: %q %v", b, err)
	}
	if s := srv.Endpoint.Stats(); s.Streams != 2 || s.ActiveStreams != 1 {
		t.Fatalf("after a closed stream: streams %d active %d", s.Streams, s.ActiveStreams)
	}
	_ = a.Close()

	tc := srv.Dial(t, alpn, client, endpoint.NetworkTCP)
	ts, err := tc.OpenBi(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ts.Write([]byte("y")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(ts, b[:]); err != nil {
		t.Fatal(err)
	}
	if got := srv.Endpoint.Stats().AcceptedBy[endpoint.ConnKey{Transport: "tcp+tls", ALPN: alpn}]; got != 1 {
		t.Fatalf("tcp accepted = %d, want 1", got)
	}

	if _, err := srv.DialErr(ctx, "alknet/nope", client, endpoint.NetworkQUIC); !errors.Is(err, endpoint.ErrALPNRefused) {
		t.Fatalf("dial with an unknown ALPN: %v", err)
	}
	waitFor(t, func() bool { return srv.Endpoint.Stats().QUICHandshakeFailures >= 1 })
}
