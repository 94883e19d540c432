package pgstore

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/alknet/alknet/msg"
)

// TestMixedLoadAcrossNodes runs Put, Delete and PurgeExpired concurrently through two
// Stores on a few mailboxes: no call fails (a lock-order deadlock would surface as an
// error), no quota is passed, and the usage counters equal the envelopes afterwards.
func TestMixedLoadAcrossNodes(t *testing.T) {
	dsn := testDSN(t)
	schema := newSchema(t, dsn)
	stores := []*Store{openStore(t, dsn, schema), openStore(t, dsn, schema)}
	mailboxes := []string{"mb-0", "mb-1", "mb-2"}
	q := msg.Quota{MaxMessages: 20, MaxBytes: 2000}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for w := range 6 {
		s := stores[w%2]
		wg.Go(func() {
			for i := range 60 {
				mb := mailboxes[(w+i)%len(mailboxes)]
				var id [16]byte
				copy(id[:], fmt.Sprintf("w%02di%03d", w, i))
				env := msg.StoredEnvelope{ID: id, Mailbox: mb, AcceptedAt: now.Add(time.Duration(i)),
					ExpiresAt: now.Add(time.Duration(i%5) * time.Second), Data: make([]byte, 10+i%50)}
				var err error
				switch i % 4 {
				case 0, 1:
					_, _, err = s.Put(t.Context(), env, q)
					if err != nil && isQuota(err) {
						err = nil
					}
				case 2:
					var prev [16]byte
					copy(prev[:], fmt.Sprintf("w%02di%03d", w, i-2))
					_, err = s.Delete(t.Context(), mb, [][16]byte{prev, id})
				case 3:
					_, err = s.PurgeExpired(t.Context(), now.Add(time.Duration(i%5)*time.Second))
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent call failed: %v", err)
	}
	for _, mb := range mailboxes {
		m, b, err := stores[0].Usage(t.Context(), mb)
		if err != nil {
			t.Fatal(err)
		}
		if m > q.MaxMessages || b > q.MaxBytes {
			t.Errorf("%s holds %d messages, %d bytes: past the quota", mb, m, b)
		}
	}
	checkConsistent(t, stores[1])
}

// checkConsistent verifies that msg_usage equals the envelopes it counts.
func checkConsistent(t *testing.T, s *Store) {
	t.Helper()
	var bad int
	err := s.pool.QueryRow(t.Context(), `SELECT count(*) FROM (
		SELECT mailbox, count(*) AS m, sum(octet_length(data))::bigint AS b FROM msg_envelopes GROUP BY mailbox) e
		FULL JOIN msg_usage u USING (mailbox)
		WHERE coalesce(e.m, 0) <> coalesce(u.messages, 0) OR coalesce(e.b, 0) <> coalesce(u.bytes, 0)`).Scan(&bad)
	if err != nil {
		t.Fatal(err)
	}
	if bad != 0 {
		t.Fatalf("%d mailboxes whose usage counters differ from their envelopes", bad)
	}
}

func isQuota(err error) bool { return errors.Is(err, msg.ErrQuotaExceeded) }
