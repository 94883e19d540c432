package pkarr

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
)

// testKey returns a fixed key derived from a one-byte seed pattern.
func testKey(b byte) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{b}, ed25519.SeedSize))
}

// testTime is a fixed clock for the codec tests.
var testTime = time.Date(2026, 12, 8, 1, 2, 3, 456789123, time.UTC)

func mustRR(t testing.TB, s string) mdns.RR {
	t.Helper()
	rr, err := mdns.NewRR(s)
	if err != nil {
		t.Fatalf("NewRR(%q): %v", s, err)
	}
	return rr
}

// relRR returns an A record with the relative owner name, as Sign accepts it.
func relRR(t testing.TB, name, addr string) mdns.RR {
	rr := mustRR(t, "x. 30 IN A "+addr)
	rr.Header().Name = name
	return rr
}

// rawSigned signs an arbitrary packet (no checks) and returns the canonical form.
func rawSigned(priv ed25519.PrivateKey, ts uint64, packet []byte) []byte {
	pub := priv.Public().(ed25519.PublicKey)
	b := append([]byte{}, pub...)
	b = append(b, ed25519.Sign(priv, Signable(ts, packet))...)
	b = binary.BigEndian.AppendUint64(b, ts)
	return append(b, packet...)
}

// packMsg packs records into a response message, compressed or not.
func packMsg(t testing.TB, compress bool, rrs ...mdns.RR) []byte {
	t.Helper()
	m := new(mdns.Msg)
	m.Response = true
	m.Compress = compress
	m.Answer = rrs
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// packetOfSize returns a DNS packet of exactly n bytes (n >= 100) with one TXT record
// under z32's TLD.
func packetOfSize(t testing.TB, z32 string, n int) []byte {
	t.Helper()
	base := packMsg(t, true, mustRR(t, "_pad."+z32+". 60 IN TXT \"\""))
	need := n - len(base) // bytes to add inside the TXT RDATA
	var strs []string
	for need > 0 {
		// Each extra string costs its length + 1; a string holds at most 255 bytes.
		l := min(need-1, 255)
		if l < 0 { // need == 0 cannot happen here; need == 1 adds an empty string
			l = 0
		}
		strs = append(strs, strings.Repeat("x", l))
		need -= l + 1
	}
	txt := &mdns.TXT{Hdr: mdns.RR_Header{Name: "_pad." + z32 + ".", Rrtype: mdns.TypeTXT, Class: mdns.ClassINET, Ttl: 60}, Txt: append([]string{""}, strs...)}
	b := packMsg(t, true, txt)
	if len(b) != n {
		t.Fatalf("packetOfSize: got %d bytes, want %d", len(b), n)
	}
	return b
}

// TestSignableVector pins the BEP 44 signing form on BEP 44's own test vector ("Hello
// World!" at seq 1, key 77ff…e548, signature 305a…1f01), and on a pkarr-sized timestamp.
func TestSignableVector(t *testing.T) {
	if got, want := string(Signable(1, []byte("Hello World!"))), "3:seqi1e1:v12:Hello World!"; got != want {
		t.Fatalf("Signable = %q, want %q", got, want)
	}
	if got, want := string(Signable(1765155723456789, []byte("abc"))), "3:seqi1765155723456789e1:v3:abc"; got != want {
		t.Fatalf("Signable = %q, want %q", got, want)
	}
	if got, want := string(Signable(0, nil)), "3:seqi0e1:v0:"; got != want {
		t.Fatalf("Signable = %q, want %q", got, want)
	}
	if got, want := string(Signable(math.MaxUint64, []byte("x"))), "3:seqi18446744073709551615e1:v1:x"; got != want {
		t.Fatalf("Signable = %q, want %q", got, want)
	}

	pub, _ := hex.DecodeString("77ff84905a91936367c01360803104f92432fcd904a43511876df5cdf3e7e548")
	sig, _ := hex.DecodeString("305ac8aeb6c9c151fa120f120ea2cfb923564e11552d06a5d856091e5e853cff" +
		"1260d3f39e4999684aa92eb73ffd136e6f4f3ecbfda0ce53a1608ecd7ae21f01")
	if !ed25519.Verify(pub, Signable(1, []byte("Hello World!")), sig) {
		t.Fatal("BEP 44 test vector does not verify over Signable")
	}

	// The same vector as a canonical SignedPacket: the signature check passes, and the
	// 12-byte value, read as a DNS header, announces records that are not there.
	raw := append(append(append([]byte{}, pub...), sig...), 0, 0, 0, 0, 0, 0, 0, 1)
	raw = append(raw, "Hello World!"...)
	if _, err := Decode(raw, testTime); !errors.Is(err, ErrBadPacket) {
		t.Fatalf("Decode(BEP 44 vector) err = %v, want ErrBadPacket (signature accepted)", err)
	}
	raw[len(raw)-1] ^= 1
	if _, err := Decode(raw, testTime); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("Decode(tampered BEP 44 vector) err = %v, want ErrBadSignature", err)
	}
}

func TestSignDecodeRoundTrip(t *testing.T) {
	priv := testKey(1)
	pub := priv.Public().(ed25519.PublicKey)
	z := ZBase32Key(pub)
	in := []mdns.RR{
		mustRR(t, "@ 300 IN A 192.0.2.1"),                                        // apex shorthand
		mustRR(t, "_alknet 120 IN TXT \"v=alknet1\""),                            // relative
		mustRR(t, "www.Example."+strings.ToUpper(z)+". 600 IN AAAA 2001:db8::1"), // fully qualified, TLD upper case
		mustRR(t, "alias."+z+". 60 IN CNAME www.example."+z+"."),                 // FQDN target in RDATA
	}
	in[0].Header().Name = "@"
	in[1].Header().Name = "_alknet"
	before := in[1].Header().Name

	sp, err := Sign(priv, testTime, in)
	if err != nil {
		t.Fatal(err)
	}
	if in[1].Header().Name != before {
		t.Fatal("Sign modified the caller's record")
	}
	wantNames := []string{z + ".", "_alknet." + z + ".", "www.Example." + z + ".", "alias." + z + "."}
	check := func(name string, sp *SignedPacket) {
		t.Helper()
		if !bytes.Equal(sp.PublicKey(), pub) || sp.Name() != z {
			t.Fatalf("%s: key %x / name %s", name, sp.PublicKey(), sp.Name())
		}
		if want := testTime.Truncate(time.Microsecond); !sp.Timestamp().Equal(want) {
			t.Fatalf("%s: Timestamp = %v, want %v", name, sp.Timestamp(), want)
		}
		if sp.Micros() != uint64(testTime.UnixMicro()) {
			t.Fatalf("%s: Micros = %d", name, sp.Micros())
		}
		if sp.MinTTL() != 60 {
			t.Fatalf("%s: MinTTL = %d, want 60", name, sp.MinTTL())
		}
		rrs := sp.Records()
		if len(rrs) != len(wantNames) {
			t.Fatalf("%s: %d records, want %d", name, len(rrs), len(wantNames))
		}
		for i, rr := range rrs {
			if rr.Header().Name != wantNames[i] {
				t.Errorf("%s: record %d name %q, want %q", name, i, rr.Header().Name, wantNames[i])
			}
		}
		if got := rrs[1].(*mdns.TXT).Txt; len(got) != 1 || got[0] != "v=alknet1" {
			t.Errorf("%s: TXT = %q", name, got)
		}
		// Records hands out copies.
		rrs[0].Header().Name = "changed."
		if sp.Records()[0].Header().Name != wantNames[0] {
			t.Fatalf("%s: Records returned shared records", name)
		}
	}
	check("signed", sp)

	raw := sp.Bytes()
	if !bytes.Equal(raw[:32], pub) || !bytes.Equal(raw[32:], sp.RelayPayload()) {
		t.Fatal("Bytes is not key ‖ RelayPayload")
	}
	if !bytes.Equal(sp.Signature(), raw[32:96]) || !bytes.Equal(sp.Packet(), raw[104:]) {
		t.Fatal("Signature/Packet do not match Bytes")
	}
	if !ed25519.Verify(pub, Signable(sp.Micros(), sp.Packet()), sp.Signature()) {
		t.Fatal("signature does not verify over the BEP 44 form")
	}
	dec, err := Decode(raw, testTime)
	if err != nil {
		t.Fatal(err)
	}
	raw[200] ^= 0xff // Decode copied its input
	check("decoded", dec)
	rel, err := DecodeRelayPayload(pub, sp.RelayPayload(), testTime)
	if err != nil {
		t.Fatal(err)
	}
	check("relay", rel)
	if !bytes.Equal(rel.Bytes(), sp.Bytes()) {
		t.Fatal("relay payload decodes to different bytes")
	}

	// The packet is a compressed response with ID 0.
	var m mdns.Msg
	if err := m.Unpack(sp.Packet()); err != nil {
		t.Fatal(err)
	}
	if !m.Response || m.Id != 0 || len(m.Answer) != 4 {
		t.Fatalf("packet header: %v", m.MsgHdr)
	}
	if uncompressed := packMsg(t, false, m.Answer...); len(uncompressed) <= len(sp.Packet()) {
		t.Fatalf("packet is not compressed: %d bytes, uncompressed %d", len(sp.Packet()), len(uncompressed))
	}

	// NewerThan.
	later, err := Sign(priv, testTime.Add(time.Microsecond), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !later.NewerThan(sp) || sp.NewerThan(later) || sp.NewerThan(dec) || !sp.NewerThan(nil) {
		t.Fatal("NewerThan")
	}
	if later.MinTTL() != 0 || len(later.Records()) != 0 {
		t.Fatal("empty packet has records")
	}
}

func TestDecodeUncompressed(t *testing.T) {
	priv := testKey(2)
	z := ZBase32Key(priv.Public().(ed25519.PublicKey))
	packet := packMsg(t, false, mustRR(t, "a."+z+". 30 IN A 192.0.2.1"), mustRR(t, "b."+z+". 30 IN A 192.0.2.2"))
	if _, err := Decode(rawSigned(priv, 1, packet), testTime); err != nil {
		t.Fatalf("uncompressed packet: %v", err)
	}
}

type badSigner struct {
	ed25519.PrivateKey
	mangle bool
	err    error
}

func (s badSigner) Sign(r io.Reader, msg []byte, o crypto.SignerOpts) ([]byte, error) {
	if s.err != nil {
		return nil, s.err
	}
	sig, _ := s.PrivateKey.Sign(r, msg, o)
	if s.mangle {
		sig[0] ^= 1
	}
	return sig, nil
}

func TestSignRejects(t *testing.T) {
	priv := testKey(3)
	z := ZBase32Key(priv.Public().(ed25519.PublicKey))
	other := ZBase32Key(testKey(4).Public().(ed25519.PublicKey))
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tooMany := make([]mdns.RR, 0, 100)
	for i := range 100 {
		rr := mustRR(t, fmt.Sprintf("h%d 30 IN A 192.0.2.%d", i, i))
		rr.Header().Name = fmt.Sprintf("h%d", i) // relative: Sign qualifies it
		tooMany = append(tooMany, rr)
	}
	for _, c := range []struct {
		name    string
		signer  crypto.Signer
		ts      time.Time
		records []mdns.RR
		want    error
	}{
		{"outside", priv, testTime, []mdns.RR{mustRR(t, "example.com. 30 IN A 192.0.2.1")}, ErrNotUnderKey},
		{"other key", priv, testTime, []mdns.RR{mustRR(t, "www."+other+". 30 IN A 192.0.2.1")}, ErrNotUnderKey},
		{"suffix without label boundary", priv, testTime, []mdns.RR{mustRR(t, "evil"+z+". 30 IN A 192.0.2.1")}, ErrNotUnderKey},
		{"escaped dot before TLD", priv, testTime, []mdns.RR{mustRR(t, `evil\.`+z+`. 30 IN A 192.0.2.1`)}, ErrNotUnderKey},
		{"root", priv, testTime, []mdns.RR{mustRR(t, ". 30 IN A 192.0.2.1")}, nil}, // "." is the apex shorthand
		{"relative with the key", priv, testTime, []mdns.RR{relRR(t, "www."+z, "192.0.2.1")}, nil},
		{"relative key only", priv, testTime, []mdns.RR{relRR(t, strings.ToUpper(z), "192.0.2.1")}, nil},
		{"too large", priv, testTime, tooMany, ErrTooLarge},
		{"before epoch", priv, time.Unix(-1, 0), nil, ErrBadTimestamp},
		{"ecdsa signer", ec, testTime, nil, ErrBadSigner},
		{"mangling signer", badSigner{PrivateKey: priv, mangle: true}, testTime, nil, ErrBadSigner},
		{"failing signer", badSigner{PrivateKey: priv, err: errors.New("vault locked")}, testTime, nil, ErrBadSigner},
		{"nil record", priv, testTime, []mdns.RR{nil}, ErrBadPacket},
	} {
		_, err := Sign(c.signer, c.ts, c.records)
		if c.want == nil {
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
			}
			continue
		}
		if !errors.Is(err, c.want) {
			t.Errorf("%s: err = %v, want %v", c.name, err, c.want)
		}
	}
}

// TestDecodeRejects covers every rejection of spec §1.7 at the codec, each at its edge.
func TestDecodeRejects(t *testing.T) {
	priv := testKey(5)
	pub := priv.Public().(ed25519.PublicKey)
	z := ZBase32Key(pub)
	other := ZBase32Key(testKey(6).Public().(ed25519.PublicKey))
	now := testTime
	nowMicros := uint64(now.UnixMicro())
	good := packMsg(t, true, mustRR(t, "a."+z+". 30 IN A 192.0.2.1"))

	withExtra := new(mdns.Msg)
	withExtra.Answer = []mdns.RR{mustRR(t, "a."+z+". 30 IN A 192.0.2.1")}
	withExtra.Extra = []mdns.RR{mustRR(t, "glue.example. 30 IN A 192.0.2.9")}
	extraPacket, err := withExtra.Pack()
	if err != nil {
		t.Fatal(err)
	}

	flip := func(b []byte, i int) []byte {
		b = bytes.Clone(b)
		b[i] ^= 0x01
		return b
	}
	for _, c := range []struct {
		name string
		raw  []byte
		want error // nil: accepted
	}{
		{"good", rawSigned(priv, nowMicros, good), nil},
		{"empty", nil, ErrTooShort},
		{"103 bytes", make([]byte, MinSignedPacket-1), ErrTooShort},
		{"104 bytes: empty packet, good signature", rawSigned(priv, nowMicros, nil), ErrBadPacket},
		{"packet of 999 bytes", rawSigned(priv, nowMicros, packetOfSize(t, z, 999)), nil},
		{"packet of 1000 bytes", rawSigned(priv, nowMicros, packetOfSize(t, z, 1000)), ErrTooLarge},
		{"packet of 1001 bytes", rawSigned(priv, nowMicros, packetOfSize(t, z, 1001)), ErrTooLarge},
		{"bad signature", flip(rawSigned(priv, nowMicros, good), 40), ErrBadSignature},
		{"tampered timestamp", flip(rawSigned(priv, nowMicros, good), 103), ErrBadSignature},
		{"tampered packet", flip(rawSigned(priv, nowMicros, good), MinSignedPacket+20), ErrBadSignature},
		{"tampered key", flip(rawSigned(priv, nowMicros, good), 0), ErrBadSignature},
		{"garbage packet", rawSigned(priv, nowMicros, []byte{0, 0, 0x84, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0xc0}), ErrBadPacket},
		{"record outside", rawSigned(priv, nowMicros, packMsg(t, true, mustRR(t, "example.com. 30 IN A 192.0.2.1"))), ErrNotUnderKey},
		{"record under another key", rawSigned(priv, nowMicros, packMsg(t, true, mustRR(t, other+". 30 IN A 192.0.2.1"))), ErrNotUnderKey},
		{"additional record outside", rawSigned(priv, nowMicros, extraPacket), ErrNotUnderKey},
		{"one hour ahead", rawSigned(priv, nowMicros+uint64(time.Hour/time.Microsecond), good), nil},
		{"one hour and 1 µs ahead", rawSigned(priv, nowMicros+uint64(time.Hour/time.Microsecond)+1, good), ErrFuture},
		{"max timestamp", rawSigned(priv, math.MaxUint64, good), ErrFuture},
		{"timestamp zero", rawSigned(priv, 0, good), nil},
	} {
		sp, err := Decode(c.raw, now)
		if c.want == nil {
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
			} else if !bytes.Equal(sp.Bytes(), c.raw) {
				t.Errorf("%s: Bytes differ from the input", c.name)
			}
			continue
		}
		if !errors.Is(err, c.want) {
			t.Errorf("%s: err = %v, want %v", c.name, err, c.want)
		}
	}
	if _, err := Decode(make([]byte, MaxSignedPacket+1), now); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversized canonical form: %v", err)
	}
}

func TestDecodeRelayPayloadBounds(t *testing.T) {
	priv := testKey(7)
	pub := priv.Public().(ed25519.PublicKey)
	z := ZBase32Key(pub)
	body := func(packet []byte) []byte { return rawSigned(priv, 1, packet)[ed25519.PublicKeySize:] }
	for _, c := range []struct {
		name string
		body []byte
		want error
	}{
		{"71 bytes", make([]byte, MinRelayPayload-1), ErrTooShort},
		{"72 bytes, zero", make([]byte, MinRelayPayload), ErrBadSignature},
		{"72 bytes, signed empty packet", body(nil), ErrBadPacket},
		{"1071 bytes", body(packetOfSize(t, z, 999)), nil},
		{"1072 bytes", body(packetOfSize(t, z, 1000)), ErrTooLarge},
		{"1073 bytes", make([]byte, MaxRelayPayload+1), ErrTooLarge},
	} {
		if len(c.body) == 1071 && c.want != nil {
			t.Fatal("table")
		}
		_, err := DecodeRelayPayload(pub, c.body, testTime)
		if c.want == nil {
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
			}
			continue
		}
		if !errors.Is(err, c.want) {
			t.Errorf("%s (%d bytes): err = %v, want %v", c.name, len(c.body), err, c.want)
		}
	}
	if _, err := DecodeRelayPayload(pub[:31], body(nil), testTime); !errors.Is(err, ErrBadKey) {
		t.Errorf("short key: %v", err)
	}
	// A payload for one key does not verify under another.
	sp, err := Sign(priv, testTime, []mdns.RR{mustRR(t, "a."+z+". 30 IN A 192.0.2.1")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := DecodeRelayPayload(testKey(8).Public().(ed25519.PublicKey), sp.RelayPayload(), testTime); !errors.Is(err, ErrBadSignature) {
		t.Errorf("payload under another key: %v", err)
	}
}

// TestDiscoveryPacketSize is the size budget: a discovery packet as the node publishes
// it (TXT with 4 addresses and 10 ALPNs, plus SVCB with the same facts) stays well
// under 1000 bytes.
func TestDiscoveryPacketSize(t *testing.T) {
	priv := testKey(9)
	alpns := []string{"alknet/call", "alknet/http", "h3", "alknet/ssh", "alknet/sftp",
		"alknet/git", "doq", "alknet/dns", "alknet/msg", "alknet/vault"}
	addrs := []string{"203.0.113.5:4433", "198.51.100.77:4433",
		"[2001:db8:85a3::8a2e:370:7334]:4433", "[2001:db8:1234:5678:9abc:def0:1234:5678]:4433"}
	txt := &mdns.TXT{
		Hdr: mdns.RR_Header{Name: "_alknet", Rrtype: mdns.TypeTXT, Class: mdns.ClassINET, Ttl: 300},
		Txt: []string{"v=alknet1", "alpn=" + strings.Join(alpns, ",")},
	}
	for _, a := range addrs {
		txt.Txt = append(txt.Txt, "addr="+a)
	}
	svcb := mustRR(t, `_alknet 300 IN SVCB 1 . alpn="`+strings.Join(alpns, ",")+
		`" port=4433 ipv4hint=203.0.113.5,198.51.100.77 ipv6hint=2001:db8:85a3::8a2e:370:7334,2001:db8:1234:5678:9abc:def0:1234:5678`)
	svcb.Header().Name = "_alknet"
	sp, err := Sign(priv, testTime, []mdns.RR{txt, svcb})
	if err != nil {
		t.Fatal(err)
	}
	n := len(sp.Packet())
	t.Logf("discovery packet: %d bytes (TXT+SVCB), relay payload %d bytes", n, len(sp.RelayPayload()))
	if n >= 1000 {
		t.Fatalf("discovery packet is %d bytes, over pkarr's budget", n)
	}
	if _, err := DecodeRelayPayload(priv.Public().(ed25519.PublicKey), sp.RelayPayload(), testTime); err != nil {
		t.Fatal(err)
	}
}

// TestSignQualify pins how Sign places owner names under the key's TLD.
func TestSignQualify(t *testing.T) {
	priv := testKey(10)
	z := ZBase32Key(priv.Public().(ed25519.PublicKey))
	for in, want := range map[string]string{
		"":                                z + ".",
		"@":                               z + ".",
		".":                               z + ".",
		"_alknet":                         "_alknet." + z + ".",
		"a.b":                             "a.b." + z + ".",
		"www." + z:                        "www." + z + ".",
		strings.ToUpper(z):                z + ".",
		"www." + z + ".":                  "www." + z + ".",
		"WWW." + strings.ToUpper(z) + ".": "WWW." + z + ".",
		z + "x":                           z + "x." + z + ".", // a longer label is not the key
	} {
		sp, err := Sign(priv, testTime, []mdns.RR{relRR(t, in, "192.0.2.1")})
		if err != nil {
			t.Errorf("%q: %v", in, err)
			continue
		}
		if got := sp.Records()[0].Header().Name; got != want {
			t.Errorf("%q: owner %q, want %q", in, got, want)
		}
	}
}
