package dns

import (
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/alknet/alknet/dns/pkarr"
)

// EDNSUDPSize is the UDP payload size the handler advertises in the OPT record of its
// responses (the DNS flag day 2020 value).
const EDNSUDPSize = 1232

// MaxCNAMEChain is the most CNAME records one answer follows within a zone.
const MaxCNAMEChain = 8

// RFC8482HINFO is the CPU string of the HINFO record that answers ANY queries
// (RFC 8482 §4.2); its OS string is empty.
const RFC8482HINFO = "RFC8482"

// SignedZones hands the handler records published under other keys' TLDs (for example a
// pkarr relay's verified cache). Records returns them with owner names fully qualified
// under "<z32>.", or ok=false when the key has nothing.
type SignedZones interface {
	Records(key ed25519.PublicKey) (rrs []mdns.RR, ok bool)
}

// Handler is the authoritative zone logic, transport-free: a miekg/dns Handler that
// answers from the node zone, the static zones and other keys' signed records. It is
// safe for concurrent use; Reload swaps the static zones atomically.
//
// Response rules:
//
//   - Every response has QR=1, RA=0 (the handler never recurses), the query's ID,
//     opcode, RD and CD bits, and the question exactly as sent (0x20 case included);
//     names match case-insensitively.
//   - A query with QR=1, more than one OPT record or an OPT record not owned by the
//     root gets FORMERR (without OPT); then EDNS: when the query has an OPT record the
//     response has one too (version 0, UDP size EDNSUDPSize, the query's DO bit
//     copied as RFC 3225 asks, no options: padding is the transport's), and a query
//     OPT version above 0 gets BADVERS (RFC 6891 §6.1.3).
//   - Opcode other than QUERY: NOTIMP. QDCOUNT other than 1: FORMERR (no question
//     echoed). Class other than IN, and AXFR/IXFR: REFUSED. QTYPE OPT: FORMERR.
//   - A name outside every zone: REFUSED, AA=0, empty sections.
//   - In a zone (AA=1): the RRset of the type; an NS, MX or SRV answer adds the
//     in-zone A/AAAA records of its targets to the additional section. A CNAME is
//     followed while its target is in the same zone, up to MaxCNAMEChain records,
//     each name once (a loop ends the chain); an out-of-zone target ends the answer as
//     is. A name without the type gets NOERROR with the zone's SOA in the authority
//     section (NODATA), a missing name NXDOMAIN with the SOA (the final name of a
//     CNAME chain decides, RFC 6604); the SOA's TTL is min(TTL, SOA minimum).
//     Names that exist only because names below them do (empty non-terminals) are
//     NODATA.
//   - ANY (RFC 8482): an existing name with records gets one synthesized HINFO record
//     (CPU RFC8482HINFO, OS "", the SOA's TTL), never the full set of records.
//   - A name at or below a delegation (NS records below a static zone's apex) gets a
//     referral: AA=0, the NS records in the authority section, in-zone glue in the
//     additional section; DS at the delegation is answered from the parent zone.
//
// Zones:
//
//   - The node zone "<z32>.<origin>." (WithNodeKey; see DiscoveryRecords for its
//     records): a synthesized SOA (primary server the apex itself, mailbox
//     "hostmaster.<apex>", serial the handler's start time in Unix seconds, refresh
//     3600, retry 600, expire 86400, minimum NegativeTTL) and an NS record naming
//     the apex, plus the discovery records.
//   - Static zones: RFC 1035 master files (Config.Zones). The first record must be
//     the SOA; its owner is the zone's apex (so the file uses $ORIGIN or absolute
//     names). NS records at the apex are required; records outside the zone, wildcard
//     owners ("*" as the first label: wildcards are not supported, so they are refused
//     rather than served literally), classes other than IN, a second SOA and a CNAME
//     beside other data are load errors naming file:line (the line the record ends
//     on). $INCLUDE is refused; $GENERATE works and its records count towards the cap.
//     Duplicate records are dropped. A file over Config.MaxZoneBytes or with more than
//     Config.MaxZoneRecords records is refused while it is read. Two files with the
//     same apex, or a file with the node zone's apex, are an error.
//   - Other keys' names: a name whose last label is a z-base-32 key (not the node's own
//     when the origin is empty: that is the node zone) is answered from
//     WithSignedZones' records for that key, as a zone "<z32>." with the same rules.
//     Without records for the key the name is outside every zone (REFUSED). An SOA
//     at the apex among the records is used for negative answers; otherwise one is
//     synthesized as for the node zone but with serial 1 and TTL NegativeTTL.
//
// The longest zone apex containing the name wins. The handler never logs query names;
// its logger only reports reloads.
type Handler struct {
	files  []string
	limits zoneLimits
	node   *zone
	signed SignedZones
	log    *slog.Logger

	zones    atomic.Pointer[zoneSet]
	reloadMu sync.Mutex
}

// Option configures NewHandler.
type Option func(*handlerOptions)

type handlerOptions struct {
	key      ed25519.PublicKey
	alpns    []string
	addrs    []netip.AddrPort
	services bool
	signed   SignedZones
	log      *slog.Logger
	now      func() time.Time
}

// WithNodeKey serves the node zone "<z32>.<origin>." of the node's Ed25519 public key.
// Without it the handler has no node zone.
func WithNodeKey(pub ed25519.PublicKey) Option {
	return func(o *handlerOptions) { o.key = slices.Clone(pub) }
}

// WithServices sets the ALPNs and public addresses the node zone's discovery records
// publish (see DiscoveryRecords for the rules); it needs WithNodeKey.
func WithServices(alpns []string, addrs []netip.AddrPort) Option {
	return func(o *handlerOptions) {
		o.alpns, o.addrs, o.services = slices.Clone(alpns), slices.Clone(addrs), true
	}
}

// WithSignedZones answers names under other keys' TLDs "<z32>." from s.
func WithSignedZones(s SignedZones) Option {
	return func(o *handlerOptions) { o.signed = s }
}

// WithLogger sets the logger of reloads (default slog.Default()).
func WithLogger(l *slog.Logger) Option {
	return func(o *handlerOptions) { o.log = l }
}

// WithClock sets the clock whose time at NewHandler is the node zone's SOA serial
// (default time.Now).
func WithClock(now func() time.Time) Option {
	return func(o *handlerOptions) { o.now = now }
}

// NewHandler validates cfg, builds the node zone and loads the static zones. Errors
// wrap ErrInvalidConfig, ErrInvalidService or ErrBadZone.
func NewHandler(cfg Config, opts ...Option) (*Handler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var o handlerOptions
	for _, opt := range opts {
		opt(&o)
	}
	if o.log == nil {
		o.log = slog.Default()
	}
	if o.now == nil {
		o.now = time.Now
	}
	h := &Handler{
		files:  slices.Clone(cfg.Zones),
		limits: cfg.zoneLimits(),
		signed: o.signed,
		log:    o.log,
	}
	switch {
	case o.key != nil:
		if len(o.key) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("%w: node key of %d bytes, want %d", ErrInvalidService, len(o.key), ed25519.PublicKeySize)
		}
		nz, err := buildNodeZone(o.key, cfg.Origin, o.alpns, o.addrs, cfg.ttl(), o.now())
		if err != nil {
			return nil, err
		}
		h.node = nz
	case o.services:
		return nil, fmt.Errorf("%w: WithServices needs WithNodeKey", ErrInvalidService)
	}
	set, err := loadZones(h.files, h.limits, h.node)
	if err != nil {
		return nil, err
	}
	h.zones.Store(set)
	return h, nil
}

// Reload re-reads every master file and swaps the new zones in at once. On any error
// (a file missing, over a cap or broken) the zones in use stay as they were and the
// error says which file and why; the caller logs it. Concurrent queries see either
// the old or the new set, never a mix.
func (h *Handler) Reload() error {
	h.reloadMu.Lock()
	defer h.reloadMu.Unlock()
	set, err := loadZones(h.files, h.limits, h.node)
	if err != nil {
		return fmt.Errorf("reload zones (the previous zones stay): %w", err)
	}
	h.zones.Store(set)
	h.log.Info("dns zones reloaded", slog.Int("zones", set.static), slog.Int("records", set.records))
	return nil
}

// ServeDNS answers r (see Answer) and writes the response to w. A write error is the
// transport's to report.
func (h *Handler) ServeDNS(w mdns.ResponseWriter, r *mdns.Msg) {
	_ = w.WriteMsg(h.Answer(r))
}

// Answer returns the response to req under the rules of Handler. It never modifies
// req, and the response shares no slice with the zones (records themselves are shared
// and must not be modified).
func (h *Handler) Answer(req *mdns.Msg) *mdns.Msg {
	resp := &mdns.Msg{MsgHdr: mdns.MsgHdr{
		Id:               req.Id,
		Response:         true,
		Opcode:           req.Opcode,
		RecursionDesired: req.RecursionDesired,
		CheckingDisabled: req.CheckingDisabled,
	}, Compress: true}

	var opt *mdns.OPT
	nopt := 0
	for _, rr := range req.Extra {
		if o, ok := rr.(*mdns.OPT); ok {
			opt = o
			nopt++
		}
	}
	if req.Response || nopt > 1 || (opt != nil && opt.Hdr.Name != ".") {
		resp.Rcode = mdns.RcodeFormatError
		return resp
	}
	if len(req.Question) == 1 {
		resp.Question = []mdns.Question{req.Question[0]}
	}
	if opt != nil {
		ro := &mdns.OPT{Hdr: mdns.RR_Header{Name: ".", Rrtype: mdns.TypeOPT}}
		ro.SetUDPSize(EDNSUDPSize)
		if opt.Do() {
			ro.SetDo()
		}
		resp.Extra = []mdns.RR{ro}
		if opt.Version() > 0 {
			resp.Rcode = mdns.RcodeBadVers
			return resp
		}
	}
	if req.Opcode != mdns.OpcodeQuery {
		resp.Rcode = mdns.RcodeNotImplemented
		return resp
	}
	if len(req.Question) != 1 {
		resp.Rcode = mdns.RcodeFormatError
		return resp
	}
	q := req.Question[0]
	switch {
	case q.Qclass != mdns.ClassINET, q.Qtype == mdns.TypeAXFR, q.Qtype == mdns.TypeIXFR:
		resp.Rcode = mdns.RcodeRefused
		return resp
	case q.Qtype == mdns.TypeOPT:
		resp.Rcode = mdns.RcodeFormatError
		return resp
	}
	name := mdns.CanonicalName(q.Name)
	z := h.zoneFor(name)
	if z == nil {
		resp.Rcode = mdns.RcodeRefused
		return resp
	}
	res := z.lookup(name, q.Name, q.Qtype)
	resp.Rcode = res.rcode
	resp.Authoritative = res.aa
	resp.Answer = res.answer
	resp.Ns = res.ns
	resp.Extra = append(res.extra, resp.Extra...)
	return resp
}

// zoneFor returns the zone that holds name (canonical), or nil.
func (h *Handler) zoneFor(name string) *zone {
	if z := h.zones.Load().find(name); z != nil {
		return z
	}
	if h.signed == nil {
		return nil
	}
	labels := mdns.Split(name)
	if len(labels) == 0 {
		return nil
	}
	tld := name[labels[len(labels)-1] : len(name)-1]
	if len(tld) != pkarr.KeyLen {
		return nil
	}
	key, err := pkarr.ParseKey(tld)
	if err != nil {
		return nil
	}
	rrs, ok := h.signed.Records(key)
	if !ok {
		return nil
	}
	return buildSignedZone(tld+".", rrs)
}

// result is a zone's answer to one question.
type result struct {
	rcode             int
	aa                bool
	answer, ns, extra []mdns.RR
}

// lookup answers qname (canonical; asSent is the question's spelling) and qtype from z.
func (z *zone) lookup(qname, asSent string, qtype uint16) result {
	res := result{aa: true}
	name := qname
	var visited []string
	for {
		if cut := z.delegation(name, qtype); cut != nil {
			if len(res.answer) > 0 {
				// A CNAME led below a delegation: the chain so far is the answer.
				return res
			}
			ns := cut.get(mdns.TypeNS)
			return result{aa: false, ns: slices.Clone(ns), extra: z.addresses(ns)}
		}
		n := z.nodes[name]
		if n == nil {
			res.rcode = mdns.RcodeNameError
			res.ns = []mdns.RR{z.neg}
			return res
		}
		if qtype == mdns.TypeANY && len(n.sets) > 0 {
			res.answer = append(res.answer, &mdns.HINFO{
				Hdr: mdns.RR_Header{Name: asSent, Rrtype: mdns.TypeHINFO, Class: mdns.ClassINET, Ttl: z.soa.Hdr.Ttl},
				Cpu: RFC8482HINFO,
			})
			return res
		}
		if rrs := n.get(qtype); rrs != nil {
			res.answer = append(res.answer, rrs...)
			switch qtype {
			case mdns.TypeNS, mdns.TypeMX, mdns.TypeSRV:
				res.extra = z.addresses(rrs)
			}
			return res
		}
		cname := n.get(mdns.TypeCNAME)
		if cname == nil || qtype == mdns.TypeANY {
			res.ns = []mdns.RR{z.neg}
			return res
		}
		res.answer = append(res.answer, cname...)
		visited = append(visited, name)
		target := mdns.CanonicalName(cname[0].(*mdns.CNAME).Target) // add checked the type
		if !inZone(z.origin, target) || slices.Contains(visited, target) || len(visited) >= MaxCNAMEChain {
			return res
		}
		name = target
	}
}

// delegation returns the highest delegation point (a node with NS records strictly
// below the apex) at or above name, or nil. The name itself is not a delegation for
// DS queries: DS lives in the parent zone.
func (z *zone) delegation(name string, qtype uint16) *node {
	if !z.cuts {
		return nil
	}
	var cut *node
	for n := name; len(n) > len(z.origin); n = parentName(n) {
		if nd := z.nodes[n]; nd != nil && nd.cut && (n != name || qtype != mdns.TypeDS) {
			cut = nd
		}
	}
	return cut
}

// addresses returns the in-zone A and AAAA records of the targets of NS, MX and SRV
// records, each target once.
func (z *zone) addresses(rrs []mdns.RR) []mdns.RR {
	var out []mdns.RR
	var done []string
	for _, rr := range rrs {
		var target string
		switch r := rr.(type) {
		case *mdns.NS:
			target = r.Ns
		case *mdns.MX:
			target = r.Mx
		case *mdns.SRV:
			target = r.Target
		default:
			continue
		}
		target = mdns.CanonicalName(target)
		if slices.Contains(done, target) || !inZone(z.origin, target) {
			continue
		}
		done = append(done, target)
		if n := z.nodes[target]; n != nil {
			out = append(out, n.get(mdns.TypeA)...)
			out = append(out, n.get(mdns.TypeAAAA)...)
		}
	}
	return out
}
