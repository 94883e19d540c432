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

// waitClosed reads from conn's stream until the server closes it and returns the error.
func waitClosed(t *testing.T, s core.BiStream) error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, s)
		if err == nil {
			err = io.EOF
		}
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-time.After(testTimeout):
		t.Fatal("server never closed the idle connection")
		return nil
	}
}

func TestIdleTimeoutClosesQuietConnectionAndFreesItsSlot(t *testing.T) {
	for _, n := range networks {
		t.Run(n.String(), func(t *testing.T) {
			reg := newRegistry(t, map[string]core.Handler{"alknet/echo": coretest.Echo()})
			limits := core.Limits{IdleTimeout: 150 * time.Millisecond, MaxConnections: 1, MaxConnectionsPerIP: -1}
			srv := coretest.NewServer(t, reg, coretest.WithConfig(core.DynamicConfig{Limits: limits}))
			ctx := testCtx(t)
			conn := srv.Dial(t, "alknet/echo", nil, n)
			s, err := conn.OpenBi(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.Write([]byte("x")); err != nil { // open the stream on QUIC
				t.Fatal(err)
			}
			err = waitClosed(t, s)
			var ce *core.CloseError
			if n == endpoint.NetworkQUIC && (!errors.As(err, &ce) || ce.Code != core.CloseIdleTimeout || ce.Reason != "idle timeout") {
				t.Fatalf("QUIC close = %v, want code %d \"idle timeout\"", err, core.CloseIdleTimeout)
			}
			waitFor(t, func() bool { return srv.Endpoint.Stats().Connections == 0 })
			if lines := srv.Logs.Lines("msg=connection", "alpn=alknet/echo", "outcome=idle_timeout"); len(lines) != 1 {
				t.Fatalf("want one idle_timeout connection line, logs:\n%s", srv.Logs)
			}
			// The only slot is free again: a legitimate client gets in.
			next := srv.Dial(t, "alknet/echo", nil, n)
			if got, err := coretest.RoundTrip(ctx, next, []byte("hi")); err != nil || string(got) != "hi" {
				t.Fatalf("next client: %q, %v", got, err)
			}
		})
	}
}

func TestIdleTimeoutIsResetByTraffic(t *testing.T) {
	for _, n := range networks {
		t.Run(n.String(), func(t *testing.T) {
			reg := newRegistry(t, map[string]core.Handler{"alknet/echo": coretest.Echo()})
			idle := 400 * time.Millisecond
			srv := coretest.NewServer(t, reg, coretest.WithConfig(core.DynamicConfig{Limits: core.Limits{IdleTimeout: idle}}))
			ctx := testCtx(t)
			conn := srv.Dial(t, "alknet/echo", nil, n)
			s, err := conn.OpenBi(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			// Traffic every 50 ms for three idle periods: each byte resets the timer.
			buf := make([]byte, 1)
			for end := time.Now().Add(3 * idle); time.Now().Before(end); {
				if _, err := s.Write([]byte("x")); err != nil {
					t.Fatalf("write: %v", err)
				}
				if _, err := io.ReadFull(s, buf); err != nil {
					t.Fatalf("connection closed despite traffic: %v", err)
				}
				time.Sleep(50 * time.Millisecond) // pacing, not synchronisation
			}
			if r := srv.Logs.Lines("outcome=idle_timeout"); len(r) != 0 {
				t.Fatalf("closed as idle: %v", r)
			}
		})
	}
}

func TestBusyConnectionOutlivesIdleTimeout(t *testing.T) {
	for _, n := range networks {
		t.Run(n.String(), func(t *testing.T) {
			working := make(chan struct{})
			finish := make(chan struct{})
			reg := newRegistry(t, map[string]core.Handler{"alknet/work": core.HandlerFunc(func(ctx context.Context, conn *core.Connection, _ core.AuthContext) error {
				s, err := conn.AcceptBi(ctx)
				if err != nil {
					return err
				}
				done := conn.Busy()
				inner := conn.Busy() // nests
				close(working)
				<-finish // quiet work, longer than the idle timeout
				inner()
				done()
				done() // idempotent
				_, err = io.Copy(io.Discard, s)
				return err
			})})
			idle := 100 * time.Millisecond
			srv := coretest.NewServer(t, reg, coretest.WithConfig(core.DynamicConfig{Limits: core.Limits{IdleTimeout: idle}}))
			ctx := testCtx(t)
			conn := srv.Dial(t, "alknet/work", nil, n)
			s, err := conn.OpenBi(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.Write([]byte("x")); err != nil {
				t.Fatal(err)
			}
			<-working
			time.Sleep(5 * idle) // quiet, busy time: what is asserted is that nothing closes
			if srv.Endpoint.Stats().Connections != 1 || len(srv.Logs.Lines("outcome=idle_timeout")) != 0 {
				t.Fatalf("busy connection closed, logs:\n%s", srv.Logs)
			}
			close(finish)
			// Once the work is done the idle timeout applies again.
			waitClosed(t, s)
			waitFor(t, func() bool { return len(srv.Logs.Lines("outcome=idle_timeout")) == 1 })
		})
	}
}

func TestIdleTimeoutNegativeMeansNone(t *testing.T) {
	reg := newRegistry(t, map[string]core.Handler{"alknet/echo": coretest.Echo()})
	srv := coretest.NewServer(t, reg, coretest.WithConfig(core.DynamicConfig{Limits: core.Limits{IdleTimeout: -1}}))
	conn := srv.Dial(t, "alknet/echo", nil, endpoint.NetworkTCP)
	time.Sleep(300 * time.Millisecond) // quiet time: what is asserted is that nothing closes
	if got, err := coretest.RoundTrip(testCtx(t), conn, []byte("hi")); err != nil || string(got) != "hi" {
		t.Fatalf("after a quiet time: %q, %v", got, err)
	}
}

func TestConnectionBudgetsFromLimits(t *testing.T) {
	for _, n := range networks {
		t.Run(n.String(), func(t *testing.T) {
			type result struct {
				used, limit int64
				err         error
			}
			results := make(chan result, 4)
			hold := make(chan struct{})
			reg := newRegistry(t, map[string]core.Handler{"alknet/mem": core.HandlerFunc(func(ctx context.Context, conn *core.Connection, _ core.AuthContext) error {
				b := conn.Budget()
				err := b.Reserve(600)
				results <- result{used: b.Used(), limit: b.Limit(), err: err}
				<-hold
				if err == nil {
					b.Release(600)
				}
				return nil
			})})
			limits := core.Limits{MaxBufferedBytesPerConn: 1000, MaxBufferedBytesPerIP: 1000, MaxBufferedBytes: 5000}
			srv := coretest.NewServer(t, reg, coretest.WithConfig(core.DynamicConfig{Limits: limits}))
			srv.Dial(t, "alknet/mem", nil, n)
			first := <-results
			if first.err != nil || first.used != 600 || first.limit != 1000 {
				t.Fatalf("first connection: %+v", first)
			}
			// A second connection from the same address shares the address's 1000 bytes.
			srv.Dial(t, "alknet/mem", nil, n)
			second := <-results
			var be *core.BudgetError
			if !errors.As(second.err, &be) || be.Scope != core.BudgetScopeIP || be.Limit != 1000 {
				t.Fatalf("second connection: %+v", second)
			}
			close(hold)
		})
	}
}
