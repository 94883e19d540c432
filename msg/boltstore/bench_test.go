package boltstore

import (
	"crypto/rand"
	"encoding/binary"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alknet/alknet/msg"
)

var benchBase = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

// BenchmarkListPage lists one fetch page as msg.Server does under a 2 MiB frame cap:
// up to 100 envelopes of 175,000 bytes (a 64 KiB body's deliver frame) within 2 MiB,
// so 11, out of a mailbox of 40.
func BenchmarkListPage(b *testing.B) {
	s, err := Open(filepath.Join(b.TempDir(), "msg.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	data := make([]byte, 175_000)
	_, _ = rand.Read(data)
	for i := range 40 {
		e := msg.StoredEnvelope{Mailbox: "bench-mailbox", AcceptedAt: benchBase.Add(time.Duration(i)), ExpiresAt: benchBase.Add(time.Hour), Data: data}
		e.ID[0] = byte(i)
		if _, _, err := s.Put(b.Context(), e, msg.Quota{}); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		page, _, err := s.List(b.Context(), "bench-mailbox", "", 100, 2<<20, benchBase)
		if err != nil || len(page) != 11 {
			b.Fatalf("List: %d envelopes, %v", len(page), err)
		}
	}
}

// BenchmarkPutParallel puts 1 KiB envelopes from 64 goroutines (fsync per transaction):
// "batch" shares transactions between concurrent Puts, "solo" commits each alone.
func BenchmarkPutParallel(b *testing.B) {
	for _, tc := range []struct {
		name  string
		delay time.Duration
	}{{"batch", 0}, {"solo", -1}} {
		b.Run(tc.name, func(b *testing.B) {
			s, err := Open(filepath.Join(b.TempDir(), "msg.db"), Options{BatchDelay: tc.delay})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			data := make([]byte, 1<<10)
			var n atomic.Uint64
			b.SetParallelism(32) // 64 goroutines on 2 CPUs
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					var id [16]byte
					binary.BigEndian.PutUint64(id[:], n.Add(1))
					e := msg.StoredEnvelope{ID: id, Mailbox: "bench-mailbox", AcceptedAt: benchBase, ExpiresAt: benchBase.Add(time.Hour), Data: data}
					if _, _, err := s.Put(b.Context(), e, msg.Quota{}); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
