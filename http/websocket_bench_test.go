package http_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/coder/websocket"

	"github.com/alknet/alknet/call"
	"github.com/alknet/alknet/core"
	alkhttp "github.com/alknet/alknet/http"
)

// benchWSToken is the Bearer token of the benchmark client.
const benchWSToken = "bench-websocket-token"

// benchWSInput is the echoed input: a 64-byte JSON document, as in examples/bench ws.
var benchWSInput = json.RawMessage(`{"caller":0,"data":"` + strings.Repeat("x", 43) + `"}`)

// startBenchWS starts a loopback httptest TLS server (HTTP/1.1) serving a Handler
// whose registry holds bench/echo (a Query returning its input), and connects one
// WebSocket client to /alknet/call: a call.Conn from Dispatcher.NewMessageConn and a
// goroutine feeding it every received message, as an embedder writes it. Everything
// is closed when b ends.
func startBenchWS(b *testing.B) *call.Conn {
	b.Helper()
	reg := call.NewRegistry()
	if err := reg.Register(call.Registration{
		Spec: call.NewSpec("bench/echo", call.Query),
		Once: func(_ context.Context, _ *call.OpContext, in json.RawMessage) (json.RawMessage, error) {
			return in, nil
		},
	}); err != nil {
		b.Fatal(err)
	}
	ids := core.NewInMemoryIdentityStore(core.PeerEntry{
		PeerID: "bench", AuthTokenHash: core.HashToken([]byte(benchWSToken)), Enabled: true,
	})
	h, err := alkhttp.New(alkhttp.Config{Registry: reg, Identities: ids})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewTLSServer(h)
	b.Cleanup(srv.Close)

	ctx, cancel := context.WithCancel(context.Background())
	ws, _, err := websocket.Dial(ctx, "wss"+strings.TrimPrefix(srv.URL, "https")+alkhttp.WebSocketPath, &websocket.DialOptions{
		HTTPClient:   srv.Client(),
		HTTPHeader:   http.Header{"Authorization": {"Bearer " + benchWSToken}},
		Subprotocols: []string{alkhttp.WebSocketSubprotocol},
	})
	if err != nil {
		cancel()
		b.Fatal(err)
	}
	c := (&call.Dispatcher{}).NewMessageConn(ctx, nil, func(ctx context.Context, env call.Envelope) error {
		msg, err := call.EncodeEnvelope(env)
		if err != nil {
			return err
		}
		return ws.Write(ctx, websocket.MessageBinary, msg)
	})
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer c.Close()
		for {
			_, data, err := ws.Read(ctx)
			if err != nil {
				return
			}
			env, err := call.DecodeEnvelope(data)
			if err != nil {
				return
			}
			c.HandleEnvelope(ctx, env)
		}
	}()
	// Cleanups run last added first: the socket closes before the server.
	b.Cleanup(func() {
		_ = c.Close()
		_ = ws.Close(websocket.StatusNormalClosure, "")
		<-done
		cancel()
	})
	return c
}

// BenchmarkWebSocketCall measures the round trip of one call over /alknet/call: one
// caller, each call waiting for its answer.
func BenchmarkWebSocketCall(b *testing.B) {
	c := startBenchWS(b)
	ctx := b.Context()
	b.ReportAllocs()
	for b.Loop() {
		out, err := c.Call(ctx, "bench/echo", benchWSInput)
		if err != nil {
			b.Fatal(err)
		}
		if !bytes.Equal(out, benchWSInput) {
			b.Fatalf("echo: got %s, want %s", out, benchWSInput)
		}
	}
}

// BenchmarkWebSocketCallParallel measures calls over one shared /alknet/call socket
// with 32×GOMAXPROCS concurrent callers (64 on 2 CPUs, as in examples/bench ws), whose
// answers the Conn correlates by id.
func BenchmarkWebSocketCallParallel(b *testing.B) {
	c := startBenchWS(b)
	ctx := b.Context()
	var failed atomic.Pointer[string]
	b.ReportAllocs()
	b.SetParallelism(32)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			out, err := c.Call(ctx, "bench/echo", benchWSInput)
			if err != nil {
				msg := err.Error()
				failed.Store(&msg)
				return
			}
			if !bytes.Equal(out, benchWSInput) {
				msg := "echo: got " + string(out)
				failed.Store(&msg)
				return
			}
		}
	})
	if msg := failed.Load(); msg != nil {
		b.Fatal(*msg)
	}
}
