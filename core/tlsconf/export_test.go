package tlsconf

import (
	"crypto/ed25519"
	"crypto/tls"
	"time"
)

// CertificateAt is Certificate made at the time now.
func CertificateAt(key ed25519.PrivateKey, now time.Time) (tls.Certificate, error) {
	return certificateAt(key, now)
}

// SetClock makes n read the time from now.
func (n *NodeCertificate) SetClock(now func() time.Time) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.now = now
}
