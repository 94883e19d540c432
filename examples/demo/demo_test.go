package demo_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
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
	want := "demo/callback:mutation demo/echo:query demo/ticks:subscription demo/whoami:query services/list:query services/schema:query"
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

// messagePair joins two message connections through in-memory queues, one pump
// goroutine per direction, as a WebSocket would: node serves nodeReg and sees the
// client as clientID; client serves clientReg and sees the node as nodeID. Both end
// with the test.
func messagePair(t *testing.T, nodeReg, clientReg *call.Registry, clientID, nodeID *core.Identity) (node, client *call.Conn) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	toNode := make(chan call.Envelope, 64)
	toClient := make(chan call.Envelope, 64)
	queue := func(ch chan call.Envelope) func(context.Context, call.Envelope) error {
		return func(_ context.Context, env call.Envelope) error {
			select {
			case ch <- env:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	node = (&call.Dispatcher{Registry: nodeReg}).NewMessageConn(ctx, clientID, queue(toClient))
	client = (&call.Dispatcher{Registry: clientReg}).NewMessageConn(ctx, nodeID, queue(toNode))
	var wg sync.WaitGroup
	pump := func(ch chan call.Envelope, to *call.Conn) {
		for {
			select {
			case env := <-ch:
				to.HandleEnvelope(ctx, env)
			case <-ctx.Done():
				return
			}
		}
	}
	wg.Go(func() { pump(toNode, node) })
	wg.Go(func() { pump(toClient, client) })
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		client.Close()
		node.Close()
	})
	return node, client
}

// greeter is the client side of TestCallback: client/greet (scope demo), client/admin
// (scope admin) and client/ticks (a subscription), recording what they receive.
type greeter struct {
	mu         sync.Mutex
	greeted    []*call.OpContext
	adminCalls int
}

func (g *greeter) registry(t *testing.T) *call.Registry {
	t.Helper()
	r := call.NewRegistry()
	greet := call.NewSpec("client/greet", call.Query)
	greet.InputSchema = json.RawMessage(`{"type":"object","properties":{"name":{"type":"string"}},"required":["name"]}`)
	greet.Access = call.AccessControl{RequiredScopes: []string{demo.Scope}}
	admin := call.NewSpec("client/admin", call.Mutation)
	admin.Access = call.AccessControl{RequiredScopes: []string{"admin"}}
	for _, reg := range []call.Registration{
		{Spec: greet, Once: func(_ context.Context, oc *call.OpContext, in json.RawMessage) (json.RawMessage, error) {
			g.mu.Lock()
			g.greeted = append(g.greeted, oc)
			g.mu.Unlock()
			var p struct{ Name string }
			if err := json.Unmarshal(in, &p); err != nil {
				return nil, err
			}
			return json.Marshal(map[string]string{"greeting": "hello " + p.Name})
		}},
		{Spec: admin, Once: func(context.Context, *call.OpContext, json.RawMessage) (json.RawMessage, error) {
			g.mu.Lock()
			g.adminCalls++
			g.mu.Unlock()
			return json.RawMessage(`"done"`), nil
		}},
		{Spec: call.NewSpec("client/ticks", call.Subscription), Stream: func(context.Context, *call.OpContext, json.RawMessage, func(json.RawMessage) error) error {
			return nil
		}},
	} {
		if err := r.Register(reg); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

// callback calls demo/callback on node from client.
func callback(t *testing.T, client *call.Conn, input string) (string, *call.CallError) {
	t.Helper()
	out, err := client.Call(t.Context(), demo.OpCallback, json.RawMessage(input))
	if err != nil {
		var cerr *call.CallError
		if !errors.As(err, &cerr) {
			t.Fatalf("demo/callback %s: %v, want a CallError", input, err)
		}
		return "", cerr
	}
	return string(out), nil
}

// TestCallback runs demo/callback over a pair of message connections: the node imports
// the client's operation and calls it through the connection's overlay as the
// demo/callback authority, so the client's access control decides.
func TestCallback(t *testing.T) {
	g := &greeter{}
	// The client lists everything to the node (it sees it with both scopes); the
	// node's check of the imported spec is what gates the call.
	nodeID := &core.Identity{ID: "node", Scopes: []string{demo.Scope, "admin"}}
	node, client := messagePair(t, registry(t), g.registry(t), nil, nodeID)

	out, cerr := callback(t, client, `{"operation":"client/greet","input":{"name":"node"}}`)
	if cerr != nil || out != `{"greeting":"hello node"}` {
		t.Fatalf("callback client/greet = %s, %v", out, cerr)
	}
	if !node.OverlayEnv().Contains("client/greet") || node.OverlayEnv().Contains("client/admin") {
		t.Errorf("overlay holds %q, want client/greet only", node.OverlayEnv().PeerOperations(""))
	}
	// Again, imported already; a leading slash is accepted.
	out, cerr = callback(t, client, `{"operation":"/client/greet","input":{"name":"again"}}`)
	if cerr != nil || out != `{"greeting":"hello again"}` {
		t.Fatalf("second callback client/greet = %s, %v", out, cerr)
	}
	g.mu.Lock()
	if len(g.greeted) != 2 {
		t.Fatalf("client/greet ran %d times, want 2", len(g.greeted))
	}
	for _, oc := range g.greeted {
		// The client sees its connection identity as the caller, and the authority
		// of demo/callback as forwarded_for.
		if oc.Identity == nil || oc.Identity.ID != "node" || oc.ForwardedFor == nil ||
			oc.ForwardedFor.ID != demo.OpCallback || !oc.ForwardedFor.HasScope(demo.Scope) {
			t.Errorf("client/greet ran with identity %+v, forwarded_for %+v", oc.Identity, oc.ForwardedFor)
		}
	}
	g.mu.Unlock()

	// The imported input schema is checked on the node.
	_, cerr = callback(t, client, `{"operation":"client/greet","input":{"name":5}}`)
	wantCode(t, cerr, call.CodeInvalidInput, "invalid input")
	// The client's access control is checked against demo/callback's authority.
	_, cerr = callback(t, client, `{"operation":"client/admin"}`)
	wantCode(t, cerr, call.CodeForbidden, "missing required scope: admin")
	g.mu.Lock()
	if g.adminCalls != 0 {
		t.Errorf("client/admin ran %d times despite its access control", g.adminCalls)
	}
	g.mu.Unlock()
	_, cerr = callback(t, client, `{"operation":"client/missing"}`)
	wantCode(t, cerr, call.CodeNotFound, "client/missing")
	_, cerr = callback(t, client, `{"operation":"client/ticks"}`)
	wantCode(t, cerr, call.CodeInvalidOperationType, "subscription")
	for _, in := range []string{`null`, `{}`, `{"operation":""}`, `{"operation":"a//b"}`, `{"operation":"client/greet","extra":1}`, `{"operation":7}`} {
		_, cerr = callback(t, client, in)
		wantCode(t, cerr, call.CodeInvalidInput, "invalid input")
	}
}

// TestCallbackNoDiscovery checks a caller that serves no operations at all, not even
// services/list: what it is asked for is not found.
func TestCallbackNoDiscovery(t *testing.T) {
	_, client := messagePair(t, registry(t), nil, nil, nil)
	_, cerr := callback(t, client, `{"operation":"client/greet"}`)
	wantCode(t, cerr, call.CodeNotFound, "client/greet")
}

// TestCallbackWithoutConn checks demo/callback outside a call connection, as over the
// HTTP gateway.
func TestCallbackWithoutConn(t *testing.T) {
	r := registry(t)
	_, cerr := r.Invoke(t.Context(), demo.OpCallback, json.RawMessage(`{"operation":"client/greet"}`), root(nil))
	wantCode(t, cerr, call.CodeInvalidInput, "needs a call connection")
}

// TestPageHandler checks the page's answers and that its Content-Security-Policy
// allows exactly its inline script.
func TestPageHandler(t *testing.T) {
	h := demo.PageHandler()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/demo", nil))
	body := rec.Body.String()
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "text/html; charset=utf-8" ||
		!strings.Contains(body, "window.alknetDemo") || !strings.Contains(body, `id="results"`) {
		t.Fatalf("GET: %d %q, body of %d bytes", rec.Code, rec.Header(), len(body))
	}
	i, j := strings.Index(body, "<script>"), strings.LastIndex(body, "</script>")
	sum := sha256.Sum256([]byte(body[i+len("<script>") : j]))
	csp := rec.Header().Get("Content-Security-Policy")
	if !strings.Contains(csp, "script-src 'sha256-"+base64.StdEncoding.EncodeToString(sum[:])+"'") || !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("Content-Security-Policy %q does not allow the page's script by hash", csp)
	}
	if strings.Count(body, "<script") != 1 {
		t.Error("the page has more than one script")
	}

	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodHead, "/demo", nil))
	if rec.Code != http.StatusOK || rec.Body.Len() != 0 || rec.Header().Get("Content-Length") == "0" {
		t.Errorf("HEAD: %d, %d body bytes, Content-Length %q", rec.Code, rec.Body.Len(), rec.Header().Get("Content-Length"))
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/demo", nil))
	if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != "GET, HEAD" {
		t.Errorf("POST: %d, Allow %q", rec.Code, rec.Header().Get("Allow"))
	}
}
