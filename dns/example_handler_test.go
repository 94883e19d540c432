package dns_test

import (
	"fmt"
	"log"
	"path/filepath"

	mdns "github.com/miekg/dns"

	alkdns "github.com/alknet/alknet/dns"
)

// A handler serving a static zone answers queries without any transport: Answer is
// what ServeDNS writes to the transport's ResponseWriter.
func ExampleHandler() {
	h, err := alkdns.NewHandler(alkdns.Config{
		Zones: []string{filepath.Join("testdata", "example.org.zone")},
	})
	if err != nil {
		log.Fatal(err)
	}

	q := new(mdns.Msg)
	q.SetQuestion("Alias.Example.org.", mdns.TypeA)
	resp := h.Answer(q)
	fmt.Println(mdns.RcodeToString[resp.Rcode], "AA:", resp.Authoritative, "question:", resp.Question[0].Name)
	for _, rr := range resp.Answer {
		fmt.Println(rr)
	}

	q.SetQuestion("nope.example.org.", mdns.TypeA)
	resp = h.Answer(q)
	fmt.Println(mdns.RcodeToString[resp.Rcode], "authority:", resp.Ns[0].Header().Name, mdns.TypeToString[resp.Ns[0].Header().Rrtype])

	q.SetQuestion("example.com.", mdns.TypeA)
	fmt.Println(mdns.RcodeToString[h.Answer(q).Rcode])
	// Output:
	// NOERROR AA: true question: Alias.Example.org.
	// alias.example.org.	3600	IN	CNAME	www.example.org.
	// www.example.org.	3600	IN	A	192.0.2.80
	// NXDOMAIN authority: example.org. SOA
	// REFUSED
}
