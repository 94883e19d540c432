package node

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/alknet/alknet/core/tlsconf"
	"github.com/alknet/alknet/vault"
)

// Node is a binary: its name and its plugins, in order. The order decides the ALPN
// preference order of the handlers (a TLS client offering several gets the first),
// the order of the subcommands in the usage text and the order reloads reach them.
type Node struct {
	// Name is the program name in messages ("alknet").
	Name string
	// Plugins are the node's plugins, in order.
	Plugins []Plugin
}

// Main runs the command line of the process and exits with its exit code: serve runs
// until SIGINT or SIGTERM (a second one kills it) and reloads --config on SIGHUP.
func (n *Node) Main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	if len(os.Args) > 1 && n.hangUpEnds(os.Args[1]) {
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
	err := n.Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if errors.Is(context.Cause(ctx), errHangUp) {
		os.Exit(ExitCode(err))
	}
	os.Exit(n.NewCLI(nil, nil, os.Stderr).Report(err))
}

// Run executes the command line args (without the program name) as the process does:
// it reads os.Stdin, prompts for passphrases on /dev/tty and, while serve runs, takes
// SIGHUP as the reload signal. The error maps to an exit code with ExitCode.
func (n *Node) Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := n.NewCLI(os.Stdin, stdout, stderr)
	c.Prompt = TerminalPrompt(ctx, TTYPath)
	c.NotifyReload = func() (<-chan os.Signal, func()) {
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, syscall.SIGHUP)
		return ch, func() { signal.Stop(ch) }
	}
	return c.Run(ctx, args)
}

// errHangUp is the cause of a context a SIGHUP ended (Command.HangUpEnds).
var errHangUp = errors.New("hang-up")

func (n *Node) hangUpEnds(name string) bool {
	for _, cmd := range n.commands() {
		if cmd.Name == name {
			return cmd.HangUpEnds
		}
	}
	return false
}

// commands returns the subcommands of the Commander plugins, in order.
func (n *Node) commands() []Command {
	var cmds []Command
	for _, p := range n.Plugins {
		if c, ok := p.(Commander); ok {
			cmds = append(cmds, c.Commands()...)
		}
	}
	return cmds
}

// NewCLI returns an invocation of n reading stdin and writing stdout and stderr, with
// no terminal and no reload signal; set the fields to change that.
func (n *Node) NewCLI(stdin io.Reader, stdout, stderr io.Writer) *CLI {
	return &CLI{node: n, Stdin: stdin, Stdout: stdout, Stderr: stderr, sessions: tlsconf.NewSessionCache(0)}
}

// CLI is one invocation of a node's command with its inputs, outputs and hooks, so
// that tests run commands in-process.
type CLI struct {
	node *Node
	// sessions are the TLS sessions of this invocation's pinned dials (DialOptions), so
	// that a command that reconnects (a tunnel's redial) resumes instead of making a
	// full handshake.
	sessions *tlsconf.SessionCache

	// Stdin, Stdout and Stderr are the command's standard streams.
	Stdin          io.Reader
	Stdout, Stderr io.Writer

	// NotifyReload subscribes to the reload signal (SIGHUP). serve subscribes as soon
	// as it starts and unsubscribes when it returns. Nil: no reloads.
	NotifyReload func() (ch <-chan os.Signal, stop func())

	// Prompt asks for a passphrase without echo, showing msg; the caller wipes the
	// result. Main prompts on the terminal; it returns ErrNoTerminal when there is
	// none. Nil: no terminal.
	Prompt func(msg string) ([]byte, error)

	// KeystoreParams are the Argon2id parameters of keystores written; the zero value
	// means vault.DefaultKeystoreParams(). Tests use vault.MinKeystoreParams().
	KeystoreParams vault.KeystoreParams

	// OnReady, when set, is called once serve listens and has printed "ready".
	OnReady func(Ready)
	// OnReload, when set, is called after every reload attempt with its result.
	OnReload func(error)
}

// Name is the program name.
func (c *CLI) Name() string { return c.node.Name }

// UsageError is a bad invocation: unknown command or flag, missing or conflicting
// flags. Exit code 2.
type UsageError struct{ Msg string }

// Error returns the message.
func (e *UsageError) Error() string { return e.Msg }

// Usagef returns a *UsageError.
func Usagef(format string, args ...any) error {
	return &UsageError{Msg: fmt.Sprintf(format, args...)}
}

// ConfigError is an invalid configuration file or value. Exit code 2.
type ConfigError struct{ Err error }

// Error returns the cause's message.
func (e *ConfigError) Error() string { return e.Err.Error() }

// Unwrap returns the cause.
func (e *ConfigError) Unwrap() error { return e.Err }

// RawReport is an error that Report prints as its Report text alone, without the
// "name: " prefix (the call command's CallError JSON).
type RawReport interface {
	error
	Report() string
}

// Exit codes.
const (
	ExitOK      = 0
	ExitFailure = 1
	ExitUsage   = 2
)

// ExitCode maps Run's error to the process exit code: 0 for success (and for help that
// was asked for), 2 for usage and configuration errors, 1 for every other failure.
func ExitCode(err error) int {
	var ue *UsageError
	var ce *ConfigError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return ExitOK
	case errors.As(err, &ue), errors.As(err, &ce):
		return ExitUsage
	default:
		return ExitFailure
	}
}

// Report prints err as one line "name: ..." on Stderr (nothing for success or help)
// and returns the exit code. A RawReport is printed as its Report text instead.
func (c *CLI) Report(err error) int {
	code := ExitCode(err)
	if err == nil || code == ExitOK {
		return code
	}
	if rr, ok := errors.AsType[RawReport](err); ok {
		fmt.Fprintf(c.Stderr, "%s\n", rr.Report())
		return code
	}
	fmt.Fprintf(c.Stderr, "%s: %s\n", c.node.Name, OneLine(err.Error()))
	return code
}

// OneLine folds a multi-line message into one line.
func OneLine(s string) string {
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

// usage is the text of "help".
func (c *CLI) usage() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Usage: %s <command> [flags] [arguments]\n\nCommands:\n", c.node.Name)
	line := func(name, summary string) { fmt.Fprintf(&b, "  %-7s %s\n", name, summary) }
	line("serve", "run a node: QUIC and TCP+TLS on one port, handlers chosen by ALPN")
	line("config", "config check --config FILE: validate a --config file as serve would, without starting")
	for _, cmd := range c.node.commands() {
		line(cmd.Name, cmd.Summary)
	}
	line("version", "print the version, VCS revision, Go and quic-go versions (also --version)")
	line("help", fmt.Sprintf("show this help, or \"%s help <command>\" for a command's flags", c.node.Name))
	b.WriteString("\nExit codes: 0 success, 1 runtime failure, 2 usage or configuration error.\n")
	return b.String()
}

// Run executes the command line args (without the program name). The error maps to
// an exit code with ExitCode.
func (c *CLI) Run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return Usagef(`no command given; run "%s help" for usage`, c.node.Name)
	}
	name, rest := args[0], args[1:]
	switch name {
	case "serve":
		return c.serve(ctx, rest)
	case "config":
		return c.configCommand(rest)
	case "version", "-version", "--version":
		return c.version(rest)
	case "help", "-h", "-help", "--help":
		return c.help(rest)
	}
	for _, cmd := range c.node.commands() {
		if cmd.Name == name {
			return cmd.Run(ctx, c, rest)
		}
	}
	return Usagef(`unknown command %q; run "%s help" for usage`, name, c.node.Name)
}

func (c *CLI) help(args []string) error {
	if len(args) == 0 || len(args) == 1 && args[0] == "help" {
		_, err := io.WriteString(c.Stdout, c.usage())
		return err
	}
	switch args[0] {
	case "serve":
		if len(args) > 1 {
			return Usagef("help: too many arguments")
		}
		return c.serve(context.Background(), []string{"-h"})
	case "config":
		return c.helpConfig(args[1:])
	case "version":
		if len(args) > 1 {
			return Usagef("help: too many arguments")
		}
		return c.version([]string{"-h"})
	}
	for _, cmd := range c.node.commands() {
		if cmd.Name != args[0] {
			continue
		}
		if cmd.Help != nil {
			return cmd.Help(c, args[1:])
		}
		if len(args) > 1 {
			return Usagef("help: too many arguments")
		}
		return cmd.Run(context.Background(), c, []string{"-h"})
	}
	if len(args) > 1 {
		return Usagef("help: too many arguments")
	}
	return Usagef(`help: unknown command %q; run "%s help" for usage`, args[0], c.node.Name)
}

// FlagSet is one subcommand's flag set and synopsis.
type FlagSet struct {
	*flag.FlagSet
	name     string
	synopsis string
	cli      *CLI
}

// NewFlagSet returns a flag set for the subcommand name (which may be two words,
// "vault init") that reports instead of printing: errors become one-line usage errors
// and -h prints the synopsis and flags on Stdout.
func (c *CLI) NewFlagSet(name, synopsis string) *FlagSet {
	fs := flag.NewFlagSet(c.node.Name+" "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return &FlagSet{FlagSet: fs, name: name, synopsis: synopsis, cli: c}
}

// ParseArgs parses args, allowing flags and positional arguments in any order ("--"
// ends the flags). It returns the positional arguments. For -h it prints the command's
// usage on Stdout and returns flag.ErrHelp.
func (f *FlagSet) ParseArgs(args []string) ([]string, error) {
	var pos []string
	for {
		err := f.Parse(args)
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(f.cli.Stdout, "Usage: %s\n\nFlags:\n", f.synopsis)
			f.SetOutput(f.cli.Stdout)
			f.PrintDefaults()
			f.SetOutput(io.Discard)
			return nil, flag.ErrHelp
		}
		if err != nil {
			return nil, Usagef(`%s: %v (run "%s %s -h" for usage)`, f.name, err, f.cli.node.Name, f.name)
		}
		rest := f.Args()
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

// checkHostPort reports whether addr is HOST:PORT.
func checkHostPort(addr string) error {
	_, _, err := net.SplitHostPort(addr)
	return err
}

// Name is the subcommand's name ("vault init").
func (f *FlagSet) Name() string { return f.name }
