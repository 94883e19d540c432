package core_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/alknet/alknet/core"
)

// A registry maps ALPNs to handlers; one handler may serve several ALPNs. The order of
// registration is the server's preference order in the TLS handshake.
func ExampleRegistry() {
	reg := core.NewRegistry()
	echo := core.HandlerFunc(func(ctx context.Context, conn *core.Connection, auth core.AuthContext) error {
		s, err := conn.AcceptBi(ctx)
		if err != nil {
			return err
		}
		if _, err := io.Copy(s, s); err != nil {
			return err
		}
		return s.CloseWrite()
	})
	web := core.HandlerFunc(func(context.Context, *core.Connection, core.AuthContext) error { return nil })

	for _, r := range []struct {
		alpn string
		h    core.Handler
	}{{"alknet/echo", echo}, {"h2", web}, {"http/1.1", web}} {
		if err := reg.RegisterAs(r.alpn, r.h); err != nil {
			fmt.Println(err)
		}
	}
	fmt.Println(reg.ALPNs())

	err := reg.RegisterAs("alknet/echo", echo)
	fmt.Println(errors.Is(err, core.ErrDuplicateALPN), err)
	err = reg.RegisterAs(core.ALPNACME, echo)
	fmt.Println(errors.Is(err, core.ErrInvalidALPN))
	// Output:
	// [alknet/echo h2 http/1.1]
	// true duplicate ALPN: "alknet/echo"
	// true
}

// Reload swaps the live configuration: the next resolution sees it. An invalid
// configuration is refused and the current one stays.
func ExampleDynamicStore_Reload() {
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, ed25519.SeedSize))
	fp := core.FingerprintFromPublicKey(key.Public().(ed25519.PublicKey))

	store, err := core.NewDynamicStore(core.DefaultDynamicConfig())
	if err != nil {
		panic(err)
	}
	idp := core.NewConfigIdentityProvider(store, nil)
	_, ok := idp.ResolveFromFingerprint(fp)
	fmt.Println("before reload:", ok)

	cfg := core.DefaultDynamicConfig()
	cfg.Auth.Peers = []core.PeerEntry{{PeerID: "laptop", Fingerprints: []string{fp}, Scopes: []string{"admin"}, Enabled: true}}
	if err := store.Reload(cfg); err != nil {
		panic(err)
	}
	id, ok := idp.ResolveFromFingerprint(fp)
	fmt.Println("after reload:", ok, id.ID, id.Scopes)

	bad := cfg.Clone()
	bad.Auth.Peers = append(bad.Auth.Peers, core.PeerEntry{PeerID: "laptop"})
	err = store.Reload(bad)
	fmt.Println(errors.Is(err, core.ErrInvalidConfig), err)
	_, ok = idp.ResolveFromFingerprint(fp)
	fmt.Println("still granted:", ok)
	// Output:
	// before reload: false
	// after reload: true laptop [admin]
	// true duplicate peer_id: laptop
	// still granted: true
}

// NewAPIKey makes a token to hand out (once) and the entry to keep in the
// configuration; the token resolves to an identity named by its public prefix.
func ExampleConfigIdentityProvider_ResolveFromToken() {
	token, entry, err := core.NewAPIKey([]string{"read"}, "CI pipeline")
	if err != nil {
		panic(err)
	}
	defer token.Wipe()
	entry.ExpiresAt = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).Unix()

	cfg := core.DefaultDynamicConfig()
	cfg.Auth.APIKeys = []core.APIKeyEntry{entry}
	store, err := core.NewDynamicStore(cfg)
	if err != nil {
		panic(err)
	}
	clock := func() time.Time { return time.Date(2029, 6, 1, 0, 0, 0, 0, time.UTC) }
	idp := core.NewConfigIdentityProvider(store, clock)

	id, ok := idp.ResolveFromToken(token)
	fmt.Println("resolved:", ok)
	fmt.Println("id is the prefix:", id.ID == entry.Prefix, len(id.ID))
	fmt.Println("scopes:", id.Scopes)
	fmt.Println("token prints as", token)

	later := core.NewConfigIdentityProvider(store, func() time.Time { return time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC) })
	_, ok = later.ResolveFromToken(token)
	fmt.Println("after expiry:", ok)
	// Output:
	// resolved: true
	// id is the prefix: true 8
	// scopes: [read]
	// token prints as [REDACTED]
	// after expiry: false
}

// Capabilities carry outbound secrets to a handler; they never print, log or marshal.
func ExampleCapabilities() {
	caps := core.NewCapabilities(map[string][]byte{
		"api_key:github":   []byte("ghp_example"),
		"http_token:gitea": []byte("gitea_example"),
	})
	defer caps.Wipe()

	tok, ok := caps.Get("gitea") // api_key:gitea first, then http_token:gitea
	fmt.Println(ok, len(tok))
	clear(tok)

	fmt.Println(caps)
	fmt.Printf("%#v\n", caps)
	slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	})).Info("starting", "caps", caps)
	_, err := json.Marshal(caps)
	fmt.Println(errors.Is(err, core.ErrNotSerializable))
	// Output:
	// true 13
	// [REDACTED]
	// [REDACTED]
	// level=INFO msg=starting caps=[REDACTED]
	// true
}

// The fingerprint of an Ed25519 key is its hex, the same string an Ed25519
// certificate for that key fingerprints to.
func ExampleFingerprintFromPublicKey() {
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	fp := core.FingerprintFromPublicKey(key.Public().(ed25519.PublicKey))
	fmt.Println(fp)

	kind, sum, err := core.ParseFingerprint(fp)
	fmt.Println(kind, len(sum), err)
	// Output:
	// ed25519:ea4a6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea691446d22c
	// ed25519: 32 <nil>
}

// A handler buffers inbound bytes against its connection's budget, which sits under its
// remote address's and the node's: a reservation that would pass any of them fails with
// an error naming the limit.
func ExampleBudget() {
	node := core.NewBudget(core.BudgetScopeNode, 1<<20, nil)
	conn := core.NewBudget(core.BudgetScopeConn, 64<<10, node)

	buf := conn.Reservation()
	defer buf.Release()
	for _, chunk := range []int64{32 << 10, 32 << 10, 1} {
		if err := buf.Grow(chunk); err != nil {
			fmt.Println(err)
			break
		}
	}
	fmt.Println(buf.Bytes(), node.Used())
	// Output:
	// memory budget exceeded: max_buffered_bytes_per_conn of 65536 bytes
	// 65536 65536
}

// A connection may present a wrong credential MaxAuthAttempts times; the next attempt,
// right or wrong, is refused and the handler closes the connection.
func ExampleAuthAttempts() {
	attempts := core.NewAuthAttempts(2)
	for i := 1; ; i++ {
		if err := attempts.Allow(); err != nil {
			fmt.Printf("attempt %d: %v\n", i, err)
			break
		}
		attempts.Fail() // the token did not resolve
		fmt.Printf("attempt %d: wrong token\n", i)
	}
	// Output:
	// attempt 1: wrong token
	// attempt 2: wrong token
	// attempt 3: too many authentication attempts (limit 2)
}
