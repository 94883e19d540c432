package storetest

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/alknet/alknet/msg"
)

// testQuotaMessagesEdge: the count cap admits exactly MaxMessages envelopes.
func testQuotaMessagesEdge(t *testing.T, s msg.Store) {
	ctx := t.Context()
	mb := newMailbox()
	q := msg.Quota{MaxMessages: 3, MaxBytes: 1 << 20}
	for i := range 3 {
		put(t, s, env(mb, time.Duration(i), 10), q)
	}
	over := env(mb, 10, 10)
	if _, _, err := s.Put(ctx, over, q); !errors.Is(err, msg.ErrQuotaExceeded) {
		t.Fatalf("Put past MaxMessages: %v, want ErrQuotaExceeded", err)
	}
	usage(t, s, mb, 3, 30)
	got, _, err := s.List(ctx, mb, "", 10, 0, base)
	if err != nil || len(got) != 3 {
		t.Fatalf("List after refusal = %d envelopes, %v; want 3", len(got), err)
	}
	// Another mailbox has its own count.
	put(t, s, env(newMailbox(), 0, 10), q)
	// Freeing one slot admits one more.
	if n, err := s.Delete(ctx, mb, [][16]byte{got[0].ID}); err != nil || n != 1 {
		t.Fatalf("Delete = %d, %v", n, err)
	}
	put(t, s, over, q)
	usage(t, s, mb, 3, 30)
}

// testQuotaBytesEdge: the byte cap admits an envelope that reaches it exactly and refuses
// one byte more.
func testQuotaBytesEdge(t *testing.T, s msg.Store) {
	ctx := t.Context()
	mb := newMailbox()
	q := msg.Quota{MaxMessages: 100, MaxBytes: 100}
	put(t, s, env(mb, 0, 60), q)
	if _, _, err := s.Put(ctx, env(mb, 1, 41), q); !errors.Is(err, msg.ErrQuotaExceeded) {
		t.Fatalf("Put one byte past MaxBytes: %v, want ErrQuotaExceeded", err)
	}
	usage(t, s, mb, 1, 60)
	put(t, s, env(mb, 2, 40), q) // exactly at the cap
	usage(t, s, mb, 2, 100)
	if _, _, err := s.Put(ctx, env(mb, 3, 1), q); !errors.Is(err, msg.ErrQuotaExceeded) {
		t.Fatalf("Put of 1 byte into a full mailbox: %v, want ErrQuotaExceeded", err)
	}
	if _, _, err := s.Put(ctx, env(newMailbox(), 0, 101), q); !errors.Is(err, msg.ErrQuotaExceeded) {
		t.Fatalf("Put of an envelope larger than MaxBytes: %v, want ErrQuotaExceeded", err)
	}
	usage(t, s, mb, 2, 100)
}

// concurrentPuts runs workers goroutines that each Put one distinct envelope of size bytes
// into mailbox under q, alternating between the stores, released together. It returns how
// many were accepted and fails on any error other than ErrQuotaExceeded.
func concurrentPuts(t *testing.T, stores []msg.Store, mailbox string, workers, size int, q msg.Quota) int {
	t.Helper()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		accepted int
		errs     []error
	)
	start := make(chan struct{})
	for i := range workers {
		s := stores[i%len(stores)]
		e := env(mailbox, time.Duration(i), size)
		wg.Go(func() {
			<-start
			_, dup, err := s.Put(t.Context(), e, q)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil && !dup:
				accepted++
			case err == nil:
				errs = append(errs, errors.New("new id reported as duplicate"))
			case !errors.Is(err, msg.ErrQuotaExceeded):
				errs = append(errs, err)
			}
		})
	}
	close(start)
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("%d concurrent Puts failed, first: %v", len(errs), errs[0])
	}
	return accepted
}

// testQuotaConcurrentMessages: 50 simultaneous Puts into a 10-message mailbox store
// exactly 10.
func testQuotaConcurrentMessages(t *testing.T, s msg.Store) {
	mb := newMailbox()
	if n := concurrentPuts(t, []msg.Store{s}, mb, 50, 8, msg.Quota{MaxMessages: 10}); n != 10 {
		t.Fatalf("%d of 50 concurrent Puts accepted under MaxMessages 10", n)
	}
	usage(t, s, mb, 10, 80)
}

// testQuotaConcurrentBytes: 50 simultaneous 10-byte Puts under a 105-byte cap store
// exactly 10.
func testQuotaConcurrentBytes(t *testing.T, s msg.Store) {
	mb := newMailbox()
	if n := concurrentPuts(t, []msg.Store{s}, mb, 50, 10, msg.Quota{MaxBytes: 105}); n != 10 {
		t.Fatalf("%d of 50 concurrent Puts accepted under MaxBytes 105", n)
	}
	usage(t, s, mb, 10, 100)
}
