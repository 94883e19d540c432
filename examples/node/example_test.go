package node_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/core/endpoint"
	"github.com/alknet/alknet/core/tlsconf"
	"github.com/alknet/alknet/examples/node"
)

// Greet is a plugin: it serves example/greet, which answers a name with the word of
// its [greet] table ("hello" by default).
type Greet struct{}

// GreetConfig is Greet's part of --config.
type GreetConfig struct {
	Greet struct {
		Word string `toml:"word"`
	} `toml:"greet"`
}

// Validate checks the [greet] table.
func (c *GreetConfig) Validate() error {
	if c.Greet.Word == "" {
		return errors.New("greet.word: empty")
	}
	return nil
}

func (*Greet) Name() string { return "greet" }

func (*Greet) NewConfig() node.Config {
	c := &GreetConfig{}
	c.Greet.Word = "hello"
	return c
}

func (g *Greet) Setup(_ context.Context, env *node.Env) ([]core.ProtocolHandler, error) {
	word := env.Config(g).(*GreetConfig).Greet.Word
	return []core.ProtocolHandler{node.As("example/greet", core.HandlerFunc(
		func(ctx context.Context, conn *core.Connection, _ core.AuthContext) error {
			s, err := conn.AcceptBi(ctx)
			if err != nil {
				return err
			}
			name, _ := io.ReadAll(s)
			fmt.Fprintf(s, "%s, %s", word, name)
			return s.CloseWrite()
		}))}, nil
}

// A binary is a node with its plugins; this one serves example/greet with the word of
// its --config file, and is run in-process.
func Example() {
	dir, err := os.MkdirTemp("", "node-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	config := filepath.Join(dir, "greeter.toml")
	if err := os.WriteFile(config, []byte("[greet]\nword = \"welcome\"\n"), 0o600); err != nil {
		panic(err)
	}

	greeter := &node.Node{Name: "greeter", Plugins: []node.Plugin{&Greet{}}}
	// greeter.Main() would run the process's command line; here the command runs
	// in-process.
	cli := greeter.NewCLI(nil, io.Discard, io.Discard)
	ready := make(chan node.Ready, 1)
	cli.OnReady = func(r node.Ready) { ready <- r }
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- cli.Run(ctx, []string{"serve", "--state", dir, "--listen", "127.0.0.1:0", "--config", config})
	}()
	var r node.Ready
	select {
	case r = <-ready:
	case err := <-done:
		panic(err)
	}

	conn, err := endpoint.Dial(ctx, r.QUIC.String(), "example/greet", endpoint.DialOptions{
		TLS: tlsconf.ClientOptions{Pin: r.Fingerprint},
	})
	if err != nil {
		panic(err)
	}
	s, err := conn.OpenBi(ctx)
	if err != nil {
		panic(err)
	}
	io.WriteString(s, "alice")
	s.CloseWrite()
	reply, _ := io.ReadAll(s)
	conn.Close(core.CloseNormal, "")
	fmt.Println(string(reply))

	stop() // SIGINT: drain and stop
	fmt.Println(<-done)
	// Output:
	// welcome, alice
	// <nil>
}
