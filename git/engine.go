package git

import (
	"context"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"time"
)

// Operation is one pack session an Engine serves.
type Operation struct {
	// Service is ServiceUploadPack, ServiceReceivePack or ServiceUploadArchive.
	Service string
	// Dir is the repository directory (resolved, under the root).
	Dir string
	// Version is the protocol version the client asked for (0 or 2).
	Version int
	// Rules are the push rules of the repository.
	Rules Rules
	// Stdin carries the client's bytes, Stdout the server's answer; Stderr receives
	// the engine's diagnostics (for the log, never the client).
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
}

// Engine serves pack sessions. Serve returns when the session ends; cancelling ctx
// ends it early.
type Engine interface {
	// Name is the engine's name in logs ("binary", "go-git").
	Name() string
	// Serve runs op to its end.
	Serve(ctx context.Context, op Operation) error
}

// DefaultSearchPath is where NewBinaryEngine looks git up when given no path.
const DefaultSearchPath = "/usr/local/bin:/usr/bin:/bin"

// BinaryEngine runs the git executable: git upload-pack, receive-pack or
// upload-archive with the repository as working directory, no shell and a fixed
// environment.
type BinaryEngine struct {
	git  string
	path string
}

// NewBinaryEngine returns an engine running git (an absolute path, or "" to look
// "git" up in DefaultSearchPath); ErrNoGit when there is none.
func NewBinaryEngine(git string) (*BinaryEngine, error) {
	if git == "" {
		for _, d := range strings.Split(DefaultSearchPath, ":") {
			if p, err := exec.LookPath(d + "/git"); err == nil {
				git = p
				break
			}
		}
		if git == "" {
			return nil, ErrNoGit
		}
	} else if _, err := exec.LookPath(git); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoGit, err)
	}
	return &BinaryEngine{git: git, path: DefaultSearchPath}, nil
}

// Name reports "binary".
func (e *BinaryEngine) Name() string { return "binary" }

// Serve implements Engine.
func (e *BinaryEngine) Serve(ctx context.Context, op Operation) error {
	args := []string{"-c", "core.hooksPath=/dev/null"}
	switch op.Service {
	case ServiceUploadPack:
		args = append(args, "-c", "uploadpack.allowFilter=true", "-c", "uploadpack.allowAnySHA1InWant=false", "upload-pack", "--strict", ".")
	case ServiceReceivePack:
		args = append(args,
			"-c", fmt.Sprintf("receive.denyNonFastForwards=%t", !op.Rules.AllowNonFastForward),
			"-c", fmt.Sprintf("receive.denyDeletes=%t", !op.Rules.AllowDeletes),
			"-c", "receive.fsckObjects=true",
			"receive-pack", ".")
	case ServiceUploadArchive:
		args = append(args, "upload-archive", ".")
	default:
		return fmt.Errorf("%w: unknown service", ErrBadRequest)
	}
	cmd := exec.CommandContext(ctx, e.git, args...)
	cmd.Dir = op.Dir
	cmd.Env = []string{
		"PATH=" + e.path,
		"LANG=C",
		"HOME=" + op.Dir,
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_TERMINAL_PROMPT=0",
	}
	if op.Version == 2 {
		cmd.Env = append(cmd.Env, "GIT_PROTOCOL=version=2")
	}
	cmd.Stdout = op.Stdout
	cmd.Stderr = op.Stderr
	cmd.WaitDelay = 2 * time.Second
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("git %s: %w", op.Service, err)
	}
	copyErr := make(chan error, 1)
	go func() {
		_, err := io.Copy(stdin, op.Stdin)
		_ = stdin.Close()
		copyErr <- err
	}()
	werr := cmd.Wait()
	// The copy ends when the client's input ends or fails (the caller closes it).
	var cerr error
	select {
	case cerr = <-copyErr:
	default:
	}
	if cerr != nil && !isBrokenPipe(cerr) {
		return cerr
	}
	if werr != nil {
		return fmt.Errorf("git %s: %w", op.Service, werr)
	}
	return nil
}

func isBrokenPipe(err error) bool {
	return err != nil && strings.Contains(err.Error(), "broken pipe")
}
