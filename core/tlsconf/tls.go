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
	"time"

	"github.com/alknet/alknet/core"
)

// Fixed fields of the self-signed certificate, so that one key always yields the same
// certificate bytes (Ed25519 signatures are deterministic). Pinning ignores validity;
// the dates only need to satisfy parsers.
var (
	certNotBefore = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	certNotAfter  = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)
)

// CertificateCommonName is the subject of every self-signed node certificate.
const CertificateCommonName = "alknet"

// Certificate wraps key in a deterministic self-signed X.509 certificate: the same key
// always gives the same DER. Its fingerprint is the key's "ed25519:<hex>".
func Certificate(key ed25519.PrivateKey) (tls.Certificate, error) {
	if len(key) != ed25519.PrivateKeySize {
		return tls.Certificate{}, fmt.Errorf("%w: ed25519 private key must be %d bytes, got %d", ErrInvalidKey, ed25519.PrivateKeySize, len(key))
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: CertificateCommonName},
		NotBefore:             certNotBefore,
		NotAfter:              certNotAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	pub := key.Public()
	der, err := x509.CreateCertificate(nil, tmpl, tmpl, pub, key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("create self-signed certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("parse self-signed certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
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
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
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
// into a fingerprint and the peer list decides trust. TLS 1.2 is the minimum on TCP;
// QUIC always uses TLS 1.3. The endpoint fills NextProtos from its registry.
//
// This accept-any behaviour is for servers only: clients always verify (see
// [ClientConfig]).
func ServerConfig(cert tls.Certificate) *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequestClientCert,
		MinVersion:   tls.VersionTLS12,
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
	// Pinning ignores names and dates and also runs on resumed sessions.
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
}

// ClientConfig builds a client TLS configuration from opts. It fails with
// [ErrNoServerVerification] unless the server is verified somehow: there is no option to
// accept any server.
func ClientConfig(opts ClientOptions) (*tls.Config, error) {
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS12,
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
