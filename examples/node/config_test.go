package node

import (
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/alknet/alknet/core"
)

// Real values for the schema example.
const (
	aliceFP      = "ed25519:3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29"
	aliceToken   = "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"
	demoKeyHash  = "sha256:fcde2b2edba56bf408601fb721fe9b5c338d10ee429ea04fae5511b68fbf8fb9"
	exampleToml  = schemaExample + extensionsExample
	bobFP        = "SHA256:4a5f2b6c1e0d9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a"
	revokedFP    = "ed25519:0000000000000000000000000000000000000000000000000000000000000001"
	expiringHash = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
)

// schemaExample is the documented schema with real values.
const schemaExample = `
[limits]
max_connections = 10000
max_connections_per_ip = 100
handshake_timeout = "5s"

[[peers]]
id = "alice"                        # stable peer id
fingerprints = ["` + aliceFP + `"]
token_hash = "` + aliceToken + `"   # optional
scopes = ["admin"]
enabled = true                      # default true
[peers.resources]
service = ["gitea"]

[[api_keys]]
prefix = "alk_abcd"                 # first 8 characters of the token
hash = "` + demoKeyHash + `"
scopes = ["demo"]
expires_at = 1893456000             # optional, unix seconds
`

// extensionsExample adds the allowed extensions and defaults to schemaExample.
const extensionsExample = `
[[peers]]
id = "bob"
display_name = "Bob's laptop"
fingerprints = ["` + bobFP + `"]

[[peers]]
id = "mallory"
fingerprints = ["` + revokedFP + `"]
enabled = false

[[api_keys]]
prefix = "alk_efgh"
hash = "` + expiringHash + `"
description = "CI token"
`

const extensionsLimits = `
[limits]
max_auth_attempts = -1
per_ip_exempt = ["127.0.0.0/8", "::1/128"]
ipv6_prefix_len = 56
max_connections = -1
idle_timeout = "-1s"
max_buffered_bytes = 1073741824
max_buffered_bytes_per_ip = -1
max_buffered_bytes_per_conn = 8388608
max_anonymous_frame_bytes = 65536
`

func TestParseConfigSchema(t *testing.T) {
	cfg, err := parseConfig([]byte(exampleToml))
	if err != nil {
		t.Fatal(err)
	}
	want := core.DynamicConfig{
		Limits: core.Limits{MaxConnections: 10000, MaxConnectionsPerIP: 100, HandshakeTimeout: 5 * time.Second},
		Auth: core.AuthPolicy{
			Peers: []core.PeerEntry{
				{PeerID: "alice", Fingerprints: []string{aliceFP}, AuthTokenHash: aliceToken, Scopes: []string{"admin"},
					Resources: map[string][]string{"service": {"gitea"}}, Enabled: true},
				{PeerID: "bob", Fingerprints: []string{bobFP}, DisplayName: "Bob's laptop", Enabled: true},
				{PeerID: "mallory", Fingerprints: []string{revokedFP}, Enabled: false},
			},
			APIKeys: []core.APIKeyEntry{
				{Prefix: "alk_abcd", Hash: demoKeyHash, Scopes: []string{"demo"}, ExpiresAt: 1893456000},
				{Prefix: "alk_efgh", Hash: expiringHash, Description: "CI token"},
			},
		},
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("parsed\n%+v\nwant\n%+v", cfg, want)
	}

	cfg, err = parseConfig([]byte(extensionsLimits))
	if err != nil {
		t.Fatal(err)
	}
	wantLimits := core.Limits{
		MaxConnections:          -1,
		MaxAuthAttempts:         -1,
		PerIPExempt:             []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")},
		IPv6PrefixLen:           56,
		IdleTimeout:             -time.Second,
		MaxBufferedBytes:        1 << 30,
		MaxBufferedBytesPerIP:   -1,
		MaxBufferedBytesPerConn: 8 << 20,
		MaxAnonymousFrameBytes:  64 << 10,
	}
	if !reflect.DeepEqual(cfg.Limits, wantLimits) {
		t.Errorf("limits %+v, want %+v", cfg.Limits, wantLimits)
	}
	// 0 means the default, negative means no limit.
	eff := cfg.Limits.Effective()
	if eff.MaxConnectionsPerIP != core.DefaultMaxConnectionsPerIP || eff.MaxConnections != -1 || eff.HandshakeTimeout != core.DefaultHandshakeTimeout {
		t.Errorf("effective limits %+v", eff)
	}
}

// TestParseConfigOtherForms checks that dotted keys and inline tables, which TOML
// treats as the same tables, are accepted.
func TestParseConfigOtherForms(t *testing.T) {
	in := `limits.max_connections_per_ip = 3
peers = [{id = "alice", fingerprints = ["` + aliceFP + `"], resources = {service = ["gitea"]}}]
`
	cfg, err := parseConfig([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Limits.MaxConnectionsPerIP != 3 || len(cfg.Auth.Peers) != 1 || !cfg.Auth.Peers[0].Enabled ||
		!reflect.DeepEqual(cfg.Auth.Peers[0].Resources, map[string][]string{"service": {"gitea"}}) {
		t.Errorf("parsed %+v", cfg)
	}
}

func TestParseConfigEmpty(t *testing.T) {
	for _, in := range []string{"", "# only a comment\n", "\n\n"} {
		cfg, err := parseConfig([]byte(in))
		if err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		if !reflect.DeepEqual(cfg.Limits.Effective(), core.DefaultDynamicConfig().Limits) || len(cfg.Auth.Peers) != 0 || len(cfg.Auth.APIKeys) != 0 {
			t.Errorf("%q: %+v, want the defaults", in, cfg)
		}
	}
}

func TestParseConfigErrors(t *testing.T) {
	cases := []struct {
		name, in, want string
	}{
		{"unknown top-level", "[server]\nport = 1\n", `unknown key "server"`},
		{"unknown limits key", "[limits]\nmax_conns = 1\n", `unknown key "limits.max_conns"`},
		{"unknown peer key", "[[peers]]\nid = \"a\"\nnickname = \"x\"\n", `unknown key "peers.nickname"`},
		{"unknown api key key", "[[api_keys]]\nsecret = \"x\"\n", `unknown key "api_keys.secret"`},
		{"wrong case", "[limits]\nMAX_CONNECTIONS = 1\n", `unknown key "limits.MAX_CONNECTIONS"`},
		{"nested resources", "[[peers]]\nid = \"a\"\n[peers.resources.x]\ny = [\"z\"]\n", `"peers.resources.x"`},
		{"several unknown", "a = 1\nb = 2\nc = 3\n", `unknown key "a" (also "b" and 1 more)`},
		{"bad duration", "[limits]\nhandshake_timeout = \"soon\"\n", `limits.handshake_timeout: invalid duration "soon"`},
		{"duration type", "[limits]\nhandshake_timeout = 5\n", `limits.handshake_timeout`},
		{"negative duration", "[limits]\nhandshake_timeout = \"-1s\"\n", "handshake_timeout -1s is negative"},
		{"bad idle timeout", "[limits]\nidle_timeout = \"a while\"\n", `limits.idle_timeout: invalid duration "a while"`},
		{"byte count type", "[limits]\nmax_buffered_bytes = \"lots\"\n", `limits.max_buffered_bytes`},
		{"count type", "[limits]\nmax_connections = \"many\"\n", `limits.max_connections`},
		{"bad network", "[limits]\nper_ip_exempt = [\"127.0.0.1\"]\n", `limits.per_ip_exempt[0]: invalid network "127.0.0.1"`},
		{"bad prefix len", "[limits]\nipv6_prefix_len = 129\n", "ipv6_prefix_len 129"},
		{"bad fingerprint", "[[peers]]\nid = \"a\"\nfingerprints = [\"ed25519:ABC\"]\n", "peers[0] (a): fingerprints[0]"},
		{"empty peer id", "[[peers]]\nfingerprints = [\"" + aliceFP + "\"]\n", "peers[0]: empty peer_id"},
		{"duplicate peer", "[[peers]]\nid = \"a\"\n[[peers]]\nid = \"a\"\n", "duplicate peer_id: a"},
		{"duplicate fingerprint", "[[peers]]\nid = \"a\"\nfingerprints = [\"" + aliceFP + "\"]\n[[peers]]\nid = \"b\"\nfingerprints = [\"" + aliceFP + "\"]\n", "also listed for peer a"},
		{"bad token hash", "[[peers]]\nid = \"a\"\ntoken_hash = \"md5:00\"\n", "auth_token_hash"},
		{"bad api prefix", "[[api_keys]]\nprefix = \"key_1234\"\nhash = \"" + demoKeyHash + "\"\n", "api_keys[0]: prefix"},
		{"negative expiry", "[[api_keys]]\nprefix = \"alk_abcd\"\nhash = \"" + demoKeyHash + "\"\nexpires_at = -5\n", "expires_at -5 is negative"},
		{"malformed", "[limits\n", "to end table name"},
		{"peers as table", "[peers]\nid = \"a\"\n", "peers"},
		{"too deep", "a = " + strings.Repeat("[", 40) + strings.Repeat("]", 40) + "\n", "nested more than 16 levels"},
		{"too many dots", strings.Repeat("a.", 40) + "a = 1\n", "nested more than 16 levels"},
		{"too large", strings.Repeat("#", maxConfigSize+1), "limit of 1048576 bytes"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseConfig([]byte(tc.in))
			if err == nil {
				t.Fatalf("accepted %q", tc.in)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q lacks %q", err, tc.want)
			}
			if strings.ContainsAny(err.Error(), "\r\n") {
				t.Errorf("error %q spans several lines", err)
			}
		})
	}
}

func TestCheckNestingStrings(t *testing.T) {
	// Brackets, dots and quotes inside strings and comments do not count.
	deep := strings.Repeat("[{.", 50)
	for _, in := range []string{
		`a = "` + deep + `"`,
		`a = '` + deep + `'`,
		"a = \"\"\"\n" + deep + "\n\"\"\"",
		"a = '''\n" + deep + "'''",
		`a = "\"` + deep + `"`,
		"a = \"\"\"x\"\"\"\"\"\nb = 1", // content ends in two quotes
		"# " + deep,
		`"` + deep + `" = 1`,
	} {
		if err := checkNesting([]byte(in)); err != nil {
			t.Errorf("%q: %v", in, err)
		}
	}
	if err := checkNesting([]byte("x = 1\n\"\"\"\n\n\"\"\"\n" + strings.Repeat("[", 33))); err == nil || !strings.Contains(err.Error(), "line 5") {
		t.Errorf("deep nesting after a multi-line string: %v, want an error at line 5", err)
	}
}

func TestLoadConfig(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "alknet.toml")
	if err := os.WriteFile(path, []byte(schemaExample), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Auth.Peers) != 1 || cfg.Auth.Peers[0].PeerID != "alice" {
		t.Errorf("loaded %+v", cfg)
	}

	big := filepath.Join(dir, "big.toml")
	if err := os.WriteFile(big, make([]byte, maxConfigSize+1), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := loadConfig(big); err == nil || !strings.Contains(err.Error(), big) || !strings.Contains(err.Error(), "limit of 1048576 bytes") {
		t.Errorf("oversized file: %v", err)
	}
	exact := filepath.Join(dir, "exact.toml")
	if err := os.WriteFile(exact, []byte(strings.Repeat("#", maxConfigSize)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := loadConfig(exact); err != nil {
		t.Errorf("file of exactly maxConfigSize bytes: %v", err)
	}
	bad := filepath.Join(dir, "bad.toml")
	if err := os.WriteFile(bad, []byte("[limits]\nmax_conns = 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := loadConfig(bad); err == nil || !strings.Contains(err.Error(), "config "+bad+": unknown key") {
		t.Errorf("invalid file: %v", err)
	}
	if _, err := loadConfig(dir); err == nil || !strings.Contains(err.Error(), "directory") {
		t.Errorf("directory as config: %v", err)
	}
}

func FuzzParseConfig(f *testing.F) {
	seeds := []string{
		schemaExample,
		exampleToml,
		extensionsLimits,
		"",
		"[limits]\nmax_conns = 1\n",
		"[limits]\nhandshake_timeout = \"5 parsecs\"\n",
		"[[peers]]\nid = \"a\"\nfingerprints = [\"ed25519:nothex\"]\n",
		"[[peers]]\nid = \"a\"\n[[peers]]\nid = \"a\"\n",
		"a = " + strings.Repeat("[", 10000),
		"a = " + strings.Repeat("{b=", 10000),
		strings.Repeat("a.", 10000) + "a = 1",
		"[" + strings.Repeat("a.", 10000) + "a]",
		"a = " + strings.Repeat("[{x = [", 20) + strings.Repeat("]}]", 20),
		"x = \"\"\"" + strings.Repeat("[", 1000),
		"\xff\xfe[limits]\x00",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := parseConfig(data)
		if err != nil {
			if strings.ContainsAny(err.Error(), "\r\n") {
				t.Errorf("error spans several lines: %q", err)
			}
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("accepted a config that fails Validate: %v", err)
		}
		if _, err := core.NewDynamicStore(cfg); err != nil {
			t.Fatalf("accepted a config the store refuses: %v", err)
		}
	})
}
