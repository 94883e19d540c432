package main

import (
	"cmp"
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/core/endpoint"
	"github.com/alknet/alknet/core/tlsconf"
	alkgit "github.com/alknet/alknet/git"
	alkssh "github.com/alknet/alknet/ssh"
	gossh "golang.org/x/crypto/ssh"
)

// Metric keys of the git benchmark, for -only and profile labels.
const (
	gitMetricClone = "clone"
	gitMetricFetch = "fetch"
)

// gitMetrics lists the metric keys in table order.
var gitMetrics = []string{gitMetricClone, gitMetricFetch}

// Arm names of the git benchmark, for -arms and profile labels ("arm").
const (
	gitArmBinary = "alknet-binary"
	gitArmGoGit  = "alknet-gogit"
	gitArmSSH    = "alknet-ssh"
	gitArmDaemon = "git-daemon"
)

// gitArms lists the arms in column order.
var gitArms = []string{gitArmBinary, gitArmGoGit, gitArmSSH, gitArmDaemon}

// gitArmTitles are the column headers of the arms.
var gitArmTitles = map[string]string{
	gitArmBinary: "alknet/git QUIC binary",
	gitArmGoGit:  "alknet/git QUIC go-git",
	gitArmSSH:    "alknet/ssh git QUIC binary",
	gitArmDaemon: "git daemon TCP",
}

// gitRatioTitles are the headers of the ratio columns against git daemon.
var gitRatioTitles = map[string]string{
	gitArmBinary: "binary vs git daemon",
	gitArmGoGit:  "go-git vs git daemon",
	gitArmSSH:    "ssh vs git daemon",
}

const (
	// gitGoalRatio is the goal: a clone over alknet/git with the binary
	// engine takes at most this multiple of git daemon's time.
	gitGoalRatio = 1.1
	// gitRepoName is the served repository, under the root.
	gitRepoName = "repo.git"
	// gitStartTimeout bounds git daemon's start.
	gitStartTimeout = 10 * time.Second
	// gitOpTimeout bounds one clone or fetch.
	gitOpTimeout = 5 * time.Minute
	// gitHostAlias is the name the ssh client knows the alknet host key by.
	gitHostAlias = "alknet-bench"
)

type gitBenchOptions struct {
	runOptions
	gitRepoShape
	version2 bool // the ext:: pipe asks for protocol version 2
}

func runGit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	quietQUICBufferWarning()
	o := gitBenchOptions{gitRepoShape: gitRepoShape{commits: 5000, files: 2000, newCommits: 100}}
	fs := newFlagSet("git", "Times the stock git client cloning a generated repository, and fetching new\n"+
		"commits into a clone of it, over alknet's git module (the raw ALPN alknet/git over\n"+
		"QUIC through git's ext:: transport, with the binary and the go-git engines; and the\n"+
		"exec of alknet's ssh server, through the stock ssh client with a ProxyCommand)\n"+
		"against git daemon on loopback TCP (git://).", stderr)
	o.sharedFlags(fs, orderRotating, gitMetrics, gitArms, "arm, side, metric")
	fs.IntVar(&o.commits, "commits", o.commits, "commits of the served repository the clone metric fetches")
	fs.IntVar(&o.files, "files", o.files, "files in its tree")
	fs.IntVar(&o.newCommits, "new-commits", o.newCommits, "commits the fetch metric fetches (on top of -commits)")
	fs.BoolVar(&o.version2, "ext-v2", true, "the alknet/git pipe adds version=2 to the request line of git's ext:: transport (which asks for protocol version 0)")
	fs.DurationVar(&o.settle, "settle", 100*time.Millisecond, "pause after each arm, once its clones are checked and removed, after a GC")
	help, err := parseFlags(fs, args, stderr, "smoke run: 1 round, 200 commits, 100 files, 10 new commits (flags given explicitly win)", map[string]func(){
		"rounds":      func() { o.rounds = 1 },
		"commits":     func() { o.commits = 200 },
		"files":       func() { o.files = 100 },
		"new-commits": func() { o.newCommits = 10 },
		"settle":      func() { o.settle = 10 * time.Millisecond },
	})
	if help || err != nil {
		return err
	}
	if err := cmp.Or(atLeast1("-rounds", o.rounds), atLeast1("-commits", o.commits), atLeast1("-files", o.files),
		atLeast1("-new-commits", o.newCommits), notNegative("-settle", o.settle)); err != nil {
		return err
	}
	if _, err := exec.LookPath("git"); err != nil {
		return fmt.Errorf("git not found: %w", err)
	}
	var fx *gitFixture // for the report: the pack's size, the failures
	return armBench[gitBenchOptions, *gitFixture]{
		metrics: gitMetrics,
		arms:    gitArms,
		start: func(ctx context.Context, arms []string, o gitBenchOptions) (*gitFixture, error) {
			f, err := newGitFixture(ctx, arms, o)
			fx = f
			return f, err
		},
		warm: func(o gitBenchOptions) gitBenchOptions { return o },
		report: func(w io.Writer, o gitBenchOptions, arms []string, ms []*callMetric, loadBefore, otherCPU string) {
			gitReport(w, o, fx, arms, ms, loadBefore, otherCPU)
		},
	}.run(ctx, o, stdout, stderr)
}

// gitArmState is one arm: how the git client reaches the repository.
type gitArmState struct {
	name string
	url  string   // the repository's URL
	args []string // git's options before the command (-c ...)
	env  []string // the client's environment
	// fetchDir is a ready copy of the fetch template, "" once a fetch used it.
	fetchDir string
}

// gitPending is a clone or fetch of a round, checked and removed by settle.
type gitPending struct {
	what, dir, ref string
}

// gitFixture holds every arm, the served repository and the clients' directories.
type gitFixture struct {
	o            gitBenchOptions
	host, client sshKey
	dir          string // everything temporary
	root         string // the served repositories
	work         string // the clients' clones and fetch copies
	tmpl         string // a clone of the first -commits commits: the fetch metric's start
	home         string // the git processes' HOME
	env          []string
	head         string // the served main branch's commit
	packBytes    int64  // the size of the served repository's pack
	arms         []string
	state        map[string]*gitArmState
	daemon       *gitDaemon
	store        *core.DynamicStore
	exe          string // the pipe's binary: this one
	seq          int
	pending      []gitPending
	failed       map[string]error // by gitFailKey: the go-git arm's failures in the check
	closers
}

func newGitFixture(ctx context.Context, arms []string, o gitBenchOptions) (_ *gitFixture, err error) {
	f := &gitFixture{o: o, arms: arms, state: make(map[string]*gitArmState), failed: make(map[string]error)}
	defer func() {
		if err != nil {
			f.close()
		}
	}()
	if f.exe, err = os.Executable(); err != nil {
		return nil, err
	}
	if f.host, err = newSSHKey(); err != nil {
		return nil, err
	}
	if f.client, err = newSSHKey(); err != nil {
		return nil, err
	}
	if f.store, err = core.NewDynamicStore(core.DynamicConfig{
		Auth: core.AuthPolicy{Peers: []core.PeerEntry{{
			PeerID: "bench-client", Fingerprints: []string{f.client.fp}, Scopes: []string{alkgit.ScopeReadPrefix + "*"}, Enabled: true,
		}}},
		Limits: core.Limits{MaxConnectionsPerIP: -1},
	}); err != nil {
		return nil, err
	}
	if f.dir, err = os.MkdirTemp("", "alknet-bench-git-"); err != nil {
		return nil, err
	}
	f.add(func(context.Context) error { return os.RemoveAll(f.dir) })
	f.root, f.work, f.home = filepath.Join(f.dir, "repos"), filepath.Join(f.dir, "work"), filepath.Join(f.dir, "home")
	f.tmpl = filepath.Join(f.dir, "fetch-template")
	for _, d := range []string{f.root, f.work, f.home} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return nil, err
		}
	}
	f.env = gitEnv(f.home)
	if err := f.generate(ctx); err != nil {
		return nil, err
	}
	for _, a := range arms {
		st, err := f.startArm(ctx, a)
		if err != nil {
			return nil, fmt.Errorf("start %s: %w", a, err)
		}
		f.state[a] = st
	}
	return f, f.refill()
}

// generate writes the served repository: -commits commits, a clone of them as the
// fetch template, then -new-commits more, all repacked into one pack as a served
// repository usually is.
func (f *gitFixture) generate(ctx context.Context) error {
	repo := filepath.Join(f.root, gitRepoName)
	if _, err := gitOutput(ctx, f.env, "init", "-q", "--bare", "-b", "main", repo); err != nil {
		return err
	}
	g := newGitRepoGen(f.o.files)
	if err := g.fastImport(ctx, f.env, repo, f.o.commits); err != nil {
		return err
	}
	if _, err := gitOutput(ctx, f.env, "clone", "-q", "--no-checkout", "file://"+repo, f.tmpl); err != nil {
		return err
	}
	if err := g.fastImport(ctx, f.env, repo, f.o.newCommits); err != nil {
		return err
	}
	if _, err := gitOutput(ctx, f.env, "-C", repo, "repack", "-a", "-d", "-q"); err != nil {
		return err
	}
	packs, err := filepath.Glob(filepath.Join(repo, "objects", "pack", "*.pack"))
	if err != nil {
		return err
	}
	for _, p := range packs {
		fi, err := os.Stat(p)
		if err != nil {
			return err
		}
		f.packBytes += fi.Size()
	}
	f.head, err = gitOutput(ctx, f.env, "-C", repo, "rev-parse", "refs/heads/main")
	return err
}

// startArm starts the arm's server and returns how its client reaches it.
func (f *gitFixture) startArm(ctx context.Context, name string) (*gitArmState, error) {
	st := &gitArmState{name: name, env: f.env}
	switch name {
	case gitArmBinary, gitArmGoGit:
		engine, err := f.engine(name)
		if err != nil {
			return nil, err
		}
		srv, err := alkgit.NewServer(alkgit.Config{Root: f.root, Engine: engine, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			return nil, err
		}
		addr, err := f.startAlknet(ctx, name, srv)
		if err != nil {
			return nil, err
		}
		cfg, err := f.pipeConfig(name, addr, alkgit.ALPN, f.o.version2)
		if err != nil {
			return nil, err
		}
		st.args = []string{"-c", "protocol.ext.allow=always"}
		st.url = "ext::" + f.exe + " " + gitPipeCommand + " " + cfg + " %G/" + gitRepoName
	case gitArmSSH:
		engine, err := f.engine(gitArmBinary)
		if err != nil {
			return nil, err
		}
		gsrv, err := alkgit.NewServer(alkgit.Config{Root: f.root, Engine: engine, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			return nil, err
		}
		srv, err := alkssh.NewServer(alkssh.Config{
			HostKey:    f.host.signer,
			Identities: core.NewConfigIdentityProvider(f.store, nil),
			Exec:       gitExecutor{gsrv},
		})
		if err != nil {
			return nil, err
		}
		addr, err := f.startAlknet(ctx, name, srv)
		if err != nil {
			return nil, err
		}
		sshCmd, err := f.sshCommand(addr)
		if err != nil {
			return nil, err
		}
		st.env = append(slices.Clone(f.env), "GIT_SSH_COMMAND="+sshCmd)
		st.url = "ssh://bench@" + gitHostAlias + "/" + gitRepoName
	case gitArmDaemon:
		d, err := startGitDaemon(ctx, f.env, f.root)
		if err != nil {
			return nil, err
		}
		f.daemon = d
		f.add(func(context.Context) error { return d.stop() })
		st.url = "git://" + d.addr + "/" + gitRepoName
	}
	return st, nil
}

// engine returns the engine of the arm name.
func (f *gitFixture) engine(name string) (alkgit.Engine, error) {
	if name == gitArmGoGit {
		return alkgit.NewGoGitEngine(), nil
	}
	return alkgit.NewBinaryEngine("")
}

// gitExecutor is the ssh server's Executor: every exec request goes to the git
// server with the client's environment (GIT_PROTOCOL), as a node's assembly routes
// the git commands.
type gitExecutor struct{ srv *alkgit.Server }

func (e gitExecutor) Start(ctx context.Context, req alkssh.ExecRequest) (func() uint32, error) {
	return e.srv.StartExecEnv(ctx, req.Identity, req.Command, req.Env, req.Stdin, req.Stdout, req.Stderr)
}

// startAlknet registers h on a new endpoint with the host's certificate and the
// client store, makes it listen on QUIC under the arm's labels, and returns its
// address.
func (f *gitFixture) startAlknet(ctx context.Context, name string, h core.ProtocolHandler) (string, error) {
	reg := core.NewRegistry()
	if err := reg.Register(h); err != nil {
		return "", err
	}
	ep, err := newEndpoint(reg, f.host.cert, f.store, slog.New(slog.DiscardHandler))
	if err != nil {
		return "", err
	}
	addr, err := listenArm(ctx, ep, name, endpoint.NetworkQUIC)
	if err != nil {
		return "", err
	}
	f.add(ep.Shutdown)
	return addr, nil
}

// pipeConfig writes the configuration of the arm's pipe and returns its path.
func (f *gitFixture) pipeConfig(name, addr, alpn string, v2 bool) (string, error) {
	key, err := tlsconf.MarshalKey(f.client.key, "bench-client")
	if err != nil {
		return "", err
	}
	b, err := json.Marshal(gitPipeConfig{Addr: addr, ALPN: alpn, Pin: f.host.fp, Key: key, Version2: v2})
	if err != nil {
		return "", err
	}
	p := filepath.Join(f.dir, name+"-pipe.json")
	return p, os.WriteFile(p, b, 0o600)
}

// sshCommand writes the ssh client's key and known host, and returns the
// GIT_SSH_COMMAND that reaches the alknet/ssh endpoint at addr through the pipe.
func (f *gitFixture) sshCommand(addr string) (string, error) {
	block, err := gossh.MarshalPrivateKey(f.client.key, "")
	if err != nil {
		return "", err
	}
	key, known := filepath.Join(f.dir, "ssh_key"), filepath.Join(f.dir, "known_hosts")
	if err := os.WriteFile(key, pem.EncodeToMemory(block), 0o600); err != nil {
		return "", err
	}
	line := gitHostAlias + " " + string(gossh.MarshalAuthorizedKey(f.host.signer.PublicKey()))
	if err := os.WriteFile(known, []byte(line), 0o600); err != nil {
		return "", err
	}
	cfg, err := f.pipeConfig(gitArmSSH, addr, alkssh.ALPN, false)
	if err != nil {
		return "", err
	}
	return strings.Join([]string{"ssh", "-F", "/dev/null", "-i", key, "-o", "IdentitiesOnly=yes",
		"-o", "UserKnownHostsFile=" + known, "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
		"-o", "HostKeyAlias=" + gitHostAlias, "-o", "'ProxyCommand=" + f.exe + " " + gitPipeCommand + " " + cfg + "'"}, " "), nil
}

// refill gives every arm whose copy of the fetch template was used a new one.
func (f *gitFixture) refill() error {
	for _, a := range f.arms {
		st := f.state[a]
		if st.fetchDir != "" {
			continue
		}
		f.seq++
		dir := filepath.Join(f.work, fmt.Sprintf("fetch-%s-%d", a, f.seq))
		if err := os.CopyFS(dir, os.DirFS(f.tmpl)); err != nil {
			return err
		}
		st.fetchDir = dir
	}
	return nil
}

// settle checks the clones and fetches of the arm that ran (their ref is the served
// head), removes them, refills the fetch copies, collects garbage and pauses.
func (f *gitFixture) settle(ctx context.Context, pause time.Duration) error {
	for _, p := range f.pending {
		got, err := gitOutput(ctx, f.env, "-C", p.dir, "rev-parse", p.ref)
		if err != nil {
			return fmt.Errorf("%s: %w", p.what, err)
		}
		if got != f.head {
			return fmt.Errorf("%s: %s is %s, want %s", p.what, p.ref, got, f.head)
		}
		if err := os.RemoveAll(p.dir); err != nil {
			return err
		}
	}
	f.pending = f.pending[:0]
	if err := f.refill(); err != nil {
		return err
	}
	return gcPause(ctx, pause)
}

// helperCPU is the CPU time of the processes the benchmark started and waited for
// (the git clients with theirs, the engines' git processes) and of git daemon's.
func (f *gitFixture) helperCPU() time.Duration {
	cpu := childrenCPU()
	if f.daemon != nil {
		cpu += f.daemon.cpu()
	}
	return cpu
}

// check clones and fetches once through every arm (settle checks the results). A
// failure of the go-git arm is a result, which its rounds skip and the report shows;
// any other arm's fails the run.
func (f *gitFixture) check(ctx context.Context, o gitBenchOptions) error {
	for _, name := range f.arms {
		st := f.state[name]
		for _, m := range gitMetrics {
			op := f.op(m)
			if _, err := op(ctx, st); err != nil {
				if name != gitArmGoGit {
					return fmt.Errorf("check %s: %w", name, err)
				}
				f.failed[gitFailKey(m, name)] = err
			}
		}
		if err := f.settle(ctx, 0); err != nil {
			return fmt.Errorf("check %s: %w", name, err)
		}
	}
	return nil
}

// gitFailKey is the key of a metric's arm in gitFixture.failed.
func gitFailKey(metric, arm string) string { return metric + "/" + arm }

// op returns the operation of the metric key.
func (f *gitFixture) op(key string) func(context.Context, *gitArmState) (time.Duration, error) {
	if key == gitMetricFetch {
		return f.fetch
	}
	return f.clone
}

// runClient runs git with the arm's options and args, and returns how long it took.
func (f *gitFixture) runClient(ctx context.Context, st *gitArmState, what string, args ...string) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, gitOpTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "git", append(slices.Clone(st.args), args...)...)
	cmd.Env = st.env
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	start := time.Now()
	err := cmd.Run()
	elapsed := time.Since(start)
	if err != nil {
		return 0, fmt.Errorf("git %s: %w: %s", what, err, stderr.String())
	}
	return elapsed, nil
}

func (f *gitFixture) clone(ctx context.Context, st *gitArmState) (time.Duration, error) {
	f.seq++
	dir := filepath.Join(f.work, fmt.Sprintf("clone-%s-%d", st.name, f.seq))
	d, err := f.runClient(ctx, st, "clone", "clone", "-q", st.url, dir)
	return d, f.done(err, gitPending{what: st.name + " clone", dir: dir, ref: "HEAD"})
}

func (f *gitFixture) fetch(ctx context.Context, st *gitArmState) (time.Duration, error) {
	dir := st.fetchDir
	st.fetchDir = ""
	d, err := f.runClient(ctx, st, "fetch", "-C", dir, "fetch", "-q", st.url, "+refs/heads/main:refs/remotes/origin/main")
	return d, f.done(err, gitPending{what: st.name + " fetch", dir: dir, ref: "refs/remotes/origin/main"})
}

// done leaves p for settle to check where the operation succeeded, and removes its
// directory where it failed (err).
func (f *gitFixture) done(err error, p gitPending) error {
	if err != nil {
		_ = os.RemoveAll(p.dir)
		return err
	}
	f.pending = append(f.pending, p)
	return nil
}

func (f *gitFixture) metrics(o gitBenchOptions, selected map[string]bool) []*callMetric {
	ms := []*callMetric{
		{key: gitMetricClone, label: fmt.Sprintf("clone %d commits, %d files: time", o.commits+o.newCommits, o.files), unit: "clone"},
		{key: gitMetricFetch, label: fmt.Sprintf("fetch %d new commits: time", o.newCommits), unit: "fetch"},
	}
	var out []*callMetric
	for _, m := range ms {
		if !selected[m.key] {
			continue
		}
		op := f.op(m.key)
		for _, name := range f.arms {
			st := f.state[name]
			failed := f.failed[gitFailKey(m.key, name)] != nil
			a := newArm(name, func(ctx context.Context) (sample, error) {
				if failed {
					return sample{}, nil // failed in the check: no rounds
				}
				d, err := op(ctx, st)
				return sample{value: float64(d) / 1e6, ops: 1}, err
			})
			a.helperCPU = f.helperCPU
			m.arms = append(m.arms, &callArm{arm: a})
		}
		out = append(out, m)
	}
	return out
}

// gitDaemon is git daemon serving the root on a loopback port.
type gitDaemon struct {
	addr string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
	log  lockedBuffer
}

func startGitDaemon(ctx context.Context, env []string, root string) (*gitDaemon, error) {
	port, err := freeLoopbackPort()
	if err != nil {
		return nil, err
	}
	d := &gitDaemon{addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), done: make(chan struct{})}
	d.cmd = exec.Command("git", "daemon", "--reuseaddr", "--base-path="+root, "--export-all",
		"--listen=127.0.0.1", "--port="+strconv.Itoa(port), "--informative-errors", root)
	d.cmd.Env = env
	d.cmd.Stdout, d.cmd.Stderr = &d.log, &d.log
	if err := d.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		d.err = d.cmd.Wait()
		close(d.done)
	}()
	ctx, cancel := context.WithTimeout(ctx, gitStartTimeout)
	defer cancel()
	for {
		var dialer net.Dialer
		c, err := dialer.DialContext(ctx, "tcp", d.addr)
		if err == nil {
			_ = c.Close()
			return d, nil
		}
		select {
		case <-d.done:
			return nil, fmt.Errorf("git daemon exited (%v): %s", d.err, d.log.String())
		case <-ctx.Done():
			_ = d.stop()
			return nil, fmt.Errorf("git daemon not listening on %s after %s: %s", d.addr, gitStartTimeout, d.log.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// cpu returns the CPU time of git daemon and its upload-pack processes so far, from
// /proc.
func (d *gitDaemon) cpu() time.Duration {
	cpu, _ := procTree(d.cmd.Process.Pid)
	return cpu
}

// stop terminates git daemon and waits for it.
func (d *gitDaemon) stop() error {
	select {
	case <-d.done:
		return nil
	default:
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(5 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.done
	}
	return nil
}

func gitReport(w io.Writer, o gitBenchOptions, f *gitFixture, arms []string, ms []*callMetric, loadBefore, otherCPU string) {
	machine := armMachine(library{"quic-go", "github.com/quic-go/quic-go"}, library{"x/crypto", "golang.org/x/crypto"})
	machine = append(machine, "git: "+gitVersion())
	if slices.Contains(arms, gitArmSSH) {
		machine = append(machine, "ssh client: "+sshClientVersion())
	}
	reportHeader(w, "git", machine, loadBefore, otherCPU, fmt.Sprintf(
		"a generated repository (%d commits, %d files, then %d more commits; git fast-import, repacked into one pack of %s) served from one root by every arm; "+
			"the client is the stock git binary (no system or global configuration) started by this process: git clone -q URL DIR (with checkout), "+
			"and git fetch -q URL +refs/heads/main:refs/remotes/origin/main into a copy of a clone of the first %d commits; "+
			"alknet/git QUIC: alknet's git.Server (engine binary or go-git) on an endpoint (ALPN alknet/git), "+
			"reached by git -c protocol.ext.allow=always with ext::<this binary %s> %%G/%s, a pipe that dials the endpoint (endpoint.Dial, QUIC, client certificate, server pinned) per operation "+
			"(version=2 added to the request line: %t); "+
			"alknet/ssh git QUIC: the same git.Server (binary engine) as the Exec of alknet's ssh.Server on an endpoint (ALPN alknet/ssh), "+
			"reached by git over ssh:// with GIT_SSH_COMMAND the stock ssh client with ProxyCommand the same pipe on alknet/ssh; "+
			"git daemon TCP: git daemon --reuseaddr --base-path --export-all --listen=127.0.0.1 --informative-errors, reached by git://; "+
			"a check (one clone and one fetch per arm, their refs compared with the served head) and a warm-up pass, then %d %s (arms interleaved, starting one arm later each round); "+
			"each clone and fetch is checked and removed after its arm, untimed; medians over the rounds; ratio columns git daemon's time / the arm's, higher is better",
		o.commits, o.files, o.newCommits, fmt.Sprintf("%.1f MiB", float64(f.packBytes)/(1<<20)), o.commits, gitPipeCommand, gitRepoName, o.version2, o.rounds, plural(o.rounds, "round")))

	t := newArmTable(arms, gitArmTitles)
	t.addBaselineRatios(arms, gitArmDaemon, gitRatioTitles)
	var failures []string
	measured := make([]*callMetric, 0, len(ms)) // without the arms that failed
	for _, m := range ms {
		t.add(m, callRow{label: m.label, lower: true, value: func(a *callArm) float64 { return a.median() * 1e6 }})
		row := t.rows[len(t.rows)-1]
		mm := *m
		mm.arms = nil
		for i, a := range m.arms {
			err := f.failed[gitFailKey(m.key, a.name)]
			if err == nil {
				mm.arms = append(mm.arms, a)
				continue
			}
			row[1+i] = "failed"
			for j, p := range t.pairs {
				if p.a == i || p.b == i {
					row[1+len(m.arms)+j] = "n/a"
				}
			}
			failures = append(failures, fmt.Sprintf("%s failed the %s in the check, so it has no rounds: %s", a.name, m.key, strings.Join(strings.Fields(err.Error()), " ")))
		}
		measured = append(measured, &mm)
	}
	t.write(w)
	for _, l := range failures {
		fmt.Fprintf(w, "\n%s\n", l)
	}
	fmt.Fprintf(w, "\n%s\n", gitGoalLine(ms))

	fmt.Fprintf(w, "\nPer-round samples (ms); CPU time and heap allocations per operation, medians over the rounds "+
		"(CPU: this process, the processes it waited for — the git clients with their helpers and pipes, the binary engine's git processes — and git daemon's processes, from /proc; "+
		"allocations: this process only):\n\n")
	perRoundTable(w, measured, false)
}

// gitGoalLine states whether the goal was met: a clone over alknet/git with
// the binary engine in at most gitGoalRatio× git daemon's time.
func gitGoalLine(ms []*callMetric) string {
	goal := fmt.Sprintf("goal: clone over alknet/git (binary engine) ≤ %.1f× git daemon's time — ", gitGoalRatio)
	a, b := findArm(ms, gitMetricClone, gitArmBinary), findArm(ms, gitMetricClone, gitArmDaemon)
	if a == nil || b == nil || b.median() == 0 {
		return goal + fmt.Sprintf("not measured (needs metric %s and arms %s, %s)", gitMetricClone, gitArmBinary, gitArmDaemon)
	}
	r := a.median() / b.median()
	verdict := "not met"
	if r <= gitGoalRatio {
		verdict = "met"
	}
	return goal + fmt.Sprintf("%s (%.2f×)", verdict, r)
}

// sshClientVersion returns what ssh -V prints, or "unknown".
func sshClientVersion() string {
	out, _ := exec.Command("ssh", "-V").CombinedOutput()
	if s := strings.TrimSpace(string(out)); s != "" {
		return s
	}
	return "unknown"
}
