package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"

	"github.com/alknet/alknet/call"
	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/vault"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	if len(os.Args) > 1 && slices.Contains(hangUpEnds, os.Args[1]) {
		// A hang-up (a closed terminal, or OpenSSH ending its ProxyCommand) ends these
		// like an interrupt, so the connection is closed cleanly rather than left for
		// the node to time out; but quietly, as nobody is listening any more.
		var hangUp context.CancelCauseFunc
		ctx, hangUp = context.WithCancelCause(ctx)
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		go func() {
			<-hup
			hangUp(errHangUp)
		}()
	}
	go func() {
		// After the first SIGINT/SIGTERM, restore the default action so that a second
		// one kills a node that is stuck draining.
		<-ctx.Done()
		stop()
	}()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if errors.Is(context.Cause(ctx), errHangUp) {
		os.Exit(exitCode(err))
	}
	os.Exit(report(os.Stderr, err))
}

// errHangUp is the cause of a context a SIGHUP ended (hangUpEnds).
var errHangUp = errors.New("hang-up")

// hangUpEnds are the commands that SIGHUP ends like SIGINT. serve takes SIGHUP as its
// reload signal instead; the others keep its default action.
var hangUpEnds = []string{"pipe", "connect"}

// run executes the command line args (without the program name). It reads os.Stdin (for
// pipe and the vault commands), prompts for passphrases on /dev/tty and, while serve
// runs, takes SIGHUP as the reload signal. The error maps to an exit code with exitCode.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := &cli{
		stdin:  os.Stdin,
		stdout: stdout,
		stderr: stderr,
		prompt: terminalPrompt(ctx, ttyPath),
		notifyReload: func() (<-chan os.Signal, func()) {
			ch := make(chan os.Signal, 1)
			signal.Notify(ch, syscall.SIGHUP)
			return ch, func() { signal.Stop(ch) }
		},
	}
	return c.run(ctx, args)
}

// cli is one invocation of the command with its inputs and outputs, so that tests can
// run commands in-process with their own stdin, outputs and reload trigger.
type cli struct {
	stdin          io.Reader
	stdout, stderr io.Writer

	// notifyReload subscribes to the reload signal (SIGHUP). serve subscribes as soon
	// as it starts and unsubscribes when it returns, so the other commands keep the
	// default SIGHUP behaviour, or for pipe and connect (hangUpEnds) an interrupt's.
	// Nil: no reloads.
	notifyReload func() (ch <-chan os.Signal, stop func())

	// prompt asks for a passphrase without echo, showing msg; the caller wipes the
	// result. The real command prompts on the terminal (terminalPrompt); it returns
	// errNoTerminal when there is none. Nil: no terminal.
	prompt func(msg string) ([]byte, error)

	// keystoreParams are the Argon2id parameters of keystores the vault commands
	// write; the zero value means vault.DefaultKeystoreParams(). Tests use the (fast)
	// vault.MinKeystoreParams().
	keystoreParams vault.KeystoreParams

	// Test hooks, nil in the real command.
	// ready is called once serve listens and has printed "ready".
	ready func(serveInfo)
	// reloaded is called after every reload attempt with its result.
	reloaded func(error)
	// callOps registers more operations for serve's alknet/call handler, after the
	// demo ones.
	callOps func(*call.Registry) error
}

// serveInfo is what serve tells the ready hook.
type serveInfo struct {
	Fingerprint string
	QUIC, TCP   net.Addr
	// SSHHostKey is the KeyFingerprint of the alknet/ssh host key.
	SSHHostKey string
	Store      *core.DynamicStore
}

// usageError is a bad invocation: unknown command or flag, missing or conflicting
// flags. Exit code 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// configError is an invalid configuration file or value. Exit code 2.
type configError struct{ err error }

func (e *configError) Error() string { return e.err.Error() }
func (e *configError) Unwrap() error { return e.err }

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// exitCode maps run's error to the process exit code: 0 for success (and for help that
// was asked for), 2 for usage and configuration errors, 1 for every other failure
// (a *callFailure included).
func exitCode(err error) int {
	var ue *usageError
	var ce *configError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.As(err, &ue), errors.As(err, &ce):
		return exitUsage
	default:
		return exitFailure
	}
}

// report prints err as one line "alknet: ..." on w (nothing for success or help) and
// returns the exit code. A *callFailure is printed as its CallError JSON instead, one
// line without the prefix.
func report(w io.Writer, err error) int {
	code := exitCode(err)
	if err == nil || code == exitOK {
		return code
	}
	if cf, ok := errors.AsType[*callFailure](err); ok {
		fmt.Fprintf(w, "%s\n", cf.json)
		return code
	}
	fmt.Fprintf(w, "alknet: %s\n", oneLine(err.Error()))
	return code
}

// oneLine folds a multi-line message into one line.
func oneLine(s string) string {
	s = strings.TrimSpace(s)
	if !strings.ContainsAny(s, "\r\n") {
		return s
	}
	lines := strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == '\r' })
	out := lines[:0]
	for _, l := range lines {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return strings.Join(out, "; ")
}

const usageText = `Usage: alknet <command> [flags] [arguments]

Commands:
  serve   run a node: QUIC and TCP+TLS on one port, handlers chosen by ALPN
  id      print this node's fingerprint (creating its identity if needed)
  pipe    connect to a node and pipe stdin and stdout over one stream
  call    call an operation of a node over alknet/call and print its outputs as JSON
  connect keep an SSH connection to a node up: SOCKS5 proxy, -L and -R forwards
  vault   keep the node's keys in a mnemonic vault: vault init, recover, seal, open
  help    show this help, or "alknet help <command>" for a command's flags

Exit codes: 0 success, 1 runtime failure, 2 usage or configuration error.
`

// run dispatches to the subcommand.
func (c *cli) run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usagef(`no command given; run "alknet help" for usage`)
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return c.serve(ctx, rest)
	case "id":
		return c.id(rest)
	case "pipe":
		return c.pipe(ctx, rest)
	case "call":
		return c.call(ctx, rest)
	case "connect":
		return c.connect(ctx, rest)
	case "vault":
		return c.vault(rest)
	case "help", "-h", "-help", "--help":
		return c.help(rest)
	}
	return usagef(`unknown command %q; run "alknet help" for usage`, cmd)
}

func (c *cli) help(args []string) error {
	if len(args) == 0 {
		_, err := io.WriteString(c.stdout, usageText)
		return err
	}
	if args[0] == "vault" && len(args) == 2 {
		if !slices.Contains(vaultSubcommands, args[1]) {
			return usagef(`help: unknown vault subcommand %q; run "alknet help vault" for usage`, args[1])
		}
		return c.vault([]string{args[1], "-h"})
	}
	if len(args) > 1 {
		return usagef("help: too many arguments")
	}
	switch args[0] {
	case "serve", "id", "pipe", "call", "connect":
		return c.run(context.Background(), []string{args[0], "-h"})
	case "vault":
		_, err := io.WriteString(c.stdout, vaultUsageText)
		return err
	case "help":
		_, err := io.WriteString(c.stdout, usageText)
		return err
	}
	return usagef(`help: unknown command %q; run "alknet help" for usage`, args[0])
}

// command is one subcommand's flag set and synopsis.
type command struct {
	name     string
	synopsis string
	fs       *flag.FlagSet
}

// newCommand returns a flag set that reports instead of printing: errors become one-line
// usage errors and -h prints the synopsis and flags on stdout.
func (c *cli) newCommand(name, synopsis string) *command {
	fs := flag.NewFlagSet("alknet "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return &command{name: name, synopsis: synopsis, fs: fs}
}

// parse parses args, allowing flags and positional arguments in any order ("--" ends
// the flags). It returns the positional arguments. For -h it prints the command's usage
// on stdout and returns flag.ErrHelp.
func (cmd *command) parse(c *cli, args []string) ([]string, error) {
	var pos []string
	for {
		err := cmd.fs.Parse(args)
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(c.stdout, "Usage: %s\n\nFlags:\n", cmd.synopsis)
			cmd.fs.SetOutput(c.stdout)
			cmd.fs.PrintDefaults()
			cmd.fs.SetOutput(io.Discard)
			return nil, flag.ErrHelp
		}
		if err != nil {
			return nil, usagef(`%s: %v (run "alknet %s -h" for usage)`, cmd.name, err, cmd.name)
		}
		rest := cmd.fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if used := len(args) - len(rest); used > 0 && args[used-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}
