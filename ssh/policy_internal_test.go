package ssh

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"testing"

	"github.com/alknet/alknet/core"
)

// resolveFirstCheck is the reference Check decides host names against: resolve
// the name first, then decide every address by all the rules (first match wins),
// allowing the request only if every address is allowed. A lookup cut short by a
// context error is an error; any other failure leaves no address, and the request
// is decided as an address no cidr rule holds would be: refused, or, if that is
// allowed, an error, since there is nothing to dial. It is how Check decided names
// before it learned to skip lookups whose addresses cannot change the answer.
func (p *ForwardingPolicy) resolveFirstCheck(ctx context.Context, r Resolver, id *core.Identity, transport, name string, port uint16) (Decision, error) {
	addrs, err := lookupName(ctx, r, name, false)
	if err != nil {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return Decision{Rule: -1}, err
		}
		if allowed, rule := p.decide(id, transport, name, netip.Addr{}, port); !allowed {
			return Decision{Rule: rule}, nil
		}
		return Decision{Rule: -1}, err
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

// refResolver answers every name with addrs, or fails with err; it counts lookups.
type refResolver struct {
	addrs []netip.Addr
	err   error
	calls int
}

// LookupNetIP implements Resolver.
func (r *refResolver) LookupNetIP(context.Context, string, string) ([]netip.Addr, error) {
	r.calls++
	return r.addrs, r.err
}

// TestCheckMatchesResolveFirst compares Check on random policies with the
// resolve-first reference: where Check looks a name up it decides exactly as the
// reference does, whether the lookup succeeds, fails, or is cut short; where it
// does not, the reference would decide every possible set of addresses the same
// way, and Check agrees with it.
func TestCheckMatchesResolveFirst(t *testing.T) {
	targets := []string{
		"any", "alknet", "host:*", "host:*.example.com", "host:db-*", "host:secret.internal",
		"ports:*:22", "ports:*.example.com:443", "ports:secret.internal:5000-6000",
		"cidr:10.0.0.0/8", "cidr:10.1.0.0/16", "cidr:192.0.2.0/24", "cidr:2001:db8::/32", "cidr:0.0.0.0/0",
	}
	principals := [][]string{nil, nil, {"alice"}, {"bob"}, {"ops"}}
	transports := [][]string{nil, nil, {TransportQUIC}, {TransportTCP}}
	names := []string{"www.example.com", "db-primary", "secret.internal", "other.test"}
	ports := []uint16{22, 443, 5432}
	pool := []netip.Addr{
		netip.MustParseAddr("10.1.2.3"), netip.MustParseAddr("10.2.0.1"), netip.MustParseAddr("192.0.2.5"),
		netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("fd00::1"),
	}
	ids := []*core.Identity{nil, {ID: "alice", Scopes: []string{"ops"}}, {ID: "bob"}}
	// Lookups that fail: every one but the context errors leaves no address.
	failures := []struct {
		addrs []netip.Addr
		err   error
	}{
		{err: errors.New("no such host")},
		{err: &net.DNSError{Err: "no such host", IsNotFound: true}},
		{err: &net.DNSError{Err: "server misbehaving", IsTemporary: true}},
		{err: &net.DNSError{Err: "i/o timeout", IsTimeout: true, IsTemporary: true}},
		{addrs: []netip.Addr{}},
		{addrs: []netip.Addr{pool[0], {}}},
		{err: context.DeadlineExceeded},
		{err: &net.DNSError{Err: "operation was canceled", UnwrapErr: context.Canceled}},
	}
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(13, 2026))
	pick := func(n int) int { return rng.IntN(n) }
	action := func() Action { return Action(pick(2)) }

	looked, skipped, noAddr := 0, 0, 0
	for iter := range 20000 {
		p := &ForwardingPolicy{Default: action()}
		for range pick(6) {
			tg, err := ParseTarget(targets[pick(len(targets))])
			if err != nil {
				t.Fatal(err)
			}
			p.Rules = append(p.Rules, Rule{Target: tg, Action: action(), Principals: principals[pick(len(principals))], Transports: transports[pick(len(transports))]})
		}
		id, transport := ids[pick(len(ids))], []string{TransportQUIC, TransportTCP}[pick(2)]
		name, port := names[pick(len(names))], ports[pick(len(ports))]
		r := &refResolver{}
		if pick(4) == 0 {
			f := failures[pick(len(failures))]
			r.addrs, r.err = f.addrs, f.err
		} else {
			for range 1 + pick(3) {
				r.addrs = append(r.addrs, pool[pick(len(pool))])
			}
		}
		cut := errors.Is(r.err, context.Canceled) || errors.Is(r.err, context.DeadlineExceeded)

		got, gerr := p.Check(ctx, r, id, transport, name, port)
		want, werr := p.resolveFirstCheck(ctx, &refResolver{addrs: r.addrs, err: r.err}, id, transport, name, port)
		fail := func(format string, args ...any) {
			t.Helper()
			t.Fatalf("iteration %d, policy %+v, id %v over %s, %s:%d, addrs %v err %v: "+format,
				append([]any{iter, p.Rules, id, transport, name, port, r.addrs, r.err}, args...)...)
		}
		switch r.calls {
		case 1:
			looked++
			if (gerr == nil) != (werr == nil) || got.Allowed != want.Allowed || got.Rule != want.Rule ||
				got.Unresolved || !slices.Equal(got.Addrs, want.Addrs) {
				fail("Check = %v %v %v, %v; reference %v %v, %v", got, got.Unresolved, got.Addrs, gerr, want, want.Addrs, werr)
			}
			if gerr != nil && (!errors.Is(gerr, ErrResolve) || (r.err != nil && !errors.Is(gerr, r.err))) {
				fail("Check error %v does not wrap ErrResolve and the resolver's error", gerr)
			}
			if cut && gerr == nil {
				fail("lookup cut short, but Check = %v without error", got)
			}
			if !cut && (r.err != nil || len(r.addrs) == 0 || !r.addrs[len(r.addrs)-1].IsValid()) && gerr == nil {
				noAddr++ // refused for want of an address, by the name's rule
			}
		case 0:
			skipped++
			if gerr != nil || got.Addrs != nil || got.Unresolved != got.Allowed || got.Reserved {
				fail("Check without lookup = %v unresolved %v addrs %v, %v", got, got.Unresolved, got.Addrs, gerr)
			}
			switch {
			case cut:
			case werr != nil && !got.Allowed:
				// The reference fails only where the name's rule allows.
				fail("Check without lookup = %v; reference error %v", got, werr)
			case werr == nil && want.Allowed != got.Allowed:
				fail("Check without lookup = %v; reference %v", got, want)
			}
			// The name's rule decides: the rule that decides an address no cidr
			// target holds.
			d, _ := p.resolveFirstCheck(ctx, &refResolver{addrs: []netip.Addr{netip.MustParseAddr("fd00::1")}}, id, transport, name, port)
			if d.Rule != got.Rule {
				fail("Check without lookup by rule %d, want the name's rule %d", got.Rule, d.Rule)
			}
			// No set of addresses would change the answer: every single address,
			// and every pair, is decided alike.
			for _, a := range pool {
				for _, b := range pool {
					d, err := p.resolveFirstCheck(ctx, &refResolver{addrs: []netip.Addr{a, b}}, id, transport, name, port)
					if err != nil || d.Allowed != got.Allowed {
						fail("skipped a lookup, but addresses %v, %v are decided %v", a, b, d)
					}
				}
			}
		default:
			fail("%d lookups", r.calls)
		}
	}
	// Every branch must have been exercised often.
	t.Logf("%d checks looked up (%d refused without an address), %d did not", looked, noAddr, skipped)
	if looked < 2000 || skipped < 2000 || noAddr < 100 {
		t.Fatalf("%d checks looked up (%d refused without an address), %d did not: the generator misses a branch", looked, noAddr, skipped)
	}
}
