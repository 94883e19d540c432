package main

import (
	"strings"
	"testing"
)

// TestDNSQuick runs the dns benchmark in quick mode with 4 streams and 3 connections
// and checks that each metric's table has its rows of numbers, the goal line and the
// per-round rows, never the timings themselves.
func TestDNSQuick(t *testing.T) {
	s := runQuick(t, "dns", "-quick", "-streams", "4", "-conns", "3")

	var rows []string
	for _, who := range []string{"1 stream", "4 streams on one connection", "3 connections"} {
		rows = append(rows, "queries/s, "+who, "p50 latency, "+who, "p99 latency, "+who)
		if !strings.Contains(s, "### "+who+"\n") {
			t.Errorf("no table headed %q in:\n%s", who, s)
		}
	}
	// metric, 3 arms, 2 ratios (alknet against the bare loop and against UDP).
	checkArmRows(t, s, rows, 3, 1+3+2)
	checkPerRound(t, s, 8, dnsMetrics, dnsArms)
	for _, want := range []string{
		"| metric | alknet DoQ | bare quic-go DoQ | miekg/dns UDP (ceiling) | alknet / quic-go | alknet / UDP |",
		"Goal (alknet DoQ queries/s ≥ 0.95× the bare quic-go DoQ loop's): 1 stream ",
		"; 3 connections ",
		"quic-go v0.65.0", "miekg/dns v1.1.73",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q:\n%s", want, s)
		}
	}
}

// TestDNSFlags checks the subset flags and the bad-flag paths.
func TestDNSFlags(t *testing.T) {
	benchTest(t)
	checkRejected(t,
		[]string{"dns", "-only", "nosuch"},
		[]string{"dns", "-arms", "nosuch"},
		[]string{"dns", "-streams", "0"},
		[]string{"dns", "-conns", "0"},
		[]string{"dns", "extra"},
	)
	out := mustRun(t, "dns", "-quick", "-duration", "50ms", "-only", "conns-n", "-arms", "alknet-doq,miekg-udp", "-conns", "2")
	rows := tableRows(out, []string{"queries/s, 2 connections", "queries/s, 1 stream"})
	// metric, 2 arms, 1 ratio (alknet / UDP): without the bare loop there is no goal.
	if row := rows["queries/s, 2 connections"]; len(row) != 1+2+1 {
		t.Errorf("connections row = %q, want metric, 2 arms and 1 ratio", row)
	}
	if _, ok := rows["queries/s, 1 stream"]; ok {
		t.Errorf("-only conns-n printed a stream row:\n%s", out)
	}
	if strings.Contains(out, "Goal (") {
		t.Errorf("a goal line without the bare arm:\n%s", out)
	}
}

// TestDNSPrepareRedials checks that a DoQ arm's prepare replaces a connection that no
// longer answers (as after the server's idle timeout) and that queries then work.
func TestDNSPrepareRedials(t *testing.T) {
	benchTest(t)
	o := dnsBenchOptions{streams: 2, conns: 2}
	f, err := newDNSFixture(t.Context(), []string{armDNSAlknet, armDNSBare}, o)
	if err != nil {
		t.Fatal(err)
	}
	defer f.close()
	for _, arm := range []string{armDNSAlknet, armDNSBare} {
		c := f.clients[arm].(*doqClient)
		if err := c.prepare(t.Context(), metricDNSConnsN, o.conns); err != nil {
			t.Fatalf("%s: prepare: %v", arm, err)
		}
		old := c.conn(metricDNSConnsN, 1)
		if err := old.CloseWithError(0, "gone"); err != nil {
			t.Fatal(err)
		}
		if err := c.prepare(t.Context(), metricDNSConnsN, o.conns); err != nil {
			t.Fatalf("%s: prepare after close: %v", arm, err)
		}
		if c.conn(metricDNSConnsN, 1) == old {
			t.Errorf("%s: the closed connection was kept", arm)
		}
		if err := c.querier(metricDNSConnsN, 1).query(t.Context(), 1); err != nil {
			t.Errorf("%s: query on the new connection: %v", arm, err)
		}
	}
	if err := f.shutdown(); err != nil {
		t.Errorf("shutdown: %v", err)
	}
}
