package main

import (
	"crypto/ed25519"
	"fmt"
	"log/slog"

	"github.com/alknet/alknet/call"
	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/examples/demo"
	"github.com/alknet/alknet/examples/echo"
	alkhttp "github.com/alknet/alknet/http"
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

	// imported are the operations of the [[openapi]] imports, with their credentials.
	imported []call.Registration
}

// handlers returns every handler the node serves, in ALPN preference order (a TLS
// client offering several of them gets the first: h2 before http/1.1). This is the one
// place to add a handler (and, where it needs them, its flags and config).
func handlers(deps handlerDeps) ([]core.ProtocolHandler, error) {
	reg, err := operations(deps)
	if err != nil {
		return nil, err
	}
	web, err := alkhttp.New(alkhttp.Config{
		Registry:   reg,
		Identities: deps.identities,
		Logger:     deps.logger,
	})
	if err != nil {
		return nil, err
	}
	return []core.ProtocolHandler{
		echo.Handler{}, // alknet/echo
		&call.Dispatcher{ // alknet/call
			Registry:   reg,
			Identities: deps.identities,
			Logger:     deps.logger,
		},
		web,                     // alknet/http: HTTP/1.1 and h2 over QUIC streams
		alpnAs{"h2", web},       // browsers and curl on the TCP+TLS listener
		alpnAs{"http/1.1", web}, // clients without h2
	}, nil
}

// operations is the one call registry the node serves on alknet/call and over HTTP:
// the demo operations (demo/echo, demo/ticks, demo/whoami), the built-in discovery
// operations, the [[openapi]] imports and the test hook's. Per-request tokens (API keys, peer tokens) resolve
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

// alpnAs serves a handler under another ALPN.
type alpnAs struct {
	alpn string
	core.Handler
}

// ALPN is the protocol the handler is registered under.
func (a alpnAs) ALPN() string { return a.alpn }
