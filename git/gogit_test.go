package git_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
	"github.com/go-git/go-git/v5/storage/memory"

	alkgit "github.com/alknet/alknet/git"
)

// gitIn runs the stock git client without a server (local repositories only) and
// returns its trimmed output.
func gitIn(t testing.TB, dir string, stdin io.Reader, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), failSafe)
	defer cancel()
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	cmd.Stdin = stdin
	cmd.Env = append(os.Environ(), "HOME="+dir, "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null", "GIT_TERMINAL_PROMPT=0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// importCommits adds count commits to ref of the repository at gitDir with git
// fast-import, the first on top of parent ("" for a root commit), committer times
// from `when` on, and returns the new tip. Each commit changes one file of a small
// tree with subdirectories.
func importCommits(t testing.TB, gitDir, ref, parent, prefix string, count int, when int64) string {
	t.Helper()
	var s strings.Builder
	for i := range count {
		msg := fmt.Sprintf("%s %d\n", prefix, i)
		content := fmt.Sprintf("%s %d\n%s\n", prefix, i, strings.Repeat(prefix, 1+i%7))
		fmt.Fprintf(&s, "commit %s\ncommitter T <t@example.com> %d +0000\ndata %d\n%s", ref, when+int64(i), len(msg), msg)
		if i == 0 && parent != "" {
			fmt.Fprintf(&s, "from %s\n", parent)
		}
		fmt.Fprintf(&s, "M 100644 inline d%d/f%d.txt\ndata %d\n%s\n", i%3, i%20, len(content), content)
	}
	gitIn(t, gitDir, strings.NewReader(s.String()), "fast-import", "--quiet")
	return gitIn(t, gitDir, nil, "rev-parse", ref)
}

// newPackNames lists the pack indexes of a repository.
func packIndexes(t testing.TB, gitDir string) map[string]bool {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(gitDir, "objects", "pack", "*.idx"))
	if err != nil {
		t.Fatal(err)
	}
	set := make(map[string]bool)
	for _, p := range m {
		set[p] = true
	}
	return set
}

// TestGoGitFetchNegotiation fetches 300 new commits into a clone that has 100 local
// commits of its own, so that the client sends haves the server lacks over several
// rounds before finding the common one; then fetches again with nothing new.
func TestGoGitFetchNegotiation(t *testing.T) {
	for _, w := range ways {
		t.Run(w.name, func(t *testing.T) {
			n := startNode(t, alkgit.Config{Engine: alkgit.NewGoGitEngine()})
			url := w.url(n, t, "org/repo")
			if _, err := alkgit.Init(n.root, "org/repo"); err != nil {
				t.Fatal(err)
			}
			base := time.Now().Unix() - 10_000
			work := filepath.Join(t.TempDir(), "w")
			gitIn(t, filepath.Dir(work), nil, "init", "-q", "-b", "main", work)
			importCommits(t, work, "refs/heads/main", "", "a", 200, base)
			mustGit(t, n, "writer", work, "push", "-q", url, "main")

			tmp := t.TempDir()
			mustGit(t, n, "reader", tmp, "clone", "-q", "--bare", url, "c.git")
			clone := filepath.Join(tmp, "c.git")
			oldTip := gitIn(t, clone, nil, "rev-parse", "main")
			importCommits(t, clone, "refs/heads/local", oldTip, "l", 100, base+3000)

			newTip := importCommits(t, work, "refs/heads/main", oldTip, "b", 300, base+1000)
			mustGit(t, n, "writer", work, "push", "-q", url, "main")

			before := packIndexes(t, clone)
			out, err := n.gitEnv(t, []string{"GIT_TRACE_PACKET=1"}, "reader", clone,
				"-c", "transfer.unpackLimit=1", "fetch", url, "+refs/heads/main:refs/remotes/origin/main")
			if err != nil {
				t.Fatalf("fetch: %v\n%s", err, tail(out))
			}
			if got := gitIn(t, clone, nil, "rev-parse", "refs/remotes/origin/main"); got != newTip {
				t.Fatalf("fetched %s, want %s", got, newTip)
			}
			gitIn(t, clone, nil, "fsck", "--strict", "--no-dangling")
			if c := gitIn(t, clone, nil, "rev-list", "--count", "refs/remotes/origin/main"); c != "500" {
				t.Fatalf("origin/main has %s commits, want 500", c)
			}
			// Several rounds: haves the server lacks, then a common commit and "ready".
			var haves, flushes int
			for _, l := range strings.Split(out, "\n") {
				switch {
				case strings.Contains(l, "> have "):
					haves++
				case strings.HasSuffix(l, "> 0000") && haves > 0:
					flushes++
				}
			}
			if haves <= 100 || flushes < 3 || !strings.Contains(out, oldTip+" common") || !strings.Contains(out, " ready") {
				t.Fatalf("%d haves, %d flushes; want more than 100 over 3 rounds, an ACK common of %s and an ACK ready:\n%s",
					haves, flushes, oldTip, tail(out))
			}
			// The pack holds the new history only.
			var fresh []string
			for p := range packIndexes(t, clone) {
				if !before[p] {
					fresh = append(fresh, p)
				}
			}
			if len(fresh) != 1 {
				t.Fatalf("%d new packs, want 1", len(fresh))
			}
			f, err := os.Open(fresh[0])
			if err != nil {
				t.Fatal(err)
			}
			idx := gitIn(t, clone, f, "show-index")
			_ = f.Close()
			if !strings.Contains(idx, newTip) || strings.Contains(idx, oldTip) {
				t.Fatalf("the fetched pack lacks the new tip or holds the old one")
			}
			if objs := strings.Count(idx, "\n") + 1; objs > 4*300 {
				t.Fatalf("the fetched pack holds %d objects for 300 commits", objs)
			}

			// Nothing new: the client asks for nothing.
			mustGit(t, n, "reader", clone, "fetch", "-q", url, "+refs/heads/main:refs/remotes/origin/main")
			if got := gitIn(t, clone, nil, "rev-parse", "refs/remotes/origin/main"); got != newTip {
				t.Fatalf("after the empty fetch: %s, want %s", got, newTip)
			}
			// A clone of the whole history, on side-band and checked.
			mustGit(t, n, "reader", tmp, "clone", "-q", url, "full")
			gitIn(t, filepath.Join(tmp, "full"), nil, "fsck", "--strict", "--no-dangling")
		})
	}
}

func tail(s string) string {
	if len(s) > 4000 {
		return "..." + s[len(s)-4000:]
	}
	return s
}

func TestGoGitCloneEmpty(t *testing.T) {
	for _, w := range ways {
		t.Run(w.name, func(t *testing.T) {
			n := startNode(t, alkgit.Config{Engine: alkgit.NewGoGitEngine()})
			if _, err := alkgit.Init(n.root, "org/empty"); err != nil {
				t.Fatal(err)
			}
			tmp := t.TempDir()
			out := mustGit(t, n, "reader", tmp, "clone", w.url(n, t, "org/empty"), "e")
			if !strings.Contains(out, "empty repository") {
				t.Fatalf("clone of an empty repository:\n%s", out)
			}
		})
	}
}

// TestGoGitHaveLimit: a negotiation over MaxHaves ends with the limit's error, in
// the log and (over the raw ALPN) at the client, and no hang.
func TestGoGitHaveLimit(t *testing.T) {
	for _, w := range ways {
		t.Run(w.name, func(t *testing.T) {
			n := startNode(t, alkgit.Config{Engine: &alkgit.GoGitEngine{MaxHaves: 40}})
			url := w.url(n, t, "org/repo")
			if _, err := alkgit.Init(n.root, "org/repo"); err != nil {
				t.Fatal(err)
			}
			base := time.Now().Unix() - 10_000
			work := filepath.Join(t.TempDir(), "w")
			gitIn(t, filepath.Dir(work), nil, "init", "-q", "-b", "main", work)
			tip := importCommits(t, work, "refs/heads/main", "", "a", 20, base)
			mustGit(t, n, "writer", work, "push", "-q", url, "main")
			tmp := t.TempDir()
			mustGit(t, n, "reader", tmp, "clone", "-q", "--bare", url, "c.git")
			clone := filepath.Join(tmp, "c.git")
			importCommits(t, clone, "refs/heads/local", tip, "l", 100, base+3000)
			importCommits(t, work, "refs/heads/main", tip, "b", 10, base+1000)
			mustGit(t, n, "writer", work, "push", "-q", url, "main")
			out, err := n.git(t, "reader", clone, "fetch", url, "+refs/heads/main:refs/remotes/origin/main")
			if err == nil {
				t.Fatalf("a fetch over the have limit succeeded:\n%s", out)
			}
			waitLog(t, n.logs, `msg="git operation"`, "too many haves (limit 40)")
		})
	}
}

// rawRepo is a bare repository with main (commits c0..c9, each on the last) and an
// annotated tag v1 on c5, made without a server.
type rawRepo struct {
	dir     string
	commits []string
	tag     string
}

func newRawRepo(t testing.TB) rawRepo {
	t.Helper()
	requireGit(t)
	root := t.TempDir()
	dir, err := alkgit.Init(root, "raw")
	if err != nil {
		t.Fatal(err)
	}
	r := rawRepo{dir: dir}
	parent := ""
	for i := range 10 {
		parent = importCommits(t, dir, "refs/heads/main", parent, fmt.Sprintf("c%d", i), 1, 1_700_000_000+int64(i))
		r.commits = append(r.commits, parent)
	}
	gitIn(t, dir, nil, "-c", "user.name=T", "-c", "user.email=t@example.com", "tag", "-a", "-m", "v1", "v1", r.commits[5])
	r.tag = gitIn(t, dir, nil, "rev-parse", "v1")
	return r
}

// pl frames payloads as pkt-lines; "" is a flush.
func pl(lines ...string) string {
	var b strings.Builder
	for _, l := range lines {
		if l == "" {
			b.WriteString("0000")
			continue
		}
		fmt.Fprintf(&b, "%04x%s", len(l)+4, l)
	}
	return b.String()
}

// rawResponse is what upload-pack answered after its advertisement.
type rawResponse struct {
	lines []string // ACK, NAK, ERR lines
	pack  []byte   // the pack, demultiplexed
	bands []string // band 2 and 3 messages
}

// serveRaw runs e on the request (given after the advertisement) and parses the
// answer.
func serveRaw(t testing.TB, e alkgit.Engine, dir, request string) (rawResponse, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), failSafe)
	defer cancel()
	var out bytes.Buffer
	err := e.Serve(ctx, alkgit.Operation{
		Service: alkgit.ServiceUploadPack, Dir: dir,
		Stdin: strings.NewReader(request), Stdout: &out, Stderr: io.Discard,
	})
	resp, perr := parseResponse(&out)
	if perr != nil {
		t.Fatalf("answer: %v (serve: %v)", perr, err)
	}
	return resp, err
}

// parseResponse skips the advertisement and reads the answer: pkt-lines, then a raw
// pack or side-band packets.
func parseResponse(out *bytes.Buffer) (rawResponse, error) {
	var resp rawResponse
	r := bufio.NewReader(out)
	next := func() (string, bool, error) {
		hdr, err := r.Peek(4)
		if err != nil {
			return "", false, err
		}
		if string(hdr) == "PACK" {
			return "", false, errRawPack
		}
		_, _ = r.Discard(4)
		n, err := strconv.ParseUint(string(hdr), 16, 16)
		if err != nil || n != 0 && n < 4 {
			return "", false, fmt.Errorf("bad pkt-line length %q", hdr)
		}
		if n == 0 {
			return "", true, nil
		}
		b := make([]byte, n-4)
		_, err = io.ReadFull(r, b)
		return string(b), false, err
	}
	for { // the advertisement
		_, flush, err := next()
		if err == io.EOF {
			return resp, nil
		}
		if err != nil {
			return resp, err
		}
		if flush {
			break
		}
	}
	for {
		l, flush, err := next()
		switch {
		case err == io.EOF:
			return resp, nil
		case errors.Is(err, errRawPack):
			resp.pack, err = io.ReadAll(r)
			return resp, err
		case err != nil:
			return resp, err
		case flush:
			return resp, nil // the end of side-band
		case l != "" && l[0] == 1:
			resp.pack = append(resp.pack, l[1:]...)
		case l != "" && (l[0] == 2 || l[0] == 3):
			resp.bands = append(resp.bands, l[1:])
		default:
			resp.lines = append(resp.lines, strings.TrimSuffix(l, "\n"))
		}
	}
}

var errRawPack = errors.New("raw pack")

// unpack stores a pack in memory and fails the test if it does not parse.
func unpack(t testing.TB, pack []byte) *memory.Storage {
	t.Helper()
	st := memory.NewStorage()
	if err := packfile.UpdateObjectStorage(st, bytes.NewReader(pack)); err != nil {
		t.Fatalf("the pack does not parse: %v", err)
	}
	return st
}

func hasObject(st *memory.Storage, h string) bool {
	return st.HasEncodedObject(plumbing.NewHash(h)) == nil
}

// TestGoGitNegotiationModes checks the answers of each multi_ack mode against
// upload-pack.c's, and that the pack leaves out what the client has.
func TestGoGitNegotiationModes(t *testing.T) {
	r := newRawRepo(t)
	tip, common := r.commits[9], r.commits[6]
	unknown := strings.Repeat("ab", 20)
	cases := []struct {
		name, caps string
		haves      []string
		noDone     bool
		want       []string
	}{
		{"single", "ofs-delta", []string{unknown, common}, false, []string{"ACK " + common}},
		{"single/none", "", []string{unknown}, false, []string{"NAK", "NAK"}},
		{"multi_ack", "multi_ack side-band", []string{unknown, common}, false,
			[]string{"ACK " + common + " continue", "NAK", "ACK " + common}},
		{"detailed", "multi_ack_detailed side-band-64k", []string{unknown, common}, false,
			[]string{"ACK " + common + " common", "NAK", "ACK " + common}},
		{"detailed/ready", "multi_ack_detailed side-band-64k ofs-delta", []string{common}, false,
			[]string{"ACK " + common + " common", "ACK " + common + " ready", "NAK", "ACK " + common}},
		{"detailed/no-done", "multi_ack_detailed no-done side-band-64k", []string{common}, true,
			[]string{"ACK " + common + " common", "ACK " + common + " ready", "NAK", "ACK " + common}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req := []string{fmt.Sprintf("want %s %s\n", tip, c.caps), ""}
			for _, h := range c.haves {
				req = append(req, "have "+h+"\n")
			}
			req = append(req, "")
			if !c.noDone {
				req = append(req, "done\n")
			}
			resp, err := serveRaw(t, alkgit.NewGoGitEngine(), r.dir, pl(req...))
			if err != nil {
				t.Fatalf("serve: %v (%q)", err, resp.lines)
			}
			if strings.Join(resp.lines, "|") != strings.Join(c.want, "|") {
				t.Fatalf("answers %q, want %q", resp.lines, c.want)
			}
			st := unpack(t, resp.pack)
			if !hasObject(st, tip) || !hasObject(st, r.commits[7]) {
				t.Fatal("the pack lacks the new commits")
			}
			if len(c.haves) > 0 && strings.Contains(strings.Join(c.haves, " "), common) && hasObject(st, common) {
				t.Fatal("the pack holds the common commit")
			}
		})
	}
}

// TestGoGitUploadLimits checks the want and have limits at their edge and the
// refusals, each answered by an ERR line and the end of the session.
func TestGoGitUploadLimits(t *testing.T) {
	r := newRawRepo(t)
	tip := r.commits[9]
	e := &alkgit.GoGitEngine{MaxWants: 2, MaxHaves: 3}
	want := "want " + tip + " multi_ack_detailed side-band-64k ofs-delta\n"
	have := func(i int) string { return "have " + r.commits[i] + "\n" }
	cases := []struct {
		name, req string
		err       error  // nil: a pack
		msg       string // in the ERR line
	}{
		{"wants at the limit", pl(want, "want "+r.tag+"\n", "", "done\n"), nil, ""},
		{"wants over the limit", pl(want, "want "+r.tag+"\n", "want "+tip+"\n", "", "done\n"), alkgit.ErrTooManyWants, "too many wants (limit 2)"},
		{"haves at the limit", pl(want, "", have(1), have(2), "", have(3), "", "done\n"), nil, ""},
		{"haves over the limit", pl(want, "", have(1), have(2), "", have(3), have(4), "", "done\n"), alkgit.ErrTooManyHaves, "too many haves (limit 3)"},
		{"not our ref", pl("want "+r.commits[3]+"\n", "", "done\n"), alkgit.ErrNotOurRef, "not our ref: " + r.commits[3]},
		{"shallow", pl(want, "deepen 1\n", "", "done\n"), alkgit.ErrUnsupported, "does not support shallow"},
		{"filter", pl(want, "filter blob:none\n", "", "done\n"), alkgit.ErrUnsupported, "does not support shallow or partial"},
		{"garbage want", pl("wont "+tip+"\n", ""), alkgit.ErrBadRequest, "expected a want line"},
		{"short oid", pl("want abc\n", ""), alkgit.ErrBadRequest, "expected a want line"},
		{"garbage have", pl(want, "", "have xyz\n", ""), alkgit.ErrBadRequest, "expected an object id"},
		{"garbage command", pl(want, "", "fetch\n"), alkgit.ErrBadRequest, "expected have or done"},
		{"no want", pl("", "done\n"), nil, ""}, // a flush first ends the session
		{"bad length", "want", alkgit.ErrBadRequest, "pkt-line length"},
		{"delim packet", pl(want) + "0001", alkgit.ErrBadRequest, "pkt-line length 1"},
		{"long line", "ffff" + strings.Repeat("x", 100), alkgit.ErrRequestTooLong, "65531 bytes (limit 65516)"},
		{"eof in wants", pl(want), io.ErrUnexpectedEOF, ""},
		{"eof in haves", pl(want, "", have(1)), io.ErrUnexpectedEOF, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, err := serveRaw(t, e, r.dir, c.req)
			if c.err == nil {
				if err != nil {
					t.Fatalf("serve: %v", err)
				}
				if c.name != "no want" {
					unpack(t, resp.pack)
				}
				return
			}
			if !errors.Is(err, c.err) {
				t.Fatalf("serve: %v, want %v", err, c.err)
			}
			if len(resp.pack) > 0 {
				t.Fatal("a pack after a refusal")
			}
			last := ""
			if len(resp.lines) > 0 {
				last = resp.lines[len(resp.lines)-1]
			}
			if !strings.HasPrefix(last, "ERR ") || !strings.Contains(last, c.msg) {
				t.Fatalf("last line %q, want ERR with %q", last, c.msg)
			}
		})
	}
}

// TestGoGitWantTag asks for an annotated tag: the pack holds the tag and its commit.
func TestGoGitWantTag(t *testing.T) {
	r := newRawRepo(t)
	resp, err := serveRaw(t, alkgit.NewGoGitEngine(), r.dir, pl("want "+r.tag+" side-band\n", "", "have "+r.commits[2]+"\n", "done\n"))
	if err != nil {
		t.Fatal(err)
	}
	st := unpack(t, resp.pack)
	if !hasObject(st, r.tag) || !hasObject(st, r.commits[5]) || hasObject(st, r.commits[2]) || hasObject(st, r.commits[6]) {
		t.Fatalf("the pack of the tag holds the wrong objects")
	}
}

// FuzzUploadRequest feeds arbitrary requests to the go-git engine's upload-pack after
// its advertisement. The 40-character placeholders TIP… and OLD… stand for the tip
// of main and an older commit. It must end (the input is finite), and a pack it
// sends must parse.
func FuzzUploadRequest(f *testing.F) {
	r := newRawRepo(f)
	tipPH, oldPH := strings.Repeat("T", 40), strings.Repeat("O", 40)
	for _, s := range []string{
		pl("want "+tipPH+" multi_ack_detailed side-band-64k ofs-delta\n", "", "have "+oldPH+"\n", "", "done\n"),
		pl("want "+tipPH+" multi_ack no-done\n", "", "have "+oldPH+"\n", "have "+strings.Repeat("0", 40)+"\n", "", "done\n"),
		pl("want "+tipPH+"\n", "", "done\n"),
		pl("want "+tipPH+" multi_ack_detailed no-done\n", "", "have "+oldPH+"\n", ""),
		pl("want "+tipPH+"\n", "shallow "+oldPH+"\n", ""),
		pl("want "+oldPH+"\n", ""),
		pl("", ""),
		"0004" + pl("want "+tipPH+"\n"),
		"ffff",
		"",
	} {
		f.Add([]byte(s))
	}
	e := &alkgit.GoGitEngine{MaxWants: 8, MaxHaves: 64}
	f.Fuzz(func(t *testing.T, req []byte) {
		s := strings.ReplaceAll(string(req), tipPH, r.commits[9])
		s = strings.ReplaceAll(s, oldPH, r.commits[4])
		resp, err := serveRaw(t, e, r.dir, s)
		if err == nil && len(resp.pack) > 0 {
			unpack(t, resp.pack)
		}
		if err != nil && len(resp.pack) > 0 && len(resp.bands) == 0 {
			t.Fatalf("a pack and an error (%v) without a band-3 message", err)
		}
	})
}

// ExampleGoGitEngine serves repositories without a git executable, with tighter
// negotiation limits than the defaults.
func ExampleGoGitEngine() {
	root, err := os.MkdirTemp("", "repos")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(root)
	srv, err := alkgit.NewServer(alkgit.Config{
		Root:   root,
		Engine: &alkgit.GoGitEngine{MaxWants: 10_000, MaxHaves: 100_000},
		Logger: slog.New(slog.DiscardHandler),
	})
	fmt.Println(srv.ALPN(), err)
	// Output: alknet/git <nil>
}
