package call_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/alknet/alknet/call"
)

// BenchmarkWriteReadFrame writes one call.responded frame with a 1 KiB output and reads
// it back.
func BenchmarkWriteReadFrame(b *testing.B) {
	env := call.NewResponded(call.NewID(), json.RawMessage(`{"data":"`+strings.Repeat("x", 1024-11)+`"}`))
	var buf bytes.Buffer
	buf.Grow(2048)
	b.ReportAllocs()
	b.SetBytes(int64(len(env.Payload)))
	for b.Loop() {
		if err := call.WriteFrame(&buf, env, 0); err != nil {
			b.Fatal(err)
		}
		if _, err := call.ReadFrame(&buf, 0); err != nil {
			b.Fatal(err)
		}
		buf.Reset()
	}
}

// BenchmarkDecodeEnvelope decodes a typical call.requested envelope.
func BenchmarkDecodeEnvelope(b *testing.B) {
	msg := []byte(`{"type":"call.requested","id":"0b9e6c1a-5d4f-4e0e-9a7b-3c2d1f00aa01","payload":{"operationId":"/notes/get","input":{"noteId":"n-42","fields":["title","body"],"limit":20}}}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		if _, err := call.DecodeEnvelope(msg); err != nil {
			b.Fatal(err)
		}
	}
}
