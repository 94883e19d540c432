package tlsconf

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"sync"
	"time"

	"github.com/alknet/alknet/core"
)

// Validity and names of node certificates ([Certificate]).
const (
	// CertificateValidity is how long a node certificate is valid: NotAfter is NotBefore
	// plus this. Alknet peers do not check the dates (a pinned fingerprint names the key,
	// see [ClientOptions.Pin], and servers only fingerprint client certificates), so it
	// matters to other TLS clients and scanners only. A node makes a new certificate
	// from its key at every start; one that runs longer serves an expired certificate to
	// them unless it uses [NodeCertificate], which renews it while running.
	CertificateValidity = 365 * 24 * time.Hour
	// CertificateBackdate is how far before its creation a node certificate becomes
	// valid (NotBefore), so that a peer whose clock is somewhat behind accepts it.
	CertificateBackdate = time.Hour
)

// CertificateCommonName is the subject common name of every self-signed node
// certificate, and its one subjectAltName (a DNS name). It names no host: nodes are
// known by their key's fingerprint, and pinned clients ignore names. The name is there
// because clients and scanners that follow RFC 6125 look for a subjectAltName and
// ignore the common name.
const CertificateCommonName = "alknet"

// Certificate wraps key in a fresh self-signed X.509 certificate: serial number of 126
// random bits, subject and subjectAltName [CertificateCommonName], valid from
// [CertificateBackdate] before now for [CertificateValidity]. Every call gives another
// certificate (serial, dates and so DER differ), but all of them carry the same key and
// so the same fingerprint, the key's "ed25519:<hex>": peers that pin the fingerprint
// keep working across certificates, restarts and renewals ([NodeCertificate]).
func Certificate(key ed25519.PrivateKey) (tls.Certificate, error) {
	return certificateAt(key, time.Now())
}

// certificateAt is Certificate made at the time now.
func certificateAt(key ed25519.PrivateKey, now time.Time) (tls.Certificate, error) {
	if len(key) != ed25519.PrivateKeySize {
		return tls.Certificate{}, fmt.Errorf("%w: ed25519 private key must be %d bytes, got %d", ErrInvalidKey, ed25519.PrivateKeySize, len(key))
	}
	serial, err := randomSerial()
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("create self-signed certificate: %w", err)
	}
	notBefore := now.Add(-CertificateBackdate).UTC().Truncate(time.Second)
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: CertificateCommonName},
		DNSNames:              []string{CertificateCommonName},
		NotBefore:             notBefore,
		NotAfter:              notBefore.Add(CertificateValidity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	pub := key.Public()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("create self-signed certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("parse self-signed certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// randomSerial returns a certificate serial number with 126 random bits: 2^126 plus a
// random number below 2^126. It is positive and always 16 octets in DER, within RFC
// 5280's 20, with more than the 64 random bits the CA/Browser Forum asks for.
func randomSerial() (*big.Int, error) {
	base := new(big.Int).Lsh(big.NewInt(1), 126)
	n, err := rand.Int(rand.Reader, base)
	if err != nil {
		return nil, fmt.Errorf("serial number: %w", err)
	}
	return n.Add(n, base), nil
}

// NodeCertificate is a node's certificate that renews itself: it makes a new one from
// the same key (so the same fingerprint) once less than a third of
// [CertificateValidity] remains, or when the clock went back before the current one's
// NotBefore. Use it in a process that may run longer than CertificateValidity and
// serves TLS clients that check dates; alknet peers do not need it. Plug its methods
// into a tls.Config (see [NodeCertificate.ServerConfig]). It is safe for concurrent
// use.
type NodeCertificate struct {
	key ed25519.PrivateKey
	now func() time.Time // time.Now; tests set another clock

	mu   sync.Mutex
	cert *tls.Certificate
}

// NewNodeCertificate makes key's first certificate.
func NewNodeCertificate(key ed25519.PrivateKey) (*NodeCertificate, error) {
	n := &NodeCertificate{key: key, now: time.Now}
	if _, err := n.Certificate(); err != nil {
		return nil, err
	}
	return n, nil
}

// Certificate returns the current certificate, renewed first when it is due.
func (n *NodeCertificate) Certificate() (*tls.Certificate, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	now := n.now()
	if n.cert != nil {
		leaf := n.cert.Leaf
		if !now.Before(leaf.NotBefore) && now.Before(leaf.NotAfter.Add(-CertificateValidity/3)) {
			return n.cert, nil
		}
	}
	cert, err := certificateAt(n.key, now)
	if err != nil {
		return nil, err
	}
	n.cert = &cert
	return n.cert, nil
}

// GetCertificate is Certificate as a tls.Config.GetCertificate.
func (n *NodeCertificate) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return n.Certificate()
}

// GetClientCertificate is Certificate as a tls.Config.GetClientCertificate, for
// clients that run long.
func (n *NodeCertificate) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return n.Certificate()
}

// ServerConfig is [ServerConfig] serving n's certificate through GetCertificate, so
// every handshake gets a current one. Leave Certificates empty: crypto/tls asks
// GetCertificate only when Certificates is empty or the client sent a server name.
func (n *NodeCertificate) ServerConfig() *tls.Config {
	cfg := serverConfig()
	cfg.GetCertificate = n.GetCertificate
	return cfg
}

// BrowserCertificate returns a fresh self-signed ECDSA P-256 certificate (valid for
// 90 days from now) for web browsers, which do not accept Ed25519 certificates (Chromium
// fails the handshake with ERR_SSL_VERSION_OR_CIPHER_MISMATCH). Append it after the
// node's certificate in the server configuration's Certificates: crypto/tls serves
// the first certificate a client supports, so every client that accepts Ed25519 (all
// alknet clients) still gets the node's identity certificate, and browsers get this
// one. It carries no identity and cannot be pinned (a new key is made on each call);
// a browser's user accepts it as any self-signed certificate.
func BrowserCertificate() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("browser certificate: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("browser certificate: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: CertificateCommonName},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(0, 0, 90),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("browser certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("browser certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// Fingerprint returns the "ed25519:<hex>" fingerprint of key's public half.
func Fingerprint(key ed25519.PrivateKey) string {
	return core.FingerprintFromPublicKey(key.Public().(ed25519.PublicKey))
}

// ServerConfig returns the server TLS configuration for cert: client certificates are
// requested but not required, and any certificate is accepted without CA checks (the
// handshake still proves the client holds the certificate's key); the endpoint turns it
// into a fingerprint and the peer list decides trust. The endpoint fills NextProtos
// from its registry.
//
// TLS 1.3 is the minimum, on TCP as on QUIC (which requires it). A caller that must
// serve TLS 1.2 clients over TCP+TLS sets cfg.MinVersion = tls.VersionTLS12 on the
// returned configuration; the endpoint keeps it for its TCP listeners (QUIC stays at
// TLS 1.3).
//
// cert is served as it is, to its NotAfter and beyond; a process that runs longer than
// [CertificateValidity] and serves clients that check dates uses
// [NodeCertificate.ServerConfig] instead.
//
// This accept-any behaviour is for servers only: clients always verify (see
// [ClientConfig]).
//
// Session tickets stay on (crypto/tls's default; 0-RTT is never accepted): a client
// that resumes skips the certificate signatures, and its connection carries the client
// certificate of the handshake that made the session, restored from the ticket, so the
// server sees the same fingerprint and looks it up in its current peer list as for a
// full handshake. Set SessionTicketsDisabled to turn resumption off.
func ServerConfig(cert tls.Certificate) *tls.Config {
	cfg := serverConfig()
	cfg.Certificates = []tls.Certificate{cert}
	return cfg
}

// serverConfig is ServerConfig without a certificate.
func serverConfig() *tls.Config {
	return &tls.Config{
		ClientAuth: tls.RequestClientCert,
		MinVersion: tls.VersionTLS13,
	}
}

// ErrNoServerVerification is returned by [ClientConfig] when the options name no way to
// verify the server.
var ErrNoServerVerification = errors.New("no server verification configured: set Pin, ServerName (CA verification) or VerifyServer")

// ErrFingerprintMismatch is wrapped by [*FingerprintMismatchError].
var ErrFingerprintMismatch = errors.New("server fingerprint mismatch")

// FingerprintMismatchError is returned when the server's certificate does not match the
// pinned fingerprint.
type FingerprintMismatchError struct {
	Want, Got string
}

// Error names the pinned and the presented fingerprints.
func (e *FingerprintMismatchError) Error() string {
	got := e.Got
	if got == "" {
		got = "no certificate"
	}
	return fmt.Sprintf("server fingerprint mismatch: pinned %s, server presented %s", e.Want, got)
}

// Is makes errors.Is(err, ErrFingerprintMismatch) hold.
func (e *FingerprintMismatchError) Is(target error) bool { return target == ErrFingerprintMismatch }

// ClientOptions says how a client proves itself and verifies the server.
type ClientOptions struct {
	// Certificate is the client's identity, sent whenever the server asks. Optional.
	Certificate *tls.Certificate
	// Pin is the server's expected fingerprint ("ed25519:<hex>" or "SHA256:<hex>").
	// Pinning ignores names and dates (validity included: the fingerprint of a node
	// certificate names its key, which outlives every certificate made from it) and
	// also runs on resumed sessions.
	Pin string
	// ServerName enables CA verification of that host name when Pin is empty (and is
	// sent as SNI in every mode when set).
	ServerName string
	// RootCAs are the CAs for CA verification; nil means the system pool.
	RootCAs *x509.CertPool
	// VerifyServer is an extra check run after the pin or CA check, given the server's
	// fingerprint. Used alone (no Pin, no ServerName) it is the only check, for schemes
	// such as trust-on-first-use; the caller then owns that decision.
	VerifyServer func(fingerprint string, cs tls.ConnectionState) error
	// NextProtos are the ALPNs to offer.
	NextProtos []string
	// Sessions, when set, lets the client resume TLS 1.3 sessions with a pinned server:
	// a reconnection then skips the certificate signatures. It is used with Pin only
	// (a configuration without Pin never resumes), keyed by Pin and by the fingerprint
	// of Certificate. A resumed connection keeps the identities of the handshake that
	// made the session: the server certificate restored from it still has to match Pin
	// and pass VerifyServer, and the server sees the client certificate of that first
	// handshake. Nil (the default): every connection makes a full handshake. Share one
	// cache per process (see [SessionCache]); 0-RTT is never used.
	Sessions *SessionCache
}

// ClientConfig builds a client TLS configuration from opts. It fails with
// [ErrNoServerVerification] unless the server is verified somehow: there is no option to
// accept any server. TLS 1.3 is the minimum, as for [ServerConfig]; to reach a TLS
// 1.2-only server, set MinVersion = tls.VersionTLS12 on the returned configuration.
// With opts.Sessions and opts.Pin it resumes sessions (see [ClientOptions.Sessions]).
func ClientConfig(opts ClientOptions) (*tls.Config, error) {
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS13,
		NextProtos: slices.Clone(opts.NextProtos),
		ServerName: opts.ServerName,
		RootCAs:    opts.RootCAs,
	}
	if opts.Certificate != nil {
		cert := *opts.Certificate
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
	}
	extra := opts.VerifyServer
	switch {
	case opts.Pin != "":
		if _, _, err := core.ParseFingerprint(opts.Pin); err != nil {
			return nil, fmt.Errorf("pin: %w", err)
		}
		pin := opts.Pin
		cfg.InsecureSkipVerify = true // replaced by the exact pin check below
		if opts.Sessions != nil {
			// VerifyConnection below also runs on resumed connections, on the server
			// certificate restored from the session.
			cfg.ClientSessionCache = sessionView{cache: opts.Sessions, key: sessionKey(pin, opts.Certificate)}
		}
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			got := peerFingerprint(cs)
			if got != pin {
				return &FingerprintMismatchError{Want: pin, Got: got}
			}
			if extra != nil {
				return extra(got, cs)
			}
			return nil
		}
	case opts.ServerName != "":
		if extra != nil {
			cfg.VerifyConnection = func(cs tls.ConnectionState) error { return extra(peerFingerprint(cs), cs) }
		}
	case extra != nil:
		cfg.InsecureSkipVerify = true // the caller's VerifyServer decides
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("server presented no certificate")
			}
			return extra(peerFingerprint(cs), cs)
		}
	default:
		return nil, ErrNoServerVerification
	}
	return cfg, nil
}

func peerFingerprint(cs tls.ConnectionState) string {
	if len(cs.PeerCertificates) == 0 {
		return ""
	}
	return core.FingerprintFromCert(cs.PeerCertificates[0])
}
