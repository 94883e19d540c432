package main

import (
	"strings"
	"testing"
)

// TestMCPQuick runs the mcp benchmark end to end in quick mode, with short rounds, and
// checks the shape of its tables and the goal line, never the timings themselves.
func TestMCPQuick(t *testing.T) {
	s := runQuick(t, "mcp", "-quick", "-duration", "100ms", "-concurrency", "1,4", "-conns", "2", "-sessions-parallel", "2")

	header := []string{"metric", "alknet /mcp TCP+TLS h2", "go-sdk raw tool TLS h2", "go-sdk typed tool TLS h2", "alknet vs go-sdk raw", "alknet vs go-sdk typed"}
	if !strings.Contains(s, "| "+strings.Join(header, " | ")+" |") {
		t.Errorf("no table header %q in:\n%s", header, s)
	}
	rows := []string{
		"tool calls/s, 4 callers on one session", "tool call p50 latency, 4 callers on one session", "tool call p99 latency, 4 callers on one session",
		"tool calls/s, 1 caller on one session", "tool call p50 latency, 1 caller on one session", "tool call p99 latency, 1 caller on one session",
		"tool calls/s, 2 clients, a connection each", "tool call p50 latency, 2 clients, a connection each", "tool call p99 latency, 2 clients, a connection each",
		"new sessions/s: initialize + 1 call + close (2 callers)",
	}
	checkArmRows(t, s, rows, 3, len(header))
	if tables := sweptTables(s); len(tables["64 B"]) != 9 || len(tables[""]) != 1 || len(tables) != 2 {
		t.Errorf("tables %v, want 9 rows for 64 B and the new sessions row:\n%s", tables, s)
	}

	// The per-round table: one row per metric and arm.
	checkPerRound(t, s, 8, []string{"call/64B/1", "call/64B/4", "conns/64B/2", "session"}, mcpArms)

	goal := goalOf(s)
	if !strings.HasPrefix(goal, "goal: /mcp call-tool calls/s with many callers on one session ≥ 0.9× the go-sdk used directly (raw tool) — ") ||
		!judged(goal, "— met (", "— not met (") || !strings.HasSuffix(goal, "(judged at the 64 B payload, 4 callers)") {
		t.Errorf("goal line = %q, want a met/not met verdict at 4 callers in:\n%s", goal, s)
	}
	if !strings.Contains(s, "go-sdk v1.8.0") {
		t.Errorf("machine info lacks the go-sdk version:\n%s", s)
	}
}

// TestMCPFlags checks the subset flags and the bad-flag paths without measuring much.
func TestMCPFlags(t *testing.T) {
	benchTest(t)
	checkRejected(t,
		[]string{"mcp", "-only", "nosuch"},
		[]string{"mcp", "-only", "call-1"},
		[]string{"mcp", "-arms", "nosuch"},
		[]string{"mcp", "-concurrency", "0"},
		[]string{"mcp", "-sessions-parallel", "0"},
		[]string{"mcp", "-rounds", "0"},
		[]string{"mcp", "stray"},
	)
	s := mustRun(t, "mcp", "-quick", "-duration", "50ms", "-only", "call", "-concurrency", "1", "-arms", "sdk-raw")
	rows := tableRows(s, []string{"tool calls/s, 1 caller", "tool calls/s, 64", "tool calls/s, 16", "new sessions/s"})
	if row := rows["tool calls/s, 1 caller"]; len(row) != 1+1 {
		t.Errorf("1-caller row = %q, want metric and 1 arm (no ratio without the alknet arm)", row)
	}
	for _, k := range []string{"tool calls/s, 64", "tool calls/s, 16", "new sessions/s"} {
		if _, ok := rows[k]; ok {
			t.Errorf("-only call -concurrency 1 printed a %q row:\n%s", k, s)
		}
	}
	if g := goalOf(s); !strings.Contains(g, "— not measured") {
		t.Errorf("goal line without the alknet arm = %q, want not measured", g)
	}
}
