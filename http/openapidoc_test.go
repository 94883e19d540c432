package http

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/alknet/alknet/call"
)

// update rewrites the golden files of this package's tests instead of comparing.
var update = flag.Bool("update", false, "rewrite testdata golden files")

// openAPIGoldenPath is the golden document of openAPIGoldenSpecs.
var openAPIGoldenPath = filepath.Join("testdata", "openapi_golden.json")

// openAPIStatus returns a pointer to an HTTP status, for ErrorDefinition.HTTPStatus.
func openAPIStatus(n int) *int { return &n }

// openAPIGoldenSpecs is a small fixed spec list exercising every projection rule:
// External and Internal operations, a declared status that protocol entries win over
// (404), projected ones (429, 409), a duplicate (first wins), an out-of-range status
// (302), one without status, and a details schema with JSON Schema annotations.
func openAPIGoldenSpecs() []call.OperationSpec {
	notes := call.NewSpec("notes/get", call.Query)
	notes.InputSchema = json.RawMessage(`{"type":"object","properties":{"id":{"type":"string"}},"required":["id"]}`)
	notes.ErrorSchemas = []call.ErrorDefinition{
		{Code: "HTTP_404", Description: "upstream: no such note", HTTPStatus: openAPIStatus(404)},
		{Code: "HTTP_429", Description: "upstream rate limit",
			Schema:     json.RawMessage(`{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"object","properties":{"retry_after":{"type":"integer","minimum":0}}}`),
			HTTPStatus: openAPIStatus(429)},
		{Code: "NOTE_LOCKED", Description: "the note is locked"},
	}
	files := call.NewSpec("files/write", call.Mutation)
	files.Access = call.AccessControl{RequiredScopes: []string{"files:write"}}
	files.ErrorSchemas = []call.ErrorDefinition{
		{Code: "HTTP_409", HTTPStatus: openAPIStatus(409)},
		{Code: "HTTP_429", Description: "a second 429: the first declaration wins", HTTPStatus: openAPIStatus(429)},
		{Code: "HTTP_302", Description: "not an error status", HTTPStatus: openAPIStatus(302)},
	}
	secret := call.NewSpec("secret/brew", call.Query)
	secret.Visibility = call.Internal
	secret.ErrorSchemas = []call.ErrorDefinition{
		{Code: "HTTP_418", Description: "internal teapot", HTTPStatus: openAPIStatus(418)},
	}
	watch := call.NewSpec("metrics/watch", call.Subscription)
	return []call.OperationSpec{notes, files, secret, watch}
}

// validateOpenAPI loads b with kin-openapi and validates it as OpenAPI 3.0.
func validateOpenAPI(t *testing.T, b []byte) *openapi3.T {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(b)
	if err != nil {
		t.Fatalf("load: %v\n%s", err, b)
	}
	if err := doc.Validate(loader.Context); err != nil {
		t.Fatalf("validate: %v\n%s", err, b)
	}
	return doc
}

// mustOpenAPI returns the document of specs or fails.
func mustOpenAPI(t *testing.T, specs []call.OperationSpec) []byte {
	t.Helper()
	b, err := OpenAPIDocument(specs)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestOpenAPIDocumentGolden(t *testing.T) {
	got := mustOpenAPI(t, openAPIGoldenSpecs())
	if *update {
		if err := os.WriteFile(openAPIGoldenPath, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(openAPIGoldenPath)
	if err != nil {
		t.Fatalf("%v (run go test -run TestOpenAPIDocumentGolden -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("document differs from %s (rerun with -update if intended):\n%s", openAPIGoldenPath, got)
	}
	validateOpenAPI(t, want)
}

func TestOpenAPIDocumentValidates(t *testing.T) {
	withErrors := []call.OperationSpec{call.NewSpec("a/one", call.Query), call.NewSpec("b/two", call.Mutation)}
	withErrors[0].ErrorSchemas = []call.ErrorDefinition{
		{Code: "HTTP_404", Description: "not there", HTTPStatus: openAPIStatus(404),
			Schema: json.RawMessage(`{"type":"object","properties":{"path":{"type":"string"}}}`)},
		{Code: "HTTP_429", Description: "slow down", HTTPStatus: openAPIStatus(429),
			Schema: json.RawMessage(`{"type":"object","properties":{"retry_after":{"oneOf":[{"type":"integer"},{"type":"string"}]}}}`)},
	}
	withErrors[1].ErrorSchemas = []call.ErrorDefinition{
		{Code: "HTTP_503", HTTPStatus: openAPIStatus(503), Schema: json.RawMessage(`true`)},
		{Code: "HTTP_502", HTTPStatus: openAPIStatus(502), Schema: json.RawMessage(`null`)},
	}
	for name, specs := range map[string][]call.OperationSpec{
		"nil":         nil,
		"empty":       {},
		"golden":      openAPIGoldenSpecs(),
		"404 and 429": withErrors,
	} {
		t.Run(name, func(t *testing.T) {
			doc := validateOpenAPI(t, mustOpenAPI(t, specs))
			if doc.OpenAPI != "3.0.0" {
				t.Errorf("openapi %q", doc.OpenAPI)
			}
			if GatewayAPIVersion != "1.0.0" || doc.Info.Version != GatewayAPIVersion || doc.Info.Title != "alknet gateway" {
				t.Errorf("info %+v", doc.Info)
			}
			if doc.Paths.Len() != 5 {
				t.Errorf("%d paths: %v", doc.Paths.Len(), doc.Paths.Keys())
			}
		})
	}
}

func TestOpenAPIDocumentEndpoints(t *testing.T) {
	doc := validateOpenAPI(t, mustOpenAPI(t, openAPIGoldenSpecs()))
	want := map[string]struct{ method, opID string }{
		"/search":    {"GET", "search"},
		"/schema":    {"GET", "schema"},
		"/call":      {"POST", "call"},
		"/batch":     {"POST", "batch"},
		"/subscribe": {"POST", "subscribe"},
	}
	keys := doc.Paths.Keys()
	slices.Sort(keys)
	if !slices.Equal(keys, []string{"/batch", "/call", "/schema", "/search", "/subscribe"}) {
		t.Fatalf("paths %v", keys)
	}
	for p, w := range want {
		ops := doc.Paths.Value(p).Operations()
		if len(ops) != 1 || ops[w.method] == nil {
			t.Fatalf("%s: operations %v, want only %s", p, ops, w.method)
		}
		op := ops[w.method]
		if op.OperationID != w.opID {
			t.Errorf("%s: operationId %q, want %q", p, op.OperationID, w.opID)
		}
		if w.method == "POST" {
			if op.RequestBody == nil || !op.RequestBody.Value.Required {
				t.Errorf("%s: request body missing or not required", p)
			}
			s := op.RequestBody.Value.Content.Get("application/json").Schema.Value
			if p == "/batch" {
				if !s.Type.Is("array") {
					t.Fatalf("/batch body type %v", s.Type)
				}
				s = s.Items.Value
			}
			if !s.Type.Is("object") || !slices.Equal(s.Required, []string{"operation"}) ||
				!s.Properties["operation"].Value.Type.Is("string") || s.Properties["input"] == nil ||
				s.Properties["input"].Value.Type != nil {
				t.Errorf("%s: request schema %+v", p, s)
			}
		} else if op.RequestBody != nil {
			t.Errorf("%s: GET with a request body", p)
		}
	}

	params := doc.Paths.Value("/schema").Get.Parameters
	if len(params) != 1 {
		t.Fatalf("/schema parameters: %d", len(params))
	}
	if p := params[0].Value; p.Name != "name" || p.In != "query" || !p.Required || !p.Schema.Value.Type.Is("string") {
		t.Errorf("/schema parameter %+v", p)
	}

	sub := doc.Paths.Value("/subscribe").Post.Responses.Value("200").Value
	if len(sub.Content) != 1 || sub.Content.Get("text/event-stream") == nil {
		t.Errorf("/subscribe 200 content %v", sub.Content)
	} else if s := sub.Content.Get("text/event-stream").Schema.Value; !s.Type.Is("string") ||
		!strings.Contains(s.Description, "data:") || !strings.Contains(s.Description, "event: error") {
		t.Errorf("/subscribe 200 schema %+v", s)
	}

	call200 := doc.Paths.Value("/call").Post.Responses.Value("200").Value.Content.Get("application/json").Schema.Value
	if e := call200.Properties["result"].Value.Enum; len(e) != 1 || e[0] != "ok" {
		t.Errorf("/call 200 result enum %v", e)
	}
	batch200 := doc.Paths.Value("/batch").Post.Responses.Value("200").Value.Content.Get("application/json").Schema.Value
	item := batch200.Properties["results"].Value.Items.Value
	if !item.Properties["request_id"].Value.Nullable || item.Properties["error"].Ref != callErrorRef {
		t.Errorf("/batch item %+v", item)
	}
	search200 := doc.Paths.Value("/search").Get.Responses.Value("200").Value.Content.Get("application/json").Schema.Value
	ops := search200.Properties["output"].Value.Properties["operations"].Value.Items.Value
	for _, k := range []string{"name", "namespace", "op_type"} {
		if ops.Properties[k] == nil {
			t.Errorf("/search item lacks %s", k)
		}
	}

	if doc.Components.Schemas["CallError"] == nil {
		t.Fatal("no components.schemas.CallError")
	}
	if ce := doc.Components.Schemas["CallError"].Value; !slices.Equal(ce.Required, []string{"code", "message", "retryable"}) {
		t.Errorf("CallError required %v", ce.Required)
	}
	bearer := doc.Components.SecuritySchemes["bearerAuth"]
	if bearer == nil || bearer.Value.Type != "http" || bearer.Value.Scheme != "bearer" {
		t.Errorf("bearerAuth %+v", bearer)
	}
	if len(doc.Security) != 2 || doc.Security[0]["bearerAuth"] == nil || len(doc.Security[1]) != 0 {
		t.Errorf("security %v", doc.Security)
	}
}

// openAPIErrorCodes returns the code enum of a response: the allOf member constraining code.
func openAPIErrorCodes(t *testing.T, r *openapi3.ResponseRef) []string {
	t.Helper()
	s := r.Value.Content.Get("application/json").Schema.Value
	if len(s.AllOf) != 2 || s.AllOf[0].Ref != callErrorRef {
		t.Fatalf("error schema is not allOf [CallError, code]: %+v", s)
	}
	var codes []string
	for _, v := range s.AllOf[1].Value.Properties["code"].Value.Enum {
		codes = append(codes, v.(string))
	}
	return codes
}

func TestOpenAPIDocumentProtocolErrors(t *testing.T) {
	doc := validateOpenAPI(t, mustOpenAPI(t, nil))
	want := map[string]map[string][]string{
		"/call": {
			"400": {"INVALID_INPUT", "INVALID_OPERATION_TYPE"}, "401": {"FORBIDDEN"}, "403": {"FORBIDDEN"},
			"404": {"NOT_FOUND"}, "413": {"HTTP_413"}, "422": {"INVALID_INPUT"}, "500": {"INTERNAL"}, "504": {"TIMEOUT"},
		},
		"/subscribe": {
			"400": {"INVALID_INPUT"}, "401": {"FORBIDDEN"}, "403": {"FORBIDDEN"}, "404": {"NOT_FOUND"},
			"413": {"HTTP_413"}, "422": {"INVALID_INPUT"}, "429": {"HTTP_429"}, "500": {"INTERNAL"}, "504": {"TIMEOUT"},
		},
		"/schema": {
			"400": {"INVALID_INPUT"}, "401": {"FORBIDDEN"}, "403": {"FORBIDDEN"}, "404": {"NOT_FOUND"},
			"422": {"INVALID_INPUT"}, "500": {"INTERNAL"}, "504": {"TIMEOUT"},
		},
		"/search": {
			"400": {"INVALID_INPUT"}, "401": {"FORBIDDEN"}, "403": {"FORBIDDEN"},
			"413": {"HTTP_413"}, "422": {"INVALID_INPUT"}, "500": {"INTERNAL"}, "504": {"TIMEOUT"},
		},
		"/batch": {
			"400": {"INVALID_INPUT"}, "401": {"FORBIDDEN"}, "403": {"FORBIDDEN"},
			"413": {"HTTP_413"}, "422": {"INVALID_INPUT"}, "500": {"INTERNAL"}, "504": {"TIMEOUT"},
		},
	}
	for p, statuses := range want {
		for _, op := range doc.Paths.Value(p).Operations() {
			keys := op.Responses.Keys()
			slices.Sort(keys)
			wantKeys := []string{"200"}
			for s := range statuses {
				wantKeys = append(wantKeys, s)
			}
			slices.Sort(wantKeys)
			if !slices.Equal(keys, wantKeys) {
				t.Errorf("%s: statuses %v, want %v", p, keys, wantKeys)
			}
			for s, codes := range statuses {
				r := op.Responses.Value(s)
				if r == nil {
					continue
				}
				if got := openAPIErrorCodes(t, r); !slices.Equal(got, codes) {
					t.Errorf("%s %s: codes %v, want %v", p, s, got, codes)
				}
			}
			if d := *op.Responses.Value("401").Value.Description; !strings.HasPrefix(d, "no identity: the Bearer token is missing or did not resolve") {
				t.Errorf("%s 401 description %q", p, d)
			}
		}
	}
}

func TestOpenAPIDocumentErrorFidelity(t *testing.T) {
	doc := validateOpenAPI(t, mustOpenAPI(t, openAPIGoldenSpecs()))
	callResp := doc.Paths.Value("/call").Post.Responses

	// An External op's declared 429 appears under /call, with its details schema.
	r429 := callResp.Value("429")
	if r429 == nil {
		t.Fatal("/call has no 429")
	}
	if got := openAPIErrorCodes(t, r429); !slices.Equal(got, []string{"HTTP_429"}) {
		t.Errorf("429 codes %v", got)
	}
	if d := *r429.Value.Description; d != "upstream rate limit" {
		t.Errorf("429 description %q: the first declaration must win", d)
	}
	details := r429.Value.Content.Get("application/json").Schema.Value.AllOf[1].Value.Properties["details"]
	if details == nil || details.Value.Properties["retry_after"] == nil || !details.Value.Type.Is("object") {
		t.Errorf("429 details schema %+v", details)
	}
	if details != nil && details.Value.Extensions["$schema"] != nil {
		t.Errorf("$schema kept in details")
	}
	// A declaration without a description gets one; without a schema, no details.
	r409 := callResp.Value("409")
	if r409 == nil {
		t.Fatal("/call has no 409")
	}
	if got := openAPIErrorCodes(t, r409); !slices.Equal(got, []string{"HTTP_409"}) {
		t.Errorf("409 codes %v", got)
	}
	if *r409.Value.Description == "" || r409.Value.Content.Get("application/json").Schema.Value.AllOf[1].Value.Properties["details"] != nil {
		t.Errorf("409 %+v", r409.Value)
	}
	// An Internal op's declared 418 is never projected.
	if callResp.Value("418") != nil {
		t.Error("Internal operation's 418 projected")
	}
	// A non-error status is not projected.
	if callResp.Value("302") != nil {
		t.Error("302 projected")
	}
	// The protocol 404 wins over a declared one.
	if got := openAPIErrorCodes(t, callResp.Value("404")); !slices.Equal(got, []string{"NOT_FOUND"}) {
		t.Errorf("404 codes %v: the protocol entry must win", got)
	}
	// Only /call receives declared statuses.
	for _, p := range []string{"/search", "/schema", "/batch", "/subscribe"} {
		for _, op := range doc.Paths.Value(p).Operations() {
			if op.Responses.Value("409") != nil {
				t.Errorf("%s got a declared status", p)
			}
		}
	}
	if got := openAPIErrorCodes(t, doc.Paths.Value("/subscribe").Post.Responses.Value("429")); !slices.Equal(got, []string{"HTTP_429"}) ||
		!strings.Contains(*doc.Paths.Value("/subscribe").Post.Responses.Value("429").Value.Description, "subscriptions") {
		t.Errorf("/subscribe 429 is not the protocol one")
	}
	if n := callResp.Len(); n != 11 { // 200 + 8 protocol + 409 + 429
		t.Errorf("/call has %d responses: %v", n, callResp.Keys())
	}

	// Without the External op, no 429 on /call.
	specs := openAPIGoldenSpecs()
	specs[0].Visibility = call.Internal
	specs[1].Visibility = call.Internal
	doc = validateOpenAPI(t, mustOpenAPI(t, specs))
	if r := doc.Paths.Value("/call").Post.Responses.Value("429"); r != nil {
		t.Error("429 projected from Internal operations")
	}
}

func TestOpenAPIDocumentDeterministic(t *testing.T) {
	specs := openAPIGoldenSpecs()
	first := mustOpenAPI(t, specs)
	for range 50 {
		if b := mustOpenAPI(t, specs); !bytes.Equal(b, first) {
			t.Fatal("two calls differ")
		}
	}
	// The order of specs only matters for a status declared twice: without one, a
	// reordered list gives the same bytes.
	a := openAPIGoldenSpecs()
	a[1].ErrorSchemas = a[1].ErrorSchemas[:1] // drop files/write's duplicate 429
	reversed := slices.Clone(a)
	slices.Reverse(reversed)
	if !bytes.Equal(mustOpenAPI(t, a), mustOpenAPI(t, reversed)) {
		t.Error("output depends on the order of specs without conflicting statuses")
	}
	// With one, the first declaration wins.
	swapped := openAPIGoldenSpecs()
	swapped[0], swapped[1] = swapped[1], swapped[0]
	doc := validateOpenAPI(t, mustOpenAPI(t, swapped))
	if d := *doc.Paths.Value("/call").Post.Responses.Value("429").Value.Description; d != "a second 429: the first declaration wins" {
		t.Errorf("429 description %q", d)
	}
	// The input is not modified.
	if !slices.EqualFunc(specs, openAPIGoldenSpecs(), func(x, y call.OperationSpec) bool {
		bx, _ := json.Marshal(x)
		by, _ := json.Marshal(y)
		return bytes.Equal(bx, by)
	}) {
		t.Error("specs modified")
	}
}

func TestOpenAPIDocumentInvalidErrorSchema(t *testing.T) {
	s := call.NewSpec("a/b", call.Query)
	s.ErrorSchemas = []call.ErrorDefinition{{Code: "HTTP_400", HTTPStatus: openAPIStatus(409), Schema: json.RawMessage(`{"type":`)}}
	if b, err := OpenAPIDocument([]call.OperationSpec{s}); err == nil {
		t.Fatalf("no error for an invalid schema:\n%s", b)
	}
	// Not looked at when it is not projected.
	s.ErrorSchemas[0].HTTPStatus = nil
	if _, err := OpenAPIDocument([]call.OperationSpec{s}); err != nil {
		t.Fatal(err)
	}
}
