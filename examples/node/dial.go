package node

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
	"github.com/alknet/alknet/vault"
)

// DialHandshakeTimeout bounds the connection setup of the commands that dial a node.
const DialHandshakeTimeout = endpoint.DefaultDialHandshakeTimeout

// DialFlags are the flags and the HOST:PORT argument shared by the commands that dial
// a node (pipe, call): the client identity, how the server is verified, the transport.
type DialFlags struct {
	State          string
	PassphraseFile string
	Pin            string
	Insecure       bool
	TCP            bool
	// Set by SetAddr.
	Network endpoint.Network
	Addr    string
}

// Register defines --state, --passphrase-file, --pin, --insecure and --tcp on fs.
func (f *DialFlags) Register(fs *flag.FlagSet) {
	fs.StringVar(&f.State, "state", "", "state directory `DIR` holding the client identity, vault.keystore or node.key (default ~/.alknet)")
	fs.StringVar(&f.PassphraseFile, "passphrase-file", "", PassphraseFileUsage)
	fs.StringVar(&f.Pin, "pin", "", "the server's `FINGERPRINT` (ed25519:<hex> or SHA256:<hex>), as alknet id prints it on the server")
	fs.BoolVar(&f.Insecure, "insecure", false, "accept any server, printing its fingerprint in a warning (instead of --pin)")
	fs.BoolVar(&f.TCP, "tcp", false, "dial TCP+TLS instead of QUIC")
}

// CheckVerify checks that exactly one of --pin and --insecure is given, and --pin's
// syntax. name is the command, for the messages.
func (f *DialFlags) CheckVerify(name string) error {
	switch {
	case f.Pin == "" && !f.Insecure:
		return Usagef("%s: give the server's fingerprint with --pin, or --insecure to skip verifying it", name)
	case f.Pin != "" && f.Insecure:
		return Usagef("%s: --pin and --insecure exclude each other", name)
	}
	if f.Pin != "" {
		if _, _, err := core.ParseFingerprint(f.Pin); err != nil {
			return Usagef("%s: --pin: %v", name, err)
		}
	}
	return nil
}

// SetAddr checks and records the HOST:PORT argument and the network --tcp selects.
func (f *DialFlags) SetAddr(name, addr string) error {
	if host, port, err := net.SplitHostPort(addr); err != nil || host == "" || port == "" {
		return Usagef("%s: %q is not HOST:PORT", name, addr)
	}
	f.Addr = addr
	f.Network = endpoint.NetworkQUIC
	if f.TCP {
		f.Network = endpoint.NetworkTCP
	}
	return nil
}

// DialOptions returns the transport options f describes: the state directory's
// identity (the vault's, when it holds a keystore) as client certificate, and the
// server verified by --pin, or not at all with --insecure, which prints the server's
// fingerprint in a warning on stderr. With --pin, connections resume the TLS sessions
// of earlier ones of this invocation (one tlsconf.SessionCache per CLI), keeping the
// identities their first handshake verified.
func (c *CLI) DialOptions(name string, f *DialFlags) (endpoint.DialOptions, error) {
	_, opts, err := c.DialIdentity(name, f)
	return opts, err
}

// DialIdentity is DialOptions that also returns the client identity, for commands that
// use its key beyond TLS (connect signs its SSH login with it). The key is shared with
// the client certificate.
func (c *CLI) DialIdentity(name string, f *DialFlags) (*Identity, endpoint.DialOptions, error) {
	return c.DialIdentityWith(name, f, nil)
}

// DialIdentityWith is DialIdentity for commands that need more keys of the vault:
// derive is called as by NodeIdentityWith.
func (c *CLI) DialIdentityWith(name string, f *DialFlags, derive func(v *vault.Vault) error) (*Identity, endpoint.DialOptions, error) {
	id, err := c.NodeIdentityWith(f.State, f.PassphraseFile, derive)
	if err != nil {
		return nil, endpoint.DialOptions{}, fmt.Errorf("%s: %w", name, err)
	}
	cert, err := tlsconf.Certificate(id.key)
	if err != nil {
		return nil, endpoint.DialOptions{}, fmt.Errorf("%s: %w", name, err)
	}
	opts := endpoint.DialOptions{
		Network:          f.Network,
		HandshakeTimeout: DialHandshakeTimeout,
		TLS:              tlsconf.ClientOptions{Certificate: &cert, Pin: f.Pin, Sessions: c.sessions},
	}
	if f.Insecure {
		var once sync.Once
		opts.TLS.VerifyServer = func(fp string, _ tls.ConnectionState) error {
			once.Do(func() {
				fmt.Fprintf(c.Stderr, "%s: warning: --insecure: server identity not verified (fingerprint %s)\n", c.node.Name, fp)
			})
			return nil
		}
	}
	return id, opts, nil
}

// DescribeDialError turns a failure to dial f.Addr for alpn into one line saying what
// went wrong, starting with the command's name.
func DescribeDialError(ctx context.Context, name string, f *DialFlags, alpn string, err error) error {
	network := "QUIC"
	if f.Network == endpoint.NetworkTCP {
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
		return fmt.Errorf("%s: %s does not serve ALPN %s", name, f.Addr, alpn)
	case errors.As(err, &mismatch):
		got := mismatch.Got
		if got == "" {
			got = "no certificate"
		}
		return fmt.Errorf("%s: %s is not the pinned server: fingerprint mismatch: pinned %s, server presented %s", name, f.Addr, mismatch.Want, got)
	case errors.Is(err, tlsconf.ErrFingerprintMismatch):
		return fmt.Errorf("%s: %s is not the pinned server: %w", name, f.Addr, cause)
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%s: cannot reach %s over %s: no handshake within %s", name, f.Addr, network, DialHandshakeTimeout)
	case errors.As(err, &dnsErr),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.EHOSTUNREACH),
		errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.ETIMEDOUT),
		errors.As(err, &netErr) && netErr.Timeout():
		return fmt.Errorf("%s: cannot reach %s over %s: %w", name, f.Addr, network, cause)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET):
		return fmt.Errorf("%s: %s closed the connection during the %s handshake (is it over a connection limit?): %w", name, f.Addr, network, cause)
	}
	return fmt.Errorf("%s: cannot connect to %s over %s: %w", name, f.Addr, network, cause)
}
