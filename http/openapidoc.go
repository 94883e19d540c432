package http

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/alknet/alknet/call"
)

// GatewayAPIVersion is info.version of the OpenAPI document: the semantic version of
// the gateway contract (its five endpoints, their bodies and their error semantics),
// not of the operation set, which is discovered at run time through /search and never
// changes it (ADR-045). Major: an endpoint removed or renamed, a new required request
// field, an incompatible response or changed error semantics; minor: additions;
// patch: wording.
const GatewayAPIVersion = "1.0.0"

// openAPITitle is info.title of the OpenAPI document.
const openAPITitle = "alknet gateway"

// callErrorRef points at the reusable CallError schema.
const callErrorRef = "#/components/schemas/CallError"

// OpenAPIDocument returns the gateway's OpenAPI 3.0.0 description (served at GET
// /openapi.json) as indented JSON.
//
// It describes the five gateway endpoints, never one path per operation: GET /search,
// GET /schema?name=, POST /call, POST /batch and POST /subscribe, with their request
// bodies, their 200 bodies and their protocol error responses (a CallError whose code
// is constrained to the codes that status carries). The only part taken from specs
// (what Registry.List returns) is error fidelity: for every External operation, every
// declared error with an HTTP status from 400 to 599 adds that status to the responses
// of /call, with the error's code and, when it has one, its details schema — unless
// the status is already there: protocol responses win, then the first declaration in
// the order of specs and of their ErrorSchemas. Internal operations contribute
// nothing. A details schema is copied when it is a JSON object, less its top-level
// "$schema", "$id" and "$comment" (the rest should be valid as an OpenAPI 3.0 Schema
// Object; it is not translated); any other non-null schema (true, false) leaves
// details unconstrained.
//
// The output is deterministic: the same specs give the same bytes. The only error is
// a declared error schema that is not valid JSON.
func OpenAPIDocument(specs []call.OperationSpec) ([]byte, error) {
	callResponses := gatewayResponses("/call")
	for _, s := range specs {
		if s.Visibility != call.External {
			continue
		}
		for _, d := range s.ErrorSchemas {
			if d.HTTPStatus == nil || *d.HTTPStatus < 400 || *d.HTTPStatus > 599 {
				continue
			}
			key := strconv.Itoa(*d.HTTPStatus)
			if _, taken := callResponses[key]; taken {
				continue
			}
			details, err := openAPIDetailsSchema(d.Schema)
			if err != nil {
				return nil, fmt.Errorf("http: openapi: operation %q, error %q: %w", s.Name, d.Code, err)
			}
			desc := d.Description
			if desc == "" {
				desc = "operation error " + d.Code
			}
			callResponses[key] = errorResponse(desc, details, d.Code)
		}
	}

	doc := oaDocument{
		OpenAPI: "3.0.0",
		Info: oaInfo{
			Title:   openAPITitle,
			Version: GatewayAPIVersion,
			Description: "A fixed gateway onto an operation registry: discover operations with " +
				"/search and /schema, invoke them with /call, /batch and /subscribe. " +
				"Operations are not paths; they are named in the request body.",
		},
		Paths: oaPaths{
			Search: oaPathItem{Get: &oaOperation{
				OperationID: "search",
				Summary:     "List the operations the caller may call",
				Description: "Runs services/list for the caller: the External operations whose " +
					"access rule the caller passes.",
				Responses: withOK(gatewayResponses("/search"), "The operations.", searchOutputSchema()),
			}},
			Schema: oaPathItem{Get: &oaOperation{
				OperationID: "schema",
				Summary:     "Describe one operation",
				Description: "Runs services/schema: the full description of one External " +
					"operation. Unknown and Internal operations are NOT_FOUND.",
				Parameters: []oaParameter{{
					Name:        "name",
					In:          "query",
					Description: "The operation name, such as notes/get.",
					Required:    true,
					Schema:      &oaSchema{Type: "string"},
				}},
				Responses: withOK(gatewayResponses("/schema"), "The operation's description.", schemaOutputSchema()),
			}},
			Call: oaPathItem{Post: &oaOperation{
				OperationID: "call",
				Summary:     "Call a Query or Mutation",
				RequestBody: &oaRequestBody{
					Description: "The operation to call and its input.",
					Required:    true,
					Content:     jsonContent(callRequestSchema()),
				},
				Responses: withOK(callResponses, "The call succeeded.", envelopeSchema(&oaSchema{
					Description: "The operation's output: any JSON value.",
				})),
			}},
			Batch: oaPathItem{Post: &oaOperation{
				OperationID: "batch",
				Summary:     "Call several Queries or Mutations, one after the other",
				Description: "The calls run in order, without transactional semantics. The " +
					"answer is 200 whenever the body could be read: each call's outcome is an " +
					"item of results, in request order.",
				RequestBody: &oaRequestBody{
					Description: "The calls, in order.",
					Required:    true,
					Content:     jsonContent(&oaSchema{Type: "array", Items: callRequestSchema()}),
				},
				Responses: withOK(gatewayResponses("/batch"), "One result per call, in request order.", batchOutputSchema()),
			}},
			Subscribe: oaPathItem{Post: &oaOperation{
				OperationID: "subscribe",
				Summary:     "Subscribe to a Subscription, as Server-Sent Events",
				RequestBody: &oaRequestBody{
					Description: "The operation to subscribe to and its input.",
					Required:    true,
					Content:     jsonContent(callRequestSchema()),
				},
				Responses: subscribeResponses(),
			}},
		},
		Components: oaComponents{
			Schemas: map[string]*oaSchema{"CallError": callErrorSchema()},
			SecuritySchemes: map[string]oaSecurityScheme{"bearerAuth": {
				Type:   "http",
				Scheme: "bearer",
				Description: "An Alknet token. Optional: without one (or with one that does not " +
					"resolve) the caller has no identity and reaches only unrestricted operations.",
			}},
		},
		Security: []map[string][]string{{"bearerAuth": {}}, {}},
	}

	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return nil, fmt.Errorf("http: openapi: %w", err)
	}
	return buf.Bytes(), nil
}

// openAPIDetailsSchema returns the details schema of a declared error: nil for none
// (nil, JSON null, or a non-object schema such as true), the object otherwise without
// its top-level "$schema", "$id" and "$comment" (JSON Schema annotations an OpenAPI
// 3.0 Schema Object does not allow), or an error when raw is not JSON.
func openAPIDetailsSchema(raw json.RawMessage) (*oaSchema, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return nil, nil
	}
	if !json.Valid(raw) {
		return nil, errors.New("error schema is not valid JSON")
	}
	if raw[0] != '{' {
		return nil, nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, fmt.Errorf("error schema: %w", err)
	}
	for _, k := range []string{"$schema", "$id", "$comment"} {
		delete(obj, k)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(obj); err != nil { // sorted keys: deterministic
		return nil, fmt.Errorf("error schema: %w", err)
	}
	return &oaSchema{raw: bytes.TrimSpace(buf.Bytes())}, nil
}

// gatewayError is one protocol error response of an endpoint.
type gatewayError struct {
	status string
	desc   string
	codes  []string
}

// gatewayResponses returns the protocol error responses of an endpoint.
func gatewayResponses(path string) map[string]*oaResponse {
	var errs []gatewayError
	common := func(notFound bool) {
		errs = append(errs,
			gatewayError{"401", "no identity: the Bearer token is missing or did not resolve. " +
				"The body code is FORBIDDEN: a denial answers 401 when the caller has no identity.",
				[]string{call.CodeForbidden}},
			gatewayError{"403", "the caller's identity lacks a scope or resource the operation requires",
				[]string{call.CodeForbidden}},
			gatewayError{"422", "the input failed the operation's input schema",
				[]string{call.CodeInvalidInput}},
			gatewayError{"500", "the operation failed (a handler error or panic, or an operation-level " +
				"error code without an HTTP status)", []string{call.CodeInternal}},
			gatewayError{"504", "the call did not finish before its deadline; retryable",
				[]string{call.CodeTimeout}},
		)
		if notFound {
			errs = append(errs, gatewayError{"404", "no such operation, or an Internal one",
				[]string{call.CodeNotFound}})
		}
	}
	tooLarge := gatewayError{"413", "the request body is too large", []string{HTTPCodePrefix + "413"}}
	switch path {
	case "/search":
		common(false)
		errs = append(errs,
			gatewayError{"400", "the request is malformed", []string{call.CodeInvalidInput}},
			gatewayError{"413", "the request is too large", []string{HTTPCodePrefix + "413"}})
	case "/schema":
		common(true)
		errs = append(errs, gatewayError{"400", "the query parameter name is missing",
			[]string{call.CodeInvalidInput}})
	case "/call":
		common(true)
		errs = append(errs, gatewayError{"400", "the body is not a JSON object {operation, input} " +
			"(INVALID_INPUT), or the operation is a Subscription, which /subscribe serves " +
			"(INVALID_OPERATION_TYPE)", []string{call.CodeInvalidInput, call.CodeInvalidOperationType}},
			tooLarge)
	case "/batch":
		common(false)
		errs = append(errs, gatewayError{"400", "the body is not a JSON array of {operation, input} objects",
			[]string{call.CodeInvalidInput}},
			gatewayError{"413", "the request body is too large, or holds too many calls",
				[]string{HTTPCodePrefix + "413"}})
	case "/subscribe":
		common(true)
		errs = append(errs, gatewayError{"400", "the body is not a JSON object {operation, input}",
			[]string{call.CodeInvalidInput}},
			tooLarge,
			gatewayError{"429", "too many concurrent subscriptions on this connection; retryable, " +
				"with a Retry-After header", []string{HTTPCodePrefix + "429"}})
	}
	responses := make(map[string]*oaResponse, len(errs)+1)
	for _, e := range errs {
		responses[e.status] = errorResponse(e.desc, nil, e.codes...)
	}
	return responses
}

// errorResponse returns a JSON CallError response whose code is one of codes, with
// details constrained by details when it is not nil.
func errorResponse(desc string, details *oaSchema, codes ...string) *oaResponse {
	props := map[string]*oaSchema{"code": {Type: "string", Enum: codes}}
	if details != nil {
		props["details"] = details
	}
	return &oaResponse{
		Description: desc,
		Content: jsonContent(&oaSchema{AllOf: []*oaSchema{
			{Ref: callErrorRef},
			{Type: "object", Properties: props},
		}}),
	}
}

// withOK adds the 200 response, a JSON body of schema, to responses.
func withOK(responses map[string]*oaResponse, desc string, schema *oaSchema) map[string]*oaResponse {
	responses["200"] = &oaResponse{Description: desc, Content: jsonContent(schema)}
	return responses
}

// subscribeResponses returns the responses of /subscribe: the event stream and the
// protocol errors.
func subscribeResponses() map[string]*oaResponse {
	r := gatewayResponses("/subscribe")
	r["200"] = &oaResponse{
		Description: "The subscription as Server-Sent Events. Each output is one event with a " +
			"single `data:` line holding its JSON. A failure once the stream has started ends it " +
			"with one `event: error` whose `data:` line is the CallError JSON; the natural end of " +
			"the subscription closes the stream. Lines starting with `:` are keep-alive comments.",
		Content: map[string]oaMediaType{"text/event-stream": {Schema: &oaSchema{
			Type:        "string",
			Description: "An event stream: `data: <output JSON>` events, and at most one final `event: error` with `data: <CallError JSON>`.",
		}}},
	}
	return r
}

// jsonContent returns an application/json content map of schema.
func jsonContent(schema *oaSchema) map[string]oaMediaType {
	return map[string]oaMediaType{"application/json": {Schema: schema}}
}

// callRequestSchema is the body of /call and /subscribe, and an item of /batch.
func callRequestSchema() *oaSchema {
	return &oaSchema{
		Type: "object",
		Properties: map[string]*oaSchema{
			"operation": {Type: "string", Description: "The operation name, such as notes/get; a leading / is ignored."},
			"input":     {Description: "The operation's input: any JSON value; null when absent."},
		},
		Required: []string{"operation"},
	}
}

// callErrorSchema is the reusable CallError schema.
func callErrorSchema() *oaSchema {
	return &oaSchema{
		Type:        "object",
		Description: "The error of a call. Clients branch on code; message is for people.",
		Properties: map[string]*oaSchema{
			"code":      {Type: "string"},
			"message":   {Type: "string"},
			"retryable": {Type: "boolean"},
			"details":   {Description: "Error-specific details: any JSON value; absent when there are none."},
		},
		Required: []string{"code", "message", "retryable"},
	}
}

// envelopeSchema is the 200 body of /call, /search and /schema: the request id, "ok"
// and the output.
func envelopeSchema(output *oaSchema) *oaSchema {
	return &oaSchema{
		Type: "object",
		Properties: map[string]*oaSchema{
			"request_id": {Type: "string", Description: "The call's id (a UUIDv4)."},
			"result":     {Type: "string", Enum: []string{"ok"}},
			"output":     output,
		},
		Required: []string{"request_id", "result", "output"},
	}
}

// opTypeSchema is the kind of an operation.
func opTypeSchema() *oaSchema {
	return &oaSchema{Type: "string", Enum: []string{"query", "mutation", "subscription"}}
}

// searchOutputSchema is the 200 body of /search.
func searchOutputSchema() *oaSchema {
	return envelopeSchema(&oaSchema{
		Type: "object",
		Properties: map[string]*oaSchema{
			"operations": {
				Type: "array",
				Items: &oaSchema{
					Type: "object",
					Properties: map[string]*oaSchema{
						"name":      {Type: "string"},
						"namespace": {Type: "string"},
						"op_type":   opTypeSchema(),
					},
					Required: []string{"name", "namespace", "op_type"},
				},
			},
		},
		Required: []string{"operations"},
	})
}

// schemaOutputSchema is the 200 body of /schema.
func schemaOutputSchema() *oaSchema {
	nullableString := func(desc string) *oaSchema {
		return &oaSchema{Type: "string", Nullable: true, Description: desc}
	}
	stringArray := func(nullable bool, desc string) *oaSchema {
		return &oaSchema{Type: "array", Items: &oaSchema{Type: "string"}, Nullable: nullable, Description: desc}
	}
	return envelopeSchema(&oaSchema{
		Type: "object",
		Properties: map[string]*oaSchema{
			"name":          {Type: "string"},
			"namespace":     {Type: "string"},
			"op_type":       opTypeSchema(),
			"visibility":    {Type: "string", Enum: []string{"external", "internal"}},
			"input_schema":  {Description: "The JSON Schema of the input; null when any input is accepted."},
			"output_schema": {Description: "The JSON Schema of the output; null when undocumented."},
			"error_schemas": {
				Type:        "array",
				Description: "The operation-level error codes the operation declares.",
				Items: &oaSchema{
					Type: "object",
					Properties: map[string]*oaSchema{
						"code":        {Type: "string"},
						"description": {Type: "string"},
						"schema":      {Description: "The JSON Schema of the error's details; null for none."},
						"http_status": {Type: "integer", Nullable: true},
					},
					Required: []string{"code", "description", "schema", "http_status"},
				},
			},
			"access_control": {
				Type: "object",
				Properties: map[string]*oaSchema{
					"required_scopes":     stringArray(false, "Scopes that must all be held."),
					"required_scopes_any": stringArray(true, "When not null, at least one must be held."),
					"resource_type":       nullableString(""),
					"resource_action":     nullableString(""),
				},
				Required: []string{"required_scopes", "required_scopes_any", "resource_type", "resource_action"},
			},
			"resource_id_path": nullableString("Where the input holds the resource id for the ownership check, such as $.id."),
		},
		Required: []string{"name", "namespace", "op_type", "visibility", "input_schema",
			"output_schema", "error_schemas", "access_control"},
	})
}

// batchOutputSchema is the 200 body of /batch.
func batchOutputSchema() *oaSchema {
	return &oaSchema{
		Type: "object",
		Properties: map[string]*oaSchema{
			"results": {
				Type: "array",
				Items: &oaSchema{
					Type: "object",
					Properties: map[string]*oaSchema{
						"request_id": {Type: "string", Nullable: true,
							Description: "The call's id; null when the item was refused before dispatch " +
								"(malformed, unknown or Internal operation)."},
						"result": {Type: "string", Enum: []string{"ok", "error"}},
						"output": {Description: "The output, when result is ok: any JSON value."},
						"error":  {Ref: callErrorRef},
					},
					Required: []string{"request_id", "result"},
				},
			},
		},
		Required: []string{"results"},
	}
}

// The document's types. Maps are marshalled with sorted keys and struct fields in
// declaration order, so the output is deterministic.

// oaDocument is the OpenAPI Object.
type oaDocument struct {
	OpenAPI    string                `json:"openapi"`
	Info       oaInfo                `json:"info"`
	Paths      oaPaths               `json:"paths"`
	Components oaComponents          `json:"components"`
	Security   []map[string][]string `json:"security"`
}

// oaInfo is the Info Object.
type oaInfo struct {
	Title       string `json:"title"`
	Description string `json:"description,omitempty"`
	Version     string `json:"version"`
}

// oaPaths is the Paths Object: the five gateway endpoints.
type oaPaths struct {
	Search    oaPathItem `json:"/search"`
	Schema    oaPathItem `json:"/schema"`
	Call      oaPathItem `json:"/call"`
	Batch     oaPathItem `json:"/batch"`
	Subscribe oaPathItem `json:"/subscribe"`
}

// oaPathItem is a Path Item Object with its one operation.
type oaPathItem struct {
	Get  *oaOperation `json:"get,omitempty"`
	Post *oaOperation `json:"post,omitempty"`
}

// oaOperation is an Operation Object.
type oaOperation struct {
	OperationID string                 `json:"operationId"`
	Summary     string                 `json:"summary,omitempty"`
	Description string                 `json:"description,omitempty"`
	Parameters  []oaParameter          `json:"parameters,omitempty"`
	RequestBody *oaRequestBody         `json:"requestBody,omitempty"`
	Responses   map[string]*oaResponse `json:"responses"`
}

// oaParameter is a Parameter Object.
type oaParameter struct {
	Name        string    `json:"name"`
	In          string    `json:"in"`
	Description string    `json:"description,omitempty"`
	Required    bool      `json:"required"`
	Schema      *oaSchema `json:"schema"`
}

// oaRequestBody is a Request Body Object.
type oaRequestBody struct {
	Description string                 `json:"description,omitempty"`
	Required    bool                   `json:"required"`
	Content     map[string]oaMediaType `json:"content"`
}

// oaMediaType is a Media Type Object.
type oaMediaType struct {
	Schema *oaSchema `json:"schema"`
}

// oaResponse is a Response Object.
type oaResponse struct {
	Description string                 `json:"description"`
	Content     map[string]oaMediaType `json:"content,omitempty"`
}

// oaComponents is the Components Object.
type oaComponents struct {
	Schemas         map[string]*oaSchema        `json:"schemas"`
	SecuritySchemes map[string]oaSecurityScheme `json:"securitySchemes"`
}

// oaSecurityScheme is a Security Scheme Object.
type oaSecurityScheme struct {
	Type        string `json:"type"`
	Scheme      string `json:"scheme"`
	Description string `json:"description,omitempty"`
}

// oaSchema is the subset of the Schema Object the document uses; raw, when set, is
// written verbatim instead (a declared error's details schema).
type oaSchema struct {
	Ref         string               `json:"$ref,omitempty"`
	Type        string               `json:"type,omitempty"`
	Description string               `json:"description,omitempty"`
	Nullable    bool                 `json:"nullable,omitempty"`
	Enum        []string             `json:"enum,omitempty"`
	Properties  map[string]*oaSchema `json:"properties,omitempty"`
	Required    []string             `json:"required,omitempty"`
	Items       *oaSchema            `json:"items,omitempty"`
	AllOf       []*oaSchema          `json:"allOf,omitempty"`
	raw         json.RawMessage
}

// MarshalJSON writes raw when set, the fields otherwise.
func (s *oaSchema) MarshalJSON() ([]byte, error) {
	if s.raw != nil {
		return s.raw, nil
	}
	type plain oaSchema
	return json.Marshal((*plain)(s))
}
