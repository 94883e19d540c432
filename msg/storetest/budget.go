package storetest

import (
	"slices"
	"testing"
	"time"

	"github.com/alknet/alknet/msg"
)

// testListByteBudget: List's maxBytes is a budget on the sum of len(Data) of a page,
// inclusive at its edge; the first envelope of a page is always returned even when it is
// larger than the whole budget; expired envelopes count for nothing; limit still caps the
// page; maxBytes <= 0 is no budget; the cursor continues at the envelope left out.
func testListByteBudget(t *testing.T, s msg.Store) {
	mb := newMailbox()
	sizes := []int{100, 200, 300, 1000, 50, 25, 25}
	var want []msg.StoredEnvelope
	for i, n := range sizes {
		e := env(mb, time.Duration(i)*time.Second, n)
		put(t, s, e, msg.Quota{})
		want = append(want, e)
		if i == 0 {
			// An expired envelope far over any budget below, between the first two.
			x := env(mb, time.Duration(i)*time.Second+time.Millisecond, 5000)
			x.ExpiresAt = base
			put(t, s, x, msg.Quota{})
		}
	}
	cases := []struct {
		limit    int
		maxBytes int64
		pages    [][]int // sizes of each page
	}{
		{10, 300, [][]int{{100, 200}, {300}, {1000}, {50, 25, 25}}}, // sum exactly at the budget: included
		{10, 299, [][]int{{100}, {200}, {300}, {1000}, {50, 25, 25}}},
		{10, 1, [][]int{{100}, {200}, {300}, {1000}, {50}, {25}, {25}}}, // each first envelope over budget
		{2, 1 << 20, [][]int{{100, 200}, {300, 1000}, {50, 25}, {25}}},  // limit caps first
		{10, 0, [][]int{sizes}},
		{10, -1, [][]int{sizes}},
		{3, 1350, [][]int{{100, 200, 300}, {1000, 50, 25}, {25}}},
		{10, 1400, [][]int{{100, 200, 300}, {1000, 50, 25, 25}}},
	}
	for _, tc := range cases {
		var got [][]int
		var all []msg.StoredEnvelope
		var cur msg.Cursor
		for range 100 {
			page, next, err := s.List(t.Context(), mb, cur, tc.limit, tc.maxBytes, base)
			if err != nil {
				t.Fatalf("List(limit %d, maxBytes %d): %v", tc.limit, tc.maxBytes, err)
			}
			if len(page) == 0 {
				if next != cur {
					t.Fatalf("List(limit %d, maxBytes %d): empty page moved the cursor", tc.limit, tc.maxBytes)
				}
				break
			}
			var ps []int
			for _, e := range page {
				ps = append(ps, len(e.Data))
			}
			got = append(got, ps)
			all = append(all, page...)
			cur = next
		}
		if !slices.EqualFunc(got, tc.pages, slices.Equal) {
			t.Fatalf("List(limit %d, maxBytes %d) pages %v, want %v", tc.limit, tc.maxBytes, got, tc.pages)
		}
		sameEnvelopes(t, "budgeted pages", all, want)
	}
}
