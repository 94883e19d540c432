package call

import (
	"context"
	"fmt"

	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/core/endpoint"
)

// DialOptions configure Dial.
type DialOptions struct {
	// Transport says how to reach and verify the node: the client certificate, the
	// server's pinned fingerprint (or CA verification), QUIC or TCP+TLS (NetworkAuto
	// tries QUIC and falls back to TCP+TLS). The server is always verified.
	Transport endpoint.DialOptions
	// Dispatcher serves the calls the node makes back into this client, and sets
	// timeouts and limits. Nil: a Dispatcher with an empty registry.
	Dispatcher *Dispatcher
	// PeerIdentity is the node's identity as this side sees it, used for the access
	// control of the node's calls back into this client. Nil: resolved from the
	// server's certificate fingerprint through Dispatcher.Identities when that is set.
	PeerIdentity *core.Identity
}

// Dial connects to the node at addr with ALPN "alknet/call" and returns the
// connection, ready for Call and Subscribe. ctx bounds the dial only; the connection
// lives until Close (or until the node closes it).
func Dial(ctx context.Context, addr string, opts DialOptions) (*Conn, error) {
	conn, err := endpoint.Dial(ctx, addr, ALPN, opts.Transport)
	if err != nil {
		return nil, err
	}
	d := opts.Dispatcher
	if d == nil {
		d = &Dispatcher{}
	}
	peer := opts.PeerIdentity
	if peer == nil && d.Identities != nil {
		if id, ok := d.Identities.ResolveFromFingerprint(conn.PeerFingerprint()); ok {
			peer = id
		}
	}
	c, err := d.Serve(context.WithoutCancel(ctx), conn, peer)
	if err != nil {
		conn.Close(core.CloseInternalError, "call: start")
		return nil, fmt.Errorf("call: dial %s: %w", addr, err)
	}
	return c, nil
}
