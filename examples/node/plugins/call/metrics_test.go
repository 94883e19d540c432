package call

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/alknet/alknet/call"
)

// TestFamiliesUnknownMerged: calls of names the registry does not hold count under
// operation "unknown", also when an operation of that name is registered (one series,
// their sum), and histograms keep their buckets.
func TestFamiliesUnknownMerged(t *testing.T) {
	reg := call.NewBareRegistry()
	ok := func(context.Context, *call.OpContext, json.RawMessage) (json.RawMessage, error) { return nil, nil }
	if err := reg.Register(call.Registration{Spec: call.NewSpec("unknown", call.Query), Once: ok}); err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if _, cerr := reg.Invoke(ctx, "unknown", nil, nil); cerr != nil {
		t.Fatal(cerr)
	}
	for _, name := range []string{"a/b", "c/d", "e"} {
		if _, cerr := reg.Invoke(ctx, name, nil, nil); cerr == nil {
			t.Fatalf("%s: no error", name)
		}
	}
	fams := families(reg.Stats())
	calls, latency := fams[0], fams[1]
	if len(calls.Samples) != 2 {
		t.Fatalf("calls = %+v, want OK and NOT_FOUND of unknown", calls.Samples)
	}
	for _, s := range calls.Samples {
		if s.Values[0] != "unknown" {
			t.Errorf("operation label %q", s.Values[0])
		}
		want := map[string]float64{"OK": 1, "NOT_FOUND": 3}[s.Values[1]]
		if s.Value != want {
			t.Errorf("%v = %v, want %v", s.Values, s.Value, want)
		}
	}
	if len(latency.Samples) != 1 || latency.Samples[0].Count != 4 || len(latency.Samples[0].Cumulative) != len(call.LatencyBuckets()) {
		t.Fatalf("latency = %+v", latency.Samples)
	}
	for _, f := range fams {
		if err := f.Validate(); err != nil {
			t.Error(err)
		}
	}
}
