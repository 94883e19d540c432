package msg

import (
	"testing"

	"github.com/alknet/alknet/msg"
)

// TestFamilies: the msg counters become valid families, refusals labelled by the
// server's own error codes.
func TestFamilies(t *testing.T) {
	fams := families(msg.Stats{Deliveries: 3, Fetched: 2, Refused: map[msg.ErrorCode]uint64{msg.CodeTooLarge: 1, msg.CodeRateLimited: 4}})
	got := map[string]float64{}
	for _, f := range fams {
		if err := f.Validate(); err != nil {
			t.Fatal(err)
		}
		for _, s := range f.Samples {
			got[f.Name+s.Values[0]] = s.Value
		}
	}
	for k, v := range map[string]float64{
		"alknet_msg_requests_totaldeliver": 3, "alknet_msg_envelopes_totalfetched": 2,
		"alknet_msg_refused_totalTOO_LARGE": 1, "alknet_msg_refused_totalRATE_LIMITED": 4,
	} {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
}

// TestTotalsFamilies: the store's totals become a gauge by kind and a histogram of
// mailboxes by envelopes held.
func TestTotalsFamilies(t *testing.T) {
	var tot msg.Totals
	tot.AddMailbox(1, 10)
	tot.AddMailbox(50, 500)
	fams := totalsFamilies(tot)
	for _, f := range fams {
		if err := f.Validate(); err != nil {
			t.Fatal(err)
		}
	}
	if got := fams[0].Samples[1]; got.Values[0] != "envelopes" || got.Value != 51 {
		t.Errorf("envelopes sample = %+v", got)
	}
	h := fams[1].Samples[0]
	if h.Count != 2 || h.Sum != 51 || h.Cumulative[0] != 1 || h.Cumulative[2] != 2 {
		t.Errorf("histogram sample = %+v", h)
	}
}
