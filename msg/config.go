package msg

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// ErrInvalidConfig is wrapped by every Config.Validate error.
var ErrInvalidConfig = errors.New("msg: invalid config")

// Defaults of [Config].
const (
	DefaultMaxMailboxMessages      = 10000
	DefaultMaxMailboxBytes         = 256 << 20
	DefaultTTL                     = 7 * 24 * time.Hour
	DefaultMaxTTL                  = 30 * 24 * time.Hour
	DefaultSendsPerMinute          = 120
	DefaultAnonymousSendsPerMinute = 10
	DefaultPurgeInterval           = 10 * time.Minute
	// MaxClockSkew is how far in the future an envelope's ts may be.
	MaxClockSkew = time.Hour
	// RequestTimeout bounds reading a request frame and writing its response.
	RequestTimeout = 30 * time.Second
)

// Store names of Config.Store.
const (
	StoreBolt     = "bbolt"
	StorePostgres = "postgres"
	StoreMemory   = "memory"
)

// Config is a msg server's configuration, the [msg] table of a node's --config:
//
//	[msg]
//	store = "bbolt"                 # bbolt (default, DIR/msg.db) | postgres | memory
//	postgres_dsn_file = "pg.dsn"    # for store = "postgres": file with the DSN, mode 0600
//	allow_anonymous = false
//	max_mailbox_messages = 10000
//	max_mailbox_bytes = "256MiB"
//	max_frame_bytes = "256KiB"      # "1536KiB" lets senders deliver 1 MiB bodies
//	default_ttl = "7d"
//	max_ttl = "30d"
//	sends_per_minute = 120          # per authenticated sender
//	anonymous_sends_per_minute = 10 # per remote address, when allow_anonymous
//	purge_interval = "10m"
//
// A zero field takes its default. The server never opens a store by name: Store and
// PostgresDSNFile are for the assembly layer, which opens the store and hands it to
// [NewServer].
type Config struct {
	// Store names the backend: "bbolt" (default), "postgres" or "memory".
	Store string `toml:"store"`
	// PostgresDSNFile is the file holding the PostgreSQL DSN (store = "postgres").
	PostgresDSNFile string `toml:"postgres_dsn_file"`
	// AllowAnonymous lets peers without scope msg:send (or without an identity) deliver,
	// limited per remote address by AnonymousSendsPerMinute.
	AllowAnonymous bool `toml:"allow_anonymous"`
	// MaxMailboxMessages caps the envelopes one mailbox holds (DefaultMaxMailboxMessages).
	MaxMailboxMessages int `toml:"max_mailbox_messages"`
	// MaxMailboxBytes caps the bytes of envelopes one mailbox holds (DefaultMaxMailboxBytes).
	MaxMailboxBytes Size `toml:"max_mailbox_bytes"`
	// MaxFrameBytes caps one request frame (DefaultMaxFrameBytes; at most
	// MaxFrameBytesLimit). It bounds the largest deliverable body: see MaxBodyForFrame.
	MaxFrameBytes Size `toml:"max_frame_bytes"`
	// DefaultTTL is the lifetime of an envelope that carries no ttl (DefaultTTL).
	DefaultTTL Duration `toml:"default_ttl"`
	// MaxTTL clamps every envelope's lifetime (DefaultMaxTTL).
	MaxTTL Duration `toml:"max_ttl"`
	// SendsPerMinute limits deliveries per authenticated sender (DefaultSendsPerMinute),
	// with bursts of as many.
	SendsPerMinute int `toml:"sends_per_minute"`
	// AnonymousSendsPerMinute limits anonymous deliveries per remote address
	// (DefaultAnonymousSendsPerMinute).
	AnonymousSendsPerMinute int `toml:"anonymous_sends_per_minute"`
	// PurgeInterval is how often expired envelopes are deleted (DefaultPurgeInterval;
	// negative: never, for tests that purge by hand with Server.Purge).
	PurgeInterval Duration `toml:"purge_interval"`
}

// Resolve makes a relative PostgresDSNFile relative to dir (the config file's directory).
func (c *Config) Resolve(dir string) {
	if c.PostgresDSNFile != "" && !filepath.IsAbs(c.PostgresDSNFile) && dir != "" {
		c.PostgresDSNFile = filepath.Join(dir, c.PostgresDSNFile)
	}
}

// Effective returns c with every zero field replaced by its default.
func (c Config) Effective() Config {
	if c.Store == "" {
		c.Store = StoreBolt
	}
	if c.MaxMailboxMessages == 0 {
		c.MaxMailboxMessages = DefaultMaxMailboxMessages
	}
	if c.MaxMailboxBytes == 0 {
		c.MaxMailboxBytes = DefaultMaxMailboxBytes
	}
	if c.MaxFrameBytes == 0 {
		c.MaxFrameBytes = DefaultMaxFrameBytes
	}
	if c.DefaultTTL == 0 {
		c.DefaultTTL = Duration(DefaultTTL)
	}
	if c.MaxTTL == 0 {
		c.MaxTTL = Duration(DefaultMaxTTL)
	}
	if c.SendsPerMinute == 0 {
		c.SendsPerMinute = DefaultSendsPerMinute
	}
	if c.AnonymousSendsPerMinute == 0 {
		c.AnonymousSendsPerMinute = DefaultAnonymousSendsPerMinute
	}
	if c.PurgeInterval == 0 {
		c.PurgeInterval = Duration(DefaultPurgeInterval)
	}
	return c
}

// Validate reports the first problem of c (after defaults), naming its key.
func (c Config) Validate() error {
	c = c.Effective()
	bad := func(key, format string, args ...any) error {
		return fmt.Errorf("%s: %w: %s", key, ErrInvalidConfig, fmt.Sprintf(format, args...))
	}
	switch c.Store {
	case StoreBolt, StoreMemory:
	case StorePostgres:
		if c.PostgresDSNFile == "" {
			return bad("postgres_dsn_file", "missing (needed by store = %q)", StorePostgres)
		}
	default:
		return bad("store", "%q (want bbolt, postgres or memory)", c.Store)
	}
	if c.MaxMailboxMessages < 0 {
		return bad("max_mailbox_messages", "%d (want at least 1)", c.MaxMailboxMessages)
	}
	if c.MaxMailboxBytes < 0 {
		return bad("max_mailbox_bytes", "%d (want at least 1 byte)", c.MaxMailboxBytes)
	}
	if c.MaxFrameBytes < 4<<10 || c.MaxFrameBytes > MaxFrameBytesLimit {
		return bad("max_frame_bytes", "%d (want 4KiB to %d)", c.MaxFrameBytes, MaxFrameBytesLimit)
	}
	if c.MaxTTL < Duration(time.Second) {
		return bad("max_ttl", "%s (want at least 1s)", c.MaxTTL)
	}
	if c.DefaultTTL < Duration(time.Second) || c.DefaultTTL > c.MaxTTL {
		return bad("default_ttl", "%s (want 1s to max_ttl %s)", c.DefaultTTL, c.MaxTTL)
	}
	if c.SendsPerMinute < 0 {
		return bad("sends_per_minute", "%d (want at least 1)", c.SendsPerMinute)
	}
	if c.AnonymousSendsPerMinute < 0 {
		return bad("anonymous_sends_per_minute", "%d (want at least 1)", c.AnonymousSendsPerMinute)
	}
	return nil
}

// Size is a byte count that decodes from TOML as a number of bytes or a string with a
// binary or decimal unit: "256MiB", "64 KiB", "1GB", "512".
type Size int64

// UnmarshalText parses a size.
func (s *Size) UnmarshalText(b []byte) error {
	v, err := ParseSize(string(b))
	if err != nil {
		return err
	}
	*s = Size(v)
	return nil
}

// MarshalText formats s in bytes.
func (s Size) MarshalText() ([]byte, error) { return []byte(strconv.FormatInt(int64(s), 10)), nil }

// ParseSize parses "<integer>[ ]<unit>", unit one of B, KiB, MiB, GiB, KB, MB, GB
// (case-insensitive; none: bytes).
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && t[i] >= '0' && t[i] <= '9' {
		i++
	}
	n, err := strconv.ParseInt(t[:i], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: size %q: want a number of bytes with an optional unit (B, KiB, MiB, GiB, KB, MB, GB)", ErrInvalidConfig, truncate(s, 40))
	}
	mult := int64(1)
	switch strings.ToLower(strings.TrimSpace(t[i:])) {
	case "", "b":
	case "kib":
		mult = 1 << 10
	case "mib":
		mult = 1 << 20
	case "gib":
		mult = 1 << 30
	case "kb":
		mult = 1e3
	case "mb":
		mult = 1e6
	case "gb":
		mult = 1e9
	default:
		return 0, fmt.Errorf("%w: size %q: unknown unit (want B, KiB, MiB, GiB, KB, MB, GB)", ErrInvalidConfig, truncate(s, 40))
	}
	if n > (1<<62)/mult {
		return 0, fmt.Errorf("%w: size %q: too large", ErrInvalidConfig, truncate(s, 40))
	}
	return n * mult, nil
}

// Duration is a time.Duration that decodes from TOML as a Go duration string ("90s",
// "1h30m") or a whole number of days ("7d").
type Duration time.Duration

// UnmarshalText parses a duration.
func (d *Duration) UnmarshalText(b []byte) error {
	s := strings.TrimSpace(string(b))
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseInt(days, 10, 32)
		if err != nil || n < 0 {
			return fmt.Errorf("%w: duration %q: want a whole number of days such as \"7d\"", ErrInvalidConfig, truncate(s, 40))
		}
		*d = Duration(time.Duration(n) * 24 * time.Hour)
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%w: duration %q: %w", ErrInvalidConfig, truncate(s, 40), err)
	}
	*d = Duration(v)
	return nil
}

// MarshalText formats d as a Go duration.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// String formats d as a Go duration.
func (d Duration) String() string { return time.Duration(d).String() }
