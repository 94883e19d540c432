package client

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"time"
)

const (
	// DefaultMaxIdleConnsPerHost is the number of idle connections kept per
	// upstream host when [Config.MaxIdleConnsPerHost] is zero.
	DefaultMaxIdleConnsPerHost = 16

	// DefaultTimeout is the per-attempt timeout used when [Config.Timeout] is zero.
	// It bounds, separately, dialing, the TLS handshake and the wait for the
	// response headers of each attempt; see [Config.Timeout].
	DefaultTimeout = 30 * time.Second

	// DefaultMaxRetries is the number of retries after the first attempt when
	// [RetryPolicy.MaxRetries] is zero.
	DefaultMaxRetries = 3

	// DefaultBaseDelay is the backoff before the first retry when
	// [RetryPolicy.BaseDelay] is zero; it doubles on each further retry.
	DefaultBaseDelay = 100 * time.Millisecond

	// DefaultMaxDelay caps every wait between two attempts when
	// [RetryPolicy.MaxDelay] is zero.
	DefaultMaxDelay = 5 * time.Second

	// DefaultRetryAfterCapacity is the number of URLs whose Retry-After deadline
	// is remembered when [Config.RetryAfterCapacity] is zero.
	DefaultRetryAfterCapacity = 256
)

// ErrConfig is wrapped by every error reporting an invalid [Config]: unparsable
// PEM, a client certificate without its key (or the reverse), negative values.
var ErrConfig = errors.New("http client: invalid configuration")

// RetryPolicy says when and how often a failed attempt is retried.
//
// Only transient failures are retried: transport errors (refused or reset
// connections, a connection closed before the response, timeouts), but not
// certificate or TLS alert errors, which a retry would not fix; and responses with
// status 5xx, 408 or 429. The wait before retry n (counting from 0) is a random
// duration in [d/2, d] where d = BaseDelay·2ⁿ capped at MaxDelay; after a 429 or
// 503 response carrying Retry-After, the wait is the larger of that and the
// Retry-After delay, still capped at MaxDelay.
type RetryPolicy struct {
	// MaxRetries is the number of retries after the first attempt.
	// Zero means DefaultMaxRetries (3); a negative value disables retries.
	MaxRetries int

	// BaseDelay is the backoff before the first retry. Zero means
	// DefaultBaseDelay (100ms); negative is an error.
	BaseDelay time.Duration

	// MaxDelay caps each wait between two attempts, Retry-After included.
	// Zero means DefaultMaxDelay (5s); negative is an error.
	MaxDelay time.Duration

	// RetryNonIdempotent allows retrying POST and PATCH requests that carry no
	// Idempotency-Key header. Default false: such requests are sent once.
	RetryNonIdempotent bool
}

// Config describes a [Shared] client. The zero Config is valid: system roots, no
// client certificate, direct connections and the documented defaults.
type Config struct {
	// MaxIdleConnsPerHost is the number of idle connections kept per host.
	// Zero means DefaultMaxIdleConnsPerHost (16); negative is an error.
	MaxIdleConnsPerHost int

	// Timeout bounds each attempt: it is applied separately to dialing, to the TLS
	// handshake and to the wait for the response headers once the request is
	// written. It does not bound writing the request body, reading the response
	// body, the waits between retries or the whole call: bound those with the
	// request's context. Zero means DefaultTimeout (30s); negative is an error.
	Timeout time.Duration

	// Retry is the transient retry policy.
	Retry RetryPolicy

	// RetryAfterCapacity bounds the number of URLs whose Retry-After deadline is
	// remembered. Zero means DefaultRetryAfterCapacity (256); negative is an
	// error.
	RetryAfterCapacity int

	// CABundlePEM, when set, holds the PEM certificates that replace the system
	// roots for verifying servers. The caller reads the file. Default: the
	// system roots.
	CABundlePEM []byte

	// ClientCertPEM and ClientKeyPEM hold an optional client certificate (with
	// its chain) and its private key, in PEM. Set both or neither.
	ClientCertPEM, ClientKeyPEM []byte

	// Proxy returns the proxy for a request, as http.Transport.Proxy does.
	// Nil (the default) means direct connections; proxy settings are never read
	// from the environment.
	Proxy func(*http.Request) (*url.URL, error)

	// Logger receives Debug records about retries and Retry-After waits, with at
	// most the request's method and host, the response's status, the attempt
	// number and the delay. Nil discards them.
	Logger *slog.Logger
}

// settings is a validated Config with its defaults applied.
type settings struct {
	maxRetries         int // >= 0
	baseDelay          time.Duration
	maxDelay           time.Duration
	retryNonIdempotent bool
	retryAfterCapacity int
	logger             *slog.Logger
}

func configErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrConfig, fmt.Sprintf(format, args...))
}

// build validates cfg and builds the transport it describes. It has no side
// effect: on error nothing needs closing.
func build(cfg Config, dial func(ctx context.Context, network, addr string) (net.Conn, error)) (*http.Transport, settings, error) {
	var st settings
	switch {
	case cfg.MaxIdleConnsPerHost < 0:
		return nil, st, configErr("negative MaxIdleConnsPerHost %d", cfg.MaxIdleConnsPerHost)
	case cfg.Timeout < 0:
		return nil, st, configErr("negative Timeout %v", cfg.Timeout)
	case cfg.RetryAfterCapacity < 0:
		return nil, st, configErr("negative RetryAfterCapacity %d", cfg.RetryAfterCapacity)
	case cfg.Retry.BaseDelay < 0:
		return nil, st, configErr("negative Retry.BaseDelay %v", cfg.Retry.BaseDelay)
	case cfg.Retry.MaxDelay < 0:
		return nil, st, configErr("negative Retry.MaxDelay %v", cfg.Retry.MaxDelay)
	}

	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12}
	if len(cfg.CABundlePEM) > 0 {
		pool, err := parseCABundle(cfg.CABundlePEM)
		if err != nil {
			return nil, st, err
		}
		tlsConf.RootCAs = pool
	}
	switch hasCert, hasKey := len(cfg.ClientCertPEM) > 0, len(cfg.ClientKeyPEM) > 0; {
	case hasCert && hasKey:
		pair, err := tls.X509KeyPair(cfg.ClientCertPEM, cfg.ClientKeyPEM)
		if err != nil {
			return nil, st, fmt.Errorf("%w: client certificate: %w", ErrConfig, err)
		}
		tlsConf.Certificates = []tls.Certificate{pair}
	case hasCert:
		return nil, st, configErr("client certificate without a key")
	case hasKey:
		return nil, st, configErr("client key without a certificate")
	}

	idle := cmp.Or(cfg.MaxIdleConnsPerHost, DefaultMaxIdleConnsPerHost)
	timeout := cmp.Or(cfg.Timeout, DefaultTimeout)
	if dial == nil {
		dial = (&net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}).DialContext
	}
	tr := &http.Transport{
		Proxy:                 cfg.Proxy, // nil: direct, never the environment
		DialContext:           dial,
		TLSClientConfig:       tlsConf,
		TLSHandshakeTimeout:   timeout,
		ResponseHeaderTimeout: timeout,
		ExpectContinueTimeout: time.Second,
		MaxIdleConnsPerHost:   idle,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
	}

	st = settings{
		maxRetries:         cmp.Or(cfg.Retry.MaxRetries, DefaultMaxRetries),
		baseDelay:          cmp.Or(cfg.Retry.BaseDelay, DefaultBaseDelay),
		maxDelay:           cmp.Or(cfg.Retry.MaxDelay, DefaultMaxDelay),
		retryNonIdempotent: cfg.Retry.RetryNonIdempotent,
		retryAfterCapacity: cmp.Or(cfg.RetryAfterCapacity, DefaultRetryAfterCapacity),
		logger:             cfg.Logger,
	}
	if st.maxRetries < 0 {
		st.maxRetries = 0
	}
	if st.logger == nil {
		st.logger = slog.New(slog.DiscardHandler)
	}
	return tr, st, nil
}

// parseCABundle parses every CERTIFICATE block of a PEM bundle. Text between
// blocks is ignored; a bundle without certificates, a block of another type or a
// certificate that does not parse is a configuration error.
func parseCABundle(bundle []byte) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	n := 0
	for rest := bundle; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, configErr("CA bundle: unexpected PEM block %q", block.Type)
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: CA bundle: certificate %d: %w", ErrConfig, n+1, err)
		}
		pool.AddCert(cert)
		n++
	}
	if n == 0 {
		return nil, configErr("CA bundle: no PEM certificate found")
	}
	return pool, nil
}
