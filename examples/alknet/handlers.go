package main

import (
	"crypto/ed25519"
	"fmt"
	"log/slog"

	"github.com/alknet/alknet/call"
	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/examples/demo"
	"github.com/alknet/alknet/examples/echo"
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
}

// handlers returns every handler the node serves, in ALPN preference order. This is
// the one place to add a handler (and, where it needs them, its flags and config).
func handlers(deps handlerDeps) ([]core.ProtocolHandler, error) {
	calls, err := callHandler(deps)
	if err != nil {
		return nil, err
	}
	return []core.ProtocolHandler{
		echo.Handler{}, // alknet/echo
		calls,          // alknet/call
	}, nil
}

// callHandler is the call protocol's dispatcher with the demo operations (demo/echo,
// demo/ticks, demo/whoami) and the built-in discovery operations. Per-request tokens
// (API keys, peer tokens) resolve through the node's live configuration.
func callHandler(deps handlerDeps) (*call.Dispatcher, error) {
	reg := call.NewRegistry()
	if err := demo.Register(reg); err != nil {
		return nil, err
	}
	if deps.callOps != nil {
		if err := deps.callOps(reg); err != nil {
			return nil, fmt.Errorf("call operations: %w", err)
		}
	}
	return &call.Dispatcher{
		Registry:   reg,
		Identities: deps.identities,
		Logger:     deps.logger,
	}, nil
}
