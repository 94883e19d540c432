package sftp

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	pkgsftp "github.com/pkg/sftp"

	"github.com/alknet/alknet/core"
)

// Scope prefixes: sftp:read:<export> and sftp:write:<export> (write implies read);
// <export> may be "*".
const (
	ScopeReadPrefix  = "sftp:read:"
	ScopeWritePrefix = "sftp:write:"
)

// CanRead reports whether id may read the export name.
func CanRead(id core.Identity, name string) bool {
	return id.HasScope(ScopeReadPrefix+name) || id.HasScope(ScopeReadPrefix+"*") || CanWrite(id, name)
}

// CanWrite reports whether id's scopes let it write to the export name (a read-only
// export still refuses).
func CanWrite(id core.Identity, name string) bool {
	return id.HasScope(ScopeWritePrefix+name) || id.HasScope(ScopeWritePrefix+"*")
}

// session is one SFTP session: an identity, the exports it may read (from the
// configuration when it started) and what it has touched.
type session struct {
	id      core.Identity
	limits  Limits
	exports map[string]*sessExport // readable exports by name
	names   []string               // their names, in configuration order

	handles      atomic.Int64
	filesRead    atomic.Int64
	filesWritten atomic.Int64

	mu      sync.Mutex
	touched map[string]bool
	uploads map[string]*upload // pending atomic uploads by virtual path
}

// sessExport is an export as one session sees it.
type sessExport struct {
	Export
	write bool // the identity may write, and the export is not read-only

	once    sync.Once
	backend Backend
	owned   bool // opened for this session: closed with it
	err     error
}

func newSession(cfg *Config, id core.Identity) *session {
	s := &session{
		id: id, limits: cfg.Limits,
		exports: make(map[string]*sessExport),
		touched: make(map[string]bool),
		uploads: make(map[string]*upload),
	}
	for _, e := range cfg.Exports {
		if !CanRead(id, e.Name) {
			continue
		}
		s.exports[e.Name] = &sessExport{Export: e, write: !e.ReadOnly && CanWrite(id, e.Name)}
		s.names = append(s.names, e.Name)
	}
	return s
}

// startDir is "/", or "/<name>" when the identity may read exactly one export.
func (s *session) startDir() string {
	if len(s.names) == 1 {
		return "/" + s.names[0]
	}
	return "/"
}

func (s *session) close() {
	for _, e := range s.exports {
		if e.owned && e.backend != nil {
			_ = e.backend.Close()
		}
	}
}

// backend opens e's backend for this session on first use.
func (s *session) backend(e *sessExport) (Backend, error) {
	e.once.Do(func() {
		if e.Backend != nil {
			e.backend = e.Backend
			return
		}
		b, err := OpenDirBackend(e.Dir)
		if err != nil {
			e.err = err
			return
		}
		e.backend, e.owned = b, true
	})
	if e.err != nil {
		return nil, errFailure
	}
	s.mu.Lock()
	s.touched[e.Name] = true
	s.mu.Unlock()
	return e.backend, nil
}

// target is a resolved request path: the virtual root (exp == nil), or a name inside
// an export ("." for its root).
type target struct {
	vpath string // cleaned virtual path
	exp   *sessExport
	rel   string
	b     Backend
}

// resolve maps a virtual path onto an export. An export the identity may not read
// is no such file, like a missing one; a NUL byte is permission denied.
func (s *session) resolve(p string) (*target, error) {
	if strings.IndexByte(p, 0) >= 0 {
		return nil, errPermission
	}
	vp := path.Clean("/" + p)
	if vp == "/" {
		return &target{vpath: vp}, nil
	}
	name, rel, _ := strings.Cut(vp[1:], "/")
	e := s.exports[name]
	if e == nil {
		return nil, errNoSuchFile
	}
	if rel == "" {
		rel = "."
	}
	if rel == ".." || strings.HasPrefix(rel, "../") || path.IsAbs(rel) {
		return nil, errPermission // cannot happen after Clean; kept as a guard
	}
	b, err := s.backend(e)
	if err != nil {
		return nil, err
	}
	return &target{vpath: vp, exp: e, rel: rel, b: b}, nil
}

// writable resolves p for a change: inside an export (not its root unless root is
// allowed) that the identity may write.
func (s *session) writable(p string, root bool) (*target, error) {
	t, err := s.resolve(p)
	if err != nil {
		return nil, err
	}
	if t.exp == nil || (!root && t.rel == ".") || !t.exp.write {
		return nil, errPermission
	}
	return t, nil
}

func (s *session) takeHandle() error {
	if s.limits.MaxHandles > 0 && s.handles.Add(1) > int64(s.limits.MaxHandles) {
		s.handles.Add(-1)
		return ErrTooManyHandles
	}
	if s.limits.MaxHandles <= 0 {
		s.handles.Add(1)
	}
	return nil
}

func (s *session) releaseHandle() { s.handles.Add(-1) }

// handlers are the pkg/sftp request handlers of the session.
func (s *session) handlers() pkgsftp.Handlers {
	h := &handlers{s}
	return pkgsftp.Handlers{FileGet: h, FilePut: h, FileCmd: h, FileList: h}
}

// handlers implements pkg/sftp's request-server interfaces for a session.
type handlers struct{ s *session }

var (
	_ pkgsftp.FileReader           = (*handlers)(nil)
	_ pkgsftp.OpenFileWriter       = (*handlers)(nil)
	_ pkgsftp.PosixRenameFileCmder = (*handlers)(nil)
	_ pkgsftp.StatVFSFileCmder     = (*handlers)(nil)
	_ pkgsftp.LstatFileLister      = (*handlers)(nil)
	_ pkgsftp.RealPathFileLister   = (*handlers)(nil)
	_ pkgsftp.ReadlinkFileLister   = (*handlers)(nil)
)

// Fileread opens a file for reading.
func (h *handlers) Fileread(r *pkgsftp.Request) (_ io.ReaderAt, err error) {
	defer recoverTo(&err)
	t, err := h.s.resolve(r.Filepath)
	if err != nil {
		return nil, err
	}
	if t.exp == nil {
		return nil, errFailure // the virtual root is a directory
	}
	if err := h.s.takeHandle(); err != nil {
		return nil, err
	}
	f, err := t.b.OpenFile(t.rel, os.O_RDONLY, 0)
	if err != nil {
		h.s.releaseHandle()
		return nil, statusErr(err)
	}
	h.s.filesRead.Add(1)
	return &handle{File: f, s: h.s}, nil
}

// Filewrite opens a file for writing.
func (h *handlers) Filewrite(r *pkgsftp.Request) (_ io.WriterAt, err error) {
	defer recoverTo(&err)
	return h.open(r)
}

// OpenFile opens a file for reading and writing.
func (h *handlers) OpenFile(r *pkgsftp.Request) (_ pkgsftp.WriterAtReaderAt, err error) {
	defer recoverTo(&err)
	return h.open(r)
}

// open opens a file for writing (and reading): atomically through a temporary file
// when the export asks for it and the open truncates or creates, in place otherwise.
func (h *handlers) open(r *pkgsftp.Request) (pkgsftp.WriterAtReaderAt, error) {
	t, err := h.s.writable(r.Filepath, false)
	if err != nil {
		return nil, err
	}
	pf := r.Pflags()
	flag := os.O_WRONLY
	if pf.Read {
		flag = os.O_RDWR
	}
	if pf.Creat {
		flag |= os.O_CREATE
	}
	if pf.Excl {
		flag |= os.O_EXCL
	}
	if pf.Trunc {
		flag |= os.O_TRUNC
	}
	perm := fs.FileMode(0o644)
	if p, ok := openPerm(r.Attrs); ok {
		perm = p
	}
	if err := h.s.takeHandle(); err != nil {
		return nil, err
	}
	var (
		f  pkgsftp.WriterAtReaderAt
		op error
	)
	if t.exp.AtomicWrites && (pf.Trunc || pf.Creat) {
		f, op = h.s.startUpload(t, flag, perm)
	} else {
		var bf File
		bf, op = t.b.OpenFile(t.rel, flag, perm)
		if op == nil {
			f = &handle{File: bf, s: h.s}
		}
	}
	if op != nil {
		h.s.releaseHandle()
		return nil, statusErr(op)
	}
	h.s.filesWritten.Add(1)
	return f, nil
}

// handle is an open file that gives its session handle back when it closes.
type handle struct {
	File
	s    *session
	once sync.Once
}

func (f *handle) Close() error {
	err := f.File.Close()
	f.once.Do(f.s.releaseHandle)
	return err
}

// upload is an atomic write: a temporary file renamed over the target at close,
// removed instead when the session broke off.
type upload struct {
	s       *session
	t       *target
	tmp     string
	f       File
	aborted atomic.Bool
	once    sync.Once
}

// startUpload opens the temporary file of an atomic write to t.
func (s *session) startUpload(t *target, flag int, perm fs.FileMode) (*upload, error) {
	existing, err := t.b.Lstat(t.rel)
	switch {
	case err == nil && flag&os.O_EXCL != 0:
		return nil, fs.ErrExist
	case err == nil && existing.IsDir():
		return nil, errors.New("is a directory")
	case err == nil && flag&os.O_TRUNC == 0:
		// Create without truncate of an existing file: in place, like a resume.
		f, err := t.b.OpenFile(t.rel, flag, perm)
		if err != nil {
			return nil, err
		}
		return &upload{s: s, t: t, f: f}, nil
	case err == nil:
		if existing.Mode().Type() == 0 {
			perm = existing.Mode().Perm() // keep the mode of the file replaced
		}
	case !errors.Is(err, fs.ErrNotExist):
		return nil, err
	case flag&os.O_CREATE == 0:
		return nil, err
	}
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	dir, base := path.Split(t.rel)
	tmp := dir + "." + base + ".alknet-upload-" + hex.EncodeToString(rnd[:])
	f, err := t.b.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return nil, err
	}
	u := &upload{s: s, t: t, tmp: tmp, f: f}
	s.mu.Lock()
	s.uploads[t.vpath] = u
	s.mu.Unlock()
	return u, nil
}

func (u *upload) ReadAt(p []byte, off int64) (int, error)  { return u.f.ReadAt(p, off) }
func (u *upload) WriteAt(p []byte, off int64) (int, error) { return u.f.WriteAt(p, off) }

// TransferError marks the upload as broken off: Close removes the temporary file.
func (u *upload) TransferError(error) { u.aborted.Store(true) }

// Close renames the temporary file over the target, or removes it after a
// transfer error.
func (u *upload) Close() error {
	var err error
	u.once.Do(func() {
		defer u.s.releaseHandle()
		err = u.f.Close()
		if u.tmp == "" {
			return // in place
		}
		u.s.mu.Lock()
		if u.s.uploads[u.t.vpath] == u {
			delete(u.s.uploads, u.t.vpath)
		}
		u.s.mu.Unlock()
		if err == nil && !u.aborted.Load() {
			err = u.t.b.Rename(u.tmp, u.t.rel)
		}
		if err != nil || u.aborted.Load() {
			_ = u.t.b.Remove(u.tmp)
		}
	})
	return statusErr(err)
}

// pending returns the atomic upload to vpath in progress, if any.
func (s *session) pending(vpath string) *upload {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.uploads[vpath]
}

// Filecmd runs setstat, rename, rmdir, remove, mkdir, symlink and link.
func (h *handlers) Filecmd(r *pkgsftp.Request) (err error) {
	defer recoverTo(&err)
	s := h.s
	switch r.Method {
	case "Setstat":
		return s.setstat(r)
	case "Rename":
		return s.rename(r.Filepath, r.Target, false)
	case "PosixRename":
		return s.rename(r.Filepath, r.Target, true)
	case "Rmdir", "Remove":
		t, err := s.writable(r.Filepath, false)
		if err != nil {
			return err
		}
		fi, err := t.b.Lstat(t.rel)
		if err != nil {
			return statusErr(err)
		}
		if fi.IsDir() != (r.Method == "Rmdir") {
			if fi.IsDir() {
				return errors.New("is a directory")
			}
			return errors.New("not a directory")
		}
		return statusErr(t.b.Remove(t.rel))
	case "Mkdir":
		t, err := s.writable(r.Filepath, false)
		if err != nil {
			return err
		}
		// pkg/sftp does not pass mkdir's attributes on: 0755, less the umask.
		return statusErr(t.b.Mkdir(t.rel, 0o755))
	case "Symlink":
		// pkg/sftp: Filepath is the link's target as sent, Target the new link.
		t, err := s.writable(r.Target, false)
		if err != nil {
			return err
		}
		target := r.Filepath
		if target == "" || strings.IndexByte(target, 0) >= 0 || path.IsAbs(target) {
			return errPermission
		}
		if j := path.Join(path.Dir(t.rel), target); j == ".." || strings.HasPrefix(j, "../") {
			return errPermission
		}
		return statusErr(t.b.Symlink(target, t.rel))
	case "Link":
		return errPermission
	}
	return errUnsupported
}

// PosixRename renames, replacing an existing target.
func (h *handlers) PosixRename(r *pkgsftp.Request) (err error) {
	defer recoverTo(&err)
	return h.s.rename(r.Filepath, r.Target, true)
}

// rename renames within one export; SFTP v3's rename refuses an existing target,
// posix-rename@openssh.com replaces it.
func (s *session) rename(from, to string, replace bool) error {
	a, err := s.writable(from, false)
	if err != nil {
		return err
	}
	b, err := s.writable(to, false)
	if err != nil {
		return err
	}
	if a.exp != b.exp {
		return errPermission
	}
	if !replace {
		if _, err := b.b.Lstat(b.rel); err == nil {
			return errors.New("file exists")
		}
	}
	return statusErr(a.b.Rename(a.rel, b.rel))
}

// setstat changes size, permissions and times; owners are refused.
func (s *session) setstat(r *pkgsftp.Request) error {
	t, err := s.writable(r.Filepath, true)
	if err != nil {
		return err
	}
	fl := r.AttrFlags()
	attrs := r.Attributes()
	if attrs == nil {
		return pkgsftp.ErrSSHFxBadMessage // attributes shorter than their flags say
	}
	if fl.UidGid {
		return errPermission
	}
	name := t.rel
	if u := s.pending(t.vpath); u != nil {
		name = u.tmp // applies to the new content, renamed at close
	}
	if fl.Size {
		if err := t.b.Truncate(name, int64(attrs.Size)); err != nil {
			return statusErr(err)
		}
	}
	if fl.Permissions {
		if err := t.b.Chmod(name, attrs.FileMode().Perm()); err != nil {
			return statusErr(err)
		}
	}
	if fl.Acmodtime {
		if err := t.b.Chtimes(name, time.Unix(int64(attrs.Atime), 0), time.Unix(int64(attrs.Mtime), 0)); err != nil {
			return statusErr(err)
		}
	}
	return nil
}

// StatVFS reports the figures of the export's filesystem.
func (h *handlers) StatVFS(r *pkgsftp.Request) (_ *pkgsftp.StatVFS, err error) {
	defer recoverTo(&err)
	t, err := h.s.resolve(r.Filepath)
	if err != nil {
		return nil, err
	}
	if t.exp == nil {
		return nil, errUnsupported // the virtual root has no filesystem
	}
	st, err := t.b.StatFS()
	if err != nil {
		return nil, statusErr(err)
	}
	return &pkgsftp.StatVFS{
		Bsize: st.BlockSize, Frsize: st.FragmentSize, Blocks: st.Blocks, Bfree: st.BlocksFree,
		Bavail: st.BlocksAvailable, Files: st.Files, Ffree: st.FilesFree, Favail: st.FilesAvailable,
		Fsid: st.ID, Flag: st.Flags, Namemax: st.NameMax,
	}, nil
}

// Filelist lists a directory (opendir) or describes one name (stat).
func (h *handlers) Filelist(r *pkgsftp.Request) (_ pkgsftp.ListerAt, err error) {
	defer recoverTo(&err)
	switch r.Method {
	case "List":
		return h.s.list(r.Filepath)
	case "Stat":
		return h.s.stat(r.Filepath, false)
	}
	return nil, errUnsupported
}

// Lstat describes a name without following a final symbolic link.
func (h *handlers) Lstat(r *pkgsftp.Request) (_ pkgsftp.ListerAt, err error) {
	defer recoverTo(&err)
	return h.s.stat(r.Filepath, true)
}

// RealPath makes p absolute against the start directory and cleans it.
func (h *handlers) RealPath(p string) (_ string, err error) {
	defer recoverTo(&err)
	if strings.IndexByte(p, 0) >= 0 {
		return "", errPermission
	}
	if !path.IsAbs(p) {
		p = path.Join(h.s.startDir(), p)
	}
	return path.Clean(p), nil
}

// Readlink returns a symbolic link's target.
func (h *handlers) Readlink(p string) (_ string, err error) {
	defer recoverTo(&err)
	t, err := h.s.resolve(p)
	if err != nil {
		return "", err
	}
	if t.exp == nil {
		return "", errors.New("not a symbolic link")
	}
	target, err := t.b.Readlink(t.rel)
	return target, statusErr(err)
}

func (s *session) stat(p string, lstat bool) (pkgsftp.ListerAt, error) {
	t, err := s.resolve(p)
	if err != nil {
		return nil, err
	}
	if t.exp == nil {
		return listOf{virtualDir("/")}, nil
	}
	var fi fs.FileInfo
	if lstat && t.rel != "." {
		fi, err = t.b.Lstat(t.rel)
	} else {
		fi, err = t.b.Stat(t.rel)
	}
	if err != nil {
		return nil, statusErr(err)
	}
	if t.rel == "." {
		fi = renamed{fi, t.exp.Name}
	}
	return listOf{fi}, nil
}

// list opens a directory listing, read in pages.
func (s *session) list(p string) (pkgsftp.ListerAt, error) {
	t, err := s.resolve(p)
	if err != nil {
		return nil, err
	}
	if err := s.takeHandle(); err != nil {
		return nil, err
	}
	if t.exp == nil {
		infos := make([]fs.FileInfo, 0, len(s.names))
		for _, n := range s.names {
			infos = append(infos, virtualDir(n))
		}
		return &dirLister{s: s, page: s.limits.ReaddirPageSize, buf: infos, eof: true}, nil
	}
	fi, err := t.b.Stat(t.rel)
	if err == nil && !fi.IsDir() {
		err = errors.New("not a directory")
	}
	var d Dir
	if err == nil {
		d, err = t.b.OpenDir(t.rel)
	}
	if err != nil {
		s.releaseHandle()
		return nil, statusErr(err)
	}
	return &dirLister{s: s, page: s.limits.ReaddirPageSize, d: d}, nil
}

// dirLister pages through a directory for SSH_FXP_READDIR, never reading more than
// one page ahead.
type dirLister struct {
	s    *session
	page int
	d    Dir
	buf  []fs.FileInfo
	eof  bool
	next int64
	once sync.Once
}

func (l *dirLister) ListAt(ls []os.FileInfo, off int64) (int, error) {
	if off != l.next {
		return 0, errors.New("directory read out of order")
	}
	want := min(len(ls), l.page)
	if len(l.buf) < want && !l.eof && l.d != nil {
		more, err := l.d.ReadDir(want - len(l.buf))
		l.buf = append(l.buf, more...)
		if errors.Is(err, io.EOF) || (err == nil && len(more) == 0) {
			l.eof = true
		} else if err != nil {
			return 0, statusErr(err)
		}
	}
	n := copy(ls[:want], l.buf)
	l.buf = l.buf[n:]
	l.next += int64(n)
	if n == 0 {
		return 0, io.EOF
	}
	return n, nil
}

func (l *dirLister) Close() error {
	var err error
	l.once.Do(func() {
		if l.d != nil {
			err = l.d.Close()
		}
		l.s.releaseHandle()
	})
	return err
}

// listOf is a ListerAt over fixed entries.
type listOf []fs.FileInfo

func (l listOf) ListAt(ls []os.FileInfo, off int64) (int, error) {
	if off >= int64(len(l)) {
		return 0, io.EOF
	}
	n := copy(ls, l[off:])
	if n < len(ls) {
		return n, io.EOF
	}
	return n, nil
}

// virtualDir describes "/" and the export roots in its listing.
type virtualDir string

func (v virtualDir) Name() string       { return string(v) }
func (v virtualDir) Size() int64        { return 0 }
func (v virtualDir) Mode() fs.FileMode  { return fs.ModeDir | 0o555 }
func (v virtualDir) ModTime() time.Time { return time.Unix(0, 0) }
func (v virtualDir) IsDir() bool        { return true }
func (v virtualDir) Sys() any           { return nil }

// renamed is a FileInfo under another name (an export root under the export's).
type renamed struct {
	fs.FileInfo
	name string
}

func (r renamed) Name() string { return r.name }

// recoverTo turns a panic in a request handler (which pkg/sftp runs in goroutines
// of its own, beyond the endpoint's recovery) into a failure of that request.
func recoverTo(err *error) {
	if v := recover(); v != nil {
		*err = errFailure
	}
}

// openPerm reads the permissions from an SSH_FXP_OPEN's attributes (flags, then
// size, uid and gid, permissions, each only when its flag is set), bounds-checked.
func openPerm(b []byte) (fs.FileMode, bool) {
	if len(b) < 4 {
		return 0, false
	}
	flags := binary.BigEndian.Uint32(b)
	b = b[4:]
	if flags&0x1 != 0 { // size
		if len(b) < 8 {
			return 0, false
		}
		b = b[8:]
	}
	if flags&0x2 != 0 { // uid, gid
		if len(b) < 8 {
			return 0, false
		}
		b = b[8:]
	}
	if flags&0x4 == 0 || len(b) < 4 { // permissions
		return 0, false
	}
	return fs.FileMode(binary.BigEndian.Uint32(b)).Perm(), true
}
