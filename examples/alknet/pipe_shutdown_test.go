package main

import (
	"bytes"
	"io"
	"strings"
	"sync"
	"testing"
)

// TestPipeNodeShutdown checks that a pipe whose node shuts down (SIGTERM: serve's
// context ends) ends cleanly, exit status 0, over both transports. QUIC carries the
// node's normal close (code 0, "shutdown"), which must not count as a failure; TCP just
// ends the stream.
func TestPipeNodeShutdown(t *testing.T) {
	for _, network := range pipeNetworks {
		t.Run(network.name, func(t *testing.T) {
			// A short drain: the open pipe keeps its connection busy, so shutdown closes it
			// (code 0, "shutdown") once the drain is over.
			n := startServe(t, "--drain", "100ms")
			// stdin sends one line and then stays open, so only the node can end the pipe.
			stdinR, stdinW := io.Pipe()
			t.Cleanup(func() { stdinW.Close() }) // ends pipe's goroutine reading stdin
			line := []byte("still here\n")
			stdout := newWatchWriter(line)
			var stderr syncBuffer
			c := &cli{stdin: io.MultiReader(bytes.NewReader(line), stdinR), stdout: stdout, stderr: &stderr}
			argv := append([]string{"pipe", "--state", t.TempDir()}, n.pinArgs("alknet/echo")...)
			argv = append(append(argv, network.extra...), n.quic)
			done := make(chan error, 1)
			go func() { done <- c.run(t.Context(), argv) }()

			// The echoed line proves the stream is up before the node goes away.
			select {
			case <-stdout.seen:
			case err := <-done:
				t.Fatalf("pipe ended before the echo: %v (stderr %q)", err, stderr.String())
			}
			n.stop(t)
			err := <-done
			if code := exitCode(err); code != exitOK {
				var out bytes.Buffer
				report(&out, err)
				t.Errorf("pipe after the node shut down: exit status %d, want %d: %q", code, exitOK, out.String())
			}
			if got := stdout.String(); got != string(line) {
				t.Errorf("stdout = %q, want %q", got, line)
			}
			if s := stderr.String(); s != "" {
				t.Errorf("stderr = %q, want nothing", s)
			}
		})
	}
}

// watchWriter collects what is written and closes seen once it holds want.
type watchWriter struct {
	want []byte
	seen chan struct{}
	mu   sync.Mutex
	buf  bytes.Buffer
	once sync.Once
}

func newWatchWriter(want []byte) *watchWriter {
	return &watchWriter{want: want, seen: make(chan struct{})}
}

func (w *watchWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if bytes.Contains(w.buf.Bytes(), w.want) {
		w.once.Do(func() { close(w.seen) })
	}
	return len(p), nil
}

func (w *watchWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Clone(w.buf.String())
}
