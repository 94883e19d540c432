// Package ssh is the node plugin of the alknet/ssh server and of alknet/forward beside
// it (the same forwarding policy, without SSH inside QUIC): the [ssh] table of --config
// (decoded into the ssh module's Settings and checked by its Validate), the server
// with the node's SSH host key and identities, and its reload.
package ssh

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/examples/node"
	"github.com/alknet/alknet/examples/node/metrics"
	alkssh "github.com/alknet/alknet/ssh"
)

// Plugin serves alknet/ssh and, under the same forwarding policy, alknet/forward: when
// the node starts with a policy that allows something and without [ssh]
// disable_forward (a reload changes its policy, never whether it is served).
type Plugin struct {
	server    *alkssh.Server
	forwarder *alkssh.Forwarder // nil with disable_forward
	// base is the server configuration without the [ssh] settings: host key,
	// identities, logger, subsystems.
	base       alkssh.Config
	subsystems map[string]alkssh.SubsystemHandler
	execs      []execRoute
}

// execRoute is a WithExec handler.
type execRoute struct {
	match func(cmd string) bool
	start func(ctx context.Context, req alkssh.ExecRequest) (func() uint32, error)
}

// WithExec serves the exec requests whose command match accepts with start, ahead of
// the [ssh] exec allow list, such as the git plugin's:
//
//	repos := git.New()
//	ssh.New(ssh.WithExec(repos.MatchExec, repos.StartExec))
func WithExec(match func(cmd string) bool, start func(ctx context.Context, req alkssh.ExecRequest) (func() uint32, error)) Option {
	return func(p *Plugin) { p.execs = append(p.execs, execRoute{match: match, start: start}) }
}

// router runs a WithExec handler for the commands it matches, next for the others.
type router struct {
	routes []execRoute
	next   alkssh.Executor
}

func (r *router) Start(ctx context.Context, req alkssh.ExecRequest) (func() uint32, error) {
	for _, rt := range r.routes {
		if rt.match(req.Command) {
			return rt.start(ctx, req)
		}
	}
	if r.next == nil {
		return nil, fmt.Errorf("%w: exec refused", alkssh.ErrExecDenied)
	}
	return r.next.Start(ctx, req)
}

// withRoutes wraps cfg's executor in the WithExec routes.
func (p *Plugin) withRoutes(cfg alkssh.Config) alkssh.Config {
	if len(p.execs) > 0 {
		cfg.Exec = &router{routes: p.execs, next: cfg.Exec}
	}
	return cfg
}

// Option configures the ssh plugin.
type Option func(*Plugin)

// WithSubsystem serves the SSH subsystem name with h, such as the sftp plugin's:
//
//	files := sftp.New()
//	ssh.New(ssh.WithSubsystem("sftp", files.SSHSubsystem))
func WithSubsystem(name string, h alkssh.SubsystemHandler) Option {
	return func(p *Plugin) {
		if p.subsystems == nil {
			p.subsystems = make(map[string]alkssh.SubsystemHandler)
		}
		p.subsystems[name] = h
	}
}

// New returns the ssh plugin.
func New(opts ...Option) *Plugin {
	p := &Plugin{}
	for _, o := range opts {
		o(p)
	}
	return p
}

// Name is "ssh".
func (*Plugin) Name() string { return "ssh" }

// Config is the plugin's part of --config: the [ssh] table.
type Config struct {
	SSH alkssh.Settings `toml:"ssh"`
}

// Validate checks the [ssh] table; errors name the key ("ssh.exec_allow[0]: ...").
func (c *Config) Validate() error {
	if err := c.SSH.Validate(); err != nil {
		return fmt.Errorf("ssh.%w", err)
	}
	return nil
}

// NewConfig returns the default: exec refused, no certificate authorities, the
// default auth attempts, forwarding denied.
func (*Plugin) NewConfig() node.Config { return &Config{} }

// Setup builds the alknet/ssh server with the node's SSH host key; a [[peers]]
// fingerprint logs in over SSH with the key it uses for TLS.
func (p *Plugin) Setup(_ context.Context, env *node.Env) ([]core.ProtocolHandler, error) {
	if env.SSHHostKey == nil {
		return nil, errors.New("build handlers: alknet/ssh: no host key")
	}
	signer, err := alkssh.NewSigner(env.SSHHostKey)
	if err != nil {
		return nil, fmt.Errorf("build handlers: alknet/ssh: host key: %w", err)
	}
	p.base = alkssh.Config{HostKey: signer, Identities: env.Identities, Logger: env.Logger, Subsystems: p.subsystems}
	cfg, err := env.Config(p).(*Config).SSH.Config(p.base)
	if err != nil {
		return nil, fmt.Errorf("build handlers: alknet/ssh: %w", err)
	}
	if p.server, err = alkssh.NewServer(p.withRoutes(cfg)); err != nil {
		return nil, fmt.Errorf("build handlers: alknet/ssh: %w", err)
	}
	srv := p.server
	env.AddMetrics(func() []metrics.Family { return families(srv.Stats()) })
	handlers := []core.ProtocolHandler{p.server}
	s := env.Config(p).(*Config).SSH
	fcfg, err := s.ForwardConfig(p.forwardBase())
	if err != nil {
		return nil, fmt.Errorf("build handlers: alknet/forward: %w", err)
	}
	if !s.DisableForward && allowsAny(&fcfg.Forwarding) {
		if p.forwarder, err = alkssh.NewForwarder(fcfg); err != nil {
			return nil, fmt.Errorf("build handlers: alknet/forward: %w", err)
		}
		handlers = append(handlers, p.forwarder)
		fwd := p.forwarder
		env.AddMetrics(func() []metrics.Family { return forwardFamilies(fwd.Stats()) })
	}
	return handlers, nil
}

// allowsAny reports whether a policy can allow anything: its default or one of its
// rules allows. A node whose policy denies everything does not serve alknet/forward.
func allowsAny(p *alkssh.ForwardingPolicy) bool {
	if p.Default == alkssh.Allow {
		return true
	}
	for _, r := range p.Rules {
		if r.Action == alkssh.Allow {
			return true
		}
	}
	return false
}

// forwardBase is the alknet/forward configuration without the [ssh] settings.
func (p *Plugin) forwardBase() alkssh.ForwardConfig {
	return alkssh.ForwardConfig{Logger: p.base.Logger}
}

// Reload applies a reloaded [ssh] table to new connections; open ones keep the
// configuration they started with.
func (p *Plugin) Reload(c node.Config) ([]slog.Attr, error) {
	s := c.(*Config).SSH
	cfg, err := s.Config(p.base)
	if err == nil {
		err = p.server.Reload(p.withRoutes(cfg))
	}
	if err != nil {
		return nil, fmt.Errorf("alknet/ssh: %w", err)
	}
	if p.forwarder != nil {
		fcfg, err := s.ForwardConfig(p.forwardBase())
		if err == nil {
			err = p.forwarder.Reload(fcfg)
		}
		if err != nil {
			return nil, fmt.Errorf("alknet/forward: %w", err)
		}
	}
	return []slog.Attr{
		slog.Int("ssh_exec_allow", len(s.ExecAllow)),
		slog.Int("ssh_cert_authorities", len(s.CertAuthorities)),
		slog.Int("ssh_forwarding_rules", len(s.Forwarding.Rules)),
	}, nil
}
