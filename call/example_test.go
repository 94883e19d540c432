package call_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"time"

	"github.com/alknet/alknet/call"
	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/core/endpoint"
	"github.com/alknet/alknet/core/tlsconf"
)

// A node serving one operation on ALPN "alknet/call", and a client calling it over
// QUIC with the node's fingerprint pinned.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// The node: a registry of operations behind a Dispatcher, registered like any
	// other core handler.
	reg := call.NewRegistry() // with services/list and services/schema
	err := reg.Register(call.Registration{
		Spec: call.NewSpec("notes/get", call.Query),
		Once: func(ctx context.Context, oc *call.OpContext, in json.RawMessage) (json.RawMessage, error) {
			var req struct {
				NoteID string `json:"noteId"`
			}
			if err := json.Unmarshal(in, &req); err != nil {
				return nil, call.NewCallError(call.CodeInvalidInput, err.Error())
			}
			return json.Marshal(map[string]string{"noteId": req.NoteID, "title": "todo"})
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	handlers := core.NewRegistry()
	if err := handlers.Register(&call.Dispatcher{Registry: reg}); err != nil {
		log.Fatal(err)
	}
	nodeKey, _ := tlsconf.GenerateKey()
	cert, _ := tlsconf.Certificate(nodeKey)
	ep, err := endpoint.New(handlers, endpoint.Config{TLS: tlsconf.ServerConfig(cert)})
	if err != nil {
		log.Fatal(err)
	}
	if err := ep.Listen("127.0.0.1:0"); err != nil {
		log.Fatal(err)
	}
	defer ep.Close()

	// The client.
	conn, err := call.Dial(ctx, ep.QUICAddr().String(), call.DialOptions{
		Transport: endpoint.DialOptions{TLS: tlsconf.ClientOptions{Pin: tlsconf.Fingerprint(nodeKey)}},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	out, err := conn.Call(ctx, "notes/get", map[string]string{"noteId": "n-42"})
	fmt.Println(string(out), err)

	_, err = conn.Call(ctx, "notes/missing", nil)
	var ce *call.CallError
	if errors.As(err, &ce) {
		fmt.Println(ce.Code, ce.Message)
	}
	// Output:
	// {"noteId":"n-42","title":"todo"} <nil>
	// NOT_FOUND operation not found: notes/missing
}

// A subscription: Next returns each event, then io.EOF once the peer completes it.
func ExampleConn_Subscribe() {
	ctx := context.Background()
	reg := call.NewRegistry()
	err := reg.Register(call.Registration{
		Spec: call.NewSpec("count/to", call.Subscription),
		Stream: func(ctx context.Context, oc *call.OpContext, in json.RawMessage, emit func(json.RawMessage) error) error {
			var n int
			if err := json.Unmarshal(in, &n); err != nil {
				return call.NewCallError(call.CodeInvalidInput, err.Error())
			}
			for i := 1; i <= n; i++ {
				if err := emit(json.RawMessage(fmt.Sprint(i))); err != nil {
					return err
				}
			}
			return nil
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	// Two in-memory message connections stand in for a WebSocket.
	node, client := messagePair(ctx, &call.Dispatcher{Registry: reg}, &call.Dispatcher{})
	defer node.Close()
	defer client.Close()

	sub, err := client.Subscribe(ctx, "count/to", 3)
	if err != nil {
		log.Fatal(err)
	}
	defer sub.Close()
	for {
		ev, err := sub.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(string(ev))
	}
	// Output:
	// 1
	// 2
	// 3
}

// messagePair joins two message connections through goroutines, as a WebSocket would.
func messagePair(ctx context.Context, a, b *call.Dispatcher) (*call.Conn, *call.Conn) {
	var ca, cb *call.Conn
	toA := make(chan call.Envelope, 64)
	toB := make(chan call.Envelope, 64)
	queue := func(ch chan call.Envelope) func(context.Context, call.Envelope) error {
		return func(ctx context.Context, env call.Envelope) error {
			select {
			case ch <- env:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	ca = a.NewMessageConn(ctx, nil, queue(toB))
	cb = b.NewMessageConn(ctx, nil, queue(toA))
	pump := func(ch chan call.Envelope, to *call.Conn) {
		for {
			select {
			case env := <-ch:
				to.HandleEnvelope(ctx, env)
			case <-to.Done():
				return
			}
		}
	}
	go pump(toA, ca)
	go pump(toB, cb)
	return ca, cb
}
