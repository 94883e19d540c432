package dns

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	mdns "github.com/miekg/dns"
)

func TestZoneLoadErrors(t *testing.T) {
	tests := []struct {
		name string
		text string
		want string // in the error, after the file name
	}{
		{"empty file", "; nothing\n", "no SOA: the file holds no records"},
		{"no SOA", "$ORIGIN test.\nwww 60 IN A 192.0.2.1\n", ":2: bad zone: no SOA: the first record must be the zone's SOA, found A"},
		{"SOA not first", "$ORIGIN test.\n@ 60 IN NS ns\n@ 60 IN SOA ns h 1 2 3 4 5\n", ":2: bad zone: no SOA"},
		{"no NS", "$ORIGIN test.\n@ 60 IN SOA ns h 1 2 3 4 5\nwww 60 IN A 192.0.2.1\n", "bad zone: no NS records at the apex test."},
		{"NS only below the apex", ztApex[:strings.Index(ztApex, "@ IN NS")] + "sub IN NS ns\n", "no NS records at the apex"},
		{"out-of-zone record", ztApex + "www IN A 192.0.2.1\nwww.example.com. IN A 192.0.2.2\n", ":7: bad zone: out-of-zone record: www.example.com. is not under the zone test."},
		{"parent of the apex", ztApex + "\n\n; comment\n.  IN A 192.0.2.2 ; trailing\n", ":9: bad zone: out-of-zone record: . is not under"},
		{"sibling with the apex as a suffix", ztApex + "xtest. IN A 192.0.2.2\n", ":6: bad zone: out-of-zone record"},
		{"wildcard", ztApex + "*.www IN A 192.0.2.1\n", ":6: bad zone: wildcard owner *.www.test.: wildcards are not supported"},
		{"second SOA", ztApex + "@ IN SOA ns h 2 2 3 4 5\n", ":6: bad zone: second SOA"},
		{"SOA below the apex", ztApex + "sub IN SOA ns h 2 2 3 4 5\n", ":6: bad zone: SOA at sub.test.: an SOA belongs only at the apex"},
		{"CNAME beside data", ztApex + "www IN A 192.0.2.1\nwww IN CNAME ns\n", ":7: bad zone: CNAME at www.test. beside A data"},
		{"data beside CNAME", ztApex + "www IN CNAME ns\nwww IN TXT \"x\"\n", ":7: bad zone: TXT at www.test. beside its CNAME"},
		{"two CNAMEs", ztApex + "www IN CNAME ns\nwww IN CNAME ns2\n", ":7: bad zone: second CNAME"},
		{"class CH", ztApex + "www CH TXT \"x\"\n", ":6: bad zone: class CH of www.test.: only IN is served"},
		{"syntax", ztApex + "www IN A 999.0.2.1\n", "bad zone: " /* miekg's ParseError names file and line itself */},
		{"$INCLUDE refused", ztApex + "$INCLUDE /etc/hostname\n", "bad zone: "},
		{"multi-line record reported where it ends", ztApex + "other.example. IN SOA ( ns h\n 1 2 3\n 4 5 )\n", ":8: bad zone: out-of-zone record"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := ztWriteZone(t, t.TempDir(), "test.zone", tt.text)
			_, err := NewHandler(Config{Zones: []string{path}})
			if !errors.Is(err, ErrBadZone) {
				t.Fatalf("error %v, want ErrBadZone", err)
			}
			if errors.Is(err, ErrZoneTooLarge) {
				t.Errorf("error %v: not a size error", err)
			}
			if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q, want the file %s and %q", err, path, tt.want)
			}
		})
	}
	t.Run("missing file", func(t *testing.T) {
		_, err := NewHandler(Config{Zones: []string{filepath.Join(t.TempDir(), "none.zone")}})
		if !errors.Is(err, ErrBadZone) || !errors.Is(err, os.ErrNotExist) {
			t.Errorf("error %v, want ErrBadZone and ErrNotExist", err)
		}
	})
	t.Run("duplicate zones", func(t *testing.T) {
		dir := t.TempDir()
		a := ztWriteZone(t, dir, "a.zone", ztApex)
		b := ztWriteZone(t, dir, "b.zone", ztApex)
		_, err := NewHandler(Config{Zones: []string{a, b}})
		if !errors.Is(err, ErrBadZone) || !strings.Contains(err.Error(), "zone test. is already loaded from "+a) {
			t.Errorf("error %v, want the duplicate zone named", err)
		}
	})
}

func TestZoneLoadAccepts(t *testing.T) {
	dir := t.TempDir()
	text := ztApex +
		"www IN A 192.0.2.80\nWWW IN A 192.0.2.80\n" + // a duplicate (case aside): dropped
		"www IN AAAA 2001:db8::80\n" +
		"$GENERATE 1-3 host$ IN A 192.0.2.$\n" +
		"a.*.test. IN TXT \"a literal star label, not a wildcard\"\n"
	h := ztHandler(t, Config{Zones: []string{ztWriteZone(t, dir, "test.zone", text)}})
	if resp := ztServe(t, h, ztQuery("www.test.", mdns.TypeA)); len(resp.Answer) != 1 {
		t.Errorf("duplicates kept: %q", ztRRStrings(resp.Answer))
	}
	if resp := ztServe(t, h, ztQuery("host3.test.", mdns.TypeA)); len(resp.Answer) != 1 || resp.Answer[0].(*mdns.A).A.String() != "192.0.2.3" {
		t.Errorf("$GENERATE: %q", ztRRStrings(resp.Answer))
	}
	if resp := ztServe(t, h, ztQuery("a.*.test.", mdns.TypeTXT)); len(resp.Answer) != 1 {
		t.Errorf("literal star label: %v", resp)
	}
	if resp := ztServe(t, h, ztQuery("b.*.test.", mdns.TypeTXT)); resp.Rcode != mdns.RcodeNameError {
		t.Errorf("no wildcard expansion: %v", resp)
	}
	// Empty non-terminal created by the literal name.
	if resp := ztServe(t, h, ztQuery("*.test.", mdns.TypeTXT)); resp.Rcode != mdns.RcodeSuccess || len(resp.Answer) != 0 {
		t.Errorf("*.test. as an empty non-terminal: %v", resp)
	}
	// A root zone is allowed and then holds every name.
	root := ztWriteZone(t, dir, "root.zone", ". 60 IN SOA ns.test. h.test. 1 2 3 4 5\n. 60 IN NS ns.test.\nexample. 60 IN A 192.0.2.1\n")
	h = ztHandler(t, Config{Zones: []string{root}})
	if resp := ztServe(t, h, ztQuery("nope.example.", mdns.TypeA)); resp.Rcode != mdns.RcodeNameError || !resp.Authoritative {
		t.Errorf("root zone: %v", resp)
	}
}

// ztCapZone returns a zone text of exactly size bytes with n records (n >= 3).
func ztCapZone(t *testing.T, n, size int) string {
	t.Helper()
	var b strings.Builder
	b.WriteString(ztApex) // 3 records
	for i := range n - 3 {
		fmt.Fprintf(&b, "h%d IN A 192.0.2.1\n", i)
	}
	pad := size - b.Len()
	if pad < 2 {
		t.Fatalf("zone text already %d bytes, want room for %d", b.Len(), size)
	}
	b.WriteString(";" + strings.Repeat("x", pad-2) + "\n")
	if b.Len() != size {
		t.Fatalf("built %d bytes, want %d", b.Len(), size)
	}
	return b.String()
}

func TestZoneCaps(t *testing.T) {
	dir := t.TempDir()
	const size, records = 4096, 50
	tests := []struct {
		name          string
		n, bytes      int
		maxB          int64
		maxR          int
		wantTooLarge  bool
		wantInMessage string
	}{
		{"bytes at the cap", records, size, size, records, false, ""},
		{"one byte over", records, size + 1, size, records, true, fmt.Sprintf("over max_zone_bytes %d", size)},
		{"records at the cap", records, size, size, records, false, ""},
		{"one record over", records + 1, size, size, records, true, fmt.Sprintf("more than max_zone_records %d", records)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text := ztCapZone(t, tt.n, tt.bytes)
			path := ztWriteZone(t, dir, "cap.zone", text)
			cfg := Config{Zones: []string{path}, MaxZoneBytes: tt.maxB, MaxZoneRecords: tt.maxR}
			_, err := NewHandler(cfg)
			if tt.wantTooLarge {
				if !errors.Is(err, ErrZoneTooLarge) || !errors.Is(err, ErrBadZone) || !strings.Contains(err.Error(), tt.wantInMessage) {
					t.Fatalf("error %v, want ErrZoneTooLarge with %q", err, tt.wantInMessage)
				}
			} else if err != nil {
				t.Fatalf("error %v, want the zone loaded", err)
			}
			// The same caps hold while reading a stream whose size is not known
			// beforehand (no Stat shortcut).
			_, err = parseZone(strings.NewReader(text), "stream", cfg.zoneLimits())
			if tt.wantTooLarge != errors.Is(err, ErrZoneTooLarge) {
				t.Fatalf("streamed: error %v, want too large: %v", err, tt.wantTooLarge)
			}
		})
	}
	t.Run("defaults", func(t *testing.T) {
		l := (&Config{}).zoneLimits()
		if l.maxBytes != DefaultMaxZoneBytes || l.maxRecords != DefaultMaxZoneRecords {
			t.Errorf("limits %+v", l)
		}
	})
	t.Run("$GENERATE counts", func(t *testing.T) {
		text := ztApex + "$GENERATE 1-100 h$ IN A 192.0.2.1\n"
		_, err := parseZone(strings.NewReader(text), "gen", zoneLimits{maxBytes: 1 << 20, maxRecords: 102})
		if !errors.Is(err, ErrZoneTooLarge) {
			t.Errorf("error %v, want ErrZoneTooLarge for 103 records", err)
		}
		if _, err := parseZone(strings.NewReader(text), "gen", zoneLimits{maxBytes: 1 << 20, maxRecords: 103}); err != nil {
			t.Errorf("103 records at a cap of 103: %v", err)
		}
	})
}
