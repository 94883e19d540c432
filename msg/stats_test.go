package msg

import (
	"errors"
	"log/slog"
	"testing"
)

// hiddenStore is a Store that does not show its Totals method.
type hiddenStore struct{ Store }

// TestServerTotals: a server over a Totaler reports its store's totals (bounds filled
// in even when empty); over another store, ErrNoTotals.
func TestServerTotals(t *testing.T) {
	quiet := WithLogger(slog.New(slog.DiscardHandler))
	mem := NewMemStore()
	t.Cleanup(func() { _ = mem.Close() })
	srv, err := NewServer(Config{PurgeInterval: -1}, mem, quiet)
	if err != nil {
		t.Fatal(err)
	}
	tot, err := srv.Totals(t.Context())
	if err != nil || tot.Mailboxes != 0 || len(tot.MailboxSizes) != len(MailboxSizeBounds()) {
		t.Fatalf("Totals = %+v, %v", tot, err)
	}
	other, err := NewServer(Config{PurgeInterval: -1}, hiddenStore{mem}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Totals(t.Context()); !errors.Is(err, ErrNoTotals) {
		t.Fatalf("Totals over a store without them = %v, want ErrNoTotals", err)
	}
}
