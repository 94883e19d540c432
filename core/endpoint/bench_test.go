package endpoint_test

import (
	"bytes"
	"context"
	"io"
	"sync"
	"testing"

	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/core/coretest"
	"github.com/alknet/alknet/core/endpoint"
	"github.com/alknet/alknet/core/tlsconf"
)

// BenchmarkConnect measures a new connection: handshake, dispatch to an echo handler and a
// one-byte echo. Compare with quic-go's own BenchmarkHandshake (anchors.md §2a).
func BenchmarkConnect(b *testing.B) {
	for _, n := range networks {
		b.Run(n.String(), func(b *testing.B) {
			reg := core.NewRegistry()
			if err := reg.RegisterAs("alknet/echo", coretest.Echo()); err != nil {
				b.Fatal(err)
			}
			srv := coretest.NewServer(b, reg, coretest.WithConfig(core.DynamicConfig{Limits: core.Limits{MaxConnectionsPerIP: -1}}))
			client := coretest.NewIdentity(b)
			opts := srv.DialOptions(client, n)
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				conn, err := endpoint.Dial(ctx, srv.Addr, "alknet/echo", opts)
				if err != nil {
					b.Fatal(err)
				}
				if got, err := coretest.RoundTrip(ctx, conn, []byte{1}); err != nil || len(got) != 1 {
					b.Fatal(got, err)
				}
				conn.Close(core.CloseNormal, "")
			}
		})
	}
}

// BenchmarkStreamThroughput measures one stream carrying bulk data to a handler that
// discards it.
func BenchmarkStreamThroughput(b *testing.B) {
	sink := core.HandlerFunc(func(ctx context.Context, conn *core.Connection, _ core.AuthContext) error {
		var wg sync.WaitGroup
		defer wg.Wait()
		for {
			s, err := conn.AcceptBi(ctx)
			if err != nil {
				return nil
			}
			wg.Go(func() {
				_, _ = io.Copy(io.Discard, s)
				_ = s.CloseWrite()
			})
		}
	})
	for _, n := range networks {
		b.Run(n.String(), func(b *testing.B) {
			reg := core.NewRegistry()
			if err := reg.RegisterAs("alknet/sink", sink); err != nil {
				b.Fatal(err)
			}
			srv := coretest.NewServer(b, reg)
			conn := srv.Dial(b, "alknet/sink", nil, n)
			s, err := conn.OpenBi(context.Background())
			if err != nil {
				b.Fatal(err)
			}
			chunk := bytes.Repeat([]byte{0xa5}, 64<<10)
			b.SetBytes(int64(len(chunk)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.Write(chunk); err != nil {
					b.Fatal(err)
				}
			}
			_ = s.CloseWrite()
			_, _ = io.ReadAll(s)
		})
	}
}

// BenchmarkDialQUICNew, BenchmarkDialQUICResumed, BenchmarkDialTCPNew and
// BenchmarkDialTCPResumed measure a connection as BenchmarkConnect does (dial, echo one
// byte, close), with a full handshake every time or resuming the session of the one
// before (tlsconf.SessionCache): the resumed handshake skips both certificate
// signatures and their verification.
func BenchmarkDialQUICNew(b *testing.B)     { benchmarkDial(b, endpoint.NetworkQUIC, false) }
func BenchmarkDialQUICResumed(b *testing.B) { benchmarkDial(b, endpoint.NetworkQUIC, true) }
func BenchmarkDialTCPNew(b *testing.B)      { benchmarkDial(b, endpoint.NetworkTCP, false) }
func BenchmarkDialTCPResumed(b *testing.B)  { benchmarkDial(b, endpoint.NetworkTCP, true) }

func benchmarkDial(b *testing.B, n endpoint.Network, resume bool) {
	reg := core.NewRegistry()
	if err := reg.RegisterAs("alknet/echo", coretest.Echo()); err != nil {
		b.Fatal(err)
	}
	srv := coretest.NewServer(b, reg, coretest.WithConfig(core.DynamicConfig{Limits: core.Limits{MaxConnectionsPerIP: -1}}))
	client := coretest.NewIdentity(b)
	opts := srv.DialOptions(client, n)
	if resume {
		opts.TLS.Sessions = tlsconf.NewSessionCache(1)
	}
	ctx := context.Background()
	connect := func() {
		conn, err := endpoint.Dial(ctx, srv.Addr, "alknet/echo", opts)
		if err != nil {
			b.Fatal(err)
		}
		if got, err := coretest.RoundTrip(ctx, conn, []byte{1}); err != nil || len(got) != 1 {
			b.Fatal(got, err)
		}
		conn.Close(core.CloseNormal, "")
	}
	connect() // the first connection makes the session
	before := srv.Endpoint.Stats().Resumed
	b.ReportAllocs()
	ops := 0
	for b.Loop() {
		connect()
		ops++
	}
	// The share of connections that resumed (a QUIC ticket may still be in flight when
	// the next dial starts): 1 for Resumed, 0 for New.
	b.ReportMetric(float64(srv.Endpoint.Stats().Resumed-before)/float64(ops), "resumed/op")
}
