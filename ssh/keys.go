package ssh

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	gossh "golang.org/x/crypto/ssh"

	"github.com/alknet/alknet/core"
)

// ErrPEMKey is wrapped by the error for a private key in PEM armour (PKCS#1, PKCS#8,
// SEC 1, encrypted PEM): only the OpenSSH format is accepted.
var ErrPEMKey = errors.New("PEM-encoded key is not supported; use OpenSSH format")

// ErrInvalidKey is wrapped by the errors of ParsePrivateKey and ParseCertAuthority for
// input that is not a usable key.
var ErrInvalidKey = errors.New("ssh: invalid key")

// openSSHArmour starts an OpenSSH private key file.
const openSSHArmour = "-----BEGIN OPENSSH PRIVATE KEY-----"

// ParsePrivateKey parses an unencrypted private key in OpenSSH format (what
// ssh-keygen writes, and what tlsconf.SaveKey writes for a node) into a host key or
// client signer. PEM keys are refused with ErrPEMKey, since gossh.ParsePrivateKey
// would accept them silently.
func ParsePrivateKey(data []byte) (gossh.Signer, error) {
	t := bytes.TrimSpace(data)
	if !bytes.HasPrefix(t, []byte(openSSHArmour)) {
		if bytes.HasPrefix(t, []byte("-----BEGIN ")) {
			return nil, ErrPEMKey
		}
		return nil, fmt.Errorf("%w: not an OpenSSH private key", ErrInvalidKey)
	}
	s, err := gossh.ParsePrivateKey(t)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidKey, err)
	}
	return s, nil
}

// NewSigner returns a signer for an Ed25519 key, such as the node's identity key or
// the vault's SSH host key.
func NewSigner(key ed25519.PrivateKey) (gossh.Signer, error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("%w: Ed25519 private key of %d bytes", ErrInvalidKey, len(key))
	}
	return gossh.NewSignerFromKey(key)
}

// KeyFingerprint is the identity fingerprint of an SSH public key: for an Ed25519 key
// "ed25519:<64 hex>", exactly the fingerprint of a TLS certificate carrying the same
// key (one key file serves both); for other key types "SHA256:<64 hex>" of the key's
// wire form — the hash OpenSSH prints in base64 as "SHA256:…".
func KeyFingerprint(pub gossh.PublicKey) string {
	if pub == nil {
		return ""
	}
	if ck, ok := pub.(gossh.CryptoPublicKey); ok {
		if k, ok := ck.CryptoPublicKey().(ed25519.PublicKey); ok {
			return core.FingerprintFromPublicKey(k)
		}
	}
	sum := sha256.Sum256(pub.Marshal())
	return core.FingerprintSHA256 + hex.EncodeToString(sum[:])
}

// CertAuthority is a certificate authority whose OpenSSH user certificates the server
// accepts.
type CertAuthority struct {
	// Key is the CA's public key.
	Key gossh.PublicKey
	// Comment is the line's comment, for logs.
	Comment string
	// PermitPortForwarding, set by the "permit-port-forwarding" option of the line,
	// requires certificates to carry that extension.
	PermitPortForwarding bool
	// Scopes are the scopes of users it vouches for (the identity of a certificate
	// login is the principal it logged in as, with these scopes).
	Scopes []string
}

// MaxAuthorizedKeyLine bounds one CA line (16 KiB).
const MaxAuthorizedKeyLine = 16 << 10

// ParseCertAuthority parses one authorized_keys-format CA line, such as
// "ssh-ed25519 AAAA… ops-ca" or "cert-authority,permit-port-forwarding ssh-ed25519
// AAAA… ops-ca". Options other than cert-authority and permit-port-forwarding are
// refused.
func ParseCertAuthority(line string) (CertAuthority, error) {
	if len(line) > MaxAuthorizedKeyLine {
		return CertAuthority{}, fmt.Errorf("%w: CA line longer than %d bytes", ErrInvalidKey, MaxAuthorizedKeyLine)
	}
	pub, comment, options, rest, err := gossh.ParseAuthorizedKey([]byte(line))
	if err != nil {
		return CertAuthority{}, fmt.Errorf("%w: CA line: %w", ErrInvalidKey, err)
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return CertAuthority{}, fmt.Errorf("%w: CA line: one key per line", ErrInvalidKey)
	}
	if _, isCert := pub.(*gossh.Certificate); isCert {
		return CertAuthority{}, fmt.Errorf("%w: CA line holds a certificate, not a key", ErrInvalidKey)
	}
	ca := CertAuthority{Key: pub, Comment: comment}
	for _, o := range options {
		switch strings.ToLower(o) {
		case "cert-authority":
		case "permit-port-forwarding":
			ca.PermitPortForwarding = true
		default:
			return CertAuthority{}, fmt.Errorf("%w: CA line: unsupported option %q", ErrInvalidKey, o)
		}
	}
	return ca, nil
}
