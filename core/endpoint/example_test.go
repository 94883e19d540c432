package endpoint_test

import (
	"context"
	"fmt"
	"io"
	"log"

	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/core/endpoint"
	"github.com/alknet/alknet/core/tlsconf"
)

// A handler registered on an endpoint, and a client dialling it over QUIC.
func Example() {
	ctx := context.Background()

	// The handler greets whoever writes a name on the first stream.
	reg := core.NewRegistry()
	_ = reg.RegisterAs("alknet/greet", core.HandlerFunc(func(ctx context.Context, conn *core.Connection, auth core.AuthContext) error {
		s, err := conn.AcceptBi(ctx)
		if err != nil {
			return err
		}
		name, err := io.ReadAll(s)
		if err != nil {
			return err
		}
		fmt.Fprintf(s, "hello, %s", name)
		return s.CloseWrite()
	}))

	// The node: an Ed25519 key in a self-signed certificate, QUIC and TCP+TLS on one port.
	serverKey, _ := tlsconf.GenerateKey()
	serverCert, _ := tlsconf.Certificate(serverKey)
	ep, err := endpoint.New(reg, endpoint.Config{TLS: tlsconf.ServerConfig(serverCert)})
	if err != nil {
		log.Fatal(err)
	}
	if err := ep.Listen("127.0.0.1:0"); err != nil {
		log.Fatal(err)
	}
	defer ep.Shutdown(ctx)

	// The client pins the node's fingerprint.
	conn, err := endpoint.Dial(ctx, ep.QUICAddr().String(), "alknet/greet", endpoint.DialOptions{
		TLS: tlsconf.ClientOptions{Pin: tlsconf.Fingerprint(serverKey)},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close(core.CloseNormal, "")
	s, _ := conn.OpenBi(ctx)
	io.WriteString(s, "alice")
	s.CloseWrite()
	reply, _ := io.ReadAll(s)
	fmt.Println(string(reply))
	// Output: hello, alice
}
