package openapi

import (
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/alknet/alknet/call"
)

// namesOf imports doc under "ns" and returns the names.
func namesOf(t *testing.T, doc string) []string {
	t.Helper()
	var names []string
	for _, r := range mustImport(t, mustParse(t, doc), exposed("ns", "http://u.invalid"), noClient{}) {
		names = append(names, r.Spec.Name)
	}
	return names
}

func TestOperationNaming(t *testing.T) {
	got := namesOf(t, `{"info":{},"paths":{
		"/users/{id}/posts":{"get":{},"delete":{"operationId":"removePosts"}},
		"/":{"get":{},"options":{}},
		"/{id}":{"put":{}},
		"/files/{name}.json/raw":{"head":{}},
		"/a//b/":{"patch":{}},
		"/v1/things":{"post":{"operationId":"things/create"}}}}`)
	want := []string{"ns/get_root", "ns/get_users_posts", "ns/head_files_raw", "ns/options_root", "ns/patch_a_b", "ns/put_root", "ns/removePosts", "ns/things/create"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("names %v\nwant  %v", got, want)
	}
	// Upper-case and unknown keys are not operations.
	if got := namesOf(t, `{"info":{},"paths":{"/a":{"GET":{},"trace":{},"summary":"s","parameters":[]}}}`); len(got) != 0 {
		t.Errorf("names %v", got)
	}
}

func TestOperationNameErrors(t *testing.T) {
	for doc, want := range map[string]string{
		`{"info":{},"paths":{"/a":{"get":{"operationId":"list users"}}}}`:                          `"ns/list users" is not a valid registry name`,
		`{"info":{},"paths":{"/a":{"get":{"operationId":"a//b"}}}}`:                                "not a valid registry name",
		`{"info":{},"paths":{"/a":{"get":{"operationId":"x/"}}}}`:                                  "not a valid registry name",
		`{"info":{},"paths":{"/a b":{"get":{}}}}`:                                                  "not a valid registry name",
		`{"info":{},"paths":{"/a":{"get":{"operationId":"x"}},"/b":{"post":{"operationId":"x"}}}}`: `"ns/x" is also the name of /paths/~1a/get`,
		`{"info":{},"paths":{"/a":{"get":{"operationId":"get_b"}},"/b":{"get":{}}}}`:               "also the name of",
		`{"info":{},"paths":{"/a":{"get":"x"}}}`:                                                   "operation is not an object",
		`{"info":{},"paths":{"/a":{"get":{"parameters":{}}}}}`:                                     "parameters is not an array",
		`{"info":{},"paths":{"/a":{"get":{"parameters":[{"in":"query"}]}}}}`:                       "parameter without a name",
	} {
		_, err := Import(mustParse(t, doc), exposed("ns", "http://u.invalid"), noClient{})
		if err == nil {
			t.Errorf("%s: imported", doc)
			continue
		}
		wantParseErr(t, err, want)
	}
	// The name's length is checked too.
	long := strings.Repeat("x", call.MaxNameLen)
	_, err := Import(mustParse(t, `{"info":{},"paths":{"/a":{"get":{"operationId":"`+long+`"}}}}`), exposed("ns", "http://u.invalid"), noClient{})
	wantParseErr(t, err, "not a valid registry name")
	if !errors.Is(err, call.ErrInvalidName) {
		t.Errorf("error %v does not wrap call.ErrInvalidName", err)
	}
}

func TestOperationTypes(t *testing.T) {
	regs := mustImport(t, mustParse(t, `{"info":{},"paths":{
		"/q":{"get":{"operationId":"q"},"post":{"operationId":"m"},"delete":{"operationId":"d"}},
		"/s":{"get":{"operationId":"s","responses":{"200":{"content":{"text/event-stream":{"schema":{"type":"integer"}}}}}},
		      "post":{"operationId":"s201","responses":{"201":{"content":{"text/event-stream; charset=utf-8":{},"application/json":{"schema":{"type":"string"}}}}}}},
		"/n":{"get":{"operationId":"n","responses":{"202":{"content":{"text/event-stream":{}}}}}}}}`), exposed("ns", "http://u.invalid"), noClient{})
	for name, want := range map[string]call.OpType{"ns/q": call.Query, "ns/m": call.Mutation, "ns/d": call.Mutation, "ns/s": call.Subscription, "ns/s201": call.Subscription, "ns/n": call.Query} {
		r := specByName(t, regs, name)
		if r.Spec.Type != want {
			t.Errorf("%s: %v, want %v", name, r.Spec.Type, want)
		}
		if (r.Stream != nil) != (want == call.Subscription) || (r.Once != nil) == (want == call.Subscription) {
			t.Errorf("%s: handlers once=%v stream=%v", name, r.Once != nil, r.Stream != nil)
		}
	}
	// Output: the SSE schema, else JSON before SSE, else {}.
	for name, want := range map[string]string{"ns/s": `{"type":"integer"}`, "ns/s201": `{"type":"string"}`, "ns/q": `{}`, "ns/n": `{}`} {
		if got := string(specByName(t, regs, name).Spec.OutputSchema); got != want {
			t.Errorf("%s output %s, want %s", name, got, want)
		}
	}
	newRegistry(t, regs, nil)
}

func TestInputSchema(t *testing.T) {
	regs := mustImport(t, mustParse(t, `{"info":{},"paths":{
		"/none":{"get":{"operationId":"none"}},
		"/items/{id}":{
			"parameters":[{"name":"id","in":"path","schema":{"type":"integer"}},{"name":"v","in":"query","required":true}],
			"post":{"operationId":"full",
				"parameters":[
					{"name":"v","in":"query","schema":{"type":"boolean"},"description":"override"},
					{"name":"q","in":"query","schema":{"type":"array","items":{"type":"string"}}},
					{"name":"X-Trace","in":"header","required":true},
					{"name":"q","in":"header"},
					{"name":"Accept","in":"header"},
					{"name":"session","in":"cookie"},
					{"name":"body","in":"query"},
					{"name":"c","in":"query","content":{"application/json":{"schema":{"type":"object"}}}}],
				"requestBody":{"content":{"application/json; charset=utf-8":{"schema":{"type":"object"}}}}}},
		"/form":{"post":{"operationId":"form","requestBody":{"content":{"application/x-www-form-urlencoded":{}}}}},
		"/anybody":{"post":{"operationId":"anybody","requestBody":{"content":{"application/json":{}}},"parameters":[{"name":"id","in":"path"}]}}}}`),
		exposed("ns", "http://u.invalid"), noClient{})
	if got := string(specByName(t, regs, "ns/none").Spec.InputSchema); got != `{"type":"object"}` {
		t.Errorf("none: %s", got)
	}
	if got := string(specByName(t, regs, "ns/form").Spec.InputSchema); got != `{"type":"object"}` {
		t.Errorf("form: %s", got)
	}
	want := `{"properties":{` +
		`"X-Trace":{"type":"string"},` +
		`"body":{"type":"object"},` +
		`"c":{"type":"object"},` +
		`"id":{"type":"integer"},` +
		`"q":{"items":{"type":"string"},"type":"array"},` +
		`"v":{"description":"override","type":"boolean"}},` +
		`"required":["id","X-Trace","body"],"type":"object"}`
	if got := string(specByName(t, regs, "ns/full").Spec.InputSchema); got != want {
		t.Errorf("full:\n got %s\nwant %s", got, want)
	}
	if got := string(specByName(t, regs, "ns/anybody").Spec.InputSchema); got != `{"properties":{"body":{},"id":{"type":"string"}},"required":["id","body"],"type":"object"}` {
		t.Errorf("anybody: %s", got)
	}
	newRegistry(t, regs, nil)
}

func TestErrorSchemas(t *testing.T) {
	reg := specByName(t, mustImport(t, mustParse(t, `{"info":{},"paths":{"/a":{"get":{"operationId":"a","responses":{
		"200":{"description":"ok"},"204":{"description":"none"},
		"302":{"description":"moved"},
		"404":{"content":{"application/json":{"schema":{"$ref":"#/components/schemas/E"}}}},
		"429":{"content":{"application/json":{"schema":{"type":"object"}}}},
		"default":{"content":{"application/json":{"schema":{"type":"string"}}}},
		"4XX":{"description":"range"},"600":{},"099":{},"1000":{},"abc":{}}}}},
		"components":{"schemas":{"E":{"type":"object","properties":{"msg":{"type":"string"}}}}}}`),
		exposed("ns", "http://u.invalid"), noClient{}), "ns/a")
	got, _ := json.Marshal(reg.Spec.ErrorSchemas)
	want := `[{"code":"HTTP_302","description":"HTTP 302 response","schema":{},"http_status":302},` +
		`{"code":"HTTP_404","description":"HTTP 404 response","schema":{"properties":{"msg":{"type":"string"}},"type":"object"},"http_status":404},` +
		`{"code":"HTTP_429","description":"HTTP 429 response","schema":{"type":"object"},"http_status":429},` +
		`{"code":"HTTP_503","description":"HTTP 503 response","schema":{},"http_status":503}]`
	if string(got) != want {
		t.Errorf("errors\n got %s\nwant %s", got, want)
	}
	newRegistry(t, []call.Registration{reg}, nil)
}

func TestExpose(t *testing.T) {
	d := mustParse(t, `{"info":{},"paths":{"/a":{"get":{}}}}`)
	for expose, want := range map[bool]call.Visibility{false: call.Internal, true: call.External} {
		regs := mustImport(t, d, ServiceConfig{Namespace: "ns", BaseURL: "http://u.invalid", Expose: expose}, noClient{})
		if regs[0].Spec.Visibility != want || !reflect.DeepEqual(regs[0].Spec.Access, call.AccessControl{}) {
			t.Errorf("expose %v: %+v", expose, regs[0].Spec)
		}
	}
}

func TestConfigValidation(t *testing.T) {
	d := mustParse(t, `{"info":{},"paths":{"/a":{"get":{}}}}`)
	good := ServiceConfig{Namespace: "ns", BaseURL: "https://h.example/api?v=1"}
	if _, err := Import(d, good, noClient{}); err != nil {
		t.Fatal(err)
	}
	for name, mut := range map[string]func(*ServiceConfig){
		"empty namespace":    func(c *ServiceConfig) { c.Namespace = "" },
		"namespace with /":   func(c *ServiceConfig) { c.Namespace = "a/b" },
		"namespace space":    func(c *ServiceConfig) { c.Namespace = "a b" },
		"relative base":      func(c *ServiceConfig) { c.BaseURL = "/api" },
		"ftp base":           func(c *ServiceConfig) { c.BaseURL = "ftp://h/" },
		"no host":            func(c *ServiceConfig) { c.BaseURL = "http:///x" },
		"user info":          func(c *ServiceConfig) { c.BaseURL = "https://u:p@h/" },
		"fragment":           func(c *ServiceConfig) { c.BaseURL = "https://h/#x" },
		"bad url":            func(c *ServiceConfig) { c.BaseURL = "http://h/%zz" },
		"bad auth kind":      func(c *ServiceConfig) { c.Auth = Auth{Kind: 9} },
		"bad auth header":    func(c *ServiceConfig) { c.Auth = Auth{Kind: AuthHeader, Header: "X Key"} },
		"bad default header": func(c *ServiceConfig) { c.DefaultHeaders = http.Header{"X-A": {"a\r\nb"}} },
		"bad default name":   func(c *ServiceConfig) { c.DefaultHeaders = http.Header{"X A": {"a"}} },
	} {
		cfg := good
		mut(&cfg)
		if _, err := Import(d, cfg, noClient{}); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: error %v", name, err)
		}
	}
	if _, err := Import(d, good, nil); !errors.Is(err, ErrConfig) {
		t.Errorf("nil client: %v", err)
	}
	if _, err := Import(nil, good, noClient{}); !errors.Is(err, ErrConfig) {
		t.Errorf("nil document: %v", err)
	}
}

func TestParseAuth(t *testing.T) {
	for s, want := range map[string]Auth{
		"none": {Kind: AuthNone}, "bearer": {Kind: AuthBearer}, "Basic": {Kind: AuthBasic},
		"header:X-API-Key": {Kind: AuthHeader, Header: "X-API-Key"}, "HEADER:api_key": {Kind: AuthHeader, Header: "api_key"},
	} {
		got, err := ParseAuth(s)
		if err != nil || got != want {
			t.Errorf("ParseAuth(%q) = %+v, %v", s, got, err)
		}
		if s == "none" || s == "bearer" || s == "header:X-API-Key" {
			if got.String() != s {
				t.Errorf("%+v.String() = %q", got, got.String())
			}
		}
	}
	for _, s := range []string{"", "oauth", "header", "header:", "header:X Key", "header:a:b", "bearer:x", "none "} {
		if _, err := ParseAuth(s); !errors.Is(err, ErrConfig) {
			t.Errorf("ParseAuth(%q): %v", s, err)
		}
	}
	if AuthKind(7).String() != "AuthKind(7)" || AuthBasic.String() != "basic" {
		t.Error("AuthKind.String")
	}
}
