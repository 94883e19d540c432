package call

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/alknet/alknet/core"
)

func strp(s string) *string { return &s }

func TestOpTypeText(t *testing.T) {
	for _, tc := range []struct {
		t OpType
		s string
	}{{Query, "query"}, {Mutation, "mutation"}, {Subscription, "subscription"}} {
		b, err := tc.t.MarshalText()
		if err != nil || string(b) != tc.s {
			t.Fatalf("MarshalText(%d) = %q, %v", tc.t, b, err)
		}
		var got OpType
		if err := got.UnmarshalText([]byte(tc.s)); err != nil || got != tc.t {
			t.Fatalf("UnmarshalText(%q) = %v, %v", tc.s, got, err)
		}
	}
	var ot OpType
	for _, bad := range []string{"", "Query", "stream", "0"} {
		if err := ot.UnmarshalText([]byte(bad)); err == nil {
			t.Errorf("UnmarshalText(%q) accepted", bad)
		}
	}
	if _, err := OpType(9).MarshalText(); err == nil {
		t.Error("MarshalText(9) accepted")
	}
	var v Visibility
	if err := v.UnmarshalText([]byte("internal")); err != nil || v != Internal {
		t.Fatalf("visibility internal: %v %v", v, err)
	}
	if err := v.UnmarshalText([]byte("public")); err == nil {
		t.Error("visibility public accepted")
	}
	if b, _ := External.MarshalText(); string(b) != "external" {
		t.Errorf("External = %q", b)
	}
}

func TestValidateName(t *testing.T) {
	good := []string{"notes/get", "services/list", "ping", "a/b/c", "fs/readFile", "ns/ö"}
	bad := []string{"", "/notes/get", "notes//get", "notes/", "notes/ get", "notes\tget", "a/b\n", "x/\x00", strings.Repeat("a", MaxNameLen+1), "a/\xff"}
	for _, n := range good {
		if err := ValidateName(n); err != nil {
			t.Errorf("ValidateName(%q) = %v", n, err)
		}
	}
	for _, n := range bad {
		if err := ValidateName(n); !errors.Is(err, ErrInvalidName) {
			t.Errorf("ValidateName(%q) = %v, want ErrInvalidName", n, err)
		}
	}
	if err := ValidateName(strings.Repeat("a", MaxNameLen)); err != nil {
		t.Errorf("name of %d bytes: %v", MaxNameLen, err)
	}
}

func TestNewSpec(t *testing.T) {
	s := NewSpec("notes/get", Query)
	if s.Namespace != "notes" || s.Path() != "/notes/get" || s.Visibility != External || s.Type != Query {
		t.Fatalf("NewSpec = %+v", s)
	}
	if s := NewSpec("a/b/c", Mutation); s.Namespace != "a" {
		t.Fatalf("namespace of a/b/c = %q", s.Namespace)
	}
	if ns, op := splitName("a/b/c"); ns != "a" || op != "b/c" || joinName(ns, op) != "a/b/c" {
		t.Fatalf("splitName = %q %q", ns, op)
	}
	if ns, op := splitName("ping"); ns != "ping" || op != "" || joinName(ns, op) != "ping" {
		t.Fatalf("splitName(ping) = %q %q", ns, op)
	}
}

func TestAccessControlCheck(t *testing.T) {
	own := core.NewInMemoryOwnership()
	alice := &core.Identity{ID: "alice", Scopes: []string{"read", "write"}, Resources: map[string][]string{"service": {"gitea", "deploy"}}}
	bob := &core.Identity{ID: "bob", Scopes: []string{"read"}}
	if err := own.Record(t.Context(), alice, "container", "c1"); err != nil {
		t.Fatal(err)
	}
	if err := own.Record(t.Context(), bob, "container", "c2"); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		ac   AccessControl
		id   *core.Identity
		rid  string
		own  core.OwnershipProvider
		want string // "" = allowed
	}{
		{"no restrictions, nil identity", AccessControl{}, nil, "", nil, ""},
		{"no restrictions, empty scopes", AccessControl{RequiredScopes: []string{}}, nil, "", nil, ""},
		{"restricted, nil identity", AccessControl{RequiredScopes: []string{"read"}}, nil, "", nil, "authentication required"},
		{"any set, nil identity", AccessControl{RequiredScopesAny: []string{}}, nil, "", nil, "authentication required"},
		{"resource type, nil identity, with ownership", AccessControl{ResourceType: strp("container")}, nil, "c1", own, "authentication required"},
		{"scopes held", AccessControl{RequiredScopes: []string{"read", "write"}}, alice, "", nil, ""},
		{"missing scope", AccessControl{RequiredScopes: []string{"read", "admin"}}, alice, "", nil, "missing required scope: admin"},
		{"first missing scope reported", AccessControl{RequiredScopes: []string{"x", "y"}}, alice, "", nil, "missing required scope: x"},
		{"any: one held", AccessControl{RequiredScopesAny: []string{"admin", "write"}}, alice, "", nil, ""},
		{"any: none held", AccessControl{RequiredScopesAny: []string{"admin", "write"}}, bob, "", nil, "missing required scope (any of: admin, write)"},
		{"any: set but empty", AccessControl{RequiredScopesAny: []string{}}, alice, "", nil, "missing required scope (any of: )"},
		{"all before any", AccessControl{RequiredScopes: []string{"admin"}, RequiredScopesAny: []string{"nope"}}, alice, "", nil, "missing required scope: admin"},
		{"owns", AccessControl{ResourceType: strp("container"), ResourceAction: strp("exec")}, alice, "c1", own, ""},
		{"not owned", AccessControl{ResourceType: strp("container")}, alice, "c2", own, "not owner of resource: container/c2"},
		{"unknown resource", AccessControl{ResourceType: strp("container")}, alice, "zzz", own, "not owner of resource: container/zzz"},
		{"owns_any list path", AccessControl{ResourceType: strp("container")}, alice, "", own, ""},
		{"owns nothing of type", AccessControl{ResourceType: strp("volume")}, alice, "", own, "no owned resources of type: volume"},
		{"ownership skips static check", AccessControl{ResourceType: strp("container"), ResourceAction: strp("exec")}, bob, "c2", own, ""},
		{"ownership only with type: action-only goes static", AccessControl{ResourceAction: strp("gitea")}, alice, "c1", own, ""},
		{"static type+action", AccessControl{ResourceType: strp("service"), ResourceAction: strp("gitea")}, alice, "", nil, ""},
		{"static type+action missing", AccessControl{ResourceType: strp("service"), ResourceAction: strp("jira")}, alice, "", nil, "missing resource: service/jira"},
		{"static type only", AccessControl{ResourceType: strp("service")}, alice, "", nil, ""},
		{"static type only missing", AccessControl{ResourceType: strp("service")}, bob, "", nil, "missing resource: service"},
		{"static action only", AccessControl{ResourceAction: strp("deploy")}, alice, "", nil, ""},
		{"static action only missing", AccessControl{ResourceAction: strp("deploy")}, bob, "", nil, "missing resource action: deploy"},
		{"static ignores resource id without provider", AccessControl{ResourceType: strp("service")}, alice, "c2", nil, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.ac.Check(tc.id, tc.rid, tc.own)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Check = %v, want allowed", err)
				}
				return
			}
			if err == nil || err.Code != CodeForbidden || err.Message != tc.want || err.Retryable {
				t.Fatalf("Check = %#v, want FORBIDDEN %q", err, tc.want)
			}
		})
	}
}

func TestAccessControlJSON(t *testing.T) {
	b, err := json.Marshal(AccessControl{})
	if err != nil {
		t.Fatal(err)
	}
	const zero = `{"required_scopes":[],"required_scopes_any":null,"resource_type":null,"resource_action":null}`
	if string(b) != zero {
		t.Fatalf("zero = %s", b)
	}
	b, _ = json.Marshal(AccessControl{RequiredScopes: []string{"a"}, RequiredScopesAny: []string{}, ResourceType: strp("t"), ResourceAction: strp("x")})
	if string(b) != `{"required_scopes":["a"],"required_scopes_any":[],"resource_type":"t","resource_action":"x"}` {
		t.Fatalf("full = %s", b)
	}
	var a AccessControl
	if err := json.Unmarshal([]byte(`{"required_scopes":null,"required_scopes_any":[]}`), &a); err != nil {
		t.Fatal(err)
	}
	if a.RequiredScopes != nil || a.RequiredScopesAny == nil || len(a.RequiredScopesAny) != 0 {
		t.Fatalf("nil vs empty lost: %#v", a)
	}
	a = AccessControl{}
	if err := json.Unmarshal([]byte(`{"required_scopes_any":null}`), &a); err != nil || a.RequiredScopesAny != nil {
		t.Fatalf("null any: %#v %v", a, err)
	}
}

func TestSpecJSONShape(t *testing.T) {
	st := 404
	s := NewSpec("notes/get", Query)
	s.InputSchema = json.RawMessage(`{"type": "object"}`)
	s.ErrorSchemas = []ErrorDefinition{{Code: "NOTE_MISSING", Description: "no such note", Schema: json.RawMessage(`{"type":"object"}`)}, {Code: "HTTP_404", HTTPStatus: &st}}
	s.Access = AccessControl{RequiredScopes: []string{"notes:read"}, ResourceType: strp("note")}
	s.ResourceIDPath = "$.noteId"
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"name":"notes/get","namespace":"notes","op_type":"query","visibility":"external","input_schema":{"type":"object"},"output_schema":null,` +
		`"error_schemas":[{"code":"NOTE_MISSING","description":"no such note","schema":{"type":"object"},"http_status":null},{"code":"HTTP_404","description":"","schema":null,"http_status":404}],` +
		`"access_control":{"required_scopes":["notes:read"],"required_scopes_any":null,"resource_type":"note","resource_action":null},"resource_id_path":"$.noteId"}`
	if string(b) != want {
		t.Fatalf("spec JSON\n got %s\nwant %s", b, want)
	}
	var back OperationSpec
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !specsEqual(s, back) {
		t.Fatalf("round trip:\n%+v\n%+v", s, back)
	}

	// Minimal spec: empty lists and nulls.
	b, _ = json.Marshal(OperationSpec{Name: "a/b", Type: Subscription, Visibility: Internal})
	want = `{"name":"a/b","namespace":"a","op_type":"subscription","visibility":"internal","input_schema":null,"output_schema":null,"error_schemas":[],` +
		`"access_control":{"required_scopes":[],"required_scopes_any":null,"resource_type":null,"resource_action":null},"resource_id_path":null}`
	if string(b) != want {
		t.Fatalf("minimal spec JSON\n got %s\nwant %s", b, want)
	}
	if _, err := json.Marshal(OperationSpec{Name: "a/b", Type: OpType(7)}); err == nil {
		t.Fatal("marshal of an unknown op type succeeded")
	}
}

func TestSpecUnmarshal(t *testing.T) {
	var s OperationSpec
	if err := json.Unmarshal([]byte(`{"name":"x/y","op_type":"mutation","input_schema":null,"resource_id_path":null,"extra":1}`), &s); err != nil {
		t.Fatal(err)
	}
	if s.Visibility != External || s.Namespace != "x" || s.Type != Mutation || s.InputSchema != nil || s.ResourceIDPath != "" {
		t.Fatalf("defaults: %+v", s)
	}
	if err := json.Unmarshal([]byte(`{"name":"x/y","op_type":"query","input_schema":{ "type" : "string" }}`), &s); err != nil || string(s.InputSchema) != `{"type":"string"}` {
		t.Fatalf("schema not compacted: %s %v", s.InputSchema, err)
	}
	for _, bad := range []string{
		`{"name":"x/y","op_type":"stream"}`,
		`{"name":"x/y"}`,
		`{"name":"x/y","op_type":null}`,
		`{"name":"x/y","op_type":1}`,
		`{"op_type":"query"}`,
		`{"name":"/x/y","op_type":"query"}`,
		`{"name":"x y","op_type":"query"}`,
		`{"name":"x/y","op_type":"query","visibility":"public"}`,
		`{"name":"x/y","namespace":"z","op_type":"query"}`,
		`{"name":"x/y","op_type":"query","access_control":[]}`,
		`[]`, `null`, `"x"`,
	} {
		if err := json.Unmarshal([]byte(bad), &s); err == nil {
			t.Errorf("Unmarshal(%s) accepted: %+v", bad, s)
		}
	}
}

func TestExtractResourceID(t *testing.T) {
	cases := []struct {
		path, in, want string
	}{
		{"$.containerId", `{"containerId":"c1"}`, "c1"},
		{"$.containerId", `{"other":"c1"}`, ""},
		{"$.containerId", `{"containerId":5}`, ""},
		{"$.containerId", `{"containerId":null}`, ""},
		{"$.containerId", `{"containerId":{"id":"x"}}`, ""},
		{"$.target.id", `{"target":{"id":"n-9"}}`, "n-9"},
		{"$.target.id", `{"target":"n-9"}`, ""},
		{"$.a.b.c", `{"a":{"b":{"c":"deep"}}}`, "deep"},
		{"$.x", `[1,2]`, ""},
		{"$.x", `null`, ""},
		{"$.x", ``, ""},
		{"$.x", `{"x":"v"`, ""},
		{"$.x", `{"x":"v"} trailing`, ""},
		{"$.x", `{"x":"\u00e9"}`, "é"},
		{"x", `{"x":"v"}`, ""},
		{"$x", `{"x":"v"}`, ""},
		{"$.", `{"":"v"}`, ""},
		{"$.a..b", `{"a":{"b":"v"}}`, ""},
		{"", `{"x":"v"}`, ""},
	}
	for _, tc := range cases {
		if got := ExtractResourceID(tc.path, json.RawMessage(tc.in)); got != tc.want {
			t.Errorf("ExtractResourceID(%q, %s) = %q, want %q", tc.path, tc.in, got, tc.want)
		}
	}
	if err := ValidateResourceIDPath("$.a.b"); err != nil {
		t.Error(err)
	}
	for _, bad := range []string{"a", "$", "$.", "$.a.", "$..a"} {
		if ValidateResourceIDPath(bad) == nil {
			t.Errorf("ValidateResourceIDPath(%q) accepted", bad)
		}
	}
}

func FuzzExtractResourceID(f *testing.F) {
	f.Add("$.containerId", []byte(`{"containerId":"c1"}`))
	f.Add("$.a.b", []byte(`{"a":{"b":"x"}}`))
	f.Add("$.a", []byte(`{"a":[{"b":1}]}`))
	f.Add("$..", []byte(`{}`))
	f.Add("", []byte(``))
	f.Add("$.x", []byte(`{"x":"\ud800"}`))
	f.Add("$.x", []byte(`[[[[[[[[[[`))
	f.Fuzz(func(t *testing.T, path string, in []byte) {
		got := ExtractResourceID(path, in)
		if got != "" {
			if _, ok := resourcePathFields(path); !ok {
				t.Fatalf("invalid path %q gave %q", path, got)
			}
		}
	})
}

// specsEqual compares specs, schemas by their JSON value.
func specsEqual(a, b OperationSpec) bool {
	if !rawEqual(a.InputSchema, b.InputSchema) || !rawEqual(a.OutputSchema, b.OutputSchema) || len(a.ErrorSchemas) != len(b.ErrorSchemas) {
		return false
	}
	for i := range a.ErrorSchemas {
		da, db := a.ErrorSchemas[i], b.ErrorSchemas[i]
		if !rawEqual(da.Schema, db.Schema) {
			return false
		}
		da.Schema, db.Schema = nil, nil
		if !reflect.DeepEqual(da, db) {
			return false
		}
	}
	a.InputSchema, a.OutputSchema, a.ErrorSchemas = nil, nil, nil
	b.InputSchema, b.OutputSchema, b.ErrorSchemas = nil, nil, nil
	return reflect.DeepEqual(a, b)
}

func rawEqual(a, b json.RawMessage) bool {
	if (a == nil) != (b == nil) {
		return false
	}
	if a == nil {
		return true
	}
	var va, vb any
	da, db := json.NewDecoder(bytes.NewReader(a)), json.NewDecoder(bytes.NewReader(b))
	da.UseNumber()
	db.UseNumber()
	if da.Decode(&va) != nil || db.Decode(&vb) != nil {
		return false
	}
	return reflect.DeepEqual(va, vb)
}

func FuzzSpecJSON(f *testing.F) {
	full, _ := json.Marshal(OperationSpec{
		Name: "notes/get", Namespace: "notes", Type: Query, InputSchema: json.RawMessage(`{"type":"object","properties":{"<id>":{"type":"string"}}}`),
		ErrorSchemas: []ErrorDefinition{{Code: "HTTP_404", HTTPStatus: new(int)}},
		Access:       AccessControl{RequiredScopesAny: []string{"a", "b"}, ResourceType: strp("note"), ResourceAction: strp("read")}, ResourceIDPath: "$.id",
	})
	f.Add(full)
	f.Add([]byte(`{"name":"a/b","op_type":"subscription","visibility":"internal"}`))
	f.Add([]byte(`{"name":"a/b","op_type":"query","error_schemas":[],"access_control":{"required_scopes":null,"required_scopes_any":[]}}`))
	f.Add([]byte(`{"name":"a/b","op_type":"query","input_schema":  [ 1 , 2.50 , "\u2028&" ] }`))
	f.Add([]byte(`{"name":"a/b","op_type":"mutation","error_schemas":[{"code":"X","schema":null,"http_status":500}]}`))
	f.Add([]byte(`{"name":"a/b","op_type":"nope"}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var s1 OperationSpec
		if err := json.Unmarshal(data, &s1); err != nil {
			return
		}
		m1, err := json.Marshal(s1)
		if err != nil {
			t.Fatalf("accepted spec does not marshal: %v\n%+v", err, s1)
		}
		var s2 OperationSpec
		if err := json.Unmarshal(m1, &s2); err != nil {
			t.Fatalf("re-parse of %s: %v", m1, err)
		}
		if !specsEqual(s1, s2) {
			t.Fatalf("round trip differs:\n%+v\n%+v", s1, s2)
		}
		m2, err := json.Marshal(s2)
		if err != nil || !bytes.Equal(m1, m2) {
			t.Fatalf("marshal not stable:\n%s\n%s (%v)", m1, m2, err)
		}
	})
}
