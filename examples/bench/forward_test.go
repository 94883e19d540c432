package main

import (
	"strings"
	"testing"
)

// TestForwardQuick runs the forward benchmark end to end in quick mode, with tiny sizes
// and short rounds, on every arm, and checks the shape of its table and goal lines,
// never the timings themselves.
func TestForwardQuick(t *testing.T) {
	s := runQuick(t, "forward", "-quick", "-duration", "100ms", "-bulk-bytes", "2MiB", "-conns-parallel", "2")
	header := []string{"metric", "alknet/forward QUIC", "raw quic-go stream", "x/crypto/ssh TCP", "plain TCP to the target (floor)",
		"forward vs quic-go", "forward vs x/crypto/ssh", "quic-go vs x/crypto/ssh"}
	if !strings.Contains(s, "| "+strings.Join(header, " | ")+" |") {
		t.Errorf("no table header %q in:\n%s", header, s)
	}
	checkArmRows(t, s, []string{
		"bulk through one forwarded connection, MB/s (2 MiB)",
		"forwarded connections/s on one connection: open, 1 byte echoed, closed (2 openers)",
		"aggregate MB/s of 1 forwarded connection at once (2 MiB in all)",
		"aggregate MB/s of 16 forwarded connections at once (2 MiB in all)",
		"aggregate MB/s of 64 forwarded connections at once (2 MiB in all)",
	}, len(fwdArms), len(header))
	checkPerRound(t, s, 7, fwdMetrics, fwdArms)

	want := []string{
		"goal: single-connection bulk over alknet/forward ≥ 0.95× a raw quic-go stream — ",
		"goal: forwarded connections/s over alknet/forward ≥ 2.0× x/crypto/ssh over TCP — ",
		"goal: 64 parallel forwarded connections' throughput over alknet/forward ≥ 1.0× x/crypto/ssh over TCP — ",
	}
	goals := goalsOf(s)
	if len(goals) != len(want) {
		t.Fatalf("goal lines = %q, want %d in:\n%s", goals, len(want), s)
	}
	for i, g := range goals {
		if !strings.HasPrefix(g, want[i]) || !judged(g, "— met (", "— not met (") {
			t.Errorf("goal line = %q, want %q with a verdict", g, want[i])
		}
	}
	if !strings.Contains(s, "reported: single-connection bulk over alknet/forward against x/crypto/ssh over TCP — ") {
		t.Errorf("no reported bulk ratio against x/crypto/ssh in:\n%s", s)
	}
	for _, floor := range []string{
		"floor: forwarded connections/s — plain TCP to the target alone (dial, 1 byte echoed, close) ",
		"floor: single-connection bulk — the TCP hop alone costs ",
		"floor: 64 parallel forwarded connections — a raw quic-go stream per connection, without any TCP hop, moves ",
	} {
		if !strings.Contains(s, "\n"+floor) {
			t.Errorf("no line %q in:\n%s", floor, s)
		}
	}
}

// TestForwardFlags checks the bad-flag paths without measuring anything.
func TestForwardFlags(t *testing.T) {
	benchTest(t)
	checkRejected(t,
		[]string{"forward", "-only", "nosuch"},
		[]string{"forward", "-arms", "nosuch"},
		[]string{"forward", "-conns-parallel", "0"},
		[]string{"forward", "-bulk-bytes", "0"},
	)
}
