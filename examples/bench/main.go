// Command bench runs Alknet's comparative benchmarks: each one measures an Alknet
// component and the peer a user would otherwise pick, in one process, with the arms
// interleaved over several rounds, and prints a Markdown table of medians and ratios
// (alknet/baseline, higher is better) for BENCHMARKS.md.
//
//	go run ./examples/bench                 # list the benchmarks
//	go run ./examples/bench endpoint        # full run (about a minute)
//	go run ./examples/bench endpoint -quick # smoke run (a few seconds)
//	go run ./examples/bench endpoint -h     # flags of one benchmark
//	go run ./examples/bench vault           # full run (about a minute)
//	go run ./examples/bench call            # full run (about 4 minutes)
//	go run ./examples/bench http            # full run (about 3 minutes)
//	go run ./examples/bench sftp            # full run (about a minute and a half)
//	go run ./examples/bench git             # full run (needs git; a few minutes)
//	go run ./examples/bench dns             # full run (about 2 minutes)
//	go run ./examples/bench ssh             # full run (about 40 seconds)
//	go run ./examples/bench ws              # full run (about 2 minutes)
//	go run ./examples/bench mcp             # full run (about 3 minutes)
//	go run ./examples/bench msg             # full run (a few minutes; postgres with -pg-dsn)
//	go run ./examples/bench all             # every suite in turn, then a summary of the goals
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	switch {
	case err == nil:
	case errors.Is(err, errUsage):
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// errUsage reports a command line that could not be parsed; the usage text has been
// printed already.
var errUsage = errors.New("usage")

// benchmark is one named benchmark. run gets the arguments after its name and parses
// its own flags.
type benchmark struct {
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

// benchmarks returns the benchmarks by name. Add new ones here ("call", "ssh", ...).
func benchmarks() map[string]benchmark {
	return map[string]benchmark{
		"all": {
			summary: "every benchmark below in turn, each in its own process, then the commit, the machine and every goal line in one summary (for BENCHMARKS.md; about 30 minutes)",
			run:     runAll,
		},
		"call": {
			summary: "call protocol (call.Dial, QUIC and TCP+TLS) vs gRPC-go (TLS and h2c): unary echo calls/s and p50/p99 per payload (64 B, 1 KiB, 64 KiB) at 1, 64 and 256 callers on one connection and 256 clients with a connection each, subscription events/s",
			run:     runCall,
		},
		"dns": {
			summary: "dns module (dns.Server on the endpoint, DoQ) vs the same zone handler behind a bare quic-go DoQ loop, and miekg/dns over UDP (the ceiling): queries/s and p50/p99 with 1 and 64 streams on one connection and with 64 connections",
			run:     runDNS,
		},
		"endpoint": {
			summary: "endpoint vs bare quic-go and crypto/tls: new connections/s, QUIC and TCP+TLS bulk throughput",
			run:     runEndpoint,
		},
		"forward": {
			summary: "alknet/forward (a QUIC stream per forwarded TCP connection, no SSH inside) vs a raw quic-go stream and direct-tcpip through x/crypto/ssh over TCP: bulk MB/s through one forwarded connection, forwarded connections/s, aggregate MB/s of 1, 16 and 64 forwarded connections at once",
			run:     runForward,
		},
		"git": {
			summary: "git module (alknet/git over QUIC with the binary and go-git engines, SSH exec on alknet/ssh) vs git daemon (TCP), all with the stock git client: time to clone a generated repository of 5,000 commits and 2,000 files, and to fetch 100 new commits",
			run:     runGit,
		},
		"http": {
			summary: "HTTP gateway (POST /call over TCP+TLS h2, QUIC alknet/http h2 and HTTP/3) vs net/http TLS h2: requests/s and p50/p99 per payload (64 B, 1 KiB, 64 KiB) at 1, 64 and 256 callers and 256 clients with a connection each",
			run:     runHTTP,
		},
		"msg": {
			summary: "msg module (msg.Server on the endpoint over QUIC, msg.Client) on memory, bbolt and PostgreSQL (with a DSN): deliveries/s and fetch+ack/s with 1 and 64 senders, 1 KiB and 64 KiB bodies, p50/p99; seal+open/s against plain crypto/hpke (the ceiling)",
			run:     runMsg,
		},
		"mcp": {
			summary: "MCP to_mcp projection (/mcp, call tool, TCP+TLS h2) vs the MCP Go SDK used directly (streamable HTTP, net/http TLS h2): tool calls/s and p50/p99 per payload (64 B, 1 KiB, 64 KiB) at 1, 64 and 256 callers on one session and 256 sessions with a connection each, new sessions/s",
			run:     runMCP,
		},
		"sftp": {
			summary: "alknet sftp (raw alknet/sftp and alknet/ssh subsystem, QUIC) vs OpenSSH sshd (when installed) and pkg/sftp's server over x/crypto/ssh (TCP), all with pkg/sftp's client: download and upload MB/s of one 256 MiB file, files/s of 1000 files of 4 KiB",
			run:     runSFTP,
		},
		"ssh": {
			summary: "alknet/ssh (QUIC, TCP+TLS, and its ssh.Server on plain TCP) vs a bare x/crypto/ssh server and client and OpenSSH sshd (when installed), all TCP: direct-tcpip bulk MB/s, new connections/s (handshake + publickey auth)",
			run:     runSSH,
		},
		"ws": {
			summary: "call protocol over WebSocket (GET /alknet/call, TCP+TLS h1) vs net/http + coder/websocket JSON-RPC-style echo: calls/s and p50/p99 per payload (64 B, 1 KiB, 64 KiB) at 1, 64 and 256 callers on one socket and 256 sockets, new connections/s",
			run:     runWS,
		},
		"vault": {
			summary: "vault vs go-bip39, stdlib AES-GCM and x/crypto/argon2: seeds/s, mnemonics/s, sealed blobs/s, keystore unlocks/s",
			run:     runVault,
		},
	}
}

// run is the whole program: args are the command-line arguments without the program
// name.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	benches := benchmarks()
	if len(args) == 0 {
		usage(stderr, benches)
		return errUsage
	}
	switch name := args[0]; name {
	case gitPipeCommand: // hidden: the git benchmark's clients re-execute the binary as their pipe
		return runGitPipe(ctx, args[1:], os.Stdin, os.Stdout)
	case "-h", "-help", "--help", "help":
		usage(stdout, benches)
		return nil
	default:
		b, ok := benches[name]
		if !ok {
			fmt.Fprintf(stderr, "bench: unknown benchmark %q\n\n", name)
			usage(stderr, benches)
			return errUsage
		}
		return b.run(ctx, args[1:], stdout, stderr)
	}
}

func usage(w io.Writer, benches map[string]benchmark) {
	var b strings.Builder
	b.WriteString("usage: bench <benchmark> [flags]\n\nbenchmarks:\n")
	names := make([]string, 0, len(benches))
	for name := range benches {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		fmt.Fprintf(&b, "  %-10s %s\n", name, benches[name].summary)
	}
	b.WriteString("\nRun 'bench <benchmark> -h' for the flags of one benchmark.\n")
	_, _ = io.WriteString(w, b.String())
}
