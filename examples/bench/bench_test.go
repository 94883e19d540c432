package main

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestEndpointQuick runs the endpoint benchmark in quick mode and checks the shape of its
// table, never its timings.
func TestEndpointQuick(t *testing.T) {
	out := runQuick(t, "endpoint", "-quick")
	checkPairRows(t, out, []string{"new QUIC connections/s", "resumed QUIC connections/s", "new TCP+TLS connections/s", "resumed TCP+TLS connections/s", "QUIC single-stream bulk", "TCP+TLS single-stream bulk"})
	if !strings.Contains(out, "quic-go v0.65.0") {
		t.Errorf("machine info lacks the quic-go version:\n%s", out)
	}
}

// benchTest marks a test that runs a (quick) benchmark: it is skipped with -short, and
// fails where it leaves goroutines behind.
func benchTest(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("runs a (quick) benchmark")
	}
	leaks := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, leaks) })
}

// runQuick runs the command line args as a benchTest, within 5 minutes, and returns
// its standard output; the test stops where it fails.
func runQuick(t *testing.T, args ...string) string {
	t.Helper()
	benchTest(t)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	var out, errOut bytes.Buffer
	if err := run(ctx, args, &out, &errOut); err != nil {
		t.Fatalf("run: %v\nstdout:\n%s\nstderr:\n%s", err, &out, &errOut)
	}
	return out.String()
}

// mustRun runs the command line args and returns its standard output; the test stops
// where it fails.
func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	var out, errOut bytes.Buffer
	if err := run(t.Context(), args, &out, &errOut); err != nil {
		t.Fatalf("%q: %v\n%s", args, err, &errOut)
	}
	return out.String()
}

// checkRejected checks that every command line of cases fails.
func checkRejected(t *testing.T, cases ...[]string) {
	t.Helper()
	var out, errOut bytes.Buffer
	for _, args := range cases {
		if err := run(t.Context(), args, &out, &errOut); err == nil {
			t.Errorf("%q: no error", args)
		}
	}
}

// checkPairRows checks that the first table of a benchmark with two arms (alknet and
// a baseline) has a row of positive numbers for each label: alknet, the baseline
// (named after its value), the ratio.
func checkPairRows(t *testing.T, s string, labels []string) {
	t.Helper()
	rows := tableRows(s, labels)
	for _, label := range labels {
		cells, ok := rows[label]
		if !ok {
			t.Errorf("no row for %q in:\n%s", label, s)
			continue
		}
		if len(cells) != 4 {
			t.Errorf("row %q has %d cells, want 4: %q", label, len(cells), cells)
			continue
		}
		alk := number(t, label, "alknet", cells[1])
		base := number(t, label, "baseline", strings.Fields(cells[2])[0])
		r := number(t, label, "ratio", cells[3])
		if alk <= 0 || base <= 0 || r <= 0 {
			t.Errorf("row %q: want positive numbers, got %q", label, cells)
		}
	}
}

// checkArmRows checks that the first table of a benchmark with several arms has a row
// of cells cells for each metric: the label, arms values (positive durations in the
// latency rows, positive rates in the others), then positive ratios.
func checkArmRows(t *testing.T, s string, metrics []string, arms, cells int) {
	t.Helper()
	rows := tableRows(s, metrics)
	for _, metric := range metrics {
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
		for i, c := range row[1 : 1+arms] {
			if isLatency {
				if d, err := time.ParseDuration(c); err != nil || d <= 0 {
					t.Errorf("row %q, arm %d: %q is not a positive duration", metric, i, c)
				}
			} else if v := number(t, metric, "arm", c); v <= 0 {
				t.Errorf("row %q, arm %d: want a positive rate, got %q", metric, i, c)
			}
		}
		for _, c := range row[1+arms:] {
			if v := number(t, metric, "ratio", c); v <= 0 {
				t.Errorf("row %q: want positive ratios, got %q", metric, row)
			}
		}
	}
}

// checkPerRound checks that the per-round table (its rows have width cells) has a row
// for every metric and arm, and returns its rows by metric and arm ("bulk xssh-tcp").
func checkPerRound(t *testing.T, s string, width int, metrics, arms []string) map[string][]string {
	t.Helper()
	perRound := make(map[string][]string)
	for _, cells := range markdownRows(s) {
		if len(cells) == width {
			perRound[cells[0]+" "+cells[1]] = cells
		}
	}
	for _, m := range metrics {
		for _, a := range arms {
			if _, ok := perRound[m+" "+a]; !ok {
				t.Errorf("per-round table lacks %s / %s in:\n%s", m, a, s)
			}
		}
	}
	return perRound
}

// tableRows maps the first cell of each Markdown table row to its cells, keyed by the
// metric name in keys that the cell starts with.
func tableRows(s string, keys []string) map[string][]string {
	rows := make(map[string][]string)
	for _, cells := range markdownRows(s) {
		for _, key := range keys {
			if strings.HasPrefix(cells[0], key) {
				rows[key] = cells
			}
		}
	}
	return rows
}

// markdownRows returns the cells of every Markdown table row in s, header and
// separator rows included.
func markdownRows(s string) [][]string {
	var rows [][]string
	for line := range strings.Lines(s) {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "| ") {
			continue
		}
		var cells []string
		for c := range strings.SplitSeq(strings.Trim(line, "|"), "|") {
			cells = append(cells, strings.TrimSpace(c))
		}
		rows = append(rows, cells)
	}
	return rows
}

func number(t *testing.T, metric, col, s string) float64 {
	t.Helper()
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Errorf("row %q, %s: %q is not a number", metric, col, s)
	}
	return v
}

func TestUsage(t *testing.T) {
	var out, errOut bytes.Buffer
	if err := run(t.Context(), nil, &out, &errOut); !errors.Is(err, errUsage) {
		t.Errorf("no arguments: err = %v, want errUsage", err)
	}
	if !strings.Contains(errOut.String(), "endpoint") {
		t.Errorf("usage does not list the endpoint benchmark:\n%s", &errOut)
	}

	out.Reset()
	if err := run(t.Context(), []string{"help"}, &out, &errOut); err != nil {
		t.Errorf("help: %v", err)
	}
	if !strings.Contains(out.String(), "endpoint") {
		t.Errorf("help does not list the endpoint benchmark:\n%s", &out)
	}

	errOut.Reset()
	if err := run(t.Context(), []string{"nosuch"}, &out, &errOut); !errors.Is(err, errUsage) {
		t.Errorf("unknown benchmark: err = %v, want errUsage", err)
	}
	if err := run(t.Context(), []string{"endpoint", "-rounds", "x"}, &out, &errOut); !errors.Is(err, errUsage) {
		t.Errorf("bad flag: err = %v, want errUsage", err)
	}
	if err := run(t.Context(), []string{"endpoint", "-only", "nosuch"}, &out, &errOut); err == nil {
		t.Error("-only nosuch: no error")
	}
}

func TestByteSize(t *testing.T) {
	for in, want := range map[string]int64{"16MiB": 16 << 20, "256 MiB": 256 << 20, "1GiB": 1 << 30, "64KiB": 64 << 10, "1000": 1000, "12B": 12} {
		var b byteSize
		if err := b.Set(in); err != nil || int64(b) != want {
			t.Errorf("Set(%q) = %d, %v; want %d", in, b, err, want)
		}
	}
	for _, in := range []string{"", "x", "-1", "1TiB", "1.5MiB"} {
		var b byteSize
		if err := b.Set(in); err == nil {
			t.Errorf("Set(%q) accepted", in)
		}
	}
	if got := byteSize(256 << 20).String(); got != "256 MiB" {
		t.Errorf("String = %q", got)
	}
}
