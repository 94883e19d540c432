package git

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/go-git/go-billy/v5/osfs"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp/capability"
	"github.com/go-git/go-git/v5/plumbing/storer"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/plumbing/transport/server"
	"github.com/go-git/go-git/v5/storage/filesystem"
)

// ErrUnsupported is wrapped by what the go-git engine cannot serve: upload-archive,
// shallow and partial fetches. (A stock client asked for a shallow clone fails on
// its side, as it sees no "shallow" capability, and protocol v2 requests are
// answered in v0, a fallback the protocol allows.)
var ErrUnsupported = errors.New("not supported by the go-git engine")

// GoGitEngine serves pack sessions in pure Go, with go-git v5's storage and
// plumbing: no git executable needed.
//
// Upload-pack is this package's own, after git's upload-pack.c for a stateful
// protocol v0 session: it advertises the references with the capabilities
// multi_ack, multi_ack_detailed, no-done, side-band, side-band-64k, ofs-delta,
// no-progress, symref and agent; reads the wants (each must be an advertised tip,
// at most MaxWants lines); negotiates over as many have rounds as the client needs
// (at most MaxHaves have lines), answering each flush as git does; then sends the
// pack of the objects reachable from the wants and not from the common commits,
// multiplexed on side-band when asked for (with a keep-alive packet every 5 seconds
// of silence while the pack is prepared). No shallow, no partial clone, no
// include-tag, no thin pack, no progress messages. Errors reach the client as
// "ERR" lines before the pack and on band 3 within it. Memory: the commit walk and
// go-git's pack encoder hold every commit walked and every object of the pack, so
// a full clone of a large repository costs memory in proportion to its objects.
//
// Receive-pack is go-git's plumbing/transport/server session; the push rules,
// including fast-forward and commit-only branch tips, are checked here before any
// reference moves.
type GoGitEngine struct {
	// MaxWants bounds the want lines of one fetch (0: DefaultMaxWants).
	MaxWants int
	// MaxHaves bounds the have lines of one fetch's negotiation, all rounds
	// together (0: DefaultMaxHaves).
	MaxHaves int
}

// NewGoGitEngine returns the go-git engine with the default limits.
func NewGoGitEngine() *GoGitEngine { return &GoGitEngine{} }

// Name reports "go-git".
func (*GoGitEngine) Name() string { return "go-git" }

type dirLoader struct{ st storer.Storer }

func (l dirLoader) Load(*transport.Endpoint) (storer.Storer, error) { return l.st, nil }

// Serve implements Engine.
func (e *GoGitEngine) Serve(ctx context.Context, op Operation) error {
	// Upload-pack reads many objects: the pack files stay open until Close.
	st := filesystem.NewStorageWithOptions(osfs.New(op.Dir), cache.NewObjectLRUDefault(),
		filesystem.Options{KeepDescriptors: op.Service == ServiceUploadPack})
	defer st.Close()
	r := bufio.NewReader(op.Stdin)
	switch op.Service {
	case ServiceUploadPack:
		return e.uploadPack(ctx, st, op, r)
	case ServiceReceivePack:
		srv := server.NewServer(dirLoader{st})
		ep, err := transport.NewEndpoint("/repo")
		if err != nil {
			return err
		}
		return e.receivePack(ctx, srv, ep, st, op, r)
	default:
		return fmt.Errorf("%s: %w", op.Service, ErrUnsupported)
	}
}

// advertise sends the references ar to w and reports whether the client then ended
// the session (a flush or EOF on r) instead of sending a request.
func advertise(ar *packp.AdvRefs, w io.Writer, r *bufio.Reader) (done bool, err error) {
	bw := bufio.NewWriter(w) // one write for a small advertisement, not one per line
	if err := ar.Encode(bw); err != nil {
		return false, err
	}
	if err := bw.Flush(); err != nil {
		return false, err
	}
	return flushOrEOF(r)
}

// flushOrEOF reports whether the client ends the session instead of sending a request.
func flushOrEOF(r *bufio.Reader) (bool, error) {
	b, err := r.Peek(4)
	if err == io.EOF || err == nil && string(b) == "0000" {
		return true, nil
	}
	return false, err
}

func (e *GoGitEngine) receivePack(ctx context.Context, srv transport.Transport, ep *transport.Endpoint, st *filesystem.Storage, op Operation, r *bufio.Reader) error {
	sess, err := srv.NewReceivePackSession(ep, nil)
	if err != nil {
		return err
	}
	defer sess.Close()
	ar, err := sess.AdvertisedReferencesContext(ctx)
	if err != nil {
		return err
	}
	// go-git stores a pushed pack as it comes, so it cannot take a thin one (deltas
	// against objects it already has): "no-thin" tells the client not to send one.
	if err := ar.Capabilities.Add(capability.Capability("no-thin")); err != nil {
		return err
	}
	if done, err := advertise(ar, op.Stdout, r); done || err != nil {
		return err
	}
	req := packp.NewReferenceUpdateRequest()
	if err := req.Decode(r); err != nil {
		return fmt.Errorf("go-git receive-pack: %w", err)
	}
	needPack := false
	for _, c := range req.Commands {
		if c.Action() != packp.Delete {
			needPack = true
		}
	}
	if needPack && req.Packfile != nil {
		if err := packfile.UpdateObjectStorage(st, req.Packfile); err != nil {
			rs := packp.NewReportStatus()
			rs.UnpackStatus = "error " + err.Error()
			_ = rs.Encode(op.Stdout)
			return fmt.Errorf("go-git receive-pack: unpack: %w", err)
		}
	}
	req.Packfile = nil
	// The rules go-git does not know: fast-forward only and commit tips on branches.
	refused := map[plumbing.ReferenceName]string{}
	var allowed []*packp.Command
	for _, c := range req.Commands {
		if why := checkCommand(st, c, op.Rules); why != "" {
			refused[c.Name] = why
			continue
		}
		allowed = append(allowed, c)
	}
	var status *packp.ReportStatus
	if len(allowed) > 0 {
		req.Commands = allowed
		status, err = sess.ReceivePack(ctx, req)
		if status == nil && err != nil {
			return fmt.Errorf("go-git receive-pack: %w", err)
		}
	}
	if status == nil {
		status = packp.NewReportStatus()
		status.UnpackStatus = "ok"
	}
	for ref, why := range refused {
		status.CommandStatuses = append(status.CommandStatuses, &packp.CommandStatus{ReferenceName: ref, Status: why})
	}
	if !req.Capabilities.Supports("report-status") {
		return nil
	}
	return status.Encode(op.Stdout)
}

// checkCommand returns why c breaks a rule the go-git engine checks, or "".
func checkCommand(st *filesystem.Storage, c *packp.Command, rules Rules) string {
	if c.Action() == packp.Delete || !strings.HasPrefix(c.Name.String(), "refs/heads/") {
		return ""
	}
	next, err := object.GetCommit(st, c.New)
	if err != nil {
		return "branch tips must be commits (rule: commit tips)"
	}
	if c.Action() == packp.Create || rules.AllowNonFastForward {
		return ""
	}
	prev, err := object.GetCommit(st, c.Old)
	if err != nil {
		return "non-fast-forward (rule: fast-forward only)"
	}
	if ok, err := prev.IsAncestor(next); err != nil || !ok {
		return "non-fast-forward (rule: fast-forward only)"
	}
	return ""
}

// Supports reports ErrUnsupported for upload-archive, which the go-git engine cannot
// serve; the client gets the message before any session starts.
func (*GoGitEngine) Supports(service string) error {
	if service == ServiceUploadArchive {
		return fmt.Errorf("git-upload-archive: %w", ErrUnsupported)
	}
	return nil
}

// NewEngine returns the engine named "binary", "go-git" or "auto" ("" too): binary
// when a git executable is found, go-git otherwise.
func NewEngine(name string) (Engine, error) {
	switch name {
	case "binary":
		return NewBinaryEngine("")
	case "go-git":
		return NewGoGitEngine(), nil
	case "", "auto":
		if e, err := NewBinaryEngine(""); err == nil {
			return e, nil
		}
		return NewGoGitEngine(), nil
	}
	return nil, fmt.Errorf("%w: engine %q (want auto, binary or go-git)", ErrInvalidConfig, name)
}

// Upload-pack's fixed parameters.
const (
	// packWindow is the delta window of the pack encoder, go-git's default.
	packWindow = 10
	// keepAliveInterval is the silence after which an empty side-band packet tells
	// the client (and the idle timeout) that the pack is being prepared, as git's
	// uploadpack.keepAlive does.
	keepAliveInterval = 5 * time.Second
	// agent is the agent capability of the go-git engine's upload-pack.
	agent = "alknet-go-git"
)

// uploadPack serves one fetch or clone: advertisement, wants, have rounds, pack.
func (e *GoGitEngine) uploadPack(ctx context.Context, st *filesystem.Storage, op Operation, r *bufio.Reader) error {
	ar, err := advertisedRefs(st)
	if err != nil {
		return fmt.Errorf("go-git upload-pack: %w", err)
	}
	if done, err := advertise(ar, op.Stdout, r); done || err != nil {
		return err
	}
	ours := make(map[plumbing.Hash]bool, len(ar.References)+1)
	for _, h := range ar.References {
		ours[h] = true
	}
	if ar.Head != nil {
		ours[*ar.Head] = true
	}
	w := bufio.NewWriter(&ctxWriter{ctx: ctx, w: op.Stdout})
	pr := newPktReader(r, func() error {
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		if w.Buffered() > 0 {
			return w.Flush()
		}
		return nil
	})
	req, err := readWants(pr, ours, cmp.Or(e.MaxWants, DefaultMaxWants))
	if err != nil {
		return refuse(w, err)
	}
	neg := newNegotiation(st, w, req, cmp.Or(e.MaxHaves, DefaultMaxHaves))
	common, err := neg.run(pr)
	if err != nil {
		return refuse(w, err)
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("go-git upload-pack: %w", err)
	}
	if err := sendPack(ctx, st, op.Stdout, req, &neg.commits, common); err != nil {
		return fmt.Errorf("go-git upload-pack: %w", err)
	}
	return nil
}

// advertisedRefs lists the hash references and HEAD (as symref when symbolic) with
// upload-pack's capabilities.
func advertisedRefs(st *filesystem.Storage) (*packp.AdvRefs, error) {
	ar := packp.NewAdvRefs()
	for _, c := range []capability.Capability{
		capability.MultiACK, capability.MultiACKDetailed, capability.NoDone,
		capability.Sideband, capability.Sideband64k, capability.OFSDelta, capability.NoProgress,
	} {
		if err := ar.Capabilities.Add(c); err != nil {
			return nil, err
		}
	}
	if err := ar.Capabilities.Add(capability.Agent, agent); err != nil {
		return nil, err
	}
	iter, err := st.IterReferences()
	if err != nil {
		return nil, err
	}
	err = iter.ForEach(func(ref *plumbing.Reference) error {
		if ref.Type() == plumbing.HashReference && ref.Name() != plumbing.HEAD {
			ar.References[ref.Name().String()] = ref.Hash()
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	head, err := st.Reference(plumbing.HEAD)
	if errors.Is(err, plumbing.ErrReferenceNotFound) {
		return ar, nil
	}
	if err != nil {
		return nil, err
	}
	if head.Type() == plumbing.SymbolicReference {
		target, err := storer.ResolveReference(st, head.Target())
		if errors.Is(err, plumbing.ErrReferenceNotFound) {
			return ar, nil // unborn HEAD: an empty repository
		}
		if err != nil {
			return nil, err
		}
		if err := ar.AddReference(head); err != nil {
			return nil, err
		}
		head = target
	}
	if head.Type() == plumbing.HashReference {
		h := head.Hash()
		ar.Head = &h
	}
	return ar, nil
}

// refuse sends the client "ERR <reason>" (the reason only for the errors of this
// package, which name no server path) and returns err.
func refuse(w *bufio.Writer, err error) error {
	msg := clientMessage(err, "upload-pack: internal error")
	if _, werr := w.Write(pkt("ERR " + msg + "\n")); werr == nil {
		_ = w.Flush()
	}
	return fmt.Errorf("go-git upload-pack: %w", err)
}

// clientMessage is err's text when it is one of this package's errors, which name
// no server path, and otherwise fallback.
func clientMessage(err error, fallback string) string {
	for _, known := range []error{ErrBadRequest, ErrRequestTooLong, ErrTooManyWants, ErrTooManyHaves,
		ErrNotOurRef, ErrUnsupported, ErrTimeout, ErrIdleTimeout} {
		if errors.Is(err, known) {
			return err.Error()
		}
	}
	return fallback
}

// sendPack prepares and writes the pack, multiplexed when the client asked for
// side-band; a failure after the negotiation reaches the client on band 3.
func sendPack(ctx context.Context, st storer.EncodedObjectStorer, out io.Writer, req *uploadRequest, commits *commitCache, common []plumbing.Hash) error {
	var dst io.Writer = &ctxWriter{ctx: ctx, w: out}
	var sb *sideBand
	stop := func() {}
	if req.sideBand > 0 {
		sb = &sideBand{w: dst, max: req.sideBand, last: time.Now()}
		stop = sb.keepAlive(keepAliveInterval)
		dst = sb
	}
	defer stop()
	size := 64 << 10
	if req.sideBand > 0 {
		size = req.sideBand // a full buffer is one whole packet
	}
	bw := bufio.NewWriterSize(dst, size)
	objs, err := selectObjects(ctx, st, commits, req.wants, common)
	if err == nil {
		_, err = packfile.NewEncoder(bw, st, !req.ofsDelta).Encode(objs, packWindow)
	}
	if err == nil {
		err = bw.Flush()
	}
	stop()
	if sb == nil {
		return err
	}
	if err != nil {
		_ = sb.packet(3, []byte(clientMessage(err, "upload-pack: the pack could not be built")+"\n"))
		return err
	}
	return sb.flush()
}

// ctxWriter fails its writes once ctx is done.
type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c *ctxWriter) Write(p []byte) (int, error) {
	if c.ctx.Err() != nil {
		return 0, context.Cause(c.ctx)
	}
	return c.w.Write(p)
}

// sideBand multiplexes the pack on band 1 of side-band pkt-lines; it is safe for
// the keep-alive goroutine and the pack writer together.
type sideBand struct {
	mu   sync.Mutex
	w    io.Writer
	max  int // data bytes per packet
	buf  []byte
	last time.Time
	err  error
}

// Write sends p on band 1.
func (s *sideBand) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		c := min(len(p), s.max)
		if err := s.packet(1, p[:c]); err != nil {
			return n, err
		}
		n, p = n+c, p[c:]
	}
	return n, nil
}

func (s *sideBand) packet(band byte, p []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	p = p[:min(len(p), s.max)]
	s.buf = fmt.Appendf(s.buf[:0], "%04x%c", len(p)+5, band)
	s.buf = append(s.buf, p...)
	_, s.err = s.w.Write(s.buf)
	s.last = time.Now()
	return s.err
}

func (s *sideBand) flush() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	_, s.err = s.w.Write([]byte("0000"))
	return s.err
}

// keepAlive sends an empty band-1 packet after every interval without a packet,
// until the returned stop (idempotent) is called; stop waits for the goroutine.
func (s *sideBand) keepAlive(interval time.Duration) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				s.mu.Lock()
				quiet := time.Since(s.last) >= interval
				s.mu.Unlock()
				if quiet {
					_ = s.packet(1, nil)
				}
			}
		}
	})
	var once sync.Once
	return func() {
		once.Do(func() { close(done) })
		wg.Wait()
	}
}
