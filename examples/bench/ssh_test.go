package main

import (
	"strings"
	"testing"
)

// TestSSHQuick runs the ssh benchmark end to end in quick mode, with tiny sizes and
// short rounds, and checks the shape of its tables and the goal line, never the
// timings themselves.
func TestSSHQuick(t *testing.T) {
	s := runQuick(t, "ssh", "-quick", "-duration", "100ms", "-bulk-bytes", "2MiB", "-conns-parallel", "2")

	header := []string{"metric", "alknet/ssh QUIC", "alknet/ssh TCP+TLS", "x/crypto/ssh TCP", "QUIC vs x/crypto/ssh TCP", "TCP+TLS vs x/crypto/ssh TCP"}
	if !strings.Contains(s, "| "+strings.Join(header, " | ")+" |") {
		t.Errorf("no table header %q in:\n%s", header, s)
	}
	checkArmRows(t, s, []string{
		"direct-tcpip bulk through one channel, MB/s (2 MiB)",
		"new connections/s: connect + SSH handshake + publickey auth, closed (2 dialers)",
	}, 3, len(header))

	// The per-round table: one row per metric and arm, the bulk rows per MiB.
	perRound := checkPerRound(t, s, 7, sshMetrics, sshArms)
	for _, m := range sshMetrics {
		for _, a := range sshArms {
			cells, ok := perRound[m+" "+a]
			if !ok {
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
	benchTest(t)
	checkRejected(t,
		[]string{"ssh", "-only", "nosuch"},
		[]string{"ssh", "-arms", "nosuch"},
		[]string{"ssh", "-conns-parallel", "0"},
		[]string{"ssh", "-bulk-bytes", "0"},
		[]string{"ssh", "-rounds", "0"},
		[]string{"ssh", "stray"},
	)
	s := mustRun(t, "ssh", "-quick", "-bulk-bytes", "512KiB", "-only", "bulk", "-arms", "alknet-quic,xssh-tcp")
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
