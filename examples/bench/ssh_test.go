package main

import (
	"bytes"
	"context"
	"net"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestSSHQuick runs the ssh benchmark end to end in quick mode, with tiny sizes and
// short rounds, on every arm (OpenSSH's left out, with its note, where sshd is missing
// or cannot start), and checks the shape of its tables and goal lines, never the
// timings themselves.
func TestSSHQuick(t *testing.T) {
	s := runQuick(t, "ssh", "-quick", "-duration", "100ms", "-bulk-bytes", "2MiB", "-conns-parallel", "2")

	arms := slices.Clone(sshArms)
	header := []string{"metric", "alknet/ssh QUIC", "alknet/ssh TCP+TLS", "alknet/ssh TCP", "x/crypto/ssh TCP", "OpenSSH sshd TCP",
		"QUIC vs x/crypto/ssh", "TCP+TLS vs x/crypto/ssh", "alknet TCP vs x/crypto/ssh",
		"QUIC vs OpenSSH", "TCP+TLS vs OpenSSH", "alknet TCP vs OpenSSH", "x/crypto/ssh vs OpenSSH"}
	if strings.Contains(s, "- note: the openssh arm did not run: ") {
		t.Logf("the %s arm did not run: %s", sshArmOpenSSH, s[strings.Index(s, "- note: "):][:200])
		if _, err := findSSHD(""); err != nil && !strings.Contains(s, "did not run: missing: sshd not found") {
			t.Errorf("sshd is not installed, but the note does not say missing:\n%s", s)
		}
		arms = slices.DeleteFunc(arms, func(a string) bool { return a == sshArmOpenSSH })
		header = slices.DeleteFunc(header, func(h string) bool { return strings.Contains(h, "OpenSSH") })
	} else if !strings.Contains(s, "- OpenSSH: ") {
		t.Errorf("the openssh arm ran but the machine lines do not name its version:\n%s", s)
	}
	if !strings.Contains(s, "| "+strings.Join(header, " | ")+" |") {
		t.Errorf("no table header %q in:\n%s", header, s)
	}
	checkArmRows(t, s, []string{
		"direct-tcpip bulk through one channel, MB/s (2 MiB)",
		"new connections/s: connect + SSH handshake + publickey auth, closed (2 dialers)",
		"the same, TLS session resumed (alknet/ssh QUIC and TCP+TLS; the TCP arms have no TLS) (2 dialers)",
	}, len(arms), len(header))

	// The per-round table: one row per metric and arm, the bulk rows per MiB.
	perRound := checkPerRound(t, s, 7, sshMetrics, arms)
	for _, m := range sshMetrics {
		for _, a := range arms {
			cells, ok := perRound[m+" "+a]
			if !ok {
				continue
			}
			want := map[string]string{sshMetricBulk: "MiB", sshMetricHandshake: "conn", sshMetricResumed: "conn"}[m]
			if cells[6] != want {
				t.Errorf("per-round row %s / %s: unit %q, want %q", m, a, cells[6], want)
			}
		}
	}

	goals := goalsOf(s)
	want := []string{
		"goal: alknet's ssh layer on plain TCP (ssh.Server + ssh.NewClientConn) ≥ 0.95× bare x/crypto/ssh, direct-tcpip throughput and handshake rate — ",
		"goal: direct-tcpip throughput and handshake rate over alknet/ssh QUIC ≥ 0.9× bare x/crypto/ssh over TCP — ",
	}
	if len(goals) != len(want) {
		t.Fatalf("goal lines = %q, want %d in:\n%s", goals, len(want), s)
	}
	busy := reportedBusy(t, s) > busyLimit
	for i, g := range goals {
		if !strings.HasPrefix(g, want[i]) || !judged(g, "— met (bulk ", "— missed (bulk ") || !strings.Contains(g, ", handshake ") {
			t.Errorf("goal line = %q, want %q with a verdict and both ratios", g, want[i])
		}
		if strings.Contains(g, tooBusy) != busy {
			t.Errorf("goal line = %q, but the quietness line says other processes used more than %d%%: %v", g, busyLimit, busy)
		}
	}
	if !strings.Contains(s, "quic-go v0.65.0") {
		t.Errorf("machine info lacks the quic-go version:\n%s", s)
	}
}

// TestSSHBareEcho carries a payload through a direct-tcpip channel of the bare
// x/crypto/ssh server and client, half-close included, and checks that the server
// refuses an unknown client key and a destination nobody listens on.
func TestSSHBareEcho(t *testing.T) {
	benchTest(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	host, err := newSSHKey()
	if err != nil {
		t.Fatal(err)
	}
	client, err := newSSHKey()
	if err != nil {
		t.Fatal(err)
	}
	stranger, err := newSSHKey()
	if err != nil {
		t.Fatal(err)
	}
	target, err := startSSHTarget()
	if err != nil {
		t.Fatal(err)
	}
	defer target.close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := newBareSSHServer(host.signer, client.signer)
	srv.serve(ctx, sshArmBare, ln)
	defer srv.close()
	addr := ln.Addr().String()

	if c, err := dialBareSSH(ctx, addr, "bench", stranger.signer, host.signer.PublicKey()); err == nil {
		_ = c.Close()
		t.Errorf("a stranger's key logged in")
	}
	if c, err := dialBareSSH(ctx, addr, "bench", client.signer, stranger.signer.PublicKey()); err == nil {
		_ = c.Close()
		t.Errorf("the client accepted a host key other than the pinned one")
	}
	c, err := dialBareSSH(ctx, addr, "bench", client.signer, host.signer.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	st := &sshArmState{name: sshArmBare, target: target, client: c}
	if err := checkEcho(ctx, st, bytes.Repeat([]byte("alknet"), 100_000)); err != nil {
		t.Fatalf("echo: %v", err)
	}
	// A port that was free a moment ago: the open fails, the connection lives on.
	port, err := freeLoopbackPort()
	if err != nil {
		t.Fatal(err)
	}
	if ch, err := c.Open(ctx, "127.0.0.1", uint16(port)); err == nil {
		_ = ch.Close()
		t.Errorf("direct-tcpip to a closed port opened")
	}
	if err := checkEcho(ctx, st, []byte("again")); err != nil {
		t.Fatalf("echo after a refused channel: %v", err)
	}
}

// goalsOf returns the goal lines of a report.
func goalsOf(s string) []string {
	var out []string
	for line := range strings.Lines(s) {
		if strings.HasPrefix(line, "goal: ") {
			out = append(out, strings.TrimSpace(line))
		}
	}
	return out
}

// TestSSHFlags checks the subset flags and the bad-flag paths without measuring much.
func TestSSHFlags(t *testing.T) {
	benchTest(t)
	checkRejected(t,
		[]string{"ssh", "-only", "nosuch"},
		[]string{"ssh", "-arms", "nosuch"},
		[]string{"ssh", "-conns-parallel", "0"},
		[]string{"ssh", "-bulk-bytes", "0"},
		[]string{"ssh", "-rounds", "0"},
		[]string{"ssh", "stray"},
		[]string{"ssh", "-arms", "openssh", "-sshd", "/nonexistent/sshd"},
	)
	s := mustRun(t, "ssh", "-quick", "-bulk-bytes", "512KiB", "-only", "bulk", "-arms", "alknet-quic,xssh-tcp")
	rows := tableRows(s, []string{"direct-tcpip bulk", "new connections/s"})
	if row := rows["direct-tcpip bulk"]; len(row) != 1+2+1 {
		t.Errorf("bulk row = %q, want metric, 2 arms and 1 ratio", row)
	}
	if _, ok := rows["new connections/s"]; ok {
		t.Errorf("-only bulk printed a handshake row:\n%s", s)
	}
	if g := goalOf(s); !strings.Contains(g, "— not measured") {
		t.Errorf("goal line without the handshake metric = %q, want not measured", g)
	}
	// With sshd missing, the openssh arm is left out with a note saying so.
	s2 := mustRun(t, "ssh", "-quick", "-bulk-bytes", "512KiB", "-only", "bulk", "-sshd", "/nonexistent/sshd")
	if !strings.Contains(s2, "- note: the openssh arm did not run: missing: sshd not found") || strings.Contains(s2, "OpenSSH sshd TCP |") {
		t.Errorf("with -sshd /nonexistent/sshd: want the openssh arm left out as missing, with a note, in:\n%s", s2)
	}
	// Below 1 MiB the bulk rows are per transfer.
	found := false
	for _, cells := range markdownRows(s) {
		if len(cells) == 7 && cells[0] == sshMetricBulk {
			found = true
			if cells[6] != "transfer" {
				t.Errorf("per-round bulk row %q: unit %q, want transfer", cells, cells[6])
			}
		}
	}
	if !found {
		t.Errorf("no per-round bulk rows in:\n%s", s)
	}
}
