package main

import (
	"crypto/ed25519"
	"log/slog"

	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/examples/echo"
)

// handlerDeps is what the assembly layer can hand a handler when it is built: the
// node's key and state directory, the live configuration and a logger. Handlers get
// values, never the means to read secrets themselves.
type handlerDeps struct {
	stateDir string
	key      ed25519.PrivateKey
	store    *core.DynamicStore
	logger   *slog.Logger
}

// handlers returns every handler the node serves, in ALPN preference order. This is
// the one place to add a handler (and, where it needs them, its flags and config).
func handlers(handlerDeps) []core.ProtocolHandler {
	return []core.ProtocolHandler{
		echo.Handler{}, // alknet/echo
	}
}
