package ssh_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/core/endpoint"
	"github.com/alknet/alknet/core/tlsconf"
	"github.com/alknet/alknet/ssh"
)

// A node serving alknet/forward for one known peer, and that peer forwarding one
// connection to a TCP server on the node's loopback: a stream per forwarded
// connection, no SSH inside.
func ExampleDialForward() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// A TCP server on the node's side that greets and hangs up.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		_, _ = io.WriteString(c, "hello through alknet/forward")
		_ = c.Close()
	}()

	nodeKey, _ := tlsconf.GenerateKey()
	nodeCert, _ := tlsconf.Certificate(nodeKey)
	peerKey, _ := tlsconf.GenerateKey()
	peerCert, _ := tlsconf.Certificate(peerKey)
	store, err := core.NewDynamicStore(core.DynamicConfig{Auth: core.AuthPolicy{Peers: []core.PeerEntry{
		{PeerID: "laptop", Fingerprints: []string{tlsconf.Fingerprint(peerKey)}, Enabled: true},
	}}})
	if err != nil {
		fmt.Println(err)
		return
	}

	loopback, _ := ssh.ParseTarget("cidr:127.0.0.0/8")
	fwd, err := ssh.NewForwarder(ssh.ForwardConfig{Forwarding: ssh.ForwardingPolicy{
		Rules: []ssh.Rule{{Target: loopback, Action: ssh.Allow, Principals: []string{"laptop"}}},
	}})
	if err != nil {
		fmt.Println(err)
		return
	}
	reg := core.NewRegistry()
	if err := reg.Register(fwd); err != nil {
		fmt.Println(err)
		return
	}
	ep, err := endpoint.New(reg, endpoint.Config{
		TLS:        tlsconf.ServerConfig(nodeCert),
		Identities: core.NewConfigIdentityProvider(store, nil),
		Limits:     store.Limits,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := ep.Listen("127.0.0.1:0"); err != nil {
		fmt.Println(err)
		return
	}
	defer ep.Shutdown(ctx)

	conn, err := endpoint.Dial(ctx, ep.QUICAddr().String(), ssh.ALPNForward, endpoint.DialOptions{
		Network: endpoint.NetworkQUIC,
		TLS:     tlsconf.ClientOptions{Certificate: &peerCert, Pin: tlsconf.Fingerprint(nodeKey)},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer conn.Close(core.CloseNormal, "")

	c, err := ssh.DialForward(ctx, conn, ln.Addr().String())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	b, err := io.ReadAll(c)
	fmt.Println(string(b), err)

	// A destination the policy does not allow is refused with a reason.
	_, err = ssh.DialForward(ctx, conn, "192.0.2.1:80")
	fmt.Println(err)
	// Output:
	// hello through alknet/forward <nil>
	// ssh: forward refused: forwarding denied by policy
}
