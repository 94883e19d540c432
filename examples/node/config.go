package node

import (
	"encoding"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/BurntSushi/toml"

	"github.com/alknet/alknet/core"
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
	Limits  fileLimits   `toml:"limits"`
	Peers   []filePeer   `toml:"peers"`
	APIKeys []fileAPIKey `toml:"api_keys"`
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

// Parsed is a parsed --config file: the live configuration (peers, API keys, limits)
// and the configs of the Configurable plugins.
type Parsed struct {
	// Dynamic is the node's own part.
	Dynamic core.DynamicConfig
	configs map[Plugin]Config
}

// Config returns p's config, nil when p is not Configurable.
func (pc *Parsed) Config(p Plugin) Config { return pc.configs[p] }

// ParseConfig parses a --config file (TOML) for the plugins: [limits], [[peers]] and
// [[api_keys]] for the node, the other top-level keys for the plugins that own them
// (Configurable), decoded straight into their config values and checked by their
// Validate. Relative paths in it are resolved against dir. Errors are one line and
// name the offending key or entry.
func ParseConfig(data []byte, dir string, plugins []Plugin) (*Parsed, error) {
	if len(data) > maxConfigSize {
		return nil, fmt.Errorf("%d bytes is more than the limit of %d bytes (1 MiB)", len(data), maxConfigSize)
	}
	if err := checkNesting(data); err != nil {
		return nil, err
	}
	var top map[string]toml.Primitive
	md, err := toml.Decode(string(data), &top)
	if err != nil {
		return nil, errors.New(Clip(OneLine(err.Error())))
	}
	var fc fileConfig
	tables := map[string]tableField{}
	_ = addTables(tables, reflect.ValueOf(&fc).Elem(), "the node") // distinct keys
	pc := &Parsed{configs: make(map[Plugin]Config)}
	for _, p := range plugins {
		cp, ok := p.(Configurable)
		if !ok {
			continue
		}
		cfg := cp.NewConfig()
		pc.configs[p] = cfg
		v := reflect.ValueOf(cfg)
		if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
			return nil, fmt.Errorf("plugin %s: its config is a %T, not a pointer to a struct", p.Name(), cfg)
		}
		if err := addTables(tables, v.Elem(), "plugin "+p.Name()); err != nil {
			return nil, err
		}
	}
	// Decode in file order, so that the first error is the first in the file.
	for _, k := range md.Keys() {
		tf, ok := tables[k[0]]
		if !ok || tf.decoded {
			continue
		}
		tf.decoded = true
		tables[k[0]] = tf
		if err := md.PrimitiveDecode(top[k[0]], tf.ptr); err != nil {
			return nil, errors.New(Clip(OneLine(err.Error())))
		}
	}
	if err := checkKeys(md, tables); err != nil {
		return nil, err
	}
	if pc.Dynamic, err = fc.dynamicConfig(); err != nil {
		return nil, err
	}
	if err := pc.Dynamic.Validate(); err != nil {
		return nil, err
	}
	for _, p := range plugins {
		cfg, ok := pc.configs[p]
		if !ok {
			continue
		}
		if r, ok := cfg.(PathResolver); ok {
			r.Resolve(dir)
		}
		if err := cfg.Validate(); err != nil {
			return nil, err
		}
	}
	return pc, nil
}

// tableField is a top-level key's field: where its value decodes to and its type,
// for checking the key names under it, and who owns it.
type tableField struct {
	ptr     any
	typ     reflect.Type
	owner   string
	decoded bool
}

// addTables adds the toml-tagged fields of the struct v, owned by owner, to tables.
// A key may have one owner only.
func addTables(tables map[string]tableField, v reflect.Value, owner string) error {
	t := v.Type()
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("toml"), ",")
		if name == "" || name == "-" || !t.Field(i).IsExported() {
			continue
		}
		if prev, ok := tables[name]; ok {
			return fmt.Errorf("%s and %s both own the key %q", prev.owner, owner, name)
		}
		tables[name] = tableField{ptr: v.Field(i).Addr().Interface(), typ: t.Field(i).Type, owner: owner}
	}
	return nil
}

var textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()

// knownKey reports whether k is a key of the schema, spelled exactly as a toml tag
// (the decoder itself matches field names case-insensitively). Map keys are any name.
func knownKey(tables map[string]tableField, k toml.Key) bool {
	tf, ok := tables[k[0]]
	if !ok {
		return false
	}
	t := tf.typ
	for _, name := range k[1:] {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Array {
			t = t.Elem()
		}
		switch {
		case reflect.PointerTo(t).Implements(textUnmarshaler):
			return false // a value, nothing under it
		case t.Kind() == reflect.Map:
			t = t.Elem()
		case t.Kind() == reflect.Struct:
			f, ok := fieldByTag(t, name)
			if !ok {
				return false
			}
			t = f.Type
		default:
			return false
		}
	}
	return true
}

// fieldByTag returns the field of the struct type t whose toml tag is name.
func fieldByTag(t reflect.Type, name string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		if tag, _, _ := strings.Cut(f.Tag.Get("toml"), ","); tag == name {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// checkKeys reports keys outside the schema, in file order: those the decoder left
// undecoded and those it matched only case-insensitively.
func checkKeys(md toml.MetaData, tables map[string]tableField) error {
	undecoded := make(map[string]bool)
	for _, k := range md.Undecoded() {
		undecoded[k.String()] = true
	}
	var first []string
	count := 0
	for _, k := range md.Keys() {
		if s := k.String(); undecoded[s] || !knownKey(tables, k) {
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
		return fmt.Errorf("unknown key %q", Clip(first[0]))
	case 2:
		return fmt.Errorf("unknown key %q (also %q)", Clip(first[0]), Clip(first[1]))
	}
	return fmt.Errorf("unknown key %q (also %q and %d more)", Clip(first[0]), Clip(first[1]), count-2)
}

// LoadConfig reads and parses the --config file at path for the plugins. Errors name
// the file.
func LoadConfig(path string, plugins []Plugin) (*Parsed, error) {
	data, err := readConfigFile(path)
	if err != nil {
		return nil, err
	}
	pc, err := ParseConfig(data, filepath.Dir(path), plugins)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return pc, nil
}

// defaultConfig is the configuration without a --config file.
func defaultConfig(plugins []Plugin) *Parsed {
	pc := &Parsed{Dynamic: core.DefaultDynamicConfig(), configs: make(map[Plugin]Config)}
	for _, p := range plugins {
		if cp, ok := p.(Configurable); ok {
			pc.configs[p] = cp.NewConfig()
		}
	}
	return pc
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
			return cfg, fmt.Errorf("limits.idle_timeout: invalid duration %q (want a value such as \"30s\", or \"-1s\" for none)", Clip(l.IdleTimeout))
		}
		cfg.Limits.IdleTimeout = d
	}
	if l.HandshakeTimeout != "" {
		d, err := time.ParseDuration(l.HandshakeTimeout)
		if err != nil {
			return cfg, fmt.Errorf("limits.handshake_timeout: invalid duration %q (want a value such as \"5s\" or \"1m30s\")", Clip(l.HandshakeTimeout))
		}
		cfg.Limits.HandshakeTimeout = d
	}
	for i, s := range l.PerIPExempt {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return cfg, fmt.Errorf("limits.per_ip_exempt[%d]: invalid network %q (want CIDR such as \"127.0.0.0/8\")", i, Clip(s))
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

// Clip shortens s to maxErrorText bytes for error messages.
func Clip(s string) string {
	if len(s) <= maxErrorText {
		return s
	}
	cut := maxErrorText
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
