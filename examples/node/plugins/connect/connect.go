package connect

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"

	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/core/endpoint"
	alkssh "github.com/alknet/alknet/ssh"

	"github.com/alknet/alknet/examples/node"
)

// defaultSOCKS is where connect runs its SOCKS5 proxy unless --socks says otherwise.
const defaultSOCKS = "127.0.0.1:1080"

const connectSynopsis = "alknet connect [--state DIR] [--passphrase-file FILE] (--pin FP | --insecure) [--tcp] [--host-key FP] [--user NAME] [--socks ADDR] [--via ssh|forward|auto] [-L bind:port:host:port]... [-R bind:port:host:port]... HOST:PORT"

// connectOptions are connect's parsed flags and argument.
type connectOptions struct {
	node.DialFlags
	hostKey string
	user    string
	socks   string // "" : no SOCKS5 proxy
	via     string // viaAuto, viaSSH or viaForward
	local   []alkssh.ForwardSpec
	remote  []alkssh.ForwardSpec
}

// specsFlag collects the values of a repeatable flag (-L, -R); they are parsed after
// the flags, so that a bad one is reported as "connect: invalid spec <spec>".
type specsFlag []string

// String joins the values with spaces.
func (s *specsFlag) String() string {
	if s == nil {
		return ""
	}
	return strings.Join(*s, " ")
}

// Set appends v.
func (s *specsFlag) Set(v string) error {
	*s = append(*s, v)
	return nil
}

func (c *cli) parseConnect(args []string) (*connectOptions, error) {
	cmd := c.NewFlagSet("connect", connectSynopsis)
	o := &connectOptions{}
	o.Register(cmd.FlagSet)
	cmd.StringVar(&o.hostKey, "host-key", "", "the node's SSH host key `FINGERPRINT` (serve's ssh-host-key line; default: the --pin fingerprint, or with --insecure the one the server presents in TLS)")
	cmd.StringVar(&o.user, "user", alkssh.DefaultUser, "SSH user `NAME` (the identity of a key login comes from the key; a certificate login must name one of its principals)")
	cmd.StringVar(&o.socks, "socks", defaultSOCKS, "run a SOCKS5 proxy (CONNECT, no auth; names resolved by the node) on `ADDR`; \"\" for none")
	cmd.StringVar(&o.via, "via", viaAuto, "carry the forwards over `ssh`, over alknet/`forward` (a QUIC stream per forwarded connection, no SSH inside; not with --tcp) or `auto`: forward on QUIC when the node serves it to this client and neither -R nor --host-key is given, SSH otherwise")
	var local, remote specsFlag
	cmd.Var(&local, "L", "forward `bind:port:host:port` locally: listen on bind:port here and connect each connection to host:port from the node (repeatable)")
	cmd.Var(&remote, "R", "forward `bind:port:host:port` remotely: listen on bind:port on the node's loopback and connect each connection to host:port from here (repeatable; needs scope ssh:remote-forward)")
	pos, err := cmd.ParseArgs(args)
	if err != nil {
		return nil, err
	}
	switch {
	case len(pos) == 0:
		return nil, node.Usagef(`connect: missing HOST:PORT (run "alknet connect -h" for usage)`)
	case len(pos) > 1:
		return nil, node.Usagef(`connect: want one HOST:PORT, got %d arguments (run "alknet connect -h" for usage)`, len(pos))
	}
	if err := o.CheckVerify("connect"); err != nil {
		return nil, err
	}
	if o.hostKey != "" {
		if _, _, err := core.ParseFingerprint(o.hostKey); err != nil {
			return nil, node.Usagef("connect: --host-key: %v", err)
		}
	}
	if o.user == "" {
		return nil, node.Usagef("connect: --user must not be empty")
	}
	if o.socks != "" {
		if _, _, err := net.SplitHostPort(o.socks); err != nil {
			return nil, node.Usagef("connect: --socks %q: %v", o.socks, err)
		}
	}
	if o.local, err = parseSpecs(local); err != nil {
		return nil, err
	}
	if o.remote, err = parseSpecs(remote); err != nil {
		return nil, err
	}
	if o.socks == "" && len(o.local) == 0 && len(o.remote) == 0 {
		return nil, node.Usagef(`connect: nothing to do: --socks "" and no -L or -R`)
	}
	if err := o.SetAddr("connect", pos[0]); err != nil {
		return nil, err
	}
	if err := o.checkVia(); err != nil {
		return nil, err
	}
	return o, nil
}

// parseSpecs parses -L or -R values; a bad one is a usage error
// "connect: invalid spec <spec>[: reason]".
func parseSpecs(specs []string) ([]alkssh.ForwardSpec, error) {
	var out []alkssh.ForwardSpec
	for _, s := range specs {
		f, err := alkssh.ParseForwardSpec(s)
		if err != nil {
			return nil, node.Usagef("connect: %v", err)
		}
		if f.Port == 0 {
			return nil, node.Usagef("connect: invalid spec %s: port: want 1..65535", f)
		}
		out = append(out, f)
	}
	return out, nil
}

// connect keeps a connection to a node up, alknet/forward or SSH as --via says, and
// serves a SOCKS5 proxy and -L/-R forwards over it until ctx is cancelled. It logs
// (on stderr, level INFO) which one it uses.
func (c *cli) connect(ctx context.Context, args []string) error {
	o, err := c.parseConnect(args)
	if err != nil {
		return err
	}
	id, opts, err := c.DialIdentity("connect", &o.DialFlags)
	if err != nil {
		return err
	}
	defer clear(id.Key())
	log := slog.New(slog.NewTextHandler(c.Stderr, nil))
	if o.tryForward() {
		fd := &forwardDialer{addr: o.Addr, opts: opts}
		conn, err := fd.dial(ctx)
		switch {
		case err == nil:
			log.LogAttrs(ctx, slog.LevelInfo, "connect", slog.String("via", viaForward))
			return c.runForward(ctx, o, fd, conn, log)
		case o.via == viaForward || !fallBack(err):
			return fd.describe(ctx, &o.DialFlags, id.Fingerprint(), err)
		}
		reason := "not offered by the node"
		if errors.Is(err, errForwardNotServed) {
			reason = "not served to this client"
		}
		log.LogAttrs(ctx, slog.LevelInfo, "connect: alknet/forward unavailable, using SSH", slog.String("reason", reason))
	}
	signer, err := alkssh.NewSigner(id.Key())
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	hostKey := o.hostKey
	if hostKey == "" {
		hostKey = o.Pin // "" with --insecure: the fingerprint the server presents in TLS
	}
	d := &sshDialer{
		addr: o.Addr,
		opts: opts,
		cfg: alkssh.ClientConfig{
			Transport:        opts,
			User:             o.user,
			Signer:           signer,
			HostKey:          hostKey,
			HandshakeTimeout: node.DialHandshakeTimeout,
		},
	}

	// The first connection must succeed, so that a wrong pin or host key, a key the node
	// does not know or an unreachable node is reported at once; once ready, a lost
	// connection is redialled with backoff.
	first, err := d.dial(ctx)
	if err != nil {
		return d.describe(ctx, &o.DialFlags, id.Fingerprint(), o.user, err)
	}
	log.LogAttrs(ctx, slog.LevelInfo, "connect", slog.String("via", viaSSH))
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	t := &alkssh.Tunnel{
		Local:  o.local,
		Remote: o.remote,
		Logger: log,
	}
	if o.socks != "" {
		t.SOCKS = []string{o.socks}
	}
	// Run calls Dial and OnConnect from its one goroutine, one after the other.
	t.Dial = func(ctx context.Context) (*alkssh.Client, error) {
		if cl := first; cl != nil {
			first = nil
			return cl, nil
		}
		return d.dial(ctx)
	}
	if err := t.Listen(); err != nil {
		_ = first.Close()
		return fmt.Errorf("connect: %s", strings.TrimPrefix(err.Error(), "ssh: "))
	}
	var writeErr error
	announced := false
	t.OnConnect = func(remote []net.Addr) {
		if announced {
			return
		}
		announced = true
		if _, err := c.Stdout.Write([]byte(readyLines(o, t.LocalAddrs(), remote))); err != nil {
			writeErr = err
			cancel()
		}
	}
	err = t.Run(runCtx)
	if first != nil { // cancelled before Run took it
		_ = first.Close()
	}
	switch {
	case writeErr != nil:
		return fmt.Errorf("connect: write stdout: %w", writeErr)
	case err != nil:
		return fmt.Errorf("connect: %s", strings.TrimPrefix(err.Error(), "ssh: "))
	}
	return nil
}

// readyLines is what connect prints once its listeners are up and the first connection
// is: "socks <addr>", one "local <spec> <addr>" per -L, one "remote <spec> <addr>" per
// -R the node bound (the address on the node), then "ready". local holds the -L
// listeners' addresses followed by the SOCKS5 proxy's (Tunnel.LocalAddrs).
func readyLines(o *connectOptions, local, remote []net.Addr) string {
	var b strings.Builder
	if o.socks != "" && len(local) > len(o.local) {
		fmt.Fprintf(&b, "socks %s\n", local[len(o.local)])
	}
	for i, f := range o.local {
		if i < len(local) {
			fmt.Fprintf(&b, "local %s %s\n", f, local[i])
		}
	}
	for i, f := range o.remote {
		if i < len(remote) && remote[i] != nil {
			fmt.Fprintf(&b, "remote %s %s\n", f, remote[i])
		}
	}
	b.WriteString("ready\n")
	return b.String()
}

// sshDialer opens the SSH connections of connect.
type sshDialer struct {
	addr string
	opts endpoint.DialOptions
	// cfg.HostKey is the pinned host key; empty (--insecure without --host-key) pins
	// each connection to the fingerprint its server presented in TLS.
	cfg alkssh.ClientConfig
}

// dial opens one SSH connection to the node and logs in.
func (d *sshDialer) dial(ctx context.Context) (*alkssh.Client, error) {
	if d.cfg.HostKey != "" {
		return alkssh.Dial(ctx, d.addr, d.cfg)
	}
	// ssh.Dial takes the host key before the TLS handshake has shown the server's
	// fingerprint, so dial the transport here and pin what it presented.
	conn, err := endpoint.Dial(ctx, d.addr, alkssh.ALPN, d.opts)
	if err != nil {
		return nil, err
	}
	cfg := d.cfg
	cfg.HostKey = conn.PeerFingerprint()
	return alkssh.NewClient(ctx, conn, d.addr, cfg)
}

// describe turns a failure of the first connection into one line starting "connect: ".
func (d *sshDialer) describe(ctx context.Context, f *node.DialFlags, clientFP, user string, err error) error {
	switch {
	case ctx.Err() != nil:
		return errors.New("connect: interrupted")
	case errors.Is(err, alkssh.ErrHostKeyMismatch):
		msg := err.Error()
		if i := strings.Index(msg, alkssh.ErrHostKeyMismatch.Error()); i >= 0 {
			msg = msg[i+len("ssh: "):]
		}
		return fmt.Errorf("connect: %s is not the expected SSH server: %s (a node running from a vault keystore has its own SSH host key, the ssh-host-key line of serve: pass it with --host-key)", d.addr, msg)
	case strings.Contains(err.Error(), "unable to authenticate"):
		return fmt.Errorf("connect: %s refused the SSH login of this client (key %s, user %q): the node needs a [[peers]] entry with its fingerprint", d.addr, clientFP, user)
	}
	return node.DescribeDialError(ctx, "connect", f, alkssh.ALPN, err)
}
