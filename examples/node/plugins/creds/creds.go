// Package creds is the node plugin of the credential commands: "apikey new" mints an
// API key, "token new" a peer token, and "peer add" writes a [[peers]] entry for a
// fingerprint. Each prints the TOML block for the --config file, or appends it to the
// file with --toml, atomically and only when the result is a configuration serve
// accepts.
//
// Tokens come from crypto/rand and are printed once, on stdout; the TOML blocks hold
// only their SHA-256 hashes, and nothing secret goes to stderr or a log.
package creds

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/examples/node"
)

// Plugin provides apikey, peer and token.
type Plugin struct {
	now func() time.Time
}

// New returns the credentials plugin.
func New() *Plugin { return &Plugin{now: time.Now} }

// Name is "creds".
func (*Plugin) Name() string { return "creds" }

// Synopses of the commands.
const (
	APIKeySynopsis = "alknet apikey new [--scopes A,B] [--expires DUR] [--description TEXT] [--toml FILE]"
	PeerSynopsis   = "alknet peer add --id NAME --fingerprint FP [--fingerprint FP]... [--scopes A,B] [--display-name TEXT] [--toml FILE]"
	TokenSynopsis  = "alknet token new --id NAME [--scopes A,B] [--display-name TEXT] [--toml FILE]"
)

// Commands returns apikey, peer and token.
func (p *Plugin) Commands() []node.Command {
	return []node.Command{
		{
			Name:    "apikey",
			Summary: "apikey new: mint an API key (token on stdout, its [[api_keys]] block on stderr or --toml FILE)",
			Run:     func(_ context.Context, c *node.CLI, args []string) error { return p.apikey(c, args) },
			Help:    subHelp("apikey", "new", p.apikey),
		},
		{
			Name:    "peer",
			Summary: "peer add: write a [[peers]] block for a key fingerprint (stdout or --toml FILE)",
			Run:     func(_ context.Context, c *node.CLI, args []string) error { return p.peer(c, args) },
			Help:    subHelp("peer", "add", p.peer),
		},
		{
			Name:    "token",
			Summary: "token new: mint a peer token (token on stdout, its [[peers]] block on stderr or --toml FILE)",
			Run:     func(_ context.Context, c *node.CLI, args []string) error { return p.token(c, args) },
			Help:    subHelp("token", "new", p.token),
		},
	}
}

// subHelp is the Help of a command with one subcommand sub.
func subHelp(name, sub string, run func(*node.CLI, []string) error) func(*node.CLI, []string) error {
	return func(c *node.CLI, args []string) error {
		if len(args) > 1 || len(args) == 1 && args[0] != sub {
			return node.Usagef(`help: unknown command "%s %s"; run "alknet help" for usage`, name, strings.Join(args, " "))
		}
		return run(c, []string{sub, "-h"})
	}
}

// subcommand checks that args start with the one subcommand sub of name and returns
// the rest.
func subcommand(name, sub string, args []string) ([]string, error) {
	if len(args) == 0 || args[0] != sub {
		return nil, node.Usagef(`%s: want "%s %s" (run "alknet %s %s -h" for usage)`, name, name, sub, name, sub)
	}
	return args[1:], nil
}

// apiKeyEntry is an [[api_keys]] table as the --config file spells it.
type apiKeyEntry struct {
	Prefix      string   `toml:"prefix"`
	Hash        string   `toml:"hash"`
	Scopes      []string `toml:"scopes"`
	ExpiresAt   int64    `toml:"expires_at,omitzero"`
	Description string   `toml:"description,omitempty"`
}

// peerEntry is a [[peers]] table as the --config file spells it.
type peerEntry struct {
	ID           string   `toml:"id"`
	Fingerprints []string `toml:"fingerprints,omitempty"`
	TokenHash    string   `toml:"token_hash,omitempty"`
	Scopes       []string `toml:"scopes"`
	DisplayName  string   `toml:"display_name,omitempty"`
}

func (p *Plugin) apikey(c *node.CLI, args []string) error {
	rest, err := subcommand("apikey", "new", args)
	if err != nil {
		return err
	}
	cmd := c.NewFlagSet("apikey new", APIKeySynopsis)
	scopes := cmd.String("scopes", "", "comma-separated `SCOPES` the key grants, such as demo,sftp:read:data")
	expires := cmd.Duration("expires", 0, "the key stops working this long from now (`DUR`ation such as 720h; default never)")
	desc := cmd.String("description", "", "`TEXT` for humans, stored in the block")
	file := cmd.String("toml", "", "append the block to the --config `FILE` (atomically; checked as serve would first)")
	pos, err := cmd.ParseArgs(rest)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return node.Usagef(`apikey new: unexpected argument %q (run "alknet apikey new -h" for usage)`, pos[0])
	}
	sc, err := parseScopes("apikey new", *scopes)
	if err != nil {
		return err
	}
	if *expires < 0 {
		return node.Usagef("apikey new: --expires %s: must be positive", *expires)
	}
	tok, entry, err := core.NewAPIKey(sc, *desc)
	if err != nil {
		return fmt.Errorf("apikey new: %w", err)
	}
	defer clear(tok.Raw)
	block := apiKeyEntry{Prefix: entry.Prefix, Hash: entry.Hash, Scopes: nonNil(entry.Scopes), Description: entry.Description}
	if *expires > 0 {
		block.ExpiresAt = p.now().Add(*expires).Unix()
	}
	text, err := encodeBlock(struct {
		APIKeys []apiKeyEntry `toml:"api_keys"`
	}{[]apiKeyEntry{block}})
	if err != nil {
		return fmt.Errorf("apikey new: %w", err)
	}
	return emit(c, "apikey new", *file, text, tok.Raw, fmt.Sprintf("[[api_keys]] %s", entry.Prefix))
}

func (p *Plugin) peer(c *node.CLI, args []string) error {
	rest, err := subcommand("peer", "add", args)
	if err != nil {
		return err
	}
	cmd := c.NewFlagSet("peer add", PeerSynopsis)
	id := cmd.String("id", "", "the peer's stable id `NAME` (unique in the file)")
	var fps []string
	cmd.Func("fingerprint", "the peer's key fingerprint `FP` (ed25519:<hex>, as \"alknet id\" prints it); repeatable", func(s string) error {
		if _, _, err := core.ParseFingerprint(s); err != nil {
			return err
		}
		fps = append(fps, s)
		return nil
	})
	scopes := cmd.String("scopes", "", "comma-separated `SCOPES` the peer is granted")
	display := cmd.String("display-name", "", "`TEXT` for humans")
	file := cmd.String("toml", "", "append the block to the --config `FILE` (atomically; checked as serve would first)")
	pos, err := cmd.ParseArgs(rest)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return node.Usagef(`peer add: unexpected argument %q (run "alknet peer add -h" for usage)`, pos[0])
	}
	if *id == "" {
		return node.Usagef(`peer add: --id is required (run "alknet peer add -h" for usage)`)
	}
	if len(fps) == 0 {
		return node.Usagef(`peer add: --fingerprint is required (run "alknet peer add -h" for usage)`)
	}
	sc, err := parseScopes("peer add", *scopes)
	if err != nil {
		return err
	}
	text, err := encodeBlock(struct {
		Peers []peerEntry `toml:"peers"`
	}{[]peerEntry{{ID: *id, Fingerprints: fps, Scopes: sc, DisplayName: *display}}})
	if err != nil {
		return fmt.Errorf("peer add: %w", err)
	}
	if *file == "" {
		// Nothing secret: the block goes to stdout, ready for ">> node.toml".
		_, err := c.Stdout.Write(text)
		return err
	}
	return emit(c, "peer add", *file, text, nil, fmt.Sprintf("[[peers]] %s", *id))
}

// peerTokenPrefix starts the peer tokens "token new" mints. It is not
// core.APIKeyPrefix, so no part of a peer token is ever logged as an API key prefix.
const peerTokenPrefix = "alkp_"

// peerTokenBytes is the entropy of a peer token (256 bits).
const peerTokenBytes = 32

func (p *Plugin) token(c *node.CLI, args []string) error {
	rest, err := subcommand("token", "new", args)
	if err != nil {
		return err
	}
	cmd := c.NewFlagSet("token new", TokenSynopsis)
	id := cmd.String("id", "", "the peer id `NAME` the token authenticates as (unique in the file)")
	scopes := cmd.String("scopes", "", "comma-separated `SCOPES` the peer is granted")
	display := cmd.String("display-name", "", "`TEXT` for humans")
	file := cmd.String("toml", "", "append the block to the --config `FILE` (atomically; checked as serve would first)")
	pos, err := cmd.ParseArgs(rest)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return node.Usagef(`token new: unexpected argument %q (run "alknet token new -h" for usage)`, pos[0])
	}
	if *id == "" {
		return node.Usagef(`token new: --id is required (run "alknet token new -h" for usage)`)
	}
	sc, err := parseScopes("token new", *scopes)
	if err != nil {
		return err
	}
	tok, err := newPeerToken()
	if err != nil {
		return fmt.Errorf("token new: %w", err)
	}
	defer clear(tok)
	text, err := encodeBlock(struct {
		Peers []peerEntry `toml:"peers"`
	}{[]peerEntry{{ID: *id, TokenHash: core.HashToken(tok), Scopes: sc, DisplayName: *display}}})
	if err != nil {
		return fmt.Errorf("token new: %w", err)
	}
	return emit(c, "token new", *file, text, tok, fmt.Sprintf("[[peers]] %s", *id))
}

// newPeerToken returns a fresh peer token: peerTokenPrefix and peerTokenBytes from
// crypto/rand, base64url without padding. The caller wipes it.
func newPeerToken() ([]byte, error) {
	var b [peerTokenBytes]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("generate token: %w", err)
	}
	defer clear(b[:])
	tok := make([]byte, 0, len(peerTokenPrefix)+base64.RawURLEncoding.EncodedLen(len(b)))
	tok = append(tok, peerTokenPrefix...)
	return base64.RawURLEncoding.AppendEncode(tok, b[:]), nil
}

// emit finishes a command: without file it prints the block on stderr and the token
// (when there is one) on stdout; with file it appends the block to the file and then
// prints the token, so a token is shown only once its hash is in place.
func emit(c *node.CLI, name, file string, block, token []byte, what string) error {
	if file == "" {
		if _, err := c.Stderr.Write(block); err != nil {
			return fmt.Errorf("%s: write stderr: %w", name, err)
		}
	} else {
		if err := AppendConfig(file, block, c.CheckConfig); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		fmt.Fprintf(c.Stderr, "alknet: %s: appended %s to %s; reload the node (SIGHUP) to apply it\n", name, what, file)
	}
	if token == nil {
		return nil
	}
	if _, err := c.Stdout.Write(append(bytes.Clone(token), '\n')); err != nil {
		return fmt.Errorf("%s: write stdout: %w", name, err)
	}
	return nil
}

// parseScopes splits a --scopes value at commas; blanks around a scope are dropped,
// and a scope may contain no blank, comma or control character.
func parseScopes(name, s string) ([]string, error) {
	out := []string{}
	if strings.TrimSpace(s) == "" {
		return out, nil
	}
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			return nil, node.Usagef("%s: --scopes %q: empty scope", name, s)
		}
		if strings.ContainsFunc(f, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
			return nil, node.Usagef("%s: --scopes %q: a scope contains a blank or control character", name, s)
		}
		out = append(out, f)
	}
	return out, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// encodeBlock encodes v, a struct with one array of tables, as TOML without indent.
func encodeBlock(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := toml.NewEncoder(&b)
	enc.Indent = ""
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("encode TOML: %w", err)
	}
	return b.Bytes(), nil
}
