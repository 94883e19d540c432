package main

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"

	"golang.org/x/term"

	"github.com/alknet/alknet/vault"
)

// Vault command limits.
const (
	// maxSecretSize bounds the secret vault seal reads from stdin (64 KiB).
	maxSecretSize = 64 << 10
	// ttyPath is the terminal the real command prompts on.
	ttyPath = "/dev/tty"
)

// Flag help shared by the commands that unlock or write a keystore.
const (
	passphraseFileUsage = "read the keystore passphrase from `FILE` (mode 0600 or a pipe; one trailing newline is stripped); " +
		"without it alknet prompts on the terminal. Used only when DIR holds vault.keystore"
	newPassphraseFileUsage = "read the new keystore passphrase from `FILE` (mode 0600 or a pipe; one trailing newline is stripped); " +
		"without it alknet prompts on the terminal, twice"
	bip39PassphraseFileUsage = "read an optional BIP39 passphrase (the \"25th word\") from `FILE`, with the rules of --passphrase-file; " +
		"recovering the mnemonic then needs it too (default: none)"
	vaultStateUsage = "state directory `DIR` holding vault.keystore (default ~/.alknet)"
)

// errNoTerminal is what a prompt returns when there is no terminal to prompt on.
var errNoTerminal = errors.New("no --passphrase-file given and no terminal to prompt on")

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
		return usagef(`vault: missing subcommand: init, recover, seal or open (run "alknet help vault" for usage)`)
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
			return c.help(append([]string{"vault"}, rest...))
		}
		_, err := io.WriteString(c.stdout, vaultUsageText)
		return err
	}
	return usagef(`vault: unknown subcommand %q; want init, recover, seal or open (run "alknet help vault" for usage)`, sub)
}

// vaultSubcommands are the subcommands "alknet help vault SUBCOMMAND" knows.
var vaultSubcommands = []string{"init", "recover", "seal", "open"}

// vaultInit creates the keystore from a new mnemonic and prints the mnemonic.
func (c *cli) vaultInit(args []string) error {
	const name = "vault init"
	cmd := c.newCommand(name, "alknet vault init [--state DIR] [--words N] [--passphrase-file FILE] [--bip39-passphrase-file FILE]")
	state := cmd.fs.String("state", "", vaultStateUsage)
	words := cmd.fs.Int("words", vault.DefaultWords, "number of words `N` of the new mnemonic: 12, 15, 18, 21 or 24")
	passFile := cmd.fs.String("passphrase-file", "", newPassphraseFileUsage)
	bip39File := cmd.fs.String("bip39-passphrase-file", "", bip39PassphraseFileUsage)
	pos, err := cmd.parse(c, args)
	if err != nil {
		return err
	}
	if err := noArguments(cmd, pos); err != nil {
		return err
	}
	switch *words {
	case 12, 15, 18, 21, 24:
	default:
		return usagef(`vault init: --words %d: want 12, 15, 18, 21 or 24 (run "alknet vault init -h" for usage)`, *words)
	}
	dir, ksPath, err := c.newKeystorePath(name, *state)
	if err != nil {
		return err
	}
	bip39Pass, err := readOptionalPassphraseFile("--bip39-passphrase-file", *bip39File)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	defer clear(bip39Pass)
	pass, err := c.passphrase(ksPath, *passFile, true)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
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
	_, err = c.stdout.Write(out)
	clear(out)
	if err != nil {
		if rmErr := os.Remove(ksPath); rmErr != nil {
			return fmt.Errorf("%s: write stdout: %w; the mnemonic was not shown, and removing %s failed: %w", name, err, ksPath, rmErr)
		}
		return fmt.Errorf("%s: write stdout: %w; the mnemonic was not shown, so %s was removed", name, err, ksPath)
	}
	fmt.Fprintf(c.stderr, "Write these %d words down and keep them offline: they restore this node's keys and nothing else can. They will not be shown again.\n", m.Words())
	if len(bip39Pass) > 0 {
		fmt.Fprintln(c.stderr, "Restoring them also needs the BIP39 passphrase of --bip39-passphrase-file.")
	}
	c.reportKeystore(dir, ksPath, fp)
	return nil
}

// vaultRecover creates the keystore from a mnemonic read on stdin.
func (c *cli) vaultRecover(args []string) error {
	const name = "vault recover"
	cmd := c.newCommand(name, "alknet vault recover [--state DIR] [--passphrase-file FILE] [--bip39-passphrase-file FILE] < MNEMONIC")
	state := cmd.fs.String("state", "", vaultStateUsage)
	passFile := cmd.fs.String("passphrase-file", "", newPassphraseFileUsage)
	bip39File := cmd.fs.String("bip39-passphrase-file", "", bip39PassphraseFileUsage)
	pos, err := cmd.parse(c, args)
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
	phrase, err := readLimited(c.stdin, vault.MaxMnemonicLength, "the mnemonic on stdin")
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	m, err := vault.ParseMnemonic(phrase)
	clear(phrase)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	defer m.Destroy()
	bip39Pass, err := readOptionalPassphraseFile("--bip39-passphrase-file", *bip39File)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	defer clear(bip39Pass)
	pass, err := c.passphrase(ksPath, *passFile, true)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	defer clear(pass)
	fp, err := c.writeKeystore(name, ksPath, m, bip39Pass, pass)
	if err != nil {
		return err
	}
	c.reportKeystore(dir, ksPath, fp)
	return nil
}

// vaultSeal encrypts a secret read on stdin and prints the EncryptedData blob.
func (c *cli) vaultSeal(args []string) error {
	const name = "vault seal"
	cmd := c.newCommand(name, "alknet vault seal [--state DIR] [--passphrase-file FILE] [--key-version N] [--raw] < SECRET")
	state := cmd.fs.String("state", "", vaultStateUsage)
	passFile := cmd.fs.String("passphrase-file", "", passphraseFileUsage)
	keyVersion := cmd.fs.Uint("key-version", uint(vault.CurrentKeyVersion), "encrypt under the vault key of version `N` (2 or more)")
	raw := cmd.fs.Bool("raw", false, "encrypt stdin exactly as read (by default one trailing newline is stripped)")
	pos, err := cmd.parse(c, args)
	if err != nil {
		return err
	}
	if err := noArguments(cmd, pos); err != nil {
		return err
	}
	if *keyVersion > math.MaxUint32 {
		return usagef("vault seal: --key-version %d is too large", *keyVersion)
	}
	kv := uint32(*keyVersion)
	if _, err := vault.EncryptionPath(kv); err != nil {
		return usagef("vault seal: --key-version %d: %v", kv, err)
	}
	ksPath, err := existingKeystorePath(*state)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	secret, err := readLimited(c.stdin, maxSecretSize, "the secret on stdin")
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	defer clear(secret)
	plaintext := secret
	if !*raw {
		plaintext = trimNewline(secret)
	}
	v, err := c.unlockKeystore(ksPath, *passFile)
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
	if _, err := c.stdout.Write(append(blob, '\n')); err != nil {
		return fmt.Errorf("%s: write stdout: %w", name, err)
	}
	return nil
}

// vaultOpen decrypts an EncryptedData blob read on stdin and writes the plaintext.
func (c *cli) vaultOpen(args []string) error {
	const name = "vault open"
	cmd := c.newCommand(name, "alknet vault open [--state DIR] [--passphrase-file FILE] < BLOB")
	state := cmd.fs.String("state", "", vaultStateUsage)
	passFile := cmd.fs.String("passphrase-file", "", passphraseFileUsage)
	pos, err := cmd.parse(c, args)
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
	blob, err := readLimited(c.stdin, vault.MaxEncryptedDataSize, "the encrypted data on stdin")
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	ed, err := vault.ParseEncryptedData(blob)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	v, err := c.unlockKeystore(ksPath, *passFile)
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
	if _, err := c.stdout.Write(plaintext); err != nil {
		return fmt.Errorf("%s: write stdout: %w", name, err)
	}
	return nil
}

// noArguments refuses positional arguments.
func noArguments(cmd *command, pos []string) error {
	if len(pos) > 0 {
		return usagef(`%s: unexpected argument %q (run "alknet %s -h" for usage)`, cmd.name, pos[0], cmd.name)
	}
	return nil
}

// newKeystorePath resolves the state directory and returns it with its keystore path,
// refusing when the keystore already exists.
func (c *cli) newKeystorePath(name, state string) (dir, ksPath string, err error) {
	dir, err = stateDir(state)
	if err != nil {
		return "", "", fmt.Errorf("%s: %w", name, err)
	}
	ksPath = filepath.Join(dir, keystoreFileName)
	exists, err := keystoreExists(ksPath)
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
	dir, err := stateDir(state)
	if err != nil {
		return "", err
	}
	ksPath := filepath.Join(dir, keystoreFileName)
	exists, err := keystoreExists(ksPath)
	if err != nil {
		return "", err
	}
	if !exists {
		return "", fmt.Errorf(`%s holds no %s: run "alknet vault init" or "alknet vault recover" first`, dir, keystoreFileName)
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
	fmt.Fprintf(c.stderr, "keystore written to %s\nnode fingerprint: %s\n", ksPath, fp)
	keyPath := filepath.Join(dir, keyFileName)
	if _, err := os.Lstat(keyPath); err == nil {
		fmt.Fprintf(c.stderr, "note: %s is no longer used now that the vault holds the node's identity; the node's fingerprint is the one above\n", keyPath)
	}
}

// argon2Params returns the Argon2id parameters for new keystores.
func (c *cli) argon2Params() vault.KeystoreParams {
	if c.keystoreParams == (vault.KeystoreParams{}) {
		return vault.DefaultKeystoreParams()
	}
	return c.keystoreParams
}

// unlockKeystore returns a vault unlocked from the keystore at ksPath with the
// passphrase from passFile or the prompt. The caller locks it.
func (c *cli) unlockKeystore(ksPath, passFile string) (*vault.Vault, error) {
	pass, err := c.passphrase(ksPath, passFile, false)
	if err != nil {
		return nil, err
	}
	defer clear(pass)
	v := vault.New()
	if err := v.UnlockKeystore(ksPath, pass); err != nil {
		return nil, err
	}
	return v, nil
}

// passphrase returns the keystore passphrase for ksPath: from passFile when given,
// otherwise from the prompt (asked twice when confirm is set, for a new keystore). The
// caller wipes it.
func (c *cli) passphrase(ksPath, passFile string, confirm bool) ([]byte, error) {
	if passFile != "" {
		return readPassphraseFile("--passphrase-file", passFile)
	}
	msg := "Passphrase for " + ksPath + ": "
	if confirm {
		msg = "New passphrase for " + ksPath + ": "
	}
	p, err := c.promptPassphrase(msg)
	if err != nil {
		return nil, err
	}
	if !confirm {
		return p, nil
	}
	again, err := c.promptPassphrase("Repeat the passphrase: ")
	if err != nil {
		clear(p)
		return nil, err
	}
	defer clear(again)
	if subtle.ConstantTimeCompare(p, again) != 1 {
		clear(p)
		return nil, errors.New("passphrases do not match")
	}
	return p, nil
}

// promptPassphrase asks for a passphrase through the prompt hook and checks it.
func (c *cli) promptPassphrase(msg string) ([]byte, error) {
	if c.prompt == nil {
		return nil, usagef("%v", errNoTerminal)
	}
	p, err := c.prompt(msg)
	switch {
	case errors.Is(err, errNoTerminal):
		clear(p)
		return nil, usagef("%v", errNoTerminal)
	case err != nil:
		clear(p)
		return nil, err
	case len(p) == 0:
		return nil, errors.New("empty passphrase")
	case len(p) > vault.MaxPassphraseLength:
		clear(p)
		return nil, fmt.Errorf("the passphrase is longer than %d bytes", vault.MaxPassphraseLength)
	}
	return p, nil
}

// readOptionalPassphraseFile is readPassphraseFile, or nil when path is empty.
func readOptionalPassphraseFile(flagName, path string) ([]byte, error) {
	if path == "" {
		return nil, nil
	}
	return readPassphraseFile(flagName, path)
}

// readPassphraseFile reads a passphrase from path, given with flagName. The file holds
// at most vault.MaxPassphraseLength bytes plus one trailing "\n" or "\r\n", which is
// stripped; an empty passphrase is refused. A regular file must not be accessible by
// group or others; pipes and other non-regular files are read as they are. Problems
// with the file are configuration errors. The caller wipes the result.
func readPassphraseFile(flagName, path string) ([]byte, error) {
	return readSecretFile(flagName, path, vault.MaxPassphraseLength, "passphrase")
}

// readSecretFile reads a secret of at most maxLen bytes (plus one trailing newline,
// stripped) from path, named by flagName in errors, under the rules of
// readPassphraseFile; what names the secret ("passphrase", "credential").
func readSecretFile(flagName, path string, maxLen int, what string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, &configError{fmt.Errorf("%s: %w", flagName, err)}
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, &configError{fmt.Errorf("%s: %w", flagName, err)}
	}
	switch mode := st.Mode(); {
	case mode.IsDir():
		return nil, &configError{fmt.Errorf("%s %s: is a directory", flagName, path)}
	case mode.IsRegular() && mode.Perm()&0o077 != 0:
		return nil, &configError{fmt.Errorf("%s %s: mode %04o lets group or others access it; run \"chmod 600 %s\"", flagName, path, mode.Perm(), path)}
	}
	tooLong := &configError{fmt.Errorf("%s %s: longer than %d bytes", flagName, path, maxLen)}
	fileLimit := maxLen + 2 // one trailing "\r\n"
	if st.Mode().IsRegular() && st.Size() > int64(fileLimit) {
		return nil, tooLong
	}
	buf, err := readLimited(f, fileLimit, "the file")
	if _, ok := errors.AsType[*tooLongError](err); ok {
		return nil, tooLong
	}
	if err != nil {
		return nil, &configError{fmt.Errorf("%s %s: %w", flagName, path, err)}
	}
	p := trimNewline(buf)
	switch {
	case len(p) == 0:
		clear(buf)
		return nil, &configError{fmt.Errorf("%s %s: empty %s", flagName, path, what)}
	case len(p) > maxLen:
		clear(buf)
		return nil, tooLong
	}
	return p, nil
}

// tooLongError is readLimited's error for input over its limit.
type tooLongError struct {
	what  string
	limit int
}

func (e *tooLongError) Error() string {
	return fmt.Sprintf("%s is longer than the limit of %d bytes", e.what, e.limit)
}

// readLimited reads r to its end into one buffer of limit+1 bytes (so a secret is
// never copied by growing a slice). Input longer than limit is refused with a
// *tooLongError, and the buffer is wiped. what names the input in errors. A nil r
// reads as empty.
func readLimited(r io.Reader, limit int, what string) ([]byte, error) {
	if r == nil {
		return nil, nil
	}
	buf := make([]byte, limit+1)
	n, err := io.ReadFull(r, buf)
	switch {
	case err == nil:
		clear(buf)
		return nil, &tooLongError{what: what, limit: limit}
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return buf[:n:n], nil
	}
	clear(buf)
	return nil, fmt.Errorf("read %s: %w", what, err)
}

// trimNewline returns b without one trailing "\n" or "\r\n".
func trimNewline(b []byte) []byte {
	if b, ok := bytes.CutSuffix(b, []byte("\n")); ok {
		b, _ = bytes.CutSuffix(b, []byte("\r"))
		return b
	}
	return b
}

// terminalPrompt returns the prompt of the real command. It opens the terminal at path
// (normally /dev/tty, because stdin and stdout may be pipes), writes msg to it and
// reads one line without echo. It returns errNoTerminal when path cannot be opened or
// is not a terminal. When ctx ends (SIGINT) while it waits, it restores the terminal's
// echo and returns an error; the blocked read is left to the exiting process.
func terminalPrompt(ctx context.Context, path string) func(msg string) ([]byte, error) {
	return func(msg string) ([]byte, error) {
		tty, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			return nil, errNoTerminal
		}
		fd := int(tty.Fd())
		if !term.IsTerminal(fd) {
			tty.Close()
			return nil, errNoTerminal
		}
		state, err := term.GetState(fd)
		if err != nil {
			tty.Close()
			return nil, fmt.Errorf("terminal: %w", err)
		}
		if _, err := io.WriteString(tty, msg); err != nil {
			tty.Close()
			return nil, fmt.Errorf("terminal: %w", err)
		}
		type result struct {
			p   []byte
			err error
		}
		done := make(chan result, 1)
		go func() {
			p, err := term.ReadPassword(fd)
			done <- result{p, err}
		}()
		select {
		case r := <-done:
			_, _ = io.WriteString(tty, "\n")
			tty.Close()
			if r.err != nil {
				clear(r.p)
				return nil, fmt.Errorf("read passphrase: %w", r.err)
			}
			return r.p, nil
		case <-ctx.Done():
			_ = term.Restore(fd, state)
			_, _ = io.WriteString(tty, "\n")
			return nil, errors.New("interrupted")
		}
	}
}
