package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/alknet/alknet/msg"
)

// testSharedList: what one handle accepts, the other lists, pages and counts.
func testSharedList(t *testing.T, a, b msg.Store) {
	mb := newMailbox()
	var want []msg.StoredEnvelope
	for i := range 5 {
		e := env(mb, time.Duration(i)*time.Millisecond, 10)
		put(t, []msg.Store{a, b}[i%2], e, msg.Quota{})
		want = append(want, e)
	}
	for _, s := range []msg.Store{a, b} {
		got, _ := listAll(t, s, mb, 2, base)
		sameEnvelopes(t, "List through either handle", got, want)
		usage(t, s, mb, 5, 50)
	}
}

// testSharedNotify: a Put through one handle wakes waiters registered on the other, for
// that mailbox only.
func testSharedNotify(t *testing.T, a, b msg.Store) {
	mbA, mbB := newMailbox(), newMailbox()
	onB := notify(t, b, mbA)
	otherOnB := notify(t, b, mbB)
	onA := notify(t, a, mbA)
	put(t, a, env(mbA, 0, 3), msg.Quota{})
	waitClosed(t, "waiter on the other handle", onB)
	waitClosed(t, "waiter on the same handle", onA)
	lastOnB := notify(t, b, mbB)
	put(t, b, env(mbB, 0, 3), msg.Quota{})
	waitClosed(t, "waiter for B on the putting handle", lastOnB)
	waitClosed(t, "earlier waiter for B", otherOnB)

	// Other direction, and a later wake-up as the ordering point for "not woken".
	onA2 := notify(t, a, mbA)
	onAforB := notify(t, a, mbB)
	put(t, b, env(mbB, 1, 3), msg.Quota{})
	waitClosed(t, "waiter on A for a Put through B", onAforB)
	if isClosed(onA2) {
		t.Fatalf("a Put to another mailbox woke a waiter")
	}
}

// testSharedDuplicate: idempotency holds across handles.
func testSharedDuplicate(t *testing.T, a, b msg.Store) {
	mb := newMailbox()
	e := env(mb, time.Second, 10)
	put(t, a, e, msg.Quota{})
	again := e
	again.AcceptedAt = base.Add(time.Hour)
	at, dup, err := b.Put(t.Context(), again, msg.Quota{})
	if err != nil || !dup || !at.Equal(e.AcceptedAt) {
		t.Fatalf("duplicate Put on the other handle = %v, %v, %v; want %v, true, nil", at, dup, err, e.AcceptedAt)
	}
	usage(t, b, mb, 1, 10)
}

// testSharedQuota: 50 simultaneous Puts split over two handles never pass the quota.
func testSharedQuota(t *testing.T, a, b msg.Store) {
	mb := newMailbox()
	if n := concurrentPuts(t, []msg.Store{a, b}, mb, 50, 10, msg.Quota{MaxMessages: 10}); n != 10 {
		t.Fatalf("%d of 50 concurrent Puts over two handles accepted under MaxMessages 10", n)
	}
	mb2 := newMailbox()
	if n := concurrentPuts(t, []msg.Store{a, b}, mb2, 50, 10, msg.Quota{MaxBytes: 75}); n != 7 {
		t.Fatalf("%d of 50 concurrent Puts over two handles accepted under MaxBytes 75", n)
	}
	usage(t, a, mb, 10, 100)
	usage(t, b, mb2, 7, 70)
}

// testSharedDelete: Delete and PurgeExpired through one handle show through the other.
func testSharedDelete(t *testing.T, a, b msg.Store) {
	ctx := t.Context()
	mb := newMailbox()
	keep, drop, expire := env(mb, 1, 10), env(mb, 2, 20), env(mb, 3, 30)
	expire.ExpiresAt = base.Add(time.Minute)
	for _, e := range []msg.StoredEnvelope{keep, drop, expire} {
		put(t, a, e, msg.Quota{})
	}
	if n, err := b.Delete(ctx, mb, [][16]byte{drop.ID}); err != nil || n != 1 {
		t.Fatalf("Delete through B = %d, %v", n, err)
	}
	if n, err := b.PurgeExpired(ctx, base.Add(time.Minute)); err != nil || n != 1 {
		t.Fatalf("PurgeExpired through B = %d, %v", n, err)
	}
	got, _, err := a.List(ctx, mb, "", 10, 0, base)
	if err != nil {
		t.Fatal(err)
	}
	sameEnvelopes(t, "List through A", got, []msg.StoredEnvelope{keep})
	usage(t, a, mb, 1, 10)
}

// testSharedBundle: a bundle put through one handle is read through the other.
func testSharedBundle(t *testing.T, a, b msg.Store) {
	mb := newMailbox()
	if _, err := b.GetBundle(t.Context(), mb); !errors.Is(err, msg.ErrNotFound) {
		t.Fatalf("GetBundle: %v, want ErrNotFound", err)
	}
	if err := a.PutBundle(t.Context(), mb, []byte("bundle")); err != nil {
		t.Fatal(err)
	}
	got, err := b.GetBundle(t.Context(), mb)
	if err != nil || string(got) != "bundle" {
		t.Fatalf("GetBundle through B = %q, %v", got, err)
	}
}
