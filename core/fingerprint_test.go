package core_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	mrand "math/rand/v2"
	"strings"
	"testing"

	"github.com/alknet/alknet/core"
)

func sha256FP(b []byte) string {
	sum := sha256.Sum256(b)
	return "SHA256:" + hex.EncodeToString(sum[:])
}

// longFormDER is a SEQUENCE whose length uses the long form with 5 length bytes, more
// than any parser accepts.
var longFormDER = []byte{0x30, 0x85, 0x01, 0x00, 0x00, 0x00, 0x00, 0x01, 0x02}

func TestFingerprintFromDER(t *testing.T) {
	k := keys(t)
	edPub := k.ed.Public().(ed25519.PublicKey)
	edSPKI := spkiDER(t, edPub)
	edCert := selfSignedDER(t, edPub, k.ed)
	ecSPKI := spkiDER(t, k.ec.Public())
	ecCert := selfSignedDER(t, k.ec.Public(), k.ec)
	rsaSPKI := spkiDER(t, k.rsa.Public())
	rsaCert := selfSignedDER(t, k.rsa.Public(), k.rsa)
	random := fixedRandom(100)
	edFP := "ed25519:" + hex.EncodeToString(edPub)

	// The SPKI bytes of core.md §3: SEQUENCE { SEQUENCE { OID 1.3.101.112 }, BIT STRING
	// (33 bytes, leading 0x00) }.
	handSPKI := append([]byte{0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00}, edPub...)
	if !bytes.Equal(handSPKI, edSPKI) {
		t.Fatalf("hand-built Ed25519 SPKI differs from x509.MarshalPKIXPublicKey:\n%x\n%x", handSPKI, edSPKI)
	}

	tests := []struct {
		name string
		der  []byte
		want string
	}{
		{"nil", nil, ""},
		{"empty", []byte{}, ""},
		{"random bytes", random, sha256FP(random)},
		{"one byte", []byte{0x30}, sha256FP([]byte{0x30})},
		{"Ed25519 SPKI", edSPKI, edFP},
		{"Ed25519 certificate", edCert, edFP},
		{"ECDSA SPKI", ecSPKI, sha256FP(ecSPKI)},
		{"ECDSA certificate", ecCert, sha256FP(ecCert)},
		{"RSA SPKI", rsaSPKI, sha256FP(rsaSPKI)},
		{"RSA certificate", rsaCert, sha256FP(rsaCert)},
		{"truncated Ed25519 SPKI", edSPKI[:len(edSPKI)-1], sha256FP(edSPKI[:len(edSPKI)-1])},
		{"Ed25519 SPKI with trailing byte", append(bytes.Clone(edSPKI), 0), sha256FP(append(bytes.Clone(edSPKI), 0))},
		{"Ed25519 SPKI with 31-byte key", shortKeySPKI(edSPKI), sha256FP(shortKeySPKI(edSPKI))},
		{"truncated certificate", edCert[:len(edCert)/2], sha256FP(edCert[:len(edCert)/2])},
		{"certificate with trailing byte", append(bytes.Clone(edCert), 0), sha256FP(append(bytes.Clone(edCert), 0))},
		{"long-form length (5 bytes)", longFormDER, sha256FP(longFormDER)},
		{"indefinite length", []byte{0x30, 0x80, 0x00, 0x00}, sha256FP([]byte{0x30, 0x80, 0x00, 0x00})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := core.FingerprintFromDER(tt.der)
			if got != tt.want {
				t.Errorf("FingerprintFromDER = %q, want %q", got, tt.want)
			}
			if again := core.FingerprintFromDER(tt.der); again != got {
				t.Errorf("not deterministic: %q then %q", got, again)
			}
			if len(tt.der) > 0 && !sha256FPRe.MatchString(got) && !ed25519FPRe.MatchString(got) {
				t.Errorf("fingerprint %q has neither documented form", got)
			}
		})
	}
}

// fixedRandom returns n random-looking bytes, the same on every run.
func fixedRandom(n int) []byte {
	b := make([]byte, n)
	mrand.NewChaCha8([32]byte{'a', 'l', 'k'}).Read(b)
	return b
}

// shortKeySPKI rewrites an Ed25519 SPKI to carry a 31-byte key, which no parser accepts.
func shortKeySPKI(spki []byte) []byte {
	out := bytes.Clone(spki[:len(spki)-1])
	out[1]--  // outer SEQUENCE length
	out[10]-- // BIT STRING length
	return out
}

func TestFingerprintFromCert(t *testing.T) {
	k := keys(t)
	edPub := k.ed.Public().(ed25519.PublicKey)
	edCert, err := x509.ParseCertificate(selfSignedDER(t, edPub, k.ed))
	if err != nil {
		t.Fatal(err)
	}
	ecCert, err := x509.ParseCertificate(selfSignedDER(t, k.ec.Public(), k.ec))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cert *x509.Certificate
		want string
	}{
		{"nil", nil, ""},
		{"Ed25519", edCert, "ed25519:" + hex.EncodeToString(edPub)},
		{"ECDSA", ecCert, sha256FP(ecCert.Raw)},
	}
	for _, tt := range tests {
		if got := core.FingerprintFromCert(tt.cert); got != tt.want {
			t.Errorf("%s: FingerprintFromCert = %q, want %q", tt.name, got, tt.want)
		}
		if tt.cert != nil {
			if got := core.FingerprintFromDER(tt.cert.Raw); got != tt.want {
				t.Errorf("%s: FingerprintFromDER(cert.Raw) = %q, want the same as FingerprintFromCert", tt.name, got)
			}
		}
	}
}

func TestFingerprintFromPublicKey(t *testing.T) {
	pub := seededKey(7).Public().(ed25519.PublicKey)
	want := "ed25519:ea4a6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea691446d22c"
	if got := core.FingerprintFromPublicKey(pub); got != want {
		t.Errorf("FingerprintFromPublicKey = %q, want %q", got, want)
	}
}

func TestParseFingerprint(t *testing.T) {
	hex64 := strings.Repeat("0123456789abcdef", 4)
	sum, _ := hex.DecodeString(hex64)
	tests := []struct {
		name     string
		in       string
		wantKind string // "" means invalid
	}{
		{"ed25519", "ed25519:" + hex64, core.FingerprintEd25519},
		{"SHA256", "SHA256:" + hex64, core.FingerprintSHA256},
		{"empty", "", ""},
		{"prefix only", "ed25519:", ""},
		{"uppercase hex", "ed25519:" + strings.ToUpper(hex64), ""},
		{"one uppercase digit", "SHA256:" + hex64[:63] + "F", ""},
		{"63 digits", "ed25519:" + hex64[:63], ""},
		{"65 digits", "ed25519:" + hex64 + "0", ""},
		{"lowercase sha256 prefix", "sha256:" + hex64, ""},
		{"uppercase ed25519 prefix", "ED25519:" + hex64, ""},
		{"unknown prefix", "md5:" + hex64, ""},
		{"no prefix", hex64, ""},
		{"non-hex digit", "ed25519:" + hex64[:63] + "g", ""},
		{"space", " ed25519:" + hex64, ""},
		{"multi-byte char", "ed25519:" + hex64[:62] + "é", ""},
		{"base64 SHA256 (OpenSSH style)", "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kind, b, err := core.ParseFingerprint(tt.in)
			if tt.wantKind == "" {
				if err == nil || !errors.Is(err, core.ErrInvalidFingerprint) || kind != "" || b != nil {
					t.Errorf("ParseFingerprint(%q) = %q, %x, %v; want ErrInvalidFingerprint", tt.in, kind, b, err)
				}
				return
			}
			if err != nil || kind != tt.wantKind || !bytes.Equal(b, sum) {
				t.Errorf("ParseFingerprint(%q) = %q, %x, %v; want %q, %x", tt.in, kind, b, err, tt.wantKind, sum)
			}
		})
	}
	long := "ed25519:" + strings.Repeat("z", 10000)
	if _, _, err := core.ParseFingerprint(long); err == nil || len(err.Error()) > 300 {
		t.Errorf("error for a 10 kB input is %d bytes long; want it truncated", len(err.Error()))
	}
}

func TestPublicKeyFromFingerprint(t *testing.T) {
	pub := seededKey(3).Public().(ed25519.PublicKey)
	got, err := core.PublicKeyFromFingerprint(core.FingerprintFromPublicKey(pub))
	if err != nil || !got.Equal(pub) {
		t.Errorf("PublicKeyFromFingerprint = %x, %v; want %x", got, err, pub)
	}
	for _, bad := range []string{"SHA256:" + strings.Repeat("a", 64), "ed25519:xyz", ""} {
		if k, err := core.PublicKeyFromFingerprint(bad); !errors.Is(err, core.ErrInvalidFingerprint) || k != nil {
			t.Errorf("PublicKeyFromFingerprint(%q) = %x, %v; want ErrInvalidFingerprint", bad, k, err)
		}
	}
}

// FuzzFingerprintFromDER checks that FingerprintFromDER never panics and always answers
// in one of the documented forms. Its seeds run as part of go test.
func FuzzFingerprintFromDER(f *testing.F) {
	k := keys(f)
	edPub := k.ed.Public().(ed25519.PublicKey)
	edCert := selfSignedDER(f, edPub, k.ed)
	ecCert := selfSignedDER(f, k.ec.Public(), k.ec)
	random := fixedRandom(64)
	f.Add([]byte{})
	f.Add(random)
	f.Add(spkiDER(f, edPub))
	f.Add(edCert)
	f.Add(ecCert)
	f.Add(spkiDER(f, k.ec.Public()))
	f.Add(longFormDER)
	f.Add(edCert[:len(edCert)/2])
	f.Add([]byte{0x30, 0x80, 0x00, 0x00})

	f.Fuzz(func(t *testing.T, der []byte) {
		got := core.FingerprintFromDER(der)
		if (got == "") != (len(der) == 0) {
			t.Fatalf("FingerprintFromDER(%x) = %q; want empty exactly for empty input", der, got)
		}
		if len(der) == 0 {
			return
		}
		if _, _, err := core.ParseFingerprint(got); err != nil {
			t.Fatalf("FingerprintFromDER(%x) = %q does not parse: %v", der, got, err)
		}
		if again := core.FingerprintFromDER(der); again != got {
			t.Fatalf("not deterministic: %q then %q", got, again)
		}
		if cert, err := x509.ParseCertificate(der); err == nil {
			if want := core.FingerprintFromCert(cert); got != want {
				t.Fatalf("certificate input: FingerprintFromDER = %q, FingerprintFromCert = %q", got, want)
			}
		}
		if strings.HasPrefix(got, core.FingerprintSHA256) && got != sha256FP(der) {
			t.Fatalf("SHA256 form %q is not the hash of the input", got)
		}
	})
}
