package dns

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	mdns "github.com/miekg/dns"
)

// Errors of zone loading; classify with errors.Is.
var (
	// ErrBadZone is wrapped by every error about a master file's content: syntax, a
	// missing SOA or NS, an out-of-zone or wildcard owner, a CNAME beside other data,
	// a zone loaded twice. The text starts with "file:line" when a record is at fault.
	ErrBadZone = errors.New("bad zone")
	// ErrZoneTooLarge is wrapped (with ErrBadZone) when a master file is over
	// Config.MaxZoneBytes or holds more than Config.MaxZoneRecords records.
	ErrZoneTooLarge = errors.New("zone file over its limit")
)

// zoneLimits are the load caps of one master file.
type zoneLimits struct {
	maxBytes   int64
	maxRecords int
}

// rrset is the records of one type at one name, in load order.
type rrset struct {
	typ uint16
	rrs []mdns.RR
}

// node is one name of a zone. A node without sets is an empty non-terminal: the name
// exists (NODATA, not NXDOMAIN) because names below it do.
type node struct {
	sets []rrset
	// cut marks a delegation: NS records at a name below the apex.
	cut bool
}

// get returns the records of type t, or nil.
func (n *node) get(t uint16) []mdns.RR {
	for i := range n.sets {
		if n.sets[i].typ == t {
			return n.sets[i].rrs
		}
	}
	return nil
}

// zone is one authoritative zone, immutable once built: a static zone, the node zone or
// a key's signed records. Names are lower case and fully qualified.
type zone struct {
	origin string
	soa    *mdns.SOA
	// neg is the SOA of negative answers: its TTL is min(SOA TTL, SOA minimum)
	// (RFC 2308 §3).
	neg   *mdns.SOA
	nodes map[string]*node
	// cuts is set when some node is a delegation.
	cuts    bool
	records int
}

// zoneBuilder collects the records of one zone and checks them.
type zoneBuilder struct {
	z *zone
	// seen holds a key per record so duplicates are dropped (RFC 2181 §5: an RRset
	// holds no duplicates); it lives only while the zone is built, and is nil when
	// duplicates are kept (signed zones, rebuilt per query from a verified packet).
	seen map[string]struct{}
}

func newZoneBuilder(origin string, dedupe bool) *zoneBuilder {
	b := &zoneBuilder{z: &zone{origin: origin, nodes: map[string]*node{origin: {}}}}
	if dedupe {
		b.seen = make(map[string]struct{})
	}
	return b
}

// isDNSSECMeta reports the types that may sit beside a CNAME (RFC 4035 §2.5).
func isDNSSECMeta(t uint16) bool {
	return t == mdns.TypeRRSIG || t == mdns.TypeNSEC || t == mdns.TypeNSEC3
}

// add adds rr to the zone or says why it cannot be added (without location: the
// caller knows the line).
func (b *zoneBuilder) add(rr mdns.RR) error {
	h := rr.Header()
	z := b.z
	name := mdns.CanonicalName(h.Name)
	if h.Class != mdns.ClassINET {
		return fmt.Errorf("class %s of %s: only IN is served", mdns.Class(h.Class), h.Name)
	}
	if !inZone(z.origin, name) {
		return fmt.Errorf("out-of-zone record: %s is not under the zone %s", h.Name, z.origin)
	}
	if name == "*" || strings.HasPrefix(name, "*.") {
		return fmt.Errorf("wildcard owner %s: wildcards are not supported", h.Name)
	}
	switch h.Rrtype {
	case mdns.TypeOPT, mdns.TypeTSIG, mdns.TypeTKEY, mdns.TypeNone:
		return fmt.Errorf("%s record at %s: not a zone record", mdns.Type(h.Rrtype), h.Name)
	case mdns.TypeSOA:
		if name != z.origin {
			return fmt.Errorf("SOA at %s: an SOA belongs only at the apex %s", h.Name, z.origin)
		}
		if z.soa != nil {
			return fmt.Errorf("second SOA at %s", h.Name)
		}
		soa, ok := rr.(*mdns.SOA)
		if !ok {
			return fmt.Errorf("SOA at %s is a %T", h.Name, rr)
		}
		z.soa = soa
	}
	var key string
	if b.seen != nil {
		key = name + "\x00" + rdataString(rr)
		if _, dup := b.seen[key]; dup {
			return nil
		}
	}
	n := b.node(name)
	if h.Rrtype == mdns.TypeCNAME {
		if _, ok := rr.(*mdns.CNAME); !ok {
			return fmt.Errorf("CNAME at %s is a %T", h.Name, rr)
		}
		if c := n.get(mdns.TypeCNAME); c != nil {
			return fmt.Errorf("second CNAME at %s", h.Name)
		}
		for _, s := range n.sets {
			if !isDNSSECMeta(s.typ) {
				return fmt.Errorf("CNAME at %s beside %s data (RFC 1034 §3.6.2)", h.Name, mdns.Type(s.typ))
			}
		}
	} else if !isDNSSECMeta(h.Rrtype) && n.get(mdns.TypeCNAME) != nil {
		return fmt.Errorf("%s at %s beside its CNAME (RFC 1034 §3.6.2)", mdns.Type(h.Rrtype), h.Name)
	}
	if h.Rrtype == mdns.TypeNS && name != z.origin {
		n.cut = true
		z.cuts = true
	}
	if b.seen != nil {
		b.seen[key] = struct{}{}
	}
	z.records++
	for i := range n.sets {
		if n.sets[i].typ == h.Rrtype {
			n.sets[i].rrs = append(n.sets[i].rrs, rr)
			return nil
		}
	}
	n.sets = append(n.sets, rrset{typ: h.Rrtype, rrs: []mdns.RR{rr}})
	return nil
}

// node returns the node of name (canonical, in the zone), creating it and the empty
// non-terminals between it and the apex.
func (b *zoneBuilder) node(name string) *node {
	n, ok := b.z.nodes[name]
	if ok {
		return n
	}
	n = &node{}
	b.z.nodes[name] = n
	for parent := parentName(name); parent != "" && len(parent) > len(b.z.origin); parent = parentName(parent) {
		if _, ok := b.z.nodes[parent]; ok {
			break
		}
		b.z.nodes[parent] = &node{}
	}
	return n
}

// finish checks the zone (an SOA, and NS records at the apex when requireNS) and
// builds it.
func (b *zoneBuilder) finish(requireNS bool) (*zone, error) {
	z := b.z
	if z.soa == nil {
		return nil, fmt.Errorf("no SOA at the apex %s", z.origin)
	}
	if requireNS && z.nodes[z.origin].get(mdns.TypeNS) == nil {
		return nil, fmt.Errorf("no NS records at the apex %s", z.origin)
	}
	return b.build(), nil
}

// build completes the zone; z.soa must be set.
func (b *zoneBuilder) build() *zone {
	z := b.z
	neg := mdns.Copy(z.soa).(*mdns.SOA)
	neg.Hdr.Ttl = min(z.soa.Hdr.Ttl, z.soa.Minttl)
	z.neg = neg
	b.seen = nil
	return z
}

// rdataString is rr in presentation form without its owner and TTL, for duplicate
// detection.
func rdataString(rr mdns.RR) string {
	h := *rr.Header()
	s := rr.String()
	return fmt.Sprintf("%d %d %s", h.Rrtype, h.Class, strings.TrimPrefix(s, h.String()))
}

// inZone reports whether name (canonical) is origin or below it.
func inZone(origin, name string) bool {
	if origin == "." {
		return true
	}
	if name == origin {
		return true
	}
	if !strings.HasSuffix(name, "."+origin) {
		return false
	}
	// The dot before origin must separate labels, not be an escaped "\." in one.
	prefix := name[:len(name)-len(origin)-1]
	backslashes := 0
	for i := len(prefix) - 1; i >= 0 && prefix[i] == '\\'; i-- {
		backslashes++
	}
	return backslashes%2 == 0
}

// parentName returns the name one label up, "." for a top-level name and "" for the
// root. It honours escaped dots.
func parentName(name string) string {
	if name == "." || name == "" {
		return ""
	}
	off, end := mdns.NextLabel(name, 0)
	if end || off >= len(name) {
		return "."
	}
	return name[off:]
}

// loadZoneFile reads one master file under the caps.
func loadZoneFile(path string, lim zoneLimits) (*zone, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadZone, err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() && fi.Size() > lim.maxBytes {
		return nil, fmt.Errorf("%s: %w: %w: %d bytes, over max_zone_bytes %d", path, ErrBadZone, ErrZoneTooLarge, fi.Size(), lim.maxBytes)
	}
	return parseZone(f, path, lim)
}

// parseZone reads a master file from r (file names it in errors). The first record
// must be the zone's SOA, whose owner is the zone's apex.
func parseZone(r io.Reader, file string, lim zoneLimits) (*zone, error) {
	cr := &capReader{br: bufio.NewReader(r), max: lim.maxBytes, line: 1}
	zp := mdns.NewZoneParser(cr, "", file)
	zp.SetIncludeAllowed(false)
	var b *zoneBuilder
	n := 0
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		if cr.over {
			break
		}
		n++
		if n > lim.maxRecords {
			return nil, fmt.Errorf("%s:%d: %w: %w: more than max_zone_records %d records", file, cr.lastLine, ErrBadZone, ErrZoneTooLarge, lim.maxRecords)
		}
		if b == nil {
			soa, ok := rr.(*mdns.SOA)
			if !ok {
				return nil, fmt.Errorf("%s:%d: %w: no SOA: the first record must be the zone's SOA, found %s", file, cr.lastLine, ErrBadZone, mdns.Type(rr.Header().Rrtype))
			}
			b = newZoneBuilder(mdns.CanonicalName(soa.Hdr.Name), true)
		}
		if err := b.add(rr); err != nil {
			return nil, fmt.Errorf("%s:%d: %w: %w", file, cr.lastLine, ErrBadZone, err)
		}
	}
	if cr.over {
		return nil, fmt.Errorf("%s: %w: %w: over max_zone_bytes %d", file, ErrBadZone, ErrZoneTooLarge, lim.maxBytes)
	}
	if err := zp.Err(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadZone, err)
	}
	if b == nil {
		return nil, fmt.Errorf("%s: %w: no SOA: the file holds no records", file, ErrBadZone)
	}
	z, err := b.finish(true)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %w", file, ErrBadZone, err)
	}
	return z, nil
}

// capReader hands the zone parser one byte at a time (it reads through
// io.ByteReader when it can), stops after max bytes and tracks the line of the last
// byte that was neither blank nor a line end: after the parser returns a record, that
// is the line the record ends on.
type capReader struct {
	br        *bufio.Reader
	max, n    int64
	over      bool
	line      int
	lastLine  int
	pendingNL bool
}

func (c *capReader) ReadByte() (byte, error) {
	if c.over {
		return 0, ErrZoneTooLarge
	}
	b, err := c.br.ReadByte()
	if err != nil {
		return 0, err
	}
	if c.n >= c.max {
		c.over = true
		return 0, ErrZoneTooLarge
	}
	c.n++
	if c.pendingNL {
		c.line++
		c.pendingNL = false
	}
	switch b {
	case '\n':
		c.pendingNL = true
	case ' ', '\t', '\r':
	default:
		c.lastLine = c.line
	}
	return b, nil
}

// Read makes capReader an io.Reader; the parser uses ReadByte.
func (c *capReader) Read(p []byte) (int, error) {
	for i := range p {
		b, err := c.ReadByte()
		if err != nil {
			if i > 0 && err == io.EOF {
				return i, nil
			}
			return i, err
		}
		p[i] = b
	}
	return len(p), nil
}

// zoneSet is everything the handler answers for besides other keys' signed records:
// the static zones and the node zone, by origin. It is replaced whole on reload.
type zoneSet struct {
	zones   map[string]*zone
	static  int
	records int
}

// loadZones reads every master file and adds the node zone (which may be nil). Two
// files with the same apex, or a file whose apex is the node zone's, are an error.
func loadZones(files []string, lim zoneLimits, nodeZone *zone) (*zoneSet, error) {
	set := &zoneSet{zones: make(map[string]*zone, len(files)+1)}
	from := make(map[string]string, len(files))
	if nodeZone != nil {
		set.zones[nodeZone.origin] = nodeZone
	}
	for _, file := range files {
		z, err := loadZoneFile(file, lim)
		if err != nil {
			return nil, err
		}
		if prev, dup := from[z.origin]; dup {
			return nil, fmt.Errorf("%s: %w: zone %s is already loaded from %s", file, ErrBadZone, z.origin, prev)
		}
		if _, dup := set.zones[z.origin]; dup {
			return nil, fmt.Errorf("%s: %w: zone %s is the node zone", file, ErrBadZone, z.origin)
		}
		from[z.origin] = file
		set.zones[z.origin] = z
		set.static++
		set.records += z.records
	}
	return set, nil
}

// find returns the zone of the longest origin that name (canonical) is at or under.
// A nil set (a Handler not made by NewHandler) holds nothing.
func (s *zoneSet) find(name string) *zone {
	if s == nil {
		return nil
	}
	for n := name; n != ""; n = parentName(n) {
		if z, ok := s.zones[n]; ok {
			return z
		}
	}
	return nil
}
