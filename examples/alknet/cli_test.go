package main

import (
	"context"
	"crypto/ed25519"
	"io"
	"os"
	"slices"

	alkcall "github.com/alknet/alknet/call"
	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/core/tlsconf"
	alknode "github.com/alknet/alknet/examples/node"
	"github.com/alknet/alknet/examples/node/plugins/call"
	"github.com/alknet/alknet/examples/node/plugins/callcmd"
	sshplugin "github.com/alknet/alknet/examples/node/plugins/ssh"
	alkssh "github.com/alknet/alknet/ssh"
	"github.com/alknet/alknet/vault"
)

// This file maps the names the tests use onto the node and its plugins, so that the
// tests of the alknet command drive the binary's plugin list.

// cli is one in-process invocation of alknet with its inputs, outputs and hooks.
type cli struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	notifyReload   func() (<-chan os.Signal, func())
	prompt         func(msg string) ([]byte, error)
	keystoreParams vault.KeystoreParams
	ready          func(serveInfo)
	reloaded       func(error)
	// callOps registers more operations for serve's alknet/call handler.
	callOps func(*alkcall.Registry) error
}

// run runs the command line args.
func (c *cli) run(ctx context.Context, args []string) error {
	var opts []call.Option
	if c.callOps != nil {
		opts = append(opts, call.WithOperations(c.callOps))
	}
	nc := alknet(opts...).NewCLI(c.stdin, c.stdout, c.stderr)
	nc.NotifyReload = c.notifyReload
	nc.Prompt = c.prompt
	nc.KeystoreParams = c.keystoreParams
	nc.OnReady = c.ready
	nc.OnReload = c.reloaded
	return nc.Run(ctx, args)
}

// serveInfo is what serve tells the ready hook.
type serveInfo = alknode.Ready

type (
	usageError  = alknode.UsageError
	configError = alknode.ConfigError
)

var (
	usagef         = alknode.Usagef
	exitCode       = alknode.ExitCode
	terminalPrompt = alknode.TerminalPrompt
	newCallFailure = callcmd.NewFailure
)

// report prints err as alknet does and returns the exit code.
func report(w io.Writer, err error) int {
	return alknet().NewCLI(nil, nil, w).Report(err)
}

const (
	exitOK      = alknode.ExitOK
	exitFailure = alknode.ExitFailure
	exitUsage   = alknode.ExitUsage

	keyFileName      = alknode.KeyFileName
	pubFileName      = alknode.PubFileName
	keystoreFileName = alknode.KeystoreFileName
	ttyPath          = alknode.TTYPath
	keyComment       = alknode.KeyComment
	maxConfigSize    = 1 << 20
	callSynopsis     = callcmd.Synopsis
	maxSecretSize    = 64 << 10
)

// vaultSubcommands are the subcommands "alknet help vault SUBCOMMAND" knows.
var vaultSubcommands = []string{"init", "recover", "seal", "open"}

// vaultIdentityKey derives the node identity key from the unlocked vault v.
func vaultIdentityKey(v *vault.Vault) (ed25519.PrivateKey, error) { return alknode.VaultIdentityKey(v) }

// mnemonicFingerprint returns the node fingerprint of m with bip39Pass.
func mnemonicFingerprint(m *vault.Mnemonic, bip39Pass []byte) (string, error) {
	v := vault.New()
	defer v.Lock()
	if err := v.UnlockMnemonic(m, bip39Pass); err != nil {
		return "", err
	}
	key, err := alknode.VaultIdentityKey(v)
	if err != nil {
		return "", err
	}
	defer clear(key)
	return tlsconf.Fingerprint(key), nil
}

// nodeConfig is a --config file parsed for alknet's plugins.
type nodeConfig struct {
	dynamic core.DynamicConfig
	ssh     sshSettings
}

// sshSettings is the [ssh] table as the alknet/ssh server takes it.
type sshSettings struct {
	execAllow       []string
	cas             []alkssh.CertAuthority
	maxAuthAttempts int
	forwarding      alkssh.ForwardingPolicy
}

// parseNodeConfig parses a --config file for alknet's plugins.
func parseNodeConfig(data []byte, dir string) (nodeConfig, error) {
	plugins := alknet().Plugins
	pc, err := alknode.ParseConfig(data, dir, plugins)
	if err != nil {
		return nodeConfig{}, err
	}
	nc := nodeConfig{dynamic: pc.Dynamic}
	for _, p := range plugins {
		sc, ok := pc.Config(p).(*sshplugin.Config)
		if !ok {
			continue
		}
		conf, err := sc.SSH.Config(alkssh.Config{})
		if err != nil {
			return nodeConfig{}, err
		}
		nc.ssh = sshSettings{
			execAllow:       slices.Clone(sc.SSH.ExecAllow),
			cas:             conf.CertAuthorities,
			maxAuthAttempts: conf.MaxAuthAttempts,
			forwarding:      conf.Forwarding,
		}
	}
	return nc, nil
}

// vaultEd25519 derives the Ed25519 key at path from the unlocked vault v.
var vaultEd25519 = alknode.VaultEd25519

// run runs args as the process does (os.Stdin, the terminal, SIGHUP).
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return alknet().Run(ctx, args, stdout, stderr)
}
