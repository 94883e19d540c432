//go:build unix

package ssh_test

import (
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/core/coretest"
	"github.com/alknet/alknet/core/endpoint"
	"github.com/alknet/alknet/ssh"
)

// The alknet/forward benchmarks run client, node and TCP target in this process, as
// examples/bench forward does, and report the process's CPU time per operation
// (cpu-ns/op: user and system, every goroutine) beside the wall time, so that a busy
// machine still shows what an operation costs.

// fwBenchSink runs a TCP server on 127.0.0.1 that reads each connection to EOF, then
// writes the byte count (8 bytes, big endian) and closes; b.Cleanup stops it.
func fwBenchSink(b *testing.B) uint16 {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(stFailSafe))
				buf := make([]byte, 64<<10)
				var n uint64
				for {
					m, err := c.Read(buf)
					n += uint64(m)
					if err != nil {
						if err != io.EOF {
							return
						}
						break
					}
				}
				_, _ = c.Write(binary.BigEndian.AppendUint64(nil, n))
			})
		}
	})
	b.Cleanup(func() {
		_ = ln.Close()
		wg.Wait()
	})
	return uint16(ln.Addr().(*net.TCPAddr).Port)
}

// fwBenchConn serves a Forwarder allowing everything and returns a QUIC connection
// to it.
func fwBenchConn(b *testing.B) *core.Connection {
	b.Helper()
	n := fwStart(b, ssh.ForwardConfig{
		Forwarding: stPolicy(b, ssh.Allow),
		MaxStreams: 1024,
		Logger:     slog.New(slog.DiscardHandler),
	})
	return n.dial(b, n.alice, endpoint.NetworkQUIC)
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU reports the CPU time since start per operation.
func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(cpuTime(b)-start)/float64(b.N), "cpu-ns/op")
}

// fwBenchBulk sends n bytes through one forwarded connection to the sink and checks
// the count.
func fwBenchBulk(ctx context.Context, b *testing.B, conn *core.Connection, dest string, buf []byte, n int64) {
	c, err := ssh.DialForward(ctx, conn, dest)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(stFailSafe))
	for left := n; left > 0; {
		m, err := c.Write(buf[:min(int64(len(buf)), left)])
		if err != nil {
			b.Fatal(err)
		}
		left -= int64(m)
	}
	if err := c.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
		b.Fatal(err)
	}
	var count [8]byte
	if _, err := io.ReadFull(c, count[:]); err != nil {
		b.Fatal(err)
	}
	if got := int64(binary.BigEndian.Uint64(count[:])); got != n {
		b.Fatalf("sink counted %d bytes, sent %d", got, n)
	}
}

// BenchmarkForwardBulk: 64 KiB writes through one forwarded connection to a TCP sink
// (a forwarded connection per 64 MiB); MB/s and CPU per op.
func BenchmarkForwardBulk(b *testing.B) {
	conn := fwBenchConn(b)
	dest := net.JoinHostPort("127.0.0.1", strconv.Itoa(int(fwBenchSink(b))))
	buf := make([]byte, 64<<10)
	const perConn = 1024 // writes per forwarded connection
	b.SetBytes(int64(len(buf)))
	ctx := b.Context()
	b.ReportAllocs()
	start := cpuTime(b)
	b.ResetTimer()
	for left := b.N; left > 0; left -= perConn {
		fwBenchBulk(ctx, b, conn, dest, buf, int64(min(left, perConn))*int64(len(buf)))
	}
	b.StopTimer()
	reportCPU(b, start)
}

// BenchmarkForwardParallel: 64 forwarded connections at once, each carrying its
// share of b.N 64 KiB writes to the TCP sink.
func BenchmarkForwardParallel(b *testing.B) {
	conn := fwBenchConn(b)
	dest := net.JoinHostPort("127.0.0.1", strconv.Itoa(int(fwBenchSink(b))))
	const p = 64
	b.SetBytes(64 << 10)
	ctx := b.Context()
	b.ReportAllocs()
	start := cpuTime(b)
	b.ResetTimer()
	var wg sync.WaitGroup
	for i := range p {
		each := b.N / p
		if i < b.N%p {
			each++
		}
		if each == 0 {
			continue
		}
		wg.Go(func() {
			fwBenchBulk(ctx, b, conn, dest, make([]byte, 64<<10), int64(each)*64<<10)
		})
	}
	wg.Wait()
	b.StopTimer()
	reportCPU(b, start)
}

// BenchmarkForwardConn: one forwarded connection per op to a TCP echo, one byte
// there and back, half-close, EOF, close (4 at once, as in examples/bench forward).
func BenchmarkForwardConn(b *testing.B) {
	conn := fwBenchConn(b)
	_, port := stEchoServer(b)
	dest := net.JoinHostPort("127.0.0.1", strconv.Itoa(int(port)))
	ctx := b.Context()
	b.ReportAllocs()
	b.SetParallelism(2) // 2 × GOMAXPROCS goroutines: 4 on the 2-core machine
	start := cpuTime(b)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			fwBenchEcho(ctx, b, conn, dest)
		}
	})
	b.StopTimer()
	reportCPU(b, start)
}

// BenchmarkForwardConnEarly is BenchmarkForwardConn through OpenForward: the byte
// goes out with the header, without waiting for the node's answer.
func BenchmarkForwardConnEarly(b *testing.B) {
	conn := fwBenchConn(b)
	_, port := stEchoServer(b)
	dest := net.JoinHostPort("127.0.0.1", strconv.Itoa(int(port)))
	ctx := b.Context()
	b.ReportAllocs()
	b.SetParallelism(2)
	start := cpuTime(b)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c, err := ssh.OpenForward(ctx, conn, dest)
			if err != nil {
				b.Error(err)
				return
			}
			fwBenchEchoOn(b, c)
		}
	})
	b.StopTimer()
	reportCPU(b, start)
}

// BenchmarkTCPConn is BenchmarkForwardConn's floor: the same one-byte echo over a
// TCP connection dialed straight to the echo, which every forwarded connection pays
// on the node.
func BenchmarkTCPConn(b *testing.B) {
	_, port := stEchoServer(b)
	dest := net.JoinHostPort("127.0.0.1", strconv.Itoa(int(port)))
	ctx := b.Context()
	b.ReportAllocs()
	b.SetParallelism(2)
	start := cpuTime(b)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var d net.Dialer
		for pb.Next() {
			c, err := d.DialContext(ctx, "tcp", dest)
			if err != nil {
				b.Error(err)
				return
			}
			fwBenchEchoOn(b, c)
		}
	})
	b.StopTimer()
	reportCPU(b, start)
}

// fwBenchEcho opens a forwarded connection to dest and echoes one byte on it.
func fwBenchEcho(ctx context.Context, b *testing.B, conn *core.Connection, dest string) {
	c, err := ssh.DialForward(ctx, conn, dest)
	if err != nil {
		b.Error(err)
		return
	}
	fwBenchEchoOn(b, c)
}

// fwBenchEchoOn writes one byte to c, half-closes it, reads the byte and EOF back
// and closes c.
func fwBenchEchoOn(b *testing.B, c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(stFailSafe))
	if _, err := c.Write([]byte{42}); err != nil {
		b.Error(err)
		return
	}
	if err := c.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
		b.Error(err)
		return
	}
	got, err := io.ReadAll(c)
	if err != nil || len(got) != 1 || got[0] != 42 {
		b.Errorf("echo: %q, %v", got, err)
	}
}

// BenchmarkTCPBulk is BenchmarkForwardBulk's TCP hop alone: 64 KiB writes over a TCP
// connection dialed straight to the sink, which the node's copy to the destination
// pays on top of the QUIC stream.
func BenchmarkTCPBulk(b *testing.B) {
	dest := net.JoinHostPort("127.0.0.1", strconv.Itoa(int(fwBenchSink(b))))
	buf := make([]byte, 64<<10)
	const perConn = 1024
	ctx := b.Context()
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	start := cpuTime(b)
	b.ResetTimer()
	var d net.Dialer
	for left := b.N; left > 0; left -= perConn {
		c, err := d.DialContext(ctx, "tcp", dest)
		if err != nil {
			b.Fatal(err)
		}
		n := int64(min(left, perConn)) * int64(len(buf))
		for sent := int64(0); sent < n; sent += int64(len(buf)) {
			if _, err := c.Write(buf); err != nil {
				b.Fatal(err)
			}
		}
		_ = c.(*net.TCPConn).CloseWrite()
		var count [8]byte
		if _, err := io.ReadFull(c, count[:]); err != nil {
			b.Fatal(err)
		}
		_ = c.Close()
	}
	b.StopTimer()
	reportCPU(b, start)
}

// BenchmarkStreamConn is BenchmarkForwardConn's other floor: the same one-byte echo
// on a new stream of an endpoint's echo handler, the QUIC part of every forwarded
// connection without the header, the policy and the TCP hop.
func BenchmarkStreamConn(b *testing.B) {
	reg := core.NewRegistry()
	if err := reg.RegisterAs("alknet/echo", coretest.Echo()); err != nil {
		b.Fatal(err)
	}
	client := coretest.NewIdentity(b)
	ts := coretest.NewServer(b, reg, coretest.WithConfig(core.DynamicConfig{Auth: core.AuthPolicy{
		Peers: []core.PeerEntry{client.Peer("client")},
	}}))
	conn := ts.Dial(b, "alknet/echo", client, endpoint.NetworkQUIC)
	ctx := b.Context()
	b.ReportAllocs()
	b.SetParallelism(2)
	start := cpuTime(b)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			st, err := conn.OpenBi(ctx)
			if err != nil {
				b.Error(err)
				return
			}
			fwBenchEchoOn(b, core.NetConn(st, nil, nil))
		}
	})
	b.StopTimer()
	reportCPU(b, start)
}
