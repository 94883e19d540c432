package ssh

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// ErrExecDenied is wrapped by AllowListExecutor's refusals.
var ErrExecDenied = errors.New("ssh: exec denied")

// DefaultExecSearchPath is where AllowListExecutor looks allowed programs up unless
// told otherwise (a colon-separated list).
const DefaultExecSearchPath = "/usr/local/bin:/usr/bin:/bin"

// MaxCommandLength bounds an exec request's command line (32 KiB).
const MaxCommandLength = 32 << 10

// AllowListExecutor runs commands whose program name (argv[0]) is on its allow list,
// for identities holding its scope. The command line is split into arguments like a
// shell would split words — blanks separate, single quotes, double quotes and
// backslashes quote — but nothing is expanded and no shell ever runs. The program is
// looked up by name in SearchPath (names with a slash are refused), and runs with
// Env as its whole environment, stdin, stdout and stderr streamed over the
// channel, and its exit status reported to the client (128+n after signal n).
type AllowListExecutor struct {
	// Allow lists the program names that may run, such as "echo" or "uptime".
	Allow []string
	// Scope is the scope an identity needs (default ScopeExec).
	Scope string
	// SearchPath are the directories programs are looked up in
	// (DefaultExecSearchPath).
	SearchPath []string
	// Env is the environment of the commands (default: PATH set to SearchPath and
	// LANG=C.UTF-8; the server's own environment is never passed on).
	Env []string
	// Dir is the working directory ("" : /).
	Dir string
	// WaitDelay bounds how long output is still read after the program exits (its
	// children may hold the pipes; default 2 s).
	WaitDelay time.Duration
}

// Start implements Executor.
func (e *AllowListExecutor) Start(ctx context.Context, req ExecRequest) (func() uint32, error) {
	scope := e.Scope
	if scope == "" {
		scope = ScopeExec
	}
	if !req.Identity.HasScope(scope) {
		return nil, fmt.Errorf("%w: identity lacks scope %s", ErrExecDenied, scope)
	}
	if len(req.Command) > MaxCommandLength {
		return nil, fmt.Errorf("%w: command longer than %d bytes", ErrExecDenied, MaxCommandLength)
	}
	argv, err := SplitCommand(req.Command)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrExecDenied, err)
	}
	if len(argv) == 0 {
		return nil, fmt.Errorf("%w: empty command", ErrExecDenied)
	}
	if strings.ContainsRune(argv[0], '/') || !slices.Contains(e.Allow, argv[0]) {
		return nil, fmt.Errorf("%w: program not allowed", ErrExecDenied)
	}
	search := e.SearchPath
	if len(search) == 0 {
		search = strings.Split(DefaultExecSearchPath, ":")
	}
	path, ok := lookup(search, argv[0])
	if !ok {
		return nil, fmt.Errorf("%w: program not found", ErrExecDenied)
	}
	env := e.Env
	if env == nil {
		env = []string{"PATH=" + strings.Join(search, ":"), "LANG=C.UTF-8"}
	}
	dir := e.Dir
	if dir == "" {
		dir = "/"
	}
	cmd := exec.CommandContext(ctx, path, argv[1:]...)
	cmd.Args[0] = argv[0]
	cmd.Env = env
	cmd.Dir = dir
	cmd.Stdout = req.Stdout
	cmd.Stderr = req.Stderr
	cmd.WaitDelay = e.WaitDelay
	if cmd.WaitDelay <= 0 {
		cmd.WaitDelay = 2 * time.Second
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%w: start: %w", ErrExecDenied, err)
	}
	// Copied here rather than by exec, so that Wait does not wait for a client that
	// never closes its stdin.
	go func() {
		_, _ = io.Copy(stdin, req.Stdin)
		_ = stdin.Close()
	}()
	return func() uint32 {
		err := cmd.Wait()
		return exitStatus(cmd, err)
	}, nil
}

// exitStatus is the SSH exit status of a finished command.
func exitStatus(cmd *exec.Cmd, err error) uint32 {
	if cmd.ProcessState == nil {
		return 255
	}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + uint32(ws.Signal())
	}
	if code := cmd.ProcessState.ExitCode(); code >= 0 {
		return uint32(code)
	}
	_ = err
	return 255
}

// lookup finds an executable regular file name in dirs.
func lookup(dirs []string, name string) (string, bool) {
	for _, d := range dirs {
		p := filepath.Join(d, name)
		st, err := os.Stat(p)
		if err == nil && st.Mode().IsRegular() && st.Mode().Perm()&0o111 != 0 {
			return p, true
		}
	}
	return "", false
}

// ErrCommandSyntax is wrapped by SplitCommand's errors.
var ErrCommandSyntax = errors.New("ssh: command syntax")

// SplitCommand splits a command line into words the way a POSIX shell splits simple
// words, without expanding anything: blanks (space, tab, newline) separate words;
// '…' quotes literally; "…" quotes with \" \\ \$ \` and \newline as escapes; a
// backslash outside quotes escapes the next character. Operators such as ; | & < > are
// ordinary characters (no shell runs). An unterminated quote or a trailing backslash
// is an error.
func SplitCommand(s string) ([]string, error) {
	var (
		words []string
		cur   strings.Builder
		in    bool // inside a word
	)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n':
			if in {
				words = append(words, cur.String())
				cur.Reset()
				in = false
			}
		case c == '\\':
			if i+1 >= len(s) {
				return nil, fmt.Errorf("%w: trailing backslash", ErrCommandSyntax)
			}
			i++
			if s[i] != '\n' { // backslash-newline joins lines and makes no word
				cur.WriteByte(s[i])
				in = true
			}
		case c == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, fmt.Errorf("%w: unterminated single quote", ErrCommandSyntax)
			}
			cur.WriteString(s[i+1 : i+1+j])
			i += j + 1
			in = true
		case c == '"':
			i++
			for ; ; i++ {
				if i >= len(s) {
					return nil, fmt.Errorf("%w: unterminated double quote", ErrCommandSyntax)
				}
				if s[i] == '"' {
					break
				}
				if s[i] == '\\' && i+1 < len(s) && strings.IndexByte("\"\\$`\n", s[i+1]) >= 0 {
					i++
					if s[i] == '\n' {
						continue
					}
				}
				cur.WriteByte(s[i])
			}
			in = true
		default:
			cur.WriteByte(c)
			in = true
		}
	}
	if in {
		words = append(words, cur.String())
	}
	return words, nil
}
