package endpoint_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/core/coretest"
	"github.com/alknet/alknet/core/endpoint"
	"github.com/alknet/alknet/core/tlsconf"
)

// tlsDial performs a crypto/tls handshake with the TCP+TLS twin at addr, pinned to fp
// and offering alknet/echo, with the client's versions limited to [minV, maxV]. On
// success t.Cleanup closes the connection.
func tlsDial(t *testing.T, addr, fp string, minV, maxV uint16) (*tls.Conn, error) {
	t.Helper()
	cfg, err := tlsconf.ClientConfig(tlsconf.ClientOptions{Pin: fp, NextProtos: []string{"alknet/echo"}})
	if err != nil {
		t.Fatal(err)
	}
	cfg.MinVersion, cfg.MaxVersion = minV, maxV
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	d := tls.Dialer{Config: cfg}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	tc := c.(*tls.Conn)
	t.Cleanup(func() { tc.Close() })
	return tc, nil
}

// echoOver sends msg on the one stream of a TCP+TLS connection, half-closes and
// checks that the echo handler sends it back.
func echoOver(t *testing.T, c *tls.Conn, msg string) {
	t.Helper()
	if err := c.SetDeadline(time.Now().Add(testTimeout)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatalf("write: %v", err)
	}
	if err := c.CloseWrite(); err != nil {
		t.Fatalf("close write: %v", err)
	}
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("read echo: %v", err)
	}
	if string(got) != msg {
		t.Fatalf("echo %q, want %q", got, msg)
	}
}

// checkNodeCertificate checks the node certificate a client saw: the node's key
// (fingerprint), a serial of at least 64 bits within RFC 5280's 20 octets, and a
// subjectAltName.
func checkNodeCertificate(t *testing.T, st tls.ConnectionState, fp string) {
	t.Helper()
	if len(st.PeerCertificates) != 1 {
		t.Fatalf("server sent %d certificates, want 1", len(st.PeerCertificates))
	}
	leaf := st.PeerCertificates[0]
	if got := core.FingerprintFromCert(leaf); got != fp {
		t.Errorf("server fingerprint %q, want %q", got, fp)
	}
	if sn := leaf.SerialNumber; sn.Sign() <= 0 || sn.BitLen() < 64 || sn.BitLen()/8+1 > 20 {
		t.Errorf("serial %x (%d bits): want positive, at least 64 bits, at most 20 octets", sn, sn.BitLen())
	}
	if !slices.Equal(leaf.DNSNames, []string{tlsconf.CertificateCommonName}) {
		t.Errorf("subjectAltName DNS names %q, want [%s]", leaf.DNSNames, tlsconf.CertificateCommonName)
	}
	if now := time.Now(); now.Before(leaf.NotBefore) || now.After(leaf.NotAfter) {
		t.Errorf("certificate valid %v to %v, not now", leaf.NotBefore, leaf.NotAfter)
	}
}

// TestTCPTwinTLS13Only checks that the TCP+TLS twin of an endpoint built from
// tlsconf.ServerConfig refuses a TLS 1.2-only client and serves TLS 1.3, with the
// node certificate.
func TestTCPTwinTLS13Only(t *testing.T) {
	reg := newRegistry(t, map[string]core.Handler{"alknet/echo": coretest.Echo()})
	srv := coretest.NewServer(t, reg)
	fp := srv.Identity.Fingerprint

	_, err := tlsDial(t, srv.Addr, fp, tls.VersionTLS10, tls.VersionTLS12)
	if err == nil {
		t.Fatal("a client limited to TLS 1.2 completed a handshake")
	}
	if !strings.Contains(err.Error(), "protocol version") {
		t.Errorf("TLS 1.2 client: %v, want a protocol_version alert", err)
	}

	c, err := tlsDial(t, srv.Addr, fp, tls.VersionTLS13, tls.VersionTLS13)
	if err != nil {
		t.Fatalf("TLS 1.3 client: %v", err)
	}
	st := c.ConnectionState()
	if st.Version != tls.VersionTLS13 || st.NegotiatedProtocol != "alknet/echo" {
		t.Errorf("version %#x ALPN %q, want TLS 1.3 and alknet/echo", st.Version, st.NegotiatedProtocol)
	}
	checkNodeCertificate(t, st, fp)
	echoOver(t, c, "hello over TLS 1.3")

	// The default client (tlsconf.ClientConfig) negotiates TLS 1.3 on both transports.
	for _, network := range networks {
		conn := srv.Dial(t, "alknet/echo", nil, network)
		if st, ok := conn.TLSConnectionState(); !ok || st.Version != tls.VersionTLS13 {
			t.Errorf("%s: TLS version %#x (state %v), want TLS 1.3", network, st.Version, ok)
		}
	}
}

// TestTCPTwinTLS12OptIn checks that a caller who lowers MinVersion on the
// ServerConfig gets TLS 1.2 on the TCP+TLS twin (the endpoint keeps MinVersion),
// while QUIC stays at TLS 1.3.
func TestTCPTwinTLS12OptIn(t *testing.T) {
	reg := newRegistry(t, map[string]core.Handler{"alknet/echo": coretest.Echo()})
	srv := coretest.NewServer(t, reg, coretest.WithEndpointConfig(func(c *endpoint.Config) {
		c.TLS.MinVersion = tls.VersionTLS12
	}))
	fp := srv.Identity.Fingerprint

	c, err := tlsDial(t, srv.Addr, fp, tls.VersionTLS12, tls.VersionTLS12)
	if err != nil {
		t.Fatalf("TLS 1.2 client with MinVersion lowered: %v", err)
	}
	st := c.ConnectionState()
	if st.Version != tls.VersionTLS12 {
		t.Errorf("version %#x, want TLS 1.2", st.Version)
	}
	checkNodeCertificate(t, st, fp)
	echoOver(t, c, "hello over TLS 1.2")

	conn := srv.Dial(t, "alknet/echo", nil, endpoint.NetworkQUIC)
	if st, ok := conn.TLSConnectionState(); !ok || st.Version != tls.VersionTLS13 {
		t.Errorf("QUIC: TLS version %#x (state %v), want TLS 1.3", st.Version, ok)
	}
}

// TestNodeCertificatePerStart checks that two endpoints of one node key (two starts of
// a node) serve different certificates, with different random serials, and that a
// client pinning the node's fingerprint accepts both.
func TestNodeCertificatePerStart(t *testing.T) {
	reg := newRegistry(t, map[string]core.Handler{"alknet/echo": coretest.Echo()})
	key := coretest.NewIdentity(t).Key
	var certs []*x509.Certificate
	for range 2 {
		id := coretest.IdentityFromKey(t, key)
		srv := coretest.NewServer(t, reg, coretest.WithIdentity(id))
		c, err := tlsDial(t, srv.Addr, id.Fingerprint, tls.VersionTLS13, tls.VersionTLS13)
		if err != nil {
			t.Fatalf("pinned TLS 1.3 client: %v", err)
		}
		st := c.ConnectionState()
		checkNodeCertificate(t, st, tlsconf.Fingerprint(key))
		certs = append(certs, st.PeerCertificates[0])
		echoOver(t, c, "same node")
		// endpoint.Dial with the pin too, over QUIC.
		conn := srv.Dial(t, "alknet/echo", nil, endpoint.NetworkQUIC)
		if got := conn.PeerFingerprint(); got != tlsconf.Fingerprint(key) {
			t.Errorf("QUIC peer fingerprint %q, want %q", got, tlsconf.Fingerprint(key))
		}
	}
	if bytes.Equal(certs[0].Raw, certs[1].Raw) || certs[0].SerialNumber.Cmp(certs[1].SerialNumber) == 0 {
		t.Fatalf("two starts of one node served the same certificate or serial (%x)", certs[0].SerialNumber)
	}
}
