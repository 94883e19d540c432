package pgstore

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/alknet/alknet/msg"
	"github.com/alknet/alknet/msg/storetest"
)

func TestConformance(t *testing.T) {
	dsn := testDSN(t)
	storetest.Run(t, func(t *testing.T) msg.Store {
		return openStore(t, dsn, newSchema(t, dsn))
	})
}

// TestShared runs the two-node tests: two Stores, each with its own pool and LISTEN
// connection, on one schema.
func TestShared(t *testing.T) {
	dsn := testDSN(t)
	storetest.RunShared(t, func(t *testing.T) (msg.Store, msg.Store) {
		schema := newSchema(t, dsn)
		return openStore(t, dsn, schema), openStore(t, dsn, schema)
	})
}

// TestConcurrentMigration: nodes starting together on an empty schema all succeed.
func TestConcurrentMigration(t *testing.T) {
	dsn := testDSN(t)
	schema := newSchema(t, dsn)
	var wg sync.WaitGroup
	errs := make([]error, 6)
	start := make(chan struct{})
	for i := range errs {
		wg.Go(func() {
			<-start
			s, err := Open(t.Context(), dsn, Options{Schema: schema, MaxConns: 2})
			if err == nil {
				err = s.Close()
			}
			errs[i] = err
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Open %d: %v", i, err)
		}
	}
	// And again on the migrated schema.
	s := openStore(t, dsn, schema)
	if _, _, err := s.Usage(t.Context(), "mb"); err != nil {
		t.Fatal(err)
	}
}

// TestNotifySurvivesListenerLoss: when the LISTEN connection is terminated by the server,
// waiters are woken (a notification may have been lost) and later Puts wake new waiters.
func TestNotifySurvivesListenerLoss(t *testing.T) {
	dsn := testDSN(t)
	s := openStore(t, dsn, newSchema(t, dsn))
	ctx := t.Context()
	ch, cancel, err := s.Notify(ctx, "mb")
	if err != nil {
		t.Fatal(err)
	}
	defer cancel()
	admin, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	var killed int
	err = admin.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE query LIKE 'LISTEN %' AND query LIKE '%`+s.channel+`%'`).Scan(&killed)
	if err != nil || killed != 1 {
		t.Fatalf("terminated %d LISTEN backends, %v; want 1", killed, err)
	}
	wait(t, "waiter after the listener was lost", ch)
	// The listener is back (WakeAll runs after LISTEN): a Put wakes a new waiter.
	ch2, cancel2, err := s.Notify(ctx, "mb")
	if err != nil {
		t.Fatal(err)
	}
	defer cancel2()
	now := time.Now()
	env := msg.StoredEnvelope{ID: [16]byte{1}, Mailbox: "mb", AcceptedAt: now, ExpiresAt: now.Add(time.Hour)}
	if _, _, err := s.Put(ctx, env, msg.Quota{}); err != nil {
		t.Fatal(err)
	}
	wait(t, "waiter after reconnect", ch2)
}

func TestNotifyCancelReleases(t *testing.T) {
	dsn := testDSN(t)
	s := openStore(t, dsn, newSchema(t, dsn))
	_, cancel, err := s.Notify(t.Context(), "mb")
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if n := s.hub.Len(); n != 0 {
		t.Fatalf("%d waiters after cancel", n)
	}
}

func TestOpenErrors(t *testing.T) {
	if _, err := Open(t.Context(), "host=/nonexistent-dir port=1 user=x connect_timeout=5", Options{}); err == nil {
		t.Fatal("Open of an unreachable server succeeded")
	}
	if _, err := Open(t.Context(), "not a dsn ===", Options{}); err == nil {
		t.Fatal("Open of a malformed DSN succeeded")
	}
	dsn := testDSN(t)
	if _, err := Open(t.Context(), dsn, Options{Schema: string(make([]byte, 64))}); err == nil {
		t.Fatal("Open with an over-long schema name succeeded")
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := Open(ctx, dsn, Options{Schema: newSchema(t, dsn)}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Open with a cancelled context: %v", err)
	}
}

func wait(t *testing.T, what string, ch <-chan struct{}) {
	t.Helper()
	timer := time.NewTimer(60 * time.Second)
	defer timer.Stop()
	select {
	case <-ch:
	case <-timer.C:
		t.Fatalf("%s: not woken within 60 s", what)
	}
}
