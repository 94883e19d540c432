package call

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/core/endpoint"
)

// nested returns an array nested d deep.
func nested(d int) json.RawMessage {
	return json.RawMessage(strings.Repeat("[", d) + strings.Repeat("]", d))
}

// TestPayloadDepthEdge: a value the engine wraps into an envelope may nest
// maxPayloadDepth deep and no deeper, so that every envelope it sends is one its peer
// can decode (the envelope adds two levels to encoding/json's limit of maxJSONDepth).
func TestPayloadDepthEdge(t *testing.T) {
	if !validPayload(nested(maxPayloadDepth)) || validPayload(nested(maxPayloadDepth+1)) {
		t.Fatalf("validPayload: want depth %d accepted and %d refused", maxPayloadDepth, maxPayloadDepth+1)
	}
	if !validJSON(nested(maxJSONDepth)) || validJSON(nested(maxJSONDepth+1)) {
		t.Fatalf("validJSON: want depth %d accepted and %d refused", maxJSONDepth, maxJSONDepth+1)
	}
	// The deepest accepted value, wrapped by each way out, decodes on the other side.
	out := nested(maxPayloadDepth)
	frame, err := appendRespondedFrame(nil, respondedFrameHead("s-1"), out, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := decodeEnvelope(frame[4:], false); err != nil {
		t.Errorf("responded frame at depth %d: the peer refuses it: %v", maxPayloadDepth, err)
	}
	if _, _, ok := plainResponded(frame[4:]); !ok {
		t.Errorf("plainResponded refuses the responded frame at depth %d", maxPayloadDepth)
	}
	for _, d := range []int{maxPayloadDepth + 1, maxJSONDepth} {
		body := []byte(`{"type":"call.responded","id":"s-1","payload":{"output":` + string(nested(d)) + `}}`)
		_, _, ok := plainResponded(body)
		_, err := decodeEnvelope(body, false)
		if ok || err == nil {
			t.Errorf("output depth %d: plainResponded ok=%v, decodeEnvelope err=%v; want both to refuse", d, ok, err)
		}
	}
	for _, d := range []int{maxPayloadDepth, maxPayloadDepth + 1} {
		in, err := encodeInput(nested(d))
		if d > maxPayloadDepth {
			if err == nil {
				t.Errorf("encodeInput accepts an input %d deep", d)
			}
			continue
		}
		if err != nil {
			t.Fatalf("encodeInput at depth %d: %v", d, err)
		}
		for _, check := range []bool{true, false} {
			req, err := newOutRequest("id-1", "op", in, nil, nil, check)
			if err != nil {
				t.Fatalf("newOutRequest at depth %d: %v", d, err)
			}
			var b bytes.Buffer
			b.Write(req.head)
			b.Write(req.input)
			b.Write(req.tail)
			if req.head == nil {
				b.Reset()
				b.Write(req.env.Payload)
			}
			if !validJSONDepth(b.Bytes(), maxJSONDepth-1) {
				t.Errorf("request payload at input depth %d: not a payload an envelope can carry", d)
			}
		}
		if _, err := newOutRequest("id-1", "op", nested(d+1), nil, nil, true); err == nil {
			t.Errorf("newOutRequest accepts an input %d deep", d+1)
		}
	}
	// A Go value that marshals deeper than an envelope can carry is refused locally.
	var v any = []any{}
	for range maxPayloadDepth {
		v = []any{v}
	}
	if _, err := encodeInput(v); err == nil {
		t.Errorf("encodeInput accepts a Go value marshalling to depth %d", maxPayloadDepth+1)
	}
}

// TestDeepOutputRefusedLocally: a handler output nested deeper than an envelope can
// carry fails its own call with INTERNAL on the server; the single-stream connection
// and its other calls go on.
func TestDeepOutputRefusedLocally(t *testing.T) {
	reg := NewRegistry()
	mustRegister(t, reg, Registration{
		Spec: NewSpec("deep", Query),
		Once: func(context.Context, *OpContext, json.RawMessage) (json.RawMessage, error) {
			return nested(maxPayloadDepth + 1), nil
		},
	})
	mustRegister(t, reg, Registration{
		Spec: NewSpec("ok", Query),
		Once: func(_ context.Context, _ *OpContext, in json.RawMessage) (json.RawMessage, error) { return in, nil },
	})
	s := engStartServer(t, &Dispatcher{Registry: reg}, nil, nil)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	raw, err := endpoint.Dial(ctx, s.srv.Addr, ALPN, s.srv.DialOptions(s.client, engNetwork(modeTCP)))
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	c, err := (&Dispatcher{}).Serve(ctx, raw, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.Call(ctx, "deep", nil)
	var ce *CallError
	if !errors.As(err, &ce) || ce.Code != CodeInternal {
		t.Fatalf("deep output: %v, want INTERNAL", err)
	}
	out, err := c.Call(ctx, "ok", json.RawMessage(`{"still":"up"}`))
	if err != nil || string(out) != `{"still":"up"}` {
		t.Fatalf("the next call on the connection: %s, %v", out, err)
	}
}

// TestEventFastPathBudget: an event of a live subscription that the fast path would
// queue is reserved as ReadFrameBudget reserves a frame: over the budget, both fail
// with the same error.
func TestEventFastPathBudget(t *testing.T) {
	ev := `{"type":"call.responded","id":"s-1","payload":{"output":"` + strings.Repeat("x", 300) + `"}}`
	for _, limit := range []int64{int64(len(ev)) - 1, int64(len(ev))} {
		b := core.NewBudget("test", limit, nil)
		_, _, wantErr := ReadFrameBudget(bytes.NewReader(frameBytes(ev)), 0, b)
		b = core.NewBudget("test", limit, nil)
		p := newPending("s-1", true, 4)
		c := &Conn{d: &Dispatcher{}, pending: map[string]*pendingCall{"s-1": p}, budget: b}
		fs := &frameStream{c: c, fr: newFrameReader(bytes.NewReader(frameBytes(ev)))}
		var batch eventBatch
		_, _, err := c.readBuffered(fs, &batch)
		if wantErr != nil {
			if err == nil || err.Error() != wantErr.Error() {
				t.Errorf("budget %d: buffered reader: %v; ReadFrameBudget: %v", limit, err, wantErr)
			}
			if p.events.held.Load() != 0 {
				t.Errorf("budget %d: the event over the budget was queued", limit)
			}
		} else if p.events.held.Load() != 1 {
			t.Errorf("budget %d: the event within the budget was not queued (err %v)", limit, err)
		}
		if b.Used() != 0 {
			t.Errorf("budget %d: %d bytes left reserved", limit, b.Used())
		}
	}
}
