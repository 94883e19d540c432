package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestHTTPQuick runs the http benchmark end to end in quick mode, with short rounds,
// and checks the shape of its tables and the goal line, never the timings themselves.
func TestHTTPQuick(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a (quick) benchmark")
	}
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	var out, errOut bytes.Buffer
	args := []string{"http", "-quick", "-duration", "100ms", "-concurrency", "8"}
	if err := run(ctx, args, &out, &errOut); err != nil {
		t.Fatalf("run: %v\nstdout:\n%s\nstderr:\n%s", err, &out, &errOut)
	}
	s := out.String()

	header := []string{"metric", "alknet TCP+TLS h2", "alknet QUIC alknet/http h2", "net/http TLS h2", "TCP+TLS vs net/http", "QUIC vs net/http"}
	if !strings.Contains(s, "| "+strings.Join(header, " | ")+" |") {
		t.Errorf("no table header %q in:\n%s", header, s)
	}
	rates := []string{"/call requests/s, 8 clients", "/call requests/s, 1 client"}
	latencies := []string{
		"/call p50 latency, 8 clients", "/call p99 latency, 8 clients",
		"/call p50 latency, 1 client", "/call p99 latency, 1 client",
	}
	metrics := append(append([]string(nil), rates...), latencies...)
	rows := tableRows(s, metrics)
	for _, metric := range metrics {
		row, ok := rows[metric]
		if !ok {
			t.Errorf("no row for %q in:\n%s", metric, s)
			continue
		}
		if len(row) != len(header) {
			t.Errorf("row %q has %d cells, want %d: %q", metric, len(row), len(header), row)
			continue
		}
		isLatency := strings.Contains(metric, "latency")
		for i, c := range row[1:4] {
			if isLatency {
				if d, err := time.ParseDuration(c); err != nil || d <= 0 {
					t.Errorf("row %q, arm %d: %q is not a positive duration", metric, i, c)
				}
			} else if v := number(t, metric, "arm", c); v <= 0 {
				t.Errorf("row %q, arm %d: want a positive rate, got %q", metric, i, c)
			}
		}
		for _, c := range row[4:] {
			if v := number(t, metric, "ratio", c); v <= 0 {
				t.Errorf("row %q: want positive ratios, got %q", metric, row)
			}
		}
	}

	// The per-round table: one row per metric and arm.
	perRound := make(map[string]bool)
	for _, cells := range markdownRows(s) {
		if len(cells) == 8 {
			perRound[cells[0]+" "+cells[1]] = true
		}
	}
	for _, m := range httpMetrics {
		for _, a := range httpArms {
			if !perRound[m+" "+a] {
				t.Errorf("per-round table lacks %s / %s in:\n%s", m, a, s)
			}
		}
	}

	goal := goalOf(s)
	if !strings.HasPrefix(goal, "goal: /call requests/s over TCP+TLS h2 ≥ 0.9× net/http TLS h2 — ") ||
		!(strings.Contains(goal, "— met (") || strings.Contains(goal, "— not met (")) {
		t.Errorf("goal line = %q, want a met/not met verdict in:\n%s", goal, s)
	}
	if !strings.Contains(s, "quic-go v0.65.0") {
		t.Errorf("machine info lacks the quic-go version:\n%s", s)
	}
}

// TestHTTPFlags checks the subset flags and the bad-flag paths without measuring much.
func TestHTTPFlags(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a (quick) benchmark")
	}
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	var out, errOut bytes.Buffer
	for _, args := range [][]string{
		{"http", "-only", "nosuch"},
		{"http", "-arms", "nosuch"},
		{"http", "-concurrency", "0"},
		{"http", "-rounds", "0"},
		{"http", "stray"},
	} {
		if err := run(t.Context(), args, &out, &errOut); err == nil {
			t.Errorf("%q: no error", args)
		}
	}
	out.Reset()
	args := []string{"http", "-quick", "-duration", "50ms", "-only", "call-1", "-arms", "alknet-quic,net-http"}
	if err := run(t.Context(), args, &out, &errOut); err != nil {
		t.Fatalf("%q: %v\n%s", args, err, &errOut)
	}
	s := out.String()
	rows := tableRows(s, []string{"/call requests/s, 1 client", "/call requests/s, 64"})
	if row := rows["/call requests/s, 1 client"]; len(row) != 1+2+1 {
		t.Errorf("1-client row = %q, want metric, 2 arms and 1 ratio", row)
	}
	if _, ok := rows["/call requests/s, 64"]; ok {
		t.Errorf("-only call-1 printed a 64-client row:\n%s", s)
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
