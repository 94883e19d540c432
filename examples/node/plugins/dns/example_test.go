package dns_test

import (
	"crypto/ed25519"
	"fmt"
	"log"
	"net/netip"

	mdns "github.com/miekg/dns"

	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/core/tlsconf"
	alkdns "github.com/alknet/alknet/dns"
)

// The README's embedding snippet: the zone handler with the node zone, and the DNS
// server registered on a core registry (then served by an endpoint, as any handler).
func Example_embedding() {
	key, _ := tlsconf.GenerateKey() // the node's identity key
	// Config is the [dns] table; its Zones are master files.
	zones, err := alkdns.NewHandler(alkdns.Config{Origin: "alk.dev"},
		alkdns.WithNodeKey(key.Public().(ed25519.PublicKey)),
		alkdns.WithServices([]string{alkdns.ALPNDoQ, alkdns.ALPN, alkdns.ALPNDoT},
			[]netip.AddrPort{netip.MustParseAddrPort("203.0.113.5:4433")}))
	if err != nil {
		log.Fatal(err)
	}
	srv, err := alkdns.NewServer(alkdns.ServerConfig{Handler: zones, Padding: true})
	if err != nil {
		log.Fatal(err)
	}
	reg := core.NewRegistry()
	if err := srv.Register(reg); err != nil { // doq, alknet/dns and dot
		log.Fatal(err)
	}
	fmt.Println(reg.ALPNs())

	q := new(mdns.Msg)
	q.SetQuestion("_alknet."+alkdns.NodeName(key.Public().(ed25519.PublicKey), "alk.dev"), mdns.TypeTXT)
	r := zones.Answer(q)
	fmt.Println(mdns.RcodeToString[r.Rcode], r.Answer[0].(*mdns.TXT).Txt)
	// Output:
	// [doq alknet/dns dot]
	// NOERROR [v=alknet1 alpn=doq,alknet/dns,dot addr=203.0.113.5:4433]
}
