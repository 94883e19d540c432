package pkarr_test

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/alknet/alknet/dns/pkarr"
)

// Sign a packet with a (here fixed) Ed25519 key, then verify it from its relay payload
// as a resolver would. Relative owner names are placed under the key's TLD.
func Example() {
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	ts := time.Date(2026, 12, 8, 12, 0, 0, 0, time.UTC)

	txt := &mdns.TXT{
		Hdr: mdns.RR_Header{Name: "_alknet", Rrtype: mdns.TypeTXT, Class: mdns.ClassINET, Ttl: 300},
		Txt: []string{"v=alknet1", "alpn=doq,alknet/dns", "addr=203.0.113.5:4433"},
	}
	sp, err := pkarr.Sign(priv, ts, []mdns.RR{txt})
	if err != nil {
		fmt.Println(err)
		return
	}

	pub, err := pkarr.ParseKey("pk:" + sp.Name())
	if err != nil {
		fmt.Println(err)
		return
	}
	got, err := pkarr.DecodeRelayPayload(pub, sp.RelayPayload(), ts)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(got.Name())
	fmt.Println(got.Timestamp().Format(time.RFC3339), got.MinTTL())
	for _, rr := range got.Records() {
		fmt.Println(rr)
	}

	payload := sp.RelayPayload()
	payload[len(payload)-1] ^= 1
	_, err = pkarr.DecodeRelayPayload(pub, payload, ts)
	fmt.Println(errors.Is(err, pkarr.ErrBadSignature))
	// Output:
	// 7jfgaa9nutjyixzikb7tgmsf9gkwq7iqz498zr1nd5ig1fng4esy
	// 2026-12-08T12:00:00Z 300
	// _alknet.7jfgaa9nutjyixzikb7tgmsf9gkwq7iqz498zr1nd5ig1fng4esy.	300	IN	TXT	"v=alknet1" "alpn=doq,alknet/dns" "addr=203.0.113.5:4433"
	// true
}
