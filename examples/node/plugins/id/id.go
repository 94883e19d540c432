// Package id is the node plugin of the id client command: print the node's
// fingerprint, creating its identity if needed, or its SSH host key as OpenSSH shows it.
package id

import (
	"context"
	"crypto/ed25519"
	"fmt"

	gossh "golang.org/x/crypto/ssh"

	"github.com/alknet/alknet/core/tlsconf"
	"github.com/alknet/alknet/examples/node"
	"github.com/alknet/alknet/vault"
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
		Summary: "print this node's fingerprint (creating its identity if needed), or its SSH host key's (--ssh, --authorized-key)",
		Run:     func(_ context.Context, c *node.CLI, args []string) error { return id(c, args) },
	}}
}

// Synopsis is the id command's usage line.
const Synopsis = "alknet id [--state DIR] [--passphrase-file FILE] [--ssh | --authorized-key]"

// id prints the node's fingerprint, or with --ssh the OpenSSH SHA256 fingerprint of
// serve's SSH host key, or with --authorized-key that key's authorized_keys line.
func id(c *node.CLI, args []string) error {
	cmd := c.NewFlagSet("id", Synopsis)
	state := cmd.String("state", "", "state directory `DIR` holding vault.keystore or node.key (default ~/.alknet)")
	passFile := cmd.String("passphrase-file", "", node.PassphraseFileUsage)
	sshFP := cmd.Bool("ssh", false, "print the SSH host key's fingerprint as OpenSSH shows it (SHA256:<base64>), as ssh-keygen -l does")
	authKey := cmd.Bool("authorized-key", false, "print the SSH host key as an authorized_keys / known_hosts line (ssh-ed25519 AAAA... alknet)")
	pos, err := cmd.ParseArgs(args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return node.Usagef(`id: unexpected argument %q (run "alknet id -h" for usage)`, pos[0])
	}
	if *sshFP && *authKey {
		return node.Usagef(`id: --ssh and --authorized-key exclude each other (run "alknet id -h" for usage)`)
	}
	if !*sshFP && !*authKey {
		ident, err := c.NodeIdentity(*state, *passFile)
		if err != nil {
			return fmt.Errorf("id: %w", err)
		}
		defer clear(ident.Key())
		_, err = fmt.Fprintln(c.Stdout, ident.Fingerprint())
		return err
	}
	// serve's SSH host key: the vault's SSH host key with a keystore, the identity key
	// otherwise.
	var vaultHost ed25519.PrivateKey
	ident, err := c.NodeIdentityWith(*state, *passFile, func(v *vault.Vault) error {
		var err error
		vaultHost, err = node.VaultEd25519(v, vault.PathSSHHost, "SSH host key")
		return err
	})
	if err != nil {
		return fmt.Errorf("id: %w", err)
	}
	defer clear(ident.Key())
	host := ident.Key()
	if vaultHost != nil {
		defer clear(vaultHost)
		host = vaultHost
	}
	if *authKey {
		line, err := tlsconf.AuthorizedKey(host, node.KeyComment)
		if err != nil {
			return fmt.Errorf("id: %w", err)
		}
		_, err = c.Stdout.Write(line)
		return err
	}
	pub, err := gossh.NewPublicKey(host.Public())
	if err != nil {
		return fmt.Errorf("id: SSH host key: %w", err)
	}
	_, err = fmt.Fprintln(c.Stdout, gossh.FingerprintSHA256(pub))
	return err
}
