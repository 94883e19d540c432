package storekit

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

func TestCursorRoundTripAndOrder(t *testing.T) {
	ps := []Position{
		{AcceptedNs: math.MinInt64, Seq: 0},
		{AcceptedNs: -1, Seq: math.MaxUint64},
		{AcceptedNs: 0, Seq: 0},
		{AcceptedNs: 0, Seq: 1},
		{AcceptedNs: 1, Seq: 0},
		{AcceptedNs: math.MaxInt64, Seq: math.MaxUint64},
	}
	for i, p := range ps {
		c := p.Cursor()
		got, start, err := ParseCursor(c)
		if err != nil || start || got != p {
			t.Fatalf("ParseCursor(%q) = %+v, %v, %v; want %+v", c, got, start, err, p)
		}
		if i > 0 {
			prev := ps[i-1]
			if !prev.Less(p) || p.Less(prev) {
				t.Fatalf("%+v and %+v out of order", prev, p)
			}
			pk, k := prev.Key(), p.Key()
			if string(pk[:]) >= string(k[:]) {
				t.Fatalf("keys of %+v and %+v do not sort bytewise", prev, p)
			}
		}
	}
	if _, start, err := ParseCursor(""); !start || err != nil {
		t.Fatalf(`ParseCursor("") = start %v, %v`, start, err)
	}
}

func TestParseCursorRejects(t *testing.T) {
	for _, c := range []string{"A", strings.Repeat("A", 21), strings.Repeat("A", 23), strings.Repeat("!", 22),
		strings.Repeat("A", 21) + "B", // non-canonical trailing bits
		strings.Repeat("A", 1<<20)} {
		if _, _, err := ParseCursor(c); err == nil {
			t.Errorf("ParseCursor(%.30q) accepted", c)
		}
	}
}

func TestQuotaExceededEdges(t *testing.T) {
	cases := []struct {
		maxM       int
		maxB       int64
		m, b       int64
		n          int
		wantRefuse bool
	}{
		{3, 0, 2, 0, 1, false},
		{3, 0, 3, 0, 1, true},
		{0, 0, 1 << 40, 1 << 40, 1 << 30, false},
		{0, 100, 60, 60, 40, false},
		{0, 100, 60, 60, 41, true},
		{-1, -1, 5, 5, 5, false},
	}
	for _, c := range cases {
		if got := QuotaExceeded(c.maxM, c.maxB, c.m, c.b, c.n) != ""; got != c.wantRefuse {
			t.Errorf("QuotaExceeded(%+v) refuses = %v, want %v", c, got, c.wantRefuse)
		}
	}
}

func TestOverBudgetEdges(t *testing.T) {
	cases := []struct {
		maxBytes int64
		n        int
		used     int64
		size     int
		want     bool
	}{
		{100, 0, 0, 1000, false}, // the first envelope is always taken
		{100, 1, 60, 40, false},  // exactly at the budget
		{100, 1, 60, 41, true},
		{0, 5, 1 << 40, 1 << 30, false}, // no budget
		{-1, 5, 1 << 40, 1 << 30, false},
		{1, 1, 1, 0, false},
	}
	for _, c := range cases {
		if got := OverBudget(c.maxBytes, c.n, c.used, c.size); got != c.want {
			t.Errorf("OverBudget(%+v) = %v, want %v", c, got, c.want)
		}
	}
}

func TestCheckEnvelope(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 1, time.UTC)
	if _, _, err := CheckEnvelope("m", now, now); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		mailbox string
		a, e    time.Time
	}{
		{"", now, now},
		{strings.Repeat("m", MaxMailboxLen+1), now, now},
		{"m", time.Time{}, now},
		{"m", now, time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC)},
	} {
		if _, _, err := CheckEnvelope(c.mailbox, c.a, c.e); !errors.Is(err, ErrInvalid) {
			t.Errorf("CheckEnvelope(%.10q, %v, %v) = %v, want ErrInvalid", c.mailbox, c.a, c.e, err)
		}
	}
}

func TestHub(t *testing.T) {
	h := NewHub()
	a, cancelA := h.Wait("a")
	b, _ := h.Wait("b")
	h.Wake("a")
	select {
	case <-a:
	default:
		t.Fatal("Wake(a) did not close a's channel")
	}
	select {
	case <-b:
		t.Fatal("Wake(a) closed b's channel")
	default:
	}
	cancelA()
	h.Close()
	<-b
	c, _ := h.Wait("c")
	<-c // closed hub: already closed
	if h.Len() != 0 {
		t.Fatalf("closed hub holds %d waiters", h.Len())
	}
}

// FuzzParseCursor: any string either parses to a position whose cursor is the same
// string, or is refused; nothing panics.
func FuzzParseCursor(f *testing.F) {
	f.Add("")
	f.Add(Position{AcceptedNs: 1, Seq: 2}.Cursor())
	f.Add(strings.Repeat("_", 22))
	f.Add("AAAAAAAAAAAAAAAAAAAAAB")
	f.Fuzz(func(t *testing.T, c string) {
		p, start, err := ParseCursor(c)
		if err != nil || start {
			return
		}
		if p.Cursor() != c {
			t.Fatalf("ParseCursor(%q) = %+v, whose cursor is %q", c, p, p.Cursor())
		}
	})
}
