// Package http is the node plugin of the HTTP surface: alknet/http on QUIC streams, h2
// and http/1.1 on the TCP+TLS listener and h3 (HTTP/3) on the QUIC listener, advertised
// to TCP+TLS clients with Alt-Svc once the node listens. It serves the call registry of
// the call plugin it is given (the gateway, OpenAPI, WebSocket, and /mcp), the routes
// other plugins mount with node.Env.HandleHTTP, and the demo page with serve
// --demo-page, whose browser certificate the h3 handshake presents too.
package http

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"

	"github.com/alknet/alknet/call"
	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/examples/demo"
	"github.com/alknet/alknet/examples/node"
	"github.com/alknet/alknet/examples/node/metrics"
	alkhttp "github.com/alknet/alknet/http"
	alkmcp "github.com/alknet/alknet/http/mcp"
)

// DemoPagePath is the route of the demo page. (Not "/demo/": the HTTP handler sends a
// path with a trailing slash to the decoy.)
const DemoPagePath = "/demo"

// RegistrySource is the plugin whose operations the HTTP surface serves; the call
// plugin is one. Its Registry is read in Setup, so it must come earlier in the list.
type RegistrySource interface {
	node.Plugin
	Registry() *call.Registry
}

// Plugin serves the HTTP surface.
type Plugin struct {
	source   RegistrySource
	demoPage bool
}

// New returns the http plugin serving the registry of source.
func New(source RegistrySource) *Plugin { return &Plugin{source: source} }

// Name is "http".
func (*Plugin) Name() string { return "http" }

// ServeFlags defines --demo-page.
func (p *Plugin) ServeFlags(fs *flag.FlagSet) string {
	fs.BoolVar(&p.demoPage, "demo-page", false, "serve the browser demo page at https://HOST:PORT"+DemoPagePath+
		" (the call protocol over the WebSocket /alknet/call), and a self-signed ECDSA certificate for browsers, which refuse the node's Ed25519 one")
	return "[--demo-page]"
}

// Setup returns the HTTP handler under alknet/http, h2, http/1.1 and h3, in that order.
func (p *Plugin) Setup(_ context.Context, env *node.Env) ([]core.ProtocolHandler, error) {
	reg := p.source.Registry()
	if reg == nil {
		return nil, errors.New("build handlers: alknet/http: plugin " + p.source.Name() + " has no registry (it must come before http in the plugin list)")
	}
	// The routes other plugins mount with env.HandleHTTP (the dns plugin's pkarr
	// relay), including those of plugins set up after this one.
	routes := env.HTTPRoutes()
	if p.demoPage {
		if err := env.HandleHTTP("GET "+DemoPagePath, demo.PageHandler()); err != nil {
			return nil, fmt.Errorf("build handlers: alknet/http: %w", err)
		}
		env.UseBrowserCertificate()
		env.OnReady(func(r node.Ready) {
			r.Logger.Info("demo page", slog.String("url", "https://"+r.TCP.String()+DemoPagePath))
		})
	}
	web := &webHandler{}
	var err error
	web.Handler, err = alkhttp.New(alkhttp.Config{
		Registry:   reg,
		Identities: env.Identities,
		NodeLimits: env.Store.Limits,
		Routes:     routes,
		// /mcp: the gateway as an MCP server (search, schema, call, batch).
		MCP: func(gw *alkhttp.Gateway) http.Handler {
			web.mcp = alkmcp.NewHandler(gw, &alkmcp.ServerOptions{Logger: env.Logger})
			return web.mcp
		},
		Logger: env.Logger,
	})
	if err != nil {
		return nil, fmt.Errorf("build handlers: %w", err)
	}
	gateway := web.Handler
	env.AddMetrics(func() []metrics.Family { return families(gateway.Stats()) })
	// Once the QUIC listener serves h3, the TCP+TLS responses say so (Alt-Svc).
	env.OnReady(func(r node.Ready) {
		if udp, ok := r.QUIC.(*net.UDPAddr); ok && slices.Contains(r.ALPNs, alkhttp.ALPNHTTP3) {
			web.AdvertiseHTTP3(udp.Port)
		}
	})
	return []core.ProtocolHandler{
		web,                      // alknet/http: HTTP/1.1 and h2 over QUIC streams
		node.As("h2", web),       // browsers and curl on the TCP+TLS listener
		node.As("http/1.1", web), // clients without h2
		web.HTTP3(),              // h3: HTTP/3 on the QUIC listener
	}, nil
}

// webHandler is the HTTP surface with its MCP projection, whose sessions outlive
// connections: the node closes it (io.Closer) once the endpoint has shut down.
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
