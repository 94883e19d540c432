package main

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pkg/sftp"
	gossh "golang.org/x/crypto/ssh"

	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/core/endpoint"
	"github.com/alknet/alknet/core/tlsconf"
	alksftp "github.com/alknet/alknet/sftp"
	alkssh "github.com/alknet/alknet/ssh"
)

// Metric keys of the sftp benchmark, for -only and profile labels.
const (
	sftpMetricDownload      = "download"
	sftpMetricUpload        = "upload"
	sftpMetricDownloadFiles = "download-files"
	sftpMetricUploadFiles   = "upload-files"
)

// sftpMetrics lists the metric keys in table order.
var sftpMetrics = []string{sftpMetricDownload, sftpMetricUpload, sftpMetricDownloadFiles, sftpMetricUploadFiles}

// Arm names of the sftp benchmark, for -arms and profile labels ("arm").
const (
	sftpArmRaw     = "alknet-sftp"
	sftpArmSSH     = "alknet-ssh"
	sftpArmOpenSSH = "openssh"
	sftpArmPkg     = "pkgsftp-tcp"
)

// sftpArms lists the arms in column order.
var sftpArms = []string{sftpArmRaw, sftpArmSSH, sftpArmOpenSSH, sftpArmPkg}

// sftpArmTitles are the column headers of the arms.
var sftpArmTitles = map[string]string{
	sftpArmRaw:     "alknet/sftp QUIC",
	sftpArmSSH:     "alknet/ssh sftp QUIC",
	sftpArmOpenSSH: "OpenSSH sshd TCP",
	sftpArmPkg:     "pkg/sftp server TCP",
}

// sftpRatioTitles are the headers of the ratio columns, by baseline, then by the
// alknet arm compared with it.
var sftpRatioTitles = map[string]map[string]string{
	sftpArmOpenSSH: {sftpArmRaw: "alknet/sftp vs OpenSSH", sftpArmSSH: "alknet/ssh sftp vs OpenSSH"},
	sftpArmPkg:     {sftpArmRaw: "alknet/sftp vs pkg/sftp", sftpArmSSH: "alknet/ssh sftp vs pkg/sftp"},
}

const (
	// sftpGoalRatio is the goal: the 256 MiB download over alknet/sftp at least
	// this share of OpenSSH's rate.
	sftpGoalRatio = 1.0
	// sftpCheckSize is the random file the correctness check downloads and uploads
	// through each arm: above pkg/sftp's packet size, so that both go concurrent.
	sftpCheckSize = 1 << 20
	// sftpSourceBlock is the random block the upload source repeats.
	sftpSourceBlock = 1 << 20
	// sftpStartTimeout bounds sshd's start and each arm's login.
	sftpStartTimeout = 10 * time.Second
)

// Files and directories in the served directory; every arm serves the same one.
const (
	sftpBigFile   = "big.bin"   // the download metric's file
	sftpCheckFile = "check.bin" // the correctness check's download
	sftpSmallDir  = "small"     // the download-files metric's files
	sftpUpPrefix  = "up-"       // + arm name: where an arm's uploads go, emptied after each arm
	// sftpExport is the alknet servers' export of the served directory: their
	// clients' paths start /bench.
	sftpExport = "bench"
)

type sftpBenchOptions struct {
	runOptions
	fileBytes    byteSize
	files        int
	smallBytes   byteSize
	atomicWrites bool   // the alknet export's AtomicWrites
	sshd         string // the sshd binary ("" looks it up)
	subsystem    string // sshd's sftp Subsystem
	// note says why an arm the run skipped is missing (sshd not installed).
	note string
}

func runSFTP(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	quietQUICBufferWarning()
	o := sftpBenchOptions{fileBytes: 256 << 20, files: 1000, smallBytes: 4 << 10}
	fs := newFlagSet("sftp", "Compares SFTP transfers, all with pkg/sftp's client (concurrent reads and writes on):\n"+
		"alknet's sftp server over QUIC, raw (ALPN alknet/sftp, sftp.Dial) and as the sftp\n"+
		"subsystem of alknet/ssh, against the servers a user would otherwise run, on loopback:\n"+
		"OpenSSH's sshd with its sftp subsystem (when installed; a temporary configuration,\n"+
		"run in the foreground) and pkg/sftp's server behind x/crypto/ssh, both over TCP.\n"+
		"Metrics: download and upload of one -file-bytes file, and of -files files of\n"+
		"-small-bytes, one at a time.", stderr)
	o.sharedFlags(fs, orderRotating, sftpMetrics, sftpArms, "arm, side, metric")
	fs.Var(&o.fileBytes, "file-bytes", "`size` of the file of the "+sftpMetricDownload+" and "+sftpMetricUpload+" metrics (bytes, or with a KiB, MiB or GiB suffix)")
	fs.IntVar(&o.files, "files", 1000, "files of the "+sftpMetricDownloadFiles+" and "+sftpMetricUploadFiles+" metrics")
	fs.Var(&o.smallBytes, "small-bytes", "`size` of each of those files")
	fs.BoolVar(&o.atomicWrites, "atomic-writes", false, "the alknet export's AtomicWrites (uploads into a temporary file renamed at close; a node's default)")
	fs.StringVar(&o.sshd, "sshd", "", "sshd binary of the "+sftpArmOpenSSH+" arm (default: sshd in PATH, else /usr/sbin/sshd)")
	fs.StringVar(&o.subsystem, "openssh-sftp", "internal-sftp", "sshd's sftp Subsystem: internal-sftp, or the path of sftp-server (such as /usr/lib/openssh/sftp-server)")
	fs.DurationVar(&o.settle, "settle", 50*time.Millisecond, "pause after each arm, once its uploads are removed, after a GC")
	help, err := parseFlags(fs, args, stderr, "smoke run: 1 round, a 4 MiB file, 50 files (flags given explicitly win)", map[string]func(){
		"rounds":     func() { o.rounds = 1 },
		"file-bytes": func() { o.fileBytes = 4 << 20 },
		"files":      func() { o.files = 50 },
		"settle":     func() { o.settle = 10 * time.Millisecond },
	})
	if help || err != nil {
		return err
	}
	if err := cmp.Or(atLeast1("-rounds", o.rounds), positive("-file-bytes", o.fileBytes),
		atLeast1("-files", o.files), positive("-small-bytes", o.smallBytes), notNegative("-settle", o.settle)); err != nil {
		return err
	}
	arms, err := selectArms(o.arms, sftpArms)
	if err != nil {
		return err
	}
	if slices.Contains(arms, sftpArmOpenSSH) {
		sshd, err := findSSHD(o.sshd)
		switch {
		case err == nil:
			o.sshd = sshd
		case o.arms != "":
			return fmt.Errorf("-arms %s: %w", sftpArmOpenSSH, err)
		default:
			arms = slices.DeleteFunc(arms, func(a string) bool { return a == sftpArmOpenSSH })
			o.arms = strings.Join(arms, ",")
			o.note = fmt.Sprintf("the %s arm did not run: %v (Debian: apt-get install openssh-server)", sftpArmOpenSSH, err)
			fmt.Fprintln(stderr, "bench sftp:", o.note)
		}
	}
	return armBench[sftpBenchOptions, *sftpFixture]{
		metrics: sftpMetrics,
		arms:    sftpArms,
		start:   newSFTPFixture,
		warm: func(o sftpBenchOptions) sftpBenchOptions {
			o.files = min(o.files, 200)
			return o
		},
		report: sftpReport,
	}.run(ctx, o, stdout, stderr)
}

// sftpArmState is one arm: its long-lived SFTP client, and where the served directory
// is as that client names it.
type sftpArmState struct {
	name   string
	client *sftp.Client
	root   string // the served directory in the client's paths
	// helperCPU is the CPU time of the arm's external server so far (nil: in process).
	helperCPU func() time.Duration
}

// path returns the client's path of the served directory's file name (slash
// separated).
func (st *sftpArmState) path(name string) string { return path.Join(st.root, name) }

// sftpFixture holds every arm, and the served directory they share.
type sftpFixture struct {
	host, client sshKey
	dir          string // the served directory
	bigSum       [sha256.Size]byte
	checkData    []byte // the content of sftpCheckFile
	source       []byte // the block the uploads repeat
	small        []byte // the content of every small file
	arms         []string
	state        map[string]*sftpArmState
	sshd         *sshdProcess // nil unless the openssh arm runs
	store        *core.DynamicStore
	closers
}

// sftpClientOptions are the pkg/sftp client options of every arm.
func sftpClientOptions() []sftp.ClientOption {
	return []sftp.ClientOption{sftp.UseConcurrentReads(true), sftp.UseConcurrentWrites(true)}
}

func newSFTPFixture(ctx context.Context, arms []string, o sftpBenchOptions) (_ *sftpFixture, err error) {
	f := &sftpFixture{arms: arms, state: make(map[string]*sftpArmState)}
	defer func() {
		if err != nil {
			f.close()
		}
	}()
	if f.host, err = newSSHKey(); err != nil {
		return nil, err
	}
	if f.client, err = newSSHKey(); err != nil {
		return nil, err
	}
	if f.store, err = sftpClientStore(f.client.fp); err != nil {
		return nil, err
	}
	if f.dir, err = os.MkdirTemp("", "alknet-bench-sftp-"); err != nil {
		return nil, err
	}
	f.add(func(context.Context) error { return os.RemoveAll(f.dir) })
	if err := f.fillDir(o, arms); err != nil {
		return nil, err
	}
	for _, a := range arms {
		var st *sftpArmState
		st, err = f.startArm(ctx, a, o)
		if err != nil {
			return nil, fmt.Errorf("start %s: %w", a, err)
		}
		f.state[a] = st
	}
	return f, nil
}

// fillDir writes the served directory: the big file of random blocks, the check
// file, the small files, and an empty upload directory per arm.
func (f *sftpFixture) fillDir(o sftpBenchOptions, arms []string) error {
	f.source = make([]byte, sftpSourceBlock)
	f.checkData = make([]byte, sftpCheckSize)
	f.small = make([]byte, o.smallBytes)
	for _, b := range [][]byte{f.source, f.checkData, f.small} {
		if _, err := rand.Read(b); err != nil {
			return err
		}
	}
	big, err := os.Create(filepath.Join(f.dir, sftpBigFile))
	if err != nil {
		return err
	}
	h := sha256.New()
	_, err = io.Copy(io.MultiWriter(big, h), sftpSource(f.source, int64(o.fileBytes)))
	if cerr := big.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	h.Sum(f.bigSum[:0])
	if err := os.WriteFile(filepath.Join(f.dir, sftpCheckFile), f.checkData, 0o644); err != nil {
		return err
	}
	if err := os.Mkdir(filepath.Join(f.dir, sftpSmallDir), 0o755); err != nil {
		return err
	}
	for i := range o.files {
		if err := os.WriteFile(filepath.Join(f.dir, sftpSmallDir, sftpSmallName(i)), f.small, 0o644); err != nil {
			return err
		}
	}
	for _, a := range arms {
		if err := os.Mkdir(filepath.Join(f.dir, sftpUpPrefix+a), 0o755); err != nil {
			return err
		}
	}
	return nil
}

func sftpSmallName(i int) string { return fmt.Sprintf("f%05d", i) }

// sftpSource returns n bytes that repeat block, as the reader of an upload: an
// io.LimitedReader, whose size tells pkg/sftp to write concurrently.
func sftpSource(block []byte, n int64) *io.LimitedReader {
	return &io.LimitedReader{R: &repeatReader{block: block}, N: n}
}

// repeatReader reads its block over and over.
type repeatReader struct {
	block []byte
	off   int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		m := copy(p[n:], r.block[r.off:])
		n += m
		r.off = (r.off + m) % len(r.block)
	}
	return n, nil
}

// sftpClientStore is the identity store of the alknet servers: the bench client's
// certificate (and SSH key) fingerprint fp, with the scope to write the export, no
// connection limit per IP.
func sftpClientStore(fp string) (*core.DynamicStore, error) {
	return core.NewDynamicStore(core.DynamicConfig{
		Auth: core.AuthPolicy{Peers: []core.PeerEntry{{
			PeerID: "bench-client", Fingerprints: []string{fp}, Scopes: []string{alksftp.ScopeWritePrefix + sftpExport}, Enabled: true,
		}}},
		Limits: core.Limits{MaxConnectionsPerIP: -1},
	})
}

// newAlknetSFTP returns the alknet sftp server of an alknet arm: the served directory
// as the export sftpExport, default limits, no log.
func (f *sftpFixture) newAlknetSFTP(o sftpBenchOptions) (*alksftp.Server, error) {
	return alksftp.NewServer(alksftp.Config{
		Exports: []alksftp.Export{{Name: sftpExport, Dir: f.dir, AtomicWrites: o.atomicWrites}},
		Logger:  slog.New(slog.DiscardHandler),
	})
}

// startAlknet registers h on a new endpoint with the host's certificate and the
// client store, makes it listen on QUIC under the arm's labels, and returns its
// address.
func (f *sftpFixture) startAlknet(ctx context.Context, name string, h core.ProtocolHandler) (string, error) {
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

// quicDialOptions are the alknet clients' transport: QUIC, the client's certificate,
// the host pinned.
func (f *sftpFixture) quicDialOptions() endpoint.DialOptions {
	cert := f.client.cert
	return endpoint.DialOptions{
		Network: endpoint.NetworkQUIC,
		TLS:     tlsconf.ClientOptions{Certificate: &cert, Pin: f.host.fp},
	}
}

// startArm starts the arm's server under the labels arm and side (so that its
// goroutines carry them in a CPU profile) and logs its long-lived client in.
func (f *sftpFixture) startArm(ctx context.Context, name string, o sftpBenchOptions) (*sftpArmState, error) {
	st := &sftpArmState{name: name}
	// dial returns the arm's client and, where closing the client does not close it,
	// the connection it runs on.
	var dial func(ctx context.Context) (*sftp.Client, io.Closer, error)
	switch name {
	case sftpArmRaw:
		srv, err := f.newAlknetSFTP(o)
		if err != nil {
			return nil, err
		}
		addr, err := f.startAlknet(ctx, name, srv)
		if err != nil {
			return nil, err
		}
		st.root = "/" + sftpExport
		dial = func(ctx context.Context) (*sftp.Client, io.Closer, error) {
			c, err := alksftp.Dial(ctx, addr, f.quicDialOptions(), sftpClientOptions()...)
			return c, nil, err
		}
	case sftpArmSSH:
		srv, err := f.newAlknetSFTP(o)
		if err != nil {
			return nil, err
		}
		sshSrv, err := alkssh.NewServer(alkssh.Config{
			HostKey:    f.host.signer,
			Identities: core.NewConfigIdentityProvider(f.store, nil),
			Subsystems: map[string]alkssh.SubsystemHandler{
				"sftp": func(ctx context.Context, ch alkssh.Channel, id core.Identity) error {
					return srv.ServeSubsystem(ctx, ch, id)
				},
			},
		})
		if err != nil {
			return nil, err
		}
		addr, err := f.startAlknet(ctx, name, sshSrv)
		if err != nil {
			return nil, err
		}
		st.root = "/" + sftpExport
		cfg := alkssh.ClientConfig{
			Transport: f.quicDialOptions(),
			Signer:    f.client.signer,
			HostKey:   alkssh.KeyFingerprint(f.host.signer.PublicKey()),
		}
		dial = func(ctx context.Context) (*sftp.Client, io.Closer, error) {
			conn, err := alkssh.Dial(ctx, addr, cfg)
			if err != nil {
				return nil, nil, err
			}
			c, err := sftp.NewClient(conn.Client, sftpClientOptions()...)
			if err != nil {
				_ = conn.Close()
				return nil, nil, err
			}
			return c, conn, nil
		}
	case sftpArmOpenSSH:
		sshd, err := startSSHD(ctx, o.sshd, sshdConfig{subsystem: o.subsystem}, f.host, f.client)
		if err != nil {
			return nil, err
		}
		f.sshd = sshd
		f.add(func(context.Context) error { return sshd.stop() })
		st.root = f.dir // sshd's client paths are absolute (or relative to the home)
		st.helperCPU = sshd.cpu
		dial = func(ctx context.Context) (*sftp.Client, io.Closer, error) {
			return f.dialXSSH(ctx, sshd.addr, sshd.user)
		}
	case sftpArmPkg:
		addr, err := f.servePkgSFTP(ctx, name)
		if err != nil {
			return nil, err
		}
		st.root = "" // relative to the server's working directory
		dial = func(ctx context.Context) (*sftp.Client, io.Closer, error) { return f.dialXSSH(ctx, addr, "bench") }
	default:
		return nil, fmt.Errorf("unknown arm %q", name)
	}
	var conn io.Closer
	var err error
	pprof.Do(ctx, pprof.Labels("arm", name, "side", "client"), func(ctx context.Context) {
		dctx, cancel := context.WithTimeout(ctx, sftpStartTimeout)
		defer cancel()
		st.client, conn, err = dial(dctx)
	})
	if err != nil {
		return nil, err
	}
	if conn != nil {
		f.add(func(context.Context) error { return conn.Close() })
	}
	f.add(func(context.Context) error { return st.client.Close() })
	return st, nil
}

// dialXSSH logs in to the SSH server at addr over TCP as user with x/crypto/ssh, the
// host key pinned, and returns a pkg/sftp client on the connection's sftp subsystem,
// and the connection.
func (f *sftpFixture) dialXSSH(ctx context.Context, addr, user string) (*sftp.Client, io.Closer, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	}
	sc, chans, reqs, err := gossh.NewClientConn(nc, addr, &gossh.ClientConfig{
		User:            user,
		Auth:            []gossh.AuthMethod{gossh.PublicKeys(f.client.signer)},
		HostKeyCallback: gossh.FixedHostKey(f.host.signer.PublicKey()),
	})
	if err != nil {
		_ = nc.Close()
		return nil, nil, err
	}
	_ = nc.SetDeadline(time.Time{})
	conn := gossh.NewClient(sc, chans, reqs)
	c, err := sftp.NewClient(conn, sftpClientOptions()...)
	if err != nil {
		_ = conn.Close()
		return nil, nil, err
	}
	return c, conn, nil
}

// servePkgSFTP serves the directory with pkg/sftp's server (sftp.NewServer in that
// working directory) behind x/crypto/ssh on a loopback TCP listener, as a Go
// programmer would write it, until the fixture shuts down, and returns its address.
func (f *sftpFixture) servePkgSFTP(ctx context.Context, name string) (string, error) {
	clientKey := f.client.signer.PublicKey().Marshal()
	cfg := &gossh.ServerConfig{
		PublicKeyCallback: func(_ gossh.ConnMetadata, key gossh.PublicKey) (*gossh.Permissions, error) {
			if !bytes.Equal(key.Marshal(), clientKey) {
				return nil, errors.New("unknown key")
			}
			return nil, nil
		},
	}
	cfg.AddHostKey(f.host.signer)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	s := &pkgSFTPServer{cfg: cfg, dir: f.dir, conns: make(map[net.Conn]struct{})}
	pprof.Do(ctx, pprof.Labels("arm", name, "side", "server"), func(context.Context) {
		s.wg.Go(func() { s.serve(ln) })
	})
	f.add(func(context.Context) error {
		_ = ln.Close()
		s.mu.Lock()
		s.closed = true
		for c := range s.conns {
			_ = c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
		return nil
	})
	return ln.Addr().String(), nil
}

// pkgSFTPServer is the pkg/sftp baseline's SSH server.
type pkgSFTPServer struct {
	cfg    *gossh.ServerConfig
	dir    string
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

func (s *pkgSFTPServer) serve(ln net.Listener) {
	for {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			_ = nc.Close()
			return
		}
		s.conns[nc] = struct{}{}
		s.mu.Unlock()
		s.wg.Go(func() {
			s.serveConn(nc)
			_ = nc.Close()
			s.mu.Lock()
			delete(s.conns, nc)
			s.mu.Unlock()
		})
	}
}

// serveConn serves one SSH connection: session channels whose sftp subsystem request
// starts sftp.NewServer on the channel; every other request and channel is refused.
func (s *pkgSFTPServer) serveConn(nc net.Conn) {
	_, chans, reqs, err := gossh.NewServerConn(nc, s.cfg)
	if err != nil {
		return
	}
	s.wg.Go(func() { gossh.DiscardRequests(reqs) })
	for nch := range chans {
		if nch.ChannelType() != "session" {
			_ = nch.Reject(gossh.UnknownChannelType, "only session channels")
			continue
		}
		ch, creqs, err := nch.Accept()
		if err != nil {
			continue
		}
		s.wg.Go(func() {
			defer ch.Close()
			for req := range creqs {
				// The payload of a subsystem request is the name as an SSH string.
				ok := req.Type == "subsystem" && len(req.Payload) >= 4 && string(req.Payload[4:]) == "sftp"
				_ = req.Reply(ok, nil)
				if !ok {
					continue
				}
				s.wg.Go(func() { gossh.DiscardRequests(creqs) })
				srv, err := sftp.NewServer(ch, sftp.WithServerWorkingDirectory(s.dir))
				if err != nil {
					return
				}
				_ = srv.Serve()
				_ = srv.Close()
				return
			}
		})
	}
}

// settle removes the uploads (every arm starts from empty upload directories),
// collects garbage and pauses.
func (f *sftpFixture) settle(ctx context.Context, pause time.Duration) error {
	for _, a := range f.arms {
		up := filepath.Join(f.dir, sftpUpPrefix+a)
		if err := os.RemoveAll(up); err != nil {
			return err
		}
		if err := os.Mkdir(up, 0o755); err != nil {
			return err
		}
	}
	return gcPause(ctx, pause)
}

// helperCPU is the CPU time of sshd's processes so far, zero without the openssh arm.
func (f *sftpFixture) helperCPU() time.Duration {
	if f.sshd == nil {
		return 0
	}
	return f.sshd.cpu()
}

// check makes sure, once and untimed, that every arm downloads the check file and a
// small file byte-exact, and uploads a file that lands byte-exact, and that the big
// file has the size the rounds expect.
func (f *sftpFixture) check(ctx context.Context, o sftpBenchOptions) error {
	for _, name := range f.arms {
		st := f.state[name]
		var err error
		pprof.Do(ctx, pprof.Labels("arm", name, "side", "client", "metric", "check"), func(ctx context.Context) {
			err = f.checkArm(ctx, st, o)
		})
		if err != nil {
			return fmt.Errorf("check %s: %w", name, err)
		}
	}
	return nil
}

func (f *sftpFixture) checkArm(ctx context.Context, st *sftpArmState, o sftpBenchOptions) error {
	stop := context.AfterFunc(ctx, func() { _ = st.client.Close() })
	defer stop()
	for name, want := range map[string][]byte{sftpCheckFile: f.checkData, path.Join(sftpSmallDir, sftpSmallName(0)): f.small} {
		var got bytes.Buffer
		if err := sftpGet(st.client, st.path(name), &got); err != nil {
			return err
		}
		if !bytes.Equal(got.Bytes(), want) {
			return fmt.Errorf("download %s: got %d bytes, want %d, or different content", name, got.Len(), len(want))
		}
	}
	fi, err := st.client.Stat(st.path(sftpBigFile))
	if err != nil {
		return err
	}
	if fi.Size() != int64(o.fileBytes) {
		return fmt.Errorf("stat %s: size %d, want %d", sftpBigFile, fi.Size(), o.fileBytes)
	}
	up := path.Join(sftpUpPrefix+st.name, sftpCheckFile)
	if err := sftpPut(st.client, st.path(up), bytes.NewReader(f.checkData)); err != nil {
		return err
	}
	got, err := os.ReadFile(filepath.Join(f.dir, filepath.FromSlash(up)))
	if err != nil {
		return err
	}
	if !bytes.Equal(got, f.checkData) {
		return fmt.Errorf("upload: %d bytes landed, want %d, or different content", len(got), len(f.checkData))
	}
	return nil
}

// sftpGet downloads the file p to w, as io.Copy does it (File.WriteTo: concurrent
// reads for a file larger than a packet).
func sftpGet(c *sftp.Client, p string, w io.Writer) error {
	f, err := c.Open(p)
	if err != nil {
		return fmt.Errorf("open %s: %w", p, err)
	}
	_, err = f.WriteTo(w)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("download %s: %w", p, err)
	}
	return nil
}

// sftpPut uploads r to the new file p, as io.Copy does it (File.ReadFrom: concurrent
// writes for a reader of known size larger than a packet).
func sftpPut(c *sftp.Client, p string, r io.Reader) error {
	f, err := c.Create(p)
	if err != nil {
		return fmt.Errorf("create %s: %w", p, err)
	}
	_, err = f.ReadFrom(r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("upload %s: %w", p, err)
	}
	return nil
}

// countingWriter counts what is written to it and drops it.
type countingWriter struct{ n int64 }

func (w *countingWriter) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	return len(p), nil
}

// sftpRound runs op, ops operations (transfers or files), on the arm's client within
// timeout and returns the sample of amount (MB or files) per second. Should ctx end
// first, the client is closed to unblock op.
func sftpRound(ctx context.Context, st *sftpArmState, timeout time.Duration, amount float64, ops int, op func() error) (sample, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { _ = st.client.Close() })
	defer stop()
	start := time.Now()
	err := op()
	elapsed := time.Since(start)
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", err, ctx.Err())
		}
		return sample{}, err
	}
	return sample{value: amount / elapsed.Seconds(), ops: ops}, nil
}

func (f *sftpFixture) metrics(o sftpBenchOptions, selected map[string]bool) []*callMetric {
	n := int64(o.fileBytes)
	files := fmt.Sprintf("%d files of %s", o.files, o.smallBytes)
	ms := []*callMetric{
		{key: sftpMetricDownload, label: fmt.Sprintf("download one %s file, MB/s", o.fileBytes), unit: "transfer"},
		{key: sftpMetricUpload, label: fmt.Sprintf("upload one %s file, MB/s", o.fileBytes), unit: "transfer"},
		{key: sftpMetricDownloadFiles, label: fmt.Sprintf("download %s one at a time, files/s", files), unit: "file"},
		{key: sftpMetricUploadFiles, label: fmt.Sprintf("upload %s one at a time, files/s", files), unit: "file"},
	}
	bigTimeout := bulkTimeout(n)
	smallTimeout := time.Minute + time.Duration(o.files)*10*time.Millisecond
	rounds := map[string]func(ctx context.Context, st *sftpArmState) (sample, error){
		sftpMetricDownload: func(ctx context.Context, st *sftpArmState) (sample, error) {
			var w countingWriter
			return sftpRound(ctx, st, bigTimeout, float64(n)/1e6, 1, func() error {
				if err := sftpGet(st.client, st.path(sftpBigFile), &w); err != nil {
					return err
				}
				if w.n != n {
					return fmt.Errorf("downloaded %d bytes, want %d", w.n, n)
				}
				return nil
			})
		},
		sftpMetricUpload: func(ctx context.Context, st *sftpArmState) (sample, error) {
			p := st.path(path.Join(sftpUpPrefix+st.name, sftpBigFile))
			s, err := sftpRound(ctx, st, bigTimeout, float64(n)/1e6, 1, func() error {
				return sftpPut(st.client, p, sftpSource(f.source, n))
			})
			if err == nil {
				err = f.checkUpload(path.Join(sftpUpPrefix+st.name, sftpBigFile), n)
			}
			return s, err
		},
		sftpMetricDownloadFiles: func(ctx context.Context, st *sftpArmState) (sample, error) {
			var w countingWriter
			want := int64(o.files) * int64(o.smallBytes)
			return sftpRound(ctx, st, smallTimeout, float64(o.files), o.files, func() error {
				for i := range o.files {
					if err := sftpGet(st.client, st.path(path.Join(sftpSmallDir, sftpSmallName(i))), &w); err != nil {
						return err
					}
				}
				if w.n != want {
					return fmt.Errorf("downloaded %d bytes, want %d", w.n, want)
				}
				return nil
			})
		},
		sftpMetricUploadFiles: func(ctx context.Context, st *sftpArmState) (sample, error) {
			dir := path.Join(sftpUpPrefix+st.name, sftpSmallDir)
			if err := os.Mkdir(filepath.Join(f.dir, filepath.FromSlash(dir)), 0o755); err != nil {
				return sample{}, err
			}
			s, err := sftpRound(ctx, st, smallTimeout, float64(o.files), o.files, func() error {
				for i := range o.files {
					if err := sftpPutSmall(st.client, st.path(path.Join(dir, sftpSmallName(i))), f.small); err != nil {
						return err
					}
				}
				return nil
			})
			if err == nil {
				err = f.checkUpload(path.Join(dir, sftpSmallName(o.files-1)), int64(o.smallBytes))
			}
			return s, err
		},
	}
	var out []*callMetric
	for _, m := range ms {
		if !selected[m.key] {
			continue
		}
		round := rounds[m.key]
		for _, name := range f.arms {
			st := f.state[name]
			a := newArm(name, func(ctx context.Context) (sample, error) { return round(ctx, st) })
			a.helperCPU = st.helperCPU
			m.arms = append(m.arms, &callArm{arm: a})
		}
		out = append(out, m)
	}
	return out
}

// sftpPutSmall uploads b to the new file p with one write.
func sftpPutSmall(c *sftp.Client, p string, b []byte) error {
	f, err := c.Create(p)
	if err != nil {
		return fmt.Errorf("create %s: %w", p, err)
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("upload %s: %w", p, err)
	}
	return nil
}

// checkUpload checks, untimed, that the uploaded file (slash path in the served
// directory) has n bytes.
func (f *sftpFixture) checkUpload(name string, n int64) error {
	fi, err := os.Stat(filepath.Join(f.dir, filepath.FromSlash(name)))
	if err != nil {
		return err
	}
	if fi.Size() != n {
		return fmt.Errorf("uploaded %s has %d bytes, want %d", name, fi.Size(), n)
	}
	return nil
}

func sftpReport(w io.Writer, o sftpBenchOptions, arms []string, ms []*callMetric, loadBefore, otherCPU string) {
	machine := armMachine(
		library{"quic-go", "github.com/quic-go/quic-go"},
		library{"x/crypto", "golang.org/x/crypto"},
		library{"pkg/sftp", "github.com/pkg/sftp"})
	if slices.Contains(arms, sftpArmOpenSSH) {
		machine = append(machine, "OpenSSH: "+sshdVersion(o.sshd)+", Subsystem sftp "+o.subsystem)
	}
	if o.note != "" {
		machine = append(machine, "note: "+o.note)
	}
	reportHeader(w, "sftp", machine, loadBefore, otherCPU, fmt.Sprintf(
		"one process (and sshd), loopback; every arm is pkg/sftp's client (UseConcurrentReads, UseConcurrentWrites, otherwise its defaults) on one long-lived connection, "+
			"every server serving one temporary directory: "+
			"alknet/sftp QUIC is alknet's sftp.Server (an export of the directory, AtomicWrites %t, default limits) registered on an endpoint (ALPN alknet/sftp, TLS 1.3, client certificate), dialled with sftp.Dial; "+
			"alknet/ssh sftp QUIC is the same sftp.Server as the sftp subsystem of alknet's ssh.Server on an endpoint (ALPN alknet/ssh), dialled with ssh.Dial, then pkg/sftp's NewClient; "+
			"OpenSSH sshd TCP is sshd -D -e with a temporary configuration (127.0.0.1, an Ed25519 host key, publickey auth of an Ed25519 client key, UsePAM no) "+
			"dialled with x/crypto/ssh; pkg/sftp server TCP is sftp.NewServer (WithServerWorkingDirectory) on the session channel of an x/crypto/ssh server in this process, "+
			"dialled with x/crypto/ssh; a correctness check (a %d MiB random file downloaded and uploaded byte-exact, a small file downloaded) and a warm-up pass, "+
			"then %d %s (arms interleaved, starting one arm later each round); "+
			"download: File.WriteTo into a counter of the %s file of random bytes (in the page cache); upload: File.ReadFrom of an io.LimitedReader of %s into a new file; "+
			"files: %d files of %s opened, read or written whole and closed one after the other; uploads are removed after each arm; "+
			"medians over the rounds; ratio columns alknet/baseline, higher is better",
		o.atomicWrites, sftpCheckSize>>20, o.rounds, plural(o.rounds, "round"), o.fileBytes, o.fileBytes, o.files, o.smallBytes))

	t := newArmTable(arms, sftpArmTitles)
	for _, base := range []string{sftpArmOpenSSH, sftpArmPkg} {
		t.addBaselineRatios(arms, base, sftpRatioTitles[base])
	}
	for _, m := range ms {
		t.addRate(m)
	}
	t.write(w)
	fmt.Fprintf(w, "\n%s\n", sftpGoalLine(ms))

	fmt.Fprintf(w, "\nPer-round samples; CPU time and heap allocations per operation, medians over the rounds (whole process: clients and in-process servers; "+
		"the %s arm's CPU adds sshd's processes', from /proc):\n\n", sftpArmOpenSSH)
	perRoundTable(w, ms, false)
}

// sftpGoalLine states whether the goal was met: the download of the big file
// over alknet/sftp at least sftpGoalRatio× OpenSSH's rate.
func sftpGoalLine(ms []*callMetric) string {
	return ratioGoalLine(ms, fmt.Sprintf("goal: download over alknet/sftp ≥ %.1f× OpenSSH sshd's — ", sftpGoalRatio),
		sftpMetricDownload, sftpArmRaw, sftpArmOpenSSH, sftpGoalRatio)
}
