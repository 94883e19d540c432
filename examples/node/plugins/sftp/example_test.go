package sftp_test

import (
	"context"

	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/core/endpoint"
	"github.com/alknet/alknet/core/tlsconf"
	"github.com/alknet/alknet/examples/node"
	"github.com/alknet/alknet/examples/node/plugins/echo"
	"github.com/alknet/alknet/examples/node/plugins/sftp"
	"github.com/alknet/alknet/examples/node/plugins/ssh"
	alksftp "github.com/alknet/alknet/sftp"
	alkssh "github.com/alknet/alknet/ssh"
)

// A node of three plugins: the ssh plugin serves the sftp plugin's SSH subsystem.
func Example() {
	files := sftp.New()
	n := &node.Node{
		Name:    "files",
		Plugins: []node.Plugin{echo.New(), ssh.New(ssh.WithSubsystem("sftp", files.SSHSubsystem)), files},
	}
	_ = n // n.Main() runs it
}

// The README's embedding snippet, compiled: the sftp module on its own ALPN and as the
// SSH subsystem of an ssh server, and its client.
func Example_embedding() {
	ctx := context.Background()
	handlers := core.NewRegistry()
	var identities core.IdentityProvider
	nodeKey, _ := tlsconf.GenerateKey()
	hostKey, _ := alkssh.NewSigner(nodeKey)
	nodeFP := tlsconf.Fingerprint(nodeKey)
	clientKey, _ := tlsconf.GenerateKey()
	clientCert, _ := tlsconf.Certificate(clientKey)

	files, err := alksftp.NewServer(alksftp.Config{
		Exports: []alksftp.Export{{Name: "data", Dir: "/srv/data", AtomicWrites: true}},
	})
	err = handlers.Register(files) // alknet/sftp: raw SFTP, identity from the client certificate
	srv, err := alkssh.NewServer(alkssh.Config{HostKey: hostKey, Identities: identities,
		Subsystems: map[string]alkssh.SubsystemHandler{"sftp": func(ctx context.Context, ch alkssh.Channel, id core.Identity) error {
			return files.ServeSubsystem(ctx, ch, id) // the SSH subsystem, identity from SSH
		}},
	})
	_ = srv

	c, err := alksftp.Dial(ctx, "node.example:4433", endpoint.DialOptions{ // a pkg/sftp *Client, no SSH
		TLS: tlsconf.ClientOptions{Pin: nodeFP, Certificate: &clientCert},
	})
	if err != nil {
		return
	}
	defer c.Close()
	f, err := c.Open("/data/report.pdf")
	_, _ = f, err
}
