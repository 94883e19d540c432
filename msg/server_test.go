package msg

import (
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/core/coretest"
	"github.com/alknet/alknet/core/endpoint"
)

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

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// notifyStore wraps a Store and reports each Notify call and release, so a test knows
// when a long-poll fetch is waiting.
type notifyStore struct {
	Store
	notified chan struct{}
	released chan struct{}
}

func (s *notifyStore) Notify(ctx context.Context, mailbox string) (<-chan struct{}, func(), error) {
	ch, release, err := s.Store.Notify(ctx, mailbox)
	if err == nil {
		s.notified <- struct{}{}
		var once sync.Once
		inner := release
		release = func() { once.Do(func() { inner(); s.released <- struct{}{} }) }
	}
	return ch, release, err
}

// user is a test identity: TLS certificate, Ed25519 key, X25519 key and bundle.
type user struct {
	*coretest.Identity
	x      *ecdh.PrivateKey
	bundle KeyBundle
}

func (u *user) party() *party {
	return &party{sig: u.Key, pub: u.pub(), x: u.x, bundle: u.bundle}
}

// harness is a msg server on a loopback endpoint with three identities: owner (scope
// msg:mailbox: its mailbox is hosted), sender (scope msg:send) and stranger (known, no
// scopes).
type harness struct {
	t                       *testing.T
	srv                     *Server
	store                   *notifyStore
	ep                      *coretest.Server
	clock                   *fakeClock
	logs                    *coretest.LogBuffer
	owner, sender, stranger *user
}

func newUser(t *testing.T, clock *fakeClock) *user {
	id := coretest.NewIdentity(t)
	x, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewKeyBundle(id.Key, x.PublicKey(), clock.Now().Add(72*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return &user{Identity: id, x: x, bundle: b}
}

func newHarness(t *testing.T, cfg Config, opts ...Option) *harness {
	t.Helper()
	clock := &fakeClock{t: testNow}
	h := &harness{t: t, clock: clock, logs: coretest.NewLogBuffer()}
	h.owner, h.sender, h.stranger = newUser(t, clock), newUser(t, clock), newUser(t, clock)
	dc := core.DynamicConfig{Auth: core.AuthPolicy{Peers: []core.PeerEntry{
		h.owner.Peer("owner", ScopeMailbox),
		h.sender.Peer("sender", ScopeSend),
		h.stranger.Peer("stranger"),
	}}}
	ds, err := core.NewDynamicStore(dc)
	if err != nil {
		t.Fatal(err)
	}
	mem := NewMemStore()
	t.Cleanup(func() { _ = mem.Close() })
	h.store = &notifyStore{Store: mem, notified: make(chan struct{}, 100), released: make(chan struct{}, 100)}
	if cfg.PurgeInterval == 0 {
		cfg.PurgeInterval = -1
	}
	all := append([]Option{WithLogger(h.logs.Logger()), WithClock(clock.Now), WithPeerMailboxes(core.NewConfigIdentityProvider(ds, nil))}, opts...)
	h.srv, err = NewServer(cfg, h.store, all...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.srv.Close() })
	reg := core.NewRegistry()
	if err := reg.Register(h.srv); err != nil {
		t.Fatal(err)
	}
	h.ep = coretest.NewServer(t, reg, coretest.WithConfig(dc))
	return h
}

// client dials as u (nil: no client certificate) over QUIC.
func (h *harness) client(u *user) *Client {
	return h.clientOver(u, endpoint.NetworkQUIC)
}

func (h *harness) clientOver(u *user, network endpoint.Network) *Client {
	var id *coretest.Identity
	if u != nil {
		id = u.Identity
	}
	return NewClient(h.ep.Dial(h.t, ALPN, id, network))
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

func wantCode(t *testing.T, what string, err error, code ErrorCode) {
	t.Helper()
	if CodeOf(err) != code || !errors.Is(err, &Error{Code: code}) {
		t.Fatalf("%s: %v, want %s", what, err, code)
	}
}

func (u *user) pub() ed25519.PublicKey { return u.Key.Public().(ed25519.PublicKey) }

func TestServerDeliverFetchAck(t *testing.T) {
	for _, network := range []endpoint.Network{endpoint.NetworkQUIC, endpoint.NetworkTCP} {
		t.Run(network.String(), func(t *testing.T) {
			h := newHarness(t, Config{})
			c := ctx(t)
			// On TCP+TLS the calls of a client take turns on the connection's one stream.
			oc, sc := h.clientOver(h.owner, network), h.clientOver(h.sender, network)
			owner := func() *Client { return oc }
			sender := func() *Client { return sc }
			if _, err := sender().GetKeys(c, h.owner.pub()); CodeOf(err) != CodeNotFound {
				t.Fatalf("keys.get before keys.put: %v", err)
			}
			if err := owner().PutKeys(c, h.owner.bundle); err != nil {
				t.Fatalf("PutKeys: %v", err)
			}
			rcpt, err := sender().Send(c, h.sender.Key, h.owner.pub(), []byte("secret hello"), "text/plain", WithTime(h.clock.Now()))
			if err != nil {
				t.Fatalf("Send: %v", err)
			}
			if rcpt.Duplicate || !rcpt.AcceptedAt.Equal(h.clock.Now()) {
				t.Fatalf("receipt %+v", rcpt)
			}
			res, err := owner().Fetch(c, FetchOptions{})
			if err != nil || len(res.Envelopes) != 1 {
				t.Fatalf("Fetch: %v, %+v", err, res)
			}
			f := res.Envelopes[0]
			if f.Envelope.ID != rcpt.ID || !f.AcceptedAt.Equal(rcpt.AcceptedAt) || !f.ExpiresAt.Equal(h.clock.Now().Add(DefaultTTL)) {
				t.Fatalf("fetched %+v", f)
			}
			m, err := Open(h.owner.x, h.owner.pub(), f.Envelope)
			if err != nil || string(m.Body) != "secret hello" || !m.From.Equal(h.sender.Key.Public()) {
				t.Fatalf("Open: %v %+v", err, m)
			}
			if n, err := owner().Ack(c, rcpt.ID, [IDSize]byte{1}); err != nil || n != 1 {
				t.Fatalf("Ack: %d, %v", n, err)
			}
			res, err = owner().Fetch(c, FetchOptions{})
			if err != nil || len(res.Envelopes) != 0 {
				t.Fatalf("Fetch after ack: %v, %+v", err, res)
			}
			st := h.srv.Stats()
			if st.Deliveries != 1 || st.Acked != 1 || st.Fetched != 1 || st.Fetches != 2 || st.KeysPut != 1 || st.Refused[CodeNotFound] != 1 {
				t.Fatalf("stats %+v", st)
			}
			// One log line per operation, without bodies or envelope contents.
			logs := h.logs.String()
			if len(h.logs.Lines("msg request", "op=deliver", "outcome=ok", "identity=sender", "mailbox="+Mailbox(h.owner.pub())[:12])) != 1 {
				t.Fatalf("no deliver line in\n%s", logs)
			}
			if len(h.logs.Lines("msg request", "op=ack", "count=1", "identity=owner")) != 1 {
				t.Fatalf("no ack line in\n%s", logs)
			}
			for _, secret := range []string{"secret hello", b64.EncodeToString(f.Envelope.CT[:12]), b64.EncodeToString(f.Envelope.Enc), Mailbox(h.owner.pub())} {
				if strings.Contains(logs, secret) {
					t.Fatalf("log carries %q:\n%s", secret, logs)
				}
			}
		})
	}
}

func TestServerOwnerOnly(t *testing.T) {
	h := newHarness(t, Config{})
	c := ctx(t)
	sender, stranger, anon := h.client(h.sender), h.client(h.stranger), h.client(nil)
	ownerBox := Mailbox(h.owner.pub())
	_, err := sender.Fetch(c, FetchOptions{Mailbox: ownerBox})
	wantCode(t, "non-owner fetch", err, CodeUnauthorized)
	_, err = anon.Fetch(c, FetchOptions{})
	wantCode(t, "fetch without a certificate", err, CodeUnauthorized)
	// Both write core's shared auth failure line (the one fail2ban matches).
	if len(h.logs.Lines(`msg="auth failure"`, "alpn=alknet/msg", "remote_ip=127.0.0.1", "peer=sender reason=")) != 1 ||
		len(h.logs.Lines(`msg="auth failure"`, "alpn=alknet/msg", "peer=- reason=")) != 1 {
		t.Fatalf("want one auth failure line for each refused fetch in\n%s", h.logs.String())
	}
	_, err = sender.Ack(c, [IDSize]byte{})
	wantCode(t, "ack of an unhosted mailbox", err, CodeNotHosted)
	_, err = sender.Fetch(c, FetchOptions{})
	wantCode(t, "fetch of an unhosted mailbox", err, CodeNotHosted)
	err = stranger.PutKeys(c, h.stranger.bundle)
	wantCode(t, "keys.put for an unhosted mailbox", err, CodeNotHosted)
	// keys.put for the owner's mailbox with another key's bundle: the caller's own
	// mailbox is the only one it can write, and the bundle must be signed by it.
	err = h.client(h.owner).PutKeys(c, h.sender.bundle)
	wantCode(t, "keys.put with someone else's bundle", err, CodeBadRequest)
	_, err = anon.GetKeys(c, h.sender.pub())
	wantCode(t, "keys.get of an unhosted mailbox", err, CodeNotHosted)
}

func TestServerHostingOptions(t *testing.T) {
	c := ctx(t)
	var hosted atomic.Bool
	h := newHarness(t, Config{}, WithHostFunc(func(ed25519.PublicKey) bool { return hosted.Load() }))
	if err := h.client(h.owner).PutKeys(c, h.owner.bundle); err != nil {
		t.Fatalf("peer with msg:mailbox: %v", err)
	}
	wantCode(t, "host func false", h.client(h.stranger).PutKeys(c, h.stranger.bundle), CodeNotHosted)
	hosted.Store(true)
	if err := h.client(h.stranger).PutKeys(c, h.stranger.bundle); err != nil {
		t.Fatalf("host func true: %v", err)
	}
	// Hosted names keys outright (the node's own); nothing else is hosted.
	a, b := newParty(t), newParty(t)
	srv, err := NewServer(Config{PurgeInterval: -1}, NewMemStore(), Hosted(a.pub), WithLogger(coretest.NewLogBuffer().Logger()))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if !srv.hosts(a.pub) || srv.hosts(b.pub) {
		t.Fatal("Hosted: wrong mailboxes hosted")
	}
}

// deliver seals a message from the sender to the owner and delivers it.
func (h *harness) deliver(c *Client, body string, opts ...SealOption) (*Envelope, Receipt, error) {
	h.t.Helper()
	env, err := Seal(h.sender.Key, h.owner.pub(), h.owner.bundle, []byte(body), "text/plain", append([]SealOption{WithTime(h.clock.Now())}, opts...)...)
	if err != nil {
		h.t.Fatal(err)
	}
	r, err := c.Deliver(ctx(h.t), env)
	return env, r, err
}

func TestServerQuota(t *testing.T) {
	h := newHarness(t, Config{MaxMailboxMessages: 2})
	s := h.client(h.sender)
	for i := range 2 {
		if _, _, err := h.deliver(s, "m"); err != nil {
			t.Fatalf("delivery %d: %v", i, err)
		}
	}
	_, _, err := h.deliver(s, "m")
	wantCode(t, "third delivery into a 2-message mailbox", err, CodeQuotaExceeded)
	if !strings.Contains(err.Error(), "max_mailbox_messages 2") {
		t.Fatalf("quota error does not name the limit: %v", err)
	}
	// Bytes: one envelope of the first bucket is about 700 bytes of JSON.
	h = newHarness(t, Config{MaxMailboxBytes: 1000})
	s = h.client(h.sender)
	if _, _, err := h.deliver(s, "m"); err != nil {
		t.Fatal(err)
	}
	_, _, err = h.deliver(s, "m")
	wantCode(t, "delivery past max_mailbox_bytes", err, CodeQuotaExceeded)
	if st := h.srv.Stats(); st.Refused[CodeQuotaExceeded] != 1 || st.Deliveries != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// rawRequest writes raw bytes on a new stream, half-closes, and decodes the response.
func rawRequest(t *testing.T, conn *core.Connection, raw []byte) (*clientResponse, error) {
	t.Helper()
	st, err := conn.OpenBi(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	_, _ = st.Write(raw)
	_ = st.CloseWrite()
	frame, _, err := ReadFrame(st, MaxFrameBytesLimit, nil)
	if err != nil {
		return nil, err
	}
	r, err := decodeClientResponse(frame)
	if err != nil {
		t.Fatal(err)
	}
	return r, nil
}

func TestServerOversizedFrame(t *testing.T) {
	h := newHarness(t, Config{MaxFrameBytes: 8 << 10})
	conn := h.ep.Dial(t, ALPN, h.sender.Identity, endpoint.NetworkQUIC)
	// A 1 GiB announcement is refused from the prefix alone, without the server
	// allocating it (ten of them would show as gigabytes allocated in this process).
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range 10 {
		r, err := rawRequest(t, conn, binary.BigEndian.AppendUint32(nil, 1<<30))
		if err != nil || r.OK || r.Error.Code != CodeTooLarge || !strings.Contains(r.Error.Message, "limit of 8192 bytes") {
			t.Fatalf("1 GiB frame: %v %+v", err, r)
		}
	}
	runtime.ReadMemStats(&after)
	if d := after.TotalAlloc - before.TotalAlloc; d > 64<<20 {
		t.Fatalf("ten refused 1 GiB frames allocated %d bytes", d)
	}
	var r *clientResponse
	var err error
	// At the edge: cap+1 bytes refused, cap bytes read (and refused as JSON, not size).
	over := frameOf([]byte(`{"op":"fetch","after":"` + strings.Repeat("x", 8<<10) + `"}`)[:8<<10+1])
	if r, err = rawRequest(t, conn, over); err != nil || r.Error == nil || r.Error.Code != CodeTooLarge {
		t.Fatalf("cap+1: %v %+v", err, r)
	}
	at := frameOf([]byte(`{"op":"fetch","after":"` + strings.Repeat("x", 8<<10-25) + `"}`))
	if r, err = rawRequest(t, conn, at); err != nil || r.Error == nil || r.Error.Code != CodeBadRequest || !strings.Contains(r.Error.Message, "cursor") {
		t.Fatalf("at the cap: %v %+v", err, r)
	}
	// A body too large for the frame cap, through the client.
	_, _, err = h.deliver(h.client(h.sender), strings.Repeat("b", 7<<10))
	wantCode(t, "deliver over the frame cap", err, CodeTooLarge)
	// The connection still works.
	if _, _, err := h.deliver(NewClient(conn), "small"); err != nil {
		t.Fatalf("after refusals: %v", err)
	}
	if conn.Budget() != nil {
		t.Fatal("client connection has a budget?")
	}
	if st := h.srv.Stats(); st.Refused[CodeTooLarge] != 12 {
		t.Fatalf("stats %+v", st)
	}
}

func TestServerBadRequests(t *testing.T) {
	h := newHarness(t, Config{})
	conn := h.ep.Dial(t, ALPN, h.owner.Identity, endpoint.NetworkQUIC)
	for _, raw := range []string{
		`{"op":"fetch","limit":1000}`,
		`{"op":"fetch","op":"fetch"}`,
		`{"op":"ack","ids":["short"]}`,
		`{"op":"fetch","after":"not-a-cursor"}`,
		`{"op":"keys.get","mailbox":"nope"}`,
		`{"op":"keys.get","mailbox":"` + strings.ToUpper(Mailbox(h.owner.pub())) + `"}`,
		`not json`,
		"\x00\x00\x00\x00",
	} {
		frame := frameOf([]byte(raw))
		if raw == "\x00\x00\x00\x00" {
			frame = []byte(raw)
		}
		r, err := rawRequest(t, conn, frame)
		if err != nil || r.OK || r.Error.Code != CodeBadRequest {
			t.Errorf("%q: %v %+v", raw, err, r)
		}
	}
	// A stream that ends before a whole request gets no answer and changes nothing.
	if _, err := rawRequest(t, conn, []byte{0, 0, 1}); err == nil {
		t.Error("a truncated request was answered")
	}
}

func TestServerDuplicateDeliver(t *testing.T) {
	h := newHarness(t, Config{})
	s := h.client(h.sender)
	env, first, err := h.deliver(s, "once")
	if err != nil {
		t.Fatal(err)
	}
	h.clock.Add(time.Minute)
	again, err := s.Deliver(ctx(t), env)
	if err != nil || !again.Duplicate || !again.AcceptedAt.Equal(first.AcceptedAt) || again.ID != first.ID {
		t.Fatalf("second delivery: %v %+v (first %+v)", err, again, first)
	}
	res, err := h.client(h.owner).Fetch(ctx(t), FetchOptions{})
	if err != nil || len(res.Envelopes) != 1 {
		t.Fatalf("fetch: %v %+v", err, res)
	}
	if st := h.srv.Stats(); st.Deliveries != 1 || st.Duplicates != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestServerTTL(t *testing.T) {
	h := newHarness(t, Config{MaxTTL: Duration(48 * time.Hour), DefaultTTL: Duration(time.Hour)})
	s, o := h.client(h.sender), h.client(h.owner)
	if _, _, err := h.deliver(s, "short", WithTTL(time.Minute)); err != nil {
		t.Fatal(err)
	}
	_, _, err := h.deliver(s, "default")
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = h.deliver(s, "clamped", WithTTL(365*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	res, err := o.Fetch(ctx(t), FetchOptions{})
	if err != nil || len(res.Envelopes) != 3 {
		t.Fatalf("fetch: %v %+v", err, res)
	}
	now := h.clock.Now()
	for i, want := range []time.Duration{time.Minute, time.Hour, 48 * time.Hour} {
		if got := res.Envelopes[i].ExpiresAt.Sub(now); got != want {
			t.Errorf("envelope %d expires in %s, want %s", i, got, want)
		}
	}
	// A minute later the first is gone from fetch; Purge deletes it.
	h.clock.Add(time.Minute)
	if res, err = o.Fetch(ctx(t), FetchOptions{}); err != nil || len(res.Envelopes) != 2 {
		t.Fatalf("fetch after a minute: %v %+v", err, res)
	}
	if n, err := h.srv.Purge(ctx(t)); err != nil || n != 1 {
		t.Fatalf("Purge: %d, %v", n, err)
	}
	h.clock.Add(48 * time.Hour)
	if n, err := h.srv.Purge(ctx(t)); err != nil || n != 2 {
		t.Fatalf("Purge after 48h: %d, %v", n, err)
	}
	if st := h.srv.Stats(); st.Purged != 3 {
		t.Fatalf("stats %+v", st)
	}
	// An envelope sealed two hours ago with a one-hour ttl is expired on arrival.
	_, _, err = h.deliver(s, "late", WithTime(h.clock.Now().Add(-2*time.Hour)), WithTTL(time.Hour))
	wantCode(t, "expired on arrival", err, CodeExpired)
	// One sealed more than an hour ahead of the node's clock is refused.
	_, _, err = h.deliver(s, "future", WithTime(h.clock.Now().Add(MaxClockSkew+time.Second)))
	wantCode(t, "ts in the future", err, CodeBadRequest)
	if _, _, err = h.deliver(s, "near future", WithTime(h.clock.Now().Add(MaxClockSkew))); err != nil {
		t.Fatalf("ts at the skew limit: %v", err)
	}
}

func TestServerBundleExpiry(t *testing.T) {
	h := newHarness(t, Config{})
	c := ctx(t)
	if err := h.client(h.owner).PutKeys(c, h.owner.bundle); err != nil {
		t.Fatal(err)
	}
	h.clock.Add(72 * time.Hour)
	_, err := h.client(h.sender).GetKeys(c, h.owner.pub())
	wantCode(t, "keys.get of an expired bundle", err, CodeExpired)
	err = h.client(h.owner).PutKeys(c, h.owner.bundle)
	wantCode(t, "keys.put of an expired bundle", err, CodeExpired)
}

func TestServerPagination(t *testing.T) {
	h := newHarness(t, Config{})
	s, o := h.client(h.sender), h.client(h.owner)
	var ids [][IDSize]byte
	for i := range 25 {
		env, _, err := h.deliver(s, "m")
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, env.ID)
		if i%2 == 0 {
			h.clock.Add(time.Millisecond) // some share an accepted_at, some do not
		}
	}
	var got [][IDSize]byte
	after := ""
	for page := 0; ; page++ {
		res, err := o.Fetch(ctx(t), FetchOptions{After: after, Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Envelopes) == 0 {
			if res.Next != after {
				t.Fatalf("empty page moved the cursor %q -> %q", after, res.Next)
			}
			break
		}
		for _, f := range res.Envelopes {
			got = append(got, f.Envelope.ID)
		}
		// Acknowledging part of a fetched page does not disturb the next page.
		if page == 0 {
			if _, err := o.Ack(ctx(t), ids[3], ids[4]); err != nil {
				t.Fatal(err)
			}
		}
		after = res.Next
	}
	if len(got) != 25 {
		t.Fatalf("paged through %d envelopes, want 25", len(got))
	}
	for i := range ids {
		if got[i] != ids[i] {
			t.Fatalf("envelope %d out of order", i)
		}
	}
	// A later delivery shows up after the last cursor.
	env, _, err := h.deliver(s, "late")
	if err != nil {
		t.Fatal(err)
	}
	res, err := o.Fetch(ctx(t), FetchOptions{After: after})
	if err != nil || len(res.Envelopes) != 1 || res.Envelopes[0].Envelope.ID != env.ID {
		t.Fatalf("fetch after the end: %v %+v", err, res)
	}
}

// TestServerFetchFitsFrame: a page holds at most a frame's worth of envelopes, and the
// cursor continues after the last one returned.
func TestServerFetchFitsFrame(t *testing.T) {
	h := newHarness(t, Config{MaxFrameBytes: 8 << 10})
	s, o := h.client(h.sender), h.client(h.owner)
	for range 10 {
		if _, _, err := h.deliver(s, strings.Repeat("z", 3000)); err != nil { // ~4.3 KiB envelopes
			t.Fatal(err)
		}
	}
	total, after := 0, ""
	for {
		res, err := o.Fetch(ctx(t), FetchOptions{After: after})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Envelopes) == 0 {
			break
		}
		if len(res.Envelopes) > 1 {
			t.Fatalf("page of %d ~4.3 KiB envelopes under an 8 KiB frame cap", len(res.Envelopes))
		}
		total += len(res.Envelopes)
		after = res.Next
	}
	if total != 10 {
		t.Fatalf("fetched %d of 10", total)
	}
}

// TestServerCancelledStream: a stream reset in the middle of a deliver request leaves
// nothing behind, and the connection goes on working.
func TestServerCancelledStream(t *testing.T) {
	h := newHarness(t, Config{})
	conn := h.ep.Dial(t, ALPN, h.sender.Identity, endpoint.NetworkQUIC)
	env, err := Seal(h.sender.Key, h.owner.pub(), h.owner.bundle, []byte("half"), "", WithTime(h.clock.Now()))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(deliverRequest{Op: OpDeliver, Envelope: env})
	frame := frameOf(body)
	st, err := conn.OpenBi(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Write(frame[:len(frame)/2]); err != nil {
		t.Fatal(err)
	}
	_ = st.Close() // abandons the request
	// Wait until the server has finished with the stream: its next request is answered
	// after it on the same connection only if the server is healthy; then check state.
	c := NewClient(conn)
	if _, err := c.GetKeys(ctx(t), h.owner.pub()); CodeOf(err) != CodeNotFound {
		t.Fatalf("next request: %v", err)
	}
	if n, b, err := h.store.Usage(ctx(t), env.To); err != nil || n != 0 || b != 0 {
		t.Fatalf("mailbox after the abandoned delivery: %d envelopes, %d bytes, %v", n, b, err)
	}
	// The same envelope delivered whole is new, not a duplicate.
	r, err := c.Deliver(ctx(t), env)
	if err != nil || r.Duplicate {
		t.Fatalf("deliver: %v %+v", err, r)
	}
}

func TestServerLongPoll(t *testing.T) {
	h := newHarness(t, Config{})
	o, s := h.client(h.owner), h.client(h.sender)
	type result struct {
		res *FetchResult
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := o.Fetch(ctx(t), FetchOptions{Wait: time.Minute})
		done <- result{res, err}
	}()
	<-h.store.notified // the fetch is subscribed (and about to wait, or listing)
	env, _, err := h.deliver(s, "wake up")
	if err != nil {
		t.Fatal(err)
	}
	var r result
	select {
	case r = <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("long-poll fetch did not return after a delivery")
	}
	if r.err != nil || len(r.res.Envelopes) != 1 || r.res.Envelopes[0].Envelope.ID != env.ID {
		t.Fatalf("long-poll: %v %+v", r.err, r.res)
	}
	<-h.store.released

	// With something already there, no wait.
	if res, err := o.Fetch(ctx(t), FetchOptions{Wait: time.Minute}); err != nil || len(res.Envelopes) != 1 {
		t.Fatalf("fetch with a waiting envelope: %v", err)
	}
	<-h.store.notified
	<-h.store.released

	// A short wait with nothing new returns empty, cursor unchanged.
	res, err := o.Fetch(ctx(t), FetchOptions{After: r.res.Next, Wait: time.Millisecond})
	if err != nil || len(res.Envelopes) != 0 || res.Next != r.res.Next {
		t.Fatalf("empty long-poll: %v %+v", err, res)
	}
	<-h.store.notified
	<-h.store.released

	// A cancelled long-poll releases its subscription on the server.
	cctx, cancel := context.WithCancel(ctx(t))
	go func() {
		_, err := o.Fetch(cctx, FetchOptions{After: r.res.Next, Wait: time.Minute})
		done <- result{nil, err}
	}()
	<-h.store.notified
	cancel()
	if r := <-done; !errors.Is(r.err, context.Canceled) {
		t.Fatalf("cancelled fetch: %v", r.err)
	}
	select {
	case <-h.store.released:
	case <-time.After(60 * time.Second):
		t.Fatal("the server kept waiting for a cancelled fetch")
	}
}

func TestServerAnonymousDelivery(t *testing.T) {
	h := newHarness(t, Config{})
	_, _, err := h.deliver(h.client(nil), "anon")
	wantCode(t, "anonymous delivery", err, CodeUnauthorized)
	_, _, err = h.deliver(h.client(h.stranger), "no scope")
	wantCode(t, "delivery without msg:send", err, CodeUnauthorized)

	h = newHarness(t, Config{AllowAnonymous: true, AnonymousSendsPerMinute: 2, SendsPerMinute: 3})
	anon := h.client(nil)
	for i := range 2 {
		if _, _, err := h.deliver(anon, "anon"); err != nil {
			t.Fatalf("anonymous delivery %d: %v", i, err)
		}
	}
	_, _, err = h.deliver(h.client(h.stranger), "same address")
	wantCode(t, "third anonymous delivery from one address", err, CodeRateLimited)
	// Senders with msg:send have their own, larger allowance.
	s := h.client(h.sender)
	for i := range 3 {
		if _, _, err := h.deliver(s, "signed"); err != nil {
			t.Fatalf("delivery %d: %v", i, err)
		}
	}
	_, _, err = h.deliver(s, "one too many")
	wantCode(t, "fourth delivery in a minute", err, CodeRateLimited)
	h.clock.Add(time.Minute)
	if _, _, err := h.deliver(s, "next minute"); err != nil {
		t.Fatalf("a minute later: %v", err)
	}
}

func TestNewServerErrors(t *testing.T) {
	if _, err := NewServer(Config{}, nil); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("nil store: %v", err)
	}
	if _, err := NewServer(Config{Store: "x"}, NewMemStore()); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("bad config: %v", err)
	}
	// The purge ticker runs and stops with Close.
	s, err := NewServer(Config{PurgeInterval: Duration(time.Millisecond)}, NewMemStore(), WithLogger(coretest.NewLogBuffer().Logger()))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	if s.ALPN() != "alknet/msg" {
		t.Fatal(s.ALPN())
	}
}

// TestServerTCPSequence: on TCP+TLS one client's calls take turns on the one stream; an
// oversized frame is refused with TOO_LARGE and ends the connection.
func TestServerTCPSequence(t *testing.T) {
	h := newHarness(t, Config{MaxFrameBytes: 8 << 10})
	s := h.clientOver(h.sender, endpoint.NetworkTCP)
	for i := range 3 {
		if _, _, err := h.deliver(s, "m"); err != nil {
			t.Fatalf("delivery %d: %v", i, err)
		}
	}
	o := h.clientOver(h.owner, endpoint.NetworkTCP)
	res, err := o.Fetch(ctx(t), FetchOptions{Limit: 2})
	if err != nil || len(res.Envelopes) != 2 {
		t.Fatalf("fetch: %v", err)
	}
	if res, err = o.Fetch(ctx(t), FetchOptions{After: res.Next}); err != nil || len(res.Envelopes) != 1 {
		t.Fatalf("second page: %v", err)
	}
	_, _, err = h.deliver(s, strings.Repeat("b", 7<<10))
	wantCode(t, "oversized deliver over TCP", err, CodeTooLarge)
	if _, _, err := h.deliver(s, "after the refusal"); err != nil {
		t.Fatalf("delivery after a refused frame: %v", err)
	}
	if res, err = o.Fetch(ctx(t), FetchOptions{After: res.Next}); err != nil || len(res.Envelopes) != 1 {
		t.Fatalf("third page: %v", err)
	}
	// A cancelled call leaves the client unusable (its stream is out of step).
	cctx, cancel := context.WithCancel(ctx(t))
	done := make(chan error, 1)
	go func() {
		_, err := o.Fetch(cctx, FetchOptions{After: res.Next, Wait: time.Minute})
		done <- err
	}()
	<-h.store.notified
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled fetch: %v", err)
	}
	if _, err := o.Fetch(ctx(t), FetchOptions{}); !errors.Is(err, ErrClientBroken) {
		t.Fatalf("call after a cancelled one: %v", err)
	}
}

// panicStore panics in List, like a buggy backend.
type panicStore struct{ Store }

func (panicStore) List(context.Context, string, Cursor, int, int64, time.Time) ([]StoredEnvelope, Cursor, error) {
	panic("store bug")
}

func TestServerPanicEndsOnlyTheStream(t *testing.T) {
	h := newHarness(t, Config{})
	srv, err := NewServer(Config{PurgeInterval: -1}, panicStore{NewMemStore()}, Hosted(h.owner.pub()), WithLogger(h.logs.Logger()), WithClock(h.clock.Now))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	reg := core.NewRegistry()
	_ = reg.Register(srv)
	ep := coretest.NewServer(t, reg)
	c := NewClient(ep.Dial(t, ALPN, h.owner.Identity, endpoint.NetworkQUIC))
	_, err = c.Fetch(ctx(t), FetchOptions{})
	wantCode(t, "fetch through a panicking store", err, CodeInternal)
	if err := c.PutKeys(ctx(t), h.owner.bundle); err != nil {
		t.Fatalf("the connection did not survive the panic: %v", err)
	}
	if len(h.logs.Lines("msg request panicked", "store bug")) != 1 {
		t.Fatalf("no panic line in\n%s", h.logs.String())
	}
}
