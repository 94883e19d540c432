package dns

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/alknet/alknet/dns/pkarr"
)

// ztSVCBParams returns an SVCB record's parameters by key, in presentation form.
func ztSVCBParams(t *testing.T, rr mdns.RR) (*mdns.SVCB, map[mdns.SVCBKey]string) {
	t.Helper()
	s, ok := rr.(*mdns.SVCB)
	if !ok {
		t.Fatalf("%v is not SVCB", rr)
	}
	m := make(map[mdns.SVCBKey]string)
	var keys []mdns.SVCBKey
	for _, kv := range s.Value {
		m[kv.Key()] = kv.String()
		keys = append(keys, kv.Key())
	}
	if !slices.IsSorted(keys) {
		t.Errorf("SVCB keys %v not in ascending order", keys)
	}
	return s, m
}

func TestDiscoveryRecords(t *testing.T) {
	key := ztKey(7)
	z32 := pkarr.ZBase32Key(key)
	alpns := []string{"alknet/call", "doq", "alknet/dns", "h3"}
	addrs := []netip.AddrPort{
		netip.MustParseAddrPort("203.0.113.5:4433"),
		netip.MustParseAddrPort("[2001:db8::5]:4433"),
		netip.MustParseAddrPort("[::ffff:198.51.100.9]:443"), // IPv4-mapped: unmapped
		netip.MustParseAddrPort("203.0.113.5:443"),           // same IP, other port: one A
		netip.MustParseAddrPort("203.0.113.5:4433"),          // duplicate: dropped
	}
	for _, tc := range []struct{ origin, owner string }{
		{"", z32 + "."},
		{"alk.dev", z32 + ".alk.dev."},
		{"Alk.Dev.", z32 + ".alk.dev."},
	} {
		t.Run("origin="+tc.origin, func(t *testing.T) {
			rrs, err := DiscoveryRecords(key, tc.origin, alpns, addrs, 120)
			if err != nil {
				t.Fatal(err)
			}
			disc := "_alknet." + tc.owner
			if NodeName(key, tc.origin) != tc.owner {
				t.Errorf("NodeName %q, want %q", NodeName(key, tc.origin), tc.owner)
			}
			var types []uint16
			for _, rr := range rrs {
				types = append(types, rr.Header().Rrtype)
				if rr.Header().Ttl != 120 || rr.Header().Class != mdns.ClassINET {
					t.Errorf("%v: want TTL 120, class IN", rr)
				}
			}
			want := []uint16{mdns.TypeTXT, mdns.TypeSVCB, mdns.TypeSVCB, mdns.TypeA, mdns.TypeA, mdns.TypeAAAA}
			if !slices.Equal(types, want) {
				t.Fatalf("types %v, want %v", types, want)
			}
			txt := rrs[0].(*mdns.TXT)
			if txt.Hdr.Name != disc {
				t.Errorf("TXT owner %q, want %q", txt.Hdr.Name, disc)
			}
			wantTXT := []string{"v=alknet1", "alpn=alknet/call,doq,alknet/dns,h3",
				"addr=203.0.113.5:4433", "addr=[2001:db8::5]:4433", "addr=198.51.100.9:443", "addr=203.0.113.5:443"}
			if !slices.Equal(txt.Txt, wantTXT) {
				t.Errorf("TXT strings\n got %q\nwant %q", txt.Txt, wantTXT)
			}

			s1, p1 := ztSVCBParams(t, rrs[1])
			s2, p2 := ztSVCBParams(t, rrs[2])
			if s1.Hdr.Name != disc || s1.Priority != 1 || s1.Target != tc.owner || s2.Priority != 2 || s2.Target != tc.owner {
				t.Errorf("SVCB %v / %v: want owner %s, priorities 1 and 2, target %s", s1, s2, disc, tc.owner)
			}
			wantP1 := map[mdns.SVCBKey]string{mdns.SVCB_ALPN: "alknet/call,doq,alknet/dns,h3", mdns.SVCB_PORT: "4433",
				mdns.SVCB_IPV4HINT: "203.0.113.5", mdns.SVCB_IPV6HINT: "2001:db8::5"}
			wantP2 := map[mdns.SVCBKey]string{mdns.SVCB_ALPN: "alknet/call,doq,alknet/dns,h3", mdns.SVCB_PORT: "443",
				mdns.SVCB_IPV4HINT: "198.51.100.9,203.0.113.5"}
			if fmt.Sprint(p1) != fmt.Sprint(wantP1) || fmt.Sprint(p2) != fmt.Sprint(wantP2) {
				t.Errorf("SVCB params\n got %v\n     %v\nwant %v\n     %v", p1, p2, wantP1, wantP2)
			}
			var ips []string
			for _, rr := range rrs[3:] {
				if rr.Header().Name != tc.owner {
					t.Errorf("%v: want owner %s", rr, tc.owner)
				}
				switch r := rr.(type) {
				case *mdns.A:
					ips = append(ips, r.A.String())
				case *mdns.AAAA:
					ips = append(ips, r.AAAA.String())
				}
			}
			if want := []string{"203.0.113.5", "198.51.100.9", "2001:db8::5"}; !slices.Equal(ips, want) {
				t.Errorf("addresses %v, want %v", ips, want)
			}

			// Everything survives the wire, as in a pkarr packet.
			m := new(mdns.Msg)
			m.Answer = rrs
			m.Compress = true
			wire, err := m.Pack()
			if err != nil {
				t.Fatalf("pack: %v", err)
			}
			back := new(mdns.Msg)
			if err := back.Unpack(wire); err != nil {
				t.Fatalf("unpack: %v", err)
			}
			if !slices.Equal(ztRRStrings(back.Answer), ztRRStrings(rrs)) {
				t.Errorf("round trip\n got %q\nwant %q", ztRRStrings(back.Answer), ztRRStrings(rrs))
			}
		})
	}
}

func TestDiscoveryRecordsEdges(t *testing.T) {
	key := ztKey(7)
	t.Run("no services", func(t *testing.T) {
		rrs, err := DiscoveryRecords(key, "", nil, nil, 60)
		if err != nil {
			t.Fatal(err)
		}
		if len(rrs) != 1 || !slices.Equal(rrs[0].(*mdns.TXT).Txt, []string{"v=alknet1"}) {
			t.Errorf("records %q, want the version TXT alone", ztRRStrings(rrs))
		}
	})
	t.Run("ALPNs without addresses", func(t *testing.T) {
		rrs, err := DiscoveryRecords(key, "", []string{"doq"}, nil, 60)
		if err != nil {
			t.Fatal(err)
		}
		if len(rrs) != 2 {
			t.Fatalf("records %q, want TXT and SVCB", ztRRStrings(rrs))
		}
		_, p := ztSVCBParams(t, rrs[1])
		if len(p) != 1 || p[mdns.SVCB_ALPN] != "doq" {
			t.Errorf("SVCB params %v, want alpn alone", p)
		}
	})
	t.Run("long ALPN list split across strings", func(t *testing.T) {
		var alpns []string
		for i := range 40 {
			alpns = append(alpns, fmt.Sprintf("alknet/service-%02d", i)) // 17 bytes each
		}
		alpns = append(alpns, "x/"+strings.Repeat("y", 248)) // exactly 250 bytes: its own string
		rrs, err := DiscoveryRecords(key, "", alpns, nil, 60)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, s := range rrs[0].(*mdns.TXT).Txt[1:] {
			if len(s) > 255 || !strings.HasPrefix(s, "alpn=") {
				t.Fatalf("string %q: want alpn= and at most 255 bytes", s)
			}
			got = append(got, strings.Split(strings.TrimPrefix(s, "alpn="), ",")...)
		}
		if n := len(rrs[0].(*mdns.TXT).Txt) - 1; n < 3 {
			t.Errorf("%d alpn= strings, want the list split", n)
		}
		if !slices.Equal(got, alpns) {
			t.Errorf("union of alpn= strings %q, want %q", got, alpns)
		}
		m := &mdns.Msg{Answer: rrs}
		if _, err := m.Pack(); err != nil {
			t.Errorf("pack: %v", err)
		}
	})
	bad := []struct {
		name  string
		alpns []string
		addrs []netip.AddrPort
	}{
		{"empty ALPN", []string{""}, nil},
		{"ALPN over 250 bytes", []string{strings.Repeat("a", 251)}, nil},
		{"ALPN with a comma", []string{"a,b"}, nil},
		{"ALPN with a blank", []string{"a b"}, nil},
		{"ALPN with a backslash", []string{`a\b`}, nil},
		{"ALPN twice", []string{"doq", "doq"}, nil},
		{"port 0", nil, []netip.AddrPort{netip.MustParseAddrPort("192.0.2.1:0")}},
		{"unspecified", nil, []netip.AddrPort{netip.MustParseAddrPort("0.0.0.0:853")}},
		{"IPv6 zone", nil, []netip.AddrPort{netip.MustParseAddrPort("[fe80::1%eth0]:853")}},
		{"zero value", nil, []netip.AddrPort{{}}},
	}
	for _, b := range bad {
		t.Run(b.name, func(t *testing.T) {
			_, err := DiscoveryRecords(key, "", b.alpns, b.addrs, 60)
			if !errors.Is(err, ErrInvalidService) {
				t.Fatalf("error %v, want ErrInvalidService", err)
			}
			if _, err := NewHandler(Config{}, WithNodeKey(key), WithServices(b.alpns, b.addrs)); !errors.Is(err, ErrInvalidService) {
				t.Errorf("NewHandler error %v, want ErrInvalidService", err)
			}
		})
	}
	if _, err := DiscoveryRecords(key[:31], "", nil, nil, 60); !errors.Is(err, ErrInvalidService) {
		t.Errorf("short key: %v", err)
	}
	if _, err := DiscoveryRecords(key, "bad..origin", nil, nil, 60); !errors.Is(err, ErrInvalidService) {
		t.Errorf("bad origin: %v", err)
	}
	if _, err := NewHandler(Config{}, WithServices([]string{"doq"}, nil)); !errors.Is(err, ErrInvalidService) {
		t.Errorf("WithServices without WithNodeKey: %v", err)
	}
}

func TestNodeZone(t *testing.T) {
	key := ztKey(9)
	z32 := pkarr.ZBase32Key(key)
	start := time.Date(2026, 12, 8, 0, 0, 0, 0, time.UTC)
	alpns := []string{"doq", "alknet/dns"}
	addrs := []netip.AddrPort{netip.MustParseAddrPort("192.0.2.7:853"), netip.MustParseAddrPort("[2001:db8::7]:853")}
	for _, origin := range []string{"", "alk.dev"} {
		t.Run("origin="+origin, func(t *testing.T) {
			h := ztHandler(t, Config{Origin: origin, TTL: 90}, WithNodeKey(key), WithServices(alpns, addrs), WithClock(func() time.Time { return start }))
			apex := NodeName(key, origin)
			upper := strings.ToUpper(z32) + strings.TrimPrefix(apex, z32) // 0x20 on the key label
			ask := func(name string, qtype uint16) *mdns.Msg {
				t.Helper()
				resp := ztServe(t, h, ztQuery(name, qtype))
				if !resp.Authoritative {
					t.Fatalf("%s %s: not authoritative: %v", name, mdns.TypeToString[qtype], resp)
				}
				return resp
			}
			resp := ask(upper, mdns.TypeSOA)
			soa, ok := resp.Answer[0].(*mdns.SOA)
			if !ok || soa.Hdr.Name != apex || soa.Ns != apex || soa.Mbox != "hostmaster."+apex ||
				soa.Serial != uint32(start.Unix()) || soa.Minttl != NegativeTTL || soa.Hdr.Ttl != 90 {
				t.Errorf("SOA %v", resp.Answer)
			}
			if resp.Question[0].Name != upper {
				t.Errorf("question %q, want %q as sent", resp.Question[0].Name, upper)
			}
			resp = ask(apex, mdns.TypeNS)
			if len(resp.Answer) != 1 || resp.Answer[0].(*mdns.NS).Ns != apex || len(resp.Extra) != 2 {
				t.Errorf("NS %q, additional %q: want the apex with its A and AAAA", ztRRStrings(resp.Answer), ztRRStrings(resp.Extra))
			}
			if resp = ask(apex, mdns.TypeA); len(resp.Answer) != 1 || resp.Answer[0].(*mdns.A).A.String() != "192.0.2.7" {
				t.Errorf("A %q", ztRRStrings(resp.Answer))
			}
			if resp = ask(apex, mdns.TypeAAAA); len(resp.Answer) != 1 || resp.Answer[0].(*mdns.AAAA).AAAA.String() != "2001:db8::7" {
				t.Errorf("AAAA %q", ztRRStrings(resp.Answer))
			}
			resp = ask("_alknet."+upper, mdns.TypeTXT)
			want := []string{"v=alknet1", "alpn=doq,alknet/dns", "addr=192.0.2.7:853", "addr=[2001:db8::7]:853"}
			if len(resp.Answer) != 1 || !slices.Equal(resp.Answer[0].(*mdns.TXT).Txt, want) || resp.Answer[0].Header().Ttl != 90 {
				t.Errorf("TXT %q, want %q with TTL 90", ztRRStrings(resp.Answer), want)
			}
			resp = ask("_alknet."+apex, mdns.TypeSVCB)
			if len(resp.Answer) != 1 {
				t.Fatalf("SVCB %q", ztRRStrings(resp.Answer))
			}
			_, p := ztSVCBParams(t, resp.Answer[0])
			if p[mdns.SVCB_ALPN] != "doq,alknet/dns" || p[mdns.SVCB_PORT] != "853" || p[mdns.SVCB_IPV4HINT] != "192.0.2.7" || p[mdns.SVCB_IPV6HINT] != "2001:db8::7" {
				t.Errorf("SVCB params %v", p)
			}
			for _, q := range []struct {
				name  string
				qtype uint16
				rcode int
			}{
				{"nope." + apex, mdns.TypeA, mdns.RcodeNameError},
				{"_alknet." + apex, mdns.TypeA, mdns.RcodeSuccess},
				{apex, mdns.TypeTXT, mdns.RcodeSuccess},
			} {
				resp := ask(q.name, q.qtype)
				if resp.Rcode != q.rcode || len(resp.Answer) != 0 || len(resp.Ns) != 1 || resp.Ns[0].(*mdns.SOA).Hdr.Ttl != NegativeTTL {
					t.Errorf("%s %s: %v; want rcode %s, the SOA with TTL %d", q.name, mdns.TypeToString[q.qtype], resp, mdns.RcodeToString[q.rcode], NegativeTTL)
				}
			}
			// The static zone is still served beside the node zone.
			if resp := ztServe(t, h, ztQuery("www.example.org.", mdns.TypeA)); len(resp.Answer) != 1 {
				t.Errorf("static zone beside the node zone: %v", resp)
			}
		})
	}
	t.Run("node zone and a static zone with its apex", func(t *testing.T) {
		apex := NodeName(key, "")
		path := ztWriteZone(t, t.TempDir(), "node.zone", "$ORIGIN "+apex+"\n@ 60 IN SOA ns h 1 2 3 4 5\n@ 60 IN NS ns\n")
		_, err := NewHandler(Config{Zones: []string{path}}, WithNodeKey(key))
		if !errors.Is(err, ErrBadZone) || !strings.Contains(err.Error(), "node zone") {
			t.Fatalf("error %v, want ErrBadZone naming the node zone", err)
		}
	})
	t.Run("without a node key", func(t *testing.T) {
		h := ztHandler(t, Config{})
		if resp := ztServe(t, h, ztQuery("_alknet."+z32+".", mdns.TypeTXT)); resp.Rcode != mdns.RcodeRefused {
			t.Errorf("rcode %s, want REFUSED", mdns.RcodeToString[resp.Rcode])
		}
	})
	t.Run("bad node key", func(t *testing.T) {
		if _, err := NewHandler(Config{}, WithNodeKey(key[:16])); !errors.Is(err, ErrInvalidService) {
			t.Errorf("error %v, want ErrInvalidService", err)
		}
	})
}
