package endpoint_test

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/core/coretest"
	"github.com/alknet/alknet/core/endpoint"
)

// replier answers the first stream with "bye" and returns nil, so the endpoint lingers.
func replier() core.Handler {
	return core.HandlerFunc(func(ctx context.Context, conn *core.Connection, _ core.AuthContext) error {
		s, err := conn.AcceptBi(ctx)
		if err != nil {
			return err
		}
		if _, err := io.Copy(io.Discard, s); err != nil {
			return err
		}
		if _, err := io.WriteString(s, "bye"); err != nil {
			return err
		}
		return s.CloseWrite()
	})
}

// TestCloseLingerEndsWithoutThePeer: a peer that read the answer but never closes is
// closed by the endpoint once CloseLinger has passed.
func TestCloseLingerEndsWithoutThePeer(t *testing.T) {
	for _, n := range networks {
		t.Run(n.String(), func(t *testing.T) {
			reg := newRegistry(t, map[string]core.Handler{"alknet/bye": replier()})
			srv := coretest.NewServer(t, reg,
				coretest.WithConfig(core.DynamicConfig{Limits: core.Limits{IdleTimeout: -1}}),
				coretest.WithEndpointConfig(func(c *endpoint.Config) { c.CloseLinger = 100 * time.Millisecond }))
			ctx := testCtx(t)
			conn := srv.Dial(t, "alknet/bye", nil, n)
			got, err := coretest.RoundTrip(ctx, conn, []byte("hi"))
			if err != nil || string(got) != "bye" {
				t.Fatalf("round trip: %q, %v", got, err)
			}
			// The client keeps the connection open; the linger ends it.
			waitFor(t, func() bool { return srv.Endpoint.Stats().Connections == 0 })
			_, err = conn.AcceptBi(ctx)
			if !errors.Is(err, core.ErrConnectionClosed) {
				t.Fatalf("client after the linger: %v, want connection closed", err)
			}
			if len(srv.Logs.Lines("alpn=alknet/bye", "outcome=ok")) != 1 {
				t.Fatalf("logs:\n%s", srv.Logs)
			}
		})
	}
}

// TestCloseLingerEndsWhenThePeerCloses: with a linger far longer than the test, a peer
// that closes after reading ends it at once.
func TestCloseLingerEndsWhenThePeerCloses(t *testing.T) {
	for _, n := range networks {
		t.Run(n.String(), func(t *testing.T) {
			reg := newRegistry(t, map[string]core.Handler{"alknet/bye": replier()})
			srv := coretest.NewServer(t, reg, coretest.WithEndpointConfig(func(c *endpoint.Config) { c.CloseLinger = time.Hour }))
			ctx := testCtx(t)
			conn := srv.Dial(t, "alknet/bye", nil, n)
			got, err := coretest.RoundTrip(ctx, conn, []byte("hi"))
			if err != nil || string(got) != "bye" {
				t.Fatalf("round trip: %q, %v", got, err)
			}
			conn.Close(core.CloseNormal, "")
			waitFor(t, func() bool { return srv.Endpoint.Stats().Connections == 0 })
		})
	}
}

// TestQUICMaxIdleTimeoutAndKeepAlive: without keep-alives on either side a silent QUIC
// connection dies after MaxIdleTimeout (the application idle timeout is off here); with
// the server's KeepAlivePeriod below it, it lives on.
func TestQUICMaxIdleTimeoutAndKeepAlive(t *testing.T) {
	const idle = 300 * time.Millisecond
	noAppIdle := coretest.WithConfig(core.DynamicConfig{Limits: core.Limits{IdleTimeout: -1}})
	dial := func(t *testing.T, srv *coretest.Server) *core.Connection {
		opts := srv.DialOptions(nil, endpoint.NetworkQUIC)
		opts.KeepAlivePeriod = -1
		opts.MaxIdleTimeout = time.Hour // the smaller of the two sides' values applies
		conn, err := endpoint.Dial(testCtx(t), srv.Addr, "alknet/echo", opts)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close(core.CloseNormal, "") })
		return conn
	}
	t.Run("silent connection times out", func(t *testing.T) {
		reg := newRegistry(t, map[string]core.Handler{"alknet/echo": coretest.Echo()})
		srv := coretest.NewServer(t, reg, noAppIdle, coretest.WithEndpointConfig(func(c *endpoint.Config) {
			c.MaxIdleTimeout = idle
			c.KeepAlivePeriod = -1
		}))
		conn := dial(t, srv)
		_, err := conn.AcceptBi(testCtx(t))
		if !errors.Is(err, core.ErrStreamTimeout) || !errors.Is(err, core.ErrConnectionClosed) {
			t.Fatalf("silent connection ended with %v, want an idle timeout", err)
		}
		waitFor(t, func() bool { return srv.Endpoint.Stats().Connections == 0 })
	})
	t.Run("server keep-alives hold it", func(t *testing.T) {
		reg := newRegistry(t, map[string]core.Handler{"alknet/echo": coretest.Echo()})
		srv := coretest.NewServer(t, reg, noAppIdle, coretest.WithEndpointConfig(func(c *endpoint.Config) {
			c.MaxIdleTimeout = idle
			c.KeepAlivePeriod = idle / 3
		}))
		conn := dial(t, srv)
		time.Sleep(4 * idle) // quiet time: what is asserted is that nothing closes
		if got, err := coretest.RoundTrip(testCtx(t), conn, []byte("hi")); err != nil || string(got) != "hi" {
			t.Fatalf("after %s of silence: %q, %v", 4*idle, got, err)
		}
	})
}
