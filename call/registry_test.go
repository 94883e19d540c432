package call

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alknet/alknet/core"
)

func echo(_ context.Context, _ *OpContext, in json.RawMessage) (json.RawMessage, error) {
	return in, nil
}

func mustRegister(t testing.TB, r *Registry, regs ...Registration) {
	t.Helper()
	for _, reg := range regs {
		if err := r.Register(reg); err != nil {
			t.Fatalf("Register(%s): %v", reg.Spec.Name, err)
		}
	}
}

func onceReg(name string, h Handler) Registration {
	return Registration{Spec: NewSpec(name, Query), Once: h}
}

func wantCode(t testing.TB, cerr *CallError, code string) {
	t.Helper()
	if cerr == nil || cerr.Code != code {
		t.Fatalf("got %#v, want code %s", cerr, code)
	}
}

func root(id *core.Identity) *OpContext { return NewRootContext("", id, nil, nil, nil, nil) }

func TestRegisterRejects(t *testing.T) {
	sub := func(_ context.Context, _ *OpContext, _ json.RawMessage, _ func(json.RawMessage) error) error {
		return nil
	}
	withSchema := func(in, out string, errSchema string) Registration {
		reg := onceReg("s/op", echo)
		if in != "" {
			reg.Spec.InputSchema = json.RawMessage(in)
		}
		if out != "" {
			reg.Spec.OutputSchema = json.RawMessage(out)
		}
		if errSchema != "" {
			reg.Spec.ErrorSchemas = []ErrorDefinition{{Code: "E", Schema: json.RawMessage(errSchema)}}
		}
		return reg
	}
	cases := []struct {
		name string
		reg  Registration
		is   []error
	}{
		{"empty name", onceReg("", echo), []error{ErrInvalidRegistration, ErrInvalidName}},
		{"leading slash", onceReg("/a/b", echo), []error{ErrInvalidRegistration, ErrInvalidName}},
		{"empty segment", onceReg("a//b", echo), []error{ErrInvalidRegistration, ErrInvalidName}},
		{"whitespace", onceReg("a/b c", echo), []error{ErrInvalidRegistration, ErrInvalidName}},
		{"namespace mismatch", Registration{Spec: OperationSpec{Name: "a/b", Namespace: "z"}, Once: echo}, []error{ErrInvalidRegistration}},
		{"unknown type", Registration{Spec: OperationSpec{Name: "a/b", Type: 5}, Once: echo}, []error{ErrInvalidRegistration}},
		{"unknown visibility", Registration{Spec: OperationSpec{Name: "a/b", Visibility: 5}, Once: echo}, []error{ErrInvalidRegistration}},
		{"unknown provenance", Registration{Spec: NewSpec("a/b", Query), Once: echo, Provenance: 42}, []error{ErrInvalidRegistration}},
		{"once on subscription", Registration{Spec: NewSpec("a/b", Subscription), Once: echo}, []error{ErrInvalidRegistration}},
		{"stream on query", Registration{Spec: NewSpec("a/b", Query), Stream: sub}, []error{ErrInvalidRegistration}},
		{"stream on mutation", Registration{Spec: NewSpec("a/b", Mutation), Stream: sub}, []error{ErrInvalidRegistration}},
		{"both handlers", Registration{Spec: NewSpec("a/b", Query), Once: echo, Stream: sub}, []error{ErrInvalidRegistration}},
		{"no handler", Registration{Spec: NewSpec("a/b", Query)}, []error{ErrInvalidRegistration}},
		{"authority on import", Registration{Spec: NewSpec("a/b", Query), Once: echo, Provenance: ProvenanceFromCall, Authority: &CompositionAuthority{Label: "x"}}, []error{ErrInvalidRegistration}},
		{"scoped on import", Registration{Spec: NewSpec("a/b", Query), Once: echo, Provenance: ProvenanceFromOpenAPI, Scoped: NewScopedEnv()}, []error{ErrInvalidRegistration}},
		{"bad resource path", Registration{Spec: OperationSpec{Name: "a/b", ResourceIDPath: "id"}, Once: echo}, []error{ErrInvalidRegistration}},
		{"error without code", Registration{Spec: OperationSpec{Name: "a/b", ErrorSchemas: []ErrorDefinition{{}}}, Once: echo}, []error{ErrInvalidRegistration}},
		{"input schema not JSON", withSchema(`{"type":`, "", ""), []error{ErrInvalidRegistration, ErrInvalidSchema}},
		{"input schema invalid", withSchema(`{"type":5}`, "", ""), []error{ErrInvalidRegistration, ErrInvalidSchema}},
		{"input schema bad pattern", withSchema(`{"pattern":"(?<=x)"}`, "", ""), []error{ErrInvalidRegistration, ErrInvalidSchema}},
		{"output schema invalid", withSchema("", `{"minLength":-1}`, ""), []error{ErrInvalidRegistration, ErrInvalidSchema}},
		{"error schema invalid", withSchema("", "", `{"required":"x"}`), []error{ErrInvalidRegistration, ErrInvalidSchema}},
		{"external file ref", withSchema(`{"$ref":"file:///etc/passwd"}`, "", ""), []error{ErrInvalidRegistration, ErrInvalidSchema}},
		{"external http ref", withSchema(`{"$ref":"https://example.com/s.json"}`, "", ""), []error{ErrInvalidRegistration, ErrInvalidSchema}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := NewRegistry().Register(tc.reg)
			if err == nil {
				t.Fatal("Register accepted")
			}
			for _, want := range tc.is {
				if !errors.Is(err, want) {
					t.Fatalf("Register = %v, want errors.Is %v", err, want)
				}
			}
		})
	}

	r := NewRegistry()
	mustRegister(t, r, onceReg("a/b", echo))
	if err := r.Register(onceReg("a/b", echo)); !errors.Is(err, ErrDuplicateOperation) {
		t.Fatalf("duplicate: %v", err)
	}
	if err := r.Register(onceReg(OpServicesList, echo)); !errors.Is(err, ErrDuplicateOperation) {
		t.Fatalf("duplicate builtin: %v", err)
	}
	// Accepted: a subscription with Stream, a Session op with authority, an empty
	// Namespace filled in, a local $ref, a draft-07 schema.
	ok := []Registration{
		{Spec: NewSpec("ok/sub", Subscription), Stream: sub},
		{Spec: NewSpec("ok/sess", Mutation), Once: echo, Provenance: ProvenanceSession, Authority: &CompositionAuthority{Label: "s"}, Scoped: NewScopedEnv("a/b")},
		{Spec: OperationSpec{Name: "ok/nons"}, Once: echo},
		{Spec: OperationSpec{Name: "ok/ref", InputSchema: json.RawMessage(`{"$defs":{"s":{"type":"string"}},"$ref":"#/$defs/s"}`)}, Once: echo},
		{Spec: OperationSpec{Name: "ok/d7", InputSchema: json.RawMessage(`{"$schema":"http://json-schema.org/draft-07/schema#","type":"string"}`)}, Once: echo},
		{Spec: OperationSpec{Name: "ok/odd#name?x", InputSchema: json.RawMessage(`{"type":"string"}`)}, Once: echo},
		{Spec: OperationSpec{Name: "ok/null", InputSchema: json.RawMessage(` null `)}, Once: echo},
	}
	mustRegister(t, r, ok...)
	if reg, _ := r.Lookup("ok/nons"); reg.Spec.Namespace != "ok" {
		t.Fatalf("namespace not filled: %q", reg.Spec.Namespace)
	}
	if _, cerr := r.Invoke(t.Context(), "ok/ref", json.RawMessage(`5`), root(nil)); cerr == nil || cerr.Code != CodeInvalidInput {
		t.Fatalf("$ref schema not applied: %v", cerr)
	}
	if _, cerr := r.Invoke(t.Context(), "ok/odd#name?x", json.RawMessage(`"s"`), root(nil)); cerr != nil {
		t.Fatalf("odd name: %v", cerr)
	}
}

func TestRegisterCopies(t *testing.T) {
	r := NewRegistry()
	reg := onceReg("a/b", echo)
	reg.Spec.Access.RequiredScopes = []string{"x"}
	mustRegister(t, r, reg)
	reg.Spec.Access.RequiredScopes[0] = "changed"
	got, ok := r.Lookup("/a/b")
	if !ok || got.Spec.Access.RequiredScopes[0] != "x" {
		t.Fatalf("registration aliased caller memory: %+v", got)
	}
	if _, ok := r.Lookup("//a/b"); ok {
		t.Fatal("two leading slashes accepted")
	}
	if !r.Unregister("/a/b") || r.Unregister("a/b") {
		t.Fatal("Unregister")
	}
	if _, ok := r.Lookup("a/b"); ok {
		t.Fatal("still registered")
	}
}

// discoveryRegistry holds a public op, an internal op, and restricted ones.
func discoveryRegistry(t *testing.T) *Registry {
	r := NewRegistry()
	internal := onceReg("zeta/hidden", echo)
	internal.Spec.Visibility = Internal
	admin := onceReg("admin/reindex", echo)
	admin.Spec.Access.RequiredScopes = []string{"admin"}
	own := onceReg("box/get", echo)
	own.Spec.Access.ResourceType = strp("box")
	own.Spec.ResourceIDPath = "$.id"
	watch := Registration{Spec: NewSpec("metrics/watch", Subscription), Stream: func(context.Context, *OpContext, json.RawMessage, func(json.RawMessage) error) error { return nil }}
	mustRegister(t, r, onceReg("notes/get", echo), internal, admin, own, watch)
	return r
}

type listed struct {
	Operations []struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
		OpType    string `json:"op_type"`
	} `json:"operations"`
}

func listNames(t *testing.T, r *Registry, oc *OpContext) []string {
	t.Helper()
	out, cerr := r.Invoke(t.Context(), "/services/list", json.RawMessage(`{"ignored":true}`), oc)
	if cerr != nil {
		t.Fatal(cerr)
	}
	var l listed
	if err := json.Unmarshal(out, &l); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, op := range l.Operations {
		if op.Namespace != namespaceOf(op.Name) || op.OpType == "" {
			t.Fatalf("entry %+v", op)
		}
		names = append(names, op.Name)
	}
	return names
}

func TestServicesList(t *testing.T) {
	r := discoveryRegistry(t)
	anon := listNames(t, r, root(nil))
	want := "metrics/watch,notes/get,services/list,services/schema"
	if strings.Join(anon, ",") != want {
		t.Fatalf("anonymous list = %v, want %s", anon, want)
	}
	admin := listNames(t, r, root(&core.Identity{ID: "a", Scopes: []string{"admin"}, Resources: map[string][]string{"box": {"read"}}}))
	want = "admin/reindex,box/get,metrics/watch,notes/get,services/list,services/schema"
	if strings.Join(admin, ",") != want {
		t.Fatalf("admin list = %v, want %s", admin, want)
	}
	out, _ := r.Invoke(t.Context(), "services/list", nil, root(nil))
	if !strings.Contains(string(out), `{"name":"metrics/watch","namespace":"metrics","op_type":"subscription"}`) {
		t.Fatalf("entry shape: %s", out)
	}
	// Empty registry: "operations" is an array.
	if out, _ := NewBareRegistry().servicesList(t.Context(), root(nil), nil); string(out) != `{"operations":[]}` {
		t.Fatalf("bare list = %s", out)
	}
	if got := r.List(); len(got) != 6 || got[0].Name != "admin/reindex" {
		t.Fatalf("List = %v", got)
	}
}

func TestServicesSchema(t *testing.T) {
	r := discoveryRegistry(t)
	for _, n := range []string{"notes/get", "/notes/get"} {
		out, cerr := r.Invoke(t.Context(), "services/schema", json.RawMessage(`{"name":"`+n+`"}`), root(nil))
		if cerr != nil {
			t.Fatalf("%s: %v", n, cerr)
		}
		want := `{"name":"notes/get","namespace":"notes","op_type":"query","visibility":"external","input_schema":null,"output_schema":null,"error_schemas":[],` +
			`"access_control":{"required_scopes":[],"required_scopes_any":null,"resource_type":null,"resource_action":null},"resource_id_path":null}`
		if string(out) != want {
			t.Fatalf("schema(%s)\n got %s\nwant %s", n, out, want)
		}
	}
	out, cerr := r.Invoke(t.Context(), "services/schema", json.RawMessage(`{"name":"services/schema"}`), root(nil))
	if cerr != nil || !strings.Contains(string(out), `"input_schema":{"type":"object","required":["name"]`) {
		t.Fatalf("builtin schema: %s %v", out, cerr)
	}
	for _, n := range []string{"zeta/hidden", "admin/reindex", "nope/nope", "box/get"} {
		_, cerr := r.Invoke(t.Context(), "services/schema", json.RawMessage(`{"name":"`+n+`"}`), root(nil))
		wantCode(t, cerr, CodeNotFound)
		if !strings.Contains(cerr.Message, n) {
			t.Fatalf("message %q lacks %s", cerr.Message, n)
		}
	}
	if _, cerr := r.Invoke(t.Context(), "services/schema", json.RawMessage(`{"name":"admin/reindex"}`), root(&core.Identity{ID: "a", Scopes: []string{"admin"}})); cerr != nil {
		t.Fatalf("admin denied its own op: %v", cerr)
	}
	for _, in := range []string{`{}`, `{"name":5}`, `null`, `[]`, `{"nom":"x"}`} {
		_, cerr := r.Invoke(t.Context(), "services/schema", json.RawMessage(in), root(nil))
		wantCode(t, cerr, CodeInvalidInput)
	}
	_, cerr = r.Invoke(t.Context(), "services/schema", nil, root(nil))
	wantCode(t, cerr, CodeInvalidInput)
}

func TestUnknownAndInternal(t *testing.T) {
	r := NewRegistry()
	ran := atomic.Int32{}
	h := func(context.Context, *OpContext, json.RawMessage) (json.RawMessage, error) {
		ran.Add(1)
		return nil, nil
	}
	hidden := onceReg("ops/hidden", h)
	hidden.Spec.Visibility = Internal
	hidden.Spec.Access.RequiredScopes = []string{"admin"}
	mustRegister(t, r, hidden)

	_, cerr := r.Invoke(t.Context(), "/no/such", nil, root(nil))
	wantCode(t, cerr, CodeNotFound)
	if cerr.Message != "operation not found: no/such" {
		t.Fatalf("message %q", cerr.Message)
	}
	// Internal from outside: NOT_FOUND, even though the ACL would deny (and also when
	// it would allow).
	for _, id := range []*core.Identity{nil, {ID: "x"}, {ID: "root", Scopes: []string{"admin"}}} {
		_, cerr = r.Invoke(t.Context(), "ops/hidden", nil, root(id))
		wantCode(t, cerr, CodeNotFound)
		if cerr.Message != "operation not found: ops/hidden" {
			t.Fatalf("message %q", cerr.Message)
		}
		cerr = r.InvokeStream(t.Context(), "ops/hidden", nil, root(id), nil)
		wantCode(t, cerr, CodeNotFound)
	}
	if ran.Load() != 0 {
		t.Fatal("internal handler ran")
	}
}

func TestOperationTypeMismatch(t *testing.T) {
	r := NewRegistry()
	mustRegister(t, r, onceReg("a/q", echo), Registration{Spec: NewSpec("a/s", Subscription), Stream: func(context.Context, *OpContext, json.RawMessage, func(json.RawMessage) error) error { return nil }})
	_, cerr := r.Invoke(t.Context(), "a/s", nil, root(nil))
	wantCode(t, cerr, CodeInvalidOperationType)
	cerr = r.InvokeStream(t.Context(), "a/q", nil, root(nil), nil)
	wantCode(t, cerr, CodeInvalidOperationType)
	// ACL comes before the type check.
	r2 := NewRegistry()
	reg := onceReg("a/q", echo)
	reg.Spec.Access.RequiredScopes = []string{"x"}
	mustRegister(t, r2, reg)
	cerr = r2.InvokeStream(t.Context(), "a/q", nil, root(nil), nil)
	wantCode(t, cerr, CodeForbidden)
}

func TestACLDenialNeverRunsHandler(t *testing.T) {
	r := NewRegistry()
	var ran atomic.Int32
	var sawCaps atomic.Int32
	h := func(_ context.Context, oc *OpContext, in json.RawMessage) (json.RawMessage, error) {
		ran.Add(1)
		if _, ok := oc.Caps.Get("github"); ok {
			sawCaps.Add(1)
		}
		return in, nil
	}
	reg := onceReg("secret/op", h)
	reg.Spec.Access.RequiredScopes = []string{"admin"}
	reg.Caps = core.NewCapabilities(map[string][]byte{"api_key:github": []byte("ghp_secret")})
	mustRegister(t, r, reg)
	got, _ := r.Lookup("secret/op")

	for _, id := range []*core.Identity{nil, {ID: "u", Scopes: []string{"user"}}} {
		oc := NewRootContext("r1", id, nil, got, nil, nil)
		_, cerr := r.Invoke(t.Context(), "secret/op", json.RawMessage(`{}`), oc)
		wantCode(t, cerr, CodeForbidden)
	}
	if ran.Load() != 0 || sawCaps.Load() != 0 {
		t.Fatalf("denied handler ran %d times, saw caps %d times", ran.Load(), sawCaps.Load())
	}
	_, cerr := r.Invoke(t.Context(), "secret/op", nil, NewRootContext("r2", nil, nil, got, nil, nil))
	if cerr == nil || cerr.Message != "authentication required" {
		t.Fatalf("nil identity: %v", cerr)
	}
	oc := NewRootContext("r3", &core.Identity{ID: "a", Scopes: []string{"admin"}}, nil, got, nil, nil)
	if _, cerr := r.Invoke(t.Context(), "secret/op", nil, oc); cerr != nil {
		t.Fatal(cerr)
	}
	if ran.Load() != 1 || sawCaps.Load() != 1 {
		t.Fatalf("allowed handler: ran %d, caps %d", ran.Load(), sawCaps.Load())
	}
}

func TestOwnershipThroughInvoke(t *testing.T) {
	own := core.NewInMemoryOwnership()
	alice := &core.Identity{ID: "alice"}
	bob := &core.Identity{ID: "bob"}
	carol := &core.Identity{ID: "carol"}
	if err := own.Record(t.Context(), alice, "container", "c1"); err != nil {
		t.Fatal(err)
	}
	if err := own.Record(t.Context(), bob, "container", "c2"); err != nil {
		t.Fatal(err)
	}
	r := NewRegistry()
	var ran atomic.Int32
	reg := onceReg("container/exec", func(context.Context, *OpContext, json.RawMessage) (json.RawMessage, error) {
		ran.Add(1)
		return nil, nil
	})
	reg.Spec.Access = AccessControl{ResourceType: strp("container"), ResourceAction: strp("exec")}
	reg.Spec.ResourceIDPath = "$.containerId"
	mustRegister(t, r, reg)

	cases := []struct {
		id   *core.Identity
		in   string
		own  core.OwnershipProvider
		want string
	}{
		{alice, `{"containerId":"c1"}`, own, ""},
		{alice, `{"containerId":"c2"}`, own, "not owner of resource: container/c2"},
		{nil, `{"containerId":"c1"}`, own, "authentication required"},
		{alice, `{}`, own, ""}, // missing field: owns_any list path
		{carol, `{}`, own, "no owned resources of type: container"},
		{alice, `{"containerId":7}`, own, ""}, // not a string: list path
		{carol, `"c1"`, own, "no owned resources of type: container"},
		// No provider: static check against the identity's resources.
		{alice, `{"containerId":"c1"}`, nil, "missing resource: container/exec"},
		{&core.Identity{ID: "d", Resources: map[string][]string{"container": {"exec"}}}, `{"containerId":"zz"}`, nil, ""},
	}
	for i, tc := range cases {
		before := ran.Load()
		_, cerr := r.Invoke(t.Context(), "container/exec", json.RawMessage(tc.in), NewRootContext("", tc.id, nil, nil, nil, tc.own))
		if tc.want == "" {
			if cerr != nil || ran.Load() != before+1 {
				t.Fatalf("case %d: %v", i, cerr)
			}
			continue
		}
		wantCode(t, cerr, CodeForbidden)
		if cerr.Message != tc.want || ran.Load() != before {
			t.Fatalf("case %d: %q (ran %v), want %q", i, cerr.Message, ran.Load() != before, tc.want)
		}
	}
}

func TestInputValidation(t *testing.T) {
	r := NewRegistry()
	strict := onceReg("v/strict", echo)
	strict.Spec.InputSchema = json.RawMessage(`{"type":"object","required":["name","age"],"properties":{"name":{"type":"string"},"age":{"type":"integer","minimum":0},"email":{"type":"string","format":"email"},"tags":{"type":"array","items":{"type":"string"}}},"additionalProperties":false}`)
	any := onceReg("v/any", echo)
	any.Spec.InputSchema = json.RawMessage(`{}`)
	tru := onceReg("v/true", echo)
	tru.Spec.InputSchema = json.RawMessage(`true`)
	mustRegister(t, r, strict, any, tru)

	if out, cerr := r.Invoke(t.Context(), "v/strict", json.RawMessage(`{"name":"n","age":3,"email":"a@b.example","tags":["x"]}`), root(nil)); cerr != nil || string(out) != `{"name":"n","age":3,"email":"a@b.example","tags":["x"]}` {
		t.Fatalf("valid input: %s %v", out, cerr)
	}
	_, cerr := r.Invoke(t.Context(), "v/strict", json.RawMessage(`{"age":-1,"email":"nope","tags":["x",5],"extra":1}`), root(nil))
	wantCode(t, cerr, CodeInvalidInput)
	var d struct {
		Errors []struct{ Path, Message string } `json:"errors"`
	}
	if err := json.Unmarshal(cerr.Details, &d); err != nil {
		t.Fatalf("details %s: %v", cerr.Details, err)
	}
	paths := map[string]bool{}
	for _, e := range d.Errors {
		paths[e.Path] = true
		if e.Message == "" {
			t.Fatalf("empty message for %s", e.Path)
		}
	}
	for _, p := range []string{"/name", "/age", "/email", "/tags/1", ""} {
		if !paths[p] {
			t.Fatalf("path %q missing from %s", p, cerr.Details)
		}
		if p != "" && !strings.Contains(cerr.Message, p+":") {
			t.Fatalf("message %q lacks %s", cerr.Message, p)
		}
	}
	if !strings.HasPrefix(cerr.Message, "invalid input: ") || cerr.Retryable {
		t.Fatalf("message %q", cerr.Message)
	}
	// Nil input is JSON null, which the schema rejects.
	_, cerr = r.Invoke(t.Context(), "v/strict", nil, root(nil))
	wantCode(t, cerr, CodeInvalidInput)
	_, cerr = r.Invoke(t.Context(), "v/strict", json.RawMessage(`{"name":`), root(nil))
	wantCode(t, cerr, CodeInvalidInput)
	// {} and true accept anything, including null.
	for _, name := range []string{"v/any", "v/true"} {
		for _, in := range []string{`null`, `5`, `"s"`, `{"a":[1,{}]}`} {
			if out, cerr := r.Invoke(t.Context(), name, json.RawMessage(in), root(nil)); cerr != nil || string(out) != in {
				t.Fatalf("%s(%s) = %s %v", name, in, out, cerr)
			}
		}
	}
	if out, cerr := r.Invoke(t.Context(), "v/any", nil, root(nil)); cerr != nil || string(out) != "null" {
		t.Fatalf("nil input = %s %v", out, cerr)
	}
	// Many errors are capped.
	many := onceReg("v/many", echo)
	many.Spec.InputSchema = json.RawMessage(`{"type":"array","items":{"type":"string"}}`)
	mustRegister(t, r, many)
	big := "[" + strings.TrimSuffix(strings.Repeat("1,", 100), ",") + "]"
	_, cerr = r.Invoke(t.Context(), "v/many", json.RawMessage(big), root(nil))
	wantCode(t, cerr, CodeInvalidInput)
	if !strings.Contains(cerr.Message, "and 80 more") {
		t.Fatalf("cap: %q", cerr.Message)
	}
}

func TestErrorMapping(t *testing.T) {
	r := NewRegistry()
	reg := func(name string, err error) Registration {
		rg := onceReg(name, func(context.Context, *OpContext, json.RawMessage) (json.RawMessage, error) { return nil, err })
		rg.Spec.ErrorSchemas = []ErrorDefinition{{Code: "NOTE_MISSING", Description: "no such note"}}
		return rg
	}
	declared := &CallError{Code: "NOTE_MISSING", Message: "no such note n-9", Details: json.RawMessage(`{"noteId":"n-9"}`)}
	mustRegister(t, r,
		reg("e/declared", declared),
		reg("e/wrapped", fmt.Errorf("lookup: %w", declared)),
		reg("e/undeclared", &CallError{Code: "RATE_LIMITED", Message: "slow down", Retryable: true, Details: json.RawMessage(`{"after":5}`)}),
		reg("e/undeclared-nodetails", NewCallError("WEIRD", "odd")),
		reg("e/protocol", NewCallError(CodeNotFound, "note n-1 not found")),
		reg("e/plain", errors.New("disk on fire")),
		reg("e/deadline", fmt.Errorf("query: %w", context.DeadlineExceeded)),
		reg("e/canceled", context.Canceled),
		reg("e/nilcallerror", (*CallError)(nil)),
		reg("e/baddetails", &CallError{Code: "NOTE_MISSING", Message: "m", Details: json.RawMessage(`{bad`)}),
		onceReg("e/panic", func(context.Context, *OpContext, json.RawMessage) (json.RawMessage, error) { panic("boom") }),
		onceReg("e/nilout", func(context.Context, *OpContext, json.RawMessage) (json.RawMessage, error) { return nil, nil }),
		onceReg("e/badout", func(context.Context, *OpContext, json.RawMessage) (json.RawMessage, error) {
			return json.RawMessage(`{`), nil
		}),
	)
	inv := func(name string) (json.RawMessage, *CallError) { return r.Invoke(t.Context(), name, nil, root(nil)) }

	for _, n := range []string{"e/declared", "e/wrapped"} {
		_, cerr := inv(n)
		if cerr == nil || cerr.Code != "NOTE_MISSING" || cerr.Message != "no such note n-9" || string(cerr.Details) != `{"noteId":"n-9"}` {
			t.Fatalf("%s: %#v", n, cerr)
		}
	}
	_, cerr := inv("e/undeclared")
	wantCode(t, cerr, CodeInternal)
	if cerr.Message != "slow down" || cerr.Retryable || string(cerr.Details) != `{"original_code":"RATE_LIMITED","original_details":{"after":5}}` {
		t.Fatalf("undeclared: %#v (%s)", cerr, cerr.Details)
	}
	_, cerr = inv("e/undeclared-nodetails")
	if cerr == nil || cerr.Code != CodeInternal || string(cerr.Details) != `{"original_code":"WEIRD"}` {
		t.Fatalf("undeclared without details: %#v", cerr)
	}
	_, cerr = inv("e/protocol")
	if cerr == nil || cerr.Code != CodeNotFound || cerr.Message != "note n-1 not found" {
		t.Fatalf("protocol: %#v", cerr)
	}
	_, cerr = inv("e/plain")
	if cerr == nil || cerr.Code != CodeInternal || cerr.Details != nil {
		t.Fatalf("plain: %#v", cerr)
	}
	_, cerr = inv("e/deadline")
	if cerr == nil || cerr.Code != CodeTimeout || !cerr.Retryable {
		t.Fatalf("deadline: %#v", cerr)
	}
	_, cerr = inv("e/canceled")
	if cerr == nil || cerr.Code != CodeInternal || cerr.Message != "request aborted" {
		t.Fatalf("canceled: %#v", cerr)
	}
	if out, cerr := inv("e/nilcallerror"); cerr != nil || string(out) != "null" {
		t.Fatalf("typed nil *CallError: %s %#v", out, cerr)
	}
	_, cerr = inv("e/baddetails")
	if cerr == nil || cerr.Code != "NOTE_MISSING" || cerr.Details != nil {
		t.Fatalf("bad details: %#v", cerr)
	}
	_, cerr = inv("e/panic")
	if cerr == nil || cerr.Code != CodeInternal || cerr.Message != "handler panicked" {
		t.Fatalf("panic: %#v", cerr)
	}
	if out, cerr := inv("e/nilout"); cerr != nil || string(out) != "null" {
		t.Fatalf("nil output: %s %v", out, cerr)
	}
	_, cerr = inv("e/badout")
	wantCode(t, cerr, CodeInternal)
}

func TestDeadlineReachesHandler(t *testing.T) {
	r := NewRegistry()
	started := make(chan struct{})
	mustRegister(t, r, onceReg("slow/op", func(ctx context.Context, _ *OpContext, _ json.RawMessage) (json.RawMessage, error) {
		close(started)
		<-ctx.Done()
		return nil, ctx.Err()
	}))
	ctx, cancel := context.WithCancel(t.Context())
	res := make(chan *CallError, 1)
	go func() { _, cerr := r.Invoke(ctx, "slow/op", nil, root(nil)); res <- cerr }()
	<-started
	cancel()
	cerr := <-res
	// An abort: the handler returns context.Canceled, which is INTERNAL "request aborted".
	if cerr == nil || cerr.Code != CodeInternal || cerr.Message != "request aborted" {
		t.Fatalf("aborted: %#v", cerr)
	}

	// A context already past its deadline: TIMEOUT, and the handler never runs.
	past, pcancel := context.WithDeadline(t.Context(), time.Now().Add(-time.Minute))
	defer pcancel()
	var ran atomic.Bool
	mustRegister(t, r, onceReg("never/op", func(context.Context, *OpContext, json.RawMessage) (json.RawMessage, error) {
		ran.Store(true)
		return nil, nil
	}))
	_, cerr = r.Invoke(past, "never/op", nil, root(nil))
	if cerr == nil || cerr.Code != CodeTimeout || !cerr.Retryable || ran.Load() {
		t.Fatalf("past deadline: %#v ran=%v", cerr, ran.Load())
	}
	cctx, ccancel := context.WithCancel(t.Context())
	ccancel()
	_, cerr = r.Invoke(cctx, "never/op", nil, root(nil))
	if cerr == nil || cerr.Code != CodeInternal || cerr.Message != "request aborted" || ran.Load() {
		t.Fatalf("cancelled: %#v ran=%v", cerr, ran.Load())
	}
}

func TestStreamHandler(t *testing.T) {
	r := NewRegistry()
	const n = 5
	counter := Registration{Spec: NewSpec("s/count", Subscription), Stream: func(_ context.Context, _ *OpContext, in json.RawMessage, emit func(json.RawMessage) error) error {
		var req struct{ N int }
		if err := json.Unmarshal(in, &req); err != nil {
			return NewCallError(CodeInvalidInput, "bad n")
		}
		for i := range req.N {
			if err := emit(json.RawMessage(fmt.Sprint(i))); err != nil {
				return err
			}
		}
		return nil
	}}
	failing := Registration{Spec: NewSpec("s/fail", Subscription), Stream: func(_ context.Context, _ *OpContext, _ json.RawMessage, emit func(json.RawMessage) error) error {
		if err := emit(json.RawMessage(`"one"`)); err != nil {
			return err
		}
		return errors.New("broken")
	}}
	panicking := Registration{Spec: NewSpec("s/panic", Subscription), Stream: func(context.Context, *OpContext, json.RawMessage, func(json.RawMessage) error) error {
		panic("boom")
	}}
	var leaked func(json.RawMessage) error
	leak := Registration{Spec: NewSpec("s/leak", Subscription), Stream: func(_ context.Context, _ *OpContext, _ json.RawMessage, emit func(json.RawMessage) error) error {
		leaked = emit
		if err := emit(nil); err != nil {
			return err
		}
		if err := emit(json.RawMessage(`{bad`)); err == nil {
			return errors.New("invalid JSON accepted")
		}
		return nil
	}}
	mustRegister(t, r, counter, failing, panicking, leak)

	var got []string
	collect := func(out json.RawMessage) error { got = append(got, string(out)); return nil }
	if cerr := r.InvokeStream(t.Context(), "/s/count", json.RawMessage(fmt.Sprintf(`{"N":%d}`, n)), root(nil), collect); cerr != nil {
		t.Fatal(cerr)
	}
	if strings.Join(got, ",") != "0,1,2,3,4" {
		t.Fatalf("emitted %v", got)
	}
	got = nil
	cerr := r.InvokeStream(t.Context(), "s/fail", nil, root(nil), collect)
	if cerr == nil || cerr.Code != CodeInternal || cerr.Message != "broken" || len(got) != 1 {
		t.Fatalf("failing stream: %#v, %v", cerr, got)
	}
	cerr = r.InvokeStream(t.Context(), "s/panic", nil, root(nil), collect)
	if cerr == nil || cerr.Message != "handler panicked" {
		t.Fatalf("panic: %#v", cerr)
	}
	got = nil
	if cerr := r.InvokeStream(t.Context(), "s/leak", nil, root(nil), collect); cerr != nil {
		t.Fatal(cerr)
	}
	if strings.Join(got, ",") != "null" {
		t.Fatalf("nil emit: %v", got)
	}
	if err := leaked(json.RawMessage(`1`)); !errors.Is(err, errStreamClosed) || len(got) != 1 {
		t.Fatalf("emit after return: %v, %v", err, got)
	}
	// A nil emit discards.
	if cerr := r.InvokeStream(t.Context(), "s/count", json.RawMessage(`{"N":3}`), root(nil), nil); cerr != nil {
		t.Fatal(cerr)
	}
}

func TestStreamEmitAfterCancel(t *testing.T) {
	r := NewRegistry()
	first := make(chan struct{})
	res := make(chan error, 1)
	mustRegister(t, r, Registration{Spec: NewSpec("s/watch", Subscription), Stream: func(ctx context.Context, _ *OpContext, _ json.RawMessage, emit func(json.RawMessage) error) error {
		if err := emit(json.RawMessage(`1`)); err != nil {
			return err
		}
		close(first)
		<-ctx.Done()
		err := emit(json.RawMessage(`2`))
		res <- err
		return err
	}})
	ctx, cancel := context.WithCancel(t.Context())
	var emitted atomic.Int32
	done := make(chan *CallError, 1)
	go func() {
		done <- r.InvokeStream(ctx, "s/watch", nil, root(nil), func(json.RawMessage) error { emitted.Add(1); return nil })
	}()
	<-first
	cancel()
	if err := <-res; !errors.Is(err, context.Canceled) {
		t.Fatalf("emit after cancel = %v", err)
	}
	cerr := <-done
	if cerr == nil || cerr.Code != CodeInternal || emitted.Load() != 1 {
		t.Fatalf("result %#v, emitted %d", cerr, emitted.Load())
	}
}

func TestConcurrentInvoke(t *testing.T) {
	r := NewRegistry()
	reg := onceReg("c/echo", echo)
	reg.Spec.InputSchema = json.RawMessage(`{"type":"object","required":["i"]}`)
	mustRegister(t, r, reg)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				in := json.RawMessage(fmt.Sprintf(`{"i":%d,"g":%d}`, i, g))
				out, cerr := r.Invoke(t.Context(), "c/echo", in, root(nil))
				if cerr != nil || string(out) != string(in) {
					errs <- fmt.Errorf("g%d i%d: %s %v", g, i, out, cerr)
					return
				}
				if i%50 == 0 {
					_ = r.ListFor(nil)
					_, _ = r.Invoke(t.Context(), "services/list", nil, root(nil))
				}
			}
		})
		wg.Go(func() {
			name := fmt.Sprintf("dyn/op%d", g)
			if err := r.Register(onceReg(name, echo)); err != nil {
				errs <- err
				return
			}
			if _, cerr := r.Invoke(t.Context(), name, nil, root(nil)); cerr != nil {
				errs <- cerr
			}
			r.Unregister(name)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func BenchmarkInvoke(b *testing.B) {
	r := NewRegistry()
	plain := onceReg("bench/plain", echo)
	schema := onceReg("bench/schema", echo)
	schema.Spec.InputSchema = json.RawMessage(`{"type":"object","required":["noteId"],"properties":{"noteId":{"type":"string","minLength":1}}}`)
	mustRegister(b, r, plain, schema)
	in := json.RawMessage(`{"noteId":"n-42"}`)
	for _, name := range []string{"bench/plain", "bench/schema"} {
		b.Run(strings.TrimPrefix(name, "bench/"), func(b *testing.B) {
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				oc := NewRootContext("id", nil, nil, nil, nil, nil)
				if _, cerr := r.Invoke(ctx, name, in, oc); cerr != nil {
					b.Fatal(cerr)
				}
			}
		})
	}
}

// TestOneLeadingSlashOnly: "/ns/op" names ns/op everywhere; "//ns/op" names nothing.
func TestOneLeadingSlashOnly(t *testing.T) {
	reg := NewRegistry()
	if err := reg.Register(Registration{Spec: NewSpec("ns/op", Query), Once: func(context.Context, *OpContext, json.RawMessage) (json.RawMessage, error) {
		return json.RawMessage(`1`), nil
	}}); err != nil {
		t.Fatal(err)
	}
	if out, err := reg.Invoke(t.Context(), "/ns/op", nil, nil); err != nil || string(out) != "1" {
		t.Fatalf("Invoke(/ns/op) = %s, %v", out, err)
	}
	if _, err := reg.Invoke(t.Context(), "//ns/op", nil, nil); err == nil || err.Code != CodeNotFound {
		t.Fatalf("Invoke(//ns/op) = %v, want NOT_FOUND", err)
	}
	if _, err := reg.Invoke(t.Context(), OpServicesSchema, json.RawMessage(`{"name":"//ns/op"}`), nil); err == nil || err.Code != CodeNotFound {
		t.Fatalf("services/schema //ns/op = %v, want NOT_FOUND", err)
	}
	if _, err := reg.Invoke(t.Context(), OpServicesSchema, json.RawMessage(`{"name":"/ns/op"}`), nil); err != nil {
		t.Fatalf("services/schema /ns/op = %v", err)
	}
}
