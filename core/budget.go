package core

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
)

// ErrBudgetExceeded is wrapped by every [*BudgetError].
var ErrBudgetExceeded = errors.New("memory budget exceeded")

// Budget scopes, as [BudgetError.Scope] names them: each is the configuration key of its
// limit in [Limits].
const (
	BudgetScopeNode = "max_buffered_bytes"
	BudgetScopeIP   = "max_buffered_bytes_per_ip"
	BudgetScopeConn = "max_buffered_bytes_per_conn"
)

// BudgetError reports a reservation that would take a scope past its limit. Its text
// names the limit, so a peer whose stream is reset learns which one it hit.
type BudgetError struct {
	// Scope is the configuration key of the limit ([BudgetScopeConn] and the others).
	Scope string
	// Limit is the scope's limit in bytes.
	Limit int64
}

// Error names the limit.
func (e *BudgetError) Error() string {
	return fmt.Sprintf("%s: %s of %d bytes", ErrBudgetExceeded, e.Scope, e.Limit)
}

// Unwrap returns [ErrBudgetExceeded].
func (e *BudgetError) Unwrap() error { return ErrBudgetExceeded }

// Budget counts bytes held in memory against a limit, like a libp2p resource scope: a
// connection's budget has a parent (its remote address's), which has its own (the
// node's), and a reservation succeeds only when every scope up the chain has room.
// Handlers reserve inbound bytes as they buffer them (a frame is read incrementally, so
// a peer that announces a large frame and sends little holds what it sent) and release
// them when done.
//
// A nil *Budget has no limit: Reserve always succeeds and Release does nothing, so code
// running on connections without a budget (a connection built outside an endpoint)
// needs no special case. It is safe for concurrent use.
type Budget struct {
	scope  string
	parent *Budget
	limit  atomic.Int64 // < 0: none
	used   atomic.Int64
}

// NewBudget returns a budget for scope (a configuration key, used in errors) with the
// given limit (negative: none) under parent (nil: top level).
func NewBudget(scope string, limit int64, parent *Budget) *Budget {
	b := &Budget{scope: scope, parent: parent}
	b.limit.Store(limit)
	return b
}

// SetLimit changes the limit (negative: none). Bytes already reserved stay reserved,
// even above a lowered limit; only new reservations see it.
func (b *Budget) SetLimit(limit int64) {
	if b != nil {
		b.limit.Store(limit)
	}
}

// Limit returns the limit (negative: none; nil budget: -1).
func (b *Budget) Limit() int64 {
	if b == nil {
		return -1
	}
	return b.limit.Load()
}

// Used returns the bytes reserved in this scope, its children's included.
func (b *Budget) Used() int64 {
	if b == nil {
		return 0
	}
	return b.used.Load()
}

// Reserve takes n bytes in this scope and every parent, or none of them: it returns a
// [*BudgetError] naming the first scope that has no room. n <= 0 reserves nothing.
func (b *Budget) Reserve(n int64) error {
	if b == nil || n <= 0 {
		return nil
	}
	for s := b; s != nil; s = s.parent {
		if err := s.take(n); err != nil {
			for r := b; r != s; r = r.parent {
				r.used.Add(-n)
			}
			return err
		}
	}
	return nil
}

func (b *Budget) take(n int64) error {
	limit := b.limit.Load()
	if limit < 0 {
		b.used.Add(n)
		return nil
	}
	for {
		u := b.used.Load()
		if u+n > limit {
			return &BudgetError{Scope: b.scope, Limit: limit}
		}
		if b.used.CompareAndSwap(u, u+n) {
			return nil
		}
	}
}

// Release returns n bytes reserved with Reserve to this scope and every parent.
func (b *Budget) Release(n int64) {
	if b == nil || n <= 0 {
		return
	}
	for s := b; s != nil; s = s.parent {
		s.used.Add(-n)
	}
}

// Reservation is a running total of bytes reserved in a [Budget] for one buffer, released
// at once with Release. The zero value has a nil budget (no limit).
type Reservation struct {
	b *Budget
	n int64
}

// Reservation returns an empty reservation in b.
func (b *Budget) Reservation() *Reservation { return &Reservation{b: b} }

// Grow reserves n more bytes.
func (r *Reservation) Grow(n int64) error {
	if err := r.b.Reserve(n); err != nil {
		return err
	}
	r.n += n
	return nil
}

// Bytes returns the bytes reserved so far.
func (r *Reservation) Bytes() int64 { return r.n }

// Release returns every byte reserved so far; the reservation can grow again afterwards.
func (r *Reservation) Release() {
	r.b.Release(r.n)
	r.n = 0
}

// budgetEntry is one address's budget and the connections holding it.
type budgetEntry struct {
	b    *Budget
	refs int
}

// BudgetPool holds a node's [Budget] and the per-address budgets under it, each kept
// while a connection from that address holds it. An endpoint owns one; NewConn gives each
// connection its budget.
type BudgetPool struct {
	node *Budget
	mu   sync.Mutex
	ips  map[string]*budgetEntry
}

// NewBudgetPool returns a pool whose node budget has the given limit (negative: none).
func NewBudgetPool(nodeLimit int64) *BudgetPool {
	return &BudgetPool{node: NewBudget(BudgetScopeNode, nodeLimit, nil), ips: make(map[string]*budgetEntry)}
}

// Node returns the node-wide budget.
func (p *BudgetPool) Node() *Budget { return p.node }

// NewConn applies the budget limits of l (effective) to the node budget and returns a
// budget for one connection: under the budget of ipKey (shared by the connections of
// that key; "" for an address exempt from per-IP limits: directly under the node) and
// a release func to call when the connection is done.
func (p *BudgetPool) NewConn(l Limits, ipKey string) (*Budget, func()) {
	p.node.SetLimit(l.MaxBufferedBytes)
	if ipKey == "" {
		return NewBudget(BudgetScopeConn, l.MaxBufferedBytesPerConn, p.node), func() {}
	}
	p.mu.Lock()
	e, ok := p.ips[ipKey]
	if !ok {
		e = &budgetEntry{b: NewBudget(BudgetScopeIP, l.MaxBufferedBytesPerIP, p.node)}
		p.ips[ipKey] = e
	}
	e.b.SetLimit(l.MaxBufferedBytesPerIP)
	e.refs++
	p.mu.Unlock()
	return NewBudget(BudgetScopeConn, l.MaxBufferedBytesPerConn, e.b), sync.OnceFunc(func() {
		p.mu.Lock()
		if e.refs--; e.refs == 0 {
			delete(p.ips, ipKey)
		}
		p.mu.Unlock()
	})
}
