package http

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/alknet/alknet/core"
)

// ErrBodyReadTimeout is wrapped by the error a request body's Read returns once
// Limits.BodyReadTimeout has passed (with os.ErrDeadlineExceeded).
var ErrBodyReadTimeout = errors.New("http: request body read timeout")

// errTooLarge is what readLimited returns for input over its limit.
var errTooLarge = errors.New("http: input over its limit")

// readChunk is how much readLimited reads at a time.
const readChunk = 32 << 10

// readLimited reads r to its end into a buffer that grows with what arrives (never
// from an announced length), reserving every byte in res before buffering it. It
// returns errTooLarge as soon as more than limit bytes arrived, a *core.BudgetError
// when res has no room, and r's error otherwise. chunk is scratch space.
func readLimited(r io.Reader, limit int64, res *core.Reservation, chunk []byte) ([]byte, error) {
	var buf []byte
	lr := io.LimitReader(r, limit+1)
	for {
		n, err := lr.Read(chunk)
		if n > 0 {
			if int64(len(buf)+n) > limit {
				return nil, errTooLarge
			}
			if gerr := res.Grow(int64(n)); gerr != nil {
				return nil, gerr
			}
			buf = append(buf, chunk[:n]...)
		}
		switch {
		case err == io.EOF:
			return buf, nil
		case err != nil:
			return nil, err
		}
	}
}

// chunkPool holds the scratch buffers of readLimited.
type chunkPool struct{ p sync.Pool }

func (c *chunkPool) get() *[]byte {
	if b, ok := c.p.Get().(*[]byte); ok {
		return b
	}
	b := make([]byte, readChunk)
	return &b
}

func (c *chunkPool) put(b *[]byte) { c.p.Put(b) }

// bodyDeadline arms Limits.BodyReadTimeout for r's body: it returns r with a body
// whose reads fail with ErrBodyReadTimeout once the timeout has passed, and which
// lifts the deadline as soon as it reaches its end, so that what follows on the
// connection (an SSE stream, net/http's own check for a client going away) is not
// cut (net/http's HTTP/1.1 server also lifts it at the end of a body; on h2 this
// stops the stream's timer). Requests without a body, and servers that cannot set read deadlines, are left
// alone. The deadline of a body not read to its end stays, so that net/http's
// discarding of the rest after the handler is bounded too. The response controller
// and the body live in ss, the request's serveState.
func (h *Handler) bodyDeadline(w http.ResponseWriter, r *http.Request, ss *serveState) *http.Request {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return r
	}
	ss.rc = *http.NewResponseController(w)
	rc := &ss.rc
	if rc.SetReadDeadline(time.Now().Add(h.limits.BodyReadTimeout)) != nil {
		return r
	}
	// A shallow copy: net/http keeps the original request (and body) for itself.
	r = r.WithContext(r.Context())
	ss.body.ReadCloser = r.Body
	ss.body.rc = rc
	ss.body.timeout = h.limits.BodyReadTimeout
	r.Body = &ss.body
	return r
}

// serveState is what ServeHTTP keeps per request, in one allocation: the status
// writer that counts the answer (see Stats), and the response controller and
// deadline body of bodyDeadline.
type serveState struct {
	sw   statusWriter
	rc   http.ResponseController
	body deadlineBody
}

// deadlineBody is a request body read under a deadline.
type deadlineBody struct {
	io.ReadCloser
	rc      *http.ResponseController
	timeout time.Duration
	once    sync.Once
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	switch {
	case err == io.EOF:
		b.once.Do(func() { _ = b.rc.SetReadDeadline(time.Time{}) })
	case err != nil && errors.Is(err, os.ErrDeadlineExceeded):
		err = fmt.Errorf("%w (%v): %w", ErrBodyReadTimeout, b.timeout, err)
	}
	return n, err
}

// budgetBody counts what is read of a request body against the connection's memory
// budget, for handlers that buffer the whole body themselves (the MCP SDK); Release
// returns it when the request is done.
type budgetBody struct {
	io.ReadCloser
	res *core.Reservation
}

func (b *budgetBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		if gerr := b.res.Grow(int64(n)); gerr != nil {
			return 0, gerr
		}
	}
	return n, err
}

// budgeted returns next with request bodies counted against the connection's memory
// budget until the request is done.
func (h *Handler) budgeted(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b := connStateFrom(r.Context()).budget()
		if b == nil || r.Body == nil || r.Body == http.NoBody {
			next.ServeHTTP(w, r)
			return
		}
		res := b.Reservation()
		defer res.Release()
		r = r.WithContext(r.Context())
		r.Body = &budgetBody{ReadCloser: r.Body, res: res}
		next.ServeHTTP(w, r)
	})
}
