package core_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/alknet/alknet/core"
)

// Tokens and keys of the identity fixture. API key tokens are "alk_" + 4 + secret; their
// entry prefix is the first 8 bytes.
const (
	aliceToken   = "alice-peer-token"
	bobToken     = "bob-peer-token"
	carolToken   = "alk_carolpeertoken" // a peer token that happens to look like an API key
	shortToken   = "tiny"               // a peer token shorter than an API key prefix
	apiToken     = "alk_KEY1-secret-part"
	expiredToken = "alk_OLD1-secret-part"
	edgeToken    = "alk_EDGE-secret-part" // expires exactly at fixedNow
	edge1Token   = "alk_EDG1-secret-part" // expires one second after fixedNow
	sameAToken   = "alk_SAME-first-secret"
	sameBToken   = "alk_SAME-second-secret"
)

// fixedNow is the clock of every provider in these tests.
var fixedNow = time.Unix(1_000_000, 0)

func fixedClock() time.Time { return fixedNow }

func testPolicyConfig() core.DynamicConfig {
	return core.DynamicConfig{Auth: core.AuthPolicy{
		Peers: []core.PeerEntry{
			{
				PeerID:        "alice",
				Fingerprints:  []string{fpOf(1), fpOf(11)},
				AuthTokenHash: core.HashToken([]byte(aliceToken)),
				Scopes:        []string{"relay:connect", "secrets:derive"},
				Resources:     map[string][]string{"service": {"gitea", "registry"}},
				DisplayName:   "Alice",
				Enabled:       true,
			},
			{
				PeerID:        "bob",
				Fingerprints:  []string{fpOf(2)},
				AuthTokenHash: core.HashToken([]byte(bobToken)),
				Scopes:        []string{"admin"},
				Enabled:       false, // known but revoked
			},
			{
				PeerID:        "carol",
				AuthTokenHash: core.HashToken([]byte(carolToken)),
				Scopes:        []string{"ssh:exec"},
				Enabled:       true,
			},
			{
				PeerID:        "dave",
				AuthTokenHash: core.HashToken([]byte(shortToken)),
				Enabled:       true,
			},
		},
		APIKeys: []core.APIKeyEntry{
			{Prefix: "alk_KEY1", Hash: core.HashToken([]byte(apiToken)), Scopes: []string{"read"}},
			{Prefix: "alk_OLD1", Hash: core.HashToken([]byte(expiredToken)), Scopes: []string{"read"}, ExpiresAt: 1},
			{Prefix: "alk_EDGE", Hash: core.HashToken([]byte(edgeToken)), ExpiresAt: fixedNow.Unix()},
			{Prefix: "alk_EDG1", Hash: core.HashToken([]byte(edge1Token)), Scopes: []string{"edge"}, ExpiresAt: fixedNow.Unix() + 1},
			{Prefix: "alk_SAME", Hash: core.HashToken([]byte(sameAToken)), Scopes: []string{"same-a"}},
			{Prefix: "alk_SAME", Hash: core.HashToken([]byte(sameBToken)), Scopes: []string{"same-b"}},
		},
	}}
}

func newProvider(t *testing.T, cfg core.DynamicConfig) (*core.DynamicStore, *core.ConfigIdentityProvider) {
	t.Helper()
	store, err := core.NewDynamicStore(cfg)
	if err != nil {
		t.Fatalf("NewDynamicStore: %v", err)
	}
	return store, core.NewConfigIdentityProvider(store, fixedClock)
}

var aliceIdentity = &core.Identity{
	ID:        "alice",
	Scopes:    []string{"relay:connect", "secrets:derive"},
	Resources: map[string][]string{"service": {"gitea", "registry"}},
}

func TestResolveFromFingerprint(t *testing.T) {
	_, p := newProvider(t, testPolicyConfig())
	upperHex := "ed25519:" + strings.ToUpper(strings.TrimPrefix(fpOf(1), "ed25519:"))
	tests := []struct {
		name string
		fp   string
		want *core.Identity
	}{
		{"known fingerprint", fpOf(1), aliceIdentity},
		{"second fingerprint of the same peer", fpOf(11), aliceIdentity},
		{"unknown fingerprint", fpOf(3), nil},
		{"disabled peer", fpOf(2), nil},
		{"empty fingerprint", "", nil},
		{"uppercase hex of a known key", upperHex, nil},
		{"uppercase prefix of a known key", "ED25519:" + strings.TrimPrefix(fpOf(1), "ed25519:"), nil},
		{"known key with trailing space", fpOf(1) + " ", nil},
		{"SHA256 form of nothing known", "SHA256:" + strings.Repeat("0", 64), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := p.ResolveFromFingerprint(tt.fp)
			if ok != (tt.want != nil) || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ResolveFromFingerprint(%q) = %+v, %v; want %+v", tt.fp, got, ok, tt.want)
			}
		})
	}
}

func TestResolveEmptyConfig(t *testing.T) {
	stores := map[string]*core.DynamicStore{"zero DynamicStore": {}}
	if s, err := core.NewDynamicStore(core.DefaultDynamicConfig()); err != nil {
		t.Fatal(err)
	} else {
		stores["default config"] = s
	}
	for name, s := range stores {
		t.Run(name, func(t *testing.T) {
			p := core.NewConfigIdentityProvider(s, nil)
			for _, fp := range []string{fpOf(1), ""} {
				if id, ok := p.ResolveFromFingerprint(fp); ok || id != nil {
					t.Errorf("ResolveFromFingerprint(%q) = %+v, %v; want none", fp, id, ok)
				}
			}
			for _, tok := range []string{aliceToken, apiToken, ""} {
				if id, ok := p.ResolveFromToken(core.AuthToken{Raw: []byte(tok)}); ok || id != nil {
					t.Errorf("ResolveFromToken(%q) = %+v, %v; want none", tok, id, ok)
				}
			}
		})
	}
}

func TestResolveFromToken(t *testing.T) {
	_, p := newProvider(t, testPolicyConfig())
	apiIdentity := func(prefix string, scopes ...string) *core.Identity {
		return &core.Identity{ID: prefix, Scopes: scopes, Resources: map[string][]string{}}
	}
	tests := []struct {
		name  string
		token string
		want  *core.Identity
	}{
		{"peer token", aliceToken, aliceIdentity},
		{"disabled peer token", bobToken, nil},
		{"peer token starting alk_ resolves to the peer", carolToken, &core.Identity{ID: "carol", Scopes: []string{"ssh:exec"}}},
		{"peer token shorter than an API key prefix", shortToken, &core.Identity{ID: "dave"}},
		{"API key fallthrough", apiToken, apiIdentity("alk_KEY1", "read")},
		{"API key wrong secret", "alk_KEY1-wrong-secret", nil},
		{"API key prefix alone", "alk_KEY1", nil},
		{"API key expired (expires_at=1)", expiredToken, nil},
		{"API key at its expiry second", edgeToken, nil},
		{"API key one second before expiry", edge1Token, apiIdentity("alk_EDG1", "edge")},
		{"same prefix, first entry's hash", sameAToken, apiIdentity("alk_SAME", "same-a")},
		{"same prefix, second entry's hash", sameBToken, apiIdentity("alk_SAME", "same-b")},
		{"same prefix, no hash matches", "alk_SAME-third-secret", nil},
		{"non-alk token without peer match", "KEY1-secret-part", nil},
		{"uppercase ALK prefix", "ALK_KEY1-secret-part", nil},
		{"token shorter than 8 bytes", "alk_KEY", nil},
		{"exactly alk_", "alk_", nil},
		{"unknown token", "who-knows", nil},
		{"empty token", "", nil},
		{"non-UTF-8 token", "alk_\xff\xfe\xfd\xfc-secret", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := p.ResolveFromToken(core.AuthToken{Raw: []byte(tt.token)})
			if ok != (tt.want != nil) || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ResolveFromToken(%q) = %+v, %v; want %+v", tt.token, got, ok, tt.want)
			}
			if ok && got.ID == "alk_KEY1" && got.Resources == nil {
				t.Error("API key identity has nil Resources, want an empty map")
			}
		})
	}
}

// TestAPIKeyExpiryClock checks that the clock passed to NewConfigIdentityProvider is
// the one consulted, on both sides of the expiry second.
func TestAPIKeyExpiryClock(t *testing.T) {
	store, err := core.NewDynamicStore(testPolicyConfig())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		now  time.Time
		want bool
	}{
		{fixedNow.Add(-time.Second), true},
		{fixedNow.Add(-time.Nanosecond), true},
		{fixedNow, false},
		{fixedNow.Add(time.Hour), false},
	}
	for _, tt := range tests {
		p := core.NewConfigIdentityProvider(store, func() time.Time { return tt.now })
		if _, ok := p.ResolveFromToken(core.AuthToken{Raw: []byte(edgeToken)}); ok != tt.want {
			t.Errorf("at %d (expires_at %d): resolved = %v, want %v", tt.now.Unix(), fixedNow.Unix(), ok, tt.want)
		}
	}
}

// TestResolvedIdentityIsACopy checks that mutating a resolved identity changes neither
// the snapshot nor later resolutions.
func TestResolvedIdentityIsACopy(t *testing.T) {
	store, p := newProvider(t, testPolicyConfig())
	for name, resolve := range map[string]func() (*core.Identity, bool){
		"fingerprint": func() (*core.Identity, bool) { return p.ResolveFromFingerprint(fpOf(1)) },
		"token":       func() (*core.Identity, bool) { return p.ResolveFromToken(core.AuthToken{Raw: []byte(aliceToken)}) },
	} {
		t.Run(name, func(t *testing.T) {
			id, ok := resolve()
			if !ok {
				t.Fatal("alice did not resolve")
			}
			id.ID = "mallory"
			id.Scopes[0] = "admin"
			id.Resources["service"][0] = "everything"
			id.Resources["extra"] = []string{"x"}
			again, _ := resolve()
			if !reflect.DeepEqual(again, aliceIdentity) {
				t.Errorf("after mutating a result, resolve = %+v, want %+v", again, aliceIdentity)
			}
			peer := store.Load().Auth.Peers[0]
			if peer.Scopes[0] != "relay:connect" || peer.Resources["service"][0] != "gitea" || len(peer.Resources) != 1 {
				t.Errorf("snapshot changed: %+v", peer)
			}
		})
	}
	t.Run("api key", func(t *testing.T) {
		id, ok := p.ResolveFromToken(core.AuthToken{Raw: []byte(apiToken)})
		if !ok {
			t.Fatal("API key did not resolve")
		}
		id.Scopes[0] = "admin"
		id.Resources["service"] = []string{"x"}
		if k := store.Load().Auth.APIKeys[0]; k.Scopes[0] != "read" {
			t.Errorf("snapshot API key scopes changed to %q", k.Scopes)
		}
		again, _ := p.ResolveFromToken(core.AuthToken{Raw: []byte(apiToken)})
		if again.Scopes[0] != "read" || len(again.Resources) != 0 {
			t.Errorf("second resolve = %+v", again)
		}
	})
}

func TestHashToken(t *testing.T) {
	tests := []struct {
		tok  []byte
		want string
	}{
		{nil, "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
		{[]byte("abc"), "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
	}
	for _, tt := range tests {
		if got := core.HashToken(tt.tok); got != tt.want {
			t.Errorf("HashToken(%q) = %q, want %q", tt.tok, got, tt.want)
		}
	}
	// Raw bytes are hashed as they are (no lossy UTF-8 decoding as in the Rust original).
	raw := []byte{0xff, 0xfe, 'a'}
	sum := sha256.Sum256(raw)
	if got, want := core.HashToken(raw), "sha256:"+hex.EncodeToString(sum[:]); got != want {
		t.Errorf("HashToken(non-UTF-8) = %q, want %q", got, want)
	}
	lossy := []byte(strings.ToValidUTF8(string(raw), "\uFFFD"))
	if core.HashToken(raw) == core.HashToken(lossy) {
		t.Error("HashToken hashes the lossy UTF-8 form; want the raw bytes")
	}
	if got := core.HashToken([]byte("x")); !tokenHashRe.MatchString(got) {
		t.Errorf("HashToken format %q, want sha256:<64 lowercase hex>", got)
	}
}

func TestNewAPIKey(t *testing.T) {
	tok, entry, err := core.NewAPIKey([]string{"read", "write"}, "ci")
	if err != nil {
		t.Fatal(err)
	}
	raw := string(tok.Raw)
	if !strings.HasPrefix(raw, core.APIKeyPrefix) {
		t.Errorf("token %q does not start with %q", raw, core.APIKeyPrefix)
	}
	// 24 random bytes as unpadded base64url after "alk_": 192 bits >= 128 required.
	if len(raw) != len(core.APIKeyPrefix)+32 {
		t.Errorf("token length %d, want %d", len(raw), len(core.APIKeyPrefix)+32)
	}
	if strings.ContainsAny(raw[4:], "+/=") {
		t.Errorf("token %q is not unpadded base64url", raw)
	}
	if len(entry.Prefix) != core.APIKeyPrefixLen || entry.Prefix != raw[:core.APIKeyPrefixLen] {
		t.Errorf("entry prefix %q, want the token's first %d bytes", entry.Prefix, core.APIKeyPrefixLen)
	}
	if entry.Hash != core.HashToken(tok.Raw) {
		t.Errorf("entry hash %q, want HashToken(token)", entry.Hash)
	}
	if entry.Description != "ci" || entry.ExpiresAt != 0 {
		t.Errorf("entry = %+v", entry)
	}

	// The entry is valid configuration and resolves the token.
	cfg := core.DefaultDynamicConfig()
	cfg.Auth.APIKeys = []core.APIKeyEntry{entry}
	_, p := newProvider(t, cfg)
	id, ok := p.ResolveFromToken(tok)
	want := &core.Identity{ID: entry.Prefix, Scopes: []string{"read", "write"}, Resources: map[string][]string{}}
	if !ok || !reflect.DeepEqual(id, want) {
		t.Errorf("ResolveFromToken(new key) = %+v, %v; want %+v", id, ok, want)
	}

	tok2, entry2, err := core.NewAPIKey(nil, "")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(tok.Raw, tok2.Raw) || entry.Hash == entry2.Hash {
		t.Error("two NewAPIKey calls returned the same token")
	}

	// Scopes are copied.
	scopes := []string{"read"}
	_, e3, _ := core.NewAPIKey(scopes, "")
	scopes[0] = "admin"
	if e3.Scopes[0] != "read" {
		t.Error("NewAPIKey kept the caller's scopes slice")
	}
}

// TestAuthTokenRedaction checks that a token never prints, logs or marshals its bytes.
func TestAuthTokenRedaction(t *testing.T) {
	const secret = "alk_SuperSecretTokenValue"
	tok := core.AuthToken{Raw: []byte(secret)}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d"} {
		for name, arg := range map[string]any{"value": tok, "pointer": &tok} {
			got := fmt.Sprintf(verb, arg)
			if got != "[REDACTED]" {
				t.Errorf("Sprintf(%q, %s) = %q, want [REDACTED]", verb, name, got)
			}
		}
	}
	if got := fmt.Sprintf("%+v", struct{ Token core.AuthToken }{tok}); strings.Contains(got, "Secret") || !strings.Contains(got, "[REDACTED]") {
		t.Errorf("struct field printed as %q", got)
	}
	if tok.String() != "[REDACTED]" || tok.GoString() != "[REDACTED]" {
		t.Errorf("String/GoString = %q/%q", tok.String(), tok.GoString())
	}
	assertRedactedLogs(t, "token", tok, secret)
	for name, v := range map[string]any{"value": tok, "field": struct {
		T core.AuthToken `json:"t"`
	}{tok}} {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("json.Marshal(%s): %v", name, err)
		}
		if strings.Contains(string(b), "Secret") || !strings.Contains(string(b), `"[REDACTED]"`) {
			t.Errorf("json.Marshal(%s) = %s", name, b)
		}
	}
	tok.Wipe()
	if !bytes.Equal(tok.Raw, make([]byte, len(secret))) {
		t.Errorf("Wipe left %q", tok.Raw)
	}
}

// assertRedactedLogs logs v under key with slog's text and JSON handlers and checks that
// the line carries [REDACTED] and not secret.
func assertRedactedLogs(t *testing.T, key string, v any, secret string) {
	t.Helper()
	handlers := map[string]func(*bytes.Buffer) slog.Handler{
		"text": func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) },
		"json": func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) },
	}
	wants := map[string]string{"text": key + "=[REDACTED]", "json": `"` + key + `":"[REDACTED]"`}
	for name, mk := range handlers {
		var buf bytes.Buffer
		l := slog.New(mk(&buf))
		l.Info("msg", key, v)
		l.Info("msg", slog.Any(key, v))
		l.Info("msg", slog.Group("g", key, v))
		out := buf.String()
		if strings.Contains(out, secret) || strings.Contains(out, hex.EncodeToString([]byte(secret))) {
			t.Errorf("%s handler leaked the secret: %s", name, out)
		}
		if strings.Count(out, wants[name]) != 3 {
			t.Errorf("%s handler output %q, want %q three times", name, out, wants[name])
		}
	}
}

func TestIdentityHelpers(t *testing.T) {
	id := core.Identity{ID: "a", Scopes: []string{"admin", "ssh:exec"}}
	if !id.HasScope("admin") || id.HasScope("adm") || (core.Identity{}).HasScope("") {
		t.Error("HasScope is wrong")
	}
	if c := (core.Identity{ID: "x"}).Clone(); c.Scopes != nil || c.Resources != nil {
		t.Errorf("Clone of an identity without scopes = %+v, want nil slices/maps", c)
	}
	p := core.PeerEntry{PeerID: "p", Scopes: []string{"s"}, Resources: map[string][]string{"t": {"r"}}, Fingerprints: []string{"f"}}
	pid := p.Identity()
	pid.Scopes[0] = "x"
	pid.Resources["t"][0] = "x"
	if p.Scopes[0] != "s" || p.Resources["t"][0] != "r" {
		t.Error("PeerEntry.Identity shares memory with the entry")
	}
	pc := p.Clone()
	pc.Fingerprints[0] = "x"
	pc.Resources["t"][0] = "x"
	if p.Fingerprints[0] != "f" || p.Resources["t"][0] != "r" {
		t.Error("PeerEntry.Clone shares memory with the entry")
	}
}

func TestIdentityJSON(t *testing.T) {
	id := core.Identity{ID: "alice", Scopes: []string{"admin"}, Resources: map[string][]string{"service": {"gitea"}}}
	b, err := json.Marshal(id)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"id":"alice","scopes":["admin"],"resources":{"service":["gitea"]}}`; string(b) != want {
		t.Errorf("json = %s, want %s", b, want)
	}
	var back core.Identity
	if err := json.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(back, id) {
		t.Errorf("round trip = %+v, %v", back, err)
	}
}
