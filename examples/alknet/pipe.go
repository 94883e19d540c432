package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"syscall"

	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/core/endpoint"
	"github.com/alknet/alknet/core/tlsconf"
)

// pipeHandshakeTimeout bounds pipe's connection setup.
const pipeHandshakeTimeout = endpoint.DefaultDialHandshakeTimeout

// pipeOptions are pipe's parsed flags and argument.
type pipeOptions struct {
	state          string
	passphraseFile string
	alpn           string
	pin            string
	insecure       bool
	network        endpoint.Network
	addr           string
}

func (c *cli) parsePipe(args []string) (*pipeOptions, error) {
	cmd := c.newCommand("pipe", "alknet pipe [--state DIR] [--passphrase-file FILE] --alpn ALPN (--pin FINGERPRINT | --insecure) [--tcp] HOST:PORT")
	o := &pipeOptions{}
	cmd.fs.StringVar(&o.state, "state", "", "state directory `DIR` holding the client identity, vault.keystore or node.key (default ~/.alknet)")
	cmd.fs.StringVar(&o.passphraseFile, "passphrase-file", "", passphraseFileUsage)
	cmd.fs.StringVar(&o.alpn, "alpn", "", "`ALPN` protocol to ask for, such as alknet/echo (required)")
	cmd.fs.StringVar(&o.pin, "pin", "", "the server's `FINGERPRINT` (ed25519:<hex> or SHA256:<hex>), as alknet id prints it on the server")
	cmd.fs.BoolVar(&o.insecure, "insecure", false, "accept any server, printing its fingerprint in a warning (instead of --pin)")
	useTCP := cmd.fs.Bool("tcp", false, "dial TCP+TLS instead of QUIC")
	pos, err := cmd.parse(c, args)
	if err != nil {
		return nil, err
	}
	switch {
	case len(pos) == 0:
		return nil, usagef(`pipe: missing HOST:PORT (run "alknet pipe -h" for usage)`)
	case len(pos) > 1:
		return nil, usagef(`pipe: want one HOST:PORT, got %d arguments (run "alknet pipe -h" for usage)`, len(pos))
	case o.alpn == "":
		return nil, usagef(`pipe: --alpn is required (run "alknet pipe -h" for usage)`)
	case o.pin == "" && !o.insecure:
		return nil, usagef("pipe: give the server's fingerprint with --pin, or --insecure to skip verifying it")
	case o.pin != "" && o.insecure:
		return nil, usagef("pipe: --pin and --insecure exclude each other")
	}
	if len(o.alpn) > core.MaxALPNLength {
		return nil, usagef("pipe: --alpn is %d bytes, longer than %d", len(o.alpn), core.MaxALPNLength)
	}
	if o.pin != "" {
		if _, _, err := core.ParseFingerprint(o.pin); err != nil {
			return nil, usagef("pipe: --pin: %v", err)
		}
	}
	o.addr = pos[0]
	if host, port, err := net.SplitHostPort(o.addr); err != nil || host == "" || port == "" {
		return nil, usagef("pipe: %q is not HOST:PORT", o.addr)
	}
	o.network = endpoint.NetworkQUIC
	if *useTCP {
		o.network = endpoint.NetworkTCP
	}
	return o, nil
}

// pipe connects to a node, opens one stream and copies stdin to it and it to stdout.
func (c *cli) pipe(ctx context.Context, args []string) error {
	o, err := c.parsePipe(args)
	if err != nil {
		return err
	}
	id, err := c.nodeIdentity(o.state, o.passphraseFile)
	if err != nil {
		return fmt.Errorf("pipe: %w", err)
	}
	cert, err := tlsconf.Certificate(id.key)
	if err != nil {
		return fmt.Errorf("pipe: %w", err)
	}
	opts := endpoint.DialOptions{
		Network:          o.network,
		HandshakeTimeout: pipeHandshakeTimeout,
		TLS:              tlsconf.ClientOptions{Certificate: &cert, Pin: o.pin},
	}
	if o.insecure {
		var once sync.Once
		opts.TLS.VerifyServer = func(fp string, _ tls.ConnectionState) error {
			once.Do(func() {
				fmt.Fprintf(c.stderr, "alknet: warning: --insecure: server identity not verified (fingerprint %s)\n", fp)
			})
			return nil
		}
	}
	conn, err := endpoint.Dial(ctx, o.addr, o.alpn, opts)
	if err != nil {
		return describeDialError(ctx, o, err)
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
		rerr, werr := copyData(s, c.stdin)
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
	rerr, werr := copyData(c.stdout, s)
	if werr != nil {
		return fmt.Errorf("pipe: write stdout: %w", werr)
	}
	select {
	case r := <-sent:
		switch {
		case r.stdin:
			return fmt.Errorf("pipe: read stdin: %w", r.err)
		case r.err != nil && rerr == nil:
			return c.pipeFailed(ctx, o, "send", r.err)
		}
	default:
		// Still sending, or waiting for stdin, while the server has ended its side: the
		// server is done, and so are we. (A goroutine blocked reading stdin ends with
		// the process.)
	}
	if rerr != nil {
		return c.pipeFailed(ctx, o, "receive", rerr)
	}
	return nil
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
		return fmt.Errorf("pipe: %s %s: stream reset by the server: %w", op, o.addr, err)
	case errors.Is(err, core.ErrConnectionClosed):
		return fmt.Errorf("pipe: %s %s: connection closed by the server: %w", op, o.addr, err)
	}
	return fmt.Errorf("pipe: %s %s: %w", op, o.addr, err)
}

// describeDialError turns a dial failure into one line saying what went wrong.
func describeDialError(ctx context.Context, o *pipeOptions, err error) error {
	network := "QUIC"
	if o.network == endpoint.NetworkTCP {
		network = "TCP+TLS"
	}
	cause := err
	var de *endpoint.DialError
	if errors.As(err, &de) {
		cause = de.Err
	}
	var mismatch *tlsconf.FingerprintMismatchError
	var netErr net.Error
	var dnsErr *net.DNSError
	switch {
	case ctx.Err() != nil:
		return errors.New("pipe: interrupted")
	case errors.Is(err, endpoint.ErrALPNRefused):
		return fmt.Errorf("pipe: %s does not serve ALPN %s", o.addr, o.alpn)
	case errors.As(err, &mismatch):
		got := mismatch.Got
		if got == "" {
			got = "no certificate"
		}
		return fmt.Errorf("pipe: %s is not the pinned server: fingerprint mismatch: pinned %s, server presented %s", o.addr, mismatch.Want, got)
	case errors.Is(err, tlsconf.ErrFingerprintMismatch):
		return fmt.Errorf("pipe: %s is not the pinned server: %w", o.addr, cause)
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("pipe: cannot reach %s over %s: no handshake within %s", o.addr, network, pipeHandshakeTimeout)
	case errors.As(err, &dnsErr),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.EHOSTUNREACH),
		errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.ETIMEDOUT),
		errors.As(err, &netErr) && netErr.Timeout():
		return fmt.Errorf("pipe: cannot reach %s over %s: %w", o.addr, network, cause)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET):
		return fmt.Errorf("pipe: %s closed the connection during the %s handshake (is it over a connection limit?): %w", o.addr, network, cause)
	}
	return fmt.Errorf("pipe: cannot connect to %s over %s: %w", o.addr, network, cause)
}
