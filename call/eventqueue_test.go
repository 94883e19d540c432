package call

import (
	"encoding/json"
	"slices"
	"strconv"
	"testing"
	"time"
)

func evs(from, to int) []json.RawMessage {
	var out []json.RawMessage
	for i := from; i < to; i++ {
		out = append(out, json.RawMessage(strconv.Itoa(i)))
	}
	return out
}

// takeAll takes what is queued and returns every event, as Next does.
func takeAll(e *eventQueue, local *[]json.RawMessage) []string {
	var got []string
	if e.take(local) {
		for i, ev := range *local {
			got = append(got, string(ev))
			(*local)[i] = nil
			e.returned()
		}
	}
	return got
}

// TestEventQueueOverflowEdge checks the limit of a shared stream's subscription at
// its edge: max events fit, whether queued or taken by Next and not yet returned; one
// more overflows, after the ones that fit.
func TestEventQueueOverflowEdge(t *testing.T) {
	quit := make(chan struct{})
	e := newEventQueue(3)
	if !e.deliver(evs(0, 2), false, quit) || !e.deliver(evs(2, 3), false, quit) {
		t.Fatal("3 events overflowed a buffer of 3")
	}
	var local []json.RawMessage
	if !e.take(&local) || len(local) != 3 {
		t.Fatalf("took %d events, want 3", len(local))
	}
	// Taken but not returned: they still count.
	if e.deliver(evs(3, 4), false, quit) {
		t.Fatal("a 4th event fit while 3 were held")
	}
	for i := range local {
		local[i] = nil
		e.returned()
	}
	if !e.deliver(evs(4, 6), false, quit) {
		t.Fatal("2 events overflowed an empty buffer of 3")
	}
	if e.deliver(evs(6, 8), false, quit) {
		t.Fatal("4 events fit in a buffer of 3")
	}
	if got := takeAll(e, &local); !slices.Equal(got, []string{"4", "5", "6"}) {
		t.Fatalf("queued after the overflow: %v, want [4 5 6]", got)
	}
}

// TestEventQueueBlocks checks a stream of its own: the reader waits while the
// buffer is full and goes on, in order, once Next has made room; quit drops the rest.
func TestEventQueueBlocks(t *testing.T) {
	quit := make(chan struct{})
	e := newEventQueue(4)
	done := make(chan bool, 1)
	go func() { done <- e.deliver(evs(0, 100), true, quit) }()
	var got []string
	var local []json.RawMessage
	deadline := time.After(60 * time.Second)
	for len(got) < 100 {
		if taken := takeAll(e, &local); taken != nil {
			if len(taken) > 4 {
				t.Fatalf("took %d events from a buffer of 4", len(taken))
			}
			got = append(got, taken...)
			continue
		}
		select {
		case <-e.wake:
		case <-deadline:
			t.Fatalf("stalled after %d events", len(got))
		}
	}
	if !<-done {
		t.Fatal("blocking deliver reported an overflow")
	}
	for i, s := range got {
		if s != strconv.Itoa(i) {
			t.Fatalf("event %d = %s", i, s)
		}
	}
	// A full queue, then quit: the waiting reader gives up.
	go func() { done <- e.deliver(evs(0, 10), true, quit) }()
	close(quit)
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("deliver still waiting after quit")
	}
}

// TestEventQueueTwoReaders delivers from two streams at once (a peer may answer a
// subscription on any stream): neither reader is left waiting once Next has taken
// everything.
func TestEventQueueTwoReaders(t *testing.T) {
	quit := make(chan struct{})
	e := newEventQueue(2)
	done := make(chan bool, 2)
	for k := range 2 {
		go func() { done <- e.deliver(evs(k*1000, k*1000+300), true, quit) }()
	}
	var local []json.RawMessage
	n := 0
	deadline := time.After(60 * time.Second)
	for n < 600 {
		if taken := takeAll(e, &local); taken != nil {
			n += len(taken)
			continue
		}
		select {
		case <-e.wake:
		case <-deadline:
			t.Fatalf("stalled after %d of 600 events", n)
		}
	}
	for range 2 {
		if !<-done {
			t.Fatal("blocking deliver reported an overflow")
		}
	}
}
