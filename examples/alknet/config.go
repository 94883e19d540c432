package main

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/BurntSushi/toml"

	"github.com/alknet/alknet/core"
	alkssh "github.com/alknet/alknet/ssh"
)

// maxConfigSize bounds a --config file (1 MiB); a larger file is refused before it is
// read.
const maxConfigSize = 1 << 20

// maxConfigNesting bounds how deeply tables, arrays and dotted keys may nest in a
// --config file. The schema needs three levels; the TOML decoder's cost grows
// quadratically or worse with nesting, so deep garbage is refused before decoding.
const maxConfigNesting = 16

// maxErrorText bounds how much of a decoder message (which may quote keys and values
// from the file) goes into an error.
const maxErrorText = 300

// fileConfig is the --config schema. Field types match the TOML value types; durations
// and networks are strings, parsed afterwards so errors can name key and value.
type fileConfig struct {
	Limits  fileLimits    `toml:"limits"`
	Peers   []filePeer    `toml:"peers"`
	APIKeys []fileAPIKey  `toml:"api_keys"`
	OpenAPI []fileOpenAPI `toml:"openapi"`
	MCP     []fileMCP     `toml:"mcp"`
	SSH     fileSSH       `toml:"ssh"`
}

// fileMCP is one [[mcp]] import: the tools of a streamable-HTTP MCP server, served as
// call operations <namespace>/<tool>.
type fileMCP struct {
	Namespace      string `toml:"namespace"`
	Endpoint       string `toml:"endpoint"`
	CredentialFile string `toml:"credential_file"`
	Expose         bool   `toml:"expose"`
}

// fileSSH is the [ssh] table: the alknet/ssh server's exec allow list, certificate
// authorities, auth attempts and forwarding policy.
type fileSSH struct {
	ExecAllow           []string          `toml:"exec_allow"`
	CertAuthorities     []string          `toml:"cert_authorities"`
	CertAuthorityScopes []string          `toml:"cert_authority_scopes"`
	MaxAuthAttempts     int               `toml:"max_auth_attempts"`
	Forwarding          fileSSHForwarding `toml:"forwarding"`
}

// fileSSHForwarding is [ssh.forwarding]: the default action and the rules, first match
// wins.
type fileSSHForwarding struct {
	Default string        `toml:"default"`
	Rules   []fileSSHRule `toml:"rules"`
}

// fileSSHRule is one [[ssh.forwarding.rules]] entry.
type fileSSHRule struct {
	Target     string   `toml:"target"`
	Action     string   `toml:"action"`
	Principals []string `toml:"principals"`
	Transports []string `toml:"transports"`
}

// fileOpenAPI is one [[openapi]] import: an HTTP API described by an OpenAPI 3
// document, served as call operations <namespace>/<operation>.
type fileOpenAPI struct {
	Namespace      string `toml:"namespace"`
	Spec           string `toml:"spec"`
	BaseURL        string `toml:"base_url"`
	Auth           string `toml:"auth"`
	CredentialFile string `toml:"credential_file"`
	Expose         bool   `toml:"expose"`
}

type fileLimits struct {
	MaxConnections          int      `toml:"max_connections"`
	MaxConnectionsPerIP     int      `toml:"max_connections_per_ip"`
	HandshakeTimeout        string   `toml:"handshake_timeout"`
	MaxAuthAttempts         int      `toml:"max_auth_attempts"`
	PerIPExempt             []string `toml:"per_ip_exempt"`
	IPv6PrefixLen           int      `toml:"ipv6_prefix_len"`
	IdleTimeout             string   `toml:"idle_timeout"`
	MaxBufferedBytes        int64    `toml:"max_buffered_bytes"`
	MaxBufferedBytesPerIP   int64    `toml:"max_buffered_bytes_per_ip"`
	MaxBufferedBytesPerConn int64    `toml:"max_buffered_bytes_per_conn"`
	MaxAnonymousFrameBytes  int64    `toml:"max_anonymous_frame_bytes"`
}

type filePeer struct {
	ID           string              `toml:"id"`
	Fingerprints []string            `toml:"fingerprints"`
	TokenHash    string              `toml:"token_hash"`
	Scopes       []string            `toml:"scopes"`
	Enabled      *bool               `toml:"enabled"`
	Resources    map[string][]string `toml:"resources"`
	DisplayName  string              `toml:"display_name"`
}

type fileAPIKey struct {
	Prefix      string   `toml:"prefix"`
	Hash        string   `toml:"hash"`
	Scopes      []string `toml:"scopes"`
	ExpiresAt   int64    `toml:"expires_at"`
	Description string   `toml:"description"`
}

// Keys the schema allows in each table, spelled exactly (the decoder itself matches
// field names case-insensitively).
var (
	limitsKeys = []string{"max_connections", "max_connections_per_ip", "handshake_timeout", "max_auth_attempts", "per_ip_exempt", "ipv6_prefix_len",
		"idle_timeout", "max_buffered_bytes", "max_buffered_bytes_per_ip", "max_buffered_bytes_per_conn", "max_anonymous_frame_bytes"}
	peerKeys    = []string{"id", "fingerprints", "token_hash", "scopes", "enabled", "resources", "display_name"}
	apiKeyKeys  = []string{"prefix", "hash", "scopes", "expires_at", "description"}
	openAPIKeys = []string{"namespace", "spec", "base_url", "auth", "credential_file", "expose"}
	mcpKeys     = []string{"namespace", "endpoint", "credential_file", "expose"}
	sshKeys     = []string{"exec_allow", "cert_authorities", "cert_authority_scopes", "max_auth_attempts", "forwarding"}
	sshFwdKeys  = []string{"default", "rules"}
	sshRuleKeys = []string{"target", "action", "principals", "transports"}
)

// knownKey reports whether k is a key of the schema.
func knownKey(k toml.Key) bool {
	switch {
	case len(k) == 1:
		return k[0] == "limits" || k[0] == "peers" || k[0] == "api_keys" || k[0] == "openapi" || k[0] == "mcp" || k[0] == "ssh"
	case len(k) == 2 && k[0] == "limits":
		return slices.Contains(limitsKeys, k[1])
	case len(k) == 2 && k[0] == "peers":
		return slices.Contains(peerKeys, k[1])
	case len(k) == 3 && k[0] == "peers" && k[1] == "resources":
		return true // a resource type: any name
	case len(k) == 2 && k[0] == "api_keys":
		return slices.Contains(apiKeyKeys, k[1])
	case len(k) == 2 && k[0] == "openapi":
		return slices.Contains(openAPIKeys, k[1])
	case len(k) == 2 && k[0] == "mcp":
		return slices.Contains(mcpKeys, k[1])
	case len(k) == 2 && k[0] == "ssh":
		return slices.Contains(sshKeys, k[1])
	case len(k) == 3 && k[0] == "ssh" && k[1] == "forwarding":
		return slices.Contains(sshFwdKeys, k[2])
	case len(k) == 4 && k[0] == "ssh" && k[1] == "forwarding" && k[2] == "rules":
		return slices.Contains(sshRuleKeys, k[3])
	}
	return false
}

// nodeConfig is a parsed --config file: the live configuration (peers, API keys,
// limits) and the [ssh] settings, which a reload replaces, and the [[openapi]] and
// [[mcp]] imports, read at start.
type nodeConfig struct {
	dynamic core.DynamicConfig
	openapi []openapiImport
	mcp     []mcpImport
	ssh     sshSettings
}

// sshSettings is the parsed [ssh] table. The zero value is the default: exec refused
// (empty allow list), no certificate authorities, the default auth attempts, and
// forwarding denied by default with no rules.
type sshSettings struct {
	execAllow       []string
	cas             []alkssh.CertAuthority
	maxAuthAttempts int
	forwarding      alkssh.ForwardingPolicy
}

// parseConfig parses a --config file (TOML) into a validated core.DynamicConfig. Its
// errors are one line and name the offending key or entry.
func parseConfig(data []byte) (core.DynamicConfig, error) {
	nc, err := parseNodeConfig(data, "")
	return nc.dynamic, err
}

// parseNodeConfig parses a --config file; relative paths in it are resolved against
// dir (the file's directory).
func parseNodeConfig(data []byte, dir string) (nodeConfig, error) {
	if len(data) > maxConfigSize {
		return nodeConfig{}, fmt.Errorf("%d bytes is more than the limit of %d bytes (1 MiB)", len(data), maxConfigSize)
	}
	if err := checkNesting(data); err != nil {
		return nodeConfig{}, err
	}
	var fc fileConfig
	md, err := toml.Decode(string(data), &fc)
	if err != nil {
		return nodeConfig{}, errors.New(clip(oneLine(err.Error())))
	}
	if err := checkKeys(md); err != nil {
		return nodeConfig{}, err
	}
	cfg, err := fc.dynamicConfig()
	if err != nil {
		return nodeConfig{}, err
	}
	if err := cfg.Validate(); err != nil {
		return nodeConfig{}, err
	}
	sc, err := fc.SSH.settings()
	if err != nil {
		return nodeConfig{}, err
	}
	imports, err := fc.openapiImports(dir)
	if err != nil {
		return nodeConfig{}, err
	}
	mcps, err := fc.mcpImports(dir, imports)
	if err != nil {
		return nodeConfig{}, err
	}
	return nodeConfig{dynamic: cfg, openapi: imports, mcp: mcps, ssh: sc}, nil
}

// settings checks the [ssh] table and maps it onto the ssh module's types. Each error
// names the key (and entry) at fault.
func (fs *fileSSH) settings() (sshSettings, error) {
	var sc sshSettings
	for i, name := range fs.ExecAllow {
		if name == "" || strings.ContainsAny(name, "/ \t\r\n") || !utf8.ValidString(name) {
			return sc, fmt.Errorf("ssh.exec_allow[%d]: invalid program name %q (want a bare name such as \"uptime\": no slash, no blank)", i, clip(name))
		}
		sc.execAllow = append(sc.execAllow, name)
	}
	for i, scope := range fs.CertAuthorityScopes {
		if scope == "" {
			return sc, fmt.Errorf("ssh.cert_authority_scopes[%d]: empty scope", i)
		}
	}
	for i, line := range fs.CertAuthorities {
		ca, err := alkssh.ParseCertAuthority(line)
		if err != nil {
			return sc, fmt.Errorf("ssh.cert_authorities[%d]: %s (want an authorized_keys line such as \"ssh-ed25519 AAAA... ops-ca\")", i, clip(strings.TrimPrefix(err.Error(), "ssh: ")))
		}
		ca.Scopes = slices.Clone(fs.CertAuthorityScopes)
		sc.cas = append(sc.cas, ca)
	}
	sc.maxAuthAttempts = fs.MaxAuthAttempts
	fwd := fs.Forwarding
	if fwd.Default != "" {
		a, err := alkssh.ParseAction(fwd.Default)
		if err != nil {
			return sc, fmt.Errorf("ssh.forwarding.default: invalid action %q (want \"allow\" or \"deny\")", clip(fwd.Default))
		}
		sc.forwarding.Default = a
	}
	for i, r := range fwd.Rules {
		key := fmt.Sprintf("ssh.forwarding.rules[%d]", i)
		if r.Target == "" {
			return sc, fmt.Errorf("%s.target: missing (want any, host:<glob>, cidr:<net>, ports:<host-glob>:<lo>-<hi> or alknet)", key)
		}
		target, err := alkssh.ParseTarget(r.Target)
		if err != nil {
			return sc, fmt.Errorf("%s.target: %s (want any, host:<glob>, cidr:<net>, ports:<host-glob>:<lo>-<hi> or alknet)", key, clip(strings.TrimPrefix(err.Error(), "ssh: ")))
		}
		if r.Action == "" {
			return sc, fmt.Errorf("%s.action: missing (want \"allow\" or \"deny\")", key)
		}
		action, err := alkssh.ParseAction(r.Action)
		if err != nil {
			return sc, fmt.Errorf("%s.action: invalid action %q (want \"allow\" or \"deny\")", key, clip(r.Action))
		}
		for j, p := range r.Principals {
			if p == "" {
				return sc, fmt.Errorf("%s.principals[%d]: empty principal (want a peer id, a certificate principal or a scope)", key, j)
			}
		}
		for j, tr := range r.Transports {
			switch tr {
			case alkssh.TransportQUIC, alkssh.TransportTLS, alkssh.TransportTCP:
			default:
				return sc, fmt.Errorf("%s.transports[%d]: invalid transport %q (want \"quic\", \"tls\" or \"tcp\")", key, j, clip(tr))
			}
		}
		sc.forwarding.Rules = append(sc.forwarding.Rules, alkssh.Rule{
			Target:     target,
			Action:     action,
			Principals: slices.Clone(r.Principals),
			Transports: slices.Clone(r.Transports),
		})
	}
	if err := sc.forwarding.Validate(); err != nil {
		return sc, fmt.Errorf("ssh.forwarding: %s", clip(strings.TrimPrefix(err.Error(), "ssh: ")))
	}
	return sc, nil
}

// checkKeys reports keys outside the schema, in file order: those the decoder left
// undecoded and those it matched only case-insensitively.
func checkKeys(md toml.MetaData) error {
	undecoded := make(map[string]bool)
	for _, k := range md.Undecoded() {
		undecoded[k.String()] = true
	}
	var first []string
	count := 0
	for _, k := range md.Keys() {
		if s := k.String(); undecoded[s] || !knownKey(k) {
			count++
			if len(first) < 2 {
				first = append(first, s)
			}
		}
	}
	switch count {
	case 0:
		return nil
	case 1:
		return fmt.Errorf("unknown key %q", clip(first[0]))
	case 2:
		return fmt.Errorf("unknown key %q (also %q)", clip(first[0]), clip(first[1]))
	}
	return fmt.Errorf("unknown key %q (also %q and %d more)", clip(first[0]), clip(first[1]), count-2)
}

// dynamicConfig maps the file's values onto core's types.
func (fc *fileConfig) dynamicConfig() (core.DynamicConfig, error) {
	var cfg core.DynamicConfig
	l := fc.Limits
	cfg.Limits = core.Limits{
		MaxConnections:          l.MaxConnections,
		MaxConnectionsPerIP:     l.MaxConnectionsPerIP,
		MaxAuthAttempts:         l.MaxAuthAttempts,
		IPv6PrefixLen:           l.IPv6PrefixLen,
		MaxBufferedBytes:        l.MaxBufferedBytes,
		MaxBufferedBytesPerIP:   l.MaxBufferedBytesPerIP,
		MaxBufferedBytesPerConn: l.MaxBufferedBytesPerConn,
		MaxAnonymousFrameBytes:  l.MaxAnonymousFrameBytes,
	}
	if l.IdleTimeout != "" {
		d, err := time.ParseDuration(l.IdleTimeout)
		if err != nil {
			return cfg, fmt.Errorf("limits.idle_timeout: invalid duration %q (want a value such as \"30s\", or \"-1s\" for none)", clip(l.IdleTimeout))
		}
		cfg.Limits.IdleTimeout = d
	}
	if l.HandshakeTimeout != "" {
		d, err := time.ParseDuration(l.HandshakeTimeout)
		if err != nil {
			return cfg, fmt.Errorf("limits.handshake_timeout: invalid duration %q (want a value such as \"5s\" or \"1m30s\")", clip(l.HandshakeTimeout))
		}
		cfg.Limits.HandshakeTimeout = d
	}
	for i, s := range l.PerIPExempt {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return cfg, fmt.Errorf("limits.per_ip_exempt[%d]: invalid network %q (want CIDR such as \"127.0.0.0/8\")", i, clip(s))
		}
		cfg.Limits.PerIPExempt = append(cfg.Limits.PerIPExempt, p)
	}
	for _, p := range fc.Peers {
		enabled := true
		if p.Enabled != nil {
			enabled = *p.Enabled
		}
		cfg.Auth.Peers = append(cfg.Auth.Peers, core.PeerEntry{
			PeerID:        p.ID,
			Fingerprints:  p.Fingerprints,
			AuthTokenHash: p.TokenHash,
			Scopes:        p.Scopes,
			Resources:     p.Resources,
			DisplayName:   p.DisplayName,
			Enabled:       enabled,
		})
	}
	for _, k := range fc.APIKeys {
		cfg.Auth.APIKeys = append(cfg.Auth.APIKeys, core.APIKeyEntry{
			Prefix:      k.Prefix,
			Hash:        k.Hash,
			Scopes:      k.Scopes,
			Description: k.Description,
			ExpiresAt:   k.ExpiresAt,
		})
	}
	return cfg, nil
}

// loadConfig reads and parses the --config file at path. Errors name the file.
func loadConfig(path string) (core.DynamicConfig, error) {
	nc, err := loadNodeConfig(path)
	return nc.dynamic, err
}

// loadNodeConfig reads and parses the --config file at path, with its [[openapi]]
// imports. Errors name the file.
func loadNodeConfig(path string) (nodeConfig, error) {
	data, err := readConfigFile(path)
	if err != nil {
		return nodeConfig{}, err
	}
	nc, err := parseNodeConfig(data, filepath.Dir(path))
	if err != nil {
		return nodeConfig{}, fmt.Errorf("config %s: %w", path, err)
	}
	return nc, nil
}

// readConfigFile reads path, refusing files larger than maxConfigSize before reading
// them (and, for files whose size stat cannot tell, after reading one byte too many).
func readConfigFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if st.IsDir() {
		return nil, fmt.Errorf("config %s: is a directory", path)
	}
	tooLarge := fmt.Errorf("config %s: larger than the limit of %d bytes (1 MiB)", path, maxConfigSize)
	if st.Mode().IsRegular() && st.Size() > maxConfigSize {
		return nil, tooLarge
	}
	data, err := io.ReadAll(io.LimitReader(f, maxConfigSize+1))
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	if len(data) > maxConfigSize {
		return nil, tooLarge
	}
	return data, nil
}

// checkNesting refuses input nested more than maxConfigNesting levels deep, counting
// each '[' and '{' and each '.' of a dotted key (outside strings and comments) as a
// level. It is a lexical over-approximation: a float such as 1.5 also counts one level.
func checkNesting(data []byte) error {
	line := 1
	var stack []int // level at each open bracket
	level := 0
	base := func() int {
		if len(stack) == 0 {
			return 0
		}
		return stack[len(stack)-1] + 1
	}
	for i := 0; i < len(data); i++ {
		switch data[i] {
		case '\n':
			line++
			level = base()
		case ',':
			level = base()
		case '#':
			for i+1 < len(data) && data[i+1] != '\n' {
				i++
			}
		case '"', '\'':
			n, lines := skipString(data[i:])
			i += n - 1
			line += lines
		case '.':
			level++
		case '[', '{':
			stack = append(stack, level)
			level++
		case ']', '}':
			if len(stack) > 0 {
				level = stack[len(stack)-1]
				stack = stack[:len(stack)-1]
			} else {
				level = 0
			}
		}
		if level > maxConfigNesting {
			return fmt.Errorf("line %d: tables, arrays or dotted keys nested more than %d levels deep", line, maxConfigNesting)
		}
	}
	return nil
}

// skipString returns the length of the TOML string starting at s[0] (a quote) and the
// number of newlines in it. Single-line strings end at their closing quote or at a
// newline (where the decoder will report the error); basic strings honour backslash
// escapes.
func skipString(s []byte) (n, lines int) {
	q := s[0]
	escapes := q == '"'
	if len(s) >= 3 && s[1] == q && s[2] == q {
		// Multi-line string; the closing delimiter may be followed by up to two more
		// quotes that belong to the content.
		for i := 3; i < len(s); i++ {
			switch {
			case s[i] == '\\' && escapes:
				if i+1 < len(s) && s[i+1] == '\n' {
					lines++
				}
				i++
			case s[i] == '\n':
				lines++
			case s[i] == q && i+2 < len(s) && s[i+1] == q && s[i+2] == q:
				end := i + 3
				for k := 0; k < 2 && end < len(s) && s[end] == q; k++ {
					end++
				}
				return end, lines
			}
		}
		return len(s), lines
	}
	for i := 1; i < len(s); i++ {
		switch {
		case s[i] == '\\' && escapes:
			if i+1 < len(s) && s[i+1] == '\n' {
				return i + 1, 0 // the newline is outside: the decoder reports it
			}
			i++
		case s[i] == q:
			return i + 1, 0
		case s[i] == '\n':
			return i, 0
		}
	}
	return len(s), 0
}

// clip shortens s to maxErrorText bytes for error messages.
func clip(s string) string {
	if len(s) <= maxErrorText {
		return s
	}
	cut := maxErrorText
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
