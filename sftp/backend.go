package sftp

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"
)

// Backend is the store behind one export. Names are slash-separated and relative to
// the export's root, already cleaned by the server: "." is the root, and no name is
// absolute, contains "..", is empty or holds a NUL byte. A Backend must refuse to
// reach outside its root on its own (the server checks names, but a symlink is only
// seen by the store), and must be safe for concurrent use: a session runs several
// requests at once.
//
// Errors that wrap fs.ErrNotExist become SSH_FX_NO_SUCH_FILE, fs.ErrPermission and
// ErrEscapes SSH_FX_PERMISSION_DENIED; other errors SSH_FX_FAILURE with their text,
// which therefore must not carry host paths.
type Backend interface {
	// OpenFile opens a file with os.OpenFile's flags (O_RDONLY, O_WRONLY, O_RDWR,
	// O_CREATE, O_EXCL, O_TRUNC; never O_APPEND) and, when it creates one, perm.
	OpenFile(name string, flag int, perm fs.FileMode) (File, error)
	// OpenDir opens a directory for listing.
	OpenDir(name string) (Dir, error)
	// Stat describes name, following symbolic links.
	Stat(name string) (fs.FileInfo, error)
	// Lstat describes name without following a final symbolic link.
	Lstat(name string) (fs.FileInfo, error)
	// Mkdir creates a directory.
	Mkdir(name string, perm fs.FileMode) error
	// Remove removes a file, a symbolic link or an empty directory.
	Remove(name string) error
	// Rename renames oldname to newname, replacing newname if it is a file.
	Rename(oldname, newname string) error
	// Symlink creates name as a symbolic link to target (a relative path the server
	// checked stays inside the root).
	Symlink(target, name string) error
	// Readlink returns the target of the symbolic link name.
	Readlink(name string) (string, error)
	// Chmod changes the permission bits of name.
	Chmod(name string, mode fs.FileMode) error
	// Chtimes changes the access and modification times of name.
	Chtimes(name string, atime, mtime time.Time) error
	// Truncate changes the size of the file name.
	Truncate(name string, size int64) error
	// StatFS reports the figures of the filesystem holding the root; an error
	// wrapping ErrUnsupported makes statvfs@openssh.com answer SSH_FX_OP_UNSUPPORTED.
	StatFS() (FSStat, error)
	// Close releases the backend.
	Close() error
}

// File is an open file of a Backend: reads and writes at offsets.
type File interface {
	io.ReaderAt
	io.WriterAt
	io.Closer
}

// Dir is an open directory of a Backend, read in pages.
type Dir interface {
	// ReadDir returns the next at most n entries (n > 0) as os.Lstat would describe
	// them, and io.EOF after the last one.
	ReadDir(n int) ([]fs.FileInfo, error)
	// Close releases the directory.
	Close() error
}

// FSStat is the figures statvfs@openssh.com reports for an export's filesystem.
type FSStat struct {
	BlockSize       uint64 // preferred block size
	FragmentSize    uint64 // fundamental block size, the unit of the block counts
	Blocks          uint64 // total blocks
	BlocksFree      uint64 // free blocks
	BlocksAvailable uint64 // free blocks for unprivileged users
	Files           uint64 // total inodes
	FilesFree       uint64 // free inodes
	FilesAvailable  uint64 // free inodes for unprivileged users
	ID              uint64 // filesystem id
	Flags           uint64 // ST_RDONLY (1), ST_NOSUID (2)
	NameMax         uint64 // longest file name
}

// ErrUnsupported is wrapped by Backend errors for operations the store cannot do.
var ErrUnsupported = errors.New("operation not supported")

// ErrEscapes reports a name that would leave an export's root (through "..", an
// absolute path or a symbolic link pointing outside). Clients see
// SSH_FX_PERMISSION_DENIED.
var ErrEscapes = errors.New("path escapes the export")

// DirBackend is the Backend of a directory on the local filesystem, on an *os.Root:
// the kernel-assisted resolution of os.Root refuses ".." and symbolic links that
// leave the directory, at every step of every name.
type DirBackend struct {
	root *os.Root
}

// OpenDirBackend opens the directory dir as a Backend.
func OpenDirBackend(dir string) (*DirBackend, error) {
	r, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("sftp: open export root: %w", err)
	}
	return &DirBackend{root: r}, nil
}

// OpenFile implements Backend.
func (b *DirBackend) OpenFile(name string, flag int, perm fs.FileMode) (File, error) {
	f, err := b.root.OpenFile(name, flag&^os.O_APPEND, perm)
	if err != nil {
		return nil, rootErr(err)
	}
	return f, nil
}

// OpenDir implements Backend.
func (b *DirBackend) OpenDir(name string) (Dir, error) {
	f, err := b.root.Open(name)
	if err != nil {
		return nil, rootErr(err)
	}
	return &osDir{f: f}, nil
}

// Stat implements Backend.
func (b *DirBackend) Stat(name string) (fs.FileInfo, error) {
	fi, err := b.root.Stat(name)
	return fi, rootErr(err)
}

// Lstat implements Backend.
func (b *DirBackend) Lstat(name string) (fs.FileInfo, error) {
	fi, err := b.root.Lstat(name)
	return fi, rootErr(err)
}

// Mkdir implements Backend.
func (b *DirBackend) Mkdir(name string, perm fs.FileMode) error {
	return rootErr(b.root.Mkdir(name, perm))
}

// Remove implements Backend.
func (b *DirBackend) Remove(name string) error { return rootErr(b.root.Remove(name)) }

// Rename implements Backend.
func (b *DirBackend) Rename(oldname, newname string) error {
	return rootErr(b.root.Rename(oldname, newname))
}

// Symlink implements Backend.
func (b *DirBackend) Symlink(target, name string) error {
	return rootErr(b.root.Symlink(target, name))
}

// Readlink implements Backend.
func (b *DirBackend) Readlink(name string) (string, error) {
	s, err := b.root.Readlink(name)
	return s, rootErr(err)
}

// Chmod implements Backend.
func (b *DirBackend) Chmod(name string, mode fs.FileMode) error {
	return rootErr(b.root.Chmod(name, mode))
}

// Chtimes implements Backend.
func (b *DirBackend) Chtimes(name string, atime, mtime time.Time) error {
	return rootErr(b.root.Chtimes(name, atime, mtime))
}

// Truncate implements Backend.
func (b *DirBackend) Truncate(name string, size int64) error {
	f, err := b.root.OpenFile(name, os.O_WRONLY, 0)
	if err != nil {
		return rootErr(err)
	}
	err = f.Truncate(size)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return rootErr(err)
}

// StatFS implements Backend with the figures of the root's filesystem.
func (b *DirBackend) StatFS() (FSStat, error) {
	f, err := b.root.Open(".")
	if err != nil {
		return FSStat{}, rootErr(err)
	}
	defer f.Close()
	return statFS(f)
}

// Close implements Backend.
func (b *DirBackend) Close() error { return b.root.Close() }

// osDir reads a directory of a DirBackend in pages.
type osDir struct{ f *os.File }

func (d *osDir) ReadDir(n int) ([]fs.FileInfo, error) {
	ents, err := d.f.ReadDir(n)
	out := make([]fs.FileInfo, 0, len(ents))
	for _, e := range ents {
		fi, ierr := e.Info()
		if ierr != nil {
			continue // removed meanwhile
		}
		out = append(out, fi)
	}
	if len(out) == 0 && err == nil && len(ents) > 0 {
		return d.ReadDir(n)
	}
	return out, err
}

func (d *osDir) Close() error { return d.f.Close() }

// rootErr marks os.Root's "path escapes from parent" error (a plain error without
// a sentinel) with ErrEscapes.
func rootErr(err error) error {
	if err == nil || errors.Is(err, ErrEscapes) {
		return err
	}
	if isEscape(err) {
		return fmt.Errorf("%w: %w", ErrEscapes, err)
	}
	return err
}
