package git_test

import (
	"github.com/alknet/alknet/examples/node"
	"github.com/alknet/alknet/examples/node/plugins/git"
	"github.com/alknet/alknet/examples/node/plugins/ssh"
)

// A node of two plugins: the ssh plugin routes the git plugin's SSH commands ahead of
// its exec allow list.
func Example() {
	repos := git.New()
	n := &node.Node{
		Name:    "forge",
		Plugins: []node.Plugin{ssh.New(ssh.WithExec(repos.MatchExec, repos.StartExec)), repos},
	}
	_ = n // n.Main() runs it
}
