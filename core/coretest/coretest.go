// Package coretest provides loopback fixtures for testing Alknet handlers, as
// net/http/httptest does for HTTP handlers: an endpoint serving QUIC and TCP+TLS on
// 127.0.0.1 with an ephemeral port, client identities, dial helpers, an echo handler
// and a log capture.
//
//	reg := core.NewRegistry()
//	reg.RegisterAs("alknet/test", myHandler)
//	srv := coretest.NewServer(t, reg)
//	conn := srv.Dial(t, "alknet/test", coretest.NewIdentity(t), endpoint.NetworkQUIC)
//	s, _ := conn.OpenBi(ctx)
//
// Servers and connections are closed by t.Cleanup.
package coretest

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/core/endpoint"
	"github.com/alknet/alknet/core/tlsconf"
)

// Identity is an Ed25519 key with its self-signed certificate and fingerprint.
type Identity struct {
	Key         ed25519.PrivateKey
	Cert        tls.Certificate
	Fingerprint string
}

// NewIdentity generates a fresh identity.
func NewIdentity(t testing.TB) *Identity {
	t.Helper()
	key, err := tlsconf.GenerateKey()
	if err != nil {
		t.Fatalf("coretest: generate key: %v", err)
	}
	return IdentityFromKey(t, key)
}

// IdentityFromKey wraps an existing key.
func IdentityFromKey(t testing.TB, key ed25519.PrivateKey) *Identity {
	t.Helper()
	cert, err := tlsconf.Certificate(key)
	if err != nil {
		t.Fatalf("coretest: certificate: %v", err)
	}
	return &Identity{Key: key, Cert: cert, Fingerprint: tlsconf.Fingerprint(key)}
}

// Peer returns an enabled PeerEntry for this identity.
func (id *Identity) Peer(peerID string, scopes ...string) core.PeerEntry {
	return core.PeerEntry{PeerID: peerID, Fingerprints: []string{id.Fingerprint}, Scopes: scopes, Enabled: true}
}

// Server is an endpoint listening on 127.0.0.1 (QUIC and TCP+TLS on one port).
type Server struct {
	Endpoint *endpoint.Endpoint
	Identity *Identity
	Store    *core.DynamicStore
	// Addr is "127.0.0.1:<port>", the same port for QUIC and TCP+TLS.
	Addr string
	Logs *LogBuffer
}

// Option adjusts NewServer.
type Option func(*serverOptions)

type serverOptions struct {
	cfg      core.DynamicConfig
	epConfig func(*endpoint.Config)
	identity *Identity
}

// WithConfig sets the initial dynamic configuration (peers, API keys, limits).
func WithConfig(cfg core.DynamicConfig) Option {
	return func(o *serverOptions) { o.cfg = cfg }
}

// WithEndpointConfig lets the test adjust the endpoint configuration before New.
func WithEndpointConfig(f func(*endpoint.Config)) Option {
	return func(o *serverOptions) { o.epConfig = f }
}

// WithIdentity sets the server identity (default: a fresh one).
func WithIdentity(id *Identity) Option {
	return func(o *serverOptions) { o.identity = id }
}

// NewServer starts an endpoint serving reg on 127.0.0.1:0 over QUIC and TCP+TLS,
// resolving identities and limits from a DynamicStore, logging at debug level into Logs.
// t.Cleanup shuts it down.
func NewServer(t testing.TB, reg *core.Registry, opts ...Option) *Server {
	t.Helper()
	o := serverOptions{}
	for _, f := range opts {
		f(&o)
	}
	if o.identity == nil {
		o.identity = NewIdentity(t)
	}
	store, err := core.NewDynamicStore(o.cfg)
	if err != nil {
		t.Fatalf("coretest: dynamic config: %v", err)
	}
	logs := NewLogBuffer()
	cfg := endpoint.Config{
		TLS:        tlsconf.ServerConfig(o.identity.Cert),
		Identities: core.NewConfigIdentityProvider(store, nil),
		Limits:     store.Limits,
		Logger:     logs.Logger(),
	}
	if o.epConfig != nil {
		o.epConfig(&cfg)
	}
	ep, err := endpoint.New(reg, cfg)
	if err != nil {
		t.Fatalf("coretest: endpoint: %v", err)
	}
	if err := ep.Listen("127.0.0.1:0"); err != nil {
		t.Fatalf("coretest: listen: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = ep.Shutdown(ctx)
	})
	return &Server{Endpoint: ep, Identity: o.identity, Store: store, Addr: ep.QUICAddr().String(), Logs: logs}
}

// DialOptions returns options that pin this server and present client (nil: no
// client certificate).
func (s *Server) DialOptions(client *Identity, network endpoint.Network) endpoint.DialOptions {
	opts := endpoint.DialOptions{Network: network, TLS: tlsconf.ClientOptions{Pin: s.Identity.Fingerprint}}
	if client != nil {
		cert := client.Cert
		opts.TLS.Certificate = &cert
	}
	return opts
}

// DialErr dials the server and returns the error instead of failing the test.
func (s *Server) DialErr(ctx context.Context, alpn string, client *Identity, network endpoint.Network) (*core.Connection, error) {
	return endpoint.Dial(ctx, s.Addr, alpn, s.DialOptions(client, network))
}

// Dial dials the server or fails the test; t.Cleanup closes the connection.
func (s *Server) Dial(t testing.TB, alpn string, client *Identity, network endpoint.Network) *core.Connection {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := s.DialErr(ctx, alpn, client, network)
	if err != nil {
		t.Fatalf("coretest: dial %s over %s: %v", alpn, network, err)
	}
	t.Cleanup(func() { conn.Close(core.CloseNormal, "") })
	return conn
}

// Echo is a handler that echoes every stream the peer opens and half-closes it after
// the peer's EOF, until the connection closes.
func Echo() core.Handler {
	return core.HandlerFunc(func(ctx context.Context, conn *core.Connection, _ core.AuthContext) error {
		return core.ServeStreams(ctx, conn, func(s core.BiStream) {
			if _, err := io.Copy(s, s); err != nil {
				_ = s.Close()
				return
			}
			_ = s.CloseWrite()
		})
	})
}

// RoundTrip writes msg on a new stream, half-closes it and returns everything the peer
// sends back until EOF.
func RoundTrip(ctx context.Context, conn *core.Connection, msg []byte) ([]byte, error) {
	s, err := conn.OpenBi(ctx)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	if d, ok := ctx.Deadline(); ok {
		if ds, ok := s.(interface{ SetDeadline(time.Time) error }); ok {
			_ = ds.SetDeadline(d)
		}
	}
	if _, err := s.Write(msg); err != nil {
		return nil, err
	}
	if err := s.CloseWrite(); err != nil {
		return nil, err
	}
	return io.ReadAll(s)
}

// LogBuffer collects log lines written through Logger, safe for concurrent use.
type LogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// NewLogBuffer returns an empty buffer.
func NewLogBuffer() *LogBuffer { return &LogBuffer{} }

// Write implements io.Writer.
func (b *LogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// Logger returns a debug-level text logger writing into b.
func (b *LogBuffer) Logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// String returns everything logged so far.
func (b *LogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Lines returns the logged lines that contain every one of subs.
func (b *LogBuffer) Lines(subs ...string) []string {
	var out []string
	for _, l := range strings.Split(b.String(), "\n") {
		ok := l != ""
		for _, s := range subs {
			ok = ok && strings.Contains(l, s)
		}
		if ok {
			out = append(out, l)
		}
	}
	return out
}
