package openapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/alknet/alknet/call"
	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/http/openapi"
)

func ExampleImport() {
	// The upstream API.
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id":%q,"auth":%q}`, r.URL.Path, r.Header.Get("Authorization"))
	}))
	defer upstream.Close()

	doc, err := openapi.Parse([]byte(`
openapi: 3.0.3
info: {title: Notes, version: 2.0.0}
paths:
  /notes/{id}:
    get:
      operationId: getNote
      parameters:
        - {name: id, in: path, required: true, schema: {type: string}}
      responses:
        200:
          content:
            application/json:
              schema: {type: object}
        404: {description: no such note}
`), openapi.Limits{})
	if err != nil {
		panic(err)
	}
	regs, err := openapi.Import(doc, openapi.ServiceConfig{
		Namespace: "notes",
		BaseURL:   upstream.URL + "/v1",
		Auth:      openapi.Auth{Kind: openapi.AuthBearer},
		Expose:    true, // callable from the wire, not only by composition
	}, upstream.Client())
	if err != nil {
		panic(err)
	}

	reg := call.NewRegistry()
	for _, r := range regs {
		// The assembly layer hands the credential to the operation.
		r.Caps = core.NewCapabilities(map[string][]byte{"api_key:notes": []byte("s3cret")})
		if err := reg.Register(r); err != nil {
			panic(err)
		}
		fmt.Println(r.Spec.Name, r.Spec.Type, r.Spec.ErrorSchemas[0].Code)
	}

	r, _ := reg.Lookup("notes/getNote")
	oc := call.NewRootContext("", nil, nil, r, nil, nil)
	out, cerr := reg.Invoke(context.Background(), "notes/getNote", json.RawMessage(`{"id":"a b"}`), oc)
	if cerr != nil {
		panic(cerr)
	}
	fmt.Println(string(out))
	// Output:
	// notes/getNote query HTTP_404
	// {"id":"/v1/notes/a b","auth":"Bearer s3cret"}
}
