package call

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/alknet/alknet/core/endpoint"
)

// BenchmarkCall measures unary echo calls (bench/echo, a Query returning its input)
// from a client Conn to a Dispatcher on a loopback endpoint, one caller at a time,
// over QUIC (a reused call stream) and TCP+TLS (the connection's one stream), with
// echo payloads of 64 B and 64 KiB (a JSON object of exactly that many bytes), as
// examples/bench call's unary rows do. An op is one call sent, answered and checked;
// it also reports cpu-ns/call, the whole process's CPU time (client and server) per
// call, which stays meaningful on a busy machine. With -benchmem, B/op shows the
// copies of the payload a call makes on both sides.
func BenchmarkCall(b *testing.B) {
	for _, size := range []int{64, 64 << 10} {
		in := benchPayload(size)
		for _, mode := range []string{modeQUIC, modeTCP} {
			b.Run(fmt.Sprintf("%s/%s", benchSizeName(size), mode), func(b *testing.B) {
				reg := NewRegistry()
				mustRegister(b, reg, Registration{
					Spec: NewSpec("bench/echo", Query),
					Once: func(_ context.Context, _ *OpContext, in json.RawMessage) (json.RawMessage, error) { return in, nil },
				})
				s := engStartServer(b, &Dispatcher{Registry: reg}, nil, nil)
				ctx, cancel := context.WithTimeout(b.Context(), 10*time.Minute)
				defer cancel()
				raw, err := endpoint.Dial(ctx, s.srv.Addr, ALPN, s.srv.DialOptions(s.client, engNetwork(mode)))
				if err != nil {
					b.Fatalf("dial: %v", err)
				}
				c, err := (&Dispatcher{}).Serve(context.Background(), raw, nil)
				if err != nil {
					b.Fatalf("Serve: %v", err)
				}
				defer c.Close()
				call := func() {
					out, err := c.Call(ctx, "bench/echo", in)
					if err != nil {
						b.Fatal(err)
					}
					if !bytes.Equal(out, in) {
						b.Fatalf("echo of %d bytes came back as %d bytes", len(in), len(out))
					}
				}
				for range 10 { // warm up: streams, buffers
					call()
				}
				cpu0, cpuOK := processCPU()
				b.ReportAllocs()
				b.SetBytes(int64(size))
				b.ResetTimer()
				for b.Loop() {
					call()
				}
				b.StopTimer()
				if cpu1, ok := processCPU(); ok && cpuOK {
					b.ReportMetric(float64(cpu1-cpu0)/float64(b.N), "cpu-ns/call")
				}
			})
		}
	}
}

// benchPayload is a JSON object {"data":"xx…"} of exactly size bytes (size >= 12).
func benchPayload(size int) json.RawMessage {
	const head, tail = `{"data":"`, `"}`
	return json.RawMessage(head + strings.Repeat("x", size-len(head)-len(tail)) + tail)
}

func benchSizeName(size int) string {
	if size >= 1<<10 && size%(1<<10) == 0 {
		return fmt.Sprintf("%dKiB", size>>10)
	}
	return fmt.Sprintf("%dB", size)
}
