package demo_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/alknet/alknet/call"
	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/examples/demo"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func registry(t *testing.T) *call.Registry {
	t.Helper()
	r := call.NewRegistry()
	if err := demo.Register(r); err != nil {
		t.Fatal(err)
	}
	return r
}

// root is the context of a call arriving from the wire with identity id.
func root(id *core.Identity) *call.OpContext {
	return call.NewRootContext("", id, nil, nil, nil, nil)
}

func wantCode(t *testing.T, cerr *call.CallError, code, msg string) {
	t.Helper()
	if cerr == nil {
		t.Fatalf("no error, want %s", code)
	}
	if cerr.Code != code || !strings.Contains(cerr.Message, msg) {
		t.Errorf("error %v, want code %s with %q in the message", cerr, code, msg)
	}
}

func TestRegister(t *testing.T) {
	r := registry(t)
	var names []string
	for _, s := range r.List() {
		names = append(names, s.Name+":"+s.Type.String())
	}
	want := "demo/echo:query demo/ticks:subscription demo/whoami:query services/list:query services/schema:query"
	if got := strings.Join(names, " "); got != want {
		t.Errorf("listed %s, want %s", got, want)
	}
	reg, ok := r.Lookup(demo.OpWhoami)
	if !ok || len(reg.Spec.Access.RequiredScopes) != 1 || reg.Spec.Access.RequiredScopes[0] != demo.Scope {
		t.Errorf("demo/whoami access %+v, want scope %q", reg, demo.Scope)
	}
	if err := demo.Register(r); !errors.Is(err, call.ErrDuplicateOperation) {
		t.Errorf("second Register: %v, want a duplicate operation error", err)
	}
	// services/schema shows the ticks input schema.
	out, cerr := r.Invoke(t.Context(), call.OpServicesSchema, json.RawMessage(`{"name":"/demo/ticks"}`), nil)
	if cerr != nil {
		t.Fatal(cerr)
	}
	var spec call.OperationSpec
	if err := json.Unmarshal(out, &spec); err != nil {
		t.Fatal(err)
	}
	if spec.Type != call.Subscription || !strings.Contains(string(spec.InputSchema), `"required":["count"]`) {
		t.Errorf("demo/ticks spec %s", out)
	}
}

func TestEcho(t *testing.T) {
	r := registry(t)
	for _, in := range []string{`{"a":[1,2]}`, `"text"`, `42`, `null`, `[]`} {
		out, cerr := r.Invoke(t.Context(), demo.OpEcho, json.RawMessage(in), nil)
		if cerr != nil || string(out) != in {
			t.Errorf("echo %s = %s, %v", in, out, cerr)
		}
	}
	out, cerr := r.Invoke(t.Context(), "/"+demo.OpEcho, nil, nil)
	if cerr != nil || string(out) != "null" {
		t.Errorf("echo of no input = %s, %v; want null", out, cerr)
	}
	_, cerr = r.Invoke(t.Context(), demo.OpEcho+"x", nil, nil)
	wantCode(t, cerr, call.CodeNotFound, "operation not found: demo/echox")
}

// ticks subscribes to demo/ticks with input and returns the events.
func ticks(t *testing.T, r *call.Registry, input string) ([]string, *call.CallError) {
	t.Helper()
	var got []string
	cerr := r.InvokeStream(t.Context(), demo.OpTicks, json.RawMessage(input), nil, func(out json.RawMessage) error {
		got = append(got, string(out))
		return nil
	})
	return got, cerr
}

func TestTicks(t *testing.T) {
	r := registry(t)
	got, cerr := ticks(t, r, `{"count":3}`)
	if cerr != nil || strings.Join(got, " ") != `{"n":1} {"n":2} {"n":3}` {
		t.Errorf("ticks 3 = %q, %v", got, cerr)
	}
	got, cerr = ticks(t, r, `{"count":0,"interval_ms":60000}`)
	if cerr != nil || len(got) != 0 {
		t.Errorf("ticks 0 = %q, %v; want no events", got, cerr)
	}
	got, cerr = ticks(t, r, `{"count":2.0,"interval_ms":0}`)
	if cerr != nil || len(got) != 2 {
		t.Errorf("ticks 2.0 = %q, %v; want 2 events", got, cerr)
	}

	start := time.Now()
	got, cerr = ticks(t, r, `{"count":3,"interval_ms":20}`)
	if cerr != nil || len(got) != 3 {
		t.Fatalf("ticks 3 every 20ms = %q, %v", got, cerr)
	}
	if d := time.Since(start); d < 40*time.Millisecond {
		t.Errorf("3 ticks 20ms apart took %v, want at least 40ms", d)
	}
}

func TestTicksInvalidInput(t *testing.T) {
	r := registry(t)
	for _, in := range []string{
		`null`, `{}`, `{"count":-1}`, `{"count":10001}`, `{"count":1.5}`, `{"count":"3"}`,
		`{"count":1,"interval_ms":60001}`, `{"count":1,"interval_ms":-1}`, `{"count":1,"extra":true}`, `[3]`,
	} {
		got, cerr := ticks(t, r, in)
		if len(got) != 0 {
			t.Errorf("%s emitted %q", in, got)
		}
		wantCode(t, cerr, call.CodeInvalidInput, "invalid input")
	}
	// The handler itself refuses what the schema would when called directly.
	for _, in := range []string{`{"count":1.5}`, `{}`, `{"count":3,"interval_ms":1e9}`, `"x"`} {
		err := demo.Ticks(t.Context(), nil, json.RawMessage(in), func(json.RawMessage) error { return nil })
		if !errors.Is(err, &call.CallError{Code: call.CodeInvalidInput}) {
			t.Errorf("Ticks(%s) = %v, want INVALID_INPUT", in, err)
		}
	}
	// A subscription is not a query.
	_, cerr := r.Invoke(t.Context(), demo.OpTicks, json.RawMessage(`{"count":1}`), nil)
	wantCode(t, cerr, call.CodeInvalidOperationType, "subscription")
}

// TestTicksCancel checks that demo/ticks stops when its context is cancelled during a
// long interval, without waiting for the interval to pass.
func TestTicksCancel(t *testing.T) {
	r := registry(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var got []string
	done := make(chan *call.CallError, 1)
	go func() {
		done <- r.InvokeStream(ctx, demo.OpTicks, json.RawMessage(`{"count":5,"interval_ms":60000}`), nil, func(out json.RawMessage) error {
			got = append(got, string(out))
			cancel() // after the first event, which comes at once
			return nil
		})
	}()
	select {
	case cerr := <-done:
		wantCode(t, cerr, call.CodeInternal, "request aborted")
	case <-time.After(10 * time.Second):
		t.Fatal("demo/ticks did not stop within 10s of its context being cancelled")
	}
	if len(got) != 1 || got[0] != `{"n":1}` {
		t.Errorf("events %q, want only {\"n\":1}", got)
	}
}

func TestWhoami(t *testing.T) {
	r := registry(t)
	_, cerr := r.Invoke(t.Context(), demo.OpWhoami, nil, root(nil))
	wantCode(t, cerr, call.CodeForbidden, "authentication required")
	_, cerr = r.Invoke(t.Context(), demo.OpWhoami, nil, root(&core.Identity{ID: "bob", Scopes: []string{"admin"}}))
	wantCode(t, cerr, call.CodeForbidden, "missing required scope: demo")
	out, cerr := r.Invoke(t.Context(), demo.OpWhoami, json.RawMessage(`{"ignored":true}`), root(&core.Identity{ID: "alk_abcd", Scopes: []string{"demo"}}))
	if cerr != nil || string(out) != `{"id":"alk_abcd"}` {
		t.Errorf("whoami = %s, %v", out, cerr)
	}
	if _, err := demo.Whoami(t.Context(), nil, nil); !errors.Is(err, &call.CallError{Code: call.CodeForbidden}) {
		t.Errorf("Whoami without a context = %v, want FORBIDDEN", err)
	}
}
