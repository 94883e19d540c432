package storetest

import (
	"bytes"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/alknet/alknet/msg"
)

// testPutListOrder: List orders by AcceptedAt, ties by insertion; every field round-trips;
// the store keeps its own copy of Data.
func testPutListOrder(t *testing.T, s msg.Store) {
	mb, other := newMailbox(), newMailbox()
	e3 := env(mb, 3*time.Second, 10)
	e1 := env(mb, 1*time.Second, 20)
	e2a := env(mb, 2*time.Second, 0)
	e2b := env(mb, 2*time.Second, 30)
	e2c := env(mb, 2*time.Second, 40)
	for _, e := range []msg.StoredEnvelope{e3, e1, e2a, e2b, e2c} {
		put(t, s, e, msg.Quota{})
	}
	put(t, s, env(other, 0, 5), msg.Quota{})
	want := []msg.StoredEnvelope{e1, e2a, e2b, e2c, e3}
	wantData := make([][]byte, len(want))
	for i := range want {
		wantData[i] = slices.Clone(want[i].Data)
	}
	// Scribble over the caller's slices: the store must have kept copies.
	for _, e := range want {
		clear(e.Data)
	}
	for i := range want {
		want[i].Data = wantData[i]
	}
	got, _, err := s.List(t.Context(), mb, "", 100, 0, base)
	if err != nil {
		t.Fatal(err)
	}
	sameEnvelopes(t, "List", got, want)
	if len(got) > 0 {
		clear(got[0].Data) // nor may the caller's result alias the store
		again, _, err := s.List(t.Context(), mb, "", 1, 0, base)
		if err != nil {
			t.Fatal(err)
		}
		sameEnvelopes(t, "List after scribbling on a result", again, want[:1])
	}
	got, _, err = s.List(t.Context(), newMailbox(), "", 100, 0, base)
	if err != nil || len(got) != 0 {
		t.Fatalf("List of an unknown mailbox = %d envelopes, %v; want none", len(got), err)
	}
}

// testPagination: every limit from 1 to N+1 pages through the same order; a cursor at the
// end stays put and later sees envelopes accepted after it.
func testPagination(t *testing.T, s msg.Store) {
	mb := newMailbox()
	const n = 7
	var want []msg.StoredEnvelope
	for i := range n {
		e := env(mb, time.Duration(i/2)*time.Second, i+1) // pairs of ties
		put(t, s, e, msg.Quota{})
		want = append(want, e)
	}
	for limit := 1; limit <= n+1; limit++ {
		got, _ := listAll(t, s, mb, limit, base)
		sameEnvelopes(t, "pages", got, want)
	}
	_, end := listAll(t, s, mb, 3, base)
	late := env(mb, time.Hour, 3)
	put(t, s, late, msg.Quota{})
	got, next, err := s.List(t.Context(), mb, end, 3, 0, base)
	if err != nil {
		t.Fatal(err)
	}
	sameEnvelopes(t, "List after the end cursor", got, []msg.StoredEnvelope{late})
	if next == end {
		t.Fatalf("cursor did not move past the late envelope")
	}
	// A cursor taken mid-way and reused gives the same page again (cursors are positions).
	first, c1, err := s.List(t.Context(), mb, "", 2, 0, base)
	if err != nil {
		t.Fatal(err)
	}
	sameEnvelopes(t, "first page", first, want[:2])
	for range 2 {
		page, _, err := s.List(t.Context(), mb, c1, 2, 0, base)
		if err != nil {
			t.Fatal(err)
		}
		sameEnvelopes(t, "page after a reused cursor", page, want[2:4])
	}
}

// testPaginationSurvivesDelete: deleting the envelope a cursor points at (the owner acks
// the page it just fetched) does not lose or repeat anything.
func testPaginationSurvivesDelete(t *testing.T, s msg.Store) {
	mb := newMailbox()
	var want []msg.StoredEnvelope
	for i := range 6 {
		e := env(mb, time.Duration(i)*time.Millisecond, 8)
		put(t, s, e, msg.Quota{})
		want = append(want, e)
	}
	var got []msg.StoredEnvelope
	var cur msg.Cursor
	for {
		page, next, err := s.List(t.Context(), mb, cur, 2, 0, base)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		got = append(got, page...)
		var ack [][16]byte
		for _, e := range page {
			ack = append(ack, e.ID)
		}
		if n, err := s.Delete(t.Context(), mb, ack); err != nil || n != len(page) {
			t.Fatalf("Delete page = %d, %v; want %d", n, err, len(page))
		}
		cur = next
	}
	sameEnvelopes(t, "pages acked as fetched", got, want)
	usage(t, s, mb, 0, 0)
}

// testInvalidArguments: stores refuse what they cannot store or resume from.
func testInvalidArguments(t *testing.T, s msg.Store) {
	ctx := t.Context()
	mb := newMailbox()
	bad := env("", 0, 1)
	if _, _, err := s.Put(ctx, bad, msg.Quota{}); err == nil {
		t.Errorf("Put with an empty mailbox id succeeded")
	}
	bad = env(mb, 0, 1)
	bad.AcceptedAt = time.Time{}
	if _, _, err := s.Put(ctx, bad, msg.Quota{}); err == nil {
		t.Errorf("Put with a zero AcceptedAt succeeded")
	}
	for _, c := range []msg.Cursor{"x", "!!!!!!!!!!!!!!!!!!!!!!", "AAAAAAAAAAAAAAAAAAAAAAA=", msg.Cursor(bytes.Repeat([]byte("A"), 1<<16))} {
		if _, _, err := s.List(ctx, mb, c, 10, 0, base); !errors.Is(err, msg.ErrInvalidCursor) {
			t.Errorf("List with cursor %.30q: error %v, want one wrapping ErrInvalidCursor", c, err)
		}
	}
	if _, _, err := s.List(ctx, mb, "", 0, 0, base); err == nil {
		t.Errorf("List with limit 0 succeeded")
	}
	usage(t, s, mb, 0, 0)
}

// testDuplicate: a second Put of (mailbox, id) stores nothing and answers the original
// AcceptedAt, even when the mailbox is full; the same id in another mailbox is new.
func testDuplicate(t *testing.T, s msg.Store) {
	ctx := t.Context()
	mb := newMailbox()
	orig := env(mb, time.Second, 10)
	put(t, s, orig, msg.Quota{MaxMessages: 1})
	again := env(mb, time.Hour, 99)
	again.ID = orig.ID
	at, dup, err := s.Put(ctx, again, msg.Quota{MaxMessages: 1, MaxBytes: 10})
	if err != nil || !dup || !at.Equal(orig.AcceptedAt) {
		t.Fatalf("duplicate Put = %v, %v, %v; want %v, true, nil", at, dup, err, orig.AcceptedAt)
	}
	got, _, err := s.List(ctx, mb, "", 10, 0, base)
	if err != nil {
		t.Fatal(err)
	}
	sameEnvelopes(t, "after duplicate Put", got, []msg.StoredEnvelope{orig})
	usage(t, s, mb, 1, 10)

	elsewhere := again
	elsewhere.Mailbox = newMailbox()
	put(t, s, elsewhere, msg.Quota{})
	usage(t, s, mb, 1, 10)
}

// testDelete: Delete counts what it removed, ignores unknown and repeated ids.
func testDelete(t *testing.T, s msg.Store) {
	ctx := t.Context()
	mb := newMailbox()
	e1, e2, e3 := env(mb, 1, 10), env(mb, 2, 20), env(mb, 3, 30)
	for _, e := range []msg.StoredEnvelope{e1, e2, e3} {
		put(t, s, e, msg.Quota{})
	}
	n, err := s.Delete(ctx, mb, [][16]byte{e1.ID, newID(), e3.ID, e1.ID})
	if err != nil || n != 2 {
		t.Fatalf("Delete = %d, %v; want 2, nil", n, err)
	}
	got, _, err := s.List(ctx, mb, "", 10, 0, base)
	if err != nil {
		t.Fatal(err)
	}
	sameEnvelopes(t, "after Delete", got, []msg.StoredEnvelope{e2})
	usage(t, s, mb, 1, 20)
	for _, tc := range []struct {
		what    string
		mailbox string
		ids     [][16]byte
	}{
		{"an already deleted id", mb, [][16]byte{e1.ID}},
		{"another mailbox's id", newMailbox(), [][16]byte{e2.ID}},
		{"no ids", mb, nil},
	} {
		if n, err := s.Delete(ctx, tc.mailbox, tc.ids); err != nil || n != 0 {
			t.Fatalf("Delete of %s = %d, %v; want 0, nil", tc.what, n, err)
		}
	}
	usage(t, s, mb, 1, 20)
	// A deleted id may be delivered again: idempotency covers what is stored.
	put(t, s, e1, msg.Quota{})
	usage(t, s, mb, 2, 30)
}

// testExpiry: List hides envelopes with ExpiresAt <= now; PurgeExpired removes exactly
// those, in every mailbox, and counts them.
func testExpiry(t *testing.T, s msg.Store) {
	ctx := t.Context()
	mb1, mb2 := newMailbox(), newMailbox()
	short1 := env(mb1, 0, 10)
	short1.ExpiresAt = base.Add(time.Minute)
	edge2 := env(mb2, 0, 20)
	edge2.ExpiresAt = base.Add(time.Minute)
	long1 := env(mb1, time.Second, 30)
	long1.ExpiresAt = base.Add(time.Minute + time.Nanosecond)
	for _, e := range []msg.StoredEnvelope{short1, edge2, long1} {
		put(t, s, e, msg.Quota{})
	}
	now := base.Add(time.Minute)
	got, _, err := s.List(ctx, mb1, "", 10, 0, now.Add(-time.Nanosecond))
	if err != nil {
		t.Fatal(err)
	}
	sameEnvelopes(t, "List a nanosecond before expiry", got, []msg.StoredEnvelope{short1, long1})
	got, _, err = s.List(ctx, mb1, "", 10, 0, now)
	if err != nil {
		t.Fatal(err)
	}
	sameEnvelopes(t, "List at expiry", got, []msg.StoredEnvelope{long1})
	got, _ = listAll(t, s, mb1, 1, now)
	sameEnvelopes(t, "pages at expiry", got, []msg.StoredEnvelope{long1})
	usage(t, s, mb1, 2, 40) // expired but not purged still counts

	if n, err := s.PurgeExpired(ctx, now.Add(-time.Nanosecond)); err != nil || n != 0 {
		t.Fatalf("PurgeExpired before expiry = %d, %v; want 0, nil", n, err)
	}
	if n, err := s.PurgeExpired(ctx, now); err != nil || n != 2 {
		t.Fatalf("PurgeExpired = %d, %v; want 2, nil", n, err)
	}
	if n, err := s.PurgeExpired(ctx, now); err != nil || n != 0 {
		t.Fatalf("second PurgeExpired = %d, %v; want 0, nil", n, err)
	}
	usage(t, s, mb1, 1, 30)
	usage(t, s, mb2, 0, 0)
	got, _, err = s.List(ctx, mb1, "", 10, 0, base)
	if err != nil {
		t.Fatal(err)
	}
	sameEnvelopes(t, "List after purge", got, []msg.StoredEnvelope{long1})
	put(t, s, short1, msg.Quota{}) // purged ids are new again
}

// testBundles: GetBundle before any PutBundle is ErrNotFound; PutBundle overwrites;
// mailboxes are separate; the store keeps its own copy.
func testBundles(t *testing.T, s msg.Store) {
	ctx := t.Context()
	mb1, mb2 := newMailbox(), newMailbox()
	if _, err := s.GetBundle(ctx, mb1); !errors.Is(err, msg.ErrNotFound) {
		t.Fatalf("GetBundle of a new mailbox: %v, want ErrNotFound", err)
	}
	b1 := []byte("bundle one")
	if err := s.PutBundle(ctx, mb1, b1); err != nil {
		t.Fatal(err)
	}
	clear(b1)
	got, err := s.GetBundle(ctx, mb1)
	if err != nil || string(got) != "bundle one" {
		t.Fatalf("GetBundle = %q, %v; want %q", got, err, "bundle one")
	}
	if err := s.PutBundle(ctx, mb1, []byte("bundle two, longer")); err != nil {
		t.Fatal(err)
	}
	got, err = s.GetBundle(ctx, mb1)
	if err != nil || string(got) != "bundle two, longer" {
		t.Fatalf("GetBundle after overwrite = %q, %v", got, err)
	}
	if _, err := s.GetBundle(ctx, mb2); !errors.Is(err, msg.ErrNotFound) {
		t.Fatalf("GetBundle of another mailbox: %v, want ErrNotFound", err)
	}
	usage(t, s, mb1, 0, 0) // bundles are not messages
}

// testUsage: Usage counts messages and Data bytes per mailbox.
func testUsage(t *testing.T, s msg.Store) {
	mb1, mb2 := newMailbox(), newMailbox()
	usage(t, s, mb1, 0, 0)
	put(t, s, env(mb1, 0, 100), msg.Quota{})
	put(t, s, env(mb1, 0, 0), msg.Quota{})
	put(t, s, env(mb1, 0, 1), msg.Quota{})
	put(t, s, env(mb2, 0, 7), msg.Quota{})
	usage(t, s, mb1, 3, 101)
	usage(t, s, mb2, 1, 7)
}
