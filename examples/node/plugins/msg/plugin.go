// Package msg is the node plugin of the msg module: the [msg] table of --config (decoded
// into msg.Config and checked by its Validate), the alknet/msg handler with its store,
// and the client commands "msg register", "msg send" and "msg inbox".
//
// A node serves alknet/msg when its --config has a [msg] table (an empty one takes the
// defaults). It hosts its own mailbox and the mailbox of every peer with scope
// msg:mailbox; peers with scope msg:send deliver to them, and anyone does under
// allow_anonymous = true. At start it publishes its own key bundle into its store, so
// that keys.get for the node's mailbox answers at once, and refreshes it daily.
//
// The X25519 key that bundle names comes from the vault (vault.PathMsgX25519, handed
// over in node.Env.MsgX25519Key) when the node runs from a keystore, and otherwise from
// DIR/msg_x25519.key (KeyFileName), created with mode 0600 on first use. It is never
// converted from the Ed25519 identity key. The client commands take their key the same
// way from their own state directory.
package msg

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/examples/node"
	"github.com/alknet/alknet/msg"
	"github.com/alknet/alknet/msg/boltstore"
	"github.com/alknet/alknet/msg/pgstore"
	"github.com/alknet/alknet/vault"
)

// Files and durations of the plugin.
const (
	// StoreFileName is the bbolt store in the state directory (store = "bbolt").
	StoreFileName = "msg.db"
	// NodeBundleValidity is how long the node's own key bundle is valid; the node
	// republishes it every NodeBundleRefresh while it runs.
	NodeBundleValidity = 30 * 24 * time.Hour
	// NodeBundleRefresh is how often a running node republishes its key bundle.
	NodeBundleRefresh = 24 * time.Hour
	// maxDSNSize bounds the postgres_dsn_file.
	maxDSNSize = 4 << 10
)

// Plugin serves alknet/msg when the config has a [msg] table, and provides the msg
// client commands.
type Plugin struct {
	mu      sync.Mutex
	running *msg.Config // the [msg] table serve started with; nil when not serving
}

// New returns the msg plugin.
func New() *Plugin { return &Plugin{} }

// Name is "msg".
func (*Plugin) Name() string { return "msg" }

// Config is the plugin's part of --config: the [msg] table (nil when absent: the node
// then serves no alknet/msg).
type Config struct {
	Msg *msg.Config `toml:"msg"`
}

// Resolve makes postgres_dsn_file relative to the config file's directory.
func (c *Config) Resolve(dir string) {
	if c.Msg != nil {
		c.Msg.Resolve(dir)
	}
}

// Validate checks the [msg] table; errors name the key ("msg.store: ...").
func (c *Config) Validate() error {
	if c.Msg == nil {
		return nil
	}
	if err := c.Msg.Validate(); err != nil {
		return fmt.Errorf("msg.%w", err)
	}
	return nil
}

// NewConfig returns the default: no [msg], no msg service.
func (*Plugin) NewConfig() node.Config { return &Config{} }

// Setup opens the store the [msg] table names, publishes the node's key bundle into it
// and returns the alknet/msg server. The store is closed when the node stops.
func (p *Plugin) Setup(ctx context.Context, env *node.Env) ([]core.ProtocolHandler, error) {
	c := env.Config(p).(*Config).Msg
	if c == nil {
		return nil, nil
	}
	cfg := c.Effective()
	xkey, err := nodeKey(env)
	if err != nil {
		return nil, fmt.Errorf("alknet/msg: %w", err)
	}
	store, err := OpenStore(ctx, cfg, env.StateDir, env.Logger)
	if err != nil {
		return nil, fmt.Errorf("alknet/msg: %w", err)
	}
	pub := env.Key.Public().(ed25519.PublicKey)
	refresh := &refresher{store: store, key: env.Key, xpub: xkey.PublicKey(), mailbox: msg.Mailbox(pub), log: env.Logger, stop: make(chan struct{}), done: make(chan struct{})}
	env.OnClose(func() error {
		refresh.close()
		return store.Close()
	})
	if err := refresh.publish(ctx, time.Now()); err != nil {
		close(refresh.done)
		return nil, fmt.Errorf("alknet/msg: %w", err)
	}
	srv, err := msg.NewServer(cfg, store,
		msg.Hosted(pub),
		msg.WithPeerMailboxes(env.Identities),
		msg.WithLimits(env.Store.Limits),
		msg.WithLogger(env.Logger))
	if err != nil {
		close(refresh.done)
		return nil, fmt.Errorf("alknet/msg: %w", err)
	}
	go refresh.loop()
	env.AddMetrics(source(srv))
	p.mu.Lock()
	p.running = &cfg
	p.mu.Unlock()
	return []core.ProtocolHandler{srv}, nil
}

// Reload takes a reloaded [msg] table: its keys take effect on restart, which the
// "config reloaded" line says (attribute msg) when they changed. Peers and their scopes
// (msg:mailbox, msg:send) apply at once, through the node's live configuration.
func (p *Plugin) Reload(c node.Config) ([]slog.Attr, error) {
	next := c.(*Config).Msg
	p.mu.Lock()
	cur := p.running
	p.mu.Unlock()
	switch {
	case cur == nil && next == nil:
		return nil, nil
	case cur == nil:
		return []slog.Attr{slog.String("msg", "restart to serve alknet/msg")}, nil
	case next == nil:
		return []slog.Attr{slog.String("msg", "the [msg] table is gone; alknet/msg is served until restart")}, nil
	case next.Effective() != *cur:
		return []slog.Attr{slog.String("msg", "[msg] changes take effect on restart")}, nil
	}
	return nil, nil
}

// nodeKey returns the node's X25519 key: the vault's when serve derived one, else the
// state directory's key file (created when missing).
func nodeKey(env *node.Env) (*ecdh.PrivateKey, error) {
	if env.MsgX25519Key != nil {
		// NewX25519Key wipes its argument: hand it a copy, the node wipes the original.
		k, err := msg.NewX25519Key(bytes.Clone(env.MsgX25519Key))
		if err != nil {
			return nil, err
		}
		env.Logger.Info("msg X25519 key from the vault", slog.String("path", vault.PathMsgX25519))
		return k, nil
	}
	k, created, err := LoadOrCreateKey(env.StateDir)
	if err != nil {
		return nil, err
	}
	if created {
		env.Logger.Info("created msg X25519 key", slog.String("key", filepath.Join(env.StateDir, KeyFileName)))
	}
	return k, nil
}

// OpenStore opens the store cfg names (cfg.Store after defaults): a bbolt file
// StoreFileName in stateDir, the PostgreSQL database whose DSN cfg.PostgresDSNFile holds
// (a file group and others cannot access; the DSN is never logged), or memory. The
// caller closes it.
func OpenStore(ctx context.Context, cfg msg.Config, stateDir string, log *slog.Logger) (msg.Store, error) {
	switch cfg.Effective().Store {
	case msg.StoreMemory:
		return msg.NewMemStore(), nil
	case msg.StoreBolt:
		s, err := boltstore.Open(filepath.Join(stateDir, StoreFileName), boltstore.Options{})
		if err != nil {
			return nil, err
		}
		return s, nil
	case msg.StorePostgres:
		dsn, err := node.ReadSecretFile("msg.postgres_dsn_file", cfg.PostgresDSNFile, maxDSNSize, "DSN")
		if err != nil {
			return nil, err
		}
		defer clear(dsn)
		s, err := pgstore.Open(ctx, string(dsn), pgstore.Options{Logger: log})
		if err != nil {
			return nil, err
		}
		return s, nil
	}
	return nil, fmt.Errorf("%w: store %q", msg.ErrInvalidConfig, cfg.Store)
}

// refresher publishes the node's key bundle into the store at start and then every
// NodeBundleRefresh, until close.
type refresher struct {
	store   msg.Store
	key     ed25519.PrivateKey
	xpub    *ecdh.PublicKey
	mailbox string
	log     *slog.Logger

	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}
}

// publish signs a bundle valid NodeBundleValidity from now and stores it.
func (r *refresher) publish(ctx context.Context, now time.Time) error {
	b, err := msg.NewKeyBundle(r.key, r.xpub, now.Add(NodeBundleValidity))
	if err != nil {
		return err
	}
	raw, err := json.Marshal(b)
	if err != nil {
		return err
	}
	if err := r.store.PutBundle(ctx, r.mailbox, raw); err != nil {
		return fmt.Errorf("publish the node's key bundle: %w", err)
	}
	return nil
}

// loop republishes the bundle until close.
func (r *refresher) loop() {
	defer close(r.done)
	t := time.NewTicker(NodeBundleRefresh)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case now := <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), msg.RequestTimeout)
			if err := r.publish(ctx, now); err != nil {
				r.log.Warn("msg: republishing the node's key bundle failed", slog.String("error", err.Error()))
			}
			cancel()
		}
	}
}

// close stops the loop and waits for it.
func (r *refresher) close() {
	r.stopOnce.Do(func() { close(r.stop) })
	<-r.done
}
