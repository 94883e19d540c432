package core

import (
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// Fingerprint prefixes. A fingerprint is "ed25519:" followed by the 64 lowercase hex
// digits of an Ed25519 public key (the iroh NodeId form), or "SHA256:" followed by the
// 64 lowercase hex digits of the SHA-256 of a certificate's DER. Fingerprints are
// compared as exact strings.
const (
	FingerprintEd25519 = "ed25519:"
	FingerprintSHA256  = "SHA256:"
)

// ErrInvalidFingerprint is wrapped by [ParseFingerprint] errors.
var ErrInvalidFingerprint = errors.New("invalid fingerprint")

// FingerprintFromPublicKey returns "ed25519:<hex>" for an Ed25519 key.
func FingerprintFromPublicKey(pub ed25519.PublicKey) string {
	return FingerprintEd25519 + hex.EncodeToString(pub)
}

// FingerprintFromCert returns the fingerprint of a parsed certificate: "ed25519:<hex of
// the key>" when its public key is Ed25519, otherwise "SHA256:<hex of SHA-256(DER)>".
// A nil certificate has no fingerprint ("").
func FingerprintFromCert(cert *x509.Certificate) string {
	if cert == nil {
		return ""
	}
	if pub, ok := cert.PublicKey.(ed25519.PublicKey); ok && len(pub) == ed25519.PublicKeySize {
		return FingerprintFromPublicKey(pub)
	}
	return sha256Fingerprint(cert.Raw)
}

// FingerprintFromDER fingerprints raw DER bytes that may be an X.509 certificate or a
// bare SubjectPublicKeyInfo (an RFC 7250 raw public key). An Ed25519 key gives
// "ed25519:<hex>"; anything else, including malformed input, gives "SHA256:<hex>" of the
// bytes. Empty input has no fingerprint (""). It never panics.
func FingerprintFromDER(der []byte) string {
	if len(der) == 0 {
		return ""
	}
	if pub, err := x509.ParsePKIXPublicKey(der); err == nil {
		if k, ok := pub.(ed25519.PublicKey); ok && len(k) == ed25519.PublicKeySize {
			return FingerprintFromPublicKey(k)
		}
		return sha256Fingerprint(der)
	}
	if cert, err := x509.ParseCertificate(der); err == nil {
		return FingerprintFromCert(cert)
	}
	return sha256Fingerprint(der)
}

func sha256Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return FingerprintSHA256 + hex.EncodeToString(sum[:])
}

// ParseFingerprint checks that s is a well-formed fingerprint and returns its kind
// prefix ([FingerprintEd25519] or [FingerprintSHA256]) and the 32 bytes it names.
func ParseFingerprint(s string) (kind string, sum []byte, err error) {
	switch {
	case strings.HasPrefix(s, FingerprintEd25519):
		kind = FingerprintEd25519
	case strings.HasPrefix(s, FingerprintSHA256):
		kind = FingerprintSHA256
	default:
		return "", nil, fmt.Errorf("%w %q: want ed25519:<64 hex> or SHA256:<64 hex>", ErrInvalidFingerprint, truncate(s, 80))
	}
	h := s[len(kind):]
	if len(h) != 64 {
		return "", nil, fmt.Errorf("%w %q: want 64 hex digits after %q, got %d characters", ErrInvalidFingerprint, truncate(s, 80), kind, len(h))
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return "", nil, fmt.Errorf("%w %q: hex digits must be lowercase 0-9a-f", ErrInvalidFingerprint, truncate(s, 80))
		}
	}
	sum, _ = hex.DecodeString(h)
	return kind, sum, nil
}

// PublicKeyFromFingerprint returns the Ed25519 key an "ed25519:" fingerprint names.
func PublicKeyFromFingerprint(fp string) (ed25519.PublicKey, error) {
	kind, b, err := ParseFingerprint(fp)
	if err != nil {
		return nil, err
	}
	if kind != FingerprintEd25519 {
		return nil, fmt.Errorf("%w: %q names a certificate hash, not a key", ErrInvalidFingerprint, truncate(fp, 80))
	}
	return ed25519.PublicKey(b), nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
