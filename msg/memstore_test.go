package msg_test

import (
	"context"
	"fmt"
	"time"

	"testing"

	"github.com/alknet/alknet/msg"
	"github.com/alknet/alknet/msg/storetest"
)

func TestMemStoreConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) msg.Store { return msg.NewMemStore() })
}

// Two handles on one MemStore are the same store: the shared suite holds trivially, which
// keeps the suite itself honest without a database.
func TestMemStoreShared(t *testing.T) {
	storetest.RunShared(t, func(t *testing.T) (msg.Store, msg.Store) {
		s := msg.NewMemStore()
		return s, s
	})
}

// A MemStore keeps mailboxes in memory; Put is idempotent on (mailbox, id).
func ExampleMemStore() {
	ctx := context.Background()
	s := msg.NewMemStore()
	defer s.Close()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	env := msg.StoredEnvelope{
		ID: [16]byte{1}, Mailbox: "mailbox", AcceptedAt: now, ExpiresAt: now.Add(time.Hour),
		Data: []byte(`{"v":1}`),
	}
	quota := msg.Quota{MaxMessages: 100, MaxBytes: 1 << 20}
	_, dup, _ := s.Put(ctx, env, quota)
	fmt.Println("first put duplicate:", dup)
	_, dup, _ = s.Put(ctx, env, quota)
	fmt.Println("second put duplicate:", dup)
	envs, _, _ := s.List(ctx, "mailbox", "", 10, 0, now)
	fmt.Println("listed:", len(envs), string(envs[0].Data))
	// Output:
	// first put duplicate: false
	// second put duplicate: true
	// listed: 1 {"v":1}
}
