package ssh_test

import (
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/core/coretest"
	"github.com/alknet/alknet/core/endpoint"
	"github.com/alknet/alknet/ssh"
)

// TestClientHostKeyMismatch: a server presenting a host key other than the pinned one
// is refused with ErrHostKeyMismatch, over every transport.
func TestClientHostKeyMismatch(t *testing.T) {
	for _, st := range stStarters {
		t.Run(st.name, func(t *testing.T) {
			user := stSigner(t)
			n := st.start(t, ssh.Config{Identities: stNewIdentities().add(user, "alice")})
			other := ssh.KeyFingerprint(stSigner(t).PublicKey())
			_, err := n.dial(t, ssh.ClientConfig{Signer: user, HostKey: other})
			if !errors.Is(err, ssh.ErrHostKeyMismatch) {
				t.Fatalf("dial with a wrong pin: %v, want ErrHostKeyMismatch", err)
			}
			if len(n.Logs.records("auth attempt")) != 0 {
				t.Fatal("client authenticated to a server it should not trust")
			}
			if _, err := n.dial(t, ssh.ClientConfig{Signer: user}); err != nil {
				t.Fatalf("dial with the right pin: %v", err)
			}
		})
	}
}

// TestClientECDSAHostKey: a non-Ed25519 host key is pinned by its SHA256: form.
func TestClientECDSAHostKey(t *testing.T) {
	user, host := stSigner(t), stECDSASigner(t)
	n := stStartTCP(t, ssh.Config{HostKey: host, Identities: stNewIdentities().add(user, "alice")})
	if _, err := n.dial(t, ssh.ClientConfig{Signer: user, HostKey: ssh.KeyFingerprint(host.PublicKey())}); err != nil {
		t.Fatal(err)
	}
}

// TestClientConfigErrors: a nil Signer or an empty or malformed HostKey is ErrConfig
// before anything is sent, and NewClientConn closes the connection it was given.
func TestClientConfigErrors(t *testing.T) {
	signer := stSigner(t)
	pin := ssh.KeyFingerprint(stSigner(t).PublicKey())
	for name, cc := range map[string]ssh.ClientConfig{
		"nil signer":        {HostKey: pin},
		"empty host key":    {Signer: signer},
		"malformed pin":     {Signer: signer, HostKey: "not-a-fingerprint"},
		"truncated pin":     {Signer: signer, HostKey: pin[:20]},
		"base64 SHA256 pin": {Signer: signer, HostKey: "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU"},
	} {
		t.Run(name, func(t *testing.T) {
			ctx := stCtx(t)
			// 192.0.2.1 (TEST-NET-1) is never dialled: the config is checked first.
			if _, err := ssh.Dial(ctx, "192.0.2.1:1", cc); !errors.Is(err, ssh.ErrConfig) {
				t.Errorf("Dial: %v, want ErrConfig", err)
			}
			a, b := net.Pipe()
			defer b.Close()
			if _, err := ssh.NewClientConn(ctx, a, "pipe", cc); !errors.Is(err, ssh.ErrConfig) {
				t.Errorf("NewClientConn: %v, want ErrConfig", err)
			}
			_ = b.SetReadDeadline(time.Now().Add(stFailSafe))
			if _, err := b.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
				t.Errorf("the connection NewClientConn got is not closed: read %v", err)
			}
		})
	}
}

// TestClientCertificateForOtherKey: a certificate that does not certify Signer's key
// is an error.
func TestClientCertificateForOtherKey(t *testing.T) {
	ca := stNewCA(t)
	n := stStartTCP(t, ssh.Config{CertAuthorities: []ssh.CertAuthority{ca.authority()}})
	cert := ca.cert(t, stSigner(t), nil)
	if _, err := n.dial(t, ssh.ClientConfig{Signer: stSigner(t), Certificate: cert, User: "alice"}); err == nil {
		t.Fatal("logged in with a certificate for another key")
	}
}

// stSilentServer accepts TCP connections and never answers; it returns the address.
func stSilentServer(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	conns := make(chan net.Conn, 16)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns <- c
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		<-done
		close(conns)
		for c := range conns {
			_ = c.Close()
		}
	})
	return ln.Addr().String()
}

// TestClientContextAndTimeout: the handshake ends with the context, or after
// HandshakeTimeout, against a server that never speaks.
func TestClientContextAndTimeout(t *testing.T) {
	addr := stSilentServer(t)
	pin := ssh.KeyFingerprint(stSigner(t).PublicKey())
	signer := stSigner(t)

	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := ssh.NewClientConn(ctx, nc, addr, ssh.ClientConfig{Signer: signer, HostKey: pin})
		done <- err
	}()
	cancel()
	if err := stWaitErr(t, "NewClientConn after cancel", done); !errors.Is(err, context.Canceled) {
		t.Fatalf("NewClientConn after cancel: %v, want context.Canceled", err)
	}

	nc, err = net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		_, err := ssh.NewClientConn(context.Background(), nc, addr, ssh.ClientConfig{Signer: signer, HostKey: pin, HandshakeTimeout: 50 * time.Millisecond})
		done <- err
	}()
	if err := stWaitErr(t, "NewClientConn with HandshakeTimeout", done); err == nil {
		t.Fatal("handshake with a silent server succeeded")
	}
}

// TestClientDialUnreachable: Dial to a port nothing listens on fails.
func TestClientDialUnreachable(t *testing.T) {
	ctx := stCtx(t)
	cc := ssh.ClientConfig{Signer: stSigner(t), HostKey: ssh.KeyFingerprint(stSigner(t).PublicKey()),
		Transport: endpoint.DialOptions{Network: endpoint.NetworkTCP}}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(int(stClosedPort(t))))
	if _, err := ssh.Dial(ctx, addr, cc); err == nil {
		t.Fatal("Dial to a closed port succeeded")
	}
}

// TestClientOpen: Open gives a net.Conn (with addresses and half-close) through a
// direct-tcpip channel, over every transport; Close ends the transport too.
func TestClientOpen(t *testing.T) {
	for _, st := range stStarters {
		t.Run(st.name, func(t *testing.T) {
			user := stSigner(t)
			_, echoPort := stEchoServer(t)
			n := st.start(t, ssh.Config{
				Identities: stNewIdentities().add(user, "alice"),
				Forwarding: stPolicy(t, ssh.Deny, "cidr:127.0.0.0/8", ssh.Allow),
			})
			c := n.mustDial(t, user)
			conn, err := c.Open(stCtx(t), "127.0.0.1", echoPort)
			if err != nil {
				t.Fatal(err)
			}
			var _ net.Conn = conn
			if conn.LocalAddr() == nil || conn.RemoteAddr() == nil {
				t.Errorf("addresses %v %v", conn.LocalAddr(), conn.RemoteAddr())
			}
			stEcho(t, conn, 300<<10)
			_ = conn.Close()

			_ = c.Close()
			n.Logs.wait(t, "connection closed", 1)
			if _, err := c.Open(stCtx(t), "127.0.0.1", echoPort); err == nil {
				t.Fatal("Open after Close succeeded")
			}
		})
	}
}

// TestClientOpenContext: Open with a cancelled context fails at once.
func TestClientOpenContext(t *testing.T) {
	user := stSigner(t)
	n := stStartTCP(t, ssh.Config{Identities: stNewIdentities().add(user, "alice")})
	c := n.mustDial(t, user)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Open(ctx, "127.0.0.1", 1); !errors.Is(err, context.Canceled) {
		t.Fatalf("Open with a cancelled context: %v", err)
	}
}

// TestClientNewClient: NewClient logs in over an established alknet/ssh connection
// (pinning what is only known after the TLS handshake) and owns it: closing the
// Client closes the connection, and so does a configuration error.
func TestClientNewClient(t *testing.T) {
	for _, network := range []endpoint.Network{endpoint.NetworkQUIC, endpoint.NetworkTCP} {
		t.Run(network.String(), func(t *testing.T) {
			user, host := stSigner(t), stSigner(t)
			srv, err := ssh.NewServer(ssh.Config{HostKey: host, Identities: stNewIdentities().add(user, "alice", ssh.ScopeExec), Exec: stEchoExec()})
			if err != nil {
				t.Fatal(err)
			}
			reg := core.NewRegistry()
			if err := reg.Register(srv); err != nil {
				t.Fatal(err)
			}
			ts := coretest.NewServer(t, reg)
			ctx := stCtx(t)
			id := coretest.NewIdentity(t)

			conn, err := ts.DialErr(ctx, ssh.ALPN, id, network)
			if err != nil {
				t.Fatal(err)
			}
			c, err := ssh.NewClient(ctx, conn, ts.Addr, ssh.ClientConfig{Signer: user, HostKey: ssh.KeyFingerprint(host.PublicKey())})
			if err != nil {
				conn.Close(core.CloseNormal, "")
				t.Fatal(err)
			}
			stMustEcho(t, c.Client)
			_ = c.Close()
			if _, err := conn.OpenBi(ctx); err == nil {
				t.Error("connection still open after Client.Close")
			}

			conn, err = ts.DialErr(ctx, ssh.ALPN, id, network)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := ssh.NewClient(ctx, conn, ts.Addr, ssh.ClientConfig{Signer: user}); !errors.Is(err, ssh.ErrConfig) {
				t.Fatalf("NewClient without HostKey: %v, want ErrConfig", err)
			}
			if _, err := conn.OpenBi(ctx); err == nil {
				t.Error("connection still open after a NewClient configuration error")
			}

			conn, err = ts.DialErr(ctx, ssh.ALPN, id, network)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := ssh.NewClient(ctx, conn, ts.Addr, ssh.ClientConfig{Signer: user, HostKey: ssh.KeyFingerprint(user.PublicKey())}); !errors.Is(err, ssh.ErrHostKeyMismatch) {
				t.Fatalf("NewClient with a wrong pin: %v, want ErrHostKeyMismatch", err)
			}
			if _, err := conn.OpenBi(ctx); err == nil {
				t.Error("connection still open after a failed login")
			}
		})
	}
}
