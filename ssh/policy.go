package ssh

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/alknet/alknet/core"
)

// Action is what a forwarding rule, or a policy's default, does with a request.
type Action int

const (
	// Deny refuses the request. It is the zero Action, so a zero ForwardingPolicy
	// denies everything.
	Deny Action = iota
	// Allow permits the request.
	Allow
)

// String returns "deny" or "allow" (the syntax ParseAction accepts), or
// "Action(n)" for a value that is neither.
func (a Action) String() string {
	switch a {
	case Deny:
		return "deny"
	case Allow:
		return "allow"
	}
	return "Action(" + strconv.Itoa(int(a)) + ")"
}

// ParseAction parses the configuration syntax of an Action: exactly "allow" or
// "deny".
func ParseAction(s string) (Action, error) {
	switch s {
	case "allow":
		return Allow, nil
	case "deny":
		return Deny, nil
	}
	return Deny, fmt.Errorf("ssh: invalid forwarding action %q (want \"allow\" or \"deny\")", clipText(s, maxErrorText))
}

// MarshalText implements encoding.TextMarshaler with the syntax of String; it
// fails for a value that is neither Allow nor Deny.
func (a Action) MarshalText() ([]byte, error) {
	if a != Allow && a != Deny {
		return nil, fmt.Errorf("ssh: invalid forwarding action %d", int(a))
	}
	return []byte(a.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler with ParseAction.
func (a *Action) UnmarshalText(text []byte) error {
	v, err := ParseAction(string(text))
	if err != nil {
		return err
	}
	*a = v
	return nil
}

// The transports a Rule may name: the transport the SSH connection arrived on.
const (
	// TransportQUIC is alknet/ssh over a QUIC connection's first stream.
	TransportQUIC = "quic"
	// TransportTLS is alknet/ssh over the TCP+TLS twin of the QUIC endpoint.
	TransportTLS = "tls"
	// TransportTCP is a classic SSH listener such as port 22.
	TransportTCP = "tcp"
)

// MaxHostLength is the longest destination host Check accepts, in bytes (the
// longest DNS name). A longer host is refused with an error before anything else.
const MaxHostLength = 253

// maxTargetLength bounds ParseTarget's input; maxErrorText bounds the
// configuration text an error quotes.
const (
	maxTargetLength = 1024
	maxErrorText    = 200
)

// reservedPrefix starts the names of alknet's own services, which are never
// dialled over the network.
const reservedPrefix = "alknet-"

var (
	// ErrInvalidTarget is wrapped by every error of ParseTarget.
	ErrInvalidTarget = errors.New("ssh: invalid forwarding target")
	// ErrResolve is wrapped by Check's error when the policy would allow a
	// destination name that cannot be resolved, or when the lookup is cut short by
	// its context; the caller answers ConnectionFailed. LookupDestination's errors
	// wrap it for every failed lookup.
	ErrResolve = errors.New("ssh: name resolution failed")
	// ErrInvalidHost is wrapped by Check's error when the destination host is not a
	// usable host name or IP literal: empty, longer than MaxHostLength, holding
	// spaces, control or non-ASCII bytes, or an IPv6 literal with a zone. The error
	// text never contains the host.
	ErrInvalidHost = errors.New("ssh: invalid forwarding destination")
)

// targetKind is the form of a Target.
type targetKind uint8

const (
	kindNone targetKind = iota // the zero Target: matches nothing
	kindAny
	kindHost
	kindCIDR
	kindPorts
	kindAlknet
)

// hostGlob is a normalised host pattern: the exact name pre when star is false,
// else every name of the form pre + anything + suf.
type hostGlob struct {
	pre, suf string
	star     bool
}

// match reports whether the normalised name matches the glob.
func (g hostGlob) match(name string) bool {
	if !g.star {
		return name == g.pre
	}
	return len(name) >= len(g.pre)+len(g.suf) && strings.HasPrefix(name, g.pre) && strings.HasSuffix(name, g.suf)
}

// String returns the pattern text.
func (g hostGlob) String() string {
	if g.star {
		return g.pre + "*" + g.suf
	}
	return g.pre
}

// Target is what a forwarding Rule matches a destination against. Build one with
// ParseTarget; the zero Target matches nothing.
type Target struct {
	kind   targetKind
	glob   hostGlob
	prefix netip.Prefix
	lo, hi uint16
}

// ParseTarget parses the configuration syntax of a Target, which is exactly one of:
//
//	any                        every destination
//	host:<glob>                a host name or IP literal matching glob
//	cidr:<net>                 an IP address (literal or resolved) inside net, e.g. 10.0.0.0/8
//	ports:<glob>:<lo>-<hi>     a host matching glob on a port in lo..hi inclusive
//	ports:<glob>:<port>        a host matching glob on that one port
//	alknet                     a reserved alknet- service name
//
// A glob is an exact host, or holds exactly one '*' standing for any run of
// characters: "*.example.com" matches "a.example.com" but not "example.com", and
// "*" matches every host. Globs are lower-cased and lose one trailing dot; an IP
// literal (which may be bracketed, "[::1]") is put in canonical form. A cidr
// written as an IPv4-mapped IPv6 net (::ffff:10.0.0.0/104) is stored as its IPv4
// net, since addresses are unmapped before matching. Every error wraps
// ErrInvalidTarget.
func ParseTarget(s string) (Target, error) {
	if len(s) > maxTargetLength {
		return Target{}, targetError(s, "longer than "+strconv.Itoa(maxTargetLength)+" bytes")
	}
	switch {
	case s == "any":
		return Target{kind: kindAny}, nil
	case s == "alknet":
		return Target{kind: kindAlknet}, nil
	case strings.HasPrefix(s, "host:"):
		g, reason := parseGlob(s[len("host:"):])
		if reason != "" {
			return Target{}, targetError(s, reason)
		}
		return Target{kind: kindHost, glob: g}, nil
	case strings.HasPrefix(s, "cidr:"):
		p, err := netip.ParsePrefix(s[len("cidr:"):])
		if err != nil {
			return Target{}, targetError(s, "want cidr:<address>/<bits>")
		}
		p = p.Masked()
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		return Target{kind: kindCIDR, prefix: p}, nil
	case strings.HasPrefix(s, "ports:"):
		rest := s[len("ports:"):]
		i := strings.LastIndexByte(rest, ':')
		if i < 0 {
			return Target{}, targetError(s, "want ports:<host-glob>:<lo>-<hi>")
		}
		g, reason := parseGlob(rest[:i])
		if reason != "" {
			return Target{}, targetError(s, reason)
		}
		lo, hi, reason := parsePortRange(rest[i+1:])
		if reason != "" {
			return Target{}, targetError(s, reason)
		}
		return Target{kind: kindPorts, glob: g, lo: lo, hi: hi}, nil
	}
	return Target{}, targetError(s, "want any, host:, cidr:, ports: or alknet")
}

// String returns the configuration syntax of t, which ParseTarget parses back to
// t; the zero Target, which ParseTarget never returns, prints as "none".
func (t Target) String() string {
	switch t.kind {
	case kindAny:
		return "any"
	case kindAlknet:
		return "alknet"
	case kindHost:
		return "host:" + t.glob.String()
	case kindCIDR:
		return "cidr:" + t.prefix.String()
	case kindPorts:
		g := t.glob.String()
		if !t.glob.star && strings.IndexByte(g, ':') >= 0 {
			g = "[" + g + "]"
		}
		r := strconv.Itoa(int(t.lo))
		if t.hi != t.lo {
			r += "-" + strconv.Itoa(int(t.hi))
		}
		return "ports:" + g + ":" + r
	}
	return "none"
}

// MarshalText implements encoding.TextMarshaler with the syntax of String; it
// fails for the zero Target.
func (t Target) MarshalText() ([]byte, error) {
	if t.kind == kindNone {
		return nil, fmt.Errorf("%w: zero Target", ErrInvalidTarget)
	}
	return []byte(t.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler with ParseTarget.
func (t *Target) UnmarshalText(text []byte) error {
	v, err := ParseTarget(string(text))
	if err != nil {
		return err
	}
	*t = v
	return nil
}

// match reports whether t matches a destination: name is the normalised host (the
// canonical text of an IP literal), addr the address being vetted (invalid when
// there is none, as for a reserved name).
func (t Target) match(name string, addr netip.Addr, port uint16) bool {
	switch t.kind {
	case kindAny:
		return true
	case kindHost:
		return t.glob.match(name)
	case kindCIDR:
		return addr.IsValid() && t.prefix.Contains(addr)
	case kindPorts:
		return t.lo <= port && port <= t.hi && t.glob.match(name)
	case kindAlknet:
		return strings.HasPrefix(name, reservedPrefix)
	}
	return false
}

// targetError is ParseTarget's error, quoting (clipped) configuration text.
func targetError(s, reason string) error {
	return fmt.Errorf("%w %q: %s", ErrInvalidTarget, clipText(s, maxErrorText), reason)
}

// parseGlob parses a host glob; reason is empty on success.
func parseGlob(p string) (g hostGlob, reason string) {
	name, _, _, reason := normalizeHost(p, true)
	if reason != "" {
		return hostGlob{}, "host glob: " + reason
	}
	pre, suf, star := strings.Cut(name, "*")
	if star && strings.IndexByte(suf, '*') >= 0 {
		return hostGlob{}, "host glob: more than one '*'"
	}
	if len(pre)+len(suf) > MaxHostLength {
		return hostGlob{}, "host glob: longer than " + strconv.Itoa(MaxHostLength) + " bytes"
	}
	return hostGlob{pre: pre, suf: suf, star: star}, ""
}

// parsePortRange parses "<lo>-<hi>" (inclusive, lo <= hi) or a single "<port>".
func parsePortRange(s string) (lo, hi uint16, reason string) {
	loText, hiText, isRange := strings.Cut(s, "-")
	lo, ok := parsePort(loText)
	if !ok {
		return 0, 0, "want a port range <lo>-<hi> of decimal ports 0..65535"
	}
	if !isRange {
		return lo, lo, ""
	}
	hi, ok = parsePort(hiText)
	if !ok {
		return 0, 0, "want a port range <lo>-<hi> of decimal ports 0..65535"
	}
	if lo > hi {
		return 0, 0, "port range lower bound above upper bound"
	}
	return lo, hi, ""
}

// parsePort parses a decimal port 0..65535: digits only, no sign, no spaces.
func parsePort(s string) (uint16, bool) {
	if s == "" {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	v, err := strconv.ParseUint(s, 10, 16)
	if err != nil {
		return 0, false
	}
	return uint16(v), true
}

// normalizeHost normalises a destination host, or a host glob when glob is set
// ('*' allowed). It lower-cases ASCII letters and strips one trailing dot; an IP
// literal, bare or bracketed, comes back in canonical unmapped form with addr set.
// dot reports that a trailing dot was stripped. Only printable ASCII is accepted,
// brackets only around a whole IP literal, ':' only in an IP literal (or a glob
// with a '*'), and no IPv6 zone. reason is empty on success and never contains s.
func normalizeHost(s string, glob bool) (name string, addr netip.Addr, dot bool, reason string) {
	if s == "" {
		return "", netip.Addr{}, false, "empty host"
	}
	if s[0] == '[' {
		if len(s) < 2 || s[len(s)-1] != ']' {
			return "", netip.Addr{}, false, "unbalanced brackets"
		}
		a, err := netip.ParseAddr(s[1 : len(s)-1])
		if err != nil {
			return "", netip.Addr{}, false, "brackets around something other than an IP address"
		}
		if a.Zone() != "" {
			return "", netip.Addr{}, false, "IPv6 zone"
		}
		a = a.Unmap()
		return a.String(), a, false, ""
	}
	b := []byte(s)
	for i, c := range b {
		switch {
		case c <= ' ' || c >= 0x7f:
			return "", netip.Addr{}, false, "space, control or non-ASCII byte"
		case c == '[' || c == ']':
			return "", netip.Addr{}, false, "unbalanced brackets"
		case c == '*' && !glob:
			return "", netip.Addr{}, false, "'*' in host"
		case 'A' <= c && c <= 'Z':
			b[i] = c + ('a' - 'A')
		}
	}
	if b[len(b)-1] == '.' {
		b, dot = b[:len(b)-1], true
	}
	if len(b) == 0 {
		return "", netip.Addr{}, false, "empty host"
	}
	if b[len(b)-1] == '.' {
		return "", netip.Addr{}, false, "empty last label"
	}
	name = string(b)
	if a, err := netip.ParseAddr(name); err == nil {
		if a.Zone() != "" {
			return "", netip.Addr{}, false, "IPv6 zone"
		}
		a = a.Unmap()
		return a.String(), a, false, ""
	}
	if strings.IndexByte(name, ':') >= 0 && !(glob && strings.IndexByte(name, '*') >= 0) {
		return "", netip.Addr{}, false, "':' outside an IP address"
	}
	return name, netip.Addr{}, dot, ""
}

// clipText returns s cut to at most n bytes, backing up to a UTF-8 rune start
// when one is near.
func clipText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for i := n; i > 0 && i > n-utf8.UTFMax; i-- {
		if utf8.RuneStart(s[i]) {
			return s[:i]
		}
	}
	return s[:n]
}

// Rule is one forwarding rule. It matches a request when Target matches the
// destination, the identity is one of Principals (an identity whose ID equals an
// entry or that carries it as a scope; an empty list matches every identity,
// including none), and the connection's transport is one of Transports (an empty
// list matches every transport).
type Rule struct {
	// Target is the destination the rule is about.
	Target Target
	// Action is what the rule does with a matching request; any value other than
	// Allow denies.
	Action Action
	// Principals are identity IDs or scopes; empty entries never match.
	Principals []string
	// Transports are TransportQUIC, TransportTLS or TransportTCP.
	Transports []string
}

// matchesIdentity reports whether id is one of the rule's principals.
func (r *Rule) matchesIdentity(id *core.Identity) bool {
	if len(r.Principals) == 0 {
		return true
	}
	if id == nil {
		return false
	}
	for _, p := range r.Principals {
		if p != "" && (p == id.ID || id.HasScope(p)) {
			return true
		}
	}
	return false
}

// matchesTransport reports whether the rule applies to transport.
func (r *Rule) matchesTransport(transport string) bool {
	if len(r.Transports) == 0 {
		return true
	}
	for _, t := range r.Transports {
		if t == transport {
			return true
		}
	}
	return false
}

// ForwardingPolicy decides every direct-tcpip request (and every SOCKS5
// connection the server is asked to make): the first Rule that matches decides,
// and Default decides when none does. The zero value, like a nil pointer, denies
// everything.
type ForwardingPolicy struct {
	// Default is the answer when no rule matches.
	Default Action
	// Rules are tried in order.
	Rules []Rule
}

// Validate reports the first problem of a policy loaded from configuration: an
// Action other than Allow or Deny, a zero Target, an empty principal, or a
// transport other than TransportQUIC, TransportTLS and TransportTCP. Check works
// on any policy; Validate catches configurations that would not mean what they say.
// Its error is a [*PolicyError] naming the rule, field and item at fault.
func (p *ForwardingPolicy) Validate() error {
	if p == nil {
		return nil
	}
	if p.Default != Allow && p.Default != Deny {
		return &PolicyError{Rule: -1, Field: "default", Item: -1, Msg: fmt.Sprintf("invalid default action %d", int(p.Default))}
	}
	for i := range p.Rules {
		r := &p.Rules[i]
		if r.Action != Allow && r.Action != Deny {
			return &PolicyError{Rule: i, Field: "action", Item: -1, Msg: fmt.Sprintf("invalid action %d", int(r.Action))}
		}
		if r.Target.kind == kindNone {
			return &PolicyError{Rule: i, Field: "target", Item: -1, Msg: ErrInvalidTarget.Error() + ": no target", err: ErrInvalidTarget}
		}
		for j, pr := range r.Principals {
			if pr == "" {
				return &PolicyError{Rule: i, Field: "principals", Item: j, Msg: "empty principal"}
			}
		}
		for j, t := range r.Transports {
			if t != TransportQUIC && t != TransportTLS && t != TransportTCP {
				return &PolicyError{Rule: i, Field: "transports", Item: j, Msg: fmt.Sprintf("unknown transport %q", clipText(t, maxErrorText))}
			}
		}
	}
	return nil
}

// PolicyError is what [ForwardingPolicy.Validate] reports: the rule, the field and, in
// a list, the item at fault, so that a configuration layer can name its own key for it
// (the [ssh] table's "forwarding.rules[1].principals[0]") without checking again.
type PolicyError struct {
	// Rule is the index of the rule at fault; -1 for the policy's Default.
	Rule int
	// Field is "default", "action", "target", "principals" or "transports".
	Field string
	// Item is the index in Principals or Transports; -1 for the other fields.
	Item int
	// Msg says what is wrong ("empty principal").
	Msg string
	err error // a sentinel such as ErrInvalidTarget, or nil
}

// Error names the rule and the problem: "ssh: forwarding rule 2: empty principal".
func (e *PolicyError) Error() string {
	if e.Rule < 0 {
		return "ssh: forwarding policy: " + e.Msg
	}
	return fmt.Sprintf("ssh: forwarding rule %d: %s", e.Rule, e.Msg)
}

// Unwrap returns the sentinel the problem matches (ErrInvalidTarget for a rule without
// a target), or nil.
func (e *PolicyError) Unwrap() error { return e.err }

// Resolver resolves destination names; *net.Resolver satisfies it.
type Resolver interface {
	// LookupNetIP looks up host ("ip" network) and returns its addresses.
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Decision is the answer of ForwardingPolicy.Check. Its String never contains the
// destination.
type Decision struct {
	// Allowed reports whether the policy permits the request.
	Allowed bool
	// Rule is the index of the rule that decided, or -1 for the policy's default.
	Rule int
	// Reserved reports that the host is an alknet- name: it is never resolved nor
	// dialled over the network, whatever Allowed says.
	Reserved bool
	// Unresolved reports an allowed host name that Check did not resolve, since no
	// rule that could decide it looks at addresses: Addrs is nil and the caller
	// resolves the name (LookupDestination) to dial any of its addresses.
	Unresolved bool
	// Addrs, when Allowed and neither Reserved nor Unresolved, are the vetted
	// addresses to dial, in resolver order (the address itself for an IP literal;
	// IPv4-mapped addresses unmapped, zones dropped).
	Addrs []netip.Addr
}

// String describes the decision without its destination, such as "allow by rule
// 2" or "deny by default, reserved".
func (d Decision) String() string {
	s := "deny"
	if d.Allowed {
		s = "allow"
	}
	if d.Rule < 0 {
		s += " by default"
	} else {
		s += " by rule " + strconv.Itoa(d.Rule)
	}
	if d.Reserved {
		s += ", reserved"
	}
	return s
}

// Check decides a request by identity id (nil for none), arriving over transport,
// to connect to host:port: the first rule that matches decides, else the default.
//
// The host is normalised first: longer than MaxHostLength, empty or malformed is an
// error wrapping ErrInvalidHost; it is lower-cased, loses one trailing dot, and an
// IPv6 literal may come bracketed. An alknet- name is Reserved: it is decided once
// (cidr rules never match it) and never resolved. An IP literal is decided once,
// host and ports rules matching its canonical text and cidr rules the address.
//
// A host name is resolved only when its addresses can change the answer:
//
//  1. Rules whose principals or transports do not match id and transport are
//     skipped: they match neither the name nor any of its addresses.
//  2. The first of the other rules that is not a cidr rule and matches the name and
//     port (any, host, ports) is the name's rule; with none, the default is. The
//     cidr rules before it are the address rules: only they could decide an
//     address of the name differently.
//  3. When every address rule has the action of the name's rule (in particular when
//     there is none), the name's rule decides without any lookup: Rule is its index
//     (-1 for the default), and if it allows, Unresolved is set and Addrs is nil.
//     So a name the rules refuse whatever its addresses is refused like an address:
//     a Decision and no error, the same whether the name exists or not.
//  4. Otherwise the name is resolved once with r (net.DefaultResolver when nil; a
//     name written with a trailing dot is looked up fully qualified) and each
//     address is decided on its own by all the rules, first match wins, host and
//     ports rules matching the name and cidr rules the address (that is, by the
//     first address rule whose net holds it, else by the name's rule). The request
//     is allowed only if every address is, with Rule the rule that decided the
//     first address and Addrs every address; otherwise Rule is the rule that denied
//     the first denied address.
//  5. A lookup that yields no address (see below) decides like an address no cidr rule holds:
//     by the name's rule. If it denies, the Decision is that refusal (Rule its
//     index, -1 for the default) and no error, exactly what an IP literal outside
//     every cidr rule would get, so a refused name looks the same whether it exists
//     or not. If it allows, there is nothing to dial: the error wraps ErrResolve.
//     A name allowed without any address is never made Unresolved, since its
//     addresses, once it resolves, could be ones the address rules refuse.
//
// Every failed lookup counts as one with no address, except one cut short by
// ctx: no such host, no data, an empty answer or one holding an invalid address,
// and equally a server failure (SERVFAIL) or the resolver's own query timeout
// (*net.DNSError with IsTemporary or IsTimeout) and any error of another
// Resolver. Check cannot tell a transient failure of a name its addresses would
// allow from one of a name they would deny, and if these failures were errors,
// whether a refused name's lookup fails transiently would tell it apart again. So
// this fails closed: during a DNS outage a name that only a cidr rule would allow
// is refused by policy, not reported unresolvable. A lookup is cut short by ctx
// when ctx is done or the resolver's error is context.Canceled or
// context.DeadlineExceeded (as net.Resolver's is when ctx ends): that is an
// error wrapping ErrResolve and the resolver's error, whatever the rules say.
//
// Step 3 changes no answer that a lookup could give: where it skips the lookup,
// every address would be decided alike (though Rule then names the name's rule
// rather than an address rule of the same action), and no address at all by the
// name's rule (though an allowed name is then Unresolved rather than an error).
// Check's errors never contain the host or the port; on error the Decision
// denies, with Rule -1.
func (p *ForwardingPolicy) Check(ctx context.Context, r Resolver, id *core.Identity, transport, host string, port uint16) (Decision, error) {
	name, addr, dot, err := parseDestination(host)
	if err != nil {
		return Decision{Rule: -1}, err
	}
	if addr.IsValid() {
		allowed, rule := p.decide(id, transport, name, addr, port)
		d := Decision{Allowed: allowed, Rule: rule}
		if allowed {
			d.Addrs = []netip.Addr{addr}
		}
		return d, nil
	}
	if strings.HasPrefix(name, reservedPrefix) {
		allowed, rule := p.decide(id, transport, name, netip.Addr{}, port)
		return Decision{Allowed: allowed, Rule: rule, Reserved: true}, nil
	}
	allowed, rule, needAddrs := p.decideName(id, transport, name, port)
	if !needAddrs {
		return Decision{Allowed: allowed, Rule: rule, Unresolved: allowed}, nil
	}
	addrs, err := lookupName(ctx, r, name, dot)
	if err != nil {
		if allowed || lookupInterrupted(ctx, err) {
			return Decision{Rule: -1}, err
		}
		// No address for a cidr rule to match: the name's rule refuses it.
		return Decision{Rule: rule}, nil
	}
	first := -1
	for i, a := range addrs {
		allowed, rule := p.decide(id, transport, name, a, port)
		if !allowed {
			return Decision{Rule: rule}, nil
		}
		if i == 0 {
			first = rule
		}
	}
	return Decision{Allowed: true, Rule: first, Addrs: addrs}, nil
}

// LookupDestination resolves a destination host as Check does when it needs the
// addresses, for dialling a Decision that is Unresolved: the host is normalised
// (errors wrap ErrInvalidHost), an IP literal is its own address, and a name is
// resolved with r (net.DefaultResolver when nil), fully qualified when written
// with a trailing dot. The addresses come unmapped and without zones. A reserved
// alknet- name is never resolved: it is an error wrapping ErrInvalidHost. A
// failed resolution, one with no address, or one with an invalid address is an
// error wrapping ErrResolve. The errors never contain the host.
func LookupDestination(ctx context.Context, r Resolver, host string) ([]netip.Addr, error) {
	name, addr, dot, err := parseDestination(host)
	if err != nil {
		return nil, err
	}
	if addr.IsValid() {
		return []netip.Addr{addr}, nil
	}
	if strings.HasPrefix(name, reservedPrefix) {
		return nil, fmt.Errorf("%w: reserved name", ErrInvalidHost)
	}
	return lookupName(ctx, r, name, dot)
}

// parseDestination normalises a destination host (see normalizeHost); its error
// wraps ErrInvalidHost and never contains the host.
func parseDestination(host string) (name string, addr netip.Addr, dot bool, err error) {
	if len(host) > MaxHostLength {
		return "", netip.Addr{}, false, fmt.Errorf("%w: host longer than %d bytes", ErrInvalidHost, MaxHostLength)
	}
	name, addr, dot, reason := normalizeHost(host, false)
	if reason != "" {
		return "", netip.Addr{}, false, fmt.Errorf("%w: %s", ErrInvalidHost, reason)
	}
	return name, addr, dot, nil
}

// lookupName resolves a normalised host name with r (net.DefaultResolver when
// nil), restoring its trailing dot when it had one (keeping it fully qualified: no
// search domains). It returns at least one address, each unmapped and without a
// zone, or an error wrapping ErrResolve.
func lookupName(ctx context.Context, r Resolver, name string, dot bool) ([]netip.Addr, error) {
	if r == nil {
		r = net.DefaultResolver
	}
	lookup := name
	if dot {
		lookup += "."
	}
	addrs, err := r.LookupNetIP(ctx, "ip", lookup)
	if err != nil {
		return nil, &resolveError{cause: err}
	}
	if len(addrs) == 0 {
		return nil, &resolveError{reason: "no address"}
	}
	out := make([]netip.Addr, 0, len(addrs))
	for _, a := range addrs {
		if !a.IsValid() {
			return nil, &resolveError{reason: "invalid address"}
		}
		// A zoned address never matches a cidr rule; dial it without its zone.
		out = append(out, a.WithZone("").Unmap())
	}
	return out, nil
}

// lookupInterrupted reports whether a failed lookup was cut short by ctx rather
// than answered: ctx is done, or the resolver's error is a context error.
func lookupInterrupted(ctx context.Context, err error) bool {
	return ctx.Err() != nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// decideName decides a host name (not an IP literal, not reserved) from the rules
// alone, steps 1 to 3 of Check: rule is the name's rule (-1 for the default) and
// allowed its action; needAddrs reports that an address rule before it has the
// other action, so that the answer depends on the name's addresses.
func (p *ForwardingPolicy) decideName(id *core.Identity, transport, name string, port uint16) (allowed bool, rule int, needAddrs bool) {
	if p == nil {
		return false, -1, false
	}
	var cidrAllow, cidrDeny bool
	allowed, rule = p.Default == Allow, -1
	for i := range p.Rules {
		r := &p.Rules[i]
		if !r.matchesIdentity(id) || !r.matchesTransport(transport) {
			continue
		}
		if r.Target.kind == kindCIDR {
			if r.Action == Allow {
				cidrAllow = true
			} else {
				cidrDeny = true
			}
			continue
		}
		if r.Target.match(name, netip.Addr{}, port) {
			allowed, rule = r.Action == Allow, i
			break
		}
	}
	if allowed {
		return allowed, rule, cidrDeny
	}
	return allowed, rule, cidrAllow
}

// decide runs the rules once for one (name, address) pair: first match wins, else
// the default.
func (p *ForwardingPolicy) decide(id *core.Identity, transport, name string, addr netip.Addr, port uint16) (allowed bool, rule int) {
	if p == nil {
		return false, -1
	}
	for i := range p.Rules {
		r := &p.Rules[i]
		if r.Target.match(name, addr, port) && r.matchesIdentity(id) && r.matchesTransport(transport) {
			return r.Action == Allow, i
		}
	}
	return p.Default == Allow, -1
}

// resolveError is Check's resolution failure. Its text never names the host (a
// resolver's own error, such as *net.DNSError, does), but it unwraps to
// ErrResolve and to the resolver's error for errors.Is and errors.As.
type resolveError struct {
	cause  error
	reason string
}

// Error returns a destination-free message.
func (e *resolveError) Error() string {
	switch {
	case e.reason != "":
		return ErrResolve.Error() + ": " + e.reason
	case errors.Is(e.cause, context.Canceled):
		return ErrResolve.Error() + ": " + context.Canceled.Error()
	case errors.Is(e.cause, context.DeadlineExceeded):
		return ErrResolve.Error() + ": " + context.DeadlineExceeded.Error()
	}
	return ErrResolve.Error()
}

// Unwrap returns ErrResolve and the resolver's error, if any.
func (e *resolveError) Unwrap() []error {
	if e.cause == nil {
		return []error{ErrResolve}
	}
	return []error{ErrResolve, e.cause}
}
