package main

import (
	"strings"
	"testing"
)

// TestHTTPQuick runs the http benchmark end to end in quick mode, with short rounds,
// and checks the shape of its tables and the goal line, never the timings themselves.
func TestHTTPQuick(t *testing.T) {
	s := runQuick(t, "http", "-quick", "-duration", "100ms", "-concurrency", "1,8", "-conns", "4")

	header := []string{"metric", "alknet TCP+TLS h2", "alknet QUIC alknet/http h2", "alknet QUIC h3", "net/http TLS h2", "TCP+TLS vs net/http", "QUIC vs net/http", "h3 vs net/http"}
	if !strings.Contains(s, "| "+strings.Join(header, " | ")+" |") {
		t.Errorf("no table header %q in:\n%s", header, s)
	}
	rates := []string{"/call requests/s, 1 client", "/call requests/s, 8 clients", "/call requests/s, 4 clients, a connection each"}
	latencies := []string{
		"/call p50 latency, 1 client", "/call p99 latency, 1 client",
		"/call p50 latency, 8 clients", "/call p99 latency, 8 clients",
		"/call p50 latency, 4 clients, a connection each", "/call p99 latency, 4 clients, a connection each",
	}
	checkArmRows(t, s, append(append([]string(nil), rates...), latencies...), 4, len(header))
	if tables := sweptTables(s); len(tables["64 B"]) != 9 || len(tables) != 1 {
		t.Errorf("tables %v, want 9 rows for 64 B and no other:\n%s", tables, s)
	}

	// The per-round table: one row per metric and arm.
	checkPerRound(t, s, 8, []string{"call/64B/1", "call/64B/8", "conns/64B/4"}, httpArms)

	goal := goalOf(s)
	if !strings.HasPrefix(goal, "goal: /call requests/s over TCP+TLS h2 ≥ 0.9× net/http TLS h2 — ") ||
		!judged(goal, "— met (", "— not met (") || !strings.HasSuffix(goal, "(judged at the 64 B payload, 8 clients)") {
		t.Errorf("goal line = %q, want a met/not met verdict at 8 clients in:\n%s", goal, s)
	}
	if !strings.Contains(s, "quic-go v0.65.0") {
		t.Errorf("machine info lacks the quic-go version:\n%s", s)
	}
	if !strings.Contains(s, "\nallocation goal (a count, not a timing: judged however busy the machine): heap allocations per /call over TCP+TLS h2 (client and server) ≤ 128 — ") {
		t.Errorf("no allocation goal line in:\n%s", s)
	}
}

// TestHTTPFlags checks the subset flags and the bad-flag paths without measuring much.
func TestHTTPFlags(t *testing.T) {
	benchTest(t)
	checkRejected(t,
		[]string{"http", "-only", "nosuch"},
		[]string{"http", "-only", "call-1"},
		[]string{"http", "-arms", "nosuch"},
		[]string{"http", "-concurrency", "0"},
		[]string{"http", "-rounds", "0"},
		[]string{"http", "stray"},
	)
	s := mustRun(t, "http", "-quick", "-duration", "50ms", "-only", "call", "-concurrency", "1", "-arms", "alknet-quic,net-http")
	rows := tableRows(s, []string{"/call requests/s, 1 client", "/call requests/s, 64", "/call requests/s, 16"})
	if row := rows["/call requests/s, 1 client"]; len(row) != 1+2+1 {
		t.Errorf("1-client row = %q, want metric, 2 arms and 1 ratio", row)
	}
	for _, k := range []string{"/call requests/s, 64", "/call requests/s, 16"} {
		if _, ok := rows[k]; ok {
			t.Errorf("-only call -concurrency 1 printed a %q row:\n%s", k, s)
		}
	}
	if g := goalOf(s); !strings.Contains(g, "— not measured") {
		t.Errorf("goal line without the TCP+TLS arm = %q, want not measured", g)
	}
}

// goalOf returns the goal line of a report, "" when there is none.
func goalOf(s string) string {
	for line := range strings.Lines(s) {
		if strings.HasPrefix(line, "goal: ") {
			return strings.TrimSpace(line)
		}
	}
	return ""
}
