package git

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Init creates the empty bare repository ROOT/name.git (default branch main) and
// returns its directory. name is checked like a request path (CleanName, at most
// DefaultMaxDepth elements); a repository already there is ErrExists. Missing parent
// directories of nested names are created.
func Init(root, name string) (string, error) {
	return InitDepth(root, name, DefaultMaxDepth)
}

// InitDepth is Init for names of at most maxDepth elements.
func InitDepth(root, name string, maxDepth int) (string, error) {
	clean, err := CleanName(name, maxDepth)
	if err != nil {
		return "", err
	}
	dir := filepath.Join(root, filepath.FromSlash(clean)+".git")
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return "", fmt.Errorf("git init: %w", err)
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return "", fmt.Errorf("%w: %s", ErrExists, clean)
		}
		return "", fmt.Errorf("git init: %w", err)
	}
	for _, d := range []string{"objects/info", "objects/pack", "refs/heads", "refs/tags", "info"} {
		if err := os.MkdirAll(filepath.Join(dir, filepath.FromSlash(d)), 0o755); err != nil {
			return "", fmt.Errorf("git init: %w", err)
		}
	}
	files := map[string]string{
		"HEAD":        "ref: refs/heads/main\n",
		"config":      "[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n\tbare = true\n",
		"description": "Unnamed repository; edit this file 'description' to name the repository.\n",
	}
	for f, content := range files {
		if err := os.WriteFile(filepath.Join(dir, f), []byte(content), 0o644); err != nil {
			return "", fmt.Errorf("git init: %w", err)
		}
	}
	return dir, nil
}
