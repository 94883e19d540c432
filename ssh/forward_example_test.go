package ssh_test

import (
	"bufio"
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

	conn, stop, err := exampleForwardNode(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer stop()

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

// exampleForwardNode starts a node serving alknet/forward to one known peer,
// "laptop", allowed to reach the node's loopback, and returns that peer's QUIC
// connection to it and what stops both.
func exampleForwardNode(ctx context.Context) (*core.Connection, func(), error) {
	nodeKey, _ := tlsconf.GenerateKey()
	nodeCert, _ := tlsconf.Certificate(nodeKey)
	peerKey, _ := tlsconf.GenerateKey()
	peerCert, _ := tlsconf.Certificate(peerKey)
	store, err := core.NewDynamicStore(core.DynamicConfig{Auth: core.AuthPolicy{Peers: []core.PeerEntry{
		{PeerID: "laptop", Fingerprints: []string{tlsconf.Fingerprint(peerKey)}, Enabled: true},
	}}})
	if err != nil {
		return nil, nil, err
	}

	loopback, _ := ssh.ParseTarget("cidr:127.0.0.0/8")
	fwd, err := ssh.NewForwarder(ssh.ForwardConfig{Forwarding: ssh.ForwardingPolicy{
		Rules: []ssh.Rule{{Target: loopback, Action: ssh.Allow, Principals: []string{"laptop"}}},
	}})
	if err != nil {
		return nil, nil, err
	}
	reg := core.NewRegistry()
	if err := reg.Register(fwd); err != nil {
		return nil, nil, err
	}
	ep, err := endpoint.New(reg, endpoint.Config{
		TLS:        tlsconf.ServerConfig(nodeCert),
		Identities: core.NewConfigIdentityProvider(store, nil),
		Limits:     store.Limits,
	})
	if err != nil {
		return nil, nil, err
	}
	if err := ep.Listen("127.0.0.1:0"); err != nil {
		return nil, nil, err
	}

	conn, err := endpoint.Dial(ctx, ep.QUICAddr().String(), ssh.ALPNForward, endpoint.DialOptions{
		Network: endpoint.NetworkQUIC,
		TLS:     tlsconf.ClientOptions{Certificate: &peerCert, Pin: tlsconf.Fingerprint(nodeKey)},
	})
	if err != nil {
		_ = ep.Shutdown(ctx)
		return nil, nil, err
	}
	return conn, func() { conn.Close(core.CloseNormal, ""); _ = ep.Shutdown(ctx) }, nil
}

// Opening a forwarded connection without waiting for the node's answer: the request
// goes out with the header, and the answer (or the refusal) comes with the first
// Read.
func ExampleOpenForward() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// A TCP server on the node's side that answers one line.
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
		defer c.Close()
		line, _ := bufio.NewReader(c).ReadString('\n')
		_, _ = io.WriteString(c, "you said "+line)
	}()

	conn, stop, err := exampleForwardNode(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer stop()

	c, err := ssh.OpenForward(ctx, conn, ln.Addr().String())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	_, _ = io.WriteString(c, "hello\n") // sent with the header, before any answer
	b, err := io.ReadAll(c)
	fmt.Print(string(b))
	fmt.Println(err)

	// A refused destination: the first Read returns the refusal.
	r, err := ssh.OpenForward(ctx, conn, "192.0.2.1:80")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer r.Close()
	_, err = r.Read(make([]byte, 1))
	fmt.Println(err)
	// Output:
	// you said hello
	// <nil>
	// ssh: forward refused: forwarding denied by policy
}
