package node

import (
	"fmt"
	"sync/atomic"

	"github.com/alknet/alknet/core/endpoint"
	"github.com/alknet/alknet/examples/node/metrics"
)

// MetricsUsage is the help of serve's --metrics flag.
const MetricsUsage = "serve Prometheus metrics at http://`HOST:PORT`/metrics on a plain-HTTP listener of their own " +
	"(no TLS, no authentication: loopback suggested, such as 127.0.0.1:9464; port 0 picks a free one). Default: off"

// AddMetrics adds a source of metrics that serve --metrics reads at every scrape:
// typically a closure over the plugin's module's Stats method that returns its
// counters as metrics.Family values. Families are named alknet_<plugin>_...; their
// label values must come from sets the server chooses, never from a client's request.
// Call it from Setup. Without --metrics the sources are never called.
func (e *Env) AddMetrics(src metrics.Source) { e.metrics = append(e.metrics, src) }

// reloadCounts counts serve's reloads by outcome.
type reloadCounts struct {
	ok, failed, skipped atomic.Uint64
}

// count records one reload attempt's outcome.
func (r *reloadCounts) count(configured bool, err error) {
	switch {
	case !configured:
		r.skipped.Add(1)
	case err != nil:
		r.failed.Add(1)
	default:
		r.ok.Add(1)
	}
}

func (r *reloadCounts) families() []metrics.Family {
	f := metrics.NewCounter("alknet_reloads_total",
		"Config reloads (SIGHUP) by outcome: ok, failed (previous configuration kept) or skipped (serve runs without --config).", "outcome").
		Add(float64(r.ok.Load()), "ok").
		Add(float64(r.failed.Load()), "failed").
		Add(float64(r.skipped.Load()), "skipped")
	return []metrics.Family{*f}
}

// endpointFamilies returns the endpoint's counters as metric families.
func endpointFamilies(ep *endpoint.Endpoint) []metrics.Family {
	s := ep.Stats()
	accepted := metrics.NewCounter("alknet_connections_accepted_total",
		"Connections handed to a handler, by transport (quic, tcp+tls, dispatch) and ALPN.", "transport", "alpn")
	for k, n := range s.AcceptedBy {
		accepted.Add(float64(n), k.Transport, k.ALPN)
	}
	refused := metrics.NewCounter("alknet_connections_refused_total",
		"Connections closed before any handler ran, by reason (max_connections, max_connections_per_ip, handshake_failed, handshake_timeout, unknown_alpn, no_handler, acme, shutdown).", "reason")
	for r, n := range s.Refused {
		refused.Add(float64(n), string(r))
	}
	active := metrics.NewGauge("alknet_connections_active",
		"Connections whose handler runs, by ALPN.", "alpn")
	for alpn, n := range s.Active {
		active.Add(float64(n), alpn)
	}
	return []metrics.Family{
		*accepted, *refused, *active,
		*metrics.NewGauge("alknet_connections_open", "Open connections, those in their handshake included.").Add(float64(s.Connections)),
		*metrics.NewCounter("alknet_connections_resumed_total", "Accepted connections whose TLS handshake resumed a session (a ticket of this node) instead of a full handshake.").Add(float64(s.Resumed)),
		*metrics.NewCounter("alknet_quic_handshake_failures_total", "QUIC connections that ended before their handshake finished (TCP+TLS ones are in alknet_connections_refused_total).").Add(float64(s.QUICHandshakeFailures)),
		*metrics.NewCounter("alknet_streams_total", "Bidirectional QUIC streams of served connections, accepted or opened.").Add(float64(s.Streams)),
		*metrics.NewGauge("alknet_streams_active", "Bidirectional QUIC streams open on served connections (not yet closed by their handler).").Add(float64(s.ActiveStreams)),
	}
}

// startMetrics serves the node's metrics on addr: the endpoint's, the reloads', the
// plugins' (Env.AddMetrics), the Go runtime's and the process's.
func startMetrics(addr string, env *Env, ep *endpoint.Endpoint, reloads *reloadCounts) (*metrics.Server, error) {
	sources := append([]metrics.Source{
		func() []metrics.Family { return endpointFamilies(ep) },
		reloads.families,
	}, env.metrics...)
	h, err := metrics.NewHandler(sources...)
	if err != nil {
		return nil, err
	}
	return metrics.Listen(addr, h)
}

// metricsLine is serve's stdout line for the metrics listener ("" without one).
func metricsLine(ms *metrics.Server) string {
	if ms == nil {
		return ""
	}
	return fmt.Sprintf("listen metrics %s\n", ms.Addr())
}
