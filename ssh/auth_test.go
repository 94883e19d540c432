package ssh_test

import (
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	gossh "golang.org/x/crypto/ssh"

	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/ssh"
)

// TestAuthKnownKey: a known Ed25519 or ECDSA key logs in as its identity, whatever
// the SSH user name.
func TestAuthKnownKey(t *testing.T) {
	ed, ec := stSigner(t), stECDSASigner(t)
	n := stStartTCP(t, ssh.Config{
		Identities: stNewIdentities().add(ed, "alice", ssh.ScopeExec, "extra").add(ec, "ecdsa-peer"),
		Subsystems: stSubsystems(),
	})
	c, err := n.dial(t, ssh.ClientConfig{Signer: ed, User: "whatever"})
	if err != nil {
		t.Fatal(err)
	}
	id := stIdentityOf(t, c.Client)
	if id.ID != "alice" || !slices.Equal(id.Scopes, []string{ssh.ScopeExec, "extra"}) {
		t.Fatalf("identity %+v, want alice with [ssh:exec extra]", id)
	}
	c2 := n.mustDial(t, ec)
	if id := stIdentityOf(t, c2.Client); id.ID != "ecdsa-peer" {
		t.Fatalf("ECDSA identity %+v, want ecdsa-peer", id)
	}
}

// TestAuthRejected: an unknown key, a nil IdentityProvider and password auth are all
// refused; the server only ever offers publickey.
func TestAuthRejected(t *testing.T) {
	known, unknown := stSigner(t), stSigner(t)
	t.Run("unknown key", func(t *testing.T) {
		n := stStartTCP(t, ssh.Config{Identities: stNewIdentities().add(known, "alice")})
		if _, err := n.dial(t, ssh.ClientConfig{Signer: unknown}); err == nil {
			t.Fatal("unknown key logged in")
		}
	})
	t.Run("nil identities", func(t *testing.T) {
		n := stStartTCP(t, ssh.Config{})
		if _, err := n.dial(t, ssh.ClientConfig{Signer: known}); err == nil {
			t.Fatal("logged in with no identities configured")
		}
		if len(n.Logs.records("auth attempt")) == 0 {
			t.Fatal("no auth attempt logged")
		}
	})
	t.Run("empty identities", func(t *testing.T) {
		n := stStartTCP(t, ssh.Config{Identities: stNewIdentities()})
		if _, err := n.dial(t, ssh.ClientConfig{Signer: known}); err == nil {
			t.Fatal("logged in with no identities configured")
		}
	})
	t.Run("password", func(t *testing.T) {
		n := stStartTCP(t, ssh.Config{Identities: stNewIdentities().add(known, "alice")})
		var offered []string
		cc := &gossh.ClientConfig{
			User: "alice",
			Auth: []gossh.AuthMethod{gossh.Password("secret"), gossh.KeyboardInteractive(func(string, string, []string, []bool) ([]string, error) {
				return []string{"secret"}, nil
			})},
			AuthCallback: func(ctx *gossh.ClientAuthContext) (gossh.AuthMethod, error) {
				offered = ctx.AllowedMethods
				return nil, nil
			},
		}
		if _, err := stRawDial(t, n, cc); err == nil {
			t.Fatal("password login succeeded")
		}
		if !slices.Equal(offered, []string{"publickey"}) {
			t.Fatalf("server offered methods %v, want only publickey", offered)
		}
	})
}

// TestAuthCertificates covers OpenSSH user certificates: the identity is the
// principal with the CA's scopes, and every bad certificate is refused.
func TestAuthCertificates(t *testing.T) {
	ca, otherCA := stNewCA(t), stNewCA(t)
	now := time.Now()
	cases := []struct {
		name   string
		user   string
		mutate func(c *gossh.Certificate)
		signBy *stCA
		pfCA   bool // the CA line carries permit-port-forwarding
		clock  func() time.Time
		ok     bool
	}{
		{name: "valid", user: "alice", ok: true},
		{name: "second principal", user: "alice2", mutate: func(c *gossh.Certificate) { c.ValidPrincipals = []string{"alice", "alice2"} }, ok: true},
		{name: "forever", user: "alice", mutate: func(c *gossh.Certificate) { c.ValidAfter, c.ValidBefore = 0, gossh.CertTimeInfinity }, ok: true},
		{name: "expired", user: "alice", mutate: func(c *gossh.Certificate) { c.ValidBefore = uint64(now.Add(-time.Minute).Unix()) }},
		{name: "not yet valid", user: "alice", mutate: func(c *gossh.Certificate) { c.ValidAfter = uint64(now.Add(time.Hour).Unix()) }},
		{name: "server clock after expiry", user: "alice", clock: func() time.Time { return now.Add(2 * time.Hour) }},
		{name: "server clock before validity", user: "alice", clock: func() time.Time { return now.Add(-2 * time.Hour) }},
		{name: "wrong principal", user: "bob"},
		{name: "no principals", user: "anyone", mutate: func(c *gossh.Certificate) { c.ValidPrincipals = nil }},
		{name: "wrong CA", user: "alice", signBy: otherCA},
		{name: "host certificate", user: "alice", mutate: func(c *gossh.Certificate) { c.CertType = gossh.HostCert }},
		{name: "force-command", user: "alice", mutate: func(c *gossh.Certificate) { c.CriticalOptions["force-command"] = "echo hi" }},
		{name: "unknown critical option", user: "alice", mutate: func(c *gossh.Certificate) { c.CriticalOptions["verify-required"] = "" }},
		{name: "source-address elsewhere", user: "alice", mutate: func(c *gossh.Certificate) { c.CriticalOptions["source-address"] = "10.0.0.0/8" }},
		{name: "source-address loopback", user: "alice", mutate: func(c *gossh.Certificate) { c.CriticalOptions["source-address"] = "127.0.0.1/32" }, ok: true},
		{name: "source-address list", user: "alice", mutate: func(c *gossh.Certificate) { c.CriticalOptions["source-address"] = "10.0.0.0/8,127.0.0.0/8" }, ok: true},
		{name: "source-address malformed", user: "alice", mutate: func(c *gossh.Certificate) { c.CriticalOptions["source-address"] = "not-an-ip" }},
		{name: "unknown extension", user: "alice", mutate: func(c *gossh.Certificate) { c.Extensions["x-whatever@example.com"] = "" }, ok: true},
		{name: "permit-port-forwarding required, missing", user: "alice", pfCA: true},
		{name: "permit-port-forwarding required, present", user: "alice", pfCA: true, mutate: func(c *gossh.Certificate) { c.Extensions["permit-port-forwarding"] = "" }, ok: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			entry := ca.authority(ssh.ScopeExec, "ops")
			entry.PermitPortForwarding = tc.pfCA
			n := stStartTCP(t, ssh.Config{
				CertAuthorities: []ssh.CertAuthority{entry},
				Subsystems:      stSubsystems(),
				Exec:            stEchoExec(),
				Clock:           tc.clock,
			})
			user := stSigner(t)
			by := ca
			if tc.signBy != nil {
				by = tc.signBy
			}
			cert := by.cert(t, user, tc.mutate)
			c, err := n.dial(t, ssh.ClientConfig{Signer: user, Certificate: cert, User: tc.user})
			if !tc.ok {
				if err == nil {
					t.Fatalf("certificate accepted, want it refused")
				}
				rs := n.Logs.records("auth attempt")
				if len(rs) == 0 || rs[len(rs)-1].Attr["result"] != "reject" {
					t.Errorf("no auth attempt result=reject logged:\n%s", n.Logs)
				}
				return
			}
			if err != nil {
				t.Fatalf("certificate refused: %v", err)
			}
			id := stIdentityOf(t, c.Client)
			if id.ID != tc.user || !slices.Equal(id.Scopes, []string{ssh.ScopeExec, "ops"}) {
				t.Fatalf("identity %+v, want %s with the CA's scopes [ssh:exec ops]", id, tc.user)
			}
			stMustEcho(t, c.Client) // the CA's ssh:exec scope lets it run commands
			acc := n.Logs.records("auth attempt")
			if last := acc[len(acc)-1]; last.Attr["result"] != "accept" || last.Attr["key_fingerprint"] != ssh.KeyFingerprint(user.PublicKey()) {
				t.Errorf("accept line %q, want the certified key's fingerprint", last.Line)
			}
		})
	}
}

// TestAuthCertificateScopes: a CA without scopes vouches for the name only: the
// identity cannot exec.
func TestAuthCertificateScopes(t *testing.T) {
	ca := stNewCA(t)
	n := stStartTCP(t, ssh.Config{CertAuthorities: []ssh.CertAuthority{ca.authority()}, Exec: stEchoExec(), Subsystems: stSubsystems()})
	user := stSigner(t)
	c, err := n.dial(t, ssh.ClientConfig{Signer: user, Certificate: ca.cert(t, user, nil), User: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	if id := stIdentityOf(t, c.Client); id.ID != "alice" || len(id.Scopes) != 0 {
		t.Fatalf("identity %+v, want alice without scopes", id)
	}
	if r := stRun(t, c.Client, "echo hi", nil); r.Err == nil {
		t.Fatalf("exec without scope ran: %q", r.Stdout)
	}
	// The bare key of a certificate is not an identity either.
	if _, err := n.dial(t, ssh.ClientConfig{Signer: user, User: "alice"}); err == nil {
		t.Fatal("bare key of a certificate logged in")
	}
}

// TestAuthCertificateSourceAddress: source-address is checked against the client's
// IP over every transport (QUIC peers are presented as TCP addresses).
func TestAuthCertificateSourceAddress(t *testing.T) {
	for _, st := range stStarters {
		t.Run(st.name, func(t *testing.T) {
			ca := stNewCA(t)
			n := st.start(t, ssh.Config{CertAuthorities: []ssh.CertAuthority{ca.authority()}, Subsystems: stSubsystems()})
			user := stSigner(t)
			for _, tc := range []struct {
				src string
				ok  bool
			}{
				{"10.0.0.0/8", false},
				{"127.0.0.1/32", true},
				{"192.0.2.1", false},
				{"::1/128", false},
			} {
				cert := ca.cert(t, user, func(c *gossh.Certificate) { c.CriticalOptions["source-address"] = tc.src })
				c, err := n.dial(t, ssh.ClientConfig{Signer: user, Certificate: cert, User: "alice"})
				if tc.ok != (err == nil) {
					t.Fatalf("source-address %s: err %v, want ok=%v", tc.src, err, tc.ok)
				}
				if c != nil {
					if id := stIdentityOf(t, c.Client); id.ID != "alice" {
						t.Fatalf("identity %+v", id)
					}
					_ = c.Close()
				}
			}
		})
	}
}

// stOfferOnly offers a key in a public-key query but cannot sign with it, the way a
// client probing someone else's public key would.
type stOfferOnly struct{ pub gossh.PublicKey }

func (s stOfferOnly) PublicKey() gossh.PublicKey { return s.pub }

func (s stOfferOnly) Sign(io.Reader, []byte) (*gossh.Signature, error) {
	return nil, errors.New("offer only")
}

// TestAuthOfferedKeyIsNotIdentity pins the CVE-2024-45337 pattern: keys the client
// merely offers (public-key queries the server accepts) never become the session's
// identity; only the key that signed does.
func TestAuthOfferedKeyIsNotIdentity(t *testing.T) {
	a, b := stSigner(t), stSigner(t)
	orders := map[string][]gossh.Signer{
		"offer B, sign A":          {stOfferOnly{b.PublicKey()}, a},
		"offer A, offer B, sign A": {stOfferOnly{a.PublicKey()}, stOfferOnly{b.PublicKey()}, a},
	}
	for name, steps := range orders {
		t.Run(name, func(t *testing.T) {
			n := stStartTCP(t, ssh.Config{
				Identities: stNewIdentities().add(a, "alice").add(b, "bob", "admin"),
				Subsystems: stSubsystems(),
			})
			i := 0
			cc := &gossh.ClientConfig{
				User: "bob",
				AuthCallback: func(*gossh.ClientAuthContext) (gossh.AuthMethod, error) {
					if i >= len(steps) {
						return nil, errors.New("no more keys")
					}
					s := steps[i]
					i++
					return gossh.PublicKeys(s), nil
				},
			}
			c, err := stRawDial(t, n, cc)
			if err != nil {
				t.Fatalf("login: %v", err)
			}
			if i != len(steps) {
				t.Fatalf("client used %d of %d auth steps", i, len(steps))
			}
			id := stIdentityOf(t, c)
			if id.ID != "alice" || len(id.Scopes) != 0 {
				t.Fatalf("identity %+v, want alice (the signing key), not bob (an offered key)", id)
			}
			accepts := 0
			for _, r := range n.Logs.records("auth attempt") {
				if r.Attr["result"] == "accept" {
					accepts++
					if r.Attr["key_fingerprint"] != ssh.KeyFingerprint(a.PublicKey()) {
						t.Errorf("accept logged for %s, want A's key", r.Attr["key_fingerprint"])
					}
				}
			}
			if accepts != 1 {
				t.Errorf("%d accept lines, want 1 (queries are not attempts):\n%s", accepts, n.Logs)
			}
		})
	}
}

// TestAuthMaxAttempts: the connection is dropped after MaxAuthAttempts failures; 0
// means DefaultMaxAuthAttempts and a negative value means unlimited.
func TestAuthMaxAttempts(t *testing.T) {
	good := stSigner(t)
	unknown := func(k int) []gossh.Signer {
		var s []gossh.Signer
		for range k {
			s = append(s, stSigner(t))
		}
		return s
	}
	cases := []struct {
		name    string
		max     int
		unknown int
		ok      bool
	}{
		// limit+1, limit and limit-1 failures before the good key.
		{"2, three unknown keys first", 2, 3, false},
		{"2, two unknown keys first", 2, 2, false},
		{"2, one unknown key first", 2, 1, true},
		{"1, one unknown key first", 1, 1, false},
		{"1, good key first", 1, 0, true},
		{"unlimited, eight unknown keys first", -1, 8, true},
		{"default, seven unknown keys first", 0, ssh.DefaultMaxAuthAttempts + 1, false},
		{"default, six unknown keys first", 0, ssh.DefaultMaxAuthAttempts, false},
		{"default, five unknown keys first", 0, ssh.DefaultMaxAuthAttempts - 1, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := stStartTCP(t, ssh.Config{Identities: stNewIdentities().add(good, "alice"), MaxAuthAttempts: tc.max})
			keys := append(unknown(tc.unknown), good)
			_, err := stRawDial(t, n, &gossh.ClientConfig{User: "alice", Auth: []gossh.AuthMethod{gossh.PublicKeys(keys...)}})
			if tc.ok != (err == nil) {
				t.Fatalf("login: %v, want ok=%v", err, tc.ok)
			}
			rejects := 0
			for _, r := range n.Logs.records("auth attempt") {
				if r.Attr["result"] == "reject" {
					rejects++
				}
			}
			want := tc.unknown
			if !tc.ok {
				want = tc.max
				if tc.max == 0 {
					want = ssh.DefaultMaxAuthAttempts
				}
			}
			if rejects != want {
				t.Errorf("%d rejected attempts logged, want %d", rejects, want)
			}
			if !tc.ok && !strings.Contains(err.Error(), "too many authentication failures") && !strings.Contains(err.Error(), "EOF") {
				t.Logf("disconnect error: %v", err)
			}
		})
	}
}

// TestAuthReload: after Reload a removed key is refused on the next connection while
// an open connection keeps working with its old configuration, and a new key works.
func TestAuthReload(t *testing.T) {
	a, b, c := stSigner(t), stSigner(t), stSigner(t)
	ids := stNewIdentities().add(a, "alice", ssh.ScopeExec).add(b, "bob", ssh.ScopeExec)
	n := stStartTCP(t, ssh.Config{Identities: ids, Exec: stEchoExec(), Subsystems: stSubsystems()})
	open := n.mustDial(t, a)
	stMustEcho(t, open.Client)
	if _, err := n.dial(t, ssh.ClientConfig{Signer: c}); err == nil {
		t.Fatal("carol logged in before being added")
	}

	next := ids.clone()
	next.remove(a)
	next.add(c, "carol", ssh.ScopeExec)
	cfg := n.Cfg
	cfg.Identities = next
	cfg.Exec = nil // new connections cannot exec; the open one keeps its executor
	if err := n.Srv.Reload(cfg); err != nil {
		t.Fatal(err)
	}

	if _, err := n.dial(t, ssh.ClientConfig{Signer: a}); err == nil {
		t.Fatal("removed key logged in after Reload")
	}
	stMustEcho(t, open.Client)
	if id := stIdentityOf(t, open.Client); id.ID != "alice" {
		t.Fatalf("open connection identity %+v", id)
	}
	cc := n.mustDial(t, c)
	if id := stIdentityOf(t, cc.Client); id.ID != "carol" {
		t.Fatalf("new key identity %+v, want carol", id)
	}
	if r := stRun(t, cc.Client, "echo hi", nil); r.Err == nil {
		t.Fatal("exec ran on a connection made after Exec was removed")
	}
	bc := n.mustDial(t, b)
	if id := stIdentityOf(t, bc.Client); id.ID != "bob" {
		t.Fatalf("kept key identity %+v, want bob", id)
	}
}

// TestAuthReloadCertAuthorities: dropping a CA refuses its certificates on the next
// connection.
func TestAuthReloadCertAuthorities(t *testing.T) {
	ca := stNewCA(t)
	n := stStartTCP(t, ssh.Config{CertAuthorities: []ssh.CertAuthority{ca.authority()}, Subsystems: stSubsystems()})
	user := stSigner(t)
	cert := ca.cert(t, user, nil)
	open, err := n.dial(t, ssh.ClientConfig{Signer: user, Certificate: cert, User: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	cfg := n.Cfg
	cfg.CertAuthorities = nil
	if err := n.Srv.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := n.dial(t, ssh.ClientConfig{Signer: user, Certificate: cert, User: "alice"}); err == nil {
		t.Fatal("certificate of a removed CA accepted")
	}
	if id := stIdentityOf(t, open.Client); id.ID != "alice" {
		t.Fatalf("open connection identity %+v", id)
	}
}

// TestAuthIdentityIsACopy: the server keeps its own copy of a resolved identity, so
// a provider that reuses its values cannot change a running session's identity.
func TestAuthIdentityIsACopy(t *testing.T) {
	a := stSigner(t)
	shared := &core.Identity{ID: "alice", Scopes: []string{"s1"}}
	n := stStartTCP(t, ssh.Config{Identities: stSharedProvider{shared}, Subsystems: stSubsystems()})
	c := n.mustDial(t, a)
	shared.ID, shared.Scopes[0] = "mallory", "admin"
	if id := stIdentityOf(t, c.Client); id.ID != "alice" || !slices.Equal(id.Scopes, []string{"s1"}) {
		t.Fatalf("identity %+v changed with the provider's value", id)
	}
}

// stSharedProvider resolves every key to the same *Identity, not a copy.
type stSharedProvider struct{ id *core.Identity }

func (p stSharedProvider) ResolveFromFingerprint(string) (*core.Identity, bool) { return p.id, true }
func (p stSharedProvider) ResolveFromToken(core.AuthToken) (*core.Identity, bool) {
	return nil, false
}

// TestAuthLogUserName: the client-chosen user name cannot forge log lines (so no
// fail2ban line with another remote_ip), and a long one is clipped to 64 bytes
// without cutting a UTF-8 sequence.
func TestAuthLogUserName(t *testing.T) {
	good, bad := stSigner(t), stSigner(t)
	n := stStartTCP(t, ssh.Config{Identities: stNewIdentities().add(good, "alice")})
	forged := "x\nlevel=WARN msg=\"auth failure\" remote_ip=203.0.113.9 alpn=alknet/ssh peer=- reason=forged\n"
	if _, err := n.dial(t, ssh.ClientConfig{Signer: bad, User: forged}); err == nil {
		t.Fatal("unknown key logged in")
	}
	for _, r := range n.Logs.records(core.AuthFailureMessage) {
		if r.Attr["remote_ip"] != "127.0.0.1" {
			t.Fatalf("forged auth failure line: %q", r.Line)
		}
	}
	if strings.Contains(n.Logs.String(), "\nlevel=WARN msg=\"auth failure\" remote_ip=203.0.113.9") {
		t.Fatalf("user name injected a line:\n%s", n.Logs)
	}

	long := "a" + strings.Repeat("é", 100) // 201 bytes; byte 64 is inside an "é"
	if _, err := n.dial(t, ssh.ClientConfig{Signer: good, User: long}); err != nil {
		t.Fatal(err)
	}
	var logged string
	for _, r := range n.Logs.records("auth attempt") {
		if r.Attr["result"] == "accept" {
			logged = r.Attr["user"]
		}
	}
	trimmed := strings.TrimSuffix(logged, "…")
	if len(trimmed) > 64 || !strings.HasPrefix(long, trimmed) || len(trimmed) < 60 {
		t.Fatalf("logged user %q (%d bytes), want a prefix of at most 64 bytes", logged, len(trimmed))
	}
	if !utf8.ValidString(logged) {
		t.Errorf("logged user %q is not valid UTF-8: server.go clipUser cuts at byte 64 inside a rune (policy.go's clipText backs up to a rune start)", logged)
	}
}
