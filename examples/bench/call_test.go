package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestCallQuick runs the call benchmark in quick mode and checks that every row of both
// tables is present and holds numbers, never the timings themselves.
func TestCallQuick(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a (quick) benchmark")
	}
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	var out, errOut bytes.Buffer
	if err := run(ctx, []string{"call", "-quick", "-concurrency", "8"}, &out, &errOut); err != nil {
		t.Fatalf("run: %v\nstdout:\n%s\nstderr:\n%s", err, &out, &errOut)
	}
	s := out.String()

	rates := []string{"unary echo calls/s, 1 caller", "unary echo calls/s, 8 callers", "subscription events/s"}
	latencies := []string{
		"unary echo p50 latency, 1 caller", "unary echo p99 latency, 1 caller",
		"unary echo p50 latency, 8 callers", "unary echo p99 latency, 8 callers",
	}
	// metric, 4 arms, 4 ratios (each alknet arm against each gRPC arm).
	const cells = 1 + 4 + 4
	rows := tableRows(s, append(append([]string(nil), rates...), latencies...))
	for _, metric := range append(append([]string(nil), rates...), latencies...) {
		row, ok := rows[metric]
		if !ok {
			t.Errorf("no row for %q in:\n%s", metric, s)
			continue
		}
		if len(row) != cells {
			t.Errorf("row %q has %d cells, want %d: %q", metric, len(row), cells, row)
			continue
		}
		isLatency := strings.Contains(metric, "latency")
		for i, c := range row[1:5] {
			if isLatency {
				if d, err := time.ParseDuration(c); err != nil || d <= 0 {
					t.Errorf("row %q, arm %d: %q is not a positive duration", metric, i, c)
				}
			} else if v := number(t, metric, "arm", c); v <= 0 {
				t.Errorf("row %q, arm %d: want a positive rate, got %q", metric, i, c)
			}
		}
		for _, c := range row[5:] {
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
	for _, m := range callMetrics {
		for _, a := range callArms {
			if !perRound[m+" "+a] {
				t.Errorf("per-round table lacks %s / %s in:\n%s", m, a, s)
			}
		}
	}
	for _, want := range []string{"quic-go v0.65.0", "grpc-go v1.85.0", "Goal (", "gRPC h2c is plaintext"} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q:\n%s", want, s)
		}
	}
}

// TestCallFlags checks the subset flags and the bad-flag paths without measuring much.
func TestCallFlags(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a (quick) benchmark")
	}
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	var out, errOut bytes.Buffer
	for _, args := range [][]string{
		{"call", "-only", "nosuch"},
		{"call", "-arms", "nosuch"},
		{"call", "-concurrency", "0"},
		{"call", "-events", "0"},
	} {
		if err := run(t.Context(), args, &out, &errOut); err == nil {
			t.Errorf("%q: no error", args)
		}
	}
	out.Reset()
	args := []string{"call", "-quick", "-only", "events", "-arms", "alknet-quic,grpc-h2c", "-events", "100"}
	if err := run(t.Context(), args, &out, &errOut); err != nil {
		t.Fatalf("%q: %v\n%s", args, err, &errOut)
	}
	rows := tableRows(out.String(), []string{"subscription events/s", "unary echo"})
	if row := rows["subscription events/s"]; len(row) != 1+2+1 {
		t.Errorf("events row = %q, want metric, 2 arms and 1 ratio", row)
	}
	if _, ok := rows["unary echo"]; ok {
		t.Errorf("-only events printed a unary row:\n%s", &out)
	}
}
