package metrics_test

import (
	"context"
	"io"
	"net/http"
	"os"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.uber.org/goleak"

	"github.com/alknet/alknet/examples/node/metrics"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// scrape GETs url and parses the text exposition.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/plain")
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %s\n%s", url, resp.Status, b)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return fams
}

// TestServerServesSources: a scrape reads the sources at that moment (counters,
// gauges, histograms with their labels), with the Go runtime and process metrics;
// a malformed family is left out without failing the others; Close stops the listener.
func TestServerServesSources(t *testing.T) {
	var n float64
	src := func() []metrics.Family {
		n++
		return []metrics.Family{
			*metrics.NewCounter("t_total", "A counter.", "kind").Add(n, "a").Add(2*n, "b"),
			*metrics.NewGauge("t_open", "A gauge.").Add(7),
			*metrics.NewHistogram("t_seconds", "A histogram.", []float64{0.1, 1}, "op").AddHistogram(3, 1.5, []uint64{1, 2}, "x"),
			*metrics.NewCounter("t_bad_total", "Label values missing.", "kind").Add(1),
		}
	}
	h, err := metrics.NewHandler(src)
	if err != nil {
		t.Fatal(err)
	}
	s, err := metrics.Listen("127.0.0.1:0", h)
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + s.Addr().String() + metrics.Path
	first := scrape(t, url)
	second := scrape(t, url)
	c := second["t_total"]
	if c == nil || c.GetType() != dto.MetricType_COUNTER || len(c.Metric) != 2 {
		t.Fatalf("t_total = %v", c)
	}
	if v := first["t_total"].Metric[0].GetCounter().GetValue(); v != 1 {
		t.Errorf("first scrape t_total{kind=a} = %v, want 1", v)
	}
	if v := c.Metric[0].GetCounter().GetValue(); v != 2 || c.Metric[0].Label[0].GetValue() != "a" {
		t.Errorf("second scrape t_total = %v", c.Metric[0])
	}
	if g := second["t_open"]; g == nil || g.GetType() != dto.MetricType_GAUGE || g.Metric[0].GetGauge().GetValue() != 7 {
		t.Errorf("t_open = %v", g)
	}
	hist := second["t_seconds"].GetMetric()[0].GetHistogram()
	if hist.GetSampleCount() != 3 || hist.GetSampleSum() != 1.5 || len(hist.Bucket) != 3 || hist.Bucket[1].GetCumulativeCount() != 2 {
		t.Errorf("t_seconds = %v", hist)
	}
	if _, ok := second["t_bad_total"]; ok {
		t.Error("a family with missing label values was served")
	}
	for _, name := range []string{"go_goroutines", "process_start_time_seconds"} {
		if _, ok := second[name]; !ok && (name != "process_start_time_seconds" || hasProc()) {
			t.Errorf("no %s", name)
		}
	}
	resp, err := http.Get("http://" + s.Addr().String() + "/other")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /other: %s", resp.Status)
	}
	http.DefaultClient.CloseIdleConnections()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get(url); err == nil {
		t.Fatal("scrape after Close succeeded")
	}
}

// hasProc reports whether the process collector can read /proc.
func hasProc() bool {
	_, err := os.Stat("/proc/self/stat")
	return err == nil
}

func TestListenBadAddress(t *testing.T) {
	h, err := metrics.NewHandler()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := metrics.Listen("127.0.0.1:99999", h); err == nil {
		t.Fatal("Listen on port 99999 succeeded")
	}
}

func TestFamilyValidate(t *testing.T) {
	for _, f := range []*metrics.Family{
		metrics.NewCounter("", "no name"),
		metrics.NewCounter("x_total", "", "a").Add(1),
		metrics.NewHistogram("x_seconds", "", []float64{1, 0.5}),
		metrics.NewHistogram("x_seconds", "", []float64{1}).AddHistogram(1, 1, nil),
	} {
		if err := f.Validate(); err == nil {
			t.Errorf("%+v: valid", f)
		}
	}
	if err := metrics.NewCounter("x_total", "", "a").Add(1, "v").Validate(); err != nil {
		t.Error(err)
	}
}
