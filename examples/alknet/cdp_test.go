package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"

	"github.com/coder/websocket"
)

// cdpClient is a minimal Chrome DevTools Protocol client, enough to drive one page:
// commands are JSON text messages {"id", "method", "params", "sessionId"?} on the
// browser's DevTools WebSocket, answered by {"id", "result"} or {"id", "error"}; events
// are {"method", "params", "sessionId"?}. One goroutine reads every message and hands
// answers to the pending command with the same id, and events to whoever expects them
// (see expect). Commands for a page carry the session id of Target.attachToTarget
// with flatten: true, so one WebSocket serves the browser and its pages.
type cdpClient struct {
	ws *websocket.Conn

	mu      sync.Mutex
	nextID  int64
	pending map[int64]chan cdpMessage
	waiters []*cdpWaiter
	err     error         // why the read loop ended; set before done is closed
	done    chan struct{} // closed when the read loop ends
}

// cdpMessage is any message on the DevTools WebSocket.
type cdpMessage struct {
	ID        int64           `json:"id,omitempty"`
	Method    string          `json:"method,omitempty"`
	Params    json.RawMessage `json:"params,omitempty"`
	SessionID string          `json:"sessionId,omitempty"`
	Result    json.RawMessage `json:"result,omitempty"`
	Error     *cdpError       `json:"error,omitempty"`
}

// cdpError is the error answer of a command.
type cdpError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

func (e *cdpError) Error() string { return fmt.Sprintf("cdp error %d: %s", e.Code, e.Message) }

// cdpWaiter is one expected event: the first event named method on session gets sent
// to ch (buffered), and the waiter is dropped.
type cdpWaiter struct {
	session, method string
	ch              chan json.RawMessage
}

// dialCDP connects to the browser's DevTools WebSocket URL ("ws://127.0.0.1:PORT/
// devtools/browser/ID") and starts reading. Close it when done.
func dialCDP(ctx context.Context, url string) (*cdpClient, error) {
	// No proxy, whatever the environment says: the browser is on the loopback.
	client := &http.Client{Transport: &http.Transport{Proxy: nil}}
	ws, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: client})
	if err != nil {
		return nil, fmt.Errorf("dial DevTools %s: %w", url, err)
	}
	ws.SetReadLimit(-1) // results (a page's evaluation) can be large
	c := &cdpClient{ws: ws, pending: map[int64]chan cdpMessage{}, done: make(chan struct{})}
	go c.readLoop()
	return c, nil
}

// readLoop dispatches every message until the WebSocket ends.
func (c *cdpClient) readLoop() {
	var err error
	for {
		var data []byte
		if _, data, err = c.ws.Read(context.Background()); err != nil {
			break
		}
		var m cdpMessage
		if err = json.Unmarshal(data, &m); err != nil {
			err = fmt.Errorf("DevTools message %.100q: %w", data, err)
			break
		}
		c.dispatch(m)
	}
	c.mu.Lock()
	c.err = err
	c.mu.Unlock()
	close(c.done)
}

// dispatch hands an answer to its command, or an event to its first waiter.
func (c *cdpClient) dispatch(m cdpMessage) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if m.Method == "" {
		if ch, ok := c.pending[m.ID]; ok {
			delete(c.pending, m.ID)
			ch <- m // buffered
		}
		return
	}
	for i, w := range c.waiters {
		if w.session == m.SessionID && w.method == m.Method {
			w.ch <- m.Params // buffered
			c.waiters = append(c.waiters[:i], c.waiters[i+1:]...)
			return
		}
	}
}

// call runs method with params (nil: none) on session ("" for the browser itself) and
// decodes its result into result (nil: ignored).
func (c *cdpClient) call(ctx context.Context, session, method string, params, result any) error {
	raw, err := json.Marshal(params)
	if err != nil {
		return err
	}
	if params == nil {
		raw = nil
	}
	ch := make(chan cdpMessage, 1)
	c.mu.Lock()
	c.nextID++
	id := c.nextID
	c.pending[id] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.pending, id)
		c.mu.Unlock()
	}()
	msg, err := json.Marshal(cdpMessage{ID: id, Method: method, Params: raw, SessionID: session})
	if err != nil {
		return err
	}
	if err := c.ws.Write(ctx, websocket.MessageText, msg); err != nil {
		return fmt.Errorf("%s: %w", method, err)
	}
	select {
	case m := <-ch:
		if m.Error != nil {
			return fmt.Errorf("%s: %w", method, m.Error)
		}
		if result != nil {
			if err := json.Unmarshal(m.Result, result); err != nil {
				return fmt.Errorf("%s: result: %w", method, err)
			}
		}
		return nil
	case <-c.done:
		return fmt.Errorf("%s: DevTools connection ended: %w", method, c.readErr())
	case <-ctx.Done():
		return fmt.Errorf("%s: %w", method, ctx.Err())
	}
}

// expect registers interest in the next event named method on session; call it before
// the command that causes the event, then wait for it with await.
func (c *cdpClient) expect(session, method string) *cdpWaiter {
	w := &cdpWaiter{session: session, method: method, ch: make(chan json.RawMessage, 1)}
	c.mu.Lock()
	c.waiters = append(c.waiters, w)
	c.mu.Unlock()
	return w
}

// await returns the params of the event w expects.
func (c *cdpClient) await(ctx context.Context, w *cdpWaiter) (json.RawMessage, error) {
	select {
	case p := <-w.ch:
		return p, nil
	case <-c.done:
		return nil, fmt.Errorf("waiting for %s: DevTools connection ended: %w", w.method, c.readErr())
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting for %s: %w", w.method, ctx.Err())
	}
}

// readErr is why the read loop ended.
func (c *cdpClient) readErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Close ends the WebSocket at once and waits for the read loop.
func (c *cdpClient) Close() {
	_ = c.ws.CloseNow()
	<-c.done
}

// cdpPage is one browser tab, attached with its own session.
type cdpPage struct {
	c       *cdpClient
	session string
}

// newPage opens a blank tab and attaches to it, with page events enabled.
func (c *cdpClient) newPage(ctx context.Context) (*cdpPage, error) {
	var target struct {
		TargetID string `json:"targetId"`
	}
	if err := c.call(ctx, "", "Target.createTarget", map[string]any{"url": "about:blank"}, &target); err != nil {
		return nil, err
	}
	var attached struct {
		SessionID string `json:"sessionId"`
	}
	if err := c.call(ctx, "", "Target.attachToTarget", map[string]any{"targetId": target.TargetID, "flatten": true}, &attached); err != nil {
		return nil, err
	}
	p := &cdpPage{c: c, session: attached.SessionID}
	if err := c.call(ctx, p.session, "Page.enable", nil, nil); err != nil {
		return nil, err
	}
	return p, nil
}

// navigate loads url and returns once its load event has fired.
func (p *cdpPage) navigate(ctx context.Context, url string) error {
	loaded := p.c.expect(p.session, "Page.loadEventFired")
	var nav struct {
		ErrorText string `json:"errorText"`
	}
	if err := p.c.call(ctx, p.session, "Page.navigate", map[string]any{"url": url}, &nav); err != nil {
		return err
	}
	if nav.ErrorText != "" {
		return fmt.Errorf("navigate to %s: %s", url, nav.ErrorText)
	}
	_, err := p.c.await(ctx, loaded)
	return err
}

// eval evaluates the JavaScript expression in the page, awaits it when it is a
// Promise, and decodes its value (JSON) into result. A thrown exception or a rejected
// Promise is an error.
func (p *cdpPage) eval(ctx context.Context, expression string, result any) error {
	var r struct {
		Result struct {
			Type  string          `json:"type"`
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		ExceptionDetails *struct {
			Text      string `json:"text"`
			Exception struct {
				Description string `json:"description"`
			} `json:"exception"`
		} `json:"exceptionDetails"`
	}
	err := p.c.call(ctx, p.session, "Runtime.evaluate", map[string]any{
		"expression":    expression,
		"awaitPromise":  true,
		"returnByValue": true,
	}, &r)
	if err != nil {
		return err
	}
	if e := r.ExceptionDetails; e != nil {
		return fmt.Errorf("%s: %s %s", expression, e.Text, e.Exception.Description)
	}
	if err := json.Unmarshal(r.Result.Value, result); err != nil {
		return fmt.Errorf("%s: value of type %s: %w", expression, r.Result.Type, err)
	}
	return nil
}
