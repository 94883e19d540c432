package http

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/alknet/alknet/call"
)

// serveSubscribe answers POST /subscribe {"operation", "input"?} as Server-Sent
// Events: status 200 and text/event-stream even for errors, one `data:` event per
// output, and on failure one `event: error` whose data is the CallError, after which
// the stream ends. A Query or Mutation answers INVALID_OPERATION_TYPE, an unknown or
// Internal operation NOT_FOUND. The client leaving cancels the subscription's handler,
// and so does a reload of the identities that revokes (or changes) the Bearer token
// the stream was opened with: it ends with a FORBIDDEN "credential revoked" (or
// "credential changed") error event.
// Body errors (before the stream starts) and the per-connection subscription limit
// are answered as JSON CallErrors with their status.
func (h *Handler) serveSubscribe(w http.ResponseWriter, r *http.Request) {
	op, input, release, ok := h.readCallRequest(w, r)
	defer release()
	if !ok {
		return
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	if st := connStateFrom(ctx); st != nil {
		if !st.acquireSub() {
			e := call.Errorf(HTTPCodePrefix+"429", "too many concurrent subscriptions on this connection (limit %d)", st.maxSubs)
			e.Retryable = true
			e.Details = json.RawMessage(`{"retry_after":1}`)
			writeCallErrorStatus(w, e, http.StatusTooManyRequests)
			return
		}
		defer st.releaseSub()
		if st.shutdown != nil {
			defer context.AfterFunc(st.shutdown, cancel)()
		}
	}

	hd := w.Header()
	hd.Set("Content-Type", "text/event-stream")
	hd.Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	sw := &sseWriter{w: w, rc: http.NewResponseController(w), maxLine: h.limits.MaxSSELineBytes}
	if sw.flush() != nil {
		return
	}
	stopPing := sw.keepAlive(ctx, h.limits.SSEKeepAlive)
	// The Bearer token is re-checked at every reload of the identities: revoked (or
	// changed), the stream ends with a FORBIDDEN error event.
	id := IdentityFrom(ctx)
	var tok []byte
	if id != nil {
		tok, _ = BearerToken(r.Header)
	}
	var ended string // read after stopWatch
	stopWatch := h.watchCredential(ctx, tok, id, func(reason string) {
		ended = reason
		if reason == reasonRevoked {
			h.logAuthFailure(r, tokenPeer(tok), reasonRevoked)
		}
		cancel()
	})
	_, err := h.gw.InvokeStream(ctx, id, op, input, sw.data)
	stopWatch()
	clear(tok)
	stopPing()
	if ended != "" {
		err = call.NewCallError(call.CodeForbidden, ended)
	}
	if err != nil && r.Context().Err() == nil {
		if werr := sw.event("error", err); werr != nil {
			h.logger.LogAttrs(ctx, slog.LevelDebug, "subscription error not delivered", errAttr(werr))
		}
	}
}

// sseWriter writes the events of one /subscribe response; data, event and the
// keep-alive may be called from different goroutines.
type sseWriter struct {
	mu      sync.Mutex
	w       http.ResponseWriter
	rc      *http.ResponseController
	maxLine int
	buf     bytes.Buffer
}

// data writes one output as `data: <compact JSON>` and flushes it.
func (s *sseWriter) data(out json.RawMessage) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.buf.Reset()
	s.buf.WriteString("data: ")
	if len(out) == 0 {
		s.buf.WriteString("null")
	} else if err := json.Compact(&s.buf, out); err != nil {
		return call.NewCallError(call.CodeInternal, "subscription output is not valid JSON")
	}
	if n := s.buf.Len() - len("data: "); n > s.maxLine {
		return call.Errorf(call.CodeInternal, "subscription output of %d bytes exceeds the SSE line limit of %d bytes", n, s.maxLine)
	}
	s.buf.WriteString("\n\n")
	return s.writeBuf()
}

// event writes `event: <name>` with v as its JSON data and flushes it.
func (s *sseWriter) event(name string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.buf.Reset()
	s.buf.WriteString("event: ")
	s.buf.WriteString(name)
	s.buf.WriteString("\ndata: ")
	s.buf.Write(b)
	s.buf.WriteString("\n\n")
	return s.writeBuf()
}

// keepAlive writes a `: ping` comment every interval until the returned stop is
// called (stop waits for the pinger to end).
func (s *sseWriter) keepAlive(ctx context.Context, every time.Duration) (stop func()) {
	done := make(chan struct{})
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				s.mu.Lock()
				s.buf.Reset()
				s.buf.WriteString(": ping\n\n")
				err := s.writeBuf()
				s.mu.Unlock()
				if err != nil {
					return
				}
			}
		}
	}()
	return func() {
		close(done)
		<-exited
	}
}

// writeBuf writes and flushes the buffer; s.mu is held.
func (s *sseWriter) writeBuf() error {
	if _, err := s.w.Write(s.buf.Bytes()); err != nil {
		return err
	}
	return s.rc.Flush()
}

// flush sends what is buffered (the headers).
func (s *sseWriter) flush() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rc.Flush()
}

// errAttr is an error as a log attribute.
func errAttr(err error) slog.Attr { return slog.String("err", err.Error()) }
