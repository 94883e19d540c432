package main

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/alknet/alknet/core/coretest"
	"github.com/alknet/alknet/dns/pkarr"
)

// exampleZone is a static zone for the plain listener and reload tests.
const exampleZone = `$ORIGIN example.org.
$TTL 3600
@    IN SOA ns1 hostmaster 1 7200 3600 1209600 300
@    IN NS  ns1
ns1  IN A   192.0.2.1
www  IN A   192.0.2.10
`

// needKdig returns the path of kdig, or skips the test.
func needKdig(t *testing.T) string {
	t.Helper()
	kdig, err := exec.LookPath("kdig")
	if err != nil {
		t.Skip("kdig is not installed (apt-get install knot-dnsutils)")
	}
	return kdig
}

// runKdig runs kdig with args and returns its output; kdig's own timeout is generous
// and the whole run is bounded.
func runKdig(t *testing.T, kdig string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, kdig, append([]string{"+timeout=20", "+retry=1"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("kdig %q: %v\n%s", args, err, out)
	}
	return string(out)
}

// wantAll fails unless out contains every string of want.
func wantAll(t *testing.T, what, out string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("%s: output lacks %q:\n%s", what, w, out)
		}
	}
}

// z32 returns the pkarr name (z-base-32 key) of a node fingerprint ed25519:<hex>.
func z32(t *testing.T, fp string) string {
	t.Helper()
	b, err := hex.DecodeString(strings.TrimPrefix(fp, "ed25519:"))
	if err != nil || len(b) != ed25519.PublicKeySize {
		t.Fatalf("fingerprint %q: %v", fp, err)
	}
	return pkarr.ZBase32Key(ed25519.PublicKey(b))
}

// dnsConfig writes a --config file holding toml and the example zone beside it, and
// returns the config's path.
func dnsConfig(t *testing.T, toml string) string {
	t.Helper()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "example.org.zone"), exampleZone)
	path := filepath.Join(dir, "node.toml")
	writeFile(t, path, toml)
	return path
}

var plainRE = regexp.MustCompile(`msg="dns plain listener[^"]*" udp=127\.0\.0\.1:(\d+) tcp=127\.0\.0\.1:(\d+)`)

// plainPort returns the UDP port of the node's listen_plain listener, from its log.
func plainPort(t *testing.T, n *node) string {
	t.Helper()
	m := plainRE.FindStringSubmatch(n.stderr.String())
	if m == nil {
		t.Fatalf("no dns plain listener line in the log:\n%s", n.stderr)
	}
	return m[1]
}

func port(t *testing.T, addr string) string {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

type dnsResult struct {
	stdout, stderr string
	err            error
}

// runDNS runs `alknet dns ARGS` in-process.
func runDNS(t *testing.T, args ...string) dnsResult {
	t.Helper()
	var stdout, stderr syncBuffer
	c := &cli{stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	err := c.run(ctx, append([]string{"dns"}, args...))
	return dnsResult{stdout: stdout.String(), stderr: stderr.String(), err: err}
}

// TestDNSKdig queries `alknet serve` with the stock client kdig: the node zone's
// discovery TXT and SVCB over DNS over QUIC (doq) and TLS (dot), and a static zone's
// NXDOMAIN, NODATA and ANY over the plain listener.
func TestDNSKdig(t *testing.T) {
	kdig := needKdig(t)
	cfg := dnsConfig(t, "[dns]\norigin = \"alk.test\"\nzones = [\"example.org.zone\"]\nlisten_plain = \"127.0.0.1:0\"\n")
	n := startServe(t, "--config", cfg)
	p := port(t, n.quic)
	disc := "_alknet." + z32(t, n.fp) + ".alk.test."

	out := runKdig(t, kdig, "+quic", "@127.0.0.1", "-p", p, disc, "TXT")
	wantAll(t, "kdig +quic TXT", out, "status: NOERROR", "id: 0", "qr aa", `"v=alknet1"`, `"addr=`+n.quic+`"`,
		"alpn=alknet/echo,alknet/call,alknet/ssh,alknet/http,h2,http/1.1,h3,doq,alknet/dns,dot")
	if strings.Contains(out, " ra;") || strings.Contains(out, " ra ") {
		t.Errorf("authoritative answer with RA set:\n%s", out)
	}
	out = runKdig(t, kdig, "+quic", "@127.0.0.1", "-p", p, disc, "SVCB")
	wantAll(t, "kdig +quic SVCB", out, "status: NOERROR", "SVCB\t1 "+z32(t, n.fp)+".alk.test.", "port="+p, "ipv4hint=127.0.0.1", "doq")
	out = runKdig(t, kdig, "+tls", "@127.0.0.1", "-p", p, disc, "TXT")
	wantAll(t, "kdig +tls TXT", out, "TLS session", "status: NOERROR", `"v=alknet1"`)

	pp := plainPort(t, n)
	out = runKdig(t, kdig, "@127.0.0.1", "-p", pp, "nope.example.org", "A")
	wantAll(t, "NXDOMAIN", out, "status: NXDOMAIN", "ANSWER: 0", "SOA\tns1.example.org. hostmaster.example.org. 1 ")
	out = runKdig(t, kdig, "@127.0.0.1", "-p", pp, "www.example.org", "MX")
	wantAll(t, "NODATA", out, "status: NOERROR", "ANSWER: 0", "AUTHORITY: 1", "SOA\tns1.example.org.")
	out = runKdig(t, kdig, "+tcp", "@127.0.0.1", "-p", pp, "www.example.org", "ANY")
	wantAll(t, "ANY", out, "status: NOERROR", "ANSWER: 1", `HINFO	"RFC8482" ""`)
	out = runKdig(t, kdig, "@127.0.0.1", "-p", pp, "www.example.com", "A")
	wantAll(t, "outside the zones", out, "status: REFUSED")
	if strings.Contains(n.stderr.String(), "nope.example.org") || strings.Contains(n.stderr.String(), "_alknet.") {
		t.Errorf("a query name is in the log:\n%s", n.stderr)
	}

	// Shutdown closes the plain listener too.
	n.stop(t)
	if c, err := net.DialTimeout("tcp", "127.0.0.1:"+pp, 10*time.Second); err == nil {
		c.Close()
		t.Error("the plain listener still accepts after shutdown")
	}
}

// TestDNSQueryCommand runs `alknet dns query` over QUIC and TCP+TLS.
func TestDNSQueryCommand(t *testing.T) {
	n := startServe(t, "--config", dnsConfig(t, "[dns]\nzones = [\"example.org.zone\"]\n"))
	name := z32(t, n.fp)
	for _, network := range pipeNetworks {
		t.Run(network.name, func(t *testing.T) {
			args := append([]string{"query", "--state", t.TempDir(), "--pin", n.fp}, network.extra...)
			r := runDNS(t, append(args, n.quic, "_alknet."+name, "txt")...)
			if r.err != nil {
				t.Fatalf("dns query: %v (stderr %q)", r.err, r.stderr)
			}
			lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
			if len(lines) != 3 || lines[0] != ";; status: NOERROR, flags: qr aa" || lines[1] != ";; ANSWER SECTION:" ||
				!strings.HasPrefix(lines[2], "_alknet."+name+".\t300\tIN\tTXT\t\"v=alknet1\" \"alpn=") ||
				!strings.HasSuffix(lines[2], `"addr=`+n.quic+`"`) {
				t.Errorf("stdout:\n%s", r.stdout)
			}

			r = runDNS(t, append(args, n.quic, "www.example.org")...) // A by default
			if r.err != nil || !strings.Contains(r.stdout, "www.example.org.\t3600\tIN\tA\t192.0.2.10\n") {
				t.Errorf("A: %v\n%s", r.err, r.stdout)
			}

			r = runDNS(t, append(args, n.quic, "nope.example.org", "A")...)
			if code := exitCode(r.err); code != exitFailure || !strings.Contains(r.err.Error(), "answered NXDOMAIN") {
				t.Errorf("NXDOMAIN: exit %d, %v", code, r.err)
			}
			wantAll(t, "NXDOMAIN", r.stdout, ";; status: NXDOMAIN, flags: qr aa\n;; AUTHORITY SECTION:\nexample.org.\t300\tIN\tSOA\t")
			r = runDNS(t, append(args, n.quic, "example.com", "A")...)
			if exitCode(r.err) != exitFailure || !strings.HasPrefix(r.stdout, ";; status: REFUSED, flags: qr\n") {
				t.Errorf("REFUSED: %v\n%s", r.err, r.stdout)
			}
		})
	}
	for _, args := range [][]string{
		{},
		{"nope"},
		{"query", "--pin", n.fp, n.quic},
		{"query", n.quic, "example.org"},
		{"query", "--pin", n.fp, n.quic, "example.org", "NOTATYPE"},
		{"query", "--pin", n.fp, "no-port", "example.org"},
		{"publish", "--pin", n.fp, "--insecure", "https://" + n.tcp + "/pkarr"},
		{"publish", "--pin", n.fp, "http://" + n.tcp + "/pkarr"},
		{"resolve", "https://" + n.tcp + "/pkarr", "not-a-key"},
		{"resolve", "ftp://x/pkarr", name},
	} {
		if r := runDNS(t, args...); exitCode(r.err) != exitUsage {
			t.Errorf("dns %q: exit %d (%v), want %d", args, exitCode(r.err), r.err, exitUsage)
		}
	}
}

// TestDNSZoneReload changes a static zone and reloads (SIGHUP): the new record is
// answered; a broken file keeps the previous zone and the error names no path.
func TestDNSZoneReload(t *testing.T) {
	cfg := dnsConfig(t, "[dns]\nzones = [\"example.org.zone\"]\n")
	zoneFile := filepath.Join(filepath.Dir(cfg), "example.org.zone")
	n := startServe(t, "--config", cfg)
	query := func() dnsResult {
		return runDNS(t, "query", "--state", t.TempDir(), "--pin", n.fp, n.quic, "www.example.org", "A")
	}
	if r := query(); r.err != nil || !strings.Contains(r.stdout, "\t192.0.2.10\n") {
		t.Fatalf("before reload: %v\n%s", r.err, r.stdout)
	}

	writeFile(t, zoneFile, strings.Replace(exampleZone, "192.0.2.10", "192.0.2.20", 1))
	if err := n.triggerReload(); err != nil {
		t.Fatalf("reload: %v", err)
	}
	if r := query(); r.err != nil || !strings.Contains(r.stdout, "\t192.0.2.20\n") {
		t.Fatalf("after reload: %v\n%s", r.err, r.stdout)
	}
	if !strings.Contains(n.stderr.String(), `msg="config reloaded"`) || !strings.Contains(n.stderr.String(), "dns_zones=1") {
		t.Errorf("no reload line with dns_zones:\n%s", n.stderr)
	}

	writeFile(t, zoneFile, exampleZone+"outside.example.com. IN A 192.0.2.99\n")
	err := n.triggerReload()
	if err == nil || !strings.Contains(err.Error(), "zones[0]:7") || !strings.Contains(err.Error(), "bad zone") {
		t.Fatalf("broken reload: %v, want the bad zone error naming zones[0]:7", err)
	}
	if strings.Contains(err.Error(), zoneFile) || strings.Contains(n.stderr.String(), zoneFile) {
		t.Errorf("the zone file path is in the error or the log: %v\n%s", err, n.stderr)
	}
	if r := query(); r.err != nil || !strings.Contains(r.stdout, "\t192.0.2.20\n") {
		t.Fatalf("after a broken reload: %v\n%s", r.err, r.stdout)
	}

	// A new origin moves the node zone at once.
	writeFile(t, zoneFile, exampleZone)
	writeFile(t, cfg, "[dns]\norigin = \"alk.test\"\nzones = [\"example.org.zone\"]\naddresses = [\"192.0.2.7:853\"]\n")
	if err := n.triggerReload(); err != nil {
		t.Fatalf("reload with an origin: %v", err)
	}
	r := runDNS(t, "query", "--state", t.TempDir(), "--pin", n.fp, n.quic, "_alknet."+z32(t, n.fp)+".alk.test", "TXT")
	if r.err != nil || !strings.Contains(r.stdout, `"addr=192.0.2.7:853"`) {
		t.Errorf("node zone after the origin changed: %v\n%s", r.err, r.stdout)
	}
	r = runDNS(t, "query", "--state", t.TempDir(), "--pin", n.fp, n.quic, "_alknet."+z32(t, n.fp), "TXT")
	if exitCode(r.err) != exitFailure || !strings.HasPrefix(r.stdout, ";; status: REFUSED") {
		t.Errorf("the old node zone still answers: %v\n%s", r.err, r.stdout)
	}
}

// TestDNSPkarrTwoNodes publishes node A's packet to node B's pkarr relay with `alknet
// dns publish`, then reads it back over B's DNS (kdig +quic and alknet dns query) and
// with `alknet dns resolve`.
func TestDNSPkarrTwoNodes(t *testing.T) {
	stateA := t.TempDir()
	a := startServe(t, "--state", stateA, "--config", dnsConfig(t, "[dns]\n"))
	b := startServe(t, "--config", dnsConfig(t, "[dns]\norigin = \"alk.test\"\n[dns.pkarr]\nrelay = true\n"))
	relay := "https://" + b.tcp + "/pkarr"
	nameA := z32(t, a.fp)

	r := runDNS(t, "publish", "--state", stateA, "--pin", b.fp, "--addr", a.quic, "--alpn", "doq,alknet/dns", relay)
	if r.err != nil || !strings.HasPrefix(r.stdout, "published "+nameA+". (3 records, ") {
		t.Fatalf("publish: %v\nstdout %q\nstderr %q", r.err, r.stdout, r.stderr)
	}

	wantTXT := `"v=alknet1" "alpn=doq,alknet/dns" "addr=` + a.quic + `"`
	if kdig, err := exec.LookPath("kdig"); err == nil {
		out := runKdig(t, kdig, "+quic", "@127.0.0.1", "-p", port(t, b.quic), "_alknet."+nameA+".", "TXT")
		wantAll(t, "kdig +quic @B TXT", out, "status: NOERROR", wantTXT)
		out = runKdig(t, kdig, "+quic", "@127.0.0.1", "-p", port(t, b.quic), nameA+".", "A")
		wantAll(t, "kdig +quic @B A", out, "status: NOERROR", "ANSWER: 1", "\n"+nameA+". ", "\tIN\tA\t127.0.0.1\n")
	} else {
		t.Log("kdig is not installed: checking B's DNS with alknet dns query only")
	}
	q := runDNS(t, "query", "--state", t.TempDir(), "--pin", b.fp, b.quic, "_alknet."+nameA, "TXT")
	if q.err != nil || !strings.Contains(q.stdout, wantTXT) {
		t.Errorf("dns query @B: %v\n%s", q.err, q.stdout)
	}

	r = runDNS(t, "resolve", "--pin", b.fp, relay, nameA)
	if r.err != nil {
		t.Fatalf("resolve: %v (stderr %q)", r.err, r.stderr)
	}
	wantAll(t, "resolve", r.stdout, ";; "+nameA+". signed ", "_alknet."+nameA+".\t300\tIN\tTXT\t"+wantTXT,
		"_alknet."+nameA+".\t300\tIN\tSVCB\t1 "+nameA+". alpn=\"doq,alknet/dns\" port=\""+port(t, a.quic)+"\"",
		nameA+".\t300\tIN\tA\t127.0.0.1")

	// B's relay holds its own packet too, with every ALPN B serves.
	r = runDNS(t, "resolve", "--pin", b.fp, relay, "pk:"+strings.ToUpper(z32(t, b.fp)))
	wantAll(t, "resolve B", r.stdout, "alpn=alknet/echo,", "dot", `"addr=`+b.quic+`"`)

	// A key the relay does not hold: 404, exit 1.
	r = runDNS(t, "resolve", "--pin", b.fp, relay, z32(t, coretest.NewIdentity(t).Fingerprint))
	if code := exitCode(r.err); code != exitFailure || !strings.Contains(r.err.Error(), "404") {
		t.Errorf("resolve of an unknown key: exit %d, %v", code, r.err)
	}
	// The relay's certificate is B's own: without --pin the system roots refuse it.
	r = runDNS(t, "resolve", relay, nameA)
	if code := exitCode(r.err); code != exitFailure || !strings.Contains(r.err.Error(), "certificate") {
		t.Errorf("resolve without --pin: exit %d, %v", code, r.err)
	}
	// A wrong pin fails before anything is sent.
	r = runDNS(t, "publish", "--state", stateA, "--pin", a.fp, relay)
	if code := exitCode(r.err); code != exitFailure || !strings.Contains(r.err.Error(), "fingerprint") {
		t.Errorf("publish with A's pin to B: exit %d, %v", code, r.err)
	}
}

// TestDNSPkarrPublishConfig checks [dns.pkarr] publish: the node publishes its own
// discovery packet (every ALPN it serves, its listen address) to the relay once it
// listens.
func TestDNSPkarrPublishConfig(t *testing.T) {
	relay := pkarr.NewRelay(pkarr.RelayConfig{})
	put := make(chan int, 16)
	srv := httptest.NewServer(http.StripPrefix("/pkarr", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := httptest.NewRecorder()
		relay.ServeHTTP(rec, r)
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
		if r.Method == http.MethodPut {
			put <- rec.Code
		}
	})))
	t.Cleanup(srv.Close)
	n := startServe(t, "--config", dnsConfig(t, "[dns]\n[dns.pkarr]\npublish = [\""+srv.URL+"/pkarr\"]\n"))
	select {
	case code := <-put:
		if code != http.StatusNoContent {
			t.Fatalf("PUT answered %d, want 204", code)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the node did not publish within 60 s")
	}
	key, err := pkarr.ParseKey(z32(t, n.fp))
	if err != nil {
		t.Fatal(err)
	}
	rrs, ok := relay.Records(key)
	if !ok {
		t.Fatal("the relay holds no packet for the node")
	}
	var txt *mdns.TXT
	for _, rr := range rrs {
		if t, ok := rr.(*mdns.TXT); ok {
			txt = t
		}
	}
	if txt == nil || !slices.Contains(txt.Txt, "v=alknet1") || !slices.Contains(txt.Txt, "addr="+n.quic) ||
		!slices.ContainsFunc(txt.Txt, func(s string) bool {
			return strings.HasPrefix(s, "alpn=") && strings.Contains(s, ",doq,alknet/dns,dot")
		}) {
		t.Errorf("published records %v", rrs)
	}
}

// TestDNSConfigErrors checks that a bad [dns] table stops serve with the key named
// (exit 2), and that a zone file that does not load stops it naming the zone by key.
func TestDNSConfigErrors(t *testing.T) {
	cases := []struct {
		name, toml, want string
		code             int
	}{
		{"unknown key", "[dns]\nbogus = 1\n", `unknown key "dns.bogus"`, exitUsage},
		{"bad origin", "[dns]\norigin = \"a..b\"\n", "dns.origin: invalid dns config", exitUsage},
		{"bad address", "[dns]\naddresses = [\"0.0.0.0:4433\"]\n", "dns.addresses[0]: invalid dns config", exitUsage},
		{"bad relay URL", "[dns.pkarr]\npublish = [\"ftp://relay\"]\n", "dns.pkarr.publish[0]: invalid dns config", exitUsage},
		{"missing zone", "[dns]\nzones = [\"absent.zone\"]\n", "dns: bad zone: open zones[0]: no such file", exitFailure},
		{"broken zone", "[dns]\nzones = [\"example.org.zone\", \"broken.zone\"]\n", "dns: zones[1]:1: bad zone: no SOA", exitFailure},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := dnsConfig(t, tc.toml)
			writeFile(t, filepath.Join(filepath.Dir(path), "broken.zone"), "www.example.net. 60 IN A 192.0.2.1\n")
			var stdout, stderr syncBuffer
			c := &cli{stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr,
				ready: func(serveInfo) { t.Error("serve got ready with an invalid [dns] table") }}
			err := c.run(t.Context(), []string{"serve", "--state", t.TempDir(), "--listen", "127.0.0.1:0", "--config", path})
			line := checkOneLine(t, err, tc.code)
			if !strings.Contains(line, tc.want) {
				t.Errorf("message %q lacks %q", line, tc.want)
			}
			if strings.Contains(line, "absent.zone") || strings.Contains(line, "broken.zone") {
				t.Errorf("message %q names a zone file path", line)
			}
		})
	}
}

// TestDNSResolveBadSignature checks that `alknet dns resolve` verifies what a relay
// sends: a payload whose signature does not verify is exit 1, and nothing is printed.
func TestDNSResolveBadSignature(t *testing.T) {
	_, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	rr := &mdns.TXT{Hdr: mdns.RR_Header{Name: "_alknet", Rrtype: mdns.TypeTXT, Class: mdns.ClassINET, Ttl: 300}, Txt: []string{"v=alknet1"}}
	sp, err := pkarr.Sign(key, time.Now(), []mdns.RR{rr})
	if err != nil {
		t.Fatal(err)
	}
	payload := sp.RelayPayload()
	tampered := slices.Clone(payload)
	tampered[0] ^= 1 // the first signature byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", pkarr.ContentType)
		if strings.HasPrefix(r.URL.Path, "/bad/") {
			_, _ = w.Write(tampered)
			return
		}
		_, _ = w.Write(payload)
	}))
	t.Cleanup(srv.Close)

	r := runDNS(t, "resolve", srv.URL+"/good", sp.Name())
	if r.err != nil || !strings.Contains(r.stdout, "_alknet."+sp.Name()+".\t300\tIN\tTXT\t\"v=alknet1\"\n") {
		t.Fatalf("resolve of a good packet over http: %v\n%s", r.err, r.stdout)
	}
	r = runDNS(t, "resolve", srv.URL+"/bad", sp.Name())
	if code := exitCode(r.err); code != exitFailure || !strings.Contains(r.err.Error(), "bad signature") {
		t.Errorf("resolve of a tampered packet: exit %d, %v", code, r.err)
	}
	if r.stdout != "" {
		t.Errorf("stdout = %q, want nothing for a packet that does not verify", r.stdout)
	}
}
