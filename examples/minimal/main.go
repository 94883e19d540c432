// Command minimal is a node composed of two plugins: alknet/echo and alknet/ssh. It
// shares everything else with alknet (flags, state directory and identity, --config
// with its [ssh] table, reload on SIGHUP, drain on SIGINT) and links no call or HTTP
// code.
//
//	go run ./examples/minimal serve --listen 127.0.0.1:4433
package main

import (
	"github.com/alknet/alknet/examples/node"
	"github.com/alknet/alknet/examples/node/plugins/echo"
	"github.com/alknet/alknet/examples/node/plugins/ssh"
)

func main() { minimal().Main() }

// minimal is the node: its name and its plugins, in ALPN preference order.
func minimal() *node.Node {
	return &node.Node{
		Name:    "minimal",
		Plugins: []node.Plugin{echo.New(), ssh.New()},
	}
}
