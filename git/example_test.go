package git_test

import (
	"fmt"
	"os"

	alkgit "github.com/alknet/alknet/git"
)

// Example creates a bare repository and builds a server for its root; register the
// server with a core.Registry to serve alknet/git, and wrap StartExec into the ssh
// module's Executor for SSH.
func Example() {
	root, err := os.MkdirTemp("", "repos")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(root)
	if _, err := alkgit.Init(root, "org/project"); err != nil {
		fmt.Println(err)
		return
	}
	_, err = alkgit.Init(root, "org/project")
	fmt.Println(err)
	service, path, err := alkgit.ParseCommand("git-upload-pack '/org/project.git'")
	fmt.Println(service, path, err)
	// Output:
	// repository already exists: org/project
	// git-upload-pack /org/project.git <nil>
}
