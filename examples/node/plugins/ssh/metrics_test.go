package ssh

import (
	"testing"

	alkssh "github.com/alknet/alknet/ssh"
)

// TestForwardFamilies: the Forwarder's counters become valid families, streams
// labelled by outcome and bytes by direction.
func TestForwardFamilies(t *testing.T) {
	fams := forwardFamilies(alkssh.ForwardStats{
		Opened: 5, Active: 2, Refused: 3, DialFailed: 1, Rejected: 4, BytesUp: 100, BytesDown: 200,
		RemoteForward: alkssh.Outcomes{Accepted: 6, Refused: 7}, RemoteConnections: 8,
	})
	got := map[string]float64{}
	for _, f := range fams {
		if err := f.Validate(); err != nil {
			t.Fatal(err)
		}
		for _, s := range f.Samples {
			key := f.Name
			if len(s.Values) > 0 {
				key += " " + s.Values[0]
			}
			got[key] = s.Value
		}
	}
	want := map[string]float64{
		"alknet_forward_streams_total opened": 5, "alknet_forward_streams_total refused": 3,
		"alknet_forward_streams_total dial_failed": 1, "alknet_forward_streams_total rejected": 4,
		"alknet_forward_active": 2, "alknet_forward_bytes_total up": 100, "alknet_forward_bytes_total down": 200,
		"alknet_forward_remote_requests_total accepted": 6, "alknet_forward_remote_requests_total refused": 7,
		"alknet_forward_remote_connections_total": 8,
	}
	if len(got) != len(want) {
		t.Errorf("%d series, want %d: %v", len(got), len(want), got)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
}
