package call_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/alknet/alknet/call"
	"github.com/alknet/alknet/core"
)

// wireRaw returns a frame whose prefix announces n and whose body is body.
func wireRaw(n uint32, body []byte) []byte {
	return append(binary.BigEndian.AppendUint32(nil, n), body...)
}

// wireBody returns a length-prefixed frame holding body.
func wireBody(body string) []byte { return wireRaw(uint32(len(body)), []byte(body)) }

// wireStringPayload returns a payload {"data":"xxx…"} of exactly n bytes (n >= 11).
func wireStringPayload(n int) json.RawMessage {
	return json.RawMessage(`{"data":"` + strings.Repeat("x", n-11) + `"}`)
}

// wireEnvelopeOfSize returns an envelope whose encoding is exactly n bytes.
func wireEnvelopeOfSize(t testing.TB, n int) call.Envelope {
	t.Helper()
	env := call.Envelope{Type: call.EvResponded, ID: "i", Payload: json.RawMessage(`""`)}
	base, err := call.EncodeEnvelope(env)
	if err != nil {
		t.Fatalf("EncodeEnvelope: %v", err)
	}
	if n < len(base) {
		t.Fatalf("size %d below the minimum %d", n, len(base))
	}
	env.Payload = json.RawMessage(`"` + strings.Repeat("y", n-len(base)) + `"`)
	return env
}

func wireSameEnvelope(t *testing.T, got, want call.Envelope) {
	t.Helper()
	if got.Type != want.Type || got.ID != want.ID || !bytes.Equal(got.Payload, want.Payload) {
		t.Fatalf("envelope = {%q %q %.80s}, want {%q %q %.80s}", got.Type, got.ID, got.Payload, want.Type, want.ID, want.Payload)
	}
}

var wireSamples = []call.Envelope{
	{Type: call.EvRequested, ID: "0b9e6c1a-5d4f-4e0e-9a7b-3c2d1f00aa01", Payload: json.RawMessage(`{"operationId":"/notes/get","input":{"noteId":"n-42"}}`)},
	{Type: call.EvResponded, ID: "r-1", Payload: json.RawMessage(`{"output":[1,2,{"a":"b\"c"}]}`)},
	{Type: call.EvCompleted, ID: "s-1", Payload: json.RawMessage(`{}`)},
	{Type: call.EvAborted, ID: "ünïcode-id \"quoted\"", Payload: json.RawMessage(`{}`)},
	{Type: call.EvError, ID: "e", Payload: json.RawMessage(`{"code":"NOT_FOUND","message":"operation not found: x","retryable":false}`)},
	{Type: "call.unknown", ID: "", Payload: json.RawMessage(`null`)},
}

func TestFrameRoundTripBuffer(t *testing.T) {
	for _, env := range wireSamples {
		t.Run(env.Type, func(t *testing.T) {
			var buf bytes.Buffer
			if err := call.WriteFrame(&buf, env, 0); err != nil {
				t.Fatalf("WriteFrame: %v", err)
			}
			got, err := call.ReadFrame(&buf, 0)
			if err != nil {
				t.Fatalf("ReadFrame: %v", err)
			}
			wireSameEnvelope(t, got, env)
			if buf.Len() != 0 {
				t.Fatalf("%d bytes left after one frame", buf.Len())
			}
		})
	}

	t.Run("several frames", func(t *testing.T) {
		var buf bytes.Buffer
		for _, env := range wireSamples {
			if err := call.WriteFrame(&buf, env, 0); err != nil {
				t.Fatalf("WriteFrame: %v", err)
			}
		}
		for i, want := range wireSamples {
			got, err := call.ReadFrame(&buf, 0)
			if err != nil {
				t.Fatalf("ReadFrame #%d: %v", i, err)
			}
			wireSameEnvelope(t, got, want)
		}
		_, err := call.ReadFrame(&buf, 0)
		if !errors.Is(err, call.ErrClosed) || !errors.Is(err, io.EOF) {
			t.Fatalf("ReadFrame after the last frame = %v, want ErrClosed wrapping io.EOF", err)
		}
	})
}

// wirePipeRoundTrip writes envs on one end of a net.Pipe and reads them on the other.
func wirePipeRoundTrip(t *testing.T, envs []call.Envelope) {
	t.Helper()
	a, b := net.Pipe()
	t.Cleanup(func() { _ = a.Close(); _ = b.Close() })
	werr := make(chan error, 1)
	go func() {
		defer a.Close()
		for _, env := range envs {
			if err := call.WriteFrame(a, env, 0); err != nil {
				werr <- err
				return
			}
		}
		werr <- nil
	}()
	for i, want := range envs {
		got, err := call.ReadFrame(b, 0)
		if err != nil {
			t.Fatalf("ReadFrame #%d: %v", i, err)
		}
		wireSameEnvelope(t, got, want)
	}
	if _, err := call.ReadFrame(b, 0); !errors.Is(err, call.ErrClosed) {
		t.Fatalf("ReadFrame after the writer closed = %v, want ErrClosed", err)
	}
	if err := <-werr; err != nil {
		t.Fatalf("WriteFrame: %v", err)
	}
}

func TestFrameRoundTripPipe(t *testing.T) {
	t.Run("one", func(t *testing.T) { wirePipeRoundTrip(t, wireSamples[:1]) })
	t.Run("several", func(t *testing.T) { wirePipeRoundTrip(t, wireSamples) })
}

func TestFrameLargePayloads(t *testing.T) {
	for _, size := range []int{64 << 10, 1 << 20, 1<<20 + 1, 3 << 20} {
		env := call.NewResponded("big", wireStringPayload(size))
		t.Run(strconv.Itoa(size)+"/buffer", func(t *testing.T) {
			var buf bytes.Buffer
			if err := call.WriteFrame(&buf, env, 0); err != nil {
				t.Fatalf("WriteFrame: %v", err)
			}
			got, err := call.ReadFrame(&buf, 0)
			if err != nil {
				t.Fatalf("ReadFrame: %v", err)
			}
			wireSameEnvelope(t, got, env)
			out, err := call.ParseResponded(got)
			if err != nil || len(out) != size {
				t.Fatalf("ParseResponded: %d bytes, %v; want %d bytes", len(out), err, size)
			}
		})
		t.Run(strconv.Itoa(size)+"/pipe", func(t *testing.T) { wirePipeRoundTrip(t, []call.Envelope{env, env}) })
	}
}

func TestReadFrameInvalidLength(t *testing.T) {
	tests := []struct {
		name  string
		in    []byte
		max   int
		texts []string
	}{
		{"zero length", wireRaw(0, nil), 0, []string{"zero-length"}},
		{"zero length before a good frame", append(wireRaw(0, nil), wireBody(`{"type":"a","id":"b","payload":{}}`)...), 0, []string{"zero-length"}},
		{"MaxFrameSize+1", wireRaw(call.MaxFrameSize+1, nil), 0, []string{"67108865", "67108864"}},
		{"max above MaxFrameSize is clamped", wireRaw(call.MaxFrameSize+1, nil), 4 * call.MaxFrameSize, []string{"67108865", "67108864"}},
		{"negative max means MaxFrameSize", wireRaw(call.MaxFrameSize+1, nil), -1, []string{"67108865"}},
		{"0xffffffff", wireRaw(0xffffffff, nil), 0, []string{"4294967295"}},
		{"custom max", wireRaw(101, nil), 100, []string{"101", "100"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := call.ReadFrame(bytes.NewReader(tt.in), tt.max)
			if !errors.Is(err, call.ErrFrameInvalid) {
				t.Fatalf("ReadFrame = %v, want ErrFrameInvalid", err)
			}
			for _, s := range tt.texts {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %s", err, s)
				}
			}
		})
	}
}

// wirePrefixOnlyReader yields a 4-byte prefix and then fails any further read, so a
// reader that tried to fill a body from an announced length would be caught.
type wirePrefixOnlyReader struct {
	prefix [4]byte
	off    int
	extra  int // bytes requested after the prefix
}

var errWireReadPastPrefix = errors.New("read past the prefix")

func (r *wirePrefixOnlyReader) Read(p []byte) (int, error) {
	if r.off < len(r.prefix) {
		n := copy(p, r.prefix[r.off:])
		r.off += n
		return n, nil
	}
	r.extra += len(p)
	return 0, errWireReadPastPrefix
}

// wireAllocated returns the bytes allocated on the heap by runs calls of f.
func wireAllocated(runs int, f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range runs {
		f()
	}
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

func TestReadFrameOversizeDoesNotAllocate(t *testing.T) {
	for _, n := range []uint32{call.MaxFrameSize + 1, 0xffffffff} {
		r := &wirePrefixOnlyReader{}
		binary.BigEndian.PutUint32(r.prefix[:], n)
		var err error
		read := func() {
			r.off = 0
			_, err = call.ReadFrame(r, 0)
		}
		read()
		if !errors.Is(err, call.ErrFrameInvalid) {
			t.Fatalf("ReadFrame(length %d) = %v, want ErrFrameInvalid", n, err)
		}
		if r.extra != 0 {
			t.Fatalf("ReadFrame asked for %d bytes past the prefix", r.extra)
		}
		if allocs := testing.AllocsPerRun(100, read); allocs > 8 {
			t.Errorf("ReadFrame(length %d): %.0f allocations per run, want a handful", n, allocs)
		}
		if b := wireAllocated(100, read); b > 64<<10 {
			t.Errorf("ReadFrame(length %d): %d bytes allocated in 100 runs, want well under a frame", n, b)
		}
	}
}

// A peer that announces a large frame and sends only a few bytes makes the reader hold
// about what it sent, not what it announced.
func TestReadFrameAnnouncedLengthIsNotTrusted(t *testing.T) {
	in := wireRaw(48<<20, []byte(`{"type":`))
	var err error
	b := wireAllocated(1, func() { _, err = call.ReadFrame(bytes.NewReader(in), 0) })
	if !errors.Is(err, call.ErrClosed) || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("ReadFrame = %v, want ErrClosed wrapping io.ErrUnexpectedEOF", err)
	}
	if b > 4<<20 {
		t.Fatalf("ReadFrame allocated %d bytes for a 48 MiB announcement with 8 bytes sent", b)
	}
}

func TestReadFrameCustomMaxEdge(t *testing.T) {
	for _, max := range []int{47, 100, 4096} {
		t.Run(strconv.Itoa(max), func(t *testing.T) {
			var buf bytes.Buffer
			env := wireEnvelopeOfSize(t, max)
			if err := call.WriteFrame(&buf, env, max); err != nil {
				t.Fatalf("WriteFrame at the limit: %v", err)
			}
			if got := binary.BigEndian.Uint32(buf.Bytes()); got != uint32(max) {
				t.Fatalf("prefix = %d, want %d", got, max)
			}
			frame := bytes.Clone(buf.Bytes())
			got, err := call.ReadFrame(&buf, max)
			if err != nil {
				t.Fatalf("ReadFrame at the limit: %v", err)
			}
			wireSameEnvelope(t, got, env)
			if _, err := call.ReadFrame(bytes.NewReader(frame), max-1); !errors.Is(err, call.ErrFrameInvalid) {
				t.Fatalf("ReadFrame with max-1 = %v, want ErrFrameInvalid", err)
			}

			over := wireEnvelopeOfSize(t, max+1)
			buf.Reset()
			err = call.WriteFrame(&buf, over, max)
			if !errors.Is(err, call.ErrFrameInvalid) {
				t.Fatalf("WriteFrame at max+1 = %v, want ErrFrameInvalid", err)
			}
			if buf.Len() != 0 {
				t.Fatalf("WriteFrame wrote %d bytes of a refused frame", buf.Len())
			}
			if err := call.WriteFrame(&buf, over, max+1); err != nil {
				t.Fatalf("WriteFrame(max+1) with max+1: %v", err)
			}
			if _, err := call.ReadFrame(&buf, max); !errors.Is(err, call.ErrFrameInvalid) {
				t.Fatalf("ReadFrame of max+1 = %v, want ErrFrameInvalid", err)
			}
		})
	}
}

func TestWriteFrameRefuses(t *testing.T) {
	tests := []struct {
		name string
		env  call.Envelope
		max  int
		want error
	}{
		{"payload alone over the limit", call.Envelope{Type: "t", ID: "i", Payload: wireStringPayload(1000)}, 999, call.ErrFrameInvalid},
		{"envelope over the limit", call.Envelope{Type: "t", ID: "i", Payload: wireStringPayload(100)}, 120, call.ErrFrameInvalid},
		{"payload not JSON", call.Envelope{Type: "t", ID: "i", Payload: json.RawMessage(`{"a":`)}, 0, call.ErrEnvelopeInvalid},
		{"responded with a bad output", call.NewResponded("i", json.RawMessage(`nope`)), 0, call.ErrEnvelopeInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var w wireCountingWriter
			if err := call.WriteFrame(&w, tt.env, tt.max); !errors.Is(err, tt.want) {
				t.Fatalf("WriteFrame = %v, want %v", err, tt.want)
			}
			if w.calls != 0 {
				t.Fatalf("WriteFrame wrote %d times for a refused frame", w.calls)
			}
		})
	}
}

type wireCountingWriter struct {
	calls int
	buf   bytes.Buffer
	err   error
}

func (w *wireCountingWriter) Write(p []byte) (int, error) {
	w.calls++
	if w.err != nil {
		return 0, w.err
	}
	return w.buf.Write(p)
}

func TestWriteFrameOneWrite(t *testing.T) {
	for _, env := range append(wireSamples, call.NewResponded("big", wireStringPayload(200<<10))) {
		var w wireCountingWriter
		if err := call.WriteFrame(&w, env, 0); err != nil {
			t.Fatalf("WriteFrame: %v", err)
		}
		if w.calls != 1 {
			t.Fatalf("WriteFrame made %d Write calls, want 1", w.calls)
		}
		body, _ := call.EncodeEnvelope(env)
		if want := wireRaw(uint32(len(body)), body); !bytes.Equal(w.buf.Bytes(), want) {
			t.Fatalf("frame = %.60q, want %.60q", w.buf.Bytes(), want)
		}
	}

	reset := errors.New("stream reset")
	w := wireCountingWriter{err: reset}
	if err := call.WriteFrame(&w, wireSamples[0], 0); !errors.Is(err, reset) {
		t.Fatalf("WriteFrame on a failing writer = %v, want it to wrap %v", err, reset)
	}
}

func TestReadFrameClosed(t *testing.T) {
	good := wireBody(`{"type":"call.completed","id":"x","payload":{}}`)
	tests := []struct {
		name       string
		in         []byte
		unexpected bool // io.ErrUnexpectedEOF rather than io.EOF
	}{
		{"empty stream", nil, false},
		{"one byte of prefix", []byte{0}, true},
		{"three bytes of prefix", []byte{0, 0, 1}, true},
		{"prefix only", wireRaw(10, nil), true},
		{"truncated body", wireRaw(10, []byte("{\"type\"")), true},
		{"truncated large body", wireRaw(2<<20, bytes.Repeat([]byte{' '}, 1<<20+5)), true},
		{"one byte short", good[:len(good)-1], true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := call.ReadFrame(bytes.NewReader(tt.in), 0)
			if !errors.Is(err, call.ErrClosed) {
				t.Fatalf("ReadFrame = %v, want ErrClosed", err)
			}
			if tt.unexpected != errors.Is(err, io.ErrUnexpectedEOF) || tt.unexpected == errors.Is(err, io.EOF) {
				t.Fatalf("ReadFrame = %v: unexpected-EOF %v, want %v", err, errors.Is(err, io.ErrUnexpectedEOF), tt.unexpected)
			}
		})
	}

	t.Run("after the last frame", func(t *testing.T) {
		r := bytes.NewReader(append(bytes.Clone(good), good...))
		for i := range 2 {
			if _, err := call.ReadFrame(r, 0); err != nil {
				t.Fatalf("ReadFrame #%d: %v", i, err)
			}
		}
		if _, err := call.ReadFrame(r, 0); !errors.Is(err, call.ErrClosed) || !errors.Is(err, io.EOF) {
			t.Fatalf("ReadFrame after the last frame = %v, want ErrClosed and io.EOF", err)
		}
	})
}

// wireFailingReader returns data, then err.
type wireFailingReader struct {
	data []byte
	err  error
}

func (r *wireFailingReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, r.err
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

type wireResetError struct{ code uint64 }

func (e *wireResetError) Error() string { return fmt.Sprintf("stream reset with code %d", e.code) }

func TestReadFrameTransportErrorsStayVisible(t *testing.T) {
	for _, data := range [][]byte{nil, {0, 0}, wireRaw(10, []byte("abc"))} {
		r := &wireFailingReader{data: data, err: &wireResetError{code: 7}}
		_, err := call.ReadFrame(r, 0)
		var reset *wireResetError
		if !errors.As(err, &reset) || reset.code != 7 {
			t.Fatalf("ReadFrame after %d bytes = %v, want the reset error", len(data), err)
		}
		if errors.Is(err, call.ErrClosed) || errors.Is(err, call.ErrFrameInvalid) {
			t.Fatalf("ReadFrame = %v: a reset must not read as a clean close or a bad frame", err)
		}
	}
}

func TestReadFrameInvalidEnvelope(t *testing.T) {
	for _, body := range []string{`not json`, `[1,2]`, `{"type":"a","id":"b"}`, `{"type":1,"id":"b","payload":{}}`} {
		_, err := call.ReadFrame(bytes.NewReader(wireBody(body)), 0)
		if !errors.Is(err, call.ErrEnvelopeInvalid) {
			t.Errorf("ReadFrame(%s) = %v, want ErrEnvelopeInvalid", body, err)
		}
	}
}

func TestEncodeEnvelope(t *testing.T) {
	tests := []struct {
		env  call.Envelope
		want string
	}{
		{call.Envelope{Type: call.EvCompleted, ID: "x", Payload: json.RawMessage(`{}`)}, `{"type":"call.completed","id":"x","payload":{}}`},
		{call.Envelope{Type: call.EvAborted, ID: "x"}, `{"type":"call.aborted","id":"x","payload":{}}`},
		{call.Envelope{Type: "t", ID: "x", Payload: json.RawMessage{}}, `{"type":"t","id":"x","payload":{}}`},
		{call.Envelope{Type: "t", ID: "x", Payload: json.RawMessage(`null`)}, `{"type":"t","id":"x","payload":null}`},
		{call.Envelope{Type: "t", ID: "a\"b\\c\n", Payload: json.RawMessage(`1`)}, `{"type":"t","id":"a\"b\\c\n","payload":1}`},
	}
	for _, tt := range tests {
		got, err := call.EncodeEnvelope(tt.env)
		if err != nil {
			t.Fatalf("EncodeEnvelope: %v", err)
		}
		if string(got) != tt.want {
			t.Errorf("EncodeEnvelope = %s, want %s", got, tt.want)
		}
		back, err := call.DecodeEnvelope(got)
		if err != nil || back.Type != tt.env.Type || back.ID != tt.env.ID {
			t.Errorf("DecodeEnvelope(%s) = %+v, %v", got, back, err)
		}
	}

	// encoding/json agrees on the literal key: the Envelope struct tags.
	b, err := json.Marshal(call.Envelope{Type: "t", ID: "i", Payload: json.RawMessage(`{}`)})
	if err != nil || string(b) != `{"type":"t","id":"i","payload":{}}` {
		t.Fatalf("json.Marshal(Envelope) = %s, %v", b, err)
	}
	if _, err := call.EncodeEnvelope(call.Envelope{Type: "t", Payload: json.RawMessage(`{`)}); !errors.Is(err, call.ErrEnvelopeInvalid) {
		t.Fatalf("EncodeEnvelope(bad payload) = %v, want ErrEnvelopeInvalid", err)
	}
}

func TestDecodeEnvelopeStrict(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		ok      bool
		payload string // when ok
	}{
		{"valid", `{"type":"call.completed","id":"x","payload":{}}`, true, `{}`},
		{"null payload", `{"type":"t","id":"x","payload":null}`, true, `null`},
		{"scalar payload", `{"type":"t","id":"x","payload":42}`, true, `42`},
		{"keys in any order, spaces", " \n{ \"payload\" : [ 1 , 2 ] , \"id\":\"x\",\t\"type\":\"t\" }\r\n", true, `[ 1 , 2 ]`},
		{"unknown keys ignored", `{"type":"t","extra":{"type":5},"id":"x","payload":{},"Type":3}`, true, `{}`},
		{"escaped key", `{"typ\u0065":"t","\u0069d":"x","payload":{}}`, true, `{}`},
		{"empty type and id", `{"type":"","id":"","payload":{}}`, true, `{}`},
		{"not JSON", `not json`, false, ""},
		{"empty", ``, false, ""},
		{"truncated", `{"type":"t","id":"x","payload":{}`, false, ""},
		{"trailing data", `{"type":"t","id":"x","payload":{}} {}`, false, ""},
		{"array", `[{"type":"t","id":"x","payload":{}}]`, false, ""},
		{"string", `"call.completed"`, false, ""},
		{"null", `null`, false, ""},
		{"missing type", `{"id":"x","payload":{}}`, false, ""},
		{"missing id", `{"type":"t","payload":{}}`, false, ""},
		{"missing payload", `{"type":"t","id":"x"}`, false, ""},
		{"type not a string", `{"type":1,"id":"x","payload":{}}`, false, ""},
		{"type null", `{"type":null,"id":"x","payload":{}}`, false, ""},
		{"id not a string", `{"type":"t","id":7,"payload":{}}`, false, ""},
		{"id an object", `{"type":"t","id":{},"payload":{}}`, false, ""},
		{"Type instead of type", `{"Type":"t","id":"x","payload":{}}`, false, ""},
		{"ID instead of id", `{"type":"t","ID":"x","payload":{}}`, false, ""},
		{"Payload instead of payload", `{"type":"t","id":"x","Payload":{}}`, false, ""},
		{"duplicate type", `{"type":"a","type":"b","id":"x","payload":{}}`, false, ""},
		{"duplicate payload", `{"type":"a","id":"x","payload":{},"payload":{}}`, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, err := call.DecodeEnvelope([]byte(tt.in))
			if !tt.ok {
				if !errors.Is(err, call.ErrEnvelopeInvalid) {
					t.Fatalf("DecodeEnvelope = %+v, %v; want ErrEnvelopeInvalid", env, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("DecodeEnvelope: %v", err)
			}
			if string(env.Payload) != tt.payload {
				t.Fatalf("payload = %s, want %s", env.Payload, tt.payload)
			}
		})
	}
}

func TestDecodeEnvelopeErrorsDoNotQuoteInput(t *testing.T) {
	for _, in := range []string{
		`{"type":"t","payload":{"auth_token":"alk_sekrit"}}`,
		`{"type":"alk_sekrit","id":1,"payload":{}}`,
		`{"alk_sekrit"`,
	} {
		_, err := call.DecodeEnvelope([]byte(in))
		if err == nil || strings.Contains(err.Error(), "sekrit") {
			t.Errorf("DecodeEnvelope(%s) = %v: want an error that does not quote the input", in, err)
		}
	}
}

func TestDecodeEnvelopeCopiesPayload(t *testing.T) {
	in := []byte(`{"type":"t","id":"x","payload":{"a":1}}`)
	env, err := call.DecodeEnvelope(in)
	if err != nil {
		t.Fatalf("DecodeEnvelope: %v", err)
	}
	for i := range in {
		in[i] = ' '
	}
	if string(env.Payload) != `{"a":1}` {
		t.Fatalf("payload changed with the input buffer: %s", env.Payload)
	}
}

func TestEnvelopeConversion(t *testing.T) {
	tests := []struct {
		name string
		env  call.Envelope
		typ  string
		want string
	}{
		{"responded", call.NewResponded("a", json.RawMessage(`{"x":1}`)), call.EvResponded, `{"output":{"x":1}}`},
		{"responded nil", call.NewResponded("a", nil), call.EvResponded, `{"output":null}`},
		{"completed", call.NewCompleted("a"), call.EvCompleted, `{}`},
		{"aborted", call.NewAborted("a"), call.EvAborted, `{}`},
		{"error", call.NewErrorEnvelope("a", &call.CallError{Code: "NOTE_MISSING", Message: "no such note n-9", Details: json.RawMessage(`{"noteId":"n-9"}`)}), call.EvError,
			`{"code":"NOTE_MISSING","message":"no such note n-9","retryable":false,"details":{"noteId":"n-9"}}`},
		{"error retryable", call.NewErrorEnvelope("a", call.ErrTimedOut()), call.EvError, `{"code":"TIMEOUT","message":"request timed out","retryable":true}`},
		{"error nil details", call.NewErrorEnvelope("a", call.ErrNotFound("x")), call.EvError, `{"code":"NOT_FOUND","message":"operation not found: x","retryable":false}`},
		{"error null details", call.NewErrorEnvelope("a", &call.CallError{Code: "X", Message: "m", Details: json.RawMessage(`null`)}), call.EvError, `{"code":"X","message":"m","retryable":false}`},
		{"error bad details dropped", call.NewErrorEnvelope("a", &call.CallError{Code: "X", Message: "m", Details: json.RawMessage(`{bad`)}), call.EvError, `{"code":"X","message":"m","retryable":false}`},
		{"error nil", call.NewErrorEnvelope("a", nil), call.EvError, `{"code":"INTERNAL","message":"internal error","retryable":false}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.env.Type != tt.typ || tt.env.ID != "a" || string(tt.env.Payload) != tt.want {
				t.Fatalf("envelope = {%s %s %s}, want {%s a %s}", tt.env.Type, tt.env.ID, tt.env.Payload, tt.typ, tt.want)
			}
			var buf bytes.Buffer
			if err := call.WriteFrame(&buf, tt.env, 0); err != nil {
				t.Fatalf("WriteFrame: %v", err)
			}
			got, err := call.ReadFrame(&buf, 0)
			if err != nil {
				t.Fatalf("ReadFrame: %v", err)
			}
			wireSameEnvelope(t, got, tt.env)
		})
	}
}

func TestParseResponded(t *testing.T) {
	tests := []struct {
		payload string
		want    string // "" = error
	}{
		{`{"output":{"noteId":"n-42"}}`, `{"noteId":"n-42"}`},
		{`{"output":null}`, `null`},
		{`{}`, `null`},
		{`{"Output":1}`, `null`},
		{`{"other":1,"output":"s"}`, `"s"`},
		{`[1]`, ""},
		{`null`, ""},
		{`"x"`, ""},
		{``, ""},
		{`{"output":1,"output":2}`, ""},
	}
	for _, tt := range tests {
		out, err := call.ParseResponded(call.Envelope{Type: call.EvResponded, ID: "a", Payload: json.RawMessage(tt.payload)})
		if tt.want == "" {
			if !errors.Is(err, call.ErrPayloadInvalid) {
				t.Errorf("ParseResponded(%s) = %s, %v; want ErrPayloadInvalid", tt.payload, out, err)
			}
			continue
		}
		if err != nil || string(out) != tt.want {
			t.Errorf("ParseResponded(%s) = %s, %v; want %s", tt.payload, out, err, tt.want)
		}
	}
}

func TestParseError(t *testing.T) {
	for _, want := range []*call.CallError{
		call.ErrNotFound("notes/get"),
		call.ErrTimedOut(),
		{Code: "NOTE_MISSING", Message: "no such note n-9", Details: json.RawMessage(`{"noteId":"n-9"}`)},
		{Code: "HTTP_429", Message: "", Retryable: true, Details: json.RawMessage(`[1,"two"]`)},
	} {
		got, err := call.ParseError(call.NewErrorEnvelope("a", want))
		if err != nil {
			t.Fatalf("ParseError(%v): %v", want, err)
		}
		if got.Code != want.Code || got.Message != want.Message || got.Retryable != want.Retryable || !bytes.Equal(got.Details, want.Details) {
			t.Fatalf("ParseError = %+v, want %+v", got, want)
		}
	}

	ok := []struct {
		payload string
		want    call.CallError
	}{
		{`{"code":"X"}`, call.CallError{Code: "X"}},
		{`{"code":"X","message":"m","retryable":true,"details":null,"extra":1}`, call.CallError{Code: "X", Message: "m", Retryable: true}},
	}
	for _, tt := range ok {
		got, err := call.ParseError(call.Envelope{Type: call.EvError, Payload: json.RawMessage(tt.payload)})
		if err != nil || got.Code != tt.want.Code || got.Message != tt.want.Message || got.Retryable != tt.want.Retryable || got.Details != nil {
			t.Errorf("ParseError(%s) = %+v, %v; want %+v", tt.payload, got, err, tt.want)
		}
	}

	for _, payload := range []string{
		``, `null`, `[]`, `"FORBIDDEN"`, `{}`,
		`{"code":""}`, `{"code":5,"message":"m"}`, `{"Code":"X"}`,
		`{"code":"X","message":5}`, `{"code":"X","retryable":"yes"}`,
		`{"code":"X","retryable":1}`, `{"code":"X","code":"Y"}`, `{"code":"X",`,
	} {
		got, err := call.ParseError(call.Envelope{Type: call.EvError, Payload: json.RawMessage(payload)})
		if !errors.Is(err, call.ErrPayloadInvalid) {
			t.Errorf("ParseError(%s) error = %v, want ErrPayloadInvalid", payload, err)
		}
		if got == nil || got.Code != call.CodeInternal || got.Retryable || !strings.Contains(got.Message, "malformed") {
			t.Errorf("ParseError(%s) = %+v, want an INTERNAL error describing the payload", payload, got)
		}
	}
}

func TestRequestPayloadWire(t *testing.T) {
	alice := &core.Identity{ID: "alice", Scopes: []string{"container:exec"}, Resources: map[string][]string{}}
	tests := []struct {
		name   string
		op     string
		input  json.RawMessage
		token  []byte
		ff     *core.Identity
		want   string
		opName string
	}{
		{"registry name", "notes/get", json.RawMessage(`{"noteId":"n-42"}`), nil, nil,
			`{"operationId":"/notes/get","input":{"noteId":"n-42"}}`, "notes/get"},
		{"slash form", "/notes/get", json.RawMessage(`{"noteId":"n-42"}`), nil, nil,
			`{"operationId":"/notes/get","input":{"noteId":"n-42"}}`, "notes/get"},
		{"nil input", "a/b", nil, nil, nil, `{"operationId":"/a/b","input":null}`, "a/b"},
		{"token", "/admin/reindex", json.RawMessage(`{}`), []byte("alk_live_x1"), nil,
			`{"operationId":"/admin/reindex","input":{},"auth_token":"alk_live_x1"}`, "admin/reindex"},
		{"token needing escapes", "a", json.RawMessage(`1`), []byte("tok\"en\\é"), nil,
			`{"operationId":"/a","input":1,"auth_token":"tok\"en\\é"}`, "a"},
		{"empty token omitted", "a", json.RawMessage(`1`), []byte{}, nil, `{"operationId":"/a","input":1}`, "a"},
		{"forwarded_for", "/container/exec", json.RawMessage(`{"containerId":"c1","cmd":["ls"]}`), nil, alice,
			`{"operationId":"/container/exec","input":{"containerId":"c1","cmd":["ls"]},"forwarded_for":{"id":"alice","scopes":["container:exec"],"resources":{}}}`, "container/exec"},
		{"forwarded_for with nil fields", "a", json.RawMessage(`1`), nil, &core.Identity{ID: "bob"},
			`{"operationId":"/a","input":1,"forwarded_for":{"id":"bob","scopes":[],"resources":{}}}`, "a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, err := call.NewRequest("r-7", tt.op, tt.input, tt.token, tt.ff)
			if err != nil {
				t.Fatalf("NewRequest: %v", err)
			}
			if env.Type != call.EvRequested || env.ID != "r-7" {
				t.Fatalf("envelope = %s %s", env.Type, env.ID)
			}
			if got := wireUnescapeHTML(string(env.Payload)); got != tt.want {
				t.Fatalf("payload = %s\nwant      %s", got, tt.want)
			}
			p, cerr := call.ParseRequest(env)
			if cerr != nil {
				t.Fatalf("ParseRequest: %v", cerr)
			}
			if p.OperationName() != tt.opName || p.OperationID != "/"+tt.opName {
				t.Fatalf("operation = %q (%q), want %q", p.OperationID, p.OperationName(), tt.opName)
			}
			wantInput := string(tt.input)
			if wantInput == "" {
				wantInput = "null"
			}
			if string(p.Input) != wantInput {
				t.Fatalf("input = %s, want %s", p.Input, wantInput)
			}
			if !bytes.Equal(p.AuthToken, tt.token) && len(tt.token) != 0 || len(tt.token) == 0 && p.AuthToken != nil {
				t.Fatalf("token mismatch: got %d bytes, want %d", len(p.AuthToken), len(tt.token))
			}
			if (p.ForwardedFor == nil) != (tt.ff == nil) || tt.ff != nil && p.ForwardedFor.ID != tt.ff.ID {
				t.Fatalf("forwarded_for = %+v, want %+v", p.ForwardedFor, tt.ff)
			}

			// encoding/json goes through the same methods.
			b, err := json.Marshal(p)
			if err != nil || !bytes.Equal(b, env.Payload) {
				t.Fatalf("json.Marshal = %s, %v; want %s", b, err, env.Payload)
			}
			var q call.RequestPayload
			if err := json.Unmarshal(b, &q); err != nil || q.OperationID != p.OperationID || !bytes.Equal(q.AuthToken, p.AuthToken) {
				t.Fatalf("json.Unmarshal = %v, %v", q, err)
			}
		})
	}
}

// wireUnescapeHTML undoes encoding/json's HTML escaping so expectations stay readable.
func wireUnescapeHTML(s string) string {
	return strings.NewReplacer(`\u003c`, "<", `\u003e`, ">", `\u0026`, "&").Replace(s)
}

func TestParseRequest(t *testing.T) {
	tests := []struct {
		name    string
		payload string
		invalid bool
		op      string
		input   string
		token   string
		ff      string // forwarded_for id, "" = nil
	}{
		{name: "no slash", payload: `{"operationId":"notes/get","input":{}}`, op: "notes/get", input: `{}`},
		{name: "double slash strips one", payload: `{"operationId":"//x","input":1}`, op: "/x", input: `1`},
		{name: "missing input", payload: `{"operationId":"/a"}`, op: "a", input: `null`},
		{name: "null input", payload: `{"operationId":"/a","input":null}`, op: "a", input: `null`},
		{name: "empty operationId", payload: `{"operationId":"","input":1}`, op: "", input: `1`},
		{name: "token", payload: `{"operationId":"/a","auth_token":"alk_x"}`, op: "a", input: `null`, token: "alk_x"},
		{name: "escaped token", payload: `{"operationId":"/a","auth_token":"a\u0062\n"}`, op: "a", input: `null`, token: "ab\n"},
		{name: "null token", payload: `{"operationId":"/a","auth_token":null}`, op: "a", input: `null`},
		{name: "empty token", payload: `{"operationId":"/a","auth_token":""}`, op: "a", input: `null`},
		{name: "forwarded_for", payload: `{"operationId":"/a","forwarded_for":{"id":"alice","scopes":["s"],"resources":{"t":["r"]}}}`, op: "a", input: `null`, ff: "alice"},
		{name: "forwarded_for null", payload: `{"operationId":"/a","forwarded_for":null}`, op: "a", input: `null`},
		{name: "forwarded_for a string is ignored", payload: `{"operationId":"/a","forwarded_for":"alice"}`, op: "a", input: `null`},
		{name: "forwarded_for with a bad id is ignored", payload: `{"operationId":"/a","forwarded_for":{"id":5}}`, op: "a", input: `null`},
		{name: "forwarded_for with bad scopes is ignored", payload: `{"operationId":"/a","forwarded_for":{"id":"x","scopes":"admin"}}`, op: "a", input: `null`},
		{name: "unknown keys ignored", payload: `{"x":1,"operationId":"/a","OperationId":5,"input":2}`, op: "a", input: `2`},
		{name: "not an object: array", payload: `[{"operationId":"/a"}]`, invalid: true},
		{name: "not an object: string", payload: `"/a"`, invalid: true},
		{name: "not an object: null", payload: `null`, invalid: true},
		{name: "not an object: empty", payload: ``, invalid: true},
		{name: "operationId a number", payload: `{"operationId":5}`, invalid: true},
		{name: "operationId null", payload: `{"operationId":null}`, invalid: true},
		{name: "operationId an object", payload: `{"operationId":{"name":"a"}}`, invalid: true},
		{name: "operationId missing", payload: `{"input":{}}`, invalid: true},
		{name: "OperationId only", payload: `{"OperationId":"/a"}`, invalid: true},
		{name: "duplicate operationId", payload: `{"operationId":"/a","operationId":"/b"}`, invalid: true},
		{name: "duplicate auth_token", payload: `{"operationId":"/a","auth_token":"x","auth_token":"y"}`, invalid: true},
		{name: "auth_token a number", payload: `{"operationId":"/a","auth_token":5}`, invalid: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, cerr := call.ParseRequest(call.Envelope{Type: call.EvRequested, ID: "r", Payload: json.RawMessage(tt.payload)})
			if tt.invalid {
				if cerr == nil || cerr.Code != call.CodeInvalidInput || cerr.Retryable {
					t.Fatalf("ParseRequest = %v, %v; want INVALID_INPUT", p, cerr)
				}
				var q call.RequestPayload
				if err := q.UnmarshalJSON([]byte(tt.payload)); !errors.Is(err, call.ErrPayloadInvalid) {
					t.Fatalf("UnmarshalJSON = %v, want ErrPayloadInvalid", err)
				}
				return
			}
			if cerr != nil {
				t.Fatalf("ParseRequest: %v", cerr)
			}
			if p.OperationName() != tt.op || string(p.Input) != tt.input || string(p.AuthToken) != tt.token {
				t.Fatalf("ParseRequest = %q %s token(%d bytes); want %q %s token(%d bytes)", p.OperationName(), p.Input, len(p.AuthToken), tt.op, tt.input, len(tt.token))
			}
			if tt.token == "" && p.AuthToken != nil {
				t.Fatalf("AuthToken = non-nil empty token")
			}
			switch {
			case tt.ff == "" && p.ForwardedFor != nil:
				t.Fatalf("ForwardedFor = %+v, want nil", p.ForwardedFor)
			case tt.ff != "" && (p.ForwardedFor == nil || p.ForwardedFor.ID != tt.ff):
				t.Fatalf("ForwardedFor = %+v, want id %q", p.ForwardedFor, tt.ff)
			}
		})
	}
}

func TestNewRequestRefuses(t *testing.T) {
	tests := []struct {
		name  string
		op    string
		input json.RawMessage
		token []byte
	}{
		{"empty name", "", nil, nil},
		{"slash only", "/", nil, nil},
		{"input not JSON", "a", json.RawMessage(`{`), nil},
		{"token not UTF-8", "a", nil, []byte("sekrit\xff")},
	}
	for _, tt := range tests {
		_, err := call.NewRequest("r", tt.op, tt.input, tt.token, nil)
		if !errors.Is(err, call.ErrPayloadInvalid) {
			t.Errorf("%s: NewRequest = %v, want ErrPayloadInvalid", tt.name, err)
		}
		if err != nil && strings.Contains(err.Error(), "sekrit") {
			t.Errorf("%s: the error quotes the token: %v", tt.name, err)
		}
	}
}

func TestRequestPayloadRedacted(t *testing.T) {
	p := call.RequestPayload{OperationID: "/a", Input: json.RawMessage(`{"k":1}`), AuthToken: []byte("alk_sekrit"), ForwardedFor: &core.Identity{ID: "alice"}}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d"} {
		if s := fmt.Sprintf(verb, p); strings.Contains(s, "sekrit") || strings.Contains(s, "616c6b") || !strings.Contains(s, "REDACTED") {
			t.Errorf("Sprintf(%s) = %s", verb, s)
		}
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("req", "p", p)
	if strings.Contains(buf.String(), "sekrit") || !strings.Contains(buf.String(), "REDACTED") {
		t.Errorf("slog output = %s", buf.String())
	}
}

// The example exchanges of call.md §2.5.
func TestSpecExamples(t *testing.T) {
	lines := []string{
		`{"type":"call.requested","id":"0b9e6c1a-5d4f-4e0e-9a7b-3c2d1f00aa01","payload":{"operationId":"/notes/get","input":{"noteId":"n-42"}}}`,
		`{"type":"call.responded","id":"0b9e6c1a-5d4f-4e0e-9a7b-3c2d1f00aa01","payload":{"output":{"noteId":"n-42","title":"todo"}}}`,
		`{"type":"call.requested","id":"r-7","payload":{"operationId":"/admin/reindex","input":{},"auth_token":"alk_live_x1"}}`,
		`{"type":"call.error","id":"r-7","payload":{"code":"FORBIDDEN","message":"missing required scope: admin","retryable":false}}`,
		`{"type":"call.error","id":"r-8","payload":{"code":"NOTE_MISSING","message":"no such note n-9","retryable":false,"details":{"noteId":"n-9"}}}`,
		`{"type":"call.requested","id":"s-1","payload":{"operationId":"/metrics/watch","input":{"everyMs":500}}}`,
		`{"type":"call.responded","id":"s-1","payload":{"output":{"cpu":0.31}}}`,
		`{"type":"call.responded","id":"s-1","payload":{"output":{"cpu":0.29}}}`,
		`{"type":"call.completed","id":"s-1","payload":{}}`,
		`{"type":"call.requested","id":"s-2","payload":{"operationId":"/metrics/watch","input":{"everyMs":100}}}`,
		`{"type":"call.aborted","id":"s-2","payload":{}}`,
		`{"type":"call.requested","id":"f-3","payload":{"operationId":"/container/exec","input":{"containerId":"c1","cmd":["ls"]},"forwarded_for":{"id":"alice","scopes":["container:exec"],"resources":{}}}}`,
	}
	if len(lines[0]) != 0x86 {
		t.Fatalf("the first example is %d bytes, the spec says 134", len(lines[0]))
	}
	var stream bytes.Buffer
	for _, line := range lines {
		env, err := call.DecodeEnvelope([]byte(line))
		if err != nil {
			t.Fatalf("DecodeEnvelope(%s): %v", line, err)
		}
		// Re-encoding reproduces the example byte for byte.
		if err := call.WriteFrame(&stream, env, 0); err != nil {
			t.Fatalf("WriteFrame: %v", err)
		}
	}
	if !bytes.HasPrefix(stream.Bytes(), append([]byte{0, 0, 0, 0x86}, lines[0]...)) {
		t.Fatalf("first frame = %q, want 00 00 00 86 and the example", stream.Bytes()[:16])
	}

	get := func() call.Envelope {
		env, err := call.ReadFrame(&stream, 0)
		if err != nil {
			t.Fatalf("ReadFrame: %v", err)
		}
		return env
	}
	req := func(env call.Envelope) call.RequestPayload {
		t.Helper()
		p, cerr := call.ParseRequest(env)
		if cerr != nil {
			t.Fatalf("ParseRequest(%s): %v", env.Payload, cerr)
		}
		return p
	}
	out := func(env call.Envelope) string {
		t.Helper()
		o, err := call.ParseResponded(env)
		if err != nil {
			t.Fatalf("ParseResponded(%s): %v", env.Payload, err)
		}
		return string(o)
	}
	cerr := func(env call.Envelope) *call.CallError {
		t.Helper()
		ce, err := call.ParseError(env)
		if err != nil {
			t.Fatalf("ParseError(%s): %v", env.Payload, err)
		}
		return ce
	}

	if p := req(get()); p.OperationName() != "notes/get" || string(p.Input) != `{"noteId":"n-42"}` {
		t.Errorf("example 1 request = %v", p)
	}
	if o := out(get()); o != `{"noteId":"n-42","title":"todo"}` {
		t.Errorf("example 1 output = %s", o)
	}
	if p := req(get()); p.OperationName() != "admin/reindex" || string(p.AuthToken) != "alk_live_x1" {
		t.Errorf("example 2 request = %v", p)
	}
	if ce := cerr(get()); !errors.Is(ce, &call.CallError{Code: call.CodeForbidden}) || ce.Message != "missing required scope: admin" || ce.Retryable {
		t.Errorf("example 2 error = %+v", ce)
	}
	if ce := cerr(get()); ce.Code != "NOTE_MISSING" || string(ce.Details) != `{"noteId":"n-9"}` {
		t.Errorf("example 3 error = %+v", ce)
	}
	if p := req(get()); p.OperationName() != "metrics/watch" {
		t.Errorf("example 4 request = %v", p)
	}
	if o1, o2 := out(get()), out(get()); o1 != `{"cpu":0.31}` || o2 != `{"cpu":0.29}` {
		t.Errorf("example 4 outputs = %s %s", o1, o2)
	}
	if env := get(); env.Type != call.EvCompleted || env.ID != "s-1" || string(env.Payload) != `{}` {
		t.Errorf("example 4 completion = %+v", env)
	}
	if env := get(); env.ID != "s-2" {
		t.Errorf("example 4 second request id = %s", env.ID)
	}
	if env := get(); env.Type != call.EvAborted || env.ID != "s-2" {
		t.Errorf("example 4 abort = %+v", env)
	}
	if p := req(get()); p.ForwardedFor == nil || p.ForwardedFor.ID != "alice" || !p.ForwardedFor.HasScope("container:exec") || p.AuthToken != nil {
		t.Errorf("example 5 request = %v", p)
	}
	if _, err := call.ReadFrame(&stream, 0); !errors.Is(err, call.ErrClosed) {
		t.Errorf("ReadFrame after the examples = %v, want ErrClosed", err)
	}
}

var wireUUIDv4 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestNewID(t *testing.T) {
	seen := make(map[string]bool)
	for range 1000 {
		id := call.NewID()
		if !wireUUIDv4.MatchString(id) {
			t.Fatalf("NewID() = %q, not a lowercase UUIDv4", id)
		}
		if seen[id] {
			t.Fatalf("NewID() repeated %q", id)
		}
		seen[id] = true
	}
}

// FuzzReadFrame reads frames from arbitrary bytes with a small limit: it must never
// panic, every error must be classified, and every envelope it returns must survive
// an encode/decode round trip unchanged.
func FuzzReadFrame(f *testing.F) {
	for _, env := range wireSamples {
		var buf bytes.Buffer
		if err := call.WriteFrame(&buf, env, 0); err == nil {
			f.Add(buf.Bytes())
		}
	}
	f.Add([]byte{})
	f.Add([]byte{0, 0, 0, 0})
	f.Add([]byte{0, 0, 1})
	f.Add(wireRaw(0xffffffff, nil))
	f.Add(wireBody(`{"type":"t","id":"x","payload":{}}{"type"`))
	f.Add(wireBody(`{"typ\u0065":"\ud800","id":"\u00e9\"","payload":"\\\""}`))
	f.Add(wireBody(`{"type":"t","id":"x","payload":{"a":[{"b":"]}"}]}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		for {
			env, err := call.ReadFrame(r, 512)
			if err != nil {
				if !errors.Is(err, call.ErrClosed) && !errors.Is(err, call.ErrFrameInvalid) && !errors.Is(err, call.ErrEnvelopeInvalid) {
					t.Fatalf("ReadFrame: unclassified error %v", err)
				}
				return
			}
			enc, err := call.EncodeEnvelope(env)
			if err != nil {
				t.Fatalf("EncodeEnvelope of a decoded envelope: %v", err)
			}
			back, err := call.DecodeEnvelope(enc)
			if err != nil {
				t.Fatalf("DecodeEnvelope(%q) of a re-encoded envelope: %v", enc, err)
			}
			wireSameEnvelope(t, back, env)
		}
	})
}

// wireEscapedFFFD matches a \uFFFD escape, in any case.
var wireEscapedFFFD = regexp.MustCompile(`(?i)\\ufffd`)

// FuzzDecodeEnvelope compares DecodeEnvelope with encoding/json on whatever it accepts.
func FuzzDecodeEnvelope(f *testing.F) {
	for _, env := range wireSamples {
		b, _ := call.EncodeEnvelope(env)
		f.Add(b)
	}
	for _, s := range []string{
		`{"Type":"t","id":"x","payload":{}}`, `{"type":"t","id":"x","payload":null}`, `[]`, `{`,
		`{"type":"a","type":"b","id":"x","payload":1}`, `{"typ\u0065":"t","id":"\\","payload":"\\\\\""}`,
		" {\"payload\" : {\"x\":[\"}\"]} ,\"id\":\"\",\"type\":\"\"} ",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		env, err := call.DecodeEnvelope(data)
		if err != nil {
			if !errors.Is(err, call.ErrEnvelopeInvalid) {
				t.Fatalf("DecodeEnvelope: unclassified error %v", err)
			}
			return
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatalf("DecodeEnvelope accepted what encoding/json rejects: %v", err)
		}
		// An accepted id is the one sent: U+FFFD in it was spelled in the input.
		if strings.ContainsRune(env.ID, utf8.RuneError) && !bytes.ContainsRune(data, utf8.RuneError) && !wireEscapedFFFD.Match(data) {
			t.Fatalf("accepted id %q rewrites the one sent", env.ID)
		}
		var typ, id string
		if json.Unmarshal(m["type"], &typ) != nil || typ != env.Type {
			t.Fatalf("type = %q, encoding/json says %s", env.Type, m["type"])
		}
		if json.Unmarshal(m["id"], &id) != nil || id != env.ID {
			t.Fatalf("id = %q, encoding/json says %s", env.ID, m["id"])
		}
		if !bytes.Equal(m["payload"], env.Payload) {
			t.Fatalf("payload = %q, encoding/json says %q", env.Payload, m["payload"])
		}
		enc, err := call.EncodeEnvelope(env)
		if err != nil {
			t.Fatalf("EncodeEnvelope: %v", err)
		}
		back, err := call.DecodeEnvelope(enc)
		if err != nil {
			t.Fatalf("DecodeEnvelope(%q): %v", enc, err)
		}
		wireSameEnvelope(t, back, env)
	})
}

// FuzzParseRequest checks ParseRequest against encoding/json and the round trip
// through MarshalJSON.
func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{
		`{"operationId":"/notes/get","input":{"noteId":"n-42"}}`,
		`{"operationId":"notes/get"}`,
		`{"operationId":"/a","input":{},"auth_token":"alk_live_x1"}`,
		`{"operationId":"/a","auth_token":"\u00e9\n\""}`,
		`{"operationId":"/a","forwarded_for":{"id":"alice","scopes":["s"],"resources":{}}}`,
		`{"operationId":"/a","forwarded_for":{"id":5}}`,
		`{"operationId":5}`, `[]`, `null`, `{"operationId":"/a","operationId":"/b"}`, `{"operationId":"/a",`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, cerr := call.ParseRequest(call.Envelope{Type: call.EvRequested, Payload: data})
		if cerr != nil {
			if cerr.Code != call.CodeInvalidInput {
				t.Fatalf("ParseRequest: code %s, want INVALID_INPUT", cerr.Code)
			}
			return
		}
		if !json.Valid(data) {
			return // outside the contract: payloads come from DecodeEnvelope
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatalf("ParseRequest accepted what encoding/json rejects: %v", err)
		}
		var op string
		if err := json.Unmarshal(m["operationId"], &op); err != nil || op != p.OperationID {
			t.Fatalf("operationId = %q, encoding/json says %s", p.OperationID, m["operationId"])
		}
		b, err := p.MarshalJSON()
		if err != nil {
			t.Fatalf("MarshalJSON of a parsed request: %v", err)
		}
		q, cerr := call.ParseRequest(call.Envelope{Payload: b})
		if cerr != nil {
			t.Fatalf("ParseRequest(%s) of a re-encoded request: %v", b, cerr)
		}
		if q.OperationName() != p.OperationName() || !bytes.Equal(q.Input, p.Input) || !bytes.Equal(q.AuthToken, p.AuthToken) ||
			(q.ForwardedFor == nil) != (p.ForwardedFor == nil) || q.ForwardedFor != nil && q.ForwardedFor.ID != p.ForwardedFor.ID {
			t.Fatalf("round trip changed the request: %v -> %v", p, q)
		}
	})
}
