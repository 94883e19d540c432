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
	"github.com/alknet/alknet/examples/node"
	alkssh "github.com/alknet/alknet/ssh"
)

// The values of --via.
const (
	viaAuto    = "auto"
	viaSSH     = "ssh"
	viaForward = "forward"
)

// errForwardNotServed reports that a node answered alknet/forward but does not serve
// this client there (its ping failed: no [[peers]] entry for the key).
var errForwardNotServed = errors.New("alknet/forward not served to this client")

// checkVia checks --via against the other flags: forward needs the streams of QUIC,
// not the single stream of --tcp.
func (o *connectOptions) checkVia() error {
	switch o.via {
	case viaAuto, viaSSH:
		return nil
	case viaForward:
		if o.Network == endpoint.NetworkTCP {
			return node.Usagef("connect: --via forward needs QUIC, not --tcp (TCP+TLS carries one stream)")
		}
		return nil
	}
	return node.Usagef("connect: --via %q: want ssh, forward or auto", o.via)
}

// tryForward reports whether connect starts with alknet/forward: with --via forward,
// and with auto on QUIC when nothing needs SSH (-R, --host-key).
func (o *connectOptions) tryForward() bool {
	switch o.via {
	case viaForward:
		return true
	case viaAuto:
		return o.Network == endpoint.NetworkQUIC && len(o.remote) == 0 && o.hostKey == ""
	}
	return false
}

// forwardDialer opens the alknet/forward connections of connect.
type forwardDialer struct {
	addr string
	opts endpoint.DialOptions
}

// dial connects and pings, so that a node that does not serve this client is known
// at once (an error wrapping errForwardNotServed); one that does not offer
// alknet/forward at all is an error wrapping endpoint.ErrALPNRefused.
func (d *forwardDialer) dial(ctx context.Context) (*core.Connection, error) {
	conn, err := endpoint.Dial(ctx, d.addr, alkssh.ALPNForward, d.opts)
	if err != nil {
		return nil, err
	}
	if err := alkssh.PingForward(ctx, conn); err != nil {
		conn.Close(core.CloseNormal, "")
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("%w: %w", errForwardNotServed, err)
	}
	return conn, nil
}

// fallBack reports whether --via auto goes on with SSH after err, the first
// alknet/forward dial's: the node does not offer it, or not to this client.
func fallBack(err error) bool {
	return errors.Is(err, endpoint.ErrALPNRefused) || errors.Is(err, errForwardNotServed)
}

// describeForward turns a failure of the first alknet/forward connection into one
// line starting "connect: ".
func (d *forwardDialer) describe(ctx context.Context, f *node.DialFlags, clientFP string, err error) error {
	switch {
	case ctx.Err() != nil:
		return errors.New("connect: interrupted")
	case errors.Is(err, errForwardNotServed):
		return fmt.Errorf("connect: %s does not serve alknet/forward to this client (key %s): the node needs a [[peers]] entry with its fingerprint", d.addr, clientFP)
	}
	return node.DescribeDialError(ctx, "connect", f, alkssh.ALPNForward, err)
}

// runForward serves the SOCKS5 proxy and the -L and -R forwards over alknet/forward,
// one stream per forwarded connection, from first (the connection already made) until
// ctx is cancelled, redialling a lost connection with backoff.
func (c *cli) runForward(ctx context.Context, o *connectOptions, d *forwardDialer, first *core.Connection, log *slog.Logger) error {
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	t := &alkssh.ForwardTunnel{Local: o.local, Remote: o.remote, Logger: log}
	if o.socks != "" {
		t.SOCKS = []string{o.socks}
	}
	// Run calls Dial and OnConnect from its one goroutine, one after the other.
	t.Dial = func(ctx context.Context) (*core.Connection, error) {
		if conn := first; conn != nil {
			first = nil
			return conn, nil
		}
		return d.dial(ctx)
	}
	if err := t.Listen(); err != nil {
		first.Close(core.CloseNormal, "")
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
	err := t.Run(runCtx)
	if first != nil { // cancelled before Run took it
		first.Close(core.CloseNormal, "")
	}
	switch {
	case writeErr != nil:
		return fmt.Errorf("connect: write stdout: %w", writeErr)
	case err != nil:
		return fmt.Errorf("connect: %s", strings.TrimPrefix(err.Error(), "ssh: "))
	}
	return nil
}
