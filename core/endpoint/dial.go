package endpoint

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/core/tlsconf"
)

// Network selects how [Dial] reaches an endpoint.
type Network int

const (
	// NetworkQUIC dials QUIC over UDP only (the default).
	NetworkQUIC Network = iota
	// NetworkTCP dials TCP+TLS only.
	NetworkTCP
	// NetworkAuto dials QUIC first and, if it has not connected after FallbackDelay (or
	// failed sooner), TCP+TLS as well; the first to connect wins and the other is closed.
	NetworkAuto
)

// String returns "quic", "tcp+tls" or "auto".
func (n Network) String() string {
	switch n {
	case NetworkQUIC:
		return "quic"
	case NetworkTCP:
		return "tcp+tls"
	case NetworkAuto:
		return "auto"
	}
	return fmt.Sprintf("Network(%d)", int(n))
}

// Defaults of [DialOptions].
const (
	// DefaultFallbackDelay is how long NetworkAuto gives QUIC before also trying TCP+TLS.
	DefaultFallbackDelay = 300 * time.Millisecond
	// DefaultDialHandshakeTimeout bounds a dial's handshake.
	DefaultDialHandshakeTimeout = 5 * time.Second
)

// DialOptions configures [Dial].
type DialOptions struct {
	// TLS says how the client proves itself (Certificate) and verifies the server (Pin,
	// ServerName with CA verification, or VerifyServer). NextProtos is ignored: Dial
	// offers exactly the ALPN it is given. With Sessions (and Pin), a dial resumes the
	// TLS session an earlier dial got from the same pinned server, over QUIC or TCP+TLS
	// alike (an endpoint accepts its tickets on every listener) and for any ALPN, and
	// the connection keeps the identities that session's first handshake verified.
	TLS tlsconf.ClientOptions
	// Network selects QUIC, TCP+TLS or QUIC with fallback (default NetworkQUIC).
	Network Network
	// FallbackDelay is NetworkAuto's head start for QUIC (0: DefaultFallbackDelay).
	FallbackDelay time.Duration
	// HandshakeTimeout bounds the handshake (0: DefaultDialHandshakeTimeout); ctx may
	// end it sooner.
	HandshakeTimeout time.Duration
	// MaxIncomingStreams caps streams the server may open towards this client on QUIC
	// (0: DefaultMaxIncomingStreams; negative: none).
	MaxIncomingStreams int64
	// KeepAlivePeriod is the QUIC keep-alive interval (0: DefaultKeepAlivePeriod;
	// negative: none).
	KeepAlivePeriod time.Duration
	// MaxIdleTimeout closes a silent QUIC connection (0: DefaultMaxIdleTimeout).
	MaxIdleTimeout time.Duration
}

// ErrALPNRefused reports that the server does not serve the requested ALPN.
var ErrALPNRefused = errors.New("server refused the ALPN")

// DialError is returned by [Dial]; it names the network, address and ALPN.
type DialError struct {
	Network Network
	Addr    string
	ALPN    string
	Err     error
}

// Error names the network, address and ALPN, then the cause.
func (e *DialError) Error() string {
	return fmt.Sprintf("dial %s %s (ALPN %s): %v", e.Network, e.Addr, e.ALPN, e.Err)
}

// Unwrap returns the cause.
func (e *DialError) Unwrap() error { return e.Err }

// Dial connects to the endpoint at addr ("host:port") asking for alpn and returns the
// same [core.Connection] type handlers see: open streams with OpenBi, close with Close.
// Errors wrap [ErrALPNRefused] when the server does not serve alpn and
// tlsconf.ErrFingerprintMismatch when it is not the pinned server.
func Dial(ctx context.Context, addr, alpn string, opts DialOptions) (*core.Connection, error) {
	if alpn == "" {
		return nil, &DialError{Network: opts.Network, Addr: addr, ALPN: alpn, Err: errors.New("empty ALPN")}
	}
	topts := opts.TLS
	topts.NextProtos = []string{alpn}
	tlsConf, err := tlsconf.ClientConfig(topts)
	if err != nil {
		return nil, &DialError{Network: opts.Network, Addr: addr, ALPN: alpn, Err: err}
	}
	switch opts.Network {
	case NetworkQUIC:
		return dialQUIC(ctx, addr, alpn, tlsConf, &opts)
	case NetworkTCP:
		return dialTCP(ctx, addr, alpn, tlsConf, &opts)
	case NetworkAuto:
		return dialAuto(ctx, addr, alpn, tlsConf, &opts)
	}
	return nil, &DialError{Network: opts.Network, Addr: addr, ALPN: alpn, Err: errors.New("unknown network")}
}

func (o *DialOptions) handshakeTimeout() time.Duration {
	if o.HandshakeTimeout > 0 {
		return o.HandshakeTimeout
	}
	return DefaultDialHandshakeTimeout
}

func (o *DialOptions) quicConfig() *quic.Config {
	c := quicConfig(o.MaxIncomingStreams, o.MaxIdleTimeout, o.KeepAlivePeriod)
	c.HandshakeIdleTimeout = o.handshakeTimeout()
	return c
}

func dialQUIC(ctx context.Context, addr, alpn string, tlsConf *tls.Config, o *DialOptions) (*core.Connection, error) {
	ctx, cancel := context.WithTimeout(ctx, o.handshakeTimeout())
	defer cancel()
	qc, err := quic.DialAddr(ctx, addr, tlsConf, o.quicConfig())
	if err != nil {
		return nil, &DialError{Network: NetworkQUIC, Addr: addr, ALPN: alpn, Err: classifyDialErr(ctx, o, err)}
	}
	if got := qc.ConnectionState().TLS.NegotiatedProtocol; got != alpn {
		_ = qc.CloseWithError(quic.ApplicationErrorCode(core.CloseNormal), "")
		return nil, &DialError{Network: NetworkQUIC, Addr: addr, ALPN: alpn, Err: fmt.Errorf("%w: negotiated %q", ErrALPNRefused, got)}
	}
	return core.NewConnection(&quicSource{c: qc}, alpn), nil
}

func dialTCP(ctx context.Context, addr, alpn string, tlsConf *tls.Config, o *DialOptions) (*core.Connection, error) {
	ctx, cancel := context.WithTimeout(ctx, o.handshakeTimeout())
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, &DialError{Network: NetworkTCP, Addr: addr, ALPN: alpn, Err: err}
	}
	tc := tls.Client(c, tlsConf)
	if err := tc.HandshakeContext(ctx); err != nil {
		_ = c.Close()
		return nil, &DialError{Network: NetworkTCP, Addr: addr, ALPN: alpn, Err: classifyDialErr(ctx, o, err)}
	}
	if got := tc.ConnectionState().NegotiatedProtocol; got != alpn {
		_ = c.Close()
		return nil, &DialError{Network: NetworkTCP, Addr: addr, ALPN: alpn, Err: fmt.Errorf("%w: negotiated %q", ErrALPNRefused, got)}
	}
	return core.NewConnection(newTLSSource(tc), alpn), nil
}

// alertNoApplicationProtocol is TLS alert 120; QUIC carries it as CRYPTO_ERROR 0x178.
const alertNoApplicationProtocol = 120

// classifyDialErr adds ErrALPNRefused to handshake failures caused by ALPN, and says
// when the handshake timeout (rather than the caller's context) ended the dial.
func classifyDialErr(ctx context.Context, o *DialOptions, err error) error {
	var hsTimeout *quic.HandshakeTimeoutError
	if errors.As(err, &hsTimeout) || (errors.Is(err, context.DeadlineExceeded) && errors.Is(context.Cause(ctx), context.DeadlineExceeded)) {
		return fmt.Errorf("no handshake within %s: %w", o.handshakeTimeout(), err)
	}
	var te *quic.TransportError
	if errors.As(err, &te) && te.ErrorCode == quic.TransportErrorCode(0x100+alertNoApplicationProtocol) {
		return fmt.Errorf("%w: %w", ErrALPNRefused, err)
	}
	var ae tls.AlertError
	if errors.As(err, &ae) && ae == alertNoApplicationProtocol {
		return fmt.Errorf("%w: %w", ErrALPNRefused, err)
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "remote error" && oe.Err != nil && oe.Err.Error() == "tls: no application protocol" {
		return fmt.Errorf("%w: %w", ErrALPNRefused, err)
	}
	return err
}

type dialResult struct {
	conn *core.Connection
	err  error
}

func dialAuto(ctx context.Context, addr, alpn string, tlsConf *tls.Config, o *DialOptions) (*core.Connection, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	delay := o.FallbackDelay
	if delay <= 0 {
		delay = DefaultFallbackDelay
	}
	results := make(chan dialResult, 2)
	go func() {
		c, err := dialQUIC(ctx, addr, alpn, tlsConf, o)
		results <- dialResult{c, err}
	}()
	startTCP := func() {
		go func() {
			c, err := dialTCP(ctx, addr, alpn, tlsConf, o)
			results <- dialResult{c, err}
		}()
	}
	timer := time.NewTimer(delay)
	defer timer.Stop()
	running, tcpStarted := 1, false
	var errs []error
	for running > 0 {
		select {
		case <-timer.C:
			if !tcpStarted {
				tcpStarted = true
				running++
				startTCP()
			}
		case r := <-results:
			running--
			if r.err == nil {
				cancel()
				// Close a late winner of the other dial.
				go func(n int) {
					for range n {
						if l := <-results; l.conn != nil {
							l.conn.Close(core.CloseNormal, "")
						}
					}
				}(running)
				return r.conn, nil
			}
			errs = append(errs, r.err)
			if !tcpStarted {
				tcpStarted = true
				running++
				startTCP()
			}
		}
	}
	return nil, errors.Join(errs...)
}
