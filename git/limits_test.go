package git_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/core/coretest"
	"github.com/alknet/alknet/core/endpoint"
	alkgit "github.com/alknet/alknet/git"
)

// seedLocal creates ROOT/org/repo.git with one commit on main, pushed over git's
// local transport rather than through the server (so that the tight limits under
// test never meet the stock client's own pauses), and returns main's commit id.
func seedLocal(t *testing.T, n *node) string {
	t.Helper()
	dir, err := alkgit.Init(n.root, "org/repo")
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	mustGit(t, n, "", work, "init", "-q", "-b", "main", "w")
	w := filepath.Join(work, "w")
	commit(t, n, w, "first")
	mustGit(t, n, "", w, "push", "-q", dir, "main")
	return strings.TrimSpace(mustGit(t, n, "", w, "rev-parse", "HEAD"))
}

// rawOp is one operation on a raw alknet/git stream, driven byte by byte by the test.
type rawOp struct {
	st core.BiStream // nil for an SSH exec operation
	br *bufio.Reader
}

// abort ends the operation from the client's side after a fail-safe wait.
func (o *rawOp) abort() {
	if o.st != nil {
		_ = o.st.Close()
	}
}

// openOp opens a stream on conn and sends the request line payload req.
func openOp(t *testing.T, conn *core.Connection, req string) *rawOp {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), failSafe)
	defer cancel()
	st, err := conn.OpenBi(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	if _, err := fmt.Fprintf(st, "%04x%s", len(req)+4, req); err != nil {
		t.Fatal(err)
	}
	return &rawOp{st: st, br: bufio.NewReader(st)}
}

// uploadPack is the request line of an upload-pack of org/repo.
const uploadPack = "git-upload-pack /org/repo.git\x00host=example\x00"

// readPkts reads pkt-line payloads up to a flush packet (not included), failing the
// test after failSafe. A read error ends the list and is returned.
func (o *rawOp) readPkts(t *testing.T) ([]string, error) {
	t.Helper()
	type result struct {
		lines []string
		err   error
	}
	ch := make(chan result, 1)
	go func() {
		var r result
		for {
			var hdr [4]byte
			if _, r.err = io.ReadFull(o.br, hdr[:]); r.err != nil {
				break
			}
			var n int
			if _, r.err = fmt.Sscanf(string(hdr[:]), "%04x", &n); r.err != nil {
				break
			}
			if n == 0 {
				break
			}
			b := make([]byte, n-4) // a test's own reads: the server is trusted here
			if _, r.err = io.ReadFull(o.br, b); r.err != nil {
				break
			}
			r.lines = append(r.lines, string(b))
		}
		ch <- r
	}()
	select {
	case r := <-ch:
		return r.lines, r.err
	case <-time.After(failSafe):
		o.abort()
		t.Fatal("no flush packet from the server within the fail-safe time")
		return nil, nil
	}
}

// advert reads the reference advertisement and checks that it names main.
func (o *rawOp) advert(t *testing.T) []string {
	t.Helper()
	lines, err := o.readPkts(t)
	if err != nil || len(lines) == 0 || !strings.Contains(lines[0], "refs/heads/main") {
		t.Fatalf("advertisement %q, %v", lines, err)
	}
	return lines
}

// waitEnd waits until the server ends the stream (what it still sends is returned),
// failing the test after failSafe.
func (o *rawOp) waitEnd(t *testing.T) string {
	t.Helper()
	ch := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(o.br) // EOF or a reset: either ends the stream
		ch <- b
	}()
	select {
	case b := <-ch:
		return string(b)
	case <-time.After(failSafe):
		o.abort()
		t.Fatal("the server did not end the stream within the fail-safe time")
		return ""
	}
}

// finish ends a held upload-pack cleanly (a flush instead of wants) and waits for the
// server to end the stream, which it does only after the operation has released its
// slot.
func (o *rawOp) finish(t *testing.T) {
	t.Helper()
	if _, err := o.st.Write([]byte("0000")); err != nil {
		t.Fatal(err)
	}
	_ = o.st.CloseWrite()
	o.waitEnd(t)
}

func dialGit(t *testing.T, n *node, who *coretest.Identity) *core.Connection {
	t.Helper()
	return n.ep.Dial(t, alkgit.ALPN, who, endpoint.NetworkQUIC)
}

// TestIdleTimeout: a client that sends a valid request, reads the advertisement, sends
// half of its negotiation and then goes silent is cut after Limits.IdleTimeout, and
// the operation is logged as idle_timeout.
func TestIdleTimeout(t *testing.T) {
	for _, eng := range engines {
		t.Run(eng.name, func(t *testing.T) {
			t.Parallel()
			const idle = 300 * time.Millisecond
			n := startNode(t, alkgit.Config{Engine: eng.new(), Limits: alkgit.Limits{IdleTimeout: idle}})
			head := seedLocal(t, n)
			o := openOp(t, dialGit(t, n, n.reader), uploadPack)
			o.advert(t)
			// One want line and no flush: the server waits for the rest of the wants. (The
			// server reads the line after this instant; nothing follows it.)
			silent := time.Now()
			if _, err := fmt.Fprintf(o.st, "0032want %s\n", head); err != nil {
				t.Fatal(err)
			}
			o.waitEnd(t)
			if d := time.Since(silent); d < idle {
				t.Fatalf("stream ended %v after the client went silent, before the idle timeout %v", d, idle)
			}
			waitLog(t, n.logs, `msg="git operation"`, "identity=reader", "service=git-upload-pack", "repo=org/repo",
				"engine="+eng.name, "outcome=idle_timeout", "error="+quoteLog(alkgit.ErrIdleTimeout.Error()))
		})
	}
}

// quoteLog is how slog's text handler writes a string value with spaces.
func quoteLog(s string) string { return fmt.Sprintf("%q", s) }

// TestMaxDuration: a client that keeps sending (a byte every few milliseconds, never
// idle for Limits.IdleTimeout) but never finishes is cut at Limits.MaxDuration.
func TestMaxDuration(t *testing.T) {
	for _, eng := range engines {
		t.Run(eng.name, func(t *testing.T) {
			t.Parallel()
			const maxDur, idle = 1500 * time.Millisecond, time.Second
			n := startNode(t, alkgit.Config{Engine: eng.new(), Limits: alkgit.Limits{MaxDuration: maxDur, IdleTimeout: idle}})
			head := seedLocal(t, n)
			start := time.Now()
			o := openOp(t, dialGit(t, n, n.reader), uploadPack)
			o.advert(t)
			// Trickle want lines a byte at a time until the server ends the stream: the
			// ticker paces the traffic, it synchronises nothing.
			stop := make(chan struct{})
			trickled := make(chan struct{})
			go func() {
				defer close(trickled)
				line := fmt.Sprintf("0032want %s\n", head)
				tick := time.NewTicker(10 * time.Millisecond)
				defer tick.Stop()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					case <-tick.C:
					}
					if _, err := o.st.Write([]byte{line[i%len(line)]}); err != nil {
						return
					}
				}
			}()
			o.waitEnd(t)
			close(stop)
			<-trickled
			if d := time.Since(start); d < maxDur {
				t.Fatalf("stream ended after %v, before MaxDuration %v", d, maxDur)
			}
			line := waitLog(t, n.logs, `msg="git operation"`, "identity=reader", "service=git-upload-pack", "outcome=")
			if !strings.Contains(line, "outcome=timeout") || !strings.Contains(line, quoteLog(alkgit.ErrTimeout.Error())) {
				t.Fatalf("operation line %q, want outcome=timeout", line)
			}
		})
	}
}

// TestMaxOperationsPerIdentity holds the limit's worth of operations open for one
// identity: the next is refused with an ERR naming the limit, another identity is not
// affected, and once one ends the identity may start another.
func TestMaxOperationsPerIdentity(t *testing.T) {
	for _, eng := range engines {
		t.Run(eng.name, func(t *testing.T) {
			t.Parallel()
			const limit = 2
			n := startNode(t, alkgit.Config{Engine: eng.new(), Limits: alkgit.Limits{MaxOperationsPerIdentity: limit}})
			seedLocal(t, n)
			reader := dialGit(t, n, n.reader)
			var held []*rawOp
			for range limit {
				o := openOp(t, reader, uploadPack)
				o.advert(t) // the slot is taken before the advertisement is sent
				held = append(held, o)
			}
			over := openOp(t, reader, uploadPack)
			lines, err := over.readPkts(t)
			want := fmt.Sprintf("ERR %s (limit %d)\n", alkgit.ErrTooManyOperations, limit)
			if len(lines) != 1 || lines[0] != want || !errors.Is(err, io.EOF) {
				t.Fatalf("operation %d: %q, %v; want %q and the end of the stream", limit+1, lines, err, want)
			}
			waitLog(t, n.logs, `msg="git operation"`, "identity=reader", "outcome=limit")

			// Another identity has its own slots.
			other := openOp(t, dialGit(t, n, n.writer), uploadPack)
			other.advert(t)
			other.finish(t)

			held[0].finish(t)
			again := openOp(t, reader, uploadPack)
			again.advert(t)
			again.finish(t)
			held[1].finish(t)
			if got := len(n.logs.Lines(`msg="git operation"`, "outcome=limit")); got != 1 {
				t.Fatalf("%d operations refused by the limit, want 1:\n%s", got, n.logs.String())
			}
		})
	}
}

// TestMaxRequestLine: a request line of exactly Limits.MaxRequestLine bytes is
// served; one byte more is refused with an ERR naming the limit, before the line is
// read.
func TestMaxRequestLine(t *testing.T) {
	const limit = 100
	// The host parameter pads the line to the size wanted.
	line := func(size int) string {
		head, tail := "git-upload-pack /org/repo.git\x00host=", "\x00"
		return head + strings.Repeat("h", size-len(head)-len(tail)) + tail
	}
	t.Run("parser", func(t *testing.T) {
		req, err := alkgit.ReadRequest(strings.NewReader(fmtPkt([]byte(line(limit)))), limit)
		if err != nil || req.Path != "/org/repo.git" || len(req.Host) != limit-len("git-upload-pack /org/repo.git\x00host=\x00") {
			t.Fatalf("line of %d bytes: %+v, %v", limit, req, err)
		}
		// Only the length header is read: the rest of the line may not even exist.
		_, err = alkgit.ReadRequest(strings.NewReader(fmtPkt([]byte(line(limit + 1)))[:4]), limit)
		if !errors.Is(err, alkgit.ErrRequestTooLong) || !strings.Contains(err.Error(), fmt.Sprintf("(limit %d)", limit)) {
			t.Fatalf("line of %d bytes: %v, want ErrRequestTooLong naming the limit", limit+1, err)
		}
	})
	t.Run("server", func(t *testing.T) {
		n := startNode(t, alkgit.Config{Limits: alkgit.Limits{MaxRequestLine: limit}})
		seedLocal(t, n)
		conn := dialGit(t, n, n.reader)
		at := openOp(t, conn, line(limit))
		at.advert(t)
		at.finish(t)
		over := openOp(t, conn, line(limit+1))
		lines, err := over.readPkts(t)
		if len(lines) != 1 || !strings.HasPrefix(lines[0], "ERR ") || !strings.Contains(lines[0], alkgit.ErrRequestTooLong.Error()) ||
			!strings.Contains(lines[0], fmt.Sprintf("(limit %d)", limit)) || !errors.Is(err, io.EOF) {
			t.Fatalf("line of %d bytes: %q, %v; want an ERR naming the limit and the end of the stream", limit+1, lines, err)
		}
		waitLog(t, n.logs, `msg="git request refused"`, "identity=reader", "git request line too long")
	})
}

// TestIdleTimeoutExec: the same silent client over SSH exec (StartExec, whose stdin
// is the session channel and cannot be closed by the server) is cut after the idle
// time too: the wait function reports failure.
func TestIdleTimeoutExec(t *testing.T) {
	for _, eng := range engines {
		t.Run(eng.name, func(t *testing.T) {
			t.Parallel()
			const idle = 300 * time.Millisecond
			n := startNode(t, alkgit.Config{Engine: eng.new(), Limits: alkgit.Limits{IdleTimeout: idle}})
			head := seedLocal(t, n)
			inR, inW := io.Pipe()
			outR, outW := io.Pipe()
			t.Cleanup(func() { _ = inW.Close(); _ = outR.Close() })
			var stderr strings.Builder
			id := core.Identity{ID: "reader", Scopes: []string{"git:read:*"}}
			wait, err := n.srv.StartExec(context.Background(), id, "git-upload-pack '/org/repo.git'", inR, outW, &stderr)
			if err != nil {
				t.Fatal(err)
			}
			o := &rawOp{br: bufio.NewReader(outR)}
			o.advert(t)
			go func() { _, _ = io.Copy(io.Discard, outR) }()
			if _, err := fmt.Fprintf(inW, "0032want %s\n", head); err != nil {
				t.Fatal(err)
			}
			status := make(chan uint32, 1)
			go func() { status <- wait() }()
			select {
			case s := <-status:
				if s == 0 {
					t.Fatal("exit status 0 for an operation cut by the idle timeout")
				}
			case <-time.After(failSafe):
				t.Fatal("the idle operation was not cut within the fail-safe time")
			}
			_ = outW.Close()
			waitLog(t, n.logs, `msg="git operation"`, "transport=ssh", "engine="+eng.name, "outcome=idle_timeout")
		})
	}
}
