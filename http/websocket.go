package http

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/alknet/alknet/call"
	"github.com/alknet/alknet/core"
)

// WebSocketPath is the route of the call protocol over WebSocket.
const WebSocketPath = "/alknet/call"

// MCPPath is the route Config.MCP is mounted at.
const MCPPath = "/mcp"

// WebSocketSubprotocol is the subprotocol a WebSocket client offers for the call
// protocol; the server selects it when offered.
const WebSocketSubprotocol = "alknet.call"

// WebSocketBearerPrefix starts the subprotocol that carries a Bearer token, for
// browsers, which cannot set headers on a WebSocket:
//
//	new WebSocket(url, ["alknet.call", "alknet.bearer." + token])
//
// The token must be a valid HTTP token (RFC 9110 tchar: letters, digits and
// !#$%&'*+-.^_`|~), which base64url API keys are. The server never selects, echoes or
// logs this subprotocol, and never reads a token from the URL.
const WebSocketBearerPrefix = "alknet.bearer."

// Default WebSocket settings; see WebSocketConfig.
const (
	// DefaultWSMaxMessageBytes is the default read limit of one WebSocket message (1
	// MiB), far below the 64 MiB frame limit of the call protocol on QUIC streams.
	DefaultWSMaxMessageBytes = 1 << 20
	// DefaultWSWriteTimeout bounds writing one message to a WebSocket client.
	DefaultWSWriteTimeout = 30 * time.Second
)

// WebSocketConfig configures GET /alknet/call: the call protocol for browsers, one
// binary message per EventEnvelope. Zero fields take the defaults.
type WebSocketConfig struct {
	// Disable makes /alknet/call the decoy, like any unknown path.
	Disable bool
	// MaxMessageBytes is the read limit of one message; a larger one closes the
	// connection with 1009 (message too big) and the reason "message exceeds <n>
	// bytes" (DefaultWSMaxMessageBytes). A message is read incrementally and held
	// against the connection's memory budget (core.Connection.Budget) until the
	// request it carries has been answered; one the budget has no room for closes the
	// connection with 1008 (policy violation) and a reason naming the limit. The
	// node's MaxAnonymousFrameBytes does not apply: the socket proved an identity at
	// the upgrade (a Bearer header or subprotocol token), which is the identity that
	// counts, whatever the TLS handshake resolved.
	MaxMessageBytes int64
	// WriteTimeout bounds writing one message; a client that does not read for that
	// long is disconnected (DefaultWSWriteTimeout).
	WriteTimeout time.Duration
	// MaxInflight bounds the requests of one connection running at once (0:
	// call.DefaultMaxInflight; < 0: unlimited). One more is answered with a retryable
	// INTERNAL CallError.
	MaxInflight int
	// OriginPatterns are the host patterns (path.Match syntax, as in
	// websocket.AcceptOptions) of cross-origin pages allowed to connect. Empty: only
	// same-origin pages (and non-browser clients, which send no Origin).
	OriginPatterns []string
	// OnConnect, when set, runs in its own goroutine once a connection is up; ctx
	// ends when the connection does. Use it to call into the browser right away (for
	// example to import its operations with call.FromCall and c.RegisterImported).
	OnConnect func(ctx context.Context, c *call.Conn)
}

// wsServer serves WebSocketPath.
type wsServer struct {
	h      *Handler
	cfg    WebSocketConfig
	d      *call.Dispatcher
	decoy  http.Handler
	logger *slog.Logger
}

// newWSServer builds the WebSocket route of h; nil when it is disabled.
func newWSServer(h *Handler, cfg WebSocketConfig) (*wsServer, error) {
	if cfg.Disable {
		return nil, nil
	}
	if cfg.MaxMessageBytes < 0 {
		return nil, fmt.Errorf("%w: WebSocket.MaxMessageBytes is negative", ErrConfig)
	}
	if cfg.MaxMessageBytes == 0 {
		cfg.MaxMessageBytes = DefaultWSMaxMessageBytes
	}
	if cfg.MaxMessageBytes > call.MaxFrameSize {
		return nil, fmt.Errorf("%w: WebSocket.MaxMessageBytes above the call protocol's %d-byte frame limit", ErrConfig, call.MaxFrameSize)
	}
	for _, p := range cfg.OriginPatterns {
		if _, err := path.Match(p, ""); err != nil {
			return nil, fmt.Errorf("%w: WebSocket.OriginPatterns: %q: %w", ErrConfig, p, err)
		}
	}
	if cfg.WriteTimeout < 0 {
		return nil, fmt.Errorf("%w: WebSocket.WriteTimeout is negative", ErrConfig)
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = DefaultWSWriteTimeout
	}
	return &wsServer{
		h:   h,
		cfg: cfg,
		d: &call.Dispatcher{
			Registry:       h.gw.Registry,
			Identities:     h.gw.Identities,
			Ownership:      h.gw.Ownership,
			DefaultTimeout: h.gw.Timeout,
			MaxFrameSize:   int(cfg.MaxMessageBytes),
			MaxInflight:    cfg.MaxInflight,
			OverlayOnly:    true, // a browser is not a peer
			Limits:         h.node,
			Logger:         h.logger,
		},
		decoy:  h.decoy,
		logger: h.logger,
	}, nil
}

// Close reasons of the WebSocket path (status 1002, protocol error). A revoked or
// changed credential closes with 1008 and reasonRevoked or reasonChanged.
const (
	wsReasonText     = "text messages not supported"
	wsReasonEnvelope = "invalid EventEnvelope"
)

// ServeHTTP upgrades an authenticated request and serves the call protocol on the
// WebSocket until either side closes it.
// A request that is not a WebSocket upgrade (HEAD included) gets the decoy, as any
// unknown path does.
func (s *wsServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet || !isWebSocketUpgrade(r.Header) {
		s.decoy.ServeHTTP(w, r)
		return
	}
	// tok is the credential the socket authenticated with, kept (and wiped when the
	// socket closes) to re-check it at every reload of the identities.
	var tok []byte
	id := IdentityFrom(r.Context())
	if id != nil {
		tok, _ = BearerToken(r.Header)
	} else if t, presented := subprotocolToken(r.Header); presented {
		var ok bool
		if id, ok = s.h.authenticate(w, r, t, reasonBadSubprotocol); !ok {
			clear(t)
			return
		}
		tok = t
	}
	if id == nil {
		clear(tok)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, "401 Unauthorized")
		return
	}
	// No read deadline may outlive the upgrade (BodyReadTimeout arms one only for
	// requests with a body; this one has none, but a client may say otherwise).
	_ = http.NewResponseController(w).SetReadDeadline(time.Time{})
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		Subprotocols:    []string{WebSocketSubprotocol},
		OriginPatterns:  s.cfg.OriginPatterns,
		CompressionMode: websocket.CompressionDisabled,
	})
	if err != nil {
		clear(tok)
		// Accept has answered (400, 403 or 426).
		s.logger.Debug("websocket: upgrade refused", "err", err)
		return
	}
	s.serve(r, ws, id, tok)
}

// serve runs one upgraded connection of request r, whose context lives until serve
// returns. tok (nil for none) is the credential that resolved to id; serve wipes it.
func (s *wsServer) serve(r *http.Request, ws *websocket.Conn, id *core.Identity, tok []byte) {
	ctx := r.Context()
	st := connStateFrom(ctx)
	// The socket proved an identity at the upgrade, so the node's anonymous cap
	// (core.Limits.FrameLimit(false, …)) does not apply: MaxMessageBytes does.
	limit := s.cfg.MaxMessageBytes
	// readLoop stops at limit+1 bytes and closes with its own reason; the library's
	// limit (one byte further) is only a backstop.
	ws.SetReadLimit(limit + 1)

	// Node shutdown (Handle's context) says goodbye with 1001.
	if st != nil && st.shutdown != nil {
		stop := context.AfterFunc(st.shutdown, func() {
			_ = ws.Close(websocket.StatusGoingAway, "server shutting down")
		})
		defer stop()
	}
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w := newWSWriter(ws, s.cfg.WriteTimeout)
	// The call connection may end the socket itself (a request's auth_token after the
	// connection used up its attempts, which it counts with the Bearer tokens of the
	// HTTP connection): closeReq hands that to the closer below, since the callback
	// must not block.
	closeReq := make(chan wsCloseRequest, 1)
	opts := []call.MessageOption{call.WithClose(func(code uint32, reason string) {
		select {
		case closeReq <- wsCloseRequest{code, reason}:
		default:
		}
	})}
	if st != nil {
		opts = append(opts, call.WithRemoteAddr(st.remote))
		if st.alpn != "" {
			opts = append(opts, call.WithALPN(st.alpn))
		}
		if st.attempts != nil {
			opts = append(opts, call.WithAuthAttempts(st.attempts))
		}
	}
	c := s.d.NewMessageConn(cctx, id, w.send, opts...)
	s.logger.Debug("websocket: connection opened", "identity", id.ID)
	closerCtx, stopCloser := context.WithCancel(cctx)
	closerDone := make(chan struct{})
	var closedBy uint32 // the call connection's close code; read after closerDone
	go func() {
		defer close(closerDone)
		select {
		case cr := <-closeReq:
			closedBy = cr.code
			_ = ws.Close(wsCloseStatus(cr.code), cr.reason)
		case <-closerCtx.Done():
		}
	}()

	var hooks sync.WaitGroup
	if s.cfg.OnConnect != nil {
		hooks.Go(func() { s.cfg.OnConnect(cctx, c) })
	}

	// The credential is re-checked at every reload: revoked (or changed), the socket
	// closes with 1008.
	stopWatch := s.h.watchCredential(cctx, tok, id, func(reason string) {
		if reason == reasonRevoked {
			s.h.logAuthFailure(r, tokenPeer(tok), reasonRevoked)
		} else {
			s.logger.Debug("websocket: closing, credential changed", "identity", id.ID)
		}
		_ = ws.Close(websocket.StatusPolicyViolation, reason)
	})

	status, reason := s.readLoop(cctx, ws, c, limit, st.budget())
	stopWatch()
	clear(tok)
	stopCloser()
	<-closerDone
	// Pending calls fail with INTERNAL "connection closed", in-flight handlers are
	// cancelled and the overlay is dropped before the socket goes.
	_ = c.Close()
	cancel()
	w.stop()
	if status != 0 {
		_ = ws.Close(status, reason)
	} else {
		_ = ws.CloseNow()
	}
	hooks.Wait()
	if closedBy == core.CloseAuthRequired && st != nil && st.conn != nil && !st.conn.SingleStream() {
		// As for too many Bearer tokens, the whole connection goes (a QUIC one: its
		// other streams too).
		st.conn.Close(core.CloseAuthRequired, core.ErrTooManyAuthAttempts.Error())
	}
	s.logger.Debug("websocket: connection closed", "identity", id.ID)
}

// wsCloseRequest is a call connection ending its socket: a core close code and the
// reason to send.
type wsCloseRequest struct {
	code   uint32
	reason string
}

// wsCloseStatus is the WebSocket status for a core close code: 1008 (policy
// violation) for a refused credential or a limit, 1011 (internal error) otherwise.
func wsCloseStatus(code uint32) websocket.StatusCode {
	switch code {
	case core.CloseAuthRequired, core.CloseLimitExceeded:
		return websocket.StatusPolicyViolation
	}
	return websocket.StatusInternalError
}

// wsQueueLen is how many outgoing messages of one connection wait for its writer
// before senders block.
const wsQueueLen = 64

// wsWriter is the one goroutine that writes a connection's messages, in the order
// they were sent. Request goroutines only encode and queue: the deep write path (TLS
// record, socket) runs on one long-lived stack, and a request whose context ends can
// never leave a message half written (coder/websocket closes the connection when a
// Write's context ends mid-message).
type wsWriter struct {
	ws      *websocket.Conn
	queue   chan []byte
	quit    chan struct{} // closed by stop
	done    chan struct{} // closed when run returns
	timeout time.Duration
	once    sync.Once
}

// newWSWriter starts the writer of ws; a write that takes longer than timeout closes
// the connection.
func newWSWriter(ws *websocket.Conn, timeout time.Duration) *wsWriter {
	w := &wsWriter{
		ws:      ws,
		queue:   make(chan []byte, wsQueueLen),
		quit:    make(chan struct{}),
		done:    make(chan struct{}),
		timeout: timeout,
	}
	go w.run()
	return w
}

// errWSClosed is what send returns once the connection's writer has stopped.
var errWSClosed = errors.New("websocket: connection closed")

// send queues env. It is the message transport of the connection's call.Conn: it
// fails when ctx is done before the message is queued or the writer has stopped, and
// otherwise returns once the message is queued (the writer reports a failed write by
// closing the connection).
func (w *wsWriter) send(ctx context.Context, env call.Envelope) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b, err := call.EncodeEnvelope(env)
	if err != nil {
		return err
	}
	select {
	case w.queue <- b:
		return nil
	case <-w.done:
		return errWSClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

// run writes queued messages until stop or a failed write. The write context has no
// deadline (coder/websocket then arms no timer of its own); one reusable timer
// closes a connection whose write outlasts the timeout.
func (w *wsWriter) run() {
	defer close(w.done)
	watchdog := time.AfterFunc(time.Hour, func() { _ = w.ws.CloseNow() })
	watchdog.Stop()
	defer watchdog.Stop()
	for {
		select {
		case b := <-w.queue:
			watchdog.Reset(w.timeout)
			err := w.ws.Write(context.Background(), websocket.MessageBinary, b)
			watchdog.Stop()
			if err != nil {
				_ = w.ws.CloseNow()
				return
			}
		case <-w.quit:
			return
		}
	}
}

// stop ends the writer (messages still queued are dropped) and waits for it.
func (w *wsWriter) stop() {
	w.once.Do(func() { close(w.quit) })
	<-w.done
}

// readLoop feeds received envelopes to c until the client closes, the connection
// fails or a message breaks the protocol; it returns the close status to send (0:
// none, the connection is already gone). A message is read incrementally, at most
// limit bytes, each byte reserved in budget before it is buffered; c releases them
// once it is done with the envelope (a request: once it has been answered), so that
// running requests hold their messages against the budget.
func (s *wsServer) readLoop(ctx context.Context, ws *websocket.Conn, c *call.Conn, limit int64, budget *core.Budget) (websocket.StatusCode, string) {
	for {
		typ, r, err := ws.Reader(ctx)
		if err != nil {
			var ce websocket.CloseError
			if !errors.As(err, &ce) {
				s.logger.Debug("websocket: read ended", "err", err)
			}
			return 0, ""
		}
		if typ != websocket.MessageBinary {
			return websocket.StatusProtocolError, wsReasonText
		}
		res := budget.Reservation()
		chunk := s.h.chunks.get()
		data, err := readLimited(r, limit, res, *chunk)
		s.h.chunks.put(chunk)
		if err != nil {
			res.Release()
			if errors.Is(err, errTooLarge) {
				return websocket.StatusMessageTooBig, fmt.Sprintf("message exceeds %d bytes", limit)
			}
			if be, ok := errors.AsType[*core.BudgetError](err); ok {
				return websocket.StatusPolicyViolation, be.Error()
			}
			s.logger.Debug("websocket: read ended", "err", err)
			return 0, ""
		}
		env, err := call.DecodeEnvelope(data)
		if err != nil {
			res.Release()
			return websocket.StatusProtocolError, wsReasonEnvelope
		}
		c.HandleEnvelopeReserved(ctx, env, budget, res.Bytes())
	}
}

// subprotocolToken returns the token of the "alknet.bearer.<token>" subprotocol:
// presented is true when any is offered, token is nil unless exactly one is and its
// token is an RFC 9110 token.
func subprotocolToken(h http.Header) (token []byte, presented bool) {
	var tok string
	found := 0
	for _, v := range h.Values("Sec-WebSocket-Protocol") {
		for p := range strings.SplitSeq(v, ",") {
			if t, ok := strings.CutPrefix(strings.TrimSpace(p), WebSocketBearerPrefix); ok {
				tok = t
				found++
			}
		}
	}
	if found != 1 || !isHTTPToken(tok) {
		return nil, found > 0
	}
	return []byte(tok), true
}

// isWebSocketUpgrade reports whether h asks for a WebSocket upgrade (RFC 6455 §4.1:
// "Connection: Upgrade" and "Upgrade: websocket", both case-insensitive tokens).
func isWebSocketUpgrade(h http.Header) bool {
	return headerHasToken(h, "Connection", "upgrade") && headerHasToken(h, "Upgrade", "websocket")
}

// headerHasToken reports whether a comma-separated value of header key holds token.
func headerHasToken(h http.Header, key, token string) bool {
	for _, v := range h.Values(key) {
		for p := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(p), token) {
				return true
			}
		}
	}
	return false
}

// isHTTPToken reports whether t is a non-empty RFC 9110 token (tchar only), the only
// form a subprotocol, and so a subprotocol-borne Bearer token, can take.
func isHTTPToken(t string) bool {
	if t == "" {
		return false
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}
