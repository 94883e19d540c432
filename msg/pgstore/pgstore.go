// Package pgstore is a msg.Store on PostgreSQL, for a fleet of nodes behind one name that
// share mailboxes: any node lists what another accepted, and Notify wakes long-poll
// waiters on every node through LISTEN/NOTIFY.
//
// Open creates the schema with an idempotent migration under an advisory lock, so nodes
// starting together do not race. Each Put is one transaction that locks the mailbox's
// usage row (SELECT ... FOR UPDATE semantics through an upsert), checks idempotency and the
// quota, inserts the envelope, updates the counters and sends NOTIFY with the mailbox id as
// payload: concurrent Puts from any number of nodes never pass a quota together. Order is
// AcceptedAt (as the caller gives it, kept in Unix nanoseconds) with ties broken by a
// bigserial sequence.
//
// Schema (in Options.Schema, else the first schema of the connection's search_path):
//
//	msg_meta      (key text PRIMARY KEY, value text)               -- schema_version
//	msg_envelopes (seq bigserial PRIMARY KEY, mailbox text, id bytea, accepted_ns bigint,
//	               expires_ns bigint, data bytea, UNIQUE (mailbox, id))
//	               index (mailbox, accepted_ns, seq) for List, index (expires_ns) for purge
//	msg_usage     (mailbox text PRIMARY KEY, messages bigint, bytes bigint) -- the quota lock
//	msg_bundles   (mailbox text PRIMARY KEY, bundle bytea, updated_at timestamptz)
//
// Lock order is always usage row, then envelope rows (Put, Delete and PurgeExpired alike),
// so they cannot deadlock one another.
//
// Durability: Put returns only after COMMIT, so an answered Put survives the death of the
// calling process (the crash test kills it with SIGKILL mid-burst); surviving a crash of
// the database server is the server's job (synchronous_commit on, fsync on, the defaults).
// Cursor pagination follows AcceptedAt, which nodes take from their own clocks: a Put
// committed with an AcceptedAt before a reader's cursor is not seen by that cursor, but by
// the next List from the start (fetch from "" after acknowledging what was read).
package pgstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/alknet/alknet/msg"
	"github.com/alknet/alknet/msg/internal/storekit"
)

// Options configure Open.
type Options struct {
	// Schema, when set, is created if missing and made the search_path of every connection,
	// so the tables live there; several deployments (or tests) can share one database.
	Schema string
	// MaxConns bounds the connection pool (pgxpool's default when zero). The store holds
	// one more connection for LISTEN.
	MaxConns int32
	// Logger receives the listener's reconnects (never a DSN or a mailbox); none when nil.
	Logger *slog.Logger
}

// Store is a msg.Store on PostgreSQL. It is safe for concurrent use.
type Store struct {
	pool    *pgxpool.Pool
	hub     *storekit.Hub
	channel string
	log     *slog.Logger
	closed  atomic.Bool

	stopListen context.CancelFunc
	listenDone chan struct{}
}

var _ msg.Store = (*Store)(nil)

// migrationLock is the advisory lock key that serialises migrations ("alknetms").
const migrationLock int64 = 0x616c6b6e65746d73

// schemaVersion is the version of the tables below; Open refuses a database at another.
const schemaVersion = "1"

var migration = []string{
	`CREATE TABLE IF NOT EXISTS msg_meta (
		key   text PRIMARY KEY,
		value text NOT NULL
	)`,
	`CREATE TABLE IF NOT EXISTS msg_envelopes (
		seq         bigserial PRIMARY KEY,
		mailbox     text   NOT NULL,
		id          bytea  NOT NULL CHECK (octet_length(id) = 16),
		accepted_ns bigint NOT NULL,
		expires_ns  bigint NOT NULL,
		data        bytea  NOT NULL,
		UNIQUE (mailbox, id)
	)`,
	`CREATE INDEX IF NOT EXISTS msg_envelopes_fetch ON msg_envelopes (mailbox, accepted_ns, seq)`,
	`CREATE INDEX IF NOT EXISTS msg_envelopes_expiry ON msg_envelopes (expires_ns)`,
	`CREATE TABLE IF NOT EXISTS msg_usage (
		mailbox  text   PRIMARY KEY,
		messages bigint NOT NULL,
		bytes    bigint NOT NULL
	)`,
	`CREATE TABLE IF NOT EXISTS msg_bundles (
		mailbox    text        PRIMARY KEY,
		bundle     bytea       NOT NULL,
		updated_at timestamptz NOT NULL DEFAULT now()
	)`,
	`INSERT INTO msg_meta (key, value) VALUES ('schema_version', '` + schemaVersion + `') ON CONFLICT (key) DO NOTHING`,
}

// Open connects to the database dsn names (a libpq keyword/value string or a postgres://
// URL), migrates the schema and starts the LISTEN connection. ctx bounds the start-up only.
func Open(ctx context.Context, dsn string, opts Options) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("pgstore: parse DSN: %w", err)
	}
	if opts.Schema != "" {
		if len(opts.Schema) > 63 || strings.ContainsRune(opts.Schema, 0) {
			return nil, fmt.Errorf("pgstore: schema name %q is not a PostgreSQL identifier", opts.Schema)
		}
		cfg.ConnConfig.RuntimeParams["search_path"] = pgx.Identifier{opts.Schema}.Sanitize()
	}
	if opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("pgstore: pool: %w", err)
	}
	channel, err := migrate(ctx, pool, opts.Schema)
	if err != nil {
		pool.Close()
		return nil, err
	}
	listenConfig := cfg.ConnConfig.Copy()
	conn, err := listen(ctx, listenConfig, channel)
	if err != nil {
		pool.Close()
		return nil, err
	}
	lctx, stop := context.WithCancel(context.Background())
	s := &Store{
		pool:       pool,
		hub:        storekit.NewHub(),
		channel:    channel,
		log:        logger,
		stopListen: stop,
		listenDone: make(chan struct{}),
	}
	go s.listenLoop(lctx, listenConfig, conn)
	return s, nil
}

// migrate creates the tables if missing under a transaction-scoped advisory lock and
// returns the NOTIFY channel of this schema.
func migrate(ctx context.Context, pool *pgxpool.Pool, schema string) (string, error) {
	var channel string
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrationLock); err != nil {
			return err
		}
		if schema != "" {
			ident := pgx.Identifier{schema}.Sanitize()
			if _, err := tx.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+ident); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `SET LOCAL search_path TO `+ident); err != nil {
				return err
			}
		}
		for _, stmt := range migration {
			if _, err := tx.Exec(ctx, stmt); err != nil {
				return err
			}
		}
		var version, db, current string
		err := tx.QueryRow(ctx, `SELECT (SELECT value FROM msg_meta WHERE key = 'schema_version'),
			current_database(), current_schema()`).Scan(&version, &db, &current)
		if err != nil {
			return err
		}
		if version != schemaVersion {
			return fmt.Errorf("database schema version %q, this code knows %q", version, schemaVersion)
		}
		// NOTIFY channels are per database, not per schema: name this schema's channel.
		sum := sha256.Sum256([]byte(db + "\x00" + current))
		channel = "alknet_msg_" + hex.EncodeToString(sum[:8])
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("pgstore: migrate: %w", err)
	}
	return channel, nil
}

// listen opens the dedicated connection and subscribes it to channel.
func listen(ctx context.Context, cfg *pgx.ConnConfig, channel string) (*pgx.Conn, error) {
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("pgstore: listen connection: %w", err)
	}
	if _, err := conn.Exec(ctx, `LISTEN `+pgx.Identifier{channel}.Sanitize()); err != nil {
		_ = conn.Close(context.Background())
		return nil, fmt.Errorf("pgstore: LISTEN: %w", err)
	}
	return conn, nil
}

// listenLoop fans notifications out to the hub. When the connection breaks it reconnects
// with backoff and then wakes every waiter, since notifications may have been missed.
func (s *Store) listenLoop(ctx context.Context, cfg *pgx.ConnConfig, conn *pgx.Conn) {
	defer close(s.listenDone)
	defer func() {
		if conn != nil {
			closeCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = conn.Close(closeCtx)
			cancel()
		}
	}()
	backoff := 100 * time.Millisecond
	for {
		if conn == nil {
			c, err := listen(ctx, cfg, s.channel)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				s.log.Warn("msg store: LISTEN connection failed; retrying", "error", err, "retry_in", backoff)
				t := time.NewTimer(backoff)
				select {
				case <-ctx.Done():
					t.Stop()
					return
				case <-t.C:
				}
				backoff = min(backoff*2, 10*time.Second)
				continue
			}
			conn, backoff = c, 100*time.Millisecond
			s.log.Info("msg store: LISTEN connection restored")
			s.hub.WakeAll()
		}
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			s.log.Warn("msg store: LISTEN connection lost; reconnecting", "error", err)
			_ = conn.Close(context.Background())
			conn = nil
			continue
		}
		s.hub.Wake(n.Payload)
	}
}

// check reports a cancelled ctx or a closed store.
func (s *Store) check(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("pgstore: %w", err)
	}
	if s.closed.Load() {
		return msg.ErrClosed
	}
	return nil
}

// lockUsage takes the mailbox's usage row lock (creating the row) and returns its counters.
const lockUsage = `INSERT INTO msg_usage AS u (mailbox, messages, bytes) VALUES ($1, 0, 0)
	ON CONFLICT (mailbox) DO UPDATE SET messages = u.messages
	RETURNING u.messages, u.bytes`

// Put implements msg.Store in one transaction (see the package comment).
func (s *Store) Put(ctx context.Context, env msg.StoredEnvelope, q msg.Quota) (time.Time, bool, error) {
	acceptedNs, expiresNs, err := storekit.CheckEnvelope(env.Mailbox, env.AcceptedAt, env.ExpiresAt)
	if err != nil {
		return time.Time{}, false, err
	}
	if err := s.check(ctx); err != nil {
		return time.Time{}, false, err
	}
	var (
		dupNs int64
		dup   bool
	)
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var messages, nbytes int64
		if err := tx.QueryRow(ctx, lockUsage, env.Mailbox).Scan(&messages, &nbytes); err != nil {
			return err
		}
		// Read after the lock: a concurrent Put of the same id has committed by now.
		err := tx.QueryRow(ctx, `SELECT accepted_ns FROM msg_envelopes WHERE mailbox = $1 AND id = $2`,
			env.Mailbox, env.ID[:]).Scan(&dupNs)
		switch {
		case err == nil:
			dup = true
			return nil
		case !errors.Is(err, pgx.ErrNoRows):
			return err
		}
		if why := storekit.QuotaExceeded(q.MaxMessages, q.MaxBytes, messages, nbytes, len(env.Data)); why != "" {
			return fmt.Errorf("%w: %s", msg.ErrQuotaExceeded, why)
		}
		data := env.Data
		if data == nil {
			data = []byte{}
		}
		b := &pgx.Batch{}
		b.Queue(`INSERT INTO msg_envelopes (mailbox, id, accepted_ns, expires_ns, data) VALUES ($1, $2, $3, $4, $5)`,
			env.Mailbox, env.ID[:], acceptedNs, expiresNs, data)
		b.Queue(`UPDATE msg_usage SET messages = messages + 1, bytes = bytes + $2 WHERE mailbox = $1`,
			env.Mailbox, int64(len(data)))
		b.Queue(`SELECT pg_notify($1, $2)`, s.channel, env.Mailbox) // delivered at commit
		return tx.SendBatch(ctx, b).Close()
	})
	if err != nil {
		return time.Time{}, false, s.wrap("put", err)
	}
	if dup {
		return time.Unix(0, dupNs), true, nil
	}
	return time.Unix(0, acceptedNs), false, nil
}

// wrap names the operation and maps a pool closed under a running call to msg.ErrClosed.
func (s *Store) wrap(op string, err error) error {
	if s.closed.Load() && !errors.Is(err, msg.ErrClosed) {
		return fmt.Errorf("pgstore: %s: %w: %w", op, msg.ErrClosed, err)
	}
	return fmt.Errorf("pgstore: %s: %w", op, err)
}

// listQuery pages a mailbox under a count limit ($5) and a byte budget ($6): the page
// takes sizes from octet_length(data), which reads a TOASTed value's header, not the
// value, and only the rows within the budget (the first always) join back for their data.
const listQuery = `WITH page AS (
		SELECT seq, id, accepted_ns, expires_ns,
			row_number() OVER w AS rn,
			sum(octet_length(data)) OVER w AS run
		FROM msg_envelopes
		WHERE mailbox = $1 AND (accepted_ns, seq) > ($2, $3) AND expires_ns > $4
		WINDOW w AS (ORDER BY accepted_ns, seq ROWS UNBOUNDED PRECEDING)
		ORDER BY accepted_ns, seq LIMIT $5)
	SELECT p.seq, p.id, p.accepted_ns, p.expires_ns, e.data
	FROM page p JOIN msg_envelopes e ON e.seq = p.seq
	WHERE p.rn = 1 OR p.run <= $6
	ORDER BY p.accepted_ns, p.seq`

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
	if from.Seq > math.MaxInt64 {
		return nil, after, fmt.Errorf("%w: sequence out of range", msg.ErrInvalidCursor)
	}
	if start {
		from = storekit.Position{AcceptedNs: math.MinInt64, Seq: 0} // seq starts at 1
	}
	if err := s.check(ctx); err != nil {
		return nil, after, err
	}
	if maxBytes <= 0 {
		maxBytes = math.MaxInt64
	}
	rows, err := s.pool.Query(ctx, listQuery, mailbox, from.AcceptedNs, int64(from.Seq), nowNs, limit, maxBytes)
	if err != nil {
		return nil, after, s.wrap("list", err)
	}
	defer rows.Close()
	out := make([]msg.StoredEnvelope, 0, storekit.InitialCap(limit))
	next := after
	for rows.Next() {
		var (
			seq, acc, exp int64
			id, data      []byte
		)
		if err := rows.Scan(&seq, &id, &acc, &exp, &data); err != nil {
			return nil, after, s.wrap("list", err)
		}
		e := msg.StoredEnvelope{Mailbox: mailbox, AcceptedAt: time.Unix(0, acc), ExpiresAt: time.Unix(0, exp), Data: data}
		copy(e.ID[:], id)
		out = append(out, e)
		next = msg.Cursor(storekit.Position{AcceptedNs: acc, Seq: uint64(seq)}.Cursor())
	}
	if err := rows.Err(); err != nil {
		return nil, after, s.wrap("list", err)
	}
	return out, next, nil
}

// deleteWhere deletes envelopes of $1 matching cond (with $2 its argument) and subtracts
// them from the usage row, returning how many; run it after locking the usage row.
func deleteWhere(cond string) string {
	return `WITH d AS (DELETE FROM msg_envelopes WHERE mailbox = $1 AND ` + cond + ` RETURNING octet_length(data) AS n),
		s AS (SELECT count(*) AS c, coalesce(sum(n), 0)::bigint AS b FROM d),
		u AS (UPDATE msg_usage SET messages = messages - s.c, bytes = bytes - s.b FROM s
			WHERE mailbox = $1 AND s.c > 0)
		SELECT c FROM s`
}

var (
	deleteIDs     = deleteWhere(`id = ANY($2)`)
	deleteExpired = deleteWhere(`expires_ns <= $2`)
)

// lockUsageRow locks the mailbox's usage row, if it has one, for the transaction.
const lockUsageRow = `SELECT 1 FROM msg_usage WHERE mailbox = $1 FOR UPDATE`

// Delete implements msg.Store in one transaction.
func (s *Store) Delete(ctx context.Context, mailbox string, ids [][16]byte) (int, error) {
	if err := storekit.CheckMailbox(mailbox); err != nil {
		return 0, err
	}
	if err := s.check(ctx); err != nil {
		return 0, err
	}
	if len(ids) == 0 {
		return 0, nil
	}
	arg := make([][]byte, len(ids))
	for i := range ids {
		arg[i] = ids[i][:]
	}
	var n int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, lockUsageRow, mailbox); err != nil {
			return err
		}
		return tx.QueryRow(ctx, deleteIDs, mailbox, arg).Scan(&n)
	})
	if err != nil {
		return 0, s.wrap("delete", err)
	}
	return int(n), nil
}

// purgeMailboxes bounds how many mailboxes one round of PurgeExpired looks up.
const purgeMailboxes = 100

// PurgeExpired implements msg.Store: one transaction per mailbox with expired envelopes.
func (s *Store) PurgeExpired(ctx context.Context, now time.Time) (int, error) {
	nowNs, err := storekit.UnixNano("now", now)
	if err != nil {
		return 0, err
	}
	total := 0
	for {
		if err := s.check(ctx); err != nil {
			return total, err
		}
		rows, err := s.pool.Query(ctx, `SELECT DISTINCT mailbox FROM msg_envelopes WHERE expires_ns <= $1 LIMIT $2`,
			nowNs, purgeMailboxes)
		if err != nil {
			return total, s.wrap("purge", err)
		}
		mailboxes, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return total, s.wrap("purge", err)
		}
		if len(mailboxes) == 0 {
			return total, nil
		}
		for _, mb := range mailboxes {
			var n int64
			err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
				if _, err := tx.Exec(ctx, lockUsageRow, mb); err != nil {
					return err
				}
				return tx.QueryRow(ctx, deleteExpired, mb, nowNs).Scan(&n)
			})
			if err != nil {
				return total, s.wrap("purge", err)
			}
			total += int(n)
		}
	}
}

// PutBundle implements msg.Store.
func (s *Store) PutBundle(ctx context.Context, mailbox string, bundle []byte) error {
	if err := storekit.CheckMailbox(mailbox); err != nil {
		return err
	}
	if err := s.check(ctx); err != nil {
		return err
	}
	if bundle == nil {
		bundle = []byte{}
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO msg_bundles (mailbox, bundle) VALUES ($1, $2)
		ON CONFLICT (mailbox) DO UPDATE SET bundle = EXCLUDED.bundle, updated_at = now()`, mailbox, bundle)
	if err != nil {
		return s.wrap("put bundle", err)
	}
	return nil
}

// GetBundle implements msg.Store.
func (s *Store) GetBundle(ctx context.Context, mailbox string) ([]byte, error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	var b []byte
	err := s.pool.QueryRow(ctx, `SELECT bundle FROM msg_bundles WHERE mailbox = $1`, mailbox).Scan(&b)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("pgstore: key bundle: %w", msg.ErrNotFound)
	}
	if err != nil {
		return nil, s.wrap("key bundle", err)
	}
	return b, nil
}

// Usage implements msg.Store.
func (s *Store) Usage(ctx context.Context, mailbox string) (int, int64, error) {
	if err := s.check(ctx); err != nil {
		return 0, 0, err
	}
	var m, b int64
	err := s.pool.QueryRow(ctx, `SELECT messages, bytes FROM msg_usage WHERE mailbox = $1`, mailbox).Scan(&m, &b)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, s.wrap("usage", err)
	}
	return int(m), b, nil
}

// Notify implements msg.Store: the channel is closed when a NOTIFY for mailbox reaches
// this Store's LISTEN connection (a Put through any Store on the same schema), when that
// connection is re-established after a loss (notifications may have been missed), or at
// Close. A wake-up may be spurious (a Put committed just before Notify); long-poll callers
// list again anyway.
func (s *Store) Notify(ctx context.Context, mailbox string) (<-chan struct{}, func(), error) {
	if err := s.check(ctx); err != nil {
		return nil, nil, err
	}
	ch, cancel := s.hub.Wait(mailbox)
	return ch, cancel, nil
}

// Close stops the LISTEN connection, wakes every Notify waiter and closes the pool (after
// the calls in progress return). Closing twice returns msg.ErrClosed.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return msg.ErrClosed
	}
	s.stopListen()
	<-s.listenDone
	s.hub.Close()
	s.pool.Close()
	return nil
}

// Totals implements msg.Totaler with one aggregate query over the usage rows: the
// mailboxes holding envelopes, their envelopes and bytes, and how many hold at most
// each bound of msg.MailboxSizeBounds.
func (s *Store) Totals(ctx context.Context) (msg.Totals, error) {
	if err := s.check(ctx); err != nil {
		return msg.Totals{}, err
	}
	bounds := msg.MailboxSizeBounds()
	var q strings.Builder
	q.WriteString(`SELECT count(*), coalesce(sum(messages), 0)::bigint, coalesce(sum(bytes), 0)::bigint`)
	for i := range bounds {
		fmt.Fprintf(&q, `, count(*) FILTER (WHERE messages <= $%d)`, i+1)
	}
	q.WriteString(` FROM msg_usage WHERE messages > 0`)
	args := make([]any, len(bounds))
	var t msg.Totals
	t.MailboxSizes = make([]uint64, len(bounds))
	dest := []any{&t.Mailboxes, &t.Envelopes, &t.Bytes}
	for i, b := range bounds {
		args[i] = int64(b)
		dest = append(dest, &t.MailboxSizes[i])
	}
	if err := s.pool.QueryRow(ctx, q.String(), args...).Scan(dest...); err != nil {
		return msg.Totals{}, s.wrap("totals", err)
	}
	return t, nil
}
