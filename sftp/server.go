package sftp

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	pkgsftp "github.com/pkg/sftp"

	"github.com/alknet/alknet/core"
)

// Server serves SFTP v3 over the exports of its Config, on the raw ALPN alknet/sftp
// (Handle) and as an SSH subsystem (ServeSubsystem), through pkg/sftp's request
// server. It is safe for concurrent use.
type Server struct {
	cfg atomic.Pointer[Config]

	mu       sync.Mutex
	sessions map[string]int // open sessions per identity id

	stats sftpCounters
}

// NewServer returns a server for cfg.
func NewServer(cfg Config) (*Server, error) {
	s := &Server{sessions: make(map[string]int)}
	if err := s.Reload(cfg); err != nil {
		return nil, err
	}
	return s, nil
}

// Reload replaces the configuration for new sessions; open sessions keep theirs.
func (s *Server) Reload(cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	c := cfg
	c.Exports = append([]Export(nil), cfg.Exports...)
	c.Limits = cfg.Limits.withDefaults()
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	s.cfg.Store(&c)
	return nil
}

// ALPN reports "alknet/sftp".
func (s *Server) ALPN() string { return ALPN }

// Handle serves one alknet/sftp connection: SFTP packets on its first bidirectional
// stream, as the identity the endpoint resolved from the client certificate. A
// connection without one is closed with core.CloseAuthRequired and the reason
// "unauthenticated: ...", before any packet is read, and Handle returns an error
// wrapping ErrUnauthenticated and core.ErrAuthRequired (the endpoint then writes the
// shared auth failure line).
func (s *Server) Handle(ctx context.Context, conn *core.Connection, auth core.AuthContext) error {
	if auth.Identity == nil {
		conn.Close(core.CloseAuthRequired, "unauthenticated: alknet/sftp needs a client certificate of a known peer")
		return fmt.Errorf("%w: %w: no known client certificate", core.ErrAuthRequired, ErrUnauthenticated)
	}
	id := auth.Identity.Clone()
	release, err := s.acquire(id.ID)
	if err != nil {
		conn.Close(core.CloseLimitExceeded, err.Error())
		return err
	}
	defer release()
	done := conn.Busy() // the session's own idle timeout applies, not the endpoint's
	defer done()
	st, err := conn.AcceptBi(ctx)
	if err != nil {
		if errors.Is(err, core.ErrConnectionClosed) {
			return nil
		}
		return err
	}
	transport := "quic"
	if conn.SingleStream() {
		transport = "tls"
	}
	defer st.Close()
	err = s.serve(ctx, st, id, transport, conn.RemoteAddr())
	_ = st.CloseWrite()
	if errors.Is(err, ErrBadMessage) {
		// The answer to the bad packet is written: a clean close lets the client read
		// it (the session line has the outcome).
		return nil
	}
	return err
}

// ServeSubsystem serves the SSH subsystem "sftp" on ch as id until the client ends
// the session. The assembly layer plugs it into ssh.Config.Subsystems with a one-line
// adapter. ch is the session channel: ServeSubsystem closes it only to end a session
// early (idle timeout, ctx cancelled); otherwise the caller closes it, after sending an
// exit status.
func (s *Server) ServeSubsystem(ctx context.Context, ch io.ReadWriteCloser, id core.Identity) error {
	release, err := s.acquire(id.ID)
	if err != nil {
		return err
	}
	defer release()
	return s.serve(ctx, ch, id.Clone(), "ssh", nil)
}

// acquire takes one of id's session slots.
func (s *Server) acquire(id string) (release func(), err error) {
	limit := s.cfg.Load().Limits.MaxSessionsPerIdentity
	s.mu.Lock()
	defer s.mu.Unlock()
	if limit > 0 && s.sessions[id] >= limit {
		s.stats.refused.Add(1)
		return nil, fmt.Errorf("%w (limit %d)", ErrTooManySessions, limit)
	}
	s.sessions[id]++
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			if s.sessions[id]--; s.sessions[id] <= 0 {
				delete(s.sessions, id)
			}
		})
	}, nil
}

// serve runs one session over rwc.
func (s *Server) serve(ctx context.Context, rwc io.ReadWriteCloser, id core.Identity, transport string, remote net.Addr) error {
	cfg := s.cfg.Load()
	sess := newSession(cfg, id)
	defer sess.close()
	log := cfg.Logger
	start := time.Now()
	attrs := []slog.Attr{slog.String("identity", id.ID), slog.String("transport", transport)}
	if remote != nil {
		attrs = append(attrs, slog.String("remote", remote.String()))
	}
	log.LogAttrs(ctx, slog.LevelInfo, "sftp session opened", attrs...)
	s.stats.active.Add(1)
	defer s.stats.active.Add(-1)

	w := &wire{rwc: rwc, maxPacket: cfg.Limits.MaxPacketSize}
	rs := pkgsftp.NewRequestServer(w, sess.handlers(), pkgsftp.WithStartDirectory(sess.startDir()))
	var idle atomic.Bool
	if d := cfg.Limits.IdleTimeout; d > 0 {
		w.idle = time.AfterFunc(d, func() {
			idle.Store(true)
			_ = w.rwc.Close()
		})
		w.idleFor = d
	}
	var cancelled atomic.Bool
	stop := context.AfterFunc(ctx, func() {
		cancelled.Store(true)
		_ = w.rwc.Close()
	})
	err := rs.Serve()
	stop()
	if w.idle != nil {
		w.idle.Stop()
	}

	outcome := "ok"
	switch {
	case idle.Load():
		outcome, err = "idle_timeout", ErrIdleTimeout
	case errors.Is(err, ErrPacketTooLarge):
		outcome = "packet_too_large"
	case cancelled.Load():
		outcome, err = "closed", nil // the connection went away, or the node shuts down
	case err == nil, errors.Is(err, io.EOF):
		err = nil
	case errors.Is(err, net.ErrClosed), errors.Is(err, core.ErrConnectionClosed), errors.Is(err, core.ErrStreamClosed):
		outcome, err = "closed", nil
	case w.closed.Load():
		// pkg/sftp could not parse a packet: answer it, where its id arrived, then end.
		outcome = "bad_message"
		code := uint32(5) // SSH_FX_BAD_MESSAGE
		if strings.Contains(err.Error(), "unhandled packet type") {
			code = 8 // SSH_FX_OP_UNSUPPORTED
		}
		w.status(code, "bad message")
		err = fmt.Errorf("%w: %w", ErrBadMessage, err)
	default:
		outcome = "error"
	}
	sess.mu.Lock()
	exports := make([]string, 0, len(sess.touched))
	for name := range sess.touched {
		exports = append(exports, name)
	}
	sess.mu.Unlock()
	sort.Strings(exports)
	s.stats.end(outcome, w.in.Load(), w.out.Load(), sess.filesRead.Load(), sess.filesWritten.Load())
	attrs = append(attrs,
		slog.Any("exports", exports),
		slog.Int64("files_read", sess.filesRead.Load()),
		slog.Int64("files_written", sess.filesWritten.Load()),
		slog.Int64("bytes_in", w.in.Load()),
		slog.Int64("bytes_out", w.out.Load()),
		slog.String("outcome", outcome),
		slog.Duration("duration", time.Since(start)))
	if err != nil {
		attrs = append(attrs, slog.String("error", err.Error()))
	}
	log.LogAttrs(context.WithoutCancel(ctx), slog.LevelInfo, "sftp session closed", attrs...)
	return err
}

// wire is a session's byte stream: it counts bytes, restarts the idle timer on every
// read and checks each packet's length prefix against the limit before pkg/sftp
// allocates for it.
type wire struct {
	rwc       io.ReadWriteCloser
	maxPacket int
	idle      *time.Timer
	idleFor   time.Duration
	in, out   atomic.Int64

	// framing state of the inbound packets (one reader: pkg/sftp's receive loop)
	hdr       [4]byte
	hdrN      int
	remaining uint64
	head      [5]byte // the current packet's type and id
	headN     int
	failed    error

	wmu    sync.Mutex  // one packet write at a time
	closed atomic.Bool // pkg/sftp asked to close (after a packet it could not parse)
}

func (w *wire) Read(p []byte) (int, error) {
	if w.failed != nil {
		return 0, w.failed
	}
	n, err := w.rwc.Read(p)
	if n > 0 {
		w.in.Add(int64(n))
		if w.idle != nil {
			w.idle.Reset(w.idleFor)
		}
		if ferr := w.frame(p[:n]); ferr != nil {
			w.failed = ferr
			return 0, ferr
		}
	}
	return n, err
}

// frame follows the packet boundaries in b.
func (w *wire) frame(b []byte) error {
	for len(b) > 0 {
		if w.remaining > 0 {
			if w.headN < len(w.head) {
				w.headN += copy(w.head[w.headN:], b[:min(uint64(len(b)), w.remaining)])
			}
			k := min(uint64(len(b)), w.remaining)
			w.remaining -= k
			b = b[k:]
			continue
		}
		k := copy(w.hdr[w.hdrN:], b)
		w.hdrN += k
		b = b[k:]
		if w.hdrN < 4 {
			return nil
		}
		w.hdrN = 0
		n := binary.BigEndian.Uint32(w.hdr[:])
		if int64(n) > int64(w.maxPacket) {
			return fmt.Errorf("%w: %d bytes, limit %d", ErrPacketTooLarge, n, w.maxPacket)
		}
		w.remaining = uint64(n)
		w.headN = 0
	}
	return nil
}

// status answers the last packet with an SSH_FXP_STATUS of code, when its id arrived.
func (w *wire) status(code uint32, msg string) {
	if w.headN < len(w.head) {
		return
	}
	p := binary.BigEndian.AppendUint32(nil, uint32(1+4+4+4+len(msg)+4))
	p = append(p, 101) // SSH_FXP_STATUS
	p = append(p, w.head[1:5]...)
	p = binary.BigEndian.AppendUint32(p, code)
	p = binary.BigEndian.AppendUint32(p, uint32(len(msg)))
	p = append(p, msg...)
	p = binary.BigEndian.AppendUint32(p, 0) // language tag
	_, _ = w.Write(p)
}

func (w *wire) Write(p []byte) (int, error) {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	n, err := w.rwc.Write(p)
	w.out.Add(int64(n))
	return n, err
}

// Close is pkg/sftp's, after a packet it could not parse (its receive loop has ended
// then): serve answers the packet and the stream's owner closes it. The server's own
// ends (idle timeout, ctx) close the stream itself.
func (w *wire) Close() error {
	w.closed.Store(true)
	return nil
}
