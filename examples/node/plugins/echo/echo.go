// Package echo is the node plugin of the alknet/echo demo handler, which echoes
// every stream back to its sender.
package echo

import (
	"context"

	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/examples/echo"
	"github.com/alknet/alknet/examples/node"
)

// Plugin serves alknet/echo.
type Plugin struct{}

// New returns the echo plugin.
func New() *Plugin { return &Plugin{} }

// Name is "echo".
func (*Plugin) Name() string { return "echo" }

// Setup returns the alknet/echo handler.
func (*Plugin) Setup(context.Context, *node.Env) ([]core.ProtocolHandler, error) {
	return []core.ProtocolHandler{echo.Handler{}}, nil
}
