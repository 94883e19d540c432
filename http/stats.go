package http

import (
	"bufio"
	"net"
	"net/http"
	"sync/atomic"
)

// Route names of [Stats.Requests]: the gateway's reserved routes, "extra" for the
// embedder's routes (Config.Routes) and "other" for everything the decoy answers.
// Request paths themselves are never recorded.
const (
	RouteHealthz   = "healthz"
	RouteSearch    = "search"
	RouteSchema    = "schema"
	RouteCall      = "call"
	RouteBatch     = "batch"
	RouteSubscribe = "subscribe"
	RouteOpenAPI   = "openapi"
	RouteWebSocket = "websocket"
	RouteMCP       = "mcp"
	RouteExtra     = "extra"
	RouteOther     = "other"
)

// routeNames are the route names by counter index.
var routeNames = [...]string{
	RouteHealthz, RouteSearch, RouteSchema, RouteCall, RouteBatch, RouteSubscribe,
	RouteOpenAPI, RouteWebSocket, RouteMCP, RouteExtra, RouteOther,
}

const (
	routeHealthz = iota
	routeSearch
	routeSchema
	routeCall
	routeBatch
	routeSubscribe
	routeOpenAPI
	routeWebSocket
	routeMCP
	routeExtra
	routeOther
	numRoutes
)

// Routes returns every route name [Stats.Requests] may hold, in a fixed order.
func Routes() []string { return append([]string(nil), routeNames[:]...) }

// statusClasses are the status class names by counter index.
var statusClasses = [...]string{"1xx", "2xx", "3xx", "4xx", "5xx"}

// StatusClasses returns every status class [Stats.Requests] may hold: "1xx" (a
// WebSocket upgrade) to "5xx".
func StatusClasses() []string { return append([]string(nil), statusClasses[:]...) }

// reservedRoute maps a pattern of reservedRoutes to its route.
func reservedRoute(pattern string) int {
	switch pattern {
	case "GET /healthz":
		return routeHealthz
	case "GET /search":
		return routeSearch
	case "GET /schema":
		return routeSchema
	case "POST /call":
		return routeCall
	case "POST /batch":
		return routeBatch
	case "POST /subscribe":
		return routeSubscribe
	case "GET /openapi.json":
		return routeOpenAPI
	case "GET " + WebSocketPath:
		return routeWebSocket
	case MCPPath:
		return routeMCP
	}
	return routeOther
}

// Stats is a snapshot of the requests a [Handler] answered.
type Stats struct {
	// Requests counts answered requests by route (see Routes) and then by status
	// class (see StatusClasses); pairs never seen are absent.
	Requests map[string]map[string]uint64
}

// httpCounters are the live counters behind Stats: a fixed array of atomics.
type httpCounters struct {
	requests [numRoutes][len(statusClasses)]atomic.Uint64
}

// observe counts a request of route answered with status (0: nothing written, which
// net/http answers 200).
func (c *httpCounters) observe(route, status int) {
	if status == 0 {
		status = http.StatusOK
	}
	class := status/100 - 1
	if class < 0 || class >= len(statusClasses) {
		class = len(statusClasses) - 1
	}
	c.requests[route][class].Add(1)
}

// Stats returns a snapshot of the handler's counters.
func (h *Handler) Stats() Stats {
	s := Stats{Requests: make(map[string]map[string]uint64)}
	for r := range h.stats.requests {
		for c := range h.stats.requests[r] {
			n := h.stats.requests[r][c].Load()
			if n == 0 {
				continue
			}
			m := s.Requests[routeNames[r]]
			if m == nil {
				m = make(map[string]uint64)
				s.Requests[routeNames[r]] = m
			}
			m[statusClasses[c]] = n
		}
	}
	return s
}

// statusWriter records the final status of a response. It passes Flush on and, in its
// hijacking variant, Hijack (so WebSocket upgrades work where they did), and Unwrap
// serves http.ResponseController for the rest.
type statusWriter struct {
	http.ResponseWriter
	status int
}

// newStatusWriter wraps w; the Hijacker variant only when w is one.
func newStatusWriter(w http.ResponseWriter) (*statusWriter, http.ResponseWriter) {
	sw := &statusWriter{}
	return sw, sw.wrap(w)
}

// wrap makes sw wrap w and returns it as a writer: the Hijacker variant only when w is
// one.
func (w *statusWriter) wrap(rw http.ResponseWriter) http.ResponseWriter {
	w.ResponseWriter = rw
	if _, ok := rw.(http.Hijacker); ok {
		return hijackWriter{w}
	}
	return w
}

func (w *statusWriter) WriteHeader(code int) {
	// Informational headers (103 Early Hints) precede the final status; 101 is final.
	if w.status == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}

// Flush implements http.Flusher.
func (w *statusWriter) Flush() {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// Unwrap returns the wrapped writer, for http.ResponseController.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// hijackWriter is a statusWriter over a writer that can be hijacked.
type hijackWriter struct{ *statusWriter }

// Hijack implements http.Hijacker.
func (w hijackWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.status == 0 {
		w.status = http.StatusSwitchingProtocols
	}
	return w.ResponseWriter.(http.Hijacker).Hijack()
}
