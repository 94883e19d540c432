package creds

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// maxConfigFile bounds the --toml file read (the node refuses a --config file larger
// than 1 MiB anyway).
const maxConfigFile = 1 << 20

// newFileMode is the mode of a --toml file that did not exist.
const newFileMode fs.FileMode = 0o600

// AppendConfig appends block to the TOML file at path, creating it (mode 0600) when it
// does not exist. The new contents are checked with check (the node's CLI.CheckConfig:
// the parsing and validation serve runs) before anything is written; an invalid result
// is refused and the file left as it was. The file is replaced atomically: the new
// contents go to a temporary file in the same directory with the old file's mode,
// which is synced and renamed over it. A symbolic link is followed, so the file it
// points to is replaced and the link stays. Two writers racing on one file may lose
// one's block; the file is never left half-written.
func AppendConfig(path string, block []byte, check func(data []byte, path string) error) error {
	target, err := filepath.EvalSymlinks(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		target = path
	case err != nil:
		return fmt.Errorf("--toml %s: %w", path, err)
	}
	old, mode, err := readExisting(target)
	if err != nil {
		return fmt.Errorf("--toml %s: %w", path, err)
	}
	data := bytes.Clone(old)
	if len(data) > 0 {
		if data[len(data)-1] != '\n' {
			data = append(data, '\n')
		}
		data = append(data, '\n')
	}
	data = append(data, block...)
	// Checked under the name the user gave, so the error names the file they know.
	if err := check(data, path); err != nil {
		return fmt.Errorf("--toml %s: not changed, the new block would make it invalid: %w", path, err)
	}
	if err := replaceFile(target, data, mode); err != nil {
		return fmt.Errorf("--toml %s: %w", path, err)
	}
	return nil
}

// readExisting returns the contents and mode of the regular file at path, or nothing
// and newFileMode when it does not exist.
func readExisting(path string) ([]byte, fs.FileMode, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, newFileMode, nil
	}
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, 0, err
	}
	if !st.Mode().IsRegular() {
		return nil, 0, errors.New("not a regular file")
	}
	if st.Size() > maxConfigFile {
		return nil, 0, fmt.Errorf("larger than the limit of %d bytes (1 MiB)", maxConfigFile)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxConfigFile+1))
	if err != nil {
		return nil, 0, err
	}
	if len(data) > maxConfigFile {
		return nil, 0, fmt.Errorf("larger than the limit of %d bytes (1 MiB)", maxConfigFile)
	}
	return data, st.Mode().Perm(), nil
}

// replaceFile writes data to a temporary file beside path with mode, syncs it and
// renames it over path.
func replaceFile(path string, data []byte, mode fs.FileMode) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".*.tmp")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(mode); err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	// The rename is durable once the directory is synced; a failure here changes
	// nothing the reader sees.
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}
