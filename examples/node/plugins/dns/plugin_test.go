package dns

import (
	"errors"
	"slices"
	"testing"

	mdns "github.com/miekg/dns"
	"go.uber.org/goleak"

	alkdns "github.com/alknet/alknet/dns"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestScrubPaths(t *testing.T) {
	zones := []string{"/srv/z/a.zone", "/srv/z/a.zone.bak", "b.zone"}
	err := errors.New("/srv/z/a.zone.bak:3: bad zone: x; open /srv/z/a.zone: denied; b.zone:1: no SOA")
	got := scrubPaths(err, zones)
	if want := "zones[1]:3: bad zone: x; open zones[0]: denied; zones[2]:1: no SOA"; got != want {
		t.Errorf("scrubPaths = %q, want %q", got, want)
	}
	if got := scrubPaths(errors.New("no path"), nil); got != "no path" {
		t.Errorf("without zones: %q", got)
	}
}

func TestParseType(t *testing.T) {
	for in, want := range map[string]uint16{"txt": mdns.TypeTXT, "SVCB": mdns.TypeSVCB, "any": mdns.TypeANY, "TYPE65": 65, "type1": 1} {
		if got, err := parseType(in); err != nil || got != want {
			t.Errorf("parseType(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "NOPE", "TYPE", "TYPE65536", "None"} {
		if _, err := parseType(in); err == nil {
			t.Errorf("parseType(%q) succeeded", in)
		}
	}
}

func TestRestartKeys(t *testing.T) {
	off := false
	cur := alkdns.Config{ListenPlain: "127.0.0.1:5353", Zones: []string{"a"}}
	next := cur
	next.Zones = []string{"b"} // reloadable
	next.Origin = "alk.dev"    // reloadable
	if keys := restartKeys(cur, next); len(keys) != 0 {
		t.Errorf("reloadable changes reported as needing a restart: %q", keys)
	}
	next.ListenPlain, next.Padding, next.QueryTimeout = "", &off, "9s"
	next.Pkarr.Relay, next.Pkarr.Publish = true, []string{"https://relay.example/pkarr"}
	want := []string{"listen_plain", "query_timeout", "padding", "pkarr.relay", "pkarr.publish"}
	if keys := restartKeys(cur, next); !slices.Equal(keys, want) {
		t.Errorf("restartKeys = %q, want %q", keys, want)
	}
}
