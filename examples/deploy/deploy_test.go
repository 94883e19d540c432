package deploy

import (
	"bufio"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// toolTimeout bounds every external tool run: a fail-safe that only turns a hang into a
// failure.
const toolTimeout = 60 * time.Second

// unitPath is the unit under test; installPath is where it expects the binary.
const (
	unitPath    = "alknet.service"
	installPath = "/usr/local/bin/alknet"
)

// unit is a parsed systemd unit file: each section's assignments in file order, and the
// assignments that are commented out ("#Key=value", the documented variants).
type unit struct {
	sections  map[string]map[string][]string
	commented map[string][]string
}

var commentedAssignment = regexp.MustCompile(`^#([A-Z][A-Za-z]+)=(.*)$`)

// parseUnit reads a unit file in systemd's syntax: [Section] headers, Key=value lines,
// comments starting with # or ;, and lines continued with a trailing backslash.
func parseUnit(t *testing.T, path string) *unit {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u := &unit{sections: map[string]map[string][]string{}, commented: map[string][]string{}}
	section := ""
	pending := ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if pending == "" {
			if m := commentedAssignment.FindStringSubmatch(line); m != nil {
				u.commented[m[1]] = append(u.commented[m[1]], strings.TrimSpace(m[2]))
				continue
			}
			if line == "" || line[0] == '#' || line[0] == ';' {
				continue
			}
		}
		if cont, ok := strings.CutSuffix(line, `\`); ok {
			pending += cont + " "
			continue
		}
		line, pending = pending+line, ""
		if name, ok := strings.CutPrefix(line, "["); ok {
			name, ok = strings.CutSuffix(name, "]")
			if !ok {
				t.Fatalf("%s:%d: bad section header %q", path, n, line)
			}
			section = name
			if u.sections[section] == nil {
				u.sections[section] = map[string][]string{}
			}
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		if !ok || section == "" {
			t.Fatalf("%s:%d: not an assignment in a section: %q", path, n, line)
		}
		key = strings.TrimSpace(key)
		u.sections[section][key] = append(u.sections[section][key], strings.TrimSpace(value))
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if pending != "" {
		t.Fatalf("%s: ends in a continued line", path)
	}
	return u
}

// last is the value a single-valued directive ends up with ("" and false when unset).
func (u *unit) last(section, key string) (string, bool) {
	vs := u.sections[section][key]
	if len(vs) == 0 {
		return "", false
	}
	return vs[len(vs)-1], true
}

// list is a list-valued directive's effective items: every assignment's
// space-separated items, an empty assignment resetting the list.
func (u *unit) list(section, key string) []string {
	var items []string
	for _, v := range u.sections[section][key] {
		if v == "" {
			items = nil
			continue
		}
		items = append(items, strings.Fields(v)...)
	}
	return items
}

// execStart is the unit's effective ExecStart command line, split into words (the
// unit quotes nothing).
func (u *unit) execStart(t *testing.T) []string {
	t.Helper()
	v, ok := u.last("Service", "ExecStart")
	if !ok || v == "" {
		t.Fatal("no ExecStart")
	}
	if strings.ContainsAny(v, `"'\`) {
		t.Fatalf("ExecStart %q quotes or escapes: this parser splits on spaces only", v)
	}
	return strings.Fields(v)
}

// flagValue returns the value of --name in args ("--name value" or "--name=value").
func flagValue(args []string, name string) (string, bool) {
	for i, a := range args {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v, true
		}
		if a == "--"+name && i+1 < len(args) {
			return args[i+1], true
		}
	}
	return "", false
}

// parseSystemdSeconds parses the time spans the unit uses: a bare number of seconds or
// units as in "30s", "1min 30s", "2m".
func parseSystemdSeconds(t *testing.T, s string) time.Duration {
	t.Helper()
	if n, err := strconv.Atoi(s); err == nil {
		return time.Duration(n) * time.Second
	}
	d, err := time.ParseDuration(strings.ReplaceAll(strings.ReplaceAll(s, "min", "m"), " ", ""))
	if err != nil {
		t.Fatalf("time span %q: %v", s, err)
	}
	return d
}

func TestUnitDirectives(t *testing.T) {
	u := parseUnit(t, unitPath)
	want := []struct{ section, key, value string }{
		{"Service", "DynamicUser", "yes"},
		{"Service", "StateDirectory", "alknet"},
		{"Service", "StateDirectoryMode", "0700"},
		{"Service", "ConfigurationDirectory", "alknet"},
		{"Service", "ProtectSystem", "strict"},
		{"Service", "ProtectHome", "yes"},
		{"Service", "PrivateTmp", "yes"},
		{"Service", "NoNewPrivileges", "yes"},
		{"Service", "ProtectKernelTunables", "yes"},
		{"Service", "ProtectKernelModules", "yes"},
		{"Service", "ProtectKernelLogs", "yes"},
		{"Service", "ProtectControlGroups", "yes"},
		{"Service", "LockPersonality", "yes"},
		{"Service", "MemoryDenyWriteExecute", "yes"},
		{"Service", "RestrictNamespaces", "yes"},
		{"Service", "RestrictSUIDSGID", "yes"},
		{"Service", "SystemCallArchitectures", "native"},
		{"Service", "ExecReload", "/bin/kill -HUP $MAINPID"},
		{"Service", "KillSignal", "SIGTERM"},
		{"Service", "Restart", "on-failure"},
		{"Service", "RestartPreventExitStatus", "2"},
		{"Install", "WantedBy", "multi-user.target"},
	}
	for _, w := range want {
		if got, ok := u.last(w.section, w.key); !ok || got != w.value {
			t.Errorf("[%s] %s = %q (set: %v), want %q", w.section, w.key, got, ok, w.value)
		}
	}

	if got := u.list("Service", "RestrictAddressFamilies"); !sameSet(got, []string{"AF_INET", "AF_INET6", "AF_UNIX"}) {
		t.Errorf("RestrictAddressFamilies = %q, want AF_INET AF_INET6 AF_UNIX", got)
	}
	if got := u.list("Service", "SystemCallFilter"); len(got) == 0 || got[0] != "@system-service" {
		t.Errorf("SystemCallFilter = %q, want an allow list starting with @system-service", got)
	}
	// No capability at all by default; the bind-below-1024 variant only as a comment.
	for _, key := range []string{"CapabilityBoundingSet", "AmbientCapabilities"} {
		if vs := u.sections["Service"][key]; len(vs) == 0 || len(u.list("Service", key)) != 0 {
			t.Errorf("%s = %q, want set and empty", key, vs)
		}
		if !slices.Contains(u.commented[key], "CAP_NET_BIND_SERVICE") {
			t.Errorf("no commented %s=CAP_NET_BIND_SERVICE variant for ports below 1024", key)
		}
	}
	// The binary reads no environment variable: the unit passes flags, not Environment=.
	for _, key := range []string{"Environment", "EnvironmentFile", "PassEnvironment"} {
		if vs, ok := u.sections["Service"][key]; ok {
			t.Errorf("%s = %q: alknet reads no environment; pass a flag", key, vs)
		}
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// systemdDirVar matches the ${...} references systemd expands in ExecStart.
var systemdDirVar = regexp.MustCompile(`\$\{([A-Z_]+)\}`)

func TestUnitExecStart(t *testing.T) {
	u := parseUnit(t, unitPath)
	args := u.execStart(t)
	if args[0] != installPath || len(args) < 2 || args[1] != "serve" {
		t.Fatalf("ExecStart = %q, want %s serve ...", args, installPath)
	}
	checkServeArgs(t, "ExecStart", args)

	drain, ok := flagValue(args, "drain")
	if !ok {
		t.Fatal("ExecStart sets no --drain: the stop timeout must be checked against it")
	}
	d, err := time.ParseDuration(drain)
	if err != nil {
		t.Fatalf("--drain %q: %v", drain, err)
	}
	stop, ok := u.last("Service", "TimeoutStopSec")
	if !ok {
		t.Fatal("no TimeoutStopSec")
	}
	if s := parseSystemdSeconds(t, stop); s <= d {
		t.Errorf("TimeoutStopSec=%s is not above --drain %s: systemd would kill a draining node", stop, drain)
	}

	// The documented vault variant: the same command with the passphrase from a
	// credential, which only the service can read.
	var variant []string
	for _, v := range u.commented["ExecStart"] {
		if v != "" {
			variant = strings.Fields(v)
		}
	}
	if variant == nil {
		t.Fatal("no commented ExecStart variant for a vault keystore")
	}
	checkServeArgs(t, "the vault ExecStart variant", variant)
	if pf, _ := flagValue(variant, "passphrase-file"); pf != "${CREDENTIALS_DIRECTORY}/passphrase" {
		t.Errorf("vault variant --passphrase-file = %q, want ${CREDENTIALS_DIRECTORY}/passphrase", pf)
	}
	if lc := u.commented["LoadCredential"]; len(lc) != 1 || !strings.HasPrefix(lc[0], "passphrase:") {
		t.Errorf("vault variant LoadCredential = %q, want passphrase:FILE", lc)
	}
	if ws := u.commented["ExecStart"]; len(ws) < 2 || ws[0] != "" {
		t.Errorf("vault variant ExecStart lines = %q: want an empty ExecStart= first, to replace the command", ws)
	}
}

// checkServeArgs checks a serve command line of the unit: the state and config from the
// directories systemd creates, and no other variable.
func checkServeArgs(t *testing.T, what string, args []string) {
	t.Helper()
	if st, _ := flagValue(args, "state"); st != "${STATE_DIRECTORY}" {
		t.Errorf("%s --state = %q, want ${STATE_DIRECTORY}", what, st)
	}
	if cfg, _ := flagValue(args, "config"); !strings.HasPrefix(cfg, "${CONFIGURATION_DIRECTORY}/") {
		t.Errorf("%s --config = %q, want a file in ${CONFIGURATION_DIRECTORY}", what, cfg)
	}
	if _, ok := flagValue(args, "listen"); !ok {
		t.Errorf("%s sets no --listen (the default is loopback only)", what)
	}
	for _, m := range systemdDirVar.FindAllStringSubmatch(strings.Join(args, " "), -1) {
		switch m[1] {
		case "STATE_DIRECTORY", "CONFIGURATION_DIRECTORY", "CREDENTIALS_DIRECTORY":
		default:
			t.Errorf("%s uses ${%s}: only the directories systemd sets for the unit are expected", what, m[1])
		}
	}
}

// installedCopy writes the unit to a temporary directory with ExecStart's binary pointed
// at an executable there (systemd-analyze checks that it exists), and returns its path.
func installedCopy(t *testing.T) string {
	t.Helper()
	text, err := os.ReadFile(unitPath)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "alknet")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if strings.Count(string(text), installPath) < 1 {
		t.Fatalf("%s does not run %s", unitPath, installPath)
	}
	path := filepath.Join(dir, unitPath)
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(string(text), installPath, bin)), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func systemdAnalyze(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed (Debian: package systemd)")
	}
	return path
}

func TestUnitSystemdAnalyzeVerify(t *testing.T) {
	tool := systemdAnalyze(t)
	path := installedCopy(t)
	ctx, cancel := context.WithTimeout(t.Context(), toolTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, tool, "verify", "--man=no", path).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	// Warnings (an unknown or misspelt directive, a bad value) do not change the exit
	// status; every line naming the unit is one.
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if strings.Contains(line, unitPath) {
			t.Errorf("systemd-analyze verify: %s", line)
		} else if line != "" {
			t.Logf("systemd-analyze verify: %s", line)
		}
	}
}

// maxExposure is the highest systemd-analyze security exposure the unit may reach, on
// its scale of 0 to 100 (printed as 0.0 to 10.0; "OK" is below 2.0).
const maxExposure = 20

func TestUnitSystemdAnalyzeSecurity(t *testing.T) {
	tool := systemdAnalyze(t)
	path := installedCopy(t)
	ctx, cancel := context.WithTimeout(t.Context(), toolTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, tool, "security", "--offline=yes", "--threshold="+strconv.Itoa(maxExposure), "--no-pager", path).CombinedOutput()
	text := string(out)
	if err != nil && (strings.Contains(text, "unrecognized option") || strings.Contains(text, "Unknown command")) {
		t.Skipf("this systemd-analyze cannot score a unit file offline (systemd 250 or later can): %s", strings.TrimSpace(text))
	}
	overall := ""
	for _, line := range strings.Split(text, "\n") {
		if strings.Contains(line, "Overall exposure level") {
			overall = strings.TrimSpace(line)
		}
	}
	if overall == "" {
		t.Fatalf("systemd-analyze security printed no overall exposure (%v):\n%s", err, text)
	}
	t.Log(overall)
	if err != nil {
		t.Errorf("exposure above %d.%d: %v\n%s", maxExposure/10, maxExposure%10, err, text)
	}
}

// TestJailPortIsUnitPort checks that the fail2ban jail bans the port the unit listens on.
func TestJailPortIsUnitPort(t *testing.T) {
	listen, ok := flagValue(parseUnit(t, unitPath).execStart(t), "listen")
	if !ok {
		t.Fatal("ExecStart sets no --listen")
	}
	_, port, err := net.SplitHostPort(listen)
	if err != nil {
		t.Fatalf("--listen %q: %v", listen, err)
	}
	jail, err := os.ReadFile(jailPath)
	if err != nil {
		t.Fatal(err)
	}
	var ports []string
	for _, line := range strings.Split(string(jail), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && strings.TrimSpace(k) == "port" {
			ports = append(ports, strings.TrimSpace(v))
		}
	}
	if len(ports) != 1 || ports[0] != port {
		t.Errorf("the jail's port lines %q, want one naming %s (the unit's --listen %s)", ports, port, listen)
	}
}
