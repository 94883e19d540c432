package git_test

import (
	"slices"
	"testing"

	alkgit "github.com/alknet/alknet/git"
)

// TestServerStats: operations count by service and outcome once they have ended (the
// count comes before the "git operation" log line), with their bytes; repository
// names are not keys.
func TestServerStats(t *testing.T) {
	n := startNode(t, alkgit.Config{})
	wantFail(t, n, "not found", "reader", t.TempDir(), "ls-remote", n.url(t, "no/such-repo"))
	waitLog(t, n.logs, "git operation", "outcome=not_found")
	url := n.url(t, "/org/repo.git")
	seed(t, n, url)
	mustGit(t, n, "reader", t.TempDir(), "ls-remote", url)
	waitLog(t, n.logs, "git operation", "service=git-upload-pack", "outcome=ok")
	s := n.srv.Stats()
	up := s.Operations[alkgit.ServiceUploadPack]
	if up[alkgit.OutcomeNotFound] != 1 || up[alkgit.OutcomeOK] < 1 {
		t.Errorf("upload-pack = %v", up)
	}
	if s.Operations[alkgit.ServiceReceivePack][alkgit.OutcomeOK] < 1 || s.BytesIn == 0 || s.BytesOut == 0 {
		t.Errorf("stats = %+v", s)
	}
	for svc, m := range s.Operations {
		if !slices.Contains(alkgit.Services(), svc) {
			t.Errorf("service %q not in Services", svc)
		}
		for o := range m {
			if !slices.Contains(alkgit.Outcomes(), o) {
				t.Errorf("outcome %q not in Outcomes", o)
			}
		}
	}
}
