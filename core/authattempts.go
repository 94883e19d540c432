package core

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// ErrTooManyAuthAttempts is the error of a connection that presented a credential after
// [Limits.MaxAuthAttempts] failed ones; the handler closes it.
var ErrTooManyAuthAttempts = errors.New("too many authentication attempts")

// AuthAttempts counts the failed protocol-level authentication attempts of one connection
// (a wrong token, Bearer header or WebSocket subprotocol) against
// [Limits.MaxAuthAttempts]: that many failures are answered as usual; the next
// presentation of any credential, right or wrong, is refused and the connection closed.
// It is safe for concurrent use (requests of one connection run concurrently).
type AuthAttempts struct {
	mu     sync.Mutex
	max    int // < 0: no limit
	failed int
}

// NewAuthAttempts returns a counter for one connection allowing max failures (the
// effective [Limits.MaxAuthAttempts]: 0 means [DefaultMaxAuthAttempts], negative no
// limit).
func NewAuthAttempts(max int) *AuthAttempts {
	if max == 0 {
		max = DefaultMaxAuthAttempts
	}
	return &AuthAttempts{max: max}
}

// Allow reports whether the connection may present a credential now: false once max
// attempts have failed (then return or wrap [ErrTooManyAuthAttempts] and close).
func (a *AuthAttempts) Allow() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.max >= 0 && a.failed >= a.max {
		return fmt.Errorf("%w (limit %d)", ErrTooManyAuthAttempts, a.max)
	}
	return nil
}

// Fail records a failed attempt and reports whether the connection has now used up its
// attempts (the next one will not be allowed).
func (a *AuthAttempts) Fail() (exhausted bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.failed++
	return a.max >= 0 && a.failed >= a.max
}

// Failed returns how many attempts failed so far.
func (a *AuthAttempts) Failed() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.failed
}

// ReloadNotifier is implemented by identity providers whose answers change on a reload
// ([ConfigIdentityProvider]): Changed returns a channel closed at the next change.
type ReloadNotifier interface {
	Changed() <-chan struct{}
}

// WatchRevocation re-checks a connection's credential after every change of p's
// configuration, for as long as ctx lasts: when still returns false (the peer was
// disabled, the API key removed or expired), revoke is called once and the watch ends.
// It returns at once, doing nothing, when p does not implement [ReloadNotifier]. The
// watch runs in its own goroutine, which ends with ctx; stop ends it earlier and waits
// for it.
func WatchRevocation(ctx context.Context, p IdentityProvider, still func() bool, revoke func()) (stop func()) {
	n, ok := p.(ReloadNotifier)
	if !ok {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	changed := n.Changed()
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case <-changed:
			}
			changed = n.Changed()
			if !still() {
				revoke()
				return
			}
		}
	}()
	return func() { cancel(); <-done }
}
