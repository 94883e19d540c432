package call

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/core/endpoint"
)

// The read buffer of a single-stream connection's stream is reserved in the
// connection's budget: a budget one byte short of it closes the connection with the
// budget's error (Handle returns it, nothing stays reserved), and a budget that holds
// it and a frame serves calls, the buffer returned to the budget when the connection
// ends.
func TestHardenReadBufferBudgetShared(t *testing.T) {
	t.Run("too small", func(t *testing.T) {
		const limit = frameReadBuffer - 1
		h := hardStart(t, &Dispatcher{}, core.Limits{MaxBufferedBytesPerConn: limit})
		raw := h.raw(t, h.alice, endpoint.NetworkTCP)
		t.Cleanup(func() { raw.Close(core.CloseNormal, "") })
		s, err := raw.OpenBi(engCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		_ = hardDrain(s) // the server closes the connection
		hh := h.waitHandled(t)
		want := fmt.Sprintf("max_buffered_bytes_per_conn of %d bytes", limit)
		if !errors.Is(hh.err, core.ErrBudgetExceeded) || !strings.Contains(hh.err.Error(), want) {
			t.Fatalf("Handle returned %v, want the budget error naming %q", hh.err, want)
		}
		if used := hh.conn.Budget().Used(); used != 0 {
			t.Fatalf("%d bytes still reserved after the connection ended", used)
		}
	})
	t.Run("large enough", func(t *testing.T) {
		const limit = frameReadBuffer + 1<<10
		h := hardStart(t, &Dispatcher{}, core.Limits{MaxBufferedBytesPerConn: limit})
		c := h.dial(t, h.alice, endpoint.NetworkTCP)
		if out, err := c.Call(engCtx(t), "t/echo", "hi"); err != nil || string(out) != `"hi"` {
			t.Fatalf("echo within the budget: %s, %v", out, err)
		}
		sc := h.serverConnOf(t, c)
		if used := sc.budget.Used(); used < frameReadBuffer {
			t.Fatalf("the serving side reserves %d bytes, want at least its read buffer (%d)", used, frameReadBuffer)
		}
		c.Close()
		hh := h.waitHandled(t)
		if hh.err != nil {
			t.Fatalf("Handle returned %v", hh.err)
		}
		if used := hh.conn.Budget().Used(); used != 0 {
			t.Fatalf("%d bytes still reserved after the connection ended", used)
		}
	})
}

// The read buffer of a subscription stream this side opens (QUIC) is reserved in the
// connection's budget while the stream is read: a budget one byte short of it fails
// Subscribe with the budget's error and leaves nothing reserved; one that holds it
// serves the subscription and gets the buffer back when the stream ends.
func TestHardenReadBufferBudgetSubscription(t *testing.T) {
	h := hardStart(t, &Dispatcher{Registry: hardRegistry(t, engSub("t/count", func(_ context.Context, _ *OpContext, _ json.RawMessage, emit func(json.RawMessage) error) error {
		for i := range 3 {
			if err := emit(json.RawMessage(fmt.Sprint(i))); err != nil {
				return err
			}
		}
		return nil
	}))}, core.Limits{})
	ctx := engCtx(t)
	raw := h.raw(t, h.alice, endpoint.NetworkQUIC)
	b := core.NewBudget(core.BudgetScopeConn, frameReadBuffer-1, nil)
	raw.SetBudget(b)
	c, err := (&Dispatcher{}).Serve(context.Background(), raw, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })

	_, err = c.Subscribe(ctx, "t/count", nil)
	be, ok := errors.AsType[*core.BudgetError](err)
	if !ok || !errors.Is(err, core.ErrBudgetExceeded) || be.Limit != frameReadBuffer-1 {
		t.Fatalf("Subscribe over the budget: %v, want the connection budget's error", err)
	}
	if used := b.Used(); used != 0 {
		t.Fatalf("%d bytes reserved after the refused subscription", used)
	}
	// The connection is still usable.
	if out, err := c.Call(ctx, "t/echo", "hi"); err != nil || string(out) != `"hi"` {
		t.Fatalf("echo after the refused subscription: %s, %v", out, err)
	}

	b.SetLimit(frameReadBuffer + 1<<10)
	sub, err := c.Subscribe(ctx, "t/count", nil)
	if err != nil {
		t.Fatalf("Subscribe within the budget: %v", err)
	}
	if used := b.Used(); used < frameReadBuffer {
		t.Fatalf("the subscription reserves %d bytes, want at least its read buffer (%d)", used, frameReadBuffer)
	}
	for i := 0; ; i++ {
		ev, err := sub.Next(ctx)
		if errors.Is(err, io.EOF) {
			if i != 3 {
				t.Fatalf("%d events, want 3", i)
			}
			break
		}
		if err != nil || string(ev) != fmt.Sprint(i) {
			t.Fatalf("event %d: %s, %v", i, ev, err)
		}
	}
	sub.Close()
	hardWaitFor(t, "the subscription's read buffer to be released", func() bool { return b.Used() == 0 })
}

// A frame body is reserved and allocated at its announced length up front when the
// peer has an identity (up to 1 MiB), and grows as its bytes come from an anonymous
// peer (past 64 KiB): a stream that announces 512 KiB and sends 10 bytes holds 512
// KiB of the budget for alice and 64 KiB for an anonymous peer; one that announces
// 64 KiB + 1 holds 64 KiB for the anonymous peer, one that announces exactly 64 KiB
// holds it all.
func TestHardenFrameBodyExactForIdentified(t *testing.T) {
	const sent = 10
	h := hardStart(t, &Dispatcher{}, core.Limits{MaxBufferedBytesPerConn: 4 << 20})
	for _, c := range []struct {
		name      string
		id        bool
		announced uint32
		want      int64
	}{
		{"alice", true, 512 << 10, 512 << 10},
		{"anonymous", false, 512 << 10, budgetFirstAlloc},
		{"anonymous just over", false, budgetFirstAlloc + 1, budgetFirstAlloc},
		{"anonymous at the edge", false, budgetFirstAlloc, budgetFirstAlloc},
	} {
		t.Run(c.name, func(t *testing.T) {
			who := h.anon
			if c.id {
				who = h.alice
			}
			raw := h.raw(t, who, endpoint.NetworkQUIC)
			t.Cleanup(func() { raw.Close(core.CloseNormal, "") })
			s, err := raw.OpenBi(engCtx(t))
			if err != nil {
				t.Fatal(err)
			}
			b := binary.BigEndian.AppendUint32(nil, c.announced)
			if _, err := s.Write(append(b, make([]byte, sent)...)); err != nil {
				t.Fatal(err)
			}
			sc := h.serverConnAt(t, raw.LocalAddr())
			hardWaitFor(t, fmt.Sprintf("%d bytes reserved", c.want), func() bool { return sc.budget.Used() == c.want })
		})
	}
}
