package ssh

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/alknet/alknet/core"
)

// Remote forwards (-R) on ALPNForward: the client opens a control stream with the
// header "listen <host> <port>\n" (a loopback address or "localhost"; port 0 for any
// free one). An identity with ScopeRemoteForward gets "ok <port>\n", the port bound on
// the node's loopback; others get a refusal. For as long as the control stream stays
// open, the node opens a stream to the client for every connection to that port, with
// the one line "forwarded <port>\n" and then the connection's bytes (half-close and
// resets as for the client's own streams). The client ending the control stream (or
// the connection) closes the listener; connections already forwarded go on.

// Reasons a Forwarder refuses a listen request with.
const (
	ReasonRemoteDenied     = "remote forward denied"
	ReasonTooManyListeners = "too many remote forwards"
	ReasonListenFailed     = "listen failed"
)

// maxForwardedLine bounds the "forwarded <port>" line a client reads.
const maxForwardedLine = len("forwarded 65535\n")

// listen serves a listen request on its control stream st (read through br) until
// the client ends it or ctx is done; it returns the outcome for the log line.
func (fc *forwardConn) listen(ctx context.Context, st core.BiStream, br io.Reader, host string, port uint16) string {
	if !fc.id.HasScope(ScopeRemoteForward) {
		fc.log.LogAttrs(ctx, slog.LevelInfo, "remote forward denied", slog.String("identity", fc.id.ID), slog.String("reason", "missing scope "+ScopeRemoteForward))
		fc.stats.remote.count(false)
		refuseStream(st, ReasonRemoteDenied)
		return ReasonRemoteDenied
	}
	bind, ok := loopbackBind(host)
	if !ok {
		fc.log.LogAttrs(ctx, slog.LevelInfo, "remote forward denied", slog.String("identity", fc.id.ID), slog.String("reason", "not a loopback address"))
		fc.stats.remote.count(false)
		refuseStream(st, ReasonRemoteDenied)
		return ReasonRemoteDenied
	}
	max := limit(fc.cfg.MaxRemoteForwards, DefaultMaxRemoteForwards)
	if fc.listeners.Add(1) > int64(max) {
		fc.listeners.Add(-1)
		fc.stats.remote.count(false)
		refuseStream(st, ReasonTooManyListeners)
		return ReasonTooManyListeners
	}
	defer fc.listeners.Add(-1)
	ln, err := net.Listen("tcp", net.JoinHostPort(bind, strconv.Itoa(int(port))))
	if err != nil {
		fc.stats.remote.count(false)
		refuseStream(st, ReasonListenFailed)
		return ReasonListenFailed
	}
	bound := ln.Addr().(*net.TCPAddr).Port
	fc.stats.remote.count(true)
	if _, err := io.WriteString(st, "ok "+strconv.Itoa(bound)+"\n"); err != nil {
		_ = ln.Close()
		resetStream(st)
		return "closed"
	}
	done := fc.conn.Busy()
	defer done()
	var wg sync.WaitGroup
	wg.Go(func() {
		acceptEach(ln, func(c net.Conn) { fc.forwardInbound(ctx, c, bound) })
	})
	stop := context.AfterFunc(ctx, func() { _ = ln.Close(); resetStream(st) })
	// The control stream carries nothing more: it ends when the client is done.
	_, _ = io.Copy(io.Discard, br)
	stop()
	_ = ln.Close()
	_ = st.Close()
	wg.Wait()
	return "ok"
}

// forwardInbound hands one connection to the remote listener on port to the client
// on a stream the node opens, and logs its line.
func (fc *forwardConn) forwardInbound(ctx context.Context, c net.Conn, port int) {
	start := time.Now()
	var up, down atomic.Int64
	outcome := "ok"
	st, err := fc.conn.OpenBi(ctx)
	if err != nil {
		_ = c.Close()
		outcome = "closed"
	} else if _, err := io.WriteString(st, "forwarded "+strconv.Itoa(port)+"\n"); err != nil {
		_ = c.Close()
		resetStream(st)
		outcome = "closed"
	} else {
		fc.stats.remoteConns.Add(1)
		fc.stats.active.Add(1)
		defer fc.stats.active.Add(-1)
		stop := context.AfterFunc(ctx, func() { _ = c.Close(); resetStream(st) })
		// up counts what the client sends, as for its own forwards.
		if !fc.pipe(st, st, c, &up, &down) {
			outcome = "closed"
		}
		stop()
	}
	fc.log.LogAttrs(ctx, slog.LevelInfo, "forward",
		slog.String("identity", fc.id.ID), slog.String("transport", fc.transport),
		slog.String("outcome", outcome), slog.String("direction", "remote"),
		slog.Int64("bytes_up", up.Load()), slog.Int64("bytes_down", down.Load()),
		slog.Duration("duration", time.Since(start)))
}

// ListenForward asks the node, over conn (an ALPNForward connection), for a remote
// forward listening on host:port of its loopback (port 0: any free port). It returns
// the control stream, which keeps the listener open until it is closed, and the port
// bound. The node then opens a stream per connection to that port (see
// AcceptForwarded). A refusal wraps ErrForwardRefused.
func ListenForward(ctx context.Context, conn *core.Connection, host string, port uint16) (io.Closer, uint16, error) {
	if _, err := ForwardHeader(host, max(port, 1)); err != nil {
		return nil, 0, err
	}
	st, err := conn.OpenBi(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("ssh: forward: open stream: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { resetStream(st) })
	reply, err := writeAndReadReply(st, "listen "+host+" "+strconv.Itoa(int(port))+"\n")
	if !stop() {
		return nil, 0, fmt.Errorf("ssh: forward: %w", context.Cause(ctx))
	}
	if err != nil {
		_ = st.Close()
		return nil, 0, err
	}
	if ps, ok := strings.CutPrefix(reply, "ok "); ok {
		p, err := strconv.ParseUint(ps, 10, 16)
		if err != nil || p == 0 {
			_ = st.Close()
			return nil, 0, fmt.Errorf("%w: malformed listen reply", ErrForwardHeader)
		}
		return st, uint16(p), nil
	}
	_ = st.Close()
	if err := parseForwardReply(reply); err != nil {
		return nil, 0, err
	}
	return nil, 0, fmt.Errorf("%w: listen reply without a port", ErrForwardHeader)
}

// AcceptForwarded reads the header of a stream the node opened on an ALPNForward
// connection and returns the remote-forward port it names; after it the stream
// carries the forwarded connection's bytes. An error wraps ErrForwardHeader.
func AcceptForwarded(st core.BiStream) (uint16, error) {
	var buf [maxForwardedLine]byte
	var b [1]byte
	for n := 0; ; n++ {
		if n == len(buf) {
			return 0, fmt.Errorf("%w: forwarded header too long", ErrForwardHeader)
		}
		if _, err := io.ReadFull(st, b[:]); err != nil {
			return 0, fmt.Errorf("%w: read forwarded header: %w", ErrForwardHeader, err)
		}
		if b[0] == '\n' {
			ps, ok := strings.CutPrefix(string(buf[:n]), "forwarded ")
			p, err := strconv.ParseUint(ps, 10, 16)
			if !ok || err != nil || p == 0 || ps[0] == '0' {
				return 0, fmt.Errorf("%w: malformed forwarded header", ErrForwardHeader)
			}
			return uint16(p), nil
		}
		buf[n] = b[0]
	}
}
