package git_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	gogit "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/transport/client"

	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/core/endpoint"
	"github.com/alknet/alknet/core/tlsconf"
	"github.com/alknet/alknet/git"
)

// A go-git program pushes to and clones from a node over alknet/git: the transport is
// installed once under the scheme "alknet" (go-git's table is process-wide), with the
// node's fingerprint pinned and the client's certificate as its identity.
func ExampleNewTransport() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	quiet := slog.New(slog.DiscardHandler)
	tmp, err := os.MkdirTemp("", "alknet-git-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(tmp)

	// The node: repositories under ROOT, the client's key allowed to push to org/*.
	nodeKey, _ := tlsconf.GenerateKey()
	nodeCert, _ := tlsconf.Certificate(nodeKey)
	clientKey, _ := tlsconf.GenerateKey()
	clientCert, _ := tlsconf.Certificate(clientKey)
	root := filepath.Join(tmp, "repos")
	if _, err := git.Init(root, "org/project"); err != nil {
		log.Fatal(err)
	}
	repos, err := git.NewServer(git.Config{Root: root, Engine: git.NewGoGitEngine(), Logger: quiet})
	if err != nil {
		log.Fatal(err)
	}
	handlers := core.NewRegistry()
	if err := handlers.Register(repos); err != nil {
		log.Fatal(err)
	}
	dc := core.DefaultDynamicConfig()
	dc.Auth.Peers = []core.PeerEntry{{PeerID: "ci", Fingerprints: []string{tlsconf.Fingerprint(clientKey)}, Scopes: []string{"git:write:org/*"}, Enabled: true}}
	store, err := core.NewDynamicStore(dc)
	if err != nil {
		log.Fatal(err)
	}
	ep, err := endpoint.New(handlers, endpoint.Config{
		TLS: tlsconf.ServerConfig(nodeCert), Identities: core.NewConfigIdentityProvider(store, nil),
		Limits: store.Limits, Logger: quiet,
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := ep.Listen("127.0.0.1:0"); err != nil {
		log.Fatal(err)
	}
	defer ep.Shutdown(ctx)

	// The client: once, in main.
	client.InstallProtocol(git.Scheme, git.NewTransport(git.Dialer(endpoint.DialOptions{
		TLS: tlsconf.ClientOptions{Pin: tlsconf.Fingerprint(nodeKey), Certificate: &clientCert},
	})))
	defer client.InstallProtocol(git.Scheme, nil)
	url := "alknet://" + ep.QUICAddr().String() + "/org/project.git"

	// Push a first commit into the empty repository...
	work := filepath.Join(tmp, "work")
	r, err := gogit.PlainInitWithOptions(work, &gogit.PlainInitOptions{InitOptions: gogit.InitOptions{DefaultBranch: plumbing.Main}})
	if err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(work, "README"), []byte("hello over alknet/git\n"), 0o644); err != nil {
		log.Fatal(err)
	}
	wt, _ := r.Worktree()
	_, _ = wt.Add("README")
	sig := &object.Signature{Name: "CI", Email: "ci@example.com", When: time.Unix(1700000000, 0)}
	if _, err := wt.Commit("first", &gogit.CommitOptions{Author: sig}); err != nil {
		log.Fatal(err)
	}
	if _, err := r.CreateRemote(&config.RemoteConfig{Name: "origin", URLs: []string{url}}); err != nil {
		log.Fatal(err)
	}
	if err := r.PushContext(ctx, &gogit.PushOptions{RefSpecs: []config.RefSpec{"refs/heads/main:refs/heads/main"}}); err != nil {
		log.Fatal(err)
	}

	// ...and clone it back.
	clone := filepath.Join(tmp, "clone")
	if _, err := gogit.PlainCloneContext(ctx, clone, false, &gogit.CloneOptions{URL: url}); err != nil {
		log.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(clone, "README"))
	fmt.Print(string(b))
	fmt.Println(err)
	// Output:
	// hello over alknet/git
	// <nil>
}
