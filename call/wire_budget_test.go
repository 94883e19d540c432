package call_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/alknet/alknet/call"
	"github.com/alknet/alknet/core"
)

// wireEnvelopeOfLen returns a frame whose body is a valid envelope of exactly n bytes.
func wireEnvelopeOfLen(t testing.TB, n int) []byte {
	t.Helper()
	const head, tail = `{"type":"t","id":"x","payload":"`, `"}`
	k := n - len(head) - len(tail)
	if k < 0 {
		t.Fatalf("an envelope of %d bytes is too short", n)
	}
	return wireBody(head + strings.Repeat("a", k) + tail)
}

func TestReadFrameBudget(t *testing.T) {
	for _, n := range []int{40, 64 << 10, 64<<10 + 1, 200 << 10, 1 << 20} {
		b := core.NewBudget(core.BudgetScopeConn, 1<<20, nil)
		env, reserved, err := call.ReadFrameBudget(bytes.NewReader(wireEnvelopeOfLen(t, n)), 0, b)
		if err != nil {
			t.Fatalf("%d bytes: %v", n, err)
		}
		if env.ID != "x" || reserved != int64(n) || b.Used() != int64(n) {
			t.Fatalf("%d bytes: reserved %d, budget used %d, id %q", n, reserved, b.Used(), env.ID)
		}
		b.Release(reserved)
	}
	// No budget: nothing is reserved.
	if _, reserved, err := call.ReadFrameBudget(bytes.NewReader(wireEnvelopeOfLen(t, 100)), 0, nil); err != nil || reserved != 0 {
		t.Fatalf("nil budget: reserved %d, %v", reserved, err)
	}
}

// A frame that would take the budget past its limit fails as soon as its buffer would
// grow past it, having read no more than the buffer holds, and leaves nothing reserved.
func TestReadFrameBudgetExceeded(t *testing.T) {
	const limit = 100 << 10
	b := core.NewBudget(core.BudgetScopeConn, limit, nil)
	r := bytes.NewReader(wireEnvelopeOfLen(t, 1<<20))
	_, reserved, err := call.ReadFrameBudget(r, 0, b)
	be, ok := errors.AsType[*core.BudgetError](err)
	if !ok || !errors.Is(err, core.ErrBudgetExceeded) || be.Scope != core.BudgetScopeConn || be.Limit != limit {
		t.Fatalf("error %v, want the connection budget's", err)
	}
	if !strings.Contains(err.Error(), "max_buffered_bytes_per_conn of 102400 bytes") {
		t.Fatalf("error text %q does not name the limit", err)
	}
	if reserved != 0 || b.Used() != 0 {
		t.Fatalf("reserved %d, budget used %d after the error", reserved, b.Used())
	}
	if read := int64(1<<20+4) - int64(r.Len()); read > 4+64<<10 {
		t.Fatalf("read %d bytes of a frame the budget could not hold", read)
	}
	// The budget's parent is charged and refunded too.
	parent := core.NewBudget(core.BudgetScopeIP, 10<<10, nil)
	child := core.NewBudget(core.BudgetScopeConn, -1, parent)
	if _, _, err := call.ReadFrameBudget(bytes.NewReader(wireEnvelopeOfLen(t, 20<<10)), 0, child); !strings.Contains(err.Error(), core.BudgetScopeIP) {
		t.Fatalf("error %v, want the parent's limit", err)
	}
	if parent.Used() != 0 || child.Used() != 0 {
		t.Fatalf("used %d / %d after the error", parent.Used(), child.Used())
	}
}

// Errors after a reservation release it: a truncated body, an invalid envelope, a
// failing reader.
func TestReadFrameBudgetReleasesOnError(t *testing.T) {
	b := core.NewBudget(core.BudgetScopeConn, 1<<20, nil)
	truncated := wireEnvelopeOfLen(t, 300<<10)[:200<<10]
	for name, c := range map[string]struct {
		r    io.Reader
		want error
	}{
		"truncated": {bytes.NewReader(truncated), call.ErrClosed},
		"invalid":   {bytes.NewReader(wireBody(`{"type":"t","id":"\xff","payload":1}`)), call.ErrEnvelopeInvalid},
		"not json":  {bytes.NewReader(wireBody(strings.Repeat("x", 70<<10))), call.ErrEnvelopeInvalid},
		"reader":    {io.MultiReader(bytes.NewReader(truncated), iotestErrReader{}), errWireRead},
		"too large": {bytes.NewReader(wireRaw(1<<20+1, nil)), call.ErrFrameTooLarge},
	} {
		_, reserved, err := call.ReadFrameBudget(c.r, 1<<20, b)
		if !errors.Is(err, c.want) || reserved != 0 || b.Used() != 0 {
			t.Fatalf("%s: %v, reserved %d, used %d; want %v and nothing reserved", name, err, reserved, b.Used(), c.want)
		}
	}
}

var errWireRead = errors.New("read failed")

type iotestErrReader struct{}

func (iotestErrReader) Read([]byte) (int, error) { return 0, errWireRead }

// A frame too large wraps both ErrFrameInvalid and ErrFrameTooLarge, read and written.
func TestFrameTooLarge(t *testing.T) {
	_, err := call.ReadFrame(bytes.NewReader(wireRaw(513, nil)), 512)
	if !errors.Is(err, call.ErrFrameInvalid) || !errors.Is(err, call.ErrFrameTooLarge) {
		t.Fatalf("ReadFrame: %v", err)
	}
	if _, err := call.ReadFrame(bytes.NewReader(wireRaw(0, nil)), 512); !errors.Is(err, call.ErrFrameInvalid) || errors.Is(err, call.ErrFrameTooLarge) {
		t.Fatalf("ReadFrame of a zero length: %v", err)
	}
	err = call.WriteFrame(io.Discard, call.Envelope{Type: "t", ID: "x", Payload: []byte(`"` + strings.Repeat("a", 600) + `"`)}, 512)
	if !errors.Is(err, call.ErrFrameInvalid) || !errors.Is(err, call.ErrFrameTooLarge) {
		t.Fatalf("WriteFrame: %v", err)
	}
}

// FuzzReadFrameBudget reads a stream of frames with ReadFrame and with ReadFrameBudget
// under a small budget, holding every envelope read: both agree until the budget
// refuses one, the budget never goes past its limit, and releasing what was returned
// leaves it empty.
func FuzzReadFrameBudget(f *testing.F) {
	for _, env := range wireSamples {
		var buf bytes.Buffer
		if err := call.WriteFrame(&buf, env, 0); err == nil {
			f.Add(buf.Bytes(), uint16(600))
		}
	}
	f.Add([]byte{0, 0, 0, 0}, uint16(10))
	f.Add(wireRaw(0xffffffff, nil), uint16(0))
	f.Add(append(wireBody(`{"type":"t","id":"x","payload":{}}`), wireBody(`{"type":"t","id":"y","payload":[1,2,3]}`)...), uint16(60))
	f.Add(wireBody(`{"type":"t","id":"\ud800","payload":{}}`), uint16(100))
	f.Add(binary.BigEndian.AppendUint32(nil, 400), uint16(300))
	f.Fuzz(func(t *testing.T, data []byte, limit uint16) {
		b := core.NewBudget(core.BudgetScopeConn, int64(limit), nil)
		plain, budgeted := bytes.NewReader(data), bytes.NewReader(data)
		var held int64
		for {
			want, werr := call.ReadFrame(plain, 512)
			got, n, err := call.ReadFrameBudget(budgeted, 512, b)
			if used := b.Used(); used > int64(limit) || used != held+n {
				t.Fatalf("budget used %d (limit %d), want %d held + %d returned", used, limit, held, n)
			}
			if errors.Is(err, core.ErrBudgetExceeded) {
				if n != 0 {
					t.Fatalf("a refused frame returned %d reserved bytes", n)
				}
				break
			}
			if (err == nil) != (werr == nil) {
				t.Fatalf("ReadFrameBudget: %v; ReadFrame: %v", err, werr)
			}
			if err != nil {
				if n != 0 {
					t.Fatalf("an error returned %d reserved bytes", n)
				}
				break
			}
			wireSameEnvelope(t, got, want)
			held += n
		}
		b.Release(held)
		if b.Used() != 0 {
			t.Fatalf("%d bytes still used after releasing everything", b.Used())
		}
	})
}
