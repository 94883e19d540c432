package http

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/coder/websocket"

	"github.com/alknet/alknet/call"
)

// FuzzWebSocketSubprotocolToken: the token of the bearer subprotocol is read only
// when exactly one "alknet.bearer.<token>" item (comma-separated, spaces trimmed) is
// offered across the Sec-WebSocket-Protocol headers and its token is a non-empty
// RFC 9110 token (tchar only); any bearer item at all counts as a presented
// credential (an authentication attempt).
func FuzzWebSocketSubprotocolToken(f *testing.F) {
	for _, seed := range [][2]string{
		{"alknet.call, alknet.bearer.good", ""},
		{"alknet.bearer.good,alknet.call", ""},
		{"alknet.call", "alknet.bearer.good"},
		{"alknet.bearer.good, alknet.bearer.good", ""},
		{"alknet.bearer.good", "alknet.bearer.other"},
		{"alknet.bearer.", "alknet.call"},
		{"alknet.bearer.bad", ""},
		{"  alknet.bearer.good  ,", ""},
		{"ALKNET.BEARER.good", ""},
		{"alknet.bearer.go od", ""},
		{"alknet.bearer.alknet.bearer.good", ""},
		{",,,", "alknet.bearer.\tgood"},
		{"", ""},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, v1, v2 string) {
		h := http.Header{}
		h.Add("Sec-WebSocket-Protocol", v1)
		h.Add("Sec-WebSocket-Protocol", v2)
		got, presented := subprotocolToken(h)

		var tokens []string
		for _, v := range []string{v1, v2} {
			for _, item := range strings.Split(v, ",") {
				if tok, ok := strings.CutPrefix(strings.TrimSpace(item), WebSocketBearerPrefix); ok {
					tokens = append(tokens, tok)
				}
			}
		}
		if presented != (len(tokens) > 0) {
			t.Fatalf("%q %q: presented %v with %d bearer items", v1, v2, presented, len(tokens))
		}
		if len(tokens) != 1 || !wstIsTchars(tokens[0]) {
			if got != nil {
				t.Fatalf("%q %q: token %q with %d bearer items", v1, v2, got, len(tokens))
			}
			return
		}
		if string(got) != tokens[0] {
			t.Fatalf("%q %q: token %q, want exactly %q", v1, v2, got, tokens[0])
		}
		tok := string(got)
		if strings.Contains(tok, ",") || strings.TrimRight(tok, " \t") != tok ||
			!strings.Contains(v1+","+v2, WebSocketBearerPrefix+tok) {
			t.Fatalf("%q %q: token %q is not an item's remainder", v1, v2, tok)
		}
	})
}

// wstIsTchars is the oracle's own RFC 9110 tchar check.
func wstIsTchars(t string) bool {
	if t == "" {
		return false
	}
	for _, c := range []byte(t) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("!#$%&'*+-.^_`|~", rune(c))) {
			return false
		}
	}
	return true
}

// FuzzWebSocketReadPath: one binary message either closes the connection with 1002
// "invalid EventEnvelope" (when call.DecodeEnvelope refuses it) or leaves the
// connection usable, whatever the envelope says.
func FuzzWebSocketReadPath(f *testing.F) {
	const limit = 64 << 10
	echoOnly := func(_ *wstFixture, cfg *Config) {
		reg := call.NewRegistry()
		if err := reg.Register(call.Registration{Spec: call.NewSpec("ws/echo", call.Query),
			Once: func(_ context.Context, _ *call.OpContext, in json.RawMessage) (json.RawMessage, error) {
				return in, nil
			}}); err != nil {
			f.Fatal(err)
		}
		cfg.Registry = reg
		cfg.WebSocket.MaxMessageBytes = limit
	}
	fx := wstNew(f, echoOnly)
	srv := fx.serve(f, nil)
	for _, s := range []string{
		`{"type":"call.requested","id":"1","payload":{"operationId":"/ws/echo","input":[1]}}`,
		`{"type":"call.requested","id":"2","payload":{"operationId":"ws/nosuch"}}`,
		`{"type":"call.requested","id":"","payload":{"operationId":"/ws/echo"}}`,
		`{"type":"call.requested","id":"3","payload":null}`,
		`{"type":"call.requested","id":"4","payload":{"operationId":"/ws/echo","auth_token":7}}`,
		`{"type":"call.requested","id":"5","payload":{"operationId":"/services/list","input":{}}}`,
		`{"type":"call.aborted","id":"1","payload":{}}`,
		`{"type":"call.responded","id":"x","payload":{"output":1}}`,
		`{"type":"call.error","id":"x","payload":"nope"}`,
		`{"type":"other","id":"x","payload":1,"extra":true}`,
		`{"type":"call.requested","id":"x"}`,
		`{"type":"call.requested","id":"x","payload":{}} trailing`,
		`[]`, `null`, ``, `{`, "\x00\x00\x00\x05{\"a\"}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		if len(msg) > limit {
			t.Skip("over the read limit")
		}
		cl := wstRaw(t, wstMustDial(t, wstURL(srv), wstDialOpts{client: srv.Client(), bearer: wstTokAlice}))
		cl.send(t, msg)
		if _, err := call.DecodeEnvelope(msg); err != nil {
			ce := cl.closed(t)
			if ce.Code != websocket.StatusProtocolError || ce.Reason != wsReasonEnvelope {
				t.Fatalf("%q: closed with %d %q, want 1002 %q", msg, ce.Code, ce.Reason, wsReasonEnvelope)
			}
			return
		}
		cl.roundTrip(t)
		if err := cl.ws.Close(websocket.StatusNormalClosure, ""); err != nil && !errors.Is(err, context.Canceled) {
			t.Logf("close: %v", err)
		}
	})
}
