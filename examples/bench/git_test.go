package main

import (
	"context"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestMain lets the test binary act as the git benchmark's pipe: its clients
// re-execute the running binary with gitPipeCommand.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == gitPipeCommand {
		if err := runGitPipe(context.Background(), os.Args[2:], os.Stdin, os.Stdout); err != nil {
			os.Stderr.WriteString("bench " + gitPipeCommand + ": " + err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestGitQuick runs the git benchmark end to end in quick mode (a repository of 200
// commits and 100 files) and checks the shape of its tables and the goal line, never
// the timings themselves. It is skipped without git.
func TestGitQuick(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skipf("no git: %v", err)
	}
	s := runQuick(t, "git", "-quick")
	arms := gitArms
	header := []string{"metric"}
	for _, a := range arms {
		header = append(header, gitArmTitles[a])
	}
	for _, a := range arms {
		if title, ok := gitRatioTitles[a]; ok {
			header = append(header, title)
		}
	}
	if !strings.Contains(s, "| "+strings.Join(header, " | ")+" |") {
		t.Errorf("no table header %q in:\n%s", header, s)
	}
	// The go-git arm may fail an operation: its cell says so, its ratio is n/a, and it
	// has no per-round row.
	labels := []string{"clone 210 commits, 100 files: time", "fetch 10 new commits: time"}
	rows := tableRows(s, labels)
	failed := make(map[string]bool)
	for _, l := range labels {
		row := rows[l]
		if len(row) != len(header) {
			t.Errorf("row %q = %q, want %d cells", l, row, len(header))
			continue
		}
		for i, c := range row[1 : 1+len(arms)] {
			if c == "failed" && arms[i] == gitArmGoGit {
				failed[l] = true
				continue
			}
			if d, err := time.ParseDuration(c); err != nil || d <= 0 {
				t.Errorf("row %q: %q is not a positive duration", l, c)
			}
		}
		for _, c := range row[1+len(arms):] {
			if c == "n/a" && failed[l] {
				continue
			}
			if v := number(t, l, "ratio", c); v <= 0 {
				t.Errorf("row %q: want positive ratios, got %q", l, row)
			}
		}
	}
	measured := slices.DeleteFunc(slices.Clone(arms), func(a string) bool { return a == gitArmGoGit })
	perRound := checkPerRound(t, s, 7, gitMetrics, measured)
	for _, m := range gitMetrics {
		for _, a := range arms {
			if cells, ok := perRound[m+" "+a]; ok && cells[6] != m {
				t.Errorf("per-round row %s / %s: unit %q, want %q", m, a, cells[6], m)
			}
		}
	}
	g := goalOf(s)
	if !strings.HasPrefix(g, "goal: clone over alknet/git (binary engine) ≤ 1.1× git daemon's time — ") ||
		!judged(g, "— met (", "— not met (") {
		t.Errorf("goal line = %q in:\n%s", g, s)
	}
	if !strings.Contains(s, "- git: ") {
		t.Errorf("machine info lacks the git version:\n%s", s)
	}
}

// TestGitFlags checks the bad-flag paths.
func TestGitFlags(t *testing.T) {
	benchTest(t)
	checkRejected(t,
		[]string{"git", "-only", "nosuch"},
		[]string{"git", "-arms", "nosuch"},
		[]string{"git", "-commits", "0"},
		[]string{"git", "-files", "0"},
		[]string{"git", "-new-commits", "0"},
		[]string{"git", "-rounds", "0"},
		[]string{"git", "stray"},
	)
}
