package main

import (
	"slices"
	"strings"
	"testing"
)

// TestSFTPQuick runs the sftp benchmark end to end in quick mode, with small sizes,
// and checks the shape of its tables and the goal line, never the timings themselves.
// Without sshd the openssh arm is left out, and the report says so.
func TestSFTPQuick(t *testing.T) {
	s := runQuick(t, "sftp", "-quick", "-file-bytes", "2MiB", "-files", "20")

	arms := slices.Clone(sftpArms)
	header := []string{"metric", "alknet/sftp QUIC", "alknet/ssh sftp QUIC", "OpenSSH sshd TCP", "pkg/sftp server TCP",
		"alknet/sftp vs OpenSSH", "alknet/ssh sftp vs OpenSSH", "alknet/sftp vs pkg/sftp", "alknet/ssh sftp vs pkg/sftp"}
	goal := [2]string{"— met (", "— not met ("}
	if _, err := findSSHD(""); err != nil {
		t.Logf("no sshd (%v): the %s arm is left out", err, sftpArmOpenSSH)
		arms = slices.DeleteFunc(arms, func(a string) bool { return a == sftpArmOpenSSH })
		header = slices.DeleteFunc(header, func(h string) bool { return strings.Contains(h, "OpenSSH") })
		goal = [2]string{"— not measured", "— not measured"}
		if !strings.Contains(s, "note: the openssh arm did not run: sshd not found") {
			t.Errorf("no note on the missing openssh arm in:\n%s", s)
		}
	}
	if !strings.Contains(s, "| "+strings.Join(header, " | ")+" |") {
		t.Errorf("no table header %q in:\n%s", header, s)
	}
	checkArmRows(t, s, []string{
		"download one 2 MiB file, MB/s",
		"upload one 2 MiB file, MB/s",
		"download 20 files of 4 KiB one at a time, files/s",
		"upload 20 files of 4 KiB one at a time, files/s",
	}, len(arms), len(header))

	// The per-round table: one row per metric and arm, per transfer or per file.
	perRound := checkPerRound(t, s, 7, sftpMetrics, arms)
	for _, m := range sftpMetrics {
		for _, a := range arms {
			cells, ok := perRound[m+" "+a]
			if !ok {
				continue
			}
			want := "transfer"
			if strings.HasSuffix(m, "-files") {
				want = "file"
			}
			if cells[6] != want {
				t.Errorf("per-round row %s / %s: unit %q, want %q", m, a, cells[6], want)
			}
		}
	}

	g := goalOf(s)
	if !strings.HasPrefix(g, "goal: download over alknet/sftp ≥ 1.0× OpenSSH sshd's — ") ||
		!judged(g, goal[0], goal[1]) {
		t.Errorf("goal line = %q, want %q or %q in:\n%s", g, goal[0], goal[1], s)
	}
	if !strings.Contains(s, "pkg/sftp v1.13.12") {
		t.Errorf("machine info lacks the pkg/sftp version:\n%s", s)
	}
}

// TestSFTPFlags checks the bad-flag paths, and a subset run without sshd (a binary
// that does not exist) that leaves the openssh arm out and says so.
func TestSFTPFlags(t *testing.T) {
	benchTest(t)
	checkRejected(t,
		[]string{"sftp", "-only", "nosuch"},
		[]string{"sftp", "-arms", "nosuch"},
		[]string{"sftp", "-arms", "openssh", "-sshd", "/nonexistent/sshd"},
		[]string{"sftp", "-files", "0"},
		[]string{"sftp", "-file-bytes", "0"},
		[]string{"sftp", "-small-bytes", "0"},
		[]string{"sftp", "-rounds", "0"},
		[]string{"sftp", "stray"},
	)
	s := mustRun(t, "sftp", "-quick", "-file-bytes", "512KiB", "-files", "5", "-only", "download", "-sshd", "/nonexistent/sshd")
	rows := tableRows(s, []string{"download one", "upload one"})
	if row := rows["download one"]; len(row) != 1+3+2 {
		t.Errorf("download row = %q, want metric, 3 arms and 2 ratios", row)
	}
	if _, ok := rows["upload one"]; ok {
		t.Errorf("-only download printed an upload row:\n%s", s)
	}
	if !strings.Contains(s, "note: the openssh arm did not run") {
		t.Errorf("no note on the missing openssh arm in:\n%s", s)
	}
	if g := goalOf(s); !strings.Contains(g, "— not measured") {
		t.Errorf("goal line without the openssh arm = %q, want not measured", g)
	}
}
