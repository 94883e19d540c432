package msg

import "testing"

// TestMemStoreNotifyCancelReleases checks what the conformance suite cannot see: cancel
// forgets the waiter, and a wake-up forgets the woken ones.
func TestMemStoreNotifyCancelReleases(t *testing.T) {
	s := NewMemStore()
	defer s.Close()
	_, cancel, err := s.Notify(t.Context(), "mailbox")
	if err != nil {
		t.Fatal(err)
	}
	_, cancel2, err := s.Notify(t.Context(), "mailbox")
	if err != nil {
		t.Fatal(err)
	}
	if n := s.hub.Len(); n != 2 {
		t.Fatalf("%d waiters registered, want 2", n)
	}
	cancel()
	cancel()
	if n := s.hub.Len(); n != 1 {
		t.Fatalf("%d waiters after cancel, want 1", n)
	}
	s.hub.Wake("mailbox")
	if n := s.hub.Len(); n != 0 {
		t.Fatalf("%d waiters after a wake-up, want 0", n)
	}
	cancel2() // after the wake-up: harmless
}
