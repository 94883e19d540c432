package msg

import (
	"context"
	"errors"
	"fmt"
)

// mailboxSizeBounds are the upper bounds of [Totals.MailboxSizes]: envelopes a mailbox
// holds.
var mailboxSizeBounds = [...]int64{1, 10, 100, 1000, 10000}

// MailboxSizeBounds returns the bucket bounds of Totals.MailboxSizes: 1, 10, 100, 1000,
// 10000 envelopes. A new slice each call.
func MailboxSizeBounds() []float64 {
	out := make([]float64, len(mailboxSizeBounds))
	for i, b := range mailboxSizeBounds {
		out[i] = float64(b)
	}
	return out
}

// Totals sums what a store holds, over every mailbox: counts only, no mailbox is named.
type Totals struct {
	// Mailboxes is the number of mailboxes holding at least one envelope.
	Mailboxes int64
	// Envelopes and Bytes are the envelopes held and their stored size.
	Envelopes, Bytes int64
	// MailboxSizes holds, for each bound of MailboxSizeBounds in order, the number of
	// those mailboxes holding at most that many envelopes (cumulative).
	MailboxSizes []uint64
}

// AddMailbox counts a mailbox holding envelopes envelopes of nbytes bytes in t (a
// mailbox with none is not counted). Stores implementing Totaler use it.
func (t *Totals) AddMailbox(envelopes, nbytes int64) {
	if envelopes <= 0 {
		return
	}
	if t.MailboxSizes == nil {
		t.MailboxSizes = make([]uint64, len(mailboxSizeBounds))
	}
	t.Mailboxes++
	t.Envelopes += envelopes
	t.Bytes += nbytes
	for i, b := range mailboxSizeBounds {
		if envelopes <= b {
			t.MailboxSizes[i]++
		}
	}
}

// Totaler is a Store that can sum what it holds, for metrics. MemStore and the Stores
// of boltstore and pgstore implement it; it reads every mailbox's counters, so call it
// at scrape time, not per request.
type Totaler interface {
	Totals(ctx context.Context) (Totals, error)
}

// ErrNoTotals is returned by Server.Totals when the store is no Totaler.
var ErrNoTotals = errors.New("msg: the store does not report totals")

// Totals returns what the server's store holds (see Totaler); an error wrapping
// ErrNoTotals when the store cannot tell.
func (s *Server) Totals(ctx context.Context) (Totals, error) {
	t, ok := s.store.(Totaler)
	if !ok {
		return Totals{}, ErrNoTotals
	}
	tot, err := t.Totals(ctx)
	if err != nil {
		return Totals{}, fmt.Errorf("msg: totals: %w", err)
	}
	if tot.MailboxSizes == nil {
		tot.MailboxSizes = make([]uint64, len(mailboxSizeBounds))
	}
	return tot, nil
}

// Totals implements Totaler.
func (s *MemStore) Totals(ctx context.Context) (Totals, error) {
	if err := s.begin(ctx); err != nil {
		return Totals{}, err
	}
	defer s.mu.Unlock()
	var t Totals
	for _, mb := range s.mailboxes {
		t.AddMailbox(int64(len(mb.items)), mb.bytes)
	}
	return t, nil
}
