package main

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

func TestSizeList(t *testing.T) {
	for in, want := range map[string][]int{
		"64,1024,65536":        {64, 1024, 65536},
		"64B,1KiB,64KiB":       {64, 1024, 65536},
		" 64 B , 1 KiB,512KiB": {64, 1024, 512 << 10},
		"32":                   {32},
		"1KiB,64":              {1024, 64},
	} {
		var l sizeList
		if err := l.Set(in); err != nil || !slices.Equal(l, want) {
			t.Errorf("Set(%q) = %v, %v; want %v", in, l, err, want)
		}
	}
	for _, in := range []string{"", "64,", "x", "31", "0", "-64", "513KiB", "1MiB", "64,64B", "1.5KiB"} {
		var l sizeList
		if err := l.Set(in); err == nil {
			t.Errorf("Set(%q) accepted: %v", in, l)
		}
	}
	if got := (sizeList{64, 1024, 65536}).String(); got != "64 B, 1 KiB, 64 KiB" {
		t.Errorf("String = %q", got)
	}
}

func TestIntList(t *testing.T) {
	for in, want := range map[string][]int{"1,64,256": {1, 64, 256}, " 8 ": {8}, "256,1": {256, 1}, "4096": {4096}} {
		var l intList
		if err := l.Set(in); err != nil || !slices.Equal(l, want) {
			t.Errorf("Set(%q) = %v, %v; want %v", in, l, err, want)
		}
	}
	for _, in := range []string{"", "0", "-1", "1,", "x", "1,1", "4097", "1.5"} {
		var l intList
		if err := l.Set(in); err == nil {
			t.Errorf("Set(%q) accepted: %v", in, l)
		}
	}
	if got := (intList{1, 64, 256}).String(); got != "1,64,256" {
		t.Errorf("String = %q", got)
	}
}

// TestSweepFlags checks the defaults and the bad values of -payload, -concurrency and
// -conns on each benchmark that sweeps, without measuring anything.
func TestSweepFlags(t *testing.T) {
	var o sweepOptions
	fs := newFlagSet("x", "", &strings.Builder{})
	o.sweepFlags(fs, "connection", "a connection")
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(o.payloads, sizeList{64, 1024, 65536}) || !slices.Equal(o.concurrency, intList{1, 64, 256}) || o.conns != 256 {
		t.Errorf("defaults = %v, %v, %d", o.payloads, o.concurrency, o.conns)
	}
	var cases [][]string
	for _, b := range []string{"call", "http", "ws", "mcp"} {
		cases = append(cases,
			[]string{b, "-payload", "16"},
			[]string{b, "-payload", "64,64"},
			[]string{b, "-concurrency", "0"},
			[]string{b, "-concurrency", "1,x"},
			[]string{b, "-conns", "-1"},
			[]string{b, "-conns", "5000"},
		)
	}
	checkRejected(t, cases...)
}

func TestSweepPayload(t *testing.T) {
	for _, size := range []int{minPayload, 64, 1000, 1024, 65536, maxPayload} {
		for _, k := range []int{0, 7, 255, 4095} {
			p := sweepPayload(k, size)
			if len(p) != size {
				t.Errorf("sweepPayload(%d, %d) has %d bytes", k, size, len(p))
			}
			var v struct {
				Caller int    `json:"caller"`
				Data   string `json:"data"`
			}
			if err := json.Unmarshal(p, &v); err != nil || v.Caller != k {
				t.Errorf("sweepPayload(%d, %d) = %.60q…: %v, caller %d", k, size, p, err, v.Caller)
			}
		}
	}
	if a, b := sweepPayload(1, 64), sweepPayload(2, 64); string(a) == string(b) {
		t.Error("two callers' payloads are the same")
	}
}

func TestSweepCells(t *testing.T) {
	o := sweepOptions{payloads: sizeList{64, 65536}, concurrency: intList{1, 64}, conns: 256}
	all := map[string]bool{"unary": true, kindConns: true}
	var keys []string
	for _, c := range o.cells(all, "unary") {
		keys = append(keys, c.key("unary"))
	}
	want := []string{"unary/64B/1", "unary/64B/64", "conns/64B/256", "unary/64KiB/1", "unary/64KiB/64", "conns/64KiB/256"}
	if !slices.Equal(keys, want) {
		t.Errorf("cells = %q, want %q", keys, want)
	}
	if n := len(o.cells(map[string]bool{"unary": true}, "unary")); n != 4 {
		t.Errorf("without conns: %d cells, want 4", n)
	}
	if n := len(o.cells(map[string]bool{kindConns: true}, "unary")); n != 2 {
		t.Errorf("conns only: %d cells, want 2", n)
	}
	o.conns = 0
	if n := len(o.cells(all, "unary")); n != 4 {
		t.Errorf("-conns 0: %d cells, want 4", n)
	}
	for c, want := range map[sweepCell]string{
		{payload: 64, callers: 1}:                "1 caller",
		{payload: 64, callers: 64}:               "64 callers",
		{payload: 64, callers: 1, conns: true}:   "1 client, a connection each",
		{payload: 64, callers: 256, conns: true}: "256 clients, a connection each",
	} {
		if got := c.who("caller"); got != want {
			t.Errorf("%+v: who = %q, want %q", c, got, want)
		}
	}
}

func TestGoalCells(t *testing.T) {
	for _, tc := range []struct {
		payloads           sizeList
		conc               intList
		payload, many, one int
	}{
		{sizeList{64, 1024, 65536}, intList{1, 64, 256}, 64, 64, 1},
		{sizeList{65536, 1024}, intList{256, 8}, 1024, 256, 8},
		{sizeList{1024}, intList{1}, 1024, 1, 1},
	} {
		o := sweepOptions{payloads: tc.payloads, concurrency: tc.conc}
		if p, m, n := o.goalPayload(), o.goalMany(), o.goalOne(); p != tc.payload || m != tc.many || n != tc.one {
			t.Errorf("%v %v: goal cells %d, %d, %d; want %d, %d, %d", tc.payloads, tc.conc, p, m, n, tc.payload, tc.many, tc.one)
		}
	}
}

// TestSweepTables checks the shape of sweepTables' output on made-up samples: one
// table per payload with a rate row per concurrency and the conns row, then their p50
// and p99 rows, then the rows not swept.
func TestSweepTables(t *testing.T) {
	o := sweepOptions{payloads: sizeList{64, 1024}, concurrency: intList{1, 8}, conns: 4}
	arms := []string{"a", "b"}
	var ms []*callMetric
	for _, c := range o.cells(map[string]bool{"unary": true, kindConns: true}, "unary") {
		m := &callMetric{key: c.key("unary"), label: "calls/s, " + c.who("caller"), unary: true, payload: c.payload, who: c.who("caller")}
		for i, name := range arms {
			a := &callArm{arm: newArm(name, nil), p50: []float64{float64(1000 * (i + 1))}, p99: []float64{2000}}
			*a.samples = append(*a.samples, sample{value: float64(100 * (i + 1))})
			m.arms = append(m.arms, a)
		}
		ms = append(ms, m)
	}
	ev := &callMetric{key: "events", label: "events/s"}
	for _, name := range arms {
		a := &callArm{arm: newArm(name, nil)}
		*a.samples = append(*a.samples, sample{value: 5})
		ev.arms = append(ev.arms, a)
	}
	ms = append(ms, ev)

	var b strings.Builder
	sweepTables(&b, o, ms, func() *armTable {
		tb := newArmTable(arms, map[string]string{"a": "A", "b": "B"})
		tb.addRatio(0, 1, "A vs B")
		return tb
	}, "call ")
	tables := sweptTables(b.String())
	wantRows := []string{
		"calls/s, 1 caller", "calls/s, 8 callers", "calls/s, 4 clients, a connection each",
		"call p50 latency, 1 caller", "call p99 latency, 1 caller",
		"call p50 latency, 8 callers", "call p99 latency, 8 callers",
		"call p50 latency, 4 clients, a connection each", "call p99 latency, 4 clients, a connection each",
	}
	for _, p := range []string{"64 B", "1 KiB"} {
		rows := tables[p]
		if len(rows) != len(wantRows) {
			t.Errorf("payload %s: %d rows, want %d:\n%s", p, len(rows), len(wantRows), &b)
			continue
		}
		for i, r := range rows {
			if r[0] != wantRows[i] || len(r) != 4 {
				t.Errorf("payload %s, row %d = %q, want %q with 2 arms and a ratio", p, i, r, wantRows[i])
			}
		}
		if rows[0][3] != "0.50" || rows[3][3] != "2.00" {
			t.Errorf("payload %s: ratios %q and %q, want 0.50 (rate) and 2.00 (latency)", p, rows[0][3], rows[3][3])
		}
	}
	if rest := tables[""]; len(rest) != 1 || rest[0][0] != "events/s" {
		t.Errorf("not swept = %q, want the events row:\n%s", rest, &b)
	}
	if len(tables) != 3 {
		t.Errorf("%d tables, want 3:\n%s", len(tables), &b)
	}
}

// sweptTables returns the body rows of each table of a sweep's report, by payload
// ("64 B"; "" for the table of the rows not swept), the header and separator rows
// left out. The per-round table and any table before the first payload are skipped.
func sweptTables(s string) map[string][][]string {
	out := make(map[string][][]string)
	cur, in := "", false
	for line := range strings.Lines(s) {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "Payload "):
			cur, _, _ = strings.Cut(strings.TrimPrefix(line, "Payload "), " (")
			in, out[cur] = true, nil
			continue
		case line == "Not swept:":
			cur, in = "", true
			out[cur] = nil
			continue
		case strings.HasPrefix(line, "Per-round samples"):
			in = false
		}
		if !in || !strings.HasPrefix(line, "| ") {
			continue
		}
		rows := markdownRows(line)
		if len(rows) != 1 || rows[0][0] == "metric" {
			continue
		}
		out[cur] = append(out[cur], rows[0])
	}
	return out
}
