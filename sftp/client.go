package sftp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	pkgsftp "github.com/pkg/sftp"

	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/core/endpoint"
)

// Dial connects to the alknet/sftp service at addr ("host:port") and returns a
// pkg/sftp client over it: QUIC or TCP+TLS as opts.Network says, the server verified
// as opts.TLS says (pin its fingerprint) and the client identified by the certificate
// in opts.TLS. Closing the client closes the connection. No SSH is involved; ctx
// bounds the dial and the SFTP version exchange.
func Dial(ctx context.Context, addr string, opts endpoint.DialOptions, copts ...pkgsftp.ClientOption) (*pkgsftp.Client, error) {
	conn, err := endpoint.Dial(ctx, addr, ALPN, opts)
	if err != nil {
		return nil, fmt.Errorf("sftp: %w", err)
	}
	st, err := conn.OpenBi(ctx)
	if err != nil {
		conn.Close(core.CloseNormal, "")
		return nil, fmt.Errorf("sftp: open stream: %w", err)
	}
	cs := &clientStream{BiStream: st, conn: conn}
	// The version exchange blocks on the server; ctx ends it by closing the stream.
	stop := context.AfterFunc(ctx, cs.finish)
	c, err := pkgsftp.NewClientPipe(cs, cs, copts...)
	if !stop() {
		if c != nil {
			_ = c.Close()
		}
		cs.finish()
		return nil, fmt.Errorf("sftp: %w", ctx.Err())
	}
	if err != nil {
		cs.finish()
		return nil, fmt.Errorf("sftp: %w", err)
	}
	return c, nil
}

// CloseTimeout bounds how long closing a Dial client waits for the server to end
// the session after the client's end of stream, before it closes the connection.
const CloseTimeout = 5 * time.Second

// clientStream is the client's stream: closing it half-closes, so that the server
// ends the session cleanly; the stream and connection close once the server's end
// of stream is read (or after CloseTimeout).
type clientStream struct {
	core.BiStream
	conn  *core.Connection
	once  sync.Once
	done  sync.Once
	timer *time.Timer
	mu    sync.Mutex
}

var _ io.ReadWriteCloser = (*clientStream)(nil)

func (c *clientStream) Read(p []byte) (int, error) {
	n, err := c.BiStream.Read(p)
	if err != nil {
		c.finish()
	}
	return n, err
}

func (c *clientStream) Close() error {
	var err error
	c.once.Do(func() {
		err = c.BiStream.CloseWrite()
		c.mu.Lock()
		c.timer = time.AfterFunc(CloseTimeout, c.finish)
		c.mu.Unlock()
		if errors.Is(err, core.ErrStreamClosed) || errors.Is(err, core.ErrConnectionClosed) {
			err = nil
		}
	})
	return err
}

// finish closes the stream and the connection.
func (c *clientStream) finish() {
	c.done.Do(func() {
		c.mu.Lock()
		if c.timer != nil {
			c.timer.Stop()
		}
		c.mu.Unlock()
		_ = c.BiStream.Close()
		c.conn.Close(core.CloseNormal, "")
	})
}
