package ssh_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/ssh"
)

// policyResolver is a fake ssh.Resolver: names resolve from addrs (keyed by the
// exact name looked up), err fails every lookup, forbid fails the test when called.
type policyResolver struct {
	t      testing.TB
	addrs  map[string][]netip.Addr
	err    error
	forbid bool

	mu    sync.Mutex
	names []string
}

// LookupNetIP implements ssh.Resolver.
func (r *policyResolver) LookupNetIP(_ context.Context, network, host string) ([]netip.Addr, error) {
	r.mu.Lock()
	r.names = append(r.names, host)
	r.mu.Unlock()
	if r.forbid {
		r.t.Errorf("resolver called for a host that must not be resolved")
	}
	if network != "ip" {
		r.t.Errorf("LookupNetIP network = %q, want ip", network)
	}
	if r.err != nil {
		return nil, r.err
	}
	a, ok := r.addrs[host]
	if !ok {
		return nil, errors.New("lookup " + host + ": no such host")
	}
	return a, nil
}

// lookups returns the names looked up so far.
func (r *policyResolver) lookups() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.names)
}

// policyRule is a test rule in configuration syntax.
type policyRule struct {
	target     string
	action     ssh.Action
	principals []string
	transports []string
}

// policyOf builds a policy from configuration-syntax rules.
func policyOf(tb testing.TB, def ssh.Action, rules ...policyRule) *ssh.ForwardingPolicy {
	tb.Helper()
	p := &ssh.ForwardingPolicy{Default: def}
	for _, r := range rules {
		t, err := ssh.ParseTarget(r.target)
		if err != nil {
			tb.Fatalf("ParseTarget(%q): %v", r.target, err)
		}
		p.Rules = append(p.Rules, ssh.Rule{Target: t, Action: r.action, Principals: r.principals, Transports: r.transports})
	}
	return p
}

// policyAddrs parses IP addresses.
func policyAddrs(ss ...string) []netip.Addr {
	out := make([]netip.Addr, 0, len(ss))
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

// policySameDecision reports whether got equals want, treating nil and empty Addrs alike.
func policySameDecision(got, want ssh.Decision) bool {
	return got.Allowed == want.Allowed && got.Rule == want.Rule && got.Reserved == want.Reserved &&
		got.Unresolved == want.Unresolved && slices.Equal(got.Addrs, want.Addrs)
}

// policyFmt prints every field of a Decision (its String leaves out the addresses).
func policyFmt(d ssh.Decision) string {
	return fmt.Sprintf("{Allowed:%v Rule:%d Reserved:%v Unresolved:%v Addrs:%v}", d.Allowed, d.Rule, d.Reserved, d.Unresolved, d.Addrs)
}

// policyUnresolved is the Decision of a name allowed by rule without a lookup.
func policyUnresolved(rule int) ssh.Decision {
	return ssh.Decision{Allowed: true, Rule: rule, Unresolved: true}
}

// policyCase is one Check call and its expected Decision.
type policyCase struct {
	name      string
	policy    *ssh.ForwardingPolicy
	dns       map[string][]netip.Addr
	id        *core.Identity
	transport string
	host      string
	port      uint16
	want      ssh.Decision
}

// policyRunCases runs Check for each case and compares the Decision.
func policyRunCases(t *testing.T, cases []policyCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := &policyResolver{t: t, addrs: tc.dns}
			transport := tc.transport
			if transport == "" {
				transport = ssh.TransportQUIC
			}
			got, err := tc.policy.Check(context.Background(), r, tc.id, transport, tc.host, tc.port)
			if err != nil {
				t.Fatalf("Check: %v", err)
			}
			if !policySameDecision(got, tc.want) {
				t.Fatalf("Check = %s, want %s", policyFmt(got), policyFmt(tc.want))
			}
			// A literal is never looked up, an Unresolved name neither, and a name
			// allowed with addresses exactly once.
			n := len(r.lookups())
			_, literal := netip.ParseAddr(strings.TrimSuffix(strings.Trim(tc.host, "[]"), "."))
			switch {
			case literal == nil && n != 0:
				t.Fatalf("IP literal looked up %d times", n)
			case got.Unresolved && n != 0:
				t.Fatalf("Unresolved decision after %d lookups", n)
			case literal != nil && len(got.Addrs) > 0 && n != 1:
				t.Fatalf("name allowed with addresses after %d lookups, want 1", n)
			}
		})
	}
}

// policyAlice is an identity carrying the ssh:forward scope.
func policyAlice() *core.Identity {
	return &core.Identity{ID: "alice", Scopes: []string{"ssh:forward"}}
}

// policyBob is an identity without scopes.
func policyBob() *core.Identity { return &core.Identity{ID: "bob"} }

func TestActionStringAndParse(t *testing.T) {
	tests := []struct {
		text    string
		want    ssh.Action
		wantErr bool
	}{
		{text: "allow", want: ssh.Allow},
		{text: "deny", want: ssh.Deny},
		{text: "Allow", wantErr: true},
		{text: "", wantErr: true},
		{text: " allow", wantErr: true},
	}
	for _, tc := range tests {
		got, err := ssh.ParseAction(tc.text)
		if (err != nil) != tc.wantErr {
			t.Fatalf("ParseAction(%q) error = %v, want error %v", tc.text, err, tc.wantErr)
		}
		if err == nil && (got != tc.want || got.String() != tc.text) {
			t.Fatalf("ParseAction(%q) = %v, want %v", tc.text, got, tc.want)
		}
	}
	if s := ssh.Action(7).String(); s != "Action(7)" {
		t.Fatalf("Action(7).String() = %q", s)
	}
	if _, err := ssh.Action(7).MarshalText(); err == nil {
		t.Fatalf("Action(7).MarshalText succeeded")
	}
}

func TestParseTargetRoundTrip(t *testing.T) {
	tests := []struct {
		text, want string
	}{
		{"any", "any"},
		{"alknet", "alknet"},
		{"host:example.com", "host:example.com"},
		{"host:*.example.com", "host:*.example.com"},
		{"host:db-*", "host:db-*"},
		{"host:*", "host:*"},
		{"host:Example.COM.", "host:example.com"},
		{"host:10.0.0.1", "host:10.0.0.1"},
		{"host:::1", "host:::1"},
		{"host:[::1]", "host:::1"},
		{"host:[0:0::1]", "host:::1"},
		{"host:::ffff:127.0.0.1", "host:127.0.0.1"},
		{"host:10.0.*", "host:10.0.*"},
		{"cidr:10.0.0.0/8", "cidr:10.0.0.0/8"},
		{"cidr:10.1.2.3/8", "cidr:10.0.0.0/8"},
		{"cidr:fd00::/8", "cidr:fd00::/8"},
		{"cidr:::ffff:10.0.0.0/104", "cidr:10.0.0.0/8"},
		{"cidr:0.0.0.0/0", "cidr:0.0.0.0/0"},
		{"ports:localhost:8080-8090", "ports:localhost:8080-8090"},
		{"ports:localhost:22", "ports:localhost:22"},
		{"ports:localhost:22-22", "ports:localhost:22"},
		{"ports:*:0-65535", "ports:*:0-65535"},
		{"ports:[::1]:22", "ports:[::1]:22"},
		{"ports:::1:22", "ports:[::1]:22"},
		{"ports:*.Example.com:443", "ports:*.example.com:443"},
	}
	for _, tc := range tests {
		t.Run(tc.text, func(t *testing.T) {
			tg, err := ssh.ParseTarget(tc.text)
			if err != nil {
				t.Fatalf("ParseTarget(%q): %v", tc.text, err)
			}
			if got := tg.String(); got != tc.want {
				t.Fatalf("ParseTarget(%q).String() = %q, want %q", tc.text, got, tc.want)
			}
			again, err := ssh.ParseTarget(tg.String())
			if err != nil {
				t.Fatalf("ParseTarget(%q) (round trip): %v", tg.String(), err)
			}
			if again != tg {
				t.Fatalf("round trip of %q changed the target: %v != %v", tc.text, again, tg)
			}
		})
	}
}

func TestParseTargetInvalid(t *testing.T) {
	tests := []string{
		"",
		"all",
		"ANY",
		"any ",
		"alknet-",
		"dns:example.com",
		"host:",
		"host:.",
		"host:..",
		"host:a..",
		"host:a*b*c",
		"host:**",
		"host:a b",
		"host:[example.com]",
		"host:[::1",
		"host:a:b",
		"host:fe80::1%eth0",
		"host:" + strings.Repeat("a", 254),
		"cidr:",
		"cidr:not-a-net",
		"cidr:10.0.0.0",
		"cidr:10.0.0.0/33",
		"cidr:::1/129",
		"ports:localhost",
		"ports:localhost:",
		"ports::22",
		"ports:localhost:90-80",
		"ports:localhost:65536",
		"ports:localhost:1-65536",
		"ports:localhost:-1",
		"ports:localhost:-1-5",
		"ports:localhost:+22",
		"ports:localhost: 22",
		"ports:localhost:22-",
		"ports:x:1-2-3",
		"ports:a*b*:22",
		"ports:" + strings.Repeat("x", 2000) + ":22",
	}
	for _, text := range tests {
		t.Run(text, func(t *testing.T) {
			tg, err := ssh.ParseTarget(text)
			if err == nil {
				t.Fatalf("ParseTarget(%q) = %v, want error", text, tg)
			}
			if !errors.Is(err, ssh.ErrInvalidTarget) {
				t.Fatalf("ParseTarget(%q) error %v does not wrap ErrInvalidTarget", text, err)
			}
			if len(err.Error()) > 400 {
				t.Fatalf("ParseTarget error of %d bytes: config text not clipped", len(err.Error()))
			}
		})
	}
}

func TestTargetTextMarshal(t *testing.T) {
	in := `{"Target":"ports:*.example.com:8080-8090","Action":"allow"}`
	var r ssh.Rule
	if err := json.Unmarshal([]byte(in), &r); err != nil {
		t.Fatalf("Unmarshal: %v", err)
	}
	if r.Target.String() != "ports:*.example.com:8080-8090" || r.Action != ssh.Allow {
		t.Fatalf("decoded %v %v", r.Target, r.Action)
	}
	out, err := json.Marshal(struct {
		Target ssh.Target
		Action ssh.Action
	}{r.Target, r.Action})
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	if string(out) != in {
		t.Fatalf("Marshal = %s, want %s", out, in)
	}
	if err := json.Unmarshal([]byte(`{"Target":"bogus"}`), &r); !errors.Is(err, ssh.ErrInvalidTarget) {
		t.Fatalf("Unmarshal of a bad target: %v", err)
	}
	if _, err := (ssh.Target{}).MarshalText(); err == nil {
		t.Fatalf("zero Target marshalled")
	}
	if s := (ssh.Target{}).String(); s != "none" {
		t.Fatalf("zero Target String() = %q", s)
	}
}

func TestPolicyGlob(t *testing.T) {
	web := policyAddrs("192.0.2.10")
	dns := map[string][]netip.Addr{
		"a.example.com": web, "a.example.com.": web, "example.com": web, "b.a.example.com": web,
		"db-primary": web, "db-": web, "db": web, "app.internal": web, "app.external": web,
		"anything.test": web,
	}
	tests := []struct {
		glob  string
		host  string
		match bool
	}{
		{"*.example.com", "a.example.com", true},
		{"*.example.com", "b.a.example.com", true},
		{"*.example.com", "example.com", false},
		{"*.example.com", "A.EXAMPLE.COM", true},
		{"*.example.com", "a.example.com.", true},
		{"*.EXAMPLE.com", "a.example.com", true},
		{"example.com", "example.com", true},
		{"example.com", "a.example.com", false},
		{"db-*", "db-primary", true},
		{"db-*", "db-", true},
		{"db-*", "db", false},
		{"*.internal", "app.internal", true},
		{"*.internal", "app.external", false},
		{"*", "anything.test", true},
		{"*", "192.0.2.1", true},
		{"*", "::1", true},
		{"192.0.2.*", "192.0.2.7", true},
		{"192.0.2.*", "192.0.3.7", false},
		{"::1", "[::1]", true},
		{"::1", "0:0::1", true},
		{"127.0.0.1", "::ffff:127.0.0.1", true},
	}
	for _, tc := range tests {
		t.Run(tc.glob+"~"+tc.host, func(t *testing.T) {
			p := policyOf(t, ssh.Deny, policyRule{target: "host:" + tc.glob, action: ssh.Allow})
			d, err := p.Check(context.Background(), &policyResolver{t: t, addrs: dns}, nil, ssh.TransportTCP, tc.host, 80)
			if err != nil {
				t.Fatalf("Check: %v", err)
			}
			if d.Allowed != tc.match {
				t.Fatalf("glob %q host %q: Allowed = %v, want %v", tc.glob, tc.host, d.Allowed, tc.match)
			}
			wantRule := -1
			if tc.match {
				wantRule = 0
			}
			if d.Rule != wantRule {
				t.Fatalf("Rule = %d, want %d", d.Rule, wantRule)
			}
		})
	}
}

func TestPolicyCIDR(t *testing.T) {
	deny10 := policyOf(t, ssh.Allow, policyRule{target: "cidr:10.0.0.0/8", action: ssh.Deny})
	allow10 := policyOf(t, ssh.Deny, policyRule{target: "cidr:10.0.0.0/8", action: ssh.Allow})
	allowMappedNet := policyOf(t, ssh.Deny, policyRule{target: "cidr:::ffff:10.0.0.0/104", action: ssh.Allow})
	allowV6 := policyOf(t, ssh.Deny, policyRule{target: "cidr:fd00::/8", action: ssh.Allow})
	dns := map[string][]netip.Addr{
		"inside.test":  policyAddrs("10.1.2.3"),
		"outside.test": policyAddrs("192.0.2.1"),
		"mapped.test":  policyAddrs("::ffff:10.9.9.9"),
		"v6.test":      policyAddrs("fd00::5"),
		"zoned.test":   {netip.MustParseAddr("fd00::5").WithZone("eth0")},
	}
	policyRunCases(t, []policyCase{
		{name: "literal inside", policy: deny10, host: "10.0.0.1", want: ssh.Decision{Rule: 0}},
		{name: "literal outside", policy: deny10, host: "192.0.2.1", want: ssh.Decision{Allowed: true, Rule: -1, Addrs: policyAddrs("192.0.2.1")}},
		{name: "resolved inside", policy: deny10, dns: dns, host: "inside.test", want: ssh.Decision{Rule: 0}},
		{name: "resolved outside", policy: deny10, dns: dns, host: "outside.test", want: ssh.Decision{Allowed: true, Rule: -1, Addrs: policyAddrs("192.0.2.1")}},
		{name: "name never matches cidr", policy: allow10, dns: map[string][]netip.Addr{"not-an-ip": policyAddrs("192.0.2.1")}, host: "not-an-ip", want: ssh.Decision{Rule: -1}},
		{name: "v4-mapped literal unmapped", policy: deny10, host: "::ffff:10.0.0.1", want: ssh.Decision{Rule: 0}},
		{name: "v4-mapped bracketed literal unmapped", policy: allow10, host: "[::ffff:10.0.0.1]", want: ssh.Decision{Allowed: true, Rule: 0, Addrs: policyAddrs("10.0.0.1")}},
		{name: "v4-mapped resolved unmapped", policy: deny10, dns: dns, host: "mapped.test", want: ssh.Decision{Rule: 0}},
		{name: "v4-mapped resolved allowed", policy: allow10, dns: dns, host: "mapped.test", want: ssh.Decision{Allowed: true, Rule: 0, Addrs: policyAddrs("10.9.9.9")}},
		{name: "v4-mapped net stored as v4", policy: allowMappedNet, host: "10.2.3.4", want: ssh.Decision{Allowed: true, Rule: 0, Addrs: policyAddrs("10.2.3.4")}},
		{name: "v6 literal", policy: allowV6, host: "fd00::1", want: ssh.Decision{Allowed: true, Rule: 0, Addrs: policyAddrs("fd00::1")}},
		{name: "v6 outside", policy: allowV6, host: "fe80::1", want: ssh.Decision{Rule: -1}},
		{name: "zoned resolved address matched without zone", policy: allowV6, dns: dns, host: "zoned.test", want: ssh.Decision{Allowed: true, Rule: 0, Addrs: policyAddrs("fd00::5")}},
	})
}

func TestPolicyPorts(t *testing.T) {
	p := policyOf(t, ssh.Deny,
		policyRule{target: "ports:localhost:8080-8090", action: ssh.Allow},
		policyRule{target: "ports:*.example.com:22", action: ssh.Allow},
		policyRule{target: "ports:*:0-0", action: ssh.Allow},
	)
	lo := policyAddrs("127.0.0.1")
	dns := map[string][]netip.Addr{"localhost": lo, "otherhost": lo, "a.example.com": lo}
	// Names allowed by ports rules need no address: none is looked up.
	allowed := policyUnresolved
	policyRunCases(t, []policyCase{
		{name: "lo-1", policy: p, dns: dns, host: "localhost", port: 8079, want: ssh.Decision{Rule: -1}},
		{name: "lo", policy: p, dns: dns, host: "localhost", port: 8080, want: allowed(0)},
		{name: "middle", policy: p, dns: dns, host: "localhost", port: 8085, want: allowed(0)},
		{name: "hi", policy: p, dns: dns, host: "localhost", port: 8090, want: allowed(0)},
		{name: "hi+1", policy: p, dns: dns, host: "localhost", port: 8091, want: ssh.Decision{Rule: -1}},
		{name: "other host in range", policy: p, dns: dns, host: "otherhost", port: 8085, want: ssh.Decision{Rule: -1}},
		{name: "literal text is not the name", policy: p, host: "127.0.0.1", port: 8085, want: ssh.Decision{Rule: -1}},
		{name: "single port", policy: p, dns: dns, host: "a.example.com", port: 22, want: allowed(1)},
		{name: "single port 21", policy: p, dns: dns, host: "a.example.com", port: 21, want: ssh.Decision{Rule: -1}},
		{name: "single port 23", policy: p, dns: dns, host: "a.example.com", port: 23, want: ssh.Decision{Rule: -1}},
		{name: "port zero", policy: p, dns: dns, host: "otherhost", port: 0, want: allowed(2)},
		{name: "port 65535", policy: policyOf(t, ssh.Deny, policyRule{target: "ports:*:65535", action: ssh.Allow}), dns: dns, host: "otherhost", port: 65535, want: allowed(0)},
	})
}

func TestPolicyPrincipalsAndTransports(t *testing.T) {
	web := policyAddrs("192.0.2.10")
	dns := map[string][]netip.Addr{"web.test": web}
	byID := policyOf(t, ssh.Deny, policyRule{target: "any", action: ssh.Allow, principals: []string{"bob"}})
	byScope := policyOf(t, ssh.Deny, policyRule{target: "any", action: ssh.Allow, principals: []string{"ssh:forward"}})
	anyone := policyOf(t, ssh.Deny, policyRule{target: "any", action: ssh.Allow})
	emptyPrincipal := policyOf(t, ssh.Deny, policyRule{target: "any", action: ssh.Allow, principals: []string{""}})
	quicOnly := policyOf(t, ssh.Deny, policyRule{target: "any", action: ssh.Allow, transports: []string{ssh.TransportQUIC, ssh.TransportTLS}})
	ok := policyUnresolved(0) // an "any" rule needs no address
	no := ssh.Decision{Rule: -1}
	policyRunCases(t, []policyCase{
		{name: "principal by ID", policy: byID, dns: dns, id: policyBob(), host: "web.test", want: ok},
		{name: "principal by ID other identity", policy: byID, dns: dns, id: policyAlice(), host: "web.test", want: no},
		{name: "principal by scope", policy: byScope, dns: dns, id: policyAlice(), host: "web.test", want: ok},
		{name: "principal by scope missing", policy: byScope, dns: dns, id: policyBob(), host: "web.test", want: no},
		{name: "nil identity with principals", policy: byID, dns: dns, host: "web.test", want: no},
		{name: "nil identity without principals", policy: anyone, dns: dns, host: "web.test", want: ok},
		{name: "empty principal never matches", policy: emptyPrincipal, dns: dns, id: &core.Identity{}, host: "web.test", want: no},
		{name: "transport quic", policy: quicOnly, dns: dns, transport: ssh.TransportQUIC, host: "web.test", want: ok},
		{name: "transport tls", policy: quicOnly, dns: dns, transport: ssh.TransportTLS, host: "web.test", want: ok},
		{name: "transport tcp filtered", policy: quicOnly, dns: dns, transport: ssh.TransportTCP, host: "web.test", want: no},
		{name: "no transport filter", policy: anyone, dns: dns, transport: ssh.TransportTCP, host: "web.test", want: ok},
	})
}

func TestPolicyOrderAndDefault(t *testing.T) {
	web := policyAddrs("192.0.2.10")
	dns := map[string][]netip.Addr{"web.test": web, "other.test": web}
	ordered := policyOf(t, ssh.Allow,
		policyRule{target: "host:web.test", action: ssh.Deny, principals: []string{"bob"}},
		policyRule{target: "host:*.test", action: ssh.Allow},
		policyRule{target: "host:web.test", action: ssh.Deny},
	)
	policyRunCases(t, []policyCase{
		{name: "first match denies", policy: ordered, dns: dns, id: policyBob(), host: "web.test", want: ssh.Decision{Rule: 0}},
		{name: "first match allows before later deny", policy: ordered, dns: dns, id: policyAlice(), host: "web.test", want: policyUnresolved(1)},
		{name: "default allow", policy: policyOf(t, ssh.Allow), dns: dns, host: "web.test", want: policyUnresolved(-1)},
		{name: "default deny", policy: policyOf(t, ssh.Deny, policyRule{target: "host:other.test", action: ssh.Allow}), dns: dns, host: "web.test", want: ssh.Decision{Rule: -1}},
		{name: "zero-value policy denies", policy: &ssh.ForwardingPolicy{}, dns: dns, host: "web.test", want: ssh.Decision{Rule: -1}},
		{name: "zero-value policy denies literal", policy: &ssh.ForwardingPolicy{}, host: "127.0.0.1", want: ssh.Decision{Rule: -1}},
		{name: "nil policy denies", policy: nil, dns: dns, host: "web.test", want: ssh.Decision{Rule: -1}},
		{name: "zero Target matches nothing", policy: &ssh.ForwardingPolicy{Default: ssh.Deny, Rules: []ssh.Rule{{Action: ssh.Allow}}}, dns: dns, host: "web.test", want: ssh.Decision{Rule: -1}},
		{name: "unknown action denies", policy: &ssh.ForwardingPolicy{Default: ssh.Allow, Rules: []ssh.Rule{{Target: policyTarget(t, "any"), Action: ssh.Action(9)}}}, dns: dns, host: "web.test", want: ssh.Decision{Rule: 0}},
	})
}

// policyTarget parses a target or fails the test.
func policyTarget(tb testing.TB, s string) ssh.Target {
	tb.Helper()
	tg, err := ssh.ParseTarget(s)
	if err != nil {
		tb.Fatalf("ParseTarget(%q): %v", s, err)
	}
	return tg
}

func TestPolicyReserved(t *testing.T) {
	allowAny := policyOf(t, ssh.Deny, policyRule{target: "any", action: ssh.Allow})
	denyAll := &ssh.ForwardingPolicy{}
	alknetRule := policyOf(t, ssh.Deny,
		policyRule{target: "cidr:0.0.0.0/0", action: ssh.Allow},
		policyRule{target: "alknet", action: ssh.Allow, principals: []string{"alice"}},
	)
	tests := []struct {
		name   string
		policy *ssh.ForwardingPolicy
		id     *core.Identity
		host   string
		want   ssh.Decision
	}{
		{name: "allow-any still reserved", policy: allowAny, host: "alknet-vault", want: ssh.Decision{Allowed: true, Rule: 0, Reserved: true}},
		{name: "deny-all reserved", policy: denyAll, host: "alknet-vault", want: ssh.Decision{Rule: -1, Reserved: true}},
		{name: "upper case and dot", policy: allowAny, host: "ALKNET-Vault.", want: ssh.Decision{Allowed: true, Rule: 0, Reserved: true}},
		{name: "bare prefix", policy: allowAny, host: "alknet-", want: ssh.Decision{Allowed: true, Rule: 0, Reserved: true}},
		{name: "alknet rule by principal", policy: alknetRule, id: policyAlice(), host: "alknet-call", want: ssh.Decision{Allowed: true, Rule: 1, Reserved: true}},
		{name: "alknet rule other principal", policy: alknetRule, id: policyBob(), host: "alknet-call", want: ssh.Decision{Rule: -1, Reserved: true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := &policyResolver{t: t, forbid: true}
			d, err := tc.policy.Check(context.Background(), r, tc.id, ssh.TransportQUIC, tc.host, 443)
			if err != nil {
				t.Fatalf("Check: %v", err)
			}
			if !policySameDecision(d, tc.want) || d.Addrs != nil {
				t.Fatalf("Check = %s, want %s", policyFmt(d), policyFmt(tc.want))
			}
		})
	}
	// "alknet" without the dash is an ordinary name: resolved, and not matched by
	// the alknet target.
	r := &policyResolver{t: t, addrs: map[string][]netip.Addr{"alknet.example.com": policyAddrs("192.0.2.1")}}
	d, err := alknetRule.Check(context.Background(), r, policyAlice(), ssh.TransportQUIC, "alknet.example.com", 443)
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	if want := (ssh.Decision{Allowed: true, Rule: 0, Addrs: policyAddrs("192.0.2.1")}); !policySameDecision(d, want) {
		t.Fatalf("Check(alknet.example.com) = %s, want %s", policyFmt(d), policyFmt(want))
	}
}

// TestPolicyResolvesOnlyWhenAddressesMatter: a host name is looked up only when a
// cidr rule that could match it (its principals and transports match, and it comes
// before the rule that decides the name) has the other action than that rule; else
// the rules decide without a lookup, whether the name exists or not.
func TestPolicyResolvesOnlyWhenAddressesMatter(t *testing.T) {
	corp := policyAddrs("192.0.2.7")
	inside := policyAddrs("10.1.2.3")
	denyInternalAllowCorp := policyOf(t, ssh.Deny,
		policyRule{target: "cidr:10.0.0.0/8", action: ssh.Deny},
		policyRule{target: "ports:*.corp:443", action: ssh.Allow},
	)
	tests := []struct {
		name    string
		policy  *ssh.ForwardingPolicy
		id      *core.Identity
		host    string
		port    uint16
		dns     map[string][]netip.Addr // every other name: no such host
		want    ssh.Decision
		wantErr error
		lookups int
	}{
		// Denied from the rules alone: no lookup, no error.
		{name: "uncovered port under default deny", policy: policyOf(t, ssh.Deny, policyRule{target: "ports:localhost:8080-8090", action: ssh.Allow}),
			host: "secret-db.internal", port: 5432, want: ssh.Decision{Rule: -1}},
		{name: "uncovered port behind a deny cidr", policy: denyInternalAllowCorp, host: "secret-db.corp", port: 5432, want: ssh.Decision{Rule: -1}},
		{name: "uncovered port, the name exists", policy: denyInternalAllowCorp, dns: map[string][]netip.Addr{"db.corp": inside}, host: "db.corp", port: 5432, want: ssh.Decision{Rule: -1}},
		{name: "denied by host glob before a cidr", policy: policyOf(t, ssh.Allow,
			policyRule{target: "host:*.internal", action: ssh.Deny},
			policyRule{target: "cidr:10.0.0.0/8", action: ssh.Allow},
		), host: "secret-db.internal", port: 5432, want: ssh.Decision{Rule: 0}},
		{name: "every cidr rule denies like the default", policy: policyOf(t, ssh.Deny,
			policyRule{target: "cidr:10.0.0.0/8", action: ssh.Deny},
			policyRule{target: "cidr:fd00::/8", action: ssh.Deny},
		), host: "secret-db.internal", port: 5432, want: ssh.Decision{Rule: -1}},
		{name: "nil policy", policy: nil, host: "secret-db.internal", port: 5432, want: ssh.Decision{Rule: -1}},
		{name: "zero policy", policy: &ssh.ForwardingPolicy{}, host: "secret-db.internal", port: 5432, want: ssh.Decision{Rule: -1}},

		// Allowed from the rules alone: no lookup, Unresolved.
		{name: "allowed by host glob", policy: policyOf(t, ssh.Deny, policyRule{target: "host:*.example.com", action: ssh.Allow}),
			host: "www.example.com", port: 443, want: policyUnresolved(0)},
		{name: "cidr rule after the deciding rule", policy: policyOf(t, ssh.Deny,
			policyRule{target: "host:*.example.com", action: ssh.Allow},
			policyRule{target: "cidr:10.0.0.0/8", action: ssh.Deny},
		), host: "www.example.com", port: 443, want: policyUnresolved(0)},
		{name: "cidr rule of another principal", policy: policyOf(t, ssh.Deny,
			policyRule{target: "cidr:10.0.0.0/8", action: ssh.Deny, principals: []string{"bob"}},
			policyRule{target: "host:*", action: ssh.Allow},
		), id: policyAlice(), host: "www.example.com", port: 443, want: policyUnresolved(1)},
		{name: "cidr rule of another transport", policy: policyOf(t, ssh.Deny,
			policyRule{target: "cidr:10.0.0.0/8", action: ssh.Deny, transports: []string{ssh.TransportTCP}},
			policyRule{target: "host:*", action: ssh.Allow},
		), host: "www.example.com", port: 443, want: policyUnresolved(1)},
		{name: "cidr rule allows like the default", policy: policyOf(t, ssh.Allow, policyRule{target: "cidr:10.0.0.0/8", action: ssh.Allow}),
			host: "www.example.com", port: 443, want: policyUnresolved(-1)},

		// A cidr rule that could match with the other action: exactly one lookup.
		{name: "cidr allow could match, inside", policy: policyOf(t, ssh.Deny, policyRule{target: "cidr:10.0.0.0/8", action: ssh.Allow}),
			dns: map[string][]netip.Addr{"db.internal": inside}, host: "db.internal", port: 5432,
			want: ssh.Decision{Allowed: true, Rule: 0, Addrs: inside}, lookups: 1},
		{name: "cidr allow could match, outside", policy: policyOf(t, ssh.Deny, policyRule{target: "cidr:10.0.0.0/8", action: ssh.Allow}),
			dns: map[string][]netip.Addr{"db.internal": corp}, host: "db.internal", port: 5432, want: ssh.Decision{Rule: -1}, lookups: 1},
		{name: "cidr allow could match, no such host", policy: policyOf(t, ssh.Deny, policyRule{target: "cidr:10.0.0.0/8", action: ssh.Allow}),
			host: "db.internal", port: 5432, want: ssh.Decision{Rule: -1}, lookups: 1},
		{name: "deny cidr before an allowing ports rule, outside", policy: denyInternalAllowCorp,
			dns: map[string][]netip.Addr{"db.corp": corp}, host: "db.corp", port: 443,
			want: ssh.Decision{Allowed: true, Rule: 1, Addrs: corp}, lookups: 1},
		{name: "deny cidr before an allowing ports rule, inside", policy: denyInternalAllowCorp,
			dns: map[string][]netip.Addr{"db.corp": inside}, host: "db.corp", port: 443, want: ssh.Decision{Rule: 0}, lookups: 1},
		{name: "cidr rule of this principal", policy: policyOf(t, ssh.Deny,
			policyRule{target: "cidr:10.0.0.0/8", action: ssh.Deny, principals: []string{"bob"}},
			policyRule{target: "host:*", action: ssh.Allow},
		), id: policyBob(), dns: map[string][]netip.Addr{"www.example.com": inside}, host: "www.example.com", port: 443, want: ssh.Decision{Rule: 0}, lookups: 1},

		// Default allow with only deny cidr rules needs the addresses.
		{name: "default allow, deny cidr, outside", policy: policyOf(t, ssh.Allow, policyRule{target: "cidr:10.0.0.0/8", action: ssh.Deny}),
			dns: map[string][]netip.Addr{"www.example.com": corp}, host: "www.example.com", port: 443,
			want: ssh.Decision{Allowed: true, Rule: -1, Addrs: corp}, lookups: 1},
		{name: "default allow, deny cidr, inside", policy: policyOf(t, ssh.Allow, policyRule{target: "cidr:10.0.0.0/8", action: ssh.Deny}),
			dns: map[string][]netip.Addr{"www.example.com": inside}, host: "www.example.com", port: 443, want: ssh.Decision{Rule: 0}, lookups: 1},
		{name: "default allow, deny cidr, no such host", policy: policyOf(t, ssh.Allow, policyRule{target: "cidr:10.0.0.0/8", action: ssh.Deny}),
			host: "www.example.com", port: 443, want: ssh.Decision{Rule: -1}, wantErr: ssh.ErrResolve, lookups: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := &policyResolver{t: t, addrs: tc.dns}
			d, err := tc.policy.Check(context.Background(), r, tc.id, ssh.TransportQUIC, tc.host, tc.port)
			if !errors.Is(err, tc.wantErr) || (err != nil) != (tc.wantErr != nil) {
				t.Fatalf("Check error = %v, want %v", err, tc.wantErr)
			}
			if !policySameDecision(d, tc.want) {
				t.Fatalf("Check = %s, want %s", policyFmt(d), policyFmt(tc.want))
			}
			if n := len(r.lookups()); n != tc.lookups {
				t.Fatalf("%d lookups, want %d", n, tc.lookups)
			}
		})
	}
}

// TestPolicyDeniedNameLikeDeniedAddress: a name no rule can allow gets the very
// Decision of an address no rule allows, without a lookup, whether it resolves or
// not.
func TestPolicyDeniedNameLikeDeniedAddress(t *testing.T) {
	policies := []*ssh.ForwardingPolicy{
		policyOf(t, ssh.Deny, policyRule{target: "ports:localhost:8080-8090", action: ssh.Allow}),
		policyOf(t, ssh.Deny,
			policyRule{target: "cidr:10.0.0.0/8", action: ssh.Deny},
			policyRule{target: "ports:*.corp:443", action: ssh.Allow},
		),
		{},
	}
	resolvers := []*policyResolver{
		{addrs: map[string][]netip.Addr{}},                                              // no such host
		{addrs: map[string][]netip.Addr{"secret-db.internal": policyAddrs("10.9.8.7")}}, // exists
		{err: context.DeadlineExceeded},                                                 // a failing resolver
	}
	for i, p := range policies {
		for j, r := range resolvers {
			r.t = t
			literal, lerr := p.Check(context.Background(), r, policyAlice(), ssh.TransportQUIC, "192.0.2.7", 5432)
			name, nerr := p.Check(context.Background(), r, policyAlice(), ssh.TransportQUIC, "secret-db.internal", 5432)
			if lerr != nil || nerr != nil || literal.Allowed {
				t.Fatalf("policy %d, resolver %d: literal %s, %v; name %s, %v", i, j, policyFmt(literal), lerr, policyFmt(name), nerr)
			}
			if !policySameDecision(name, literal) {
				t.Fatalf("policy %d, resolver %d: name decided %s, address %s", i, j, policyFmt(name), policyFmt(literal))
			}
			if got := r.lookups(); len(got) != 0 {
				t.Fatalf("policy %d, resolver %d: looked up %q", i, j, got)
			}
		}
	}
}

// TestPolicyUnresolvableNameLikeDeniedAddress: a name a cidr rule could allow is
// looked up; when the lookup fails, however it fails, or yields no address, the
// name's rule decides, and its refusal is the very Decision of an address no rule
// allows, without error, so that it does not tell whether the name exists. Only a
// lookup cut short by its context is an error.
func TestPolicyUnresolvableNameLikeDeniedAddress(t *testing.T) {
	const host = "secret-db.internal"
	policies := []*ssh.ForwardingPolicy{
		// The name's rule is the default.
		policyOf(t, ssh.Deny, policyRule{target: "cidr:10.0.0.0/8", action: ssh.Allow}),
		// The name's rule is a ports rule after the cidr rule.
		policyOf(t, ssh.Allow,
			policyRule{target: "cidr:10.0.0.0/8", action: ssh.Allow},
			policyRule{target: "ports:*:5432", action: ssh.Deny},
		),
	}
	failures := []struct {
		name string
		dns  map[string][]netip.Addr // every other name: no such host
		err  error
	}{
		{name: "no such host"},
		{name: "not found", err: &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}},
		{name: "server failure", err: &net.DNSError{Err: "server misbehaving", Name: host, IsTemporary: true}},
		{name: "resolver timeout", err: &net.DNSError{Err: "i/o timeout", Name: host, IsTimeout: true, IsTemporary: true}},
		{name: "other error", err: errors.New("lookup " + host + ": connection refused")},
		{name: "no addresses", dns: map[string][]netip.Addr{host: {}}},
		{name: "invalid address", dns: map[string][]netip.Addr{host: {{}}}},
	}
	for i, p := range policies {
		// The policy does look at addresses: the name resolving into the cidr is allowed.
		inside := policyAddrs("10.9.8.7")
		d, err := p.Check(context.Background(), &policyResolver{t: t, addrs: map[string][]netip.Addr{host: inside}}, nil, ssh.TransportQUIC, host, 5432)
		if want := (ssh.Decision{Allowed: true, Rule: 0, Addrs: inside}); err != nil || !policySameDecision(d, want) {
			t.Fatalf("policy %d: resolving name = %s, %v; want %s", i, policyFmt(d), err, policyFmt(want))
		}
		literal, err := p.Check(context.Background(), &policyResolver{t: t, forbid: true}, nil, ssh.TransportQUIC, "192.0.2.7", 5432)
		if err != nil || literal.Allowed {
			t.Fatalf("policy %d: literal %s, %v; want a refusal", i, policyFmt(literal), err)
		}
		for _, tc := range failures {
			t.Run(fmt.Sprintf("policy %d/%s", i, tc.name), func(t *testing.T) {
				r := &policyResolver{t: t, addrs: tc.dns, err: tc.err}
				d, err := p.Check(context.Background(), r, nil, ssh.TransportQUIC, host, 5432)
				if err != nil {
					t.Fatalf("Check error = %v, want the refusal of an address", err)
				}
				if !policySameDecision(d, literal) {
					t.Fatalf("name decided %s, address %s", policyFmt(d), policyFmt(literal))
				}
				if n := len(r.lookups()); n != 1 {
					t.Fatalf("%d lookups, want 1", n)
				}
			})
		}
	}

	// A lookup cut short by its context is an error, whatever the rules say.
	p := policies[0]
	for _, cause := range []error{
		context.Canceled,
		context.DeadlineExceeded,
		&net.DNSError{Err: "i/o timeout", Name: host, IsTimeout: true, IsTemporary: true, UnwrapErr: context.DeadlineExceeded},
	} {
		d, err := p.Check(context.Background(), &policyResolver{t: t, err: cause}, nil, ssh.TransportQUIC, host, 5432)
		if !errors.Is(err, ssh.ErrResolve) || !errors.Is(err, cause) {
			t.Fatalf("resolver error %v: Check error = %v, want ErrResolve and the cause", cause, err)
		}
		if d.Allowed || d.Rule != -1 || d.Addrs != nil {
			t.Fatalf("resolver error %v: Check decision on error = %s", cause, policyFmt(d))
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	d, err := p.Check(ctx, &policyResolver{t: t, addrs: map[string][]netip.Addr{}}, nil, ssh.TransportQUIC, host, 5432)
	if !errors.Is(err, ssh.ErrResolve) || d.Allowed || d.Rule != -1 {
		t.Fatalf("lookup after the context ended: Check = %s, %v; want an ErrResolve", policyFmt(d), err)
	}
}

func TestPolicyResolution(t *testing.T) {
	rebinding := policyOf(t, ssh.Deny,
		policyRule{target: "cidr:10.0.0.0/8", action: ssh.Deny},
		policyRule{target: "host:*.example.com", action: ssh.Allow},
	)
	dns := map[string][]netip.Addr{
		"good.example.com":  policyAddrs("192.0.2.1", "2001:db8::1"),
		"evil.example.com":  policyAddrs("192.0.2.1", "10.0.0.5"),
		"evil2.example.com": policyAddrs("10.0.0.5", "192.0.2.1"),
	}
	policyRunCases(t, []policyCase{
		{name: "every address allowed", policy: rebinding, dns: dns, host: "good.example.com", want: ssh.Decision{Allowed: true, Rule: 1, Addrs: policyAddrs("192.0.2.1", "2001:db8::1")}},
		{name: "rebinding second address denied", policy: rebinding, dns: dns, host: "evil.example.com", want: ssh.Decision{Rule: 0}},
		{name: "rebinding first address denied", policy: rebinding, dns: dns, host: "evil2.example.com", want: ssh.Decision{Rule: 0}},
		{name: "mixed rules decide per address", policy: policyOf(t, ssh.Allow,
			policyRule{target: "cidr:192.0.2.0/24", action: ssh.Allow},
			policyRule{target: "cidr:2001:db8::/32", action: ssh.Deny},
		), dns: dns, host: "good.example.com", want: ssh.Decision{Rule: 1}},
		{name: "first address decides Rule", policy: policyOf(t, ssh.Allow,
			policyRule{target: "cidr:2001:db8::/32", action: ssh.Allow},
			policyRule{target: "cidr:10.0.0.0/8", action: ssh.Deny},
		), dns: dns, host: "good.example.com", want: ssh.Decision{Allowed: true, Rule: -1, Addrs: policyAddrs("192.0.2.1", "2001:db8::1")}},
	})

	errCases := []struct {
		name string
		r    *policyResolver
	}{
		{name: "resolver error", r: &policyResolver{err: errors.New("lookup secret.example.com: server misbehaving")}},
		{name: "server failure", r: &policyResolver{err: &net.DNSError{Err: "server misbehaving", Name: "secret.example.com", IsTemporary: true}}},
		{name: "resolver timeout", r: &policyResolver{err: &net.DNSError{Err: "i/o timeout", Name: "secret.example.com", IsTimeout: true, IsTemporary: true}}},
		{name: "no such host", r: &policyResolver{addrs: map[string][]netip.Addr{}}},
		{name: "no addresses", r: &policyResolver{addrs: map[string][]netip.Addr{"secret.example.com": {}}}},
		{name: "invalid address", r: &policyResolver{addrs: map[string][]netip.Addr{"secret.example.com": {{}}}}},
	}
	// A deny rule for 10.0.0.0/8 under default allow: every name must be resolved,
	// and one without an address is allowed by its rule, so a failure is an error.
	needsAddrs := policyOf(t, ssh.Allow, policyRule{target: "cidr:10.0.0.0/8", action: ssh.Deny})
	for _, tc := range errCases {
		t.Run(tc.name, func(t *testing.T) {
			tc.r.t = t
			d, err := needsAddrs.Check(context.Background(), tc.r, nil, ssh.TransportQUIC, "secret.example.com", 4242)
			if !errors.Is(err, ssh.ErrResolve) {
				t.Fatalf("Check error = %v, want ErrResolve", err)
			}
			if d.Allowed || d.Addrs != nil || d.Rule != -1 {
				t.Fatalf("Check decision on error = %s", policyFmt(d))
			}
			for _, text := range []string{err.Error(), d.String(), fmt.Sprint(d)} {
				if strings.Contains(text, "secret") || strings.Contains(text, "4242") {
					t.Fatalf("destination leaked into %q", text)
				}
			}
		})
	}

	// The resolver's error stays reachable for errors.Is without reaching the text.
	cause := context.DeadlineExceeded
	_, err := needsAddrs.Check(context.Background(), &policyResolver{t: t, err: cause}, nil, ssh.TransportQUIC, "slow.example.com", 80)
	if !errors.Is(err, ssh.ErrResolve) || !errors.Is(err, cause) {
		t.Fatalf("Check error %v does not wrap both ErrResolve and the cause", err)
	}

	// A trailing dot keeps the lookup fully qualified; case is folded.
	r := &policyResolver{t: t, addrs: map[string][]netip.Addr{"fq.example.com.": policyAddrs("192.0.2.9"), "fq.example.com": policyAddrs("192.0.2.9")}}
	for _, host := range []string{"FQ.example.com.", "fq.EXAMPLE.com"} {
		if _, err := needsAddrs.Check(context.Background(), r, nil, ssh.TransportQUIC, host, 80); err != nil {
			t.Fatalf("Check(%q): %v", host, err)
		}
	}
	if got, want := r.lookups(), []string{"fq.example.com.", "fq.example.com"}; !slices.Equal(got, want) {
		t.Fatalf("looked up %q, want %q", got, want)
	}
}

func TestPolicyHostNormalisation(t *testing.T) {
	allowAny := policyOf(t, ssh.Allow)
	exact := policyOf(t, ssh.Deny, policyRule{target: "host:web.example.com", action: ssh.Allow})
	needsAddrs := policyOf(t, ssh.Allow, policyRule{target: "cidr:10.0.0.0/8", action: ssh.Deny})
	web := policyAddrs("192.0.2.10")
	long253 := strings.Repeat("a", 249) + ".com"
	dns := map[string][]netip.Addr{"web.example.com": web, long253: web}
	policyRunCases(t, []policyCase{
		{name: "upper case", policy: exact, dns: dns, host: "WEB.Example.COM", want: policyUnresolved(0)},
		{name: "trailing dot", policy: exact, dns: map[string][]netip.Addr{"web.example.com.": web}, host: "web.example.com.", want: policyUnresolved(0)},
		{name: "253 bytes", policy: allowAny, dns: dns, host: long253, want: policyUnresolved(-1)},
		{name: "253 bytes resolved", policy: needsAddrs, dns: dns, host: long253, want: ssh.Decision{Allowed: true, Rule: -1, Addrs: web}},
		{name: "bracketed IPv6", policy: allowAny, host: "[2001:db8::1]", want: ssh.Decision{Allowed: true, Rule: -1, Addrs: policyAddrs("2001:db8::1")}},
		{name: "bare IPv6", policy: allowAny, host: "2001:DB8::1", want: ssh.Decision{Allowed: true, Rule: -1, Addrs: policyAddrs("2001:db8::1")}},
		{name: "IPv4 literal", policy: allowAny, host: "192.0.2.3", want: ssh.Decision{Allowed: true, Rule: -1, Addrs: policyAddrs("192.0.2.3")}},
		{name: "IPv4 literal trailing dot", policy: allowAny, host: "192.0.2.3.", want: ssh.Decision{Allowed: true, Rule: -1, Addrs: policyAddrs("192.0.2.3")}},
	})

	invalid := []struct {
		name string
		host string
	}{
		{name: "254 bytes", host: strings.Repeat("a", 250) + ".com"},
		{name: "huge", host: strings.Repeat("a", 100000)},
		{name: "empty", host: ""},
		{name: "only a dot", host: "."},
		{name: "two trailing dots", host: "example.com.."},
		{name: "space", host: "a b"},
		{name: "control", host: "a\nb"},
		{name: "non-ASCII", host: "bücher.example"},
		{name: "star", host: "*.example.com"},
		{name: "unbalanced bracket", host: "[::1"},
		{name: "bracketed name", host: "[example.com]"},
		{name: "stray bracket", host: "a]b"},
		{name: "colon in name", host: "example.com:22"},
		{name: "zone", host: "fe80::1%eth0"},
		{name: "bracketed zone", host: "[fe80::1%eth0]"},
	}
	for _, tc := range invalid {
		t.Run(tc.name, func(t *testing.T) {
			r := &policyResolver{t: t, forbid: true}
			d, err := allowAny.Check(context.Background(), r, nil, ssh.TransportQUIC, tc.host, 80)
			if !errors.Is(err, ssh.ErrInvalidHost) {
				t.Fatalf("Check error = %v, want ErrInvalidHost", err)
			}
			if d.Allowed || d.Reserved || d.Addrs != nil {
				t.Fatalf("Check decision on error = %s", policyFmt(d))
			}
			if tc.host != "" && strings.Contains(err.Error(), tc.host) {
				t.Fatalf("error %q contains the host", err)
			}
		})
	}
}

func TestPolicyErrorsOmitDestination(t *testing.T) {
	p := policyOf(t, ssh.Allow, policyRule{target: "cidr:10.0.0.0/8", action: ssh.Deny})
	hosts := []string{"leaky.example.org", "[fe80::dead%eth0]", strings.Repeat("leaky", 60), "leaky host"}
	for _, host := range hosts {
		r := &policyResolver{t: t, err: errors.New("lookup leaky.example.org on 10.0.0.53:53: no such host")}
		d, err := p.Check(context.Background(), r, nil, ssh.TransportQUIC, host, 31337)
		if err == nil {
			t.Fatalf("Check(%q) succeeded", host)
		}
		for _, text := range []string{err.Error(), fmt.Sprintf("%v", err), d.String()} {
			if strings.Contains(text, "leaky") || strings.Contains(text, "31337") || strings.Contains(text, "dead") {
				t.Fatalf("Check(%q): destination in %q", host, text)
			}
		}
	}
}

func TestDecisionString(t *testing.T) {
	tests := []struct {
		d    ssh.Decision
		want string
	}{
		{ssh.Decision{Rule: -1}, "deny by default"},
		{ssh.Decision{Allowed: true, Rule: 2, Addrs: policyAddrs("192.0.2.1")}, "allow by rule 2"},
		{ssh.Decision{Allowed: true, Rule: 0, Reserved: true}, "allow by rule 0, reserved"},
	}
	for _, tc := range tests {
		if got := tc.d.String(); got != tc.want {
			t.Fatalf("%+v.String() = %q, want %q", tc.d, got, tc.want)
		}
	}
}

func TestPolicyValidate(t *testing.T) {
	anyT := policyTarget(t, "any")
	ok := ssh.Rule{Target: anyT}
	tests := []struct {
		name string
		p    *ssh.ForwardingPolicy
		want *ssh.PolicyError // nil: valid
		text string
	}{
		{name: "nil", p: nil},
		{name: "zero", p: &ssh.ForwardingPolicy{}},
		{name: "full", p: &ssh.ForwardingPolicy{Default: ssh.Allow, Rules: []ssh.Rule{{Target: anyT, Action: ssh.Deny, Principals: []string{"admin"}, Transports: []string{ssh.TransportQUIC, ssh.TransportTLS, ssh.TransportTCP}}}}},
		{name: "bad default", p: &ssh.ForwardingPolicy{Default: 2},
			want: &ssh.PolicyError{Rule: -1, Field: "default", Item: -1}, text: "ssh: forwarding policy: invalid default action 2"},
		{name: "bad action", p: &ssh.ForwardingPolicy{Rules: []ssh.Rule{ok, {Target: anyT, Action: -1}}},
			want: &ssh.PolicyError{Rule: 1, Field: "action", Item: -1}, text: "ssh: forwarding rule 1: invalid action -1"},
		{name: "zero target", p: &ssh.ForwardingPolicy{Rules: []ssh.Rule{{Action: ssh.Allow}}},
			want: &ssh.PolicyError{Rule: 0, Field: "target", Item: -1}},
		{name: "empty principal", p: &ssh.ForwardingPolicy{Rules: []ssh.Rule{ok, ok, {Target: anyT, Principals: []string{"a", ""}}}},
			want: &ssh.PolicyError{Rule: 2, Field: "principals", Item: 1}, text: "ssh: forwarding rule 2: empty principal"},
		{name: "unknown transport", p: &ssh.ForwardingPolicy{Rules: []ssh.Rule{{Target: anyT, Transports: []string{"udp"}}}},
			want: &ssh.PolicyError{Rule: 0, Field: "transports", Item: 0}, text: `ssh: forwarding rule 0: unknown transport "udp"`},
	}
	for _, tc := range tests {
		err := tc.p.Validate()
		if tc.want == nil {
			if err != nil {
				t.Fatalf("%s: Validate() = %v, want nil", tc.name, err)
			}
			continue
		}
		var pe *ssh.PolicyError
		if !errors.As(err, &pe) || pe.Rule != tc.want.Rule || pe.Field != tc.want.Field || pe.Item != tc.want.Item {
			t.Fatalf("%s: Validate() = %#v, want rule %d field %s item %d", tc.name, err, tc.want.Rule, tc.want.Field, tc.want.Item)
		}
		if tc.text != "" && err.Error() != tc.text {
			t.Errorf("%s: error %q, want %q", tc.name, err, tc.text)
		}
		if tc.want.Field == "target" && !errors.Is(err, ssh.ErrInvalidTarget) {
			t.Errorf("%s: %v does not match ErrInvalidTarget", tc.name, err)
		}
	}
}

// policyExampleResolver answers from a fixed table.
type policyExampleResolver map[string][]netip.Addr

// LookupNetIP implements ssh.Resolver.
func (r policyExampleResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	return r[host], nil
}

func ExampleForwardingPolicy_Check() {
	internal, _ := ssh.ParseTarget("cidr:10.0.0.0/8")
	web, _ := ssh.ParseTarget("ports:*.example.com:443")
	policy := &ssh.ForwardingPolicy{
		Default: ssh.Deny,
		Rules: []ssh.Rule{
			{Target: internal, Action: ssh.Deny},
			{Target: web, Action: ssh.Allow, Principals: []string{"ssh:forward"}},
		},
	}
	dns := policyExampleResolver{
		"www.example.com":     {netip.MustParseAddr("192.0.2.10")},
		"rebound.example.com": {netip.MustParseAddr("192.0.2.11"), netip.MustParseAddr("10.0.0.7")},
	}
	alice := &core.Identity{ID: "alice", Scopes: []string{"ssh:forward"}}
	ctx := context.Background()

	for _, host := range []string{"www.example.com", "rebound.example.com", "alknet-vault"} {
		d, err := policy.Check(ctx, dns, alice, ssh.TransportQUIC, host, 443)
		if err != nil {
			fmt.Println(err)
			continue
		}
		fmt.Println(d, d.Addrs)
	}
	// Output:
	// allow by rule 1 [192.0.2.10]
	// deny by rule 0 []
	// deny by default, reserved []
}
