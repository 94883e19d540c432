package sftp_test

import (
	"slices"
	"testing"

	"github.com/alknet/alknet/core/coretest"
	"github.com/alknet/alknet/core/endpoint"
	alksftp "github.com/alknet/alknet/sftp"
)

// TestServerStats: a session that reads a file counts as active while open and, once
// closed, as an "ok" session with its bytes and files.
func TestServerStats(t *testing.T) {
	dir := exportDir(t, map[string]string{"a.txt": "hello"})
	alice := coretest.NewIdentity(t)
	n := startNode(t, alksftp.Config{Exports: []alksftp.Export{{Name: "d", Dir: dir}}}, alice.Peer("alice", "sftp:read:d"))
	c := n.dial(t, alice, endpoint.NetworkQUIC)
	if got := readAll(t, c, "/d/a.txt"); got != "hello" {
		t.Fatalf("read %q", got)
	}
	if s := n.srv.Stats(); s.ActiveSessions != 1 || len(s.Sessions) != 0 {
		t.Fatalf("open session: %+v", s)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	waitLog(t, n.logs, "sftp session closed")
	s := n.srv.Stats()
	if s.Sessions[alksftp.OutcomeOK]+s.Sessions[alksftp.OutcomeClosed] != 1 || s.FilesRead != 1 || s.FilesWritten != 0 || s.BytesIn == 0 || s.BytesOut < 5 {
		t.Fatalf("closed session: %+v", s)
	}
	for o := range s.Sessions {
		if !slices.Contains(alksftp.Outcomes(), o) {
			t.Errorf("outcome %q not in Outcomes", o)
		}
	}
}
