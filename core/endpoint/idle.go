package endpoint

import (
	"sync"
	"sync/atomic"
	"time"
)

// idleReason is the close reason of a connection closed by its idle timeout.
const idleReason = "idle timeout"

// idleWatch closes a connection that carried no traffic for its timeout while nobody
// marked it busy. Streams touch it on every read and write that moved bytes; a timer
// checks when the timeout could have passed and re-arms itself for what is left, so the
// hot path is one clock read and one atomic store.
type idleWatch struct {
	timeout time.Duration
	close   func() // closes the connection; called at most once

	last  atomic.Int64 // monotonic nanoseconds since start of the last activity
	busy  atomic.Int64
	fired atomic.Bool
	start time.Time

	mu      sync.Mutex
	timer   *time.Timer
	stopped bool
}

// newIdleWatch starts a watch; a timeout <= 0 returns nil, whose methods do nothing.
func newIdleWatch(timeout time.Duration, close func()) *idleWatch {
	if timeout <= 0 {
		return nil
	}
	w := &idleWatch{timeout: timeout, close: close, start: time.Now()}
	w.mu.Lock()
	w.timer = time.AfterFunc(timeout, w.check)
	w.mu.Unlock()
	return w
}

func (w *idleWatch) now() int64 { return int64(time.Since(w.start)) }

// touch records traffic.
func (w *idleWatch) touch() {
	if w != nil {
		w.last.Store(w.now())
	}
}

// Busy keeps the connection open until done is called; see core.Connection.Busy.
func (w *idleWatch) Busy() func() {
	if w == nil {
		return func() {}
	}
	w.busy.Add(1)
	var done atomic.Bool
	return func() {
		if done.CompareAndSwap(false, true) {
			w.touch() // the idle time counts from the end of the work
			w.busy.Add(-1)
		}
	}
}

// check runs when the timeout may have passed.
func (w *idleWatch) check() {
	w.mu.Lock()
	if w.stopped {
		w.mu.Unlock()
		return
	}
	if w.busy.Load() > 0 {
		w.timer.Reset(w.timeout)
		w.mu.Unlock()
		return
	}
	if quiet := time.Duration(w.now() - w.last.Load()); quiet < w.timeout {
		w.timer.Reset(w.timeout - quiet)
		w.mu.Unlock()
		return
	}
	w.stopped = true
	w.fired.Store(true)
	w.mu.Unlock()
	w.close() // in the timer's goroutine; may block briefly (a TLS close_notify)
}

// stop ends the watch.
func (w *idleWatch) stop() {
	if w == nil {
		return
	}
	w.mu.Lock()
	w.stopped = true
	w.timer.Stop()
	w.mu.Unlock()
}

// timedOut reports whether the watch closed the connection.
func (w *idleWatch) timedOut() bool { return w != nil && w.fired.Load() }
