package demo

import (
	"bytes"
	"crypto/sha256"
	_ "embed" // the page
	"encoding/base64"
	"net/http"
	"strconv"
)

// page is the demo page: one HTML document with its style and script inline.
//
//go:embed page.html
var page []byte

// pageCSP is the Content-Security-Policy of the page: nothing but its own inline
// script (by hash) and style, and connections to its own origin (the WebSocket).
var pageCSP = "default-src 'none'; script-src '" + scriptHash(page) + "'; style-src 'unsafe-inline'; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// scriptHash returns the CSP source "sha256-<base64>" of the one inline script of
// html. It panics when there is none: the embedded page is part of the program.
func scriptHash(html []byte) string {
	const open, end = "<script>", "</script>"
	i := bytes.Index(html, []byte(open))
	j := bytes.LastIndex(html, []byte(end))
	if i < 0 || j < i+len(open) {
		panic("demo: page.html has no inline <script>")
	}
	sum := sha256.Sum256(html[i+len(open) : j])
	return "sha256-" + base64.StdEncoding.EncodeToString(sum[:])
}

// PageHandler returns the handler of the demo page, a self-contained HTML document
// for GET and HEAD (any other method gets 405). Mount it behind
// github.com/alknet/alknet/http's Config.Routes, such as at "GET /demo", on a node
// that registers the demo operations and serves the WebSocket GET /alknet/call; the
// page connects to that path on its own origin.
//
// In the page, window.alknetDemo.run(token) returns a Promise of the results of one
// run with the API key token (which needs the scope [Scope]):
//
//	{"protocol": "alknet.call",
//	 "served": ["services/list", "services/schema", "page/greet"],
//	 "echo": {"hello": "from the browser"},
//	 "ticks": [{"n":1}, {"n":2}, {"n":3}],
//	 "callback": {"greeting": "hello node"},
//	 "greet_calls": [{"input": {"name": "node"}, "forwarded_for": {"id": "demo/callback", …}}]}
//
// served lists the node's requests to the page in order, greet_calls what page/greet
// received. The Promise is rejected when the connection fails (a token the node
// refuses gets 401 before the upgrade) or a call fails. The page also shows the run,
// and has a form to start one by hand.
//
// The page sends no token anywhere but the WebSocket subprotocol, and is served with
// a Content-Security-Policy that allows only its own inline script and connections to
// its own origin.
func PageHandler() http.Handler {
	return http.HandlerFunc(servePage)
}

// servePage answers one request for the page.
func servePage(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "405 method not allowed", http.StatusMethodNotAllowed)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(page)))
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", pageCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(page)
	}
}
