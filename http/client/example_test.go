package client_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"

	"github.com/alknet/alknet/http/client"
)

func ExampleNew() {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello, %s", r.Header.Get("Authorization"))
	}))
	defer upstream.Close()

	shared, err := client.New(client.Config{}) // defaults: system roots, 3 retries, no proxy
	if err != nil {
		log.Fatal(err)
	}
	defer shared.Close()

	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, upstream.URL+"/greeting", nil)
	if err != nil {
		log.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer per-request-token") // credentials go on each request
	resp, err := shared.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(resp.StatusCode, string(body))
	// Output: 200 hello, Bearer per-request-token
}
