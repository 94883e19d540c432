package main

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// serviceUnit is the systemd unit of examples/deploy, relative to this package.
const serviceUnit = "../deploy/alknet.service"

// TestServiceUnitCommand runs serve with the command line of the systemd unit's
// ExecStart, the directories systemd would create replaced by temporary ones and the
// listen address by a free loopback port: the unit's flags are the node's, and the node
// gets ready with them and reloads on the signal ExecReload sends.
func TestServiceUnitCommand(t *testing.T) {
	f, err := os.Open(serviceUnit)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var execStart string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "ExecStart="); ok {
			execStart = v
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	words := strings.Fields(execStart)
	if len(words) < 2 || words[1] != "serve" {
		t.Fatalf("ExecStart=%s: want BINARY serve FLAGS", execStart)
	}

	state, configDir := t.TempDir(), t.TempDir()
	writeFile(t, filepath.Join(configDir, "alknet.toml"), "")
	expand := strings.NewReplacer("${STATE_DIRECTORY}", state, "${CONFIGURATION_DIRECTORY}", configDir)
	args := words[2:]
	listen := false
	for i, a := range args {
		if strings.Contains(a, "$") && !strings.HasPrefix(a, "${STATE_DIRECTORY}") && !strings.HasPrefix(a, "${CONFIGURATION_DIRECTORY}") {
			t.Fatalf("ExecStart argument %q: a variable this test does not set", a)
		}
		args[i] = expand.Replace(a)
		if i > 0 && args[i-1] == "--listen" {
			args[i], listen = "127.0.0.1:0", true
		}
	}
	if !listen {
		t.Fatalf("ExecStart=%s sets no --listen", execStart)
	}
	n := startServe(t, args...)
	if _, err := os.Stat(filepath.Join(state, keyFileName)); err != nil {
		t.Errorf("the node key is not in the state directory: %v", err)
	}
	if err := n.triggerReload(); err != nil {
		t.Errorf("reload: %v", err)
	}
	n.stop(t)
	if !strings.Contains(n.stderr.String(), "config reloaded") {
		t.Errorf("no reload line in the log:\n%s", n.stderr)
	}
}
