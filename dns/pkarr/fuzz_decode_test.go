package pkarr

import (
	"bytes"
	"crypto/ed25519"
	"strings"
	"testing"

	mdns "github.com/miekg/dns"
)

// FuzzPkarrDecode feeds arbitrary bytes to Decode as a canonical SignedPacket and, since
// random bytes almost never carry a valid signature, also as the DNS packet of a packet
// signed by a fixed key, so that the parsing and name checks behind the signature are
// fuzzed as well. Accepted packets must re-encode to their input and keep every record
// under the signer's TLD.
func FuzzPkarrDecode(f *testing.F) {
	priv := testKey(42)
	pub := priv.Public().(ed25519.PublicKey)
	z := ZBase32Key(pub)
	sp, err := Sign(priv, testTime, []mdns.RR{
		mustRR(f, "_alknet."+z+". 300 IN TXT \"v=alknet1\" \"alpn=doq,alknet/dns\" \"addr=203.0.113.5:4433\""),
		mustRR(f, "www."+z+". 60 IN CNAME "+z+"."),
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(sp.Bytes())
	f.Add(sp.Packet())
	f.Add(rawSigned(priv, 1, packMsg(f, false, mustRR(f, z+". 30 IN A 192.0.2.1"))))
	f.Add([]byte("Hello World!"))
	f.Add(make([]byte, MinSignedPacket))

	tld := z + "."
	checkAccepted := func(t *testing.T, in []byte, sp *SignedPacket) {
		if !bytes.Equal(sp.Bytes(), in) {
			t.Fatalf("accepted packet re-encodes differently")
		}
		if len(sp.Packet()) > MaxPacketSize {
			t.Fatalf("accepted a %d-byte packet", len(sp.Packet()))
		}
		again, err := DecodeRelayPayload(sp.PublicKey(), sp.RelayPayload(), testTime)
		if err != nil || !bytes.Equal(again.Bytes(), in) {
			t.Fatalf("relay form of an accepted packet: %v", err)
		}
		want := sp.Name() + "."
		for _, rr := range sp.Records() {
			if n := rr.Header().Name; !strings.HasSuffix(n, want) || (n != want && !strings.HasSuffix(n, "."+want)) {
				t.Fatalf("accepted record %q outside %s", n, want)
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if sp, err := Decode(data, testTime); err == nil {
			checkAccepted(t, data, sp)
		}
		if len(data) > MaxPacketSize+10 {
			return
		}
		signed := rawSigned(priv, 7, data)
		sp, err := Decode(signed, testTime)
		if err != nil {
			return
		}
		checkAccepted(t, signed, sp)
		if sp.Name() != z || !strings.HasSuffix(tld, sp.Name()+".") {
			t.Fatalf("name %s", sp.Name())
		}
	})
}
