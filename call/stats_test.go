package call

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
)

// TestRegistryStats: calls count under the registered name by outcome (declared codes
// as OTHER), unknown names under Unknown whatever they are, and one-shot calls land in
// the latency histogram.
func TestRegistryStats(t *testing.T) {
	r := NewRegistry()
	declared := onceReg("t/declared", func(context.Context, *OpContext, json.RawMessage) (json.RawMessage, error) {
		return nil, NewCallError("NOTE_GONE", "gone")
	})
	declared.Spec.ErrorSchemas = []ErrorDefinition{{Code: "NOTE_GONE"}}
	mustRegister(t, r, onceReg("t/ok", echo), declared)
	ctx := t.Context()
	for range 3 {
		if _, cerr := r.Invoke(ctx, "t/ok", nil, nil); cerr != nil {
			t.Fatal(cerr)
		}
	}
	if _, cerr := r.Invoke(ctx, "t/declared", nil, nil); cerr == nil || cerr.Code != "NOTE_GONE" {
		t.Fatalf("declared: %v", cerr)
	}
	for i := range 50 {
		wantCode(t, func() *CallError { _, c := r.Invoke(ctx, fmt.Sprintf("rand/%d", i), nil, nil); return c }(), CodeNotFound)
	}
	wantCode(t, r.InvokeStream(ctx, "t/ok", nil, nil, nil), CodeInvalidOperationType)

	s := r.Stats()
	ok := s.Operations["t/ok"]
	if ok.Codes[StatsCodeOK] != 3 || ok.Codes[CodeInvalidOperationType] != 1 || len(ok.Codes) != 2 {
		t.Errorf("t/ok codes = %v", ok.Codes)
	}
	if ok.Latency.Count != 3 || len(ok.Latency.Buckets) != len(LatencyBuckets()) || ok.Latency.Buckets[len(ok.Latency.Buckets)-1] > 3 {
		t.Errorf("t/ok latency = %+v (the subscribe attempt is not a latency sample)", ok.Latency)
	}
	if got := s.Operations["t/declared"].Codes; got[StatsCodeOther] != 1 || len(got) != 1 {
		t.Errorf("t/declared codes = %v, want OTHER 1", got)
	}
	if s.Unknown.Codes[CodeNotFound] != 50 || s.Unknown.Latency.Count != 50 {
		t.Errorf("unknown = %+v", s.Unknown)
	}
	names := make([]string, 0, len(s.Operations))
	for n := range s.Operations {
		names = append(names, n)
	}
	slices.Sort(names)
	if want := []string{OpServicesList, OpServicesSchema, "t/declared", "t/ok"}; !slices.Equal(names, want) {
		t.Errorf("operations = %v, want %v", names, want)
	}
	for code := range ok.Codes {
		if !slices.Contains(StatsCodes(), code) {
			t.Errorf("code %q not in StatsCodes", code)
		}
	}
}

// TestHistogramBuckets: an observation lands in the first bucket whose bound is at or
// above it, and buckets are cumulative.
func TestHistogramBuckets(t *testing.T) {
	var c opCounters
	c.observe(nil, latencyBounds[0])   // at the first bound
	c.observe(nil, latencyBounds[0]+1) // just above it
	c.observe(nil, 2*latencyBounds[len(latencyBounds)-1])
	s := c.snapshot().Latency
	if s.Count != 3 || s.Buckets[0] != 1 || s.Buckets[1] != 2 || s.Buckets[len(s.Buckets)-1] != 2 {
		t.Fatalf("histogram = %+v", s)
	}
	if want := latencyBounds[0] + latencyBounds[0] + 1 + 2*latencyBounds[len(latencyBounds)-1]; s.Sum != want {
		t.Fatalf("sum = %v, want %v", s.Sum, want)
	}
}
