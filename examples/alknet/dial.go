package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"sync"
	"syscall"

	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/core/endpoint"
	"github.com/alknet/alknet/core/tlsconf"
)

// dialHandshakeTimeout bounds the connection setup of the commands that dial a node.
const dialHandshakeTimeout = endpoint.DefaultDialHandshakeTimeout

// dialFlags are the flags and the HOST:PORT argument shared by the commands that dial
// a node (pipe, call): the client identity, how the server is verified, the transport.
type dialFlags struct {
	state          string
	passphraseFile string
	pin            string
	insecure       bool
	tcp            bool
	// Set by setAddr.
	network endpoint.Network
	addr    string
}

// register defines --state, --passphrase-file, --pin, --insecure and --tcp on fs.
func (f *dialFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.state, "state", "", "state directory `DIR` holding the client identity, vault.keystore or node.key (default ~/.alknet)")
	fs.StringVar(&f.passphraseFile, "passphrase-file", "", passphraseFileUsage)
	fs.StringVar(&f.pin, "pin", "", "the server's `FINGERPRINT` (ed25519:<hex> or SHA256:<hex>), as alknet id prints it on the server")
	fs.BoolVar(&f.insecure, "insecure", false, "accept any server, printing its fingerprint in a warning (instead of --pin)")
	fs.BoolVar(&f.tcp, "tcp", false, "dial TCP+TLS instead of QUIC")
}

// checkVerify checks that exactly one of --pin and --insecure is given, and --pin's
// syntax. name is the command, for the messages.
func (f *dialFlags) checkVerify(name string) error {
	switch {
	case f.pin == "" && !f.insecure:
		return usagef("%s: give the server's fingerprint with --pin, or --insecure to skip verifying it", name)
	case f.pin != "" && f.insecure:
		return usagef("%s: --pin and --insecure exclude each other", name)
	}
	if f.pin != "" {
		if _, _, err := core.ParseFingerprint(f.pin); err != nil {
			return usagef("%s: --pin: %v", name, err)
		}
	}
	return nil
}

// setAddr checks and records the HOST:PORT argument and the network --tcp selects.
func (f *dialFlags) setAddr(name, addr string) error {
	if host, port, err := net.SplitHostPort(addr); err != nil || host == "" || port == "" {
		return usagef("%s: %q is not HOST:PORT", name, addr)
	}
	f.addr = addr
	f.network = endpoint.NetworkQUIC
	if f.tcp {
		f.network = endpoint.NetworkTCP
	}
	return nil
}

// dialOptions returns the transport options f describes: the state directory's
// identity (the vault's, when it holds a keystore) as client certificate, and the
// server verified by --pin, or not at all with --insecure, which prints the server's
// fingerprint in a warning on stderr.
func (c *cli) dialOptions(name string, f *dialFlags) (endpoint.DialOptions, error) {
	_, opts, err := c.dialIdentity(name, f)
	return opts, err
}

// dialIdentity is dialOptions that also returns the client identity, for commands that
// use its key beyond TLS (connect signs its SSH login with it). The key is shared with
// the client certificate.
func (c *cli) dialIdentity(name string, f *dialFlags) (*identity, endpoint.DialOptions, error) {
	id, err := c.nodeIdentity(f.state, f.passphraseFile)
	if err != nil {
		return nil, endpoint.DialOptions{}, fmt.Errorf("%s: %w", name, err)
	}
	cert, err := tlsconf.Certificate(id.key)
	if err != nil {
		return nil, endpoint.DialOptions{}, fmt.Errorf("%s: %w", name, err)
	}
	opts := endpoint.DialOptions{
		Network:          f.network,
		HandshakeTimeout: dialHandshakeTimeout,
		TLS:              tlsconf.ClientOptions{Certificate: &cert, Pin: f.pin},
	}
	if f.insecure {
		var once sync.Once
		opts.TLS.VerifyServer = func(fp string, _ tls.ConnectionState) error {
			once.Do(func() {
				fmt.Fprintf(c.stderr, "alknet: warning: --insecure: server identity not verified (fingerprint %s)\n", fp)
			})
			return nil
		}
	}
	return id, opts, nil
}

// describeDialError turns a failure to dial f.addr for alpn into one line saying what
// went wrong, starting with the command's name.
func describeDialError(ctx context.Context, name string, f *dialFlags, alpn string, err error) error {
	network := "QUIC"
	if f.network == endpoint.NetworkTCP {
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
		return fmt.Errorf("%s: interrupted", name)
	case errors.Is(err, endpoint.ErrALPNRefused):
		return fmt.Errorf("%s: %s does not serve ALPN %s", name, f.addr, alpn)
	case errors.As(err, &mismatch):
		got := mismatch.Got
		if got == "" {
			got = "no certificate"
		}
		return fmt.Errorf("%s: %s is not the pinned server: fingerprint mismatch: pinned %s, server presented %s", name, f.addr, mismatch.Want, got)
	case errors.Is(err, tlsconf.ErrFingerprintMismatch):
		return fmt.Errorf("%s: %s is not the pinned server: %w", name, f.addr, cause)
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%s: cannot reach %s over %s: no handshake within %s", name, f.addr, network, dialHandshakeTimeout)
	case errors.As(err, &dnsErr),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.EHOSTUNREACH),
		errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.ETIMEDOUT),
		errors.As(err, &netErr) && netErr.Timeout():
		return fmt.Errorf("%s: cannot reach %s over %s: %w", name, f.addr, network, cause)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET):
		return fmt.Errorf("%s: %s closed the connection during the %s handshake (is it over a connection limit?): %w", name, f.addr, network, cause)
	}
	return fmt.Errorf("%s: cannot connect to %s over %s: %w", name, f.addr, network, cause)
}
