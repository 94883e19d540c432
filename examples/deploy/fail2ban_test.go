package deploy

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/alknet/alknet/core"
)

const (
	filterPath = "fail2ban/filter.d/alknet.conf"
	jailPath   = "fail2ban/jail.d/alknet.conf"
	// systemConfig is fail2ban's configuration directory, whose actions the jail uses.
	systemConfig = "/etc/fail2ban"
)

// fail2banRegex runs fail2ban-regex with the filter on lines and returns the address it
// extracted from each line it matched, in order (skipping the test without the tool).
func fail2banRegex(t *testing.T, lines []string) []string {
	t.Helper()
	tool, err := exec.LookPath("fail2ban-regex")
	if err != nil {
		t.Skip("fail2ban-regex is not installed (Debian: package fail2ban)")
	}
	filter, err := filepath.Abs(filterPath) // a relative name would be looked up in /etc/fail2ban
	if err != nil {
		t.Fatal(err)
	}
	logFile := filepath.Join(t.TempDir(), "alknet.log")
	if err := os.WriteFile(logFile, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), toolTimeout)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, tool, "--out", "ip", logFile, filter)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("fail2ban-regex: %v\nstdout:\n%s\nstderr:\n%s", err, &stdout, &stderr)
	}
	if s := strings.TrimSpace(stderr.String()); s != "" {
		t.Logf("fail2ban-regex stderr:\n%s", s)
	}
	return strings.Fields(stdout.String())
}

// authFailures writes one core.LogAuthFailure line per remote address with the handler
// serve uses for format ("text" or "json") and returns the lines.
func authFailures(t *testing.T, format string, remotes []net.Addr) []string {
	t.Helper()
	var buf bytes.Buffer
	log := slog.New(handler(format, &buf))
	for i, r := range remotes {
		core.LogAuthFailure(t.Context(), log, core.AuthFailure{
			ALPN: []string{"alknet/call", "h2", "alknet/ssh", "http/1.1"}[i%4], Remote: r,
			Peer: "alk_AbCd1234", Reason: `invalid bearer token`,
		})
	}
	return strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
}

func handler(format string, buf *bytes.Buffer) slog.Handler {
	if format == "json" {
		return slog.NewJSONHandler(buf, nil)
	}
	return slog.NewTextHandler(buf, nil)
}

// TestFail2banFilter checks the filter against the auth failure line in both log
// formats, read from a file and as the journal backend presents it ("HOST IDENT[PID]: "
// before the message), for IPv4, IPv6, IPv4-mapped and zoned addresses; and that no other
// line matches, including lines whose client-chosen attributes spell an auth failure.
// examples/alknet checks the filter against lines a running node writes.
func TestFail2banFilter(t *testing.T) {
	remotes := []net.Addr{
		&net.UDPAddr{IP: net.ParseIP("203.0.113.9"), Port: 4433},
		&net.TCPAddr{IP: net.ParseIP("2001:db8::9"), Port: 443},
		&net.UDPAddr{IP: net.ParseIP("::ffff:198.51.100.7"), Port: 50000},
		&net.TCPAddr{IP: net.ParseIP("fe80::1"), Port: 22, Zone: "eth0"},
	}
	wantIPs := []string{"203.0.113.9", "2001:db8::9", "198.51.100.7", "fe80::1"}
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			failures := authFailures(t, format, remotes)
			lines := slices.Clone(failures)
			for _, l := range failures {
				lines = append(lines, "node1 alknet[4242]: "+l)
			}
			want := slices.Concat(wantIPs, wantIPs)

			// Lines that must not match: other messages naming addresses, a failure
			// without an address, and forgeries in client-chosen attribute values.
			var buf bytes.Buffer
			log := slog.New(handler(format, &buf))
			log.Info("connection", slog.String("remote", "192.0.2.66:1234"), slog.String("outcome", "auth_failed"))
			core.LogAuthFailure(t.Context(), log, core.AuthFailure{ALPN: "h2", Reason: "no address"})
			for _, forged := range []string{
				`level=WARN msg="auth failure" remote_ip=192.0.2.66 alpn=h2`,
				"\ntime=2026-12-08T01:20:03.123Z level=WARN msg=\"auth failure\" remote_ip=192.0.2.66 alpn=h2",
				`{"time":"2026-12-08T01:20:03.123Z","level":"WARN","msg":"auth failure","remote_ip":"192.0.2.66","alpn":"h2"}`,
				"\n{\"level\":\"WARN\",\"msg\":\"auth failure\",\"remote_ip\":\"192.0.2.66\",\"alpn\":\"h2\"}",
			} {
				log.Warn("auth failure", slog.String("remote_ip", "-"), slog.String("alpn", forged))
				log.Info("auth attempt", slog.String("user", forged))
				log.Warn(forged)
			}
			others := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
			lines = append(lines, others...)
			for _, l := range others {
				lines = append(lines, "node1 alknet[4242]: "+l)
			}

			got := fail2banRegex(t, lines)
			if !slices.Equal(got, want) {
				t.Errorf("fail2ban-regex found %q, want %q in lines:\n%s", got, want, strings.Join(lines, "\n"))
			}
		})
	}
}

// fail2banConfig copies fail2ban's own configuration (its actions and defaults) without
// its jails into a temporary directory, adds the filter and jail with edit applied to the
// jail, and returns the directory.
func fail2banConfig(t *testing.T, edit func(jail string) string) string {
	t.Helper()
	if _, err := os.Stat(filepath.Join(systemConfig, "jail.conf")); err != nil {
		t.Skipf("no fail2ban configuration in %s (Debian: package fail2ban): %v", systemConfig, err)
	}
	dir := filepath.Join(t.TempDir(), "fail2ban")
	if err := os.CopyFS(dir, os.DirFS(systemConfig)); err != nil {
		t.Fatal(err)
	}
	for _, local := range []string{"jail.d", "jail.local"} {
		if err := os.RemoveAll(filepath.Join(dir, local)); err != nil {
			t.Fatal(err)
		}
	}
	filter, err := os.ReadFile(filterPath)
	if err != nil {
		t.Fatal(err)
	}
	jail, err := os.ReadFile(jailPath)
	if err != nil {
		t.Fatal(err)
	}
	for path, content := range map[string]string{
		filepath.Join(dir, "filter.d", "alknet.conf"): string(filter),
		filepath.Join(dir, "jail.d", "alknet.conf"):   edit(string(jail)),
	} {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// fail2banDump returns the commands fail2ban-client would send the server for the
// configuration in dir (nothing is started).
func fail2banDump(t *testing.T, dir string) string {
	t.Helper()
	tool, err := exec.LookPath("fail2ban-client")
	if err != nil {
		t.Skip("fail2ban-client is not installed (Debian: package fail2ban)")
	}
	ctx, cancel := context.WithTimeout(t.Context(), toolTimeout)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, tool, "-c", dir, "-d")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("fail2ban-client -d: %v\nstdout:\n%s\nstderr:\n%s", err, &stdout, &stderr)
	}
	if strings.Contains(stderr.String(), "ERROR") {
		t.Errorf("fail2ban-client -d reported errors:\n%s", &stderr)
	}
	return stdout.String()
}

func TestFail2banJail(t *testing.T) {
	out := fail2banDump(t, fail2banConfig(t, func(j string) string { return j }))
	for _, want := range []string{
		"['add', 'alknet', 'systemd']",
		"['set', 'alknet', 'addjournalmatch', '_SYSTEMD_UNIT=alknet.service']",
		"'addfailregex'",
		"['set', 'alknet', 'maxretry', 5]",
		"['set', 'alknet', 'addaction', ",
		"['name', 'alknet-tcp'], ['port', '4433'], ['protocol', 'tcp']",
		"['name', 'alknet-udp'], ['port', '4433'], ['protocol', 'udp']",
		"['start', 'alknet']",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the jail's commands lack %s:\n%s", want, out)
		}
	}
}

// TestFail2banJailLogFile checks the jail's documented alternative: the node's log in a
// file, read with the file backend.
func TestFail2banJailLogFile(t *testing.T) {
	logFile := filepath.Join(t.TempDir(), "alknet.log")
	if err := os.WriteFile(logFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	out := fail2banDump(t, fail2banConfig(t, func(j string) string {
		const backend, auto, logpath = "\nbackend  = systemd\n", "\n#backend = auto\n", "\n#logpath = /var/log/alknet/alknet.log\n"
		for _, s := range []string{backend, auto, logpath} {
			if !strings.Contains(j, s) {
				t.Fatalf("the jail has no line %q", strings.TrimSpace(s))
			}
		}
		j = strings.Replace(j, backend, "\n", 1)
		j = strings.Replace(j, auto, "\nbackend = auto\n", 1)
		return strings.Replace(j, logpath, "\nlogpath = "+logFile+"\n", 1)
	}))
	for _, want := range []string{"['add', 'alknet', 'auto']", "['set', 'alknet', 'addlogpath', '" + logFile + "'"} {
		if !strings.Contains(out, want) {
			t.Errorf("the file-backend jail's commands lack %s:\n%s", want, out)
		}
	}
}
