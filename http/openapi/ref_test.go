package openapi

import (
	"fmt"
	"strings"
	"testing"

	"github.com/alknet/alknet/call"
)

// opDoc is a document with one POST /op whose JSON body schema is body, plus
// components.
func opDoc(body, components string) string {
	return `{"info":{"title":"t"},"paths":{"/op":{"post":{"operationId":"op",
		"requestBody":{"content":{"application/json":{"schema":` + body + `}}},
		"responses":{"200":{"description":"ok","content":{"application/json":{"schema":` + body + `}}}}}}},
		"components":` + components + `}`
}

// importOne imports doc under "ns" and returns the one registration.
func importOne(t testing.TB, doc string, lim Limits) (call.Registration, error) {
	t.Helper()
	d, err := Parse([]byte(doc), lim)
	if err != nil {
		return call.Registration{}, err
	}
	regs, err := Import(d, exposed("ns", "http://upstream.invalid"), noClient{})
	if err != nil {
		return call.Registration{}, err
	}
	if len(regs) != 1 {
		t.Fatalf("%d registrations", len(regs))
	}
	return regs[0], nil
}

func TestRefErrors(t *testing.T) {
	for ref, want := range map[string]string{
		"other.yaml#/components/schemas/A": "external $ref",
		"https://x.example/s.json":         "external $ref",
		"#/components/schemas/Missing":     "does not resolve",
		"#/components/schemas/A/items/1":   "does not resolve",
		"#/components/schemas/A/items/01":  "does not resolve",
		"#/components/schemas/A/items/-":   "does not resolve",
		"#/components/schemas/A~2":         "invalid ~ escape",
		"#/components/schemas/A~":          "invalid ~ escape",
		"#/components/schemas/%zz":         "percent-encoding",
		"#anchor":                          "not a JSON pointer",
	} {
		_, err := importOne(t, opDoc(`{"$ref":"`+ref+`"}`, `{"schemas":{"A":{"items":[{"type":"string"}]}}}`), Limits{})
		wantParseErr(t, err, want)
	}
	// Parameters, request bodies and responses follow the same rules.
	for _, doc := range []string{
		`{"info":{},"paths":{"/a":{"get":{"parameters":[{"$ref":"ext.json#/p"}]}}}}`,
		`{"info":{},"paths":{"/a":{"post":{"requestBody":{"$ref":"#/nope"}}}}}`,
		`{"info":{},"paths":{"/a":{"get":{"responses":{"200":{"$ref":"#/nope"}}}}}}`,
		`{"info":{},"paths":{"/a":{"get":{"responses":{"404":{"$ref":"#/nope"}}}}}}`,
	} {
		d := mustParse(t, doc)
		_, err := Import(d, exposed("ns", "http://u.invalid"), noClient{})
		wantParseErr(t, err, "$ref")
	}
}

func TestRefPointerEscapes(t *testing.T) {
	comps := `{"schemas":{"a/b":{"type":"string"},"c~d":{"type":"integer"},"e f":{"type":"boolean"},"list":[{"type":"null"},{"type":"number"}]}}`
	for ref, typ := range map[string]string{
		"#/components/schemas/a~1b":   "string",
		"#/components/schemas/c~0d":   "integer",
		"#/components/schemas/e%20f":  "boolean",
		"#/components/schemas/list/1": "number",
		"#/components/schemas/a%7E1b": "string", // percent-decoding first, then ~1
	} {
		reg, err := importOne(t, opDoc(`{"$ref":"`+ref+`"}`, comps), Limits{})
		if err != nil {
			t.Fatalf("%s: %v", ref, err)
		}
		if got := at(decode(t, reg.Spec.OutputSchema), "type"); got != typ {
			t.Errorf("%s: type %v, want %s", ref, got, typ)
		}
	}
}

// treeDoc is a recursive Node schema: a self-cycle (Node -> Node).
const treeComponents = `{"schemas":{"Node":{"type":"object","required":["value"],"properties":{
	"value":{"type":"integer"},"children":{"type":"array","items":{"$ref":"#/components/schemas/Node"}}}}}}`

func TestRefSelfCycle(t *testing.T) {
	reg, err := importOne(t, opDoc(`{"$ref":"#/components/schemas/Node"}`, treeComponents), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	out := decode(t, reg.Spec.OutputSchema)
	if at(out, "properties", "children", "items", "$ref") != "#/$defs/Node" || at(out, "$defs", "Node", "properties", "value", "type") != "integer" {
		t.Fatalf("output schema %s", reg.Spec.OutputSchema)
	}
	in := decode(t, reg.Spec.InputSchema)
	if at(in, "$defs", "Node") == nil || at(in, "properties", "body", "properties", "children", "items", "$ref") != "#/$defs/Node" {
		t.Fatalf("input schema %s", reg.Spec.InputSchema)
	}
	// The schemas compile, and validation follows the recursion.
	r := newRegistry(t, []call.Registration{reg}, nil)
	_, cerr := invoke(t, r, "ns/op", `{"body":{"value":1,"children":[{"value":2,"children":[{"value":"deep"}]}]}}`)
	wantCode(t, cerr, call.CodeInvalidInput)
	if !strings.Contains(string(cerr.Details), "/body/children/0/children/0/value") {
		t.Errorf("details %s", cerr.Details)
	}
}

func TestRefLongCycle(t *testing.T) {
	// A -> B -> C -> A, reached through a parameter and the body.
	comps := `{"schemas":{
		"A":{"type":"object","properties":{"b":{"$ref":"#/components/schemas/B"},"n":{"type":"string"}}},
		"B":{"type":"object","properties":{"c":{"$ref":"#/components/schemas/C"}}},
		"C":{"type":"array","items":{"$ref":"#/components/schemas/A"}}}}`
	doc := `{"info":{},"paths":{"/op/{id}":{"post":{"operationId":"op",
		"parameters":[{"name":"id","in":"path","schema":{"$ref":"#/components/schemas/B"}}],
		"requestBody":{"content":{"application/json":{"schema":{"$ref":"#/components/schemas/A"}}}}}}},"components":` + comps + `}`
	reg, err := importOne(t, doc, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	in := decode(t, reg.Spec.InputSchema)
	if at(in, "properties", "body", "properties", "b", "properties", "c", "items", "$ref") != "#/$defs/A" {
		t.Errorf("input schema %s", reg.Spec.InputSchema)
	}
	if at(in, "$defs", "A") == nil || at(in, "$defs", "B") == nil {
		t.Errorf("input schema %s", reg.Spec.InputSchema)
	}
	r := newRegistry(t, []call.Registration{reg}, nil)
	_, cerr := invoke(t, r, "ns/op", `{"id":{},"body":{"b":{"c":[{"b":{"c":[{"n":5}]}}]}}}`)
	wantCode(t, cerr, call.CodeInvalidInput)
	if !strings.Contains(string(cerr.Details), "/body/b/c/0/b/c/0/n") {
		t.Errorf("details %s", cerr.Details)
	}
	// A $ref that points at itself directly, and the document root.
	for _, comps := range []string{`{"schemas":{"Node":{"$ref":"#/components/schemas/Node"}}}`} {
		reg, err := importOne(t, opDoc(`{"$ref":"#/components/schemas/Node"}`, comps), Limits{})
		if err != nil {
			t.Fatal(err)
		}
		newRegistry(t, []call.Registration{reg}, nil)
	}
}

func TestRefCyclicObjects(t *testing.T) {
	// A parameter (or response) whose $ref loops cannot be expanded: an error.
	for _, doc := range []string{
		`{"info":{},"paths":{"/a":{"get":{"parameters":[{"$ref":"#/components/parameters/P"}]}}},
		  "components":{"parameters":{"P":{"$ref":"#/components/parameters/Q"},"Q":{"$ref":"#/components/parameters/P"}}}}`,
		`{"info":{},"paths":{"/a":{"get":{"responses":{"200":{"$ref":"#/components/responses/R"}}}}},
		  "components":{"responses":{"R":{"$ref":"#/components/responses/R"}}}}`,
	} {
		_, err := Import(mustParse(t, doc), exposed("ns", "http://u.invalid"), noClient{})
		wantParseErr(t, err, "cyclic $ref")
	}
}

// chain returns components with S0 -> S1 -> ... -> S{n-1} -> {"type":"string"}.
func chain(n int) string {
	var parts []string
	for i := 0; i < n-1; i++ {
		parts = append(parts, fmt.Sprintf(`"S%d":{"$ref":"#/components/schemas/S%d"}`, i, i+1))
	}
	parts = append(parts, fmt.Sprintf(`"S%d":{"type":"string"}`, n-1))
	return `{"schemas":{` + strings.Join(parts, ",") + `}}`
}

func TestRefDepthLimit(t *testing.T) {
	// The body is {"$ref": S0}: n nested $ref expansions.
	for _, tc := range []struct{ max, n int }{{5, 5}, {DefaultMaxRefDepth, DefaultMaxRefDepth}} {
		lim := Limits{MaxRefDepth: tc.max}
		if tc.max == DefaultMaxRefDepth {
			lim = Limits{}
		}
		reg, err := importOne(t, opDoc(`{"$ref":"#/components/schemas/S0"}`, chain(tc.n)), lim)
		if err != nil {
			t.Fatalf("%d refs at a limit of %d: %v", tc.n, tc.max, err)
		}
		if at(decode(t, reg.Spec.OutputSchema), "type") != "string" {
			t.Errorf("output %s", reg.Spec.OutputSchema)
		}
		_, err = importOne(t, opDoc(`{"$ref":"#/components/schemas/S0"}`, chain(tc.n+1)), lim)
		wantParseErr(t, err, fmt.Sprintf("limit of %d", tc.max))
	}
	// Nesting through properties counts the same.
	nested := `{"schemas":{"A":{"properties":{"x":{"$ref":"#/components/schemas/B"}}},"B":{"properties":{"y":{"$ref":"#/components/schemas/C"}}},"C":{"type":"string"}}}`
	if _, err := importOne(t, opDoc(`{"$ref":"#/components/schemas/A"}`, nested), Limits{MaxRefDepth: 3}); err != nil {
		t.Error(err)
	}
	_, err := importOne(t, opDoc(`{"$ref":"#/components/schemas/A"}`, nested), Limits{MaxRefDepth: 2})
	wantParseErr(t, err, "limit of 2")

	// A chain of parameter references.
	params := func(n int) string {
		var parts []string
		for i := 0; i < n; i++ {
			parts = append(parts, fmt.Sprintf(`"P%d":{"$ref":"#/components/parameters/P%d"}`, i, i+1))
		}
		parts = append(parts, fmt.Sprintf(`"P%d":{"name":"q","in":"query"}`, n))
		return `{"info":{},"paths":{"/a":{"get":{"parameters":[{"$ref":"#/components/parameters/P0"}]}}},"components":{"parameters":{` + strings.Join(parts, ",") + `}}}`
	}
	if _, err := Import(mustParse(t, params(4)), exposed("ns", "http://u.invalid"), noClient{}); err != nil {
		t.Errorf("5 hops at the default limit: %v", err)
	}
	d, err := Parse([]byte(params(4)), Limits{MaxRefDepth: 5})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Import(d, exposed("ns", "http://u.invalid"), noClient{}); err != nil {
		t.Errorf("5 hops at a limit of 5: %v", err)
	}
	d, err = Parse([]byte(params(5)), Limits{MaxRefDepth: 5})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Import(d, exposed("ns", "http://u.invalid"), noClient{})
	wantParseErr(t, err, "$ref chain longer than the limit of 5")
}

// TestRefHoisting: a schema whose inlining would explode (each level referring to
// the next one twice: 2^24 copies) is produced with $defs instead.
func TestRefHoisting(t *testing.T) {
	var parts []string
	for i := 0; i < 24; i++ {
		parts = append(parts, fmt.Sprintf(`"L%d":{"type":"object","properties":{"a":{"$ref":"#/components/schemas/L%d"},"b":{"$ref":"#/components/schemas/L%d"}}}`, i, i+1, i+1))
	}
	parts = append(parts, `"L24":{"type":"integer"}`)
	reg, err := importOne(t, opDoc(`{"$ref":"#/components/schemas/L0"}`, `{"schemas":{`+strings.Join(parts, ",")+`}}`), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if len(reg.Spec.InputSchema) > 10000 {
		t.Fatalf("input schema of %d bytes", len(reg.Spec.InputSchema))
	}
	in := decode(t, reg.Spec.InputSchema)
	if at(in, "properties", "body", "$ref") != "#/$defs/L0" || at(in, "$defs", "L23", "properties", "a", "$ref") != "#/$defs/L24" {
		t.Fatalf("input schema %s", reg.Spec.InputSchema)
	}
	// A large schema referred to from many places is hoisted too.
	var props []string
	for i := 0; i < 20; i++ {
		props = append(props, fmt.Sprintf(`"p%d":{"$ref":"#/components/schemas/Big"}`, i))
	}
	big := `{"schemas":{"Big":{"type":"string","description":"` + strings.Repeat("d", 100<<10) + `"}}}`
	reg2, err := importOne(t, opDoc(`{"type":"object","properties":{`+strings.Join(props, ",")+`}}`, big), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(reg2.Spec.OutputSchema); n > 200<<10 {
		t.Errorf("output schema of %d bytes", n)
	}
	if at(decode(t, reg2.Spec.OutputSchema), "properties", "p7", "$ref") != "#/$defs/Big" {
		t.Errorf("output schema not hoisted")
	}
	// Small repetitions stay inline.
	reg3, err := importOne(t, opDoc(`{"type":"object","properties":{`+strings.Join(props, ",")+`}}`, `{"schemas":{"Big":{"type":"string"}}}`), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if at(decode(t, reg3.Spec.OutputSchema), "properties", "p7", "type") != "string" {
		t.Errorf("output schema %s", reg3.Spec.OutputSchema)
	}

	newRegistry(t, []call.Registration{reg2}, nil)
	r := newRegistry(t, []call.Registration{reg}, nil)
	// 24 levels down, a wrong type is found.
	body := strings.Repeat(`{"a":`, 24) + `"x"` + strings.Repeat("}", 24)
	_, cerr := invoke(t, r, "ns/op", `{"body":`+body+`}`)
	wantCode(t, cerr, call.CodeInvalidInput)
}

func TestSchemaNormalization(t *testing.T) {
	body := `{"type":"object","properties":{
		"n":{"type":"integer","minimum":0,"exclusiveMinimum":true,"maximum":10,"exclusiveMaximum":false},
		"s":{"type":"string","nullable":true,"enum":["a","b"]},
		"nullable":{"type":"boolean"},
		"keep":{"$id":"http://x.example/s","$schema":"http://json-schema.org/draft-04/schema#","type":"string"}}}`
	reg, err := importOne(t, opDoc(body, `{}`), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	in := decode(t, reg.Spec.InputSchema)
	n := at(in, "properties", "body", "properties", "n")
	if at(n, "exclusiveMinimum") != float64(0) || at(n, "minimum") != nil || at(n, "maximum") != float64(10) || at(n, "exclusiveMaximum") != nil {
		t.Errorf("n %v", n)
	}
	if at(in, "properties", "body", "properties", "keep", "$id") != nil {
		t.Errorf("keep %v", at(in, "properties", "body", "properties", "keep"))
	}
	r := newRegistry(t, []call.Registration{reg}, nil)
	for in, invalid := range map[string]bool{
		`{"body":{"n":0}}`:           true,
		`{"body":{"n":1}}`:           false, // valid; no upstream, so INTERNAL
		`{"body":{"n":10,"s":null}}`: false,
		`{"body":{"n":11}}`:          true,
		`{"body":{"s":"c"}}`:         true,
		`{"body":{"nullable":"x"}}`:  true,
		`{"body":{"keep":1}}`:        true,
	} {
		_, cerr := invoke(t, r, "ns/op", in)
		if got := cerr != nil && cerr.Code == call.CodeInvalidInput; got != invalid {
			t.Errorf("%s: invalid input %v, want %v (%v)", in, got, invalid, cerr)
		}
	}
}
