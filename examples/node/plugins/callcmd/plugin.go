// Package callcmd is the node plugin of the call client command: call an operation of
// a node over alknet/call and print its outputs as JSON.
package callcmd

import (
	"context"

	"github.com/alknet/alknet/examples/node"
)

// Plugin provides "call".
type Plugin struct{}

// New returns the call command plugin.
func New() *Plugin { return &Plugin{} }

// Name is "callcmd".
func (*Plugin) Name() string { return "callcmd" }

// Commands returns call.
func (*Plugin) Commands() []node.Command {
	return []node.Command{{
		Name:    "call",
		Summary: "call an operation of a node over alknet/call and print its outputs as JSON",
		Run:     func(ctx context.Context, c *node.CLI, args []string) error { return (&cli{c}).call(ctx, args) },
	}}
}

// cli is the invocation the command runs in.
type cli struct{ *node.CLI }
