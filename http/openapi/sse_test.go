package openapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/alknet/alknet/call"
)

// parseAll feeds input to a parser in chunks of size n (all at once for n <= 0)
// and returns the events and the error.
func parseAll(input []byte, n, maxLine, maxData int) ([]sseEvent, error) {
	p := newSSEParser(maxLine, maxData)
	var evs []sseEvent
	dispatch := func(ev sseEvent) error { evs = append(evs, ev); return nil }
	if n <= 0 {
		n = len(input) + 1
	}
	for len(input) > 0 {
		k := min(n, len(input))
		if err := p.feed(input[:k], dispatch); err != nil {
			return evs, err
		}
		input = input[k:]
	}
	return evs, nil
}

func TestSSEParser(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []sseEvent
	}{
		{"lf", "data: a\n\ndata: b\n\n", []sseEvent{{data: "a"}, {data: "b"}}},
		{"crlf", "data: a\r\n\r\ndata: b\r\n\r\n", []sseEvent{{data: "a"}, {data: "b"}}},
		{"cr", "data: a\r\rdata: b\r\r", []sseEvent{{data: "a"}, {data: "b"}}},
		{"mixed", "data: a\r\n\rdata: b\n\r\n", []sseEvent{{data: "a"}, {data: "b"}}},
		{"bom", "\xEF\xBB\xBFdata: a\n\n", []sseEvent{{data: "a"}}},
		{"bom only once", "\xEF\xBB\xBFdata: a\n\n\xEF\xBB\xBFdata: b\n\n", []sseEvent{{data: "a"}}},
		{"comments", ": hello\ndata: a\n: more\n\n:\n\n", []sseEvent{{data: "a"}}},
		{"multi-line", "data: a\ndata:b\ndata:  c\ndata\n\n", []sseEvent{{data: "a\nb\n c\n"}}},
		{"empty data", "data:\n\ndata\n\n", []sseEvent{{data: ""}, {data: ""}}},
		{"fields", "event: tick\nid: 7\nretry: 100\nfoo: bar\ndata: 1\n\n", []sseEvent{{event: "tick", data: "1"}}},
		{"no data", "event: x\nid: 1\n\ndata: 2\n\n", []sseEvent{{data: "2"}}},
		{"event reset", "event: x\ndata: 1\n\ndata: 2\n\n", []sseEvent{{event: "x", data: "1"}, {data: "2"}}},
		{"unterminated", "data: 1\n\ndata: 2\n", []sseEvent{{data: "1"}}},
		{"colon in value", "data: a: b\n\n", []sseEvent{{data: "a: b"}}},
		{"no space", "data:x\n\n", []sseEvent{{data: "x"}}},
	} {
		for _, n := range []int{0, 1, 2, 3, 5} {
			got, err := parseAll([]byte(tc.in), n, 100, 1000)
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Errorf("%s (chunks of %d): %+v, %v; want %+v", tc.name, n, got, err, tc.want)
			}
		}
	}
}

func TestSSEParserLimits(t *testing.T) {
	line := "data: " + strings.Repeat("x", 94) // 100 bytes
	for _, prefix := range []string{"", "\xEF\xBB\xBF"} {
		for _, n := range []int{0, 1, 7} {
			evs, err := parseAll([]byte(prefix+line+"\n\n"), n, 100, 1000)
			if err != nil || len(evs) != 1 {
				t.Errorf("bom %q chunks %d: a line at the limit: %v %v", prefix, n, evs, err)
			}
			_, err = parseAll([]byte(prefix+line+"x\n\n"), n, 100, 1000)
			if err == nil || !strings.Contains(err.Error(), "exceeds the 100-byte limit") {
				t.Errorf("bom %q chunks %d: a line over the limit: %v", prefix, n, err)
			}
			// Without a line end at all, too.
			_, err = parseAll([]byte(prefix+line+"x"), n, 100, 1000)
			if err == nil {
				t.Errorf("bom %q chunks %d: an unterminated line over the limit", prefix, n)
			}
		}
	}
	// Event data: 3 lines of 4 bytes ("aaa\n" each) fit 12 bytes, not 11.
	in := "data: aaa\ndata: aaa\ndata: aaa\n\n"
	if _, err := parseAll([]byte(in), 0, 100, 12); err != nil {
		t.Error(err)
	}
	if _, err := parseAll([]byte(in), 0, 100, 11); err == nil {
		t.Error("data over the limit accepted")
	}
}

// sseDoc has GET /events, a subscription.
const sseDoc = `{"info":{},"paths":{"/events":{"get":{"operationId":"events",
	"responses":{"200":{"content":{"text/event-stream":{"schema":{}}}}}}}}}`

// sseRegistry imports sseDoc against up.
func sseRegistry(t *testing.T, up *upstream, lim Limits) *call.Registry {
	t.Helper()
	cfg := exposed("sse", up.URL)
	cfg.Limits = lim
	return newRegistry(t, mustImport(t, mustParse(t, sseDoc), cfg, up.Client()), nil)
}

// chunked answers 200 text/event-stream with the pieces, flushed one by one.
func chunked(pieces ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(200)
		for _, p := range pieces {
			io.WriteString(w, p)
			w.(http.Flusher).Flush()
			time.Sleep(2 * time.Millisecond)
		}
	}
}

func TestSSEForwarding(t *testing.T) {
	up := newUpstream(t, chunked(
		"\xEF\xBB", "\xBF: welcome\r\n", "da", "ta: {\"n\":", "1}\r", "\n\r\n",
		"data: 2\n\ndata: three\n\nevent: tick\nid: 9\nretry: 5\ndata: [1,\n", "data: 2]\n\n",
		"data:\n\n", ": keep-alive\n\n", "data: \"quoted\"\r\rdata: tail-without-end\n",
	))
	r := sseRegistry(t, up, Limits{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	items, cerr := invokeStream(t, ctx, r, "sse/events", `{"topic":"a b"}`)
	if cerr != nil {
		t.Fatal(cerr)
	}
	want := []string{`{"n":1}`, `2`, `"three"`, "[1,\n2]", `null`, `"quoted"`}
	if !reflect.DeepEqual(items, want) {
		t.Errorf("items %q\nwant  %q", items, want)
	}
	got := up.last(t)
	if got.Header.Get("Accept") != "text/event-stream" || got.RequestURI != "/events?topic=a%20b" {
		t.Errorf("request %s %v", got.RequestURI, got.Header)
	}
}

func TestSSEEventError(t *testing.T) {
	for _, tc := range []struct {
		data      string
		code, msg string
		retryable bool
		details   string
	}{
		{`{"code":"HTTP_503","message":"busy","retryable":true,"details":{"x":1}}`, "HTTP_503", "busy", true, `{"x":1}`},
		{`{"code":"TIMEOUT","message":"slow"}`, "TIMEOUT", "slow", false, ``},
		{`something broke`, call.CodeInternal, "something broke", false, ``},
		{`{"message":"no code"}`, call.CodeInternal, `{"message":"no code"}`, false, ``},
	} {
		up := newUpstream(t, chunked("data: 1\n\n", "event: error\ndata: "+tc.data+"\n\n", "data: 2\n\n"))
		r := sseRegistry(t, up, Limits{})
		items, cerr := invokeStream(t, context.Background(), r, "sse/events", `{}`)
		if !reflect.DeepEqual(items, []string{"1"}) {
			t.Errorf("%s: items %v", tc.data, items)
		}
		if cerr == nil || cerr.Code != tc.code || cerr.Message != tc.msg || cerr.Retryable != tc.retryable || string(cerr.Details) != tc.details {
			t.Errorf("%s: error %+v (details %s)", tc.data, cerr, cerr.Details)
		}
	}
}

func TestSSELineLimit(t *testing.T) {
	for _, lim := range []int{64, 0} {
		max := lim
		if max == 0 {
			max = DefaultMaxSSELineSize
		}
		at := "data: \"" + strings.Repeat("x", max-8) + "\"" // exactly max bytes
		up := newUpstream(t, chunked(at[:max/2], at[max/2:]+"\n\n", "data: "+at[6:]+"x\n\n", "data: 3\n\n"))
		r := sseRegistry(t, up, Limits{MaxSSELineSize: lim})
		items, cerr := invokeStream(t, context.Background(), r, "sse/events", `{}`)
		if len(items) != 1 || len(items[0]) != max-6 {
			t.Errorf("limit %d: %d items", max, len(items))
		}
		wantCode(t, cerr, call.CodeInternal)
		if want := fmt.Sprintf("exceeds the %d-byte limit", max); !strings.Contains(cerr.Message, want) {
			t.Errorf("message %q, want %q", cerr.Message, want)
		}
	}
}

func TestSSEStatusAndFallback(t *testing.T) {
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "3")
		jsonReply(503, `{"e":1}`)(w, r)
	})
	_, cerr := invokeStream(t, context.Background(), sseRegistry(t, up, Limits{}), "sse/events", `{}`)
	wantCode(t, cerr, "HTTP_503")
	if !cerr.Retryable || string(cerr.Details) != `{"body":{"e":1},"retry_after":"3"}` {
		t.Errorf("error %+v details %s", cerr, cerr.Details)
	}
	// A 2xx answer that is not an event stream is one item.
	up = newUpstream(t, jsonReply(200, `{"one":1}`))
	items, cerr := invokeStream(t, context.Background(), sseRegistry(t, up, Limits{}), "sse/events", `{}`)
	if cerr != nil || !reflect.DeepEqual(items, []string{`{"one":1}`}) {
		t.Errorf("items %v, %v", items, cerr)
	}
	// No Content-Type: read as an event stream.
	up = newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Content-Type"] = nil
		io.WriteString(w, "data: 5\n\n")
	})
	items, cerr = invokeStream(t, context.Background(), sseRegistry(t, up, Limits{}), "sse/events", `{}`)
	if cerr != nil || !reflect.DeepEqual(items, []string{`5`}) {
		t.Errorf("items %v, %v", items, cerr)
	}
}

func TestSSECancel(t *testing.T) {
	gone := make(chan struct{})
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: 1\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
			close(gone)
		case <-time.After(10 * time.Second):
		}
	})
	r := sseRegistry(t, up, Limits{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var items []string
	start := time.Now()
	cerr := r.InvokeStream(ctx, "sse/events", json.RawMessage(`{}`), rootContext(t, r, "sse/events"), func(m json.RawMessage) error {
		items = append(items, string(m))
		cancel()
		return nil
	})
	wantCode(t, cerr, call.CodeInternal)
	if cerr.Message != "request aborted" || len(items) != 1 || time.Since(start) > 5*time.Second {
		t.Errorf("error %v items %v", cerr, items)
	}
	select {
	case <-gone:
	case <-time.After(5 * time.Second):
		t.Fatal("upstream connection not closed")
	}
}

// pipeDoer answers every request with a 200 event stream read from a pipe that
// ignores the request context: only closing the body unblocks it.
type pipeDoer struct {
	pr *io.PipeReader
}

func (d pipeDoer) Do(req *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"text/event-stream"}}, Body: d.pr}, nil
}

func TestSSECancelClosesBody(t *testing.T) {
	pr, pw := io.Pipe()
	go func() {
		io.WriteString(pw, "data: 1\n\n")
	}()
	cfg := exposed("sse", "http://u.invalid")
	r := newRegistry(t, mustImport(t, mustParse(t, sseDoc), cfg, pipeDoer{pr}), nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan *call.CallError, 1)
	go func() {
		done <- r.InvokeStream(ctx, "sse/events", json.RawMessage(`{}`), rootContext(t, r, "sse/events"), func(json.RawMessage) error {
			cancel()
			return nil
		})
	}()
	select {
	case cerr := <-done:
		wantCode(t, cerr, call.CodeInternal)
	case <-time.After(5 * time.Second):
		t.Fatal("the stream did not stop on cancellation")
	}
	// The body was closed: writing to the pipe now fails.
	if _, err := pw.Write([]byte("x")); !errors.Is(err, io.ErrClosedPipe) {
		t.Errorf("write after cancel: %v", err)
	}
}

// TestSSEErrorDoesNotWaitForUpstream: a terminal error ends the call at once even
// though the upstream keeps the stream open and silent.
func TestSSEErrorDoesNotWaitForUpstream(t *testing.T) {
	for _, first := range []string{"event: error\ndata: boom\n\n", "data: " + strings.Repeat("x", 100) + "\n"} {
		up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			io.WriteString(w, first)
			w.(http.Flusher).Flush()
			select { // bounded, so that a regression fails instead of hanging
			case <-r.Context().Done():
			case <-time.After(10 * time.Second):
			}
		})
		r := sseRegistry(t, up, Limits{MaxSSELineSize: 50})
		done := make(chan *call.CallError, 1)
		go func() {
			_, cerr := invokeStream(t, context.Background(), r, "sse/events", `{}`)
			done <- cerr
		}()
		select {
		case cerr := <-done:
			wantCode(t, cerr, call.CodeInternal)
		case <-time.After(5 * time.Second):
			t.Fatalf("%q: the call waited for the upstream", first)
		}
	}
}
