package http_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net/http/httptest"
	"strings"

	"github.com/alknet/alknet/call"
	alkhttp "github.com/alknet/alknet/http"
)

// A registry with one operation, served over HTTP; a client calls it with POST /call.
func Example() {
	reg := call.NewRegistry() // with services/list and services/schema
	err := reg.Register(call.Registration{
		Spec: call.NewSpec("demo/echo", call.Query),
		Once: func(_ context.Context, _ *call.OpContext, in json.RawMessage) (json.RawMessage, error) {
			return in, nil
		},
	})
	if err != nil {
		log.Fatal(err)
	}

	h, err := alkhttp.New(alkhttp.Config{Registry: reg})
	if err != nil {
		log.Fatal(err)
	}
	srv := httptest.NewServer(h) // or register h with a core.Registry on alknet/http
	defer srv.Close()

	resp, err := srv.Client().Post(srv.URL+"/call", "application/json",
		strings.NewReader(`{"operation": "demo/echo", "input": {"msg": "hello"}}`))
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		RequestID string          `json:"request_id"`
		Result    string          `json:"result"`
		Output    json.RawMessage `json:"output"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		log.Fatal(err)
	}
	fmt.Println(resp.StatusCode, body.Result, string(body.Output))
	// Output: 200 ok {"msg":"hello"}
}
