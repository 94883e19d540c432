package http

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"

	"github.com/alknet/alknet/call"
	"github.com/alknet/alknet/core"
)

// reservedRoutes builds the routes that win over the embedder's: /healthz outside the
// Bearer layer, the gateway and /openapi.json inside it.
func (h *Handler) reservedRoutes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", serveHealthz)
	mux.Handle("GET /search", h.bearer(http.HandlerFunc(h.serveSearch)))
	mux.Handle("GET /schema", h.bearer(http.HandlerFunc(h.serveSchema)))
	mux.Handle("POST /call", h.bearer(http.HandlerFunc(h.serveCall)))
	mux.Handle("POST /batch", h.bearer(http.HandlerFunc(h.serveBatch)))
	mux.Handle("POST /subscribe", h.bearer(http.HandlerFunc(h.serveSubscribe)))
	mux.Handle("GET /openapi.json", h.bearer(http.HandlerFunc(h.serveOpenAPI)))
	if h.ws != nil {
		mux.Handle("GET "+WebSocketPath, h.bearer(h.ws))
	}
	if h.mcp != nil {
		mux.Handle(MCPPath, h.bearer(h.budgeted(h.mcp)))
	}
	return mux
}

// serveHealthz answers 200 "ok" without authentication or touching the registry.
func serveHealthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain")
	w.Header().Set("Content-Length", "2")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, "ok")
}

// okBody is the body of a successful /call, /search and /schema.
type okBody struct {
	RequestID string          `json:"request_id"`
	Result    string          `json:"result"`
	Output    json.RawMessage `json:"output"`
}

// writeResult answers with res: 200 and the ok body, or the mapped error.
func writeResult(w http.ResponseWriter, res Result, authenticated bool) {
	if res.Err != nil {
		writeCallErrorStatus(w, res.Err, res.Status(authenticated))
		return
	}
	writeJSON(w, http.StatusOK, okBody{RequestID: res.RequestID, Result: "ok", Output: res.Output})
}

// serveSearch answers GET /search: services/list for the caller.
func (h *Handler) serveSearch(w http.ResponseWriter, r *http.Request) {
	id := IdentityFrom(r.Context())
	writeResult(w, h.gw.Invoke(r.Context(), id, call.OpServicesList, json.RawMessage("{}")), id != nil)
}

// serveSchema answers GET /schema?name=<op>.
func (h *Handler) serveSchema(w http.ResponseWriter, r *http.Request) {
	id := IdentityFrom(r.Context())
	name := r.URL.Query().Get("name")
	if name == "" {
		writeCallErrorStatus(w, invalidBody("missing required query parameter: name"), http.StatusBadRequest)
		return
	}
	writeResult(w, h.gw.Schema(r.Context(), id, name), id != nil)
}

// readCallRequest reads and parses a {"operation", "input"?} body; when ok is false it
// has answered the request with the 400, 408, 413 or 503. Call release when the
// request is done (also when ok is false).
func (h *Handler) readCallRequest(w http.ResponseWriter, r *http.Request) (op string, input json.RawMessage, release func(), ok bool) {
	body, release, ok := h.readBody(w, r)
	if !ok {
		return "", nil, release, false
	}
	op, input, cerr := parseCallRequest(body)
	if cerr != nil {
		writeCallErrorStatus(w, cerr, http.StatusBadRequest)
		return "", nil, release, false
	}
	return op, input, release, true
}

// serveCall answers POST /call {"operation", "input"?}.
func (h *Handler) serveCall(w http.ResponseWriter, r *http.Request) {
	op, input, release, ok := h.readCallRequest(w, r)
	defer release()
	if !ok {
		return
	}
	id := IdentityFrom(r.Context())
	writeResult(w, h.gw.Invoke(r.Context(), id, op, input), id != nil)
}

// batchItem is one entry of a /batch answer.
type batchItem struct {
	RequestID *string         `json:"request_id"`
	Result    string          `json:"result"`
	Output    json.RawMessage `json:"output,omitempty"`
	Error     *call.CallError `json:"error,omitempty"`
}

// serveBatch answers POST /batch [{"operation", "input"?}, ...]: the calls run one
// after the other, and the answer is always 200 {"results": [...]} in request order.
// A malformed item, an unknown and an Internal operation all answer an item with a
// null request_id and an error, without dispatch.
func (h *Handler) serveBatch(w http.ResponseWriter, r *http.Request) {
	body, release, ok := h.readBody(w, r)
	defer release()
	if !ok {
		return
	}
	var items []json.RawMessage
	if err := json.Unmarshal(body, &items); err != nil || items == nil {
		writeCallErrorStatus(w, invalidBody("request body must be a JSON array of {\"operation\", \"input\"} objects"), http.StatusBadRequest)
		return
	}
	if len(items) > h.limits.MaxBatchItems {
		writeCallErrorStatus(w, call.Errorf(HTTPCodePrefix+"413", "batch of %d calls exceeds the limit of %d", len(items), h.limits.MaxBatchItems), http.StatusRequestEntityTooLarge)
		return
	}
	id := IdentityFrom(r.Context())
	results := make([]batchItem, 0, len(items))
	for _, raw := range items {
		op, input, cerr := parseCallRequest(raw)
		if cerr != nil {
			results = append(results, batchItem{Result: "error", Error: cerr})
			continue
		}
		if reg, ok := h.gw.Registry.Lookup(op); !ok || reg.Spec.Visibility != call.External {
			results = append(results, batchItem{Result: "error", Error: call.ErrNotFound(strings.TrimPrefix(op, "/"))})
			continue
		}
		res := h.gw.Invoke(r.Context(), id, op, input)
		item := batchItem{RequestID: &res.RequestID, Result: "ok", Output: res.Output}
		if res.Err != nil {
			item = batchItem{RequestID: &res.RequestID, Result: "error", Error: res.Err}
		}
		results = append(results, item)
	}
	writeJSON(w, http.StatusOK, struct {
		Results []batchItem `json:"results"`
	}{results})
}

// serveOpenAPI answers GET /openapi.json with the gateway's OpenAPI document.
func (h *Handler) serveOpenAPI(w http.ResponseWriter, r *http.Request) {
	doc, err := OpenAPIDocument(h.gw.Registry.List())
	if err != nil {
		h.logger.LogAttrs(r.Context(), slog.LevelError, "openapi document failed", errAttr(err))
		writeCallErrorStatus(w, call.NewCallError(call.CodeInternal, "openapi document unavailable"), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(doc)
}

// readBody reads a request body whose content type can be JSON: application/json (or
// any +json type), none, text/plain, or application/x-www-form-urlencoded (what
// `curl -d` sends). The body is read incrementally and held against the connection's
// memory budget until release is called (when the request is done; release is never
// nil). When ok is false readBody has answered: 400 for another content type or a
// read failure, 413 (HTTP_413) for a body over bodyLimit, 503 (HTTP_503, retryable)
// when the budget has no room, 408 (HTTP_408) when the body did not arrive within
// Limits.BodyReadTimeout.
func (h *Handler) readBody(w http.ResponseWriter, r *http.Request) (body []byte, release func(), ok bool) {
	release = func() {}
	if ct := r.Header.Get("Content-Type"); ct != "" && ct != "application/json" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || !jsonishMediaType(mt) {
			writeCallErrorStatus(w, invalidBody("unsupported content type %q: send application/json", ct), http.StatusBadRequest)
			return nil, release, false
		}
	}
	st := connStateFrom(r.Context())
	limit := h.bodyLimit(r, st)
	if r.ContentLength > limit {
		writeCallErrorStatus(w, bodyTooLarge(limit), http.StatusRequestEntityTooLarge)
		return nil, release, false
	}
	res := st.budget().Reservation()
	release = res.Release
	chunk := h.chunks.get()
	defer h.chunks.put(chunk)
	b, err := readLimited(r.Body, limit, res, *chunk)
	if err == nil {
		return b, release, true
	}
	res.Release()
	switch be, isBudget := errors.AsType[*core.BudgetError](err); {
	case errors.Is(err, errTooLarge):
		writeCallErrorStatus(w, bodyTooLarge(limit), http.StatusRequestEntityTooLarge)
	case isBudget:
		writeCallErrorStatus(w, budgetExceeded("request body", be), http.StatusServiceUnavailable)
	case errors.Is(err, ErrBodyReadTimeout):
		// On HTTP/1.1 the rest of the body would be read as the next request.
		w.Header().Set("Connection", "close")
		writeCallErrorStatus(w, call.Errorf(HTTPCodePrefix+"408", "request body not received within %v", h.limits.BodyReadTimeout), http.StatusRequestTimeout)
	default:
		writeCallErrorStatus(w, invalidBody("request body could not be read"), http.StatusBadRequest)
	}
	return nil, release, false
}

// bodyLimit is the body cap of r: MaxBodyBytes, or at most the node's
// MaxAnonymousFrameBytes for a caller with no identity, neither from its Bearer token
// nor from the TLS handshake.
func (h *Handler) bodyLimit(r *http.Request, st *connState) int64 {
	limits := core.Limits{}.Effective()
	identified := IdentityFrom(r.Context()) != nil
	if st != nil {
		limits = st.limits
		identified = identified || st.identified
	}
	return limits.FrameLimit(identified, h.limits.MaxBodyBytes)
}

func bodyTooLarge(limit int64) *call.CallError {
	return call.Errorf(HTTPCodePrefix+"413", "request body exceeds the limit of %d bytes", limit)
}

// budgetExceeded is the 503 answer to input the memory budget has no room for: a
// retryable HTTP_503 whose message and details.limit name the limit, with
// Retry-After: 1.
func budgetExceeded(what string, be *core.BudgetError) *call.CallError {
	e := call.Errorf(HTTPCodePrefix+"503", "%s not buffered: %v", what, be)
	e.Retryable = true
	e.Details, _ = json.Marshal(struct {
		RetryAfter int    `json:"retry_after"`
		Limit      string `json:"limit"`
		Bytes      int64  `json:"limit_bytes"`
	}{1, be.Scope, be.Limit})
	return e
}

// jsonishMediaType reports whether a request of media type mt may carry a JSON body.
func jsonishMediaType(mt string) bool {
	switch mt {
	case "application/json", "text/plain", "application/x-www-form-urlencoded":
		return true
	}
	return strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json")
}

// parseCallRequestTokens is parseCallRequest for a body b (trimmed, starting with
// '{') that is not valid JSON: it reads token by token, so the error is that of the
// first fault (a repeated or malformed operation before a syntax error is reported
// as such).
func parseCallRequestTokens(b []byte) (string, json.RawMessage, *call.CallError) {
	dec := json.NewDecoder(bytes.NewReader(b))
	if _, err := dec.Token(); err != nil {
		return "", nil, invalidBody("request body is not valid JSON")
	}
	var (
		op       string
		input    json.RawMessage
		seenOp   bool
		seenIn   bool
		notValid = invalidBody("request body is not valid JSON")
	)
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return "", nil, notValid
		}
		key, _ := t.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return "", nil, notValid
		}
		switch key {
		case "operation":
			if seenOp {
				return "", nil, invalidBody("field operation given twice")
			}
			seenOp = true
			if json.Unmarshal(raw, &op) != nil || op == "" || op == "/" {
				return "", nil, invalidBody("field operation must be a non-empty string")
			}
		case "input":
			if seenIn {
				return "", nil, invalidBody("field input given twice")
			}
			seenIn = true
			input = raw
		}
	}
	if _, err := dec.Token(); err != nil {
		return "", nil, notValid
	}
	if dec.InputOffset() != int64(len(b)) {
		return "", nil, notValid
	}
	if !seenOp {
		return "", nil, invalidBody("missing required field: operation")
	}
	if len(input) == 0 {
		input = json.RawMessage("null")
	}
	return op, input, nil
}
