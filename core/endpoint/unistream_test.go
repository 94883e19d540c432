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
	"github.com/alknet/alknet/core/tlsconf"
)

// uniReader hands over what the first unidirectional stream of each connection carried,
// after reporting on started (when not nil) that its handler runs.
func uniReader(out chan<- string, started chan<- struct{}) core.Handler {
	return core.HandlerFunc(func(ctx context.Context, conn *core.Connection, _ core.AuthContext) error {
		if started != nil {
			started <- struct{}{}
		}
		r, err := conn.AcceptUni(ctx)
		if err != nil {
			out <- "error: " + err.Error()
			return nil
		}
		b, err := io.ReadAll(r)
		if err != nil {
			out <- "error: " + err.Error()
			return nil
		}
		out <- string(b)
		conn.Close(7, "seen")
		return nil
	})
}

// rawQUIC dials srv with quic-go directly, pinning its identity, offering alpn.
func rawQUIC(t *testing.T, ctx context.Context, srv *coretest.Server, alpn string) *quic.Conn {
	t.Helper()
	tc, err := tlsconf.ClientConfig(tlsconf.ClientOptions{Pin: srv.Identity.Fingerprint, NextProtos: []string{alpn}})
	if err != nil {
		t.Fatal(err)
	}
	qc, err := quic.DialAddr(ctx, srv.Addr, tc, &quic.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = qc.CloseWithError(0, "") })
	return qc
}

func TestAcceptUniWhenAllowed(t *testing.T) {
	out := make(chan string, 1)
	reg := newRegistry(t, map[string]core.Handler{"alknet/uni": uniReader(out, nil)})
	srv := coretest.NewServer(t, reg, coretest.WithEndpointConfig(func(c *endpoint.Config) {
		c.MaxIncomingUniStreams = 1
	}))
	ctx := testCtx(t)
	qc := rawQUIC(t, ctx, srv, "alknet/uni")
	us, err := qc.OpenUniStreamSync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := us.Write([]byte("one way")); err != nil {
		t.Fatal(err)
	}
	if err := us.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-out:
		if got != "one way" {
			t.Fatalf("handler read %q", got)
		}
	case <-ctx.Done():
		t.Fatal("handler saw no unidirectional stream")
	}
	<-qc.Context().Done()
	var ae *quic.ApplicationError
	if err := context.Cause(qc.Context()); !errors.As(err, &ae) || ae.ErrorCode != 7 {
		t.Fatalf("connection ended with %v, want the handler's code 7", err)
	}
}

func TestUniStreamsRefusedByDefault(t *testing.T) {
	out := make(chan string, 1)
	started := make(chan struct{}, 1)
	reg := newRegistry(t, map[string]core.Handler{"alknet/uni": uniReader(out, started)})
	srv := coretest.NewServer(t, reg)
	ctx := testCtx(t)
	qc := rawQUIC(t, ctx, srv, "alknet/uni")
	// The server grants no unidirectional stream, so quic-go will not open one.
	if _, err := qc.OpenUniStream(); !errors.Is(err, &quic.StreamLimitReachedError{}) {
		t.Fatalf("OpenUniStream: %v, want StreamLimitReachedError", err)
	}
	// The handler's AcceptUni ends with the connection.
	select {
	case <-started:
	case <-ctx.Done():
		t.Fatal("the handler did not start")
	}
	_ = qc.CloseWithError(0, "")
	select {
	case got := <-out:
		if got == "" || got[:6] != "error:" {
			t.Fatalf("handler read %q, want an error", got)
		}
	case <-ctx.Done():
		t.Fatal("AcceptUni did not return when the connection closed")
	}
}

func TestAcceptUniUnsupportedOnTCP(t *testing.T) {
	out := make(chan string, 1)
	reg := newRegistry(t, map[string]core.Handler{"alknet/uni": uniReader(out, nil)})
	srv := coretest.NewServer(t, reg)
	_ = srv.Dial(t, "alknet/uni", nil, endpoint.NetworkTCP)
	ctx := testCtx(t)
	select {
	case got := <-out:
		if want := "error: core: accept unidirectional stream: " + errors.ErrUnsupported.Error(); got != want {
			t.Fatalf("handler read %q, want %q", got, want)
		}
	case <-ctx.Done():
		t.Fatal("AcceptUni blocked on TCP+TLS")
	}
}
