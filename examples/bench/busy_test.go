package main

import (
	"regexp"
	"strings"
	"testing"
)

// TestJudgeGoals checks the quietness rule on fixed figures: within busyLimit the
// report is left as it is; beyond it every verdict of every goal line, in either
// style, becomes tooBusy with the figure, and nothing else changes.
func TestJudgeGoals(t *testing.T) {
	report := strings.Join([]string{
		"## bench x",
		"",
		"- settings: the goal is met (this line is not a goal line) (met)",
		"",
		"goal: a ≥ 0.9× b — met (0.97×)",
		"",
		"goal: c ≥ 0.95× d — not met (bulk 0.50×, handshake 0.31×)",
		"",
		"goal: e ≥ 0.95× f — missed (bulk 0.90×)",
		"",
		"goal: g ≥ 1.0× h — not measured (needs metric x)",
		"",
		"Goal (i ≥ 1.0× j): many 1.02× (met); one 0.80× (missed); p50 (not met).",
		"",
	}, "\n")
	for _, other := range []string{"0%", "19%", "20%", "unknown", ""} {
		if got := judgeGoals(report, other); got != report {
			t.Errorf("other processes %q: the report changed:\n%s", other, got)
		}
	}
	got := judgeGoals(report, "21%")
	want := strings.Join([]string{
		"## bench x",
		"",
		"- settings: the goal is met (this line is not a goal line) (met)",
		"",
		"goal: a ≥ 0.9× b — too busy to judge (other processes used 21% of the CPU, over 20%; 0.97×)",
		"",
		"goal: c ≥ 0.95× d — too busy to judge (other processes used 21% of the CPU, over 20%; bulk 0.50×, handshake 0.31×)",
		"",
		"goal: e ≥ 0.95× f — too busy to judge (other processes used 21% of the CPU, over 20%; bulk 0.90×)",
		"",
		"goal: g ≥ 1.0× h — not measured (needs metric x)",
		"",
		"Goal (i ≥ 1.0× j): many 1.02× (too busy to judge); one 0.80× (too busy to judge); p50 (too busy to judge). Verdicts withheld: other processes used 21% of the CPU, over 20%.",
		"",
	}, "\n")
	if got != want {
		t.Errorf("judgeGoals at 21%%:\n%s\nwant:\n%s", got, want)
	}
	for _, line := range strings.Split(got, "\n") {
		if isGoalLine(line) && (strings.Contains(line, "— met") || strings.Contains(line, "missed") || strings.Contains(line, "(met)")) {
			t.Errorf("a verdict survived at 21%%: %q", line)
		}
	}
}

// TestBusyShare checks the parsing of the other processes' share.
func TestBusyShare(t *testing.T) {
	for _, c := range []struct {
		in   string
		want float64
		ok   bool
	}{
		{"72%", 72, true},
		{" 0% ", 0, true},
		{"unknown", 0, false},
		{"", 0, false},
		{"x%", 0, false},
	} {
		got, ok := busyShare(c.in)
		if got != c.want || ok != c.ok {
			t.Errorf("busyShare(%q) = %v, %v; want %v, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}

// judged reports whether the goal line g carries one of the verdicts (such as
// "— met (") or, where the machine was too busy during the run, tooBusy in their
// place: a quick run's verdict depends on the machine's load, its shape does not.
func judged(g string, verdicts ...string) bool {
	if strings.Contains(g, "— "+tooBusy+" (other processes used ") {
		return true
	}
	for _, v := range verdicts {
		if strings.Contains(g, v) {
			return true
		}
	}
	return false
}

// reportedBusyRE finds the share of the CPU other processes used in a report's
// quietness line.
var reportedBusyRE = regexp.MustCompile(`other processes used (\d+)% of the machine's CPU during it`)

// reportedBusy returns the share of the CPU that the report s says other processes
// used, 0 where it is unknown (no /proc/stat); the test fails where it says nothing.
func reportedBusy(t *testing.T, s string) float64 {
	t.Helper()
	if strings.Contains(s, "other processes used unknown of the machine's CPU") {
		return 0
	}
	m := reportedBusyRE.FindStringSubmatch(s)
	if m == nil {
		t.Fatalf("no quietness figure in:\n%s", s)
	}
	v, ok := busyShare(m[1] + "%")
	if !ok {
		t.Fatalf("quietness figure %q", m[1])
	}
	return v
}
