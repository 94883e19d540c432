package endpoint_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"encoding/json"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/core/coretest"
	"github.com/alknet/alknet/core/endpoint"
	"github.com/alknet/alknet/core/tlsconf"
)

// testsslTimeout bounds one testssl.sh run, a safety net: a run takes about 10 s.
const testsslTimeout = 2 * time.Minute

// testsslFinding is one entry of testssl.sh's flat JSON output (--jsonfile).
type testsslFinding struct {
	ID       string `json:"id"`
	Severity string `json:"severity"`
	Finding  string `json:"finding"`
}

// TestTestSSLOnTCPTwin runs testssl.sh (Debian package testssl.sh) against the
// TCP+TLS twin of an endpoint on 127.0.0.1 and checks from its JSON findings that
// only TLS 1.3 is offered, and that the node certificate has a long random serial
// (the one the node serves), a subjectAltName and a current validity.
//
// testssl.sh before 3.1 (3.0.8 in Debian 12) cannot fetch an Ed25519 certificate
// over TLS 1.3. When it reports no certificate, the certificate checks run against a
// second endpoint of the same node (same key and certificate) that opted in to TLS 1.2
// (MinVersion), as ServerConfig documents.
func TestTestSSLOnTCPTwin(t *testing.T) {
	testssl := lookTestSSL(t)
	id := testsslIdentity(t)
	reg := newRegistry(t, map[string]core.Handler{"alknet/echo": coretest.Echo()})
	srv := coretest.NewServer(t, reg, coretest.WithIdentity(id))

	findings := runTestSSL(t, testssl, srv.Addr, "--protocols", "--server-defaults")
	want := map[string]string{ // protocol id: start of the finding
		"SSLv2":  "not offered",
		"SSLv3":  "not offered",
		"TLS1":   "not offered",
		"TLS1_1": "not offered",
		"TLS1_2": "not offered",
		"TLS1_3": "offered",
	}
	for proto, w := range want {
		f, ok := findings[proto]
		if !ok {
			t.Errorf("testssl reported nothing for %s", proto)
			continue
		}
		if !strings.HasPrefix(f.Finding, w) {
			t.Errorf("%s: testssl found %q, want %q", proto, f.Finding, w)
		}
	}

	if _, ok := findings["cert_serialNumber"]; !ok {
		t.Log("testssl reported no certificate over TLS 1.3 (testssl.sh < 3.1 has no Ed25519 there); checking it over TLS 1.2 on a second endpoint of the node")
		srv12 := coretest.NewServer(t, reg, coretest.WithIdentity(id),
			coretest.WithEndpointConfig(func(c *endpoint.Config) { c.TLS.MinVersion = tls.VersionTLS12 }))
		findings = runTestSSL(t, testssl, srv12.Addr, "--server-defaults")
	}
	leaf := id.Cert.Leaf
	if f := findings["cert_serialNumber"]; !sameSerial(f.Finding, leaf.SerialNumber) {
		t.Errorf("cert_serialNumber %q, want the node certificate's %X", f.Finding, leaf.SerialNumber)
	}
	if f, ok := findings["cert_serialNumberLen"]; !ok {
		t.Error("testssl reported no serial number length")
	} else if n, err := strconv.Atoi(f.Finding); err != nil || n < 8 || n > 20 || f.Severity != "INFO" {
		t.Errorf("cert_serialNumberLen %q (%s), want 8 to 20 bytes (64 random bits, RFC 5280) at INFO", f.Finding, f.Severity)
	}
	if f := findings["cert_subjectAltName"]; f.Finding != tlsconf.CertificateCommonName {
		t.Errorf("cert_subjectAltName %q, want %q", f.Finding, tlsconf.CertificateCommonName)
	}
	if f := findings["cert_notAfter"]; f.Finding != leaf.NotAfter.UTC().Format("2006-01-02 15:04") {
		t.Errorf("cert_notAfter %q, want %s", f.Finding, leaf.NotAfter.UTC().Format("2006-01-02 15:04"))
	}
	if f := findings["cert_expirationStatus"]; f.Severity != "OK" {
		t.Errorf("cert_expirationStatus %q (%s), want OK", f.Finding, f.Severity)
	}
}

// sameSerial reports whether hexSerial (as testssl prints it) is serial.
func sameSerial(hexSerial string, serial *big.Int) bool {
	n, ok := new(big.Int).SetString(hexSerial, 16)
	return ok && n.Cmp(serial) == 0
}

// testsslIdentity returns a node identity that testssl.sh 3.0.x can parse: its
// get_pub_key_size reads the second byte of an Ed25519 key as a DER length and
// aborts the whole scan when that byte is 0x80 or more (fixed in testssl.sh 3.1, which
// knows Ed25519 keys). The key plays no part in what this test checks.
func testsslIdentity(t *testing.T) *coretest.Identity {
	t.Helper()
	for {
		id := coretest.NewIdentity(t)
		if id.Key.Public().(ed25519.PublicKey)[1] < 0x80 {
			return id
		}
	}
}

// lookTestSSL returns the path of testssl.sh (Debian installs it as testssl) or skips.
func lookTestSSL(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"testssl", "testssl.sh"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("testssl.sh not installed (Debian package testssl.sh; CI installs it)")
	return ""
}

// runTestSSL runs testssl.sh with checks against addr and returns its findings by id.
// It reaches nothing but addr: no DNS lookups, no OCSP or CRL fetches (those need
// --phone-out). The first finding of an id wins (testssl numbers the ids of further
// certificates).
func runTestSSL(t *testing.T, testssl, addr string, checks ...string) map[string]testsslFinding {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testsslTimeout)
	defer cancel()
	dir := t.TempDir()
	out := filepath.Join(dir, "testssl.json")
	args := []string{"--quiet", "--color", "0", "--warnings", "off", "--nodns", "none",
		"--connect-timeout", "10", "--openssl-timeout", "10", "--jsonfile", out}
	args = append(append(args, checks...), addr)
	cmd := exec.CommandContext(ctx, testssl, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+dir, "TMPDIR="+dir)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	t.Logf("testssl %s: %v", strings.Join(checks, " "), time.Since(start).Round(time.Millisecond))
	if ctx.Err() != nil {
		t.Fatalf("testssl did not finish in %v; stdout:\n%s\nstderr:\n%s", testsslTimeout, stdout.String(), stderr.String())
	}
	data, rerr := os.ReadFile(out)
	if rerr != nil {
		t.Fatalf("testssl wrote no JSON (%v; exit %v); stdout:\n%s\nstderr:\n%s", rerr, err, stdout.String(), stderr.String())
	}
	var list []testsslFinding
	if err := json.Unmarshal(data, &list); err != nil {
		t.Fatalf("testssl JSON: %v\n%s", err, data)
	}
	findings := make(map[string]testsslFinding, len(list))
	for _, f := range list {
		if _, dup := findings[f.ID]; !dup {
			findings[f.ID] = f
		}
	}
	if f, ok := findings["scanTime"]; ok && f.Severity != "INFO" {
		t.Fatalf("testssl scan failed: %s %q; stdout:\n%s\nstderr:\n%s", f.Severity, f.Finding, stdout.String(), stderr.String())
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("testssl %s stdout:\n%s\nstderr:\n%s", strings.Join(checks, " "), stdout.String(), stderr.String())
		}
	})
	return findings
}
