package pgstore

import (
	"crypto/rand"
	"testing"
	"time"

	"github.com/alknet/alknet/msg"
)

// BenchmarkListPage lists one fetch page as msg.Server does under a 2 MiB frame cap:
// up to 100 envelopes of 175,000 bytes (a 64 KiB body's deliver frame) within 2 MiB,
// so 11, out of a mailbox of 40.
func BenchmarkListPage(b *testing.B) {
	dsn := testDSN(b)
	s := openStore(b, dsn, newSchema(b, dsn))
	base := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	mailbox := rand.Text() + rand.Text()
	data := make([]byte, 175_000)
	_, _ = rand.Read(data)
	for i := range 40 {
		e := msg.StoredEnvelope{Mailbox: mailbox, AcceptedAt: base.Add(time.Duration(i)), ExpiresAt: base.Add(time.Hour), Data: data}
		e.ID[0] = byte(i)
		if _, _, err := s.Put(b.Context(), e, msg.Quota{}); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		page, _, err := s.List(b.Context(), mailbox, "", 100, 2<<20, base)
		if err != nil || len(page) != 11 {
			b.Fatalf("List: %d envelopes, %v", len(page), err)
		}
	}
}
