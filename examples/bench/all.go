package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"
)

// allOrder is the order in which `bench all` runs the suites: the transport first, then
// the modules from the lowest layer up, the slow ones (git, msg) last.
var allOrder = []string{"endpoint", "vault", "call", "http", "ws", "mcp", "ssh", "forward", "sftp", "dns", "git", "msg"}

// allOptions are the flags of `bench all`.
type allOptions struct {
	only  string
	skip  string
	quick bool
	pgDSN string
}

// runAll runs every suite, one after the other, each in a fresh process (this binary
// re-executed: no heap, goroutine or socket of one suite is left to the next), copies
// each report to stdout as it comes, and ends with the commit, the machine and every
// goal line of every suite in one table, so that BENCHMARKS.md can be regenerated in
// one sitting from one output.
func runAll(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o allOptions
	fs := newFlagSet("all", "Runs every benchmark in turn, each in its own process, then prints the commit, the machine and all goal lines.", stderr)
	fs.StringVar(&o.only, "only", "", "comma-separated subset of suites, in the usual order: "+strings.Join(allOrder, ", "))
	fs.StringVar(&o.skip, "skip", "", "comma-separated suites to leave out")
	fs.BoolVar(&o.quick, "quick", false, "pass -quick to every suite (a smoke run of the whole set)")
	fs.StringVar(&o.pgDSN, "pg-dsn", "", "PostgreSQL DSN for msg's postgres arm (default: msg's own default)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "bench all: unexpected argument %q\n", fs.Arg(0))
		return errUsage
	}
	suites, err := allSuites(o.only, o.skip)
	if err != nil {
		fmt.Fprintln(stderr, "bench all:", err)
		return errUsage
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("all: find this program: %w", err)
	}
	start := time.Now()
	fmt.Fprintf(stdout, "# bench all\n\n- commit: %s\n", commitLine(ctx))
	for _, l := range machineInfo(start) {
		fmt.Fprintf(stdout, "- %s\n", l)
	}
	fmt.Fprintf(stdout, "- suites: %s\n\n", strings.Join(suites, ", "))
	type result struct {
		name    string
		goals   []string
		quiet   string
		elapsed time.Duration
		err     error
	}
	var results []result
	for _, name := range suites {
		args := []string{name}
		if o.quick {
			args = append(args, "-quick")
		}
		if name == "msg" && o.pgDSN != "" {
			args = append(args, "-pg-dsn", o.pgDSN)
		}
		var out bytes.Buffer
		cmd := exec.CommandContext(ctx, self, args...)
		cmd.Stdout = io.MultiWriter(stdout, &out)
		cmd.Stderr = stderr
		t0 := time.Now()
		err := cmd.Run()
		r := result{name: name, elapsed: time.Since(t0), err: err}
		sc := bufio.NewScanner(bytes.NewReader(out.Bytes()))
		sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			switch {
			case isGoalLine(line) || strings.HasPrefix(line, "reported:") || strings.HasPrefix(line, "allocation goal"):
				r.goals = append(r.goals, line)
			case strings.HasPrefix(line, "- quietness:"):
				r.quiet = strings.TrimPrefix(line, "- quietness: ")
			}
		}
		results = append(results, r)
		fmt.Fprintln(stdout)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	fmt.Fprintf(stdout, "## Summary of `bench all` (%s in all)\n\n", time.Since(start).Round(time.Second))
	fmt.Fprintln(stdout, "| suite | time | quietness | result |")
	fmt.Fprintln(stdout, "|---|---|---|---|")
	var failed []string
	for _, r := range results {
		status := "ok"
		if r.err != nil {
			status = "failed: " + r.err.Error()
			failed = append(failed, r.name)
		}
		fmt.Fprintf(stdout, "| %s | %s | %s | %s |\n", r.name, r.elapsed.Round(time.Second), cmpOr(r.quiet, "-"), status)
	}
	fmt.Fprintln(stdout)
	fmt.Fprintln(stdout, "Goal and reported lines, by suite:")
	fmt.Fprintln(stdout)
	for _, r := range results {
		for _, g := range r.goals {
			fmt.Fprintf(stdout, "- **%s**: %s\n", r.name, g)
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("all: %d suite(s) failed: %s", len(failed), strings.Join(failed, ", "))
	}
	return nil
}

// allSuites returns the suites to run, in allOrder, given -only and -skip.
func allSuites(only, skip string) ([]string, error) {
	known := benchmarks()
	pick := func(list string) (map[string]bool, error) {
		set := map[string]bool{}
		for s := range strings.SplitSeq(list, ",") {
			s = strings.TrimSpace(s)
			if s == "" {
				continue
			}
			if _, ok := known[s]; !ok || s == "all" {
				return nil, fmt.Errorf("unknown suite %q (suites: %s)", s, strings.Join(allOrder, ", "))
			}
			set[s] = true
		}
		return set, nil
	}
	onlySet, err := pick(only)
	if err != nil {
		return nil, err
	}
	skipSet, err := pick(skip)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, s := range allOrder {
		if (len(onlySet) == 0 || onlySet[s]) && !skipSet[s] {
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no suite left to run")
	}
	return slices.Clip(out), nil
}

// commitLine names the checked-out commit and whether the tree differs from it, from
// git in the current directory; "unknown" where git cannot say.
func commitLine(ctx context.Context) string {
	rev, err := exec.CommandContext(ctx, "git", "rev-parse", "--short=12", "HEAD").Output()
	if err != nil {
		return "unknown (git rev-parse failed)"
	}
	line := strings.TrimSpace(string(rev))
	st, err := exec.CommandContext(ctx, "git", "status", "--porcelain", "--untracked-files=no").Output()
	switch {
	case err != nil:
		line += " (tree state unknown)"
	case len(bytes.TrimSpace(st)) > 0:
		line += " plus uncommitted changes"
	default:
		line += " (clean tree)"
	}
	return line
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
