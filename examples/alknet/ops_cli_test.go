package main

import (
	"bufio"
	"crypto/ed25519"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/alknet/alknet/call"
	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/core/coretest"
	alknode "github.com/alknet/alknet/examples/node"
)

// Tests of the operator's commands: version, config check, apikey new, peer add,
// token new, id --ssh and --authorized-key, serve --log-format and serve's --listen
// check.

func TestVersion(t *testing.T) {
	var outs []string
	for _, arg := range []string{"version", "--version", "-version"} {
		r := mustRun(t, "", arg)
		if r.stderr != "" {
			t.Errorf("%s: stderr %q", arg, r.stderr)
		}
		outs = append(outs, r.stdout)
	}
	if outs[0] != outs[1] || outs[0] != outs[2] {
		t.Errorf("version, --version and -version differ: %q", outs)
	}
	lines := strings.Split(strings.TrimSuffix(outs[0], "\n"), "\n")
	want := []*regexp.Regexp{
		regexp.MustCompile(`^alknet (\(devel\)|v\S+)$`),
		regexp.MustCompile(`^revision (unknown|[0-9a-f]{40,64})( \(modified\))?$`),
		regexp.MustCompile(`^go go1\.\d+\S* \S+/\S+$`),
		regexp.MustCompile(`^quic-go v0\.\d+\.\d+\S*$`),
	}
	if len(lines) != len(want) {
		t.Fatalf("version printed %q, want %d lines", outs[0], len(want))
	}
	for i, re := range want {
		if !re.MatchString(lines[i]) {
			t.Errorf("line %d = %q, want %s", i+1, lines[i], re)
		}
	}
	checkFailure(t, runCmd(t, nil, "", "version", "extra"), exitUsage, `unexpected argument "extra"`)
}

// TestVersionText checks the VCS revision and a replaced quic-go in the output.
func TestVersionText(t *testing.T) {
	bi := &debug.BuildInfo{
		GoVersion: "go1.26.0",
		Main:      debug.Module{Path: "github.com/alknet/alknet/examples", Version: "v1.2.3"},
		Deps: []*debug.Module{
			{Path: "github.com/quic-go/quic-go", Version: "v0.65.0", Replace: &debug.Module{Path: "../quic-go", Version: "v0.65.1"}},
		},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "0123456789abcdef0123456789abcdef01234567"}, {Key: "vcs.modified", Value: "true"}},
	}
	got := alknode.VersionText("alknet", bi)
	for _, want := range []string{"alknet v1.2.3\n", "revision 0123456789abcdef0123456789abcdef01234567 (modified)\n", "go go1.26.0 ", "quic-go v0.65.1\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("VersionText = %q, lacks %q", got, want)
		}
	}
	bi.Deps, bi.Settings = nil, nil
	got = alknode.VersionText("alknet", bi)
	for _, want := range []string{"revision unknown\n", "quic-go none\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("VersionText without VCS or quic-go = %q, lacks %q", got, want)
		}
	}
}

// checkEmptyDir checks that dir does not exist or is empty.
func checkEmptyDir(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("%s holds %q, want nothing", dir, names)
	}
}

func TestConfigCheck(t *testing.T) {
	// No key is created anywhere: not under --state (config check has none) nor ~/.alknet.
	home := t.TempDir()
	t.Setenv("HOME", home)
	dir := t.TempDir()
	exports := filepath.Join(dir, "srv")
	if err := os.Mkdir(exports, 0o700); err != nil {
		t.Fatal(err)
	}
	fp := coretest.NewIdentity(t).Fingerprint
	good := filepath.Join(dir, "good.toml")
	writeFile(t, good, "[limits]\nmax_connections = 10\n[[peers]]\nid = \"alice\"\nfingerprints = [\""+fp+"\"]\nscopes = [\"ssh:exec\"]\n"+
		"[ssh]\nexec_allow = [\"echo\"]\n[[sftp.exports]]\nname = \"data\"\nroot = \"srv\"\n")
	r := mustRun(t, "", "config", "check", "--config", good)
	if r.stdout != "ok\n" || r.stderr != "" {
		t.Errorf("config check of a valid file: stdout %q, stderr %q; want ok", r.stdout, r.stderr)
	}
	checkEmptyDir(t, home)

	cases := []struct {
		name, content, want string
	}{
		{"unknown key", "[limits]\nmax_conns = 5\n", `unknown key "limits.max_conns"`},
		{"duplicate peer", "[[peers]]\nid = \"a\"\n[[peers]]\nid = \"a\"\n", "duplicate peer_id: a"},
		{"plugin table", "[ssh]\nmax_auth_attempts = \"six\"\n", "max_auth_attempts"},
		{"sftp root missing", "[[sftp.exports]]\nname = \"data\"\nroot = \"nowhere\"\n", "sftp.exports[0].root"},
		{"bad api key", "[[api_keys]]\nprefix = \"abc\"\nhash = \"sha256:00\"\n", "api_keys[0]"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".toml")
			writeFile(t, path, tc.content)
			r := runCmd(t, nil, "", "config", "check", "--config", path)
			line := checkFailure(t, r, exitUsage, "config check: ", tc.want, path)
			if r.stdout != "" {
				t.Errorf("stdout %q, want nothing (%s)", r.stdout, line)
			}
			// serve refuses the same file with the same message.
			state := t.TempDir()
			s := runCmd(t, nil, "", "serve", "--state", state, "--listen", "127.0.0.1:0", "--config", path)
			checkFailure(t, s, exitUsage, tc.want)
		})
	}
	checkFailure(t, runCmd(t, nil, "", "config", "check", "--config", filepath.Join(dir, "absent.toml")), exitUsage, "absent.toml")
	checkFailure(t, runCmd(t, nil, "", "config", "check"), exitUsage, "--config FILE is required")
	checkFailure(t, runCmd(t, nil, "", "config"), exitUsage, `want "config check"`)
	checkFailure(t, runCmd(t, nil, "", "config", "check", "--config", good, "extra"), exitUsage, `unexpected argument "extra"`)
	checkEmptyDir(t, home)
	for _, args := range [][]string{{"help", "config"}, {"config", "check", "-h"}, {"help", "config", "check"}} {
		r := runCmd(t, nil, "", args...)
		if exitCode(r.err) != exitOK || !strings.Contains(r.stdout, "Usage: alknet config check --config FILE") {
			t.Errorf("%q: %v, stdout %q", args, r.err, r.stdout)
		}
	}
}

// TestConfigCheckImports: config check reads the [[openapi]] documents and the
// credential files as serve does when it starts, without contacting [[mcp]] servers.
func TestConfigCheckImports(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "pets.yaml"), petsSpec)
	writeFile(t, filepath.Join(dir, "bad.yaml"), "openapi: [\n")
	writeFile(t, filepath.Join(dir, "pets.key"), "k\n")
	writeFile(t, filepath.Join(dir, "echo.yaml"), strings.Replace(petsSpec, "getPet", "echo", 1))
	if err := os.WriteFile(filepath.Join(dir, "open.key"), []byte("k\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, "open.key"), 0o644); err != nil {
		t.Fatal(err)
	}
	pets := "[[openapi]]\nnamespace = \"p\"\nspec = \"pets.yaml\"\nbase_url = \"http://127.0.0.1:1/\"\n"
	for _, tc := range []struct{ name, toml, want string }{
		{"ok", pets + "auth = \"bearer\"\ncredential_file = \"pets.key\"\n[[mcp]]\nnamespace = \"m\"\nendpoint = \"http://127.0.0.1:1/mcp\"\n", ""},
		{"bad document", strings.Replace(pets, "pets.yaml", "bad.yaml", 1), "bad.yaml"},
		{"missing document", strings.Replace(pets, "pets.yaml", "nope.yaml", 1), "openapi[0].spec"},
		{"credential readable by others", pets + "auth = \"bearer\"\ncredential_file = \"open.key\"\n", "chmod 600"},
		{"mcp credential readable by others", "[[mcp]]\nnamespace = \"m\"\nendpoint = \"http://127.0.0.1:1/mcp\"\ncredential_file = \"open.key\"\n", "chmod 600"},
		{"collides with a demo operation", strings.Replace(strings.Replace(pets, `"p"`, `"demo"`, 1), "pets.yaml", "echo.yaml", 1), "demo/echo"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, "alknet.toml")
			writeFile(t, path, tc.toml)
			r := runCmd(t, nil, "", "config", "check", "--config", path)
			if tc.want == "" {
				if r.err != nil || r.stdout != "ok\n" {
					t.Fatalf("config check: %v, stdout %q", r.err, r.stdout)
				}
				return
			}
			checkFailure(t, r, exitUsage, "config check: ", tc.want)
			// serve refuses the file too, when it starts.
			err := runCmd(t, nil, "", "serve", "--state", t.TempDir(), "--listen", "127.0.0.1:0", "--config", path).err
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("serve = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// TestServeListenInvalid checks that an address serve cannot listen on is a usage
// error before the state directory is touched.
func TestServeListenInvalid(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:99999", "127.0.0.1:-1", "127.0.0.1:nosuchservice", "bad host!:4433", "127.0.0.1"} {
		t.Run(addr, func(t *testing.T) {
			state := filepath.Join(t.TempDir(), "state")
			r := runCmd(t, nil, "", "serve", "--state", state, "--listen", addr)
			checkFailure(t, r, exitUsage, "serve: --listen")
			checkEmptyDir(t, state)
			if r.stdout != "" {
				t.Errorf("stdout %q", r.stdout)
			}
		})
	}
	checkFailure(t, runCmd(t, nil, "", "serve", "--state", t.TempDir(), "--log-format", "xml"), exitUsage, `--log-format "xml": want text or json`)
}

// parseBlock parses a TOML block the credential commands print as a --config file.
func parseBlock(t *testing.T, block string) core.DynamicConfig {
	t.Helper()
	nc, err := parseNodeConfig([]byte(block), t.TempDir())
	if err != nil {
		t.Fatalf("block %q does not parse as a --config file: %v", block, err)
	}
	return nc.dynamic
}

// resolveToken resolves tok against cfg as a node does.
func resolveToken(t *testing.T, cfg core.DynamicConfig, tok string) (*core.Identity, bool) {
	t.Helper()
	store, err := core.NewDynamicStore(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return core.NewConfigIdentityProvider(store, nil).ResolveFromToken(core.AuthToken{Raw: []byte(tok)})
}

var (
	apiTokenRE  = regexp.MustCompile(`^alk_[A-Za-z0-9_-]{32}$`)
	peerTokenRE = regexp.MustCompile(`^alkp_[A-Za-z0-9_-]{43}$`)
)

// tokenLine checks that stdout is one token line matching re and returns the token.
func tokenLine(t *testing.T, stdout string, re *regexp.Regexp) string {
	t.Helper()
	tok, ok := strings.CutSuffix(stdout, "\n")
	if !ok || !re.MatchString(tok) {
		t.Fatalf("stdout %q, want one token line matching %s", stdout, re)
	}
	return tok
}

func TestAPIKeyNew(t *testing.T) {
	before := time.Now()
	r := mustRun(t, "", "apikey", "new", "--scopes", "demo, sftp:read:data", "--expires", "720h", "--description", `CI "nightly"`)
	tok := tokenLine(t, r.stdout, apiTokenRE)
	if strings.Contains(r.stderr, tok) || strings.Contains(r.stderr, tok[len(core.APIKeyPrefix)+4:]) {
		t.Fatalf("stderr %q holds the token", r.stderr)
	}
	cfg := parseBlock(t, r.stderr)
	if len(cfg.Auth.APIKeys) != 1 || len(cfg.Auth.Peers) != 0 {
		t.Fatalf("block %q: want one [[api_keys]] entry", r.stderr)
	}
	k := cfg.Auth.APIKeys[0]
	if k.Prefix != tok[:core.APIKeyPrefixLen] || k.Hash != core.HashToken([]byte(tok)) || k.Description != `CI "nightly"` ||
		strings.Join(k.Scopes, " ") != "demo sftp:read:data" {
		t.Errorf("entry %+v does not match the token %s", k, tok)
	}
	lo, hi := before.Add(720*time.Hour).Unix(), time.Now().Add(720*time.Hour).Unix()
	if k.ExpiresAt < lo || k.ExpiresAt > hi {
		t.Errorf("expires_at %d, want between %d and %d", k.ExpiresAt, lo, hi)
	}
	id, ok := resolveToken(t, cfg, tok)
	if !ok || id.ID != k.Prefix || !id.HasScope("demo") {
		t.Errorf("the token resolves to %+v, %v", id, ok)
	}
	// Two runs, two keys.
	if again := tokenLine(t, mustRun(t, "", "apikey", "new").stdout, apiTokenRE); again == tok {
		t.Error("apikey new printed the same token twice")
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"apikey"}, `want "apikey new"`},
		{[]string{"apikey", "old"}, `want "apikey new"`},
		{[]string{"apikey", "new", "--expires", "-1h"}, "--expires"},
		{[]string{"apikey", "new", "--scopes", "a,,b"}, "empty scope"},
		{[]string{"apikey", "new", "--scopes", "a b"}, "blank"},
		{[]string{"apikey", "new", "extra"}, `unexpected argument "extra"`},
	} {
		r := runCmd(t, nil, "", tc.args...)
		checkFailure(t, r, exitUsage, tc.want)
		if r.stdout != "" {
			t.Errorf("%q printed %q", tc.args, r.stdout)
		}
	}
}

// TestAPIKeyNewTOMLReload mints a key into a running node's --config file: after the
// reload the key is accepted.
func TestAPIKeyNewTOMLReload(t *testing.T) {
	dir := t.TempDir()
	config := filepath.Join(dir, "alknet.toml")
	writeFile(t, config, "# the node\n[limits]\nmax_connections = 100")
	if err := os.Chmod(config, 0o640); err != nil {
		t.Fatal(err)
	}
	n := startServe(t, "--config", config)
	r := mustRun(t, "", "apikey", "new", "--scopes", "demo", "--toml", config)
	tok := tokenLine(t, r.stdout, apiTokenRE)
	if strings.Contains(r.stderr, tok) || !strings.Contains(r.stderr, "appended [[api_keys]] "+tok[:core.APIKeyPrefixLen]+" to "+config) {
		t.Errorf("stderr %q", r.stderr)
	}
	st, err := os.Stat(config)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o640 {
		t.Errorf("mode after the append %v, want 0640 kept", st.Mode().Perm())
	}
	data := string(readBytes(t, config))
	if !strings.HasPrefix(data, "# the node\n[limits]\nmax_connections = 100\n\n[[api_keys]]\n") || strings.Contains(data, tok) {
		t.Errorf("file after the append:\n%s", data)
	}
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != 1 {
		t.Errorf("directory holds %v (%v), want the config file alone (no temporary file left)", entries, err)
	}

	whoami := n.callArgs(nil, "--token", tok, "demo/whoami")
	wantCallError(t, runCall(t, whoami...), call.CodeForbidden, "authentication required")
	if err := n.triggerReload(); err != nil {
		t.Fatalf("reload: %v", err)
	}
	wantOutput(t, runCall(t, whoami...), `{"id":"`+tok[:core.APIKeyPrefixLen]+`"}`+"\n")
	if strings.Contains(n.stderr.String(), tok) {
		t.Error("serve logged the token")
	}
}

// TestCredentialsTOMLRefused checks that --toml leaves a file alone when the result
// would not be a valid configuration, and prints no token then.
func TestCredentialsTOMLRefused(t *testing.T) {
	fp := coretest.NewIdentity(t).Fingerprint
	cases := []struct {
		name, content string
		args          []string
		want          string
	}{
		{"invalid already", "[limits]\nmax_conns = 1\n", []string{"apikey", "new"}, `unknown key "limits.max_conns"`},
		{"duplicate peer", "[[peers]]\nid = \"bob\"\nfingerprints = [\"" + fp + "\"]\n", []string{"token", "new", "--id", "bob"}, "duplicate peer_id: bob"},
		{"duplicate fingerprint", "[[peers]]\nid = \"bob\"\nfingerprints = [\"" + fp + "\"]\n", []string{"peer", "add", "--id", "carol", "--fingerprint", fp}, "also listed for peer bob"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "node.toml")
			writeFile(t, path, tc.content)
			r := runCmd(t, nil, "", append(tc.args, "--toml", path)...)
			checkFailure(t, r, exitUsage, "not changed", tc.want, path)
			if r.stdout != "" {
				t.Errorf("stdout %q, want no token for a refused append", r.stdout)
			}
			if got := string(readBytes(t, path)); got != tc.content {
				t.Errorf("file changed to %q", got)
			}
		})
	}
}

func TestPeerAdd(t *testing.T) {
	fp := coretest.NewIdentity(t).Fingerprint
	fp2 := coretest.NewIdentity(t).Fingerprint
	r := mustRun(t, "", "peer", "add", "--id", "laptop", "--fingerprint", fp, "--fingerprint", fp2, "--scopes", "ssh:exec,sftp:read:data", "--display-name", "Laptop")
	if r.stderr != "" {
		t.Errorf("stderr %q", r.stderr)
	}
	cfg := parseBlock(t, r.stdout)
	if len(cfg.Auth.Peers) != 1 {
		t.Fatalf("block %q: want one [[peers]] entry", r.stdout)
	}
	p := cfg.Auth.Peers[0]
	if p.PeerID != "laptop" || strings.Join(p.Fingerprints, " ") != fp+" "+fp2 || strings.Join(p.Scopes, " ") != "ssh:exec sftp:read:data" ||
		p.DisplayName != "Laptop" || !p.Enabled || p.AuthTokenHash != "" {
		t.Errorf("entry %+v", p)
	}

	// --toml into a new file: mode 0600, and the node resolves the fingerprint.
	path := filepath.Join(t.TempDir(), "node.toml")
	r = mustRun(t, "", "peer", "add", "--id", "laptop", "--fingerprint", fp, "--toml", path)
	if r.stdout != "" {
		t.Errorf("stdout %q, want nothing with --toml", r.stdout)
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("new file: %v, %v; want mode 0600", st, err)
	}
	cfg = parseBlock(t, string(readBytes(t, path)))
	store, err := core.NewDynamicStore(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if id, ok := core.NewConfigIdentityProvider(store, nil).ResolveFromFingerprint(fp); !ok || id.ID != "laptop" {
		t.Errorf("fingerprint resolves to %+v, %v", id, ok)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"peer", "add", "--fingerprint", fp}, "--id is required"},
		{[]string{"peer", "add", "--id", "x"}, "--fingerprint is required"},
		{[]string{"peer", "add", "--id", "x", "--fingerprint", "ed25519:beef"}, "invalid fingerprint"},
		{[]string{"peer", "add", "--id", "x", "--fingerprint", "SHA256:abc"}, "invalid fingerprint"},
		{[]string{"peer", "remove"}, `want "peer add"`},
	} {
		r := runCmd(t, nil, "", tc.args...)
		checkFailure(t, r, exitUsage, tc.want)
		if r.stdout != "" {
			t.Errorf("%q printed %q", tc.args, r.stdout)
		}
	}
}

func TestTokenNew(t *testing.T) {
	r := mustRun(t, "", "token", "new", "--id", "ci", "--scopes", "demo")
	tok := tokenLine(t, r.stdout, peerTokenRE)
	if strings.Contains(r.stderr, tok) || strings.Contains(r.stderr, tok[len("alkp_"):]) {
		t.Fatalf("stderr %q holds the token", r.stderr)
	}
	cfg := parseBlock(t, r.stderr)
	if len(cfg.Auth.Peers) != 1 || cfg.Auth.Peers[0].AuthTokenHash != core.HashToken([]byte(tok)) {
		t.Fatalf("block %q does not hold the token's hash", r.stderr)
	}
	if id, ok := resolveToken(t, cfg, tok); !ok || id.ID != "ci" || !id.HasScope("demo") {
		t.Errorf("the token resolves to %+v, %v", id, ok)
	}

	// A running node takes it after a reload, over call.
	config := filepath.Join(t.TempDir(), "alknet.toml")
	writeFile(t, config, "")
	n := startServe(t, "--config", config)
	r = mustRun(t, "", "token", "new", "--id", "ci", "--scopes", "demo", "--toml", config)
	tok = tokenLine(t, r.stdout, peerTokenRE)
	if err := n.triggerReload(); err != nil {
		t.Fatalf("reload: %v", err)
	}
	wantOutput(t, runCall(t, n.callArgs(nil, "--token", tok, "demo/whoami")...), `{"id":"ci"}`+"\n")

	checkFailure(t, runCmd(t, nil, "", "token", "new"), exitUsage, "--id is required")
	checkFailure(t, runCmd(t, nil, "", "token"), exitUsage, `want "token new"`)
}

func TestCredentialsHelp(t *testing.T) {
	for _, args := range [][]string{{"apikey", "new", "-h"}, {"help", "apikey"}, {"help", "peer", "add"}, {"token", "new", "--help"}} {
		r := runCmd(t, nil, "", args...)
		if exitCode(r.err) != exitOK || !strings.Contains(r.stdout, "Usage: alknet ") {
			t.Errorf("%q: %v, stdout %q", args, r.err, r.stdout)
		}
		if !strings.Contains(r.stdout, "-toml") || !strings.Contains(r.stdout, "-scopes") {
			t.Errorf("%q does not show --toml and --scopes:\n%s", args, r.stdout)
		}
	}
	r := mustRun(t, "", "help")
	for _, want := range []string{"  apikey ", "  peer ", "  token ", "  config ", "  version "} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("usage lacks %q:\n%s", want, r.stdout)
		}
	}
}

// sshKeygenFingerprint returns the SHA256 fingerprint ssh-keygen -l prints for the
// public key file path.
func sshKeygenFingerprint(t *testing.T, keygen, path string) string {
	t.Helper()
	out, err := exec.CommandContext(t.Context(), keygen, "-l", "-f", path).CombinedOutput()
	if err != nil {
		t.Fatalf("ssh-keygen -lf %s: %v\n%s", path, err, out)
	}
	// "256 SHA256:... comment (ED25519)"
	f := strings.Fields(string(out))
	if len(f) < 2 || !strings.HasPrefix(f[1], "SHA256:") {
		t.Fatalf("ssh-keygen -lf printed %q", out)
	}
	return f[1]
}

var sshFPRE = regexp.MustCompile(`^SHA256:[A-Za-z0-9+/]{43}$`)

func TestIDSSH(t *testing.T) {
	state := t.TempDir()
	fp := tokenLine(t, mustRun(t, "", "id", "--state", state, "--ssh").stdout, sshFPRE)
	line := mustRun(t, "", "id", "--state", state, "--authorized-key").stdout
	pubPath := filepath.Join(state, pubFileName)
	if pub := string(readBytes(t, pubPath)); line != pub {
		t.Errorf("id --authorized-key printed %q, %s holds %q", line, pubFileName, pub)
	}
	pub, _, _, _, err := gossh.ParseAuthorizedKey([]byte(line))
	if err != nil || pub.Type() != gossh.KeyAlgoED25519 {
		t.Fatalf("id --authorized-key line %q: %v", line, err)
	}
	if gossh.FingerprintSHA256(pub) != fp {
		t.Errorf("id --ssh %s is not the fingerprint of the --authorized-key line", fp)
	}
	checkFailure(t, runCmd(t, nil, "", "id", "--state", state, "--ssh", "--authorized-key"), exitUsage, "exclude each other")

	keygen, err := exec.LookPath("ssh-keygen")
	if err != nil {
		t.Skip("ssh-keygen not installed: cannot compare with OpenSSH's fingerprints")
	}
	if got := sshKeygenFingerprint(t, keygen, pubPath); got != fp {
		t.Errorf("ssh-keygen -lf %s = %s, id --ssh = %s", pubFileName, got, fp)
	}
	// OpenSSH reads the printed line itself as a key file.
	linePath := filepath.Join(t.TempDir(), "host.pub")
	writeFile(t, linePath, line)
	if got := sshKeygenFingerprint(t, keygen, linePath); got != fp {
		t.Errorf("ssh-keygen -lf on the --authorized-key line = %s, want %s", got, fp)
	}
}

// TestIDSSHVault checks that a vault node, which writes no .pub file, prints serve's
// SSH host key (the vault's), not its identity key.
func TestIDSSHVault(t *testing.T) {
	pass := secretFile(t, "ssh passphrase\n")
	state := recoverAbandon(t, pass)
	line := mustRun(t, "", "id", "--state", state, "--passphrase-file", pass, "--authorized-key").stdout
	fp := tokenLine(t, mustRun(t, "", "id", "--state", state, "--passphrase-file", pass, "--ssh").stdout, sshFPRE)
	pub, _, _, _, err := gossh.ParseAuthorizedKey([]byte(line))
	if err != nil {
		t.Fatalf("id --authorized-key line %q: %v", line, err)
	}
	if gossh.FingerprintSHA256(pub) != fp {
		t.Errorf("id --ssh %s is not the fingerprint of the --authorized-key line", fp)
	}
	n := startServe(t, "--state", state, "--passphrase-file", pass)
	cpub, ok := pub.(gossh.CryptoPublicKey)
	if !ok {
		t.Fatalf("%T is not a CryptoPublicKey", pub)
	}
	if got := core.FingerprintFromPublicKey(cpub.CryptoPublicKey().(ed25519.PublicKey)); got != n.hostKey || got == n.fp {
		t.Errorf("id --authorized-key is %s; serve's ssh-host-key %s, identity %s", got, n.hostKey, n.fp)
	}
	checkAbsent(t, filepath.Join(state, pubFileName))
}

// TestLogFormatJSON checks that --log-format json writes every line as one JSON
// object, the auth failure line of a bad token among them.
func TestLogFormatJSON(t *testing.T) {
	n := startServe(t, "--log-format", "json")
	r := runCall(t, n.callArgs(nil, "--token", "alk_bogusbogusbogusbogus", "demo/echo", `"x"`)...)
	wantOutput(t, r, "\"x\"\n")
	n.stop(t)
	sc := bufio.NewScanner(strings.NewReader(n.stderr.String()))
	var found, lines int
	for sc.Scan() {
		lines++
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Errorf("log line %q is not JSON: %v", sc.Text(), err)
			continue
		}
		if rec["msg"] != core.AuthFailureMessage {
			continue
		}
		found++
		if rec["level"] != "WARN" || rec["remote_ip"] != "127.0.0.1" || rec["alpn"] != "alknet/call" || rec["peer"] != "alk_bogu" || rec["reason"] == "" {
			t.Errorf("auth failure line %s", sc.Text())
		}
	}
	// (call sends the token with the connection's first request and with the call.)
	if found == 0 || lines < 3 {
		t.Errorf("%d auth failure lines in %d lines, want at least one:\n%s", found, lines, n.stderr)
	}
	if strings.Contains(n.stderr.String(), "bogusbogus") {
		t.Error("the token is in the log")
	}
}
