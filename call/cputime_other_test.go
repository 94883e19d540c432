//go:build !unix

package call

// processCPU is not available here: BenchmarkSubscription then reports no CPU time.
func processCPU() (int64, bool) { return 0, false }
