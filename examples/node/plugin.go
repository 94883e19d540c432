package node

import (
	"context"
	"crypto/ed25519"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"

	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/examples/node/metrics"
)

// Plugin is one part of a node: a set of handlers, a config table, client
// subcommands, or any mix of them. The only required method is Name; what else a
// plugin does it tells by implementing the optional interfaces below, which the node
// discovers by type assertion. A binary lists its plugins, in order, in one slice
// (Node.Plugins): nothing registers itself.
type Plugin interface {
	// Name names the plugin in errors and logs ("echo", "ssh").
	Name() string
}

// Config is a plugin's configuration value: a pointer to a struct whose fields,
// tagged `toml:"key"`, are the top-level --config keys the plugin owns. The node
// decodes each key's value straight into its field and then calls Validate, whose
// error names the key at fault relative to the table (the node adds nothing).
type Config interface {
	Validate() error
}

// PathResolver is a Config with file paths, which resolve against the directory of
// the --config file when relative. The node calls Resolve before Validate.
type PathResolver interface {
	Config
	Resolve(dir string)
}

// Configurable is a plugin that owns top-level keys of the --config file.
type Configurable interface {
	Plugin
	// NewConfig returns a new config value with its defaults, to decode a file into.
	NewConfig() Config
}

// Provisioner is a plugin that serves handlers.
type Provisioner interface {
	Plugin
	// Setup builds the plugin's handlers from env, in ALPN preference order. The
	// node registers them in the order of its plugin list.
	Setup(ctx context.Context, env *Env) ([]core.ProtocolHandler, error)
}

// Reloader is a plugin that takes a reloaded --config (on SIGHUP) itself; the peers,
// API keys and limits reach every handler through Env.Store without it.
type Reloader interface {
	Plugin
	// Reload applies cfg, the plugin's NewConfig decoded from the new file and
	// validated, to new connections. It returns attributes for the "config reloaded"
	// log line. On an error the plugin keeps its previous configuration.
	Reload(cfg Config) ([]slog.Attr, error)
}

// Checker is a plugin whose config has checks beyond Validate that Setup makes before
// it serves (documents it reads and parses, operation names that must not collide)
// and that need no network, key or state directory. "config check" runs them once the
// whole file is valid, so that it refuses what serve would refuse when it starts.
type Checker interface {
	Plugin
	// Check checks cfg, the plugin's config decoded from the file and validated. Its
	// error names the key at fault; a *ConfigError or a plain error alike exits 2.
	Check(cfg Config) error
}

// Flagger is a plugin with flags of its own on serve.
type Flagger interface {
	Plugin
	// ServeFlags defines the plugin's flags on fs and returns their synopsis
	// ("[--demo-page]") for serve's usage line.
	ServeFlags(fs *flag.FlagSet) string
}

// Commander is a plugin with client subcommands ("alknet pipe").
type Commander interface {
	Plugin
	// Commands returns the subcommands, in the order of the usage text.
	Commands() []Command
}

// Command is one client subcommand.
type Command struct {
	// Name is the word after the program name.
	Name string
	// Summary is its line in the usage text.
	Summary string
	// Run runs it with the arguments after its name.
	Run func(ctx context.Context, cli *CLI, args []string) error
	// Help prints its help for "help NAME [SUB...]"; nil runs it with -h.
	Help func(cli *CLI, args []string) error
	// HangUpEnds makes SIGHUP end it like SIGINT (for commands whose peer may be a
	// closed terminal or an OpenSSH ProxyCommand).
	HangUpEnds bool
}

// Env is what the node hands a Provisioner: the node's key and state directory, the
// live configuration, the identity provider over it, a logger and the plugin's own
// decoded config. Plugins get values, never the means to read secrets themselves.
type Env struct {
	// StateDir is the node's state directory.
	StateDir string
	// Key is the node's identity key (its fingerprint is the TLS fingerprint).
	Key ed25519.PrivateKey
	// SSHHostKey is the node's SSH host key: the vault's when the node runs from a
	// keystore, Key otherwise.
	SSHHostKey ed25519.PrivateKey
	// Store is the live configuration: peers, API keys, limits.
	Store *core.DynamicStore
	// Identities resolves fingerprints and tokens from Store; the endpoint uses it too,
	// so a reload applies to handlers and endpoint alike.
	Identities core.IdentityProvider
	// Logger is the node's logger.
	Logger *slog.Logger
	// ConfigDir is the directory of the --config file, against which relative paths in
	// it resolve ("" without one).
	ConfigDir string
	// MsgX25519Key is the msg service's X25519 private key (32 bytes) derived from the
	// vault at vault.PathMsgX25519 when the node runs from a keystore; nil otherwise (the
	// msg plugin then keeps a key file in StateDir). It is valid during Setup only: the
	// node wipes it once every Setup has returned, so a plugin takes its own copy.
	MsgX25519Key []byte

	configs     map[Plugin]Config
	browserCert bool
	httpRoutes  *http.ServeMux
	onReady     []func(Ready)
	metrics     []metrics.Source
	closers     []func() error
}

// Config returns p's decoded config (its NewConfig when the file has none of its
// keys, or serve runs without --config); nil when p is not Configurable.
func (e *Env) Config(p Plugin) Config { return e.configs[p] }

// UseBrowserCertificate makes the node present a self-signed ECDSA certificate to
// clients (browsers) that do not accept its Ed25519 one.
func (e *Env) UseBrowserCertificate() { e.browserCert = true }

// OnReady calls f once the node listens, before it prints its "ready" line: what f
// finishes with the listen addresses and the final ALPN list (a discovery record) is
// in place when the line appears.
func (e *Env) OnReady(f func(Ready)) { e.onReady = append(e.onReady, f) }

// HandleHTTP serves h at pattern (an http.ServeMux pattern, such as "/pkarr/") on the
// node's HTTP surface, behind its reserved routes, when the binary lists a plugin
// that serves one (the http plugin mounts HTTPRoutes). Call it from Setup. A pattern
// that is invalid or conflicts with one already registered is an error.
func (e *Env) HandleHTTP(pattern string, h http.Handler) (err error) {
	defer func() {
		// ServeMux.Handle panics on a bad or conflicting pattern.
		if r := recover(); r != nil {
			err = fmt.Errorf("http route %q: %v", pattern, r)
		}
	}()
	e.HTTPRoutes().Handle(pattern, h)
	return nil
}

// HTTPRoutes returns the routes the plugins registered with HandleHTTP, for the plugin
// that serves the node's HTTP surface. It is one mux for the whole serve, so routes
// registered by plugins set up after that plugin are in it too: every plugin registers
// during Setup, before the node listens.
func (e *Env) HTTPRoutes() *http.ServeMux {
	if e.httpRoutes == nil {
		e.httpRoutes = http.NewServeMux()
	}
	return e.httpRoutes
}

// OnClose calls f after the endpoint has shut down.
func (e *Env) OnClose(f func() error) { e.closers = append(e.closers, f) }

// Ready is what a listening node tells: its fingerprint, addresses, SSH host key
// fingerprint, ALPNs, live configuration and logger.
type Ready struct {
	Fingerprint string
	QUIC, TCP   net.Addr
	// ALPNs are the protocols the node serves, in preference order (the registry's
	// list once every plugin's handlers are registered).
	ALPNs []string
	// SSHHostKey is the fingerprint of Env.SSHHostKey.
	SSHHostKey string
	Store      *core.DynamicStore
	Logger     *slog.Logger
}

// As serves h under the ALPN alpn, for a plugin whose handler serves several
// protocols (the http plugin serves one handler as alknet/http, h2 and http/1.1) or
// is a plain core.HandlerFunc.
func As(alpn string, h core.Handler) core.ProtocolHandler { return alpnHandler{alpn, h} }

// alpnHandler is a handler with the ALPN it is registered under.
type alpnHandler struct {
	alpn string
	core.Handler
}

// ALPN is the protocol the handler is registered under.
func (a alpnHandler) ALPN() string { return a.alpn }
