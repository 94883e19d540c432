package dns

import (
	"slices"

	alkdns "github.com/alknet/alknet/dns"
	"github.com/alknet/alknet/dns/pkarr"
	"github.com/alknet/alknet/examples/node/metrics"
)

// families returns the DNS server's counters (and the pkarr relay's, when relay is not
// nil) as metric families. Query names and keys are never labels.
func families(s alkdns.Stats, relay *pkarr.Relay) []metrics.Family {
	responses := metrics.NewCounter("alknet_dns_responses_total",
		"DNS answers by transport (doq, dot, plain) and rcode name (OTHER above BADCOOKIE).", "transport", "rcode")
	protocolErrors := metrics.NewCounter("alknet_dns_protocol_errors_total", "DNS connections closed for a protocol violation, by transport.", "transport")
	excessive := metrics.NewCounter("alknet_dns_excessive_load_total", "DoQ streams reset with DOQ_EXCESSIVE_LOAD, by transport.", "transport")
	internal := metrics.NewCounter("alknet_dns_internal_errors_total", "DNS queries whose handler panicked, by transport.", "transport")
	for _, t := range []struct {
		name string
		s    alkdns.TransportStats
	}{{"doq", s.DoQ}, {"dot", s.DoT}, {"plain", s.Plain}} {
		rcodes := make([]string, 0, len(t.s.Responses))
		for r := range t.s.Responses {
			rcodes = append(rcodes, r)
		}
		slices.Sort(rcodes)
		for _, r := range rcodes {
			responses.Add(float64(t.s.Responses[r]), t.name, r)
		}
		protocolErrors.Add(float64(t.s.ProtocolErrors), t.name)
		excessive.Add(float64(t.s.ExcessiveLoad), t.name)
		internal.Add(float64(t.s.InternalErrors), t.name)
	}
	out := []metrics.Family{*responses, *protocolErrors, *excessive, *internal}
	if relay == nil {
		return out
	}
	r := relay.Stats()
	reqs := metrics.NewCounter("alknet_pkarr_relay_requests_total",
		"pkarr relay requests by method (put, get) and outcome.", "method", "outcome").
		Add(float64(r.PutsAccepted), "put", "accepted").
		Add(float64(r.PutsBadRequest), "put", "bad_request").
		Add(float64(r.PutsConflict), "put", "conflict").
		Add(float64(r.PutsTooLarge), "put", "too_large").
		Add(float64(r.PutsRateLimited), "put", "rate_limited").
		Add(float64(r.Gets), "get", "ok").
		Add(float64(r.GetsNotModified), "get", "not_modified").
		Add(float64(r.GetsNotFound), "get", "not_found").
		Add(float64(r.GetsBadRequest), "get", "bad_request").
		Add(float64(r.GetsRateLimited), "get", "rate_limited")
	return append(out, *reqs,
		*metrics.NewGauge("alknet_pkarr_relay_entries", "Signed packets the pkarr relay holds.").Add(float64(r.Entries)),
		*metrics.NewCounter("alknet_pkarr_relay_evictions_total", "Packets the pkarr relay evicted to stay within its capacity.").Add(float64(r.Evictions)),
	)
}
