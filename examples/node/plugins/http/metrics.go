package http

import (
	"github.com/alknet/alknet/examples/node/metrics"
	alkhttp "github.com/alknet/alknet/http"
)

// families returns the HTTP handler's counters as metric families. Request paths are
// never labels: routes are the gateway's own, "extra" (routes of plugins, such as the
// pkarr relay) or "other".
func families(s alkhttp.Stats) []metrics.Family {
	reqs := metrics.NewCounter("alknet_http_requests_total",
		"HTTP requests (alknet/http, h2, http/1.1, h3) by route (healthz, search, schema, call, batch, subscribe, openapi, websocket, mcp, extra, other) and status class (1xx to 5xx).",
		"route", "class")
	for _, r := range alkhttp.Routes() {
		for _, c := range alkhttp.StatusClasses() {
			if n, ok := s.Requests[r][c]; ok {
				reqs.Add(float64(n), r, c)
			}
		}
	}
	return []metrics.Family{*reqs}
}
