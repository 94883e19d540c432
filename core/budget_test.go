package core_test

import (
	"errors"
	"sync"
	"testing"

	"github.com/alknet/alknet/core"
)

func TestBudgetScopesAndEdges(t *testing.T) {
	node := core.NewBudget(core.BudgetScopeNode, 100, nil)
	ip := core.NewBudget(core.BudgetScopeIP, 60, node)
	c1 := core.NewBudget(core.BudgetScopeConn, 40, ip)
	c2 := core.NewBudget(core.BudgetScopeConn, 40, ip)

	// Exactly the connection limit fits; one byte more names the connection scope.
	if err := c1.Reserve(40); err != nil {
		t.Fatalf("reserve at the connection limit: %v", err)
	}
	err := c1.Reserve(1)
	var be *core.BudgetError
	if !errors.As(err, &be) || be.Scope != core.BudgetScopeConn || be.Limit != 40 || !errors.Is(err, core.ErrBudgetExceeded) {
		t.Fatalf("reserve past the connection limit = %v", err)
	}
	if got := err.Error(); got != "memory budget exceeded: max_buffered_bytes_per_conn of 40 bytes" {
		t.Fatalf("error text = %q", got)
	}
	// The address scope is shared: c2 gets only what is left of its 60.
	if err := c2.Reserve(20); err != nil {
		t.Fatalf("reserve within the address limit: %v", err)
	}
	if err := c2.Reserve(1); !errors.As(err, &be) || be.Scope != core.BudgetScopeIP {
		t.Fatalf("reserve past the address limit = %v", err)
	}
	// A failed reservation took nothing anywhere.
	if c1.Used() != 40 || c2.Used() != 20 || ip.Used() != 60 || node.Used() != 60 {
		t.Fatalf("used after failures: c1 %d c2 %d ip %d node %d", c1.Used(), c2.Used(), ip.Used(), node.Used())
	}
	// Another address's connection meets the node limit.
	other := core.NewBudget(core.BudgetScopeConn, -1, core.NewBudget(core.BudgetScopeIP, -1, node))
	if err := other.Reserve(40); err != nil {
		t.Fatal(err)
	}
	if err := other.Reserve(1); !errors.As(err, &be) || be.Scope != core.BudgetScopeNode || be.Limit != 100 {
		t.Fatalf("reserve past the node limit = %v", err)
	}
	c1.Release(40)
	c2.Release(20)
	other.Release(40)
	if node.Used() != 0 || ip.Used() != 0 {
		t.Fatalf("after release: node %d ip %d", node.Used(), ip.Used())
	}
	// A lowered limit applies to new reservations only.
	node.SetLimit(10)
	if err := c1.Reserve(11); !errors.As(err, &be) || be.Scope != core.BudgetScopeNode {
		t.Fatalf("after SetLimit: %v", err)
	}
}

func TestNilBudgetHasNoLimit(t *testing.T) {
	var b *core.Budget
	if err := b.Reserve(1 << 40); err != nil {
		t.Fatal(err)
	}
	b.Release(1 << 40)
	if b.Used() != 0 || b.Limit() != -1 {
		t.Fatalf("nil budget: used %d limit %d", b.Used(), b.Limit())
	}
	r := b.Reservation()
	if err := r.Grow(5); err != nil || r.Bytes() != 5 {
		t.Fatalf("nil reservation: %v %d", err, r.Bytes())
	}
	r.Release()
}

func TestReservation(t *testing.T) {
	b := core.NewBudget(core.BudgetScopeConn, 10, nil)
	r := b.Reservation()
	if err := r.Grow(6); err != nil {
		t.Fatal(err)
	}
	if err := r.Grow(5); err == nil {
		t.Fatal("grew past the limit")
	}
	if r.Bytes() != 6 || b.Used() != 6 {
		t.Fatalf("bytes %d used %d", r.Bytes(), b.Used())
	}
	r.Release()
	if b.Used() != 0 || r.Bytes() != 0 {
		t.Fatalf("after release: used %d bytes %d", b.Used(), r.Bytes())
	}
}

func TestBudgetConcurrentNeverOvershoots(t *testing.T) {
	node := core.NewBudget(core.BudgetScopeNode, 1000, nil)
	var wg sync.WaitGroup
	var mu sync.Mutex
	granted := 0
	for range 8 {
		c := core.NewBudget(core.BudgetScopeConn, -1, node)
		wg.Go(func() {
			for range 500 {
				if c.Reserve(3) == nil {
					mu.Lock()
					granted += 3
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if granted > 1000 || node.Used() != int64(granted) {
		t.Fatalf("granted %d, node used %d, limit 1000", granted, node.Used())
	}
}

func TestBudgetPoolSharesAddressScope(t *testing.T) {
	p := core.NewBudgetPool(-1)
	l := core.Limits{MaxBufferedBytes: 100, MaxBufferedBytesPerIP: 50, MaxBufferedBytesPerConn: 30}
	a1, rel1 := p.NewConn(l, "192.0.2.1")
	a2, rel2 := p.NewConn(l, "192.0.2.1")
	ex, rel3 := p.NewConn(l, "") // exempt: directly under the node
	if err := a1.Reserve(30); err != nil {
		t.Fatal(err)
	}
	var be *core.BudgetError
	if err := a2.Reserve(30); !errors.As(err, &be) || be.Scope != core.BudgetScopeIP {
		t.Fatalf("second connection of the address = %v, want the address limit", err)
	}
	if err := ex.Reserve(30); err != nil {
		t.Fatalf("exempt connection: %v", err)
	}
	if p.Node().Used() != 60 || p.Node().Limit() != 100 {
		t.Fatalf("node used %d limit %d", p.Node().Used(), p.Node().Limit())
	}
	a1.Release(30)
	ex.Release(30)
	rel1()
	rel2()
	rel2() // idempotent
	rel3()
	// The address scope was dropped with its last connection: a new one starts empty.
	a3, rel4 := p.NewConn(l, "192.0.2.1")
	defer rel4()
	if err := a3.Reserve(30); err != nil {
		t.Fatalf("new connection of the address: %v", err)
	}
	a3.Release(30)
}
