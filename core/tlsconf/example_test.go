package tlsconf_test

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"

	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/core/tlsconf"
)

// A node's certificate is a self-signed wrapper around its Ed25519 key; peers know the
// node by the key's fingerprint, which every certificate of the key shares. (Real nodes
// use LoadOrCreateKey.)
func ExampleCertificate() {
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	cert, err := tlsconf.Certificate(key)
	if err != nil {
		panic(err)
	}
	again, _ := tlsconf.Certificate(key)

	fmt.Println(tlsconf.Fingerprint(key))
	fmt.Println(core.FingerprintFromCert(cert.Leaf) == tlsconf.Fingerprint(key))
	fmt.Println(core.FingerprintFromCert(again.Leaf) == tlsconf.Fingerprint(key))
	fmt.Println(cert.Leaf.SerialNumber.Cmp(again.Leaf.SerialNumber) != 0)
	fmt.Println(cert.Leaf.Subject.CommonName, cert.Leaf.DNSNames)
	fmt.Println(cert.Leaf.NotAfter.Sub(cert.Leaf.NotBefore) == tlsconf.CertificateValidity)
	// Output:
	// ed25519:ea4a6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea691446d22c
	// true
	// true
	// true
	// alknet [alknet]
	// true
}

// A client pins the server's fingerprint, or verifies it against CAs by host name.
// There is no way to accept any server.
func ExampleClientConfig() {
	serverKey := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	clientKey := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{8}, ed25519.SeedSize))
	clientCert, err := tlsconf.Certificate(clientKey)
	if err != nil {
		panic(err)
	}

	pinned, err := tlsconf.ClientConfig(tlsconf.ClientOptions{
		Pin:         tlsconf.Fingerprint(serverKey),
		Certificate: &clientCert,
		NextProtos:  []string{"alknet/call"},
	})
	fmt.Println("pinned:", err, pinned.NextProtos)

	public, err := tlsconf.ClientConfig(tlsconf.ClientOptions{ServerName: "example.com", NextProtos: []string{"h2"}})
	fmt.Println("CA-verified:", err, public.ServerName, public.InsecureSkipVerify)

	_, err = tlsconf.ClientConfig(tlsconf.ClientOptions{Certificate: &clientCert})
	fmt.Println(errors.Is(err, tlsconf.ErrNoServerVerification))
	// Output:
	// pinned: <nil> [alknet/call]
	// CA-verified: <nil> example.com false
	// true
}
