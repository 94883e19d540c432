// Package call is the node plugin of the call protocol on alknet/call: one operation
// registry with the demo operations, the [[openapi]] and [[mcp]] imports of --config
// and any operations the binary adds (WithOperations). The http plugin serves the same
// registry over HTTP: it takes this plugin as its registry source.
package call

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/alknet/alknet/call"
	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/examples/demo"
	"github.com/alknet/alknet/examples/node"
	"github.com/alknet/alknet/examples/node/metrics"
	"github.com/alknet/alknet/http/client"
)

// Plugin serves alknet/call.
type Plugin struct {
	ops func(*call.Registry) error
	reg *call.Registry
}

// Option configures the plugin.
type Option func(*Plugin)

// WithOperations registers more operations with register, after the demo ones and the
// imports.
func WithOperations(register func(*call.Registry) error) Option {
	return func(p *Plugin) { p.ops = register }
}

// New returns the call plugin.
func New(opts ...Option) *Plugin {
	p := &Plugin{}
	for _, o := range opts {
		o(p)
	}
	return p
}

// Name is "call".
func (*Plugin) Name() string { return "call" }

// Config is the plugin's part of --config: the [[openapi]] and [[mcp]] imports, read
// at start (a reload does not change them).
type Config struct {
	OpenAPI []OpenAPI `toml:"openapi"`
	MCP     []MCP     `toml:"mcp"`

	dir     string
	openapi []openapiImport
	mcp     []mcpImport
}

// OpenAPI is one [[openapi]] import: an HTTP API described by an OpenAPI 3 document,
// served as call operations <namespace>/<operation>.
type OpenAPI struct {
	Namespace      string `toml:"namespace"`
	Spec           string `toml:"spec"`
	BaseURL        string `toml:"base_url"`
	Auth           string `toml:"auth"`
	CredentialFile string `toml:"credential_file"`
	Expose         bool   `toml:"expose"`
}

// MCP is one [[mcp]] import: the tools of a streamable-HTTP MCP server, served as call
// operations <namespace>/<tool>.
type MCP struct {
	Namespace      string `toml:"namespace"`
	Endpoint       string `toml:"endpoint"`
	CredentialFile string `toml:"credential_file"`
	Expose         bool   `toml:"expose"`
}

// Resolve makes relative paths resolve against dir (node.PathResolver).
func (c *Config) Resolve(dir string) { c.dir = dir }

// Validate checks the imports; errors name the entry ("openapi[0].spec: ...").
func (c *Config) Validate() error {
	var err error
	if c.openapi, err = c.openapiImports(c.dir); err != nil {
		return err
	}
	c.mcp, err = c.mcpImports(c.dir, c.openapi)
	return err
}

// NewConfig returns the default: no imports.
func (*Plugin) NewConfig() node.Config { return &Config{} }

// Registry is the plugin's operation registry, built by Setup (nil before).
func (p *Plugin) Registry() *call.Registry { return p.reg }

// Setup imports the [[openapi]] and [[mcp]] operations and returns the alknet/call
// handler over the registry.
func (p *Plugin) Setup(ctx context.Context, env *node.Env) ([]core.ProtocolHandler, error) {
	cfg, _ := env.Config(p).(*Config)
	if cfg == nil {
		return nil, errors.New("call: no config")
	}
	// One outbound HTTP client for every import: never configured from the environment.
	outbound, err := client.New(client.Config{Logger: env.Logger})
	if err != nil {
		return nil, err
	}
	env.OnClose(func() error { outbound.Close(); return nil })
	imported, err := importOpenAPI(cfg.openapi, outbound)
	if err != nil {
		return nil, err
	}
	for _, o := range cfg.openapi {
		env.Logger.Info("imported OpenAPI operations", slog.String("namespace", o.namespace), slog.Bool("expose", o.expose))
	}
	mcpRegs, importers, err := importMCP(ctx, cfg.mcp, outbound, env.Logger)
	if err != nil {
		return nil, err
	}
	env.OnClose(func() error { closeAll(importers); return nil })
	imported = append(imported, mcpRegs...)

	reg := call.NewRegistry()
	if err := demo.Register(reg); err != nil {
		return nil, fmt.Errorf("build handlers: %w", err)
	}
	for _, r := range imported {
		if err := reg.Register(r); err != nil {
			return nil, fmt.Errorf("build handlers: imported operation %s: %w", r.Spec.Name, err)
		}
	}
	if p.ops != nil {
		if err := p.ops(reg); err != nil {
			return nil, fmt.Errorf("build handlers: call operations: %w", err)
		}
	}
	p.reg = reg
	env.AddMetrics(func() []metrics.Family { return families(reg.Stats()) })
	return []core.ProtocolHandler{&call.Dispatcher{
		Registry:   reg,
		Identities: env.Identities,
		Limits:     env.Store.Limits,
		Logger:     env.Logger,
	}}, nil
}
