package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestSSHQuick runs the ssh benchmark end to end in quick mode, with tiny sizes and
// short rounds, and checks the shape of its tables and the goal line, never the
// timings themselves.
func TestSSHQuick(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a (quick) benchmark")
	}
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	var out, errOut bytes.Buffer
	args := []string{"ssh", "-quick", "-duration", "100ms", "-bulk-bytes", "2MiB", "-conns-parallel", "2"}
	if err := run(ctx, args, &out, &errOut); err != nil {
		t.Fatalf("run: %v\nstdout:\n%s\nstderr:\n%s", err, &out, &errOut)
	}
	s := out.String()

	header := []string{"metric", "alknet/ssh QUIC", "alknet/ssh TCP+TLS", "x/crypto/ssh TCP", "QUIC vs x/crypto/ssh TCP", "TCP+TLS vs x/crypto/ssh TCP"}
	if !strings.Contains(s, "| "+strings.Join(header, " | ")+" |") {
		t.Errorf("no table header %q in:\n%s", header, s)
	}
	metrics := []string{
		"direct-tcpip bulk through one channel, MB/s (2 MiB)",
		"new connections/s: connect + SSH handshake + publickey auth, closed (2 dialers)",
	}
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
		for i, c := range row[1:4] {
			if v := number(t, metric, "arm", c); v <= 0 {
				t.Errorf("row %q, arm %d: want a positive rate, got %q", metric, i, c)
			}
		}
		for _, c := range row[4:] {
			if v := number(t, metric, "ratio", c); v <= 0 {
				t.Errorf("row %q: want positive ratios, got %q", metric, row)
			}
		}
	}

	// The per-round table: one row per metric and arm, the bulk rows per MiB.
	perRound := make(map[string][]string)
	for _, cells := range markdownRows(s) {
		if len(cells) == 7 {
			perRound[cells[0]+" "+cells[1]] = cells
		}
	}
	for _, m := range sshMetrics {
		for _, a := range sshArms {
			cells, ok := perRound[m+" "+a]
			if !ok {
				t.Errorf("per-round table lacks %s / %s in:\n%s", m, a, s)
				continue
			}
			want := map[string]string{sshMetricBulk: "MiB", sshMetricHandshake: "conn"}[m]
			if cells[6] != want {
				t.Errorf("per-round row %s / %s: unit %q, want %q", m, a, cells[6], want)
			}
		}
	}

	goal := goalOf(s)
	if !strings.HasPrefix(goal, "goal: direct-tcpip throughput and handshake rate over alknet/ssh QUIC ≥ 0.9× x/crypto/ssh over TCP — ") ||
		!(strings.Contains(goal, "— met (bulk ") || strings.Contains(goal, "— not met (bulk ")) ||
		!strings.Contains(goal, ", handshake ") {
		t.Errorf("goal line = %q, want a met/not met verdict with both ratios in:\n%s", goal, s)
	}
	if !strings.Contains(s, "quic-go v0.65.0") {
		t.Errorf("machine info lacks the quic-go version:\n%s", s)
	}
}

// TestSSHFlags checks the subset flags and the bad-flag paths without measuring much.
func TestSSHFlags(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a (quick) benchmark")
	}
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	var out, errOut bytes.Buffer
	for _, args := range [][]string{
		{"ssh", "-only", "nosuch"},
		{"ssh", "-arms", "nosuch"},
		{"ssh", "-conns-parallel", "0"},
		{"ssh", "-bulk-bytes", "0"},
		{"ssh", "-rounds", "0"},
		{"ssh", "stray"},
	} {
		if err := run(t.Context(), args, &out, &errOut); err == nil {
			t.Errorf("%q: no error", args)
		}
	}
	out.Reset()
	args := []string{"ssh", "-quick", "-bulk-bytes", "512KiB", "-only", "bulk", "-arms", "alknet-quic,xssh-tcp"}
	if err := run(t.Context(), args, &out, &errOut); err != nil {
		t.Fatalf("%q: %v\n%s", args, err, &errOut)
	}
	s := out.String()
	rows := tableRows(s, []string{"direct-tcpip bulk", "new connections/s"})
	if row := rows["direct-tcpip bulk"]; len(row) != 1+2+1 {
		t.Errorf("bulk row = %q, want metric, 2 arms and 1 ratio", row)
	}
	if _, ok := rows["new connections/s"]; ok {
		t.Errorf("-only bulk printed a handshake row:\n%s", s)
	}
	if g := goalOf(s); !strings.Contains(g, "— not measured") {
		t.Errorf("goal line without the handshake metric = %q, want not measured", g)
	}
	// Below 1 MiB the bulk rows are per transfer.
	found := false
	for _, cells := range markdownRows(s) {
		if len(cells) == 7 && cells[0] == sshMetricBulk {
			found = true
			if cells[6] != "transfer" {
				t.Errorf("per-round bulk row %q: unit %q, want transfer", cells, cells[6])
			}
		}
	}
	if !found {
		t.Errorf("no per-round bulk rows in:\n%s", s)
	}
}
