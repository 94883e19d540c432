package dns

import (
	"net/netip"
	"path/filepath"
	"testing"

	mdns "github.com/miekg/dns"

	"github.com/alknet/alknet/dns/pkarr"
)

// FuzzServeDNS feeds arbitrary messages to the handler: whatever unpacks must get
// exactly one response, with the query's ID and QR=1, that packs.
func FuzzServeDNS(f *testing.F) {
	node, other := ztKey(1), ztKey(2)
	z32 := pkarr.ZBase32Key(other)
	signed := ztSigned{z32: nil}
	if rr, err := mdns.NewRR("_alknet." + z32 + ". 60 IN TXT \"v=alknet1\""); err == nil {
		signed[z32] = []mdns.RR{rr}
	}
	h, err := NewHandler(Config{Origin: "alk.dev", Zones: []string{filepath.Join("testdata", "example.org.zone")}},
		WithNodeKey(node), WithSignedZones(signed),
		WithServices([]string{"doq", "alknet/dns"}, []netip.AddrPort{netip.MustParseAddrPort("192.0.2.1:853"), netip.MustParseAddrPort("[2001:db8::1]:853")}))
	if err != nil {
		f.Fatal(err)
	}

	seed := func(m *mdns.Msg) {
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, q := range []struct {
		name  string
		qtype uint16
	}{
		{"www.example.org.", mdns.TypeA},
		{"alias.example.org.", mdns.TypeA},
		{"loop1.example.org.", mdns.TypeAAAA},
		{"sub.example.org.", mdns.TypeDS},
		{"nope.example.org.", mdns.TypeANY},
		{"_alknet." + NodeName(node, "alk.dev"), mdns.TypeSVCB},
		{"_ALKNET." + z32 + ".", mdns.TypeTXT},
		{"example.com.", mdns.TypeAXFR},
	} {
		seed(ztQuery(q.name, q.qtype))
		m := ztQuery(q.name, q.qtype)
		m.SetEdns0(4096, true)
		seed(m)
	}
	m := ztQuery("www.example.org.", mdns.TypeA)
	m.SetEdns0(512, false)
	m.IsEdns0().SetVersion(1)
	seed(m)
	m = ztQuery("www.example.org.", mdns.TypeA)
	m.Opcode = mdns.OpcodeUpdate
	seed(m)
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}) // header only

	f.Fuzz(func(t *testing.T, b []byte) {
		req := new(mdns.Msg)
		if err := req.Unpack(b); err != nil {
			return
		}
		var w ztRecorder
		h.ServeDNS(&w, req)
		if len(w.msgs) != 1 {
			t.Fatalf("%d responses, want 1", len(w.msgs))
		}
		resp := w.msgs[0]
		if resp.Id != req.Id || !resp.Response || resp.RecursionAvailable {
			t.Fatalf("header %+v for a query with ID %#x", resp.MsgHdr, req.Id)
		}
		if _, err := resp.Pack(); err != nil {
			t.Fatalf("response does not pack: %v\n%v", err, resp)
		}
	})
}
