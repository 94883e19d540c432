package msg

import (
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/examples/node"
	"github.com/alknet/alknet/msg"
	"github.com/alknet/alknet/vault"
)

// Defaults of the client commands.
const (
	// DefaultBundleValidity is how long the bundle "msg register" publishes is valid.
	DefaultBundleValidity = 90 * 24 * time.Hour
	// TextContentType is what "msg send" signs for a body that is valid UTF-8, and
	// BinaryContentType for any other, unless --content-type says otherwise.
	TextContentType   = "text/plain; charset=utf-8"
	BinaryContentType = "application/octet-stream"
)

// Body encodings of an "msg inbox" line.
const (
	// EncodingText: "body" is the message body itself (it was valid UTF-8).
	EncodingText = "text"
	// EncodingBase64: "body" is the body in standard, padded base64.
	EncodingBase64 = "base64"
)

// Commands returns msg (register, send, inbox).
func (p *Plugin) Commands() []node.Command {
	return []node.Command{{
		Name:    "msg",
		Summary: "sealed messages through a node's alknet/msg: msg register, send, inbox",
		Run:     func(ctx context.Context, c *node.CLI, args []string) error { return (&cli{c}).msg(ctx, args) },
		Help:    func(c *node.CLI, args []string) error { return (&cli{c}).help(args) },
	}}
}

// cli is the invocation the command runs in.
type cli struct{ *node.CLI }

const usageText = `Usage: alknet msg <subcommand> [flags] HOST:PORT ...

Sealed store-and-forward messages through a node's alknet/msg service. The client's
identity is its state directory's (the vault's with a keystore, else node.key); its
X25519 key is the vault's (m/74'/2'/1'/0') or DIR/msg_x25519.key, created (mode 0600)
when missing.

Subcommands:
  register  publish this identity's key bundle to its home node (which hosts its mailbox)
  send      seal stdin for RECIPIENT (ed25519:<hex>) with its bundle on the node and deliver it
  inbox     fetch, open and verify this identity's messages: one JSON line each

Run "alknet msg <subcommand> -h" for its flags.
`

// subcommands are the subcommands "alknet help msg SUBCOMMAND" knows.
var subcommands = []string{"register", "send", "inbox"}

// msg dispatches to a subcommand.
func (c *cli) msg(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return node.Usagef(`msg: missing subcommand: register, send or inbox (run "alknet help msg" for usage)`)
	}
	sub, rest := args[0], args[1:]
	switch sub {
	case "register":
		return c.register(ctx, rest)
	case "send":
		return c.send(ctx, rest)
	case "inbox":
		return c.inbox(ctx, rest)
	case "help", "-h", "-help", "--help":
		if len(rest) > 0 {
			return c.help(rest)
		}
		_, err := io.WriteString(c.Stdout, usageText)
		return err
	}
	return node.Usagef(`msg: unknown subcommand %q; want register, send or inbox (run "alknet help msg" for usage)`, sub)
}

// help prints the help of "help msg [SUBCOMMAND]".
func (c *cli) help(args []string) error {
	switch len(args) {
	case 0:
		_, err := io.WriteString(c.Stdout, usageText)
		return err
	case 1:
		if !slices.Contains(subcommands, args[0]) {
			return node.Usagef(`help: unknown msg subcommand %q; run "alknet help msg" for usage`, args[0])
		}
		return c.msg(context.Background(), []string{args[0], "-h"})
	}
	return node.Usagef("help: too many arguments")
}

// session is a dialled alknet/msg connection with the client identity.
type session struct {
	name   string
	flags  *node.DialFlags
	client *msg.Client
	key    ed25519.PrivateKey
	xkey   *ecdh.PrivateKey // nil unless asked for
}

// dial connects to f.Addr's alknet/msg as the state directory's identity; withX25519
// also loads its X25519 key (the vault's, or the key file, created when missing).
func (c *cli) dial(ctx context.Context, name string, f *node.DialFlags, withX25519 bool) (*session, error) {
	var raw []byte
	var derive func(*vault.Vault) error
	if withX25519 {
		derive = func(v *vault.Vault) error {
			var err error
			raw, err = node.VaultSecret(v, vault.PathMsgX25519, "msg X25519 key")
			return err
		}
	}
	id, opts, err := c.DialIdentityWith(name, f, derive)
	if err != nil {
		clear(raw)
		return nil, err
	}
	s := &session{name: name, flags: f, key: id.Key()}
	if withX25519 {
		if raw != nil {
			s.xkey, err = msg.NewX25519Key(raw) // wipes raw
		} else {
			s.xkey, _, err = LoadOrCreateKey(id.Dir())
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	}
	s.client, err = msg.Dial(ctx, f.Addr, opts)
	if err != nil {
		return nil, node.DescribeDialError(ctx, name, f, msg.ALPN, err)
	}
	return s, nil
}

// failed turns a failed request into the command's error.
func (s *session) failed(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%s: interrupted", s.name)
	}
	e, ok := errors.AsType[*msg.Error](err)
	if !ok {
		return fmt.Errorf("%s: %s: %w", s.name, s.flags.Addr, err)
	}
	// The node's refusal, without the client's wrapping: "msg: CODE: message".
	switch e.Code {
	case msg.CodeNotHosted:
		return fmt.Errorf("%s: %s does not host the mailbox (a node hosts its own and those of peers with scope %s): %w", s.name, s.flags.Addr, msg.ScopeMailbox, e)
	case msg.CodeUnauthorized:
		return fmt.Errorf("%s: %s refused: %w", s.name, s.flags.Addr, e)
	}
	return fmt.Errorf("%s: %s: %w", s.name, s.flags.Addr, e)
}

// parse parses a subcommand's flags and wants positional arguments named by want.
func parse(cmd *node.FlagSet, f *node.DialFlags, args []string, want ...string) ([]string, error) {
	pos, err := cmd.ParseArgs(args)
	if err != nil {
		return nil, err
	}
	name := cmd.Name()
	if len(pos) != len(want) {
		return nil, node.Usagef(`%s: want %s, got %d arguments (run "alknet %s -h" for usage)`, name, strings.Join(want, " "), len(pos), name)
	}
	if err := f.CheckVerify(name); err != nil {
		return nil, err
	}
	if err := f.SetAddr(name, pos[0]); err != nil {
		return nil, err
	}
	return pos, nil
}

// register publishes the client's key bundle to its home node.
func (c *cli) register(ctx context.Context, args []string) error {
	const name = "msg register"
	cmd := c.NewFlagSet(name, "alknet msg register [--state DIR] [--passphrase-file FILE] (--pin FP | --insecure) [--tcp] [--valid DUR] HOST:PORT")
	var f node.DialFlags
	f.Register(cmd.FlagSet)
	valid := msg.Duration(DefaultBundleValidity)
	cmd.TextVar(&valid, "valid", valid, "how long the bundle is valid (`DUR`ation, or days as \"90d\"); senders refuse it afterwards, so register again before")
	if _, err := parse(cmd, &f, args, "HOST:PORT"); err != nil {
		return err
	}
	if valid < msg.Duration(time.Second) {
		return node.Usagef("%s: --valid %s: want at least 1s", name, valid)
	}
	s, err := c.dial(ctx, name, &f, true)
	if err != nil {
		return err
	}
	defer s.client.Close()
	b, err := msg.NewKeyBundle(s.key, s.xkey.PublicKey(), time.Now().Add(time.Duration(valid)))
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	rctx, cancel := context.WithTimeout(ctx, msg.RequestTimeout)
	defer cancel()
	if err := s.client.PutKeys(rctx, b); err != nil {
		return s.failed(ctx, err)
	}
	fp := core.FingerprintFromPublicKey(s.key.Public().(ed25519.PublicKey))
	if _, err := fmt.Fprintf(c.Stdout, "registered %s until %s\n", fp, b.NotAfter.UTC().Format(time.RFC3339)); err != nil {
		return fmt.Errorf("%s: write stdout: %w", name, err)
	}
	return nil
}

// send seals stdin for the recipient and delivers it.
func (c *cli) send(ctx context.Context, args []string) error {
	const name = "msg send"
	cmd := c.NewFlagSet(name, "alknet msg send [--state DIR] [--passphrase-file FILE] (--pin FP | --insecure) [--tcp] [--content-type TYPE] [--ttl DUR] HOST:PORT RECIPIENT < BODY")
	var f node.DialFlags
	f.Register(cmd.FlagSet)
	ctype := cmd.String("content-type", "", "the body's `TYPE`, signed with it (default: "+TextContentType+" for valid UTF-8, else "+BinaryContentType+")")
	var ttl msg.Duration
	cmd.TextVar(&ttl, "ttl", ttl, "the message's lifetime (`DUR`ation, or days as \"7d\"); the node clamps it to its max_ttl (default: the node's default_ttl)")
	pos, err := parse(cmd, &f, args, "HOST:PORT", "RECIPIENT")
	if err != nil {
		return err
	}
	if ttl != 0 && ttl < msg.Duration(time.Second) {
		return node.Usagef("%s: --ttl %s: want at least 1s", name, ttl)
	}
	recipient, err := parseRecipient(pos[1])
	if err != nil {
		return node.Usagef("%s: RECIPIENT %q: %v", name, node.Clip(pos[1]), err)
	}
	body, err := node.ReadLimited(c.Stdin, msg.MaxBodySize, "the message on stdin")
	if _, ok := errors.AsType[*node.TooLongError](err); ok {
		return fmt.Errorf("%s: the message on stdin is longer than %d bytes (1 MiB), the most a message carries", name, msg.MaxBodySize)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	ct := *ctype
	if ct == "" {
		ct = BinaryContentType
		if utf8.Valid(body) {
			ct = TextContentType
		}
	}
	var opts []msg.SealOption
	if ttl != 0 {
		opts = append(opts, msg.WithTTL(time.Duration(ttl)))
	}
	s, err := c.dial(ctx, name, &f, false)
	if err != nil {
		return err
	}
	defer s.client.Close()
	rctx, cancel := context.WithTimeout(ctx, msg.RequestTimeout)
	defer cancel()
	r, err := s.client.Send(rctx, s.key, recipient, body, ct, opts...)
	if e, ok := errors.AsType[*msg.Error](err); ok && e.Code == msg.CodeTooLarge {
		return fmt.Errorf("%s: %s refused a body of %d bytes as too large: its deliver frame of about %d bytes is over the node's max_frame_bytes (the default 256KiB carries bodies up to %d bytes): %w",
			name, f.Addr, len(body), msg.FrameSizeForBody(len(body), len(ct)), msg.MaxBodyForFrame(msg.DefaultMaxFrameBytes, len(ct)), e)
	}
	if err != nil {
		return s.failed(ctx, err)
	}
	if _, err := fmt.Fprintln(c.Stdout, encodeID(r.ID)); err != nil {
		return fmt.Errorf("%s: write stdout: %w", name, err)
	}
	return nil
}

// parseRecipient parses an "ed25519:<hex>" fingerprint into the recipient's key.
func parseRecipient(s string) (ed25519.PublicKey, error) {
	kind, sum, err := core.ParseFingerprint(s)
	if err != nil {
		return nil, err
	}
	if kind != core.FingerprintEd25519 {
		return nil, errors.New("want the ed25519:<hex> fingerprint (a SHA256: fingerprint does not name the key)")
	}
	return ed25519.PublicKey(sum), nil
}

// encodeID is a message id as envelopes carry it: unpadded base64url.
func encodeID(id [msg.IDSize]byte) string { return base64.RawURLEncoding.EncodeToString(id[:]) }

// InboxLine is one message as "msg inbox" prints it, a line of JSON. Encoding says how
// to read Body: EncodingText (the body was valid UTF-8 and is the string itself) or
// EncodingBase64 (standard, padded base64 of the body bytes).
type InboxLine struct {
	// ID is the envelope id, unpadded base64url (as "msg send" prints it).
	ID string `json:"id"`
	// From is the sender's verified identity, ed25519:<hex>.
	From string `json:"from"`
	// TS is the signed sealing time, RFC 3339 in UTC with milliseconds.
	TS string `json:"ts"`
	// ContentType is the content type the sender signed ("" when none).
	ContentType string `json:"content_type"`
	// Body is the body: text or base64, as Encoding says.
	Body string `json:"body"`
	// Encoding is EncodingText or EncodingBase64.
	Encoding string `json:"encoding"`
}

// inbox fetches, opens and prints the client's messages.
func (c *cli) inbox(ctx context.Context, args []string) error {
	const name = "msg inbox"
	cmd := c.NewFlagSet(name, "alknet msg inbox [--state DIR] [--passphrase-file FILE] (--pin FP | --insecure) [--tcp] [--wait DUR] [--ack] HOST:PORT")
	var f node.DialFlags
	f.Register(cmd.FlagSet)
	wait := cmd.Duration("wait", 0, "when the mailbox is empty, wait up to `DUR`ation (at most 1m) for a message to land")
	ack := cmd.Bool("ack", false, "delete the messages printed from the mailbox (one that fails to open or verify is kept)")
	if _, err := parse(cmd, &f, args, "HOST:PORT"); err != nil {
		return err
	}
	if *wait < 0 || *wait > msg.MaxFetchWaitMS*time.Millisecond {
		return node.Usagef("%s: --wait %s: want 0 to 1m", name, *wait)
	}
	s, err := c.dial(ctx, name, &f, true)
	if err != nil {
		return err
	}
	defer s.client.Close()
	self := s.key.Public().(ed25519.PublicKey)
	var after string
	failures := 0
	for first := true; ; first = false {
		o := msg.FetchOptions{After: after}
		if first {
			o.Wait = *wait
		}
		rctx, cancel := context.WithTimeout(ctx, o.Wait+msg.RequestTimeout)
		page, err := s.client.Fetch(rctx, o)
		cancel()
		if err != nil {
			return s.failed(ctx, err)
		}
		if len(page.Envelopes) == 0 {
			break
		}
		after = page.Next
		var done [][msg.IDSize]byte
		for _, e := range page.Envelopes {
			m, err := msg.Open(s.xkey, self, e.Envelope)
			if err != nil {
				failures++
				fmt.Fprintf(c.Stderr, "%s: %s: message %s (accepted %s) does not open or verify, kept in the mailbox: %v\n",
					c.Name(), name, encodeID(e.Envelope.ID), e.AcceptedAt.UTC().Format(time.RFC3339), err)
				continue
			}
			line, err := json.Marshal(inboxLine(m))
			clear(m.Body)
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			if _, err := c.Stdout.Write(append(line, '\n')); err != nil {
				return fmt.Errorf("%s: write stdout: %w", name, err)
			}
			done = append(done, m.ID)
		}
		if *ack && len(done) > 0 {
			rctx, cancel := context.WithTimeout(ctx, msg.RequestTimeout)
			_, err := s.client.Ack(rctx, done...)
			cancel()
			if err != nil {
				return s.failed(ctx, err)
			}
		}
	}
	if failures > 0 {
		return fmt.Errorf("%s: %d message(s) did not open or verify (see above); they stay in the mailbox", name, failures)
	}
	return nil
}

// inboxLine is m as a line of "msg inbox".
func inboxLine(m *msg.Message) InboxLine {
	l := InboxLine{
		ID:          encodeID(m.ID),
		From:        core.FingerprintFromPublicKey(m.From),
		TS:          m.Time.UTC().Format("2006-01-02T15:04:05.000Z07:00"),
		ContentType: m.ContentType,
		Encoding:    EncodingText,
	}
	if utf8.Valid(m.Body) {
		l.Body = string(m.Body)
	} else {
		l.Body = base64.StdEncoding.EncodeToString(m.Body)
		l.Encoding = EncodingBase64
	}
	return l
}
