package msg_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"

	"github.com/alknet/alknet/examples/node"
	"github.com/alknet/alknet/examples/node/plugins/echo"
	"github.com/alknet/alknet/examples/node/plugins/msg"
)

// A binary of its own with the msg plugin: "mailbox serve --config FILE" serves
// alknet/msg when FILE has a [msg] table, and "mailbox msg ..." are the client commands.
func Example() {
	mailbox := &node.Node{Name: "mailbox", Plugins: []node.Plugin{echo.New(), msg.New()}}
	var out bytes.Buffer
	if err := mailbox.NewCLI(nil, &out, io.Discard).Run(context.Background(), []string{"help"}); err != nil {
		fmt.Println(err)
	}
	fmt.Print(out.String())
	// Output:
	// Usage: mailbox <command> [flags] [arguments]
	//
	// Commands:
	//   serve   run a node: QUIC and TCP+TLS on one port, handlers chosen by ALPN
	//   config  config check --config FILE: validate a --config file as serve would, without starting
	//   msg     sealed messages through a node's alknet/msg: msg register, send, inbox
	//   version print the version, VCS revision, Go and quic-go versions (also --version)
	//   help    show this help, or "mailbox help <command>" for a command's flags
	//
	// Exit codes: 0 success, 1 runtime failure, 2 usage or configuration error.
}

// The X25519 key of a state directory without a keystore: created with mode 0600 on
// first use, the same key ever after.
func ExampleLoadOrCreateKey() {
	dir, err := os.MkdirTemp("", "state")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	k1, created, err := msg.LoadOrCreateKey(dir)
	if err != nil {
		fmt.Println(err)
		return
	}
	k2, again, _ := msg.LoadOrCreateKey(dir)
	st, _ := os.Stat(dir + "/" + msg.KeyFileName)
	fmt.Println(created, again, k1.Equal(k2), st.Mode().Perm())
	// Output: true false true -rw-------
}
