package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
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

// library is a module whose version the machine header names.
type library struct {
	name string // as printed ("quic-go")
	path string // module path
}

// machineInfo describes the machine and toolchain as Markdown list items: the date, the
// CPUs, and the Go version with the versions of libs.
func machineInfo(now time.Time, libs ...library) []string {
	goLine := "go: " + runtime.Version()
	for _, l := range libs {
		goLine += fmt.Sprintf(", %s %s", l.name, moduleVersion(l.path))
	}
	return []string{
		fmt.Sprintf("date: %s", now.Format("2006-01-02 15:04 MST")),
		fmt.Sprintf("machine: %d CPUs (runtime.NumCPU), %s/%s, CPU %s", runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, cpuModel()),
		goLine,
	}
}

// udpBufferCaps describes the kernel's socket buffer limits, or returns "" where they
// are not readable.
func udpBufferCaps() string {
	r, w := readTrimmed("/proc/sys/net/core/rmem_max"), readTrimmed("/proc/sys/net/core/wmem_max")
	if r == "" {
		return ""
	}
	return fmt.Sprintf("UDP socket buffer caps: rmem_max=%s wmem_max=%s", r, w)
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

// metric is one row of the table: two arms measured the same way.
type metric struct {
	key      string
	label    string // table row
	unit     string // per-op column in the allocation table ("conn", "transfer")
	baseName string // what the baseline is ("quic-go", "crypto/tls")
	alknet   *arm
	baseline *arm
}

type arm struct {
	name  string // "alknet" or "baseline"
	round func(ctx context.Context) (sample, error)
	// prepare, when set, runs before each measured round, untimed and not counted: to
	// bring the process to the state the previous arm left it in.
	prepare func(ctx context.Context) error
	// helperCPU, when set, returns the CPU time that the arm's processes other than this
	// one (an external server) have used so far; measure adds their share of a round to
	// its CPU time.
	helperCPU func() time.Duration
	samples   *[]sample
}

func (a *arm) last() sample {
	s := *a.samples
	if len(s) == 0 {
		return sample{}
	}
	return s[len(s)-1]
}

func (a *arm) median() float64 {
	return median(values(*a.samples, func(s sample) float64 { return s.value }))
}

func (m *metric) arms() []*arm { return []*arm{m.alknet, m.baseline} }

func newArm(name string, round func(ctx context.Context) (sample, error)) *arm {
	return &arm{name: name, round: round, samples: new([]sample)}
}

// selectMetrics parses -only, a comma-separated subset of all; empty selects all.
func selectMetrics(only string, all []string) (map[string]bool, error) {
	sel := make(map[string]bool)
	if only == "" {
		for _, k := range all {
			sel[k] = true
		}
		return sel, nil
	}
	for k := range strings.SplitSeq(only, ",") {
		k = strings.TrimSpace(k)
		if !slices.Contains(all, k) {
			return nil, fmt.Errorf("-only: unknown metric %q (want %s)", k, strings.Join(all, ", "))
		}
		sel[k] = true
	}
	return sel, nil
}

// selectedOf returns the metrics of ms that selected names, in order.
func selectedOf(ms []*metric, selected map[string]bool) []*metric {
	var out []*metric
	for _, m := range ms {
		if selected[m.key] {
			out = append(out, m)
		}
	}
	return out
}

// parseFlags registers -quick (described by quickUsage), then parses a benchmark's
// flags and, with -quick, applies quick (see quickDefaults). help is true when -h was
// asked for (the usage has been printed; the benchmark should return nil). A bad flag or
// a stray argument gives errUsage after printing the usage.
func parseFlags(fs *flag.FlagSet, args []string, stderr io.Writer, quickUsage string, quick map[string]func()) (help bool, err error) {
	q := fs.Bool("quick", false, quickUsage)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return true, nil
		}
		return false, errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "bench %s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		fs.Usage()
		return false, errUsage
	}
	if *q {
		quickDefaults(fs, quick)
	}
	return false, nil
}

// quickDefaults applies -quick: for every flag the command line did not set
// explicitly, it runs that flag's smoke-run setter.
func quickDefaults(fs *flag.FlagSet, set map[string]func()) {
	explicit := explicitFlags(fs)
	for name, f := range set {
		if !explicit[name] {
			f()
		}
	}
}

// explicitFlags returns the names of the flags set on the command line, so that -quick
// only changes the others.
func explicitFlags(fs *flag.FlagSet) map[string]bool {
	explicit := make(map[string]bool)
	fs.Visit(func(f *flag.Flag) { explicit[f.Name] = true })
	return explicit
}

// warmUp runs every selected arm once, untimed, so that the first measured round does
// not pay for cold caches, lazy initialisation and heap growth (alknet runs first in
// every round, so it would pay alone). settle runs after each arm.
func warmUp(ctx context.Context, ms []*metric, selected map[string]bool, settle func(context.Context) error) error {
	for _, m := range ms {
		if !selected[m.key] {
			continue
		}
		for _, a := range m.arms() {
			if err := warmUpArm(ctx, m.key, a, settle); err != nil {
				return err
			}
		}
	}
	return nil
}

// warmUpArm runs one untimed round of the arm a of the metric key, then settle.
func warmUpArm(ctx context.Context, key string, a *arm, settle func(context.Context) error) error {
	if _, err := a.round(ctx); err != nil {
		return fmt.Errorf("warm-up, %s, %s: %w", key, a.name, err)
	}
	return settle(ctx)
}

// runRounds measures every arm of ms rounds times, interleaved: in each round, for each
// metric, alknet then baseline, each after its prepare step, with settle after each arm. It appends the samples to
// the arms, reports progress on progress, writes a CPU profile to cpuprofile unless it
// is empty (labels: arm, metric and the pairs in labels), and returns the share of the
// machine's CPU that other processes used meanwhile ("unknown" where not readable).
func runRounds(ctx context.Context, rounds int, ms []*metric, settle func(context.Context) error, cpuprofile string, progress io.Writer, labels ...string) (string, error) {
	return profiledRounds(cpuprofile, func() error {
		for r := range rounds {
			for _, m := range ms {
				for _, a := range m.arms() {
					if a.prepare != nil {
						if err := a.prepare(ctx); err != nil {
							return fmt.Errorf("round %d, %s, %s, prepare: %w", r+1, m.key, a.name, err)
						}
					}
					s, err := measure(ctx, a, append([]string{"metric", m.key}, labels...)...)
					if err != nil {
						return fmt.Errorf("round %d, %s, %s: %w", r+1, m.key, a.name, err)
					}
					*a.samples = append(*a.samples, s)
					if err := settle(ctx); err != nil {
						return err
					}
				}
				fmt.Fprintf(progress, "round %d/%d %-9s alknet %s  baseline %s\n", r+1, rounds, m.key,
					formatValue(m.alknet.last().value), formatValue(m.baseline.last().value))
			}
		}
		return nil
	})
}

// profiledRounds runs rounds (the measured rounds) under a CPU profile written to
// cpuprofile unless it is empty, and returns the share of the machine's CPU that other
// processes used meanwhile ("unknown" where not readable).
func profiledRounds(cpuprofile string, rounds func() error) (string, error) {
	return profiledRoundsWith(cpuprofile, nil, rounds)
}

// profiledRoundsWith is profiledRounds where helperCPU, when not nil, returns the CPU
// time that the benchmark's own helper processes (an external server) have used so
// far: they do not count as other processes.
func profiledRoundsWith(cpuprofile string, helperCPU func() time.Duration, rounds func() error) (string, error) {
	ownCPU := processCPU
	if helperCPU != nil {
		ownCPU = func() time.Duration { return processCPU() + helperCPU() }
	}
	machineBefore, machineOK := machineCPU()
	procBefore := ownCPU()
	measureStart := time.Now()
	stop, err := startCPUProfile(cpuprofile)
	if err != nil {
		return "", err
	}
	defer stop()
	if err := rounds(); err != nil {
		return "", err
	}
	if cpuprofile != "" {
		pprof.StopCPUProfile()
	}
	other := "unknown"
	if machineAfter, ok := machineCPU(); ok && machineOK {
		others := (machineAfter - machineBefore) - (ownCPU() - procBefore)
		avail := time.Since(measureStart) * time.Duration(runtime.NumCPU())
		other = fmt.Sprintf("%.0f%%", 100*max(0, others.Seconds())/avail.Seconds())
	}
	return other, nil
}

// measure runs one round of one arm with profile labels (arm plus the key-value pairs
// in labels) and counts its CPU time (with its helper processes', where it has some)
// and allocations.
func measure(ctx context.Context, a *arm, labels ...string) (sample, error) {
	var before, after runtime.MemStats
	var helperBefore time.Duration
	if a.helperCPU != nil {
		helperBefore = a.helperCPU()
	}
	runtime.ReadMemStats(&before)
	cpuBefore := processCPU()
	var s sample
	var err error
	pprof.Do(ctx, pprof.Labels(append([]string{"arm", a.name}, labels...)...), func(ctx context.Context) {
		s, err = a.round(ctx)
	})
	s.cpu = processCPU() - cpuBefore
	runtime.ReadMemStats(&after)
	if a.helperCPU != nil {
		s.cpu += a.helperCPU() - helperBefore
	}
	s.allocs = after.Mallocs - before.Mallocs
	s.bytes = after.TotalAlloc - before.TotalAlloc
	return s, err
}

// writeAllocProfile writes an allocation profile to path, or nothing where path is
// empty.
func writeAllocProfile(path string) error {
	if path == "" {
		return nil
	}
	pf, err := os.Create(path)
	if err != nil {
		return err
	}
	runtime.GC()
	if err := pprof.Lookup("allocs").WriteTo(pf, 0); err != nil {
		pf.Close()
		return err
	}
	return pf.Close()
}

// reportHeader writes the report's title and its list of machine, quietness and
// settings lines.
func reportHeader(w io.Writer, name string, machine []string, loadBefore, otherCPU, settings string) {
	fmt.Fprintf(w, "## bench %s\n\n", name)
	for _, l := range machine {
		fmt.Fprintf(w, "- %s\n", l)
	}
	fmt.Fprintf(w, "- quietness: load average %s (1/5/15 min) before the run; other processes used %s of the machine's CPU during it\n", loadBefore, otherCPU)
	fmt.Fprintf(w, "- settings: %s\n\n", settings)
}

// reportTables writes the table of medians and ratios, then the table of per-round
// samples with CPU time and allocations per operation; scope says what the process
// did during a round ("whole process: client and server").
func reportTables(w io.Writer, ms []*metric, scope string) {
	rows := make([][]string, 0, len(ms))
	for _, m := range ms {
		a, b := m.alknet.median(), m.baseline.median()
		rows = append(rows, []string{m.label, formatValue(a), fmt.Sprintf("%s (%s)", formatValue(b), m.baseName), ratio(a, b)})
	}
	table(w, []string{"metric", "alknet", "baseline", "ratio"}, rows)

	fmt.Fprintf(w, "\nPer-round samples; CPU time and heap allocations per operation, medians over the rounds (%s):\n\n", scope)
	rows = rows[:0]
	for _, m := range ms {
		rows = append(rows, []string{
			m.key,
			joinValues(*m.alknet.samples),
			joinValues(*m.baseline.samples),
			fmt.Sprintf("%s / %s", formatDuration(median(values(*m.alknet.samples, sample.cpuPerOp))), formatDuration(median(values(*m.baseline.samples, sample.cpuPerOp)))),
			fmt.Sprintf("%s / %s", formatValue(median(values(*m.alknet.samples, sample.allocsPerOp))), formatValue(median(values(*m.baseline.samples, sample.allocsPerOp)))),
			fmt.Sprintf("%s / %s", kib(median(values(*m.alknet.samples, sample.bytesPerOp))), kib(median(values(*m.baseline.samples, sample.bytesPerOp)))),
			m.unit,
		})
	}
	table(w, []string{"metric", "alknet samples", "baseline samples", "CPU/op alknet / baseline", "allocs/op alknet / baseline", "KiB/op alknet / baseline", "op"}, rows)
}

func joinValues(ss []sample) string {
	parts := make([]string, len(ss))
	for i, s := range ss {
		parts[i] = formatValue(s.value)
	}
	return strings.Join(parts, " ")
}

func kib(b float64) string { return formatValue(b / 1024) }

// startCPUProfile starts a CPU profile into path (nothing when path is empty) and
// returns the function that stops it.
func startCPUProfile(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

// armMachine is the machine header of the benchmarks with several arms per metric:
// machineInfo with libs, the UDP buffer caps where readable, and GOMAXPROCS.
func armMachine(libs ...library) []string {
	machine := machineInfo(time.Now(), libs...)
	if l := udpBufferCaps(); l != "" {
		machine = append(machine, l)
	}
	return append(machine, fmt.Sprintf("GOMAXPROCS=%d", runtime.GOMAXPROCS(0)))
}

// armTable is the main table of a benchmark with several arms per metric: a column per
// arm, then a ratio column per pair of arms.
type armTable struct {
	header []string
	pairs  []armPair
	rows   [][]string
}

// armPair is a ratio column: arm a against arm b, as indices in the column order.
type armPair struct{ a, b int }

// newArmTable returns the table of arms, in column order, headed by their titles.
func newArmTable(arms []string, titles map[string]string) *armTable {
	t := &armTable{header: []string{"metric"}}
	for _, a := range arms {
		t.header = append(t.header, titles[a])
	}
	return t
}

// addRatio adds the ratio column of arm a against arm b, headed title.
func (t *armTable) addRatio(a, b int, title string) {
	t.pairs = append(t.pairs, armPair{a, b})
	t.header = append(t.header, title)
}

// addBaselineRatios adds, where the arm base is among arms, a ratio column against it
// for each arm with a title in titles.
func (t *armTable) addBaselineRatios(arms []string, base string, titles map[string]string) {
	b := slices.Index(arms, base)
	if b < 0 {
		return
	}
	for i, a := range arms {
		if title, ok := titles[a]; ok {
			t.addRatio(i, b, title)
		}
	}
}

// callRow is one row of the main table: a value per arm, and whether lower is better.
type callRow struct {
	label string
	lower bool // a latency: the ratios are inverted, so that above 1 still means better
	value func(*callArm) float64
}

func (r callRow) format(v float64) string {
	if r.lower {
		return formatDuration(v)
	}
	return formatValue(v)
}

// add adds the row r of m: its value on each arm, then the ratios.
func (t *armTable) add(m *callMetric, r callRow) {
	row := []string{r.label}
	vals := make([]float64, len(m.arms))
	for i, a := range m.arms {
		vals[i] = r.value(a)
		row = append(row, r.format(vals[i]))
	}
	for _, p := range t.pairs {
		if r.lower {
			row = append(row, ratio(vals[p.b], vals[p.a]))
		} else {
			row = append(row, ratio(vals[p.a], vals[p.b]))
		}
	}
	t.rows = append(t.rows, row)
}

// addRate adds the row of m's median rates.
func (t *armTable) addRate(m *callMetric) {
	t.add(m, callRow{label: m.label, value: func(a *callArm) float64 { return a.median() }})
}

// addLatencies adds the rows of m's median p50 and p99 latencies, labelled prefix
// "p50 latency, " who (and p99).
func (t *armTable) addLatencies(m *callMetric, prefix, who string) {
	t.add(m, callRow{label: prefix + "p50 latency, " + who, lower: true, value: func(a *callArm) float64 { return median(a.p50) }})
	t.add(m, callRow{label: prefix + "p99 latency, " + who, lower: true, value: func(a *callArm) float64 { return median(a.p99) }})
}

func (t *armTable) write(w io.Writer) { table(w, t.header, t.rows) }

// perRoundTable writes the table of per-round samples of ms: a row per metric and arm
// with its samples, with withP50 its p50 latency per round ("-" where the metric is not
// unary), and its CPU time and allocations per operation.
func perRoundTable(w io.Writer, ms []*callMetric, withP50 bool) {
	var rows [][]string
	for _, m := range ms {
		for _, a := range m.arms {
			row := []string{m.key, a.name, joinValues(*a.samples)}
			if withP50 {
				p50s := "-"
				if m.unary {
					parts := make([]string, len(a.p50))
					for i, v := range a.p50 {
						parts[i] = formatDuration(v)
					}
					p50s = strings.Join(parts, " ")
				}
				row = append(row, p50s)
			}
			rows = append(rows, append(row,
				formatDuration(median(values(*a.samples, sample.cpuPerOp))),
				formatValue(median(values(*a.samples, sample.allocsPerOp))),
				kib(median(values(*a.samples, sample.bytesPerOp))),
				m.unit,
			))
		}
	}
	header := []string{"metric", "arm", "samples", "p50 per round", "CPU/op", "allocs/op", "KiB/op", "op"}
	if !withP50 {
		header = slices.Delete(header, 3, 4)
	}
	table(w, header, rows)
}

// findArm returns the arm name of the metric key among ms, nil where either is not
// measured.
func findArm(ms []*callMetric, key, name string) *callArm {
	for _, m := range ms {
		if m.key != key {
			continue
		}
		for _, a := range m.arms {
			if a.name == name {
				return a
			}
		}
	}
	return nil
}
