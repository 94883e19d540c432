package git

import (
	"fmt"
	"log/slog"
	"path"
	"path/filepath"
	"time"
)

// ALPN is the protocol name of raw git over an alknet endpoint.
const ALPN = "alknet/git"

// Limits and their defaults.
const (
	// DefaultMaxDuration is the default of Limits.MaxDuration.
	DefaultMaxDuration = 10 * time.Minute
	// DefaultIdleTimeout is the default of Limits.IdleTimeout.
	DefaultIdleTimeout = 60 * time.Second
	// DefaultMaxRequestLine is the default of Limits.MaxRequestLine.
	DefaultMaxRequestLine = 4096
	// DefaultMaxPackSize is the default of Limits.MaxPackSize (1 GiB).
	DefaultMaxPackSize = 1 << 30
	// DefaultMaxOperationsPerIdentity is the default of
	// Limits.MaxOperationsPerIdentity.
	DefaultMaxOperationsPerIdentity = 8
)

// Limits bound operations. A zero field means its default; a negative
// MaxOperationsPerIdentity, MaxDuration or IdleTimeout means no limit.
type Limits struct {
	// MaxOperationsPerIdentity bounds the concurrent operations of one identity.
	MaxOperationsPerIdentity int
	// MaxDuration bounds one operation's total time.
	MaxDuration time.Duration
	// IdleTimeout ends an operation during which neither side sends anything.
	IdleTimeout time.Duration
	// MaxRequestLine bounds the alknet/git request pkt-line payload (at most
	// MaxPktLine).
	MaxRequestLine int
	// MaxPackSize bounds the bytes a client sends after the ref commands of a push.
	MaxPackSize int64
}

func (l Limits) withDefaults() Limits {
	if l.MaxOperationsPerIdentity == 0 {
		l.MaxOperationsPerIdentity = DefaultMaxOperationsPerIdentity
	}
	if l.MaxDuration == 0 {
		l.MaxDuration = DefaultMaxDuration
	}
	if l.IdleTimeout == 0 {
		l.IdleTimeout = DefaultIdleTimeout
	}
	if l.MaxRequestLine == 0 {
		l.MaxRequestLine = DefaultMaxRequestLine
	}
	if l.MaxPackSize == 0 {
		l.MaxPackSize = DefaultMaxPackSize
	}
	return l
}

// Rules relax the push rules; the zero value is the strict default (fast-forward
// only on refs/heads/*, no ref deletion, no tag overwrite).
type Rules struct {
	// AllowNonFastForward lets pushes rewrite branches.
	AllowNonFastForward bool
	// AllowDeletes lets pushes delete refs.
	AllowDeletes bool
	// AllowTagOverwrite lets pushes move existing tags.
	AllowTagOverwrite bool
}

// RepoRules are the rules of the repositories whose name matches Glob (path.Match).
type RepoRules struct {
	Glob  string
	Rules Rules
}

// Config configures a Server.
type Config struct {
	// Root is the directory of the bare repositories.
	Root string
	// MaxDepth bounds the elements of a repository name (DefaultMaxDepth).
	MaxDepth int
	// Engine serves the pack sessions (nil: NewEngine("auto")).
	Engine Engine
	// Rules are the push rules; PerRepo overrides them for matching names, the first
	// match winning.
	Rules   Rules
	PerRepo []RepoRules
	// Limits bound operations; the zero value is the defaults.
	Limits Limits
	// Logger receives the operation lines (nil: slog.Default()).
	Logger *slog.Logger
}

// Validate reports the first problem of c.
func (c *Config) Validate() error {
	if c.Root == "" {
		return fmt.Errorf("%w: no root", ErrInvalidConfig)
	}
	if c.MaxDepth < 0 || c.MaxDepth > 16 {
		return fmt.Errorf("%w: MaxDepth %d: want 1 to 16", ErrInvalidConfig, c.MaxDepth)
	}
	if c.Limits.MaxRequestLine < 0 || c.Limits.MaxRequestLine > MaxPktLine {
		return fmt.Errorf("%w: MaxRequestLine %d: want up to %d", ErrInvalidConfig, c.Limits.MaxRequestLine, MaxPktLine)
	}
	for i, r := range c.PerRepo {
		if _, err := path.Match(r.Glob, ""); err != nil {
			return fmt.Errorf("%w: PerRepo[%d]: glob %q: %w", ErrInvalidConfig, i, r.Glob, err)
		}
	}
	return nil
}

// rulesFor returns the rules of the repository name.
func (c *Config) rulesFor(name string) Rules {
	for _, r := range c.PerRepo {
		if m, _ := path.Match(r.Glob, name); m {
			return r.Rules
		}
	}
	return c.Rules
}

// Settings is the TOML form of a server, the [git] table of a node's --config:
//
//	[git]
//	root = "repos"     # relative to the config file
//	engine = "auto"    # auto | binary | go-git
//	max_depth = 3
type Settings struct {
	// Root is the repositories directory, relative to the config file (Resolve).
	Root string `toml:"root"`
	// Engine is "auto" (default), "binary" or "go-git".
	Engine string `toml:"engine"`
	// MaxDepth is Config.MaxDepth (0: DefaultMaxDepth).
	MaxDepth int `toml:"max_depth"`
}

// Resolve makes a relative root relative to dir (the config file's directory).
func (s *Settings) Resolve(dir string) {
	if s.Root != "" && !filepath.IsAbs(s.Root) && dir != "" {
		s.Root = filepath.Join(dir, s.Root)
	}
}

// Validate reports the first problem of s, naming its key.
func (s *Settings) Validate() error {
	if s.Root == "" {
		return fmt.Errorf("root: %w: missing", ErrInvalidConfig)
	}
	switch s.Engine {
	case "", "auto", "binary", "go-git":
	default:
		return fmt.Errorf("engine: %w: %q (want auto, binary or go-git)", ErrInvalidConfig, s.Engine)
	}
	if s.MaxDepth < 0 || s.MaxDepth > 16 {
		return fmt.Errorf("max_depth: %w: %d (want 1 to 16)", ErrInvalidConfig, s.MaxDepth)
	}
	return nil
}
