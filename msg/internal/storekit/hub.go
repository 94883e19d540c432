package storekit

import "sync"

// Hub wakes in-process Notify waiters: Wait registers a channel for a mailbox, Wake closes
// and forgets every channel registered for it, WakeAll (after a missed-notification window
// or at Close) closes them all. The zero Hub is not usable; use NewHub.
type Hub struct {
	mu      sync.Mutex
	closed  bool
	waiters map[string]map[*waiter]struct{}
}

type waiter struct{ ch chan struct{} }

// NewHub returns an empty hub.
func NewHub() *Hub { return &Hub{waiters: make(map[string]map[*waiter]struct{})} }

// Wait registers a waiter for mailbox. The channel is closed by the next Wake(mailbox),
// WakeAll or Close; cancel forgets the waiter without closing the channel and may be called
// any number of times. After Close, Wait returns an already closed channel.
func (h *Hub) Wait(mailbox string) (<-chan struct{}, func()) {
	w := &waiter{ch: make(chan struct{})}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		close(w.ch)
		return w.ch, func() {}
	}
	set := h.waiters[mailbox]
	if set == nil {
		set = make(map[*waiter]struct{})
		h.waiters[mailbox] = set
	}
	set[w] = struct{}{}
	return w.ch, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if set, ok := h.waiters[mailbox]; ok {
			if _, ok := set[w]; ok {
				delete(set, w)
				if len(set) == 0 {
					delete(h.waiters, mailbox)
				}
			}
		}
	}
}

// Wake closes every waiter of mailbox.
func (h *Hub) Wake(mailbox string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for w := range h.waiters[mailbox] {
		close(w.ch)
	}
	delete(h.waiters, mailbox)
}

// WakeAll closes every waiter of every mailbox.
func (h *Hub) WakeAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.wakeAllLocked()
}

func (h *Hub) wakeAllLocked() {
	for _, set := range h.waiters {
		for w := range set {
			close(w.ch)
		}
	}
	clear(h.waiters)
}

// Close wakes every waiter; later Waits get closed channels.
func (h *Hub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	h.wakeAllLocked()
}

// Len reports how many waiters are registered (for tests that check cancel releases).
func (h *Hub) Len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, set := range h.waiters {
		n += len(set)
	}
	return n
}
