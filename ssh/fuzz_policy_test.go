package ssh_test

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/ssh"
)

func FuzzParseTarget(f *testing.F) {
	for _, s := range []string{
		"any", "alknet", "host:example.com", "host:*.Example.COM.", "host:*", "host:[::1]",
		"host:::ffff:1.2.3.4", "host:a*b*c", "cidr:10.0.0.0/8", "cidr:::ffff:10.0.0.0/104",
		"cidr:fd00::/8", "cidr:1.2.3.4/33", "ports:localhost:8080-8090", "ports:localhost:22",
		"ports:[::1]:1-2", "ports:::1:22", "ports:x:1-2-3", "ports:*:0-65535", "ports:fe80::*:22",
		"host:", "", "host:fe80::1%eth0", "host:..", "host:*..", "ports:a.:1",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tg, err := ssh.ParseTarget(s)
		if err != nil {
			if !errors.Is(err, ssh.ErrInvalidTarget) {
				t.Fatalf("ParseTarget(%q) error %v does not wrap ErrInvalidTarget", s, err)
			}
			return
		}
		text := tg.String()
		again, err := ssh.ParseTarget(text)
		if err != nil {
			t.Fatalf("ParseTarget(%q) accepted, but its String %q is refused: %v", s, text, err)
		}
		if again != tg || again.String() != text {
			t.Fatalf("round trip of %q through %q changed the target", s, text)
		}
	})
}

func FuzzParseForwardSpec(f *testing.F) {
	for _, s := range []string{
		"localhost:8080:example.com:80", "[::1]:8080:[::1]:80", "a:b:c", "a:1:b:2:3",
		"[fe80::1%eth0]:0:h:65535", "x:65536:y:1", "[]:1:h:2", "[::1]x:1:h:2", "h:01:h:0002", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		fs, err := ssh.ParseForwardSpec(s)
		if err != nil {
			if !errors.Is(err, ssh.ErrInvalidSpec) || !strings.HasPrefix(err.Error(), "invalid spec ") {
				t.Fatalf("ParseForwardSpec(%q) error %q", s, err)
			}
			return
		}
		text := fs.String()
		again, err := ssh.ParseForwardSpec(text)
		if err != nil {
			t.Fatalf("ParseForwardSpec(%q) accepted, but its String %q is refused: %v", s, text, err)
		}
		if again != fs || again.String() != text {
			t.Fatalf("round trip of %q through %q changed the spec", s, text)
		}
	})
}

// policyFuzzNormalised is the host after the documented normalisation (ASCII lower
// case, one trailing dot stripped), for the Reserved property.
func policyFuzzNormalised(host string) string {
	return strings.TrimSuffix(strings.ToLower(host), ".")
}

func FuzzPolicyCheck(f *testing.F) {
	for _, s := range []struct {
		host string
		port uint16
	}{
		{"alknet-vault", 443}, {"ALKNET-x.", 1}, {"alknet.example.com", 80}, {"alknet-", 0},
		{"www.example.com", 443}, {"10.0.0.1", 22}, {"[::1]", 8080}, {"::ffff:10.1.1.1", 80},
		{"", 0}, {".", 1}, {"a b", 2}, {"[alknet-x]", 3}, {"fe80::1%eth0", 4}, {"db-primary", 5432},
		{"evil.example.com", 443}, {"a..", 6}, {"alknet-..", 7}, {"www.direct", 8}, {"evil.direct.", 9},
	} {
		f.Add(s.host, s.port)
	}
	// *.direct is allowed before any cidr rule: such names are never looked up.
	policy := &ssh.ForwardingPolicy{Default: ssh.Deny}
	for _, text := range []string{"host:*.direct", "cidr:10.0.0.0/8", "alknet", "ports:*.example.com:443", "host:db-*", "cidr:::1/128"} {
		tg, err := ssh.ParseTarget(text)
		if err != nil {
			f.Fatalf("ParseTarget(%q): %v", text, err)
		}
		action := ssh.Allow
		if strings.HasPrefix(text, "cidr:") {
			action = ssh.Deny
		}
		policy.Rules = append(policy.Rules, ssh.Rule{Target: tg, Action: action, Principals: nil})
	}
	id := &core.Identity{ID: "fuzz"}
	f.Fuzz(func(t *testing.T, host string, port uint16) {
		r := &policyFuzzResolver{t: t}
		d, err := policy.Check(context.Background(), r, id, ssh.TransportQUIC, host, port)
		reserved := strings.HasPrefix(policyFuzzNormalised(host), "alknet-")
		if err != nil {
			if d.Allowed || d.Reserved || d.Unresolved || d.Addrs != nil || d.Rule != -1 {
				t.Fatalf("Check(%q) error %v with decision %v %v", host, err, d, d.Addrs)
			}
			if !errors.Is(err, ssh.ErrInvalidHost) && !errors.Is(err, ssh.ErrResolve) {
				t.Fatalf("Check(%q) unexpected error %v", host, err)
			}
			if reserved && errors.Is(err, ssh.ErrResolve) {
				t.Fatalf("Check(%q): reserved host resolved", host)
			}
			return
		}
		if d.Reserved != reserved {
			t.Fatalf("Check(%q).Reserved = %v, want %v", host, d.Reserved, reserved)
		}
		if d.Reserved && (r.calls != 0 || d.Addrs != nil) {
			t.Fatalf("Check(%q): reserved host resolved (%d calls) or given addresses %v", host, r.calls, d.Addrs)
		}
		name := policyFuzzNormalised(host)
		if strings.HasSuffix(name, ".direct") && !reserved && (r.calls != 0 || !d.Unresolved) {
			t.Fatalf("Check(%q) = %v after %d lookups, want Unresolved without lookup", host, d, r.calls)
		}
		if r.calls > 1 {
			t.Fatalf("Check(%q) looked the name up %d times", host, r.calls)
		}
		if d.Unresolved && (!d.Allowed || d.Reserved || d.Addrs != nil || r.calls != 0) {
			t.Fatalf("Check(%q) = %v, Unresolved with %v after %d lookups", host, d, d.Addrs, r.calls)
		}
		if !d.Reserved && d.Allowed != (len(d.Addrs) > 0 || d.Unresolved) {
			t.Fatalf("Check(%q) = %v with %v: Addrs must be set exactly when allowed and resolved", host, d, d.Addrs)
		}
		for _, a := range d.Addrs {
			if a.Is4In6() || a.Zone() != "" || (a.Is4() && netip.MustParsePrefix("10.0.0.0/8").Contains(a)) {
				t.Fatalf("Check(%q) allowed address %v", host, a)
			}
		}
		if d.Rule < -1 || d.Rule >= len(policy.Rules) {
			t.Fatalf("Check(%q).Rule = %d", host, d.Rule)
		}
	})
}

// policyFuzzResolver resolves every name to a public and, for names with "evil", a
// private address; it counts its calls.
type policyFuzzResolver struct {
	t     *testing.T
	calls int
}

// LookupNetIP implements ssh.Resolver.
func (r *policyFuzzResolver) LookupNetIP(_ context.Context, network, host string) ([]netip.Addr, error) {
	r.calls++
	if network != "ip" {
		r.t.Fatalf("network %q", network)
	}
	if strings.HasPrefix(strings.ToLower(host), "alknet-") {
		r.t.Fatalf("reserved host resolved")
	}
	switch {
	case strings.Contains(host, "fail"):
		return nil, errors.New("no such host")
	case strings.Contains(host, "empty"):
		return nil, nil
	case strings.Contains(host, "evil"):
		return []netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("::ffff:10.0.0.1")}, nil
	}
	return []netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1")}, nil
}
