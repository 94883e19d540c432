package dns_test

import (
	"context"
	"fmt"
	"log"

	mdns "github.com/miekg/dns"

	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/core/endpoint"
	"github.com/alknet/alknet/core/tlsconf"
	alkdns "github.com/alknet/alknet/dns"
)

// A DNS handler served over DNS over QUIC and DNS over TLS on a node's endpoint, and a
// client asking it over each, pinning the node's key.
func ExampleServer() {
	ctx := context.Background()

	// Any miekg handler works; a node uses the zone handler (*alkdns.Handler).
	zone := mdns.HandlerFunc(func(w mdns.ResponseWriter, r *mdns.Msg) {
		m := new(mdns.Msg)
		m.SetReply(r)
		m.Authoritative = true
		m.Answer = append(m.Answer, &mdns.TXT{
			Hdr: mdns.RR_Header{Name: r.Question[0].Name, Rrtype: mdns.TypeTXT, Class: mdns.ClassINET, Ttl: 60},
			Txt: []string{"v=alknet1"},
		})
		_ = w.WriteMsg(m)
	})
	srv, err := alkdns.NewServer(alkdns.ServerConfig{Handler: zone, Padding: true})
	if err != nil {
		log.Fatal(err)
	}
	reg := core.NewRegistry()
	if err := srv.Register(reg); err != nil { // doq, alknet/dns and dot
		log.Fatal(err)
	}

	key, _ := tlsconf.GenerateKey()
	cert, _ := tlsconf.Certificate(key)
	ep, err := endpoint.New(reg, endpoint.Config{TLS: tlsconf.ServerConfig(cert)})
	if err != nil {
		log.Fatal(err)
	}
	if err := ep.Listen("127.0.0.1:0"); err != nil {
		log.Fatal(err)
	}
	defer ep.Shutdown(ctx)

	q := new(mdns.Msg)
	q.SetQuestion("_alknet.example.", mdns.TypeTXT)
	for _, dial := range []struct {
		alpn    string
		network endpoint.Network
	}{{alkdns.ALPNDoQ, endpoint.NetworkQUIC}, {alkdns.ALPNDoT, endpoint.NetworkTCP}} {
		conn, err := endpoint.Dial(ctx, ep.QUICAddr().String(), dial.alpn, endpoint.DialOptions{
			Network: dial.network,
			TLS:     tlsconf.ClientOptions{Pin: tlsconf.Fingerprint(key)},
		})
		if err != nil {
			log.Fatal(err)
		}
		r, err := alkdns.Exchange(ctx, conn, q)
		conn.Close(core.CloseNormal, "")
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(dial.alpn, mdns.RcodeToString[r.Rcode], r.Id == q.Id, r.Answer[0].(*mdns.TXT).Txt[0])
	}
	st := srv.Stats()
	fmt.Println("answered:", st.DoQ.Total(), "over DoQ,", st.DoT.Total(), "over DoT")
	// Output:
	// doq NOERROR true v=alknet1
	// dot NOERROR true v=alknet1
	// answered: 1 over DoQ, 1 over DoT
}

// A plain UDP and TCP listener for dig and kdig on loopback, answering through the
// same server so its Stats count these queries too.
func ExampleListenPlain() {
	zone := mdns.HandlerFunc(func(w mdns.ResponseWriter, r *mdns.Msg) {
		m := new(mdns.Msg)
		_ = w.WriteMsg(m.SetRcode(r, mdns.RcodeNameError))
	})
	srv, err := alkdns.NewServer(alkdns.ServerConfig{Handler: zone})
	if err != nil {
		log.Fatal(err)
	}
	p, err := alkdns.ListenPlain(context.Background(), "127.0.0.1:0", srv, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()

	q := new(mdns.Msg)
	q.SetQuestion("missing.example.", mdns.TypeA)
	r, _, err := new(mdns.Client).Exchange(q, p.UDPAddr().String())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(mdns.RcodeToString[r.Rcode], srv.Stats().Plain.Responses["NXDOMAIN"])
	// Output: NXDOMAIN 1
}
