package dns

import (
	"bytes"
	"crypto/ed25519"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	mdns "github.com/miekg/dns"

	"github.com/alknet/alknet/dns/pkarr"
)

// ztRecorder is a ResponseWriter that keeps what the handler writes.
type ztRecorder struct {
	msgs []*mdns.Msg
}

func (*ztRecorder) LocalAddr() net.Addr  { return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53} }
func (*ztRecorder) RemoteAddr() net.Addr { return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5353} }
func (r *ztRecorder) WriteMsg(m *mdns.Msg) error {
	r.msgs = append(r.msgs, m)
	return nil
}
func (*ztRecorder) Write([]byte) (int, error) { return 0, net.ErrClosed }
func (*ztRecorder) Close() error              { return nil }
func (*ztRecorder) TsigStatus() error         { return nil }
func (*ztRecorder) TsigTimersOnly(bool)       {}
func (*ztRecorder) Hijack()                   {}

// ztKey returns a deterministic Ed25519 public key.
func ztKey(seed byte) ed25519.PublicKey {
	return ed25519.NewKeyFromSeed(slices.Repeat([]byte{seed}, ed25519.SeedSize)).Public().(ed25519.PublicKey)
}

// ztQuery builds a query with ID 0x1234 and RD set.
func ztQuery(name string, qtype uint16) *mdns.Msg {
	m := new(mdns.Msg)
	m.SetQuestion(name, qtype)
	m.Id = 0x1234
	return m
}

// ztServe runs q through ServeDNS, checks that exactly one response was written and
// that it survives a pack and unpack, and returns the unpacked response.
func ztServe(t *testing.T, h *Handler, q *mdns.Msg) *mdns.Msg {
	t.Helper()
	// Serve what a transport would: the query as it arrives on the wire.
	wire, err := q.Pack()
	if err != nil {
		t.Fatalf("pack query: %v", err)
	}
	in := new(mdns.Msg)
	if err := in.Unpack(wire); err != nil {
		t.Fatalf("unpack query: %v", err)
	}
	var w ztRecorder
	h.ServeDNS(&w, in)
	if len(w.msgs) != 1 {
		t.Fatalf("ServeDNS wrote %d messages, want 1", len(w.msgs))
	}
	out, err := w.msgs[0].Pack()
	if err != nil {
		t.Fatalf("pack response: %v\n%v", err, w.msgs[0])
	}
	resp := new(mdns.Msg)
	if err := resp.Unpack(out); err != nil {
		t.Fatalf("unpack response: %v", err)
	}
	if resp.Id != q.Id || !resp.Response || resp.RecursionAvailable {
		t.Fatalf("header: id %#x response %v ra %v; want id %#x, QR=1, RA=0", resp.Id, resp.Response, resp.RecursionAvailable, q.Id)
	}
	return resp
}

// ztHandler returns a handler serving testdata/example.org.zone and, with a key, the
// node zone.
func ztHandler(t *testing.T, cfg Config, opts ...Option) *Handler {
	t.Helper()
	if cfg.Zones == nil {
		cfg.Zones = []string{filepath.Join("testdata", "example.org.zone")}
	}
	h, err := NewHandler(cfg, opts...)
	if err != nil {
		t.Fatalf("NewHandler: %v", err)
	}
	return h
}

// ztRRStrings returns the records in presentation form, TTLs included.
func ztRRStrings(rrs []mdns.RR) []string {
	out := make([]string, 0, len(rrs))
	for _, rr := range rrs {
		out = append(out, rr.String())
	}
	return out
}

func ztHasType(rrs []mdns.RR, t uint16) bool {
	return slices.ContainsFunc(rrs, func(rr mdns.RR) bool { return rr.Header().Rrtype == t })
}

func TestHandlerRules(t *testing.T) {
	h := ztHandler(t, Config{})
	withOpt := func(m *mdns.Msg, version uint8, do bool) *mdns.Msg {
		o := &mdns.OPT{Hdr: mdns.RR_Header{Name: ".", Rrtype: mdns.TypeOPT}}
		o.SetUDPSize(4096)
		o.SetVersion(version)
		if do {
			o.SetDo()
		}
		o.Option = append(o.Option, &mdns.EDNS0_PADDING{Padding: make([]byte, 20)}, &mdns.EDNS0_COOKIE{Code: mdns.EDNS0COOKIE, Cookie: "0102030405060708"})
		m.Extra = append(m.Extra, o)
		return m
	}
	tests := []struct {
		name    string
		q       *mdns.Msg
		rcode   int
		aa      bool
		answer  []uint16 // types in the answer section, in order
		soaAuth bool     // the zone's SOA alone in the authority section
		opt     bool     // an OPT in the response
		echo    bool     // question echoed as sent
	}{
		{name: "answer is authoritative", q: ztQuery("www.example.org.", mdns.TypeA), aa: true, answer: []uint16{mdns.TypeA}, echo: true},
		{name: "apex SOA", q: ztQuery("example.org.", mdns.TypeSOA), aa: true, answer: []uint16{mdns.TypeSOA}, echo: true},
		{name: "NXDOMAIN with SOA", q: ztQuery("nope.example.org.", mdns.TypeA), rcode: mdns.RcodeNameError, aa: true, soaAuth: true, echo: true},
		{name: "NXDOMAIN below an existing name", q: ztQuery("x.www.example.org.", mdns.TypeA), rcode: mdns.RcodeNameError, aa: true, soaAuth: true, echo: true},
		{name: "NODATA with SOA", q: ztQuery("www.example.org.", mdns.TypeTXT), aa: true, soaAuth: true, echo: true},
		{name: "NODATA at an empty non-terminal", q: ztQuery("b.deep.example.org.", mdns.TypeA), aa: true, soaAuth: true, echo: true},
		{name: "REFUSED outside every zone", q: ztQuery("example.com.", mdns.TypeA), rcode: mdns.RcodeRefused, echo: true},
		{name: "REFUSED for the parent of a zone", q: ztQuery("org.", mdns.TypeNS), rcode: mdns.RcodeRefused, echo: true},
		{name: "REFUSED for AXFR", q: ztQuery("example.org.", mdns.TypeAXFR), rcode: mdns.RcodeRefused, echo: true},
		{name: "REFUSED for IXFR", q: ztQuery("example.org.", mdns.TypeIXFR), rcode: mdns.RcodeRefused, echo: true},
		{name: "REFUSED for class CH", q: func() *mdns.Msg {
			m := ztQuery("version.bind.", mdns.TypeTXT)
			m.Question[0].Qclass = mdns.ClassCHAOS
			return m
		}(), rcode: mdns.RcodeRefused, echo: true},
		{name: "REFUSED for class IN zone name in class ANY", q: func() *mdns.Msg {
			m := ztQuery("www.example.org.", mdns.TypeA)
			m.Question[0].Qclass = mdns.ClassANY
			return m
		}(), rcode: mdns.RcodeRefused, echo: true},
		{name: "NOTIMP for NOTIFY", q: func() *mdns.Msg {
			m := ztQuery("example.org.", mdns.TypeSOA)
			m.Opcode = mdns.OpcodeNotify
			return m
		}(), rcode: mdns.RcodeNotImplemented, echo: true},
		{name: "NOTIMP for UPDATE", q: func() *mdns.Msg {
			m := ztQuery("example.org.", mdns.TypeSOA)
			m.Opcode = mdns.OpcodeUpdate
			return m
		}(), rcode: mdns.RcodeNotImplemented, echo: true},
		{name: "FORMERR without a question", q: func() *mdns.Msg {
			m := ztQuery("example.org.", mdns.TypeSOA)
			m.Question = nil
			return m
		}(), rcode: mdns.RcodeFormatError},
		{name: "FORMERR for two questions", q: func() *mdns.Msg {
			m := ztQuery("example.org.", mdns.TypeSOA)
			m.Question = append(m.Question, m.Question[0])
			return m
		}(), rcode: mdns.RcodeFormatError},
		{name: "FORMERR for a response", q: func() *mdns.Msg {
			m := ztQuery("www.example.org.", mdns.TypeA)
			m.Response = true
			return m
		}(), rcode: mdns.RcodeFormatError},
		{name: "FORMERR for two OPT records", q: func() *mdns.Msg {
			m := withOpt(ztQuery("www.example.org.", mdns.TypeA), 0, false)
			return withOpt(m, 0, false)
		}(), rcode: mdns.RcodeFormatError},
		{name: "FORMERR for QTYPE OPT", q: ztQuery("www.example.org.", mdns.TypeOPT), rcode: mdns.RcodeFormatError, echo: true},
		{name: "EDNS echoed", q: withOpt(ztQuery("www.example.org.", mdns.TypeA), 0, false), aa: true, answer: []uint16{mdns.TypeA}, opt: true, echo: true},
		{name: "EDNS echoed on NXDOMAIN", q: withOpt(ztQuery("nope.example.org.", mdns.TypeA), 0, true), rcode: mdns.RcodeNameError, aa: true, soaAuth: true, opt: true, echo: true},
		{name: "EDNS echoed on REFUSED", q: withOpt(ztQuery("example.com.", mdns.TypeA), 0, false), rcode: mdns.RcodeRefused, opt: true, echo: true},
		{name: "BADVERS", q: withOpt(ztQuery("www.example.org.", mdns.TypeA), 1, false), rcode: mdns.RcodeBadVers, opt: true, echo: true},
		{name: "BADVERS before NOTIMP", q: func() *mdns.Msg {
			m := withOpt(ztQuery("www.example.org.", mdns.TypeA), 2, false)
			m.Opcode = mdns.OpcodeStatus
			return m
		}(), rcode: mdns.RcodeBadVers, opt: true, echo: true},
		{name: "ANY gets one HINFO", q: ztQuery("www.example.org.", mdns.TypeANY), aa: true, answer: []uint16{mdns.TypeHINFO}, echo: true},
		{name: "ANY at a missing name", q: ztQuery("nope.example.org.", mdns.TypeANY), rcode: mdns.RcodeNameError, aa: true, soaAuth: true, echo: true},
		{name: "ANY at an empty non-terminal", q: ztQuery("deep.example.org.", mdns.TypeANY), aa: true, soaAuth: true, echo: true},
		{name: "mixed case matches, echoed as sent", q: ztQuery("wWw.ExAmPlE.oRg.", mdns.TypeAAAA), aa: true, answer: []uint16{mdns.TypeAAAA}, echo: true},
		{name: "mixed case NXDOMAIN", q: ztQuery("NoPe.EXAMPLE.org.", mdns.TypeA), rcode: mdns.RcodeNameError, aa: true, soaAuth: true, echo: true},
		{name: "DO ignored", q: withOpt(ztQuery("www.example.org.", mdns.TypeA), 0, true), aa: true, answer: []uint16{mdns.TypeA}, opt: true, echo: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := ztServe(t, h, tt.q)
			if resp.Rcode != tt.rcode {
				t.Fatalf("rcode %s, want %s\n%v", mdns.RcodeToString[resp.Rcode], mdns.RcodeToString[tt.rcode], resp)
			}
			if resp.Authoritative != tt.aa {
				t.Errorf("AA %v, want %v", resp.Authoritative, tt.aa)
			}
			if resp.Opcode != tt.q.Opcode || resp.RecursionDesired != tt.q.RecursionDesired {
				t.Errorf("opcode %d RD %v, want %d %v", resp.Opcode, resp.RecursionDesired, tt.q.Opcode, tt.q.RecursionDesired)
			}
			var got []uint16
			for _, rr := range resp.Answer {
				got = append(got, rr.Header().Rrtype)
			}
			if !slices.Equal(got, tt.answer) {
				t.Errorf("answer types %v, want %v\n%v", got, tt.answer, resp)
			}
			if tt.soaAuth {
				if len(resp.Ns) != 1 || resp.Ns[0].Header().Rrtype != mdns.TypeSOA {
					t.Fatalf("authority %v, want the SOA alone", ztRRStrings(resp.Ns))
				}
				soa := resp.Ns[0].(*mdns.SOA)
				if soa.Hdr.Name != "example.org." || soa.Hdr.Ttl != 300 || soa.Serial != 2026120801 {
					t.Errorf("SOA %v: want example.org. with TTL min(3600, 300) and the file's serial", soa)
				}
			} else if resp.Rcode != mdns.RcodeSuccess && len(resp.Ns) > 0 {
				t.Errorf("authority %v, want empty", ztRRStrings(resp.Ns))
			}
			opt := resp.IsEdns0()
			if (opt != nil) != tt.opt {
				t.Fatalf("OPT in response: %v, want %v", opt != nil, tt.opt)
			}
			if opt != nil {
				if opt.Version() != 0 || opt.UDPSize() != EDNSUDPSize || len(opt.Option) != 0 {
					t.Errorf("OPT %v: want version 0, size %d, no options", opt, EDNSUDPSize)
				}
				if qo := tt.q.IsEdns0(); opt.Do() != qo.Do() {
					t.Errorf("DO %v, want the query's %v", opt.Do(), qo.Do())
				}
			}
			if tt.echo {
				if len(resp.Question) != 1 || resp.Question[0] != tt.q.Question[0] {
					t.Errorf("question %v, want %v exactly", resp.Question, tt.q.Question)
				}
			} else if len(resp.Question) != 0 {
				t.Errorf("question %v, want none", resp.Question)
			}
			if resp.Rcode == mdns.RcodeRefused && (len(resp.Answer)+len(resp.Ns) > 0 || resp.Authoritative) {
				t.Errorf("REFUSED with records or AA: %v", resp)
			}
		})
	}
}

func TestZeroHandlerRefuses(t *testing.T) {
	var h Handler
	if resp := ztServe(t, &h, ztQuery("www.example.org.", mdns.TypeA)); resp.Rcode != mdns.RcodeRefused {
		t.Errorf("zero Handler: rcode %s, want REFUSED", mdns.RcodeToString[resp.Rcode])
	}
}

func TestHandlerAnswers(t *testing.T) {
	h := ztHandler(t, Config{})
	tests := []struct {
		name   string
		qname  string
		qtype  uint16
		rcode  int
		aa     bool
		answer []string
		ns     []string
		extra  []string
	}{
		{name: "A", qname: "www.example.org.", qtype: mdns.TypeA,
			aa: true, answer: []string{"www.example.org.\t3600\tIN\tA\t192.0.2.80"}},
		{name: "TXT strings", qname: "txt.example.org.", qtype: mdns.TypeTXT,
			aa: true, answer: []string{"txt.example.org.\t3600\tIN\tTXT\t\"hello\" \"world\""}},
		{name: "MX with the target's address", qname: "example.org.", qtype: mdns.TypeMX,
			aa: true, answer: []string{"example.org.\t3600\tIN\tMX\t10 mail.example.org."},
			extra: []string{"mail.example.org.\t3600\tIN\tA\t192.0.2.25"}},
		{name: "NS with in-zone glue only", qname: "example.org.", qtype: mdns.TypeNS,
			aa: true, answer: []string{"example.org.\t3600\tIN\tNS\tns1.example.org.", "example.org.\t3600\tIN\tNS\tns2.example.net."},
			extra: []string{"ns1.example.org.\t3600\tIN\tA\t192.0.2.1", "ns1.example.org.\t3600\tIN\tAAAA\t2001:db8::1"}},
		{name: "CNAME followed", qname: "alias.example.org.", qtype: mdns.TypeA,
			aa: true, answer: []string{"alias.example.org.\t3600\tIN\tCNAME\twww.example.org.", "www.example.org.\t3600\tIN\tA\t192.0.2.80"}},
		{name: "CNAME chain followed", qname: "chain1.example.org.", qtype: mdns.TypeAAAA,
			aa: true, answer: []string{"chain1.example.org.\t3600\tIN\tCNAME\tchain2.example.org.", "chain2.example.org.\t3600\tIN\tCNAME\twww.example.org.", "www.example.org.\t3600\tIN\tAAAA\t2001:db8::80"}},
		{name: "CNAME to a name without the type", qname: "alias.example.org.", qtype: mdns.TypeTXT,
			aa: true, answer: []string{"alias.example.org.\t3600\tIN\tCNAME\twww.example.org."},
			ns: []string{"example.org.\t300\tIN\tSOA\tns1.example.org. hostmaster.example.org. 2026120801 7200 3600 1209600 300"}},
		{name: "CNAME asked for", qname: "alias.example.org.", qtype: mdns.TypeCNAME,
			aa: true, answer: []string{"alias.example.org.\t3600\tIN\tCNAME\twww.example.org."}},
		{name: "out-of-zone CNAME target as is", qname: "outside.example.org.", qtype: mdns.TypeA,
			aa: true, answer: []string{"outside.example.org.\t3600\tIN\tCNAME\twww.example.net."}},
		{name: "dangling CNAME is NXDOMAIN (RFC 6604)", qname: "dangling.example.org.", qtype: mdns.TypeA,
			rcode: mdns.RcodeNameError, aa: true, answer: []string{"dangling.example.org.\t3600\tIN\tCNAME\tnothing.example.org."},
			ns: []string{"example.org.\t300\tIN\tSOA\tns1.example.org. hostmaster.example.org. 2026120801 7200 3600 1209600 300"}},
		{name: "CNAME loop ends", qname: "loop1.example.org.", qtype: mdns.TypeA,
			aa: true, answer: []string{"loop1.example.org.\t3600\tIN\tCNAME\tloop2.example.org.", "loop2.example.org.\t3600\tIN\tCNAME\tloop1.example.org."}},
		{name: "referral at a delegation", qname: "sub.example.org.", qtype: mdns.TypeA,
			ns:    []string{"sub.example.org.\t3600\tIN\tNS\tns.sub.example.org."},
			extra: []string{"ns.sub.example.org.\t3600\tIN\tA\t192.0.2.53"}},
		{name: "referral below a delegation", qname: "deeper.ns.sub.example.org.", qtype: mdns.TypeA,
			ns:    []string{"sub.example.org.\t3600\tIN\tNS\tns.sub.example.org."},
			extra: []string{"ns.sub.example.org.\t3600\tIN\tA\t192.0.2.53"}},
		{name: "DS at a delegation from the parent", qname: "sub.example.org.", qtype: mdns.TypeDS,
			aa: true, ns: []string{"example.org.\t300\tIN\tSOA\tns1.example.org. hostmaster.example.org. 2026120801 7200 3600 1209600 300"}},
		{name: "ANY HINFO owner as sent", qname: "WWW.example.org.", qtype: mdns.TypeANY,
			aa: true, answer: []string{"WWW.example.org.\t3600\tIN\tHINFO\t\"RFC8482\" \"\""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := ztServe(t, h, ztQuery(tt.qname, tt.qtype))
			if resp.Rcode != tt.rcode || resp.Authoritative != tt.aa {
				t.Fatalf("rcode %s AA %v, want %s %v\n%v", mdns.RcodeToString[resp.Rcode], resp.Authoritative, mdns.RcodeToString[tt.rcode], tt.aa, resp)
			}
			check := func(section string, got []mdns.RR, want []string) {
				t.Helper()
				if g := ztRRStrings(got); !slices.Equal(g, want) {
					t.Errorf("%s:\n got %q\nwant %q", section, g, want)
				}
			}
			check("answer", resp.Answer, tt.answer)
			check("authority", resp.Ns, tt.ns)
			check("additional", resp.Extra, tt.extra)
		})
	}
}

// ztWriteZone writes a zone file into dir and returns its path.
func ztWriteZone(t *testing.T, dir, name, text string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const ztApex = "$ORIGIN test.\n$TTL 60\n@ IN SOA ns.test. hostmaster.test. 1 2 3 4 5\n@ IN NS ns\nns IN A 192.0.2.1\n"

func TestCNAMEChainCap(t *testing.T) {
	var b strings.Builder
	b.WriteString(ztApex)
	for i := range 12 {
		b.WriteString("c" + string(rune('a'+i)) + " IN CNAME c" + string(rune('a'+i+1)) + "\n")
	}
	b.WriteString("cm IN A 192.0.2.9\n")
	h := ztHandler(t, Config{Zones: []string{ztWriteZone(t, t.TempDir(), "test.zone", b.String())}})

	resp := ztServe(t, h, ztQuery("ca.test.", mdns.TypeA))
	if len(resp.Answer) != MaxCNAMEChain || resp.Rcode != mdns.RcodeSuccess || !resp.Authoritative {
		t.Fatalf("a 12-link chain: %d records, rcode %d; want the first %d CNAMEs, NOERROR\n%v", len(resp.Answer), resp.Rcode, MaxCNAMEChain, resp)
	}
	for _, rr := range resp.Answer {
		if rr.Header().Rrtype != mdns.TypeCNAME {
			t.Fatalf("answer %v: want CNAMEs only", rr)
		}
	}
	// Within the cap the chain is followed to its address.
	resp = ztServe(t, h, ztQuery("ch.test.", mdns.TypeA)) // ch..cl: 5 CNAMEs, then cm A
	if len(resp.Answer) != 6 || !ztHasType(resp.Answer, mdns.TypeA) {
		t.Fatalf("a 5-link chain: %v, want 5 CNAMEs and the A", ztRRStrings(resp.Answer))
	}
}

// ztSigned is a SignedZones with fixed records.
type ztSigned map[string][]mdns.RR

func (s ztSigned) Records(key ed25519.PublicKey) ([]mdns.RR, bool) {
	rrs, ok := s[pkarr.ZBase32Key(key)]
	return rrs, ok
}

func TestSignedZones(t *testing.T) {
	node, other, unknown := ztKey(1), ztKey(2), ztKey(3)
	z32 := pkarr.ZBase32Key(other)
	mustRR := func(s string) mdns.RR {
		rr, err := mdns.NewRR(s)
		if err != nil {
			t.Fatal(err)
		}
		return rr
	}
	signed := ztSigned{z32: {
		mustRR("_alknet." + z32 + ". 300 IN TXT \"v=alknet1\" \"addr=198.51.100.7:4433\""),
		mustRR(z32 + ". 300 IN A 198.51.100.7"),
		mustRR("www." + z32 + ". 300 IN CNAME " + z32 + "."),
		mustRR("stray.example.com. 300 IN A 203.0.113.1"), // not under the TLD: left out
	}}
	for _, origin := range []string{"", "alk.dev"} {
		t.Run("origin="+origin, func(t *testing.T) {
			h := ztHandler(t, Config{Origin: origin}, WithNodeKey(node), WithSignedZones(signed))
			resp := ztServe(t, h, ztQuery("_ALKNET."+strings.ToUpper(z32)+".", mdns.TypeTXT))
			if resp.Rcode != mdns.RcodeSuccess || !resp.Authoritative || len(resp.Answer) != 1 {
				t.Fatalf("TXT: %v", resp)
			}
			if got := resp.Answer[0].(*mdns.TXT).Txt; !slices.Equal(got, []string{"v=alknet1", "addr=198.51.100.7:4433"}) {
				t.Errorf("TXT strings %q", got)
			}
			resp = ztServe(t, h, ztQuery("www."+z32+".", mdns.TypeA))
			if len(resp.Answer) != 2 || !ztHasType(resp.Answer, mdns.TypeA) {
				t.Errorf("CNAME to the apex A: %v", ztRRStrings(resp.Answer))
			}
			// Negative answers carry the synthesized SOA of "<z32>.".
			for _, q := range []*mdns.Msg{ztQuery("nope."+z32+".", mdns.TypeA), ztQuery(z32+".", mdns.TypeAAAA)} {
				resp = ztServe(t, h, q)
				wantRcode := mdns.RcodeNameError
				if q.Question[0].Qtype == mdns.TypeAAAA {
					wantRcode = mdns.RcodeSuccess
				}
				if resp.Rcode != wantRcode || !resp.Authoritative || len(resp.Ns) != 1 {
					t.Fatalf("%v: %v", q.Question[0], resp)
				}
				soa, ok := resp.Ns[0].(*mdns.SOA)
				if !ok || soa.Hdr.Name != z32+"." || soa.Ns != z32+"." || soa.Serial != 1 || soa.Hdr.Ttl != NegativeTTL {
					t.Errorf("synthesized SOA %v", resp.Ns[0])
				}
			}
			for _, name := range []string{"stray.example.com.", pkarr.ZBase32Key(unknown) + ".", "x." + pkarr.ZBase32Key(unknown) + "."} {
				if resp := ztServe(t, h, ztQuery(name, mdns.TypeA)); resp.Rcode != mdns.RcodeRefused {
					t.Errorf("%s: rcode %s, want REFUSED", name, mdns.RcodeToString[resp.Rcode])
				}
			}
			// The node's own bare TLD: the node zone when the origin is empty, the
			// signed records (none here) otherwise.
			resp = ztServe(t, h, ztQuery(DiscoveryLabel+"."+pkarr.ZBase32Key(node)+".", mdns.TypeTXT))
			if origin == "" && (resp.Rcode != mdns.RcodeSuccess || len(resp.Answer) != 1) {
				t.Errorf("own TLD, empty origin: %v", resp)
			}
			if origin != "" && resp.Rcode != mdns.RcodeRefused {
				t.Errorf("own TLD, origin %q: rcode %s, want REFUSED", origin, mdns.RcodeToString[resp.Rcode])
			}
		})
	}
	t.Run("without SignedZones", func(t *testing.T) {
		h := ztHandler(t, Config{})
		if resp := ztServe(t, h, ztQuery("_alknet."+z32+".", mdns.TypeTXT)); resp.Rcode != mdns.RcodeRefused {
			t.Errorf("rcode %s, want REFUSED", mdns.RcodeToString[resp.Rcode])
		}
	})
}

func TestReload(t *testing.T) {
	dir := t.TempDir()
	path := ztWriteZone(t, dir, "test.zone", ztApex+"www IN A 192.0.2.80\n")
	h := ztHandler(t, Config{Zones: []string{path}})
	addr := func() string {
		t.Helper()
		resp := ztServe(t, h, ztQuery("www.test.", mdns.TypeA))
		if len(resp.Answer) != 1 {
			t.Fatalf("www.test: %v", resp)
		}
		return resp.Answer[0].(*mdns.A).A.String()
	}

	ztWriteZone(t, dir, "test.zone", ztApex+"www IN A 192.0.2.81\n")
	if err := h.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if got := addr(); got != "192.0.2.81" {
		t.Fatalf("after reload: %s, want the new address", got)
	}

	broken := []struct{ name, text string }{
		{"syntax", ztApex + "www IN A not-an-address\n"},
		{"no NS", "$ORIGIN test.\n@ 60 IN SOA ns.test. h.test. 1 2 3 4 5\nwww 60 IN A 192.0.2.82\n"},
		{"out of zone", ztApex + "www.example.com. IN A 192.0.2.82\n"},
	}
	for _, b := range broken {
		ztWriteZone(t, dir, "test.zone", b.text)
		err := h.Reload()
		if err == nil || !strings.Contains(err.Error(), path) {
			t.Fatalf("%s: Reload error %v, want one naming %s", b.name, err, path)
		}
		if got := addr(); got != "192.0.2.81" {
			t.Fatalf("%s: after a failed reload: %s, want the old zone's address", b.name, got)
		}
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := h.Reload(); err == nil {
		t.Fatal("Reload of a missing file succeeded")
	}
	if got := addr(); got != "192.0.2.81" {
		t.Fatalf("after a missing file: %s, want the old zone's address", got)
	}
}

// TestServeDuringReload runs queries while zones are swapped; under -race it checks
// that ServeDNS and Reload share nothing unsynchronized, and that every answer comes
// whole from one version of the zone.
func TestServeDuringReload(t *testing.T) {
	dir := t.TempDir()
	zoneText := func(last byte) string {
		return ztApex + "www IN A 192.0.2." + string('0'+last) + "\nwww IN AAAA 2001:db8::" + string('0'+last) + "\n"
	}
	path := ztWriteZone(t, dir, "test.zone", zoneText(1))
	h := ztHandler(t, Config{Zones: []string{path}}, WithNodeKey(ztKey(1)), WithServices([]string{"doq"}, []netip.AddrPort{netip.MustParseAddrPort("192.0.2.1:853")}))

	const readers, queries = 4, 200
	var wg sync.WaitGroup
	errs := make(chan string, readers)
	for range readers {
		wg.Go(func() {
			for range queries {
				var w ztRecorder
				h.ServeDNS(&w, ztQuery("www.test.", mdns.TypeA))
				if len(w.msgs) != 1 || len(w.msgs[0].Answer) != 1 {
					errs <- "bad answer during reload"
					return
				}
				if _, err := w.msgs[0].Pack(); err != nil {
					errs <- err.Error()
					return
				}
			}
		})
	}
	for i := range 20 {
		ztWriteZone(t, dir, "test.zone", zoneText(byte(i%9+1)))
		if err := h.Reload(); err != nil {
			t.Errorf("Reload: %v", err)
		}
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

// The pkarr relay's verified cache is a SignedZones (contract 2 of the dns work split).
var _ SignedZones = (*pkarr.Relay)(nil)

// TestHandlerLogs checks that queries are never logged and that a reload is logged
// without the zone files' paths.
func TestHandlerLogs(t *testing.T) {
	var buf ztLogBuffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	dir := t.TempDir()
	path := ztWriteZone(t, dir, "secret-name.zone", ztApex+"www IN A 192.0.2.80\n")
	h := ztHandler(t, Config{Zones: []string{path}}, WithLogger(log), WithNodeKey(ztKey(1)))
	for _, name := range []string{"www.test.", "nope.test.", "private-query.example.com."} {
		ztServe(t, h, ztQuery(name, mdns.TypeA))
	}
	if s := buf.String(); s != "" {
		t.Fatalf("queries logged: %q", s)
	}
	if err := h.Reload(); err != nil {
		t.Fatal(err)
	}
	s := buf.String()
	if !strings.Contains(s, "dns zones reloaded") || !strings.Contains(s, "zones=1") || !strings.Contains(s, "records=4") {
		t.Errorf("reload line %q: want the zone and record counts", s)
	}
	if strings.Contains(s, "secret-name") || strings.Contains(s, dir) {
		t.Errorf("reload line %q names a file", s)
	}
	buf.Reset()
	ztWriteZone(t, dir, "secret-name.zone", "broken")
	if err := h.Reload(); err == nil {
		t.Fatal("broken file reloaded")
	}
	if s := buf.String(); s != "" {
		t.Errorf("failed reload logged %q: the error is the caller's to log", s)
	}
}

// ztLogBuffer is a bytes.Buffer safe for a logger's concurrent writes.
type ztLogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *ztLogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *ztLogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *ztLogBuffer) Reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Reset()
}

// BenchmarkAnswer measures the zone logic alone: a static-zone A query, a node-zone
// discovery TXT query and an NXDOMAIN, each packed as a transport would.
func BenchmarkAnswer(b *testing.B) {
	key := ztKey(1)
	h, err := NewHandler(Config{Origin: "alk.dev", Zones: []string{filepath.Join("testdata", "example.org.zone")}},
		WithNodeKey(key), WithServices([]string{"doq", "alknet/dns"}, []netip.AddrPort{netip.MustParseAddrPort("192.0.2.1:853")}))
	if err != nil {
		b.Fatal(err)
	}
	for _, q := range []*mdns.Msg{
		ztQuery("www.example.org.", mdns.TypeA),
		ztQuery("_alknet."+NodeName(key, "alk.dev"), mdns.TypeTXT),
		ztQuery("nope.example.org.", mdns.TypeA),
	} {
		b.Run(q.Question[0].Name+mdns.TypeToString[q.Question[0].Qtype], func(b *testing.B) {
			b.ReportAllocs()
			buf := make([]byte, 0, 4096)
			for b.Loop() {
				if _, err := h.Answer(q).PackBuffer(buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
