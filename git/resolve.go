package git

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/alknet/alknet/core"
)

// DefaultMaxDepth is the default of Config.MaxDepth.
const DefaultMaxDepth = 3

// MaxNameLength bounds a repository name (without ".git").
const MaxNameLength = 255

// Scope prefixes: git:read:<glob> and git:write:<glob> (write implies read). The glob
// is path.Match's over the repository name without ".git" ("org/*" matches org/a but
// not org/a/b); a bare "*" matches every repository.
const (
	ScopeReadPrefix  = "git:read:"
	ScopeWritePrefix = "git:write:"
)

// CanRead reports whether id's scopes let it read the repository name.
func CanRead(id core.Identity, name string) bool {
	return scopeMatches(id, ScopeReadPrefix, name) || CanWrite(id, name)
}

// CanWrite reports whether id's scopes let it push to the repository name.
func CanWrite(id core.Identity, name string) bool {
	return scopeMatches(id, ScopeWritePrefix, name)
}

func scopeMatches(id core.Identity, prefix, name string) bool {
	for _, s := range id.Scopes {
		if glob, ok := strings.CutPrefix(s, prefix); ok {
			if glob == "*" {
				return true // every repository, nested ones too
			}
			if m, err := path.Match(glob, name); err == nil && m {
				return true
			}
		}
	}
	return false
}

// CleanName turns a request path ("/org/name", "org/name.git", "~/name.git") into a
// repository name ("org/name"), or reports ErrInvalidName: each element is 1 to 100
// of A-Z a-z 0-9 . _ - not starting with '.', at most maxDepth elements.
func CleanName(p string, maxDepth int) (string, error) {
	if maxDepth <= 0 {
		maxDepth = DefaultMaxDepth
	}
	if len(p) > MaxNameLength+8 {
		return "", fmt.Errorf("%w: too long", ErrInvalidName)
	}
	p = strings.TrimPrefix(p, "~/")
	p = strings.TrimPrefix(p, "/")
	p = strings.TrimSuffix(p, "/")
	p = strings.TrimSuffix(p, ".git")
	if p == "" || len(p) > MaxNameLength {
		return "", fmt.Errorf("%w: empty or too long", ErrInvalidName)
	}
	elems := strings.Split(p, "/")
	if len(elems) > maxDepth {
		return "", fmt.Errorf("%w: deeper than %d", ErrInvalidName, maxDepth)
	}
	for _, e := range elems {
		if e == "" || len(e) > 100 || e[0] == '.' || strings.HasSuffix(e, ".git") {
			return "", fmt.Errorf("%w: bad element", ErrInvalidName)
		}
		for i := 0; i < len(e); i++ {
			c := e[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
				return "", fmt.Errorf("%w: character %q", ErrInvalidName, c)
			}
		}
	}
	return p, nil
}

// resolve maps a request path onto a bare repository directory under root (already
// symlink-evaluated). Every failure is ErrNotFound, so that existence never leaks.
func resolve(root, p string, maxDepth int) (name, dir string, err error) {
	name, err = CleanName(p, maxDepth)
	if err != nil {
		return "", "", ErrNotFound
	}
	real, err := filepath.EvalSymlinks(filepath.Join(root, filepath.FromSlash(name)+".git"))
	if err != nil {
		return "", "", ErrNotFound
	}
	rel, err := filepath.Rel(root, real)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) || filepath.IsAbs(rel) {
		return "", "", ErrNotFound
	}
	if fi, err := os.Stat(filepath.Join(real, "HEAD")); err != nil || !fi.Mode().IsRegular() {
		return "", "", ErrNotFound
	}
	if fi, err := os.Stat(filepath.Join(real, "objects")); err != nil || !fi.IsDir() {
		return "", "", ErrNotFound
	}
	return name, real, nil
}
