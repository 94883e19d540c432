// Package vault is the node plugin of the vault client commands, which keep the
// node's keys in a mnemonic vault: vault init, recover, seal and open.
package vault

import (
	"context"

	"github.com/alknet/alknet/examples/node"
)

// Plugin provides "vault".
type Plugin struct{}

// New returns the vault plugin.
func New() *Plugin { return &Plugin{} }

// Name is "vault".
func (*Plugin) Name() string { return "vault" }

// Commands returns vault.
func (*Plugin) Commands() []node.Command {
	return []node.Command{{
		Name:    "vault",
		Summary: "keep the node's keys in a mnemonic vault: vault init, recover, seal, open",
		Run:     func(_ context.Context, c *node.CLI, args []string) error { return (&cli{c}).vault(args) },
		Help:    func(c *node.CLI, args []string) error { return (&cli{c}).help(args) },
	}}
}

// cli is the invocation the command runs in.
type cli struct{ *node.CLI }
