package git

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/go-git/go-billy/v5/osfs"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp"
	"github.com/go-git/go-git/v5/plumbing/storer"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/plumbing/transport/server"
	"github.com/go-git/go-git/v5/storage/filesystem"
)

// ErrUnsupported is wrapped by what the go-git engine cannot serve: upload-archive.
// (Shallow clones fail on the client, which sees no "shallow" capability, and
// protocol v2 requests are answered in v0, a fallback the protocol allows.)
var ErrUnsupported = errors.New("not supported by the go-git engine")

// GoGitEngine serves pack sessions with go-git v5's plumbing/transport/server, in
// pure Go: no git executable needed. It advertises neither side-band, shallow nor
// protocol v2; push rules, including fast-forward and commit-only branch tips, are
// checked here before any reference moves.
type GoGitEngine struct{}

// NewGoGitEngine returns the go-git engine.
func NewGoGitEngine() *GoGitEngine { return &GoGitEngine{} }

// Name reports "go-git".
func (*GoGitEngine) Name() string { return "go-git" }

type dirLoader struct{ st storer.Storer }

func (l dirLoader) Load(*transport.Endpoint) (storer.Storer, error) { return l.st, nil }

// Serve implements Engine.
func (e *GoGitEngine) Serve(ctx context.Context, op Operation) error {
	st := filesystem.NewStorage(osfs.New(op.Dir), cache.NewObjectLRUDefault())
	defer st.Close()
	srv := server.NewServer(dirLoader{st})
	ep, err := transport.NewEndpoint("/repo")
	if err != nil {
		return err
	}
	r := bufio.NewReader(op.Stdin)
	switch op.Service {
	case ServiceUploadPack:
		sess, err := srv.NewUploadPackSession(ep, nil)
		if err != nil {
			return err
		}
		defer sess.Close()
		if done, err := advertise(ctx, sess, op.Stdout, r); done || err != nil {
			return err
		}
		req := packp.NewUploadPackRequest()
		if err := req.Decode(r); err != nil {
			return fmt.Errorf("go-git upload-pack: %w", err)
		}
		resp, err := sess.UploadPack(ctx, req)
		if err != nil {
			return fmt.Errorf("go-git upload-pack: %w", err)
		}
		defer resp.Close()
		return resp.Encode(op.Stdout)
	case ServiceReceivePack:
		return e.receivePack(ctx, srv, ep, st, op, r)
	default:
		return fmt.Errorf("%s: %w", op.Service, ErrUnsupported)
	}
}

// advertise sends the session's references to w and reports whether the client then
// ended the session (a flush or EOF on r) instead of sending a request.
func advertise(ctx context.Context, sess transport.Session, w io.Writer, r *bufio.Reader) (done bool, err error) {
	ar, err := sess.AdvertisedReferencesContext(ctx)
	if err != nil {
		return false, err
	}
	if err := ar.Encode(w); err != nil {
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
	if done, err := advertise(ctx, sess, op.Stdout, r); done || err != nil {
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
