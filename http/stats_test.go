package http

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/alknet/alknet/call"
)

// TestHandlerStats: requests count by route and status class; random paths all count
// as "other", so the key set stays bounded.
func TestHandlerStats(t *testing.T) {
	extra := http.NewServeMux()
	extra.HandleFunc("GET /x/", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTeapot) })
	h, err := New(Config{Registry: call.NewRegistry(), Routes: extra})
	if err != nil {
		t.Fatal(err)
	}
	do := func(method, target, body string) int {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(method, target, strings.NewReader(body)))
		return rec.Code
	}
	if c := do("GET", "/healthz", ""); c != 200 {
		t.Fatalf("healthz: %d", c)
	}
	if c := do("POST", "/call", `{"operation":"services/list"}`); c != 200 {
		t.Fatalf("call: %d", c)
	}
	if c := do("POST", "/call", `{"operation":"no/such"}`); c != 404 {
		t.Fatalf("call of an unknown operation: %d", c)
	}
	if c := do("GET", "/x/y", ""); c != http.StatusTeapot {
		t.Fatalf("extra: %d", c)
	}
	for i := range 100 {
		do("GET", fmt.Sprintf("/r%d/%x", i, i*7919), "")
	}
	s := h.Stats()
	want := map[string]map[string]uint64{
		RouteHealthz: {"2xx": 1},
		RouteCall:    {"2xx": 1, "4xx": 1},
		RouteExtra:   {"4xx": 1},
		RouteOther:   {"4xx": 100},
	}
	if fmt.Sprint(s.Requests) != fmt.Sprint(want) {
		t.Fatalf("Requests = %v, want %v", s.Requests, want)
	}
}

// TestStatusWriterHijack: the writer passes Hijack on only when it can be hijacked.
func TestStatusWriterHijack(t *testing.T) {
	_, w := newStatusWriter(httptest.NewRecorder())
	if _, ok := w.(http.Hijacker); ok {
		t.Fatal("a recorder's wrapper claims to be a Hijacker")
	}
	_, w = newStatusWriter(hijackable{httptest.NewRecorder()})
	if _, ok := w.(http.Hijacker); !ok {
		t.Fatal("a hijackable writer's wrapper is no Hijacker")
	}
	if _, ok := w.(http.Flusher); !ok {
		t.Fatal("the wrapper is no Flusher")
	}
}

type hijackable struct{ *httptest.ResponseRecorder }

func (hijackable) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return nil, nil, http.ErrNotSupported
}

// BenchmarkServeHTTPHealthz measures the cheapest route through ServeHTTP, counting
// included (the status writer is one of its allocations).
func BenchmarkServeHTTPHealthz(b *testing.B) {
	h, err := New(Config{Registry: call.NewRegistry()})
	if err != nil {
		b.Fatal(err)
	}
	req := httptest.NewRequest("GET", "/healthz", nil)
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(httptest.NewRecorder(), req)
	}
}
