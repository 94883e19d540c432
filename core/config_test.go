package core_test

import (
	"encoding/json"
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alknet/alknet/core"
)

func alicePeer() core.PeerEntry {
	return core.PeerEntry{
		PeerID:        "alice",
		Fingerprints:  []string{fpOf(1)},
		AuthTokenHash: core.HashToken([]byte(aliceToken)),
		Scopes:        []string{"relay:connect"},
		Resources:     map[string][]string{"service": {"gitea"}},
		Enabled:       true,
	}
}

func withPeers(peers ...core.PeerEntry) core.DynamicConfig {
	cfg := core.DefaultDynamicConfig()
	cfg.Auth.Peers = peers
	return cfg
}

// TestReloadGrantsAndRevokesImmediately checks that the next resolution after a reload
// sees the new snapshot, for every provider reading the store.
func TestReloadGrantsAndRevokesImmediately(t *testing.T) {
	store, err := core.NewDynamicStore(core.DefaultDynamicConfig())
	if err != nil {
		t.Fatal(err)
	}
	p1 := core.NewConfigIdentityProvider(store, fixedClock)
	p2 := core.NewConfigIdentityProvider(store, nil)
	resolves := func() (fp, tok bool) {
		_, a := p1.ResolveFromFingerprint(fpOf(1))
		_, b := p2.ResolveFromToken(core.AuthToken{Raw: []byte(aliceToken)})
		return a, b
	}
	steps := []struct {
		name string
		cfg  core.DynamicConfig
		want bool
	}{
		{"empty", core.DefaultDynamicConfig(), false},
		{"grant", withPeers(alicePeer()), true},
		{"disable", withPeers(func() core.PeerEntry { p := alicePeer(); p.Enabled = false; return p }()), false},
		{"re-enable", withPeers(alicePeer()), true},
		{"remove", core.DefaultDynamicConfig(), false},
	}
	for _, st := range steps {
		if err := store.Reload(st.cfg); err != nil {
			t.Fatalf("%s: Reload: %v", st.name, err)
		}
		if fp, tok := resolves(); fp != st.want || tok != st.want {
			t.Errorf("%s: resolved by fingerprint %v, by token %v; want %v", st.name, fp, tok, st.want)
		}
	}
}

// TestReloadCredentialRotation checks that rotating a fingerprint keeps the peer id and
// drops the old credential.
func TestReloadCredentialRotation(t *testing.T) {
	store, p := newProvider(t, withPeers(alicePeer()))
	rotated := alicePeer()
	rotated.Fingerprints = []string{fpOf(5)}
	if err := store.Reload(withPeers(rotated)); err != nil {
		t.Fatal(err)
	}
	if _, ok := p.ResolveFromFingerprint(fpOf(1)); ok {
		t.Error("old fingerprint still resolves after rotation")
	}
	if id, ok := p.ResolveFromFingerprint(fpOf(5)); !ok || id.ID != "alice" {
		t.Errorf("new fingerprint resolves to %+v, %v; want alice", id, ok)
	}
}

func TestReloadRejectsInvalidConfig(t *testing.T) {
	upper := "ed25519:" + strings.ToUpper(strings.TrimPrefix(fpOf(3), "ed25519:"))
	goodHash := core.HashToken([]byte("k"))
	tests := []struct {
		name    string
		mutate  func(*core.DynamicConfig)
		wantMsg string // exact text when wantSub is false
		wantSub bool
	}{
		{
			name: "duplicate peer_id",
			mutate: func(c *core.DynamicConfig) {
				c.Auth.Peers = append(c.Auth.Peers, core.PeerEntry{PeerID: "alice", Enabled: true})
			},
			wantMsg: "duplicate peer_id: alice",
		},
		{
			name:    "empty peer_id",
			mutate:  func(c *core.DynamicConfig) { c.Auth.Peers = append(c.Auth.Peers, core.PeerEntry{}) },
			wantMsg: "peers[1]: empty peer_id",
		},
		{
			name: "uppercase fingerprint",
			mutate: func(c *core.DynamicConfig) {
				c.Auth.Peers = append(c.Auth.Peers, core.PeerEntry{PeerID: "bob", Fingerprints: []string{upper}})
			},
			wantMsg: "peers[1] (bob): fingerprints[0]:", wantSub: true,
		},
		{
			name: "fingerprint with unknown prefix",
			mutate: func(c *core.DynamicConfig) {
				c.Auth.Peers[0].Fingerprints = append(c.Auth.Peers[0].Fingerprints, "sha1:"+strings.Repeat("a", 40))
			},
			wantMsg: "peers[0] (alice): fingerprints[1]:", wantSub: true,
		},
		{
			name: "short fingerprint",
			mutate: func(c *core.DynamicConfig) {
				c.Auth.Peers[0].Fingerprints = []string{"ed25519:abcd"}
			},
			wantMsg: "peers[0] (alice): fingerprints[0]:", wantSub: true,
		},
		{
			name: "duplicate fingerprint across peers",
			mutate: func(c *core.DynamicConfig) {
				c.Auth.Peers = append(c.Auth.Peers, core.PeerEntry{PeerID: "bob", Fingerprints: []string{fpOf(1)}, Enabled: true})
			},
			wantMsg: "peers[1] (bob): fingerprint " + fpOf(1) + " is also listed for peer alice",
		},
		{
			name: "auth token hash with uppercase hex",
			mutate: func(c *core.DynamicConfig) {
				c.Auth.Peers[0].AuthTokenHash = "sha256:" + strings.ToUpper(strings.TrimPrefix(goodHash, "sha256:"))
			},
			wantMsg: "peers[0] (alice): auth_token_hash:", wantSub: true,
		},
		{
			name:    "auth token hash that is the token",
			mutate:  func(c *core.DynamicConfig) { c.Auth.Peers[0].AuthTokenHash = "plain-token" },
			wantMsg: "peers[0] (alice): auth_token_hash:", wantSub: true,
		},
		{
			name: "duplicate auth token hash",
			mutate: func(c *core.DynamicConfig) {
				c.Auth.Peers = append(c.Auth.Peers, core.PeerEntry{PeerID: "bob", AuthTokenHash: c.Auth.Peers[0].AuthTokenHash})
			},
			wantMsg: "peers[1] (bob): auth_token_hash is also used by peer alice",
		},
		{
			name: "API key prefix too short",
			mutate: func(c *core.DynamicConfig) {
				c.Auth.APIKeys = []core.APIKeyEntry{{Prefix: "alk_abc", Hash: goodHash}}
			},
			wantMsg: "api_keys[0]: prefix", wantSub: true,
		},
		{
			name: "API key prefix empty",
			mutate: func(c *core.DynamicConfig) {
				c.Auth.APIKeys = []core.APIKeyEntry{{Hash: goodHash}}
			},
			wantMsg: "api_keys[0]: prefix", wantSub: true,
		},
		{
			name: "API key prefix without alk_",
			mutate: func(c *core.DynamicConfig) {
				c.Auth.APIKeys = []core.APIKeyEntry{{Prefix: "key_abcd", Hash: goodHash}}
			},
			wantMsg: "api_keys[0]: prefix", wantSub: true,
		},
		{
			name: "API key bad hash",
			mutate: func(c *core.DynamicConfig) {
				c.Auth.APIKeys = []core.APIKeyEntry{{Prefix: "alk_abcd", Hash: "sha256:xyz"}}
			},
			wantMsg: "api_keys[0] (alk_abcd): hash:", wantSub: true,
		},
		{
			name: "API key negative expiry",
			mutate: func(c *core.DynamicConfig) {
				c.Auth.APIKeys = []core.APIKeyEntry{{Prefix: "alk_abcd", Hash: goodHash, ExpiresAt: -1}}
			},
			wantMsg: "api_keys[0] (alk_abcd): expires_at -1 is negative",
		},
		{
			name:    "negative handshake timeout",
			mutate:  func(c *core.DynamicConfig) { c.Limits.HandshakeTimeout = -time.Second },
			wantMsg: "limits: handshake_timeout -1s is negative",
		},
		{
			name:    "ipv6 prefix above 128",
			mutate:  func(c *core.DynamicConfig) { c.Limits.IPv6PrefixLen = 129 },
			wantMsg: "limits: ipv6_prefix_len 129 is outside 0..128",
		},
		{
			name:    "ipv6 prefix negative",
			mutate:  func(c *core.DynamicConfig) { c.Limits.IPv6PrefixLen = -1 },
			wantMsg: "limits: ipv6_prefix_len -1 is outside 0..128",
		},
		{
			name:    "invalid exempt network",
			mutate:  func(c *core.DynamicConfig) { c.Limits.PerIPExempt = []netip.Prefix{{}} },
			wantMsg: "limits: per_ip_exempt[0] is not a valid network",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store, p := newProvider(t, withPeers(alicePeer()))
			before := store.Load()
			beforeCopy := withPeers(alicePeer()).Clone()

			cfg := withPeers(alicePeer())
			tt.mutate(&cfg)
			err := store.Reload(cfg)
			if err == nil {
				t.Fatal("Reload accepted an invalid config")
			}
			if !errors.Is(err, core.ErrInvalidConfig) {
				t.Errorf("errors.Is(%v, ErrInvalidConfig) = false", err)
			}
			var ce *core.ConfigError
			if !errors.As(err, &ce) {
				t.Errorf("error %T is not a *ConfigError", err)
			}
			if tt.wantSub {
				if !strings.HasPrefix(err.Error(), tt.wantMsg) {
					t.Errorf("error = %q, want it to start with %q", err, tt.wantMsg)
				}
			} else if err.Error() != tt.wantMsg {
				t.Errorf("error = %q, want %q", err, tt.wantMsg)
			}
			if vErr := cfg.Validate(); vErr == nil || vErr.Error() != err.Error() {
				t.Errorf("Validate() = %v, want the same error as Reload", vErr)
			}
			if store.Load() != before {
				t.Error("a rejected Reload replaced the snapshot")
			}
			if !reflect.DeepEqual(*before, beforeCopy) {
				t.Error("a rejected Reload modified the snapshot")
			}
			if id, ok := p.ResolveFromFingerprint(fpOf(1)); !ok || id.ID != "alice" {
				t.Error("the old snapshot no longer resolves alice after a rejected Reload")
			}
			if s, err := core.NewDynamicStore(cfg); err == nil || s != nil {
				t.Errorf("NewDynamicStore(invalid) = %v, %v; want nil, error", s, err)
			}
		})
	}
}

func TestValidatePeerIDs(t *testing.T) {
	tests := []struct {
		ids  []string
		want string
	}{
		{[]string{"a", "b", "c"}, ""},
		{nil, ""},
		{[]string{"a", "b", "a"}, "duplicate peer_id: a"},
		{[]string{"x", "y", "y", "x"}, "duplicate peer_id: y"},
		{[]string{"a", ""}, "peers[1]: empty peer_id"},
	}
	for _, tt := range tests {
		var pol core.AuthPolicy
		for _, id := range tt.ids {
			pol.Peers = append(pol.Peers, core.PeerEntry{PeerID: id})
		}
		err := pol.ValidatePeerIDs()
		got := ""
		if err != nil {
			got = err.Error()
			if !errors.Is(err, core.ErrInvalidConfig) {
				t.Errorf("%v: error does not wrap ErrInvalidConfig", tt.ids)
			}
		}
		if got != tt.want {
			t.Errorf("ValidatePeerIDs(%q) = %q, want %q", tt.ids, got, tt.want)
		}
	}
}

func TestValidAcceptsEdgeValues(t *testing.T) {
	cfg := core.DynamicConfig{
		Auth: core.AuthPolicy{
			Peers: []core.PeerEntry{
				{PeerID: "a", Fingerprints: []string{"SHA256:" + strings.Repeat("0", 64), fpOf(1)}},
				{PeerID: "b"}, // no credentials at all: valid, resolves to nothing
			},
			APIKeys: []core.APIKeyEntry{
				{Prefix: "alk_abcd", Hash: core.HashToken([]byte("1")), ExpiresAt: 0},
				{Prefix: "alk_abcd", Hash: core.HashToken([]byte("2"))}, // same prefix twice is allowed
			},
		},
		Limits: core.Limits{IPv6PrefixLen: 128, MaxConnections: -1, MaxConnectionsPerIP: -1, MaxAuthAttempts: -1},
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("Validate() = %v, want nil", err)
	}
	if err := (core.DynamicConfig{}).Validate(); err != nil {
		t.Errorf("zero config: Validate() = %v, want nil", err)
	}
}

// TestSnapshotImmutability checks that a snapshot a reader holds never changes: not by
// a later reload, and not by the caller mutating the value it passed to Reload.
func TestSnapshotImmutability(t *testing.T) {
	build := func() core.DynamicConfig {
		cfg := withPeers(alicePeer())
		cfg.Auth.APIKeys = []core.APIKeyEntry{{Prefix: "alk_KEY1", Hash: core.HashToken([]byte(apiToken)), Scopes: []string{"read"}}}
		cfg.Limits.PerIPExempt = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
		return cfg
	}
	cfg := build()
	store, p := newProvider(t, cfg)

	held := store.Load()
	// Clone is under test too, so the expectation is cloned from an independent value.
	want := build().Clone()
	if !reflect.DeepEqual(*held, want) {
		t.Fatalf("published snapshot = %+v, want %+v", *held, want)
	}

	// Mutate everything reachable from the value passed to the store.
	cfg.Auth.Peers[0].PeerID = "mallory"
	cfg.Auth.Peers[0].Fingerprints[0] = fpOf(7)
	cfg.Auth.Peers[0].Scopes[0] = "admin"
	cfg.Auth.Peers[0].Resources["service"][0] = "everything"
	cfg.Auth.Peers[0].Resources["extra"] = []string{"x"}
	cfg.Auth.APIKeys[0].Scopes[0] = "admin"
	cfg.Limits.PerIPExempt[0] = netip.MustParsePrefix("0.0.0.0/0")
	if !reflect.DeepEqual(*store.Load(), want) {
		t.Fatalf("mutating the config passed in changed the published snapshot:\n got %+v\nwant %+v", *store.Load(), want)
	}
	if id, ok := p.ResolveFromFingerprint(fpOf(1)); !ok || id.ID != "alice" || id.Scopes[0] != "relay:connect" {
		t.Errorf("resolution after mutating the input = %+v, %v", id, ok)
	}
	if _, ok := p.ResolveFromFingerprint(fpOf(7)); ok {
		t.Error("a fingerprint added to the caller's copy resolves")
	}

	// A reload publishes a new snapshot and leaves the held one alone.
	if err := store.Reload(core.DefaultDynamicConfig()); err != nil {
		t.Fatal(err)
	}
	if store.Load() == held {
		t.Error("Reload did not publish a new snapshot")
	}
	if !reflect.DeepEqual(*held, want) {
		t.Errorf("the held snapshot changed after Reload:\n got %+v\nwant %+v", *held, want)
	}
}

// TestReloadRace runs one goroutine alternately granting and revoking a peer while
// others resolve. Every answer must come from one whole snapshot. Meant for -race.
func TestReloadRace(t *testing.T) {
	const (
		reloads = 300
		readers = 4
	)
	granted := withPeers(alicePeer())
	revoked := core.DefaultDynamicConfig()
	store, p := newProvider(t, revoked)

	done := make(chan struct{})
	errc := make(chan error, readers+1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(done)
		for i := range reloads {
			cfg := revoked
			if i%2 == 0 {
				cfg = granted
			}
			if err := store.Reload(cfg); err != nil {
				errc <- err
				return
			}
		}
	}()
	for range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				if id, ok := p.ResolveFromFingerprint(fpOf(1)); ok && (id.ID != "alice" || len(id.Scopes) != 1 || id.Scopes[0] != "relay:connect") {
					errc <- errors.New("fingerprint resolved to a torn identity")
					return
				}
				if id, ok := p.ResolveFromToken(core.AuthToken{Raw: []byte(aliceToken)}); ok && id.ID != "alice" {
					errc <- errors.New("token resolved to the wrong identity")
					return
				}
				snap := store.Load()
				if n := len(snap.Auth.Peers); n != 0 && n != 1 {
					errc <- errors.New("snapshot with an impossible peer count")
					return
				}
				_ = store.Limits()
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	// reloads is even, so the last reload revoked.
	if _, ok := p.ResolveFromFingerprint(fpOf(1)); ok {
		t.Error("final snapshot should be the revoking one")
	}
}

func TestDefaultDynamicConfig(t *testing.T) {
	cfg := core.DefaultDynamicConfig()
	want := core.Limits{
		MaxConnections:      10000,
		MaxConnectionsPerIP: 100,
		IPv6PrefixLen:       64,
		HandshakeTimeout:    5 * time.Second,
		MaxAuthAttempts:     5,
		IdleTimeout:         30 * time.Second,
		// 256 MiB per node, 128 MiB per address, 64 MiB per connection, 1 MiB frames
		// without an identity.
		MaxBufferedBytes:        256 << 20,
		MaxBufferedBytesPerIP:   128 << 20,
		MaxBufferedBytesPerConn: 64 << 20,
		MaxAnonymousFrameBytes:  1 << 20,
	}
	if !reflect.DeepEqual(cfg.Limits, want) {
		t.Errorf("default limits = %+v, want %+v", cfg.Limits, want)
	}
	if len(cfg.Auth.Peers) != 0 || len(cfg.Auth.APIKeys) != 0 {
		t.Errorf("default auth = %+v, want no peers and no keys", cfg.Auth)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("default config invalid: %v", err)
	}
	var s core.DynamicStore
	if got := s.Limits(); !reflect.DeepEqual(got, want) {
		t.Errorf("zero store Limits() = %+v, want defaults", got)
	}
	if s.Load() == nil {
		t.Error("zero store Load() = nil, want an empty snapshot")
	}
}

func TestLimitsEffective(t *testing.T) {
	defaults := core.DefaultDynamicConfig().Limits
	custom := core.Limits{
		MaxConnections:          -1,
		MaxConnectionsPerIP:     3,
		PerIPExempt:             []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")},
		IPv6PrefixLen:           48,
		HandshakeTimeout:        time.Second,
		MaxAuthAttempts:         -1,
		IdleTimeout:             -1,
		MaxBufferedBytes:        -1,
		MaxBufferedBytesPerIP:   10,
		MaxBufferedBytesPerConn: 20,
		MaxAnonymousFrameBytes:  -1,
	}
	tests := []struct {
		name string
		in   core.Limits
		want core.Limits
	}{
		{"zero gets every default", core.Limits{}, defaults},
		{"set values are kept, negatives mean no limit", custom, custom},
		{"partial", core.Limits{MaxConnectionsPerIP: 7}, func() core.Limits { l := defaults; l.MaxConnectionsPerIP = 7; return l }()},
	}
	for _, tt := range tests {
		if got := tt.in.Effective(); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: Effective() = %+v, want %+v", tt.name, got, tt.want)
		}
	}
	store, err := core.NewDynamicStore(core.DynamicConfig{Limits: core.Limits{MaxConnectionsPerIP: 7}})
	if err != nil {
		t.Fatal(err)
	}
	if got := store.Limits(); got.MaxConnectionsPerIP != 7 || got.MaxConnections != core.DefaultMaxConnections {
		t.Errorf("store.Limits() = %+v, want defaults applied", got)
	}
}

func TestPerIPKey(t *testing.T) {
	exempt := []netip.Prefix{
		netip.MustParsePrefix("127.0.0.0/8"),
		netip.MustParsePrefix("::1/128"),
		netip.MustParsePrefix("fd00::/8"),
	}
	tests := []struct {
		name   string
		limits core.Limits
		addr   string
		want   string // "" means exempt
	}{
		{"IPv4", core.Limits{}, "203.0.113.9", "203.0.113.9"},
		{"IPv4-mapped IPv6 is unmapped", core.Limits{}, "::ffff:203.0.113.9", "203.0.113.9"},
		{"IPv6 grouped by /64 by default", core.Limits{}, "2001:db8:1:2:3:4:5:6", "2001:db8:1:2::"},
		{"IPv6 same /64 same key", core.Limits{}, "2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::"},
		{"IPv6 other /64 other key", core.Limits{}, "2001:db8:1:3::1", "2001:db8:1:3::"},
		{"IPv6 zone dropped", core.Limits{}, "fe80::1:2%eth0", "fe80::"},
		{"IPv6 /48", core.Limits{IPv6PrefixLen: 48}, "2001:db8:1:2:3:4:5:6", "2001:db8:1::"},
		{"IPv6 /128 counts each address", core.Limits{IPv6PrefixLen: 128}, "2001:db8:1:2:3:4:5:6", "2001:db8:1:2:3:4:5:6"},
		{"IPv6 /56", core.Limits{IPv6PrefixLen: 56}, "2001:db8:1:2ff::1", "2001:db8:1:200::"},
		{"out-of-range prefix falls back to /64", core.Limits{IPv6PrefixLen: 200}, "2001:db8:1:2:3:4:5:6", "2001:db8:1:2::"},
		{"prefix does not apply to IPv4", core.Limits{IPv6PrefixLen: 8}, "198.51.100.1", "198.51.100.1"},
		{"exempt IPv4", core.Limits{PerIPExempt: exempt}, "127.0.0.1", ""},
		{"exempt IPv4-mapped", core.Limits{PerIPExempt: exempt}, "::ffff:127.0.0.1", ""},
		{"exempt IPv6 loopback", core.Limits{PerIPExempt: exempt}, "::1", ""},
		{"exempt IPv6 network", core.Limits{PerIPExempt: exempt}, "fd12:3456::1", ""},
		{"not exempt", core.Limits{PerIPExempt: exempt}, "128.0.0.1", "128.0.0.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := tt.limits.PerIPKey(netip.MustParseAddr(tt.addr))
			if tt.want == "" {
				if ok {
					t.Errorf("PerIPKey(%s) = %s, true; want exempt", tt.addr, got)
				}
				return
			}
			if !ok || got != netip.MustParseAddr(tt.want) {
				t.Errorf("PerIPKey(%s) = %s, %v; want %s, true", tt.addr, got, ok, tt.want)
			}
		})
	}
}

func TestDynamicConfigJSONFieldNames(t *testing.T) {
	cfg := core.DynamicConfig{Auth: core.AuthPolicy{
		Peers:   []core.PeerEntry{{PeerID: "p", Fingerprints: []string{fpOf(1)}, AuthTokenHash: core.HashToken(nil), Enabled: true}},
		APIKeys: []core.APIKeyEntry{{Prefix: "alk_abcd", Hash: core.HashToken(nil), ExpiresAt: 5}},
	}}
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"auth":`, `"peers":`, `"api_keys":`, `"peer_id":"p"`, `"fingerprints":`, `"auth_token_hash":`, `"enabled":true`, `"prefix":"alk_abcd"`, `"hash":`, `"expires_at":5`, `"limits":`, `"max_connections_per_ip":`, `"ipv6_prefix_len":`} {
		if !strings.Contains(string(b), key) {
			t.Errorf("JSON %s lacks %s", b, key)
		}
	}
	var back core.DynamicConfig
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back.Auth, cfg.Auth) {
		t.Errorf("round trip auth = %+v, want %+v", back.Auth, cfg.Auth)
	}
}
