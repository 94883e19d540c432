package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/core/endpoint"
	"github.com/alknet/alknet/core/tlsconf"
	"github.com/alknet/alknet/http/client"
	alkssh "github.com/alknet/alknet/ssh"
)

// Defaults of serve.
const (
	defaultListen = "127.0.0.1:4433"
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
	// demoPage mounts the demo page at GET /demo (off by default: a node does not
	// reveal itself to a stranger's browser unless asked to).
	demoPage bool
}

func (c *cli) parseServe(args []string) (*serveOptions, error) {
	cmd := c.newCommand("serve", "alknet serve [--state DIR] [--passphrase-file FILE] [--listen HOST:PORT] [--config FILE] [--drain DUR] [--log-level LEVEL] [--demo-page]")
	o := &serveOptions{}
	cmd.fs.StringVar(&o.state, "state", "", "state directory `DIR` holding vault.keystore or node.key (default ~/.alknet)")
	cmd.fs.StringVar(&o.passphraseFile, "passphrase-file", "", passphraseFileUsage)
	cmd.fs.StringVar(&o.listen, "listen", defaultListen, "`HOST:PORT` to listen on, UDP (QUIC) and TCP (TCP+TLS); port 0 picks a free one")
	cmd.fs.StringVar(&o.config, "config", "", "TOML `FILE` with peers, API keys and limits, re-read on SIGHUP (default: no peers, default limits)")
	cmd.fs.DurationVar(&o.drain, "drain", defaultDrain, "how long shutdown waits for connections before closing them (`DUR`ation)")
	level := cmd.fs.String("log-level", "info", "log `LEVEL`: debug, info, warn or error")
	cmd.fs.BoolVar(&o.demoPage, "demo-page", false, "serve the browser demo page at https://HOST:PORT"+demoPagePath+
		" (the call protocol over the WebSocket /alknet/call), and a self-signed ECDSA certificate for browsers, which refuse the node's Ed25519 one")
	pos, err := cmd.parse(c, args)
	if err != nil {
		return nil, err
	}
	if len(pos) > 0 {
		return nil, usagef(`serve: unexpected argument %q (run "alknet serve -h" for usage)`, pos[0])
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
		return nil, usagef("serve: --log-level %q: want debug, info, warn or error", *level)
	}
	if o.drain <= 0 {
		return nil, usagef("serve: --drain %s: must be positive", o.drain)
	}
	if _, _, err := net.SplitHostPort(o.listen); err != nil {
		return nil, usagef("serve: --listen %q: %v", o.listen, err)
	}
	return o, nil
}

// serve runs a node until ctx is cancelled.
func (c *cli) serve(ctx context.Context, args []string) error {
	var reload <-chan os.Signal
	if c.notifyReload != nil {
		// Subscribe first: a SIGHUP that arrives while starting must not kill the node.
		ch, stop := c.notifyReload()
		defer stop()
		reload = ch
	}
	o, err := c.parseServe(args)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(c.stderr, &slog.HandlerOptions{Level: o.logLevel}))

	cfg := core.DefaultDynamicConfig()
	var imports []openapiImport
	var mcps []mcpImport
	var sshCfg sshSettings
	if o.config != "" {
		nc, err := loadNodeConfig(o.config)
		if err != nil {
			return &configError{fmt.Errorf("serve: %w", err)}
		}
		cfg, imports, mcps, sshCfg = nc.dynamic, nc.openapi, nc.mcp, nc.ssh
	}
	store, err := core.NewDynamicStore(cfg)
	if err != nil {
		return &configError{fmt.Errorf("serve: config: %w", err)}
	}

	id, err := c.serveIdentity(o.state, o.passphraseFile)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	fp := id.fingerprint()
	hostKey, err := alkssh.NewSigner(id.sshHost())
	if err != nil {
		return fmt.Errorf("serve: SSH host key: %w", err)
	}
	sshFP := alkssh.KeyFingerprint(hostKey.PublicKey())
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

	// One identity provider for the endpoint and the handlers: it reads the store's
	// current snapshot, so a reload applies to both.
	identities := core.NewConfigIdentityProvider(store, nil)
	// One outbound HTTP client for every import: never configured from the environment.
	outbound, err := client.New(client.Config{Logger: log})
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	defer outbound.Close()
	imported, err := importOpenAPI(imports, outbound)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	for _, o := range imports {
		log.Info("imported OpenAPI operations", slog.String("namespace", o.namespace), slog.Bool("expose", o.expose))
	}
	mcpRegs, importers, err := importMCP(ctx, mcps, outbound, log)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	defer closeAll(importers)
	imported = append(imported, mcpRegs...)
	reg := core.NewRegistry()
	deps := handlerDeps{stateDir: id.dir, key: id.key, store: store, identities: identities, logger: log, callOps: c.callOps, imported: imported,
		sshHostKey: id.sshHost(), ssh: sshCfg, demoPage: o.demoPage}
	hs, err := handlers(deps)
	if err != nil {
		return fmt.Errorf("serve: build handlers: %w", err)
	}
	var reloaders []configReloader
	for _, h := range hs {
		if err := reg.Register(h); err != nil {
			return fmt.Errorf("serve: register handler: %w", err)
		}
		if r, ok := h.(configReloader); ok {
			reloaders = append(reloaders, r)
		}
	}
	tlsCfg := nodeCert.ServerConfig()
	if o.demoPage {
		// Every client that accepts Ed25519 (all alknet clients) still gets the node's
		// certificate; browsers, which do not, get this one.
		web, err := tlsconf.BrowserCertificate()
		if err != nil {
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
	ep, err := endpoint.New(reg, endpoint.Config{
		TLS:          tlsCfg,
		Identities:   identities,
		Limits:       store.Limits,
		DrainTimeout: o.drain,
		// TLS clients that offer no ALPN speak HTTP/1.1 (Go's net/http sends none for
		// a WebSocket upgrade).
		TCPDefaultALPN: "http/1.1",
		Logger:         log,
	})
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	if err := ep.Listen(o.listen); err != nil {
		_ = ep.Close()
		return fmt.Errorf("serve: %w", err)
	}
	quicAddr, tcpAddr := ep.QUICAddr(), ep.TCPAddr()
	_, err = fmt.Fprintf(c.stdout, "fingerprint %s\nlisten quic %s\nlisten tcp %s\nssh-host-key %s\nready\n", fp, quicAddr, tcpAddr, sshFP)
	if err != nil {
		_ = ep.Close()
		return fmt.Errorf("serve: write stdout: %w", err)
	}
	log.Info("serving",
		slog.String("fingerprint", fp),
		slog.String("quic", quicAddr.String()),
		slog.String("tcp", tcpAddr.String()),
		slog.String("ssh_host_key", sshFP),
		slog.Any("alpns", reg.ALPNs()),
		slog.String("config", orDash(o.config)))
	if o.demoPage {
		log.Info("demo page", slog.String("url", "https://"+tcpAddr.String()+demoPagePath))
	}
	if c.ready != nil {
		c.ready(serveInfo{Fingerprint: fp, QUIC: quicAddr, TCP: tcpAddr, SSHHostKey: sshFP, Store: store})
	}

	for {
		select {
		case <-ctx.Done():
			log.Info("shutting down", slog.Duration("drain", o.drain))
			err := ep.Shutdown(context.Background())
			for _, h := range hs {
				if cl, ok := h.(io.Closer); ok {
					_ = cl.Close()
				}
			}
			log.Info("stopped")
			return err
		case <-reload:
			err := reloadConfig(log, store, reloaders, o.config)
			if c.reloaded != nil {
				c.reloaded(err)
			}
		}
	}
}

// reloadConfig re-reads path and swaps it into store, then hands it to the handlers
// that take their own part of it (the [ssh] table); a parse or validation error keeps
// the old configuration everywhere. The outcome is logged.
func reloadConfig(log *slog.Logger, store *core.DynamicStore, reloaders []configReloader, path string) error {
	if path == "" {
		log.Info("reload requested, but serve runs without --config: nothing to reload")
		return nil
	}
	nc, err := loadNodeConfig(path)
	if err == nil {
		err = store.Reload(nc.dynamic)
	}
	if err != nil {
		log.Error("config reload failed; keeping the previous configuration",
			slog.String("file", path), slog.String("error", oneLine(err.Error())))
		return err
	}
	// The file is valid and the store took it; a handler refusing its part (which a
	// parsed config never makes it do) keeps its own previous configuration.
	var errs []error
	for _, r := range reloaders {
		if err := r.reloadConfig(nc); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		log.Error("config reload failed for a handler; it keeps its previous configuration",
			slog.String("file", path), slog.String("error", oneLine(err.Error())))
		return err
	}
	log.Info("config reloaded",
		slog.String("file", path),
		slog.Int("peers", len(nc.dynamic.Auth.Peers)),
		slog.Int("api_keys", len(nc.dynamic.Auth.APIKeys)),
		slog.Int("ssh_exec_allow", len(nc.ssh.execAllow)),
		slog.Int("ssh_cert_authorities", len(nc.ssh.cas)),
		slog.Int("ssh_forwarding_rules", len(nc.ssh.forwarding.Rules)))
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
