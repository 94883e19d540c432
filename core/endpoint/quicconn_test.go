package endpoint_test

import (
	"context"
	"errors"
	"io"
	"testing"

	"github.com/quic-go/quic-go"

	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/core/coretest"
	"github.com/alknet/alknet/core/endpoint"
)

func TestQUICConn(t *testing.T) {
	type result struct {
		ok   bool
		alpn string
	}
	out := make(chan result, 2)
	reg := newRegistry(t, map[string]core.Handler{"alknet/q": core.HandlerFunc(
		func(ctx context.Context, conn *core.Connection, _ core.AuthContext) error {
			qc, ok := endpoint.QUICConn(conn)
			r := result{ok: ok}
			if ok {
				r.alpn = qc.ConnectionState().TLS.NegotiatedProtocol
			}
			out <- r
			_, _ = conn.AcceptBi(ctx) // until the client leaves
			return nil
		})})
	srv := coretest.NewServer(t, reg)
	ctx := testCtx(t)
	for _, tc := range []struct {
		net  endpoint.Network
		want result
	}{
		{endpoint.NetworkQUIC, result{ok: true, alpn: "alknet/q"}},
		{endpoint.NetworkTCP, result{}},
	} {
		conn := srv.Dial(t, "alknet/q", nil, tc.net)
		select {
		case got := <-out:
			if got != tc.want {
				t.Errorf("%s: QUICConn = %+v, want %+v", tc.net, got, tc.want)
			}
		case <-ctx.Done():
			t.Fatalf("%s: the handler did not run", tc.net)
		}
		conn.Close(core.CloseNormal, "")
	}
	if qc, ok := endpoint.QUICConn(nil); ok || qc != nil {
		t.Error("QUICConn(nil) reported a connection")
	}
	// A client's dialed connection is QUIC too.
	conn := srv.Dial(t, "alknet/q", nil, endpoint.NetworkQUIC)
	if _, ok := endpoint.QUICConn(conn); !ok {
		t.Error("QUICConn of a dialed QUIC connection: not ok")
	}
}

// uniStreams is a handler that declares n unidirectional streams per connection.
type uniStreams struct {
	core.Handler
	n int64
}

func (u uniStreams) MaxIncomingUniStreams() int64 { return u.n }

// uniCollector reads, through the QUIC connection itself, the first n unidirectional
// streams' first bytes and reports them, one string per stream, then waits for the
// client to leave.
func uniCollector(n int, out chan<- string) core.Handler {
	return core.HandlerFunc(func(ctx context.Context, conn *core.Connection, _ core.AuthContext) error {
		qc, ok := endpoint.QUICConn(conn)
		if !ok {
			out <- "error: not QUIC"
			return nil
		}
		for range n {
			st, err := qc.AcceptUniStream(ctx)
			if err != nil {
				out <- "error: " + err.Error()
				return nil
			}
			b := make([]byte, 1)
			if _, err := io.ReadFull(st, b); err != nil {
				out <- "error: " + err.Error()
				return nil
			}
			out <- string(b)
		}
		_, _ = conn.AcceptBi(ctx)
		return nil
	})
}

func TestUniStreamHandlerGetsItsStreams(t *testing.T) {
	got := make(chan string, 4)
	reg := newRegistry(t, map[string]core.Handler{
		"alknet/uni3":  uniStreams{Handler: uniCollector(3, got), n: 3},
		"alknet/plain": uniReader(make(chan string, 1), nil),
	})
	srv := coretest.NewServer(t, reg)
	ctx := testCtx(t)
	qc := rawQUIC(t, ctx, srv, "alknet/uni3")
	for _, b := range []string{"a", "b", "c"} {
		us, err := qc.OpenUniStream()
		if err != nil {
			t.Fatalf("OpenUniStream %s: %v", b, err)
		}
		if _, err := us.Write([]byte(b)); err != nil {
			t.Fatal(err)
		}
	}
	// Three are open (none finished): the listener granted three, no more.
	if _, err := qc.OpenUniStream(); !errors.Is(err, &quic.StreamLimitReachedError{}) {
		t.Fatalf("fourth OpenUniStream: %v, want StreamLimitReachedError", err)
	}
	seen := map[string]bool{}
	for range 3 {
		select {
		case s := <-got:
			seen[s] = true
		case <-ctx.Done():
			t.Fatal("the handler did not read three unidirectional streams")
		}
	}
	if !seen["a"] || !seen["b"] || !seen["c"] {
		t.Fatalf("handler read %v, want a, b and c", seen)
	}
}

func TestUniStreamRefusedOnOtherALPN(t *testing.T) {
	for _, tc := range []struct {
		name     string
		explicit int64 // Config.MaxIncomingUniStreams
		want     string
	}{
		// Granted for alknet/uni3 only: the plain handler's peer is refused.
		{name: "declared", want: "refused"},
		// Granted for all by the endpoint's configuration: the plain handler sees it.
		{name: "configured", explicit: 1, want: "x"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plain := make(chan string, 1)
			started := make(chan struct{}, 1)
			reg := newRegistry(t, map[string]core.Handler{
				"alknet/uni3":  uniStreams{Handler: uniCollector(3, make(chan string, 3)), n: 3},
				"alknet/plain": uniReader(plain, started),
			})
			srv := coretest.NewServer(t, reg, coretest.WithEndpointConfig(func(c *endpoint.Config) {
				c.MaxIncomingUniStreams = tc.explicit
			}))
			ctx := testCtx(t)
			qc := rawQUIC(t, ctx, srv, "alknet/plain")
			select {
			case <-started:
			case <-ctx.Done():
				t.Fatal("the handler did not start")
			}
			us, err := qc.OpenUniStreamSync(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := us.Write([]byte("x")); err != nil {
				t.Fatal(err)
			}
			if err := us.Close(); err != nil {
				t.Fatal(err)
			}
			select {
			case <-qc.Context().Done():
			case <-ctx.Done():
				t.Fatal("connection still open")
			}
			var ae *quic.ApplicationError
			err = context.Cause(qc.Context())
			if !errors.As(err, &ae) {
				t.Fatalf("connection ended with %v, want an application close", err)
			}
			var got string
			select {
			case got = <-plain:
			case <-ctx.Done():
				t.Fatal("the handler's AcceptUni did not return")
			}
			switch tc.want {
			case "refused":
				if ae.ErrorCode != quic.ApplicationErrorCode(core.CloseLimitExceeded) || !ae.Remote {
					t.Fatalf("connection ended with %v, want the endpoint's CloseLimitExceeded", err)
				}
				if len(got) < 6 || got[:6] != "error:" {
					t.Fatalf("handler's AcceptUni yielded %q, want an error", got)
				}
			default:
				if got != tc.want || ae.ErrorCode != 7 {
					t.Fatalf("handler read %q and closed with %v, want %q and its code 7", got, err, tc.want)
				}
			}
		})
	}
}
