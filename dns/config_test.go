package dns

import (
	"errors"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	off := false
	good := []Config{
		{},
		{Origin: "alk.dev"},
		{Origin: "Alk.Dev."},
		{Origin: "."},
		{Origin: "_under.score-dash.example"},
		{Origin: strings.Repeat("a", 63) + "." + strings.Repeat("b", 63) + "." + strings.Repeat("c", 63)}, // 191 + dot: fits
		{Addresses: []string{"203.0.113.5:4433", "[2001:db8::1]:853"}},
		{Zones: []string{"a.zone", "b.zone"}},
		{ListenPlain: "127.0.0.1:5353"},
		{ListenPlain: ":0"},
		{ListenPlain: "localhost:53"},
		{MaxStreamsPerConn: 100, QueryTimeout: "5s", IdleTimeout: "1m", Padding: &off, TTL: MaxTTL},
		{MaxZoneBytes: 1, MaxZoneRecords: 1},
		{Pkarr: PkarrConfig{Relay: true, Publish: []string{"https://relay.example/pkarr", "http://127.0.0.1:8080"}}},
	}
	for i, c := range good {
		if err := c.Validate(); err != nil {
			t.Errorf("good[%d] %+v: %v", i, c, err)
		}
	}
	bad := []struct {
		cfg Config
		key string
	}{
		{Config{Origin: "a..b"}, "origin"},
		{Config{Origin: ".alk.dev"}, "origin"},
		{Config{Origin: "al k.dev"}, "origin"},
		{Config{Origin: `a\.b`}, "origin"},
		{Config{Origin: strings.Repeat("a", 64) + ".dev"}, "origin"},
		{Config{Origin: strings.Repeat("a", 63) + "." + strings.Repeat("b", 63) + "." + strings.Repeat("c", 63) + ".dd"}, "origin"},
		{Config{Addresses: []string{"203.0.113.5"}}, "addresses[0]"},
		{Config{Addresses: []string{"203.0.113.5:4433", "example.org:4433"}}, "addresses[1]"},
		{Config{Addresses: []string{"0.0.0.0:4433"}}, "addresses[0]"},
		{Config{Addresses: []string{"203.0.113.5:0"}}, "addresses[0]"},
		{Config{Addresses: []string{"[fe80::1%eth0]:853"}}, "addresses[0]"},
		{Config{Zones: []string{""}}, "zones[0]"},
		{Config{Zones: []string{"a.zone", "./a.zone"}}, "zones[1]"},
		{Config{ListenPlain: "127.0.0.1"}, "listen_plain"},
		{Config{ListenPlain: "127.0.0.1:99999"}, "listen_plain"},
		{Config{MaxStreamsPerConn: -1}, "max_streams_per_conn"},
		{Config{QueryTimeout: "5"}, "query_timeout"},
		{Config{QueryTimeout: "-1s"}, "query_timeout"},
		{Config{QueryTimeout: "0s"}, "query_timeout"},
		{Config{IdleTimeout: "soon"}, "idle_timeout"},
		{Config{IdleTimeout: "-5s"}, "idle_timeout"},
		{Config{TTL: -1}, "ttl"},
		{Config{TTL: MaxTTL + 1}, "ttl"},
		{Config{MaxZoneBytes: -1}, "max_zone_bytes"},
		{Config{MaxZoneRecords: -1}, "max_zone_records"},
		{Config{Pkarr: PkarrConfig{Publish: []string{"ftp://relay.example"}}}, "pkarr.publish[0]"},
		{Config{Pkarr: PkarrConfig{Publish: []string{"https://ok.example", "https://"}}}, "pkarr.publish[1]"},
		{Config{Pkarr: PkarrConfig{Publish: []string{"https://relay.example/?a=b"}}}, "pkarr.publish[0]"},
	}
	for i, b := range bad {
		err := b.cfg.Validate()
		if !errors.Is(err, ErrInvalidConfig) || !strings.HasPrefix(err.Error(), b.key+": ") {
			t.Errorf("bad[%d] %+v: error %v, want ErrInvalidConfig naming %q", i, b.cfg, err, b.key)
		}
		if _, err := NewHandler(b.cfg); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("bad[%d]: NewHandler error %v, want ErrInvalidConfig", i, err)
		}
	}
}

func TestConfigHelpers(t *testing.T) {
	c := Config{Zones: []string{"a.zone", "/abs/b.zone"}, Addresses: []string{"[::ffff:192.0.2.1]:853", "[2001:db8::1]:853"}}
	c.Resolve(filepath.Join("etc", "alknet"))
	if want := []string{filepath.Join("etc", "alknet", "a.zone"), "/abs/b.zone"}; !slices.Equal(c.Zones, want) {
		t.Errorf("Resolve: %q, want %q", c.Zones, want)
	}
	aps, err := c.AddrPorts()
	if err != nil {
		t.Fatal(err)
	}
	if want := []netip.AddrPort{netip.MustParseAddrPort("192.0.2.1:853"), netip.MustParseAddrPort("[2001:db8::1]:853")}; !slices.Equal(aps, want) {
		t.Errorf("AddrPorts: %v, want %v", aps, want)
	}
	if !c.PaddingEnabled() {
		t.Error("padding off by default")
	}
	off := false
	c.Padding = &off
	if c.PaddingEnabled() {
		t.Error("padding = false ignored")
	}
	h := ztHandler(t, Config{})
	if sc := c.ServerConfig(h, nil); sc != (ServerConfig{Handler: h}) {
		t.Errorf("defaults: ServerConfig %+v, want zero limits (the server's defaults) and padding off as set", sc)
	}
	c = Config{MaxStreamsPerConn: 7, QueryTimeout: "1m30s", IdleTimeout: "2s"}
	sc := c.ServerConfig(h, nil)
	if want := (ServerConfig{Handler: h, MaxStreamsPerConn: 7, QueryTimeout: 90 * time.Second, IdleTimeout: 2 * time.Second, Padding: true}); sc != want {
		t.Errorf("ServerConfig %+v, want %+v", sc, want)
	}
	if err := sc.Validate(); err != nil {
		t.Errorf("mapped ServerConfig invalid: %v", err)
	}
	if c.ttl() != DefaultTTL {
		t.Errorf("default ttl %d", c.ttl())
	}
}
