// Package git is the node plugin of the git module: the [git] table of --config
// (decoded into the module's Settings and checked by its Validate), the alknet/git
// handler, the SSH git commands for the ssh plugin, and "alknet git init".
//
// The two plugins meet in the plugin list, explicitly:
//
//	repos := git.New()
//	plugins := []node.Plugin{ssh.New(ssh.WithExec(repos.MatchExec, repos.StartExec)), repos}
package git

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"

	"github.com/BurntSushi/toml"

	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/examples/node"
	"github.com/alknet/alknet/examples/node/metrics"
	alkgit "github.com/alknet/alknet/git"
	alkssh "github.com/alknet/alknet/ssh"
)

// DefaultRoot is the repositories directory when [git] names none, relative to the
// config file.
const DefaultRoot = "repos"

// Plugin serves alknet/git and, through the ssh plugin, the SSH git commands, when
// the config has a [git] table.
type Plugin struct {
	server atomic.Pointer[alkgit.Server]
}

// New returns the git plugin.
func New() *Plugin { return &Plugin{} }

// Name is "git".
func (*Plugin) Name() string { return "git" }

// Config is the plugin's part of --config: the [git] table (nil when absent).
type Config struct {
	Git *alkgit.Settings `toml:"git"`
}

// Resolve makes the root relative to the config file's directory.
func (c *Config) Resolve(dir string) {
	if c.Git != nil {
		if c.Git.Root == "" {
			c.Git.Root = DefaultRoot
		}
		c.Git.Resolve(dir)
	}
}

// Validate checks the [git] table; errors name the key ("git.engine: ...").
func (c *Config) Validate() error {
	if c.Git == nil {
		return nil
	}
	if err := c.Git.Validate(); err != nil {
		return fmt.Errorf("git.%w", err)
	}
	return nil
}

// NewConfig returns the default: no [git], no git service.
func (*Plugin) NewConfig() node.Config { return &Config{} }

// Setup builds the alknet/git server when the config has a [git] table; the chosen
// engine is logged.
func (p *Plugin) Setup(_ context.Context, env *node.Env) ([]core.ProtocolHandler, error) {
	s := env.Config(p).(*Config).Git
	if s == nil {
		return nil, nil
	}
	engine, err := alkgit.NewEngine(s.Engine)
	if err != nil {
		return nil, fmt.Errorf("build handlers: alknet/git: %w", err)
	}
	srv, err := alkgit.NewServer(alkgit.Config{Root: s.Root, MaxDepth: s.MaxDepth, Engine: engine, Logger: env.Logger})
	if err != nil {
		return nil, fmt.Errorf("build handlers: alknet/git: %w", err)
	}
	p.server.Store(srv)
	env.AddMetrics(func() []metrics.Family { return families(srv.Stats()) })
	return []core.ProtocolHandler{srv}, nil
}

// MatchExec reports whether the node serves git and cmd is a git command, for the
// ssh plugin's WithExec.
func (p *Plugin) MatchExec(cmd string) bool {
	return p.server.Load() != nil && alkgit.IsCommand(cmd)
}

// StartExec serves a git command of an SSH session, for the ssh plugin's WithExec.
func (p *Plugin) StartExec(ctx context.Context, req alkssh.ExecRequest) (func() uint32, error) {
	srv := p.server.Load()
	if srv == nil {
		return nil, fmt.Errorf("%w: the node serves no git", alkssh.ErrExecDenied)
	}
	return srv.StartExecEnv(ctx, req.Identity, req.Command, req.Env, req.Stdin, req.Stdout, req.Stderr)
}

// Commands returns "git init".
func (p *Plugin) Commands() []node.Command {
	return []node.Command{{Name: "git", Summary: "create a bare repository: git init [--config FILE] NAME", Run: p.run}}
}

func (p *Plugin) run(_ context.Context, cli *node.CLI, args []string) error {
	if len(args) == 0 || args[0] != "init" {
		return node.Usagef(`git: want "git init [--config FILE] NAME"`)
	}
	fs := cli.NewFlagSet("git init", cli.Name()+" git init [--config FILE] NAME")
	cfgPath := fs.String("config", "", "TOML `FILE` whose [git] root holds the repositories (default: ./"+DefaultRoot+")")
	pos, err := fs.ParseArgs(args[1:])
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return node.Usagef("git init: want one repository NAME")
	}
	s := alkgit.Settings{Root: DefaultRoot, MaxDepth: alkgit.DefaultMaxDepth}
	if *cfgPath != "" {
		var c Config
		if _, err := toml.DecodeFile(*cfgPath, &c); err != nil {
			return &node.ConfigError{Err: fmt.Errorf("%s: %w", *cfgPath, err)}
		}
		if c.Git != nil {
			s = *c.Git
		}
		if s.Root == "" {
			s.Root = DefaultRoot
		}
		s.Resolve(filepath.Dir(*cfgPath))
		if err := s.Validate(); err != nil {
			return &node.ConfigError{Err: fmt.Errorf("git.%w", err)}
		}
	}
	if err := os.MkdirAll(s.Root, 0o755); err != nil {
		return err
	}
	dir, err := alkgit.InitDepth(s.Root, pos[0], s.MaxDepth)
	switch {
	case errors.Is(err, alkgit.ErrInvalidName):
		return node.Usagef("git init: %q: %v", node.Clip(pos[0]), err)
	case err != nil:
		return err
	}
	_, err = fmt.Fprintln(cli.Stdout, dir)
	return err
}
