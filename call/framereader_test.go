package call

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/alknet/alknet/core"
)

// chunkReader returns at most n bytes per Read, as a stream delivering frames in
// pieces does.
type chunkReader struct {
	r io.Reader
	n int
}

func (c *chunkReader) Read(p []byte) (int, error) { return c.r.Read(p[:min(len(p), c.n)]) }

// frameBytes is the frame of body: its length, then body.
func frameBytes(body string) []byte {
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(body))), body...)
}

// readAllFrames reads frames from data until an error, through ReadFrameBudget
// (buffered false) or a buffered stream's reader, and describes each result and the
// budget's use after it, for comparison.
func readAllFrames(data []byte, chunk, max int, limit int64, buffered bool) []string {
	b := core.NewBudget("test", limit, nil)
	r := &chunkReader{r: bytes.NewReader(data), n: chunk}
	c := &Conn{d: &Dispatcher{}, pending: map[string]*pendingCall{}, frameMax: max, budget: b}
	fs := &frameStream{c: c, fr: newFrameReader(r)}
	var batch eventBatch
	var out []string
	for {
		var env Envelope
		var n int64
		var err error
		if buffered {
			env, n, err = c.readBuffered(fs, &batch)
		} else {
			env, n, err = ReadFrameBudget(r, max, b)
		}
		if err != nil {
			return append(out, fmt.Sprintf("error %v (budget %d)", err, b.Used()))
		}
		out = append(out, fmt.Sprintf("%q %q %q reserved %d (budget %d)", env.Type, env.ID, env.Payload, n, b.Used()))
		b.Release(n)
	}
}

// frameReaderSeeds are streams at the edges: truncated prefixes and bodies, zero and
// oversized lengths, invalid envelopes, frames longer than the read buffer.
func frameReaderSeeds() [][]byte {
	ok := `{"type":"call.responded","id":"s-1","payload":{"output":{"seq":1}}}`
	big := `{"type":"call.responded","id":"s-1","payload":{"output":"` + strings.Repeat("x", frameReadBuffer+100) + `"}}`
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	return [][]byte{
		{},
		frameBytes(ok),
		cat(frameBytes(ok), frameBytes(ok), frameBytes(`{"type":"call.completed","id":"s-1","payload":{}}`)),
		cat(frameBytes(ok), []byte{0, 0}),
		cat(frameBytes(ok), frameBytes(ok)[:20]),
		cat(frameBytes(ok), []byte{0, 0, 0, 0}),
		cat(frameBytes(ok), []byte{0xff, 0xff, 0xff, 0xff}),
		frameBytes(`{"type":"t","id":"x"}`),
		frameBytes(`{"type":"t","id":"x","payload":{}`),
		frameBytes(`{"type":1,"id":"x","payload":{}}`),
		frameBytes(`{"typ\u0065":"call.responded","id":"\u00e9","payload":{"output":1}}`),
		frameBytes(big),
		cat(frameBytes(ok), frameBytes(big), frameBytes(ok)),
		frameBytes(big)[:frameReadBuffer+50],
		// Over a budget of 100 and truncated: the budget is what fails first.
		frameBytes(`{"type":"call.responded","id":"s-1","payload":{"output":"` + strings.Repeat("y", 120) + `"}}`)[:60],
		cat(frameBytes(ok), frameBytes(`{"type":"t","id":"x","payload":"`+strings.Repeat("z", 150)+`"}`)),
	}
}

// TestFrameReaderMatchesReadFrameBudget checks the buffered reader against
// ReadFrameBudget on the seeds: the same envelopes, errors (text included) and
// reservations, whatever size the stream's reads come in, with and without room in
// the budget.
func TestFrameReaderMatchesReadFrameBudget(t *testing.T) {
	for i, data := range frameReaderSeeds() {
		for _, chunk := range []int{1, 7, 64, 1 << 20} {
			for _, limit := range []int64{0, 100, 1 << 20} {
				for _, max := range []int{0, 200} {
					want := readAllFrames(data, chunk, max, limit, false)
					got := readAllFrames(data, chunk, max, limit, true)
					if strings.Join(got, "\n") != strings.Join(want, "\n") {
						t.Errorf("seed %d, reads of %d, budget %d, max %d:\nbuffered:\n%s\nReadFrameBudget:\n%s", i, chunk, limit, max, strings.Join(got, "\n"), strings.Join(want, "\n"))
					}
				}
			}
		}
	}
}

func FuzzFrameReader(f *testing.F) {
	for _, s := range frameReaderSeeds() {
		f.Add(s, 7, 200, int64(1<<20))
	}
	f.Fuzz(func(t *testing.T, data []byte, chunk, max int, limit int64) {
		chunk = 1 + int(uint(chunk)%4096)
		want := readAllFrames(data, chunk, max, limit, false)
		got := readAllFrames(data, chunk, max, limit, true)
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Fatalf("buffered:\n%s\nReadFrameBudget:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	})
}

// FuzzPlainResponded checks the event fast path against the general decoding: what
// plainResponded accepts decodes, through decodeEnvelope and ParseResponded, to a
// call.responded with the same id and output.
func FuzzPlainResponded(f *testing.F) {
	for _, s := range []string{
		`{"type":"call.responded","id":"s-1","payload":{"output":{"seq":1}}}`,
		`{"type":"call.responded","id":"s-1","payload":{"output": 5 }}`,
		`{"type":"call.responded","id":"","payload":{"output":null}}`,
		`{"type":"call.responded","id":"s-1","payload":{"output":{"a":1}},"x":{"b":2}}`,
		`{"type":"call.responded","id":"s-1","payload":{"output":1}, "extra":1}`,
		`{"type":"call.responded","id":"s-1","payload":{"output":1,"output":2}}`,
		`{"type":"call.responded","id":"s\"1","payload":{"output":1}}`,
		`{"type":"call.responded","id":"s-1","payload":{"output":}}`,
		`{"type":"call.responded","id":"s-1","payload":{"output":"}}"}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		id, out, ok := plainResponded(body)
		if !ok {
			return
		}
		env, err := decodeEnvelope(body, false)
		if err != nil {
			t.Fatalf("plainResponded accepted %q, which does not decode: %v", body, err)
		}
		gen, err := ParseResponded(env)
		if err != nil || env.Type != EvResponded || env.ID != string(id) || !bytes.Equal(gen, out) {
			t.Fatalf("%q: fast path id %q output %q; general path %s %q output %q (%v)", body, id, out, env.Type, env.ID, gen, err)
		}
	})
}
