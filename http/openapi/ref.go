package openapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// resolvePointer returns the value the local reference ref ("#", "#/a/b") selects
// in root. The fragment is percent-decoded, then read as an RFC 6901 JSON pointer
// (~1 is "/", ~0 is "~"). Anything that does not start with "#" is an external
// reference and an error, as is a plain-name fragment ("#foo"), an invalid escape,
// and a pointer that selects nothing. loc is where the reference is written.
func resolvePointer(root any, ref, loc string) (any, error) {
	if !strings.HasPrefix(ref, "#") {
		return nil, parseErr(loc, fmt.Sprintf("external $ref %q is not supported (only local #/... references)", ref), nil)
	}
	ptr, err := url.PathUnescape(ref[1:])
	if err != nil {
		return nil, parseErr(loc, fmt.Sprintf("$ref %q has an invalid percent-encoding", ref), nil)
	}
	if ptr == "" {
		return root, nil
	}
	if ptr[0] != '/' {
		return nil, parseErr(loc, fmt.Sprintf("$ref %q is not a JSON pointer", ref), nil)
	}
	cur := root
	for _, tok := range strings.Split(ptr[1:], "/") {
		tok, ok := unescapeToken(tok)
		if !ok {
			return nil, parseErr(loc, fmt.Sprintf("$ref %q has an invalid ~ escape", ref), nil)
		}
		switch c := cur.(type) {
		case map[string]any:
			v, ok := c[tok]
			if !ok {
				return nil, parseErr(loc, fmt.Sprintf("$ref %q does not resolve", ref), nil)
			}
			cur = v
		case []any:
			i, ok := arrayIndex(tok)
			if !ok || i >= len(c) {
				return nil, parseErr(loc, fmt.Sprintf("$ref %q does not resolve", ref), nil)
			}
			cur = c[i]
		default:
			return nil, parseErr(loc, fmt.Sprintf("$ref %q does not resolve", ref), nil)
		}
	}
	return cur, nil
}

// unescapeToken undoes RFC 6901's ~1 and ~0; any other "~" is invalid.
func unescapeToken(tok string) (string, bool) {
	if !strings.Contains(tok, "~") {
		return tok, true
	}
	var b strings.Builder
	for i := 0; i < len(tok); i++ {
		if tok[i] != '~' {
			b.WriteByte(tok[i])
			continue
		}
		if i+1 >= len(tok) {
			return "", false
		}
		switch tok[i+1] {
		case '0':
			b.WriteByte('~')
		case '1':
			b.WriteByte('/')
		default:
			return "", false
		}
		i++
	}
	return b.String(), true
}

// arrayIndex parses an RFC 6901 array index: "0" or digits without a leading zero.
func arrayIndex(tok string) (int, bool) {
	if tok == "" || len(tok) > 9 || (len(tok) > 1 && tok[0] == '0') {
		return 0, false
	}
	for i := 0; i < len(tok); i++ {
		if tok[i] < '0' || tok[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.Atoi(tok)
	return n, err == nil
}

// refOf returns the "$ref" of v when v is an object whose "$ref" is a string.
func refOf(v any) (string, bool) {
	m, ok := v.(map[string]any)
	if !ok {
		return "", false
	}
	r, ok := m["$ref"].(string)
	return r, ok
}

// derefObject follows the $ref chain starting at v (found at loc) to an object: a
// parameter, request body, response or path item. The chain may be at most
// maxDepth hops long and must not come back to a reference it has followed. It
// returns the object and the location it was found at.
func derefObject(root, v any, loc string, maxDepth int) (map[string]any, string, error) {
	var seen map[string]bool
	for hops := 0; ; hops++ {
		ref, ok := refOf(v)
		if !ok {
			break
		}
		if hops >= maxDepth {
			return nil, loc, parseErr(loc, fmt.Sprintf("$ref chain longer than the limit of %d", maxDepth), nil)
		}
		if seen[ref] {
			return nil, loc, parseErr(loc, fmt.Sprintf("cyclic $ref %q", ref), nil)
		}
		if seen == nil {
			seen = map[string]bool{}
		}
		seen[ref] = true
		t, err := resolvePointer(root, ref, loc)
		if err != nil {
			return nil, loc, err
		}
		v, loc = t, ref
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, loc, parseErr(loc, "not an object", nil)
	}
	return m, loc, nil
}

// maxInlineSize is the budget of an inlined schema, roughly in bytes of JSON;
// beyond it the schema is produced with every referenced schema in $defs once.
const maxInlineSize = 1 << 20

// nodeCost is what one JSON value costs against maxInlineSize, besides its text.
const nodeCost = 8

var errInlineBudget = errors.New("inline budget exceeded")

// schemaBuilder produces one self-contained JSON Schema from schemas of the
// document: references are expanded in place, or, when cyclic (or in hoist mode),
// turned into "$ref": "#/$defs/<name>" with the target in a root $defs section.
type schemaBuilder struct {
	root     any
	maxDepth int
	hoist    bool
	size     int             // inline mode: what the schema costs so far
	stack    []string        // references being expanded, outermost first
	defs     map[string]any  // by reference: the expanded target
	needDef  map[string]bool // references met again while being expanded
	building map[string]bool // hoist mode: definitions being built
	refs     []placeholder   // emitted references, patched by finish
	order    []string        // references in the order their defs were needed
	known    map[string]bool // members of order
}

// placeholder is an emitted {"$ref": ...} object waiting for its definition name.
type placeholder struct {
	obj map[string]any
	ref string
}

func newSchemaBuilder(root any, maxDepth int, hoist bool) *schemaBuilder {
	return &schemaBuilder{
		root: root, maxDepth: maxDepth, hoist: hoist,
		defs: map[string]any{}, needDef: map[string]bool{}, building: map[string]bool{},
		known: map[string]bool{},
	}
}

// count charges n against the inline budget.
func (b *schemaBuilder) count(n int) error {
	b.size += n
	if !b.hoist && b.size > maxInlineSize {
		return errInlineBudget
	}
	return nil
}

// countValue charges the nodes of a value copied verbatim against the inline
// budget (in hoist mode every value is written once: nothing to bound).
func (b *schemaBuilder) countValue(v any) error {
	if b.hoist {
		return nil
	}
	cost := nodeCost
	switch x := v.(type) {
	case string:
		cost += len(x)
	case json.Number:
		cost += len(x)
	}
	if err := b.count(cost); err != nil {
		return err
	}
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if err := b.count(len(k)); err != nil {
				return err
			}
			if err := b.countValue(e); err != nil {
				return err
			}
		}
	case []any:
		for _, e := range x {
			if err := b.countValue(e); err != nil {
				return err
			}
		}
	}
	return nil
}

// schemaMapKeywords hold an object of name to schema.
var schemaMapKeywords = map[string]bool{
	"properties": true, "patternProperties": true, "$defs": true, "definitions": true,
	"dependentSchemas": true,
}

// schemaKeywords hold one schema (or, for items, possibly an array of schemas).
var schemaKeywords = map[string]bool{
	"items": true, "additionalProperties": true, "not": true, "if": true, "then": true,
	"else": true, "contains": true, "propertyNames": true, "unevaluatedItems": true,
	"unevaluatedProperties": true, "additionalItems": true, "contentSchema": true,
}

// schemaListKeywords hold an array of schemas.
var schemaListKeywords = map[string]bool{
	"allOf": true, "anyOf": true, "oneOf": true, "prefixItems": true,
}

// schema expands one schema value found at loc.
func (b *schemaBuilder) schema(v any, loc string) (any, error) {
	if err := b.count(nodeCost); err != nil {
		return nil, err
	}
	m, ok := v.(map[string]any)
	if !ok {
		return v, nil // true, false, or something that will not compile
	}
	if ref, ok := m["$ref"].(string); ok {
		return b.ref(ref, loc)
	}
	out := make(map[string]any, len(m))
	for _, k := range sortedKeys(m) {
		val := m[k]
		kloc := pointerJoin(loc, k)
		if err := b.count(len(k)); err != nil {
			return nil, err
		}
		switch {
		case k == "$id" || k == "$schema":
			continue
		case schemaMapKeywords[k]:
			if sub, ok := val.(map[string]any); ok {
				o := make(map[string]any, len(sub))
				for _, name := range sortedKeys(sub) {
					if err := b.count(len(name)); err != nil {
						return nil, err
					}
					r, err := b.schema(sub[name], pointerJoin(kloc, name))
					if err != nil {
						return nil, err
					}
					o[name] = r
				}
				out[k] = o
				continue
			}
		case schemaKeywords[k] || schemaListKeywords[k]:
			if list, ok := val.([]any); ok {
				o := make([]any, len(list))
				for i, e := range list {
					r, err := b.schema(e, pointerJoin(kloc, strconv.Itoa(i)))
					if err != nil {
						return nil, err
					}
					o[i] = r
				}
				out[k] = o
				continue
			}
			if schemaKeywords[k] {
				r, err := b.schema(val, kloc)
				if err != nil {
					return nil, err
				}
				out[k] = r
				continue
			}
		}
		// A value, not a schema (example, enum, default, x-*, ...): shared, not
		// copied, but it is written out once per place it appears.
		if err := b.countValue(val); err != nil {
			return nil, err
		}
		out[k] = val
	}
	normalizeOpenAPI30(out)
	return out, nil
}

// ref expands the reference ref written at loc.
func (b *schemaBuilder) ref(ref, loc string) (any, error) {
	if b.onStack(ref) {
		b.needDef[ref] = true
		return b.placeholder(ref), nil
	}
	if b.hoist {
		if _, done := b.defs[ref]; done || b.building[ref] {
			return b.placeholder(ref), nil
		}
		b.building[ref] = true
		b.note(ref)
		res, err := b.expand(ref, loc)
		if err != nil {
			return nil, err
		}
		b.defs[ref] = res
		return b.placeholder(ref), nil
	}
	res, err := b.expand(ref, loc)
	if err != nil {
		return nil, err
	}
	if b.needDef[ref] {
		if _, done := b.defs[ref]; !done {
			b.note(ref)
			b.defs[ref] = res
		}
	}
	return res, nil
}

// expand resolves ref and expands its target with ref on the stack.
func (b *schemaBuilder) expand(ref, loc string) (any, error) {
	if len(b.stack) >= b.maxDepth {
		return nil, parseErr(loc, fmt.Sprintf("$ref nesting deeper than the limit of %d", b.maxDepth), nil)
	}
	target, err := resolvePointer(b.root, ref, loc)
	if err != nil {
		return nil, err
	}
	b.stack = append(b.stack, ref)
	res, err := b.schema(target, refLocation(ref))
	b.stack = b.stack[:len(b.stack)-1]
	return res, err
}

// refLocation turns a local reference into the JSON pointer used in errors.
func refLocation(ref string) string {
	if p, err := url.PathUnescape(strings.TrimPrefix(ref, "#")); err == nil {
		return p
	}
	return ref
}

func (b *schemaBuilder) onStack(ref string) bool {
	for _, r := range b.stack {
		if r == ref {
			return true
		}
	}
	return false
}

// note records that ref gets a definition.
func (b *schemaBuilder) note(ref string) {
	if !b.known[ref] {
		b.known[ref] = true
		b.order = append(b.order, ref)
	}
}

// placeholder returns a {"$ref"} object for ref, named by finish.
func (b *schemaBuilder) placeholder(ref string) map[string]any {
	p := map[string]any{"$ref": ""}
	b.refs = append(b.refs, placeholder{obj: p, ref: ref})
	return p
}

// finish names the definitions, patches the references and adds $defs to the root
// schema, then returns its JSON, which must fit in maxSize bytes.
func (b *schemaBuilder) finish(root any, maxSize int, loc string) (json.RawMessage, error) {
	if len(b.refs) > 0 {
		var existing map[string]any
		if m, ok := root.(map[string]any); ok {
			existing, _ = m["$defs"].(map[string]any)
		}
		defs := make(map[string]any, len(existing)+len(b.order))
		for k, v := range existing {
			defs[k] = v
		}
		names := map[string]string{}
		refs := append([]string(nil), b.order...)
		sort.Strings(refs)
		for _, ref := range refs {
			base := defName(ref)
			name := base
			for i := 2; contains(defs, name); i++ {
				name = base + "_" + strconv.Itoa(i)
			}
			names[ref] = name
			defs[name] = b.defs[ref]
		}
		for _, p := range b.refs {
			p.obj["$ref"] = "#/$defs/" + names[p.ref]
		}
		rootMap, ok := root.(map[string]any)
		if ok && rootMap != nil {
			rootMap = shallowCopy(rootMap)
		} else {
			rootMap = map[string]any{"allOf": []any{root}}
		}
		rootMap["$defs"] = defs
		root = rootMap
	}
	out, err := marshalJSON(root)
	if err != nil {
		return nil, parseErr(loc, "schema has no JSON form", err)
	}
	if len(out) > maxSize {
		return nil, parseErr(loc, fmt.Sprintf("produced schema of %d bytes exceeds the %d-byte limit", len(out), maxSize), nil)
	}
	return out, nil
}

func contains(m map[string]any, k string) bool {
	_, ok := m[k]
	return ok
}

// defName makes a $defs name from the last token of a reference: letters, digits,
// "_", "-" and "." kept, anything else "_"; "root" for "#".
func defName(ref string) string {
	p := refLocation(ref)
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		p = p[i+1:]
	}
	p, _ = unescapeToken(p)
	var s strings.Builder
	for _, r := range p {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '-', r == '.':
			s.WriteRune(r)
		default:
			s.WriteByte('_')
		}
	}
	if s.Len() == 0 {
		return "root"
	}
	return s.String()
}

// normalizeOpenAPI30 rewrites, in a produced schema object, the OpenAPI 3.0 forms
// JSON Schema 2020-12 reads differently: boolean exclusiveMinimum/Maximum and
// nullable.
func normalizeOpenAPI30(s map[string]any) {
	for _, p := range [][2]string{{"exclusiveMinimum", "minimum"}, {"exclusiveMaximum", "maximum"}} {
		ex, ok := s[p[0]].(bool)
		if !ok {
			continue
		}
		delete(s, p[0])
		if n, ok := s[p[1]].(json.Number); ok && ex {
			s[p[0]] = n
			delete(s, p[1])
		}
	}
	if nullable, ok := s["nullable"].(bool); ok && nullable {
		if t, ok := s["type"].(string); ok && t != "null" {
			s["type"] = []any{t, "null"}
			if enum, ok := s["enum"].([]any); ok {
				hasNull := false
				for _, e := range enum {
					if e == nil {
						hasNull = true
					}
				}
				if !hasNull {
					s["enum"] = append(append([]any(nil), enum...), nil)
				}
			}
		}
	}
}

// buildSchema produces one self-contained schema with build, inlining references
// when the result stays within the inline budget and hoisting them all into $defs
// otherwise.
func buildSchema(root any, lim Limits, loc string, build func(*schemaBuilder) (any, error)) (json.RawMessage, error) {
	b := newSchemaBuilder(root, lim.MaxRefDepth, false)
	res, err := build(b)
	if errors.Is(err, errInlineBudget) {
		b = newSchemaBuilder(root, lim.MaxRefDepth, true)
		res, err = build(b)
	}
	if err != nil {
		return nil, err
	}
	return b.finish(res, lim.MaxDocumentSize, loc)
}

// sortedKeys returns the keys of m in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// shallowCopy copies one level of m.
func shallowCopy(m map[string]any) map[string]any {
	out := make(map[string]any, len(m)+1)
	for k, v := range m {
		out[k] = v
	}
	return out
}

// marshalJSON encodes v without HTML escaping and without a trailing newline.
func marshalJSON(v any) ([]byte, error) {
	var sb strings.Builder
	enc := json.NewEncoder(&sb)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return []byte(strings.TrimSuffix(sb.String(), "\n")), nil
}
