package sftp_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/core/endpoint"
	"github.com/alknet/alknet/core/tlsconf"
	"github.com/alknet/alknet/sftp"
)

// A node serving one export on alknet/sftp, and a program reading from it with
// Dial: no SSH anywhere.
func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "export")
	defer os.RemoveAll(dir)
	_ = os.WriteFile(filepath.Join(dir, "hello.txt"), []byte("hello, files\n"), 0o644)

	// The client's key, known to the node as peer "laptop" with read access to "data".
	clientKey, _ := tlsconf.GenerateKey()
	clientCert, _ := tlsconf.Certificate(clientKey)
	cfg := core.DefaultDynamicConfig()
	cfg.Auth.Peers = []core.PeerEntry{{PeerID: "laptop", Fingerprints: []string{tlsconf.Fingerprint(clientKey)},
		Scopes: []string{"sftp:read:data"}, Enabled: true}}
	store, _ := core.NewDynamicStore(cfg)

	files, err := sftp.NewServer(sftp.Config{
		Exports: []sftp.Export{{Name: "data", Dir: dir, AtomicWrites: true}},
		Logger:  slog.New(slog.DiscardHandler),
	})
	if err != nil {
		log.Fatal(err)
	}
	reg := core.NewRegistry()
	_ = reg.Register(files) // alknet/sftp
	nodeKey, _ := tlsconf.GenerateKey()
	nodeCert, _ := tlsconf.Certificate(nodeKey)
	ep, err := endpoint.New(reg, endpoint.Config{
		TLS:        tlsconf.ServerConfig(nodeCert),
		Identities: core.NewConfigIdentityProvider(store, nil),
		Logger:     slog.New(slog.DiscardHandler),
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := ep.Listen("127.0.0.1:0"); err != nil {
		log.Fatal(err)
	}
	defer ep.Shutdown(ctx)

	c, err := sftp.Dial(ctx, ep.QUICAddr().String(), endpoint.DialOptions{
		TLS: tlsconf.ClientOptions{Pin: tlsconf.Fingerprint(nodeKey), Certificate: &clientCert},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	wd, _ := c.Getwd() // the only export it may read
	f, err := c.Open("hello.txt")
	if err != nil {
		log.Fatal(err)
	}
	b, _ := io.ReadAll(f)
	f.Close()
	fmt.Printf("%s: %s", wd, b)
	// Output: /data: hello, files
}
