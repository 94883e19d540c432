package git_test

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/core/endpoint"
	"github.com/alknet/alknet/core/tlsconf"
)

// Environment of the test binary re-executed as the ext:: transport of the stock git
// client: it pipes its stdin and stdout through one alknet/git stream.
const (
	pipeEnv = "GITTEST_PIPE_ADDR" // set: run as the pipe, dialing this address
	pinEnv  = "GITTEST_PIPE_PIN"
	keyEnv  = "GITTEST_PIPE_KEY" // hex Ed25519 seed of the client, or "" for none
	execEnv = "GITTEST_EXEC"     // set: run as the client of the SSH exec stand-in
)

func TestMain(m *testing.M) {
	if addr := os.Getenv(pipeEnv); addr != "" {
		if err := pipe(addr); err != nil {
			fmt.Fprintln(os.Stderr, "pipe:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if os.Getenv(execEnv) != "" {
		if err := execPipe(os.Args[1], os.Args[2]); err != nil {
			fmt.Fprintln(os.Stderr, "exec pipe:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}

// pipe is the ext:: helper: stdin to an alknet/git stream, the stream to stdout.
func pipe(addr string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	opts := endpoint.DialOptions{TLS: tlsconf.ClientOptions{Pin: os.Getenv(pinEnv)}}
	if k := os.Getenv(keyEnv); k != "" {
		seed, err := hex.DecodeString(k)
		if err != nil {
			return err
		}
		cert, err := tlsconf.Certificate(ed25519.NewKeyFromSeed(seed))
		if err != nil {
			return err
		}
		opts.TLS.Certificate = &cert
	}
	conn, err := endpoint.Dial(ctx, addr, "alknet/git", opts)
	if err != nil {
		return err
	}
	defer conn.Close(core.CloseNormal, "")
	st, err := conn.OpenBi(ctx)
	if err != nil {
		return err
	}
	go func() {
		_, _ = io.Copy(st, os.Stdin)
		_ = st.CloseWrite()
	}()
	_, err = io.Copy(os.Stdout, st)
	return err
}

// execPipe is the ext:: helper of the SSH exec stand-in: it sends who is asking and
// the command line an SSH client would send, then pipes.
func execPipe(service, path string) error {
	c, err := net.Dial("tcp", os.Getenv("GITTEST_EXEC_ADDR"))
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := fmt.Fprintf(c, "%s\n%s '%s'\n", os.Getenv("GITTEST_WHO"), service, path); err != nil {
		return err
	}
	go func() {
		_, _ = io.Copy(c, os.Stdin)
		_ = c.(*net.TCPConn).CloseWrite()
	}()
	_, err = io.Copy(os.Stdout, c)
	return err
}
