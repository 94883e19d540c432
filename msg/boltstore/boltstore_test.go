package boltstore

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/alknet/alknet/msg"
	"github.com/alknet/alknet/msg/storetest"
)

func open(t *testing.T, path string) *Store {
	t.Helper()
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) msg.Store {
		return open(t, filepath.Join(t.TempDir(), "msg.db"))
	})
}

// TestConformanceSoloPuts runs the suite with every Put in a transaction of its own.
func TestConformanceSoloPuts(t *testing.T) {
	storetest.Run(t, func(t *testing.T) msg.Store {
		s, err := Open(filepath.Join(t.TempDir(), "msg.db"), Options{BatchDelay: -1})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		return s
	})
}

// bbolt is single-process: the shared suite runs with one Store as both handles (the
// suite's second Close answers ErrClosed, which it ignores).
func TestSharedOneHandle(t *testing.T) {
	storetest.RunShared(t, func(t *testing.T) (msg.Store, msg.Store) {
		s := open(t, filepath.Join(t.TempDir(), "msg.db"))
		return s, s
	})
}

func TestFileMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "msg.db")
	s := open(t, path)
	defer s.Close()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Fatalf("file mode %v, want 0600", perm)
	}
}

// TestSecondOpenerGetsErrLocked: the file lock makes a second Open fail after its
// LockTimeout instead of hanging, and Close releases the lock.
func TestSecondOpenerGetsErrLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "msg.db")
	s := open(t, path)
	if s2, err := Open(path, Options{LockTimeout: 10 * time.Millisecond}); !errors.Is(err, ErrLocked) {
		if s2 != nil {
			s2.Close()
		}
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := open(t, path)
	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestReopenKeepsEverything: envelopes, the id index, usage and bundles survive Close and Open.
func TestReopenKeepsEverything(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "msg.db")
	s := open(t, path)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	env := msg.StoredEnvelope{ID: [16]byte{7}, Mailbox: "mb", AcceptedAt: now, ExpiresAt: now.Add(time.Hour), Data: []byte("data")}
	if _, _, err := s.Put(ctx, env, msg.Quota{}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutBundle(ctx, "mb", []byte("bundle")); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, path)
	defer s.Close()
	at, dup, err := s.Put(ctx, env, msg.Quota{})
	if err != nil || !dup || !at.Equal(now) {
		t.Fatalf("Put after reopen = %v, %v, %v; want a duplicate of %v", at, dup, err, now)
	}
	if m, n, err := s.Usage(ctx, "mb"); err != nil || m != 1 || n != 4 {
		t.Fatalf("Usage after reopen = %d, %d, %v", m, n, err)
	}
	if b, err := s.GetBundle(ctx, "mb"); err != nil || string(b) != "bundle" {
		t.Fatalf("GetBundle after reopen = %q, %v", b, err)
	}
	checkConsistent(t, s)
}

// TestPurgeInBatches: a purge larger than one transaction's batch removes everything.
func TestPurgeInBatches(t *testing.T) {
	ctx := t.Context()
	s := open(t, filepath.Join(t.TempDir(), "msg.db"))
	defer s.Close()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const n = purgeBatch*2 + 3
	for i := range n {
		env := msg.StoredEnvelope{Mailbox: []string{"a", "b"}[i%2], AcceptedAt: now, ExpiresAt: now.Add(time.Duration(i)), Data: []byte{1}}
		env.ID[0], env.ID[1] = byte(i), byte(i>>8)
		if _, _, err := s.Put(ctx, env, msg.Quota{}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.PurgeExpired(ctx, now.Add(n))
	if err != nil || got != n {
		t.Fatalf("PurgeExpired = %d, %v; want %d", got, err, n)
	}
	for _, mb := range []string{"a", "b"} {
		if m, b, err := s.Usage(ctx, mb); err != nil || m != 0 || b != 0 {
			t.Fatalf("Usage(%s) = %d, %d, %v", mb, m, b, err)
		}
	}
	checkConsistent(t, s)
}

func TestNotifyCancelReleases(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "msg.db"))
	defer s.Close()
	_, cancel, err := s.Notify(t.Context(), "mb")
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if n := s.hub.Len(); n != 0 {
		t.Fatalf("%d waiters after cancel", n)
	}
}

// checkConsistent verifies bbolt's own page invariants and that the envelope, id, expiry
// and usage buckets agree.
func checkConsistent(t *testing.T, s *Store) {
	t.Helper()
	err := s.db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			return err
		}
		type count struct{ m, b int64 }
		usage := map[string]count{}
		nEnv := 0
		err := tx.Bucket(bucketEnvelopes).ForEach(func(k, v []byte) error {
			nEnv++
			mb := string(k[1 : 1+int(k[0])])
			d, err := decodeEnvelope(v)
			if err != nil {
				return err
			}
			pos := tx.Bucket(bucketIDs).Get(idKey(mb, d.id))
			if string(pos) != string(k[1+int(k[0]):]) {
				return errors.New("id index does not point at its envelope")
			}
			if tx.Bucket(bucketExpiry).Get(expiryKey(d.expiresNs, k)) == nil {
				return errors.New("envelope missing from the expiry index")
			}
			c := usage[mb]
			c.m++
			c.b += int64(len(d.data))
			usage[mb] = c
			return nil
		})
		if err != nil {
			return err
		}
		if n := tx.Bucket(bucketIDs).Stats().KeyN; n != nEnv {
			return errors.New("id index size differs from envelope count")
		}
		if n := tx.Bucket(bucketExpiry).Stats().KeyN; n != nEnv {
			return errors.New("expiry index size differs from envelope count")
		}
		return tx.Bucket(bucketUsage).ForEach(func(k, v []byte) error {
			m, b := decodeUsage(v)
			if c := usage[string(k)]; c.m != m || c.b != b {
				return errors.New("usage counters differ from the envelopes")
			}
			delete(usage, string(k))
			return nil
		})
	})
	if err != nil {
		t.Fatalf("store inconsistent: %v", err)
	}
}
