// Package pipe is the node plugin of the pipe client command: connect to a node and
// pipe stdin and stdout over one stream of any ALPN.
package pipe

import (
	"context"

	"github.com/alknet/alknet/examples/node"
)

// Plugin provides "pipe".
type Plugin struct{}

// New returns the pipe plugin.
func New() *Plugin { return &Plugin{} }

// Name is "pipe".
func (*Plugin) Name() string { return "pipe" }

// Commands returns pipe.
func (*Plugin) Commands() []node.Command {
	return []node.Command{{
		Name:       "pipe",
		Summary:    "connect to a node and pipe stdin and stdout over one stream",
		Run:        func(ctx context.Context, c *node.CLI, args []string) error { return (&cli{c}).pipe(ctx, args) },
		HangUpEnds: true,
	}}
}

// cli is the invocation the command runs in.
type cli struct{ *node.CLI }
