package git_test

import (
	"testing"

	"github.com/alknet/alknet/core"
	alkgit "github.com/alknet/alknet/git"
)

// TestScopes pins the meaning of git:read:<glob> and git:write:<glob>: the glob is
// path.Match's over the repository name without ".git", a bare "*" covers nested
// names too, write implies read, and a malformed glob matches nothing without
// hiding the identity's other scopes.
func TestScopes(t *testing.T) {
	cases := []struct {
		name      string
		scopes    []string
		repo      string
		read, wrt bool
	}{
		{"no scopes", nil, "org/a", false, false},
		{"other module's scope", []string{"sftp:read:*", "ssh:exec"}, "org/a", false, false},
		{"read star top", []string{"git:read:*"}, "a", true, false},
		{"read star nested", []string{"git:read:*"}, "org/a", true, false},
		{"read star deeper", []string{"git:read:*"}, "org/team/a", true, false},
		{"write star nested", []string{"git:write:*"}, "org/team/a", true, true},
		{"org glob child", []string{"git:read:org/*"}, "org/a", true, false},
		{"org glob grandchild", []string{"git:read:org/*"}, "org/a/b", false, false},
		{"org glob prefix sibling", []string{"git:read:org/*"}, "orgx/a", false, false},
		{"org glob the org itself", []string{"git:read:org/*"}, "org", false, false},
		{"org glob other org", []string{"git:read:org/*"}, "other/a", false, false},
		{"exact name", []string{"git:read:org/a"}, "org/a", true, false},
		{"exact name other", []string{"git:read:org/a"}, "org/ab", false, false},
		{"write implies read", []string{"git:write:org/*"}, "org/a", true, true},
		{"write glob elsewhere", []string{"git:write:org/*", "git:read:*"}, "other/a", true, false},
		{"read does not imply write", []string{"git:read:org/*"}, "org/a", true, false},
		{"malformed glob", []string{"git:read:org/["}, "org/[", false, false},
		{"malformed glob ignored", []string{"git:write:[", "git:read:org/*"}, "org/a", true, false},
		{"malformed write glob", []string{"git:write:org/[a"}, "org/a", false, false},
		{"prefix without glob", []string{"git:read:"}, "a", false, false},
		{"prefix without colon", []string{"git:read"}, "a", false, false},
		{"wrong verb", []string{"git:admin:*"}, "a", false, false},
		{"case matters", []string{"GIT:READ:*"}, "a", false, false},
		{"with .git suffix", []string{"git:read:org/a.git"}, "org/a", false, false},
	}
	for _, c := range cases {
		id := core.Identity{ID: "x", Scopes: c.scopes}
		if got := alkgit.CanRead(id, c.repo); got != c.read {
			t.Errorf("%s: CanRead(%q, %q) = %t, want %t", c.name, c.scopes, c.repo, got, c.read)
		}
		if got := alkgit.CanWrite(id, c.repo); got != c.wrt {
			t.Errorf("%s: CanWrite(%q, %q) = %t, want %t", c.name, c.scopes, c.repo, got, c.wrt)
		}
	}
}
