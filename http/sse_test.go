package http_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alknet/alknet/call"
	alkhttp "github.com/alknet/alknet/http"
)

// htSubscribe posts body to /subscribe and checks the SSE answer's status and headers.
func htSubscribe(t *testing.T, srv *httptest.Server, tok, body string) string {
	t.Helper()
	resp := htPost(t, srv, "/subscribe", tok, body)
	if resp.status != http.StatusOK {
		t.Fatalf("status %d, want 200; body %q", resp.status, resp.body)
	}
	if ct := resp.header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q, want text/event-stream", ct)
	}
	if cc := resp.header.Get("Cache-Control"); cc != "no-cache" {
		t.Fatalf("Cache-Control %q, want no-cache", cc)
	}
	return string(resp.body)
}

// htErrorFrame is the `event: error` frame of e.
func htErrorFrame(t *testing.T, e *call.CallError) string {
	t.Helper()
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	return "event: error\ndata: " + string(b) + "\n\n"
}

// htErrorFrameCode parses a body that must be exactly one `event: error` frame and
// returns its CallError.
func htErrorFrameCode(t *testing.T, body string) call.CallError {
	t.Helper()
	data, ok := strings.CutPrefix(body, "event: error\ndata: ")
	if !ok || !strings.HasSuffix(data, "\n\n") || strings.Count(data, "\n") != 2 {
		t.Fatalf("body %q is not a single event: error frame", body)
	}
	var e call.CallError
	if err := json.Unmarshal([]byte(strings.TrimSuffix(data, "\n\n")), &e); err != nil {
		t.Fatalf("error frame data %q: %v", data, err)
	}
	return e
}

// htSSERegistry adds the subscriptions the SSE tests need to htRegistry.
func htSSERegistry(t *testing.T) *call.Registry {
	t.Helper()
	r := htRegistry(t)
	status := func(n int) *int { return &n }
	failing := call.NewSpec("demo/failing", call.Subscription)
	failing.ErrorSchemas = []call.ErrorDefinition{{Code: "HTTP_503", Description: "upstream down", HTTPStatus: status(503)}}
	// demo/failing emits {"n":1}, then fails with the CallError its input describes
	// (a plain error when the input is null), and emits nothing after.
	htMustRegister(t, r, call.Registration{Spec: failing, Stream: func(_ context.Context, _ *call.OpContext, in json.RawMessage, emit func(json.RawMessage) error) error {
		if err := emit(json.RawMessage(`{"n":1}`)); err != nil {
			return err
		}
		if string(in) == "null" {
			return errors.New("boom")
		}
		var e call.CallError
		if err := json.Unmarshal(in, &e); err != nil {
			return err
		}
		return &e
	}})
	htMustRegister(t, r, call.Registration{Spec: call.NewSpec("demo/empty", call.Subscription), Stream: func(context.Context, *call.OpContext, json.RawMessage, func(json.RawMessage) error) error {
		return nil
	}})
	// demo/emitall emits each element of its input array as it is.
	htMustRegister(t, r, call.Registration{Spec: call.NewSpec("demo/emitall", call.Subscription), Stream: func(_ context.Context, _ *call.OpContext, in json.RawMessage, emit func(json.RawMessage) error) error {
		var outs []json.RawMessage
		if err := json.Unmarshal(in, &outs); err != nil {
			return err
		}
		for _, out := range outs {
			if string(out) == `"nil"` {
				out = nil
			}
			if err := emit(out); err != nil {
				return err
			}
		}
		return nil
	}})
	validated := call.NewSpec("demo/validated-sub", call.Subscription)
	validated.InputSchema = json.RawMessage(htInputSchema)
	htMustRegister(t, r, call.Registration{Spec: validated, Stream: func(_ context.Context, _ *call.OpContext, in json.RawMessage, emit func(json.RawMessage) error) error {
		return emit(in)
	}})
	return r
}

func TestSubscribeFrames(t *testing.T) {
	srv := htServe(t, alkhttp.Config{Registry: htSSERegistry(t)})
	tests := []struct {
		name string
		tok  string
		body string
		want string
	}{
		{"two outputs compacted", "", `{"operation":"demo/ticks"}`, "data: {\"n\":1}\n\ndata: {\"n\":2}\n\n"},
		{"leading slash", "", `{"operation":"/demo/ticks","input":null}`, "data: {\"n\":1}\n\ndata: {\"n\":2}\n\n"},
		{"no outputs", "", `{"operation":"demo/empty"}`, ""},
		{"null and nil outputs", "", `{"operation":"demo/emitall","input":[null,"nil"]}`, "data: null\n\ndata: null\n\n"},
		{"multi-line JSON on one line", "", `{"operation":"demo/emitall","input":[{"a" : [ 1,
			2 ],
			"b":"x\ny"}]}`, "data: {\"a\":[1,2],\"b\":\"x\\ny\"}\n\n"},
		{"identity applies", htTokAdmin, `{"operation":"admin/ticks"}`, "data: \"admin\"\n\n"},
		{"schema ok", "", `{"operation":"demo/validated-sub","input":{"msg":"hi"}}`, "data: {\"msg\":\"hi\"}\n\n"},
		{
			"emit then fail", "", `{"operation":"demo/failing"}`,
			"data: {\"n\":1}\n\nevent: error\ndata: {\"code\":\"INTERNAL\",\"message\":\"boom\",\"retryable\":false}\n\n",
		},
		{
			"emit then declared error", "", `{"operation":"demo/failing","input":{"code":"HTTP_503","message":"down","retryable":true,"details":{"retry_after":3}}}`,
			"data: {\"n\":1}\n\nevent: error\ndata: {\"code\":\"HTTP_503\",\"message\":\"down\",\"retryable\":true,\"details\":{\"retry_after\":3}}\n\n",
		},
		{
			"unknown", htTokAdmin, `{"operation":"demo/nosuch"}`,
			"event: error\ndata: {\"code\":\"NOT_FOUND\",\"message\":\"operation not found: demo/nosuch\",\"retryable\":false}\n\n",
		},
		{
			"internal", htTokAdmin, `{"operation":"demo/hidden"}`,
			"event: error\ndata: {\"code\":\"NOT_FOUND\",\"message\":\"operation not found: demo/hidden\",\"retryable\":false}\n\n",
		},
		{
			"internal query", htTokAdmin, `{"operation":"demo/secret"}`,
			"event: error\ndata: {\"code\":\"NOT_FOUND\",\"message\":\"operation not found: demo/secret\",\"retryable\":false}\n\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := htSubscribe(t, srv, tt.tok, tt.body); got != tt.want {
				t.Fatalf("body %q, want %q", got, tt.want)
			}
		})
	}
}

// Errors before any output are a single `event: error` frame on a 200 stream.
func TestSubscribeErrorEvents(t *testing.T) {
	srv := htServe(t, alkhttp.Config{Registry: htSSERegistry(t)})
	tests := []struct {
		name     string
		tok      string
		body     string
		wantCode string
	}{
		{"query", "", `{"operation":"demo/echo"}`, call.CodeInvalidOperationType},
		{"mutation-like query with input", htTokAdmin, `{"operation":"admin/op","input":{}}`, call.CodeInvalidOperationType},
		{"restricted anonymous", "", `{"operation":"admin/ticks"}`, call.CodeForbidden},
		{"restricted bogus token", "bogus", `{"operation":"admin/ticks"}`, call.CodeForbidden},
		{"restricted wrong scope", htTokUser, `{"operation":"admin/ticks"}`, call.CodeForbidden},
		{"schema violation", "", `{"operation":"demo/validated-sub","input":{}}`, call.CodeInvalidInput},
		{"unknown", "", `{"operation":"demo/nosuch"}`, call.CodeNotFound},
		{"internal anonymous", "", `{"operation":"demo/hidden"}`, call.CodeNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := htErrorFrameCode(t, htSubscribe(t, srv, tt.tok, tt.body))
			if e.Code != tt.wantCode {
				t.Fatalf("error %+v, want %s", e, tt.wantCode)
			}
		})
	}
}

// Errors in the request body are answered before the stream starts, as JSON.
func TestSubscribeBodyErrors(t *testing.T) {
	srv := htServe(t, alkhttp.Config{Registry: htSSERegistry(t), Limits: alkhttp.Limits{MaxBodyBytes: 64}})
	tests := []struct {
		name        string
		contentType string
		body        string
		wantStatus  int
		wantCode    string
	}{
		{"not JSON", "application/json", `nope`, 400, call.CodeInvalidInput},
		{"array", "application/json", `[{"operation":"demo/ticks"}]`, 400, call.CodeInvalidInput},
		{"missing operation", "application/json", `{"input":1}`, 400, call.CodeInvalidInput},
		{"operation not a string", "application/json", `{"operation":1}`, 400, call.CodeInvalidInput},
		{"trailing garbage", "application/json", `{"operation":"demo/ticks"}]`, 400, call.CodeInvalidInput},
		{"xml", "application/xml", `{"operation":"demo/ticks"}`, 400, call.CodeInvalidInput},
		{"too large", "application/json", `{"operation":"demo/ticks","input":"` + strings.Repeat("x", 64) + `"}`, 413, "HTTP_413"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := htDo(t, srv, htReq{method: http.MethodPost, path: "/subscribe", body: strings.NewReader(tt.body), headers: []string{"Content-Type", tt.contentType}})
			htCallError(t, resp, tt.wantStatus, tt.wantCode)
		})
	}
}

// An output whose compact JSON is exactly MaxSSELineBytes passes; one byte more ends
// the stream with an INTERNAL error naming the limit, and nothing follows.
func TestSubscribeLineLimit(t *testing.T) {
	const limit = 32
	srv := htServe(t, alkhttp.Config{Registry: htSSERegistry(t), Limits: alkhttp.Limits{MaxSSELineBytes: limit}})
	// {"s":"<n a>"} compacts to 8+n bytes; the emitted form carries extra whitespace,
	// so only the compact length can fit.
	out := func(n int) string { return `{ "s" : "` + strings.Repeat("a", n) + `" }` }
	compact := func(n int) string { return `{"s":"` + strings.Repeat("a", n) + `"}` }
	if len(compact(limit-8)) != limit || len(out(limit-8)) <= limit {
		t.Fatalf("bad test sizes")
	}

	body := fmt.Sprintf(`{"operation":"demo/emitall","input":[%s,%s]}`, out(limit-8), out(1))
	if got, want := htSubscribe(t, srv, "", body), "data: "+compact(limit-8)+"\n\ndata: "+compact(1)+"\n\n"; got != want {
		t.Fatalf("at the limit: body %q, want %q", got, want)
	}

	body = fmt.Sprintf(`{"operation":"demo/emitall","input":[%s,%s,%s]}`, out(1), out(limit-7), out(2))
	got := htSubscribe(t, srv, "", body)
	first := "data: " + compact(1) + "\n\n"
	rest, ok := strings.CutPrefix(got, first)
	if !ok {
		t.Fatalf("over the limit: body %q does not start with %q", got, first)
	}
	e := htErrorFrameCode(t, rest)
	if e.Code != call.CodeInternal || !strings.Contains(e.Message, fmt.Sprint(limit)) {
		t.Fatalf("over the limit: error %+v, want INTERNAL naming the limit %d", e, limit)
	}
}

// htBlockingRegistry registers demo/block: it emits "started", then, with input
// "wait", waits for its context to end; with input "flood", emits until emit fails.
// Either way it closes the returned channel once it has seen ctx.Done().
func htBlockingRegistry(t *testing.T) (*call.Registry, <-chan struct{}) {
	t.Helper()
	r := htRegistry(t)
	cancelled := make(chan struct{})
	htMustRegister(t, r, call.Registration{Spec: call.NewSpec("demo/block", call.Subscription), Stream: func(ctx context.Context, _ *call.OpContext, in json.RawMessage, emit func(json.RawMessage) error) error {
		if err := emit(json.RawMessage(`"started"`)); err != nil {
			return err
		}
		if string(in) == `"flood"` {
			for emit(json.RawMessage(`"more"`)) == nil {
			}
		}
		select {
		case <-ctx.Done():
			close(cancelled)
			return ctx.Err()
		case <-time.After(htGuard):
			return errors.New("the client left but the context was not cancelled")
		}
	}})
	return r, cancelled
}

// htOpenStream starts a /subscribe request and reads its first frame.
func htOpenStream(t *testing.T, ctx context.Context, client *http.Client, url, body string) (*http.Response, *bufio.Reader) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+"/subscribe", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("POST /subscribe: %v", err)
	}
	return resp, bufio.NewReader(resp.Body)
}

// htReadFrame reads one SSE frame (up to the blank line).
func htReadFrame(t *testing.T, r *bufio.Reader) string {
	t.Helper()
	var sb strings.Builder
	for {
		line, err := r.ReadString('\n')
		sb.WriteString(line)
		if err != nil {
			t.Fatalf("reading a frame: %v (read %q)", err, sb.String())
		}
		if line == "\n" {
			return sb.String()
		}
	}
}

// The client leaving cancels the subscription's handler, whether it waits on its
// context or blocks emitting.
func TestSubscribeClientDisconnect(t *testing.T) {
	for _, mode := range []string{"wait", "flood"} {
		t.Run(mode, func(t *testing.T) {
			reg, cancelled := htBlockingRegistry(t)
			srv := htServe(t, alkhttp.Config{Registry: reg})
			ctx, cancel := context.WithTimeout(context.Background(), htGuard)
			defer cancel()
			resp, r := htOpenStream(t, ctx, srv.Client(), srv.URL, `{"operation":"demo/block","input":"`+mode+`"}`)
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d", resp.StatusCode)
			}
			if f := htReadFrame(t, r); f != "data: \"started\"\n\n" {
				t.Fatalf("first frame %q", f)
			}
			cancel()
			select {
			case <-cancelled:
			case <-time.After(htGuard):
				t.Fatalf("the handler did not see the client leave")
			}
		})
	}
}

// A quiet stream gets `: ping` comments, and nothing else, until it ends.
func TestSubscribeKeepAlive(t *testing.T) {
	reg := htRegistry(t)
	release := make(chan struct{})
	htMustRegister(t, reg, call.Registration{Spec: call.NewSpec("demo/quiet", call.Subscription), Stream: func(ctx context.Context, _ *call.OpContext, _ json.RawMessage, _ func(json.RawMessage) error) error {
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}})
	srv := htServe(t, alkhttp.Config{Registry: reg, Limits: alkhttp.Limits{SSEKeepAlive: time.Millisecond}})
	ctx, cancel := context.WithTimeout(context.Background(), htGuard)
	defer cancel()
	resp, r := htOpenStream(t, ctx, srv.Client(), srv.URL, `{"operation":"demo/quiet"}`)
	defer resp.Body.Close()
	if f := htReadFrame(t, r); f != ": ping\n\n" {
		t.Fatalf("first frame %q, want a ping comment", f)
	}
	close(release)
	rest, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("reading the rest: %v", err)
	}
	if s := strings.ReplaceAll(string(rest), ": ping\n\n", ""); s != "" {
		t.Fatalf("the stream carried %q besides pings", s)
	}
}

// MaxSubscriptionsPerConn counts the open /subscribe streams of one connection (here
// one HTTP/2 connection): one too many is 429 HTTP_429 with Retry-After: 1, and a slot
// freed by a finished stream is taken again.
func TestSubscribePerConnectionLimit(t *testing.T) {
	reg := htRegistry(t)
	const n = 4
	var release [n]chan struct{}
	for i := range release {
		release[i] = make(chan struct{})
	}
	htMustRegister(t, reg, call.Registration{Spec: call.NewSpec("demo/hold", call.Subscription), Stream: func(ctx context.Context, _ *call.OpContext, in json.RawMessage, emit func(json.RawMessage) error) error {
		var i int
		if err := json.Unmarshal(in, &i); err != nil || i < 0 || i >= n {
			return fmt.Errorf("bad input %s", in)
		}
		if err := emit(json.RawMessage(`"started"`)); err != nil {
			return err
		}
		select {
		case <-release[i]:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}})
	h, err := alkhttp.New(alkhttp.Config{Registry: reg, Limits: alkhttp.Limits{MaxSubscriptionsPerConn: 2, SSEKeepAlive: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	var conns atomic.Int32
	srv.Config.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		conns.Add(1)
		return h.ConnContext(ctx, c)
	}
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	client := srv.Client()
	ctx, cancel := context.WithTimeout(context.Background(), htGuard)
	defer cancel()

	open := func(i int) (*http.Response, *bufio.Reader) {
		t.Helper()
		resp, r := htOpenStream(t, ctx, client, srv.URL, fmt.Sprintf(`{"operation":"demo/hold","input":%d}`, i))
		if resp.ProtoMajor != 2 {
			t.Fatalf("protocol %s, want HTTP/2", resp.Proto)
		}
		if resp.StatusCode != http.StatusOK {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			t.Fatalf("subscription %d: status %d %s", i, resp.StatusCode, b)
		}
		if f := htReadFrame(t, r); f != "data: \"started\"\n\n" {
			t.Fatalf("subscription %d: first frame %q", i, f)
		}
		return resp, r
	}
	finish := func(i int, resp *http.Response, r *bufio.Reader) {
		t.Helper()
		close(release[i])
		rest, err := io.ReadAll(r)
		resp.Body.Close()
		if err != nil || len(rest) != 0 {
			t.Fatalf("subscription %d: rest %q, %v; want a clean end", i, rest, err)
		}
	}

	resp0, r0 := open(0)
	resp1, r1 := open(1)

	// The third concurrent stream is refused.
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/subscribe", strings.NewReader(`{"operation":"demo/hold","input":2}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp2, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp2.Body)
	resp2.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	e := htCallError(t, htResp{status: resp2.StatusCode, header: resp2.Header, body: b}, http.StatusTooManyRequests, "HTTP_429")
	if !e.Retryable || resp2.Header.Get("Retry-After") != "1" {
		t.Fatalf("refusal %+v, Retry-After %q; want retryable with Retry-After: 1", e, resp2.Header.Get("Retry-After"))
	}
	if !strings.Contains(e.Message, "2") {
		t.Fatalf("refusal message %q does not name the limit", e.Message)
	}

	// Once one stream has ended, a new one is admitted.
	finish(0, resp0, r0)
	resp3, r3 := open(3)
	finish(1, resp1, r1)
	finish(3, resp3, r3)

	if c := conns.Load(); c != 1 {
		t.Fatalf("the client used %d connections, want 1", c)
	}
}
