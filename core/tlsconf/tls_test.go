package tlsconf_test

import (
	"bytes"
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
	c1, err := tlsconf.Certificate(key)
	if err != nil {
		t.Fatal(err)
	}
	c2, err := tlsconf.Certificate(key)
	if err != nil {
		t.Fatal(err)
	}
	if len(c1.Certificate) != 1 || !bytes.Equal(c1.Certificate[0], c2.Certificate[0]) {
		t.Error("Certificate is not deterministic for one key")
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

func TestServerConfig(t *testing.T) {
	cert, err := tlsconf.Certificate(newKey(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg := tlsconf.ServerConfig(cert)
	if cfg.ClientAuth != tls.RequestClientCert {
		t.Errorf("ClientAuth = %v, want RequestClientCert", cfg.ClientAuth)
	}
	if cfg.MinVersion != tls.VersionTLS12 {
		t.Errorf("MinVersion = %#x, want TLS 1.2", cfg.MinVersion)
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
			if cfg.MinVersion != tls.VersionTLS12 {
				t.Errorf("MinVersion = %#x, want TLS 1.2", cfg.MinVersion)
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

	tests := []struct {
		name       string
		pin        string
		clientCert *tls.Certificate
		maxVersion uint16
		wantErr    bool
	}{
		{name: "right pin, TLS 1.3, client certificate", pin: server.fp, clientCert: &client.cert},
		{name: "right pin, TLS 1.2, client certificate", pin: server.fp, clientCert: &client.cert, maxVersion: tls.VersionTLS12},
		{name: "right pin, no client certificate", pin: server.fp},
		{name: "wrong pin", pin: client.fp, clientCert: &client.cert, wantErr: true},
		{name: "wrong pin, TLS 1.2", pin: client.fp, maxVersion: tls.VersionTLS12, wantErr: true},
		// An Ed25519 certificate is fingerprinted by its key, never by its DER hash.
		{name: "certificate hash of an Ed25519 certificate", pin: sha256OfCert, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := tlsconf.ClientConfig(tlsconf.ClientOptions{Pin: tt.pin, Certificate: tt.clientCert, NextProtos: []string{testALPN}})
			if err != nil {
				t.Fatal(err)
			}
			cfg.MaxVersion = tt.maxVersion
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
