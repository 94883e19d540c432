package ssh_test

import (
	"testing"

	"github.com/alknet/alknet/ssh"
)

// TestServerStats: sessions, exec accepted and refused, a refused subsystem and a
// refused forward move the counters; a session that ends leaves ActiveSessions.
func TestServerStats(t *testing.T) {
	ex := &ssh.AllowListExecutor{Allow: []string{"echo"}}
	n, alice, bob := stExecNode(t, ex)
	if r := stRun(t, alice.Client, "echo hi", nil); r.Err != nil {
		t.Fatalf("echo: %v", r.Err)
	}
	if r := stRun(t, alice.Client, "rm -rf /", nil); r.Err == nil {
		t.Fatal("rm ran")
	}
	sess, err := alice.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	if got := stRefusedSubsystem(t, sess, "no-such"); got == "" { // refused: the reason on stderr
		t.Fatal("subsystem no-such: no refusal on stderr")
	}
	_ = sess.Close()
	if _, err := bob.Dial("tcp", "127.0.0.1:1"); err == nil {
		t.Fatal("bob forwarded without the scope")
	}
	s := n.Srv.Stats()
	if s.Sessions != 2 || s.ActiveSessions != 2 {
		t.Errorf("sessions %d active %d, want 2 and 2", s.Sessions, s.ActiveSessions)
	}
	if s.Exec != (ssh.Outcomes{Accepted: 1, Refused: 1}) || s.Subsystem != (ssh.Outcomes{Refused: 1}) || s.DirectTCPIP != (ssh.Outcomes{Refused: 1}) {
		t.Errorf("stats = %+v", s)
	}
	if err := bob.Close(); err != nil {
		t.Fatal(err)
	}
}
