package msg

import (
	"context"
	"errors"
	"time"
)

// StoredEnvelope is one accepted envelope as a store keeps it: the server's metadata and
// the envelope's wire bytes, which the store never interprets.
type StoredEnvelope struct {
	ID         [16]byte  // the envelope id (idempotency key within a mailbox)
	Mailbox    string    // mailbox id: core.ZBase32Key(owner Ed25519 key), 52 chars; opaque to stores
	AcceptedAt time.Time // server receive time; fetch order
	ExpiresAt  time.Time
	Data       []byte // the encoded envelope (JSON), at most the frame cap
}

// Quota bounds one mailbox; Put refuses with ErrQuotaExceeded when accepting would pass it.
// A zero or negative field means that dimension is unbounded.
type Quota struct {
	MaxMessages int
	MaxBytes    int64
}

// Cursor is an opaque position in a mailbox's fetch order ("" = from the start).
type Cursor string

// Store keeps mailboxes of accepted envelopes and the mailboxes' key bundles.
// Implementations are safe for concurrent use. Every method honours ctx: a cancelled or
// expired ctx makes it return an error wrapping ctx.Err(). After Close every method
// returns an error wrapping ErrClosed.
type Store interface {
	// Put stores env unless (env.Mailbox, env.ID) exists: then it stores nothing and
	// returns (the original AcceptedAt, true, nil).
	Put(ctx context.Context, env StoredEnvelope, q Quota) (acceptedAt time.Time, duplicate bool, err error)
	// List returns up to limit envelopes of mailbox after cursor in AcceptedAt order
	// (ties broken by a store sequence), not expired at now, and the cursor to continue.
	// When maxBytes > 0 it is a byte budget: List stops before the envelope that would
	// take the sum of the returned envelopes' len(Data) past maxBytes, except that the
	// first envelope is always returned (however large), so that a reader always makes
	// progress. maxBytes <= 0 means no byte budget. The cursor continues after the last
	// envelope returned, so an envelope left out for the budget comes first next time.
	// A store reads (and copies) only the envelopes it returns, not limit of them.
	List(ctx context.Context, mailbox string, after Cursor, limit int, maxBytes int64, now time.Time) ([]StoredEnvelope, Cursor, error)
	// Delete removes the given ids of mailbox (unknown ids ignored); returns how many.
	Delete(ctx context.Context, mailbox string, ids [][16]byte) (int, error)
	// PurgeExpired removes every envelope with ExpiresAt <= now; returns how many.
	PurgeExpired(ctx context.Context, now time.Time) (int, error)
	// PutBundle / GetBundle keep a mailbox's key bundle bytes (ErrNotFound when none).
	PutBundle(ctx context.Context, mailbox string, bundle []byte) error
	// GetBundle returns the bundle bytes last stored by PutBundle for mailbox, or an
	// error wrapping ErrNotFound when none.
	GetBundle(ctx context.Context, mailbox string) ([]byte, error)
	// Usage reports a mailbox's stored message count and bytes.
	Usage(ctx context.Context, mailbox string) (messages int, bytes int64, err error)
	// Notify returns a channel closed at the next Put to mailbox (on any node sharing
	// the store, for postgres via LISTEN/NOTIFY), for long-poll fetch; cancel releases it.
	Notify(ctx context.Context, mailbox string) (ch <-chan struct{}, cancel func(), err error)
	// Close releases the store's resources. Pending Notify channels are closed.
	Close() error
}

// Errors returned by Store implementations (wrapped; test with errors.Is).
var (
	// ErrQuotaExceeded: accepting the envelope would pass the mailbox's Quota.
	ErrQuotaExceeded = errors.New("msg: mailbox quota exceeded")
	// ErrNotFound: the store has no such item (for example no key bundle for a mailbox).
	ErrNotFound = errors.New("msg: not found in store")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("msg: store closed")
	// ErrInvalidCursor: List was given a cursor that this store did not make.
	ErrInvalidCursor = errors.New("msg: invalid fetch cursor")
)
