package tlsconf_test

import (
	"bytes"
	"cmp"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"io"
	"math/big"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/core/tlsconf"
)

const testALPN = "alknet/test"

func TestCertificate(t *testing.T) {
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{3}, ed25519.SeedSize))
	before := time.Now()
	c1, err := tlsconf.Certificate(key)
	if err != nil {
		t.Fatal(err)
	}
	after := time.Now()
	c2, err := tlsconf.Certificate(key)
	if err != nil {
		t.Fatal(err)
	}
	if len(c1.Certificate) != 1 || bytes.Equal(c1.Certificate[0], c2.Certificate[0]) {
		t.Error("two certificates for one key are the same DER")
	}
	if c1.Leaf.SerialNumber.Cmp(c2.Leaf.SerialNumber) == 0 {
		t.Errorf("two certificates for one key have the same serial %x", c1.Leaf.SerialNumber)
	}
	other, err := tlsconf.Certificate(newKey(t))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(c1.Certificate[0], other.Certificate[0]) {
		t.Error("two keys gave the same certificate")
	}

	leaf := c1.Leaf
	if leaf == nil || !bytes.Equal(leaf.Raw, c1.Certificate[0]) {
		t.Fatal("Leaf is not the parsed certificate")
	}
	if pub, ok := leaf.PublicKey.(ed25519.PublicKey); !ok || !pub.Equal(key.Public()) {
		t.Errorf("certificate key %T is not the given key", leaf.PublicKey)
	}
	if priv, ok := c1.PrivateKey.(ed25519.PrivateKey); !ok || !priv.Equal(key) {
		t.Errorf("PrivateKey %T is not the given key", c1.PrivateKey)
	}
	if leaf.Subject.CommonName != tlsconf.CertificateCommonName {
		t.Errorf("subject CN %q, want %q", leaf.Subject.CommonName, tlsconf.CertificateCommonName)
	}
	if !slices.Equal(leaf.DNSNames, []string{tlsconf.CertificateCommonName}) || len(leaf.IPAddresses)+len(leaf.EmailAddresses)+len(leaf.URIs) != 0 {
		t.Errorf("subjectAltName DNS %q IP %v email %q URI %v, want only DNS %q",
			leaf.DNSNames, leaf.IPAddresses, leaf.EmailAddresses, leaf.URIs, tlsconf.CertificateCommonName)
	}
	for _, c := range []tls.Certificate{c1, c2} {
		checkSerial(t, c.Leaf.SerialNumber)
	}
	// Valid from CertificateBackdate before its creation (whole seconds) for
	// CertificateValidity.
	earliest := before.Add(-tlsconf.CertificateBackdate).Add(-time.Second)
	if leaf.NotBefore.Before(earliest) || leaf.NotBefore.After(after.Add(-tlsconf.CertificateBackdate)) {
		t.Errorf("NotBefore %v, want %v before the time it was made (%v to %v)", leaf.NotBefore, tlsconf.CertificateBackdate, before, after)
	}
	if got := leaf.NotAfter.Sub(leaf.NotBefore); got != tlsconf.CertificateValidity {
		t.Errorf("validity %v, want CertificateValidity %v", got, tlsconf.CertificateValidity)
	}
	if leaf.IsCA || !leaf.BasicConstraintsValid {
		t.Errorf("IsCA %v, BasicConstraintsValid %v; want a leaf (false, true)", leaf.IsCA, leaf.BasicConstraintsValid)
	}
	if err := leaf.CheckSignature(leaf.SignatureAlgorithm, leaf.RawTBSCertificate, leaf.Signature); err != nil {
		t.Errorf("certificate is not self-signed by the key: %v", err)
	}
	for _, u := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if !slices.Contains(leaf.ExtKeyUsage, u) {
			t.Errorf("ExtKeyUsage %v lacks %v", leaf.ExtKeyUsage, u)
		}
	}

	fp := tlsconf.Fingerprint(key)
	if want := core.FingerprintFromPublicKey(key.Public().(ed25519.PublicKey)); fp != want {
		t.Errorf("Fingerprint = %q, want %q", fp, want)
	}
	if got := core.FingerprintFromCert(leaf); got != fp {
		t.Errorf("FingerprintFromCert(leaf) = %q, want tlsconf.Fingerprint %q", got, fp)
	}
	if got := core.FingerprintFromDER(c1.Certificate[0]); got != fp {
		t.Errorf("FingerprintFromDER(cert) = %q, want %q", got, fp)
	}

	if _, err := tlsconf.Certificate(key[:32]); !errors.Is(err, tlsconf.ErrInvalidKey) {
		t.Errorf("Certificate(short key) = %v, want ErrInvalidKey", err)
	}
}

// checkSerial checks that serial is positive, fits RFC 5280's 20 octets and is long
// enough to hold 64 random bits (the CA/Browser Forum's minimum).
func checkSerial(t *testing.T, serial *big.Int) {
	t.Helper()
	if serial.Sign() <= 0 {
		t.Errorf("serial %v is not positive", serial)
	}
	// DER encodes a positive integer in BitLen/8+1 octets (a leading zero when the top
	// bit is set).
	if octets := serial.BitLen()/8 + 1; octets > 20 {
		t.Errorf("serial %x is %d octets in DER, more than 20", serial, octets)
	}
	if serial.BitLen() < 64 {
		t.Errorf("serial %x has %d bits, fewer than 64", serial, serial.BitLen())
	}
}

// TestSerialsAreRandom checks that serial numbers do not repeat and that each of
// their low 64 bits varies.
func TestSerialsAreRandom(t *testing.T) {
	key := newKey(t)
	const n = 64
	seen := make(map[string]bool)
	var ones, zeros uint64
	for range n {
		c, err := tlsconf.Certificate(key)
		if err != nil {
			t.Fatal(err)
		}
		sn := c.Leaf.SerialNumber
		if seen[sn.String()] {
			t.Fatalf("serial %x repeated", sn)
		}
		seen[sn.String()] = true
		low := new(big.Int).And(sn, new(big.Int).SetUint64(^uint64(0))).Uint64()
		ones |= low
		zeros |= ^low
	}
	// A fixed bit among 64 random ones survives 64 draws with probability 2^-64 per bit.
	if ones != ^uint64(0) || zeros != ^uint64(0) {
		t.Errorf("low 64 serial bits never 1: %064b, never 0: %064b", ^ones, ^zeros)
	}
}

// TestPinAcrossCertificates checks that the fingerprint names the key, not the
// certificate: a pinned client reaches a server whatever certificate carries its key
// (a new one at each start, an expired one, one not valid yet), and the server sees
// the same fingerprint for every certificate of one client key.
func TestPinAcrossCertificates(t *testing.T) {
	serverKey, clientKey := newKey(t), newKey(t)
	now := time.Now()
	certsAt := func(key ed25519.PrivateKey) map[string]tls.Certificate {
		t.Helper()
		certs := make(map[string]tls.Certificate)
		for name, at := range map[string]time.Time{
			"now":          now,
			"now again":    now,
			"expired":      now.Add(-2 * tlsconf.CertificateValidity),
			"not yet":      now.Add(tlsconf.CertificateValidity / 2),
			"year 2000":    time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC),
			"long expired": now.AddDate(-30, 0, 0),
		} {
			c, err := tlsconf.CertificateAt(key, at)
			if err != nil {
				t.Fatal(err)
			}
			certs[name] = c
		}
		return certs
	}
	serverCerts, clientCerts := certsAt(serverKey), certsAt(clientKey)
	if bytes.Equal(serverCerts["now"].Certificate[0], serverCerts["now again"].Certificate[0]) {
		t.Fatal("two certificates made at once are the same; the test needs different ones")
	}
	serverFP, clientFP := tlsconf.Fingerprint(serverKey), tlsconf.Fingerprint(clientKey)
	for name, sc := range serverCerts {
		t.Run(name, func(t *testing.T) {
			cfg := tlsconf.ServerConfig(sc)
			cfg.NextProtos = []string{testALPN}
			srv := startTLSServer(t, cfg)
			cc := clientCerts[name]
			client, err := tlsconf.ClientConfig(tlsconf.ClientOptions{Pin: serverFP, Certificate: &cc, NextProtos: []string{testALPN}})
			if err != nil {
				t.Fatal(err)
			}
			conn, res, err := srv.dial(t, client)
			if err != nil {
				t.Fatalf("pinned handshake with the server's %s certificate: %v", name, err)
			}
			if got := core.FingerprintFromCert(conn.ConnectionState().PeerCertificates[0]); got != serverFP {
				t.Errorf("client saw server fingerprint %q, want %q", got, serverFP)
			}
			if got := core.FingerprintFromCert(res.state.PeerCertificates[0]); got != clientFP {
				t.Errorf("server saw client fingerprint %q, want %q", got, clientFP)
			}
		})
	}
}

// TestNodeCertificateRenews checks that NodeCertificate keeps its certificate until a
// third of CertificateValidity remains, then makes a new one from the same key, and
// that a server using it serves the current one to pinned clients.
func TestNodeCertificateRenews(t *testing.T) {
	key := newKey(t)
	fp := tlsconf.Fingerprint(key)
	nc, err := tlsconf.NewNodeCertificate(key)
	if err != nil {
		t.Fatal(err)
	}
	var clock atomic.Int64 // UnixNano of the fake now
	start := time.Now()
	clock.Store(start.UnixNano())
	nc.SetClock(func() time.Time { return time.Unix(0, clock.Load()) })
	set := func(d time.Duration) { clock.Store(start.Add(d).UnixNano()) }

	first, err := nc.Certificate()
	if err != nil {
		t.Fatal(err)
	}
	current := func() *tls.Certificate {
		t.Helper()
		c, err := nc.GetCertificate(&tls.ClientHelloInfo{})
		if err != nil {
			t.Fatal(err)
		}
		if cc, err := nc.GetClientCertificate(&tls.CertificateRequestInfo{}); err != nil || cc != c {
			t.Fatalf("GetClientCertificate = %p, %v; want GetCertificate's %p", cc, err, c)
		}
		if got := core.FingerprintFromCert(c.Leaf); got != fp {
			t.Fatalf("certificate fingerprint %q, want the key's %q", got, fp)
		}
		return c
	}
	due := tlsconf.CertificateValidity * 2 / 3 // after NotBefore, less backdating

	set(due - tlsconf.CertificateBackdate - time.Minute)
	if current() != first {
		t.Error("certificate renewed before a third of its validity was left")
	}
	set(due)
	renewed := current()
	if renewed == first || renewed.Leaf.SerialNumber.Cmp(first.Leaf.SerialNumber) == 0 {
		t.Fatal("certificate not renewed with a third of its validity left")
	}
	if want := start.Add(due - tlsconf.CertificateBackdate).Truncate(time.Second); !renewed.Leaf.NotBefore.Equal(want) {
		t.Errorf("renewed NotBefore %v, want %v", renewed.Leaf.NotBefore, want)
	}
	if current() != renewed {
		t.Error("the renewed certificate was renewed again at once")
	}
	// A clock set back before NotBefore gets a certificate valid now.
	set(0)
	if back := current(); back == renewed || !back.Leaf.NotBefore.Before(start) {
		t.Errorf("after the clock went back: NotBefore %v, want before %v", back.Leaf.NotBefore, start)
	}

	// A server using it serves the current certificate.
	cfg := nc.ServerConfig()
	if len(cfg.Certificates) != 0 || cfg.GetCertificate == nil || cfg.MinVersion != tls.VersionTLS13 || cfg.ClientAuth != tls.RequestClientCert {
		t.Fatalf("ServerConfig: %d Certificates, GetCertificate set %v, MinVersion %#x, ClientAuth %v",
			len(cfg.Certificates), cfg.GetCertificate != nil, cfg.MinVersion, cfg.ClientAuth)
	}
	cfg.NextProtos = []string{testALPN}
	srv := startTLSServer(t, cfg)
	want := current()
	client, err := tlsconf.ClientConfig(tlsconf.ClientOptions{Pin: fp, NextProtos: []string{testALPN}})
	if err != nil {
		t.Fatal(err)
	}
	conn, _, err := srv.dial(t, client)
	if err != nil {
		t.Fatalf("pinned handshake: %v", err)
	}
	if got := conn.ConnectionState().PeerCertificates[0]; !bytes.Equal(got.Raw, want.Leaf.Raw) {
		t.Errorf("server presented serial %x, want the current %x", got.SerialNumber, want.Leaf.SerialNumber)
	}

	if _, err := tlsconf.NewNodeCertificate(key[:10]); !errors.Is(err, tlsconf.ErrInvalidKey) {
		t.Errorf("NewNodeCertificate(short key) = %v, want ErrInvalidKey", err)
	}
}

func TestServerConfig(t *testing.T) {
	cert, err := tlsconf.Certificate(newKey(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg := tlsconf.ServerConfig(cert)
	if cfg.ClientAuth != tls.RequestClientCert {
		t.Errorf("ClientAuth = %v, want RequestClientCert", cfg.ClientAuth)
	}
	if cfg.MinVersion != tls.VersionTLS13 {
		t.Errorf("MinVersion = %#x, want TLS 1.3", cfg.MinVersion)
	}
	if len(cfg.Certificates) != 1 || !bytes.Equal(cfg.Certificates[0].Certificate[0], cert.Certificate[0]) {
		t.Error("Certificates is not the given certificate")
	}
}

func TestClientConfigOptions(t *testing.T) {
	cert, err := tlsconf.Certificate(newKey(t))
	if err != nil {
		t.Fatal(err)
	}
	pin := tlsconf.Fingerprint(newKey(t))
	verify := func(string, tls.ConnectionState) error { return nil }

	tests := []struct {
		name         string
		opts         tlsconf.ClientOptions
		wantErr      error
		wantInsecure bool // InsecureSkipVerify, replaced by VerifyConnection
		wantVerify   bool // VerifyConnection set
	}{
		{name: "nothing", opts: tlsconf.ClientOptions{}, wantErr: tlsconf.ErrNoServerVerification},
		{
			name:    "certificate, roots and ALPN but no way to verify",
			opts:    tlsconf.ClientOptions{Certificate: &cert, RootCAs: x509.NewCertPool(), NextProtos: []string{testALPN}},
			wantErr: tlsconf.ErrNoServerVerification,
		},
		{name: "invalid pin", opts: tlsconf.ClientOptions{Pin: "ed25519:nothex"}, wantErr: core.ErrInvalidFingerprint},
		{name: "uppercase pin", opts: tlsconf.ClientOptions{Pin: "ed25519:" + bytes2upper(pin[8:])}, wantErr: core.ErrInvalidFingerprint},
		{name: "invalid pin with server name", opts: tlsconf.ClientOptions{Pin: "x", ServerName: "localhost"}, wantErr: core.ErrInvalidFingerprint},
		{name: "pin", opts: tlsconf.ClientOptions{Pin: pin}, wantInsecure: true, wantVerify: true},
		{name: "pin and server name", opts: tlsconf.ClientOptions{Pin: pin, ServerName: "node"}, wantInsecure: true, wantVerify: true},
		{name: "CA", opts: tlsconf.ClientOptions{ServerName: "example.com"}},
		{name: "CA with extra check", opts: tlsconf.ClientOptions{ServerName: "example.com", VerifyServer: verify}, wantVerify: true},
		{name: "VerifyServer only", opts: tlsconf.ClientOptions{VerifyServer: verify}, wantInsecure: true, wantVerify: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := tlsconf.ClientConfig(tt.opts)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || cfg != nil {
					t.Fatalf("ClientConfig = %v, %v; want nil, %v", cfg, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.InsecureSkipVerify != tt.wantInsecure {
				t.Errorf("InsecureSkipVerify = %v, want %v", cfg.InsecureSkipVerify, tt.wantInsecure)
			}
			if (cfg.VerifyConnection != nil) != tt.wantVerify {
				t.Errorf("VerifyConnection set = %v, want %v", cfg.VerifyConnection != nil, tt.wantVerify)
			}
			if cfg.InsecureSkipVerify && cfg.VerifyConnection == nil {
				t.Error("accept-any client configuration")
			}
			if cfg.MinVersion != tls.VersionTLS13 {
				t.Errorf("MinVersion = %#x, want TLS 1.3", cfg.MinVersion)
			}
			if cfg.ServerName != tt.opts.ServerName {
				t.Errorf("ServerName = %q, want %q", cfg.ServerName, tt.opts.ServerName)
			}
		})
	}

	// NextProtos is copied.
	protos := []string{testALPN}
	cfg, err := tlsconf.ClientConfig(tlsconf.ClientOptions{Pin: pin, NextProtos: protos})
	if err != nil {
		t.Fatal(err)
	}
	protos[0] = "changed"
	if !slices.Equal(cfg.NextProtos, []string{testALPN}) {
		t.Errorf("NextProtos = %q, want a copy of the options", cfg.NextProtos)
	}
}

func bytes2upper(s string) string { return string(bytes.ToUpper([]byte(s))) }

// serverResult is what the loopback server saw of one connection.
type serverResult struct {
	state tls.ConnectionState
	err   error
}

// tlsServer is a crypto/tls server on 127.0.0.1 with an ephemeral port. For every
// connection it completes the handshake, reports it on results, writes one byte (so
// the client has the server's session tickets and knows the handshake finished on
// both sides) and then waits for the client to close.
type tlsServer struct {
	addr    string
	results chan serverResult
}

func startTLSServer(t *testing.T, cfg *tls.Config) *tlsServer {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := &tlsServer{addr: ln.Addr().String(), results: make(chan serverResult, 64)}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				tc := c.(*tls.Conn)
				err := tc.HandshakeContext(context.Background())
				if err == nil {
					_, err = tc.Write([]byte{'!'})
				}
				srv.results <- serverResult{tc.ConnectionState(), err}
				if err == nil {
					_, _ = io.Copy(io.Discard, tc)
				}
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return srv
}

// dial connects with cfg. On success it reads the server's byte and returns the
// server's view of the connection too; the connection is closed by t.Cleanup.
func (s *tlsServer) dial(t *testing.T, cfg *tls.Config) (*tls.Conn, serverResult, error) {
	t.Helper()
	d := tls.Dialer{Config: cfg}
	c, err := d.DialContext(t.Context(), "tcp", s.addr)
	if err != nil {
		// The server's handshake fails too; collect it so results stay in step.
		<-s.results
		return nil, serverResult{}, err
	}
	tc := c.(*tls.Conn)
	t.Cleanup(func() { tc.Close() })
	var b [1]byte
	if _, err := io.ReadFull(tc, b[:]); err != nil {
		t.Fatalf("read server byte: %v", err)
	}
	res := <-s.results
	if res.err != nil {
		t.Fatalf("server handshake failed after the client's succeeded: %v", res.err)
	}
	return tc, res, nil
}

type nodeIdentity struct {
	key  ed25519.PrivateKey
	cert tls.Certificate
	fp   string
}

func newNode(t *testing.T) nodeIdentity {
	t.Helper()
	key := newKey(t)
	cert, err := tlsconf.Certificate(key)
	if err != nil {
		t.Fatal(err)
	}
	return nodeIdentity{key, cert, tlsconf.Fingerprint(key)}
}

func nodeServer(t *testing.T, n nodeIdentity) *tlsServer {
	cfg := tlsconf.ServerConfig(n.cert)
	cfg.NextProtos = []string{testALPN}
	return startTLSServer(t, cfg)
}

func TestPinnedHandshake(t *testing.T) {
	server := newNode(t)
	client := newNode(t)
	srv := nodeServer(t, server)
	sha256OfCert := func() string {
		sum := sha256.Sum256(server.cert.Certificate[0])
		return "SHA256:" + hex.EncodeToString(sum[:])
	}()

	// A server that opted in to TLS 1.2.
	tls12Server := func() *tlsServer {
		cfg := tlsconf.ServerConfig(server.cert)
		cfg.MinVersion = tls.VersionTLS12
		cfg.NextProtos = []string{testALPN}
		return startTLSServer(t, cfg)
	}()

	tests := []struct {
		name       string
		srv        *tlsServer // nil: srv
		pin        string
		clientCert *tls.Certificate
		maxVersion uint16 // also the client's MinVersion when set
		wantErr    bool
	}{
		{name: "right pin, TLS 1.3, client certificate", pin: server.fp, clientCert: &client.cert},
		{name: "right pin, TLS 1.2 opted in, client certificate", srv: tls12Server, pin: server.fp, clientCert: &client.cert, maxVersion: tls.VersionTLS12},
		{name: "right pin, no client certificate", pin: server.fp},
		{name: "wrong pin", pin: client.fp, clientCert: &client.cert, wantErr: true},
		{name: "wrong pin, TLS 1.2 opted in", srv: tls12Server, pin: client.fp, maxVersion: tls.VersionTLS12, wantErr: true},
		// An Ed25519 certificate is fingerprinted by its key, never by its DER hash.
		{name: "certificate hash of an Ed25519 certificate", pin: sha256OfCert, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := tlsconf.ClientConfig(tlsconf.ClientOptions{Pin: tt.pin, Certificate: tt.clientCert, NextProtos: []string{testALPN}})
			if err != nil {
				t.Fatal(err)
			}
			if tt.maxVersion != 0 {
				cfg.MinVersion, cfg.MaxVersion = tt.maxVersion, tt.maxVersion
			}
			srv := cmp.Or(tt.srv, srv)
			conn, res, err := srv.dial(t, cfg)
			if tt.wantErr {
				if err == nil {
					t.Fatal("handshake with a wrong pin succeeded")
				}
				if !errors.Is(err, tlsconf.ErrFingerprintMismatch) {
					t.Errorf("error %v does not wrap ErrFingerprintMismatch", err)
				}
				var fme *tlsconf.FingerprintMismatchError
				if !errors.As(err, &fme) {
					t.Fatalf("error %T is not a *FingerprintMismatchError", err)
				}
				if fme.Want != tt.pin || fme.Got != server.fp {
					t.Errorf("mismatch error Want=%q Got=%q; want Want=%q Got=%q", fme.Want, fme.Got, tt.pin, server.fp)
				}
				return
			}
			if err != nil {
				t.Fatalf("handshake: %v", err)
			}
			st := conn.ConnectionState()
			if st.NegotiatedProtocol != testALPN {
				t.Errorf("negotiated %q, want %q", st.NegotiatedProtocol, testALPN)
			}
			if tt.maxVersion != 0 && st.Version != tt.maxVersion {
				t.Errorf("TLS version %#x, want %#x", st.Version, tt.maxVersion)
			}
			// The server requests but does not require a client certificate and accepts
			// any; it only turns it into a fingerprint.
			if tt.clientCert == nil {
				if len(res.state.PeerCertificates) != 0 {
					t.Errorf("server saw %d client certificates, want none", len(res.state.PeerCertificates))
				}
				return
			}
			if len(res.state.PeerCertificates) == 0 {
				t.Fatal("server saw no client certificate")
			}
			if got := core.FingerprintFromCert(res.state.PeerCertificates[0]); got != client.fp {
				t.Errorf("server saw client fingerprint %q, want %q", got, client.fp)
			}
		})
	}
}

// TestTLS12RefusedByDefault checks that ServerConfig and ClientConfig both refuse
// TLS 1.2 unless the caller lowers MinVersion.
func TestTLS12RefusedByDefault(t *testing.T) {
	server := newNode(t)
	srv := nodeServer(t, server)
	cfg, err := tlsconf.ClientConfig(tlsconf.ClientOptions{Pin: server.fp, NextProtos: []string{testALPN}})
	if err != nil {
		t.Fatal(err)
	}
	// A TLS 1.2-only client is refused by the server.
	old := cfg.Clone()
	old.MinVersion, old.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
	if _, _, err := srv.dial(t, old); err == nil || !strings.Contains(err.Error(), "protocol version") {
		t.Errorf("TLS 1.2-only client: %v, want a protocol version alert", err)
	}

	// The client refuses a TLS 1.2-only server.
	sc := tlsconf.ServerConfig(server.cert)
	sc.MaxVersion = tls.VersionTLS12
	sc.MinVersion = tls.VersionTLS12
	sc.NextProtos = []string{testALPN}
	srv12 := startTLSServer(t, sc)
	if _, _, err := srv12.dial(t, cfg); err == nil {
		t.Error("the default client configuration reached a TLS 1.2-only server")
	}
	// Unless it opts in.
	cfg.MinVersion = tls.VersionTLS12
	conn, _, err := srv12.dial(t, cfg)
	if err != nil {
		t.Fatalf("client with MinVersion TLS 1.2 to a TLS 1.2 server: %v", err)
	}
	if v := conn.ConnectionState().Version; v != tls.VersionTLS12 {
		t.Errorf("version %#x, want TLS 1.2", v)
	}
}

func TestFingerprintMismatchErrorText(t *testing.T) {
	tests := []struct {
		err  tlsconf.FingerprintMismatchError
		want string
	}{
		{tlsconf.FingerprintMismatchError{Want: "ed25519:aa", Got: "ed25519:bb"}, "server fingerprint mismatch: pinned ed25519:aa, server presented ed25519:bb"},
		{tlsconf.FingerprintMismatchError{Want: "ed25519:aa"}, "server fingerprint mismatch: pinned ed25519:aa, server presented no certificate"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
}

func TestVerifyServerHook(t *testing.T) {
	server := newNode(t)
	srv := nodeServer(t, server)
	rejected := errors.New("not on my list")

	tests := []struct {
		name      string
		pin       string
		hookErr   error
		wantCalls int32
		wantErr   error
	}{
		{name: "alone, accepts", hookErr: nil, wantCalls: 1},
		{name: "alone, rejects", hookErr: rejected, wantCalls: 1, wantErr: rejected},
		{name: "after a matching pin, accepts", pin: server.fp, wantCalls: 1},
		{name: "after a matching pin, rejects", pin: server.fp, hookErr: rejected, wantCalls: 1, wantErr: rejected},
		{name: "not called when the pin mismatches", pin: tlsconf.Fingerprint(newKey(t)), wantCalls: 0, wantErr: tlsconf.ErrFingerprintMismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var (
				calls atomic.Int32
				seen  atomic.Value
			)
			cfg, err := tlsconf.ClientConfig(tlsconf.ClientOptions{
				Pin:        tt.pin,
				NextProtos: []string{testALPN},
				VerifyServer: func(fp string, cs tls.ConnectionState) error {
					calls.Add(1)
					seen.Store(fp)
					if len(cs.PeerCertificates) == 0 {
						return errors.New("hook got no certificates")
					}
					return tt.hookErr
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			_, _, err = srv.dial(t, cfg)
			if tt.wantErr == nil && err != nil {
				t.Fatalf("handshake: %v", err)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("handshake error = %v, want %v", err, tt.wantErr)
			}
			if got := calls.Load(); got != tt.wantCalls {
				t.Errorf("VerifyServer called %d times, want %d", got, tt.wantCalls)
			}
			if tt.wantCalls > 0 {
				if fp, _ := seen.Load().(string); fp != server.fp {
					t.Errorf("VerifyServer got fingerprint %q, want %q", fp, server.fp)
				}
			}
		})
	}
}

// TestPinOnResumedSession checks that the pin check (and its extra hook) runs on a
// resumed TLS session too, which VerifyPeerCertificate would not.
func TestPinOnResumedSession(t *testing.T) {
	server := newNode(t)
	srv := nodeServer(t, server)
	cache := tls.NewLRUClientSessionCache(8)
	var calls atomic.Int32
	cfg, err := tlsconf.ClientConfig(tlsconf.ClientOptions{
		Pin:        server.fp,
		ServerName: "node",
		NextProtos: []string{testALPN},
		VerifyServer: func(string, tls.ConnectionState) error {
			calls.Add(1)
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg.ClientSessionCache = cache

	first, _, err := srv.dial(t, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if first.ConnectionState().DidResume {
		t.Fatal("first connection resumed")
	}
	second, _, err := srv.dial(t, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !second.ConnectionState().DidResume {
		t.Fatal("second connection did not resume; the test needs resumption")
	}
	if got := calls.Load(); got != 2 {
		t.Errorf("pin hook ran %d times over a fresh and a resumed handshake, want 2", got)
	}

	// A configuration with another pin sharing the session cache must not resume into
	// trusting the server.
	wrong, err := tlsconf.ClientConfig(tlsconf.ClientOptions{Pin: tlsconf.Fingerprint(newKey(t)), ServerName: "node", NextProtos: []string{testALPN}})
	if err != nil {
		t.Fatal(err)
	}
	wrong.ClientSessionCache = cache
	if _, _, err := srv.dial(t, wrong); !errors.Is(err, tlsconf.ErrFingerprintMismatch) {
		t.Errorf("resumption with a wrong pin = %v, want ErrFingerprintMismatch", err)
	}
}

// testCA is a certificate authority for CA-mode tests.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert, key, pool}
}

// issue signs a server certificate for hosts.
func (ca *testCA) issue(t *testing.T, hosts ...string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: hosts[0]},
		DNSNames:     hosts,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func TestCAVerifiedHandshake(t *testing.T) {
	ca := newCA(t, "test CA")
	otherCA := newCA(t, "other CA")
	leaf := ca.issue(t, "localhost")
	sum := sha256.Sum256(leaf.Certificate[0])
	leafFP := "SHA256:" + hex.EncodeToString(sum[:])

	caSrv := startTLSServer(t, func() *tls.Config {
		c := tlsconf.ServerConfig(leaf)
		c.NextProtos = []string{testALPN}
		return c
	}())
	selfSigned := nodeServer(t, newNode(t))

	tests := []struct {
		name       string
		srv        *tlsServer
		serverName string
		roots      *x509.CertPool
		wantErr    func(error) bool
		wantHook   bool
	}{
		{name: "right name, right CA", srv: caSrv, serverName: "localhost", roots: ca.pool, wantHook: true},
		{
			name: "wrong name", srv: caSrv, serverName: "not-localhost.example", roots: ca.pool,
			wantErr: func(err error) bool { var h x509.HostnameError; return errors.As(err, &h) },
		},
		{
			name: "unknown CA", srv: caSrv, serverName: "localhost", roots: otherCA.pool,
			wantErr: func(err error) bool { var u x509.UnknownAuthorityError; return errors.As(err, &u) },
		},
		{
			name: "self-signed node certificate is not CA-trusted", srv: selfSigned, serverName: "localhost", roots: ca.pool,
			wantErr: func(err error) bool { var v *tls.CertificateVerificationError; return errors.As(err, &v) },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var hookFP atomic.Value
			cfg, err := tlsconf.ClientConfig(tlsconf.ClientOptions{
				ServerName: tt.serverName,
				RootCAs:    tt.roots,
				NextProtos: []string{testALPN},
				VerifyServer: func(fp string, _ tls.ConnectionState) error {
					hookFP.Store(fp)
					return nil
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			conn, _, err := tt.srv.dial(t, cfg)
			if tt.wantErr != nil {
				if err == nil || !tt.wantErr(err) {
					t.Fatalf("handshake error = %v (%T), want a verification failure", err, err)
				}
			} else {
				if err != nil {
					t.Fatalf("handshake: %v", err)
				}
				if len(conn.ConnectionState().VerifiedChains) == 0 {
					t.Error("no verified chain in CA mode")
				}
			}
			fp, _ := hookFP.Load().(string)
			if tt.wantHook && fp != leafFP {
				t.Errorf("VerifyServer got %q, want the leaf's %q", fp, leafFP)
			}
			if !tt.wantHook && fp != "" {
				t.Errorf("VerifyServer ran (with %q) although CA verification failed", fp)
			}
		})
	}
}

// TestServerAcceptsAnyClientCertificate checks the server side's trust model: a client
// certificate from any issuer is accepted and only fingerprinted.
func TestServerAcceptsAnyClientCertificate(t *testing.T) {
	server := newNode(t)
	srv := nodeServer(t, server)
	ca := newCA(t, "random CA")
	clientCert := ca.issue(t, "client.example")
	cfg, err := tlsconf.ClientConfig(tlsconf.ClientOptions{Pin: server.fp, Certificate: &clientCert, NextProtos: []string{testALPN}})
	if err != nil {
		t.Fatal(err)
	}
	_, res, err := srv.dial(t, cfg)
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	if len(res.state.PeerCertificates) == 0 {
		t.Fatal("server saw no client certificate")
	}
	sum := sha256.Sum256(clientCert.Certificate[0])
	if got, want := core.FingerprintFromCert(res.state.PeerCertificates[0]), "SHA256:"+hex.EncodeToString(sum[:]); got != want {
		t.Errorf("client fingerprint %q, want %q", got, want)
	}
}

// TestBrowserCertificate checks BrowserCertificate, added after the node's own: a
// browser's ClientHello (no Ed25519) is served by it, an alknet client's (which offers
// Ed25519) still by the node's certificate, which comes first.
func TestBrowserCertificate(t *testing.T) {
	web, err := tlsconf.BrowserCertificate()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := web.PrivateKey.(*ecdsa.PrivateKey); !ok || web.Leaf == nil || web.Leaf.PublicKeyAlgorithm != x509.ECDSA {
		t.Fatalf("browser certificate key %T, leaf %v", web.PrivateKey, web.Leaf)
	}
	key, err := tlsconf.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	node, err := tlsconf.Certificate(key)
	if err != nil {
		t.Fatal(err)
	}
	hello := func(schemes ...tls.SignatureScheme) *tls.ClientHelloInfo {
		return &tls.ClientHelloInfo{
			SignatureSchemes:  schemes,
			SupportedVersions: []uint16{tls.VersionTLS13},
			SupportedCurves:   []tls.CurveID{tls.X25519, tls.CurveP256},
			CipherSuites:      []uint16{tls.TLS_AES_128_GCM_SHA256},
		}
	}
	browser := hello(tls.ECDSAWithP256AndSHA256, tls.PSSWithSHA256, tls.PKCS1WithSHA256)
	if browser.SupportsCertificate(&node) == nil || browser.SupportsCertificate(&web) != nil {
		t.Error("a browser's hello should be served by the browser certificate only")
	}
	if alknet := hello(tls.Ed25519, tls.ECDSAWithP256AndSHA256); alknet.SupportsCertificate(&node) != nil {
		t.Error("an alknet client's hello should be served by the node's certificate")
	}
}
