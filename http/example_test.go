package http_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net/http/httptest"
	"strings"

	"github.com/coder/websocket"

	"github.com/alknet/alknet/call"
	"github.com/alknet/alknet/core"
	alkhttp "github.com/alknet/alknet/http"
)

// A registry with one operation, served over HTTP; a client calls it with POST /call.
func Example() {
	reg := call.NewRegistry() // with services/list and services/schema
	err := reg.Register(call.Registration{
		Spec: call.NewSpec("demo/echo", call.Query),
		Once: func(_ context.Context, _ *call.OpContext, in json.RawMessage) (json.RawMessage, error) {
			return in, nil
		},
	})
	if err != nil {
		log.Fatal(err)
	}

	h, err := alkhttp.New(alkhttp.Config{Registry: reg})
	if err != nil {
		log.Fatal(err)
	}
	srv := httptest.NewServer(h) // or register h with a core.Registry on alknet/http
	defer srv.Close()

	resp, err := srv.Client().Post(srv.URL+"/call", "application/json",
		strings.NewReader(`{"operation": "demo/echo", "input": {"msg": "hello"}}`))
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		RequestID string          `json:"request_id"`
		Result    string          `json:"result"`
		Output    json.RawMessage `json:"output"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		log.Fatal(err)
	}
	fmt.Println(resp.StatusCode, body.Result, string(body.Output))
	// Output: 200 ok {"msg":"hello"}
}

// staticIdentities resolves one token, for the examples.
type staticIdentities map[string]*core.Identity

func (staticIdentities) ResolveFromFingerprint(string) (*core.Identity, bool) { return nil, false }
func (s staticIdentities) ResolveFromToken(t core.AuthToken) (*core.Identity, bool) {
	id, ok := s[string(t.Raw)]
	return id, ok
}

// The call protocol over WebSocket: a client (here Go; in a browser the same messages
// go through new WebSocket(url, ["alknet.call", "alknet.bearer." + token])) calls an
// operation of the node, and the node, on connect, calls an operation the client
// serves, through the connection's overlay.
func Example_webSocket() {
	reg := call.NewRegistry()
	err := reg.Register(call.Registration{
		Spec: call.NewSpec("demo/echo", call.Query),
		Once: func(_ context.Context, _ *call.OpContext, in json.RawMessage) (json.RawMessage, error) {
			return in, nil
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	greeted := make(chan string, 1)
	h, err := alkhttp.New(alkhttp.Config{
		Registry:   reg,
		Identities: staticIdentities{"tok": {ID: "alice"}},
		WebSocket: alkhttp.WebSocketConfig{
			// The node imports what the client serves and calls it.
			OnConnect: func(ctx context.Context, c *call.Conn) {
				regs, err := call.FromCall(ctx, c, call.FromCallConfig{})
				if err != nil || c.RegisterImported(regs...) != nil {
					return
				}
				node := &call.Registration{
					Authority: &call.CompositionAuthority{Label: "node"},
					Scoped:    call.NewScopedEnv("page/greet"),
				}
				parent := call.NewRootContext("", nil, nil, node, c.OverlayEnv(), nil)
				out, cerr := c.OverlayEnv().Invoke(ctx, "page", "greet", json.RawMessage(`{"name":"node"}`), parent, call.AbortDependents)
				if cerr == nil {
					greeted <- string(out)
				}
			},
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()

	// The client: a call.Conn over the socket, serving page/greet.
	ctx := context.Background()
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+alkhttp.WebSocketPath, &websocket.DialOptions{
		Subprotocols: []string{alkhttp.WebSocketSubprotocol, alkhttp.WebSocketBearerPrefix + "tok"},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer ws.CloseNow()
	page := call.NewRegistry()
	err = page.Register(call.Registration{
		Spec: call.NewSpec("page/greet", call.Query),
		Once: func(_ context.Context, _ *call.OpContext, in json.RawMessage) (json.RawMessage, error) {
			var p struct{ Name string }
			if err := json.Unmarshal(in, &p); err != nil {
				return nil, err
			}
			return json.Marshal("hello " + p.Name)
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	client := (&call.Dispatcher{Registry: page}).NewMessageConn(ctx, nil, func(ctx context.Context, env call.Envelope) error {
		b, err := call.EncodeEnvelope(env)
		if err != nil {
			return err
		}
		return ws.Write(ctx, websocket.MessageBinary, b)
	})
	defer client.Close()
	go func() {
		for {
			_, data, err := ws.Read(ctx)
			if err != nil {
				_ = client.Close()
				return
			}
			if env, err := call.DecodeEnvelope(data); err == nil {
				client.HandleEnvelope(ctx, env)
			}
		}
	}()

	out, err := client.Call(ctx, "demo/echo", map[string]string{"msg": "hi"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(out))
	fmt.Println(<-greeted)
	// Output:
	// {"msg":"hi"}
	// "hello node"
}
