package git

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/alknet/alknet/core"
)

// Server serves git repositories on the raw ALPN alknet/git (Handle) and over SSH
// exec (StartExec). It is safe for concurrent use.
type Server struct {
	cfg  atomic.Pointer[Config]
	root string // cfg.Root with symbolic links evaluated

	mu  sync.Mutex
	ops map[string]int // running operations per identity id

	stats gitCounters
}

// NewServer returns a server for cfg. With no Engine it uses NewEngine("auto"). The
// chosen engine is logged.
func NewServer(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := cfg
	c.PerRepo = append([]RepoRules(nil), cfg.PerRepo...)
	c.Limits = cfg.Limits.withDefaults()
	if c.MaxDepth == 0 {
		c.MaxDepth = DefaultMaxDepth
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Engine == nil {
		e, err := NewEngine("auto")
		if err != nil {
			return nil, err
		}
		c.Engine = e
	}
	root, err := filepath.Abs(c.Root)
	if err == nil {
		root, err = filepath.EvalSymlinks(root)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: root: %w", ErrInvalidConfig, err)
	}
	s := &Server{root: root, ops: make(map[string]int)}
	s.cfg.Store(&c)
	c.Logger.Info("git server started", slog.String("engine", c.Engine.Name()))
	return s, nil
}

// ALPN reports "alknet/git".
func (s *Server) ALPN() string { return ALPN }

// Handle serves one alknet/git connection: one operation per bidirectional stream,
// until the connection ends. A connection without a known identity gets
// "ERR unauthenticated" on its first stream and is closed with
// core.CloseAuthRequired; Handle then returns an error wrapping ErrUnauthenticated
// and core.ErrAuthRequired (the endpoint writes the shared auth failure line).
func (s *Server) Handle(ctx context.Context, conn *core.Connection, auth core.AuthContext) error {
	if auth.Identity == nil {
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if st, err := conn.AcceptBi(actx); err == nil {
			_, _ = st.Write(pkt("ERR unauthenticated: alknet/git needs a client certificate of a known peer\n"))
			_ = st.CloseWrite()
		}
		cancel()
		conn.Close(core.CloseAuthRequired, "unauthenticated: alknet/git needs a client certificate of a known peer")
		return fmt.Errorf("%w: %w: no known client certificate", core.ErrAuthRequired, ErrUnauthenticated)
	}
	id := auth.Identity.Clone()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		st, err := conn.AcceptBi(ctx)
		if err != nil {
			if errors.Is(err, core.ErrConnectionClosed) || ctx.Err() != nil {
				return nil
			}
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			done := conn.Busy() // the operation's own timeouts apply, not the endpoint's
			defer done()
			defer st.Close()
			s.serveStream(ctx, st, id, conn.RemoteAddr())
		}()
	}
}

// serveStream runs the operation of one alknet/git stream.
func (s *Server) serveStream(ctx context.Context, st core.BiStream, id core.Identity, remote net.Addr) {
	cfg := s.cfg.Load()
	br := bufio.NewReaderSize(st, 64<<10)
	req, err := ReadRequest(br, cfg.Limits.MaxRequestLine)
	if err != nil {
		cfg.Logger.LogAttrs(ctx, slog.LevelInfo, "git request refused", slog.String("identity", id.ID), slog.String("error", err.Error()))
		s.stats.end(ServiceOther, OutcomeBadRequest, 0, 0)
		msg := "bad request"
		if errors.Is(err, ErrRequestTooLong) {
			msg = err.Error() // names the limit
		}
		_, _ = st.Write(pkt("ERR " + msg + "\n"))
		_ = st.CloseWrite()
		return
	}
	_ = s.run(ctx, cfg, op{
		id: id, service: req.Service, path: req.Path, version: req.Version, transport: "alknet/git",
		in: br, out: st, closeIn: func() { _ = st.Close() }, remote: remote,
		fail: func(msg string) { _, _ = st.Write(pkt("ERR " + msg + "\n")) },
	})
	_ = st.CloseWrite()
}

// IsCommand reports whether an SSH exec command line is meant for git (starts with
// one of the git verbs), so that the assembly layer can route it to StartExec and
// everything else to its other executors.
func IsCommand(cmd string) bool {
	for _, v := range []string{"git-upload-pack", "git-receive-pack", "git-upload-archive", "git upload-pack", "git receive-pack", "git upload-archive"} {
		if strings.HasPrefix(cmd, v) {
			return true
		}
	}
	return false
}

// StartExec serves an SSH exec request as id, with the shape of the ssh module's
// Executor.Start: the command is parsed by ParseCommand, and the operation runs
// until the returned wait function reports its exit status (0 on success). A
// command that does not parse, a missing or unreadable repository and a refused push
// are a message on stderr and status 1. The error is always nil; it is there for the
// Executor shape.
func (s *Server) StartExec(ctx context.Context, id core.Identity, command string, stdin io.Reader, stdout, stderr io.Writer) (wait func() uint32, err error) {
	return s.StartExecEnv(ctx, id, command, nil, stdin, stdout, stderr)
}

// StartExecEnv is StartExec with the environment the SSH client set (NAME=value):
// GIT_PROTOCOL=version=2 asks for protocol version 2; everything else is ignored.
func (s *Server) StartExecEnv(ctx context.Context, id core.Identity, command string, env []string, stdin io.Reader, stdout, stderr io.Writer) (wait func() uint32, err error) {
	cfg := s.cfg.Load()
	version := 0
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, "GIT_PROTOCOL="); ok {
			for _, p := range strings.Split(v, ":") {
				if p == "version=2" {
					version = 2
				}
			}
		}
	}
	service, p, perr := ParseCommand(command)
	if perr != nil {
		return func() uint32 {
			_, _ = fmt.Fprintf(stderr, "fatal: %v\n", perr)
			return 1
		}, nil
	}
	done := make(chan uint32, 1)
	go func() {
		in, closeIn := interruptible(stdin)
		err := s.run(ctx, cfg, op{
			id: id.Clone(), service: service, path: p, version: version, transport: "ssh",
			in: bufio.NewReaderSize(in, 64<<10), out: stdout, closeIn: closeIn,
			fail: func(msg string) { _, _ = fmt.Fprintf(stderr, "fatal: %s\n", msg) },
		})
		closeIn()
		if err != nil {
			done <- 1
			return
		}
		done <- 0
	}()
	return func() uint32 { return <-done }, nil
}

// interruptible returns a reader of r that closeIn ends at once, even while a Read of
// r blocks: an SSH channel's stdin cannot be closed on its own the way an alknet/git
// stream is, yet the idle and total time limits must end a read of a silent client.
// The copy from r ends when r does, or at its first read after closeIn.
func interruptible(r io.Reader) (in io.Reader, closeIn func()) {
	pr, pw := io.Pipe()
	go func() {
		_, err := io.Copy(pw, r)
		_ = pw.CloseWithError(err)
	}()
	return pr, func() { _ = pr.Close() }
}

// op is one operation's inputs.
type op struct {
	id        core.Identity
	service   string
	path      string
	version   int
	transport string
	in        *bufio.Reader
	out       io.Writer
	closeIn   func()
	remote    net.Addr
	fail      func(msg string) // the client-facing error before the session starts
}

// acquire takes one of id's operation slots.
func (s *Server) acquire(limit int, id string) (release func(), ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if limit > 0 && s.ops[id] >= limit {
		return nil, false
	}
	s.ops[id]++
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.ops[id]--; s.ops[id] <= 0 {
			delete(s.ops, id)
		}
	}, true
}

// run resolves, checks and serves one operation and writes its log line.
func (s *Server) run(ctx context.Context, cfg *Config, o op) error {
	start := time.Now()
	log := cfg.Logger
	attrs := []slog.Attr{
		slog.String("identity", o.id.ID), slog.String("service", o.service),
		slog.String("transport", o.transport), slog.String("engine", cfg.Engine.Name()),
	}
	s.stats.active.Add(1)
	defer s.stats.active.Add(-1)
	logEnd := func(outcome string, in, out int64, refs int, err error) {
		s.stats.end(o.service, outcome, in, out)
		a := append(attrs, slog.Int64("bytes_in", in), slog.Int64("bytes_out", out),
			slog.Int("refs_updated", refs), slog.String("outcome", outcome), slog.Duration("duration", time.Since(start)))
		if err != nil {
			a = append(a, slog.String("error", err.Error()))
		}
		log.LogAttrs(context.WithoutCancel(ctx), slog.LevelInfo, "git operation", a...)
	}
	name, dir, err := resolve(s.root, o.path, cfg.MaxDepth)
	if err == nil && !CanRead(o.id, name) {
		err = ErrNotFound
	}
	if err != nil {
		o.fail(ErrNotFound.Error())
		logEnd("not_found", 0, 0, 0, ErrNotFound)
		return ErrNotFound
	}
	attrs = append(attrs, slog.String("repo", name))
	if o.service == ServiceReceivePack && !CanWrite(o.id, name) {
		o.fail(ErrReadOnly.Error() + " for " + name)
		logEnd("read_only", 0, 0, 0, ErrReadOnly)
		return ErrReadOnly
	}
	if sup, ok := cfg.Engine.(interface{ Supports(string) error }); ok {
		if err := sup.Supports(o.service); err != nil {
			o.fail(err.Error())
			logEnd("unsupported", 0, 0, 0, err)
			return err
		}
	}
	release, ok := s.acquire(cfg.Limits.MaxOperationsPerIdentity, o.id.ID)
	if !ok {
		err := fmt.Errorf("%w (limit %d)", ErrTooManyOperations, cfg.Limits.MaxOperationsPerIdentity)
		o.fail(err.Error())
		logEnd("limit", 0, 0, 0, err)
		return err
	}
	defer release()

	octx, cancel := context.WithCancel(ctx)
	defer cancel()
	if d := cfg.Limits.MaxDuration; d > 0 {
		var c2 context.CancelFunc
		octx, c2 = context.WithTimeoutCause(octx, d, ErrTimeout)
		defer c2()
	}
	var idled atomic.Bool
	var idle *time.Timer
	touch := func() {}
	if d := cfg.Limits.IdleTimeout; d > 0 {
		idle = time.AfterFunc(d, func() { idled.Store(true); cancel() })
		defer idle.Stop()
		touch = func() { idle.Reset(d) }
	}
	// Closing the input unblocks a read of the client when the operation ends early.
	stop := context.AfterFunc(octx, func() {
		if o.closeIn != nil {
			o.closeIn()
		}
	})
	defer stop()

	in := &meter{r: o.in, touch: touch}
	out := &meter{w: o.out, touch: touch}
	var stdin io.Reader = in
	var guard *pushGuard
	if o.service == ServiceReceivePack {
		guard = &pushGuard{r: bufio.NewReader(in), rules: cfg.rulesFor(name), maxPack: cfg.Limits.MaxPackSize}
		stdin = guard
	}
	stderr := &logWriter{log: log, attrs: attrs}
	eerr := cfg.Engine.Serve(octx, Operation{
		Service: o.service, Dir: dir, Version: o.version, Rules: cfg.rulesFor(name),
		Stdin: stdin, Stdout: out, Stderr: stderr,
	})
	refs := 0
	outcome := "ok"
	switch {
	case guard != nil && guard.refused:
		eerr = guard.answerRefused(out)
		outcome = "refused"
		if eerr == nil {
			eerr = ErrPushRefused
		}
	case idled.Load():
		outcome, eerr = "idle_timeout", ErrIdleTimeout
	case errors.Is(context.Cause(octx), ErrTimeout):
		outcome, eerr = "timeout", ErrTimeout
	case eerr != nil:
		outcome = "error"
	case guard != nil:
		for _, c := range guard.cmds {
			if c.refused == "" {
				refs++
			}
		}
	}
	logEnd(outcome, in.n.Load(), out.n.Load(), refs, eerr)
	return eerr
}

// meter counts bytes and reports activity.
type meter struct {
	r     io.Reader
	w     io.Writer
	n     atomic.Int64
	touch func()
}

func (m *meter) Read(p []byte) (int, error) {
	n, err := m.r.Read(p)
	if n > 0 {
		m.n.Add(int64(n))
		m.touch()
	}
	return n, err
}

func (m *meter) Write(p []byte) (int, error) {
	n, err := m.w.Write(p)
	if n > 0 {
		m.n.Add(int64(n))
		m.touch()
	}
	return n, err
}

// logWriter sends an engine's stderr lines to the log at debug level.
type logWriter struct {
	log   *slog.Logger
	attrs []slog.Attr
}

func (l *logWriter) Write(p []byte) (int, error) {
	for _, line := range strings.Split(strings.TrimSpace(string(p)), "\n") {
		if line != "" {
			l.log.LogAttrs(context.Background(), slog.LevelDebug, "git stderr", append(l.attrs, slog.String("line", line))...)
		}
	}
	return len(p), nil
}
