package call

// The event queue of an outgoing subscription: the stream reader delivers events in
// batches (every event one read brought in), and Stream.Next takes them a batch at a
// time, so the two goroutines meet once per batch rather than once per event.

import (
	"encoding/json"
	"sync"
	"sync/atomic"
)

// eventQueue holds a subscription's events between its reader and Stream.Next. At
// most max events are held: queued, or taken by Next and not yet returned.
type eventQueue struct {
	max  int
	held atomic.Int64 // events delivered and not yet returned by Next

	mu          sync.Mutex
	q           []json.RawMessage // delivered, not yet taken by Next
	consWaiting bool              // Next found q empty and waits on wake

	pmu         sync.Mutex    // one deliver at a time (events may come on several streams)
	prodWaiting atomic.Bool   // the reader waits on room
	wake        chan struct{} // one token: events were queued while Next waited
	room        chan struct{} // one token: Next made room while the reader waited
}

func newEventQueue(max int) *eventQueue {
	return &eventQueue{max: max, wake: make(chan struct{}, 1), room: make(chan struct{}, 1)}
}

// half is how much room a waiting reader waits for (and Next makes before waking
// it), so that a full queue is refilled in batches, not one event at a time.
func (e *eventQueue) half() int64 { return int64(max(1, e.max/2)) }

// deliver queues evs in order. With block it waits for room while the queue is full
// (on QUIC the stream is then not read, and flow control pushes back on the sender)
// until quit is closed, which drops the rest; without block it queues what fits and
// reports false when some did not (the subscription overflowed).
func (e *eventQueue) deliver(evs []json.RawMessage, block bool, quit <-chan struct{}) bool {
	e.pmu.Lock()
	defer e.pmu.Unlock()
	for len(evs) > 0 {
		want := min(int64(len(evs)), e.half())
		room := int64(e.max) - e.held.Load()
		if room < want {
			if !block {
				if room > 0 {
					e.push(evs[:room])
				}
				return false
			}
			// Announce the wait, then look again: Next either sees the flag or has
			// made room that this load sees.
			e.prodWaiting.Store(true)
			if room = int64(e.max) - e.held.Load(); room < want {
				select {
				case <-e.room:
				case <-quit:
					e.prodWaiting.Store(false)
					return true
				}
				e.prodWaiting.Store(false)
				continue
			}
			e.prodWaiting.Store(false)
		}
		k := min(room, int64(len(evs)))
		e.push(evs[:k])
		evs = evs[k:]
	}
	return true
}

// push queues evs (there is room for them) and wakes a waiting Next.
func (e *eventQueue) push(evs []json.RawMessage) {
	e.mu.Lock()
	e.q = append(e.q, evs...)
	e.held.Add(int64(len(evs)))
	wake := e.consWaiting
	e.consWaiting = false
	e.mu.Unlock()
	if wake {
		signal(e.wake)
	}
}

// take swaps the queued events into *dst (whose events must all have been returned),
// reporting false, and marking Next as waiting, when there are none.
func (e *eventQueue) take(dst *[]json.RawMessage) bool {
	e.mu.Lock()
	if len(e.q) == 0 {
		e.consWaiting = true
		e.mu.Unlock()
		return false
	}
	*dst, e.q = e.q, (*dst)[:0]
	e.consWaiting = false
	e.mu.Unlock()
	return true
}

// returned counts one event returned by Next, waking the reader once half the queue
// is free.
func (e *eventQueue) returned() {
	if h := e.held.Add(-1); h <= int64(e.max)-e.half() && e.prodWaiting.Load() {
		signal(e.room)
	}
}

// signal leaves a token in a channel of capacity 1 unless one is there.
func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}
