// Package boltstore is a msg.Store in one bbolt file: the embedded default store of a
// single node.
//
// Every Put, Delete and purge batch is one bbolt read-write transaction, fsynced when it
// commits, so an envelope whose Put returned survives a crash of the process or the
// machine. Concurrent Puts share transactions (bbolt's DB.Batch, see
// Options.BatchDelay), and so share fsyncs; a Put returns only after its transaction
// committed. bbolt is single-node: one process holds the file's lock, and Notify wakes
// waiters of that process only. A second Open of the same file, in this process or
// another, waits Options.LockTimeout and then fails with ErrLocked. Fleets of nodes that
// share mailboxes use package pgstore instead.
//
// Layout (one bucket per concern; mbk is a mailbox id prefixed by its length byte, pos is
// the 16-byte fetch position: AcceptedAt in Unix nanoseconds with the sign bit flipped,
// then a store sequence, both big-endian):
//
//	envelopes  mbk|pos          -> 1|id|expires|data
//	ids        mbk|id           -> pos            (idempotency)
//	expiry     expires|mbk|pos  -> ""             (purge in expiry order)
//	usage      mailbox          -> messages|bytes (quota check without a scan)
//	bundles    mailbox          -> 1|bundle
package boltstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/alknet/alknet/msg"
	"github.com/alknet/alknet/msg/internal/storekit"
)

// DefaultLockTimeout is how long Open waits for the file lock when Options.LockTimeout is zero.
const DefaultLockTimeout = 5 * time.Second

// ErrLocked reports that another Store, in this process or another, holds the file.
var ErrLocked = errors.New("boltstore: database file is locked by another process or Store")

// Options configure Open.
type Options struct {
	// LockTimeout bounds the wait for the file's exclusive lock (DefaultLockTimeout when zero).
	LockTimeout time.Duration
	// BatchDelay is how long a Put that finds other Puts in flight waits for more to
	// join its transaction (DefaultBatchDelay when zero; negative: every Put commits
	// alone). A Put with no other Put in flight commits at once.
	BatchDelay time.Duration
}

// DefaultBatchDelay is Options.BatchDelay when zero: about one fsync on an SSD.
const DefaultBatchDelay = time.Millisecond

// Store is a msg.Store in a bbolt file. It is safe for concurrent use.
type Store struct {
	db     *bolt.DB
	hub    *storekit.Hub
	closed atomic.Bool
	batch  bool         // concurrent Puts go through db.Batch
	puts   atomic.Int64 // Puts in flight
}

var _ msg.Store = (*Store)(nil)

var (
	bucketEnvelopes = []byte("envelopes")
	bucketIDs       = []byte("ids")
	bucketExpiry    = []byte("expiry")
	bucketUsage     = []byte("usage")
	bucketBundles   = []byte("bundles")
	bucketMeta      = []byte("meta")
	keyVersion      = []byte("version")
)

// formatVersion is the layout above; Open refuses files of another version.
const formatVersion = 1

// valueVersion prefixes envelope and bundle values.
const valueVersion = 1

// Open opens or creates the store file at path (mode 0600 when created).
func Open(path string, opts Options) (*Store, error) {
	timeout := opts.LockTimeout
	if timeout <= 0 {
		timeout = DefaultLockTimeout
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("%w (waited %v)", ErrLocked, timeout)
	}
	if err != nil {
		return nil, fmt.Errorf("boltstore: open: %w", err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketEnvelopes, bucketIDs, bucketExpiry, bucketUsage, bucketBundles, bucketMeta} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		meta := tx.Bucket(bucketMeta)
		switch v := meta.Get(keyVersion); {
		case v == nil:
			return meta.Put(keyVersion, []byte{formatVersion})
		case len(v) != 1 || v[0] != formatVersion:
			return fmt.Errorf("boltstore: file format version %v, this code reads %d", v, formatVersion)
		}
		return nil
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("boltstore: initialise: %w", err)
	}
	delay := opts.BatchDelay
	if delay == 0 {
		delay = DefaultBatchDelay
	}
	if delay > 0 {
		db.MaxBatchDelay = delay
	}
	return &Store{db: db, hub: storekit.NewHub(), batch: delay > 0}, nil
}

// check reports a cancelled ctx or a closed store.
func (s *Store) check(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("boltstore: %w", err)
	}
	if s.closed.Load() {
		return msg.ErrClosed
	}
	return nil
}

// update runs fn in a read-write transaction after checking ctx and the store, and checks
// ctx again once the writer lock is held (a transaction cannot be interrupted midway).
func (s *Store) update(ctx context.Context, fn func(tx *bolt.Tx) error) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("boltstore: %w", err)
		}
		return fn(tx)
	})
	return s.mapErr(err)
}

// batchUpdate is update through db.Batch: fn may share its transaction with concurrent
// calls and may run more than once; a nil error means that its transaction committed.
func (s *Store) batchUpdate(ctx context.Context, fn func(tx *bolt.Tx) error) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	err := s.db.Batch(func(tx *bolt.Tx) error {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("boltstore: %w", err)
		}
		return fn(tx)
	})
	return s.mapErr(err)
}

// view runs fn in a read-only transaction after checking ctx and the store.
func (s *Store) view(ctx context.Context, fn func(tx *bolt.Tx) error) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	return s.mapErr(s.db.View(fn))
}

// mapErr turns bbolt's "not open" after a concurrent Close into msg.ErrClosed.
func (s *Store) mapErr(err error) error {
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return fmt.Errorf("%w: %w", msg.ErrClosed, err)
	}
	return err
}

// mailboxKey is the length-prefixed mailbox id followed by room for n more bytes.
func mailboxKey(mailbox string, n int) []byte {
	k := make([]byte, 0, 1+len(mailbox)+n)
	k = append(k, byte(len(mailbox)))
	return append(k, mailbox...)
}

func envelopeKey(mailbox string, pos [16]byte) []byte {
	return append(mailboxKey(mailbox, 16), pos[:]...)
}

func idKey(mailbox string, id [16]byte) []byte { return append(mailboxKey(mailbox, 16), id[:]...) }

func expiryKey(expiresNs int64, envKey []byte) []byte {
	k := binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(envKey)), uint64(expiresNs)^(1<<63))
	return append(k, envKey...)
}

func encodeEnvelope(id [16]byte, expiresNs int64, data []byte) []byte {
	v := make([]byte, 0, 1+16+8+len(data))
	v = append(v, valueVersion)
	v = append(v, id[:]...)
	v = binary.BigEndian.AppendUint64(v, uint64(expiresNs))
	return append(v, data...)
}

// decodedEnvelope aliases the bbolt value: valid only inside its transaction.
type decodedEnvelope struct {
	id        [16]byte
	expiresNs int64
	data      []byte
}

var errCorrupt = errors.New("boltstore: corrupt record")

func decodeEnvelope(v []byte) (decodedEnvelope, error) {
	if len(v) < 1+16+8 || v[0] != valueVersion {
		return decodedEnvelope{}, errCorrupt
	}
	var d decodedEnvelope
	copy(d.id[:], v[1:17])
	d.expiresNs = int64(binary.BigEndian.Uint64(v[17:25]))
	d.data = v[25:]
	return d, nil
}

func decodeUsage(v []byte) (messages, nbytes int64) {
	if len(v) != 16 {
		return 0, 0
	}
	return int64(binary.BigEndian.Uint64(v[:8])), int64(binary.BigEndian.Uint64(v[8:]))
}

// addUsage adds dm messages and db bytes to mailbox's counters, deleting them at zero.
func addUsage(b *bolt.Bucket, mailbox string, dm, db int64) error {
	m, n := decodeUsage(b.Get([]byte(mailbox)))
	m, n = m+dm, n+db
	if m <= 0 {
		return b.Delete([]byte(mailbox))
	}
	v := binary.BigEndian.AppendUint64(make([]byte, 0, 16), uint64(m))
	return b.Put([]byte(mailbox), binary.BigEndian.AppendUint64(v, uint64(n)))
}

// Put implements msg.Store in an fsynced transaction: its own when no other Put is in
// flight, else one it shares with the Puts that arrive within Options.BatchDelay.
func (s *Store) Put(ctx context.Context, env msg.StoredEnvelope, q msg.Quota) (time.Time, bool, error) {
	acceptedNs, expiresNs, err := storekit.CheckEnvelope(env.Mailbox, env.AcceptedAt, env.ExpiresAt)
	if err != nil {
		return time.Time{}, false, err
	}
	var (
		dupAt time.Time
		dup   bool
	)
	commit := s.update
	if n := s.puts.Add(1); n > 1 && s.batch {
		commit = s.batchUpdate
	}
	defer s.puts.Add(-1)
	err = commit(ctx, func(tx *bolt.Tx) error {
		// db.Batch may run this more than once (its batch rolled back for another
		// call's error): start over each time.
		dupAt, dup = time.Time{}, false
		ids := tx.Bucket(bucketIDs)
		ik := idKey(env.Mailbox, env.ID)
		if v := ids.Get(ik); v != nil {
			pos, ok := storekit.PositionFromKey(v)
			if !ok {
				return errCorrupt
			}
			dupAt, dup = time.Unix(0, pos.AcceptedNs), true
			return nil
		}
		usage := tx.Bucket(bucketUsage)
		m, n := decodeUsage(usage.Get([]byte(env.Mailbox)))
		if why := storekit.QuotaExceeded(q.MaxMessages, q.MaxBytes, m, n, len(env.Data)); why != "" {
			return fmt.Errorf("%w: %s", msg.ErrQuotaExceeded, why)
		}
		envs := tx.Bucket(bucketEnvelopes)
		seq, err := envs.NextSequence()
		if err != nil {
			return err
		}
		pos := storekit.Position{AcceptedNs: acceptedNs, Seq: seq}.Key()
		ek := envelopeKey(env.Mailbox, pos)
		if err := envs.Put(ek, encodeEnvelope(env.ID, expiresNs, env.Data)); err != nil {
			return err
		}
		if err := ids.Put(ik, pos[:]); err != nil {
			return err
		}
		if err := tx.Bucket(bucketExpiry).Put(expiryKey(expiresNs, ek), []byte{}); err != nil {
			return err
		}
		return addUsage(usage, env.Mailbox, 1, int64(len(env.Data)))
	})
	if err != nil {
		return time.Time{}, false, fmt.Errorf("boltstore: put: %w", err)
	}
	if dup {
		return dupAt, true, nil
	}
	s.hub.Wake(env.Mailbox)
	return time.Unix(0, acceptedNs), false, nil
}

// List implements msg.Store.
func (s *Store) List(ctx context.Context, mailbox string, after msg.Cursor, limit int, maxBytes int64, now time.Time) ([]msg.StoredEnvelope, msg.Cursor, error) {
	if err := storekit.CheckMailbox(mailbox); err != nil {
		return nil, after, err
	}
	if err := storekit.CheckLimit(limit); err != nil {
		return nil, after, err
	}
	nowNs, err := storekit.UnixNano("now", now)
	if err != nil {
		return nil, after, err
	}
	from, start, err := storekit.ParseCursor(string(after))
	if err != nil {
		return nil, after, fmt.Errorf("%w: %v", msg.ErrInvalidCursor, err)
	}
	prefix := mailboxKey(mailbox, 0)
	seek := prefix
	if !start {
		fk := from.Key()
		seek = envelopeKey(mailbox, fk)
	}
	out := make([]msg.StoredEnvelope, 0, storekit.InitialCap(limit))
	next := after
	var used int64
	err = s.view(ctx, func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketEnvelopes).Cursor()
		k, v := c.Seek(seek)
		if !start && bytes.Equal(k, seek) {
			k, v = c.Next()
		}
		for ; k != nil && bytes.HasPrefix(k, prefix) && len(out) < limit; k, v = c.Next() {
			pos, ok := storekit.PositionFromKey(k[len(prefix):])
			if !ok {
				return errCorrupt
			}
			d, err := decodeEnvelope(v)
			if err != nil {
				return err
			}
			if d.expiresNs <= nowNs {
				continue
			}
			if storekit.OverBudget(maxBytes, len(out), used, len(d.data)) {
				break
			}
			used += int64(len(d.data))
			out = append(out, msg.StoredEnvelope{
				ID:         d.id,
				Mailbox:    mailbox,
				AcceptedAt: time.Unix(0, pos.AcceptedNs),
				ExpiresAt:  time.Unix(0, d.expiresNs),
				Data:       bytes.Clone(d.data), // bbolt memory is valid only inside the transaction
			})
			next = msg.Cursor(pos.Cursor())
		}
		return nil
	})
	if err != nil {
		return nil, after, fmt.Errorf("boltstore: list: %w", err)
	}
	return out, next, nil
}

// removeEnvelope deletes the envelope at ek (with its id and expiry entries and its share
// of the usage counters) and reports whether there was one.
func removeEnvelope(tx *bolt.Tx, mailbox string, ek []byte) (bool, error) {
	envs := tx.Bucket(bucketEnvelopes)
	v := envs.Get(ek)
	if v == nil {
		return false, nil
	}
	d, err := decodeEnvelope(v)
	if err != nil {
		return false, err
	}
	size := int64(len(d.data))
	if err := tx.Bucket(bucketIDs).Delete(idKey(mailbox, d.id)); err != nil {
		return false, err
	}
	if err := tx.Bucket(bucketExpiry).Delete(expiryKey(d.expiresNs, ek)); err != nil {
		return false, err
	}
	if err := envs.Delete(ek); err != nil {
		return false, err
	}
	return true, addUsage(tx.Bucket(bucketUsage), mailbox, -1, -size)
}

// Delete implements msg.Store in one fsynced transaction.
func (s *Store) Delete(ctx context.Context, mailbox string, ids [][16]byte) (int, error) {
	if err := storekit.CheckMailbox(mailbox); err != nil {
		return 0, err
	}
	n := 0
	err := s.update(ctx, func(tx *bolt.Tx) error {
		n = 0
		idb := tx.Bucket(bucketIDs)
		for _, id := range ids {
			v := idb.Get(idKey(mailbox, id))
			if v == nil {
				continue
			}
			pos, ok := storekit.PositionFromKey(v)
			if !ok {
				return errCorrupt
			}
			removed, err := removeEnvelope(tx, mailbox, envelopeKey(mailbox, pos.Key()))
			if err != nil {
				return err
			}
			if removed {
				n++
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("boltstore: delete: %w", err)
	}
	return n, nil
}

// purgeBatch bounds the envelopes one purge transaction removes, so a large purge does not
// hold the writer lock (and grow the transaction) unboundedly.
const purgeBatch = 1024

// PurgeExpired implements msg.Store, in transactions of at most purgeBatch envelopes.
func (s *Store) PurgeExpired(ctx context.Context, now time.Time) (int, error) {
	nowNs, err := storekit.UnixNano("now", now)
	if err != nil {
		return 0, err
	}
	limit := binary.BigEndian.AppendUint64(nil, uint64(nowNs)^(1<<63))
	total := 0
	for {
		n := 0
		err := s.update(ctx, func(tx *bolt.Tx) error {
			n = 0
			// Collect first: deleting under a live cursor can skip keys.
			var batch [][]byte
			c := tx.Bucket(bucketExpiry).Cursor()
			for k, _ := c.First(); k != nil && len(batch) < purgeBatch; k, _ = c.Next() {
				if len(k) < 8 || bytes.Compare(k[:8], limit) > 0 {
					break
				}
				batch = append(batch, bytes.Clone(k))
			}
			for _, k := range batch {
				ek := k[8:]
				if len(ek) < 1 || len(ek) != 1+int(ek[0])+16 {
					return errCorrupt
				}
				removed, err := removeEnvelope(tx, string(ek[1:1+int(ek[0])]), ek)
				if err != nil {
					return err
				}
				if !removed { // dangling index entry
					if err := tx.Bucket(bucketExpiry).Delete(k); err != nil {
						return err
					}
					continue
				}
				n++
			}
			return nil
		})
		if err != nil {
			return total, fmt.Errorf("boltstore: purge: %w", err)
		}
		total += n
		if n < purgeBatch {
			return total, nil
		}
	}
}

// PutBundle implements msg.Store.
func (s *Store) PutBundle(ctx context.Context, mailbox string, bundle []byte) error {
	if err := storekit.CheckMailbox(mailbox); err != nil {
		return err
	}
	err := s.update(ctx, func(tx *bolt.Tx) error {
		v := append(make([]byte, 0, 1+len(bundle)), valueVersion)
		return tx.Bucket(bucketBundles).Put([]byte(mailbox), append(v, bundle...))
	})
	if err != nil {
		return fmt.Errorf("boltstore: put bundle: %w", err)
	}
	return nil
}

// GetBundle implements msg.Store.
func (s *Store) GetBundle(ctx context.Context, mailbox string) ([]byte, error) {
	var out []byte
	err := s.view(ctx, func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketBundles).Get([]byte(mailbox))
		if v == nil {
			return msg.ErrNotFound
		}
		if len(v) < 1 || v[0] != valueVersion {
			return errCorrupt
		}
		out = bytes.Clone(v[1:])
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("boltstore: key bundle: %w", err)
	}
	return out, nil
}

// Usage implements msg.Store.
func (s *Store) Usage(ctx context.Context, mailbox string) (int, int64, error) {
	var m, n int64
	err := s.view(ctx, func(tx *bolt.Tx) error {
		m, n = decodeUsage(tx.Bucket(bucketUsage).Get([]byte(mailbox)))
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("boltstore: usage: %w", err)
	}
	return int(m), n, nil
}

// Notify implements msg.Store for this process: the channel is closed by the next Put
// through this Store that stores an envelope in mailbox, or by Close.
func (s *Store) Notify(ctx context.Context, mailbox string) (<-chan struct{}, func(), error) {
	if err := s.check(ctx); err != nil {
		return nil, nil, err
	}
	ch, cancel := s.hub.Wait(mailbox)
	return ch, cancel, nil
}

// Close wakes every Notify waiter, waits for running transactions and closes the file,
// releasing its lock. Closing twice returns msg.ErrClosed.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return msg.ErrClosed
	}
	s.hub.Close()
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("boltstore: close: %w", err)
	}
	return nil
}

// Totals implements msg.Totaler from the per-mailbox usage counters (one read
// transaction over them).
func (s *Store) Totals(ctx context.Context) (msg.Totals, error) {
	var t msg.Totals
	err := s.view(ctx, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketUsage).ForEach(func(_, v []byte) error {
			t.AddMailbox(decodeUsage(v))
			return nil
		})
	})
	if err != nil {
		return msg.Totals{}, fmt.Errorf("boltstore: totals: %w", err)
	}
	return t, nil
}
