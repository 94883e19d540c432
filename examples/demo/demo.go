// Package demo holds the demo operations of the call protocol ("alknet/call") that
// `alknet serve` registers: one of each kind an operation can be, small enough to read
// in one sitting and to try with `alknet call`.
//
//   - demo/echo (Query): returns its input.
//   - demo/ticks (Subscription): {"count":N,"interval_ms":M} emits {"n":1} … {"n":N},
//     M milliseconds apart, then completes.
//   - demo/whoami (Query, scope "demo"): returns {"id": <the caller's identity id>}.
//   - demo/callback (Mutation): {"operation":"ns/op","input":…} calls the caller back:
//     it imports that one operation of the caller over the caller's own connection
//     ([call.FromCall]) and calls it, as the identity "demo/callback" with the scope
//     "demo", so the caller's own access control decides. This is how a node calls
//     into a browser connected over WebSocket.
//
// Embedders register them on their own registry with [Register]:
//
//	reg := call.NewRegistry()
//	if err := demo.Register(reg); err != nil {
//		return err
//	}
//	d := &call.Dispatcher{Registry: reg, Identities: idp}
//
// [PageHandler] serves a small HTML page whose inline JavaScript speaks the call
// protocol over the WebSocket of package github.com/alknet/alknet/http
// (GET /alknet/call): it offers an operation of its own, page/greet, and calls the
// demo operations, demo/callback included, so that the node calls page/greet back.
package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/alknet/alknet/call"
)

// Operation names and the scope demo/whoami requires.
const (
	// OpEcho is demo/echo, a Query that returns its input unchanged (any JSON, null
	// included). It has no access restriction.
	OpEcho = "demo/echo"
	// OpTicks is demo/ticks, a Subscription. Its input is {"count": N, "interval_ms": M}
	// with N an integer in 0..MaxCount (required) and M an integer in 0..MaxIntervalMS
	// (optional, default 0); other keys are refused (INVALID_INPUT). It emits {"n":1}
	// at once, then {"n":2} … {"n":N}, each M milliseconds after the previous one,
	// and completes right after the last (at once for N = 0). It stops as soon as the
	// call is aborted. It has no access restriction.
	OpTicks = "demo/ticks"
	// OpWhoami is demo/whoami, a Query that returns {"id": <caller identity id>}: the
	// peer id of the client certificate, or the identity of the request's auth_token (an
	// API key's identity id is its eight-character prefix, such as "alk_abcd"). It
	// requires the scope [Scope]; its input is ignored.
	OpWhoami = "demo/whoami"
	// OpCallback is demo/callback, a Mutation that calls the caller back. Its input is
	// {"operation": "ns/op", "input": <any JSON>}: operation (required) names an
	// operation the caller offers (a leading "/" is accepted), input (default null) is
	// what it is called with; other keys are refused (INVALID_INPUT). It returns that
	// operation's output, or its error unchanged.
	//
	// It needs the call connection the request arrived on ([call.ConnFrom]): alknet/call
	// over QUIC or TCP+TLS, or the WebSocket GET /alknet/call. Over the HTTP gateway
	// (POST /call) there is none, and it answers INVALID_INPUT. The first call for an
	// operation imports it from the caller with [call.FromCall] (services/list, then
	// services/schema) into the connection's overlay, where it stays until the
	// connection closes; later calls reuse it. An operation the caller does not list
	// gives NOT_FOUND. The call goes through the overlay as a composed call with the
	// authority [CallbackAuthority] (identity "demo/callback", scope [Scope]), so the
	// access control the caller declared for its operation is checked against that
	// authority, never against the caller's own identity. A subscription of the caller
	// cannot be composed (INVALID_OPERATION_TYPE). It has no access restriction.
	OpCallback = "demo/callback"
	// Scope is the scope demo/whoami requires, and the one demo/callback calls back
	// with.
	Scope = "demo"
)

// CallbackAuthority is the composition authority demo/callback calls the caller back
// with: the caller sees the identity "demo/callback" with the scope [Scope] (as
// forwarded_for, and as the identity its declared access control is checked against).
func CallbackAuthority() *call.CompositionAuthority {
	return &call.CompositionAuthority{Label: OpCallback, Scopes: []string{Scope}}
}

// Limits of demo/ticks' input.
const (
	// MaxCount is the largest "count" demo/ticks accepts.
	MaxCount = 10000
	// MaxIntervalMS is the largest "interval_ms" demo/ticks accepts (one minute).
	MaxIntervalMS = 60000
)

// Schemas of the operations (JSON Schema 2020-12).
var (
	ticksInput = json.RawMessage(fmt.Sprintf(`{"type":"object",`+
		`"properties":{"count":{"type":"integer","minimum":0,"maximum":%d},`+
		`"interval_ms":{"type":"integer","minimum":0,"maximum":%d,"default":0}},`+
		`"required":["count"],"additionalProperties":false}`, MaxCount, MaxIntervalMS))
	ticksOutput   = json.RawMessage(`{"type":"object","properties":{"n":{"type":"integer","minimum":1}},"required":["n"]}`)
	whoamiOutput  = json.RawMessage(`{"type":"object","properties":{"id":{"type":"string"}},"required":["id"]}`)
	callbackInput = json.RawMessage(`{"type":"object",` +
		`"properties":{"operation":{"type":"string","minLength":1},"input":true},` +
		`"required":["operation"],"additionalProperties":false}`)
)

// Registrations returns the registrations of the four demo operations (Local
// provenance, in name order). All are leaves as far as the registry knows (no
// composition authority, nothing in their scoped environment): demo/callback composes
// only through the caller's connection, with an authority of its own.
func Registrations() []call.Registration {
	callback := call.NewSpec(OpCallback, call.Mutation)
	callback.InputSchema = callbackInput

	echo := call.NewSpec(OpEcho, call.Query)

	ticks := call.NewSpec(OpTicks, call.Subscription)
	ticks.InputSchema = ticksInput
	ticks.OutputSchema = ticksOutput

	whoami := call.NewSpec(OpWhoami, call.Query)
	whoami.OutputSchema = whoamiOutput
	whoami.Access = call.AccessControl{RequiredScopes: []string{Scope}}

	return []call.Registration{
		{Spec: callback, Once: Callback},
		{Spec: echo, Once: Echo},
		{Spec: ticks, Stream: Ticks},
		{Spec: whoami, Once: Whoami},
	}
}

// Register adds demo/callback, demo/echo, demo/ticks and demo/whoami to r. It fails
// when one of the names is already registered; the operations registered before the
// failure stay.
func Register(r *call.Registry) error {
	for _, reg := range Registrations() {
		if err := r.Register(reg); err != nil {
			return fmt.Errorf("demo: %w", err)
		}
	}
	return nil
}

// Echo is the handler of demo/echo: it returns its input.
func Echo(_ context.Context, _ *call.OpContext, input json.RawMessage) (json.RawMessage, error) {
	return input, nil
}

// ticksParams is demo/ticks' input. The numbers are decoded as float64 because JSON
// Schema's "integer" admits 3.0 and 3e0, which encoding/json refuses for an int.
type ticksParams struct {
	Count      *float64 `json:"count"`
	IntervalMS *float64 `json:"interval_ms"`
}

// parseTicks checks demo/ticks' input. The registry has validated it against the input
// schema already; this keeps the handler safe when called directly.
func parseTicks(input json.RawMessage) (count int, interval time.Duration, err error) {
	var p ticksParams
	if err := json.Unmarshal(input, &p); err != nil {
		return 0, 0, call.NewCallError(call.CodeInvalidInput, "invalid input: want {\"count\": N, \"interval_ms\": M}")
	}
	count, ok := integer(p.Count, MaxCount)
	if p.Count == nil || !ok {
		return 0, 0, call.Errorf(call.CodeInvalidInput, "invalid input: count must be an integer from 0 to %d", MaxCount)
	}
	ms := 0
	if p.IntervalMS != nil {
		if ms, ok = integer(p.IntervalMS, MaxIntervalMS); !ok {
			return 0, 0, call.Errorf(call.CodeInvalidInput, "invalid input: interval_ms must be an integer from 0 to %d", MaxIntervalMS)
		}
	}
	return count, time.Duration(ms) * time.Millisecond, nil
}

// integer returns *v as an int when it is an integer in 0..max.
func integer(v *float64, max int) (int, bool) {
	if v == nil {
		return 0, true
	}
	f := *v
	if f != math.Trunc(f) || f < 0 || f > float64(max) {
		return 0, false
	}
	return int(f), true
}

// Ticks is the handler of demo/ticks: it emits {"n":1} … {"n":count}, interval apart,
// and returns nil (the subscription completes). It returns ctx.Err() as soon as ctx is
// cancelled (the call was aborted, or the connection closed).
func Ticks(ctx context.Context, _ *call.OpContext, input json.RawMessage, emit func(json.RawMessage) error) error {
	count, interval, err := parseTicks(input)
	if err != nil {
		return err
	}
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for n := 1; n <= count; n++ {
		if n > 1 && interval > 0 {
			if timer == nil {
				timer = time.NewTimer(interval)
			} else {
				timer.Reset(interval)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-timer.C:
			}
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := emit(fmt.Appendf(nil, `{"n":%d}`, n)); err != nil {
			return err
		}
	}
	return nil
}

// Whoami is the handler of demo/whoami: it returns {"id": oc.Identity.ID}.
func Whoami(_ context.Context, oc *call.OpContext, _ json.RawMessage) (json.RawMessage, error) {
	if oc == nil || oc.Identity == nil {
		// Access control refuses anonymous callers before the handler runs; this is
		// for direct calls.
		return nil, call.NewCallError(call.CodeForbidden, "authentication required")
	}
	return json.Marshal(struct {
		ID string `json:"id"`
	}{oc.Identity.ID})
}

// callbackParams is demo/callback's input.
type callbackParams struct {
	Operation *string         `json:"operation"`
	Input     json.RawMessage `json:"input"`
}

// Callback is the handler of demo/callback: it calls the operation named by the input
// on the connection the request arrived on, through that connection's overlay,
// importing it first when needed (see [OpCallback]).
func Callback(ctx context.Context, oc *call.OpContext, input json.RawMessage) (json.RawMessage, error) {
	var p callbackParams
	if err := json.Unmarshal(input, &p); err != nil || p.Operation == nil {
		return nil, call.NewCallError(call.CodeInvalidInput, `invalid input: want {"operation": "ns/op", "input": <any>}`)
	}
	name := strings.TrimPrefix(*p.Operation, "/")
	if err := call.ValidateName(name); err != nil {
		return nil, call.Errorf(call.CodeInvalidInput, "invalid input: operation: %v", err)
	}
	conn := call.ConnFrom(ctx)
	if conn == nil {
		return nil, call.NewCallError(call.CodeInvalidInput,
			"demo/callback needs a call connection to call back on (alknet/call, or the WebSocket /alknet/call); the HTTP gateway has none")
	}
	env := conn.OverlayEnv()
	if !env.Contains(name) {
		if err := importFromCaller(ctx, conn, name); err != nil {
			return nil, err
		}
	}
	// The composing context: the authority the caller's access control sees, and a
	// scope holding exactly the one operation.
	parent := call.NewChildContext(oc, &call.Registration{
		Authority: CallbackAuthority(),
		Scoped:    call.NewScopedEnv(name),
	}, call.AbortDependents)
	ns, op, _ := strings.Cut(name, "/")
	out, cerr := env.Invoke(ctx, ns, op, p.Input, parent, call.AbortDependents)
	if cerr != nil {
		return nil, cerr
	}
	return out, nil
}

// importFromCaller imports the caller's operation name into conn's overlay.
func importFromCaller(ctx context.Context, conn *call.Conn, name string) error {
	regs, err := call.FromCall(ctx, conn, call.FromCallConfig{Filter: map[string]bool{name: true}})
	if errors.Is(err, &call.CallError{Code: call.CodeNotFound}) {
		// The caller does not serve discovery at all, or not this operation's spec.
		regs, err = nil, nil
	}
	if err != nil {
		return fmt.Errorf("demo/callback: import %s from the caller: %w", name, err)
	}
	if len(regs) == 0 {
		return call.Errorf(call.CodeNotFound, "operation not found: %s (the caller does not offer it)", name)
	}
	// A concurrent demo/callback may have imported it first; that one serves as well.
	if err := conn.RegisterImported(regs...); err != nil && !errors.Is(err, call.ErrDuplicateOperation) {
		return fmt.Errorf("demo/callback: import %s from the caller: %w", name, err)
	}
	return nil
}
