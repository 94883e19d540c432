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
	if testing.Short() {
		t.Skip("runs a (quick) benchmark")
	}
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	var out, errOut bytes.Buffer
	if err := run(ctx, []string{"endpoint", "-quick"}, &out, &errOut); err != nil {
		t.Fatalf("run: %v\nstdout:\n%s\nstderr:\n%s", err, &out, &errOut)
	}
	metrics := []string{"new QUIC connections/s", "QUIC single-stream bulk", "TCP+TLS single-stream bulk"}
	rows := tableRows(out.String(), metrics)
	for _, metric := range metrics {
		cells, ok := rows[metric]
		if !ok {
			t.Errorf("no row for %q in:\n%s", metric, &out)
			continue
		}
		if len(cells) != 4 {
			t.Errorf("row %q has %d cells, want 4: %q", metric, len(cells), cells)
			continue
		}
		alk := number(t, metric, "alknet", cells[1])
		base := number(t, metric, "baseline", strings.Fields(cells[2])[0])
		r := number(t, metric, "ratio", cells[3])
		if alk <= 0 || base <= 0 || r <= 0 {
			t.Errorf("row %q: want positive numbers, got %q", metric, cells)
		}
	}
	if !strings.Contains(out.String(), "quic-go v0.65.0") {
		t.Errorf("machine info lacks the quic-go version:\n%s", &out)
	}
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
