package core_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alknet/alknet/core"
)

func TestAuthAttemptsEdges(t *testing.T) {
	for _, max := range []int{1, 5} {
		a := core.NewAuthAttempts(max)
		for i := 1; i <= max; i++ {
			if err := a.Allow(); err != nil {
				t.Fatalf("max %d: attempt %d refused: %v", max, i, err)
			}
			if exhausted := a.Fail(); exhausted != (i == max) {
				t.Fatalf("max %d: failure %d exhausted=%v", max, i, exhausted)
			}
		}
		err := a.Allow()
		if !errors.Is(err, core.ErrTooManyAuthAttempts) {
			t.Fatalf("max %d: attempt %d allowed: %v", max, max+1, err)
		}
		if a.Failed() != max {
			t.Fatalf("failed = %d", a.Failed())
		}
	}
	if a := core.NewAuthAttempts(0); func() int {
		n := 0
		for a.Allow() == nil {
			a.Fail()
			n++
		}
		return n
	}() != core.DefaultMaxAuthAttempts {
		t.Fatal("0 is not the default")
	}
	unlimited := core.NewAuthAttempts(-1)
	for range 100 {
		unlimited.Fail()
	}
	if err := unlimited.Allow(); err != nil {
		t.Fatalf("negative max limited: %v", err)
	}
}

func TestDynamicStoreChanged(t *testing.T) {
	var zero core.DynamicStore
	ch := zero.Changed()
	if err := zero.Reload(core.DynamicConfig{}); err != nil {
		t.Fatal(err)
	}
	<-ch // a zero store's first reload closes what Changed returned
	s, err := core.NewDynamicStore(core.DynamicConfig{})
	if err != nil {
		t.Fatal(err)
	}
	ch = s.Changed()
	select {
	case <-ch:
		t.Fatal("closed before any reload")
	default:
	}
	bad := core.DynamicConfig{Limits: core.Limits{HandshakeTimeout: -1}}
	if s.Reload(bad) == nil {
		t.Fatal("invalid config accepted")
	}
	select {
	case <-ch:
		t.Fatal("a rejected reload closed the channel")
	default:
	}
	if err := s.Reload(core.DynamicConfig{}); err != nil {
		t.Fatal(err)
	}
	<-ch
	if s.Changed() == ch {
		t.Fatal("Changed returned the closed channel again")
	}
}

func TestWatchRevocation(t *testing.T) {
	store, err := core.NewDynamicStore(core.DynamicConfig{})
	if err != nil {
		t.Fatal(err)
	}
	idp := core.NewConfigIdentityProvider(store, nil)
	var allowed atomic.Bool
	allowed.Store(true)
	checks := make(chan struct{}, 4)
	revoked := make(chan struct{})
	stop := core.WatchRevocation(context.Background(), idp, func() bool {
		ok := allowed.Load() // before telling the test, which then changes it
		checks <- struct{}{}
		return ok
	}, func() { close(revoked) })
	defer stop()
	if err := store.Reload(core.DynamicConfig{}); err != nil {
		t.Fatal(err)
	}
	<-checks // still allowed: the watch goes on
	allowed.Store(false)
	if err := store.Reload(core.DynamicConfig{}); err != nil {
		t.Fatal(err)
	}
	<-checks
	select {
	case <-revoked:
	case <-time.After(10 * time.Second):
		t.Fatal("revoke not called")
	}

	// A provider that cannot notify: nothing runs; a cancelled ctx ends the watch.
	stop2 := core.WatchRevocation(context.Background(), core.NewInMemoryIdentityStore(), func() bool { return false }, func() { t.Error("revoked without notifier") })
	stop2()
	ctx, cancel := context.WithCancel(context.Background())
	stop3 := core.WatchRevocation(ctx, idp, func() bool { return true }, func() {})
	cancel()
	stop3()
}
