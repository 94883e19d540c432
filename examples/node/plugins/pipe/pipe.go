package pipe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/core/endpoint"
	"github.com/quic-go/quic-go"

	"github.com/alknet/alknet/examples/node"
)

// pipeOptions are pipe's parsed flags and argument.
type pipeOptions struct {
	node.DialFlags
	alpn string
}

func (c *cli) parsePipe(args []string) (*pipeOptions, error) {
	cmd := c.NewFlagSet("pipe", "alknet pipe [--state DIR] [--passphrase-file FILE] --alpn ALPN (--pin FINGERPRINT | --insecure) [--tcp] HOST:PORT")
	o := &pipeOptions{}
	o.Register(cmd.FlagSet)
	cmd.StringVar(&o.alpn, "alpn", "", "`ALPN` protocol to ask for, such as alknet/echo (required)")
	pos, err := cmd.ParseArgs(args)
	if err != nil {
		return nil, err
	}
	switch {
	case len(pos) == 0:
		return nil, node.Usagef(`pipe: missing HOST:PORT (run "alknet pipe -h" for usage)`)
	case len(pos) > 1:
		return nil, node.Usagef(`pipe: want one HOST:PORT, got %d arguments (run "alknet pipe -h" for usage)`, len(pos))
	case o.alpn == "":
		return nil, node.Usagef(`pipe: --alpn is required (run "alknet pipe -h" for usage)`)
	}
	if err := o.CheckVerify("pipe"); err != nil {
		return nil, err
	}
	if len(o.alpn) > core.MaxALPNLength {
		return nil, node.Usagef("pipe: --alpn is %d bytes, longer than %d", len(o.alpn), core.MaxALPNLength)
	}
	if err := o.SetAddr("pipe", pos[0]); err != nil {
		return nil, err
	}
	return o, nil
}

// pipe connects to a node, opens one stream and copies stdin to it and it to stdout.
func (c *cli) pipe(ctx context.Context, args []string) error {
	o, err := c.parsePipe(args)
	if err != nil {
		return err
	}
	opts, err := c.DialOptions("pipe", &o.DialFlags)
	if err != nil {
		return err
	}
	conn, err := endpoint.Dial(ctx, o.Addr, o.alpn, opts)
	if err != nil {
		return node.DescribeDialError(ctx, "pipe", &o.DialFlags, o.alpn, err)
	}
	defer conn.Close(core.CloseNormal, "")
	// An interrupt closes the connection, which ends both copies.
	stop := context.AfterFunc(ctx, func() { conn.Close(core.CloseNormal, "interrupted") })
	defer stop()

	s, err := conn.OpenBi(ctx)
	if err != nil {
		return c.pipeFailed(ctx, o, "open stream", err)
	}
	return c.copyStream(ctx, o, conn, s)
}

// copyStream copies stdin to s (then half-closes s) while copying s to stdout, until
// the server ends its side.
func (c *cli) copyStream(ctx context.Context, o *pipeOptions, conn *core.Connection, s core.BiStream) error {
	type result struct {
		err   error
		stdin bool // err is a local stdin failure
	}
	sent := make(chan result, 1)
	go func() {
		rerr, werr := copyData(s, c.Stdin)
		switch {
		case rerr != nil:
			sent <- result{err: rerr, stdin: true}
			conn.Close(core.CloseNormal, "client input failed") // ends the receiving side
		case werr != nil:
			sent <- result{err: werr}
		default:
			sent <- result{err: s.CloseWrite()}
		}
	}()
	rerr, werr := copyData(c.Stdout, s)
	if werr != nil {
		return fmt.Errorf("pipe: write stdout: %w", werr)
	}
	select {
	case r := <-sent:
		switch {
		case r.stdin:
			return fmt.Errorf("pipe: read stdin: %w", r.err)
		case r.err != nil && rerr == nil && !closedNormally(ctx, r.err) && !serverFinished(r.err):
			return c.pipeFailed(ctx, o, "send", r.err)
		}
	default:
		// Still sending, or waiting for stdin, while the server has ended its side: the
		// server is done, and so are we. (A goroutine blocked reading stdin ends with
		// the process.)
	}
	if rerr != nil && !closedNormally(ctx, rerr) {
		return c.pipeFailed(ctx, o, "receive", rerr)
	}
	return nil
}

// serverFinished reports whether a send failure only says that the server, which has
// already ended its side cleanly (our receive saw EOF), stopped reading our input: a
// QUIC STOP_SENDING, which quic-go reports from Write as a remote stream error and
// from the closing CloseWrite as a close of a canceled stream. A git server that
// answered "ERR repository not found" and closed its stream is done, not failed.
func serverFinished(err error) bool {
	if se, ok := errors.AsType[*quic.StreamError](err); ok {
		return se.Remote
	}
	return strings.Contains(err.Error(), "close called for canceled stream")
}

// closedNormally reports whether err is the server closing the connection normally
// (code core.CloseNormal: its handler finished, or the node is shutting down). That is
// the end of the pipe, not a failure, as when a TCP+TLS server closes its side (TCP
// carries no close code). A close with any other code is a failure, and so is our own
// close after an interrupt (ctx done).
func closedNormally(ctx context.Context, err error) bool {
	ce, ok := errors.AsType[*core.CloseError](err)
	return ok && ce.Remote && ce.Code == core.CloseNormal && ctx.Err() == nil
}

// copyData copies src to dst until src reports EOF and tells a read failure from a
// write failure.
func copyData(dst io.Writer, src io.Reader) (readErr, writeErr error) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return nil, werr
			}
		}
		if err == io.EOF {
			return nil, nil
		}
		if err != nil {
			return err, nil
		}
	}
}

// pipeFailed describes a failure after the connection was established.
func (c *cli) pipeFailed(ctx context.Context, o *pipeOptions, op string, err error) error {
	if ctx.Err() != nil {
		return errors.New("pipe: interrupted")
	}
	switch {
	case errors.Is(err, core.ErrStreamClosed):
		return fmt.Errorf("pipe: %s %s: stream reset by the server: %w", op, o.Addr, err)
	case errors.Is(err, core.ErrConnectionClosed):
		return fmt.Errorf("pipe: %s %s: connection closed by the server: %w", op, o.Addr, err)
	}
	return fmt.Errorf("pipe: %s %s: %w", op, o.Addr, err)
}
