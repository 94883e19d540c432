package main

// The ws benchmark's baseline: a hand-rolled JSON-RPC-style protocol over
// coder/websocket, its server handler and its client.

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"github.com/coder/websocket"

	alkhttp "github.com/alknet/alknet/http"
)

// rpcRequest, rpcResponse and rpcError are the baseline's messages: JSON-RPC 2.0 in
// shape, without the version member.
type rpcRequest struct {
	ID     uint64          `json:"id"`
	Method string          `json:"method"`
	Params json.RawMessage `json:"params"`
}

type rpcResponse struct {
	ID     uint64          `json:"id"`
	Result json.RawMessage `json:"result,omitempty"`
	Error  *rpcError       `json:"error,omitempty"`
}

type rpcError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

func (e *rpcError) Error() string { return fmt.Sprintf("rpc error %d: %s", e.Code, e.Message) }

// rpcServer is the baseline's WebSocket handler: it checks the Bearer token (SHA-256,
// constant-time compare), upgrades, reads text messages of rpcRequest with
// encoding/json and answers each in its own goroutine (as the alknet handler does),
// each write bounded by alkhttp.DefaultWSWriteTimeout.
type rpcServer struct {
	tokenHash [32]byte
	conns     sync.WaitGroup
}

func (s *rpcServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	h := sha256.Sum256([]byte(tok))
	if !ok || subtle.ConstantTimeCompare(h[:], s.tokenHash[:]) != 1 {
		http.Error(w, "401 Unauthorized", http.StatusUnauthorized)
		return
	}
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		Subprotocols:    []string{wsBaseSubprotocol},
		CompressionMode: websocket.CompressionDisabled,
	})
	if err != nil {
		return
	}
	s.conns.Add(1)
	defer s.conns.Done()
	ws.SetReadLimit(alkhttp.DefaultWSMaxMessageBytes)
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	var reqs sync.WaitGroup
	var status websocket.StatusCode
	for {
		_, data, err := ws.Read(ctx)
		if err != nil {
			break
		}
		var req rpcRequest
		if err := json.Unmarshal(data, &req); err != nil {
			status = websocket.StatusProtocolError
			break
		}
		reqs.Go(func() { s.answer(ctx, ws, req) })
	}
	cancel()
	reqs.Wait()
	if status != 0 {
		_ = ws.Close(status, "invalid request")
	} else {
		_ = ws.CloseNow()
	}
}

// answer runs req (bench/echo returns its params) and writes the response.
func (s *rpcServer) answer(ctx context.Context, ws *websocket.Conn, req rpcRequest) {
	resp := rpcResponse{ID: req.ID}
	switch req.Method {
	case benchEchoOp:
		resp.Result = req.Params
		if len(resp.Result) == 0 {
			resp.Result = json.RawMessage("null")
		}
	default:
		resp.Error = &rpcError{Code: -32601, Message: "method not found"}
	}
	b, err := json.Marshal(resp)
	if err != nil {
		return
	}
	wctx, cancel := context.WithTimeout(ctx, alkhttp.DefaultWSWriteTimeout)
	defer cancel()
	_ = ws.Write(wctx, websocket.MessageText, b)
}

// rpcClient is the baseline's client: one socket shared by every caller, requests
// numbered from 1, a reader goroutine handing each response to its caller by id.
type rpcClient struct {
	ws   *websocket.Conn
	done chan struct{} // closed when the reader has returned

	mu      sync.Mutex
	next    uint64
	pending map[uint64]chan rpcResponse
	err     error // why the reader ended
}

func dialRPC(ctx context.Context, url string, opts *websocket.DialOptions) (wsClient, error) {
	ws, resp, err := websocket.Dial(ctx, url, opts)
	if err != nil {
		return nil, upgradeError(resp, err)
	}
	ws.SetReadLimit(alkhttp.DefaultWSMaxMessageBytes)
	c := &rpcClient{ws: ws, done: make(chan struct{}), pending: make(map[uint64]chan rpcResponse)}
	go c.read(context.WithoutCancel(ctx))
	return c, nil
}

func (c *rpcClient) read(ctx context.Context) {
	defer close(c.done)
	var err error
	for {
		var data []byte
		if _, data, err = c.ws.Read(ctx); err != nil {
			break
		}
		var r rpcResponse
		if err = json.Unmarshal(data, &r); err != nil {
			_ = c.ws.Close(websocket.StatusProtocolError, "invalid response")
			break
		}
		c.mu.Lock()
		ch := c.pending[r.ID]
		delete(c.pending, r.ID)
		c.mu.Unlock()
		if ch != nil {
			ch <- r
		}
	}
	c.mu.Lock()
	c.err = fmt.Errorf("connection closed: %w", err)
	for id, ch := range c.pending {
		ch <- rpcResponse{ID: id, Error: &rpcError{Code: -32000, Message: "connection closed"}}
	}
	clear(c.pending)
	c.mu.Unlock()
}

func (c *rpcClient) echo(ctx context.Context, in []byte) ([]byte, error) {
	ch := make(chan rpcResponse, 1)
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return nil, c.err
	}
	c.next++
	id := c.next
	c.pending[id] = ch
	c.mu.Unlock()
	forget := func() {
		c.mu.Lock()
		delete(c.pending, id)
		c.mu.Unlock()
	}
	b, err := json.Marshal(rpcRequest{ID: id, Method: benchEchoOp, Params: in})
	if err != nil {
		forget()
		return nil, err
	}
	if err := c.ws.Write(ctx, websocket.MessageText, b); err != nil {
		forget()
		return nil, err
	}
	select {
	case r := <-ch:
		if r.Error != nil {
			return nil, r.Error
		}
		return r.Result, nil
	case <-ctx.Done():
		forget()
		return nil, ctx.Err()
	}
}

func (c *rpcClient) subprotocol() string { return c.ws.Subprotocol() }

func (c *rpcClient) close() error {
	err := c.ws.Close(websocket.StatusNormalClosure, "")
	<-c.done
	return err
}
