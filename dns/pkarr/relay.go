package pkarr

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mdns "github.com/miekg/dns"
)

// ContentType is the media type of a relay payload.
const ContentType = "application/pkarr.org/relays#payload"

// Relay defaults.
const (
	DefaultMaxEntries    = 10000
	DefaultPutsPerMinute = 10
	DefaultPutBurst      = 5
	DefaultGetsPerMinute = 600
	DefaultGetBurst      = 60
	DefaultMaxClients    = 10000
	DefaultBodyTimeout   = 10 * time.Second
)

// RelayConfig configures a Relay. Zero values take the defaults; a negative rate turns
// that limit off.
type RelayConfig struct {
	// MaxEntries bounds the number of keys held; past it the least recently used
	// (published or read) packet is evicted. Default 10,000.
	MaxEntries int
	// PutsPerMinute and PutBurst limit PUTs per client (IPv4 address or IPv6 /64):
	// a token bucket refilled at PutsPerMinute holding up to PutBurst. Defaults 10 and 5.
	PutsPerMinute, PutBurst int
	// GetsPerMinute and GetBurst limit GETs the same way. Defaults 600 and 60.
	GetsPerMinute, GetBurst int
	// MaxClients bounds each rate-limit table (least recently seen clients are
	// forgotten). Default 10,000.
	MaxClients int
	// BodyTimeout bounds reading a PUT body (a read deadline on the connection, where
	// the server supports one). Default 10 s.
	BodyTimeout time.Duration
	// Clock is the time used for the 1-hour future check and the rate limits; nil
	// means time.Now.
	Clock func() time.Time
	// Logger receives debug lines for refused requests (status and reason, never the
	// key or the records). Nil discards.
	Logger *slog.Logger
}

// RelayStats is a snapshot of a Relay's counters.
type RelayStats struct {
	PutsAccepted    uint64 // 204
	PutsBadRequest  uint64 // 400: bad key, signature or packet
	PutsConflict    uint64 // 409: not newer than the packet held
	PutsTooLarge    uint64 // 413
	PutsRateLimited uint64 // 429
	Gets            uint64 // 200
	GetsNotModified uint64 // 304
	GetsNotFound    uint64 // 404
	GetsBadRequest  uint64 // 400: bad key
	GetsRateLimited uint64 // 429
	Entries         int    // packets held now
	Evictions       uint64 // packets dropped to keep MaxEntries
}

// Relay is a pkarr relay (pkarr's design/relays.md) without the DHT: an http.Handler
// serving PUT and GET /<z32> from a bounded in-memory cache of verified packets, and the
// source of those packets' records for a DNS front (its Records method matches package
// dns's SignedZones).
//
// The handler expects the key as the whole path; the assembly mounts it under a prefix
// with http.StripPrefix, for example
//
//	mux.Handle("/pkarr/", http.StripPrefix("/pkarr", relay))
//
// Responses: PUT 204 on accept, 400 for a bad key, signature or packet (including a
// timestamp more than an hour ahead), 409 when the timestamp is not newer than the held
// packet's, 413 for a body over 1072 bytes or a packet of 1000 bytes or more, 429 when
// the client is over its rate (with Retry-After); GET 200 with the relay payload,
// Content-Type application/pkarr.org/relays#payload, Cache-Control "public,
// max-age=<min TTL>" and Last-Modified, 304 when If-Modified-Since is at or after the
// packet's timestamp, 404 for an unknown key; OPTIONS 204. Every response carries
// CORS headers allowing any origin. Clients are identified by the connection's remote
// address; forwarding headers are ignored.
//
// Evicted keys are forgotten: after an eviction, an older packet for that key would be
// accepted again.
type Relay struct {
	cfg  RelayConfig
	log  *slog.Logger
	now  func() time.Time
	mu   sync.Mutex
	held *lru[[ed25519.PublicKeySize]byte, *SignedPacket]
	puts *rateTable
	gets *rateTable

	putsAccepted, putsBadRequest, putsConflict, putsTooLarge, putsRateLimited atomic.Uint64
	gets200, gets304, gets404, gets400, gets429                               atomic.Uint64
	evictions                                                                 atomic.Uint64
}

// NewRelay returns an empty relay.
func NewRelay(cfg RelayConfig) *Relay {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&cfg.MaxEntries, DefaultMaxEntries)
	def(&cfg.PutsPerMinute, DefaultPutsPerMinute)
	def(&cfg.PutBurst, DefaultPutBurst)
	def(&cfg.GetsPerMinute, DefaultGetsPerMinute)
	def(&cfg.GetBurst, DefaultGetBurst)
	def(&cfg.MaxClients, DefaultMaxClients)
	if cfg.MaxEntries < 0 {
		cfg.MaxEntries = DefaultMaxEntries
	}
	if cfg.MaxClients < 0 {
		cfg.MaxClients = DefaultMaxClients
	}
	cfg.PutBurst = max(cfg.PutBurst, 1)
	cfg.GetBurst = max(cfg.GetBurst, 1)
	if cfg.BodyTimeout <= 0 {
		cfg.BodyTimeout = DefaultBodyTimeout
	}
	r := &Relay{
		cfg:  cfg,
		log:  cfg.Logger,
		now:  cfg.Clock,
		held: newLRU[[ed25519.PublicKeySize]byte, *SignedPacket](cfg.MaxEntries),
		puts: newRateTable(cfg.PutsPerMinute, cfg.PutBurst, cfg.MaxClients),
		gets: newRateTable(cfg.GetsPerMinute, cfg.GetBurst, cfg.MaxClients),
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if r.now == nil {
		r.now = time.Now
	}
	return r
}

// Store keeps sp if it is newer than the packet held for its key, and returns
// ErrNotNewer otherwise. sp is trusted as verified (Sign and Decode are the only ways
// to make one; the future check was made against their clock). The relay's HTTP PUT and
// the assembly (the node's own packet) both come through here.
func (r *Relay) Store(sp *SignedPacket) error {
	if sp == nil || len(sp.raw) < MinSignedPacket {
		return fmt.Errorf("%w: Store of a SignedPacket not made by Sign or Decode", ErrBadPacket)
	}
	var k [ed25519.PublicKeySize]byte
	copy(k[:], sp.raw)
	r.mu.Lock()
	defer r.mu.Unlock()
	if cur, ok := r.held.get(k); ok && !sp.NewerThan(cur) {
		return ErrNotNewer
	}
	if n := r.held.put(k, sp); n > 0 {
		r.evictions.Add(uint64(n))
	}
	return nil
}

// Packet returns the packet held for key.
func (r *Relay) Packet(key ed25519.PublicKey) (*SignedPacket, bool) {
	if len(key) != ed25519.PublicKeySize {
		return nil, false
	}
	var k [ed25519.PublicKeySize]byte
	copy(k[:], key)
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.held.get(k)
}

// Records returns copies of the verified records of the packet held for key, owner
// names fully qualified under "<z32>." (the TLD in lowercase), or ok=false when the
// relay holds nothing for key. A held packet with no records returns ok=true and no
// records. It implements package dns's SignedZones.
func (r *Relay) Records(key ed25519.PublicKey) (rrs []mdns.RR, ok bool) {
	sp, ok := r.Packet(key)
	if !ok {
		return nil, false
	}
	return sp.Records(), true
}

// Stats returns a snapshot of the counters.
func (r *Relay) Stats() RelayStats {
	r.mu.Lock()
	entries := r.held.len()
	r.mu.Unlock()
	return RelayStats{
		PutsAccepted:    r.putsAccepted.Load(),
		PutsBadRequest:  r.putsBadRequest.Load(),
		PutsConflict:    r.putsConflict.Load(),
		PutsTooLarge:    r.putsTooLarge.Load(),
		PutsRateLimited: r.putsRateLimited.Load(),
		Gets:            r.gets200.Load(),
		GetsNotModified: r.gets304.Load(),
		GetsNotFound:    r.gets404.Load(),
		GetsBadRequest:  r.gets400.Load(),
		GetsRateLimited: r.gets429.Load(),
		Entries:         entries,
		Evictions:       r.evictions.Load(),
	}
}

// ServeHTTP implements http.Handler.
func (r *Relay) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Allow-Methods", "GET, PUT, OPTIONS")
	h.Set("Access-Control-Allow-Headers", "Content-Type, If-Modified-Since")
	h.Set("Access-Control-Expose-Headers", "Retry-After")
	switch req.Method {
	case http.MethodOptions:
		h.Set("Access-Control-Max-Age", "86400")
		w.WriteHeader(http.StatusNoContent)
	case http.MethodGet, http.MethodHead:
		r.serveGet(w, req)
	case http.MethodPut:
		r.servePut(w, req)
	default:
		h.Set("Allow", "GET, HEAD, PUT, OPTIONS")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

// pathKey parses the key from a request path "/<z32>".
func pathKey(path string) (ed25519.PublicKey, error) {
	return ParseKey(strings.TrimPrefix(path, "/"))
}

// limited answers 429 when client is over the table's rate.
func (r *Relay) limited(w http.ResponseWriter, req *http.Request, t *rateTable) bool {
	r.mu.Lock()
	ok, wait := t.allow(clientPrefix(req.RemoteAddr), r.now())
	r.mu.Unlock()
	if ok {
		return false
	}
	secs := int64((wait + time.Second - 1) / time.Second)
	w.Header().Set("Retry-After", strconv.FormatInt(max(secs, 1), 10))
	http.Error(w, "rate limited", http.StatusTooManyRequests)
	return true
}

func (r *Relay) servePut(w http.ResponseWriter, req *http.Request) {
	if r.limited(w, req, r.puts) {
		r.putsRateLimited.Add(1)
		r.log.Debug("pkarr relay: PUT refused", "status", http.StatusTooManyRequests)
		return
	}
	refuse := func(status int, counter *atomic.Uint64, reason error) {
		counter.Add(1)
		r.log.Debug("pkarr relay: PUT refused", "status", status, "reason", reasonOf(reason))
		http.Error(w, reasonOf(reason), status)
	}
	pub, err := pathKey(req.URL.Path)
	if err != nil {
		refuse(http.StatusBadRequest, &r.putsBadRequest, ErrBadKey)
		return
	}
	if req.ContentLength > MaxRelayPayload {
		refuse(http.StatusRequestEntityTooLarge, &r.putsTooLarge, ErrTooLarge)
		return
	}
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(r.cfg.BodyTimeout))
	var buf [MaxRelayPayload + 1]byte
	n, err := io.ReadFull(req.Body, buf[:])
	switch {
	case n > MaxRelayPayload:
		refuse(http.StatusRequestEntityTooLarge, &r.putsTooLarge, ErrTooLarge)
		return
	case err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF):
		refuse(http.StatusBadRequest, &r.putsBadRequest, errBodyRead)
		return
	}
	sp, err := DecodeRelayPayload(pub, buf[:n], r.now())
	if err != nil {
		if errors.Is(err, ErrTooLarge) {
			refuse(http.StatusRequestEntityTooLarge, &r.putsTooLarge, err)
		} else {
			refuse(http.StatusBadRequest, &r.putsBadRequest, err)
		}
		return
	}
	if err := r.Store(sp); err != nil {
		refuse(http.StatusConflict, &r.putsConflict, err)
		return
	}
	r.putsAccepted.Add(1)
	w.WriteHeader(http.StatusNoContent)
}

func (r *Relay) serveGet(w http.ResponseWriter, req *http.Request) {
	if r.limited(w, req, r.gets) {
		r.gets429.Add(1)
		return
	}
	pub, err := pathKey(req.URL.Path)
	if err != nil {
		r.gets400.Add(1)
		http.Error(w, reasonOf(ErrBadKey), http.StatusBadRequest)
		return
	}
	sp, ok := r.Packet(pub)
	if !ok {
		r.gets404.Add(1)
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	h := w.Header()
	h.Set("Content-Type", ContentType)
	h.Set("Cache-Control", "public, max-age="+strconv.FormatUint(uint64(sp.MinTTL()), 10))
	h.Set("Last-Modified", sp.Timestamp().Format(http.TimeFormat))
	// The timestamp keeps its microseconds: a packet published within the second named
	// by If-Modified-Since is newer than it, so it is sent rather than reported as not
	// modified.
	if ims, err := http.ParseTime(req.Header.Get("If-Modified-Since")); err == nil && !sp.Timestamp().After(ims) {
		r.gets304.Add(1)
		h.Del("Content-Type")
		w.WriteHeader(http.StatusNotModified)
		return
	}
	r.gets200.Add(1)
	body := sp.RelayPayload()
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if req.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

// errBodyRead is the reason given when a PUT body could not be read.
var errBodyRead = errors.New("pkarr: reading the request body failed")

// reasonOf returns the sentinel text for a rejection, without the details (keys,
// sizes) that follow it.
func reasonOf(err error) string {
	for _, s := range []error{ErrBadKey, ErrTooShort, ErrTooLarge, ErrBadSignature, ErrBadPacket,
		ErrNotUnderKey, ErrFuture, ErrNotNewer, errBodyRead} {
		if errors.Is(err, s) {
			return s.Error()
		}
	}
	return "pkarr: rejected"
}
