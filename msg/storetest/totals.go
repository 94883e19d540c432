package storetest

import (
	"slices"
	"testing"
	"time"

	"github.com/alknet/alknet/msg"
)

// testTotals: a store that is a msg.Totaler sums its mailboxes (empty ones not
// counted) and buckets them by envelopes held; others skip.
func testTotals(t *testing.T, s msg.Store) {
	tot, ok := s.(msg.Totaler)
	if !ok {
		t.Skip("the store is no msg.Totaler")
	}
	get := func() msg.Totals {
		t.Helper()
		got, err := tot.Totals(t.Context())
		if err != nil {
			t.Fatalf("Totals: %v", err)
		}
		return got
	}
	if got := get(); got.Mailboxes != 0 || got.Envelopes != 0 || got.Bytes != 0 {
		t.Fatalf("empty store: %+v", got)
	}
	big, small := newMailbox(), newMailbox()
	for i := range 12 {
		put(t, s, env(big, time.Duration(i), 10), msg.Quota{})
	}
	one := env(small, 0, 5)
	put(t, s, one, msg.Quota{})
	got := get()
	if got.Mailboxes != 2 || got.Envelopes != 13 || got.Bytes != 125 {
		t.Fatalf("totals = %+v, want 2 mailboxes, 13 envelopes, 125 bytes", got)
	}
	// Bounds 1, 10, 100, 1000, 10000: small (1) is in every bucket, big (12) from 100.
	if want := []uint64{1, 1, 2, 2, 2}; !slices.Equal(got.MailboxSizes, want) {
		t.Fatalf("mailbox sizes = %v, want %v (bounds %v)", got.MailboxSizes, want, msg.MailboxSizeBounds())
	}
	if n, err := s.Delete(t.Context(), small, [][16]byte{one.ID}); err != nil || n != 1 {
		t.Fatalf("Delete: %d, %v", n, err)
	}
	if got := get(); got.Mailboxes != 1 || got.Envelopes != 12 || got.Bytes != 120 {
		t.Fatalf("after emptying a mailbox: %+v", got)
	}
}
