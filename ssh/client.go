package ssh

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/core/endpoint"
)

// DefaultUser is the SSH user name a client logs in as unless told otherwise.
const DefaultUser = "alknet"

// ErrHostKeyMismatch is wrapped by the error of a connection whose server presented a
// host key other than the pinned one.
var ErrHostKeyMismatch = errors.New("ssh: host key mismatch")

// ClientConfig configures Dial and NewClientConn.
type ClientConfig struct {
	// Transport says how to reach the node (TLS pin, client certificate, QUIC or
	// TCP+TLS); Dial asks for ALPN "alknet/ssh".
	Transport endpoint.DialOptions
	// User is the SSH user name (DefaultUser when empty). For certificate logins it
	// must be one of the certificate's principals.
	User string
	// Signer is the client's key; required.
	Signer gossh.Signer
	// Certificate, when set, is an OpenSSH user certificate for Signer's key, used
	// instead of the bare key.
	Certificate *gossh.Certificate
	// HostKey is the server's pinned host key fingerprint (KeyFingerprint form:
	// "ed25519:<hex>", which for a node using its identity key as host key is the
	// node's fingerprint); required — a client never skips host verification.
	HostKey string
	// HandshakeTimeout bounds the SSH handshake (DefaultHandshakeTimeout).
	HandshakeTimeout time.Duration
}

// Client is an SSH connection to a node: a *gossh.Client (sessions, Dial, Listen)
// owning the transport it runs on.
type Client struct {
	*gossh.Client
	transport *core.Connection
}

// Dial connects to the node at addr ("host:port") over core's dialer with ALPN
// alknet/ssh and logs in.
func Dial(ctx context.Context, addr string, cfg ClientConfig) (*Client, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	conn, err := endpoint.Dial(ctx, addr, ALPN, cfg.Transport)
	if err != nil {
		return nil, err
	}
	return NewClient(ctx, conn, addr, cfg)
}

// NewClient logs in over the first stream of conn, an alknet/ssh connection already
// established (by endpoint.Dial), and owns it: closing the Client, or the SSH
// connection ending, closes conn; so does an error. Use it when the host key to pin
// is only known after the TLS handshake, such as conn.PeerFingerprint() for a node
// whose host key is its identity key.
func NewClient(ctx context.Context, conn *core.Connection, addr string, cfg ClientConfig) (*Client, error) {
	if err := cfg.check(); err != nil {
		conn.Close(core.CloseNormal, "")
		return nil, err
	}
	s, err := conn.OpenBi(ctx)
	if err != nil {
		conn.Close(core.CloseNormal, "")
		return nil, err
	}
	c, err := NewClientConn(ctx, core.NetConn(s, conn.LocalAddr(), conn.RemoteAddr()), addr, cfg)
	if err != nil {
		conn.Close(core.CloseNormal, "")
		return nil, err
	}
	c.transport = conn
	go func() {
		// The server ending the SSH connection ends the transport too.
		_ = c.Wait()
		conn.Close(core.CloseNormal, "")
	}()
	return c, nil
}

// NewClientConn logs in over nc, any byte stream to an SSH server (such as a TCP
// connection to a classic port-22 listener). nc is closed with the Client.
func NewClientConn(ctx context.Context, nc net.Conn, addr string, cfg ClientConfig) (*Client, error) {
	if err := cfg.check(); err != nil {
		_ = nc.Close()
		return nil, err
	}
	signer := cfg.Signer
	if cfg.Certificate != nil {
		cs, err := gossh.NewCertSigner(cfg.Certificate, cfg.Signer)
		if err != nil {
			_ = nc.Close()
			return nil, fmt.Errorf("ssh: certificate: %w", err)
		}
		signer = cs
	}
	user := cfg.User
	if user == "" {
		user = DefaultUser
	}
	timeout := cfg.HandshakeTimeout
	if timeout <= 0 {
		timeout = DefaultHandshakeTimeout
	}
	pin := cfg.HostKey
	cc := &gossh.ClientConfig{
		User: user,
		Auth: []gossh.AuthMethod{gossh.PublicKeys(signer)},
		HostKeyCallback: func(_ string, _ net.Addr, key gossh.PublicKey) error {
			if got := KeyFingerprint(key); got != pin {
				return fmt.Errorf("%w: got %s, want %s", ErrHostKeyMismatch, got, pin)
			}
			return nil
		},
		Timeout: timeout,
	}
	_ = nc.SetDeadline(time.Now().Add(timeout))
	stop := context.AfterFunc(ctx, func() { _ = nc.Close() })
	sc, chans, reqs, err := gossh.NewClientConn(nc, addr, cc)
	stopped := stop()
	if err != nil {
		_ = nc.Close()
		if !stopped {
			return nil, fmt.Errorf("ssh: %s: %w", addr, ctx.Err())
		}
		return nil, fmt.Errorf("ssh: %s: %w", addr, err)
	}
	_ = nc.SetDeadline(time.Time{})
	return &Client{Client: gossh.NewClient(sc, chans, reqs)}, nil
}

func (cfg *ClientConfig) check() error {
	switch {
	case cfg.Signer == nil:
		return fmt.Errorf("%w: client Signer is nil", ErrConfig)
	case cfg.HostKey == "":
		return fmt.Errorf("%w: client HostKey (pinned fingerprint) is empty", ErrConfig)
	}
	if _, _, err := core.ParseFingerprint(cfg.HostKey); err != nil {
		return fmt.Errorf("%w: client HostKey: %w", ErrConfig, err)
	}
	return nil
}

// Close ends the SSH connection and the transport it runs on.
func (c *Client) Close() error {
	err := c.Client.Close()
	if c.transport != nil {
		c.transport.Close(core.CloseNormal, "")
	}
	return err
}

// Open opens a direct-tcpip channel to host:port on the node's side (host is sent
// as given, unresolved); it makes a Client an Opener for SOCKS5Server.
func (c *Client) Open(ctx context.Context, host string, port uint16) (net.Conn, error) {
	return c.DialContext(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(int(port))))
}
