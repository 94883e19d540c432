// Package storetest is the conformance suite every msg.Store backend passes: ordering and
// pagination (with List's byte budget at its edges), idempotent Put, quotas at their edges and under concurrent Puts, Delete,
// expiry and PurgeExpired, key bundles, Usage, Totals (for a msg.Totaler), Notify, context cancellation and Close.
//
// A backend's test calls Run with a function that opens a fresh, empty store; a backend
// whose stores can share one backing store (several nodes on one database) also calls
// RunShared. The suite synchronises only on the stores' own answers and channels, never on
// sleeps; each wait has a 60 s fail-safe that turns a hang into a failure.
package storetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/alknet/alknet/msg"
)

// failSafe bounds every wait for a store's channel: it only turns a hang into a failure.
const failSafe = 60 * time.Second

// base is the suite's clock origin; the nanoseconds check that stores keep full precision.
var base = time.Date(2026, 3, 4, 5, 6, 7, 123456789, time.UTC)

// Run runs the conformance suite. Each subtest calls open for a fresh, empty store and
// closes it when done (open may register t.Cleanup for anything else, such as removing
// files or dropping a schema; those run after the store is closed).
func Run(t *testing.T, open func(t *testing.T) msg.Store) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, s msg.Store)
	}{
		{"PutListOrder", testPutListOrder},
		{"Pagination", testPagination},
		{"PaginationSurvivesDelete", testPaginationSurvivesDelete},
		{"ListByteBudget", testListByteBudget},
		{"InvalidArguments", testInvalidArguments},
		{"Duplicate", testDuplicate},
		{"QuotaMessagesEdge", testQuotaMessagesEdge},
		{"QuotaBytesEdge", testQuotaBytesEdge},
		{"QuotaConcurrentMessages", testQuotaConcurrentMessages},
		{"QuotaConcurrentBytes", testQuotaConcurrentBytes},
		{"Delete", testDelete},
		{"Expiry", testExpiry},
		{"Bundles", testBundles},
		{"Usage", testUsage},
		{"Totals", testTotals},
		{"Notify", testNotify},
		{"NotifyCancel", testNotifyCancel},
		{"ContextCancelled", testContextCancelled},
		{"Close", testClose},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := open(t)
			t.Cleanup(func() { _ = s.Close() })
			tc.fn(t, s)
		})
	}
}

// RunShared runs the tests of several handles on one backing store: open returns two
// Stores that share it (for example two nodes' pools on one database), both fresh and
// empty. Both are closed when each subtest ends.
func RunShared(t *testing.T, open func(t *testing.T) (a, b msg.Store)) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, a, b msg.Store)
	}{
		{"ListSeesOtherPut", testSharedList},
		{"NotifyAcrossHandles", testSharedNotify},
		{"DuplicateAcrossHandles", testSharedDuplicate},
		{"QuotaAcrossHandles", testSharedQuota},
		{"DeleteAndPurgeAcrossHandles", testSharedDelete},
		{"BundleAcrossHandles", testSharedBundle},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a, b := open(t)
			t.Cleanup(func() { _ = a.Close(); _ = b.Close() })
			tc.fn(t, a, b)
		})
	}
}

// newMailbox returns a random 52-character mailbox id, so tests never collide even on a
// shared database.
func newMailbox() string { return rand.Text() + rand.Text() }

// newID returns a random envelope id.
func newID() [16]byte {
	var id [16]byte
	_, _ = rand.Read(id[:])
	return id
}

// env builds an envelope accepted at base+at, expiring a week later, with size bytes of data.
func env(mailbox string, at time.Duration, size int) msg.StoredEnvelope {
	data := make([]byte, size)
	_, _ = rand.Read(data)
	return msg.StoredEnvelope{
		ID:         newID(),
		Mailbox:    mailbox,
		AcceptedAt: base.Add(at),
		ExpiresAt:  base.Add(at + 7*24*time.Hour),
		Data:       data,
	}
}

// put stores e under q and fails the test on any error or a duplicate answer.
func put(t *testing.T, s msg.Store, e msg.StoredEnvelope, q msg.Quota) {
	t.Helper()
	at, dup, err := s.Put(t.Context(), e, q)
	if err != nil {
		t.Fatalf("Put %x: %v", e.ID[:4], err)
	}
	if dup {
		t.Fatalf("Put %x: reported duplicate for a new id", e.ID[:4])
	}
	if !at.Equal(e.AcceptedAt) {
		t.Fatalf("Put %x: acceptedAt %v, want %v", e.ID[:4], at, e.AcceptedAt)
	}
}

// listAll pages through mailbox with limit and returns every envelope and the last cursor.
func listAll(t *testing.T, s msg.Store, mailbox string, limit int, now time.Time) ([]msg.StoredEnvelope, msg.Cursor) {
	t.Helper()
	var all []msg.StoredEnvelope
	var cur msg.Cursor
	for range 10000 {
		page, next, err := s.List(t.Context(), mailbox, cur, limit, 0, now)
		if err != nil {
			t.Fatalf("List(limit %d, after %q): %v", limit, cur, err)
		}
		if len(page) > limit {
			t.Fatalf("List(limit %d) returned %d envelopes", limit, len(page))
		}
		if len(page) == 0 {
			if next != cur {
				t.Fatalf("List(limit %d) at the end moved the cursor from %q to %q", limit, cur, next)
			}
			return all, cur
		}
		all = append(all, page...)
		cur = next
	}
	t.Fatalf("List(limit %d) never reached the end", limit)
	return nil, ""
}

// sameEnvelopes fails unless got equals want in order, field by field.
func sameEnvelopes(t *testing.T, what string, got, want []msg.StoredEnvelope) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d envelopes, want %d (got %s, want %s)", what, len(got), len(want), ids(got), ids(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.ID != w.ID || g.Mailbox != w.Mailbox || !g.AcceptedAt.Equal(w.AcceptedAt) ||
			!g.ExpiresAt.Equal(w.ExpiresAt) || !bytes.Equal(g.Data, w.Data) {
			t.Fatalf("%s: envelope %d is {%x %s %v %v %d bytes}, want {%x %s %v %v %d bytes} (got %s, want %s)",
				what, i, g.ID[:4], g.Mailbox, g.AcceptedAt, g.ExpiresAt, len(g.Data),
				w.ID[:4], w.Mailbox, w.AcceptedAt, w.ExpiresAt, len(w.Data), ids(got), ids(want))
		}
	}
}

func ids(envs []msg.StoredEnvelope) string {
	var b bytes.Buffer
	b.WriteByte('[')
	for i, e := range envs {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%x", e.ID[:4])
	}
	b.WriteByte(']')
	return b.String()
}

// usage fails unless mailbox holds messages envelopes of total size nbytes.
func usage(t *testing.T, s msg.Store, mailbox string, messages int, nbytes int64) {
	t.Helper()
	m, b, err := s.Usage(t.Context(), mailbox)
	if err != nil {
		t.Fatalf("Usage: %v", err)
	}
	if m != messages || b != nbytes {
		t.Fatalf("Usage = %d messages, %d bytes; want %d, %d", m, b, messages, nbytes)
	}
}

// waitClosed waits for ch to close, failing after the fail-safe.
func waitClosed(t *testing.T, what string, ch <-chan struct{}) {
	t.Helper()
	timer := time.NewTimer(failSafe)
	defer timer.Stop()
	select {
	case <-ch:
	case <-timer.C:
		t.Fatalf("%s: Notify channel not closed within %v", what, failSafe)
	}
}

// isClosed reports whether ch is closed now.
func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// notify registers a waiter and releases it when the test ends.
func notify(t *testing.T, s msg.Store, mailbox string) <-chan struct{} {
	t.Helper()
	ch, cancel, err := s.Notify(t.Context(), mailbox)
	if err != nil {
		t.Fatalf("Notify: %v", err)
	}
	t.Cleanup(cancel)
	return ch
}

// errIs fails unless err wraps target.
func errIs(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: error %v, want one wrapping %v", what, err, target)
	}
}

// cancelledContext returns a context that is already cancelled.
func cancelledContext(t *testing.T) context.Context {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	return ctx
}
