package node_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"go.uber.org/goleak"

	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/examples/node"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// fake is a plugin with every optional part, recording what the node did with it.
type fake struct {
	name  string
	alpns []string

	setupErr error
	closed   *[]string // handlers closed, by ALPN
	flagged  *bool
	reloads  []*fakeConfig
	run      []string
}

// fakeConfig is the [<name>] table of a fake: a struct with one key.
type fakeConfig struct {
	Table struct {
		Value string `toml:"value"`
	} `toml:"table"`
}

func (c *fakeConfig) Validate() error {
	if c.Table.Value == "bad" {
		return errors.New("value: bad")
	}
	return nil
}

func (f *fake) Name() string { return f.name }

// NewConfig returns a struct with the one field tagged with the plugin's name.
func (f *fake) NewConfig() node.Config {
	if f.name == "a" {
		return &aTables{}
	}
	return &bTables{}
}

func (f *fake) Setup(_ context.Context, env *node.Env) ([]core.ProtocolHandler, error) {
	if f.setupErr != nil {
		return nil, f.setupErr
	}
	if env.Config(f) == nil || env.Key == nil || env.Store == nil || env.Identities == nil || env.Logger == nil {
		return nil, errors.New("incomplete env")
	}
	var hs []core.ProtocolHandler
	for _, a := range f.alpns {
		hs = append(hs, &closer{alpn: a, closed: f.closed})
	}
	return hs, nil
}

func (f *fake) Reload(c node.Config) ([]slog.Attr, error) {
	t := &c.(*aTables).A
	f.reloads = append(f.reloads, t)
	return []slog.Attr{slog.String(f.name+"_value", t.Table.Value)}, nil
}

func (f *fake) ServeFlags(fs *flag.FlagSet) string {
	fs.BoolVar(f.flagged, f.name+"-flag", false, "a flag of plugin "+f.name)
	return "[--" + f.name + "-flag]"
}

func (f *fake) Commands() []node.Command {
	return []node.Command{{Name: f.name + "-cmd", Summary: "the command of " + f.name, Run: func(_ context.Context, c *node.CLI, args []string) error {
		f.run = args
		_, err := fmt.Fprintln(c.Stdout, "ran", f.name)
		return err
	}}}
}

// aTables and bTables are the configs of the fakes a and b: the key of the name.
type (
	aTables struct {
		A fakeConfig `toml:"a"`
	}
	bTables struct {
		B fakeConfig `toml:"b"`
	}
)

func (t *aTables) Validate() error {
	if err := t.A.Validate(); err != nil {
		return fmt.Errorf("a.%w", err)
	}
	return nil
}

func (t *bTables) Validate() error {
	if err := t.B.Validate(); err != nil {
		return fmt.Errorf("b.%w", err)
	}
	return nil
}

// closer is a handler that records being closed.
type closer struct {
	alpn   string
	closed *[]string
}

func (c *closer) ALPN() string { return c.alpn }

func (c *closer) Handle(context.Context, *core.Connection, core.AuthContext) error { return nil }

func (c *closer) Close() error {
	*c.closed = append(*c.closed, c.alpn)
	return nil
}

func newFake(name string, closed *[]string, alpns ...string) *fake {
	return &fake{name: name, alpns: alpns, closed: closed, flagged: new(bool)}
}

// serving runs serve on n until it is ready and returns its stderr, a reload trigger
// and the function that stops it and returns serve's result.
func serving(t *testing.T, n *node.Node, args ...string) (stderr *syncBuffer, reload func() error, stop func() error) {
	t.Helper()
	stderr = &syncBuffer{}
	pr, pw := io.Pipe()
	c := n.NewCLI(nil, pw, stderr)
	sig := make(chan os.Signal, 1)
	reloaded := make(chan error, 1)
	c.NotifyReload = func() (<-chan os.Signal, func()) { return sig, func() {} }
	c.OnReload = func(err error) { reloaded <- err }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- c.Run(ctx, append([]string{"serve", "--state", t.TempDir(), "--listen", "127.0.0.1:0"}, args...))
		pw.Close()
	}()
	sc := bufio.NewScanner(pr)
	for sc.Scan() && sc.Text() != "ready" {
	}
	go io.Copy(io.Discard, pr)
	stopped := false
	stop = func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		return <-done
	}
	t.Cleanup(func() { _ = stop() })
	reload = func() error {
		sig <- syscall.SIGHUP
		return <-reloaded
	}
	return stderr, reload, stop
}

func TestPluginOrderIsALPNOrder(t *testing.T) {
	var closed []string
	n := &node.Node{Name: "test", Plugins: []node.Plugin{newFake("b", &closed, "x/b1", "x/b2"), newFake("a", &closed, "x/a")}}
	stderr, _, stop := serving(t, n)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stderr.String(), `alpns="[x/b1 x/b2 x/a]"`) {
		t.Errorf("serving log:\n%s\nwant the ALPNs in plugin order", stderr)
	}
	if strings.Join(closed, " ") != "x/b1 x/b2 x/a" {
		t.Errorf("closed %q, want every handler once the endpoint stopped", closed)
	}
}

func TestPluginConfig(t *testing.T) {
	var closed []string
	a, b := newFake("a", &closed, "x/a"), newFake("b", &closed, "x/b")
	plugins := []node.Plugin{a, b}
	pc, err := node.ParseConfig([]byte("[a.table]\nvalue = \"one\"\n"), "", plugins)
	if err != nil {
		t.Fatal(err)
	}
	if got := pc.Config(a).(*aTables).A; got.Table.Value != "one" {
		t.Errorf("a's config: %+v", got)
	}
	cases := map[string]string{
		"[a.table]\nvalue = \"bad\"\n":  "a.value: bad",
		"[a.table]\nVALUE = \"x\"\n":    `unknown key "a.table.VALUE"`,
		"[a.table]\nother = \"x\"\n":    `unknown key "a.table.other"`,
		"[c]\nvalue = 1\n":              `unknown key "c"`,
		"[a.table]\nvalue = 1\n":        "a.table.value",
		"[limits]\nmax_connections = 5": "",
	}
	for in, want := range cases {
		_, err := node.ParseConfig([]byte(in), "", plugins)
		switch {
		case want == "" && err != nil:
			t.Errorf("%q: %v", in, err)
		case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
			t.Errorf("%q: error %v, want %q", in, err, want)
		}
	}
	// Two plugins may not own the same key.
	if _, err := node.ParseConfig(nil, "", []node.Plugin{a, newFake("a", &closed)}); err == nil || !strings.Contains(err.Error(), `both own the key "a"`) {
		t.Errorf("two owners of a: %v", err)
	}
	// A plugin that is not in the list owns no key.
	if _, err := node.ParseConfig([]byte("[a.table]\nvalue = \"one\"\n"), "", nil); err == nil || !strings.Contains(err.Error(), `unknown key "a.table"`) {
		t.Errorf("a's table without plugin a: %v", err)
	}
}

func TestPluginReload(t *testing.T) {
	var closed []string
	a := newFake("a", &closed, "x/a")
	path := filepath.Join(t.TempDir(), "node.toml")
	write := func(s string) {
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("[a.table]\nvalue = \"one\"\n")
	stderr, reload, stop := serving(t, &node.Node{Name: "test", Plugins: []node.Plugin{a}}, "--config", path)
	write("[a.table]\nvalue = \"two\"\n")
	if err := reload(); err != nil {
		t.Fatal(err)
	}
	write("[a.table]\nvalue = \"bad\"\n")
	if err := reload(); err == nil || !strings.Contains(err.Error(), "a.value: bad") {
		t.Errorf("invalid reload: %v", err)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if len(a.reloads) != 1 || a.reloads[0].Table.Value != "two" {
		t.Errorf("reloads %+v, want only the valid one", a.reloads)
	}
	if !strings.Contains(stderr.String(), `msg="config reloaded" file=`+path+` peers=0 api_keys=0 a_value=two`) {
		t.Errorf("log:\n%s\nwant the plugin's attributes on the reload line", stderr)
	}
}

func TestPluginSetupFails(t *testing.T) {
	var closed []string
	b := newFake("b", &closed)
	b.setupErr = errors.New("no luck")
	n := &node.Node{Name: "test", Plugins: []node.Plugin{newFake("a", &closed, "x/a"), b}}
	var stderr bytes.Buffer
	c := n.NewCLI(nil, io.Discard, &stderr)
	err := c.Run(t.Context(), []string{"serve", "--state", t.TempDir(), "--listen", "127.0.0.1:0"})
	if code := c.Report(err); code != node.ExitFailure || !strings.HasSuffix(stderr.String(), "\ntest: serve: no luck\n") {
		t.Errorf("exit %d, stderr %q", code, stderr.String())
	}
	if strings.Join(closed, " ") != "x/a" {
		t.Errorf("closed %q, want the handlers built before the failure", closed)
	}
}

func TestPluginCommandsAndFlags(t *testing.T) {
	var closed []string
	a, b := newFake("a", &closed), newFake("b", &closed, "x/b")
	n := &node.Node{Name: "test", Plugins: []node.Plugin{a, b}}
	var stdout bytes.Buffer
	c := n.NewCLI(nil, &stdout, io.Discard)
	if err := c.Run(t.Context(), []string{"help"}); err != nil {
		t.Fatal(err)
	}
	want := "Commands:\n  serve   run a node: QUIC and TCP+TLS on one port, handlers chosen by ALPN\n" +
		"  config  config check --config FILE: validate a --config file as serve would, without starting\n" +
		"  a-cmd   the command of a\n  b-cmd   the command of b\n" +
		"  version print the version, VCS revision, Go and quic-go versions (also --version)\n  help    show this help"
	if !strings.Contains(stdout.String(), want) {
		t.Errorf("help:\n%s\nwant\n%s", stdout.String(), want)
	}
	stdout.Reset()
	if err := c.Run(t.Context(), []string{"b-cmd", "x", "y"}); err != nil || stdout.String() != "ran b\n" || strings.Join(b.run, " ") != "x y" {
		t.Errorf("b-cmd: %v, %q, args %q", err, stdout.String(), b.run)
	}
	stdout.Reset()
	if err := c.Run(t.Context(), []string{"serve", "-h"}); !errors.Is(err, flag.ErrHelp) || !strings.Contains(stdout.String(), "[--a-flag] [--b-flag]") {
		t.Errorf("serve -h: %v\n%s", err, stdout.String())
	}
	if err := c.Run(t.Context(), []string{"nope"}); node.ExitCode(err) != node.ExitUsage {
		t.Errorf("unknown command: %v", err)
	}
	_, _, stop := serving(t, n, "--b-flag")
	if err := stop(); err != nil || !*b.flagged || *a.flagged {
		t.Errorf("serve --b-flag: %v; a %v, b %v", err, *a.flagged, *b.flagged)
	}
}
