package pkarr

import (
	"bytes"
	"crypto/ed25519"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
)

// The relay is package dns's SignedZones (contract 2).
var _ interface {
	Records(key ed25519.PublicKey) (rrs []mdns.RR, ok bool)
} = (*Relay)(nil)

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// relayEnv is a relay behind httptest, mounted at /pkarr as the assembly mounts it.
type relayEnv struct {
	relay *Relay
	srv   *httptest.Server
	clock *fakeClock
	base  string // srv.URL + "/pkarr"
}

func newRelayEnv(t *testing.T, cfg RelayConfig) *relayEnv {
	t.Helper()
	clock := &fakeClock{t: time.Date(2026, 12, 8, 10, 0, 0, 0, time.UTC)}
	cfg.Clock = clock.Now
	r := NewRelay(cfg)
	mux := http.NewServeMux()
	mux.Handle("/pkarr/", http.StripPrefix("/pkarr", r))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &relayEnv{relay: r, srv: srv, clock: clock, base: srv.URL + "/pkarr"}
}

func (e *relayEnv) do(t *testing.T, method, path string, body io.Reader, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, e.base+path, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func checkCORS(t *testing.T, resp *http.Response) {
	t.Helper()
	if resp.Header.Get("Access-Control-Allow-Origin") != "*" ||
		resp.Header.Get("Access-Control-Allow-Methods") != "GET, PUT, OPTIONS" {
		t.Errorf("%s %s: CORS headers %v", resp.Request.Method, resp.Request.URL.Path, resp.Header)
	}
}

// signAt signs records for priv at ts.
func signAt(t *testing.T, priv ed25519.PrivateKey, ts time.Time, rrs ...string) *SignedPacket {
	t.Helper()
	z := ZBase32Key(priv.Public().(ed25519.PublicKey))
	var in []mdns.RR
	for _, s := range rrs {
		in = append(in, mustRR(t, strings.ReplaceAll(s, "$Z", z)))
	}
	sp, err := Sign(priv, ts, in)
	if err != nil {
		t.Fatal(err)
	}
	return sp
}

func TestRelayStatusCodes(t *testing.T) {
	e := newRelayEnv(t, RelayConfig{PutsPerMinute: -1, GetsPerMinute: -1})
	priv := testKey(20)
	pub := priv.Public().(ed25519.PublicKey)
	z := ZBase32Key(pub)
	now := e.clock.Now()
	sp := signAt(t, priv, now, "_alknet.$Z. 300 IN TXT \"v=alknet1\"", "$Z. 120 IN A 192.0.2.1")

	put := func(path string, body []byte) int {
		t.Helper()
		resp, _ := e.do(t, http.MethodPut, path, bytes.NewReader(body), nil)
		checkCORS(t, resp)
		return resp.StatusCode
	}
	get := func(path string, hdr map[string]string) (*http.Response, []byte) {
		t.Helper()
		resp, b := e.do(t, http.MethodGet, path, nil, hdr)
		checkCORS(t, resp)
		return resp, b
	}

	// Unknown key, then publish.
	if resp, _ := get("/"+z, nil); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("GET unknown = %d, want 404", resp.StatusCode)
	}
	if c := put("/"+z, sp.RelayPayload()); c != http.StatusNoContent {
		t.Fatalf("PUT = %d, want 204", c)
	}

	// GET 200 with the headers of pkarr's relay design.
	resp, body := get("/"+z, nil)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, sp.RelayPayload()) {
		t.Fatalf("GET = %d, body equal %v", resp.StatusCode, bytes.Equal(body, sp.RelayPayload()))
	}
	for k, want := range map[string]string{
		"Content-Type":  "application/pkarr.org/relays#payload",
		"Cache-Control": "public, max-age=120",
		"Last-Modified": "Tue, 08 Dec 2026 10:00:00 GMT",
	} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("GET %s = %q, want %q", k, got, want)
		}
	}
	// The key may be sent with the pk: prefix or in upper case.
	if resp, _ := get("/pk:"+strings.ToUpper(z), nil); resp.StatusCode != http.StatusOK {
		t.Errorf("GET pk:UPPER = %d", resp.StatusCode)
	}
	// HEAD: headers, no body.
	if resp, b := e.do(t, http.MethodHead, "/"+z, nil, nil); resp.StatusCode != http.StatusOK || len(b) != 0 {
		t.Errorf("HEAD = %d with %d bytes", resp.StatusCode, len(b))
	}

	// If-Modified-Since: equal or later -> 304; earlier -> 200.
	for ims, want := range map[string]int{
		"Tue, 08 Dec 2026 10:00:00 GMT": http.StatusNotModified,
		"Tue, 08 Dec 2026 10:00:01 GMT": http.StatusNotModified,
		"Tue, 08 Dec 2026 09:59:59 GMT": http.StatusOK,
		"not a date":                    http.StatusOK,
	} {
		if resp, _ := get("/"+z, map[string]string{"If-Modified-Since": ims}); resp.StatusCode != want {
			t.Errorf("GET If-Modified-Since %q = %d, want %d", ims, resp.StatusCode, want)
		}
	}

	// 409: equal and older timestamps; a newer one is accepted.
	if c := put("/"+z, sp.RelayPayload()); c != http.StatusConflict {
		t.Errorf("PUT equal timestamp = %d, want 409", c)
	}
	older := signAt(t, priv, now.Add(-time.Second), "$Z. 60 IN A 192.0.2.2")
	if c := put("/"+z, older.RelayPayload()); c != http.StatusConflict {
		t.Errorf("PUT older timestamp = %d, want 409", c)
	}
	if got, _ := e.relay.Packet(pub); !bytes.Equal(got.Bytes(), sp.Bytes()) {
		t.Fatal("a refused PUT replaced the held packet")
	}
	// A packet with sub-second precision is newer than the If-Modified-Since second
	// that names it.
	newer := signAt(t, priv, now.Add(1500*time.Millisecond), "$Z. 60 IN A 192.0.2.3")
	if c := put("/"+z, newer.RelayPayload()); c != http.StatusNoContent {
		t.Errorf("PUT newer = %d, want 204", c)
	}
	if resp, _ := get("/"+z, map[string]string{"If-Modified-Since": "Tue, 08 Dec 2026 10:00:01 GMT"}); resp.StatusCode != http.StatusOK {
		t.Errorf("GET If-Modified-Since second of the packet = %d, want 200", resp.StatusCode)
	}

	// 400: bad keys, bad signature, bad packets, future, records outside the key.
	other := testKey(21)
	otherSP := signAt(t, other, now, "$Z. 60 IN A 192.0.2.1")
	z32 := func(b []byte) []byte { return b[ed25519.PublicKeySize:] }
	badSig := newer.RelayPayload()
	badSig[10] ^= 1
	for name, c := range map[string]struct {
		path string
		body []byte
	}{
		"short key":        {"/" + z[:51], newer.RelayPayload()},
		"bad char":         {"/l" + z[1:], newer.RelayPayload()},
		"no key":           {"/", newer.RelayPayload()},
		"extra segment":    {"/" + z + "/x", newer.RelayPayload()},
		"bad signature":    {"/" + z, badSig},
		"other key's body": {"/" + z, otherSP.RelayPayload()},
		"71 bytes":         {"/" + z, make([]byte, MinRelayPayload-1)},
		"empty":            {"/" + z, nil},
		"future":           {"/" + z, signAt(t, priv, now.Add(time.Hour+time.Second), "$Z. 60 IN A 192.0.2.1").RelayPayload()},
		"not under key": {"/" + z, z32(rawSigned(priv, uint64(now.Add(time.Hour).UnixMicro()),
			packMsg(t, true, mustRR(t, "example.com. 60 IN A 192.0.2.1"))))},
		"garbage packet": {"/" + z, z32(rawSigned(priv, uint64(now.Add(time.Hour).UnixMicro()), []byte("not a DNS packet")))},
	} {
		if got := put(c.path, c.body); got != http.StatusBadRequest {
			t.Errorf("PUT %s = %d, want 400", name, got)
		}
	}
	if resp, _ := get("/"+z[:51], nil); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("GET bad key = %d, want 400", resp.StatusCode)
	}

	// 413: over 1072 bytes announced, over 1072 bytes chunked (no length), and a
	// 1072-byte body whose packet is 1000 bytes.
	if c := put("/"+z, make([]byte, MaxRelayPayload+1)); c != http.StatusRequestEntityTooLarge {
		t.Errorf("PUT 1073 bytes = %d, want 413", c)
	}
	chunked := io.MultiReader(bytes.NewReader(make([]byte, 1000)), bytes.NewReader(make([]byte, 100)))
	if resp, _ := e.do(t, http.MethodPut, "/"+z, chunked, nil); resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("PUT chunked 1100 bytes = %d, want 413", resp.StatusCode)
	}
	big := z32(rawSigned(priv, uint64(now.Add(time.Hour).UnixMicro()), packetOfSize(t, z, 1000)))
	if len(big) != MaxRelayPayload {
		t.Fatalf("big body is %d bytes", len(big))
	}
	if c := put("/"+z, big); c != http.StatusRequestEntityTooLarge {
		t.Errorf("PUT 1072 bytes (1000-byte packet) = %d, want 413", c)
	}
	fits := z32(rawSigned(priv, uint64(now.Add(time.Hour).UnixMicro()), packetOfSize(t, z, 999)))
	if c := put("/"+z, fits); c != http.StatusNoContent {
		t.Errorf("PUT 1071 bytes (999-byte packet, 1 h ahead) = %d, want 204", c)
	}

	// OPTIONS and other methods.
	resp, _ = e.do(t, http.MethodOptions, "/"+z, nil, map[string]string{"Origin": "https://app.example", "Access-Control-Request-Method": "PUT"})
	checkCORS(t, resp)
	if resp.StatusCode != http.StatusNoContent {
		t.Errorf("OPTIONS = %d, want 204", resp.StatusCode)
	}
	resp, _ = e.do(t, http.MethodDelete, "/"+z, nil, nil)
	checkCORS(t, resp)
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("DELETE = %d, want 405", resp.StatusCode)
	}

	st := e.relay.Stats()
	want := RelayStats{PutsAccepted: 3, PutsBadRequest: 11, PutsConflict: 2, PutsTooLarge: 3,
		Gets: 6, GetsNotModified: 2, GetsNotFound: 1, GetsBadRequest: 1, Entries: 1}
	if st != want {
		t.Errorf("Stats = %+v\nwant    %+v", st, want)
	}
}

func TestRelayRateLimit(t *testing.T) {
	e := newRelayEnv(t, RelayConfig{PutsPerMinute: 1, PutBurst: 2, GetsPerMinute: 2, GetBurst: 1})
	priv := testKey(22)
	z := ZBase32Key(priv.Public().(ed25519.PublicKey))
	put := func(i int) *http.Response {
		t.Helper()
		sp := signAt(t, priv, e.clock.Now().Add(time.Duration(i)*time.Millisecond), "$Z. 60 IN A 192.0.2.1")
		resp, _ := e.do(t, http.MethodPut, "/"+z, bytes.NewReader(sp.RelayPayload()), nil)
		return resp
	}
	for i := range 2 {
		if resp := put(i); resp.StatusCode != http.StatusNoContent {
			t.Fatalf("PUT %d = %d, want 204 (burst 2)", i, resp.StatusCode)
		}
	}
	resp := put(2)
	checkCORS(t, resp)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "60" {
		t.Fatalf("PUT over the burst = %d Retry-After %q, want 429 and 60", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	e.clock.Advance(30 * time.Second)
	if resp := put(3); resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "30" {
		t.Fatalf("PUT after 30 s = %d Retry-After %q, want 429 and 30", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	e.clock.Advance(30 * time.Second)
	if resp := put(4); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("PUT after a minute = %d, want 204", resp.StatusCode)
	}

	// GETs have their own bucket.
	if resp, _ := e.do(t, http.MethodGet, "/"+z, nil, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("GET = %d", resp.StatusCode)
	}
	if resp, _ := e.do(t, http.MethodGet, "/"+z, nil, nil); resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "30" {
		t.Fatalf("second GET = %d Retry-After %q, want 429 and 30", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if st := e.relay.Stats(); st.PutsRateLimited != 2 || st.GetsRateLimited != 1 || st.PutsAccepted != 3 {
		t.Fatalf("Stats = %+v", st)
	}
}

func TestRelayEvictionAndRecords(t *testing.T) {
	r := NewRelay(RelayConfig{MaxEntries: 2})
	ts := time.Date(2026, 12, 8, 10, 0, 0, 0, time.UTC)
	keys := []ed25519.PrivateKey{testKey(30), testKey(31), testKey(32)}
	pubOf := func(i int) ed25519.PublicKey { return keys[i].Public().(ed25519.PublicKey) }
	for i := range 2 {
		if err := r.Store(signAt(t, keys[i], ts, "Www.$Z. 60 IN A 192.0.2.1", "$Z. 30 IN TXT \"x\"")); err != nil {
			t.Fatal(err)
		}
	}
	// Reading key 0 makes key 1 the least recently used.
	rrs, ok := r.Records(pubOf(0))
	if !ok || len(rrs) != 2 {
		t.Fatalf("Records = %v, %v", rrs, ok)
	}
	z0 := ZBase32Key(pubOf(0))
	if rrs[0].Header().Name != "Www."+z0+"." || rrs[1].Header().Name != z0+"." {
		t.Fatalf("Records names %q %q", rrs[0].Header().Name, rrs[1].Header().Name)
	}
	if err := r.Store(signAt(t, keys[2], ts)); err != nil {
		t.Fatal(err)
	}
	if _, ok := r.Records(pubOf(1)); ok {
		t.Fatal("least recently used key was not evicted")
	}
	if rrs, ok := r.Records(pubOf(2)); !ok || len(rrs) != 0 {
		t.Fatalf("empty packet: Records = %v, %v; want none, true", rrs, ok)
	}
	if _, ok := r.Records(pubOf(0)); !ok {
		t.Fatal("recently used key was evicted")
	}
	if _, ok := r.Records(pubOf(0)[:31]); ok {
		t.Fatal("short key found")
	}
	if err := r.Store(signAt(t, keys[0], ts)); err != ErrNotNewer {
		t.Fatalf("Store equal = %v, want ErrNotNewer", err)
	}
	if st := r.Stats(); st.Entries != 2 || st.Evictions != 1 {
		t.Fatalf("Stats = %+v", st)
	}
}

// TestRelayRecordsUpperCaseTLD: a publisher's upper-case TLD comes out lowercase, so
// that the DNS front can match "<z32>." with a plain suffix compare.
func TestRelayRecordsUpperCaseTLD(t *testing.T) {
	priv := testKey(33)
	z := ZBase32Key(priv.Public().(ed25519.PublicKey))
	packet := packMsg(t, false, mustRR(t, "A."+strings.ToUpper(z)+". 60 IN A 192.0.2.1"))
	sp, err := Decode(rawSigned(priv, 5, packet), time.Unix(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	r := NewRelay(RelayConfig{})
	if err := r.Store(sp); err != nil {
		t.Fatal(err)
	}
	rrs, _ := r.Records(priv.Public().(ed25519.PublicKey))
	if len(rrs) != 1 || rrs[0].Header().Name != "A."+z+"." {
		t.Fatalf("Records = %v", rrs)
	}
}

func TestClientPrefix(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.7:1234":            "192.0.2.7/32",
		"[::ffff:192.0.2.7]:1234":   "192.0.2.7/32",
		"[2001:db8:1:2:3:4:5:6]:99": "2001:db8:1:2::/64",
		"[fe80::1%eth0]:99":         "fe80::/64",
		"2001:db8::1":               "2001:db8::/64",
		"not an address":            "invalid Prefix",
	} {
		if got := clientPrefix(in).String(); got != want {
			t.Errorf("clientPrefix(%q) = %s, want %s", in, got, want)
		}
	}
	// The rate table stays bounded.
	rt := newRateTable(1, 1, 3)
	now := time.Unix(0, 0)
	for i := range 10 {
		rt.allow(netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}), 32), now)
	}
	if rt.buckets.len() != 3 {
		t.Fatalf("rate table holds %d clients, bound 3", rt.buckets.len())
	}
}

// TestRelayConcurrent: PUTs, GETs and Records from many goroutines (run under -race);
// the relay ends holding the newest packet.
func TestRelayConcurrent(t *testing.T) {
	base := time.Date(2026, 12, 8, 10, 0, 0, 0, time.UTC)
	r := NewRelay(RelayConfig{PutsPerMinute: -1, GetsPerMinute: -1, MaxEntries: 4, Clock: func() time.Time { return base }})
	priv := testKey(60)
	pub := priv.Public().(ed25519.PublicKey)
	z := ZBase32Key(pub)
	const workers, each = 4, 25
	packets := make([][]*SignedPacket, workers)
	for w := range workers {
		for i := range each {
			packets[w] = append(packets[w], signAt(t, priv, base.Add(time.Duration(i*workers+w)*time.Millisecond), "$Z. 60 IN A 192.0.2.1"))
		}
	}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for _, sp := range packets[w] {
				req := httptest.NewRequest(http.MethodPut, "/"+z, bytes.NewReader(sp.RelayPayload()))
				rec := httptest.NewRecorder()
				r.ServeHTTP(rec, req)
				if rec.Code != http.StatusNoContent && rec.Code != http.StatusConflict {
					t.Errorf("PUT = %d", rec.Code)
					return
				}
				rec = httptest.NewRecorder()
				r.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/"+z, nil))
				if rec.Code != http.StatusOK {
					t.Errorf("GET = %d", rec.Code)
				}
				if rrs, ok := r.Records(pub); !ok || len(rrs) != 1 {
					t.Errorf("Records = %v, %v", rrs, ok)
				}
				_ = r.Stats()
			}
		})
	}
	wg.Wait()
	last := packets[workers-1][each-1]
	if got, ok := r.Packet(pub); !ok || got.Micros() != last.Micros() {
		t.Fatalf("relay holds %v (%v), want the newest %d", got, ok, last.Micros())
	}
	if st := r.Stats(); st.PutsAccepted+st.PutsConflict != workers*each || st.Gets != workers*each {
		t.Fatalf("Stats = %+v", st)
	}
}
