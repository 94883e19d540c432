package pkarr_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/alknet/alknet/dns/pkarr"
)

// A relay mounted at /pkarr/ on an HTTP server, and a client publishing to it and
// resolving from it. The relay's Records feed a DNS front for "<z32>." names.
func ExampleRelay() {
	ts := time.Date(2026, 12, 8, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return ts }

	relay := pkarr.NewRelay(pkarr.RelayConfig{Clock: clock})
	mux := http.NewServeMux()
	mux.Handle("/pkarr/", http.StripPrefix("/pkarr", relay))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	pub := priv.Public().(ed25519.PublicKey)
	rr, _ := mdns.NewRR("www 300 IN A 203.0.113.5")
	rr.Header().Name = "www" // relative: placed under the key's TLD
	sp, err := pkarr.Sign(priv, ts, []mdns.RR{rr})
	if err != nil {
		fmt.Println(err)
		return
	}

	ctx := context.Background()
	client := &pkarr.Client{BaseURL: srv.URL + "/pkarr", HTTP: srv.Client(), Now: clock}
	fmt.Println("publish:", client.Publish(ctx, sp))
	fmt.Println("again:", errors.Is(client.Publish(ctx, sp), pkarr.ErrNotNewer))

	got, err := client.Resolve(ctx, pub, time.Time{})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("resolved:", got.Records()[0])
	_, err = client.Resolve(ctx, pub, got.Timestamp())
	fmt.Println("unchanged:", errors.Is(err, pkarr.ErrNotModified))

	rrs, ok := relay.Records(pub)
	fmt.Println("DNS front:", len(rrs), ok)
	// Output:
	// publish: <nil>
	// again: true
	// resolved: www.7jfgaa9nutjyixzikb7tgmsf9gkwq7iqz498zr1nd5ig1fng4esy.	300	IN	A	203.0.113.5
	// unchanged: true
	// DNS front: 1 true
}

// A node keeps its packet on its relays: published at start, about hourly, and when
// its records change.
func ExampleRepublisher() {
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	records := func() []mdns.RR {
		rr, _ := mdns.NewRR("_alknet 300 IN TXT \"v=alknet1\" \"alpn=doq\"")
		rr.Header().Name = "_alknet"
		return []mdns.RR{rr}
	}
	r := &pkarr.Republisher{
		Relays: []pkarr.Publisher{&pkarr.Client{BaseURL: "https://relay.example/pkarr"}},
		Build: func(ctx context.Context) (*pkarr.SignedPacket, error) {
			return pkarr.Sign(priv, time.Now(), records())
		},
		Logger: slog.Default(),
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = r.Run(ctx) }()
	// ... when the node's addresses change:
	r.Changed()
}
