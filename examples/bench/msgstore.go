package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/alknet/alknet/msg"
	"github.com/alknet/alknet/msg/boltstore"
	"github.com/alknet/alknet/msg/pgstore"
)

// msgStoreArm is one store arm: its store, the msg server on it, and the clients: one
// connection per sender and one per mailbox owner.
type msgStoreArm struct {
	name    string
	addr    string // the endpoint's QUIC address
	store   msg.Store
	senders []*msg.Client
	owners  []*msg.Client
	// dirty are the pools whose envelopes may be in the store; lastDelivered is the
	// pool the last deliver round sent ("" once a fetch round consumed it).
	dirty         map[msgPoolKey]*msgPool
	lastDelivered msgPoolKey
}

// startStore opens the arm's store, starts msg.Server on it behind an endpoint and
// dials the clients.
func (f *msgFixture) startStore(ctx context.Context, name string, o msgBenchOptions) (*msgStoreArm, error) {
	sa := &msgStoreArm{name: name, dirty: make(map[msgPoolKey]*msgPool)}
	var storeName string
	switch name {
	case armMsgMemory:
		s := msg.NewMemStore()
		f.add(func(context.Context) error { return s.Close() })
		sa.store, storeName = s, msg.StoreMemory
	case armMsgBolt:
		dir, err := os.MkdirTemp("", "alknet-bench-msg-")
		if err != nil {
			return nil, err
		}
		f.add(func(context.Context) error { return os.RemoveAll(dir) })
		s, err := boltstore.Open(filepath.Join(dir, "msg.db"), boltstore.Options{})
		if err != nil {
			return nil, err
		}
		f.add(func(context.Context) error { return s.Close() })
		sa.store, storeName = s, msg.StoreBolt
	case armMsgPostgres:
		s, err := f.openPostgres(ctx, o.pgDSN)
		if err != nil {
			return nil, err
		}
		sa.store, storeName = s, msg.StorePostgres
	default:
		return nil, fmt.Errorf("unknown store arm %q", name)
	}
	srv, err := msg.NewServer(msgServerConfig(storeName), sa.store, msg.Hosted(f.ownerKeys()...), msg.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		return nil, err
	}
	f.add(func(context.Context) error { return srv.Close() })
	addr, err := f.msgEndpoint(ctx, name, srv)
	if err != nil {
		return nil, err
	}
	sa.addr = addr
	sa.senders = make([]*msg.Client, o.senders)
	sa.owners = make([]*msg.Client, len(f.owners))
	f.add(func(context.Context) error {
		for _, c := range append(slices.Clone(sa.senders), sa.owners...) {
			if c != nil {
				_ = c.Close()
			}
		}
		return nil
	})
	if err := sa.refresh(ctx, f); err != nil {
		return nil, err
	}
	// Owner 0 publishes its bundle: refresh's probe reads it.
	if err := sa.owners[0].PutKeys(ctx, f.owners[0].bundle); err != nil {
		return nil, fmt.Errorf("publish a key bundle: %w", err)
	}
	return sa, nil
}

// refresh dials every client not dialed yet, and redials every one that does not answer
// a keys.get (the endpoint closes connections idle for 30 s, and a connection waits
// idle while the other arms run).
func (sa *msgStoreArm) refresh(ctx context.Context, f *msgFixture) error {
	probe := f.owners[0].pub
	fix := func(cs []*msg.Client, party func(i int) *msgParty) error {
		for i, c := range cs {
			if c != nil {
				if _, err := c.GetKeys(ctx, probe); err == nil {
					continue
				}
				_ = c.Close()
				cs[i] = nil
			}
			c, err := f.dial(ctx, sa.name, sa.addr, party(i))
			if err != nil {
				return fmt.Errorf("dial: %w", err)
			}
			cs[i] = c
		}
		return nil
	}
	if err := fix(sa.senders, func(int) *msgParty { return f.sender }); err != nil {
		return err
	}
	return fix(sa.owners, func(i int) *msgParty { return f.owners[i] })
}

// prepareDeliver readies a deliver round: the clients answer and the mailboxes are
// empty.
func (sa *msgStoreArm) prepareDeliver(ctx context.Context, f *msgFixture) error {
	if err := sa.refresh(ctx, f); err != nil {
		return err
	}
	return sa.drain(ctx)
}

func (f *msgFixture) ownerKeys() []ed25519.PublicKey {
	keys := make([]ed25519.PublicKey, len(f.owners))
	for i, o := range f.owners {
		keys[i] = o.pub
	}
	return keys
}

// openPostgres opens a pgstore on a schema of its own (dropped at shutdown, after the
// store closes) and records the server's version.
func (f *msgFixture) openPostgres(ctx context.Context, dsn string) (*pgstore.Store, error) {
	schema := "msgbench_" + strings.ToLower(rand.Text())
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if err := conn.QueryRow(ctx, "SHOW server_version").Scan(&f.pgVersion); err != nil {
		_ = conn.Close(ctx)
		return nil, fmt.Errorf("postgres: server version: %w", err)
	}
	_ = conn.Close(ctx)
	f.pgVersion = "PostgreSQL " + f.pgVersion
	f.add(func(ctx context.Context) error {
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			return fmt.Errorf("postgres: drop the schema: %w", err)
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, `DROP SCHEMA IF EXISTS `+pgx.Identifier{schema}.Sanitize()+` CASCADE`); err != nil {
			return fmt.Errorf("postgres: drop the schema: %w", err)
		}
		return nil
	})
	s, err := pgstore.Open(ctx, dsn, pgstore.Options{Schema: schema})
	if err != nil {
		return nil, err
	}
	f.add(func(context.Context) error { return s.Close() })
	return s, nil
}

// drain empties the arm's mailboxes of every pool a round may have left there (one
// Delete per pool and mailbox, on the store directly) and checks they are empty.
func (sa *msgStoreArm) drain(ctx context.Context) error {
	for key, p := range sa.dirty {
		for i, ids := range p.ids {
			if len(ids) == 0 {
				continue
			}
			if _, err := sa.store.Delete(ctx, p.mailboxes[i], ids); err != nil {
				return fmt.Errorf("drain: %w", err)
			}
		}
		delete(sa.dirty, key)
	}
	sa.lastDelivered = ""
	return nil
}

// prepareFetch makes sure the mailboxes hold what a deliver round of p delivered: the
// envelopes of the deliver round just before, or else (emptied first) what an untimed
// deliver round of d delivers.
func (sa *msgStoreArm) prepareFetch(ctx context.Context, f *msgFixture, p *msgPool, d time.Duration) error {
	if err := sa.refresh(ctx, f); err != nil {
		return err
	}
	if sa.lastDelivered == p.key {
		return nil
	}
	if err := sa.drain(ctx); err != nil {
		return err
	}
	lat := make([][]time.Duration, p.owners)
	if _, err := sa.deliverRound(ctx, p, d, lat); err != nil {
		return fmt.Errorf("fill: %w", err)
	}
	return nil
}

// deliverRound has p.owners senders deliver p's envelopes in turn (one shared index)
// until d has passed or the pool is used up, and returns deliveries/s. Each delivery is
// timed; a duplicate answer (the mailbox was not emptied) fails the round.
func (sa *msgStoreArm) deliverRound(ctx context.Context, p *msgPool, d time.Duration, lat [][]time.Duration) (sample, error) {
	sa.dirty[p.key] = p
	sa.lastDelivered = p.key
	var next atomic.Int64
	return msgLatencyRound(ctx, d, lat, "delivery", func(w int) func(context.Context) (int, time.Time, error) {
		c := sa.senders[w]
		return func(ctx context.Context) (int, time.Time, error) {
			i := int(next.Add(1) - 1)
			if i >= len(p.envs) {
				return 0, time.Time{}, errMsgDone
			}
			r, err := c.Deliver(ctx, p.envs[i])
			t1 := time.Now()
			if err != nil {
				return 0, t1, err
			}
			if r.Duplicate {
				return 0, t1, fmt.Errorf("envelope %d answered as a duplicate", i)
			}
			return 1, t1, nil
		}
	})
}

// fetchRound has p.owners owners each fetch pages of up to batch envelopes of its
// mailbox and ack them, until the mailbox is empty or d has passed, and returns
// envelopes/s. A page (fetch + ack) is timed.
func (sa *msgStoreArm) fetchRound(ctx context.Context, p *msgPool, batch int, d time.Duration, lat [][]time.Duration) (sample, error) {
	sa.lastDelivered = ""
	return msgLatencyRound(ctx, d, lat, "fetch", func(w int) func(context.Context) (int, time.Time, error) {
		c := sa.owners[w]
		after := ""
		ids := make([][msg.IDSize]byte, 0, batch)
		return func(ctx context.Context) (int, time.Time, error) {
			res, err := c.Fetch(ctx, msg.FetchOptions{After: after, Limit: batch})
			if err != nil {
				return 0, time.Time{}, err
			}
			if len(res.Envelopes) == 0 {
				return 0, time.Time{}, errMsgDone
			}
			ids = ids[:0]
			for _, e := range res.Envelopes {
				ids = append(ids, e.Envelope.ID)
			}
			n, err := c.Ack(ctx, ids...)
			t1 := time.Now()
			if err != nil {
				return 0, t1, err
			}
			if n != len(ids) {
				return 0, t1, fmt.Errorf("ack of %d envelopes deleted %d", len(ids), n)
			}
			after = res.Next
			return n, t1, nil
		}
	})
}

// errMsgDone ends a worker of msgLatencyRound: its pool or mailbox is used up.
var errMsgDone = errors.New("done")

// msgLatencyRound is latencyRound where an operation completes count items (the rate
// counts items, the latency buffers operations) and a worker also stops when its
// operation returns errMsgDone (its time is not recorded). The round lasts until d has
// passed or every worker is done.
func msgLatencyRound(ctx context.Context, d time.Duration, lat [][]time.Duration, what string, newOp func(w int) func(context.Context) (int, time.Time, error)) (sample, error) {
	ctx, cancel := context.WithTimeout(ctx, d+callTimeout)
	defer cancel()
	var failed atomic.Bool
	var firstErr error
	var errOnce sync.Once
	var items atomic.Int64
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for w := range lat {
		wg.Go(func() {
			op := newOp(w)
			buf := lat[w][:0]
			defer func() { lat[w] = buf }()
			t0 := time.Now()
			for t0.Before(deadline) && !failed.Load() {
				n, t1, err := op(ctx)
				if errors.Is(err, errMsgDone) {
					return
				}
				if err != nil {
					errOnce.Do(func() { firstErr = err })
					failed.Store(true)
					return
				}
				items.Add(int64(n))
				buf = append(buf, t1.Sub(t0))
				t0 = t1
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if firstErr != nil {
		return sample{}, firstErr
	}
	n := int(items.Load())
	if n == 0 {
		return sample{}, fmt.Errorf("no %s completed", what)
	}
	return sample{value: float64(n) / elapsed.Seconds(), ops: n}, nil
}

// check delivers an envelope of each body size from the sender to owner, delivers it
// again (a duplicate), fetches it, opens it and acks it, and checks that the mailbox is
// empty after.
func (sa *msgStoreArm) check(ctx context.Context, sender, owner *msgParty) error {
	send, recv := sa.senders[0], sa.owners[0]
	for _, n := range []int{msgSmallBody, msgLargeBody} {
		body := msgBody(n)
		env, err := msg.Seal(sender.key, owner.pub, owner.bundle, body, msgContentType)
		if err != nil {
			return err
		}
		if r, err := send.Deliver(ctx, env); err != nil || r.Duplicate {
			return fmt.Errorf("deliver %s: duplicate %v, %w", msgSizeLabel(n), r.Duplicate, err)
		}
		if r, err := send.Deliver(ctx, env); err != nil || !r.Duplicate {
			return fmt.Errorf("deliver %s again: duplicate %v (want true), %w", msgSizeLabel(n), r.Duplicate, err)
		}
		res, err := recv.Fetch(ctx, msg.FetchOptions{})
		if err != nil {
			return fmt.Errorf("fetch: %w", err)
		}
		if len(res.Envelopes) != 1 {
			return fmt.Errorf("fetch: %d envelopes, want 1", len(res.Envelopes))
		}
		m, err := msg.Open(owner.x.priv, owner.pub, res.Envelopes[0].Envelope)
		if err != nil {
			return fmt.Errorf("open: %w", err)
		}
		if !bytes.Equal(m.Body, body) || !m.From.Equal(sender.pub) || m.ContentType != msgContentType {
			return fmt.Errorf("the fetched %s message differs from the one sent", msgSizeLabel(n))
		}
		if k, err := recv.Ack(ctx, m.ID); err != nil || k != 1 {
			return fmt.Errorf("ack: %d deleted (want 1), %w", k, err)
		}
		if left, _, err := sa.store.Usage(ctx, msg.Mailbox(owner.pub)); err != nil || left != 0 {
			return fmt.Errorf("after the ack the mailbox holds %d envelopes, %w", left, err)
		}
	}
	return nil
}
