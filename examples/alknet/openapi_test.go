package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alknet/alknet/core/tlsconf"
)

// petsSpec is a small OpenAPI 3 document with one path-parameter GET.
const petsSpec = `openapi: 3.0.3
info: {title: pets, version: "1.0"}
paths:
  /pets/{petId}:
    get:
      operationId: getPet
      parameters:
        - {name: petId, in: path, required: true, schema: {type: integer}}
      responses:
        "200":
          description: a pet
          content:
            application/json:
              schema: {type: object}
        "404":
          description: no such pet
`

// gatewayClient is an HTTPS client pinned to the node, for its TCP+TLS listener.
func gatewayClient(t *testing.T, n *node) *http.Client {
	t.Helper()
	cfg, err := tlsconf.ClientConfig(tlsconf.ClientOptions{Pin: n.fp, NextProtos: []string{"h2", "http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// postCall posts {"operation": op, "input": input} to the node's /call and returns the
// status and body.
func postCall(t *testing.T, c *http.Client, n *node, op, input string) (int, string) {
	t.Helper()
	resp, err := c.Post("https://"+n.tcp+"/call", "application/json", strings.NewReader(`{"operation":"`+op+`","input":`+input+`}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestServeOpenAPIImport: an [[openapi]] table imports the document's operations,
// which forward to the API with the credential from credential_file; exposed ones are
// callable over the gateway, the others are Internal (404 like unknown ones).
func TestServeOpenAPIImport(t *testing.T) {
	const secret = "s3cret-key"
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-API-Key") != secret {
			http.Error(w, "no key", http.StatusUnauthorized)
			return
		}
		switch r.URL.Path {
		case "/v1/pets/7":
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"id":7,"name":"Rex"}`)
		default:
			http.NotFound(w, r)
		}
	}))
	defer upstream.Close()

	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "pets.yaml"), petsSpec)
	if err := os.WriteFile(filepath.Join(dir, "pets.key"), []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	config := filepath.Join(dir, "alknet.toml")
	writeFile(t, config, `[[openapi]]
namespace = "pets"
spec = "pets.yaml"
base_url = "`+upstream.URL+`/v1"
auth = "header:X-API-Key"
credential_file = "pets.key"
expose = true

[[openapi]]
namespace = "hidden"
spec = "pets.yaml"
base_url = "`+upstream.URL+`/v1"
`)
	n := startServe(t, "--config", config)
	c := gatewayClient(t, n)

	status, body := postCall(t, c, n, "pets/getPet", `{"petId":7}`)
	var ok struct {
		Output json.RawMessage `json:"output"`
	}
	if err := json.Unmarshal([]byte(body), &ok); status != 200 || err != nil || string(ok.Output) != `{"id":7,"name":"Rex"}` {
		t.Fatalf("pets/getPet: %d %s", status, body)
	}
	status, body = postCall(t, c, n, "pets/getPet", `{"petId":8}`)
	if status != 404 || !strings.Contains(body, `"code":"HTTP_404"`) {
		t.Fatalf("pets/getPet 8: %d %s, want 404 HTTP_404", status, body)
	}
	status, body = postCall(t, c, n, "pets/getPet", `{"petId":"x"}`)
	if status != 422 {
		t.Fatalf("pets/getPet with a string id: %d %s, want 422", status, body)
	}
	// Not exposed: Internal, indistinguishable from an unknown operation.
	s1, b1 := postCall(t, c, n, "hidden/getPet", `{"petId":7}`)
	s2, b2 := postCall(t, c, n, "hidden/nothing", `{"petId":7}`)
	if s1 != 404 || s2 != 404 || strings.Replace(b1, "hidden/getPet", "X", 1) != strings.Replace(b2, "hidden/nothing", "X", 1) {
		t.Fatalf("internal import: %d %s / unknown: %d %s", s1, b1, s2, b2)
	}
	if strings.Contains(n.stderr.String(), secret) {
		t.Error("serve logged the credential")
	}
}

func TestServeOpenAPIConfigErrors(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "pets.yaml"), petsSpec)
	writeFile(t, filepath.Join(dir, "bad.yaml"), "openapi: [\n")
	if err := os.WriteFile(filepath.Join(dir, "open.key"), []byte("k\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	serveConfigErrors(t, dir, []serveConfigCase{
		{"no namespace", "[[openapi]]\nspec = \"pets.yaml\"\nbase_url = \"http://127.0.0.1:1/\"\n", "openapi[0].namespace: required"},
		{"no spec", "[[openapi]]\nnamespace = \"p\"\nbase_url = \"http://127.0.0.1:1/\"\n", "openapi[0].spec: required"},
		{"no base_url", "[[openapi]]\nnamespace = \"p\"\nspec = \"pets.yaml\"\n", "openapi[0].base_url: required"},
		{"bad auth", "[[openapi]]\nnamespace = \"p\"\nspec = \"pets.yaml\"\nbase_url = \"http://127.0.0.1:1/\"\nauth = \"digest\"\n", "openapi[0].auth"},
		{"auth without credential", "[[openapi]]\nnamespace = \"p\"\nspec = \"pets.yaml\"\nbase_url = \"http://127.0.0.1:1/\"\nauth = \"bearer\"\n", "openapi[0].credential_file: required"},
		{"credential without auth", "[[openapi]]\nnamespace = \"p\"\nspec = \"pets.yaml\"\nbase_url = \"http://127.0.0.1:1/\"\ncredential_file = \"open.key\"\n", "auth is none"},
		{"unknown key", "[[openapi]]\nnamespace = \"p\"\nspecs = \"pets.yaml\"\n", "unknown key \"openapi.specs\""},
		{"twice", "[[openapi]]\nnamespace = \"p\"\nspec = \"pets.yaml\"\nbase_url = \"http://127.0.0.1:1/\"\n[[openapi]]\nnamespace = \"p\"\nspec = \"pets.yaml\"\nbase_url = \"http://127.0.0.1:1/\"\n", "imported twice"},
		{"credential readable by others", "[[openapi]]\nnamespace = \"p\"\nspec = \"pets.yaml\"\nbase_url = \"http://127.0.0.1:1/\"\nauth = \"bearer\"\ncredential_file = \"open.key\"\n", "chmod 600"},
		{"missing spec", "[[openapi]]\nnamespace = \"p\"\nspec = \"nope.yaml\"\nbase_url = \"http://127.0.0.1:1/\"\n", "openapi[0].spec"},
		{"bad document", "[[openapi]]\nnamespace = \"p\"\nspec = \"bad.yaml\"\nbase_url = \"http://127.0.0.1:1/\"\n", "bad.yaml"},
		{"bad base_url", "[[openapi]]\nnamespace = \"p\"\nspec = \"pets.yaml\"\nbase_url = \"ftp://x/\"\n", "openapi[0] (p)"},
	})
}

// serveConfigCase is a --config file serve must refuse with an error containing want.
type serveConfigCase struct{ name, toml, want string }

// serveConfigErrors runs serve with each case's --config, written in dir (where the
// files it names live), and checks the error.
func serveConfigErrors(t *testing.T, dir string, cases []serveConfigCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			config := filepath.Join(dir, "alknet.toml")
			writeFile(t, config, tc.toml)
			err := (&cli{stdout: io.Discard, stderr: io.Discard}).run(t.Context(), []string{"serve", "--state", t.TempDir(), "--listen", "127.0.0.1:0", "--config", config})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("serve = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}
