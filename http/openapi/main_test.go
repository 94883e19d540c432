package openapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alknet/alknet/call"
	"github.com/alknet/alknet/core"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// mustParse parses doc with Parse and default limits.
func mustParse(t testing.TB, doc string) *Document {
	t.Helper()
	d, err := Parse([]byte(doc), Limits{})
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return d
}

// mustImport imports doc for namespace ns at baseURL.
func mustImport(t testing.TB, d *Document, cfg ServiceConfig, client Doer) []call.Registration {
	t.Helper()
	regs, err := Import(d, cfg, client)
	if err != nil {
		t.Fatalf("Import: %v", err)
	}
	return regs
}

// newRegistry registers regs in a call.NewRegistry, each with caps (may be nil).
func newRegistry(t testing.TB, regs []call.Registration, caps map[string][]byte) *call.Registry {
	t.Helper()
	r := call.NewRegistry()
	for _, reg := range regs {
		if caps != nil {
			reg.Caps = core.NewCapabilities(caps)
		}
		if err := r.Register(reg); err != nil {
			t.Fatalf("Register %s: %v", reg.Spec.Name, err)
		}
	}
	return r
}

// rootContext is the root OpContext of a wire call to name (its Caps from the
// registration).
func rootContext(t testing.TB, r *call.Registry, name string) *call.OpContext {
	t.Helper()
	reg, ok := r.Lookup(name)
	if !ok {
		t.Fatalf("operation %s not registered", name)
	}
	return call.NewRootContext("", nil, nil, reg, nil, nil)
}

// invoke runs a Query or Mutation as a root call.
func invoke(t testing.TB, r *call.Registry, name, in string) (json.RawMessage, *call.CallError) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return r.Invoke(ctx, name, json.RawMessage(in), rootContext(t, r, name))
}

// mustInvoke runs a call that must succeed and returns its output.
func mustInvoke(t testing.TB, r *call.Registry, name, in string) string {
	t.Helper()
	out, cerr := invoke(t, r, name, in)
	if cerr != nil {
		t.Fatalf("Invoke %s: %v", name, cerr)
	}
	return string(out)
}

// invokeStream runs a Subscription as a root call and collects its items.
func invokeStream(t testing.TB, ctx context.Context, r *call.Registry, name, in string) ([]string, *call.CallError) {
	t.Helper()
	var items []string
	cerr := r.InvokeStream(ctx, name, json.RawMessage(in), rootContext(t, r, name), func(m json.RawMessage) error {
		items = append(items, string(m))
		return nil
	})
	return items, cerr
}

// seen is one request as the upstream received it.
type seen struct {
	Method     string
	RequestURI string
	Path       string // escaped
	Query      url.Values
	Header     http.Header
	Body       string
}

// upstream is an httptest server recording requests and answering with handler.
type upstream struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []seen
}

func newUpstream(t testing.TB, handler http.HandlerFunc) *upstream {
	t.Helper()
	u := &upstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		u.mu.Lock()
		u.reqs = append(u.reqs, seen{
			Method: r.Method, RequestURI: r.RequestURI, Path: r.URL.EscapedPath(),
			Query: r.URL.Query(), Header: r.Header.Clone(), Body: string(b),
		})
		u.mu.Unlock()
		handler(w, r)
	}))
	t.Cleanup(u.Close)
	return u
}

// last returns the last request received.
func (u *upstream) last(t testing.TB) seen {
	t.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.reqs) == 0 {
		t.Fatal("upstream received no request")
	}
	return u.reqs[len(u.reqs)-1]
}

// jsonReply answers status with a JSON body.
func jsonReply(status int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
}

// decode unmarshals JSON into a generic value.
func decode(t testing.TB, b []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("invalid JSON %s: %v", b, err)
	}
	return v
}

// at walks a decoded JSON value by keys (and array indexes as ints).
func at(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			a, ok := v.([]any)
			if !ok || k >= len(a) {
				return nil
			}
			v = a[k]
		}
	}
	return v
}

// wantParseErr checks that err wraps ErrSchemaParse and mentions every want.
func wantParseErr(t testing.TB, err error, want ...string) {
	t.Helper()
	if !errors.Is(err, ErrSchemaParse) {
		t.Fatalf("error %v does not wrap ErrSchemaParse", err)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %q", err, w)
		}
	}
}

// wantCode checks a CallError's code.
func wantCode(t testing.TB, cerr *call.CallError, code string) {
	t.Helper()
	if cerr == nil {
		t.Fatalf("got no error, want %s", code)
	}
	if cerr.Code != code {
		t.Fatalf("got error %v, want code %s", cerr, code)
	}
}

// specByName finds a registration.
func specByName(t testing.TB, regs []call.Registration, name string) call.Registration {
	t.Helper()
	for _, r := range regs {
		if r.Spec.Name == name {
			return r
		}
	}
	t.Fatalf("no operation %s", name)
	return call.Registration{}
}

// exposed is a ServiceConfig with Expose set, so that tests can call from the root.
func exposed(ns, base string) ServiceConfig {
	return ServiceConfig{Namespace: ns, BaseURL: base, Expose: true}
}

// noClient is a Doer for imports that are never called.
type noClient struct{}

func (noClient) Do(*http.Request) (*http.Response, error) {
	return nil, errors.New("noClient: no requests expected")
}
