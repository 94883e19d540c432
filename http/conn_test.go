package http

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/alknet/alknet/call"
	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/core/coretest"
	"github.com/alknet/alknet/core/endpoint"
	"github.com/alknet/alknet/core/tlsconf"
)

// trNode is a loopback endpoint serving a Handler on alknet/http, h2 and http/1.1.
type trNode struct {
	srv *coretest.Server
	h   *Handler
	// released is closed by tr/block when its handler sees its context end.
	released chan struct{}
	started  chan struct{}
}

// trToken is an API-style token the node resolves to identity "alice" with scope demo.
const trToken = "tok-alice"

type trIdentities struct{}

func (trIdentities) ResolveFromFingerprint(string) (*core.Identity, bool) { return nil, false }
func (trIdentities) ResolveFromToken(t core.AuthToken) (*core.Identity, bool) {
	if string(t.Raw) == trToken {
		return &core.Identity{ID: "alice", Scopes: []string{"demo"}}, true
	}
	return nil, false
}

func trNewNode(t *testing.T) *trNode {
	t.Helper()
	n := &trNode{released: make(chan struct{}), started: make(chan struct{})}
	reg := call.NewRegistry()
	echo := call.NewSpec("tr/echo", call.Query)
	who := call.NewSpec("tr/whoami", call.Query)
	who.Access = call.AccessControl{RequiredScopes: []string{"demo"}}
	ticks := call.NewSpec("tr/ticks", call.Subscription)
	block := call.NewSpec("tr/block", call.Subscription)
	for _, r := range []call.Registration{
		{Spec: echo, Once: func(_ context.Context, _ *call.OpContext, in json.RawMessage) (json.RawMessage, error) {
			return in, nil
		}},
		{Spec: who, Once: func(_ context.Context, oc *call.OpContext, _ json.RawMessage) (json.RawMessage, error) {
			return json.Marshal(map[string]string{"id": oc.Identity.ID})
		}},
		{Spec: ticks, Stream: func(ctx context.Context, _ *call.OpContext, _ json.RawMessage, emit func(json.RawMessage) error) error {
			for i := range 3 {
				if err := emit(json.RawMessage(`{"tick":` + string(rune('0'+i)) + `}`)); err != nil {
					return err
				}
			}
			return nil
		}},
		{Spec: block, Stream: func(ctx context.Context, _ *call.OpContext, _ json.RawMessage, emit func(json.RawMessage) error) error {
			if err := emit(json.RawMessage(`"started"`)); err != nil {
				return err
			}
			close(n.started)
			<-ctx.Done()
			close(n.released)
			return ctx.Err()
		}},
	} {
		if err := reg.Register(r); err != nil {
			t.Fatal(err)
		}
	}
	h, err := New(Config{Registry: reg, Identities: trIdentities{}})
	if err != nil {
		t.Fatal(err)
	}
	n.h = h
	creg := core.NewRegistry()
	for _, alpn := range []string{ALPN, "h2", "http/1.1"} {
		if err := creg.RegisterAs(alpn, h); err != nil {
			t.Fatal(err)
		}
	}
	n.srv = coretest.NewServer(t, creg)
	return n
}

// trClients are the ways a client reaches the node's HTTP surface.
func (n *trNode) trClients(t *testing.T) map[string]*http.Client {
	t.Helper()
	id := coretest.NewIdentity(t)
	out := map[string]*http.Client{}
	for name, c := range map[string]struct {
		net endpoint.Network
		h2  bool
	}{
		"quic-h1": {endpoint.NetworkQUIC, false},
		"quic-h2": {endpoint.NetworkQUIC, true},
		"tcp-h1":  {endpoint.NetworkTCP, false},
		"tcp-h2":  {endpoint.NetworkTCP, true},
	} {
		tr := NewClientTransport(n.srv.Addr, ALPN, n.srv.DialOptions(id, c.net), c.h2)
		t.Cleanup(func() { _ = tr.Close() })
		out[name] = &http.Client{Transport: tr}
	}
	// A stock TLS client, as a browser or curl: ALPN h2 or http/1.1 on the TCP+TLS twin.
	for name, protos := range map[string][]string{"tls-h2": {"h2", "http/1.1"}, "tls-h1": {"http/1.1"}} {
		cfg, err := tlsconf.ClientConfig(tlsconf.ClientOptions{Pin: n.srv.Identity.Fingerprint, NextProtos: protos})
		if err != nil {
			t.Fatal(err)
		}
		tr := &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: len(protos) == 2}
		t.Cleanup(tr.CloseIdleConnections)
		out[name] = &http.Client{Transport: tr}
	}
	return out
}

func (n *trNode) url(name, path string) string {
	if strings.HasPrefix(name, "tls-") {
		return "https://" + n.srv.Addr + path
	}
	return "http://" + n.srv.Addr + path
}

func TestHandleOverEveryTransport(t *testing.T) {
	n := trNewNode(t)
	for name, c := range n.trClients(t) {
		t.Run(name, func(t *testing.T) {
			wantProto := 1
			if strings.HasSuffix(name, "h2") {
				wantProto = 2
			}
			resp, err := c.Get(n.url(name, "/healthz"))
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || string(body) != "ok" || resp.ProtoMajor != wantProto {
				t.Fatalf("healthz: %d %q over %s, want 200 ok over HTTP/%d", resp.StatusCode, body, resp.Proto, wantProto)
			}

			req, _ := http.NewRequest("POST", n.url(name, "/call"), strings.NewReader(`{"operation":"tr/whoami"}`))
			req.Header.Set("Authorization", "Bearer "+trToken)
			resp, err = c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var ok struct {
				RequestID string          `json:"request_id"`
				Result    string          `json:"result"`
				Output    json.RawMessage `json:"output"`
			}
			err = json.NewDecoder(resp.Body).Decode(&ok)
			resp.Body.Close()
			if err != nil || resp.StatusCode != 200 || ok.Result != "ok" || string(ok.Output) != `{"id":"alice"}` {
				t.Fatalf("call: %d %+v %v", resp.StatusCode, ok, err)
			}

			resp, err = c.Post(n.url(name, "/call"), "application/json", strings.NewReader(`{"operation":"tr/whoami"}`))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("call without token: %d, want 401", resp.StatusCode)
			}

			resp, err = c.Post(n.url(name, "/subscribe"), "application/json", strings.NewReader(`{"operation":"tr/ticks"}`))
			if err != nil {
				t.Fatal(err)
			}
			body, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			if want := "data: {\"tick\":0}\n\ndata: {\"tick\":1}\n\ndata: {\"tick\":2}\n\n"; string(body) != want || resp.Header.Get("Content-Type") != "text/event-stream" {
				t.Fatalf("subscribe: %q (%s), want %q", body, resp.Header.Get("Content-Type"), want)
			}

			resp, err = c.Get(n.url(name, "/nope"))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 404 || resp.Header.Get("Server") != "nginx" {
				t.Fatalf("decoy: %d %v", resp.StatusCode, resp.Header)
			}
		})
	}
}

// TestManyRequestsShareOneQUICConnection: concurrent h1 requests each take a stream of
// the one connection, and h2 multiplexes them on one stream.
func TestManyRequestsShareOneQUICConnection(t *testing.T) {
	n := trNewNode(t)
	for _, h2 := range []bool{false, true} {
		tr := NewClientTransport(n.srv.Addr, ALPN, n.srv.DialOptions(coretest.NewIdentity(t), endpoint.NetworkQUIC), h2)
		c := &http.Client{Transport: tr}
		errs := make(chan error, 32)
		for i := range 32 {
			go func() {
				in := `{"operation":"tr/echo","input":{"i":` + strings.Repeat("1", i+1) + `}}`
				resp, err := c.Post("http://node/call", "application/json", strings.NewReader(in))
				if err != nil {
					errs <- err
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if !strings.Contains(string(b), `"output":{"i":`+strings.Repeat("1", i+1)+`}`) {
					errs <- errors.New(string(b))
					return
				}
				errs <- nil
			}()
		}
		for range 32 {
			if err := <-errs; err != nil {
				t.Fatalf("h2=%v: %v", h2, err)
			}
		}
		_ = tr.Close()
	}
}

// TestClientLeavingCancelsSubscription: closing the response body of an SSE stream
// (the stream is reset) cancels the subscription's handler on the node.
func TestClientLeavingCancelsSubscription(t *testing.T) {
	for _, h2 := range []bool{false, true} {
		n := trNewNode(t)
		tr := NewClientTransport(n.srv.Addr, ALPN, n.srv.DialOptions(coretest.NewIdentity(t), endpoint.NetworkQUIC), h2)
		c := &http.Client{Transport: tr}
		resp, err := c.Post("http://node/subscribe", "application/json", strings.NewReader(`{"operation":"tr/block"}`))
		if err != nil {
			t.Fatal(err)
		}
		line, err := bufio.NewReader(resp.Body).ReadString('\n')
		if err != nil || line != "data: \"started\"\n" {
			t.Fatalf("first line %q %v", line, err)
		}
		<-n.started
		resp.Body.Close()
		if !h2 {
			_ = tr.Close() // h1: the stream is only reset when the connection goes
		}
		select {
		case <-n.released:
		case <-time.After(10 * time.Second):
			t.Fatalf("h2=%v: handler not cancelled after the client left", h2)
		}
		_ = tr.Close()
	}
}

// TestShutdownEndsSubscriptions: when the endpoint shuts down, an open subscription
// ends (its handler is cancelled) and Handle returns.
func TestShutdownEndsSubscriptions(t *testing.T) {
	n := trNewNode(t)
	tr := NewClientTransport(n.srv.Addr, ALPN, n.srv.DialOptions(coretest.NewIdentity(t), endpoint.NetworkQUIC), true)
	defer tr.Close()
	c := &http.Client{Transport: tr}
	resp, err := c.Post("http://node/subscribe", "application/json", strings.NewReader(`{"operation":"tr/block"}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	<-n.started
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.srv.Endpoint.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	select {
	case <-n.released:
	default:
		t.Fatal("subscription handler still running after shutdown")
	}
	_, _ = io.ReadAll(resp.Body)
}
