package vault

import (
	"slices"

	"encoding/json"
	"errors"
	"fmt"
	"github.com/alknet/alknet/core/tlsconf"
	"io"
	"math"
	"os"
	"path/filepath"

	"github.com/alknet/alknet/vault"

	"github.com/alknet/alknet/examples/node"
)

// Vault command limits.
const (
	// maxSecretSize bounds the secret vault seal reads from stdin (64 KiB).
	maxSecretSize = 64 << 10
)

// Flag help shared by the commands that unlock or write a keystore.
const (
	newPassphraseFileUsage = "read the new keystore passphrase from `FILE` (mode 0600 or a pipe; one trailing newline is stripped); " +
		"without it alknet prompts on the terminal, twice"
	bip39PassphraseFileUsage = "read an optional BIP39 passphrase (the \"25th word\") from `FILE`, with the rules of --passphrase-file; " +
		"recovering the mnemonic then needs it too (default: none)"
	vaultStateUsage = "state directory `DIR` holding vault.keystore (default ~/.alknet)"
)

const vaultUsageText = `Usage: alknet vault <subcommand> [flags]

The vault holds this node's keys as a BIP39 mnemonic, sealed with a passphrase in
DIR/vault.keystore (Argon2id and AES-256-GCM, mode 0600). While that file exists, serve,
id and pipe use the vault's identity key instead of DIR/node.key, so restoring the
mnemonic restores the node's fingerprint.

Subcommands:
  init     create the keystore from a new mnemonic and print the mnemonic, once
  recover  create the keystore from a mnemonic read on stdin
  seal     encrypt a secret read on stdin into an EncryptedData JSON blob
  open     decrypt an EncryptedData JSON blob read on stdin

Run "alknet vault <subcommand> -h" for its flags.
`

// vault dispatches to a vault subcommand.
func (c *cli) vault(args []string) error {
	if len(args) == 0 {
		return node.Usagef(`vault: missing subcommand: init, recover, seal or open (run "alknet help vault" for usage)`)
	}
	sub, rest := args[0], args[1:]
	switch sub {
	case "init":
		return c.vaultInit(rest)
	case "recover":
		return c.vaultRecover(rest)
	case "seal":
		return c.vaultSeal(rest)
	case "open":
		return c.vaultOpen(rest)
	case "help", "-h", "-help", "--help":
		if len(rest) > 0 {
			return c.help(rest)
		}
		_, err := io.WriteString(c.Stdout, vaultUsageText)
		return err
	}
	return node.Usagef(`vault: unknown subcommand %q; want init, recover, seal or open (run "alknet help vault" for usage)`, sub)
}

// vaultSubcommands are the subcommands "alknet help vault SUBCOMMAND" knows.
var vaultSubcommands = []string{"init", "recover", "seal", "open"}

// vaultInit creates the keystore from a new mnemonic and prints the mnemonic.
func (c *cli) vaultInit(args []string) error {
	const name = "vault init"
	cmd := c.NewFlagSet(name, "alknet vault init [--state DIR] [--words N] [--passphrase-file FILE] [--bip39-passphrase-file FILE]")
	state := cmd.String("state", "", vaultStateUsage)
	words := cmd.Int("words", vault.DefaultWords, "number of words `N` of the new mnemonic: 12, 15, 18, 21 or 24")
	passFile := cmd.String("passphrase-file", "", newPassphraseFileUsage)
	bip39File := cmd.String("bip39-passphrase-file", "", bip39PassphraseFileUsage)
	pos, err := cmd.ParseArgs(args)
	if err != nil {
		return err
	}
	if err := noArguments(cmd, pos); err != nil {
		return err
	}
	switch *words {
	case 12, 15, 18, 21, 24:
	default:
		return node.Usagef(`vault init: --words %d: want 12, 15, 18, 21 or 24 (run "alknet vault init -h" for usage)`, *words)
	}
	dir, ksPath, err := c.newKeystorePath(name, *state)
	if err != nil {
		return err
	}
	bip39Pass, pass, err := c.newKeystorePassphrases(ksPath, *bip39File, *passFile)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	defer clear(bip39Pass)
	defer clear(pass)

	m, err := vault.NewMnemonic(*words)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	defer m.Destroy()
	fp, err := c.writeKeystore(name, ksPath, m, bip39Pass, pass)
	if err != nil {
		return err
	}

	// The mnemonic goes to stdout once, in one write. If it cannot be shown, the
	// keystore just written would seal a mnemonic nobody has: remove it.
	phrase := m.Phrase()
	out := make([]byte, len(phrase)+1)
	copy(out, phrase)
	out[len(phrase)] = '\n'
	clear(phrase)
	_, err = c.Stdout.Write(out)
	clear(out)
	if err != nil {
		if rmErr := os.Remove(ksPath); rmErr != nil {
			return fmt.Errorf("%s: write stdout: %w; the mnemonic was not shown, and removing %s failed: %w", name, err, ksPath, rmErr)
		}
		return fmt.Errorf("%s: write stdout: %w; the mnemonic was not shown, so %s was removed", name, err, ksPath)
	}
	fmt.Fprintf(c.Stderr, "Write these %d words down and keep them offline: they restore this node's keys and nothing else can. They will not be shown again.\n", m.Words())
	if len(bip39Pass) > 0 {
		fmt.Fprintln(c.Stderr, "Restoring them also needs the BIP39 passphrase of --bip39-passphrase-file.")
	}
	c.reportKeystore(dir, ksPath, fp)
	return nil
}

// vaultRecover creates the keystore from a mnemonic read on stdin.
func (c *cli) vaultRecover(args []string) error {
	const name = "vault recover"
	cmd := c.NewFlagSet(name, "alknet vault recover [--state DIR] [--passphrase-file FILE] [--bip39-passphrase-file FILE] < MNEMONIC")
	state := cmd.String("state", "", vaultStateUsage)
	passFile := cmd.String("passphrase-file", "", newPassphraseFileUsage)
	bip39File := cmd.String("bip39-passphrase-file", "", bip39PassphraseFileUsage)
	pos, err := cmd.ParseArgs(args)
	if err != nil {
		return err
	}
	if err := noArguments(cmd, pos); err != nil {
		return err
	}
	dir, ksPath, err := c.newKeystorePath(name, *state)
	if err != nil {
		return err
	}
	phrase, err := node.ReadLimited(c.Stdin, vault.MaxMnemonicLength, "the mnemonic on stdin")
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	m, err := vault.ParseMnemonic(phrase)
	clear(phrase)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	defer m.Destroy()
	bip39Pass, pass, err := c.newKeystorePassphrases(ksPath, *bip39File, *passFile)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	defer clear(bip39Pass)
	defer clear(pass)
	fp, err := c.writeKeystore(name, ksPath, m, bip39Pass, pass)
	if err != nil {
		return err
	}
	c.reportKeystore(dir, ksPath, fp)
	return nil
}

// newKeystorePassphrases reads the optional BIP39 passphrase (from bip39File) and then
// the new keystore's passphrase (from passFile, or prompted twice), for init and
// recover. The caller clears both.
func (c *cli) newKeystorePassphrases(ksPath, bip39File, passFile string) (bip39Pass, pass []byte, err error) {
	bip39Pass, err = readOptionalPassphraseFile("--bip39-passphrase-file", bip39File)
	if err != nil {
		return nil, nil, err
	}
	pass, err = c.Passphrase(ksPath, passFile, true)
	if err != nil {
		clear(bip39Pass)
		return nil, nil, err
	}
	return bip39Pass, pass, nil
}

// vaultSeal encrypts a secret read on stdin and prints the EncryptedData blob.
func (c *cli) vaultSeal(args []string) error {
	const name = "vault seal"
	cmd := c.NewFlagSet(name, "alknet vault seal [--state DIR] [--passphrase-file FILE] [--key-version N] [--raw] < SECRET")
	state := cmd.String("state", "", vaultStateUsage)
	passFile := cmd.String("passphrase-file", "", node.PassphraseFileUsage)
	keyVersion := cmd.Uint("key-version", uint(vault.CurrentKeyVersion), "encrypt under the vault key of version `N` (2 or more)")
	raw := cmd.Bool("raw", false, "encrypt stdin exactly as read (by default one trailing newline is stripped)")
	pos, err := cmd.ParseArgs(args)
	if err != nil {
		return err
	}
	if err := noArguments(cmd, pos); err != nil {
		return err
	}
	if *keyVersion > math.MaxUint32 {
		return node.Usagef("vault seal: --key-version %d is too large", *keyVersion)
	}
	kv := uint32(*keyVersion)
	if _, err := vault.EncryptionPath(kv); err != nil {
		return node.Usagef("vault seal: --key-version %d: %v", kv, err)
	}
	ksPath, err := existingKeystorePath(*state)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	secret, err := node.ReadLimited(c.Stdin, maxSecretSize, "the secret on stdin")
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	defer clear(secret)
	plaintext := secret
	if !*raw {
		plaintext = node.TrimNewline(secret)
	}
	v, err := c.UnlockKeystore(ksPath, *passFile)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	defer v.Lock()
	ed, err := v.Encrypt(plaintext, kv)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	blob, err := json.Marshal(ed)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if _, err := c.Stdout.Write(append(blob, '\n')); err != nil {
		return fmt.Errorf("%s: write stdout: %w", name, err)
	}
	return nil
}

// vaultOpen decrypts an EncryptedData blob read on stdin and writes the plaintext.
func (c *cli) vaultOpen(args []string) error {
	const name = "vault open"
	cmd := c.NewFlagSet(name, "alknet vault open [--state DIR] [--passphrase-file FILE] < BLOB")
	state := cmd.String("state", "", vaultStateUsage)
	passFile := cmd.String("passphrase-file", "", node.PassphraseFileUsage)
	pos, err := cmd.ParseArgs(args)
	if err != nil {
		return err
	}
	if err := noArguments(cmd, pos); err != nil {
		return err
	}
	ksPath, err := existingKeystorePath(*state)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	blob, err := node.ReadLimited(c.Stdin, vault.MaxEncryptedDataSize, "the encrypted data on stdin")
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	ed, err := vault.ParseEncryptedData(blob)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	v, err := c.UnlockKeystore(ksPath, *passFile)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	defer v.Lock()
	plaintext, err := v.Decrypt(ed)
	if errors.Is(err, vault.ErrDecrypt) {
		return fmt.Errorf("%s: %w (the blob was sealed by another vault, or it was changed)", name, err)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	defer clear(plaintext)
	if _, err := c.Stdout.Write(plaintext); err != nil {
		return fmt.Errorf("%s: write stdout: %w", name, err)
	}
	return nil
}

// noArguments refuses positional arguments.
func noArguments(cmd *node.FlagSet, pos []string) error {
	if len(pos) > 0 {
		return node.Usagef(`%s: unexpected argument %q (run "alknet %s -h" for usage)`, cmd.Name(), pos[0], cmd.Name())
	}
	return nil
}

// newKeystorePath resolves the state directory and returns it with its keystore path,
// refusing when the keystore already exists.
func (c *cli) newKeystorePath(name, state string) (dir, ksPath string, err error) {
	dir, err = node.StateDir(state)
	if err != nil {
		return "", "", fmt.Errorf("%s: %w", name, err)
	}
	ksPath = filepath.Join(dir, node.KeystoreFileName)
	exists, err := node.KeystoreExists(ksPath)
	if err != nil {
		return "", "", fmt.Errorf("%s: %w", name, err)
	}
	if exists {
		return "", "", keystoreExistsError(name, ksPath)
	}
	return dir, ksPath, nil
}

// keystoreExistsError says that the keystore at path is left alone.
func keystoreExistsError(name, path string) error {
	return fmt.Errorf("%s: %s already exists and will not be overwritten (move it away first to create a new vault)", name, path)
}

// existingKeystorePath resolves the state directory and returns its keystore path,
// which must exist.
func existingKeystorePath(state string) (string, error) {
	dir, err := node.StateDir(state)
	if err != nil {
		return "", err
	}
	ksPath := filepath.Join(dir, node.KeystoreFileName)
	exists, err := node.KeystoreExists(ksPath)
	if err != nil {
		return "", err
	}
	if !exists {
		return "", fmt.Errorf(`%s holds no %s: run "alknet vault init" or "alknet vault recover" first`, dir, node.KeystoreFileName)
	}
	return ksPath, nil
}

// writeKeystore writes m to the keystore at ksPath and returns the node fingerprint m
// gives. The fingerprint is computed first, so that nothing is written when it fails.
func (c *cli) writeKeystore(name, ksPath string, m *vault.Mnemonic, bip39Pass, pass []byte) (string, error) {
	fp, err := mnemonicFingerprint(m, bip39Pass)
	if err != nil {
		return "", fmt.Errorf("%s: %w", name, err)
	}
	if err := vault.WriteKeystore(ksPath, m, bip39Pass, pass, c.argon2Params()); err != nil {
		if errors.Is(err, vault.ErrKeystoreExists) {
			return "", keystoreExistsError(name, ksPath)
		}
		return "", fmt.Errorf("%s: %w", name, err)
	}
	return fp, nil
}

// reportKeystore tells on stderr where the keystore went and which fingerprint the
// node now has, and that node.key is no longer used when there is one.
func (c *cli) reportKeystore(dir, ksPath, fp string) {
	fmt.Fprintf(c.Stderr, "keystore written to %s\nnode fingerprint: %s\n", ksPath, fp)
	keyPath := filepath.Join(dir, node.KeyFileName)
	if _, err := os.Lstat(keyPath); err == nil {
		fmt.Fprintf(c.Stderr, "note: %s is no longer used now that the vault holds the node's identity; the node's fingerprint is the one above\n", keyPath)
	}
}

// argon2Params returns the Argon2id parameters for new keystores.
func (c *cli) argon2Params() vault.KeystoreParams {
	if c.KeystoreParams == (vault.KeystoreParams{}) {
		return vault.DefaultKeystoreParams()
	}
	return c.KeystoreParams
}

// readOptionalPassphraseFile is node.ReadPassphraseFile, or nil when path is empty.
func readOptionalPassphraseFile(flagName, path string) ([]byte, error) {
	if path == "" {
		return nil, nil
	}
	return node.ReadPassphraseFile(flagName, path)
}

// help prints the help of "help vault [SUBCOMMAND]"; args are the words after vault.
func (c *cli) help(args []string) error {
	switch len(args) {
	case 0:
		_, err := io.WriteString(c.Stdout, vaultUsageText)
		return err
	case 1:
		if !slices.Contains(vaultSubcommands, args[0]) {
			return node.Usagef(`help: unknown vault subcommand %q; run "alknet help vault" for usage`, args[0])
		}
		return c.vault([]string{args[0], "-h"})
	}
	return node.Usagef("help: too many arguments")
}

// mnemonicFingerprint returns the node fingerprint that m with the BIP39 passphrase
// bip39Pass gives: the fingerprint of its vault.PathIdentity key.
func mnemonicFingerprint(m *vault.Mnemonic, bip39Pass []byte) (string, error) {
	v := vault.New()
	defer v.Lock()
	if err := v.UnlockMnemonic(m, bip39Pass); err != nil {
		return "", err
	}
	key, err := node.VaultIdentityKey(v)
	if err != nil {
		return "", err
	}
	defer clear(key)
	return tlsconf.Fingerprint(key), nil
}
