package openapi

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/alknet/alknet/call"
)

// maxErrorBody is the most bytes of a non-2xx response body put in an error's
// details (and only when it is JSON).
const maxErrorBody = 64 << 10

// endpoint is one forwarded operation.
type endpoint struct {
	svc          *service
	method       string
	path         []pathPart
	headerFields map[string]string // input field -> header name
}

// pathPart is a literal piece of a path template or a {variable}.
type pathPart struct {
	lit   string
	field string
	isVar bool
}

// parseTemplate splits a path template into literals and {variables}. An
// unmatched "{" is literal.
func parseTemplate(t string) []pathPart {
	var parts []pathPart
	for t != "" {
		i := strings.IndexByte(t, '{')
		if i < 0 {
			parts = append(parts, pathPart{lit: t})
			break
		}
		j := strings.IndexByte(t[i:], '}')
		if j < 0 {
			parts = append(parts, pathPart{lit: t})
			break
		}
		if i > 0 {
			parts = append(parts, pathPart{lit: t[:i]})
		}
		parts = append(parts, pathPart{field: t[i+1 : i+j], isVar: true})
		t = t[i+j+1:]
	}
	return parts
}

// once serves a Query or Mutation.
func (e *endpoint) once(ctx context.Context, oc *call.OpContext, in json.RawMessage) (json.RawMessage, error) {
	resp, err := e.do(ctx, oc, in, false)
	if err != nil {
		return nil, err
	}
	defer closeBody(resp.Body)
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, statusError(resp, e.svc.lim)
	}
	return decodeBody(ctx, resp, e.svc.lim)
}

// stream serves a Subscription: one emitted item per server-sent data event.
func (e *endpoint) stream(ctx context.Context, oc *call.OpContext, in json.RawMessage, emit func(json.RawMessage) error) error {
	resp, err := e.do(ctx, oc, in, true)
	if err != nil {
		return err
	}
	// Closed, not drained: the stream may go on (or stall) after an error here.
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return statusError(resp, e.svc.lim)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "" && mediaType(ct) != "text/event-stream" {
		// Not an event stream: the whole body is the one item.
		out, err := decodeBody(ctx, resp, e.svc.lim)
		if err != nil {
			return err
		}
		return emit(out)
	}
	// Closing the body on cancellation unblocks a pending Read.
	stop := context.AfterFunc(ctx, func() { resp.Body.Close() })
	defer stop()
	p := newSSEParser(e.svc.lim.MaxSSELineSize, e.svc.lim.MaxResponseSize)
	dispatch := func(ev sseEvent) error {
		if ev.event == "error" {
			return sseError(ev.data)
		}
		return emit(sseData(ev.data))
	}
	buf := make([]byte, 32<<10)
	for {
		n, rerr := resp.Body.Read(buf)
		if err := ctx.Err(); err != nil {
			return err
		}
		if n > 0 {
			if err := p.feed(buf[:n], dispatch); err != nil {
				return err
			}
		}
		if rerr != nil {
			if err := ctx.Err(); err != nil {
				return err
			}
			if rerr == io.EOF {
				return nil
			}
			return call.Errorf(call.CodeInternal, "upstream stream failed: %v", rerr)
		}
	}
}

// sseData turns an event's data into an item: JSON when it parses, else a string;
// empty data is null.
func sseData(data string) json.RawMessage {
	if data == "" {
		return json.RawMessage("null")
	}
	if json.Valid([]byte(data)) {
		return json.RawMessage(data)
	}
	b, _ := marshalJSON(data)
	return b
}

// sseError turns the data of an "event: error" into the terminal error: a CallError
// when it is a JSON object with a string code, else INTERNAL with the text.
func sseError(data string) error {
	var ce struct {
		Code      *string         `json:"code"`
		Message   string          `json:"message"`
		Retryable bool            `json:"retryable"`
		Details   json.RawMessage `json:"details"`
	}
	if err := json.Unmarshal([]byte(data), &ce); err == nil && ce.Code != nil && *ce.Code != "" {
		out := &call.CallError{Code: *ce.Code, Message: ce.Message, Retryable: ce.Retryable}
		if len(ce.Details) > 0 && string(ce.Details) != "null" {
			out.Details = ce.Details
		}
		return out
	}
	return call.NewCallError(call.CodeInternal, data)
}

// do builds and sends the upstream request.
func (e *endpoint) do(ctx context.Context, oc *call.OpContext, in json.RawMessage, stream bool) (*http.Response, error) {
	req, err := e.request(ctx, oc, in, stream)
	if err != nil {
		return nil, err
	}
	resp, err := e.svc.client.Do(req)
	if err != nil {
		if resp != nil {
			closeBody(resp.Body)
		}
		if cerr := ctx.Err(); cerr != nil {
			return nil, cerr
		}
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err // url.Error's text holds the URL, query included
		}
		if ra, ok := errors.AsType[interface {
			error
			RetryAfter() time.Duration
		}](err); ok {
			// The outbound client refused to wait out the upstream's Retry-After: the
			// caller gets the 429 it would have got, with the remaining wait.
			secs := int64((ra.RetryAfter() + time.Second - 1) / time.Second)
			ce := call.Errorf(call.HTTPStatusCode(http.StatusTooManyRequests), "upstream asked to retry in %d s", secs)
			ce.Retryable = true
			ce.Details, _ = json.Marshal(map[string]int64{"retry_after": secs})
			return nil, ce
		}
		return nil, call.Errorf(call.CodeInternal, "request failed: %v", err)
	}
	return resp, nil
}

// request builds the upstream request for the input in.
func (e *endpoint) request(ctx context.Context, oc *call.OpContext, in json.RawMessage, stream bool) (*http.Request, error) {
	fields := map[string]json.RawMessage{}
	if t := bytes.TrimSpace(in); len(t) > 0 && string(t) != "null" {
		if err := json.Unmarshal(t, &fields); err != nil || fields == nil {
			return nil, call.NewCallError(call.CodeInvalidInput, "input must be a JSON object")
		}
	}

	var path strings.Builder
	used := map[string]bool{}
	for _, p := range e.path {
		if !p.isVar {
			path.WriteString(p.lit)
			continue
		}
		raw, ok := fields[p.field]
		if !ok {
			return nil, call.Errorf(call.CodeInvalidInput, "missing path parameter %q", p.field)
		}
		used[p.field] = true
		text, _ := valueText(raw)
		path.WriteString(url.PathEscape(text))
	}

	var body []byte
	query := url.Values{}
	headers := map[string][]string{}
	for _, name := range sortedKeys(fields) {
		if used[name] {
			continue
		}
		raw := fields[name]
		switch hdr, isHeader := e.headerFields[name]; {
		case name == "body" && !isHeader:
			body = raw
		case isHeader:
			vals, _ := listTexts(raw)
			if len(vals) == 0 {
				continue
			}
			v := strings.Join(vals, ",")
			if !validHeaderValue(v) {
				return nil, call.Errorf(call.CodeInvalidInput, "header parameter %q has an invalid value", name)
			}
			headers[hdr] = []string{v}
		default:
			vals, _ := listTexts(raw)
			for _, v := range vals {
				query.Add(name, v)
			}
		}
	}

	u := e.svc.base.Scheme + "://" + e.svc.base.Host + e.svc.base.EscapedPath() + strings.TrimLeft(path.String(), "/")
	q := strings.ReplaceAll(query.Encode(), "+", "%20")
	switch {
	case e.svc.base.RawQuery != "" && q != "":
		u += "?" + e.svc.base.RawQuery + "&" + q
	case e.svc.base.RawQuery != "":
		u += "?" + e.svc.base.RawQuery
	case q != "":
		u += "?" + q
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, e.method, u, rd)
	if err != nil {
		// The input is escaped; a URL that does not parse comes from the path template.
		return nil, call.NewCallError(call.CodeInternal, "cannot build the upstream request URL")
	}
	for k, v := range e.svc.headers {
		req.Header[k] = append([]string(nil), v...)
	}
	for k, v := range headers {
		req.Header[k] = v
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if stream {
		req.Header.Set("Accept", "text/event-stream")
	} else {
		req.Header.Set("Accept", "*/*")
	}
	if err := e.authorize(req, oc); err != nil {
		return nil, err
	}
	return req, nil
}

// authorize adds the auth header from the namespace's capability, when there is
// one and the service uses auth.
func (e *endpoint) authorize(req *http.Request, oc *call.OpContext) error {
	if e.svc.auth.Kind == AuthNone || oc == nil {
		return nil
	}
	cred, ok := oc.Caps.Get(e.svc.ns)
	if !ok {
		return nil
	}
	defer func() {
		for i := range cred {
			cred[i] = 0
		}
	}()
	var name, value string
	switch e.svc.auth.Kind {
	case AuthBearer:
		name, value = "Authorization", "Bearer "+string(cred)
	case AuthHeader:
		name, value = e.svc.auth.Header, string(cred)
	case AuthBasic:
		v := string(cred)
		if bytes.IndexByte(cred, ':') >= 0 {
			v = base64.StdEncoding.EncodeToString(cred)
		}
		name, value = "Authorization", "Basic "+v
	default:
		return nil
	}
	if !validHeaderValue(value) {
		return call.Errorf(call.CodeInternal, "the credential of %q cannot be sent in a header", e.svc.ns)
	}
	req.Header.Set(name, value)
	return nil
}

// valueText renders one JSON value as text: a string raw, a number, true or false
// as written, null as "" (isNull true), an object or array as compact JSON.
func valueText(raw json.RawMessage) (text string, isNull bool) {
	t := bytes.TrimSpace(raw)
	if len(t) == 0 {
		return "", true
	}
	switch t[0] {
	case '"':
		var s string
		if json.Unmarshal(t, &s) == nil {
			return s, false
		}
	case 'n':
		return "", true
	case '{', '[':
		var b bytes.Buffer
		if json.Compact(&b, t) == nil {
			return b.String(), false
		}
	}
	return string(t), false
}

// listTexts renders a query or header value: an array gives one text per element
// that is not null, null gives nothing, anything else one text.
func listTexts(raw json.RawMessage) ([]string, bool) {
	t := bytes.TrimSpace(raw)
	if len(t) > 0 && t[0] == '[' {
		var elems []json.RawMessage
		if json.Unmarshal(t, &elems) == nil {
			var out []string
			for _, el := range elems {
				if s, isNull := valueText(el); !isNull {
					out = append(out, s)
				}
			}
			return out, true
		}
	}
	s, isNull := valueText(t)
	if isNull {
		return nil, false
	}
	return []string{s}, false
}

// mediaType returns the lower-case media type of a Content-Type value.
func mediaType(ct string) string {
	if mt, _, err := mime.ParseMediaType(ct); err == nil {
		return mt
	}
	return strings.ToLower(strings.TrimSpace(strings.SplitN(ct, ";", 2)[0]))
}

// errTooLarge reports a body over the limit.
var errTooLarge = errors.New("too large")

// readLimited reads r to its end, failing with errTooLarge past max bytes.
func readLimited(r io.Reader, max int) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, int64(max)+1))
	if err != nil {
		return nil, err
	}
	if len(b) > max {
		return nil, errTooLarge
	}
	return b, nil
}

// decodeBody turns a 2xx response body into the output.
func decodeBody(ctx context.Context, resp *http.Response, lim Limits) (json.RawMessage, error) {
	b, err := readLimited(resp.Body, lim.MaxResponseSize)
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return nil, cerr
		}
		if err == errTooLarge {
			return nil, call.Errorf(call.CodeInternal, "upstream response exceeds the %d-byte limit", lim.MaxResponseSize)
		}
		return nil, call.Errorf(call.CodeInternal, "reading the upstream response failed: %v", err)
	}
	if len(b) == 0 {
		return json.RawMessage("null"), nil
	}
	ct := strings.ToLower(resp.Header.Get("Content-Type"))
	switch {
	case strings.Contains(ct, "application/json"):
		if !json.Valid(b) {
			return nil, call.NewCallError(call.CodeInternal, "upstream response is not valid JSON")
		}
		return b, nil
	case strings.HasPrefix(strings.TrimSpace(ct), "text/"):
		return marshalJSON(string(b))
	default:
		return marshalJSON(base64.StdEncoding.EncodeToString(b))
	}
}

// statusError turns a non-2xx response into its CallError: code HTTP_<n>, message
// "HTTP <n>: <reason>", retryable for 429 and 503 (with their Retry-After in
// details.retry_after), and a JSON body (up to maxErrorBody bytes) in details.body.
func statusError(resp *http.Response, lim Limits) *call.CallError {
	n := resp.StatusCode
	reason := http.StatusText(n)
	if reason == "" {
		_, reason, _ = strings.Cut(resp.Status, " ")
	}
	if reason == "" {
		reason = "status " + strconv.Itoa(n)
	}
	ce := call.Errorf(call.HTTPStatusCode(n), "HTTP %d: %s", n, reason)
	retry := n == http.StatusTooManyRequests || n == http.StatusServiceUnavailable
	ce.Retryable = retry
	details := map[string]json.RawMessage{}
	if ra := resp.Header.Get("Retry-After"); retry && ra != "" {
		details["retry_after"], _ = json.Marshal(ra)
	}
	if b, err := readLimited(resp.Body, min(maxErrorBody, lim.MaxResponseSize)); err == nil && len(bytes.TrimSpace(b)) > 0 && json.Valid(b) {
		var c bytes.Buffer
		if json.Compact(&c, b) == nil {
			details["body"] = c.Bytes()
		}
	}
	if len(details) > 0 {
		ce.Details, _ = json.Marshal(details)
	}
	return ce
}

// closeBody drains a little of a body, so that the connection can be reused, and
// closes it.
func closeBody(b io.ReadCloser) {
	_, _ = io.CopyN(io.Discard, b, 4<<10)
	_ = b.Close()
}
