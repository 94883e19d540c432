package main

import (
	"os"
	"strings"
	"testing"
	"time"
)

// TestMsgQuick runs the msg benchmark in quick mode with 3 senders and small pools
// (postgres too where ALKNET_TEST_POSTGRES_DSN is set) and checks that every table has
// its rows of numbers and the per-round rows, never the timings themselves.
func TestMsgQuick(t *testing.T) {
	s := runQuick(t, "msg", "-quick", "-senders", "3", "-pool-1k", "60", "-pool-64k", "9")

	stores := []string{armMsgMemory, armMsgBolt}
	if os.Getenv(msgPGDSNEnv) != "" {
		stores = append(stores, armMsgPostgres)
		if !strings.Contains(s, "- postgres: PostgreSQL ") {
			t.Errorf("no postgres version line:\n%s", s)
		}
	} else if !strings.Contains(s, "- postgres: skipped (no DSN)\n") {
		t.Errorf("no postgres skip line:\n%s", s)
	}
	var rows []string
	for _, size := range []string{"1 KiB", "64 KiB"} {
		if !strings.Contains(s, "### "+size+" bodies\n") {
			t.Errorf("no table headed %q in:\n%s", size, s)
		}
		for _, who := range []string{"1 sender, " + size, "3 senders, " + size} {
			rows = append(rows,
				"deliveries/s, "+who, "deliver p50 latency, "+who, "deliver p99 latency, "+who,
				"fetch+ack envelopes/s, "+who, "fetch+ack page p50 latency, "+who, "fetch+ack page p99 latency, "+who)
		}
	}
	// metric, the stores, a ratio per store other than memory.
	checkArmRows(t, s, rows, len(stores), 1+len(stores)+len(stores)-1)
	var seal []string
	for _, size := range []string{"1 KiB", "64 KiB"} {
		seal = append(seal, "seal+open/s, "+size, "seal+open p50 latency, "+size, "seal+open p99 latency, "+size)
	}
	// metric, msg and hpke, msg / hpke.
	checkArmRows(t, s, seal, 2, 1+2+1)
	checkPerRound(t, s, 8, msgMetrics[:8], stores)
	checkPerRound(t, s, 8, msgMetrics[8:], msgCryptoArms)
	for _, want := range []string{
		"| metric | msg Seal+Open | crypto/hpke (ceiling) | msg / hpke |",
		"quic-go v0.65.0", "bbolt v1.5.0", "pgx v5.13.0", "max_frame_bytes 2 MiB",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q:\n%s", want, s)
		}
	}
}

// TestMsgFlags checks the bad-flag paths and a subset run whose fetch metric fills the
// mailboxes itself (its deliver metric is not selected).
func TestMsgFlags(t *testing.T) {
	benchTest(t)
	t.Setenv(msgPGDSNEnv, "")
	checkRejected(t,
		[]string{"msg", "-only", "nosuch"},
		[]string{"msg", "-arms", "nosuch"},
		[]string{"msg", "-arms", "memory,postgres"}, // no DSN
		[]string{"msg", "-senders", "0"},
		[]string{"msg", "-batch", "0"},
		[]string{"msg", "-batch", "101"},
		[]string{"msg", "-pool-1k", "0"},
		[]string{"msg", "-pool-64k", "0"},
		[]string{"msg", "extra"},
	)
	out := mustRun(t, "msg", "-quick", "-duration", "100ms", "-only", "fetch-n-1k,seal-64k", "-arms", "memory,hpke",
		"-senders", "2", "-pool-1k", "40", "-batch", "7")
	rows := tableRows(out, []string{"fetch+ack envelopes/s, 2 senders, 1 KiB", "deliveries/s", "seal+open/s, 64 KiB", "seal+open/s, 1 KiB"})
	// metric and 1 arm: no ratio without bbolt, postgres or msg-seal.
	for _, key := range []string{"fetch+ack envelopes/s, 2 senders, 1 KiB", "seal+open/s, 64 KiB"} {
		if row := rows[key]; len(row) != 1+1 {
			t.Errorf("%s row = %q, want metric and 1 arm:\n%s", key, row, out)
		}
	}
	for _, key := range []string{"deliveries/s", "seal+open/s, 1 KiB"} {
		if _, ok := rows[key]; ok {
			t.Errorf("-only printed a %s row:\n%s", key, out)
		}
	}
	if !strings.Contains(out, "fetch pages of up to 7") {
		t.Errorf("settings do not name the batch of 7:\n%s", out)
	}
}

// TestMsgRefreshRedials checks that a store arm's refresh replaces a client whose
// connection is gone (as after the endpoint's idle timeout) and that it then works.
func TestMsgRefreshRedials(t *testing.T) {
	benchTest(t)
	o := msgBenchOptions{senders: 2, poolSmall: 4, poolLarge: 2, batch: 10}
	selected := map[string]bool{metricMsgDeliverNSmall: true}
	f, err := newMsgFixture(t.Context(), []string{armMsgMemory}, selected, o)
	if err != nil {
		t.Fatal(err)
	}
	defer f.close()
	sa := f.stores[armMsgMemory]
	old := sa.senders[1]
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}
	if err := sa.prepareDeliver(t.Context(), f); err != nil {
		t.Fatalf("prepare after close: %v", err)
	}
	if sa.senders[1] == old {
		t.Error("the closed client was kept")
	}
	lat := make([][]time.Duration, 2)
	s, err := sa.deliverRound(t.Context(), f.pools[metricMsgDeliverNSmall], time.Minute, lat)
	if err != nil {
		t.Fatalf("deliver round: %v", err)
	}
	if s.ops != o.poolSmall {
		t.Errorf("delivered %d envelopes, want the pool's %d", s.ops, o.poolSmall)
	}
	if err := f.shutdown(); err != nil {
		t.Errorf("shutdown: %v", err)
	}
}
