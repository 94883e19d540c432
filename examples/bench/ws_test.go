package main

import (
	"strings"
	"testing"
)

// TestWSQuick runs the ws benchmark end to end in quick mode, with short rounds, and
// checks the shape of its tables and the goal line, never the timings themselves.
func TestWSQuick(t *testing.T) {
	s := runQuick(t, "ws", "-quick", "-duration", "100ms", "-concurrency", "1,8", "-conns", "4", "-conns-parallel", "2")

	header := []string{"metric", "alknet /alknet/call TCP+TLS", "net/http + coder/websocket TLS", "alknet vs net/http+websocket"}
	if !strings.Contains(s, "| "+strings.Join(header, " | ")+" |") {
		t.Errorf("no table header %q in:\n%s", header, s)
	}
	rows := []string{
		"echo calls/s, 8 callers on one socket", "echo p50 latency, 8 callers on one socket", "echo p99 latency, 8 callers on one socket",
		"echo calls/s, 1 caller on one socket", "echo p50 latency, 1 caller on one socket", "echo p99 latency, 1 caller on one socket",
		"echo calls/s, 4 clients, a connection each", "echo p50 latency, 4 clients, a connection each", "echo p99 latency, 4 clients, a connection each",
		"new connections/s: dial + TLS + upgrade + 1 call + close (2 dialers)",
	}
	checkArmRows(t, s, rows, 2, len(header))
	if tables := sweptTables(s); len(tables["64 B"]) != 9 || len(tables[""]) != 1 || len(tables) != 2 {
		t.Errorf("tables %v, want 9 rows for 64 B and the new connections row:\n%s", tables, s)
	}

	// The per-round table: one row per metric and arm.
	checkPerRound(t, s, 8, []string{"call/64B/1", "call/64B/8", "conns/64B/4", "conn"}, wsArms)

	goal := goalOf(s)
	if !strings.HasPrefix(goal, "goal: /alknet/call echo calls/s with many callers on one socket ≥ 0.9× net/http + coder/websocket — ") ||
		!judged(goal, "— met (", "— not met (") || !strings.HasSuffix(goal, "(judged at the 64 B payload, 8 callers)") {
		t.Errorf("goal line = %q, want a met/not met verdict at 8 callers in:\n%s", goal, s)
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
		[]string{"ws", "-only", "call-1"},
		[]string{"ws", "-arms", "nosuch"},
		[]string{"ws", "-concurrency", "0"},
		[]string{"ws", "-conns-parallel", "0"},
		[]string{"ws", "-rounds", "0"},
		[]string{"ws", "stray"},
	)
	s := mustRun(t, "ws", "-quick", "-duration", "50ms", "-only", "call", "-concurrency", "1", "-arms", "net-http-ws")
	rows := tableRows(s, []string{"echo calls/s, 1 caller", "echo calls/s, 64", "echo calls/s, 16", "new connections/s"})
	if row := rows["echo calls/s, 1 caller"]; len(row) != 1+1 {
		t.Errorf("1-caller row = %q, want metric and 1 arm (no ratio without the alknet arm)", row)
	}
	for _, k := range []string{"echo calls/s, 64", "echo calls/s, 16", "new connections/s"} {
		if _, ok := rows[k]; ok {
			t.Errorf("-only call -concurrency 1 printed a %q row:\n%s", k, s)
		}
	}
	if g := goalOf(s); !strings.Contains(g, "— not measured") {
		t.Errorf("goal line without the alknet arm = %q, want not measured", g)
	}
}
