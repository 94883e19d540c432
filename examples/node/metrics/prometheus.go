package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Path is where a Server serves the metrics.
const Path = "/metrics"

// Collector is a prometheus.Collector over Sources: every Collect calls each Source
// and turns its families into constant metrics. It is unchecked (Describe sends
// nothing), since the series a snapshot holds are only known when it is taken.
type Collector struct {
	sources []Source
}

// NewCollector returns a Collector over sources.
func NewCollector(sources ...Source) *Collector {
	return &Collector{sources: append([]Source(nil), sources...)}
}

// Describe implements prometheus.Collector; it sends nothing (an unchecked collector).
func (c *Collector) Describe(chan<- *prometheus.Desc) {}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	for _, src := range c.sources {
		for _, f := range src() {
			collectFamily(ch, f)
		}
	}
}

// collectFamily sends f's samples; a malformed family becomes one invalid metric,
// which the handler reports without failing the rest of the scrape.
func collectFamily(ch chan<- prometheus.Metric, f Family) {
	desc := prometheus.NewDesc(f.Name, f.Help, f.Labels, nil)
	if err := f.Validate(); err != nil {
		ch <- prometheus.NewInvalidMetric(desc, err)
		return
	}
	for _, s := range f.Samples {
		var (
			m   prometheus.Metric
			err error
		)
		switch f.Kind {
		case Counter:
			m, err = prometheus.NewConstMetric(desc, prometheus.CounterValue, s.Value, s.Values...)
		case Gauge:
			m, err = prometheus.NewConstMetric(desc, prometheus.GaugeValue, s.Value, s.Values...)
		case Histogram:
			buckets := make(map[float64]uint64, len(f.Buckets))
			for i, b := range f.Buckets {
				buckets[b] = s.Cumulative[i]
			}
			m, err = prometheus.NewConstHistogram(desc, s.Count, s.Sum, buckets, s.Values...)
		default:
			err = fmt.Errorf("metrics: %s: unknown kind %d", f.Name, f.Kind)
		}
		if err != nil {
			m = prometheus.NewInvalidMetric(desc, err)
		}
		ch <- m
	}
}

// NewHandler returns the http.Handler of a /metrics endpoint: the Go runtime and
// process collectors and a Collector over sources, in the Prometheus text (or
// negotiated) exposition format. A family that fails is reported in the response's
// error and the rest are still served.
func NewHandler(sources ...Source) (http.Handler, error) {
	reg := prometheus.NewRegistry()
	for _, c := range []prometheus.Collector{
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		NewCollector(sources...),
	} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("metrics: register collector: %w", err)
		}
	}
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: 4,
		Timeout:             10 * time.Second,
	}), nil
}

// Server limits.
const (
	readHeaderTimeout = 10 * time.Second
	writeTimeout      = 30 * time.Second
	idleTimeout       = 60 * time.Second
	maxHeaderBytes    = 16 << 10
)

// Server serves a metrics handler at Path on its own plain-HTTP listener (no TLS, no
// authentication: bind it to loopback or a private network). Every other path is 404.
type Server struct {
	ln   net.Listener
	srv  *http.Server
	done chan error
}

// Listen binds addr (HOST:PORT; port 0 picks a free one) and serves h at Path until
// Close.
func Listen(addr string, h http.Handler) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET "+Path, h)
	s := &Server{
		ln: ln,
		srv: &http.Server{
			Handler:           mux,
			ReadHeaderTimeout: readHeaderTimeout,
			ReadTimeout:       readHeaderTimeout,
			WriteTimeout:      writeTimeout,
			IdleTimeout:       idleTimeout,
			MaxHeaderBytes:    maxHeaderBytes,
		},
		done: make(chan error, 1),
	}
	go func() { s.done <- s.srv.Serve(ln) }()
	return s, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Close stops the server: the listener at once, scrapes in progress after at most
// a few seconds. It returns once the server has stopped.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	if err != nil {
		err = errors.Join(err, s.srv.Close())
	}
	if serr := <-s.done; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return err
}
