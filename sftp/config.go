package sftp

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"
)

// ALPN is the protocol name of raw SFTP over an alknet endpoint.
const ALPN = "alknet/sftp"

// Limits and their defaults.
const (
	// DefaultMaxHandles is the default of Limits.MaxHandles: open files and
	// directories per session.
	DefaultMaxHandles = 256
	// DefaultMaxSessionsPerIdentity is the default of Limits.MaxSessionsPerIdentity.
	DefaultMaxSessionsPerIdentity = 16
	// MaxPacketSize is the largest SFTP packet (length prefix excluded) a session
	// accepts: pkg/sftp's own maximum, 256 KiB. Limits.MaxPacketSize may lower it.
	MaxPacketSize = 256 * 1024
	// MinPacketSize is the smallest Limits.MaxPacketSize: a 32 KiB write plus its
	// header, which every SFTP client may send.
	MinPacketSize = 34000
	// DefaultIdleTimeout is the default of Limits.IdleTimeout.
	DefaultIdleTimeout = 10 * time.Minute
	// MaxReaddirPage is the most entries one SSH_FXP_READDIR answer carries
	// (pkg/sftp's batch size), and the default of Limits.ReaddirPageSize.
	MaxReaddirPage = 100
	// MaxExportNameLength bounds an export name.
	MaxExportNameLength = 64
)

// Limits bound what one session and one identity may use. A zero field means its
// default; a negative MaxHandles, MaxSessionsPerIdentity or IdleTimeout means no
// limit.
type Limits struct {
	// MaxHandles bounds the files and directories a session has open at once
	// (DefaultMaxHandles); one more open is answered SSH_FX_FAILURE.
	MaxHandles int
	// MaxSessionsPerIdentity bounds the concurrent sessions of one identity, over
	// both ways in (DefaultMaxSessionsPerIdentity); one more is refused.
	MaxSessionsPerIdentity int
	// MaxPacketSize bounds one inbound SFTP packet, from MinPacketSize to
	// MaxPacketSize (the default); a larger one ends the session.
	MaxPacketSize int
	// IdleTimeout ends a session that sends nothing for this long
	// (DefaultIdleTimeout).
	IdleTimeout time.Duration
	// ReaddirPageSize is how many entries one SSH_FXP_READDIR answer carries, from
	// 1 to MaxReaddirPage (the default).
	ReaddirPageSize int
}

// Validate reports a limit out of range; errors name the field.
func (l Limits) Validate() error {
	if l.MaxPacketSize != 0 && (l.MaxPacketSize < MinPacketSize || l.MaxPacketSize > MaxPacketSize) {
		return fmt.Errorf("%w: MaxPacketSize %d: want %d to %d", ErrInvalidConfig, l.MaxPacketSize, MinPacketSize, MaxPacketSize)
	}
	if l.ReaddirPageSize < 0 || l.ReaddirPageSize > MaxReaddirPage {
		return fmt.Errorf("%w: ReaddirPageSize %d: want 1 to %d", ErrInvalidConfig, l.ReaddirPageSize, MaxReaddirPage)
	}
	return nil
}

func (l Limits) withDefaults() Limits {
	if l.MaxHandles == 0 {
		l.MaxHandles = DefaultMaxHandles
	}
	if l.MaxSessionsPerIdentity == 0 {
		l.MaxSessionsPerIdentity = DefaultMaxSessionsPerIdentity
	}
	if l.MaxPacketSize == 0 {
		l.MaxPacketSize = MaxPacketSize
	}
	if l.IdleTimeout == 0 {
		l.IdleTimeout = DefaultIdleTimeout
	}
	if l.ReaddirPageSize == 0 {
		l.ReaddirPageSize = MaxReaddirPage
	}
	return l
}

// Export is one named tree a server serves.
type Export struct {
	// Name is the first element of its paths ("/data/..."): ValidExportName.
	Name string
	// Dir is the directory served, opened as a DirBackend for each session that
	// touches the export (so a reload or a replaced directory applies to new
	// sessions). Ignored when Backend is set.
	Dir string
	// Backend, when set, is the store served instead of Dir, shared by every
	// session; the server never closes it.
	Backend Backend
	// ReadOnly forbids writes for everyone.
	ReadOnly bool
	// AtomicWrites gives a file opened for writing with truncate, or created, its
	// new content only when its handle closes: the bytes go to a temporary file in
	// the same directory, renamed over the target at close and removed if the
	// session breaks off. An open of an existing file without truncate (a resumed
	// upload, random writes) writes in place.
	AtomicWrites bool
}

// Config configures a Server.
type Config struct {
	// Exports are the trees served; an identity sees those its scopes let it read
	// (sftp:read:<name>, sftp:write:<name>, or <name> "*").
	Exports []Export
	// Limits bound sessions; the zero value is the defaults.
	Limits Limits
	// Logger receives the session lines (nil: slog.Default()).
	Logger *slog.Logger
}

// Validate reports the first problem of c.
func (c *Config) Validate() error {
	seen := make(map[string]bool, len(c.Exports))
	for i, e := range c.Exports {
		if err := ValidExportName(e.Name); err != nil {
			return fmt.Errorf("%w: exports[%d]: %w", ErrInvalidConfig, i, err)
		}
		if seen[e.Name] {
			return fmt.Errorf("%w: exports[%d]: duplicate name %q", ErrInvalidConfig, i, e.Name)
		}
		seen[e.Name] = true
		if e.Backend == nil && e.Dir == "" {
			return fmt.Errorf("%w: exports[%d]: neither Dir nor Backend", ErrInvalidConfig, i)
		}
	}
	return c.Limits.Validate()
}

// ValidExportName reports whether name is a valid export name: 1 to 64 characters
// of A-Z, a-z, 0-9, '.', '_' and '-', and neither "." nor "..".
func ValidExportName(name string) error {
	if name == "" || len(name) > MaxExportNameLength {
		return fmt.Errorf("%w: want 1 to %d characters", ErrInvalidExportName, MaxExportNameLength)
	}
	if name == "." || name == ".." {
		return fmt.Errorf("%w: %q", ErrInvalidExportName, name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("%w: character %q (want A-Z a-z 0-9 . _ -)", ErrInvalidExportName, c)
		}
	}
	return nil
}

// Settings is the TOML form of a server's exports, the [sftp] table of a node's
// --config:
//
//	[[sftp.exports]]
//	name = "data"          # [A-Za-z0-9._-]{1,64}, unique
//	root = "srv/data"      # a directory, relative to the config file; must exist
//	read_only = false      # default false
//	atomic_writes = true   # default true
type Settings struct {
	// Exports are the [[sftp.exports]] entries, in order.
	Exports []ExportSettings `toml:"exports"`
}

// ExportSettings is one [[sftp.exports]] entry.
type ExportSettings struct {
	// Name is the export's name (Export.Name).
	Name string `toml:"name"`
	// Root is the directory served, relative to the config file (see Resolve).
	Root string `toml:"root"`
	// ReadOnly forbids writes for everyone (default false).
	ReadOnly bool `toml:"read_only"`
	// AtomicWrites is Export.AtomicWrites; absent (nil) means true.
	AtomicWrites *bool `toml:"atomic_writes"`
}

// Resolve makes relative roots relative to dir (the config file's directory).
func (s *Settings) Resolve(dir string) {
	for i := range s.Exports {
		if r := s.Exports[i].Root; r != "" && !filepath.IsAbs(r) && dir != "" {
			s.Exports[i].Root = filepath.Join(dir, r)
		}
	}
}

// Validate reports the first problem of s, naming its key relative to the table
// ("exports[1].name: ..."): a bad or duplicate name, a root that is missing or not
// a directory.
func (s *Settings) Validate() error {
	seen := make(map[string]int, len(s.Exports))
	for i, e := range s.Exports {
		if err := ValidExportName(e.Name); err != nil {
			return fmt.Errorf("exports[%d].name: %q: %w", i, clip(e.Name), err)
		}
		if j, ok := seen[e.Name]; ok {
			return fmt.Errorf("exports[%d].name: %w: %q is also exports[%d]", i, ErrDuplicateExport, e.Name, j)
		}
		seen[e.Name] = i
		if e.Root == "" {
			return fmt.Errorf("exports[%d].root: %w", i, ErrMissingRoot)
		}
		st, err := os.Stat(e.Root)
		switch {
		case errors.Is(err, os.ErrNotExist):
			return fmt.Errorf("exports[%d].root: %w: %s does not exist", i, ErrMissingRoot, clip(e.Root))
		case err != nil:
			return fmt.Errorf("exports[%d].root: %w", i, err)
		case !st.IsDir():
			return fmt.Errorf("exports[%d].root: %w: %s is not a directory", i, ErrMissingRoot, clip(e.Root))
		}
	}
	return nil
}

// ExportList returns the exports s describes.
func (s *Settings) ExportList() []Export {
	out := make([]Export, 0, len(s.Exports))
	for _, e := range s.Exports {
		atomic := e.AtomicWrites == nil || *e.AtomicWrites
		out = append(out, Export{Name: e.Name, Dir: e.Root, ReadOnly: e.ReadOnly, AtomicWrites: atomic})
	}
	return out
}

func clip(s string) string {
	const max = 200
	if len(s) > max {
		return s[:max] + "…"
	}
	return s
}
