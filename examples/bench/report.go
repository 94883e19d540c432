package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"
)

// sample is one measurement of one arm in one round.
type sample struct {
	value  float64       // the metric (operations/s, MB/s)
	ops    int           // operations the round completed (connections, transfers)
	allocs uint64        // heap allocations in the whole process during the round
	bytes  uint64        // heap bytes allocated in the whole process during the round
	cpu    time.Duration // CPU time (user+system) of the whole process during the round
}

func (s sample) allocsPerOp() float64 { return perOp(s.allocs, s.ops) }
func (s sample) bytesPerOp() float64  { return perOp(s.bytes, s.ops) }
func (s sample) cpuPerOp() float64    { return perOp(uint64(s.cpu), s.ops) }

func perOp(n uint64, ops int) float64 {
	if ops == 0 {
		return 0
	}
	return float64(n) / float64(ops)
}

// median returns the median of xs (the mean of the middle two for an even count).
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	m := len(s) / 2
	if len(s)%2 == 1 {
		return s[m]
	}
	return (s[m-1] + s[m]) / 2
}

func values(ss []sample, f func(sample) float64) []float64 {
	out := make([]float64, len(ss))
	for i, s := range ss {
		out[i] = f(s)
	}
	return out
}

// formatValue prints a metric value with about three significant digits.
func formatValue(v float64) string {
	switch {
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
}

// formatDuration prints ns nanoseconds with three significant digits ("1.83ms").
func formatDuration(ns float64) string {
	d := time.Duration(ns)
	for unit := time.Nanosecond; unit < time.Minute; unit *= 10 {
		if d < 1000*unit {
			return d.Round(unit).String()
		}
	}
	return d.Round(time.Second).String()
}

func ratio(a, b float64) string {
	if b == 0 {
		return "n/a"
	}
	return strconv.FormatFloat(a/b, 'f', 2, 64)
}

// machineInfo describes the machine and toolchain as Markdown list items.
func machineInfo(now time.Time) []string {
	lines := []string{
		fmt.Sprintf("date: %s", now.Format("2006-01-02 15:04 MST")),
		fmt.Sprintf("machine: %d CPUs (runtime.NumCPU), %s/%s, CPU %s", runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, cpuModel()),
		fmt.Sprintf("go: %s, quic-go %s", runtime.Version(), moduleVersion("github.com/quic-go/quic-go")),
	}
	if r, w := readTrimmed("/proc/sys/net/core/rmem_max"), readTrimmed("/proc/sys/net/core/wmem_max"); r != "" {
		lines = append(lines, fmt.Sprintf("UDP socket buffer caps: rmem_max=%s wmem_max=%s", r, w))
	}
	return lines
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

func moduleVersion(path string) string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	for _, d := range bi.Deps {
		if d.Path == path {
			if d.Replace != nil {
				return d.Version + " => " + d.Replace.Path + " " + d.Replace.Version
			}
			return d.Version
		}
	}
	return "unknown"
}

// loadAverage returns the 1, 5 and 15 minute load averages, or "unknown".
func loadAverage() string {
	fields := strings.Fields(readTrimmed("/proc/loadavg"))
	if len(fields) < 3 {
		return "unknown"
	}
	return strings.Join(fields[:3], " ")
}

func readTrimmed(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// table writes a Markdown table.
func table(w io.Writer, header []string, rows [][]string) {
	fmt.Fprintf(w, "| %s |\n", strings.Join(header, " | "))
	fmt.Fprintf(w, "|%s\n", strings.Repeat("---|", len(header)))
	for _, r := range rows {
		fmt.Fprintf(w, "| %s |\n", strings.Join(r, " | "))
	}
}

// machineCPU returns the busy CPU time of the whole machine (all processes) from
// /proc/stat, and false where that is not readable.
func machineCPU() (time.Duration, bool) {
	line, _, _ := strings.Cut(readTrimmed("/proc/stat"), "\n")
	fields := strings.Fields(line)
	if len(fields) < 5 || fields[0] != "cpu" {
		return 0, false
	}
	var busy int64
	for i, f := range fields[1:] {
		v, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return 0, false
		}
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		busy += v
	}
	// /proc/stat counts in USER_HZ ticks, 100 per second on Linux.
	return time.Duration(busy) * 10 * time.Millisecond, true
}
