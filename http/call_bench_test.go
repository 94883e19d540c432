package http

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/alknet/alknet/call"
	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/core/coretest"
	"github.com/alknet/alknet/core/tlsconf"
)

// benchCallBody is the request of examples/bench http: bench/echo with a 61-byte body.
const benchCallBody = `{"operation":"bench/echo","input":{"message":"hello","n":42}}`

// BenchmarkCall measures POST /call of bench/echo (a Query returning its input) as
// the alknet TCP+TLS h2 arm of `go run ./examples/bench http` does: a loopback
// endpoint serving the Handler through Handle on the h2 ALPN of its TCP+TLS listener,
// a stock net/http client pinning the node over one h2 connection, one caller,
// anonymous, the answer read and checked. Its allocs/op are the whole process's,
// client and server together, per request: the figure BENCHMARKS.md gives per /call
// (issue 20 asks for 128 or fewer).
func BenchmarkCall(b *testing.B) {
	reg := call.NewRegistry()
	if err := reg.Register(call.Registration{
		Spec: call.NewSpec("bench/echo", call.Query),
		Once: func(_ context.Context, _ *call.OpContext, in json.RawMessage) (json.RawMessage, error) {
			return in, nil
		},
	}); err != nil {
		b.Fatal(err)
	}
	h, err := New(Config{Registry: reg})
	if err != nil {
		b.Fatal(err)
	}
	creg := core.NewRegistry()
	if err := creg.RegisterAs("h2", h); err != nil {
		b.Fatal(err)
	}
	srv := coretest.NewServer(b, creg)
	cfg, err := tlsconf.ClientConfig(tlsconf.ClientOptions{Pin: srv.Identity.Fingerprint, NextProtos: []string{"h2"}})
	if err != nil {
		b.Fatal(err)
	}
	tr := &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true}
	b.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr}
	url := "https://" + srv.Addr + "/call"
	want := []byte(`"output":{"message":"hello","n":42}`)
	var buf bytes.Buffer
	do := func() {
		req, err := http.NewRequestWithContext(b.Context(), http.MethodPost, url, strings.NewReader(benchCallBody))
		if err != nil {
			b.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		buf.Reset()
		_, err = buf.ReadFrom(resp.Body)
		_ = resp.Body.Close()
		if err != nil {
			b.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 || !bytes.Contains(buf.Bytes(), want) {
			b.Fatalf("POST /call: %s %s: %s", resp.Proto, resp.Status, buf.Bytes())
		}
	}
	do() // the connection and its TLS handshake are not measured
	b.ReportAllocs()
	for b.Loop() {
		do()
	}
}
