package openapi

import (
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/alknet/alknet/call"
)

// Doer sends an HTTP request and returns its response, as *http.Client does. The
// forwarders use it for every upstream request; nothing here falls back to
// http.DefaultClient.
type Doer interface {
	Do(*http.Request) (*http.Response, error)
}

// ServiceConfig describes the upstream service of an import.
type ServiceConfig struct {
	// Namespace is the first segment of every imported name and the capability key of
	// the service's credential. It must be a single valid name segment.
	Namespace string
	// BaseURL is the absolute http or https URL the operation paths are joined to,
	// such as "https://api.example.com/v3". A missing trailing slash is
	// added, so that the base path is kept. It may carry a query (merged with the
	// query parameters of every call) but no user information and no fragment.
	BaseURL string
	// Auth says how the credential is sent.
	Auth Auth
	// DefaultHeaders are sent with every request (before Content-Type, Accept and the
	// auth header, which override them). They are copied by Import.
	DefaultHeaders http.Header
	// Expose makes the imported operations External; by default they are Internal,
	// reachable by composition only. FromJSONSchema ignores it.
	Expose bool
	// Limits bounds the forwarding (MaxResponseSize, MaxSSELineSize); its document
	// fields are not used (the Document's are).
	Limits Limits
}

// service is a validated ServiceConfig.
type service struct {
	ns      string
	base    *url.URL // path ends with "/"
	auth    Auth
	headers http.Header
	lim     Limits
	client  Doer
}

// validate checks cfg and client and returns the service they describe.
func (cfg ServiceConfig) validate(client Doer) (*service, error) {
	if client == nil {
		return nil, fmt.Errorf("%w: nil HTTP client", ErrConfig)
	}
	ns := cfg.Namespace
	if ns == "" || strings.Contains(ns, "/") || call.ValidateName(ns) != nil {
		return nil, fmt.Errorf("%w: namespace %q must be one valid name segment", ErrConfig, ns)
	}
	u, err := url.Parse(cfg.BaseURL)
	if err != nil {
		return nil, fmt.Errorf("%w: base URL does not parse", ErrConfig)
	}
	scheme := strings.ToLower(u.Scheme)
	switch {
	case scheme != "http" && scheme != "https":
		return nil, fmt.Errorf("%w: base URL must be an absolute http or https URL", ErrConfig)
	case u.Host == "" || u.Opaque != "":
		return nil, fmt.Errorf("%w: base URL has no host", ErrConfig)
	case u.User != nil:
		return nil, fmt.Errorf("%w: base URL must not carry user information (put credentials in capabilities)", ErrConfig)
	case u.Fragment != "" || u.RawFragment != "" || strings.Contains(cfg.BaseURL, "#"):
		return nil, fmt.Errorf("%w: base URL must not have a fragment", ErrConfig)
	}
	u.Scheme = scheme
	if !strings.HasSuffix(u.Path, "/") {
		u.Path += "/"
		if u.RawPath != "" {
			u.RawPath += "/"
		}
	}
	if err := cfg.Auth.validate(); err != nil {
		return nil, err
	}
	headers := cfg.DefaultHeaders.Clone()
	for name, vals := range headers {
		if !validHeaderName(name) {
			return nil, fmt.Errorf("%w: default header name %q is invalid", ErrConfig, name)
		}
		for _, v := range vals {
			if !validHeaderValue(v) {
				return nil, fmt.Errorf("%w: default header %q has an invalid value", ErrConfig, name)
			}
		}
	}
	return &service{ns: ns, base: u, auth: cfg.Auth, headers: headers, lim: cfg.Limits.withDefaults(), client: client}, nil
}

// Import turns every operation of doc into a forwarding registration for the
// service cfg describes, sending requests with client. The registrations are
// sorted by name. Errors about cfg or client wrap [ErrConfig]; errors about the
// document (a bad $ref, an operation name the registry would refuse, two
// operations with the same name, a schema over the limits) wrap [ErrSchemaParse].
// See the package documentation for how operations are named, typed, described and
// forwarded.
func Import(doc *Document, cfg ServiceConfig, client Doer) ([]call.Registration, error) {
	if doc == nil {
		return nil, fmt.Errorf("%w: nil document", ErrConfig)
	}
	svc, err := cfg.validate(client)
	if err != nil {
		return nil, err
	}
	vis := call.Internal
	if cfg.Expose {
		vis = call.External
	}
	paths := doc.root["paths"].(map[string]any)
	var regs []call.Registration
	where := map[string]string{}
	for _, p := range sortedKeys(paths) {
		loc := pointerJoin("/paths", p)
		item, itemLoc, err := derefObject(doc.root, paths[p], loc, doc.lim.MaxRefDepth)
		if err != nil {
			return nil, err
		}
		for _, m := range methods {
			raw, ok := item[m]
			if !ok {
				continue
			}
			opLoc := pointerJoin(itemLoc, m)
			op, ok := raw.(map[string]any)
			if !ok {
				return nil, parseErr(opLoc, "operation is not an object", nil)
			}
			reg, err := doc.operation(svc, p, m, item, itemLoc, op, opLoc, vis)
			if err != nil {
				return nil, err
			}
			if prev, dup := where[reg.Spec.Name]; dup {
				return nil, parseErr(opLoc, fmt.Sprintf("operation name %q is also the name of %s", reg.Spec.Name, prev), nil)
			}
			where[reg.Spec.Name] = opLoc
			regs = append(regs, reg)
		}
	}
	sort.Slice(regs, func(i, j int) bool { return regs[i].Spec.Name < regs[j].Spec.Name })
	return regs, nil
}

// operationName returns the operationId, or <method>_<non-template segments>.
func operationName(path, method string, op map[string]any) string {
	if id, ok := op["operationId"].(string); ok && id != "" {
		return id
	}
	var segs []string
	for _, s := range strings.Split(path, "/") {
		if s == "" || strings.Contains(s, "{") {
			continue
		}
		segs = append(segs, s)
	}
	if len(segs) == 0 {
		return method + "_root"
	}
	return method + "_" + strings.Join(segs, "_")
}

// param is one parameter of an operation.
type param struct {
	name, in string
	required bool
	desc     string
	schema   any // unresolved; nil for none
	hasSch   bool
	loc      string
}

// locationRank orders parameter locations by precedence when names clash.
var locationRank = map[string]int{"path": 0, "query": 1, "header": 2}

// operation builds the registration of one (path, method).
func (d *Document) operation(svc *service, path, method string, item map[string]any, itemLoc string, op map[string]any, opLoc string, vis call.Visibility) (call.Registration, error) {
	name := svc.ns + "/" + operationName(path, method, op)
	if err := call.ValidateName(name); err != nil {
		return call.Registration{}, parseErr(opLoc, fmt.Sprintf("operation name %q is not a valid registry name", name), err)
	}

	params, err := d.parameters(item, itemLoc, op, opLoc)
	if err != nil {
		return call.Registration{}, err
	}

	// The JSON request body, if any.
	var body any
	hasBody := false
	bodyLoc := pointerJoin(opLoc, "requestBody")
	if rb, ok := op["requestBody"]; ok {
		obj, loc, err := derefObject(d.root, rb, bodyLoc, d.lim.MaxRefDepth)
		if err != nil {
			return call.Registration{}, err
		}
		if sch, sloc, ok := mediaSchema(obj, loc, "application/json"); ok {
			body, hasBody, bodyLoc = sch, true, sloc
		}
	}

	// Parameters by name, the higher-precedence location winning.
	sort.SliceStable(params, func(i, j int) bool { return locationRank[params[i].in] < locationRank[params[j].in] })
	var kept []param
	headerFields := map[string]string{}
	seen := map[string]bool{}
	if hasBody {
		seen["body"] = true
	}
	for _, p := range params {
		if seen[p.name] {
			continue
		}
		seen[p.name] = true
		kept = append(kept, p)
		if p.in == "header" {
			headerFields[p.name] = http.CanonicalHeaderKey(p.name)
		}
	}

	input, err := buildSchema(d.root, d.lim, opLoc, func(b *schemaBuilder) (any, error) {
		props := map[string]any{}
		var required []any
		for _, p := range kept {
			var s any = map[string]any{"type": "string"}
			if p.hasSch {
				r, err := b.schema(p.schema, p.loc)
				if err != nil {
					return nil, err
				}
				s = r
			}
			if sm, ok := s.(map[string]any); ok && p.desc != "" {
				if _, isRef := sm["$ref"]; !isRef {
					if _, has := sm["description"]; !has {
						sm = shallowCopy(sm)
						sm["description"] = p.desc
						s = sm
					}
				}
			}
			props[p.name] = s
			if p.required {
				required = append(required, p.name)
			}
		}
		if hasBody {
			r, err := b.schema(body, bodyLoc)
			if err != nil {
				return nil, err
			}
			props["body"] = r
			required = append(required, "body")
		}
		in := map[string]any{"type": "object"}
		if len(props) > 0 {
			in["properties"] = props
		}
		if len(required) > 0 {
			in["required"] = required
		}
		return in, nil
	})
	if err != nil {
		return call.Registration{}, err
	}

	// The success response: 200, else 201.
	typ := call.Mutation
	if method == "get" {
		typ = call.Query
	}
	var output json.RawMessage = json.RawMessage(`{}`)
	responses, _ := op["responses"].(map[string]any)
	respLoc := pointerJoin(opLoc, "responses")
	for _, code := range []string{"200", "201"} {
		raw, ok := responses[code]
		if !ok {
			continue
		}
		resp, loc, err := derefObject(d.root, raw, pointerJoin(respLoc, code), d.lim.MaxRefDepth)
		if err != nil {
			return call.Registration{}, err
		}
		sseSch, sseLoc, sse := mediaSchema(resp, loc, "text/event-stream")
		if sse {
			typ = call.Subscription
		}
		if sch, sloc, ok := mediaSchema(resp, loc, "application/json"); ok {
			output, err = d.oneSchema(sch, sloc)
		} else if sse {
			output, err = d.oneSchema(sseSch, sseLoc)
		}
		if err != nil {
			return call.Registration{}, err
		}
		break
	}

	// Declared errors: every non-2xx numeric status, plus 429 and 503.
	errSchemas := map[int]json.RawMessage{}
	for _, key := range sortedKeys(responses) {
		status, ok := errorStatus(key)
		if !ok {
			continue
		}
		resp, loc, err := derefObject(d.root, responses[key], pointerJoin(respLoc, key), d.lim.MaxRefDepth)
		if err != nil {
			return call.Registration{}, err
		}
		sch := json.RawMessage(`{}`)
		if s, sloc, ok := mediaSchema(resp, loc, "application/json"); ok {
			if sch, err = d.oneSchema(s, sloc); err != nil {
				return call.Registration{}, err
			}
		}
		errSchemas[status] = sch
	}
	for _, status := range []int{http.StatusTooManyRequests, http.StatusServiceUnavailable} {
		if _, ok := errSchemas[status]; !ok {
			errSchemas[status] = json.RawMessage(`{}`)
		}
	}

	spec := call.NewSpec(name, typ)
	spec.Visibility = vis
	spec.InputSchema = input
	spec.OutputSchema = output
	statuses := make([]int, 0, len(errSchemas))
	for s := range errSchemas {
		statuses = append(statuses, s)
	}
	sort.Ints(statuses)
	for _, s := range statuses {
		status := s
		spec.ErrorSchemas = append(spec.ErrorSchemas, call.ErrorDefinition{
			Code:        call.HTTPStatusCode(status),
			Description: fmt.Sprintf("HTTP %d response", status),
			Schema:      errSchemas[status],
			HTTPStatus:  &status,
		})
	}

	ep := &endpoint{svc: svc, method: strings.ToUpper(method), path: parseTemplate(path), headerFields: headerFields}
	reg := call.Registration{Spec: spec, Provenance: call.ProvenanceFromOpenAPI}
	if typ == call.Subscription {
		reg.Stream = ep.stream
	} else {
		reg.Once = ep.once
	}
	return reg, nil
}

// oneSchema produces a standalone schema from the document schema s at loc.
func (d *Document) oneSchema(s any, loc string) (json.RawMessage, error) {
	return buildSchema(d.root, d.lim, loc, func(b *schemaBuilder) (any, error) { return b.schema(s, loc) })
}

// parameters collects the path-level and operation-level parameters of an
// operation (the latter overriding the former by name and location), keeping
// path, query and header ones.
func (d *Document) parameters(item map[string]any, itemLoc string, op map[string]any, opLoc string) ([]param, error) {
	var out []param
	index := map[[2]string]int{}
	for _, src := range []struct {
		list any
		loc  string
	}{{item["parameters"], pointerJoin(itemLoc, "parameters")}, {op["parameters"], pointerJoin(opLoc, "parameters")}} {
		if src.list == nil {
			continue
		}
		list, ok := src.list.([]any)
		if !ok {
			return nil, parseErr(src.loc, "parameters is not an array", nil)
		}
		for i, raw := range list {
			loc := pointerJoin(src.loc, strconv.Itoa(i))
			obj, oloc, err := derefObject(d.root, raw, loc, d.lim.MaxRefDepth)
			if err != nil {
				return nil, err
			}
			name, _ := obj["name"].(string)
			in, _ := obj["in"].(string)
			if name == "" || in == "" {
				return nil, parseErr(oloc, "parameter without a name or a location (in)", nil)
			}
			p := param{name: name, in: in, loc: pointerJoin(oloc, "schema")}
			p.required, _ = obj["required"].(bool)
			p.desc, _ = obj["description"].(string)
			if s, ok := obj["schema"]; ok {
				p.schema, p.hasSch = s, true
			} else if content, ok := obj["content"].(map[string]any); ok {
				for _, mt := range sortedKeys(content) {
					if media, ok := content[mt].(map[string]any); ok {
						if s, ok := media["schema"]; ok {
							p.schema, p.hasSch = s, true
							p.loc = pointerJoin(pointerJoin(pointerJoin(oloc, "content"), mt), "schema")
							break
						}
					}
				}
			}
			switch in {
			case "path":
				p.required = true
			case "query":
			case "header":
				switch strings.ToLower(name) {
				case "accept", "content-type", "authorization":
					continue
				}
				if !validHeaderName(name) {
					continue
				}
			default: // cookie, and Swagger 2's body and formData
				continue
			}
			key := [2]string{name, in}
			if i, ok := index[key]; ok {
				out[i] = p
				continue
			}
			index[key] = len(out)
			out = append(out, p)
		}
	}
	return out, nil
}

// mediaSchema returns the schema of the content entry of obj whose media type is
// want (parameters such as charset ignored); a media type without a schema gives
// {}. ok is false when there is no such entry.
func mediaSchema(obj map[string]any, loc, want string) (schema any, schemaLoc string, ok bool) {
	content, _ := obj["content"].(map[string]any)
	for _, mt := range sortedKeys(content) {
		base, _, err := mime.ParseMediaType(mt)
		if err != nil {
			base = strings.ToLower(strings.TrimSpace(strings.SplitN(mt, ";", 2)[0]))
		}
		if base != want {
			continue
		}
		mloc := pointerJoin(pointerJoin(loc, "content"), mt)
		media, _ := content[mt].(map[string]any)
		if s, has := media["schema"]; has {
			return s, pointerJoin(mloc, "schema"), true
		}
		return map[string]any{}, mloc, true
	}
	return nil, "", false
}

// errorStatus parses a response key that is a non-2xx status from 100 to 599.
func errorStatus(key string) (int, bool) {
	if len(key) != 3 {
		return 0, false
	}
	n, err := strconv.Atoi(key)
	if err != nil || n < 100 || n > 599 || (n >= 200 && n <= 299) {
		return 0, false
	}
	return n, true
}

// FromJSONSchema builds the forwarding registration of one HTTP endpoint whose
// spec the caller provides: spec is kept as given (name, type, visibility,
// schemas, declared errors, access), and calls are forwarded to method
// pathTemplate (such as "/users/{id}") under cfg.BaseURL, exactly as [Import]'s
// operations are, except that no field is a header parameter. The provenance is
// from_jsonschema. An empty cfg.Namespace is taken from the spec (its Namespace,
// else the first segment of its name); the namespace is also the capability key of
// the credential. HTTP errors reach the caller with their HTTP_<n> code only when
// spec.ErrorSchemas declares it (the registry turns undeclared codes into
// INTERNAL). cfg.Expose is not used. Errors wrap [ErrConfig].
func FromJSONSchema(spec call.OperationSpec, cfg ServiceConfig, method, pathTemplate string, client Doer) (call.Registration, error) {
	if err := call.ValidateName(spec.Name); err != nil {
		return call.Registration{}, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if cfg.Namespace == "" {
		cfg.Namespace = spec.Namespace
		if cfg.Namespace == "" {
			cfg.Namespace, _, _ = strings.Cut(spec.Name, "/")
		}
	}
	svc, err := cfg.validate(client)
	if err != nil {
		return call.Registration{}, err
	}
	m := strings.ToLower(method)
	valid := false
	for _, known := range methods {
		valid = valid || m == known
	}
	if !valid {
		return call.Registration{}, fmt.Errorf("%w: unsupported HTTP method %q", ErrConfig, method)
	}
	ep := &endpoint{svc: svc, method: strings.ToUpper(m), path: parseTemplate(pathTemplate)}
	reg := call.Registration{Spec: spec, Provenance: call.ProvenanceFromJSONSchema}
	switch spec.Type {
	case call.Query, call.Mutation:
		reg.Once = ep.once
	case call.Subscription:
		reg.Stream = ep.stream
	default:
		return call.Registration{}, fmt.Errorf("%w: unknown operation type %v", ErrConfig, spec.Type)
	}
	return reg, nil
}
