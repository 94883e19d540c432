package git_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	gogit "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/plumbing/transport/client"

	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/core/coretest"
	"github.com/alknet/alknet/core/endpoint"
	alkgit "github.com/alknet/alknet/git"
)

// schemes numbers the URL schemes tests install, one per transport, so that each
// test's identities stay apart in go-git's process-wide table.
var schemes atomic.Int64

// install installs tr under a fresh scheme for the test's duration and returns the
// URL prefix "scheme://addr".
func install(t *testing.T, addr string, tr *alkgit.Transport) string {
	t.Helper()
	scheme := fmt.Sprintf("alknet-test%d", schemes.Add(1))
	client.InstallProtocol(scheme, tr)
	t.Cleanup(func() { client.InstallProtocol(scheme, nil) })
	return scheme + "://" + addr
}

// goGitURL installs a transport dialing n as who and returns the URL of path.
func goGitURL(t *testing.T, n *node, who *coretest.Identity, path string) string {
	t.Helper()
	tr := alkgit.NewTransport(alkgit.Dialer(n.ep.DialOptions(who, endpoint.NetworkQUIC)))
	return install(t, n.ep.Addr, tr) + path
}

func opContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), failSafe)
	t.Cleanup(cancel)
	return ctx
}

// goGitCommit writes name in r's worktree and commits it.
func goGitCommit(t *testing.T, r *gogit.Repository, name, content string) plumbing.Hash {
	t.Helper()
	wt, err := r.Worktree()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(wt.Filesystem.Root(), name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := wt.Add(name); err != nil {
		t.Fatal(err)
	}
	h, err := wt.Commit(content, &gogit.CommitOptions{Author: &object.Signature{Name: "T", Email: "t@example.com", When: time.Unix(1700000000, 0)}})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestGoGitClient(t *testing.T) {
	for _, eng := range engines {
		t.Run(eng.name, func(t *testing.T) {
			n := startNode(t, alkgit.Config{Engine: eng.new()})
			seed(t, n, n.url(t, "org/repo.git"))
			ctx := opContext(t)
			readURL := goGitURL(t, n, n.reader, "/org/repo.git")
			writeURL := goGitURL(t, n, n.writer, "/org/repo.git")

			// Clone as the reader: the file and the tag arrive.
			readDir := t.TempDir()
			rc, err := gogit.PlainCloneContext(ctx, readDir, false, &gogit.CloneOptions{URL: readURL})
			if err != nil {
				t.Fatalf("clone: %v", err)
			}
			if b, err := os.ReadFile(filepath.Join(readDir, "f.txt")); err != nil || string(b) != "first\n" {
				t.Fatalf("cloned f.txt = %q, %v", b, err)
			}
			if _, err := rc.Tag("v1"); err != nil {
				t.Fatalf("tag v1 after clone: %v", err)
			}

			// Clone as the writer, commit and push with go-git.
			wc, err := gogit.PlainCloneContext(ctx, t.TempDir(), false, &gogit.CloneOptions{URL: writeURL})
			if err != nil {
				t.Fatalf("writer clone: %v", err)
			}
			pushed := goGitCommit(t, wc, "g.txt", "pushed by go-git\n")
			var progress strings.Builder // with Progress, go-git asks for side-band
			if err := wc.PushContext(ctx, &gogit.PushOptions{Progress: &progress}); err != nil {
				t.Fatalf("push: %v", err)
			}
			if err := wc.PushContext(ctx, &gogit.PushOptions{}); !errors.Is(err, gogit.NoErrAlreadyUpToDate) {
				t.Fatalf("second push = %v, want already up to date", err)
			}
			// The stock client sees the pushed commit on the node.
			if out := mustGit(t, n, "reader", t.TempDir(), "ls-remote", n.url(t, "org/repo")); !strings.Contains(out, pushed.String()+"\trefs/heads/main") {
				t.Fatalf("ls-remote after the go-git push:\n%s", out)
			}

			// List, then fetch the new commit into the reader's clone (with haves).
			rem, err := rc.Remote("origin")
			if err != nil {
				t.Fatal(err)
			}
			refs, err := rem.ListContext(ctx, &gogit.ListOptions{})
			if err != nil {
				t.Fatalf("list: %v", err)
			}
			if !hasRef(refs, "refs/heads/main", pushed) {
				t.Fatalf("list lacks main at %s: %v", pushed, refs)
			}
			if err := rc.FetchContext(ctx, &gogit.FetchOptions{}); err != nil {
				t.Fatalf("fetch: %v", err)
			}
			ref, err := rc.Reference(plumbing.NewRemoteReferenceName("origin", "main"), true)
			if err != nil || ref.Hash() != pushed {
				t.Fatalf("origin/main after fetch = %v, %v; want %s", ref, err, pushed)
			}
			if _, err := rc.CommitObject(pushed); err != nil {
				t.Fatalf("fetched commit: %v", err)
			}
			if err := rc.FetchContext(ctx, &gogit.FetchOptions{}); !errors.Is(err, gogit.NoErrAlreadyUpToDate) {
				t.Fatalf("second fetch = %v, want already up to date", err)
			}

			// The read-only identity may not push.
			goGitCommit(t, rc, "h.txt", "refused\n")
			err = rc.PushContext(ctx, &gogit.PushOptions{RefSpecs: []config.RefSpec{"HEAD:refs/heads/main"}})
			var re *alkgit.RemoteError
			if !errors.Is(err, transport.ErrAuthorizationFailed) || !errors.Is(err, alkgit.ErrReadOnly) || !errors.As(err, &re) || !strings.Contains(err.Error(), "read-only") {
				t.Fatalf("read-only push = %v, want a RemoteError matching ErrAuthorizationFailed and ErrReadOnly", err)
			}
			t.Logf("read-only push: %v", err)

			// A push rule refuses in the report: the command's error names the rule.
			err = wc.PushContext(ctx, &gogit.PushOptions{RefSpecs: []config.RefSpec{":refs/heads/main"}})
			if err == nil || !strings.Contains(err.Error(), "no ref deletion") {
				t.Fatalf("delete push = %v, want the rule", err)
			}
			t.Logf("delete push: %v", err)

			// Missing and unreadable repositories look the same.
			for _, u := range []string{goGitURL(t, n, n.reader, "/org/missing.git"), goGitURL(t, n, n.noscope, "/org/repo.git")} {
				_, err = gogit.PlainCloneContext(ctx, t.TempDir(), false, &gogit.CloneOptions{URL: u})
				if !errors.Is(err, transport.ErrRepositoryNotFound) || !errors.Is(err, alkgit.ErrNotFound) {
					t.Fatalf("clone %s = %v, want transport.ErrRepositoryNotFound", u, err)
				}
				t.Logf("clone %s: %v", u, err)
			}

			// An empty repository: nothing to clone, but the writer can push into it.
			if _, err := alkgit.Init(n.root, "org/empty"); err != nil {
				t.Fatal(err)
			}
			_, err = gogit.PlainCloneContext(ctx, t.TempDir(), false, &gogit.CloneOptions{URL: goGitURL(t, n, n.reader, "/org/empty.git")})
			if !errors.Is(err, transport.ErrEmptyRemoteRepository) {
				t.Fatalf("clone of an empty repository = %v", err)
			}
			if _, err := wc.CreateRemote(&config.RemoteConfig{Name: "empty", URLs: []string{goGitURL(t, n, n.writer, "/org/empty.git")}}); err != nil {
				t.Fatal(err)
			}
			if err := wc.PushContext(ctx, &gogit.PushOptions{RemoteName: "empty", RefSpecs: []config.RefSpec{"refs/heads/main:refs/heads/main"}}); err != nil {
				t.Fatalf("push into an empty repository: %v", err)
			}
			if out := mustGit(t, n, "reader", t.TempDir(), "ls-remote", n.url(t, "org/empty")); !strings.Contains(out, pushed.String()+"\trefs/heads/main") {
				t.Fatalf("ls-remote of the formerly empty repository:\n%s", out)
			}

			// Over TCP+TLS (one stream per connection), shallow where the engine can.
			tcp := alkgit.NewTransport(alkgit.Dialer(n.ep.DialOptions(n.reader, endpoint.NetworkTCP)))
			tcpURL := install(t, n.ep.Addr, tcp) + "/org/repo.git"
			shallowDir := t.TempDir()
			_, err = gogit.PlainCloneContext(ctx, shallowDir, false, &gogit.CloneOptions{URL: tcpURL, Depth: 1})
			switch {
			case eng.name == "go-git" && err == nil:
				t.Fatal("shallow clone from the go-git engine succeeded; it advertises no shallow capability")
			case eng.name == "go-git":
				t.Logf("shallow clone from the go-git engine: %v", err)
				if _, err := gogit.PlainCloneContext(ctx, t.TempDir(), false, &gogit.CloneOptions{URL: tcpURL}); err != nil {
					t.Fatalf("clone over TCP+TLS: %v", err)
				}
			case err != nil:
				t.Fatalf("shallow clone over TCP+TLS: %v", err)
			default:
				if out := mustGit(t, n, "reader", shallowDir, "rev-list", "--count", "HEAD"); strings.TrimSpace(out) != "1" {
					t.Fatalf("shallow clone has %s commits", out)
				}
			}
		})
	}
}

func hasRef(refs []*plumbing.Reference, name string, h plumbing.Hash) bool {
	for _, r := range refs {
		if r.Name().String() == name && r.Hash() == h {
			return true
		}
	}
	return false
}

// TestGoGitClientUnauthenticated dials with a certificate the node does not know.
func TestGoGitClientUnauthenticated(t *testing.T) {
	n := startNode(t, alkgit.Config{Engine: alkgit.NewGoGitEngine()})
	seed(t, n, n.url(t, "org/repo"))
	_, err := gogit.PlainCloneContext(opContext(t), t.TempDir(), false, &gogit.CloneOptions{URL: goGitURL(t, n, n.stranger, "/org/repo.git")})
	if err == nil {
		t.Fatal("clone with an unknown certificate succeeded")
	}
	// The node may close the connection before the ERR line is read; either way the
	// error says why.
	if !errors.Is(err, transport.ErrAuthenticationRequired) || !strings.Contains(err.Error(), "unauthenticated") {
		t.Fatalf("clone with an unknown certificate = %v", err)
	}
	t.Logf("clone with an unknown certificate: %v", err)
}

// TestGoGitClientArguments covers what the transport refuses before dialing.
func TestGoGitClientArguments(t *testing.T) {
	dialed := false
	tr := alkgit.NewTransport(func(context.Context, string) (*core.Connection, error) {
		dialed = true
		return nil, errors.New("unreachable")
	})
	ep, err := transport.NewEndpoint("alknet://example.net/org/repo.git")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.NewUploadPackSession(ep, nil); err == nil || !strings.Contains(err.Error(), "no port") {
		t.Fatalf("URL without a port: %v", err)
	}
	ep.Port = 4433
	if _, err := tr.NewReceivePackSession(ep, &fakeAuth{}); !errors.Is(err, transport.ErrInvalidAuthMethod) {
		t.Fatalf("auth method: %v", err)
	}
	ep.Path = "/" + strings.Repeat("a", alkgit.MaxPktLine)
	if _, err := tr.NewUploadPackSession(ep, nil); !errors.Is(err, alkgit.ErrRequestTooLong) {
		t.Fatalf("long path: %v", err)
	}
	ep.Path = "/org/repo.git"
	ep.User, ep.Password = "u", "secret"
	s, err := tr.NewUploadPackSession(ep, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.AdvertisedReferencesContext(context.Background())
	if err == nil || !strings.Contains(err.Error(), "unreachable") || strings.Contains(err.Error(), "secret") {
		t.Fatalf("dial failure = %v, want the dialer's error without the password", err)
	}
	if err := s.Close(); err != nil || !dialed {
		t.Fatalf("close = %v, dialed %t", err, dialed)
	}
}

type fakeAuth struct{}

func (fakeAuth) Name() string   { return "fake" }
func (fakeAuth) String() string { return "fake" }

// stallNode is a node whose alknet/git handler advertises one reference, reads the
// client's request to its end and then never answers, so that a client is blocked
// mid-operation for as long as it lets itself be.
type stallNode struct {
	ep      *coretest.Server
	client  *coretest.Identity
	waiting chan string // the service, once the request has been read
}

func startStallNode(t *testing.T) *stallNode {
	t.Helper()
	s := &stallNode{client: coretest.NewIdentity(t), waiting: make(chan string, 4)}
	reg := core.NewRegistry()
	if err := reg.RegisterAs(alkgit.ALPN, core.HandlerFunc(s.handle)); err != nil {
		t.Fatal(err)
	}
	dc := core.DefaultDynamicConfig()
	dc.Auth.Peers = []core.PeerEntry{s.client.Peer("client", "git:write:*")}
	s.ep = coretest.NewServer(t, reg, coretest.WithConfig(dc))
	return s
}

func (s *stallNode) handle(ctx context.Context, conn *core.Connection, _ core.AuthContext) error {
	st, err := conn.AcceptBi(ctx)
	if err != nil {
		return nil
	}
	defer st.Close()
	req, err := alkgit.ReadRequest(st, 4096)
	if err != nil {
		return err
	}
	// A fetch sees one branch; a push sees an empty repository.
	first := "1111111111111111111111111111111111111111 refs/heads/main\x00ofs-delta\n"
	if req.Service == alkgit.ServiceReceivePack {
		first = "0000000000000000000000000000000000000000 capabilities^{}\x00report-status ofs-delta\n"
	}
	if _, err := fmt.Fprintf(st, "%04x%s0000", len(first)+4, first); err != nil {
		return err
	}
	if req.Service == alkgit.ServiceUploadPack {
		// Up to and including "0009done\n".
		buf := make([]byte, 0, 4096)
		one := make([]byte, 1)
		for !strings.HasSuffix(string(buf), "0009done\n") {
			n, err := st.Read(one)
			buf = append(buf, one[:n]...)
			if err != nil && !strings.HasSuffix(string(buf), "0009done\n") {
				return nil
			}
		}
	} else if _, err := io.Copy(io.Discard, st); err != nil {
		return nil
	}
	s.waiting <- req.Service
	// Silent until the client gives up: its close ends the read.
	_, _ = io.Copy(io.Discard, st)
	<-ctx.Done()
	return nil
}

// TestGoGitClientCancel cancels clone and push while the client waits for the node's
// answer: both return an error wrapping context.Canceled, and goleak (TestMain)
// checks that nothing is left running.
func TestGoGitClientCancel(t *testing.T) {
	s := startStallNode(t)
	url := install(t, s.ep.Addr, alkgit.NewTransport(alkgit.Dialer(s.ep.DialOptions(s.client, endpoint.NetworkQUIC)))) + "/org/repo.git"

	t.Run("clone", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		done := make(chan error, 1)
		go func() {
			_, err := gogit.PlainCloneContext(ctx, t.TempDir(), false, &gogit.CloneOptions{URL: url})
			done <- err
		}()
		waitService(t, s, alkgit.ServiceUploadPack)
		cancel()
		if err := waitDone(t, done); !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled clone = %v, want context.Canceled", err)
		} else {
			t.Logf("cancelled clone: %v", err)
		}
	})

	t.Run("push", func(t *testing.T) {
		r, err := gogit.PlainInit(t.TempDir(), false)
		if err != nil {
			t.Fatal(err)
		}
		goGitCommit(t, r, "a.txt", "a\n")
		if _, err := r.CreateRemote(&config.RemoteConfig{Name: "origin", URLs: []string{url}}); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		done := make(chan error, 1)
		go func() {
			done <- r.PushContext(ctx, &gogit.PushOptions{RefSpecs: []config.RefSpec{"+refs/heads/master:refs/heads/other"}})
		}()
		waitService(t, s, alkgit.ServiceReceivePack)
		cancel()
		if err := waitDone(t, done); !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled push = %v, want context.Canceled", err)
		} else {
			t.Logf("cancelled push: %v", err)
		}
	})

	t.Run("idle", func(t *testing.T) {
		tr := alkgit.NewTransport(alkgit.Dialer(s.ep.DialOptions(s.client, endpoint.NetworkQUIC)))
		tr.IdleTimeout = 20 * time.Millisecond // the node stays silent: this always expires
		u := install(t, s.ep.Addr, tr) + "/org/repo.git"
		_, err := gogit.PlainCloneContext(opContext(t), t.TempDir(), false, &gogit.CloneOptions{URL: u})
		if !errors.Is(err, alkgit.ErrIdleTimeout) {
			t.Fatalf("clone from a silent node = %v, want ErrIdleTimeout", err)
		}
		t.Logf("clone from a silent node: %v", err)
	})
}

func waitService(t *testing.T, s *stallNode, want string) {
	t.Helper()
	select {
	case got := <-s.waiting:
		if got != want {
			t.Fatalf("node got %s, want %s", got, want)
		}
	case <-time.After(failSafe):
		t.Fatal("the node never got the request")
	}
}

func waitDone(t *testing.T, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(failSafe):
		t.Fatal("the operation did not return after cancel")
		return nil
	}
}

// TestRemoteErrorSentinels maps each message the server sends before a session to
// the sentinels errors.Is finds.
func TestRemoteErrorSentinels(t *testing.T) {
	cases := []struct {
		msg  string
		want []error
	}{
		{"repository not found", []error{transport.ErrRepositoryNotFound, alkgit.ErrNotFound}},
		{"push not allowed: read-only access for org/repo", []error{transport.ErrAuthorizationFailed, alkgit.ErrReadOnly}},
		{"unauthenticated: alknet/git needs a client certificate of a known peer", []error{transport.ErrAuthenticationRequired, alkgit.ErrUnauthenticated}},
		{"too many concurrent git operations (limit 8)", []error{alkgit.ErrTooManyOperations}},
		{"pack too large", []error{alkgit.ErrPackTooLarge}},
		{"git operation idle timeout", []error{alkgit.ErrIdleTimeout}},
		{"git operation took too long", []error{alkgit.ErrTimeout}},
		{"bad request", nil},
	}
	all := []error{transport.ErrRepositoryNotFound, alkgit.ErrNotFound, transport.ErrAuthorizationFailed, alkgit.ErrReadOnly,
		transport.ErrAuthenticationRequired, alkgit.ErrUnauthenticated, alkgit.ErrTooManyOperations, alkgit.ErrPackTooLarge,
		alkgit.ErrIdleTimeout, alkgit.ErrTimeout}
	for _, c := range cases {
		err := error(&alkgit.RemoteError{URL: "alknet://h:1/r.git", Message: c.msg})
		for _, s := range all {
			want := false
			for _, w := range c.want {
				want = want || w == s
			}
			if errors.Is(err, s) != want {
				t.Errorf("%q: errors.Is(%v) = %t, want %t", c.msg, s, !want, want)
			}
		}
		if got := err.Error(); got != "alknet/git alknet://h:1/r.git: remote: "+c.msg {
			t.Errorf("Error() = %q", got)
		}
	}
}

// TestGoGitClientConcurrent clones several times at once through one Transport.
func TestGoGitClientConcurrent(t *testing.T) {
	n := startNode(t, alkgit.Config{Engine: alkgit.NewGoGitEngine()})
	seed(t, n, n.url(t, "org/repo"))
	url := goGitURL(t, n, n.reader, "/org/repo.git")
	ctx := opContext(t)
	const clones = 4
	errs := make(chan error, clones)
	for range clones {
		dir := t.TempDir()
		go func() {
			_, err := gogit.PlainCloneContext(ctx, dir, false, &gogit.CloneOptions{URL: url})
			errs <- err
		}()
	}
	for range clones {
		if err := <-errs; err != nil {
			t.Errorf("concurrent clone: %v", err)
		}
	}
}
