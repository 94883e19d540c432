package http_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/alknet/alknet/call"
	alkhttp "github.com/alknet/alknet/http"
)

// htServe starts a loopback server for a Handler built from cfg. A nil Registry is
// htRegistry, nil Identities the fake provider; the SSE keep-alive is an hour unless
// set, so that no `: ping` can land in a frame-exact body.
func htServe(t *testing.T, cfg alkhttp.Config) *httptest.Server {
	t.Helper()
	if cfg.Registry == nil {
		cfg.Registry = htRegistry(t)
	}
	if cfg.Identities == nil {
		cfg.Identities = htIDs()
	}
	if cfg.Limits.SSEKeepAlive == 0 {
		cfg.Limits.SSEKeepAlive = time.Hour
	}
	h, err := alkhttp.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// htResp is a response read in full.
type htResp struct {
	status int
	header http.Header
	body   []byte
}

// htReq describes one request: headers as name/value pairs (repeatable).
type htReq struct {
	method  string
	path    string
	body    io.Reader
	headers []string
}

// htDo sends req on srv with srv's client and reads the whole response.
func htDo(t *testing.T, srv *httptest.Server, req htReq) htResp {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), htGuard)
	defer cancel()
	r, err := http.NewRequestWithContext(ctx, req.method, srv.URL+req.path, req.body)
	if err != nil {
		t.Fatalf("NewRequest %s %s: %v", req.method, req.path, err)
	}
	for i := 0; i+1 < len(req.headers); i += 2 {
		r.Header.Add(req.headers[i], req.headers[i+1])
	}
	resp, err := srv.Client().Do(r)
	if err != nil {
		t.Fatalf("%s %s: %v", req.method, req.path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", req.method, req.path, err)
	}
	return htResp{status: resp.StatusCode, header: resp.Header, body: b}
}

// htBearer returns the Authorization header pair of tok ("": none).
func htBearer(tok string) []string {
	if tok == "" {
		return nil
	}
	return []string{"Authorization", "Bearer " + tok}
}

// htPost posts body as application/json with tok's Bearer header.
func htPost(t *testing.T, srv *httptest.Server, path, tok, body string) htResp {
	t.Helper()
	return htDo(t, srv, htReq{method: http.MethodPost, path: path, body: strings.NewReader(body),
		headers: append([]string{"Content-Type", "application/json"}, htBearer(tok)...)})
}

// htGet gets path with tok's Bearer header.
func htGet(t *testing.T, srv *httptest.Server, path, tok string) htResp {
	t.Helper()
	return htDo(t, srv, htReq{method: http.MethodGet, path: path, headers: htBearer(tok)})
}

// htCallError checks that resp is a JSON CallError answer with status and code, and
// returns it.
func htCallError(t *testing.T, resp htResp, status int, code string) call.CallError {
	t.Helper()
	if resp.status != status {
		t.Fatalf("status %d, want %d; body %s", resp.status, status, resp.body)
	}
	if ct := resp.header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q, want application/json", ct)
	}
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(resp.body, &keys); err != nil {
		t.Fatalf("error body %q is not a JSON object: %v", resp.body, err)
	}
	for k := range keys {
		if !slices.Contains([]string{"code", "message", "retryable", "details"}, k) {
			t.Fatalf("error body %s has the extra key %q", resp.body, k)
		}
	}
	for _, k := range []string{"code", "message", "retryable"} {
		if _, ok := keys[k]; !ok {
			t.Fatalf("error body %s lacks %q", resp.body, k)
		}
	}
	var e call.CallError
	if err := json.Unmarshal(resp.body, &e); err != nil {
		t.Fatalf("error body %q: %v", resp.body, err)
	}
	if e.Code != code {
		t.Fatalf("code %q, want %q (body %s)", e.Code, code, resp.body)
	}
	return e
}

// htEnvelope is the body of a successful /call, /search and /schema.
type htEnvelope struct {
	RequestID string          `json:"request_id"`
	Result    string          `json:"result"`
	Output    json.RawMessage `json:"output"`
}

// htOK checks that resp is a 200 envelope and returns it.
func htOK(t *testing.T, resp htResp) htEnvelope {
	t.Helper()
	if resp.status != http.StatusOK {
		t.Fatalf("status %d, want 200; body %s", resp.status, resp.body)
	}
	if ct := resp.header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q, want application/json", ct)
	}
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(resp.body, &keys); err != nil {
		t.Fatalf("body %q: %v", resp.body, err)
	}
	if len(keys) != 3 {
		t.Fatalf("envelope %s: want exactly request_id, result and output", resp.body)
	}
	var env htEnvelope
	if err := json.Unmarshal(resp.body, &env); err != nil {
		t.Fatalf("body %q: %v", resp.body, err)
	}
	if env.Result != "ok" || !htUUIDv4.MatchString(env.RequestID) || env.Output == nil {
		t.Fatalf("envelope %s: want result ok, a UUIDv4 request_id and an output", resp.body)
	}
	return env
}

// htDecoyBody is what the default decoy answers.
func htDecoyBody(t *testing.T) []byte {
	t.Helper()
	rec := httptest.NewRecorder()
	alkhttp.DecoyNotFound().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/x", nil))
	if rec.Code != http.StatusNotFound || !bytes.Contains(rec.Body.Bytes(), []byte("<center>nginx</center>")) {
		t.Fatalf("DecoyNotFound answered %d %q", rec.Code, rec.Body.Bytes())
	}
	return rec.Body.Bytes()
}

// htIsDecoy checks that resp is the default decoy's fake nginx 404.
func htIsDecoy(t *testing.T, resp htResp, decoy []byte) {
	t.Helper()
	if resp.status != http.StatusNotFound {
		t.Fatalf("status %d, want the decoy's 404; body %q", resp.status, resp.body)
	}
	if s := resp.header.Get("Server"); s != "nginx" {
		t.Fatalf("Server %q, want nginx", s)
	}
	if ct := resp.header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Fatalf("Content-Type %q, want the decoy's text/html; charset=utf-8", ct)
	}
	if !bytes.Equal(resp.body, decoy) {
		t.Fatalf("body %q, want the decoy page", resp.body)
	}
	if resp.header.Get("Allow") != "" {
		t.Fatalf("the decoy answer carries Allow %q (a mux 405 leaked)", resp.header.Get("Allow"))
	}
}

func TestHealthz(t *testing.T) {
	srv := htServe(t, alkhttp.Config{})
	tests := []struct {
		name    string
		headers []string
	}{
		{"no headers", nil},
		{"bogus bearer", []string{"Authorization", "Bearer bogus"}},
		{"valid bearer", htBearer(htTokAdmin)},
		{"basic", []string{"Authorization", "Basic dXNlcjpwYXNz"}},
		{"two authorization headers", []string{"Authorization", "Bearer a", "Authorization", "Bearer b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := htDo(t, srv, htReq{method: http.MethodGet, path: "/healthz", headers: tt.headers})
			if resp.status != http.StatusOK || string(resp.body) != "ok" {
				t.Fatalf("GET /healthz = %d %q, want 200 \"ok\"", resp.status, resp.body)
			}
			if ct := resp.header.Get("Content-Type"); ct != "text/plain" {
				t.Fatalf("Content-Type %q, want text/plain", ct)
			}
		})
	}
	resp := htDo(t, srv, htReq{method: http.MethodHead, path: "/healthz"})
	if resp.status != http.StatusOK || len(resp.body) != 0 || resp.header.Get("Content-Type") != "text/plain" {
		t.Fatalf("HEAD /healthz = %d %q %v, want 200 text/plain without body", resp.status, resp.body, resp.header)
	}
}

// Everything no route matches gets the decoy, including a wrong method on a reserved
// path (not the mux's 405) and non-canonical paths (not the mux's redirect).
func TestDecoyFallback(t *testing.T) {
	srv := htServe(t, alkhttp.Config{})
	decoy := htDecoyBody(t)
	tests := []struct {
		method, path string
	}{
		{http.MethodGet, "/"},
		{http.MethodGet, "/nope"},
		{http.MethodGet, "/index.html"},
		{http.MethodGet, "/search/extra"},
		{http.MethodGet, "/healthz/extra"},
		{http.MethodGet, "//healthz"},
		{http.MethodGet, "/healthz/"},
		{http.MethodGet, "/./healthz"},
		{http.MethodGet, "/a/../healthz"},
		{http.MethodGet, "/Healthz"},
		{http.MethodPost, "/CALL"},
		{http.MethodPost, "/call/"},
		{http.MethodPost, "//call"},
		{http.MethodGet, "/call"},
		{http.MethodGet, "/batch"},
		{http.MethodGet, "/subscribe"},
		{http.MethodPost, "/healthz"},
		{http.MethodPost, "/search"},
		{http.MethodDelete, "/search"},
		{http.MethodPut, "/schema"},
		{http.MethodPost, "/openapi.json"},
		{http.MethodPut, "/call"},
		{http.MethodOptions, "/call"},
		{http.MethodPatch, "/batch"},
		{http.MethodGet, "/alknet/call"},
		{http.MethodGet, "/mcp"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			resp := htDo(t, srv, htReq{method: tt.method, path: tt.path, body: strings.NewReader(`{"operation":"demo/echo"}`),
				headers: append([]string{"Content-Type", "application/json"}, htBearer(htTokAdmin)...)})
			htIsDecoy(t, resp, decoy)
		})
	}
}

// A request target that is not a path ("OPTIONS *") also gets the decoy, not the
// server's general OPTIONS answer.
func TestDecoyAsteriskTarget(t *testing.T) {
	h, err := alkhttp.New(alkhttp.Config{Registry: htRegistry(t)})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodOptions, "*", nil))
	if rec.Code != http.StatusNotFound || rec.Header().Get("Server") != "nginx" {
		t.Fatalf("OPTIONS * = %d, Server %q; want the decoy", rec.Code, rec.Header().Get("Server"))
	}
}

func TestExtraRoutes(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/foo", func(w http.ResponseWriter, r *http.Request) {
		who := "anonymous"
		if id := alkhttp.IdentityFrom(r.Context()); id != nil {
			who = id.ID
		}
		_, _ = io.WriteString(w, "foo:"+who)
	})
	mux.HandleFunc("GET /v1/items/{id}", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "item:"+r.PathValue("id"))
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "shadow")
	})
	mux.HandleFunc("POST /call", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "shadow")
	})
	srv := htServe(t, alkhttp.Config{Routes: mux})
	decoy := htDecoyBody(t)
	tests := []struct {
		name       string
		method     string
		path       string
		tok        string
		wantStatus int
		wantBody   string // "" for the decoy
	}{
		{"extra route anonymous", http.MethodGet, "/v1/foo", "", 200, "foo:anonymous"},
		{"extra route sees the bearer identity", http.MethodGet, "/v1/foo", htTokAdmin, 200, "foo:alice"},
		{"extra route other identity", http.MethodGet, "/v1/foo", htTokUser, 200, "foo:bob"},
		{"extra route bogus token", http.MethodGet, "/v1/foo", "bogus", 200, "foo:anonymous"},
		{"extra route path value", http.MethodGet, "/v1/items/42", "", 200, "item:42"},
		{"reserved healthz wins", http.MethodGet, "/healthz", "", 200, "ok"},
		{"extra route wrong method", http.MethodPost, "/v1/foo", "", 404, ""},
		{"extra route trailing slash", http.MethodGet, "/v1/foo/", "", 404, ""},
		{"in neither", http.MethodGet, "/v1/bar", "", 404, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := htDo(t, srv, htReq{method: tt.method, path: tt.path, headers: htBearer(tt.tok)})
			if tt.wantBody == "" {
				htIsDecoy(t, resp, decoy)
				return
			}
			if resp.status != tt.wantStatus || string(resp.body) != tt.wantBody {
				t.Fatalf("%s %s = %d %q, want %d %q", tt.method, tt.path, resp.status, resp.body, tt.wantStatus, tt.wantBody)
			}
		})
	}
	// The reserved POST /call wins over the extra route of the same pattern.
	env := htOK(t, htPost(t, srv, "/call", "", `{"operation":"demo/echo","input":1}`))
	if string(env.Output) != "1" {
		t.Fatalf("POST /call output %s, want 1", env.Output)
	}
}

func TestCustomDecoy(t *testing.T) {
	decoy := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusTeapot)
		_, _ = io.WriteString(w, "custom decoy")
	})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/foo", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "foo") })
	srv := htServe(t, alkhttp.Config{Decoy: decoy, Routes: mux})
	for _, tt := range []struct{ method, path string }{
		{http.MethodGet, "/"},
		{http.MethodGet, "/nope"},
		{http.MethodGet, "/call"},
		{http.MethodGet, "/healthz/"},
		{http.MethodPost, "/v1/foo"},
	} {
		resp := htDo(t, srv, htReq{method: tt.method, path: tt.path})
		if resp.status != http.StatusTeapot || string(resp.body) != "custom decoy" {
			t.Fatalf("%s %s = %d %q, want the custom decoy", tt.method, tt.path, resp.status, resp.body)
		}
	}
	if resp := htGet(t, srv, "/healthz", ""); resp.status != 200 || string(resp.body) != "ok" {
		t.Fatalf("GET /healthz = %d %q", resp.status, resp.body)
	}
	if resp := htGet(t, srv, "/v1/foo", ""); resp.status != 200 || string(resp.body) != "foo" {
		t.Fatalf("GET /v1/foo = %d %q", resp.status, resp.body)
	}
}

func TestNewConfig(t *testing.T) {
	if _, err := alkhttp.New(alkhttp.Config{}); !errors.Is(err, alkhttp.ErrConfig) {
		t.Fatalf("New without a registry: %v, want ErrConfig", err)
	}
	if _, err := alkhttp.New(alkhttp.Config{Registry: call.NewRegistry(), ALPN: strings.Repeat("a", 256)}); !errors.Is(err, alkhttp.ErrConfig) {
		t.Fatalf("New with a 256-byte ALPN: %v, want ErrConfig", err)
	}
	h, err := alkhttp.New(alkhttp.Config{Registry: call.NewRegistry()})
	if err != nil || h.ALPN() != alkhttp.ALPN || h.Gateway() == nil {
		t.Fatalf("New: %v, ALPN %q", err, h.ALPN())
	}
	h, err = alkhttp.New(alkhttp.Config{Registry: call.NewRegistry(), ALPN: "h2"})
	if err != nil || h.ALPN() != "h2" {
		t.Fatalf("New with ALPN h2: %v, ALPN %q", err, h.ALPN())
	}
}

func TestSearchRoute(t *testing.T) {
	srv := htServe(t, alkhttp.Config{})
	tests := []struct {
		tok  string
		want []string
	}{
		{"", htPublicOps},
		{"bogus", htPublicOps},
		{htTokUser, htPublicOps},
		{htTokAdmin, htAdminOps},
	}
	for _, tt := range tests {
		t.Run("token "+tt.tok, func(t *testing.T) {
			env := htOK(t, htGet(t, srv, "/search", tt.tok))
			var out map[string]json.RawMessage
			if err := json.Unmarshal(env.Output, &out); err != nil || len(out) != 1 || out["operations"] == nil {
				t.Fatalf("output %s: want exactly {operations}", env.Output)
			}
			var ops []map[string]json.RawMessage
			if err := json.Unmarshal(out["operations"], &ops); err != nil {
				t.Fatal(err)
			}
			for _, op := range ops {
				if len(op) != 3 || op["name"] == nil || op["namespace"] == nil || op["op_type"] == nil {
					t.Fatalf("entry %v: want exactly name, namespace, op_type", op)
				}
			}
			if got := htListedNames(t, env.Output); !slices.Equal(got, tt.want) {
				t.Fatalf("/search = %v, want %v", got, tt.want)
			}
		})
	}
	// The entries carry namespace and op_type.
	env := htOK(t, htGet(t, srv, "/search", ""))
	if !bytes.Contains(env.Output, []byte(`{"name":"demo/ticks","namespace":"demo","op_type":"subscription"}`)) {
		t.Fatalf("/search output %s lacks the demo/ticks entry", env.Output)
	}
}

func TestSchemaRoute(t *testing.T) {
	reg := htRegistry(t)
	srv := htServe(t, alkhttp.Config{Registry: reg})
	tests := []struct {
		name       string
		query      string
		tok        string
		wantStatus int
		wantCode   string // "" for success
		wantSpec   string // the op whose spec is the output
	}{
		{"missing name", "", "", 400, call.CodeInvalidInput, ""},
		{"empty name", "?name=", htTokAdmin, 400, call.CodeInvalidInput, ""},
		{"other parameter", "?op=demo/echo", "", 400, call.CodeInvalidInput, ""},
		{"ok", "?name=demo/validated", "", 200, "", "demo/validated"},
		{"ok leading slash", "?name=%2Fdemo%2Fvalidated", "", 200, "", "demo/validated"},
		{"restricted anonymous", "?name=admin/op", "", 401, call.CodeForbidden, ""},
		{"restricted bogus token", "?name=admin/op", "bogus", 401, call.CodeForbidden, ""},
		{"restricted wrong scope", "?name=admin/op", htTokUser, 403, call.CodeForbidden, ""},
		{"restricted ok", "?name=admin/op", htTokAdmin, 200, "", "admin/op"},
		{"internal anonymous", "?name=demo/secret", "", 404, call.CodeNotFound, ""},
		{"internal with scopes", "?name=demo/secret", htTokAdmin, 404, call.CodeNotFound, ""},
		{"internal subscription", "?name=demo/hidden", htTokAdmin, 404, call.CodeNotFound, ""},
		{"unknown", "?name=demo/nosuch", "", 404, call.CodeNotFound, ""},
		{"unknown with token", "?name=demo/nosuch", htTokAdmin, 404, call.CodeNotFound, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := htGet(t, srv, "/schema"+tt.query, tt.tok)
			if tt.wantCode != "" {
				htCallError(t, resp, tt.wantStatus, tt.wantCode)
				return
			}
			env := htOK(t, resp)
			r, _ := reg.Lookup(tt.wantSpec)
			want, err := json.Marshal(r.Spec)
			if err != nil {
				t.Fatal(err)
			}
			if string(env.Output) != string(want) {
				t.Fatalf("output %s, want %s", env.Output, want)
			}
		})
	}
	// The spec is the full services/schema form.
	env := htOK(t, htGet(t, srv, "/schema?name=demo/validated", ""))
	var spec struct {
		Name          string          `json:"name"`
		Namespace     string          `json:"namespace"`
		OpType        string          `json:"op_type"`
		Visibility    string          `json:"visibility"`
		InputSchema   json.RawMessage `json:"input_schema"`
		OutputSchema  json.RawMessage `json:"output_schema"`
		ErrorSchemas  json.RawMessage `json:"error_schemas"`
		AccessControl json.RawMessage `json:"access_control"`
	}
	if err := json.Unmarshal(env.Output, &spec); err != nil {
		t.Fatal(err)
	}
	if spec.Name != "demo/validated" || spec.Namespace != "demo" || spec.OpType != "query" || spec.Visibility != "external" ||
		string(spec.InputSchema) != htInputSchema || string(spec.OutputSchema) != "null" || string(spec.ErrorSchemas) != "[]" ||
		!bytes.Contains(spec.AccessControl, []byte(`"required_scopes":[]`)) {
		t.Fatalf("spec %s is not the full services/schema form", env.Output)
	}
}

// Internal operations are indistinguishable from unknown ones on /call and /schema:
// same status, same headers, same body apart from the name (the two names have the
// same length, so even Content-Length matches).
func TestInternalIndistinguishableFromUnknownHTTP(t *testing.T) {
	srv := htServe(t, alkhttp.Config{})
	const internal, unknown = "demo/secret", "demo/nosuch"
	if len(internal) != len(unknown) {
		t.Fatalf("test names must have the same length")
	}
	for _, tok := range []string{"", htTokUser, htTokAdmin} {
		for _, route := range []string{"/call", "/schema"} {
			get := func(name string) htResp {
				if route == "/call" {
					return htPost(t, srv, "/call", tok, `{"operation":"`+name+`"}`)
				}
				return htGet(t, srv, "/schema?name="+name, tok)
			}
			a, b := get(internal), get(unknown)
			htCallError(t, a, 404, call.CodeNotFound)
			if a.status != b.status {
				t.Fatalf("%s token %q: status %d vs %d", route, tok, a.status, b.status)
			}
			if got, want := strings.Replace(string(a.body), internal, unknown, 1), string(b.body); got != want {
				t.Fatalf("%s token %q: body %q vs %q", route, tok, a.body, b.body)
			}
			ha, hb := a.header.Clone(), b.header.Clone()
			ha.Del("Date")
			hb.Del("Date")
			if fmt.Sprint(ha) != fmt.Sprint(hb) {
				t.Fatalf("%s token %q: headers %v vs %v", route, tok, ha, hb)
			}
		}
	}
}

// htCallRegistry adds the operations the /call tests need to htRegistry.
func htCallRegistry(t *testing.T) *call.Registry {
	t.Helper()
	r := htRegistry(t)
	status := func(n int) *int { return &n }
	limited := call.NewSpec("demo/limited", call.Query)
	limited.ErrorSchemas = []call.ErrorDefinition{
		{Code: "HTTP_429", Description: "rate limited", HTTPStatus: status(429)},
		{Code: "HTTP_503", Description: "unavailable", HTTPStatus: status(503)},
		{Code: "HTTP_404", Description: "upstream 404", HTTPStatus: status(404)},
		{Code: "FILE_NOT_FOUND", Description: "declared operation code"},
	}
	// demo/limited returns the CallError its input describes.
	htMustRegister(t, r, call.Registration{Spec: limited, Once: func(_ context.Context, _ *call.OpContext, in json.RawMessage) (json.RawMessage, error) {
		var e call.CallError
		if err := json.Unmarshal(in, &e); err != nil {
			return nil, err
		}
		return nil, &e
	}})
	htMustRegister(t, r, call.Registration{Spec: call.NewSpec("demo/undeclared", call.Query), Once: func(context.Context, *call.OpContext, json.RawMessage) (json.RawMessage, error) {
		return nil, &call.CallError{Code: "HTTP_429", Message: "not declared", Retryable: true, Details: json.RawMessage(`{"retry_after":5}`)}
	}})
	htMustRegister(t, r, call.Registration{Spec: call.NewSpec("demo/fails", call.Mutation), Once: func(context.Context, *call.OpContext, json.RawMessage) (json.RawMessage, error) {
		return nil, errors.New("boom")
	}})
	return r
}

func TestCallRoute(t *testing.T) {
	srv := htServe(t, alkhttp.Config{Registry: htCallRegistry(t)})
	tests := []struct {
		name        string
		contentType string // "-" for none
		tok         string
		body        string
		wantStatus  int
		wantCode    string // "" for success
		wantOutput  string
		retryAfter  string
	}{
		{"ok", "application/json", "", `{"operation":"demo/echo","input":{"a":[1,"x"]}}`, 200, "", `{"a":[1,"x"]}`, ""},
		{"leading slash", "application/json", "", `{"operation":"/demo/echo","input":2}`, 200, "", `2`, ""},
		{"input defaults to null", "application/json", "", `{"operation":"demo/echo"}`, 200, "", `null`, ""},
		{"explicit null input", "application/json", "", `{"operation":"demo/echo","input":null}`, 200, "", `null`, ""},
		{"nil output", "application/json", "", `{"operation":"demo/null"}`, 200, "", `null`, ""},
		{"unknown fields ignored", "application/json", "", `{"operation":"demo/echo","input":3,"extra":true}`, 200, "", `3`, ""},
		{"surrounding whitespace", "application/json", "", " \n\t{\"operation\":\"demo/echo\",\"input\":4}\r\n ", 200, "", `4`, ""},
		// Accepted content types.
		{"json charset", "application/json; charset=utf-8", "", `{"operation":"demo/echo","input":5}`, 200, "", `5`, ""},
		{"json uppercase", "Application/JSON", "", `{"operation":"demo/echo","input":5}`, 200, "", `5`, ""},
		{"curl -d form type", "application/x-www-form-urlencoded", "", `{"operation":"demo/echo","input":6}`, 200, "", `6`, ""},
		{"text/plain", "text/plain", "", `{"operation":"demo/echo","input":7}`, 200, "", `7`, ""},
		{"text/plain charset", "text/plain; charset=utf-8", "", `{"operation":"demo/echo","input":7}`, 200, "", `7`, ""},
		{"no content type", "-", "", `{"operation":"demo/echo","input":8}`, 200, "", `8`, ""},
		{"problem+json", "application/problem+json", "", `{"operation":"demo/echo","input":9}`, 200, "", `9`, ""},
		// Refused content types.
		{"multipart", "multipart/form-data; boundary=xyz", "", `{"operation":"demo/echo"}`, 400, call.CodeInvalidInput, "", ""},
		{"xml", "application/xml", "", `{"operation":"demo/echo"}`, 400, call.CodeInvalidInput, "", ""},
		{"html", "text/html", "", `{"operation":"demo/echo"}`, 400, call.CodeInvalidInput, "", ""},
		{"octet-stream", "application/octet-stream", "", `{"operation":"demo/echo"}`, 400, call.CodeInvalidInput, "", ""},
		{"malformed content type", "application/json; =", "", `{"operation":"demo/echo"}`, 400, call.CodeInvalidInput, "", ""},
		// Malformed bodies.
		{"empty body", "application/json", "", ``, 400, call.CodeInvalidInput, "", ""},
		{"not JSON", "application/json", "", `operation=demo/echo`, 400, call.CodeInvalidInput, "", ""},
		{"truncated JSON", "application/json", "", `{"operation":"demo/echo"`, 400, call.CodeInvalidInput, "", ""},
		{"string", "application/json", "", `"demo/echo"`, 400, call.CodeInvalidInput, "", ""},
		{"number", "application/json", "", `42`, 400, call.CodeInvalidInput, "", ""},
		{"null", "application/json", "", `null`, 400, call.CodeInvalidInput, "", ""},
		{"array", "application/json", "", `[{"operation":"demo/echo"}]`, 400, call.CodeInvalidInput, "", ""},
		{"missing operation", "application/json", "", `{"input":1}`, 400, call.CodeInvalidInput, "", ""},
		{"empty object", "application/json", "", `{}`, 400, call.CodeInvalidInput, "", ""},
		{"operation number", "application/json", "", `{"operation":5}`, 400, call.CodeInvalidInput, "", ""},
		{"operation null", "application/json", "", `{"operation":null}`, 400, call.CodeInvalidInput, "", ""},
		{"operation array", "application/json", "", `{"operation":["demo/echo"]}`, 400, call.CodeInvalidInput, "", ""},
		{"operation object", "application/json", "", `{"operation":{"name":"demo/echo"}}`, 400, call.CodeInvalidInput, "", ""},
		{"empty operation", "application/json", "", `{"operation":""}`, 400, call.CodeInvalidInput, "", ""},
		{"slash operation", "application/json", "", `{"operation":"/"}`, 400, call.CodeInvalidInput, "", ""},
		{"trailing garbage", "application/json", "", `{"operation":"demo/echo"} x`, 400, call.CodeInvalidInput, "", ""},
		{"two objects", "application/json", "", `{"operation":"demo/echo"}{}`, 400, call.CodeInvalidInput, "", ""},
		{"operation twice", "application/json", "", `{"operation":"demo/nosuch","operation":"demo/echo"}`, 400, call.CodeInvalidInput, "", ""},
		{"input twice", "application/json", "", `{"operation":"demo/echo","input":1,"input":2}`, 400, call.CodeInvalidInput, "", ""},
		{"operation in other case", "application/json", "", `{"Operation":"demo/echo"}`, 400, call.CodeInvalidInput, "", ""},
		{"invalid input value", "application/json", "", `{"operation":"demo/echo","input":[1,}`, 400, call.CodeInvalidInput, "", ""},
		// Dispatch errors.
		{"unknown", "application/json", "", `{"operation":"demo/nosuch"}`, 404, call.CodeNotFound, "", ""},
		{"internal", "application/json", htTokAdmin, `{"operation":"demo/secret"}`, 404, call.CodeNotFound, "", ""},
		{"internal leading slash", "application/json", htTokAdmin, `{"operation":"/demo/secret"}`, 404, call.CodeNotFound, "", ""},
		{"restricted anonymous", "application/json", "", `{"operation":"admin/op"}`, 401, call.CodeForbidden, "", ""},
		{"restricted bogus token", "application/json", "bogus", `{"operation":"admin/op"}`, 401, call.CodeForbidden, "", ""},
		{"restricted wrong scope", "application/json", htTokUser, `{"operation":"admin/op"}`, 403, call.CodeForbidden, "", ""},
		{"restricted ok", "application/json", htTokAdmin, `{"operation":"admin/op"}`, 200, "", `{"ok":true}`, ""},
		{"schema violation", "application/json", "", `{"operation":"demo/validated","input":{"msg":1}}`, 422, call.CodeInvalidInput, "", ""},
		{"schema missing input", "application/json", "", `{"operation":"demo/validated"}`, 422, call.CodeInvalidInput, "", ""},
		{"schema ok", "application/json", "", `{"operation":"demo/validated","input":{"msg":"hi"}}`, 200, "", `{"msg":"hi"}`, ""},
		{"subscription", "application/json", "", `{"operation":"demo/ticks"}`, 400, call.CodeInvalidOperationType, "", ""},
		{"handler error", "application/json", "", `{"operation":"demo/fails"}`, 500, call.CodeInternal, "", ""},
		{"undeclared HTTP code", "application/json", "", `{"operation":"demo/undeclared"}`, 500, call.CodeInternal, "", ""},
		// Declared operation-level errors.
		{"declared 429 numeric", "application/json", "", `{"operation":"demo/limited","input":{"code":"HTTP_429","message":"slow down","retryable":true,"details":{"retry_after":2}}}`, 429, "HTTP_429", "", "2"},
		{"declared 429 string", "application/json", "", `{"operation":"demo/limited","input":{"code":"HTTP_429","message":"slow down","retryable":true,"details":{"retry_after":"Wed, 21 Oct 2015 07:28:00 GMT"}}}`, 429, "HTTP_429", "", "Wed, 21 Oct 2015 07:28:00 GMT"},
		{"declared 429 not retryable", "application/json", "", `{"operation":"demo/limited","input":{"code":"HTTP_429","message":"no","details":{"retry_after":2}}}`, 429, "HTTP_429", "", ""},
		{"declared 503 retryable", "application/json", "", `{"operation":"demo/limited","input":{"code":"HTTP_503","message":"down","retryable":true,"details":{"retry_after":9}}}`, 503, "HTTP_503", "", "9"},
		{"declared 503 not retryable", "application/json", "", `{"operation":"demo/limited","input":{"code":"HTTP_503","message":"down","details":{"retry_after":9}}}`, 503, "HTTP_503", "", ""},
		{"declared 404", "application/json", "", `{"operation":"demo/limited","input":{"code":"HTTP_404","message":"gone"}}`, 404, "HTTP_404", "", ""},
		{"declared operation code", "application/json", "", `{"operation":"demo/limited","input":{"code":"FILE_NOT_FOUND","message":"no file"}}`, 500, "FILE_NOT_FOUND", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var headers []string
			if tt.contentType != "-" {
				headers = append(headers, "Content-Type", tt.contentType)
			}
			headers = append(headers, htBearer(tt.tok)...)
			resp := htDo(t, srv, htReq{method: http.MethodPost, path: "/call", body: strings.NewReader(tt.body), headers: headers})
			if got := resp.header.Get("Retry-After"); got != tt.retryAfter {
				t.Fatalf("Retry-After %q, want %q", got, tt.retryAfter)
			}
			if tt.wantCode != "" {
				htCallError(t, resp, tt.wantStatus, tt.wantCode)
				return
			}
			env := htOK(t, resp)
			if string(env.Output) != tt.wantOutput {
				t.Fatalf("output %s, want %s", env.Output, tt.wantOutput)
			}
		})
	}
}

// The CallError of a declared error reaches the HTTP client unchanged.
func TestCallRouteErrorBody(t *testing.T) {
	srv := htServe(t, alkhttp.Config{Registry: htCallRegistry(t)})
	resp := htPost(t, srv, "/call", "", `{"operation":"demo/limited","input":{"code":"HTTP_429","message":"slow down","retryable":true,"details":{"retry_after":2}}}`)
	if want := `{"code":"HTTP_429","message":"slow down","retryable":true,"details":{"retry_after":2}}` + "\n"; string(resp.body) != want {
		t.Fatalf("body %q, want %q", resp.body, want)
	}
	resp = htPost(t, srv, "/call", "", `{"operation":"demo/nosuch"}`)
	if want := `{"code":"NOT_FOUND","message":"operation not found: demo/nosuch","retryable":false}` + "\n"; string(resp.body) != want {
		t.Fatalf("body %q, want %q", resp.body, want)
	}
}

func TestCallRouteTimeout(t *testing.T) {
	reg := htRegistry(t)
	observed := make(chan struct{})
	htMustRegister(t, reg, call.Registration{
		Spec: call.NewSpec("demo/slow", call.Query),
		Once: func(ctx context.Context, _ *call.OpContext, _ json.RawMessage) (json.RawMessage, error) {
			select {
			case <-ctx.Done():
				close(observed)
				return nil, ctx.Err()
			case <-time.After(htGuard):
				return nil, errors.New("the call timeout never fired")
			}
		},
	})
	srv := htServe(t, alkhttp.Config{Registry: reg, CallTimeout: time.Millisecond})
	resp := htPost(t, srv, "/call", "", `{"operation":"demo/slow"}`)
	e := htCallError(t, resp, http.StatusGatewayTimeout, call.CodeTimeout)
	if !e.Retryable || resp.header.Get("Retry-After") != "" {
		t.Fatalf("TIMEOUT %+v with Retry-After %q; want retryable and no header", e, resp.header.Get("Retry-After"))
	}
	select {
	case <-observed:
	default:
		t.Fatalf("the handler did not observe the timeout")
	}
}

// htPadded returns open + spaces + close, exactly n bytes long.
func htPadded(t *testing.T, open, close string, n int) string {
	t.Helper()
	pad := n - len(open) - len(close)
	if pad < 0 {
		t.Fatalf("body %q%q is longer than %d", open, close, n)
	}
	return open + strings.Repeat(" ", pad) + close
}

// htChunked hides the length of r so that the client sends it chunked.
type htChunked struct{ r io.Reader }

func (c htChunked) Read(p []byte) (int, error) { return c.r.Read(p) }

// A body of exactly MaxBodyBytes is read; one more byte is 413 HTTP_413, whether the
// length is announced or the body is chunked.
func TestBodyLimit(t *testing.T) {
	const limit = 64
	srv := htServe(t, alkhttp.Config{Limits: alkhttp.Limits{MaxBodyBytes: limit}})
	tests := []struct {
		route, open, close string
	}{
		{"/call", `{"operation":"demo/echo","input":1`, `}`},
		{"/batch", `[{"operation":"demo/echo","input":1}`, `]`},
		{"/subscribe", `{"operation":"demo/ticks"`, `}`},
	}
	for _, tt := range tests {
		for _, chunked := range []bool{false, true} {
			for _, size := range []int{limit, limit + 1, 10 * limit} {
				t.Run(fmt.Sprintf("%s chunked=%v %d", tt.route, chunked, size), func(t *testing.T) {
					body := htPadded(t, tt.open, tt.close, size)
					var r io.Reader = strings.NewReader(body)
					if chunked {
						r = htChunked{r}
					}
					resp := htDo(t, srv, htReq{method: http.MethodPost, path: tt.route, body: r, headers: []string{"Content-Type", "application/json"}})
					if size > limit {
						e := htCallError(t, resp, http.StatusRequestEntityTooLarge, "HTTP_413")
						if !strings.Contains(e.Message, "64") {
							t.Fatalf("message %q does not name the limit", e.Message)
						}
						return
					}
					if resp.status != http.StatusOK {
						t.Fatalf("status %d for a body of exactly the limit; body %s", resp.status, resp.body)
					}
				})
			}
		}
	}
}

// htBatchItem is one entry of a /batch answer, keys kept to check their presence.
type htBatchItem map[string]json.RawMessage

func htBatch(t *testing.T, resp htResp) []htBatchItem {
	t.Helper()
	if resp.status != http.StatusOK {
		t.Fatalf("status %d, want 200; body %s", resp.status, resp.body)
	}
	var body map[string][]htBatchItem
	if err := json.Unmarshal(resp.body, &body); err != nil || len(body) != 1 || body["results"] == nil {
		t.Fatalf("batch body %s: want exactly {results: [...]} (%v)", resp.body, err)
	}
	return body["results"]
}

func TestBatchRoute(t *testing.T) {
	srv := htServe(t, alkhttp.Config{Registry: htCallRegistry(t)})

	if resp := htPost(t, srv, "/batch", "", `[]`); resp.status != 200 || string(resp.body) != `{"results":[]}`+"\n" {
		t.Fatalf("empty batch = %d %q, want 200 {\"results\":[]}", resp.status, resp.body)
	}

	body := `[
		{"operation":"demo/echo","input":{"i":0}},
		{"operation":"admin/op"},
		{"operation":"demo/secret"},
		{"operation":"demo/nosuch"},
		42,
		{"operation":""},
		{"operation":"/demo/echo","input":6},
		{"operation":"demo/validated","input":{}},
		{"operation":"/demo/secret"},
		{"operation":"demo/ticks"},
		{"operation":"demo/limited","input":{"code":"HTTP_429","message":"later","retryable":true,"details":{"retry_after":1}}},
		{"input":1}
	]`
	type want struct {
		requestID bool   // a UUIDv4 (else null)
		output    string // for ok items
		code      string // for error items
		message   string // checked when set
	}
	wants := []want{
		{requestID: true, output: `{"i":0}`},
		{requestID: true, code: call.CodeForbidden},
		{code: call.CodeNotFound, message: "operation not found: demo/secret"},
		{code: call.CodeNotFound, message: "operation not found: demo/nosuch"},
		{code: call.CodeInvalidInput},
		{code: call.CodeInvalidInput},
		{requestID: true, output: `6`},
		{requestID: true, code: call.CodeInvalidInput},
		{code: call.CodeNotFound, message: "operation not found: demo/secret"},
		{requestID: true, code: call.CodeInvalidOperationType},
		{requestID: true, code: "HTTP_429"},
		{code: call.CodeInvalidInput},
	}
	items := htBatch(t, htPost(t, srv, "/batch", "", body))
	if len(items) != len(wants) {
		t.Fatalf("%d results, want %d", len(items), len(wants))
	}
	for i, w := range wants {
		it := items[i]
		if w.requestID {
			var rid string
			if err := json.Unmarshal(it["request_id"], &rid); err != nil || !htUUIDv4.MatchString(rid) {
				t.Fatalf("item %d: request_id %s, want a UUIDv4", i, it["request_id"])
			}
		} else if string(it["request_id"]) != "null" {
			t.Fatalf("item %d: request_id %s, want null", i, it["request_id"])
		}
		if w.code == "" {
			if string(it["result"]) != `"ok"` || string(it["output"]) != w.output || it["error"] != nil || len(it) != 3 {
				t.Fatalf("item %d = %v, want ok with output %s", i, it, w.output)
			}
			continue
		}
		if string(it["result"]) != `"error"` || it["output"] != nil || len(it) != 3 {
			t.Fatalf("item %d = %v, want {request_id, result: error, error}", i, it)
		}
		var e call.CallError
		if err := json.Unmarshal(it["error"], &e); err != nil || e.Code != w.code {
			t.Fatalf("item %d: error %s, want code %s", i, it["error"], w.code)
		}
		if w.message != "" && e.Message != w.message {
			t.Fatalf("item %d: message %q, want %q", i, e.Message, w.message)
		}
	}
	// An Internal item is the unknown item with another name.
	internal, unknown := items[2]["error"], items[3]["error"]
	if strings.Replace(string(internal), "demo/secret", "demo/nosuch", 1) != string(unknown) {
		t.Fatalf("Internal item %s differs from unknown item %s", internal, unknown)
	}

	// The identity applies to every item.
	items = htBatch(t, htPost(t, srv, "/batch", htTokAdmin, `[{"operation":"admin/op"},{"operation":"demo/secret"}]`))
	if string(items[0]["output"]) != `{"ok":true}` || string(items[1]["request_id"]) != "null" {
		t.Fatalf("admin batch = %v", items)
	}
	// Two items get two request ids.
	items = htBatch(t, htPost(t, srv, "/batch", "", `[{"operation":"demo/echo"},{"operation":"demo/echo"}]`))
	if string(items[0]["request_id"]) == string(items[1]["request_id"]) {
		t.Fatalf("two items share the request id %s", items[0]["request_id"])
	}
}

func TestBatchRouteBadBody(t *testing.T) {
	srv := htServe(t, alkhttp.Config{})
	for _, body := range []string{``, `{}`, `{"operation":"demo/echo"}`, `null`, `"x"`, `1`, `[1,`, `[] x`, `not json`} {
		htCallError(t, htPost(t, srv, "/batch", "", body), 400, call.CodeInvalidInput)
	}
	resp := htDo(t, srv, htReq{method: http.MethodPost, path: "/batch", body: strings.NewReader(`[]`), headers: []string{"Content-Type", "application/xml"}})
	htCallError(t, resp, 400, call.CodeInvalidInput)
}

func TestBatchRouteItemLimit(t *testing.T) {
	const limit = 3
	srv := htServe(t, alkhttp.Config{Limits: alkhttp.Limits{MaxBatchItems: limit}})
	batch := func(n int) string {
		items := make([]string, n)
		for i := range items {
			items[i] = fmt.Sprintf(`{"operation":"demo/echo","input":%d}`, i)
		}
		return "[" + strings.Join(items, ",") + "]"
	}
	items := htBatch(t, htPost(t, srv, "/batch", "", batch(limit)))
	if len(items) != limit {
		t.Fatalf("%d results, want %d", len(items), limit)
	}
	for i, it := range items {
		if string(it["output"]) != fmt.Sprint(i) {
			t.Fatalf("item %d output %s", i, it["output"])
		}
	}
	e := htCallError(t, htPost(t, srv, "/batch", "", batch(limit+1)), http.StatusRequestEntityTooLarge, "HTTP_413")
	if !strings.Contains(e.Message, "3") {
		t.Fatalf("message %q does not name the limit", e.Message)
	}
}

func TestOpenAPIRoute(t *testing.T) {
	srv := htServe(t, alkhttp.Config{})
	for _, tok := range []string{"", htTokAdmin, "bogus"} {
		resp := htGet(t, srv, "/openapi.json", tok)
		if resp.status != http.StatusOK {
			t.Fatalf("GET /openapi.json = %d %s", resp.status, resp.body)
		}
		if ct := resp.header.Get("Content-Type"); ct != "application/json" {
			t.Fatalf("Content-Type %q, want application/json", ct)
		}
		var doc struct {
			OpenAPI string `json:"openapi"`
			Info    struct {
				Version string `json:"version"`
			} `json:"info"`
		}
		if err := json.Unmarshal(resp.body, &doc); err != nil {
			t.Fatalf("/openapi.json is not JSON: %v", err)
		}
		if doc.OpenAPI != "3.0.0" {
			t.Fatalf("openapi %q, want 3.0.0", doc.OpenAPI)
		}
		if bytes.Contains(resp.body, []byte("demo/secret")) || bytes.Contains(resp.body, []byte("demo/hidden")) {
			t.Fatalf("/openapi.json names an Internal operation")
		}
	}
}

// Exactly one leading "/" is stripped, and every route agrees: "//demo/echo" names no
// operation on /call, /schema and /subscribe, as it already does on /batch.
func TestDoubleSlashOperation(t *testing.T) {
	srv := htServe(t, alkhttp.Config{})
	items := htBatch(t, htPost(t, srv, "/batch", "", `[{"operation":"//demo/echo"}]`))
	var e call.CallError
	if err := json.Unmarshal(items[0]["error"], &e); err != nil || e.Code != call.CodeNotFound {
		t.Fatalf("/batch //demo/echo = %v, want NOT_FOUND", items[0])
	}
	htCallError(t, htPost(t, srv, "/call", "", `{"operation":"//demo/echo"}`), 404, call.CodeNotFound)
	htCallError(t, htGet(t, srv, "/schema?name=//demo/echo", ""), 404, call.CodeNotFound)
	if e := htErrorFrameCode(t, htSubscribe(t, srv, "", `{"operation":"//demo/ticks"}`)); e.Code != call.CodeNotFound {
		t.Fatalf("/subscribe //demo/ticks = %+v, want NOT_FOUND", e)
	}
}
