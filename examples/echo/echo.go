// Package echo is the demo handler of ALPN "alknet/echo": it echoes every stream the
// peer opens and half-closes the stream once the peer has. It is the smallest complete
// handler and the one used to test transports (`alknet pipe`, openssl s_client) and to
// benchmark the endpoint.
package echo

import (
	"context"
	"io"

	"github.com/alknet/alknet/core"
)

// ALPN is the protocol name the handler serves.
const ALPN = "alknet/echo"

// bufSize is the copy buffer per stream.
const bufSize = 32 << 10

// Handler echoes streams. The zero value is ready to use.
type Handler struct{}

// ALPN returns "alknet/echo".
func (Handler) ALPN() string { return ALPN }

// Handle echoes each stream the peer opens, concurrently, until the connection closes
// (or, on a single-stream connection, until its one stream is done).
func (Handler) Handle(ctx context.Context, conn *core.Connection, _ core.AuthContext) error {
	return core.ServeStreams(ctx, conn, echoStream)
}

func echoStream(s core.BiStream) {
	buf := make([]byte, bufSize)
	if _, err := io.CopyBuffer(s, onlyReader{s}, buf); err != nil {
		_ = s.Close()
		return
	}
	_ = s.CloseWrite()
}

// onlyReader hides WriterTo/ReaderFrom so CopyBuffer uses buf.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }
