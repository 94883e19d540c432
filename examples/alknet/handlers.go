package main

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"

	gossh "golang.org/x/crypto/ssh"

	"github.com/alknet/alknet/call"
	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/examples/demo"
	"github.com/alknet/alknet/examples/echo"
	alkhttp "github.com/alknet/alknet/http"
	alkmcp "github.com/alknet/alknet/http/mcp"
	alkssh "github.com/alknet/alknet/ssh"
)

// handlerDeps is what the assembly layer can hand a handler when it is built: the
// node's key and state directory, the live configuration, the identity provider over
// it and a logger. Handlers get values, never the means to read secrets themselves.
type handlerDeps struct {
	stateDir string
	key      ed25519.PrivateKey
	store    *core.DynamicStore
	// identities resolves fingerprints and tokens from store; it is the provider the
	// endpoint uses, so a reload applies to handlers and endpoint alike.
	identities core.IdentityProvider
	logger     *slog.Logger

	// callOps, when set, registers more operations for alknet/call after the demo
	// ones. A test hook (cli.callOps); nil in the real command.
	callOps func(*call.Registry) error

	// imported are the operations of the [[openapi]] and [[mcp]] imports, with their
	// credentials.
	imported []call.Registration

	// sshHostKey is the alknet/ssh host key: the node's key, or the vault's SSH host
	// key (vault.PathSSHHost) when the node runs from a keystore.
	sshHostKey ed25519.PrivateKey
	// ssh is the [ssh] part of --config at start; a reload hands the handler the new one
	// (configReloader).
	ssh sshSettings

	// demoPage mounts the demo page (serve --demo-page); see demoRoutes.
	demoPage bool
}

// configReloader is a handler that takes its part of a reloaded --config itself (the
// peers, API keys and limits reach every handler through the store). serve calls
// reloadConfig on each after the store took the new configuration.
type configReloader interface {
	reloadConfig(nodeConfig) error
}

// handlers returns every handler the node serves, in ALPN preference order (a TLS
// client offering several of them gets the first: h2 before http/1.1). This is the one
// place to add a handler (and, where it needs them, its flags and config).
func handlers(deps handlerDeps) ([]core.ProtocolHandler, error) {
	reg, err := operations(deps)
	if err != nil {
		return nil, err
	}
	web := &webHandler{}
	web.Handler, err = alkhttp.New(alkhttp.Config{
		Registry:   reg,
		Identities: deps.identities,
		NodeLimits: deps.store.Limits,
		Routes:     demoRoutes(deps),
		// /mcp: the gateway as an MCP server (search, schema, call, batch).
		MCP: func(gw *alkhttp.Gateway) http.Handler {
			web.mcp = alkmcp.NewHandler(gw, &alkmcp.ServerOptions{Logger: deps.logger})
			return web.mcp
		},
		Logger: deps.logger,
	})
	if err != nil {
		return nil, err
	}
	sshd, err := newSSHHandler(deps)
	if err != nil {
		return nil, err
	}
	return []core.ProtocolHandler{
		echo.Handler{}, // alknet/echo
		&call.Dispatcher{ // alknet/call
			Registry:   reg,
			Identities: deps.identities,
			Limits:     deps.store.Limits,
			Logger:     deps.logger,
		},
		sshd,                    // alknet/ssh
		web,                     // alknet/http: HTTP/1.1 and h2 over QUIC streams
		alpnAs{"h2", web},       // browsers and curl on the TCP+TLS listener
		alpnAs{"http/1.1", web}, // clients without h2
	}, nil
}

// operations is the one call registry the node serves on alknet/call and over HTTP:
// the demo operations (demo/callback, demo/echo, demo/ticks, demo/whoami), the built-in discovery
// operations, the [[openapi]] and [[mcp]] imports and the test hook's. Per-request tokens (API keys, peer tokens) resolve
// through the node's live configuration.
func operations(deps handlerDeps) (*call.Registry, error) {
	reg := call.NewRegistry()
	if err := demo.Register(reg); err != nil {
		return nil, err
	}
	for _, r := range deps.imported {
		if err := reg.Register(r); err != nil {
			return nil, fmt.Errorf("imported operation %s: %w", r.Spec.Name, err)
		}
	}
	if deps.callOps != nil {
		if err := deps.callOps(reg); err != nil {
			return nil, fmt.Errorf("call operations: %w", err)
		}
	}
	return reg, nil
}

// demoPagePath is the route of the demo page. (Not "/demo/": the HTTP handler sends a
// path with a trailing slash to the decoy.)
const demoPagePath = "/demo"

// demoRoutes returns the extra HTTP routes of serve --demo-page: the demo page at GET
// /demo, which talks to the node over the WebSocket /alknet/call. Nil (no extra
// routes) without the flag.
func demoRoutes(deps handlerDeps) *http.ServeMux {
	if !deps.demoPage {
		return nil
	}
	mux := http.NewServeMux()
	mux.Handle("GET "+demoPagePath, demo.PageHandler())
	return mux
}

// webHandler is the HTTP surface with its MCP projection, whose sessions outlive
// connections: serve closes it (io.Closer) once the endpoint has shut down.
type webHandler struct {
	*alkhttp.Handler
	mcp http.Handler
}

// Close ends the open MCP sessions.
func (w *webHandler) Close() error {
	if c, ok := w.mcp.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

// alpnAs serves a handler under another ALPN.
type alpnAs struct {
	alpn string
	core.Handler
}

// ALPN is the protocol the handler is registered under.
func (a alpnAs) ALPN() string { return a.alpn }

// sshHandler is the alknet/ssh server with what it needs to rebuild its configuration
// on a reload: the host key, the identity provider (so a [[peers]] fingerprint logs in
// over SSH with the key it uses for TLS) and the logger.
type sshHandler struct {
	*alkssh.Server
	hostKey    gossh.Signer
	identities core.IdentityProvider
	logger     *slog.Logger
}

// newSSHHandler builds the alknet/ssh handler from deps.
func newSSHHandler(deps handlerDeps) (*sshHandler, error) {
	if deps.sshHostKey == nil {
		return nil, errors.New("alknet/ssh: no host key")
	}
	signer, err := alkssh.NewSigner(deps.sshHostKey)
	if err != nil {
		return nil, fmt.Errorf("alknet/ssh: host key: %w", err)
	}
	h := &sshHandler{hostKey: signer, identities: deps.identities, logger: deps.logger}
	if h.Server, err = alkssh.NewServer(h.config(deps.ssh)); err != nil {
		return nil, fmt.Errorf("alknet/ssh: %w", err)
	}
	return h, nil
}

// config is the server configuration for the [ssh] settings sc.
func (h *sshHandler) config(sc sshSettings) alkssh.Config {
	cas := make([]alkssh.CertAuthority, len(sc.cas))
	for i, ca := range sc.cas {
		ca.Scopes = slices.Clone(ca.Scopes)
		cas[i] = ca
	}
	return alkssh.Config{
		HostKey:         h.hostKey,
		Identities:      h.identities,
		CertAuthorities: cas,
		MaxAuthAttempts: sc.maxAuthAttempts,
		// An empty allow list refuses every command.
		Exec:       &alkssh.AllowListExecutor{Allow: slices.Clone(sc.execAllow)},
		Forwarding: sc.forwarding,
		Logger:     h.logger,
	}
}

// reloadConfig applies a reloaded [ssh] table to new connections; open ones keep the
// configuration they started with.
func (h *sshHandler) reloadConfig(nc nodeConfig) error {
	if err := h.Reload(h.config(nc.ssh)); err != nil {
		return fmt.Errorf("alknet/ssh: %w", err)
	}
	return nil
}
