package msg

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/alknet/alknet/msg/internal/storekit"
)

// MemStore is a Store in memory, for tests and for embedding where losing the mailboxes
// at exit is acceptable. Notify wakes waiters of the same MemStore only. The zero value is
// not usable; use NewMemStore.
type MemStore struct {
	mu        sync.Mutex
	closed    bool
	seq       uint64
	mailboxes map[string]*memMailbox
	bundles   map[string][]byte
	hub       *storekit.Hub
}

// memMailbox holds one mailbox's envelopes sorted by fetch position, and an id index.
type memMailbox struct {
	items []memItem // sorted by pos
	byID  map[[16]byte]storekit.Position
	bytes int64
}

type memItem struct {
	pos storekit.Position
	env StoredEnvelope
}

// NewMemStore returns an empty MemStore.
func NewMemStore() *MemStore {
	return &MemStore{
		mailboxes: make(map[string]*memMailbox),
		bundles:   make(map[string][]byte),
		hub:       storekit.NewHub(),
	}
}

var _ Store = (*MemStore)(nil)

// begin checks ctx and the closed flag and locks the store; the caller unlocks.
func (s *MemStore) begin(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("msg: memory store: %w", err)
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	return nil
}

// Put implements Store. It keeps a copy of env.Data.
func (s *MemStore) Put(ctx context.Context, env StoredEnvelope, q Quota) (time.Time, bool, error) {
	acceptedNs, _, err := storekit.CheckEnvelope(env.Mailbox, env.AcceptedAt, env.ExpiresAt)
	if err != nil {
		return time.Time{}, false, err
	}
	if err := s.begin(ctx); err != nil {
		return time.Time{}, false, err
	}
	defer s.mu.Unlock()
	mb := s.mailboxes[env.Mailbox]
	if mb == nil {
		mb = &memMailbox{byID: make(map[[16]byte]storekit.Position)}
	}
	if pos, ok := mb.byID[env.ID]; ok {
		return time.Unix(0, pos.AcceptedNs), true, nil
	}
	if why := storekit.QuotaExceeded(q.MaxMessages, q.MaxBytes, int64(len(mb.items)), mb.bytes, len(env.Data)); why != "" {
		return time.Time{}, false, fmt.Errorf("%w: %s", ErrQuotaExceeded, why)
	}
	s.seq++
	pos := storekit.Position{AcceptedNs: acceptedNs, Seq: s.seq}
	env.AcceptedAt = time.Unix(0, acceptedNs)
	env.ExpiresAt = env.ExpiresAt.Round(0)
	env.Data = slices.Clone(env.Data)
	i, _ := slices.BinarySearchFunc(mb.items, pos, func(it memItem, p storekit.Position) int {
		return comparePos(it.pos, p)
	})
	mb.items = slices.Insert(mb.items, i, memItem{pos: pos, env: env})
	mb.byID[env.ID] = pos
	mb.bytes += int64(len(env.Data))
	s.mailboxes[env.Mailbox] = mb
	s.hub.Wake(env.Mailbox)
	return env.AcceptedAt, false, nil
}

func comparePos(a, b storekit.Position) int {
	switch {
	case a.Less(b):
		return -1
	case b.Less(a):
		return 1
	}
	return 0
}

// List implements Store. The envelopes' Data are copies (of the returned envelopes only).
func (s *MemStore) List(ctx context.Context, mailbox string, after Cursor, limit int, maxBytes int64, now time.Time) ([]StoredEnvelope, Cursor, error) {
	if err := storekit.CheckMailbox(mailbox); err != nil {
		return nil, after, err
	}
	if err := storekit.CheckLimit(limit); err != nil {
		return nil, after, err
	}
	from, start, err := storekit.ParseCursor(string(after))
	if err != nil {
		return nil, after, fmt.Errorf("%w: %v", ErrInvalidCursor, err)
	}
	if err := s.begin(ctx); err != nil {
		return nil, after, err
	}
	defer s.mu.Unlock()
	mb := s.mailboxes[mailbox]
	if mb == nil {
		return nil, after, nil
	}
	i := 0
	if !start {
		// First item strictly after the cursor.
		i, _ = slices.BinarySearchFunc(mb.items, from, func(it memItem, p storekit.Position) int {
			if comparePos(it.pos, p) <= 0 {
				return -1
			}
			return 1
		})
	}
	out := make([]StoredEnvelope, 0, storekit.InitialCap(limit))
	next := after
	var used int64
	for ; i < len(mb.items) && len(out) < limit; i++ {
		it := &mb.items[i]
		if !it.env.ExpiresAt.After(now) {
			continue
		}
		if storekit.OverBudget(maxBytes, len(out), used, len(it.env.Data)) {
			break
		}
		used += int64(len(it.env.Data))
		env := it.env
		env.Data = slices.Clone(env.Data)
		out = append(out, env)
		next = Cursor(it.pos.Cursor())
	}
	return out, next, nil
}

// Delete implements Store.
func (s *MemStore) Delete(ctx context.Context, mailbox string, ids [][16]byte) (int, error) {
	if err := s.begin(ctx); err != nil {
		return 0, err
	}
	defer s.mu.Unlock()
	mb := s.mailboxes[mailbox]
	if mb == nil {
		return 0, nil
	}
	drop := make(map[storekit.Position]bool)
	for _, id := range ids {
		if pos, ok := mb.byID[id]; ok {
			drop[pos] = true
		}
	}
	if len(drop) == 0 {
		return 0, nil
	}
	s.removeLocked(mailbox, mb, func(it memItem) bool { return drop[it.pos] })
	return len(drop), nil
}

// removeLocked deletes the items of mb for which del reports true.
func (s *MemStore) removeLocked(mailbox string, mb *memMailbox, del func(memItem) bool) int {
	n := 0
	mb.items = slices.DeleteFunc(mb.items, func(it memItem) bool {
		if !del(it) {
			return false
		}
		delete(mb.byID, it.env.ID)
		mb.bytes -= int64(len(it.env.Data))
		n++
		return true
	})
	if len(mb.items) == 0 {
		delete(s.mailboxes, mailbox)
	}
	return n
}

// PurgeExpired implements Store.
func (s *MemStore) PurgeExpired(ctx context.Context, now time.Time) (int, error) {
	if err := s.begin(ctx); err != nil {
		return 0, err
	}
	defer s.mu.Unlock()
	n := 0
	for mailbox, mb := range s.mailboxes {
		n += s.removeLocked(mailbox, mb, func(it memItem) bool { return !it.env.ExpiresAt.After(now) })
	}
	return n, nil
}

// PutBundle implements Store. It keeps a copy of bundle.
func (s *MemStore) PutBundle(ctx context.Context, mailbox string, bundle []byte) error {
	if err := storekit.CheckMailbox(mailbox); err != nil {
		return err
	}
	if err := s.begin(ctx); err != nil {
		return err
	}
	defer s.mu.Unlock()
	s.bundles[mailbox] = slices.Clone(bundle)
	return nil
}

// GetBundle implements Store. The result is a copy.
func (s *MemStore) GetBundle(ctx context.Context, mailbox string) ([]byte, error) {
	if err := s.begin(ctx); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	b, ok := s.bundles[mailbox]
	if !ok {
		return nil, fmt.Errorf("msg: key bundle: %w", ErrNotFound)
	}
	return slices.Clone(b), nil
}

// Usage implements Store.
func (s *MemStore) Usage(ctx context.Context, mailbox string) (int, int64, error) {
	if err := s.begin(ctx); err != nil {
		return 0, 0, err
	}
	defer s.mu.Unlock()
	mb := s.mailboxes[mailbox]
	if mb == nil {
		return 0, 0, nil
	}
	return len(mb.items), mb.bytes, nil
}

// Notify implements Store: the channel is closed by the next Put that stores an envelope
// in mailbox (a duplicate Put stores nothing and wakes nobody), or by Close.
func (s *MemStore) Notify(ctx context.Context, mailbox string) (<-chan struct{}, func(), error) {
	if err := s.begin(ctx); err != nil {
		return nil, nil, err
	}
	defer s.mu.Unlock()
	ch, cancel := s.hub.Wait(mailbox)
	return ch, cancel, nil
}

// Close implements Store: it drops every mailbox and wakes every Notify waiter. Closing
// twice returns ErrClosed.
func (s *MemStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	s.closed = true
	s.mailboxes, s.bundles = nil, nil
	s.hub.Close()
	return nil
}
