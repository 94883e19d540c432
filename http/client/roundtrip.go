package client

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// maxDrain bounds how much of a retried response's body is read so that its
// connection can be reused.
const maxDrain = 64 << 10

// roundTripper is the chain Retry-After gate → transient retry → *http.Transport,
// over whatever configuration is current when a request starts.
type roundTripper struct {
	s *Shared
}

// CloseIdleConnections closes the idle connections of the current configuration;
// http.Client.CloseIdleConnections calls it.
func (rt *roundTripper) CloseIdleConnections() {
	rt.s.Close()
}

// RoundTrip implements http.RoundTripper. One configuration is used for the whole
// request, retries included, even if a reload happens meanwhile.
func (rt *roundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	s := rt.s
	st := s.cur.Load()
	if err := validRequest(req); err != nil {
		closeBody(req)
		return nil, err
	}
	ctx := req.Context()
	key := memoryKey(req.URL)

	// Retry-After gate.
	if d := s.memory.remaining(key, s.opts.now()); d > 0 {
		if dl, ok := ctx.Deadline(); ok && s.opts.now().Add(d).After(dl) {
			closeBody(req)
			return nil, &RetryAfterError{Host: req.URL.Host, Wait: d}
		}
		st.logger.LogAttrs(ctx, slog.LevelDebug, "http client: waiting for Retry-After",
			slog.String("method", req.Method), slog.String("host", req.URL.Host), slog.Duration("delay", d))
		if err := s.opts.sleep(ctx, d); err != nil {
			closeBody(req)
			return nil, fmt.Errorf("http client: %s %s: waiting for Retry-After: %w", method(req), req.URL.Host, err)
		}
	}

	return rt.retry(st, req, key)
}

// retry sends req, retrying transient failures as st's policy allows.
func (rt *roundTripper) retry(st *state, req *http.Request, key string) (*http.Response, error) {
	s := rt.s
	ctx := req.Context()
	canRetry := st.maxRetries > 0 && (st.retryNonIdempotent || idempotent(req)) && replayable(req)

	attemptReq := req
	for attempt := 0; ; attempt++ {
		resp, err := st.transport.RoundTrip(attemptReq)

		var retryAfter time.Duration
		if err == nil && (resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable) {
			now := s.opts.now()
			if d, ok := parseRetryAfter(resp.Header.Get("Retry-After"), now); ok {
				retryAfter = d
				s.memory.remember(key, now.Add(d), now)
			}
		}

		if !canRetry || attempt >= st.maxRetries || ctx.Err() != nil || !transient(resp, err) {
			return resp, err
		}
		next := req.Clone(ctx)
		if req.Body != nil && req.Body != http.NoBody {
			body, berr := req.GetBody()
			if berr != nil {
				return resp, err // cannot replay: hand back what we have
			}
			next.Body = body
		}

		wait := min(max(backoff(st, attempt, s.opts.jitter), retryAfter), st.maxDelay)
		attrs := []slog.Attr{
			slog.String("method", method(req)), slog.String("host", req.URL.Host),
			slog.Int("attempt", attempt+1), slog.Duration("delay", wait),
		}
		if resp != nil {
			attrs = append(attrs, slog.Int("status", resp.StatusCode))
			drainAndClose(resp)
		}
		st.logger.LogAttrs(ctx, slog.LevelDebug, "http client: retrying", attrs...)

		if werr := s.opts.sleep(ctx, wait); werr != nil {
			closeBody(next)
			return nil, fmt.Errorf("http client: %s %s: waiting to retry: %w", method(req), req.URL.Host, werr)
		}
		attemptReq = next
	}
}

// backoff is the jittered exponential delay before retry number attempt (from
// 0): uniform in [d/2, d] with d = baseDelay·2^attempt capped at maxDelay.
func backoff(st *state, attempt int, jitter func(int64) int64) time.Duration {
	d := st.maxDelay
	if attempt < 62 {
		if e := st.baseDelay << attempt; e > 0 && e>>attempt == st.baseDelay && e < d {
			d = e
		}
	}
	half := d / 2
	return half + time.Duration(jitter(int64(d-half)+1))
}

// validRequest rejects requests the transport could never send, so that they are
// not retried.
func validRequest(req *http.Request) error {
	switch {
	case req.URL == nil:
		return errors.New("http client: request has no URL")
	case req.URL.Scheme != "http" && req.URL.Scheme != "https":
		return fmt.Errorf("http client: unsupported URL scheme %q", req.URL.Scheme)
	case req.URL.Host == "":
		return errors.New("http client: request URL has no host")
	}
	return nil
}

func method(req *http.Request) string {
	if req.Method == "" {
		return http.MethodGet
	}
	return req.Method
}

// idempotent reports whether req may be sent twice: an idempotent method, or an
// Idempotency-Key header (present even with a nil value, as net/http has it).
func idempotent(req *http.Request) bool {
	switch method(req) {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	_, ok := req.Header["Idempotency-Key"]
	return ok
}

// replayable reports whether req's body can be sent again.
func replayable(req *http.Request) bool {
	return req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
}

// transient reports whether an attempt's outcome is worth retrying.
func transient(resp *http.Response, err error) bool {
	if err != nil {
		return !permanentError(err)
	}
	switch c := resp.StatusCode; {
	case c >= 500 && c <= 599, c == http.StatusRequestTimeout, c == http.StatusTooManyRequests:
		return true
	}
	return false
}

// permanentError reports transport errors that a retry would not fix: failed
// certificate verification and TLS failures (a non-TLS peer, or an alert from the
// server such as a rejected client certificate, which crypto/tls reports over TCP
// as a *net.OpError with Op "remote error").
func permanentError(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "remote error" {
		return true
	}
	var (
		verify    *tls.CertificateVerificationError
		unknownCA x509.UnknownAuthorityError
		hostname  x509.HostnameError
		invalid   x509.CertificateInvalidError
		record    tls.RecordHeaderError
		alert     tls.AlertError
	)
	return errors.As(err, &verify) || errors.As(err, &unknownCA) || errors.As(err, &hostname) ||
		errors.As(err, &invalid) || errors.As(err, &record) || errors.As(err, &alert)
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

func drainAndClose(resp *http.Response) {
	io.CopyN(io.Discard, resp.Body, maxDrain)
	resp.Body.Close()
}

var _ http.RoundTripper = (*roundTripper)(nil)
