package storetest

import (
	"context"
	"testing"

	"github.com/alknet/alknet/msg"
)

// testNotify: a Put wakes the waiters of its mailbox only; a duplicate Put wakes nobody.
// "Not woken" is checked after a later wake-up on another mailbox was seen, so a store that
// delivers notifications asynchronously but in commit order is judged fairly.
func testNotify(t *testing.T, s msg.Store) {
	mbA, mbB := newMailbox(), newMailbox()
	a1, b1 := notify(t, s, mbA), notify(t, s, mbB)
	a1bis := notify(t, s, mbA)
	first := env(mbA, 0, 5)
	put(t, s, first, msg.Quota{})
	waitClosed(t, "waiter on the mailbox put to", a1)
	waitClosed(t, "second waiter on the mailbox put to", a1bis)

	a2 := notify(t, s, mbA)
	if _, dup, err := s.Put(t.Context(), first, msg.Quota{}); err != nil || !dup {
		t.Fatalf("duplicate Put = %v, %v", dup, err)
	}
	put(t, s, env(mbB, 0, 5), msg.Quota{})
	waitClosed(t, "waiter on mailbox B", b1)
	if isClosed(a2) {
		t.Fatalf("a duplicate Put or a Put to another mailbox woke a waiter")
	}
	put(t, s, env(mbA, 1, 5), msg.Quota{})
	waitClosed(t, "waiter on A after a new Put", a2)
}

// testNotifyCancel: cancel may be called any number of times, also after the wake-up, and
// a cancelled waiter does not keep later waiters from being woken.
func testNotifyCancel(t *testing.T, s msg.Store) {
	mb := newMailbox()
	for range 100 {
		_, cancel, err := s.Notify(t.Context(), mb)
		if err != nil {
			t.Fatal(err)
		}
		cancel()
		cancel()
	}
	ch, cancel, err := s.Notify(t.Context(), mb)
	if err != nil {
		t.Fatal(err)
	}
	put(t, s, env(mb, 0, 1), msg.Quota{})
	waitClosed(t, "waiter after 100 cancelled ones", ch)
	cancel()
}

// testContextCancelled: every method refuses a cancelled context with an error wrapping
// context.Canceled, and a refused Put stores nothing.
func testContextCancelled(t *testing.T, s msg.Store) {
	ctx := cancelledContext(t)
	mb := newMailbox()
	e := env(mb, 0, 10)
	if err := s.PutBundle(t.Context(), mb, []byte("b")); err != nil {
		t.Fatal(err)
	}
	put(t, s, e, msg.Quota{})
	check := func(what string, err error) {
		t.Helper()
		errIs(t, what+" with a cancelled context", err, context.Canceled)
	}
	_, _, err := s.Put(ctx, env(mb, 1, 10), msg.Quota{})
	check("Put", err)
	_, _, err = s.List(ctx, mb, "", 10, 0, base)
	check("List", err)
	_, err = s.Delete(ctx, mb, [][16]byte{e.ID})
	check("Delete", err)
	_, err = s.PurgeExpired(ctx, base.AddDate(1, 0, 0))
	check("PurgeExpired", err)
	check("PutBundle", s.PutBundle(ctx, mb, []byte("c")))
	_, err = s.GetBundle(ctx, mb)
	check("GetBundle", err)
	_, _, err = s.Usage(ctx, mb)
	check("Usage", err)
	_, _, err = s.Notify(ctx, mb)
	check("Notify", err)
	usage(t, s, mb, 1, 10)
	got, err := s.GetBundle(t.Context(), mb)
	if err != nil || string(got) != "b" {
		t.Fatalf("bundle after a cancelled PutBundle = %q, %v; want %q", got, err, "b")
	}
}

// testClose: Close wakes pending waiters; afterwards every method, and Close itself,
// returns an error wrapping ErrClosed.
func testClose(t *testing.T, s msg.Store) {
	ctx := t.Context()
	mb := newMailbox()
	put(t, s, env(mb, 0, 1), msg.Quota{})
	ch := notify(t, s, mb)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	waitClosed(t, "waiter at Close", ch)
	check := func(what string, err error) {
		t.Helper()
		errIs(t, what+" after Close", err, msg.ErrClosed)
	}
	_, _, err := s.Put(ctx, env(mb, 1, 1), msg.Quota{})
	check("Put", err)
	_, _, err = s.List(ctx, mb, "", 10, 0, base)
	check("List", err)
	_, err = s.Delete(ctx, mb, nil)
	check("Delete", err)
	_, err = s.PurgeExpired(ctx, base)
	check("PurgeExpired", err)
	check("PutBundle", s.PutBundle(ctx, mb, []byte("b")))
	_, err = s.GetBundle(ctx, mb)
	check("GetBundle", err)
	_, _, err = s.Usage(ctx, mb)
	check("Usage", err)
	_, _, err = s.Notify(ctx, mb)
	check("Notify", err)
	check("second Close", s.Close())
}
