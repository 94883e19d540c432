package boltstore_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/alknet/alknet/msg"
	"github.com/alknet/alknet/msg/boltstore"
)

// A node keeps its mailboxes in one file of its state directory.
func ExampleOpen() {
	dir, err := os.MkdirTemp("", "msg-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	s, err := boltstore.Open(filepath.Join(dir, "msg.db"), boltstore.Options{})
	if err != nil {
		panic(err)
	}
	defer s.Close()

	ctx := context.Background()
	now := time.Now()
	env := msg.StoredEnvelope{ID: [16]byte{1}, Mailbox: "mailbox", AcceptedAt: now, ExpiresAt: now.Add(time.Hour), Data: []byte("{}")}
	if _, _, err := s.Put(ctx, env, msg.Quota{MaxMessages: 10000, MaxBytes: 256 << 20}); err != nil {
		panic(err)
	}
	n, size, _ := s.Usage(ctx, "mailbox")
	fmt.Println(n, "message,", size, "bytes")
	// Output: 1 message, 2 bytes
}
