package msg

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/alknet/alknet/core"
)

func frameOf(body []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(body)))
	return append(b, body...)
}

func TestReadFrameLimits(t *testing.T) {
	const max = 1000
	body := bytes.Repeat([]byte("a"), max)
	got, _, err := ReadFrame(bytes.NewReader(frameOf(body)), max, nil)
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("frame at the cap: %v", err)
	}
	_, _, err = ReadFrame(bytes.NewReader(frameOf(append(body, 'a'))), max, nil)
	if !errors.Is(err, ErrFrameTooLarge) || !strings.Contains(err.Error(), "limit of 1000 bytes") {
		t.Fatalf("frame one over the cap: %v", err)
	}
	if _, _, err := ReadFrame(bytes.NewReader([]byte{0, 0, 0, 0}), max, nil); !errors.Is(err, ErrMalformed) {
		t.Fatalf("zero-length frame: %v", err)
	}
	if _, _, err := ReadFrame(bytes.NewReader(nil), max, nil); err != io.EOF {
		t.Fatalf("no frame: %v, want io.EOF", err)
	}
	if _, _, err := ReadFrame(bytes.NewReader([]byte{0, 0}), max, nil); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("truncated length: %v", err)
	}
	if _, _, err := ReadFrame(bytes.NewReader(frameOf(body)[:500]), max, nil); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("truncated body: %v", err)
	}
}

// TestReadFrameNoLargeAllocation: a peer announcing a huge frame gets TOO_LARGE without
// the server allocating it, and one announcing a frame under the cap but sending little
// holds (and is charged) about what it sent.
func TestReadFrameNoLargeAllocation(t *testing.T) {
	announce := func(n uint32, send int) io.Reader {
		return io.MultiReader(bytes.NewReader(binary.BigEndian.AppendUint32(nil, n)), bytes.NewReader(make([]byte, send)))
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range 100 {
		if _, _, err := ReadFrame(announce(1<<31, 10), DefaultMaxFrameBytes, nil); !errors.Is(err, ErrFrameTooLarge) {
			t.Fatal(err)
		}
	}
	runtime.ReadMemStats(&after)
	if d := after.TotalAlloc - before.TotalAlloc; d > 1<<20 {
		t.Fatalf("100 refused 2 GiB frames allocated %d bytes", d)
	}
	b := core.NewBudget("test", 1<<20, nil)
	_, _, err := ReadFrame(announce(MaxFrameBytesLimit, 100), MaxFrameBytesLimit, b)
	if !errors.Is(err, io.ErrUnexpectedEOF) || b.Used() != 0 {
		t.Fatalf("truncated frame: %v, %d bytes left reserved", err, b.Used())
	}
	small := core.NewBudget("tiny", 20<<10, nil)
	_, _, err = ReadFrame(announce(200<<10, 200<<10), 256<<10, small)
	if !errors.Is(err, core.ErrBudgetExceeded) || small.Used() != 0 {
		t.Fatalf("frame over the budget: %v, %d bytes reserved", err, small.Used())
	}
	body, reserved, err := ReadFrame(announce(100<<10, 100<<10), 256<<10, b)
	if err != nil || len(body) != 100<<10 || reserved != b.Used() || reserved < 100<<10 {
		t.Fatalf("budgeted frame: %v, %d reserved, %d used", err, reserved, b.Used())
	}
	b.Release(reserved)
}

func TestDecodeRequestStrict(t *testing.T) {
	good := []string{
		`{"op":"keys.get","mailbox":"x"}`,
		`{"op":"fetch"}`,
		`{"op":"fetch","limit":100,"wait_ms":60000,"after":"c"}`,
		`{"op":"ack","ids":["AAAAAAAAAAAAAAAAAAAAAA"]}`,
	}
	for _, s := range good {
		if _, err := decodeRequest([]byte(s)); err != nil {
			t.Errorf("%s: %v", s, err)
		}
	}
	bad := []string{
		`{"op":"nope"}`,
		`{"op":"fetch","limit":101}`,
		`{"op":"fetch","limit":-1}`,
		`{"op":"fetch","wait_ms":60001}`,
		`{"op":"fetch","after":"` + strings.Repeat("c", maxCursorLen+1) + `"}`,
		`{"op":"fetch","mailbox":"a","mailbox":"b"}`,
		`{"op":"fetch","Limit":5}`,
		`{"op":"fetch","ids":[]}`,
		`{"op":"fetch"} {"op":"fetch"}`,
		`{"op":"ack","ids":[]}`,
		`{"op":"keys.put"}`,
		`{"op":"deliver"}`,
		`{"op":"deliver","envelope":{}}`,
		`[1]`,
		`"op"`,
		``,
		`{"op":"fetch","x":` + strings.Repeat("[", 20) + strings.Repeat("]", 20) + `}`,
		"{\"op\":\"keys.get\",\"mailbox\":\"\xff\"}",
	}
	for _, s := range bad {
		if _, err := decodeRequest([]byte(s)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", s, err)
		}
	}
}

func TestConfig(t *testing.T) {
	var c Config
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	e := c.Effective()
	if e.Store != StoreBolt || e.MaxMailboxMessages != 10000 || e.MaxMailboxBytes != 256<<20 || e.MaxFrameBytes != 256<<10 ||
		time.Duration(e.DefaultTTL) != 7*24*time.Hour || time.Duration(e.MaxTTL) != 30*24*time.Hour {
		t.Fatalf("defaults %+v", e)
	}
	for _, c := range []struct {
		in   string
		want int64
	}{{"256MiB", 256 << 20}, {"64 KiB", 64 << 10}, {"1GB", 1e9}, {"512", 512}, {"2mib", 2 << 20}} {
		var s Size
		if err := s.UnmarshalText([]byte(c.in)); err != nil || int64(s) != c.want {
			t.Errorf("size %q: %d, %v", c.in, s, err)
		}
	}
	for _, in := range []string{"", "MiB", "1 PiB", "-1", "1.5MiB", "99999999999999999999"} {
		var s Size
		if err := s.UnmarshalText([]byte(in)); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("size %q accepted", in)
		}
	}
	var d Duration
	if err := d.UnmarshalText([]byte("7d")); err != nil || time.Duration(d) != 7*24*time.Hour {
		t.Errorf("7d: %v %v", d, err)
	}
	if err := d.UnmarshalText([]byte("90s")); err != nil || time.Duration(d) != 90*time.Second {
		t.Errorf("90s: %v %v", d, err)
	}
	if err := d.UnmarshalText([]byte("1.5d")); err == nil {
		t.Error("1.5d accepted")
	}
	for name, bad := range map[string]Config{
		"store":             {Store: "sqlite"},
		"postgres_dsn_file": {Store: StorePostgres},
		"max_frame_bytes":   {MaxFrameBytes: MaxFrameBytesLimit + 1},
		"default_ttl":       {DefaultTTL: Duration(31 * 24 * time.Hour)},
		"max_mailbox_bytes": {MaxMailboxBytes: -1},
	} {
		if err := bad.Validate(); !errors.Is(err, ErrInvalidConfig) || !strings.HasPrefix(err.Error(), name+":") {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestRateLimiter(t *testing.T) {
	r := newRateLimiter(3)
	now := testNow
	for i := range 3 {
		if !r.allow("a", now) {
			t.Fatalf("send %d refused", i)
		}
	}
	if r.allow("a", now) {
		t.Fatal("fourth send in the same instant allowed")
	}
	if !r.allow("b", now) {
		t.Fatal("another key limited")
	}
	if !r.allow("a", now.Add(20*time.Second)) || r.allow("a", now.Add(20*time.Second)) {
		t.Fatal("refill of one token per 20 s wrong")
	}
}

// TestStrictJSONManyKeys: an object with many keys (all unknown) is refused in linear
// time, and a duplicate among them is found.
func TestStrictJSONManyKeys(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"op":"fetch","x":{`)
	for i := range 20000 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"k%d":1`, i)
	}
	b.WriteString(`}}`)
	if err := checkJSON([]byte(b.String())); err != nil {
		t.Fatalf("20000 distinct keys: %v", err)
	}
	if _, err := decodeRequest([]byte(b.String())); !errors.Is(err, ErrMalformed) {
		t.Fatalf("unknown field with 20000 keys: %v", err)
	}
	dup := strings.Replace(b.String(), `}}`, `,"k17":2}}`, 1)
	if err := checkJSON([]byte(dup)); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), `"k17"`) {
		t.Fatalf("duplicate among 20000 keys: %v", err)
	}
}
