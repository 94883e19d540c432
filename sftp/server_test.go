package sftp_test

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	pkgsftp "github.com/pkg/sftp"

	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/core/coretest"
	"github.com/alknet/alknet/core/endpoint"
	alksftp "github.com/alknet/alknet/sftp"
)

// rw is the usual fixture: export "data" (writable by alice), "docs" (read-only
// export) and "secret" (nobody's); alice has sftp:write:data and sftp:read:docs.
type rw struct {
	*node
	data, docs, secret string
	alice              *coretest.Identity
}

func newRW(t *testing.T, limits alksftp.Limits) *rw {
	t.Helper()
	f := &rw{
		data:   exportDir(t, map[string]string{"hello.txt": "hello\n", "sub/deep.txt": "deep"}),
		docs:   exportDir(t, map[string]string{"readme": "read me"}),
		secret: exportDir(t, map[string]string{"key": "top secret"}),
		alice:  coretest.NewIdentity(t),
	}
	f.node = startNode(t, alksftp.Config{
		Exports: []alksftp.Export{
			{Name: "data", Dir: f.data, AtomicWrites: true},
			{Name: "docs", Dir: f.docs, ReadOnly: true},
			{Name: "secret", Dir: f.secret},
		},
		Limits: limits,
	}, f.alice.Peer("alice", "sftp:write:data", "sftp:write:docs"))
	return f
}

func TestRoundTripQUICAndTCP(t *testing.T) {
	for _, network := range []endpoint.Network{endpoint.NetworkQUIC, endpoint.NetworkTCP} {
		t.Run(network.String(), func(t *testing.T) {
			f := newRW(t, alksftp.Limits{})
			c := f.dial(t, f.alice, network)
			wd, err := c.Getwd()
			if err != nil || wd != "/" {
				t.Fatalf("getwd = %q, %v; want /", wd, err)
			}
			if rp, err := c.RealPath("."); err != nil || rp != "/" {
				t.Fatalf("realpath . = %q, %v", rp, err)
			}
			ents, err := c.ReadDir("/")
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, e := range ents {
				names = append(names, e.Name())
			}
			if !slices.Equal(names, []string{"data", "docs"}) {
				t.Fatalf("ls / = %v, want [data docs]", names)
			}
			if got := readAll(t, c, "/data/hello.txt"); got != "hello\n" {
				t.Fatalf("get = %q", got)
			}
			payload := make([]byte, 3<<20+17)
			_, _ = rand.Read(payload)
			w, err := c.Create("/data/up.bin")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := w.ReadFrom(bytes.NewReader(payload)); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if got, _ := os.ReadFile(filepath.Join(f.data, "up.bin")); !bytes.Equal(got, payload) {
				t.Fatal("uploaded bytes differ")
			}
			if got := readAll(t, c, "up.bin"[:0]+"/data/up.bin"); got != string(payload) {
				t.Fatal("downloaded bytes differ")
			}
			must(t, c.Mkdir("/data/dir"))
			must(t, c.Rename("/data/up.bin", "/data/dir/moved.bin"))
			wantStatus(t, "rename onto existing", c.Rename("/data/hello.txt", "/data/dir/moved.bin"), fxFailure)
			must(t, c.PosixRename("/data/hello.txt", "/data/dir/moved.bin"))
			must(t, c.Chmod("/data/dir/moved.bin", 0o600))
			if st, err := os.Stat(filepath.Join(f.data, "dir", "moved.bin")); err != nil || st.Mode().Perm() != 0o600 {
				t.Fatalf("chmod: %v %v", st, err)
			}
			mt := time.Unix(1_700_000_000, 0)
			must(t, c.Chtimes("/data/dir/moved.bin", mt, mt))
			if st, _ := c.Stat("/data/dir/moved.bin"); !st.ModTime().Equal(mt) || st.Size() != 6 {
				t.Fatalf("stat after chtimes: %v %d", st.ModTime(), st.Size())
			}
			must(t, c.Truncate("/data/dir/moved.bin", 2))
			wantStatus(t, "rmdir non-empty", c.RemoveDirectory("/data/dir"), fxFailure)
			wantStatus(t, "remove a directory", c.Remove("/data/dir"), fxFailure)
			must(t, c.Remove("/data/dir/moved.bin"))
			must(t, c.RemoveDirectory("/data/dir"))
			st, err := c.StatVFS("/data")
			if err != nil || st.Blocks == 0 || st.Namemax == 0 {
				t.Fatalf("statvfs = %+v, %v", st, err)
			}
			if fi, err := c.Stat("/data"); err != nil || !fi.IsDir() || fi.Name() != "data" {
				t.Fatalf("stat /data = %v, %v", fi, err)
			}
			line := waitLogClosed(t, f, c)
			for _, want := range []string{"identity=alice", "transport=" + map[endpoint.Network]string{endpoint.NetworkQUIC: "quic", endpoint.NetworkTCP: "tls"}[network], "exports=[data]", "files_read=2", "files_written=1", "outcome=ok"} {
				if !strings.Contains(line, want) {
					t.Errorf("session line lacks %q: %s", want, line)
				}
			}
			if strings.Contains(line, "hello.txt") || strings.Contains(line, f.data) {
				t.Errorf("session line logs a path: %s", line)
			}
		})
	}
}

// waitLogClosed closes c and returns the session's closing log line.
func waitLogClosed(t *testing.T, f *rw, c *pkgsftp.Client) string {
	t.Helper()
	_ = c.Close()
	return waitLog(t, f.logs, `msg="sftp session closed"`)
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestUnknownIdentityRefused(t *testing.T) {
	f := newRW(t, alksftp.Limits{})
	stranger := coretest.NewIdentity(t)
	for _, id := range []*coretest.Identity{stranger, nil} {
		_, err := alksftp.Dial(testCtx(t), f.ep.Addr, f.ep.DialOptions(id, endpoint.NetworkQUIC))
		if err == nil || !strings.Contains(err.Error(), "unauthenticated") {
			t.Fatalf("dial without a known identity: %v, want unauthenticated", err)
		}
	}
	waitLog(t, f.ep.Logs, `msg="auth failure"`, "alpn=alknet/sftp", "peer="+stranger.Fingerprint)
	if l := f.logs.Lines("sftp session opened"); len(l) > 0 {
		t.Fatalf("a session opened: %v", l)
	}
}

func TestNoScopeSeesNoExport(t *testing.T) {
	f := newRW(t, alksftp.Limits{})
	bob := coretest.NewIdentity(t)
	addPeer(t, f.ep.Store, bob.Peer("bob", "unrelated"))
	c := f.dial(t, bob, endpoint.NetworkQUIC)
	ents, err := c.ReadDir("/")
	if err != nil || len(ents) != 0 {
		t.Fatalf("ls / = %v, %v; want nothing", ents, err)
	}
	for _, p := range []string{"/data", "/data/hello.txt", "/secret/key", "/missing", "/missing/x"} {
		_, err := c.Stat(p)
		wantStatus(t, "stat "+p, err, fxNoSuchFile)
		_, err = c.Open(p)
		wantStatus(t, "open "+p, err, fxNoSuchFile)
		_, err = c.ReadDir(p)
		wantStatus(t, "ls "+p, err, fxNoSuchFile)
	}
}

func TestHiddenExportLooksMissing(t *testing.T) {
	f := newRW(t, alksftp.Limits{})
	c := f.dial(t, f.alice, endpoint.NetworkQUIC)
	_, errHidden := c.Stat("/secret")
	_, errMissing := c.Stat("/nonesuch")
	wantStatus(t, "stat hidden", errHidden, fxNoSuchFile)
	if errHidden.Error() != errMissing.Error() {
		t.Fatalf("hidden %q and missing %q differ", errHidden, errMissing)
	}
	_, err := c.Create("/secret/new")
	wantStatus(t, "create in hidden", err, fxNoSuchFile)
}

func TestReadOnlyExport(t *testing.T) {
	f := newRW(t, alksftp.Limits{})
	c := f.dial(t, f.alice, endpoint.NetworkQUIC) // alice has sftp:write:docs, docs is read_only
	if got := readAll(t, c, "/docs/readme"); got != "read me" {
		t.Fatalf("read = %q", got)
	}
	_, err := c.Create("/docs/new")
	wantStatus(t, "create", err, fxPermission)
	_, err = c.OpenFile("/docs/readme", os.O_WRONLY)
	wantStatus(t, "open for write", err, fxPermission)
	wantStatus(t, "remove", c.Remove("/docs/readme"), fxPermission)
	wantStatus(t, "mkdir", c.Mkdir("/docs/d"), fxPermission)
	wantStatus(t, "chmod", c.Chmod("/docs/readme", 0o777), fxPermission)
	wantStatus(t, "rename", c.Rename("/docs/readme", "/docs/r2"), fxPermission)
}

func TestReadScopeCannotWrite(t *testing.T) {
	f := newRW(t, alksftp.Limits{})
	reader := coretest.NewIdentity(t)
	addPeer(t, f.ep.Store, reader.Peer("reader", "sftp:read:*"))
	c := f.dial(t, reader, endpoint.NetworkQUIC)
	if got := readAll(t, c, "/secret/key"); got != "top secret" {
		t.Fatalf("read with sftp:read:* = %q", got)
	}
	_, err := c.Create("/data/x")
	wantStatus(t, "create", err, fxPermission)
	wantStatus(t, "remove", c.Remove("/data/hello.txt"), fxPermission)
	wantStatus(t, "setstat", c.Chmod("/data/hello.txt", 0o600), fxPermission)
}

func TestStartDirectoryOfSingleExport(t *testing.T) {
	f := newRW(t, alksftp.Limits{})
	one := coretest.NewIdentity(t)
	addPeer(t, f.ep.Store, one.Peer("one", "sftp:read:docs"))
	c := f.dial(t, one, endpoint.NetworkQUIC)
	if wd, err := c.Getwd(); err != nil || wd != "/docs" {
		t.Fatalf("getwd = %q, %v; want /docs", wd, err)
	}
	if got := readAll(t, c, "readme"); got != "read me" {
		t.Fatalf("relative read = %q", got)
	}
}

func TestTraversal(t *testing.T) {
	f := newRW(t, alksftp.Limits{})
	outside := filepath.Join(filepath.Dir(f.data), "outside.txt")
	must(t, os.WriteFile(outside, []byte("outside"), 0o644))
	c := f.dial(t, f.alice, endpoint.NetworkQUIC)
	for _, p := range []string{
		"../outside.txt", "/data/../outside.txt", "/data/../../etc/passwd", "/../../etc/passwd",
		"/data/sub/../../secret/key", "/etc/passwd", "/data/%2e%2e/outside.txt", "/data/hello.txt\x00x", "/data/\x00",
	} {
		_, err := c.Open(p)
		if err == nil {
			t.Fatalf("open %q succeeded", p)
		}
		if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, fs.ErrPermission) {
			t.Fatalf("open %q: %v, want no such file or permission denied", p, err)
		}
	}
	w, err := c.Create("/data/%2e%2e")
	must(t, err) // a literal name, inside
	must(t, w.Close())
	if _, err := os.Stat(filepath.Join(f.data, "%2e%2e")); err != nil {
		t.Fatalf("literal %%2e%%2e not created inside: %v", err)
	}
}

func TestSymlinkEscapes(t *testing.T) {
	f := newRW(t, alksftp.Limits{})
	outside := filepath.Join(t.TempDir(), "passwd")
	must(t, os.WriteFile(outside, []byte("root:x:0:0"), 0o644))
	must(t, os.Symlink(outside, filepath.Join(f.data, "abs-link")))
	must(t, os.Symlink("../../"+filepath.Base(filepath.Dir(outside)), filepath.Join(f.data, "rel-link")))
	must(t, os.Symlink(filepath.Dir(outside), filepath.Join(f.data, "dir-link")))
	c := f.dial(t, f.alice, endpoint.NetworkQUIC)
	for _, p := range []string{"/data/abs-link", "/data/dir-link/passwd", "/data/rel-link/passwd"} {
		r, err := c.Open(p)
		if err == nil {
			b, _ := io.ReadAll(r)
			t.Fatalf("open %s succeeded: %q", p, b)
		}
		if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, fs.ErrPermission) {
			t.Fatalf("open %s: %v", p, err)
		}
	}
	_, err := c.Open("/data/abs-link")
	wantStatus(t, "escape", err, fxPermission) // os.Root's escape error is permission denied
	_, err = c.ReadDir("/data/dir-link")
	wantStatus(t, "ls through escaping link", err, fxPermission)
	_, err = c.Create("/data/dir-link/new")
	wantStatus(t, "create through escaping link", err, fxPermission)
	if _, err := os.Stat(filepath.Join(filepath.Dir(outside), "new")); err == nil {
		t.Fatal("a file was created outside")
	}
	// Lstat and readlink describe the link itself.
	if fi, err := c.Lstat("/data/abs-link"); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		t.Fatalf("lstat = %v, %v", fi, err)
	}

	// Creating links: only relative targets that stay inside.
	wantStatus(t, "absolute target", c.Symlink("/etc/passwd", "/data/l1"), fxPermission)
	wantStatus(t, "escaping target", c.Symlink("../x", "/data/l2"), fxPermission)
	wantStatus(t, "escaping target from sub", c.Symlink("../../x", "/data/sub/l3"), fxPermission)
	must(t, c.Symlink("hello.txt", "/data/l4"))
	must(t, c.Symlink("../hello.txt", "/data/sub/l5"))
	if got := readAll(t, c, "/data/sub/l5"); got != "hello\n" {
		t.Fatalf("read through inside link = %q", got)
	}
	if tgt, err := c.ReadLink("/data/sub/l5"); err != nil || tgt != "../hello.txt" {
		t.Fatalf("readlink = %q, %v", tgt, err)
	}
	wantStatus(t, "hardlink", c.Link("/data/hello.txt", "/data/hard"), fxPermission)
}

func TestRenameAcrossExports(t *testing.T) {
	f := newRW(t, alksftp.Limits{})
	writer := coretest.NewIdentity(t)
	addPeer(t, f.ep.Store, writer.Peer("w", "sftp:write:*"))
	c := f.dial(t, writer, endpoint.NetworkQUIC)
	wantStatus(t, "rename across", c.Rename("/data/hello.txt", "/secret/stolen"), fxPermission)
	wantStatus(t, "posix-rename across", c.PosixRename("/secret/key", "/data/key"), fxPermission)
	wantDenied(t, "rename to root", c.Rename("/data/hello.txt", "/hello.txt"))
	wantDenied(t, "rename out", c.Rename("/data/hello.txt", "/data/../../x"))
	wantStatus(t, "rename the export", c.Rename("/data", "/data2"), fxPermission)
	if _, err := os.Stat(filepath.Join(f.data, "hello.txt")); err != nil {
		t.Fatal(err)
	}
}

func TestChownRefused(t *testing.T) {
	f := newRW(t, alksftp.Limits{})
	c := f.dial(t, f.alice, endpoint.NetworkQUIC)
	wantStatus(t, "chown", c.Chown("/data/hello.txt", 0, 0), fxPermission)
}

func TestAtomicUploadReaderSeesOld(t *testing.T) {
	f := newRW(t, alksftp.Limits{})
	up := f.dial(t, f.alice, endpoint.NetworkQUIC)
	rd := f.dial(t, f.alice, endpoint.NetworkTCP)
	w, err := up.Create("/data/hello.txt") // WRITE|CREAT|TRUNC
	must(t, err)
	_, err = w.Write([]byte("new content"))
	must(t, err)
	if got := readAll(t, rd, "/data/hello.txt"); got != "hello\n" {
		t.Fatalf("reader during upload sees %q, want the old content", got)
	}
	must(t, w.Chmod(0o640)) // fsetstat applies to the new content
	must(t, w.Close())
	if got := readAll(t, rd, "/data/hello.txt"); got != "new content" {
		t.Fatalf("after close: %q", got)
	}
	if st, _ := os.Stat(filepath.Join(f.data, "hello.txt")); st.Mode().Perm() != 0o640 {
		t.Fatalf("mode after fsetstat = %v", st.Mode())
	}
	assertNoTemp(t, f.data)
}

func TestAtomicUploadKilled(t *testing.T) {
	f := newRW(t, alksftp.Limits{})
	conn := f.ep.Dial(t, alksftp.ALPN, f.alice, endpoint.NetworkQUIC)
	st, err := conn.OpenBi(testCtx(t))
	must(t, err)
	c, err := pkgsftp.NewClientPipe(st, st)
	must(t, err)
	w, err := c.Create("/data/hello.txt")
	must(t, err)
	_, err = w.Write(bytes.Repeat([]byte("x"), 100_000))
	must(t, err)
	if n := countTemp(t, f.data); n != 1 {
		t.Fatalf("%d temporary files during upload, want 1", n)
	}
	conn.Close(7, "killed") // the session breaks off mid-upload
	_ = c.Close()
	waitLog(t, f.logs, `msg="sftp session closed"`)
	if got, _ := os.ReadFile(filepath.Join(f.data, "hello.txt")); string(got) != "hello\n" {
		t.Fatalf("after a broken upload the file holds %q", got)
	}
	assertNoTemp(t, f.data)
}

func TestInPlaceWriteWithoutTruncate(t *testing.T) {
	f := newRW(t, alksftp.Limits{})
	c := f.dial(t, f.alice, endpoint.NetworkQUIC)
	w, err := c.OpenFile("/data/hello.txt", os.O_WRONLY)
	must(t, err)
	_, err = w.WriteAt([]byte("J"), 0)
	must(t, err)
	if got, _ := os.ReadFile(filepath.Join(f.data, "hello.txt")); string(got) != "Jello\n" {
		t.Fatalf("in-place write not visible before close: %q", got)
	}
	must(t, w.Close())
	assertNoTemp(t, f.data)
}

func countTemp(t testing.TB, dir string) int {
	t.Helper()
	ents, err := os.ReadDir(dir)
	must(t, err)
	n := 0
	for _, e := range ents {
		if strings.Contains(e.Name(), ".alknet-upload-") {
			n++
		}
	}
	return n
}

func assertNoTemp(t testing.TB, dir string) {
	t.Helper()
	if n := countTemp(t, dir); n != 0 {
		t.Fatalf("%d temporary files left", n)
	}
}

func TestLimitHandles(t *testing.T) {
	f := newRW(t, alksftp.Limits{MaxHandles: 2})
	c := f.dial(t, f.alice, endpoint.NetworkQUIC)
	a, err := c.Open("/data/hello.txt")
	must(t, err)
	b, err := c.Open("/data/sub/deep.txt")
	must(t, err)
	_, err = c.Open("/data/hello.txt")
	wantStatus(t, "third handle", err, fxFailure)
	if !strings.Contains(err.Error(), "too many open handles") {
		t.Fatalf("third handle: %v", err)
	}
	_, err = c.ReadDir("/data")
	wantStatus(t, "opendir as third handle", err, fxFailure)
	must(t, a.Close())
	if _, err := c.ReadDir("/data"); err != nil {
		t.Fatalf("after a close: %v", err)
	}
	must(t, b.Close())
}

func TestLimitSessionsPerIdentity(t *testing.T) {
	f := newRW(t, alksftp.Limits{MaxSessionsPerIdentity: 1})
	c := f.dial(t, f.alice, endpoint.NetworkQUIC)
	_, err := alksftp.Dial(testCtx(t), f.ep.Addr, f.ep.DialOptions(f.alice, endpoint.NetworkQUIC))
	if err == nil || !strings.Contains(err.Error(), "too many concurrent sftp sessions") {
		t.Fatalf("second session: %v", err)
	}
	_ = c.Close()
	waitLog(t, f.logs, `msg="sftp session closed"`)
	f.dial(t, f.alice, endpoint.NetworkTCP)
}

// rawSession opens an alknet/sftp stream as alice and sends the init packet.
func rawSession(t *testing.T, f *rw) core.BiStream {
	t.Helper()
	conn := f.ep.Dial(t, alksftp.ALPN, f.alice, endpoint.NetworkQUIC)
	st, err := conn.OpenBi(testCtx(t))
	must(t, err)
	_, err = st.Write([]byte{0, 0, 0, 5, 1, 0, 0, 0, 3}) // SSH_FXP_INIT v3
	must(t, err)
	var hdr [4]byte
	_, err = io.ReadFull(st, hdr[:])
	must(t, err)
	_, err = io.CopyN(io.Discard, st, int64(binary.BigEndian.Uint32(hdr[:])))
	must(t, err)
	return st
}

func TestLimitPacketSize(t *testing.T) {
	for _, tc := range []struct {
		size  uint32
		alive bool
	}{{alksftp.MinPacketSize, true}, {alksftp.MinPacketSize + 1, false}} {
		f := newRW(t, alksftp.Limits{MaxPacketSize: alksftp.MinPacketSize})
		st := rawSession(t, f)
		// An SSH_FXP_STAT request padded to tc.size bytes: id, path length, path.
		pkt := make([]byte, 4+tc.size)
		binary.BigEndian.PutUint32(pkt, tc.size)
		pkt[4] = 17 // SSH_FXP_STAT
		binary.BigEndian.PutUint32(pkt[5:], 1)
		binary.BigEndian.PutUint32(pkt[9:], tc.size-9)
		for i := 13; i < len(pkt); i++ {
			pkt[i] = 'a'
		}
		_, _ = st.Write(pkt)
		var hdr [5]byte
		_, err := io.ReadFull(st, hdr[:])
		if tc.alive && err != nil {
			t.Fatalf("packet of %d bytes: session ended: %v", tc.size, err)
		}
		if !tc.alive {
			if err == nil {
				t.Fatalf("packet of %d bytes answered (type %d)", tc.size, hdr[4])
			}
			waitLog(t, f.logs, "outcome=packet_too_large")
		}
	}
}

func TestGarbageEndsOnlyThatSession(t *testing.T) {
	f := newRW(t, alksftp.Limits{})
	for _, tc := range []struct {
		name string
		pkt  []byte
		code uint32 // 0: no answer (no id)
	}{
		{"stat with a truncated path", []byte{0, 0, 0, 9, 17, 0, 0, 0, 9, 0, 0, 0, 200}, fxBadMessage},
		{"unknown type", []byte{0, 0, 0, 7, 222, 0, 0, 0, 9, 1, 2}, fxUnsupported},
		{"stat without an id", []byte{0, 0, 0, 2, 17, 0}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := rawSession(t, f)
			_, _ = st.Write(tc.pkt)
			reply, _ := io.ReadAll(st) // the session ends
			if tc.code == 0 {
				if len(reply) != 0 {
					t.Fatalf("answered %x", reply)
				}
				return
			}
			if len(reply) < 17 || reply[4] != 101 || binary.BigEndian.Uint32(reply[5:]) != 9 || binary.BigEndian.Uint32(reply[9:]) != tc.code {
				t.Fatalf("reply %x, want SSH_FXP_STATUS id 9 code %d\n%s", reply, tc.code, f.logs)
			}
		})
	}
	waitLog(t, f.logs, "outcome=bad_message")
	c := f.dial(t, f.alice, endpoint.NetworkQUIC) // the node still serves
	if got := readAll(t, c, "/data/hello.txt"); got != "hello\n" {
		t.Fatal(got)
	}
}

func TestIdleTimeout(t *testing.T) {
	f := newRW(t, alksftp.Limits{IdleTimeout: 200 * time.Millisecond})
	st := rawSession(t, f)
	_, err := io.Copy(io.Discard, st) // nothing sent: the server ends the session
	_ = err
	waitLog(t, f.logs, "outcome=idle_timeout")
}

func TestReaddirPaging(t *testing.T) {
	files := map[string]string{}
	for i := range 7 {
		files[string(rune('a'+i))] = "x"
	}
	dir := exportDir(t, files)
	alice := coretest.NewIdentity(t)
	n := startNode(t, alksftp.Config{
		Exports: []alksftp.Export{{Name: "d", Dir: dir}},
		Limits:  alksftp.Limits{ReaddirPageSize: 1},
	}, alice.Peer("alice", "sftp:read:d"))
	c := n.dial(t, alice, endpoint.NetworkQUIC)
	ents, err := c.ReadDir("/d")
	if err != nil || len(ents) != 7 {
		t.Fatalf("ls with page size 1 = %d entries, %v", len(ents), err)
	}
}

func TestStatVFSOfRootUnsupported(t *testing.T) {
	f := newRW(t, alksftp.Limits{})
	c := f.dial(t, f.alice, endpoint.NetworkQUIC)
	_, err := c.StatVFS("/")
	wantStatus(t, "statvfs /", err, fxUnsupported)
}

func TestReloadAppliesToNewSessions(t *testing.T) {
	f := newRW(t, alksftp.Limits{})
	old := f.dial(t, f.alice, endpoint.NetworkQUIC)
	must(t, f.srv.Reload(alksftp.Config{
		Exports: []alksftp.Export{{Name: "docs", Dir: f.docs}},
		Logger:  f.logs.Logger(),
	}))
	if _, err := old.Stat("/data/hello.txt"); err != nil {
		t.Fatalf("open session lost its export: %v", err)
	}
	c := f.dial(t, f.alice, endpoint.NetworkQUIC)
	_, err := c.Stat("/data")
	wantStatus(t, "stat after reload", err, fxNoSuchFile)
	if wd, _ := c.Getwd(); wd != "/docs" {
		t.Fatalf("getwd after reload = %q", wd)
	}
}

func TestServeSubsystem(t *testing.T) {
	dir := exportDir(t, map[string]string{"f": "sub"})
	srv, err := alksftp.NewServer(alksftp.Config{Exports: []alksftp.Export{{Name: "x", Dir: dir}}, Logger: coretest.NewLogBuffer().Logger()})
	must(t, err)
	cr, sw := io.Pipe()
	sr, cw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		ch := pipeRWC{sr, sw}
		err := srv.ServeSubsystem(testCtx(t), ch, core.Identity{ID: "u", Scopes: []string{"sftp:read:x"}})
		_ = ch.Close() // the caller closes the channel, as the ssh server does
		done <- err
	}()
	c, err := pkgsftp.NewClientPipe(cr, cw)
	must(t, err)
	if got := readAll(t, c, "/x/f"); got != "sub" {
		t.Fatal(got)
	}
	_, err = c.Create("/x/g")
	wantStatus(t, "write without scope", err, fxPermission)
	must(t, c.Close())
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

type pipeRWC struct {
	*io.PipeReader
	*io.PipeWriter
}

func (p pipeRWC) Close() error {
	_ = p.PipeReader.Close()
	return p.PipeWriter.Close()
}

func TestSettingsValidate(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	must(t, os.WriteFile(file, nil, 0o644))
	for _, tc := range []struct {
		s    alksftp.Settings
		want string
	}{
		{alksftp.Settings{Exports: []alksftp.ExportSettings{{Name: "a", Root: dir}}}, ""},
		{alksftp.Settings{Exports: []alksftp.ExportSettings{{Name: "", Root: dir}}}, "exports[0].name"},
		{alksftp.Settings{Exports: []alksftp.ExportSettings{{Name: "a/b", Root: dir}}}, "exports[0].name"},
		{alksftp.Settings{Exports: []alksftp.ExportSettings{{Name: "..", Root: dir}}}, "exports[0].name"},
		{alksftp.Settings{Exports: []alksftp.ExportSettings{{Name: strings.Repeat("a", 65), Root: dir}}}, "exports[0].name"},
		{alksftp.Settings{Exports: []alksftp.ExportSettings{{Name: strings.Repeat("a", 64), Root: dir}}}, ""},
		{alksftp.Settings{Exports: []alksftp.ExportSettings{{Name: "a", Root: dir}, {Name: "a", Root: dir}}}, "exports[1].name: duplicate"},
		{alksftp.Settings{Exports: []alksftp.ExportSettings{{Name: "a"}}}, "exports[0].root"},
		{alksftp.Settings{Exports: []alksftp.ExportSettings{{Name: "a", Root: filepath.Join(dir, "nope")}}}, "exports[0].root"},
		{alksftp.Settings{Exports: []alksftp.ExportSettings{{Name: "a", Root: file}}}, "exports[0].root"},
	} {
		err := tc.s.Validate()
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.want)) {
			t.Errorf("%+v: %v, want %q", tc.s, err, tc.want)
		}
	}
	off := false
	s := alksftp.Settings{Exports: []alksftp.ExportSettings{{Name: "a", Root: "rel"}, {Name: "b", Root: "/abs", AtomicWrites: &off, ReadOnly: true}}}
	s.Resolve("/etc/alknet")
	ex := s.ExportList()
	if ex[0].Dir != "/etc/alknet/rel" || !ex[0].AtomicWrites || ex[1].Dir != "/abs" || ex[1].AtomicWrites || !ex[1].ReadOnly {
		t.Fatalf("exports = %+v", ex)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []alksftp.Config{
		{Exports: []alksftp.Export{{Name: "a"}}},
		{Exports: []alksftp.Export{{Name: "a", Dir: "x"}, {Name: "a", Dir: "y"}}},
		{Limits: alksftp.Limits{MaxPacketSize: alksftp.MaxPacketSize + 1}},
		{Limits: alksftp.Limits{MaxPacketSize: alksftp.MinPacketSize - 1}},
		{Limits: alksftp.Limits{ReaddirPageSize: alksftp.MaxReaddirPage + 1}},
	} {
		if _, err := alksftp.NewServer(c); !errors.Is(err, alksftp.ErrInvalidConfig) {
			t.Errorf("%+v: %v", c, err)
		}
	}
}

// TestBusyOutlivesEndpointIdle: an authenticated session marks its connection busy, so
// the endpoint's idle timeout does not cut a quiet session; the session's own does.
func TestBusyOutlivesEndpointIdle(t *testing.T) {
	dir := exportDir(t, map[string]string{"f": "x"})
	alice := coretest.NewIdentity(t)
	logs := coretest.NewLogBuffer()
	srv, err := alksftp.NewServer(alksftp.Config{Exports: []alksftp.Export{{Name: "d", Dir: dir}}, Logger: logs.Logger()})
	must(t, err)
	reg := core.NewRegistry()
	must(t, reg.Register(srv))
	dc := core.DefaultDynamicConfig()
	dc.Auth.Peers = []core.PeerEntry{alice.Peer("alice", "sftp:read:d")}
	const idle = 100 * time.Millisecond
	dc.Limits.IdleTimeout = idle
	ep := coretest.NewServer(t, reg, coretest.WithConfig(dc))
	n := &node{srv: srv, ep: ep, logs: logs}
	for _, network := range []endpoint.Network{endpoint.NetworkQUIC, endpoint.NetworkTCP} {
		c := n.dial(t, alice, network)
		time.Sleep(5 * idle) // quiet time: what is asserted is that nothing closes
		if got := readAll(t, c, "/d/f"); got != "x" {
			t.Fatalf("%s: after a quiet time: %q", network, got)
		}
	}
	if l := ep.Logs.Lines("outcome=idle_timeout"); len(l) > 0 {
		t.Fatalf("the endpoint closed an sftp session as idle: %v", l)
	}
}
