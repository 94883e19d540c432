package call

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/alknet/alknet/core"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// Handler serves a Query or Mutation. It returns the output (nil means JSON null) or an
// error: a *CallError (or an error wrapping one) picks the code, see [Registry.Invoke]
// for how errors are mapped.
type Handler func(ctx context.Context, oc *OpContext, input json.RawMessage) (json.RawMessage, error)

// StreamHandler serves a Subscription. emit sends one output (nil means JSON null); it
// blocks for backpressure and returns ctx.Err() once the call is cancelled or aborted,
// and an error after the handler has returned. A nil return ends the stream with
// call.completed; an error ends it with one call.error and no call.completed.
type StreamHandler func(ctx context.Context, oc *OpContext, input json.RawMessage, emit func(json.RawMessage) error) error

// Provenance says where an operation comes from. Only Local and Session operations may
// compose; imported ones are forwarding leaves.
type Provenance int

// Provenances.
const (
	// ProvenanceLocal is an operation implemented by this node (Layer 0).
	ProvenanceLocal Provenance = iota
	// ProvenanceSession is a per-session (agent) operation (Layer 1).
	ProvenanceSession
	// ProvenanceFromCall is imported from a peer over alknet/call.
	ProvenanceFromCall
	// ProvenanceFromOpenAPI is imported from an OpenAPI document.
	ProvenanceFromOpenAPI
	// ProvenanceFromMCP is imported from an MCP server.
	ProvenanceFromMCP
	// ProvenanceFromJSONSchema is a single HTTP endpoint described by a JSON Schema.
	ProvenanceFromJSONSchema
)

// String returns "local", "session", "from_call", "from_openapi", "from_mcp",
// "from_jsonschema", or "Provenance(n)".
func (p Provenance) String() string {
	switch p {
	case ProvenanceLocal:
		return "local"
	case ProvenanceSession:
		return "session"
	case ProvenanceFromCall:
		return "from_call"
	case ProvenanceFromOpenAPI:
		return "from_openapi"
	case ProvenanceFromMCP:
		return "from_mcp"
	case ProvenanceFromJSONSchema:
		return "from_jsonschema"
	}
	return fmt.Sprintf("Provenance(%d)", int(p))
}

// canCompose reports whether operations of this provenance may hold an authority.
func (p Provenance) canCompose() bool { return p == ProvenanceLocal || p == ProvenanceSession }

// CompositionAuthority is the identity a handler composes with: its composed calls are
// checked against these scopes and resources, not against the original caller's.
type CompositionAuthority struct {
	// Label becomes the Identity.ID of composed calls.
	Label string
	// Scopes granted to composed calls.
	Scopes []string
	// Resources granted to composed calls, by resource type.
	Resources map[string][]string
}

// AsIdentity returns the authority as an identity {ID: Label, Scopes, Resources}
// (copies); a nil receiver gives nil.
func (a *CompositionAuthority) AsIdentity() *core.Identity {
	if a == nil {
		return nil
	}
	id := core.Identity{ID: a.Label, Scopes: a.Scopes, Resources: a.Resources}.Clone()
	return &id
}

// ScopedEnv is the set of operations a handler may compose. Nothing outside it is
// reachable, and what is unreachable answers NOT_FOUND. The zero value allows nothing.
type ScopedEnv struct {
	// AllowedOps are names ("notes/get") reachable from any source.
	AllowedOps map[string]struct{}
	// PeerPinned are "peerID/ns/op" keys: the operation is reachable from that peer
	// only (with a specific peer route, [OperationEnv.InvokePeer]).
	PeerPinned map[string]struct{}
}

// NewScopedEnv returns a ScopedEnv allowing names (a leading slash is dropped).
func NewScopedEnv(names ...string) *ScopedEnv {
	s := &ScopedEnv{AllowedOps: make(map[string]struct{}, len(names))}
	for _, n := range names {
		s.AllowedOps[stripSlash(n)] = struct{}{}
	}
	return s
}

// Allows reports whether name may be composed from any source.
func (s ScopedEnv) Allows(name string) bool {
	_, ok := s.AllowedOps[stripSlash(name)]
	return ok
}

// AllowsPeer reports whether name may be composed from peer: allowed from any source,
// or pinned to that peer ("peerID/ns/op").
func (s ScopedEnv) AllowsPeer(peer, name string) bool {
	name = stripSlash(name)
	if s.Allows(name) {
		return true
	}
	_, ok := s.PeerPinned[peer+"/"+name]
	return ok
}

// Registration is one registered operation: its spec, exactly one handler matching
// the spec's type (Once for Query/Mutation, Stream for Subscription), and what it may
// do when it runs.
type Registration struct {
	// Spec describes the operation.
	Spec OperationSpec
	// Once serves a Query or Mutation.
	Once Handler
	// Stream serves a Subscription.
	Stream StreamHandler
	// Provenance says where the operation comes from.
	Provenance Provenance
	// Authority is the identity its composed calls are made with; nil for leaves, and
	// always nil for imported operations.
	Authority *CompositionAuthority
	// Scoped is what it may compose; nil means nothing, and always nil for imported
	// operations.
	Scoped *ScopedEnv
	// Caps are the outbound credentials of a root call to it.
	Caps core.Capabilities
}

// Registration errors. Register's errors wrap ErrInvalidRegistration (and, for a bad
// name, [ErrInvalidName]; for a bad schema, ErrInvalidSchema) or ErrDuplicateOperation.
var (
	// ErrInvalidRegistration is wrapped by every error of a registration that cannot be
	// accepted.
	ErrInvalidRegistration = errors.New("invalid registration")
	// ErrInvalidSchema is wrapped when an input, output or error schema does not compile.
	ErrInvalidSchema = errors.New("invalid JSON schema")
	// ErrDuplicateOperation is wrapped when the name is already registered.
	ErrDuplicateOperation = errors.New("duplicate operation")
)

// entry is one registration with its compiled input schema.
type entry struct {
	reg   Registration
	input *jsonschema.Schema // nil: accepts anything
	// declared holds the declared error codes.
	declared map[string]struct{}
	// stats counts its calls (see Registry.Stats).
	stats *opCounters
}

// Registry holds operations by name. Lookup, List and Invoke are safe for concurrent
// use, also concurrently with Register and Unregister (meant for start-up and for
// overlays).
type Registry struct {
	mu  sync.RWMutex
	ops map[string]*entry
	// unknown counts calls of names not held (see Stats).
	unknown opCounters
}

// Names of the built-in discovery operations.
const (
	OpServicesList   = "services/list"
	OpServicesSchema = "services/schema"
)

// NewRegistry returns a registry holding the built-in discovery operations
// services/list and services/schema (External Queries without access restriction).
func NewRegistry() *Registry {
	r := NewBareRegistry()
	for _, reg := range r.builtins() {
		if err := r.Register(reg); err != nil {
			panic("call: built-in operation: " + err.Error())
		}
	}
	return r
}

// NewBareRegistry returns an empty registry, without the discovery operations: for
// overlays (a session's or a connection's imported operations) composed on top of a
// node's registry.
func NewBareRegistry() *Registry {
	return &Registry{ops: map[string]*entry{}}
}

// Register adds an operation. It fails, with an error wrapping ErrInvalidRegistration,
// when:
//   - the name fails [ValidateName], or Namespace is set and is not its first segment
//     (an empty Namespace is filled in);
//   - Type or Visibility is not a known value, or the provenance is unknown;
//   - the handlers do not match the type: exactly one of Once (Query, Mutation) and
//     Stream (Subscription) must be set;
//   - Authority or Scoped is set on an imported (not Local or Session) operation;
//   - ResourceIDPath fails [ValidateResourceIDPath], or a declared error has no code;
//   - an input, output or error schema is not valid JSON or does not compile (JSON
//     Schema 2020-12 unless "$schema" says otherwise, format assertions on, no
//     loading of external references); an empty or null schema accepts anything.
//
// It fails with an error wrapping ErrDuplicateOperation when the name is taken. The
// registration is copied.
func (r *Registry) Register(reg Registration) error {
	e, err := prepare(reg)
	if err != nil {
		return err
	}
	name := e.reg.Spec.Name
	e.stats = new(opCounters)
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.ops[name]; ok {
		return fmt.Errorf("call: register %q: %w", name, ErrDuplicateOperation)
	}
	r.ops[name] = e
	return nil
}

// Unregister removes an operation; it reports whether it was registered. Calls already
// running are not affected.
func (r *Registry) Unregister(name string) bool {
	name = stripSlash(name)
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.ops[name]
	delete(r.ops, name)
	return ok
}

// prepare validates a registration and compiles its schemas.
func prepare(reg Registration) (*entry, error) {
	reg.Spec = cloneSpec(reg.Spec)
	s := &reg.Spec
	invalid := func(format string, args ...any) error {
		return fmt.Errorf("call: register %q: %w: %s", truncate(s.Name), ErrInvalidRegistration, fmt.Sprintf(format, args...))
	}
	if err := ValidateName(s.Name); err != nil {
		return nil, fmt.Errorf("call: register: %w: %w", ErrInvalidRegistration, err)
	}
	switch ns := namespaceOf(s.Name); {
	case s.Namespace == "":
		s.Namespace = ns
	case s.Namespace != ns:
		return nil, invalid("namespace %q is not the name's first segment %q", truncate(s.Namespace), ns)
	}
	if !s.Type.valid() {
		return nil, invalid("unknown op type %d", int(s.Type))
	}
	if !s.Visibility.valid() {
		return nil, invalid("unknown visibility %d", int(s.Visibility))
	}
	if reg.Provenance < ProvenanceLocal || reg.Provenance > ProvenanceFromJSONSchema {
		return nil, invalid("unknown provenance %d", int(reg.Provenance))
	}
	switch {
	case reg.Once != nil && reg.Stream != nil:
		return nil, invalid("both Once and Stream handlers set")
	case reg.Once == nil && reg.Stream == nil:
		return nil, invalid("no handler set")
	case s.Type == Subscription && reg.Once != nil:
		return nil, invalid("a subscription needs a Stream handler, not Once")
	case s.Type != Subscription && reg.Stream != nil:
		return nil, invalid("a %s needs a Once handler, not Stream", s.Type)
	}
	if !reg.Provenance.canCompose() && (reg.Authority != nil || reg.Scoped != nil) {
		return nil, invalid("%s operations are leaves: no Authority or Scoped", reg.Provenance)
	}
	if err := ValidateResourceIDPath(s.ResourceIDPath); err != nil {
		return nil, invalid("%v", err)
	}
	e := &entry{declared: map[string]struct{}{}}
	for _, d := range s.ErrorSchemas {
		if d.Code == "" {
			return nil, invalid("declared error without a code")
		}
		e.declared[d.Code] = struct{}{}
	}

	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	c.UseLoader(noLoader{})
	base := "urn:alknet:op:" + strings.ReplaceAll(url.PathEscape(s.Name), "%2F", "/")
	compile := func(what, loc string, raw json.RawMessage) (*jsonschema.Schema, error) {
		if isNoSchema(raw) {
			return nil, nil
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
		if err != nil {
			return nil, fmt.Errorf("call: register %q: %w: %w: %s: %w", s.Name, ErrInvalidRegistration, ErrInvalidSchema, what, err)
		}
		if err := c.AddResource(loc, doc); err != nil {
			return nil, fmt.Errorf("call: register %q: %w: %w: %s: %w", s.Name, ErrInvalidRegistration, ErrInvalidSchema, what, err)
		}
		sch, err := c.Compile(loc)
		if err != nil {
			return nil, fmt.Errorf("call: register %q: %w: %w: %s: %w", s.Name, ErrInvalidRegistration, ErrInvalidSchema, what, err)
		}
		return sch, nil
	}
	var err error
	if e.input, err = compile("input schema", base+":input", s.InputSchema); err != nil {
		return nil, err
	}
	if _, err = compile("output schema", base+":output", s.OutputSchema); err != nil {
		return nil, err
	}
	for i, d := range s.ErrorSchemas {
		if _, err = compile("error schema "+d.Code, fmt.Sprintf("%s:error:%d", base, i), d.Schema); err != nil {
			return nil, err
		}
	}
	e.reg = reg
	return e, nil
}

// noLoader refuses to load any external schema resource: a schema is self-contained
// (its own $defs, and the embedded meta-schemas). The library's default would read
// local files named by a "$ref".
type noLoader struct{}

func (noLoader) Load(u string) (any, error) {
	return nil, fmt.Errorf("external schema references are not loaded: %s", truncate(u))
}

// Lookup returns (a copy of) the registration of name; one leading "/" is accepted.
func (r *Registry) Lookup(name string) (*Registration, bool) {
	e := r.get(name)
	if e == nil {
		return nil, false
	}
	reg := e.reg
	return &reg, true
}

// get returns the entry of name (one leading "/" accepted), or nil.
func (r *Registry) get(name string) *entry { return r.getExact(stripSlash(name)) }

// getExact returns the entry of name as it is (a name already stripped), or nil.
func (r *Registry) getExact(name string) *entry {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.ops[name]
}

// names returns every registered name, sorted.
func (r *Registry) names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return slices.Sorted(maps.Keys(r.ops))
}

// contains reports whether name is registered.
func (r *Registry) contains(name string) bool { return r.get(name) != nil }

// List returns the specs of the External operations, sorted by name.
func (r *Registry) List() []OperationSpec {
	return r.list(func(OperationSpec) bool { return true })
}

// ListFor returns the specs of the External operations id passes the access check of
// (without a resource id or ownership provider), sorted by name: what services/list
// shows to id.
func (r *Registry) ListFor(id *core.Identity) []OperationSpec {
	return r.list(func(s OperationSpec) bool { return s.Access.Check(id, "", nil) == nil })
}

func (r *Registry) list(keep func(OperationSpec) bool) []OperationSpec {
	r.mu.RLock()
	out := make([]OperationSpec, 0, len(r.ops))
	for _, e := range r.ops {
		if e.reg.Spec.Visibility == External && keep(e.reg.Spec) {
			out = append(out, cloneSpec(e.reg.Spec))
		}
	}
	r.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// admit runs the checks before a handler (call.md §3): unknown → NOT_FOUND; Internal
// from outside → NOT_FOUND; access control → FORBIDDEN; wrong kind of invoke →
// INVALID_OPERATION_TYPE; input schema → INVALID_INPUT. It returns the entry and the
// input to pass on (JSON null for a nil input); the entry also with an error, when the
// name is held.
func (r *Registry) admit(name string, in json.RawMessage, oc *OpContext, stream bool) (*entry, json.RawMessage, *CallError) {
	name = stripSlash(name)
	e := r.getExact(name)
	if e == nil {
		return nil, nil, ErrNotFound(name)
	}
	spec := &e.reg.Spec
	if spec.Visibility == Internal && !oc.IsInternal() {
		return e, nil, ErrNotFound(name)
	}
	if len(in) == 0 {
		in = json.RawMessage("null")
	}
	rid := ""
	if spec.ResourceIDPath != "" && spec.Access.needsResourceID(oc.Ownership) {
		rid = ExtractResourceID(spec.ResourceIDPath, in)
	}
	if cerr := spec.Access.Check(aclIdentity(oc), rid, oc.Ownership); cerr != nil {
		return e, nil, cerr
	}
	switch {
	case stream && spec.Type != Subscription:
		return e, nil, Errorf(CodeInvalidOperationType, "operation %s is a %s; call it, do not subscribe", name, spec.Type)
	case !stream && spec.Type == Subscription:
		return e, nil, Errorf(CodeInvalidOperationType, "operation %s is a subscription; subscribe to it", name)
	}
	if e.input != nil {
		if cerr := validateInput(e.input, in); cerr != nil {
			return e, nil, cerr
		}
	}
	return e, in, nil
}

// aclIdentity is the identity access control checks a call against: oc.Identity. For
// a root call it is the caller (connection or token identity); for a composed call the
// environment set it to the composing handler's authority
// (parent.HandlerIdentity.AsIdentity(), see [NewChildContext]), so "internal switches
// authority" holds without a second field.
func aclIdentity(oc *OpContext) *core.Identity { return oc.Identity }

// Invoke runs the Query or Mutation name (one leading "/" accepted) for the caller
// described by oc (a nil oc is an anonymous root call). In order:
//  1. an unknown name gives NOT_FOUND "operation not found: <name>";
//  2. an Internal operation with a non-internal oc gives NOT_FOUND (before access
//     control, so Internal operations cannot be probed);
//  3. [AccessControl.Check] against oc.Identity (for composed calls, the composing
//     handler's authority), the resource id extracted from the input with the spec's
//     ResourceIDPath, and oc.Ownership: FORBIDDEN, and the handler never runs;
//  4. a Subscription gives INVALID_OPERATION_TYPE;
//  5. the input (nil is JSON null) is validated against the input schema:
//     INVALID_INPUT listing the failing instance paths, also in details as
//     {"errors": [{"path", "message"}]};
//  6. a ctx that is already done gives TIMEOUT or INTERNAL "request aborted" without
//     running the handler;
//  7. the handler runs; a panic gives INTERNAL "handler panicked";
//  8. its error is mapped (ADR-023): a *CallError with a code declared in the spec's
//     ErrorSchemas, or with a protocol code, passes through; one with an undeclared
//     code becomes INTERNAL with its message and details {"original_code": code,
//     "original_details": details}; any other error goes through [ToCallError]
//     (context.DeadlineExceeded gives TIMEOUT).
//
// A handler returning a nil *CallError as its error (as `return oc.Call(...)` does)
// succeeded. A nil output is JSON null. The output is not validated against the output schema
// (it documents the operation); an output that is not valid JSON gives INTERNAL.
func (r *Registry) Invoke(ctx context.Context, name string, in json.RawMessage, oc *OpContext) (json.RawMessage, *CallError) {
	start := time.Now()
	e, out, cerr := r.invoke(ctx, name, in, oc)
	r.observe(e, start, cerr, true)
	return out, cerr
}

// invoke is Invoke without the counting; it returns the entry called (nil when name
// is not held).
func (r *Registry) invoke(ctx context.Context, name string, in json.RawMessage, oc *OpContext) (*entry, json.RawMessage, *CallError) {
	if oc == nil {
		oc = NewRootContext("", nil, nil, nil, nil, nil)
	}
	e, in, cerr := r.admit(name, in, oc, false)
	if cerr != nil {
		return e, nil, cerr
	}
	if err := ctx.Err(); err != nil {
		return e, nil, ToCallError(err)
	}
	out, err := runOnce(ctx, e.reg.Once, oc, in)
	if err != nil && !isNilCallError(err) {
		return e, nil, mapHandlerError(e, err)
	}
	if len(out) == 0 {
		return e, json.RawMessage("null"), nil
	}
	if !validPayload(out) {
		return e, nil, NewCallError(CodeInternal, "handler returned invalid JSON")
	}
	return e, out, nil
}

// InvokeStream runs the Subscription name with the checks and error mapping of
// [Registry.Invoke] (a Query or Mutation gives INVALID_OPERATION_TYPE). emit receives
// each output, serialised (never concurrently) and never after InvokeStream returns;
// the handler's emit returns ctx.Err() once ctx is done, and an error for output that
// is not valid JSON. A nil emit discards the outputs. A nil result means the stream
// ended normally (call.completed); a *CallError ends it with one call.error.
func (r *Registry) InvokeStream(ctx context.Context, name string, in json.RawMessage, oc *OpContext, emit func(json.RawMessage) error) *CallError {
	e, cerr := r.invokeStream(ctx, name, in, oc, emit)
	r.observe(e, time.Time{}, cerr, false)
	return cerr
}

// invokeStream is InvokeStream without the counting; it returns the entry called (nil
// when name is not held).
func (r *Registry) invokeStream(ctx context.Context, name string, in json.RawMessage, oc *OpContext, emit func(json.RawMessage) error) (*entry, *CallError) {
	if oc == nil {
		oc = NewRootContext("", nil, nil, nil, nil, nil)
	}
	e, in, cerr := r.admit(name, in, oc, true)
	if cerr != nil {
		return e, cerr
	}
	if err := ctx.Err(); err != nil {
		return e, ToCallError(err)
	}
	g := &guardedEmit{ctx: ctx, emit: emit}
	err := runStream(ctx, e.reg.Stream, oc, in, g.send)
	g.close()
	if err != nil && !isNilCallError(err) {
		return e, mapHandlerError(e, err)
	}
	return e, nil
}

// errStreamClosed is what emit returns once the stream handler has returned.
var errStreamClosed = errors.New("call: emit after the stream handler returned")

// guardedEmit serialises a stream handler's emits and refuses them once it returned.
type guardedEmit struct {
	mu     sync.Mutex
	ctx    context.Context
	emit   func(json.RawMessage) error
	closed bool
}

func (g *guardedEmit) send(out json.RawMessage) error {
	if err := g.ctx.Err(); err != nil {
		return err
	}
	if len(out) == 0 {
		out = json.RawMessage("null")
	} else if !validPayload(out) {
		return errors.New("call: emitted output is not valid JSON")
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return errStreamClosed
	}
	if err := g.ctx.Err(); err != nil {
		return err
	}
	if g.emit == nil {
		return nil
	}
	return g.emit(out)
}

func (g *guardedEmit) close() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
}

// isNilCallError reports whether err is a nil *CallError in a non-nil error interface,
// which a handler returns by writing `return oc.Call(ctx, name, in)`. It means success.
func isNilCallError(err error) bool {
	ce, ok := err.(*CallError)
	return ok && ce == nil
}

// errHandlerPanicked is the error a recovered handler panic becomes.
func errHandlerPanicked() *CallError { return NewCallError(CodeInternal, "handler panicked") }

// runOnce runs a one-shot handler, turning a panic into INTERNAL.
func runOnce(ctx context.Context, h Handler, oc *OpContext, in json.RawMessage) (out json.RawMessage, err error) {
	defer func() {
		if p := recover(); p != nil {
			out, err = nil, errHandlerPanicked()
		}
	}()
	return h(ctx, oc, in)
}

// runStream runs a stream handler, turning a panic into INTERNAL.
func runStream(ctx context.Context, h StreamHandler, oc *OpContext, in json.RawMessage, emit func(json.RawMessage) error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = errHandlerPanicked()
		}
	}()
	return h(ctx, oc, in, emit)
}

// mapHandlerError applies ADR-023 to a handler's error.
func mapHandlerError(e *entry, err error) *CallError {
	ce, ok := errors.AsType[*CallError](err)
	if !ok || ce == nil {
		return ToCallError(err)
	}
	out := *ce
	if len(out.Details) > 0 && !validPayload(out.Details) {
		out.Details = nil
	}
	if _, declared := e.declared[out.Code]; declared || IsProtocolCode(out.Code) {
		return &out
	}
	details := struct {
		OriginalCode    string          `json:"original_code"`
		OriginalDetails json.RawMessage `json:"original_details,omitempty"`
	}{out.Code, out.Details}
	b, mErr := json.Marshal(details)
	if mErr != nil {
		b = nil
	}
	return &CallError{Code: CodeInternal, Message: out.Message, Details: b}
}

// maxInputErrors caps the errors an INVALID_INPUT reports.
const maxInputErrors = 20

// inputError is one entry of INVALID_INPUT's details.
type inputError struct {
	Path    string `json:"path"`
	Message string `json:"message"`
}

var schemaPrinter = message.NewPrinter(language.English)

// validateInput validates in against sch.
func validateInput(sch *jsonschema.Schema, in json.RawMessage) *CallError {
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(in))
	if err != nil {
		return NewCallError(CodeInvalidInput, "input is not valid JSON")
	}
	err = sch.Validate(v)
	if err == nil {
		return nil
	}
	ve, ok := errors.AsType[*jsonschema.ValidationError](err)
	if !ok {
		return NewCallError(CodeInvalidInput, "invalid input: "+err.Error())
	}
	c := &inputErrors{}
	c.collect(ve)
	if c.total == 0 {
		c.add("", "does not match the input schema")
	}
	errs, more := c.list, c.total-len(c.list)
	var sb strings.Builder
	sb.WriteString("invalid input: ")
	for i, ie := range errs {
		if i > 0 {
			sb.WriteString("; ")
		}
		p := ie.Path
		if p == "" {
			p = "(root)"
		}
		sb.WriteString(p)
		sb.WriteString(": ")
		sb.WriteString(ie.Message)
	}
	if more > 0 {
		fmt.Fprintf(&sb, "; and %d more", more)
	}
	details, _ := json.Marshal(struct {
		Errors []inputError `json:"errors"`
	}{errs})
	ce := NewCallError(CodeInvalidInput, sb.String())
	ce.Details = details
	return ce
}

// inputErrors gathers the leaf errors of a validation error tree, keeping the first
// maxInputErrors and counting all.
type inputErrors struct {
	list  []inputError
	total int
}

func (c *inputErrors) add(path, msg string) {
	c.total++
	if len(c.list) < maxInputErrors {
		c.list = append(c.list, inputError{Path: path, Message: msg})
	}
}

// collect walks the tree. A missing required property is reported at the property's
// own path ("/name").
func (c *inputErrors) collect(ve *jsonschema.ValidationError) {
	if len(ve.Causes) > 0 {
		for _, cause := range ve.Causes {
			c.collect(cause)
		}
		return
	}
	loc := jsonPointer(ve.InstanceLocation)
	if req, ok := ve.ErrorKind.(*kind.Required); ok && len(req.Missing) > 0 {
		for _, m := range req.Missing {
			c.add(loc+"/"+escapePointer(m), "missing required property")
		}
		return
	}
	if len(c.list) >= maxInputErrors {
		c.total++ // not rendered
		return
	}
	c.add(loc, ve.ErrorKind.LocalizedString(schemaPrinter))
}

// jsonPointer renders an instance location as a JSON Pointer ("" for the root).
func jsonPointer(tokens []string) string {
	var sb strings.Builder
	for _, t := range tokens {
		sb.WriteByte('/')
		sb.WriteString(escapePointer(t))
	}
	return sb.String()
}

// escapePointer escapes one JSON Pointer token.
func escapePointer(t string) string {
	return strings.ReplaceAll(strings.ReplaceAll(t, "~", "~0"), "/", "~1")
}

// stripSlash drops one leading "/".
func stripSlash(name string) string { return strings.TrimPrefix(name, "/") }

// builtins returns the discovery operations of r.
func (r *Registry) builtins() []Registration {
	list := NewSpec(OpServicesList, Query)
	list.OutputSchema = json.RawMessage(`{"type":"object","required":["operations"],"properties":{"operations":{"type":"array","items":{"type":"object","required":["name","namespace","op_type"],"properties":{"name":{"type":"string"},"namespace":{"type":"string"},"op_type":{"enum":["query","mutation","subscription"]}}}}}}`)
	schema := NewSpec(OpServicesSchema, Query)
	schema.InputSchema = json.RawMessage(`{"type":"object","required":["name"],"properties":{"name":{"type":"string"}}}`)
	schema.OutputSchema = json.RawMessage(`{"type":"object","required":["name","namespace","op_type","visibility"]}`)
	return []Registration{
		{Spec: list, Once: r.servicesList},
		{Spec: schema, Once: r.servicesSchema},
	}
}

// listedOp is one entry of services/list.
type listedOp struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	OpType    OpType `json:"op_type"`
}

// servicesList answers services/list: the External operations the caller passes the
// access check of, sorted by name.
func (r *Registry) servicesList(_ context.Context, oc *OpContext, _ json.RawMessage) (json.RawMessage, error) {
	specs := r.ListFor(aclIdentity(oc))
	ops := make([]listedOp, 0, len(specs))
	for _, s := range specs {
		ops = append(ops, listedOp{Name: s.Name, Namespace: s.Namespace, OpType: s.Type})
	}
	return json.Marshal(struct {
		Operations []listedOp `json:"operations"`
	}{ops})
}

// servicesSchema answers services/schema: the spec of an External operation the
// caller passes the access check of; NOT_FOUND for anything else.
func (r *Registry) servicesSchema(_ context.Context, oc *OpContext, in json.RawMessage) (json.RawMessage, error) {
	var req struct {
		Name *string `json:"name"`
	}
	if err := json.Unmarshal(in, &req); err != nil || req.Name == nil {
		return nil, NewCallError(CodeInvalidInput, "missing required field: name")
	}
	name := stripSlash(*req.Name)
	e := r.getExact(name)
	if e == nil || e.reg.Spec.Visibility != External || e.reg.Spec.Access.Check(aclIdentity(oc), "", nil) != nil {
		return nil, ErrNotFound(name)
	}
	return json.Marshal(e.reg.Spec)
}
