package openapi

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/alknet/alknet/call"
)

// fwdDoc has GET /items/{id} (query items_get), POST /items/{id}/{rest} (mutation
// items_post) with a JSON body and a header parameter.
const fwdDoc = `{"info":{},"paths":{
	"/items/{id}":{"get":{"operationId":"get","parameters":[{"name":"id","in":"path","required":true,"schema":{}}]}},
	"/items/{id}/x/{rest}":{"post":{"operationId":"post",
		"parameters":[{"name":"X-Trace","in":"header","schema":{}}],
		"requestBody":{"content":{"application/json":{"schema":{}}}}}},
	"/plain":{"get":{"operationId":"plain"}}}}`

// fwdRegistry imports fwdDoc against up with cfg's fields set on an exposed config.
func fwdRegistry(t *testing.T, up *upstream, base string, mod func(*ServiceConfig), caps map[string][]byte) *call.Registry {
	t.Helper()
	cfg := exposed("svc", up.URL+base)
	if mod != nil {
		mod(&cfg)
	}
	return newRegistry(t, mustImport(t, mustParse(t, fwdDoc), cfg, up.Client()), caps)
}

func TestPathSubstitution(t *testing.T) {
	up := newUpstream(t, jsonReply(200, `{}`))
	r := fwdRegistry(t, up, "", nil, nil)
	for in, want := range map[string]string{
		`{"id":"a/b c"}`:      "/items/a%2Fb%20c",
		`{"id":"é?#%"}`:       "/items/%C3%A9%3F%23%25",
		`{"id":42}`:           "/items/42",
		`{"id":-1.5e3}`:       "/items/-1.5e3",
		`{"id":true}`:         "/items/true",
		`{"id":null}`:         "/items/",
		`{"id":{"k":[1, 2]}}`: "/items/%7B%22k%22:%5B1%2C2%5D%7D",
		`{"id":"x","z":1}`:    "/items/x?z=1",
	} {
		mustInvoke(t, r, "svc/get", in)
		if got := up.last(t).RequestURI; got != want {
			t.Errorf("%s: request URI %s, want %s", in, got, want)
		}
	}
	// A template variable without a field: INVALID_INPUT (the schema did not
	// require it: "rest" is not a declared parameter).
	_, cerr := invoke(t, r, "svc/post", `{"id":"1","body":{}}`)
	wantCode(t, cerr, call.CodeInvalidInput)
	if !strings.Contains(cerr.Message, `"rest"`) {
		t.Errorf("message %q", cerr.Message)
	}
	mustInvoke(t, r, "svc/post", `{"id":"1","rest":"r","body":{"a":1}}`)
	if got := up.last(t); got.RequestURI != "/items/1/x/r" || got.Body != `{"a":1}` {
		t.Errorf("request %s %s", got.RequestURI, got.Body)
	}
}

func TestQueryEncoding(t *testing.T) {
	up := newUpstream(t, jsonReply(200, `{}`))
	r := fwdRegistry(t, up, "/base?key=k%201", nil, nil)
	mustInvoke(t, r, "svc/plain", `{"s":"a b+c&d","n":1.50,"b":false,"arr":["x",2,null,{"o":1}],"obj":{"p":[true]},"nil":null,"empty":[]}`)
	got := up.last(t)
	want := "/base/plain?key=k%201&arr=x&arr=2&arr=%7B%22o%22%3A1%7D&b=false&n=1.50&obj=%7B%22p%22%3A%5Btrue%5D%7D&s=a%20b%2Bc%26d"
	if got.RequestURI != want {
		t.Errorf("request URI\n got %s\nwant %s", got.RequestURI, want)
	}
	if q := got.Query; q.Get("s") != "a b+c&d" || q.Get("obj") != `{"p":[true]}` || len(q["arr"]) != 3 || q.Has("nil") || q.Has("empty") {
		t.Errorf("query %v", q)
	}
}

func TestBaseURLJoin(t *testing.T) {
	up := newUpstream(t, jsonReply(200, `{}`))
	for base, want := range map[string]string{"": "/plain", "/": "/plain", "/api/v3": "/api/v3/plain", "/api/v3/": "/api/v3/plain", "/a%2Fb": "/a%2Fb/plain"} {
		r := fwdRegistry(t, up, base, nil, nil)
		mustInvoke(t, r, "svc/plain", `{}`)
		if got := up.last(t).RequestURI; got != want {
			t.Errorf("base %q: request URI %s, want %s", base, got, want)
		}
	}
}

func TestHeaders(t *testing.T) {
	up := newUpstream(t, jsonReply(200, `{}`))
	r := fwdRegistry(t, up, "", func(c *ServiceConfig) {
		c.DefaultHeaders = http.Header{"X-Client": {"alknet"}, "Accept": {"text/html"}, "Content-Type": {"text/plain"}}
	}, nil)
	mustInvoke(t, r, "svc/post", `{"id":1,"rest":2,"body":[1],"X-Trace":["a","b"]}`)
	h := up.last(t).Header
	if h.Get("X-Client") != "alknet" || h.Get("Accept") != "*/*" || h.Get("Content-Type") != "application/json" || h.Get("X-Trace") != "a,b" {
		t.Errorf("headers %v", h)
	}
	if got := up.last(t).RequestURI; got != "/items/1/x/2" {
		t.Errorf("header parameter sent in the query: %s", got)
	}
	// No body: no Content-Type (beyond a default header).
	mustInvoke(t, r, "svc/get", `{"id":1}`)
	if h := up.last(t).Header; h.Get("Content-Type") != "text/plain" || h.Get("X-Trace") != "" {
		t.Errorf("headers %v", h)
	}
	// A header parameter with a line break is refused.
	_, cerr := invoke(t, r, "svc/post", `{"id":1,"rest":2,"body":1,"X-Trace":"a\r\nX-Evil: 1"}`)
	wantCode(t, cerr, call.CodeInvalidInput)
}

func TestAuthKinds(t *testing.T) {
	up := newUpstream(t, jsonReply(200, `{}`))
	userPass := base64.StdEncoding.EncodeToString([]byte("user:pa:ss"))
	for _, tc := range []struct {
		name   string
		auth   Auth
		caps   map[string][]byte
		header string
		want   string
	}{
		{"bearer", Auth{Kind: AuthBearer}, map[string][]byte{"api_key:svc": []byte("tok")}, "Authorization", "Bearer tok"},
		{"bearer http_token", Auth{Kind: AuthBearer}, map[string][]byte{"http_token:svc": []byte("tok2")}, "Authorization", "Bearer tok2"},
		{"header", Auth{Kind: AuthHeader, Header: "X-API-Key"}, map[string][]byte{"api_key:svc": []byte("k")}, "X-API-Key", "k"},
		{"basic user:pass", Auth{Kind: AuthBasic}, map[string][]byte{"api_key:svc": []byte("user:pa:ss")}, "Authorization", "Basic " + userPass},
		{"basic encoded", Auth{Kind: AuthBasic}, map[string][]byte{"api_key:svc": []byte(userPass)}, "Authorization", "Basic " + userPass},
		{"none", Auth{Kind: AuthNone}, map[string][]byte{"api_key:svc": []byte("tok")}, "Authorization", ""},
		{"missing capability", Auth{Kind: AuthBearer}, nil, "Authorization", ""},
		{"other namespace", Auth{Kind: AuthBearer}, map[string][]byte{"api_key:other": []byte("tok")}, "Authorization", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := fwdRegistry(t, up, "", func(c *ServiceConfig) { c.Auth = tc.auth }, tc.caps)
			mustInvoke(t, r, "svc/plain", `{}`)
			h := up.last(t).Header
			if got := h.Get(tc.header); got != tc.want {
				t.Errorf("%s = %q, want %q", tc.header, got, tc.want)
			}
			if tc.want == "" && (h.Get("Authorization") != "" || h.Get("X-API-Key") != "") {
				t.Errorf("unexpected auth header %v", h)
			}
		})
	}
	// A credential that cannot be a header value: INTERNAL, and not quoted.
	r := fwdRegistry(t, up, "", func(c *ServiceConfig) { c.Auth = Auth{Kind: AuthBearer} }, map[string][]byte{"api_key:svc": []byte("se\ncret")})
	_, cerr := invoke(t, r, "svc/plain", `{}`)
	wantCode(t, cerr, call.CodeInternal)
	if strings.Contains(cerr.Error(), "cret") {
		t.Errorf("error %v shows the credential", cerr)
	}
}

func TestResponseBranches(t *testing.T) {
	var ct, body string
	status := 200
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		if ct != "" {
			w.Header().Set("Content-Type", ct)
		} else {
			w.Header()["Content-Type"] = nil
		}
		w.WriteHeader(status)
		io.WriteString(w, body)
	})
	r := fwdRegistry(t, up, "", nil, nil)
	for _, tc := range []struct {
		ct, body string
		status   int
		want     string
	}{
		{"application/json", `{"a": [1, 2]}`, 200, `{"a": [1, 2]}`},
		{"application/json; charset=utf-8", `"s"`, 201, `"s"`},
		{"Application/JSON", `3`, 200, `3`},
		{"text/plain; charset=utf-8", "hello\n\"world\"", 200, `"hello\n\"world\""`},
		{"text/html", "<b>x</b>", 200, `"<b>x</b>"`},
		{"application/octet-stream", "\x00\x01\xff", 200, `"AAH/"`},
		{"", "raw", 200, `"cmF3"`},
		{"application/xml", "<a/>", 200, `"PGEvPg=="`},
		{"application/json", "", 204, `null`},
		{"text/plain", "", 200, `null`},
	} {
		ct, body, status = tc.ct, tc.body, tc.status
		if got := mustInvoke(t, r, "svc/plain", `{}`); got != tc.want {
			t.Errorf("%q %q: output %s, want %s", tc.ct, tc.body, got, tc.want)
		}
	}
	ct, body, status = "application/json", `{"a":`, 200
	_, cerr := invoke(t, r, "svc/plain", `{}`)
	wantCode(t, cerr, call.CodeInternal)
	if !strings.Contains(cerr.Message, "not valid JSON") {
		t.Errorf("message %q", cerr.Message)
	}
	// Non-2xx: a text body is not put in details; a large JSON one neither.
	ct, body, status = "text/plain", "nope", 400
	_, cerr = invoke(t, r, "svc/plain", `{}`)
	if cerr == nil || cerr.Code != call.CodeInternal || !strings.Contains(string(cerr.Details), `"original_code":"HTTP_400"`) || strings.Contains(string(cerr.Details), "nope") {
		t.Errorf("400: %v %s", cerr, cerr.Details)
	}
	ct, body, status = "application/json", `["`+strings.Repeat("x", maxErrorBody)+`"]`, 429
	_, cerr = invoke(t, r, "svc/plain", `{}`)
	wantCode(t, cerr, "HTTP_429")
	if cerr.Details != nil || !cerr.Retryable {
		t.Errorf("429: %+v", cerr)
	}
	ct, body, status = "application/json", `{"e": 1}`, 599
	_, cerr = invoke(t, r, "svc/plain", `{}`)
	if cerr == nil || !strings.Contains(cerr.Message, "HTTP 599: ") {
		t.Errorf("599: %v", cerr)
	}
}

func TestResponseSizeLimit(t *testing.T) {
	var size int
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, strings.Repeat("a", size))
	})
	for _, max := range []int{1000, 0} {
		limit := max
		if limit == 0 {
			limit = DefaultMaxResponseSize
		}
		r := fwdRegistry(t, up, "", func(c *ServiceConfig) { c.Limits.MaxResponseSize = max }, nil)
		size = limit
		if out := mustInvoke(t, r, "svc/plain", `{}`); len(out) != limit+2 {
			t.Errorf("limit %d: output of %d bytes", limit, len(out))
		}
		size = limit + 1
		_, cerr := invoke(t, r, "svc/plain", `{}`)
		wantCode(t, cerr, call.CodeInternal)
		if want := fmt.Sprintf("exceeds the %d-byte limit", limit); !strings.Contains(cerr.Message, want) {
			t.Errorf("message %q, want %q", cerr.Message, want)
		}
	}
}

func TestTransportFailure(t *testing.T) {
	// A port nothing listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	cfg := exposed("svc", "http://"+addr+"/api?secret=s3")
	r := newRegistry(t, mustImport(t, mustParse(t, fwdDoc), cfg, client), nil)
	_, cerr := invoke(t, r, "svc/get", `{"id":"1","token":"t0k"}`)
	wantCode(t, cerr, call.CodeInternal)
	if !strings.HasPrefix(cerr.Message, "request failed") || strings.Contains(cerr.Message, "s3") || strings.Contains(cerr.Message, "t0k") {
		t.Errorf("message %q", cerr.Message)
	}

	// A cancelled call returns the context error, not a transport error.
	block := make(chan struct{})
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	})
	defer close(block)
	r = newRegistry(t, mustImport(t, mustParse(t, fwdDoc), exposed("svc", up.URL), up.Client()), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, cerr = r.Invoke(ctx, "svc/plain", json.RawMessage(`{}`), rootContext(t, r, "svc/plain"))
	wantCode(t, cerr, call.CodeTimeout)
}

// errDoer fails every request.
type errDoer struct{}

func (errDoer) Do(*http.Request) (*http.Response, error) { return nil, errors.New("custom failure") }

func TestInvalidInputShape(t *testing.T) {
	up := newUpstream(t, jsonReply(200, `{}`))
	ep := &endpoint{svc: &service{ns: "svc", client: up.Client()}, method: "GET", path: parseTemplate("/x")}
	for _, in := range []string{`[]`, `"s"`, `1`, `{`} {
		_, err := ep.once(context.Background(), nil, json.RawMessage(in))
		var ce *call.CallError
		if !errors.As(err, &ce) || ce.Code != call.CodeInvalidInput {
			t.Errorf("%s: %v", in, err)
		}
	}
	r := newRegistry(t, mustImport(t, mustParse(t, fwdDoc), exposed("svc", "http://u.invalid"), errDoer{}), nil)
	_, cerr := invoke(t, r, "svc/plain", `{}`)
	if cerr == nil || cerr.Message != "request failed: custom failure" {
		t.Errorf("error %v", cerr)
	}
}

func TestFromJSONSchema(t *testing.T) {
	up := newUpstream(t, jsonReply(200, `{"ok":true}`))
	spec := call.NewSpec("weather/current", call.Query)
	spec.Visibility = call.External
	spec.InputSchema = json.RawMessage(`{"type":"object","properties":{"city":{"type":"string"},"units":{"type":"string"}},"required":["city"]}`)
	reg, err := FromJSONSchema(spec, ServiceConfig{BaseURL: up.URL + "/v1", Auth: Auth{Kind: AuthHeader, Header: "X-Key"}, Expose: false}, "get", "/current/{city}", up.Client())
	if err != nil {
		t.Fatal(err)
	}
	if reg.Provenance != call.ProvenanceFromJSONSchema || reg.Spec.Visibility != call.External || reg.Once == nil || reg.Stream != nil {
		t.Fatalf("registration %+v", reg)
	}
	r := newRegistry(t, []call.Registration{reg}, map[string][]byte{"api_key:weather": []byte("wk")})
	if out := mustInvoke(t, r, "weather/current", `{"city":"New York","units":"metric"}`); out != `{"ok":true}` {
		t.Errorf("output %s", out)
	}
	got := up.last(t)
	if got.Method != "GET" || got.RequestURI != "/v1/current/New%20York?units=metric" || got.Header.Get("X-Key") != "wk" {
		t.Errorf("request %s %s %v", got.Method, got.RequestURI, got.Header)
	}
	_, cerr := invoke(t, r, "weather/current", `{"units":"metric"}`)
	wantCode(t, cerr, call.CodeInvalidInput)

	// A subscription gets a stream handler; bad arguments are ErrConfig.
	sub := call.NewSpec("weather/watch", call.Subscription)
	if reg, err := FromJSONSchema(sub, ServiceConfig{Namespace: "weather", BaseURL: up.URL}, "POST", "/watch", up.Client()); err != nil || reg.Stream == nil || reg.Once != nil {
		t.Errorf("subscription: %+v %v", reg, err)
	}
	for name, f := range map[string]func() error{
		"method": func() error {
			_, err := FromJSONSchema(spec, ServiceConfig{BaseURL: up.URL}, "TRACE", "/", up.Client())
			return err
		},
		"name": func() error {
			s := spec
			s.Name = "a//b"
			_, err := FromJSONSchema(s, ServiceConfig{BaseURL: up.URL}, "GET", "/", up.Client())
			return err
		},
		"type": func() error {
			s := spec
			s.Type = 7
			_, err := FromJSONSchema(s, ServiceConfig{BaseURL: up.URL}, "GET", "/", up.Client())
			return err
		},
		"base URL": func() error {
			_, err := FromJSONSchema(spec, ServiceConfig{BaseURL: "x"}, "GET", "/", up.Client())
			return err
		},
		"client": func() error {
			_, err := FromJSONSchema(spec, ServiceConfig{BaseURL: up.URL}, "GET", "/", nil)
			return err
		},
	} {
		if err := f(); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
