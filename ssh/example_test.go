package ssh_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"net"

	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/ssh"
)

// stExampleIdentities resolves one fingerprint to one identity.
type stExampleIdentities map[string]core.Identity

func (m stExampleIdentities) ResolveFromFingerprint(fp string) (*core.Identity, bool) {
	id, ok := m[fp]
	if !ok {
		return nil, false
	}
	c := id.Clone()
	return &c, true
}

func (stExampleIdentities) ResolveFromToken(core.AuthToken) (*core.Identity, bool) { return nil, false }

// A server on a loopback listener that lets one key run echo, and a client that runs
// it.
func ExampleServer_Serve() {
	_, hostKey, _ := ed25519.GenerateKey(rand.Reader)
	_, userKey, _ := ed25519.GenerateKey(rand.Reader)
	host, _ := ssh.NewSigner(hostKey)
	user, _ := ssh.NewSigner(userKey)

	srv, err := ssh.NewServer(ssh.Config{
		HostKey: host,
		Identities: stExampleIdentities{
			ssh.KeyFingerprint(user.PublicKey()): {ID: "alice", Scopes: []string{ssh.ScopeExec}},
		},
		Exec: &ssh.AllowListExecutor{Allow: []string{"echo"}},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()
	defer func() { cancel(); <-served }()

	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		fmt.Println(err)
		return
	}
	client, err := ssh.NewClientConn(ctx, nc, ln.Addr().String(), ssh.ClientConfig{
		Signer:  user,
		HostKey: ssh.KeyFingerprint(host.PublicKey()), // pinned: never skipped
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer client.Close()

	sess, err := client.NewSession()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer sess.Close()
	out, err := sess.Output(`echo hello 'big world'`)
	fmt.Printf("%s", out)
	fmt.Println("error:", err)
	// Output:
	// hello big world
	// error: <nil>
}
