package ssh_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"strings"
	"testing"

	gossh "golang.org/x/crypto/ssh"

	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/ssh"
)

// stOpenSSHKey returns key in OpenSSH private key format.
func stOpenSSHKey(t testing.TB, key any) []byte {
	t.Helper()
	block, err := gossh.MarshalPrivateKey(key, "st comment")
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(block)
}

func TestParsePrivateKeyOpenSSH(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	data := stOpenSSHKey(t, priv)
	if !bytes.HasPrefix(data, []byte("-----BEGIN OPENSSH PRIVATE KEY-----")) {
		t.Fatalf("fixture is not OpenSSH format: %.40q", data)
	}
	for name, in := range map[string][]byte{
		"as written":          data,
		"surrounding blanks":  append(append([]byte("\n\n  "), data...), "\n\n"...),
		"without final break": bytes.TrimRight(data, "\n"),
	} {
		s, err := ssh.ParsePrivateKey(in)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := ssh.KeyFingerprint(s.PublicKey()); got != core.FingerprintFromPublicKey(pub) {
			t.Fatalf("%s: parsed key %s, want %s", name, got, core.FingerprintFromPublicKey(pub))
		}
	}
	// The signer works.
	s, _ := ssh.ParsePrivateKey(data)
	sig, err := s.Sign(rand.Reader, []byte("msg"))
	if err != nil || s.PublicKey().Verify([]byte("msg"), sig) != nil {
		t.Fatalf("signer: %v", err)
	}

	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if s, err := ssh.ParsePrivateKey(stOpenSSHKey(t, ec)); err != nil || s.PublicKey().Type() != gossh.KeyAlgoECDSA256 {
		t.Fatalf("OpenSSH ECDSA key: %v", err)
	}
}

func TestParsePrivateKeyPEMRefused(t *testing.T) {
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rk, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8 := func(k any) []byte {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	}
	ecDER, _ := x509.MarshalECPrivateKey(ec)
	for name, data := range map[string][]byte{
		"PKCS#8 Ed25519": pkcs8(ed),
		"PKCS#8 ECDSA":   pkcs8(ec),
		"PKCS#8 RSA":     pkcs8(rk),
		"PKCS#1 RSA":     pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rk)}),
		"SEC 1 EC":       pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: ecDER}),
		"encrypted PEM":  pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{1, 2, 3}}),
		"leading blanks": append([]byte("\n  "), pkcs8(ed)...),
	} {
		s, err := ssh.ParsePrivateKey(data)
		if s != nil || !errors.Is(err, ssh.ErrPEMKey) {
			t.Errorf("%s: %v, want ErrPEMKey", name, err)
			continue
		}
		if err.Error() != "PEM-encoded key is not supported; use OpenSSH format" {
			t.Errorf("%s: message %q", name, err.Error())
		}
	}
	if ssh.ErrPEMKey.Error() != "PEM-encoded key is not supported; use OpenSSH format" {
		t.Errorf("ErrPEMKey = %q", ssh.ErrPEMKey)
	}
}

func TestParsePrivateKeyGarbage(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	good := stOpenSSHKey(t, priv)
	enc, err := gossh.MarshalPrivateKeyWithPassphrase(priv, "", []byte("passphrase"))
	if err != nil {
		t.Fatal(err)
	}
	pubLine := gossh.MarshalAuthorizedKey(stSigner(t).PublicKey())
	for name, data := range map[string][]byte{
		"empty":           nil,
		"blank":           []byte(" \n\t"),
		"garbage":         []byte("this is not a key"),
		"binary":          {0, 1, 2, 3, 0xff},
		"public key line": pubLine,
		"truncated":       good[:len(good)/2],
		"corrupted body":  bytes.Replace(good, []byte("\n"), []byte("\n!!!!"), 2),
		"armour only":     []byte("-----BEGIN OPENSSH PRIVATE KEY-----\n-----END OPENSSH PRIVATE KEY-----\n"),
		"encrypted":       pem.EncodeToMemory(enc),
		"text before":     append([]byte("comment\n"), good...),
	} {
		s, err := ssh.ParsePrivateKey(data)
		if s != nil || !errors.Is(err, ssh.ErrInvalidKey) {
			t.Errorf("%s: %v, want ErrInvalidKey", name, err)
		}
		if errors.Is(err, ssh.ErrPEMKey) {
			t.Errorf("%s: reported as PEM", name)
		}
	}
}

func TestNewSigner(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	s, err := ssh.NewSigner(priv)
	if err != nil {
		t.Fatal(err)
	}
	if ssh.KeyFingerprint(s.PublicKey()) != core.FingerprintFromPublicKey(pub) {
		t.Fatal("NewSigner: wrong public key")
	}
	for _, bad := range []ed25519.PrivateKey{nil, priv[:32], append(priv[:64:64], 0)} {
		if s, err := ssh.NewSigner(bad); s != nil || !errors.Is(err, ssh.ErrInvalidKey) {
			t.Errorf("NewSigner(%d bytes): %v, want ErrInvalidKey", len(bad), err)
		}
	}
}

func TestKeyFingerprint(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	sshPub, err := gossh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	fp := ssh.KeyFingerprint(sshPub)
	if fp != core.FingerprintFromPublicKey(pub) {
		t.Fatalf("Ed25519: %s, want %s", fp, core.FingerprintFromPublicKey(pub))
	}
	if !strings.HasPrefix(fp, "ed25519:") || len(fp) != len("ed25519:")+64 {
		t.Fatalf("Ed25519 fingerprint shape %q", fp)
	}
	// The same key as a TLS identity (one key file serves both).
	s, _ := ssh.NewSigner(priv)
	if ssh.KeyFingerprint(s.PublicKey()) != fp {
		t.Fatal("signer and public key fingerprints differ")
	}
	// A parsed authorized_keys line gives the same.
	parsed, _, _, _, err := gossh.ParseAuthorizedKey(gossh.MarshalAuthorizedKey(sshPub))
	if err != nil || ssh.KeyFingerprint(parsed) != fp {
		t.Fatalf("parsed key fingerprint %s, %v", ssh.KeyFingerprint(parsed), err)
	}

	ec := stECDSASigner(t).PublicKey()
	sum := sha256.Sum256(ec.Marshal())
	if got, want := ssh.KeyFingerprint(ec), "SHA256:"+hex.EncodeToString(sum[:]); got != want {
		t.Fatalf("ECDSA: %s, want %s", got, want)
	}
	for _, f := range []string{fp, ssh.KeyFingerprint(ec)} {
		if _, _, err := core.ParseFingerprint(f); err != nil {
			t.Errorf("core.ParseFingerprint(%s): %v", f, err)
		}
	}
	if ssh.KeyFingerprint(nil) != "" {
		t.Fatal("KeyFingerprint(nil) is not empty")
	}
}

func TestParseCertAuthority(t *testing.T) {
	key := stSigner(t).PublicKey()
	line := strings.TrimSpace(string(gossh.MarshalAuthorizedKey(key)))
	ok := []struct {
		in      string
		comment string
		pf      bool
	}{
		{line, "", false},
		{line + " ops-ca", "ops-ca", false},
		{line + " ops ca with spaces", "ops ca with spaces", false},
		{"cert-authority " + line + " ops-ca", "ops-ca", false},
		{"cert-authority,permit-port-forwarding " + line + " ops-ca", "ops-ca", true},
		{"permit-port-forwarding " + line, "", true},
		{"Cert-Authority,PERMIT-PORT-FORWARDING " + line, "", true},
		{line + " ops-ca\n", "ops-ca", false},
		{"# comment\n\n" + line + " ops-ca", "ops-ca", false},
	}
	for _, tc := range ok {
		ca, err := ssh.ParseCertAuthority(tc.in)
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if !bytes.Equal(ca.Key.Marshal(), key.Marshal()) || ca.Comment != tc.comment || ca.PermitPortForwarding != tc.pf || ca.Scopes != nil {
			t.Errorf("%q: got %+v", tc.in, ca)
		}
	}

	other := strings.TrimSpace(string(gossh.MarshalAuthorizedKey(stSigner(t).PublicKey())))
	cert := stNewCA(t).cert(t, stSigner(t), nil)
	bad := map[string]string{
		"empty":            "",
		"garbage":          "not a key",
		"bad option":       "no-pty " + line,
		"command option":   `command="echo hi" ` + line,
		"from option":      `from="10.0.0.0/8" ` + line,
		"two keys":         line + " a\n" + other + " b",
		"certificate":      strings.TrimSpace(string(gossh.MarshalAuthorizedKey(cert))),
		"over length":      line + " " + strings.Repeat("c", ssh.MaxAuthorizedKeyLine),
		"truncated base64": line[:len(line)-10],
	}
	for name, in := range bad {
		ca, err := ssh.ParseCertAuthority(in)
		if !errors.Is(err, ssh.ErrInvalidKey) || ca.Key != nil {
			t.Errorf("%s: %+v, %v; want ErrInvalidKey", name, ca, err)
		}
	}
	// Exactly MaxAuthorizedKeyLine bytes is accepted.
	pad := ssh.MaxAuthorizedKeyLine - len(line) - 1
	if _, err := ssh.ParseCertAuthority(line + " " + strings.Repeat("c", pad)); err != nil {
		t.Errorf("line of exactly MaxAuthorizedKeyLine bytes: %v", err)
	}
}

// TestParseCertAuthorityLogin: a CA parsed from its line verifies certificates.
func TestParseCertAuthorityLogin(t *testing.T) {
	ca := stNewCA(t)
	entry, err := ssh.ParseCertAuthority("cert-authority,permit-port-forwarding " + string(gossh.MarshalAuthorizedKey(ca.Signer.PublicKey())))
	if err != nil {
		t.Fatal(err)
	}
	entry.Scopes = []string{ssh.ScopeExec}
	n := stStartTCP(t, ssh.Config{CertAuthorities: []ssh.CertAuthority{entry}, Exec: stEchoExec()})
	user := stSigner(t)
	if _, err := n.dial(t, ssh.ClientConfig{Signer: user, Certificate: ca.cert(t, user, nil), User: "alice"}); err == nil {
		t.Fatal("certificate without permit-port-forwarding accepted by a CA line requiring it")
	}
	cert := ca.cert(t, user, func(c *gossh.Certificate) { c.Extensions["permit-port-forwarding"] = "" })
	c, err := n.dial(t, ssh.ClientConfig{Signer: user, Certificate: cert, User: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	stMustEcho(t, c.Client)
}
