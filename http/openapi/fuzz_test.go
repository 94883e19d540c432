package openapi

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"info":{"title":"t","version":"1"},"paths":{"/a/{id}":{"get":{"parameters":[{"name":"id","in":"path"}],"responses":{"200":{"content":{"application/json":{"schema":{"$ref":"#/components/schemas/A"}}}},"404":{}}}}},"components":{"schemas":{"A":{"properties":{"a":{"$ref":"#/components/schemas/A"}}}}}}`))
	f.Add([]byte("info: {title: yes}\npaths:\n  /x:\n    post:\n      requestBody: {content: {application/json: {schema: {type: object}}}}\n      responses: {200: {content: {text/event-stream: {}}}}\n"))
	f.Add([]byte("a: &a [*a]\n"))
	f.Add([]byte("x: &x {<<: *x}\n"))
	f.Add([]byte("info: {}\npaths: {}\n? [a]\n: 1\n"))
	f.Add([]byte(`{"info":{},"paths":{"/":{"$ref":"#/paths/~1"}}}`))
	f.Add([]byte("\xEF\xBB\xBF{}"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := Parse(data, Limits{MaxDocumentSize: 1 << 16, MaxOperations: 64})
		if err != nil {
			if !errors.Is(err, ErrSchemaParse) {
				t.Fatalf("error %v does not wrap ErrSchemaParse", err)
			}
			return
		}
		_ = d.Title() + d.Version()
		regs, err := Import(d, ServiceConfig{Namespace: "ns", BaseURL: "http://u.invalid"}, noClient{})
		if err != nil {
			if !errors.Is(err, ErrSchemaParse) {
				t.Fatalf("error %v does not wrap ErrSchemaParse", err)
			}
			return
		}
		for _, r := range regs {
			for _, s := range []json.RawMessage{r.Spec.InputSchema, r.Spec.OutputSchema} {
				if !json.Valid(s) {
					t.Fatalf("%s: invalid schema JSON %s", r.Spec.Name, s)
				}
				checkLocalRefs(t, s)
			}
		}
	})
}

func FuzzResolveRef(f *testing.F) {
	f.Add(`{"components":{"schemas":{"A":{"$ref":"#/components/schemas/A"}}}}`, "#/components/schemas/A", 4)
	f.Add(`{"a":{"b":[{"$ref":"#/a"},{"items":{"$ref":"#/a/b/1"}}]}}`, "#/a/b/1", 8)
	f.Add(`{"a~b":{"c/d":{"properties":{"x":{"$ref":"#"}}}}}`, "#/a~0b/c~1d", 3)
	f.Add(`{"x":{"allOf":[{"$ref":"#/y"},{"$ref":"#/x"}]},"y":{"not":{"$ref":"#/x"}}}`, "#/x", 32)
	f.Add(`{"x":{"$defs":{"root":{}},"properties":{"p":{"$ref":"#/x"}}}}`, "#/x", 2)
	f.Add(`{}`, "#/%zz", 1)
	f.Add(`{}`, "http://example.com/s.json", 1)
	f.Add(`[1,2]`, "#/01", 1)
	f.Fuzz(func(t *testing.T, doc, ref string, depth int) {
		root, err := decodeJSON([]byte(doc))
		if err != nil {
			return
		}
		depth = depth%40 + 1
		if depth < 1 {
			depth = -depth + 1
		}
		_, perr := resolvePointer(root, ref, "/x")
		if perr != nil && !errors.Is(perr, ErrSchemaParse) {
			t.Fatalf("error %v does not wrap ErrSchemaParse", perr)
		}
		_, _, _ = derefObject(root, map[string]any{"$ref": ref}, "/x", depth)
		lim := Limits{MaxRefDepth: depth}.withDefaults()
		lim.MaxDocumentSize = 1 << 20
		out, err := buildSchema(root, lim, "/x", func(b *schemaBuilder) (any, error) {
			return b.schema(map[string]any{"$ref": ref}, "/x")
		})
		if err != nil {
			if !errors.Is(err, ErrSchemaParse) {
				t.Fatalf("error %v does not wrap ErrSchemaParse", err)
			}
			return
		}
		if perr != nil {
			t.Fatalf("pointer error %v but a schema was built", perr)
		}
		if !json.Valid(out) {
			t.Fatalf("invalid JSON %s", out)
		}
		checkLocalRefs(t, out)
	})
}

// checkLocalRefs checks that every "$ref" in a schema position of a produced
// schema is "#/$defs/..." and resolves inside it: the schema is self-contained.
func checkLocalRefs(t *testing.T, schema json.RawMessage) {
	t.Helper()
	root, err := decodeJSON(schema)
	if err != nil {
		t.Fatalf("produced schema %s: %v", schema, err)
	}
	var walk func(v any)
	walk = func(v any) {
		m, ok := v.(map[string]any)
		if !ok {
			return
		}
		if ref, ok := m["$ref"].(string); ok {
			if !strings.HasPrefix(ref, "#/$defs/") {
				t.Fatalf("reference %q left in %s", ref, schema)
			}
			if _, err := resolvePointer(root, ref, ""); err != nil {
				t.Fatalf("reference %q does not resolve in %s", ref, schema)
			}
			return
		}
		for k, val := range m {
			switch {
			case schemaMapKeywords[k]:
				if sub, ok := val.(map[string]any); ok {
					for _, s := range sub {
						walk(s)
					}
				}
			case schemaKeywords[k] || schemaListKeywords[k]:
				if list, ok := val.([]any); ok {
					for _, s := range list {
						walk(s)
					}
				} else if schemaKeywords[k] {
					walk(val)
				}
			}
		}
	}
	walk(root)
}

func FuzzSSE(f *testing.F) {
	f.Add([]byte("\xEF\xBB\xBFdata: a\r\n\r\nevent: error\ndata: {\"code\":\"X\"}\n\n"), uint8(1))
	f.Add([]byte(": c\rdata: 1\rdata: 2\r\r\n\n"), uint8(3))
	f.Add([]byte("data:"+strings.Repeat("x", 40)+"\n\n"), uint8(7))
	f.Add([]byte("\xEF\xBB"), uint8(1))
	f.Add([]byte("data: x\r"), uint8(0))
	f.Fuzz(func(t *testing.T, input []byte, chunk uint8) {
		const maxLine, maxData = 32, 64
		whole, werr := parseAll(input, 0, maxLine, maxData)
		parts, perr := parseAll(input, int(chunk), maxLine, maxData)
		if (werr == nil) != (perr == nil) {
			t.Fatalf("whole: %v, chunks of %d: %v", werr, chunk, perr)
		}
		if werr == nil && !reflect.DeepEqual(whole, parts) {
			t.Fatalf("whole %+v\nchunks of %d %+v", whole, chunk, parts)
		}
		for _, ev := range whole {
			if len(ev.data) > maxData || strings.ContainsAny(ev.event, "\r\n") {
				t.Fatalf("event %+v", ev)
			}
			if !json.Valid(sseData(ev.data)) {
				t.Fatalf("item of %q is not JSON", ev.data)
			}
			_ = sseError(ev.data)
		}
	})
}
