package main

import (
	"strings"
	"testing"
)

// TestCallQuick runs the call benchmark in quick mode and checks that every row of both
// tables is present and holds numbers, never the timings themselves.
func TestCallQuick(t *testing.T) {
	s := runQuick(t, "call", "-quick", "-concurrency", "8")

	rates := []string{"unary echo calls/s, 1 caller", "unary echo calls/s, 8 callers", "subscription events/s"}
	latencies := []string{
		"unary echo p50 latency, 1 caller", "unary echo p99 latency, 1 caller",
		"unary echo p50 latency, 8 callers", "unary echo p99 latency, 8 callers",
	}
	// metric, 4 arms, 4 ratios (each alknet arm against each gRPC arm).
	checkArmRows(t, s, append(append([]string(nil), rates...), latencies...), 4, 1+4+4)

	// The per-round table: one row per metric and arm.
	checkPerRound(t, s, 8, callMetrics, callArms)
	for _, want := range []string{"quic-go v0.65.0", "grpc-go v1.85.0", "Goal (", "gRPC h2c is plaintext"} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q:\n%s", want, s)
		}
	}
}

// TestCallFlags checks the subset flags and the bad-flag paths without measuring much.
func TestCallFlags(t *testing.T) {
	benchTest(t)
	checkRejected(t,
		[]string{"call", "-only", "nosuch"},
		[]string{"call", "-arms", "nosuch"},
		[]string{"call", "-concurrency", "0"},
		[]string{"call", "-events", "0"},
	)
	out := mustRun(t, "call", "-quick", "-only", "events", "-arms", "alknet-quic,grpc-h2c", "-events", "100")
	rows := tableRows(out, []string{"subscription events/s", "unary echo"})
	if row := rows["subscription events/s"]; len(row) != 1+2+1 {
		t.Errorf("events row = %q, want metric, 2 arms and 1 ratio", row)
	}
	if _, ok := rows["unary echo"]; ok {
		t.Errorf("-only events printed a unary row:\n%s", out)
	}
}
