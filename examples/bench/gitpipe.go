package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/alknet/alknet/core/endpoint"
	"github.com/alknet/alknet/core/tlsconf"
)

// gitPipeCommand is the hidden subcommand with which the git benchmark's clients
// re-execute the bench binary (or the test binary, see TestMain) as the pipe of
// git's ext:: transport or of ssh's ProxyCommand: it dials an alknet endpoint and
// copies its standard input and output to one stream.
const gitPipeCommand = "git-pipe"

// gitPipeConfig is what the pipe reads from the file named by its argument.
type gitPipeConfig struct {
	Addr string `json:"addr"` // the endpoint's QUIC address
	ALPN string `json:"alpn"`
	Pin  string `json:"pin"` // the server's fingerprint
	Key  []byte `json:"key"` // the client's private key (tlsconf.MarshalKey)
	// Version2, for the alknet/git ALPN, adds "version=2" to the git-daemon request
	// line that git's ext:: transport sends (it never asks for protocol version 2
	// itself).
	Version2 bool `json:"version2,omitempty"`
}

// gitPipeTimeout bounds the dial.
const gitPipeTimeout = 10 * time.Second

// runGitPipe is the pipe: args is the configuration file.
func runGitPipe(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) error {
	if len(args) != 1 {
		return fmt.Errorf("%s: want one argument, the configuration file", gitPipeCommand)
	}
	// Once git has gone (it failed, say), a write to standard output would kill the
	// process with SIGPIPE; fail the write instead, so that the connection is closed
	// and the server sees the session end at once rather than at its idle timeout.
	signal.Ignore(syscall.SIGPIPE)
	b, err := os.ReadFile(args[0])
	if err != nil {
		return err
	}
	var cfg gitPipeConfig
	if err := json.Unmarshal(b, &cfg); err != nil {
		return fmt.Errorf("%s: %w", args[0], err)
	}
	key, err := tlsconf.ParseKey(cfg.Key)
	if err != nil {
		return err
	}
	cert, err := tlsconf.Certificate(key)
	if err != nil {
		return err
	}
	dctx, cancel := context.WithTimeout(ctx, gitPipeTimeout)
	defer cancel()
	conn, err := endpoint.Dial(dctx, cfg.Addr, cfg.ALPN, endpoint.DialOptions{
		Network: endpoint.NetworkQUIC,
		TLS:     tlsconf.ClientOptions{Certificate: &cert, Pin: cfg.Pin},
	})
	if err != nil {
		return err
	}
	defer conn.Close(0, "")
	s, err := conn.OpenBi(dctx)
	if err != nil {
		return err
	}
	defer s.Close()
	go func() {
		in := stdin
		if cfg.Version2 {
			in = io.MultiReader(gitRequestV2(stdin), stdin)
		}
		_, _ = io.Copy(s, in)
		_ = s.CloseWrite()
	}()
	// The session ends when the server closes its side; what stdin still holds then
	// is of no use.
	_, err = io.Copy(stdout, s)
	return err
}

// gitRequestV2 reads the git-daemon request pkt-line from r and returns it with
// "version=2" added as an extra parameter; anything else is returned unchanged (the
// server will refuse it).
func gitRequestV2(r io.Reader) io.Reader {
	var head [4]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		return bytes.NewReader(head[:0])
	}
	var n [2]byte
	if _, err := hex.Decode(n[:], head[:]); err != nil || binary.BigEndian.Uint16(n[:]) < 4 {
		return bytes.NewReader(head[:])
	}
	payload := make([]byte, int(binary.BigEndian.Uint16(n[:]))-4)
	if _, err := io.ReadFull(r, payload); err != nil {
		return io.MultiReader(bytes.NewReader(head[:]), bytes.NewReader(payload), errReader{err})
	}
	if !bytes.HasSuffix(payload, []byte{0}) || bytes.Contains(payload, []byte("version=")) {
		return io.MultiReader(bytes.NewReader(head[:]), bytes.NewReader(payload))
	}
	payload = append(payload, "\x00version=2\x00"...)
	return bytes.NewReader(append(fmt.Appendf(nil, "%04x", len(payload)+4), payload...))
}

// errReader fails every read with its error.
type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }
