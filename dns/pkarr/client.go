package pkarr

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Relay client outcomes. A relay's refusal is a *StatusError, which also matches the
// sentinel for its status with errors.Is.
var (
	// ErrNotNewer: the relay (409) or a Relay's Store holds a packet at least as new.
	ErrNotNewer = errors.New("pkarr: timestamp not newer than the packet held")
	// ErrNotModified: Resolve's If-Modified-Since matched (304), or the relay answered
	// with a packet no newer than it.
	ErrNotModified = errors.New("pkarr: not modified")
	// ErrNotFound: the relay holds nothing for the key (404).
	ErrNotFound = errors.New("pkarr: not found")
	// ErrRejected: the relay refused the request as bad (400).
	ErrRejected = errors.New("pkarr: rejected by the relay")
	// ErrRateLimited: the relay is rate limiting this client (429); StatusError's
	// RetryAfter says for how long, when the relay said.
	ErrRateLimited = errors.New("pkarr: rate limited by the relay")
	// ErrRelayStatus is matched by every StatusError, whatever its code.
	ErrRelayStatus = errors.New("pkarr: relay answered with an error status")
)

// DefaultClientTimeout bounds one relay request when the context has no earlier deadline.
const DefaultClientTimeout = 30 * time.Second

// StatusError is a relay's non-success HTTP answer.
type StatusError struct {
	Relay      string        // the relay's base URL, credentials redacted
	Method     string        // "PUT" or "GET"
	Code       int           // HTTP status code
	RetryAfter time.Duration // from Retry-After on 429, when the relay sent seconds
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("pkarr: relay %s: %s answered %d %s", e.Relay, e.Method, e.Code, http.StatusText(e.Code))
}

// Unwrap returns ErrRelayStatus and, for the statuses pkarr's relay design names, its
// sentinel (409 ErrNotNewer, 413 ErrTooLarge, 400 ErrRejected, 404 ErrNotFound, 429
// ErrRateLimited).
func (e *StatusError) Unwrap() []error {
	errs := []error{ErrRelayStatus}
	switch e.Code {
	case http.StatusConflict:
		errs = append(errs, ErrNotNewer)
	case http.StatusRequestEntityTooLarge:
		errs = append(errs, ErrTooLarge)
	case http.StatusBadRequest:
		errs = append(errs, ErrRejected)
	case http.StatusNotFound:
		errs = append(errs, ErrNotFound)
	case http.StatusTooManyRequests:
		errs = append(errs, ErrRateLimited)
	}
	return errs
}

// Client talks to one pkarr relay over HTTP (pkarr's design/relays.md).
type Client struct {
	// BaseURL is the relay's URL, which may carry a path prefix
	// ("https://relay.example/pkarr"); keys are appended as "/<z32>".
	BaseURL string
	// HTTP is the client used; nil means http.DefaultClient.
	HTTP *http.Client
	// Timeout bounds each request; zero means DefaultClientTimeout.
	Timeout time.Duration
	// Now is the clock Resolve verifies packets against (the 1-hour future limit); nil
	// means time.Now.
	Now func() time.Time
}

// endpoint returns the URL for key and the redacted base for errors.
func (c *Client) endpoint(pub ed25519.PublicKey) (target, redacted string, err error) {
	u, err := url.Parse(c.BaseURL)
	if err != nil {
		return "", "", fmt.Errorf("pkarr: relay URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return "", "", fmt.Errorf("pkarr: relay URL %s: want http or https with a host", u.Redacted())
	}
	redacted = u.Redacted()
	u = u.JoinPath(ZBase32Key(pub))
	u.RawQuery, u.Fragment = "", ""
	return u.String(), redacted, nil
}

func (c *Client) do(ctx context.Context, req *http.Request) (*http.Response, context.CancelFunc, error) {
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = DefaultClientTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req.WithContext(ctx))
	if err != nil {
		cancel()
		return nil, nil, err
	}
	return resp, cancel, nil
}

// drain reads a little of an unwanted body so the connection can be reused, then
// closes it.
func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	_ = resp.Body.Close()
}

func statusError(redacted, method string, resp *http.Response) *StatusError {
	e := &StatusError{Relay: redacted, Method: method, Code: resp.StatusCode}
	if resp.StatusCode == http.StatusTooManyRequests {
		if s, err := strconv.Atoi(strings.TrimSpace(resp.Header.Get("Retry-After"))); err == nil && s > 0 {
			e.RetryAfter = time.Duration(min(s, 86400)) * time.Second
		}
	}
	return e
}

// Publish PUTs sp's relay payload to the relay. It returns nil on 2xx and a
// *StatusError otherwise (409 matches ErrNotNewer, 413 ErrTooLarge, 400 ErrRejected,
// 429 ErrRateLimited).
func (c *Client) Publish(ctx context.Context, sp *SignedPacket) error {
	if sp == nil || len(sp.raw) < MinSignedPacket {
		return fmt.Errorf("%w: Publish of a SignedPacket not made by Sign or Decode", ErrBadPacket)
	}
	target, redacted, err := c.endpoint(sp.raw[:ed25519.PublicKeySize])
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, target, bytes.NewReader(sp.RelayPayload()))
	if err != nil {
		return fmt.Errorf("pkarr: relay %s: %w", redacted, err)
	}
	req.Header.Set("Content-Type", ContentType)
	resp, cancel, err := c.do(ctx, req)
	if err != nil {
		return fmt.Errorf("pkarr: relay %s: PUT: %w", redacted, redactErr(err))
	}
	defer cancel()
	defer drain(resp)
	if resp.StatusCode/100 == 2 {
		return nil
	}
	return statusError(redacted, http.MethodPut, resp)
}

// Resolve GETs the packet the relay holds for pub and verifies it before returning it.
// When ifModifiedSince is not zero it is sent as If-Modified-Since (whole seconds, as
// HTTP dates are); a 304, or a packet whose timestamp is not after ifModifiedSince,
// returns ErrNotModified. A 404 returns a *StatusError matching ErrNotFound.
func (c *Client) Resolve(ctx context.Context, pub ed25519.PublicKey, ifModifiedSince time.Time) (*SignedPacket, error) {
	if len(pub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: %d-byte public key", ErrBadKey, len(pub))
	}
	target, redacted, err := c.endpoint(pub)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return nil, fmt.Errorf("pkarr: relay %s: %w", redacted, err)
	}
	if !ifModifiedSince.IsZero() {
		req.Header.Set("If-Modified-Since", ifModifiedSince.UTC().Format(http.TimeFormat))
	}
	resp, cancel, err := c.do(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("pkarr: relay %s: GET: %w", redacted, redactErr(err))
	}
	defer cancel()
	defer drain(resp)
	switch {
	case resp.StatusCode == http.StatusNotModified:
		return nil, fmt.Errorf("%w: relay %s", ErrNotModified, redacted)
	case resp.StatusCode != http.StatusOK:
		return nil, statusError(redacted, http.MethodGet, resp)
	case resp.ContentLength > MaxRelayPayload:
		return nil, fmt.Errorf("%w: relay %s announced a %d-byte payload, limit %d", ErrTooLarge, redacted, resp.ContentLength, MaxRelayPayload)
	}
	var buf [MaxRelayPayload + 1]byte
	n, err := io.ReadFull(resp.Body, buf[:])
	if n > MaxRelayPayload {
		return nil, fmt.Errorf("%w: relay %s sent over %d bytes", ErrTooLarge, redacted, MaxRelayPayload)
	}
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, fmt.Errorf("pkarr: relay %s: reading GET body: %w", redacted, redactErr(err))
	}
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	sp, err := DecodeRelayPayload(pub, buf[:n], now())
	if err != nil {
		return nil, fmt.Errorf("relay %s: %w", redacted, err)
	}
	if !ifModifiedSince.IsZero() && !sp.Timestamp().After(ifModifiedSince) {
		return nil, fmt.Errorf("%w: relay %s sent a packet no newer than If-Modified-Since", ErrNotModified, redacted)
	}
	return sp, nil
}

// redactErr strips the request URL (which may carry credentials) from a *url.Error.
func redactErr(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
