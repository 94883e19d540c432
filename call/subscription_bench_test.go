package call

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"testing"
	"time"

	"github.com/alknet/alknet/core/endpoint"
)

// BenchmarkSubscription measures one subscription of b.N events {"seq":i} from a
// Dispatcher on a loopback endpoint to a client Conn, over QUIC (the subscription's
// own stream, the default buffer) and TCP+TLS (the connection's one stream, with a
// buffer of b.N events so that a busy machine cannot overrun it), as examples/bench
// call's events row does. An op is one event delivered and checked, so allocs/op are
// per event; it also reports events/s and cpu-ns/event, the whole process's CPU time
// (client and server) per event, which stays meaningful on a busy machine.
func BenchmarkSubscription(b *testing.B) {
	for _, mode := range []string{modeQUIC, modeTCP} {
		b.Run(mode, func(b *testing.B) {
			reg := NewRegistry()
			mustRegister(b, reg, Registration{
				Spec:   NewSpec("bench/events", Subscription),
				Stream: benchEvents,
			})
			s := engStartServer(b, &Dispatcher{Registry: reg}, nil, nil)
			ctx, cancel := context.WithTimeout(b.Context(), 10*time.Minute)
			defer cancel()
			raw, err := endpoint.Dial(ctx, s.srv.Addr, ALPN, s.srv.DialOptions(s.client, engNetwork(mode)))
			if err != nil {
				b.Fatalf("dial: %v", err)
			}
			d := &Dispatcher{}
			if mode == modeTCP {
				d.SubscriptionBuffer = max(b.N, DefaultSubscriptionBuffer)
			}
			c, err := d.Serve(context.Background(), raw, nil)
			if err != nil {
				b.Fatalf("Serve: %v", err)
			}
			defer c.Close()
			// Warm up: the connection, the server's accept and its buffers.
			if err := benchSubscribe(ctx, c, min(b.N, 1000)); err != nil {
				b.Fatal(err)
			}
			cpu0, cpuOK := processCPU()
			b.ReportAllocs()
			b.ResetTimer()
			if err := benchSubscribe(ctx, c, b.N); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			if sec := b.Elapsed().Seconds(); sec > 0 {
				b.ReportMetric(float64(b.N)/sec, "events/s")
			}
			if cpu1, ok := processCPU(); ok && cpuOK {
				b.ReportMetric(float64(cpu1-cpu0)/float64(b.N), "cpu-ns/event")
			}
		})
	}
}

// benchEvents is bench/events: n (its input) events {"seq":i}, each a fresh slice as
// a handler would build it.
func benchEvents(_ context.Context, _ *OpContext, in json.RawMessage, emit func(json.RawMessage) error) error {
	n, err := strconv.Atoi(string(in))
	if err != nil {
		return err
	}
	for i := range n {
		ev := make([]byte, 0, 24)
		ev = append(ev, `{"seq":`...)
		ev = strconv.AppendInt(ev, int64(i), 10)
		if err := emit(append(ev, '}')); err != nil {
			return err
		}
	}
	return nil
}

// benchSubscribe subscribes to n events of bench/events and checks each, in order.
func benchSubscribe(ctx context.Context, c *Conn, n int) error {
	sub, err := c.Subscribe(ctx, "bench/events", json.RawMessage(strconv.Itoa(n)))
	if err != nil {
		return err
	}
	defer sub.Close()
	want := make([]byte, 0, 32)
	for i := 0; ; i++ {
		ev, err := sub.Next(ctx)
		if errors.Is(err, io.EOF) {
			if i != n {
				return errors.New("subscription ended after " + strconv.Itoa(i) + " events, want " + strconv.Itoa(n))
			}
			return nil
		}
		if err != nil {
			return err
		}
		want = append(strconv.AppendInt(append(want[:0], `{"seq":`...), int64(i), 10), '}')
		if !bytes.Equal(ev, want) {
			return errors.New("event " + strconv.Itoa(i) + " = " + string(ev) + ", want " + string(want))
		}
	}
}
