package client

import (
	"context"
	"math/rand/v2"
	"net"
	"net/http"
	"sync/atomic"
	"time"
)

// Shared is the shared outbound HTTP client. It is safe for concurrent use; build
// it with [New]. Its configuration can be replaced while it is in use with
// [Shared.Reload].
type Shared struct {
	cur    atomic.Pointer[state]
	memory *retryAfterMemory // kept across reloads
	opts   options
	rt     *roundTripper
	client *http.Client // used by Do
}

// state is one built configuration: the transport and the settings that go with it.
type state struct {
	transport *http.Transport
	settings
}

// options are the seams tests use instead of the real clock, randomness and
// network. Zero fields mean the real thing.
type options struct {
	now    func() time.Time
	sleep  func(ctx context.Context, d time.Duration) error
	jitter func(n int64) int64 // uniform in [0, n), n > 0
	dial   func(ctx context.Context, network, addr string) (net.Conn, error)
}

func (o options) withDefaults() options {
	if o.now == nil {
		o.now = time.Now
	}
	if o.sleep == nil {
		o.sleep = sleepContext
	}
	if o.jitter == nil {
		o.jitter = rand.Int64N
	}
	return o
}

// sleepContext waits for d or until ctx ends, whichever comes first, and returns
// ctx.Err() in the latter case.
func sleepContext(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// New validates cfg and builds a Shared client from it. Errors about cfg wrap
// [ErrConfig].
func New(cfg Config) (*Shared, error) {
	return newShared(cfg, options{})
}

func newShared(cfg Config, opts options) (*Shared, error) {
	opts = opts.withDefaults()
	tr, st, err := build(cfg, opts.dial)
	if err != nil {
		return nil, err
	}
	s := &Shared{memory: newRetryAfterMemory(st.retryAfterCapacity), opts: opts}
	s.cur.Store(&state{transport: tr, settings: st})
	s.rt = &roundTripper{s: s}
	s.client = &http.Client{Transport: s.rt}
	return s, nil
}

// Do sends req through the current configuration, as [http.Client.Do] does
// (redirects are followed; errors are *url.Error): each hop first waits for any
// Retry-After deadline remembered for its URL, then is retried on transient
// failures as the [RetryPolicy] allows. The caller sets credentials on req and
// bounds the whole call with req's context.
func (s *Shared) Do(req *http.Request) (*http.Response, error) {
	return s.client.Do(req)
}

// Client returns a new *http.Client whose Transport goes through s: each request
// uses the configuration current when it is sent, so holders of the returned
// client see later reloads, and share s's Retry-After memory. The client has no
// Timeout and no cookie jar; the caller may set them, or CheckRedirect, without
// affecting s or other holders.
func (s *Shared) Client() *http.Client {
	return &http.Client{Transport: s.rt}
}

// Reload validates cfg and builds its transport; on error it returns the error
// (wrapping [ErrConfig]) and keeps the current configuration. On success it swaps
// the new configuration in atomically and closes the idle connections of the old
// transport; requests in flight on it finish normally, and the connections they
// release afterwards are closed by the idle timeout (90s). The Retry-After memory
// is kept, bounded by the new RetryAfterCapacity.
func (s *Shared) Reload(cfg Config) error {
	tr, st, err := build(cfg, s.opts.dial)
	if err != nil {
		return err
	}
	s.memory.setCapacity(st.retryAfterCapacity, s.opts.now())
	old := s.cur.Swap(&state{transport: tr, settings: st})
	old.transport.CloseIdleConnections()
	return nil
}

// Close closes the idle connections of the current configuration. s stays
// usable: later requests open new connections.
func (s *Shared) Close() {
	s.cur.Load().transport.CloseIdleConnections()
}
