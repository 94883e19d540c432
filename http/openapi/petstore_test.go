package openapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"reflect"
	"sort"
	"sync/atomic"
	"testing"

	"github.com/alknet/alknet/call"
	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/http/client"
)

var petstoreOps = []string{
	"petstore/addPet", "petstore/createUser", "petstore/createUsersWithListInput",
	"petstore/deleteOrder", "petstore/deletePet", "petstore/deleteUser",
	"petstore/findPetsByStatus", "petstore/findPetsByTags", "petstore/getInventory",
	"petstore/getOrderById", "petstore/getPetById", "petstore/getUserByName",
	"petstore/loginUser", "petstore/logoutUser", "petstore/placeOrder",
	"petstore/updatePet", "petstore/updatePetWithForm", "petstore/updateUser",
	"petstore/uploadFile",
}

// loadPetstore parses one of the testdata copies of the Swagger Petstore.
func loadPetstore(t testing.TB, file string) *Document {
	t.Helper()
	data, err := os.ReadFile("testdata/" + file)
	if err != nil {
		t.Fatal(err)
	}
	d, err := Parse(data, Limits{})
	if err != nil {
		t.Fatalf("Parse %s: %v", file, err)
	}
	return d
}

func TestPetstoreImport(t *testing.T) {
	for _, file := range []string{"petstore3.yaml", "petstore3.json"} {
		t.Run(file, func(t *testing.T) {
			d := loadPetstore(t, file)
			if d.Title() != "Swagger Petstore - OpenAPI 3.0" || d.Version() != "1.0.26-SNAPSHOT" {
				t.Errorf("title %q version %q", d.Title(), d.Version())
			}
			regs := mustImport(t, d, ServiceConfig{Namespace: "petstore", BaseURL: "https://petstore3.example/api/v3"}, noClient{})
			var names []string
			for _, r := range regs {
				names = append(names, r.Spec.Name)
				if r.Spec.Visibility != call.Internal {
					t.Errorf("%s is %v, want internal", r.Spec.Name, r.Spec.Visibility)
				}
				if r.Provenance != call.ProvenanceFromOpenAPI || r.Authority != nil || r.Scoped != nil || r.Caps.Len() != 0 {
					t.Errorf("%s: provenance %v authority %v scoped %v caps %d", r.Spec.Name, r.Provenance, r.Authority, r.Scoped, r.Caps.Len())
				}
				if !reflect.DeepEqual(r.Spec.Access, call.AccessControl{}) || r.Spec.ResourceIDPath != "" {
					t.Errorf("%s: access %+v", r.Spec.Name, r.Spec.Access)
				}
				if r.Spec.Namespace != "petstore" {
					t.Errorf("%s: namespace %q", r.Spec.Name, r.Spec.Namespace)
				}
			}
			if !sort.StringsAreSorted(names) || !reflect.DeepEqual(names, petstoreOps) {
				t.Fatalf("names %v\nwant %v", names, petstoreOps)
			}
			types := map[string]call.OpType{
				"petstore/getPetById": call.Query, "petstore/findPetsByStatus": call.Query,
				"petstore/addPet": call.Mutation, "petstore/deletePet": call.Mutation,
				"petstore/updatePet": call.Mutation, "petstore/logoutUser": call.Query,
			}
			for name, want := range types {
				if got := specByName(t, regs, name).Spec.Type; got != want {
					t.Errorf("%s: type %v, want %v", name, got, want)
				}
			}

			get := specByName(t, regs, "petstore/getPetById")
			in := decode(t, get.Spec.InputSchema)
			if at(in, "properties", "petId", "type") != "integer" || !reflect.DeepEqual(at(in, "required"), []any{"petId"}) {
				t.Errorf("getPetById input schema %s", get.Spec.InputSchema)
			}
			if at(in, "properties", "petId", "description") != "ID of pet to return" {
				t.Errorf("parameter description not carried: %s", get.Spec.InputSchema)
			}
			out := decode(t, get.Spec.OutputSchema)
			if at(out, "properties", "category", "properties", "name", "type") != "string" {
				t.Errorf("getPetById output schema not inlined: %s", get.Spec.OutputSchema)
			}
			var codes []string
			for _, e := range get.Spec.ErrorSchemas {
				codes = append(codes, e.Code)
				if e.HTTPStatus == nil || call.HTTPStatusCode(*e.HTTPStatus) != e.Code {
					t.Errorf("%s: http_status %v", e.Code, e.HTTPStatus)
				}
			}
			if !reflect.DeepEqual(codes, []string{"HTTP_400", "HTTP_404", "HTTP_429", "HTTP_503"}) {
				t.Errorf("getPetById errors %v", codes)
			}
			if d := get.Spec.ErrorSchemas[1]; d.Description != "HTTP 404 response" || string(d.Schema) != "{}" {
				t.Errorf("HTTP_404 definition %+v", d)
			}

			add := specByName(t, regs, "petstore/addPet")
			in = decode(t, add.Spec.InputSchema)
			if !reflect.DeepEqual(at(in, "required"), []any{"body"}) || at(in, "properties", "body", "required") == nil {
				t.Errorf("addPet input schema %s", add.Spec.InputSchema)
			}
			// createUser has only a "default" response: no declared error but 429/503.
			if n := len(specByName(t, regs, "petstore/createUser").Spec.ErrorSchemas); n != 2 {
				t.Errorf("createUser declares %d errors", n)
			}
			// deletePet's api_key header parameter is an input field.
			del := decode(t, specByName(t, regs, "petstore/deletePet").Spec.InputSchema)
			if at(del, "properties", "api_key", "type") != "string" || !reflect.DeepEqual(at(del, "required"), []any{"petId"}) {
				t.Errorf("deletePet input %v", del)
			}
			// Every schema compiles.
			newRegistry(t, regs, nil)
		})
	}
}

// TestPetstoreConcurrentImports: a Document is read-only; imports may run at once.
func TestPetstoreConcurrentImports(t *testing.T) {
	d := loadPetstore(t, "petstore3.yaml")
	first := mustImport(t, d, ServiceConfig{Namespace: "petstore", BaseURL: "http://u.invalid"}, noClient{})
	errs := make(chan error, 4)
	for i := 0; i < 4; i++ {
		go func() {
			regs, err := Import(d, ServiceConfig{Namespace: "petstore", BaseURL: "http://u.invalid"}, noClient{})
			if err == nil {
				for i := range regs {
					if string(regs[i].Spec.InputSchema) != string(first[i].Spec.InputSchema) || string(regs[i].Spec.OutputSchema) != string(first[i].Spec.OutputSchema) {
						err = fmt.Errorf("%s differs between imports", regs[i].Spec.Name)
					}
				}
			}
			errs <- err
		}()
	}
	for i := 0; i < 4; i++ {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

func TestPetstoreForwardGetPetById(t *testing.T) {
	for _, tc := range []struct {
		name   string
		auth   Auth
		header string
		want   string
	}{
		{"api_key header", Auth{Kind: AuthHeader, Header: "api_key"}, "Api_key", "special-key"},
		{"bearer", Auth{Kind: AuthBearer}, "Authorization", "Bearer special-key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := newUpstream(t, jsonReply(200, `{"id":7,"name":"doggie","photoUrls":[],"status":"available"}`))
			cfg := ServiceConfig{Namespace: "petstore", BaseURL: up.URL + "/api/v3", Auth: tc.auth, Expose: true}
			regs := mustImport(t, loadPetstore(t, "petstore3.yaml"), cfg, up.Client())
			r := newRegistry(t, regs, map[string][]byte{"api_key:petstore": []byte("special-key")})
			out := mustInvoke(t, r, "petstore/getPetById", `{"petId":7}`)
			if at(decode(t, []byte(out)), "name") != "doggie" {
				t.Errorf("output %s", out)
			}
			got := up.last(t)
			if got.Method != "GET" || got.RequestURI != "/api/v3/pet/7" {
				t.Errorf("request %s %s", got.Method, got.RequestURI)
			}
			if v := got.Header.Get(tc.header); v != tc.want {
				t.Errorf("header %s = %q, want %q", tc.header, v, tc.want)
			}
			if got.Header.Get("Accept") != "*/*" || got.Header.Get("Content-Type") != "" {
				t.Errorf("headers %v", got.Header)
			}
		})
	}
}

// TestPetstoreInternalComposition calls an Internal imported operation the way
// it is meant to be reached: composed by a handler allowed to, with the
// credential in the composing call's capabilities.
func TestPetstoreInternalComposition(t *testing.T) {
	up := newUpstream(t, jsonReply(200, `{"id":7}`))
	cfg := ServiceConfig{Namespace: "petstore", BaseURL: up.URL + "/api/v3", Auth: Auth{Kind: AuthHeader, Header: "api_key"}}
	r := newRegistry(t, mustImport(t, loadPetstore(t, "petstore3.json"), cfg, up.Client()), nil)
	// From the wire: not found.
	_, cerr := invoke(t, r, "petstore/getPetById", `{"petId":7}`)
	wantCode(t, cerr, call.CodeNotFound)
	// Composed: reachable.
	parent := call.NewRootContext("", nil, nil, nil, call.LocalEnv(r), nil)
	parent.Scoped = *call.NewScopedEnv("petstore/getPetById")
	parent.Caps = core.NewCapabilities(map[string][]byte{"http_token:petstore": []byte("k2")})
	out, cerr := parent.Call(context.Background(), "petstore/getPetById", json.RawMessage(`{"petId":7}`))
	if cerr != nil {
		t.Fatal(cerr)
	}
	if string(out) != `{"id":7}` || up.last(t).Header.Get("api_key") != "k2" {
		t.Errorf("out %s header %v", out, up.last(t).Header)
	}
}

func TestPetstoreFindByStatus(t *testing.T) {
	up := newUpstream(t, jsonReply(200, `[{"id":1,"name":"a","photoUrls":[]}]`))
	r := newRegistry(t, mustImport(t, loadPetstore(t, "petstore3.yaml"), exposed("petstore", up.URL+"/api/v3/"), up.Client()), nil)
	out := mustInvoke(t, r, "petstore/findPetsByStatus", `{"status":"pending"}`)
	if at(decode(t, []byte(out)), 0, "name") != "a" {
		t.Errorf("output %s", out)
	}
	if got := up.last(t); got.RequestURI != "/api/v3/pet/findByStatus?status=pending" {
		t.Errorf("request URI %s", got.RequestURI)
	}
	// The enum of the document is enforced by the input schema.
	_, cerr := invoke(t, r, "petstore/findPetsByStatus", `{"status":"lost"}`)
	wantCode(t, cerr, call.CodeInvalidInput)

	// findPetsByTags: an array repeats the key.
	mustInvoke(t, r, "petstore/findPetsByTags", `{"tags":["x y","z"]}`)
	if got := up.last(t); got.RequestURI != "/api/v3/pet/findByTags?tags=x%20y&tags=z" {
		t.Errorf("request URI %s", got.RequestURI)
	}
}

func TestPetstoreAddPet(t *testing.T) {
	up := newUpstream(t, jsonReply(200, `{"id":10,"name":"doggie","photoUrls":["u"]}`))
	r := newRegistry(t, mustImport(t, loadPetstore(t, "petstore3.yaml"), exposed("petstore", up.URL+"/api/v3"), up.Client()), nil)
	pet := `{"name":"doggie","photoUrls":["u"],"status":"available"}`
	out := mustInvoke(t, r, "petstore/addPet", `{"body":`+pet+`}`)
	if at(decode(t, []byte(out)), "id") != float64(10) {
		t.Errorf("output %s", out)
	}
	got := up.last(t)
	if got.Method != "POST" || got.RequestURI != "/api/v3/pet" || got.Header.Get("Content-Type") != "application/json" {
		t.Errorf("request %s %s %v", got.Method, got.RequestURI, got.Header)
	}
	if !reflect.DeepEqual(decode(t, []byte(got.Body)), decode(t, []byte(pet))) {
		t.Errorf("body %s", got.Body)
	}
	// The body schema (Pet, required name and photoUrls) is enforced.
	_, cerr := invoke(t, r, "petstore/addPet", `{"body":{"name":"x"}}`)
	wantCode(t, cerr, call.CodeInvalidInput)
	_, cerr = invoke(t, r, "petstore/addPet", `{}`)
	wantCode(t, cerr, call.CodeInvalidInput)
}

func TestPetstoreErrors(t *testing.T) {
	status := 404
	retryAfter := ""
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		if retryAfter != "" {
			w.Header().Set("Retry-After", retryAfter)
		}
		jsonReply(status, `{"code":1,"message":"Pet not found"}`)(w, r)
	})
	r := newRegistry(t, mustImport(t, loadPetstore(t, "petstore3.yaml"), exposed("petstore", up.URL+"/api/v3"), up.Client()), nil)

	_, cerr := invoke(t, r, "petstore/getPetById", `{"petId":99}`)
	wantCode(t, cerr, "HTTP_404")
	if cerr.Retryable || cerr.Message != "HTTP 404: Not Found" {
		t.Errorf("404 error %+v", cerr)
	}
	if at(decode(t, cerr.Details), "body", "message") != "Pet not found" {
		t.Errorf("404 details %s", cerr.Details)
	}

	status, retryAfter = 429, "120"
	_, cerr = invoke(t, r, "petstore/getPetById", `{"petId":99}`)
	wantCode(t, cerr, "HTTP_429")
	if !cerr.Retryable || at(decode(t, cerr.Details), "retry_after") != "120" {
		t.Errorf("429 error %+v details %s", cerr, cerr.Details)
	}

	status, retryAfter = 503, "Wed, 21 Oct 2015 07:28:00 GMT"
	_, cerr = invoke(t, r, "petstore/getPetById", `{"petId":99}`)
	wantCode(t, cerr, "HTTP_503")
	if !cerr.Retryable || at(decode(t, cerr.Details), "retry_after") != retryAfter {
		t.Errorf("503 error %+v details %s", cerr, cerr.Details)
	}

	// 500 is not declared by the document: the registry reports it as INTERNAL.
	status, retryAfter = 500, "1"
	_, cerr = invoke(t, r, "petstore/getPetById", `{"petId":99}`)
	wantCode(t, cerr, call.CodeInternal)
	if at(decode(t, cerr.Details), "original_code") != "HTTP_500" || cerr.Retryable {
		t.Errorf("500 error %+v details %s", cerr, cerr.Details)
	}
}

// TestPetstoreYAMLJSONEquivalent: the YAML and JSON copies import identically.
func TestPetstoreYAMLJSONEquivalent(t *testing.T) {
	cfg := ServiceConfig{Namespace: "petstore", BaseURL: "http://u.invalid"}
	y := mustImport(t, loadPetstore(t, "petstore3.yaml"), cfg, noClient{})
	j := mustImport(t, loadPetstore(t, "petstore3.json"), cfg, noClient{})
	if len(y) != len(j) {
		t.Fatalf("%d vs %d operations", len(y), len(j))
	}
	for i := range y {
		a, _ := json.Marshal(y[i].Spec)
		b, _ := json.Marshal(j[i].Spec)
		if string(a) != string(b) {
			t.Errorf("%s differs:\n%s\n%s", y[i].Spec.Name, a, b)
		}
	}
}

// TestSharedClientRetryAfter: forwarding through the shared outbound client, an
// upstream's long Retry-After is remembered, and the next call to that URL answers a
// retryable HTTP_429 with the remaining wait at once, without reaching the upstream.
func TestSharedClientRetryAfter(t *testing.T) {
	var hits atomic.Int32
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Retry-After", "3600")
		jsonReply(http.StatusTooManyRequests, `{"message":"slow down"}`)(w, r)
	})
	shared, err := client.New(client.Config{Retry: client.RetryPolicy{MaxRetries: -1}})
	if err != nil {
		t.Fatal(err)
	}
	defer shared.Close()
	r := newRegistry(t, mustImport(t, loadPetstore(t, "petstore3.yaml"), exposed("petstore", up.URL+"/api/v3"), shared), nil)

	_, cerr := invoke(t, r, "petstore/getPetById", `{"petId":1}`)
	wantCode(t, cerr, "HTTP_429")
	_, cerr = invoke(t, r, "petstore/getPetById", `{"petId":1}`)
	wantCode(t, cerr, "HTTP_429")
	var d struct {
		RetryAfter int64 `json:"retry_after"`
	}
	if !cerr.Retryable || json.Unmarshal(cerr.Details, &d) != nil || d.RetryAfter < 3500 || d.RetryAfter > 3600 {
		t.Fatalf("remembered 429: %+v details %s", cerr, cerr.Details)
	}
	if hits.Load() != 1 {
		t.Fatalf("upstream hit %d times, want 1", hits.Load())
	}
}
