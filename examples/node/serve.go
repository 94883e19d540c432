package node

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/core/endpoint"
	"github.com/alknet/alknet/core/tlsconf"
	"github.com/alknet/alknet/examples/node/metrics"
)

// Defaults of serve.
const (
	// DefaultListen is the address serve listens on without --listen.
	DefaultListen = "127.0.0.1:4433"
	defaultDrain  = endpoint.DefaultDrainTimeout
)

// serveOptions are serve's parsed flags.
type serveOptions struct {
	state          string
	passphraseFile string
	listen         string
	config         string
	drain          time.Duration
	logLevel       slog.Level
	logFormat      string
	metrics        string
}

// PassphraseFileUsage is the help of --passphrase-file on the commands that unlock a
// keystore.
const PassphraseFileUsage = "read the keystore passphrase from `FILE` (mode 0600 or a pipe; one trailing newline is stripped); " +
	"without it alknet prompts on the terminal. Used only when DIR holds vault.keystore"

func (c *CLI) parseServe(args []string) (*serveOptions, error) {
	synopsis := c.node.Name + " serve [--state DIR] [--passphrase-file FILE] [--listen HOST:PORT] [--config FILE] [--drain DUR] [--log-level LEVEL] [--log-format text|json] [--metrics HOST:PORT]"
	cmd := c.NewFlagSet("serve", "")
	o := &serveOptions{}
	cmd.StringVar(&o.state, "state", "", "state directory `DIR` holding vault.keystore or node.key (default ~/.alknet)")
	cmd.StringVar(&o.passphraseFile, "passphrase-file", "", PassphraseFileUsage)
	cmd.StringVar(&o.listen, "listen", DefaultListen, "`HOST:PORT` to listen on, UDP (QUIC) and TCP (TCP+TLS); port 0 picks a free one")
	cmd.StringVar(&o.config, "config", "", "TOML `FILE` with peers, API keys and limits, re-read on SIGHUP (default: no peers, default limits)")
	cmd.DurationVar(&o.drain, "drain", defaultDrain, "how long shutdown waits for connections before closing them (`DUR`ation)")
	level := cmd.String("log-level", "info", "log `LEVEL`: debug, info, warn or error")
	cmd.StringVar(&o.logFormat, "log-format", "text", "log line `FORMAT` on stderr: text (slog's key=value) or json (one JSON object a line)")
	cmd.StringVar(&o.metrics, "metrics", "", MetricsUsage)
	for _, p := range c.node.Plugins {
		if f, ok := p.(Flagger); ok {
			if s := f.ServeFlags(cmd.FlagSet); s != "" {
				synopsis += " " + s
			}
		}
	}
	cmd.synopsis = synopsis
	pos, err := cmd.ParseArgs(args)
	if err != nil {
		return nil, err
	}
	if len(pos) > 0 {
		return nil, Usagef(`serve: unexpected argument %q (run "%s serve -h" for usage)`, pos[0], c.node.Name)
	}
	switch strings.ToLower(*level) {
	case "debug":
		o.logLevel = slog.LevelDebug
	case "info":
		o.logLevel = slog.LevelInfo
	case "warn":
		o.logLevel = slog.LevelWarn
	case "error":
		o.logLevel = slog.LevelError
	default:
		return nil, Usagef("serve: --log-level %q: want debug, info, warn or error", *level)
	}
	if o.drain <= 0 {
		return nil, Usagef("serve: --drain %s: must be positive", o.drain)
	}
	if err := checkListenAddr(o.listen); err != nil {
		return nil, Usagef("serve: --listen %q: %v", o.listen, err)
	}
	if err := checkLogFormat(o.logFormat); err != nil {
		return nil, Usagef("serve: --log-format %q: %v", o.logFormat, err)
	}
	if o.metrics != "" {
		if err := checkListenAddr(o.metrics); err != nil {
			return nil, Usagef("serve: --metrics %q: %v", o.metrics, err)
		}
	}
	return o, nil
}

// serve runs a node until ctx is cancelled.
func (c *CLI) serve(ctx context.Context, args []string) error {
	var reload <-chan os.Signal
	if c.NotifyReload != nil {
		// Subscribe first: a SIGHUP that arrives while starting must not kill the node.
		ch, stop := c.NotifyReload()
		defer stop()
		reload = ch
	}
	o, err := c.parseServe(args)
	if err != nil {
		return err
	}
	log := newLogger(c.Stderr, o.logFormat, o.logLevel)
	plugins := c.node.Plugins

	// config check runs the same loading (loadServeConfig).
	pc, store, configDir, err := c.loadServeConfig(o.config)
	if err != nil {
		return &ConfigError{fmt.Errorf("serve: %w", err)}
	}

	id, err := c.serveIdentity(o.state, o.passphraseFile)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	fp := id.Fingerprint()
	sshHost := id.sshHost()
	sshFP := core.FingerprintFromPublicKey(sshHost.Public().(ed25519.PublicKey))
	switch {
	case id.fromVault:
		log.Info("node identity from the vault", slog.String("keystore", id.keyPath), slog.String("fingerprint", fp), slog.String("ssh_host_key", sshFP))
	case id.created:
		log.Info("created node identity", slog.String("key", id.keyPath), slog.String("fingerprint", fp))
	}
	// The node's certificate is made from its key at start and renewed from the same key
	// before it expires (tlsconf.CertificateValidity), so the fingerprint never changes.
	nodeCert, err := tlsconf.NewNodeCertificate(id.key)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}

	env := &Env{
		StateDir:   id.dir,
		Key:        id.key,
		SSHHostKey: sshHost,
		Store:      store,
		// One identity provider for the endpoint and the handlers: it reads the store's
		// current snapshot, so a reload applies to both.
		Identities: core.NewConfigIdentityProvider(store, nil),
		Logger:     log,
		ConfigDir:  configDir,
		// Wiped once the plugins are set up (below, and on every early return).
		MsgX25519Key: id.msgKey,
		configs:      pc.configs,
	}
	defer clear(id.msgKey)
	defer env.close()
	reg := core.NewRegistry()
	var hs []core.ProtocolHandler
	var reloaders []Reloader
	for _, p := range plugins {
		if r, ok := p.(Reloader); ok {
			reloaders = append(reloaders, r)
		}
		pv, ok := p.(Provisioner)
		if !ok {
			continue
		}
		phs, err := pv.Setup(ctx, env)
		if err != nil {
			closeHandlers(hs)
			return fmt.Errorf("serve: %w", err)
		}
		hs = append(hs, phs...)
	}
	clear(id.msgKey)
	env.MsgX25519Key = nil
	for _, h := range hs {
		if err := reg.Register(h); err != nil {
			closeHandlers(hs)
			return fmt.Errorf("serve: register handler: %w", err)
		}
	}
	tlsCfg := nodeCert.ServerConfig()
	if env.browserCert {
		// Every client that accepts Ed25519 (all alknet clients) still gets the node's
		// certificate; browsers, which do not, get this one.
		web, err := tlsconf.BrowserCertificate()
		if err != nil {
			closeHandlers(hs)
			return fmt.Errorf("serve: %w", err)
		}
		tlsCfg.GetCertificate = func(chi *tls.ClientHelloInfo) (*tls.Certificate, error) {
			c, err := nodeCert.Certificate()
			if err != nil || chi.SupportsCertificate(c) == nil {
				return c, err
			}
			return &web, nil
		}
	}
	// TLS clients that offer no ALPN speak HTTP/1.1 (Go's net/http sends none for a
	// WebSocket upgrade), when the node serves it.
	var tcpDefault string
	if slices.Contains(reg.ALPNs(), "http/1.1") {
		tcpDefault = "http/1.1"
	}
	ep, err := endpoint.New(reg, endpoint.Config{
		TLS:            tlsCfg,
		Identities:     env.Identities,
		Limits:         store.Limits,
		DrainTimeout:   o.drain,
		TCPDefaultALPN: tcpDefault,
		Logger:         log,
	})
	if err != nil {
		closeHandlers(hs)
		return fmt.Errorf("serve: %w", err)
	}
	if err := ep.Listen(o.listen); err != nil {
		_ = ep.Close()
		closeHandlers(hs)
		return fmt.Errorf("serve: %w", err)
	}
	reloads := &reloadCounts{}
	var ms *metrics.Server
	if o.metrics != "" {
		if ms, err = startMetrics(o.metrics, env, ep, reloads); err != nil {
			_ = ep.Close()
			closeHandlers(hs)
			return fmt.Errorf("serve: %w", err)
		}
		defer ms.Close()
	}
	quicAddr, tcpAddr := ep.QUICAddr(), ep.TCPAddr()
	ready := Ready{Fingerprint: fp, QUIC: quicAddr, TCP: tcpAddr, SSHHostKey: sshFP, ALPNs: reg.ALPNs(), Store: store, Logger: log}
	for _, f := range env.onReady {
		f(ready)
	}
	_, err = fmt.Fprintf(c.Stdout, "fingerprint %s\nlisten quic %s\nlisten tcp %s\n%sssh-host-key %s\nready\n", fp, quicAddr, tcpAddr, metricsLine(ms), sshFP)
	if err != nil {
		_ = ep.Close()
		closeHandlers(hs)
		return fmt.Errorf("serve: write stdout: %w", err)
	}
	log.Info("serving",
		slog.String("fingerprint", fp),
		slog.String("quic", quicAddr.String()),
		slog.String("tcp", tcpAddr.String()),
		slog.String("ssh_host_key", sshFP),
		slog.Any("alpns", reg.ALPNs()),
		slog.String("config", orDash(o.config)))
	if c.OnReady != nil {
		c.OnReady(ready)
	}

	for {
		select {
		case <-ctx.Done():
			log.Info("shutting down", slog.Duration("drain", o.drain))
			err := ep.Shutdown(context.Background())
			closeHandlers(hs)
			log.Info("stopped")
			return err
		case <-reload:
			err := reloadConfig(log, store, plugins, reloaders, o.config)
			reloads.count(o.config != "", err)
			if c.OnReload != nil {
				c.OnReload(err)
			}
		}
	}
}

// closeHandlers closes the handlers that are io.Closers (sessions that outlive
// connections), once the endpoint has shut down.
func closeHandlers(hs []core.ProtocolHandler) {
	for _, h := range hs {
		if cl, ok := h.(io.Closer); ok {
			_ = cl.Close()
		}
	}
}

// close runs the OnClose functions, last registered first.
func (e *Env) close() {
	for i := len(e.closers) - 1; i >= 0; i-- {
		_ = e.closers[i]()
	}
}

// reloadConfig re-reads path and swaps it into store, then hands the plugins that take
// their own part of it (Reloader) their new config; a parse or validation error keeps
// the old configuration everywhere. The outcome is logged.
func reloadConfig(log *slog.Logger, store *core.DynamicStore, plugins []Plugin, reloaders []Reloader, path string) error {
	if path == "" {
		log.Info("reload requested, but serve runs without --config: nothing to reload")
		return nil
	}
	pc, err := LoadConfig(path, plugins)
	if err == nil {
		err = store.Reload(pc.Dynamic)
	}
	if err != nil {
		log.Error("config reload failed; keeping the previous configuration",
			slog.String("file", path), slog.String("error", OneLine(err.Error())))
		return err
	}
	// The file is valid and the store took it; a plugin refusing its part (which a
	// validated config never makes it do) keeps its own previous configuration.
	attrs := []any{
		slog.String("file", path),
		slog.Int("peers", len(pc.Dynamic.Auth.Peers)),
		slog.Int("api_keys", len(pc.Dynamic.Auth.APIKeys)),
	}
	var errs []error
	for _, r := range reloaders {
		as, err := r.Reload(pc.Config(r))
		if err != nil {
			errs = append(errs, err)
		}
		for _, a := range as {
			attrs = append(attrs, a)
		}
	}
	if err := errors.Join(errs...); err != nil {
		log.Error("config reload failed for a handler; it keeps its previous configuration",
			slog.String("file", path), slog.String("error", OneLine(err.Error())))
		return err
	}
	log.Info("config reloaded", attrs...)
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
