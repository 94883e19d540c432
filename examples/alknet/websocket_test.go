package main

import (
	"context"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/alknet/alknet/call"
	"github.com/alknet/alknet/core/tlsconf"
	alkhttp "github.com/alknet/alknet/http"
)

// TestServeWebSocketStockGoClient: a stock Go WebSocket client (coder/websocket over
// net/http, which sends no ALPN on an upgrade's TLS connection) reaches serve's
// /alknet/call on the TCP+TLS listener, which serves such clients as http/1.1, and
// calls demo/whoami with the API key carried in the bearer subprotocol.
func TestServeWebSocketStockGoClient(t *testing.T) {
	token, key, entry := apiKey(t, "demo")
	config := filepath.Join(t.TempDir(), "alknet.toml")
	writeFile(t, config, key)
	n := startServe(t, "--config", config)
	cfg, err := tlsconf.ClientConfig(tlsconf.ClientOptions{Pin: n.fp, NextProtos: []string{"h2", "http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "wss://"+n.tcp+alkhttp.WebSocketPath, &websocket.DialOptions{
		HTTPClient:   &http.Client{Transport: tr},
		Subprotocols: []string{alkhttp.WebSocketSubprotocol, alkhttp.WebSocketBearerPrefix + token},
	})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer ws.CloseNow()
	if p := ws.Subprotocol(); p != alkhttp.WebSocketSubprotocol {
		t.Fatalf("subprotocol %q", p)
	}
	req, err := call.NewRequest("1", "/demo/whoami", nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := call.EncodeEnvelope(req)
	if err != nil {
		t.Fatal(err)
	}
	if err := ws.Write(ctx, websocket.MessageBinary, b); err != nil {
		t.Fatal(err)
	}
	typ, data, err := ws.Read(ctx)
	if err != nil || typ != websocket.MessageBinary {
		t.Fatalf("read: %v %v", typ, err)
	}
	env, err := call.DecodeEnvelope(data)
	if err != nil {
		t.Fatal(err)
	}
	out, err := call.ParseResponded(env)
	if err != nil || env.ID != "1" || string(out) != `{"id":"`+entry.Prefix+`"}` {
		t.Fatalf("answer %s: %s %v", data, out, err)
	}
	_ = ws.Close(websocket.StatusNormalClosure, "")
}
