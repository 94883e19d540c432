package dns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	mdns "github.com/miekg/dns"
)

// Limits of the plain listener.
const (
	// plainUDPSize is the largest UDP query the plain listener reads.
	plainUDPSize = 4096
	// plainTCPTimeout bounds reads and writes on a plain TCP connection.
	plainTCPTimeout = 5 * time.Second
	// plainMaxTCPQueries caps the queries on one plain TCP connection.
	plainMaxTCPQueries = 100
)

// PlainServer is a plain DNS listener on UDP and TCP (RFC 1035, RFC 7766) for local
// debugging with dig or kdig. It carries no encryption: bind it to loopback. Create it
// with [ListenPlain]; stop it with Shutdown or Close.
type PlainServer struct {
	udp, tcp *mdns.Server
	done     chan error // one result per server
}

// ListenPlain binds addr ("host:port"; port 0 picks one, the same for both unless that
// UDP port is taken) on UDP and TCP and serves h there until Shutdown. ctx bounds the binding
// only. UDP responses larger than the client's advertised EDNS(0) size (512 without
// EDNS) are truncated with TC set, so the client retries over TCP. Pass the [Server] as
// h to count these queries in its Stats. logger receives serve errors (nil: discard),
// never query names.
func ListenPlain(ctx context.Context, addr string, h mdns.Handler, logger *slog.Logger) (*PlainServer, error) {
	if h == nil {
		return nil, errors.New("dns: ListenPlain: nil handler")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dns: plain listener: %w", err)
	}
	// Reuse the TCP port for UDP when the caller let the system pick.
	udpAddr := addr
	if host, port, err := net.SplitHostPort(addr); err == nil && port == "0" {
		udpAddr = net.JoinHostPort(host, fmt.Sprint(ln.Addr().(*net.TCPAddr).Port))
	}
	pc, err := lc.ListenPacket(ctx, "udp", udpAddr)
	if err != nil && udpAddr != addr {
		pc, err = lc.ListenPacket(ctx, "udp", addr) // that UDP port is taken: any will do
	}
	if err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("dns: plain listener: %w", err)
	}
	th := truncating{h: h}
	p := &PlainServer{
		udp: &mdns.Server{PacketConn: pc, Handler: th, UDPSize: plainUDPSize},
		tcp: &mdns.Server{
			Listener: ln, Handler: th,
			ReadTimeout: plainTCPTimeout, WriteTimeout: plainTCPTimeout,
			IdleTimeout:   func() time.Duration { return plainTCPTimeout },
			MaxTCPQueries: plainMaxTCPQueries,
		},
		done: make(chan error, 2),
	}
	started := make(chan struct{}, 2)
	for _, s := range []*mdns.Server{p.udp, p.tcp} {
		s.NotifyStartedFunc = func() { started <- struct{}{} }
		go func() {
			err := s.ActivateAndServe()
			if err != nil {
				logger.Warn("dns: plain listener stopped", slog.String("error", err.Error()))
			}
			p.done <- err
		}()
	}
	for range 2 {
		select {
		case <-started:
		case err := <-p.done:
			_ = p.Close()
			return nil, fmt.Errorf("dns: plain listener: %w", err)
		}
	}
	return p, nil
}

// UDPAddr returns the bound UDP address.
func (p *PlainServer) UDPAddr() net.Addr { return p.udp.PacketConn.LocalAddr() }

// TCPAddr returns the bound TCP address.
func (p *PlainServer) TCPAddr() net.Addr { return p.tcp.Listener.Addr() }

// Shutdown stops both listeners and waits, until ctx ends, for their serve loops and
// connections to finish.
func (p *PlainServer) Shutdown(ctx context.Context) error {
	errs := []error{p.udp.ShutdownContext(ctx), p.tcp.ShutdownContext(ctx)}
	for range 2 {
		select {
		case <-p.done:
		case <-ctx.Done():
			errs = append(errs, ctx.Err())
			return errors.Join(errs...)
		}
	}
	return errors.Join(errs...)
}

// Close is Shutdown with a 5-second bound.
func (p *PlainServer) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return p.Shutdown(ctx)
}

// truncating wraps a handler so UDP answers fit the client's size.
type truncating struct{ h mdns.Handler }

func (t truncating) ServeDNS(w mdns.ResponseWriter, r *mdns.Msg) {
	if _, udp := w.RemoteAddr().(*net.UDPAddr); udp {
		size := mdns.MinMsgSize
		if opt := r.IsEdns0(); opt != nil {
			size = max(int(opt.UDPSize()), mdns.MinMsgSize)
		}
		w = &truncWriter{ResponseWriter: w, size: size}
	}
	t.h.ServeDNS(w, r)
}

type truncWriter struct {
	mdns.ResponseWriter
	size int
}

func (w *truncWriter) WriteMsg(m *mdns.Msg) error {
	m.Truncate(w.size)
	return w.ResponseWriter.WriteMsg(m)
}

// ServeDNS answers a plain query with the server's handler and counts it under Stats'
// Plain, so a *Server can be handed to [ListenPlain]. A handler panic is answered with
// SERVFAIL.
func (s *Server) ServeDNS(w mdns.ResponseWriter, r *mdns.Msg) {
	ts := s.stats.transport(transportPlain)
	defer func() {
		if rec := recover(); rec != nil {
			ts.internalErrors.Add(1)
			s.cfg.Logger.Error("dns: handler panic", slog.String("transport", transportPlain.String()), slog.Any("panic", rec))
			m := new(mdns.Msg)
			m.SetRcode(r, mdns.RcodeServerFailure)
			ts.count(mdns.RcodeServerFailure)
			_ = w.WriteMsg(m)
		}
	}()
	s.cfg.Handler.ServeDNS(&countingWriter{ResponseWriter: w, ts: ts}, r)
}

// countingWriter counts each response by rcode before it is sent, so a client that has
// its answer finds it counted.
type countingWriter struct {
	mdns.ResponseWriter
	ts *transportCounters
}

func (w *countingWriter) WriteMsg(m *mdns.Msg) error {
	w.ts.count(m.Rcode)
	return w.ResponseWriter.WriteMsg(m)
}
