package tlsconf_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/tls"
	"fmt"
	"io"
	"net"

	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/core/tlsconf"
)

// A client that reconnects to a server it pinned resumes its TLS session through a
// SessionCache: the second handshake skips the certificate signatures, yet both sides
// still see the identities of the first one (the server the client certificate, the
// client the server certificate its pin check ran on).
func ExampleSessionCache() {
	serverKey := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	clientKey := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{8}, ed25519.SeedSize))
	serverCert, err := tlsconf.Certificate(serverKey)
	if err != nil {
		panic(err)
	}
	clientCert, err := tlsconf.Certificate(clientKey)
	if err != nil {
		panic(err)
	}
	server := tlsconf.ServerConfig(serverCert)
	server.NextProtos = []string{"alknet/call"}

	sessions := tlsconf.NewSessionCache(16) // one per process
	client, err := tlsconf.ClientConfig(tlsconf.ClientOptions{
		Pin:         tlsconf.Fingerprint(serverKey),
		Certificate: &clientCert,
		NextProtos:  []string{"alknet/call"},
		Sessions:    sessions,
	})
	if err != nil {
		panic(err)
	}

	for range 2 {
		c, s := net.Pipe()
		seen := make(chan tls.ConnectionState, 1)
		go func() {
			tc := tls.Server(s, server)
			defer tc.Close()
			if err := tc.Handshake(); err == nil {
				_, _ = tc.Write([]byte("ok"))
			}
			seen <- tc.ConnectionState()
		}()
		tc := tls.Client(c, client)
		// Reading takes in the session ticket the server sends after the handshake.
		if _, err := io.ReadAll(tc); err != nil {
			panic(err)
		}
		tc.Close()
		st := <-seen
		fmt.Println("resumed:", tc.ConnectionState().DidResume,
			"server saw the client:", core.FingerprintFromCert(st.PeerCertificates[0]) == tlsconf.Fingerprint(clientKey),
			"pinned server:", core.FingerprintFromCert(tc.ConnectionState().PeerCertificates[0]) == tlsconf.Fingerprint(serverKey))
	}
	fmt.Println("sessions:", sessions.Len())
	// Output:
	// resumed: false server saw the client: true pinned server: true
	// resumed: true server saw the client: true pinned server: true
	// sessions: 1
}
