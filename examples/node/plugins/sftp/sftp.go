// Package sftp is the node plugin of the sftp module: the [[sftp.exports]] tables of
// --config (decoded into the module's Settings and checked by its Validate), the
// alknet/sftp handler, the SSH subsystem "sftp" for the ssh plugin, and their reload.
//
// The two plugins meet in the plugin list, explicitly:
//
//	files := sftp.New()
//	plugins := []node.Plugin{ssh.New(ssh.WithSubsystem("sftp", files.SSHSubsystem)), files}
package sftp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"

	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/examples/node"
	"github.com/alknet/alknet/examples/node/metrics"
	alksftp "github.com/alknet/alknet/sftp"
	alkssh "github.com/alknet/alknet/ssh"
)

// ErrNoExports is returned by SSHSubsystem when the node serves no exports.
var ErrNoExports = errors.New("sftp: the node serves no exports")

// Plugin serves alknet/sftp and, through the ssh plugin, the SSH subsystem "sftp",
// when the config has exports.
type Plugin struct {
	server atomic.Pointer[alksftp.Server]
	logger *slog.Logger
}

// New returns the sftp plugin.
func New() *Plugin { return &Plugin{} }

// Name is "sftp".
func (*Plugin) Name() string { return "sftp" }

// Config is the plugin's part of --config: the [sftp] table.
type Config struct {
	SFTP alksftp.Settings `toml:"sftp"`
}

// Resolve makes relative export roots relative to the config file's directory.
func (c *Config) Resolve(dir string) { c.SFTP.Resolve(dir) }

// Validate checks the [sftp] table; errors name the key ("sftp.exports[0].root: ...").
func (c *Config) Validate() error {
	if err := c.SFTP.Validate(); err != nil {
		return fmt.Errorf("sftp.%w", err)
	}
	return nil
}

// NewConfig returns the default: no exports.
func (*Plugin) NewConfig() node.Config { return &Config{} }

// Setup builds the alknet/sftp server when the config has exports; without any, the
// node serves no sftp (and adding exports later takes a restart).
func (p *Plugin) Setup(_ context.Context, env *node.Env) ([]core.ProtocolHandler, error) {
	s := env.Config(p).(*Config).SFTP
	if len(s.Exports) == 0 {
		return nil, nil
	}
	p.logger = env.Logger
	srv, err := alksftp.NewServer(alksftp.Config{Exports: s.ExportList(), Logger: env.Logger})
	if err != nil {
		return nil, fmt.Errorf("build handlers: alknet/sftp: %w", err)
	}
	p.server.Store(srv)
	env.AddMetrics(func() []metrics.Family { return families(srv.Stats()) })
	return []core.ProtocolHandler{srv}, nil
}

// Reload applies reloaded exports (and, through the store, scopes) to new sessions;
// open sessions keep theirs.
func (p *Plugin) Reload(c node.Config) ([]slog.Attr, error) {
	s := c.(*Config).SFTP
	srv := p.server.Load()
	if srv == nil {
		if len(s.Exports) > 0 {
			return nil, errors.New("alknet/sftp: the node started without exports: restart it to serve sftp")
		}
		return nil, nil
	}
	if err := srv.Reload(alksftp.Config{Exports: s.ExportList(), Logger: p.logger}); err != nil {
		return nil, fmt.Errorf("alknet/sftp: %w", err)
	}
	return []slog.Attr{slog.Int("sftp_exports", len(s.Exports))}, nil
}

// SSHSubsystem serves the SSH subsystem "sftp" as id: it is an alkssh.SubsystemHandler
// for the ssh plugin's WithSubsystem.
func (p *Plugin) SSHSubsystem(ctx context.Context, ch alkssh.Channel, id core.Identity) error {
	srv := p.server.Load()
	if srv == nil {
		return ErrNoExports
	}
	return srv.ServeSubsystem(ctx, ch, id)
}

var _ alkssh.SubsystemHandler = (*Plugin)(nil).SSHSubsystem
