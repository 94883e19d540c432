package call

import (
	"maps"
	"slices"

	"github.com/alknet/alknet/call"
	"github.com/alknet/alknet/examples/node/metrics"
)

// unknownOperation is the operation label of calls of names the registry does not hold.
const unknownOperation = "unknown"

// families returns a registry's counters as metric families: calls by operation and
// code, and the latency of one-shot calls by operation. Operations are the registered
// names (bounded by the node's configuration); every other name a client sends counts
// as "unknown".
func families(s call.Stats) []metrics.Family {
	ops := maps.Clone(s.Operations)
	if u, ok := ops[unknownOperation]; ok {
		// A registered operation named "unknown": one series for both.
		ops[unknownOperation] = merge(u, s.Unknown)
	} else {
		ops[unknownOperation] = s.Unknown
	}
	names := make([]string, 0, len(ops))
	for n := range ops {
		names = append(names, n)
	}
	slices.Sort(names)
	calls := metrics.NewCounter("alknet_call_operations_total",
		"Calls (alknet/call, the HTTP gateway, MCP and composed calls) by operation (registered names; any other as unknown) and code (OK, a protocol code, or OTHER for an operation's own).",
		"operation", "code")
	latency := metrics.NewHistogram("alknet_call_operation_duration_seconds",
		"Duration of one-shot calls (queries and mutations) by operation, admission checks included.",
		call.LatencyBuckets(), "operation")
	for _, n := range names {
		st := ops[n]
		for _, code := range call.StatsCodes() {
			if v, ok := st.Codes[code]; ok {
				calls.Add(float64(v), n, code)
			}
		}
		if st.Latency.Count > 0 {
			latency.AddHistogram(st.Latency.Count, st.Latency.Sum.Seconds(), st.Latency.Buckets, n)
		}
	}
	return []metrics.Family{*calls, *latency}
}

// merge adds b's counts to a's.
func merge(a, b call.OperationStats) call.OperationStats {
	out := call.OperationStats{Codes: make(map[string]uint64), Latency: call.Histogram{
		Count: a.Latency.Count + b.Latency.Count, Sum: a.Latency.Sum + b.Latency.Sum,
		Buckets: make([]uint64, len(a.Latency.Buckets)),
	}}
	for k, v := range a.Codes {
		out.Codes[k] += v
	}
	for k, v := range b.Codes {
		out.Codes[k] += v
	}
	for i := range out.Latency.Buckets {
		out.Latency.Buckets[i] = a.Latency.Buckets[i]
		if i < len(b.Latency.Buckets) {
			out.Latency.Buckets[i] += b.Latency.Buckets[i]
		}
	}
	return out
}
