package pkarr

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"
)

// Republisher defaults.
const (
	DefaultRepublishInterval = time.Hour
	DefaultRepublishJitter   = 0.1
	DefaultMinBackoff        = 30 * time.Second
)

// Clock is the Republisher's time source; tests substitute a fake so that no test
// sleeps.
type Clock interface {
	Now() time.Time
	// After returns a channel that receives once d has passed, and a function that
	// stops the timer.
	After(d time.Duration) (c <-chan time.Time, stop func() bool)
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) After(d time.Duration) (<-chan time.Time, func() bool) {
	t := time.NewTimer(d)
	return t.C, t.Stop
}

// Publisher is what a Republisher publishes through; *Client is one.
type Publisher interface {
	Publish(ctx context.Context, sp *SignedPacket) error
}

// Republisher keeps a key's packet fresh on a set of relays: it publishes when Run
// starts, again about every Interval (with ±Jitter), and soon after Changed is called.
// Each round calls Build for a freshly signed packet (a new timestamp, so relays accept
// it as newer) and publishes it to every relay at once.
//
// A relay answering 409 already holds a packet at least as new, which counts as
// published. Any other failure, of Build or of any relay, makes the next round come
// after a backoff instead of the interval: MinBackoff, doubling up to the interval, and
// at least the Retry-After a rate-limiting relay asked for. Failures are logged with the
// relay's redacted URL (never its credentials) and without the packet's records.
//
// The zero value needs Relays and Build; set the fields before Run and do not change
// them while it runs.
type Republisher struct {
	// Relays receive every packet; usually *Client values.
	Relays []Publisher
	// Build returns the packet to publish, typically Sign over the current records at
	// the current time.
	Build func(ctx context.Context) (*SignedPacket, error)
	// Interval between successful rounds; zero means DefaultRepublishInterval.
	Interval time.Duration
	// Jitter is the fraction by which each interval varies (uniformly, either way);
	// zero means DefaultRepublishJitter, negative means none.
	Jitter float64
	// MinBackoff is the first delay after a failed round; zero means DefaultMinBackoff.
	MinBackoff time.Duration
	// Logger receives the failures; nil discards.
	Logger *slog.Logger
	// Clock is the time source; nil means the real one.
	Clock Clock

	once    sync.Once
	changed chan struct{}
}

func (r *Republisher) init() {
	r.once.Do(func() { r.changed = make(chan struct{}, 1) })
}

// Changed asks for a new round as soon as possible (the records changed). It never
// blocks; calls while a round is pending collapse into one.
func (r *Republisher) Changed() {
	r.init()
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

// errNoRelays and errNoBuild are Run's configuration errors.
var (
	errNoRelays = errors.New("pkarr: republisher has no relays")
	errNoBuild  = errors.New("pkarr: republisher has no Build function")
)

// Run publishes until ctx is done, then returns nil. It returns an error at once if
// Relays or Build is missing.
func (r *Republisher) Run(ctx context.Context) error {
	if len(r.Relays) == 0 {
		return errNoRelays
	}
	if r.Build == nil {
		return errNoBuild
	}
	r.init()
	clock := r.Clock
	if clock == nil {
		clock = realClock{}
	}
	log := r.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	interval := r.Interval
	if interval <= 0 {
		interval = DefaultRepublishInterval
	}
	jitter := r.Jitter
	if jitter == 0 {
		jitter = DefaultRepublishJitter
	}
	jitter = min(max(jitter, 0), 1)
	minBackoff := r.MinBackoff
	if minBackoff <= 0 {
		minBackoff = DefaultMinBackoff
	}

	backoff := time.Duration(0)
	for {
		ok, retryAfter := r.round(ctx, log)
		if ctx.Err() != nil {
			return nil
		}
		var wait time.Duration
		if ok {
			backoff = 0
			wait = time.Duration(float64(interval) * (1 + jitter*(2*rand.Float64()-1)))
		} else {
			backoff = min(max(2*backoff, minBackoff), interval)
			wait = max(backoff, retryAfter)
		}
		c, stop := clock.After(wait)
		select {
		case <-ctx.Done():
			stop()
			return nil
		case <-c:
		case <-r.changed:
			stop()
		}
	}
}

// round builds one packet and publishes it everywhere. ok is false when Build or any
// relay failed; retryAfter is the longest delay a rate-limiting relay asked for.
func (r *Republisher) round(ctx context.Context, log *slog.Logger) (ok bool, retryAfter time.Duration) {
	sp, err := r.Build(ctx)
	if err != nil {
		if ctx.Err() == nil {
			log.Warn("pkarr: building the packet to publish failed", "err", err)
		}
		return false, 0
	}
	errs := make([]error, len(r.Relays))
	var wg sync.WaitGroup
	for i, p := range r.Relays {
		wg.Go(func() { errs[i] = p.Publish(ctx, sp) })
	}
	wg.Wait()
	ok = true
	for _, err := range errs {
		switch {
		case err == nil:
		case errors.Is(err, ErrNotNewer):
			log.Debug("pkarr: relay already holds a packet at least as new", "err", err)
		default:
			ok = false
			if ctx.Err() != nil {
				continue
			}
			log.Warn("pkarr: publishing failed", "err", err)
			var se *StatusError
			if errors.As(err, &se) {
				retryAfter = max(retryAfter, se.RetryAfter)
			}
		}
	}
	return ok, retryAfter
}
