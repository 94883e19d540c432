package openapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"

	"go.yaml.in/yaml/v3"
)

// methods are the operation keys of a path item, in the order they are imported.
var methods = [...]string{"get", "post", "put", "patch", "delete", "head", "options"}

// Document is a parsed OpenAPI 3 document, ready for [Import]. It keeps the
// [Limits] it was parsed with. It is not modified after parsing and may be imported
// any number of times, concurrently.
type Document struct {
	root    map[string]any
	title   string
	version string
	lim     Limits
}

// Title returns info.title, or "" when it is missing or not a string.
func (d *Document) Title() string { return d.title }

// Version returns info.version, or "1.0.0" when it is missing or empty.
func (d *Document) Version() string { return d.version }

// ParseJSON parses a JSON document. Numbers keep their text (encoding/json's
// UseNumber); the input must be one JSON value. Errors wrap [ErrSchemaParse].
func ParseJSON(data []byte, lim Limits) (*Document, error) {
	lim = lim.withDefaults()
	if err := checkSize(data, lim); err != nil {
		return nil, err
	}
	v, err := decodeJSON(data)
	if err != nil {
		return nil, parseErr("", "document is not valid JSON", err)
	}
	return newDocument(v, lim)
}

// ParseYAML parses a YAML document (see the package documentation for how YAML
// values become JSON ones). Errors wrap [ErrSchemaParse].
func ParseYAML(data []byte, lim Limits) (*Document, error) {
	lim = lim.withDefaults()
	if err := checkSize(data, lim); err != nil {
		return nil, err
	}
	v, err := decodeYAML(data, lim.MaxDocumentSize)
	if err != nil {
		return nil, parseErr("", "document is not valid YAML", err)
	}
	return newDocument(v, lim)
}

// Parse parses a JSON or YAML document: JSON first, so that a JSON document never
// meets YAML's type resolution, and YAML when the data is not valid JSON. A
// document that is valid JSON but not a valid OpenAPI document is not retried as
// YAML. Errors wrap [ErrSchemaParse]; when neither syntax fits, the message gives
// both reasons.
func Parse(data []byte, lim Limits) (*Document, error) {
	lim = lim.withDefaults()
	if err := checkSize(data, lim); err != nil {
		return nil, err
	}
	v, jerr := decodeJSON(data)
	if jerr == nil {
		return newDocument(v, lim)
	}
	v, yerr := decodeYAML(data, lim.MaxDocumentSize)
	if yerr != nil {
		return nil, parseErr("", fmt.Sprintf("document is neither valid JSON (%v) nor valid YAML (%v)", jerr, yerr), nil)
	}
	return newDocument(v, lim)
}

// checkSize refuses data over the document size limit, before any decoding.
func checkSize(data []byte, lim Limits) error {
	if len(data) > lim.MaxDocumentSize {
		return parseErr("", fmt.Sprintf("document of %d bytes exceeds the %d-byte limit", len(data), lim.MaxDocumentSize), nil)
	}
	return nil
}

// decodeJSON decodes exactly one JSON value, numbers as json.Number.
func decodeJSON(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the JSON value")
	}
	return v, nil
}

// newDocument checks the structure of a decoded document and builds a Document.
func newDocument(v any, lim Limits) (*Document, error) {
	root, ok := v.(map[string]any)
	if !ok {
		return nil, parseErr("", "document is not an object", nil)
	}
	info, ok := root["info"].(map[string]any)
	if !ok {
		return nil, parseErr("/info", "missing or not an object", nil)
	}
	paths, ok := root["paths"].(map[string]any)
	if !ok {
		return nil, parseErr("/paths", "missing or not an object", nil)
	}
	d := &Document{root: root, lim: lim, version: "1.0.0"}
	if t, ok := info["title"].(string); ok {
		d.title = t
	}
	switch ver := info["version"].(type) {
	case string:
		if ver != "" {
			d.version = ver
		}
	case json.Number:
		d.version = ver.String()
	}
	n := 0
	for _, p := range sortedKeys(paths) {
		loc := pointerJoin("/paths", p)
		item, _, err := derefObject(root, paths[p], loc, lim.MaxRefDepth)
		if err != nil {
			return nil, err
		}
		for _, m := range methods {
			if _, ok := item[m]; ok {
				n++
			}
		}
	}
	if n > lim.MaxOperations {
		return nil, parseErr("/paths", fmt.Sprintf("%d operations exceed the limit of %d", n, lim.MaxOperations), nil)
	}
	return d, nil
}

// yamlDecoder turns a yaml.Node tree into JSON-like values, expanding aliases
// within a budget.
type yamlDecoder struct {
	budget int // bytes of expanded scalars (plus one per node) still allowed
	depth  int
}

// maxYAMLDepth bounds the nesting of the expanded YAML tree (aliases included).
const maxYAMLDepth = 10000

var errYAMLBudget = errors.New("document with its aliases expanded exceeds the size limit")

// decodeYAML parses one YAML document into JSON-like values: map[string]any, []any,
// string, json.Number, bool and nil. Empty input gives nil.
func decodeYAML(data []byte, max int) (any, error) {
	var n yaml.Node
	if err := yaml.Unmarshal(data, &n); err != nil {
		return nil, err
	}
	d := &yamlDecoder{budget: max}
	return d.value(&n)
}

// spend charges n bytes against the expansion budget.
func (d *yamlDecoder) spend(n int) error {
	d.budget -= n + 1
	if d.budget < 0 {
		return errYAMLBudget
	}
	return nil
}

// value converts one node.
func (d *yamlDecoder) value(n *yaml.Node) (any, error) {
	d.depth++
	defer func() { d.depth-- }()
	if d.depth > maxYAMLDepth {
		return nil, errors.New("document nested too deeply")
	}
	if err := d.spend(len(n.Value)); err != nil {
		return nil, err
	}
	switch n.Kind {
	case 0: // empty input
		return nil, nil
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil, nil
		}
		return d.value(n.Content[0])
	case yaml.AliasNode:
		if n.Alias == nil {
			return nil, fmt.Errorf("line %d: unknown alias", n.Line)
		}
		return d.value(n.Alias)
	case yaml.SequenceNode:
		out := make([]any, 0, len(n.Content))
		for _, c := range n.Content {
			v, err := d.value(c)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	case yaml.MappingNode:
		out := map[string]any{}
		if err := d.mapping(n, out, false); err != nil {
			return nil, err
		}
		return out, nil
	case yaml.ScalarNode:
		return scalar(n)
	}
	return nil, fmt.Errorf("line %d: unsupported YAML node", n.Line)
}

// mapping adds the pairs of the mapping n to out. Explicit keys must be unique; keys
// brought in by a merge key (<<) only fill keys not already present (merged is
// true while filling them).
func (d *yamlDecoder) mapping(n *yaml.Node, out map[string]any, merged bool) error {
	if len(n.Content)%2 != 0 {
		return fmt.Errorf("line %d: malformed mapping", n.Line)
	}
	var merges []*yaml.Node
	for i := 0; i < len(n.Content); i += 2 {
		kn, vn := n.Content[i], n.Content[i+1]
		if kn.Kind == yaml.ScalarNode && kn.ShortTag() == "!!merge" {
			merges = append(merges, vn)
			continue
		}
		k, err := d.key(kn)
		if err != nil {
			return err
		}
		if _, dup := out[k]; dup {
			if merged {
				continue
			}
			return fmt.Errorf("line %d: mapping key %q is repeated", kn.Line, k)
		}
		v, err := d.value(vn)
		if err != nil {
			return err
		}
		out[k] = v
	}
	for _, m := range merges {
		if err := d.merge(m, out); err != nil {
			return err
		}
	}
	return nil
}

// merge applies the value of a merge key: a mapping, or a sequence of mappings of
// which the earlier win.
func (d *yamlDecoder) merge(m *yaml.Node, out map[string]any) error {
	d.depth++
	defer func() { d.depth-- }()
	if d.depth > maxYAMLDepth {
		return errors.New("document nested too deeply")
	}
	for m.Kind == yaml.AliasNode && m.Alias != nil {
		m = m.Alias
	}
	switch m.Kind {
	case yaml.MappingNode:
		return d.mapping(m, out, true)
	case yaml.SequenceNode:
		for _, c := range m.Content {
			for c.Kind == yaml.AliasNode && c.Alias != nil {
				c = c.Alias
			}
			if c.Kind != yaml.MappingNode {
				return fmt.Errorf("line %d: merge of a value that is not a mapping", c.Line)
			}
			if err := d.mapping(c, out, true); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("line %d: merge of a value that is not a mapping", m.Line)
}

// key returns the string form of a mapping key: a string as it is, a number or a
// boolean as written. Null and collection keys are errors.
func (d *yamlDecoder) key(n *yaml.Node) (string, error) {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind != yaml.ScalarNode {
		return "", fmt.Errorf("line %d: mapping key is not a scalar", n.Line)
	}
	if err := d.spend(len(n.Value)); err != nil {
		return "", err
	}
	if n.ShortTag() == "!!null" {
		return "", fmt.Errorf("line %d: mapping key is null", n.Line)
	}
	return n.Value, nil
}

// scalar converts a scalar node by its resolved tag.
func scalar(n *yaml.Node) (any, error) {
	switch n.ShortTag() {
	case "!!null":
		return nil, nil
	case "!!bool":
		var b bool
		if err := n.Decode(&b); err != nil {
			return nil, err
		}
		return b, nil
	case "!!int", "!!float":
		if isJSONNumber(n.Value) {
			return json.Number(n.Value), nil
		}
		var v any
		if err := n.Decode(&v); err != nil {
			return nil, err
		}
		switch x := v.(type) {
		case int:
			return json.Number(strconv.Itoa(x)), nil
		case int64:
			return json.Number(strconv.FormatInt(x, 10)), nil
		case uint64:
			return json.Number(strconv.FormatUint(x, 10)), nil
		case float64:
			if math.IsInf(x, 0) || math.IsNaN(x) {
				return nil, fmt.Errorf("line %d: %s has no JSON form", n.Line, n.Value)
			}
			return json.Number(strconv.FormatFloat(x, 'g', -1, 64)), nil
		}
		return nil, fmt.Errorf("line %d: unsupported number %q", n.Line, n.Value)
	}
	// !!str, !!timestamp, !!binary and custom tags keep their text.
	return n.Value, nil
}

// isJSONNumber reports whether s is a JSON number literal (RFC 8259).
func isJSONNumber(s string) bool {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && s[i] >= '1' && s[i] <= '9':
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	default:
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		start := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == start {
			return false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		start := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == start {
			return false
		}
	}
	return i == len(s)
}
