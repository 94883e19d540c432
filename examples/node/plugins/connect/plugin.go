// Package connect is the node plugin of the connect client command: keep a connection
// to a node up (alknet/forward over QUIC, or SSH) with a SOCKS5 proxy and -L and -R
// forwards.
package connect

import (
	"context"

	"github.com/alknet/alknet/examples/node"
)

// Plugin provides "connect".
type Plugin struct{}

// New returns the connect plugin.
func New() *Plugin { return &Plugin{} }

// Name is "connect".
func (*Plugin) Name() string { return "connect" }

// Commands returns connect.
func (*Plugin) Commands() []node.Command {
	return []node.Command{{
		Name:       "connect",
		Summary:    "keep a connection to a node up (alknet/forward or SSH): SOCKS5 proxy, -L and -R forwards",
		Run:        func(ctx context.Context, c *node.CLI, args []string) error { return (&cli{c}).connect(ctx, args) },
		HangUpEnds: true,
	}}
}

// cli is the invocation the command runs in.
type cli struct{ *node.CLI }
