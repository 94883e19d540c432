package pgstore

import (
	"bufio"
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/alknet/alknet/msg"
)

// crashHelperEnv carries the schema to the helper process; only TestCrash sets it.
const crashHelperEnv = "ALKNET_PGSTORE_CRASH_HELPER_SCHEMA"

const crashMailbox = "crash-mailbox"

// TestCrashHelper is not a test of its own: run by TestCrash in a child process, it Puts
// envelopes from four goroutines and prints each acknowledged id on stdout until killed.
func TestCrashHelper(t *testing.T) {
	schema := os.Getenv(crashHelperEnv)
	if schema == "" {
		t.Skip("helper process of TestCrash")
	}
	s, err := Open(context.Background(), testDSN(t), Options{Schema: schema})
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper open:", err)
		os.Exit(2)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	for w := range 4 {
		wg.Go(func() {
			for i := 0; i < 1_000_000; i++ {
				var id [16]byte
				id[0] = byte(w)
				copy(id[8:], fmt.Appendf(nil, "%08x", i))
				at := start.Add(time.Duration(i))
				env := msg.StoredEnvelope{ID: id, Mailbox: crashMailbox, AcceptedAt: at, ExpiresAt: at.Add(time.Hour), Data: make([]byte, 512)}
				if _, _, err := s.Put(context.Background(), env, msg.Quota{}); err != nil {
					fmt.Fprintln(os.Stderr, "helper put:", err)
					os.Exit(2)
				}
				mu.Lock()
				_, err := fmt.Println(hex.EncodeToString(id[:]))
				mu.Unlock()
				if err != nil {
					os.Exit(3)
				}
			}
		})
	}
	wg.Wait()
	os.Exit(0)
}

// TestCrash kills a process with SIGKILL during a burst of Puts and checks, through a new
// Store, that every Put the process saw acknowledged is stored exactly once and that the
// usage counters match.
func TestCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping the crash test")
	}
	dsn := testDSN(t)
	schema := newSchema(t, dsn)
	// Migrate first, so the child's start-up is not part of the burst.
	setup := openStore(t, dsn, schema)

	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashHelperEnv+"="+schema)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	failSafe := time.AfterFunc(60*time.Second, func() { _ = cmd.Process.Kill() })
	defer failSafe.Stop()

	const killAfter = 300
	acked := map[string]bool{}
	killed := false
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		acked[sc.Text()] = true
		if len(acked) == killAfter && !killed {
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			killed = true
		}
	}
	err = cmd.Wait()
	if !killed || len(acked) < killAfter {
		t.Fatalf("helper ended after %d acknowledged Puts before the kill: %v", len(acked), err)
	}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("helper was not killed by SIGKILL: %v", err)
	}

	// The server aborts the dead client's open transactions when it notices the closed
	// sockets; a new Store sees only what committed.
	s := openStore(t, dsn, schema)
	seen := map[string]int{}
	var cur msg.Cursor
	for {
		page, next, err := s.List(t.Context(), crashMailbox, cur, 100, 0, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		for _, e := range page {
			seen[hex.EncodeToString(e.ID[:])]++
		}
		cur = next
	}
	for id := range acked {
		if seen[id] != 1 {
			t.Errorf("acknowledged id %s stored %d times after the crash", id, seen[id])
		}
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("id %s stored %d times", id, n)
		}
	}
	checkConsistent(t, setup)
	t.Logf("%d Puts acknowledged before SIGKILL, %d stored", len(acked), len(seen))
}
