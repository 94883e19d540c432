package call

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/alknet/alknet/core"
)

// OpType is the kind of an operation. Its JSON (and text) form is "query", "mutation"
// or "subscription".
type OpType int

// Operation types.
const (
	// Query is a request/response operation without side effects.
	Query OpType = iota
	// Mutation is a request/response operation with side effects.
	Mutation
	// Subscription is a streaming operation: N call.responded, then call.completed.
	Subscription
)

// String returns "query", "mutation", "subscription", or "OpType(n)" for an unknown
// value.
func (t OpType) String() string {
	switch t {
	case Query:
		return "query"
	case Mutation:
		return "mutation"
	case Subscription:
		return "subscription"
	}
	return fmt.Sprintf("OpType(%d)", int(t))
}

// valid reports whether t is one of the three operation types.
func (t OpType) valid() bool { return t >= Query && t <= Subscription }

// MarshalText implements encoding.TextMarshaler; an unknown value is an error.
func (t OpType) MarshalText() ([]byte, error) {
	if !t.valid() {
		return nil, fmt.Errorf("call: unknown op_type %d", int(t))
	}
	return []byte(t.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler; it accepts exactly "query",
// "mutation" and "subscription".
func (t *OpType) UnmarshalText(b []byte) error {
	switch string(b) {
	case "query":
		*t = Query
	case "mutation":
		*t = Mutation
	case "subscription":
		*t = Subscription
	default:
		return fmt.Errorf("call: unknown op_type %q", truncate(string(b)))
	}
	return nil
}

// Visibility says who may call an operation. Its JSON (and text) form is "external" or
// "internal".
type Visibility int

// Visibilities.
const (
	// External operations are callable from the wire (and by composition). It is the
	// zero value.
	External Visibility = iota
	// Internal operations are reachable by composition only; from the wire they answer
	// NOT_FOUND, and discovery never shows them.
	Internal
)

// String returns "external", "internal", or "Visibility(n)" for an unknown value.
func (v Visibility) String() string {
	switch v {
	case External:
		return "external"
	case Internal:
		return "internal"
	}
	return fmt.Sprintf("Visibility(%d)", int(v))
}

// valid reports whether v is External or Internal.
func (v Visibility) valid() bool { return v == External || v == Internal }

// MarshalText implements encoding.TextMarshaler; an unknown value is an error.
func (v Visibility) MarshalText() ([]byte, error) {
	if !v.valid() {
		return nil, fmt.Errorf("call: unknown visibility %d", int(v))
	}
	return []byte(v.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler; it accepts exactly "external" and
// "internal".
func (v *Visibility) UnmarshalText(b []byte) error {
	switch string(b) {
	case "external":
		*v = External
	case "internal":
		*v = Internal
	default:
		return fmt.Errorf("call: unknown visibility %q", truncate(string(b)))
	}
	return nil
}

// ErrorDefinition declares an operation-level error code (ADR-023), such as
// "FILE_NOT_FOUND" or, for imports from HTTP, "HTTP_404" with HTTPStatus 404. A handler
// error carrying a declared code reaches the caller unchanged. Its JSON form is
// {"code", "description", "schema", "http_status": int|null}.
type ErrorDefinition struct {
	// Code is the error code; never one of the six protocol codes for imports.
	Code string `json:"code"`
	// Description is for people.
	Description string `json:"description"`
	// Schema is the JSON Schema of the error's details; nil for none (JSON null).
	Schema json.RawMessage `json:"schema"`
	// HTTPStatus is the HTTP status the code maps to, when there is one.
	HTTPStatus *int `json:"http_status"`
}

// UnmarshalJSON decodes the JSON form; the schema is stored compacted, and a null
// schema becomes nil.
func (d *ErrorDefinition) UnmarshalJSON(b []byte) error {
	type plain ErrorDefinition
	var p plain
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	s, err := normalizeRaw(p.Schema)
	if err != nil {
		return fmt.Errorf("call: error_schemas %q: schema: %w", truncate(p.Code), err)
	}
	p.Schema = s
	*d = ErrorDefinition(p)
	return nil
}

// AccessControl is an operation's access rule, checked by [AccessControl.Check] for
// every call (wire, composition and peers alike). The zero value places no restriction.
//
// Its JSON form is {"required_scopes": [...], "required_scopes_any": [...]|null,
// "resource_type": str|null, "resource_action": str|null}; required_scopes is always an
// array.
type AccessControl struct {
	// RequiredScopes must all be held (AND).
	RequiredScopes []string
	// RequiredScopesAny, when not nil, needs at least one of its scopes to be held (OR).
	// Nil means unset; an empty non-nil slice is set and can never be satisfied.
	RequiredScopesAny []string
	// ResourceType restricts the operation to holders (or owners) of a resource type.
	ResourceType *string
	// ResourceAction restricts the operation to holders of an action on a resource.
	ResourceAction *string
}

// unrestricted reports whether a places no restriction at all.
func (a AccessControl) unrestricted() bool {
	return len(a.RequiredScopes) == 0 && a.RequiredScopesAny == nil && a.ResourceType == nil && a.ResourceAction == nil
}

// needsResourceID reports whether Check would look at a resource id given own.
func (a AccessControl) needsResourceID(own core.OwnershipProvider) bool {
	return own != nil && a.ResourceType != nil
}

// Check decides whether id may call the operation; nil means allowed, otherwise a
// FORBIDDEN *CallError. The order is that of the original (call.md §3):
//
//  1. no restriction at all: allowed, even for a nil identity;
//  2. a nil identity: "authentication required";
//  3. every RequiredScopes entry must be held: "missing required scope: X";
//  4. when RequiredScopesAny is set, one of them must be held:
//     "missing required scope (any of: a, b)";
//  5. with an ownership provider and a ResourceType: with a resourceID,
//     own.Owns(id, type, resourceID, action or "") must hold ("not owner of resource:
//     T/ID"); without one, own.OwnsAny(id, type) must hold ("no owned resources of type:
//     T"). Then allowed; the static check does not run;
//  6. otherwise the static check against id.Resources: type and action set, the
//     action must be listed under the type ("missing resource: T/A"); only the type,
//     the type must list something ("missing resource: T"); only the action, some type
//     must list it ("missing resource action: A").
func (a AccessControl) Check(id *core.Identity, resourceID string, own core.OwnershipProvider) *CallError {
	if a.unrestricted() {
		return nil
	}
	if id == nil {
		return NewCallError(CodeForbidden, "authentication required")
	}
	for _, s := range a.RequiredScopes {
		if !id.HasScope(s) {
			return NewCallError(CodeForbidden, "missing required scope: "+s)
		}
	}
	if a.RequiredScopesAny != nil && !slices.ContainsFunc(a.RequiredScopesAny, id.HasScope) {
		return NewCallError(CodeForbidden, "missing required scope (any of: "+strings.Join(a.RequiredScopesAny, ", ")+")")
	}
	if own != nil && a.ResourceType != nil {
		typ := *a.ResourceType
		if resourceID != "" {
			action := ""
			if a.ResourceAction != nil {
				action = *a.ResourceAction
			}
			if !own.Owns(id, typ, resourceID, action) {
				return NewCallError(CodeForbidden, "not owner of resource: "+typ+"/"+resourceID)
			}
			return nil
		}
		if !own.OwnsAny(id, typ) {
			return NewCallError(CodeForbidden, "no owned resources of type: "+typ)
		}
		return nil
	}
	switch {
	case a.ResourceType != nil && a.ResourceAction != nil:
		typ, action := *a.ResourceType, *a.ResourceAction
		if !slices.Contains(id.Resources[typ], action) {
			return NewCallError(CodeForbidden, "missing resource: "+typ+"/"+action)
		}
	case a.ResourceType != nil:
		if len(id.Resources[*a.ResourceType]) == 0 {
			return NewCallError(CodeForbidden, "missing resource: "+*a.ResourceType)
		}
	case a.ResourceAction != nil:
		action := *a.ResourceAction
		found := false
		for _, actions := range id.Resources {
			if slices.Contains(actions, action) {
				found = true
				break
			}
		}
		if !found {
			return NewCallError(CodeForbidden, "missing resource action: "+action)
		}
	}
	return nil
}

// accessJSON is the JSON form of AccessControl.
type accessJSON struct {
	RequiredScopes    []string `json:"required_scopes"`
	RequiredScopesAny []string `json:"required_scopes_any"`
	ResourceType      *string  `json:"resource_type"`
	ResourceAction    *string  `json:"resource_action"`
}

// MarshalJSON writes the JSON form; nil RequiredScopes is written as [].
func (a AccessControl) MarshalJSON() ([]byte, error) {
	j := accessJSON{
		RequiredScopes:    a.RequiredScopes,
		RequiredScopesAny: a.RequiredScopesAny,
		ResourceType:      a.ResourceType,
		ResourceAction:    a.ResourceAction,
	}
	if j.RequiredScopes == nil {
		j.RequiredScopes = []string{}
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads the JSON form. An empty or null required_scopes becomes nil;
// required_scopes_any keeps null (nil, unset) and [] (set, empty) apart.
func (a *AccessControl) UnmarshalJSON(b []byte) error {
	var j accessJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	if len(j.RequiredScopes) == 0 {
		j.RequiredScopes = nil
	}
	*a = AccessControl{
		RequiredScopes:    j.RequiredScopes,
		RequiredScopesAny: j.RequiredScopesAny,
		ResourceType:      j.ResourceType,
		ResourceAction:    j.ResourceAction,
	}
	return nil
}

// OperationSpec describes one operation: its name, kind, visibility, schemas, declared
// errors and access rule. Schemas are raw JSON Schema documents (nil for none, which
// accepts anything); the registry compiles them when the operation is registered.
//
// Its JSON form (the output of services/schema) uses snake_case keys and lowercase
// enums: {"name", "namespace", "op_type", "visibility", "input_schema",
// "output_schema", "error_schemas": [...], "access_control": {...},
// "resource_id_path": str|null}.
type OperationSpec struct {
	// Name is the registry name, such as "notes/get", without a leading slash.
	Name string
	// Namespace is the first segment of Name ("notes"); see [NewSpec].
	Namespace string
	// Type is Query, Mutation or Subscription.
	Type OpType
	// Visibility is External (the zero value) or Internal.
	Visibility Visibility
	// InputSchema is the JSON Schema inputs are validated against (nil: anything).
	InputSchema json.RawMessage
	// OutputSchema documents the output; outputs are not validated against it.
	OutputSchema json.RawMessage
	// ErrorSchemas declares the operation-level error codes (ADR-023). Nil and empty
	// mean the same.
	ErrorSchemas []ErrorDefinition
	// Access is the access rule.
	Access AccessControl
	// ResourceIDPath selects the resource id in the input for the ownership check,
	// such as "$.containerId" or "$.target.id" (ADR-050); "" for none.
	ResourceIDPath string
}

// Path returns the wire form of the name: "/" + Name.
func (s OperationSpec) Path() string { return "/" + s.Name }

// NewSpec returns an External spec of type t named name, with Namespace set to the
// name's first segment. It does not validate the name; [Registry.Register] does.
func NewSpec(name string, t OpType) OperationSpec {
	return OperationSpec{Name: name, Namespace: namespaceOf(name), Type: t}
}

// MaxNameLen is the longest operation name, in bytes.
const MaxNameLen = 256

// ErrInvalidName is wrapped by the error of [ValidateName].
var ErrInvalidName = errors.New("invalid operation name")

// ValidateName checks an operation name: not empty, at most [MaxNameLen] bytes, valid
// UTF-8, no leading slash, no empty segment ("a//b", "a/"), no whitespace and no
// control characters. The error wraps [ErrInvalidName].
func ValidateName(name string) error {
	bad := func(why string) error {
		return fmt.Errorf("%w %q: %s", ErrInvalidName, truncate(name), why)
	}
	switch {
	case name == "":
		return fmt.Errorf("%w: empty", ErrInvalidName)
	case len(name) > MaxNameLen:
		return bad(fmt.Sprintf("longer than %d bytes", MaxNameLen))
	case !utf8.ValidString(name):
		return bad("not valid UTF-8")
	case strings.HasPrefix(name, "/"):
		return bad("leading slash")
	case slices.Contains(strings.Split(name, "/"), ""):
		return bad("empty segment")
	case strings.IndexFunc(name, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0:
		return bad("whitespace or control character")
	}
	return nil
}

// namespaceOf returns the first segment of name.
func namespaceOf(name string) string {
	ns, _, _ := strings.Cut(name, "/")
	return ns
}

// splitName splits a name into namespace and the rest ("notes/get" → "notes", "get";
// "ping" → "ping", "").
func splitName(name string) (ns, op string) {
	ns, op, _ = strings.Cut(name, "/")
	return ns, op
}

// joinName is the reverse of splitName.
func joinName(ns, op string) string {
	switch {
	case ns == "":
		return op
	case op == "":
		return ns
	}
	return ns + "/" + op
}

// specJSON is the JSON form written by OperationSpec.MarshalJSON.
type specJSON struct {
	Name           string            `json:"name"`
	Namespace      string            `json:"namespace"`
	OpType         OpType            `json:"op_type"`
	Visibility     Visibility        `json:"visibility"`
	InputSchema    json.RawMessage   `json:"input_schema"`
	OutputSchema   json.RawMessage   `json:"output_schema"`
	ErrorSchemas   []ErrorDefinition `json:"error_schemas"`
	AccessControl  AccessControl     `json:"access_control"`
	ResourceIDPath *string           `json:"resource_id_path"`
}

// specInJSON is the JSON form read by OperationSpec.UnmarshalJSON; pointers tell
// missing keys apart.
type specInJSON struct {
	Name           *string           `json:"name"`
	Namespace      *string           `json:"namespace"`
	OpType         *OpType           `json:"op_type"`
	Visibility     *Visibility       `json:"visibility"`
	InputSchema    json.RawMessage   `json:"input_schema"`
	OutputSchema   json.RawMessage   `json:"output_schema"`
	ErrorSchemas   []ErrorDefinition `json:"error_schemas"`
	AccessControl  *AccessControl    `json:"access_control"`
	ResourceIDPath *string           `json:"resource_id_path"`
}

// MarshalJSON writes the services/schema form. An empty Namespace is derived from the
// name; nil schemas are written as null, nil ErrorSchemas as [], an empty
// ResourceIDPath as null.
func (s OperationSpec) MarshalJSON() ([]byte, error) {
	j := specJSON{
		Name:          s.Name,
		Namespace:     s.Namespace,
		OpType:        s.Type,
		Visibility:    s.Visibility,
		InputSchema:   nilIfEmpty(s.InputSchema),
		OutputSchema:  nilIfEmpty(s.OutputSchema),
		ErrorSchemas:  s.ErrorSchemas,
		AccessControl: s.Access,
	}
	if j.Namespace == "" {
		j.Namespace = namespaceOf(s.Name)
	}
	if j.ErrorSchemas == nil {
		j.ErrorSchemas = []ErrorDefinition{}
	}
	if s.ResourceIDPath != "" {
		p := s.ResourceIDPath
		j.ResourceIDPath = &p
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads the services/schema form, as a peer sends it (from_call):
//   - name is required and must pass [ValidateName];
//   - namespace may be missing, null or empty (derived from the name); otherwise it
//     must be the name's first segment;
//   - op_type is required; an unknown value is an error;
//   - a missing or null visibility is External; an unknown value is an error;
//   - schemas are stored compacted, null schemas as nil; an empty error_schemas
//     becomes nil; a null resource_id_path is "".
//
// Unknown keys are ignored.
func (s *OperationSpec) UnmarshalJSON(b []byte) error {
	var j specInJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return fmt.Errorf("call: operation spec: %w", err)
	}
	if j.Name == nil {
		return errors.New("call: operation spec: missing name")
	}
	name := *j.Name
	if err := ValidateName(name); err != nil {
		return fmt.Errorf("call: operation spec: %w", err)
	}
	out := OperationSpec{Name: name, Namespace: namespaceOf(name)}
	if j.Namespace != nil && *j.Namespace != "" && *j.Namespace != out.Namespace {
		return fmt.Errorf("call: operation spec %q: namespace %q is not the name's first segment", name, truncate(*j.Namespace))
	}
	if j.OpType == nil {
		return fmt.Errorf("call: operation spec %q: missing op_type", name)
	}
	out.Type = *j.OpType
	if j.Visibility != nil {
		out.Visibility = *j.Visibility
	}
	var err error
	if out.InputSchema, err = normalizeRaw(j.InputSchema); err != nil {
		return fmt.Errorf("call: operation spec %q: input_schema: %w", name, err)
	}
	if out.OutputSchema, err = normalizeRaw(j.OutputSchema); err != nil {
		return fmt.Errorf("call: operation spec %q: output_schema: %w", name, err)
	}
	if len(j.ErrorSchemas) > 0 {
		out.ErrorSchemas = j.ErrorSchemas
	}
	if j.AccessControl != nil {
		out.Access = *j.AccessControl
	}
	if j.ResourceIDPath != nil {
		out.ResourceIDPath = *j.ResourceIDPath
	}
	*s = out
	return nil
}

// cloneSpec returns a copy of s that shares no slice with it.
func cloneSpec(s OperationSpec) OperationSpec {
	out := s
	out.InputSchema = bytes.Clone(s.InputSchema)
	out.OutputSchema = bytes.Clone(s.OutputSchema)
	if s.ErrorSchemas != nil {
		out.ErrorSchemas = make([]ErrorDefinition, len(s.ErrorSchemas))
		for i, d := range s.ErrorSchemas {
			d.Schema = bytes.Clone(d.Schema)
			if d.HTTPStatus != nil {
				st := *d.HTTPStatus
				d.HTTPStatus = &st
			}
			out.ErrorSchemas[i] = d
		}
	}
	out.Access.RequiredScopes = slices.Clone(s.Access.RequiredScopes)
	out.Access.RequiredScopesAny = slices.Clone(s.Access.RequiredScopesAny)
	if s.Access.ResourceType != nil {
		t := *s.Access.ResourceType
		out.Access.ResourceType = &t
	}
	if s.Access.ResourceAction != nil {
		a := *s.Access.ResourceAction
		out.Access.ResourceAction = &a
	}
	return out
}

// normalizeRaw compacts a raw JSON value; empty input and null give nil.
func normalizeRaw(raw json.RawMessage) (json.RawMessage, error) {
	if isNoSchema(raw) {
		return nil, nil
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// isNoSchema reports whether raw is empty, blank or JSON null.
func isNoSchema(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	return len(t) == 0 || string(t) == "null"
}

// nilIfEmpty makes a blank raw value nil, so that it marshals as null.
func nilIfEmpty(raw json.RawMessage) json.RawMessage {
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil
	}
	return raw
}

// ValidateResourceIDPath checks a ResourceIDPath: "" (none), or "$." followed by one or
// more non-empty field names separated by dots ("$.id", "$.target.id").
func ValidateResourceIDPath(path string) error {
	if path == "" {
		return nil
	}
	if _, ok := resourcePathFields(path); !ok {
		return fmt.Errorf("call: invalid resource_id_path %q: want \"$.field\" or \"$.a.b\"", truncate(path))
	}
	return nil
}

// resourcePathFields splits "$.a.b" into ["a", "b"].
func resourcePathFields(path string) ([]string, bool) {
	rest, ok := strings.CutPrefix(path, "$.")
	if !ok {
		return nil, false
	}
	fields := strings.Split(rest, ".")
	if slices.Contains(fields, "") {
		return nil, false
	}
	return fields, true
}

// ExtractResourceID returns the resource id the path selects in input: "$.field" is
// the top-level key field, "$.a.b" the key b of the object under a. A path that is not
// of that form, an input that is not a JSON object, a missing key and a value that is
// not a string all give "" (which selects the list path of the ownership check, or a
// denial). It never panics.
func ExtractResourceID(path string, input json.RawMessage) string {
	fields, ok := resourcePathFields(path)
	if !ok {
		return ""
	}
	cur := input
	for _, f := range fields {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(cur, &obj); err != nil {
			return ""
		}
		v, ok := obj[f]
		if !ok {
			return ""
		}
		cur = v
	}
	var s string
	if err := json.Unmarshal(cur, &s); err != nil {
		return ""
	}
	return s
}

// truncate shortens text quoted in error messages.
func truncate(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	return s[:max] + "…"
}
