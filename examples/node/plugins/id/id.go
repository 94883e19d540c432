// Package id is the node plugin of the id client command: print the node's
// fingerprint, creating its identity if needed.
package id

import (
	"context"
	"fmt"

	"github.com/alknet/alknet/examples/node"
)

// Plugin provides "id".
type Plugin struct{}

// New returns the id plugin.
func New() *Plugin { return &Plugin{} }

// Name is "id".
func (*Plugin) Name() string { return "id" }

// Commands returns id.
func (*Plugin) Commands() []node.Command {
	return []node.Command{{
		Name:    "id",
		Summary: "print this node's fingerprint (creating its identity if needed)",
		Run:     func(_ context.Context, c *node.CLI, args []string) error { return id(c, args) },
	}}
}

// id prints the node's fingerprint.
func id(c *node.CLI, args []string) error {
	cmd := c.NewFlagSet("id", "alknet id [--state DIR] [--passphrase-file FILE]")
	state := cmd.String("state", "", "state directory `DIR` holding vault.keystore or node.key (default ~/.alknet)")
	passFile := cmd.String("passphrase-file", "", node.PassphraseFileUsage)
	pos, err := cmd.ParseArgs(args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return node.Usagef(`id: unexpected argument %q (run "alknet id -h" for usage)`, pos[0])
	}
	ident, err := c.NodeIdentity(*state, *passFile)
	if err != nil {
		return fmt.Errorf("id: %w", err)
	}
	defer clear(ident.Key())
	_, err = fmt.Fprintln(c.Stdout, ident.Fingerprint())
	return err
}
