package http

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"

	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/core/endpoint"
)

// ALPNHTTP3 is the protocol of HTTP/3 (RFC 9114), which [HTTP3] serves on the QUIC
// listener.
const ALPNHTTP3 = http3.NextProtoH3

// HTTP3UniStreams is how many concurrent unidirectional streams an HTTP/3 client may
// open on one connection: its control stream and its two QPACK streams (RFC 9114
// §6.2, RFC 9204 §4.2), and room for streams of reserved types, which clients send
// to check that unknown types are ignored (RFC 9114 §6.2.3) and which the server stops
// at once.
const HTTP3UniStreams = 8

// AltSvcMaxAge is how long a client may remember the HTTP/3 advertisement of
// [Handler.AdvertiseHTTP3] (the Alt-Svc "ma" parameter).
const AltSvcMaxAge = 24 * time.Hour

// ErrHTTP3NeedsQUIC is returned by [HTTP3.Handle] for a connection that is not QUIC
// (a TCP+TLS client that offered "h3").
var ErrHTTP3NeedsQUIC = errors.New("http: h3 is served over QUIC only")

// HTTP3 serves a [Handler]'s routes over HTTP/3 on the QUIC listener: the same
// gateway, OpenAPI document, MCP projection, extra routes and decoy as HTTP/1.1 and h2,
// with quic-go's http3.Server (ServeQUICConn) on each connection. It is a
// core.ProtocolHandler for [ALPNHTTP3] and a core.UniStreamHandler, so the endpoint
// grants HTTP/3's unidirectional streams ([HTTP3UniStreams]) without granting them to
// the other protocols. Get it with [Handler.HTTP3].
//
// Identity and limits are those of alknet/http: a client certificate the endpoint
// resolved identifies the connection (for the anonymous body cap and the logs), a
// Bearer token identifies each request, failed tokens count against
// core.Limits.MaxAuthAttempts per connection (then 429 and the connection closed with
// core.CloseAuthRequired), bodies are read against the connection's memory budget and
// under Limits.BodyReadTimeout, MaxHeaderBytes caps a request's header section, and
// the connection is marked busy while a request runs, so the endpoint's idle timeout
// closes it only between requests. quic-go's HTTP/3 server has no header read
// timeout: a request whose headers never arrive holds one of the connection's streams
// (endpoint.Config.MaxIncomingStreams) until the connection closes, which the idle
// timeout does once no request runs.
// WebSocket (GET /alknet/call) needs HTTP/1.1 and gets the decoy here; there is no
// WebTransport.
//
// On shutdown (ctx of Handle done) the server sends GOAWAY, lets requests in flight
// finish (open subscriptions end) and closes the connection with H3_NO_ERROR.
type HTTP3 struct{ h *Handler }

// HTTP3 returns the HTTP/3 surface of h, to register beside h (see [HTTP3]).
func (h *Handler) HTTP3() *HTTP3 { return &HTTP3{h: h} }

// ALPN is [ALPNHTTP3].
func (*HTTP3) ALPN() string { return ALPNHTTP3 }

// MaxIncomingUniStreams is [HTTP3UniStreams] (core.UniStreamHandler).
func (*HTTP3) MaxIncomingUniStreams() int64 { return HTTP3UniStreams }

// Handle serves one QUIC connection as HTTP/3 until it closes or ctx is done. A
// connection of another transport is closed at once with an error wrapping
// [ErrHTTP3NeedsQUIC].
func (s *HTTP3) Handle(ctx context.Context, conn *core.Connection, auth core.AuthContext) error {
	qc, ok := endpoint.QUICConn(conn)
	if !ok {
		return fmt.Errorf("%w: the connection came over another transport", ErrHTTP3NeedsQUIC)
	}
	h := s.h
	if auth.Identity != nil {
		// Observability only: the gateway authorises per request from the Bearer token.
		_ = conn.SetIdentity(*auth.Identity)
	}
	limits := h.nodeLimits()
	state := &connState{
		maxSubs:    int64(h.limits.MaxSubscriptionsPerConn),
		shutdown:   ctx,
		conn:       conn,
		alpn:       ALPNHTTP3,
		remote:     conn.RemoteAddr(),
		identified: auth.Identity != nil,
		limits:     limits,
		attempts:   core.NewAuthAttempts(limits.MaxAuthAttempts),
	}
	requests := inflight{busy: conn.Busy}
	srv := &http3.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !requests.add() {
				// Shutting down: after GOAWAY, a request that was already on its way.
				w.Header().Set("Retry-After", "1")
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			defer requests.done()
			h.ServeHTTP(w, r)
		}),
		MaxHeaderBytes: h.limits.MaxHeaderBytes,
		IdleTimeout:    h.limits.IdleTimeout,
		ConnContext: func(ctx context.Context, _ *quic.Conn) context.Context {
			return context.WithValue(ctx, connStateKey{}, state)
		},
		// quic-go logs each request's URI at Debug; only its errors (a handler panic) pass.
		Logger: slog.New(minLevel{Handler: h.logger.Handler(), min: slog.LevelInfo}),
	}
	served := make(chan error, 1)
	go func() { served <- srv.ServeQUICConn(qc) }()

	// drained is closed once no request runs and none will start.
	drained := make(chan struct{})
	var drainOnce sync.Once
	drain := func() {
		drainOnce.Do(func() {
			go func() {
				requests.closeAndWait()
				close(drained)
			}()
		})
	}
	var err error
	select {
	case err = <-served:
	case <-ctx.Done():
		// Graceful: GOAWAY, then requests in flight finish (subscriptions end on ctx);
		// once none runs the connection closes. The endpoint's drain timeout bounds it.
		drain()
		idle, cancel := context.WithCancel(context.Background())
		go func() {
			<-drained
			cancel()
		}()
		_ = srv.Shutdown(idle)
		err = <-served
	}
	_ = srv.Close()
	drain()
	<-drained
	if qc.Context().Err() != nil || errors.Is(err, http.ErrServerClosed) {
		return nil // the connection ended: its close says how
	}
	return err
}

// minLevel passes on the records of Handler at min or above.
type minLevel struct {
	slog.Handler
	min slog.Level
}

func (m minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= m.min && m.Handler.Enabled(ctx, l)
}

func (m minLevel) WithAttrs(as []slog.Attr) slog.Handler {
	return minLevel{Handler: m.Handler.WithAttrs(as), min: m.min}
}

func (m minLevel) WithGroup(name string) slog.Handler {
	return minLevel{Handler: m.Handler.WithGroup(name), min: m.min}
}

// altSvc is the Alt-Svc value the handler's TCP+TLS responses carry ("" for none).
type altSvc struct{ v atomic.Pointer[string] }

// AdvertiseHTTP3 makes the responses the handler sends on TCP+TLS connections (h2 and
// http/1.1, from Handle) carry `Alt-Svc: h3=":port"; ma=86400` ([AltSvcMaxAge]),
// telling browsers that the same routes answer over HTTP/3 on UDP port port of the
// same host; port 0 stops it. Call it once [HTTP3] is registered and the QUIC listener
// is up (a node does so when it is ready), never before: a client that follows the
// advertisement to a port without HTTP/3 loses a round trip. Responses over QUIC
// (alknet/http, h3) and in an embedder's own server (ServeHTTP) never carry it.
func (h *Handler) AdvertiseHTTP3(port int) {
	if port <= 0 || port > 65535 {
		h.altSvc.v.Store(nil)
		return
	}
	v := ALPNHTTP3 + `=":` + strconv.Itoa(port) + `"; ma=` + strconv.Itoa(int(AltSvcMaxAge/time.Second))
	h.altSvc.v.Store(&v)
}

// get returns the advertisement, "" for none.
func (a *altSvc) get() string {
	if v := a.v.Load(); v != nil {
		return *v
	}
	return ""
}

// overTCPTLS reports whether conn is a TCP+TLS connection (a single stream with a TLS
// handshake), whose responses carry the HTTP/3 advertisement.
func overTCPTLS(conn *core.Connection) bool {
	if !conn.SingleStream() {
		return false
	}
	_, ok := conn.TLSConnectionState()
	return ok
}
