package main

import (
	"strings"
	"testing"
)

// TestCallQuick runs the call benchmark in quick mode and checks that every row of its
// tables is present and holds numbers, never the timings themselves.
func TestCallQuick(t *testing.T) {
	s := runQuick(t, "call", "-quick", "-concurrency", "1,8", "-conns", "4")

	rates := []string{"unary echo calls/s, 1 caller", "unary echo calls/s, 8 callers", "unary echo calls/s, 4 clients, a connection each", "subscription events/s"}
	latencies := []string{
		"unary echo p50 latency, 1 caller", "unary echo p99 latency, 1 caller",
		"unary echo p50 latency, 8 callers", "unary echo p99 latency, 8 callers",
		"unary echo p50 latency, 4 clients, a connection each", "unary echo p99 latency, 4 clients, a connection each",
	}
	// metric, 4 arms, 4 ratios (each alknet arm against each gRPC arm).
	checkArmRows(t, s, append(append([]string(nil), rates...), latencies...), 4, 1+4+4)
	// One table for the one payload of -quick (3 rate rows, 6 latency rows), one for
	// the subscription.
	tables := sweptTables(s)
	if len(tables["64 B"]) != 9 || len(tables[""]) != 1 || len(tables) != 2 {
		t.Errorf("tables %v, want 9 rows for 64 B and the events row:\n%s", tables, s)
	}

	// The per-round table: one row per metric and arm.
	checkPerRound(t, s, 8, []string{"unary/64B/1", "unary/64B/8", "conns/64B/4", "events"}, callArms)
	for _, want := range []string{"quic-go v0.65.0", "grpc-go v1.85.0", "Goal (", "Goal (subscription events/s ≥ 1.0× gRPC server streaming", "gRPC h2c is plaintext", "(judged at the 64 B payload, 8 callers and 1 caller)"} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q:\n%s", want, s)
		}
	}
}

// TestCallFlags checks the subset flags, a sweep of two payloads and the bad-flag
// paths without measuring much.
func TestCallFlags(t *testing.T) {
	benchTest(t)
	checkRejected(t,
		[]string{"call", "-only", "nosuch"},
		[]string{"call", "-only", "unary-1"},
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

	out = mustRun(t, "call", "-quick", "-duration", "50ms", "-only", "unary", "-arms", "alknet-tcp,grpc-h2c",
		"-payload", "64B,1KiB", "-concurrency", "2", "-conns", "0")
	tables := sweptTables(out)
	for _, p := range []string{"64 B", "1 KiB"} {
		got := tables[p]
		if len(got) != 3 || got[0][0] != "unary echo calls/s, 2 callers" || len(got[0]) != 1+2+1 {
			t.Errorf("payload %s: rows %q, want the 2-caller rate, p50 and p99 with 2 arms and 1 ratio", p, got)
		}
	}
	if len(tables) != 2 {
		t.Errorf("tables %v, want one per payload and no other:\n%s", tables, out)
	}
	checkPerRound(t, out, 8, []string{"unary/64B/2", "unary/1KiB/2"}, []string{"alknet-tcp", "grpc-h2c"})
}
