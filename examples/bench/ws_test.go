package main

import (
	"strings"
	"testing"
)

// TestWSQuick runs the ws benchmark end to end in quick mode, with short rounds, and
// checks the shape of its tables and the goal line, never the timings themselves.
func TestWSQuick(t *testing.T) {
	s := runQuick(t, "ws", "-quick", "-duration", "100ms", "-concurrency", "8", "-conns-parallel", "2")

	header := []string{"metric", "alknet /alknet/call TCP+TLS", "net/http + coder/websocket TLS", "alknet vs net/http+websocket"}
	if !strings.Contains(s, "| "+strings.Join(header, " | ")+" |") {
		t.Errorf("no table header %q in:\n%s", header, s)
	}
	rows := []string{
		"echo calls/s, 8 callers on one socket", "echo p50 latency, 8 callers on one socket", "echo p99 latency, 8 callers on one socket",
		"echo calls/s, 1 caller", "echo p50 latency, 1 caller", "echo p99 latency, 1 caller",
		"new connections/s: dial + TLS + upgrade + 1 call + close (2 dialers)",
	}
	checkArmRows(t, s, rows, 2, len(header))

	// The per-round table: one row per metric and arm.
	checkPerRound(t, s, 8, wsMetrics, wsArms)

	goal := goalOf(s)
	if !strings.HasPrefix(goal, "goal: /alknet/call echo calls/s with many callers on one socket ≥ 0.9× net/http + coder/websocket — ") ||
		!judged(goal, "— met (", "— not met (") {
		t.Errorf("goal line = %q, want a met/not met verdict in:\n%s", goal, s)
	}
	if !strings.Contains(s, "coder/websocket v1.8.15") {
		t.Errorf("machine info lacks the coder/websocket version:\n%s", s)
	}
}

// TestWSFlags checks the subset flags and the bad-flag paths without measuring much.
func TestWSFlags(t *testing.T) {
	benchTest(t)
	checkRejected(t,
		[]string{"ws", "-only", "nosuch"},
		[]string{"ws", "-arms", "nosuch"},
		[]string{"ws", "-concurrency", "0"},
		[]string{"ws", "-conns-parallel", "0"},
		[]string{"ws", "-rounds", "0"},
		[]string{"ws", "stray"},
	)
	s := mustRun(t, "ws", "-quick", "-duration", "50ms", "-only", "call-1", "-arms", "net-http-ws")
	rows := tableRows(s, []string{"echo calls/s, 1 caller", "echo calls/s, 64", "new connections/s"})
	if row := rows["echo calls/s, 1 caller"]; len(row) != 1+1 {
		t.Errorf("1-caller row = %q, want metric and 1 arm (no ratio without the alknet arm)", row)
	}
	for _, k := range []string{"echo calls/s, 64", "new connections/s"} {
		if _, ok := rows[k]; ok {
			t.Errorf("-only call-1 printed a %q row:\n%s", k, s)
		}
	}
	if g := goalOf(s); !strings.Contains(g, "— not measured") {
		t.Errorf("goal line without the alknet arm = %q, want not measured", g)
	}
}
