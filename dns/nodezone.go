package dns

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/alknet/alknet/dns/pkarr"
)

// DiscoveryLabel is the label of the discovery records: "_alknet.<z32>.<origin>.".
const DiscoveryLabel = "_alknet"

// DiscoveryVersion is the first string of the discovery TXT record.
const DiscoveryVersion = "v=alknet1"

// Synthesized SOA timers of the node zone and of other keys' signed zones, in
// seconds. The minimum is the TTL of negative answers (RFC 2308).
const (
	soaRefresh = 3600
	soaRetry   = 600
	soaExpire  = 86400
	// NegativeTTL is the SOA minimum of synthesized zones: how long resolvers may
	// cache an NXDOMAIN or NODATA answer from them.
	NegativeTTL = 60
)

// maxTXTString is the longest character-string of a TXT record (RFC 1035 §3.3).
const maxTXTString = 255

// ErrInvalidService is wrapped by the errors of DiscoveryRecords and WithServices about
// an ALPN or address that cannot be published.
var ErrInvalidService = errors.New("invalid service for discovery records")

// NodeName returns the node zone's owner "<z32>.<origin>." for key ("<z32>." when
// origin is empty), lower case. It panics if key is not an Ed25519 public key, like
// pkarr.ZBase32Key; origin is not checked (Config.Validate does).
func NodeName(key ed25519.PublicKey, origin string) string {
	z32 := pkarr.ZBase32Key(key)
	o := mdns.CanonicalName(origin)
	if o == "" || o == "." {
		return z32 + "."
	}
	return z32 + "." + o
}

// DiscoveryRecords returns the node's service-discovery records, the ones the node
// zone serves and the ones a pkarr packet carries (with origin ""), all with the given
// TTL and class IN, in this order:
//
//   - "_alknet.<z32>.<origin>." TXT, whose strings are "v=alknet1"; then
//     "alpn=<comma-separated ALPNs>", repeated when the list does not fit one
//     255-byte string (the ALPN set is the union of the alpn= strings; no ALPN is
//     split); then one "addr=<ip:port>" per address (IPv6 in brackets). There is no
//     alpn= string when alpns is empty.
//   - at the same owner, SVCB records (RFC 9460) in ServiceMode with target
//     "<z32>.<origin>." and the parameters alpn, port, ipv4hint and ipv6hint: one
//     record per distinct port, in the order the ports first appear in addrs, with
//     priority 1, 2, ...; a single record with alpn alone when addrs is empty. There
//     is no SVCB record when alpns is empty.
//   - "<z32>.<origin>." A and AAAA records, one per distinct address.
//
// ALPNs must be 1 to 250 bytes of printable ASCII without ',', '\' or '"', and
// distinct; addresses must be valid, non-zero ports, not unspecified, without an IPv6
// zone (IPv4-mapped IPv6 addresses are unmapped; duplicates are dropped). Errors wrap
// ErrInvalidService.
func DiscoveryRecords(key ed25519.PublicKey, origin string, alpns []string, addrs []netip.AddrPort, ttl uint32) ([]mdns.RR, error) {
	if len(key) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: node key of %d bytes, want %d", ErrInvalidService, len(key), ed25519.PublicKeySize)
	}
	o, err := nodeOrigin(origin)
	if err != nil {
		return nil, fmt.Errorf("%w: origin %w", ErrInvalidService, err)
	}
	if err := checkALPNs(alpns); err != nil {
		return nil, err
	}
	addrs, err = cleanAddrs(addrs)
	if err != nil {
		return nil, err
	}
	owner := NodeName(key, o)
	disc := DiscoveryLabel + "." + owner
	hdr := func(name string, t uint16) mdns.RR_Header {
		return mdns.RR_Header{Name: name, Rrtype: t, Class: mdns.ClassINET, Ttl: ttl}
	}

	txt := &mdns.TXT{Hdr: hdr(disc, mdns.TypeTXT), Txt: []string{DiscoveryVersion}}
	txt.Txt = append(txt.Txt, alpnStrings(alpns)...)
	for _, ap := range addrs {
		txt.Txt = append(txt.Txt, "addr="+ap.String())
	}
	rrs := []mdns.RR{txt}

	if len(alpns) > 0 {
		rrs = append(rrs, svcbRecords(hdr(disc, mdns.TypeSVCB), owner, alpns, addrs)...)
	}
	for _, ap := range addrs {
		if ip := ap.Addr(); ip.Is4() {
			rrs = append(rrs, &mdns.A{Hdr: hdr(owner, mdns.TypeA), A: net.IP(ip.AsSlice())})
		}
	}
	for _, ap := range addrs {
		if ip := ap.Addr(); ip.Is6() {
			rrs = append(rrs, &mdns.AAAA{Hdr: hdr(owner, mdns.TypeAAAA), AAAA: net.IP(ip.AsSlice())})
		}
	}
	return dedupeAddrRecords(rrs), nil
}

// checkALPNs checks that every ALPN can be published in a TXT string and an SVCB alpn
// parameter.
func checkALPNs(alpns []string) error {
	for i, a := range alpns {
		if a == "" || len(a) > maxTXTString-len("alpn=") {
			return fmt.Errorf("%w: ALPN %d has %d bytes (want 1 to %d)", ErrInvalidService, i, len(a), maxTXTString-len("alpn="))
		}
		for j := range len(a) {
			if c := a[j]; c <= ' ' || c >= 0x7f || c == ',' || c == '\\' || c == '"' {
				return fmt.Errorf("%w: ALPN %q: want printable ASCII without ',', '\\', '\"' or blanks", ErrInvalidService, clip(a))
			}
		}
		if slices.Contains(alpns[:i], a) {
			return fmt.Errorf("%w: ALPN %q listed twice", ErrInvalidService, clip(a))
		}
	}
	return nil
}

// cleanAddrs checks, unmaps and de-duplicates addresses, keeping their order.
func cleanAddrs(addrs []netip.AddrPort) ([]netip.AddrPort, error) {
	out := make([]netip.AddrPort, 0, len(addrs))
	for _, ap := range addrs {
		if err := checkServiceAddr(ap); err != nil {
			return nil, fmt.Errorf("%w: address %s: %w", ErrInvalidService, ap, err)
		}
		ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
		if !slices.Contains(out, ap) {
			out = append(out, ap)
		}
	}
	return out, nil
}

// alpnStrings packs the ALPNs into as few "alpn=a,b,c" strings of at most 255 bytes
// as keeps every ALPN whole.
func alpnStrings(alpns []string) []string {
	var out []string
	var cur strings.Builder
	for _, a := range alpns {
		if cur.Len() > 0 && cur.Len()+1+len(a) > maxTXTString {
			out = append(out, cur.String())
			cur.Reset()
		}
		if cur.Len() == 0 {
			cur.WriteString("alpn=")
		} else {
			cur.WriteByte(',')
		}
		cur.WriteString(a)
	}
	if cur.Len() > 0 {
		out = append(out, cur.String())
	}
	return out
}

// svcbRecords returns one ServiceMode SVCB per distinct port (priority by first
// appearance) or, without addresses, one with the alpn parameter alone. Parameters
// are in ascending key order, as RFC 9460 §2.2 requires on the wire.
func svcbRecords(hdr mdns.RR_Header, target string, alpns []string, addrs []netip.AddrPort) []mdns.RR {
	if len(addrs) == 0 {
		return []mdns.RR{&mdns.SVCB{Hdr: hdr, Priority: 1, Target: target,
			Value: []mdns.SVCBKeyValue{&mdns.SVCBAlpn{Alpn: slices.Clone(alpns)}}}}
	}
	var ports []uint16
	for _, ap := range addrs {
		if !slices.Contains(ports, ap.Port()) {
			ports = append(ports, ap.Port())
		}
	}
	out := make([]mdns.RR, 0, len(ports))
	for i, port := range ports {
		var v4, v6 []net.IP
		for _, ap := range addrs {
			if ap.Port() != port {
				continue
			}
			if ip := ap.Addr(); ip.Is4() {
				v4 = append(v4, net.IP(ip.AsSlice()))
			} else {
				v6 = append(v6, net.IP(ip.AsSlice()))
			}
		}
		kv := []mdns.SVCBKeyValue{&mdns.SVCBAlpn{Alpn: slices.Clone(alpns)}, &mdns.SVCBPort{Port: port}}
		if len(v4) > 0 {
			kv = append(kv, &mdns.SVCBIPv4Hint{Hint: v4})
		}
		if len(v6) > 0 {
			kv = append(kv, &mdns.SVCBIPv6Hint{Hint: v6})
		}
		out = append(out, &mdns.SVCB{Hdr: hdr, Priority: uint16(min(i+1, 0xffff)), Target: target, Value: kv})
	}
	return out
}

// dedupeAddrRecords drops A/AAAA records repeating an address (two ports on one IP).
func dedupeAddrRecords(rrs []mdns.RR) []mdns.RR {
	out := rrs[:0]
	seen := make(map[string]bool)
	for _, rr := range rrs {
		var ip net.IP
		switch r := rr.(type) {
		case *mdns.A:
			ip = r.A
		case *mdns.AAAA:
			ip = r.AAAA
		default:
			out = append(out, rr)
			continue
		}
		if !seen[string(ip)] {
			seen[string(ip)] = true
			out = append(out, rr)
		}
	}
	return out
}

// synthSOA returns the SOA of a synthesized zone: primary name server the apex
// itself, mailbox "hostmaster.<apex>", the given serial and TTL, and the timers above.
func synthSOA(apex string, serial, ttl uint32) *mdns.SOA {
	return &mdns.SOA{
		Hdr:     mdns.RR_Header{Name: apex, Rrtype: mdns.TypeSOA, Class: mdns.ClassINET, Ttl: ttl},
		Ns:      apex,
		Mbox:    "hostmaster." + apex,
		Serial:  serial,
		Refresh: soaRefresh,
		Retry:   soaRetry,
		Expire:  soaExpire,
		Minttl:  NegativeTTL,
	}
}

// buildNodeZone returns the node zone "<z32>.<origin>.": at the apex a synthesized SOA
// (serial: the Unix time of start, modulo 2^32), an NS record naming the apex itself
// and the A/AAAA records of the addresses; at "_alknet" the discovery TXT and SVCB
// records (DiscoveryRecords). Every record has the TTL ttl.
func buildNodeZone(key ed25519.PublicKey, origin string, alpns []string, addrs []netip.AddrPort, ttl uint32, start time.Time) (*zone, error) {
	disc, err := DiscoveryRecords(key, origin, alpns, addrs, ttl)
	if err != nil {
		return nil, err
	}
	apex := NodeName(key, origin)
	b := newZoneBuilder(apex, true)
	rrs := []mdns.RR{
		synthSOA(apex, uint32(start.Unix()), ttl),
		&mdns.NS{Hdr: mdns.RR_Header{Name: apex, Rrtype: mdns.TypeNS, Class: mdns.ClassINET, Ttl: ttl}, Ns: apex},
	}
	for _, rr := range append(rrs, disc...) {
		if err := b.add(rr); err != nil {
			return nil, fmt.Errorf("node zone: %w", err)
		}
	}
	return b.finish(true)
}

// buildSignedZone returns the zone "<z32>." of another key from the records a
// SignedZones source holds. Records that are not class IN, not under "<z32>.", or that
// a zone cannot hold (a wildcard owner, a CNAME beside other data) are left out. An
// SOA at the apex among the records is used; otherwise one is synthesized (serial 1,
// TTL NegativeTTL) for negative answers. No NS record is synthesized, and duplicate
// records are not looked for (the zone is rebuilt for every query).
func buildSignedZone(apex string, rrs []mdns.RR) *zone {
	b := newZoneBuilder(apex, false)
	for _, rr := range rrs {
		if rr == nil {
			continue
		}
		_ = b.add(rr) // a record the zone cannot hold is left out
	}
	if b.z.soa == nil {
		soa := synthSOA(apex, 1, NegativeTTL)
		if err := b.add(soa); err != nil {
			// A CNAME at the apex leaves no room for the SOA: it then only
			// serves negative answers.
			b.z.soa = soa
		}
	}
	return b.build()
}
