package dns

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/alknet/alknet/core"
)

// serveDoT serves DNS over TLS (RFC 7858, RFC 7766 framing) on the connection's one
// stream: queries may be pipelined, each is answered in its own goroutine under the
// MaxStreamsPerConn cap (past it the server stops reading), and responses are written
// as they complete, with the query's ID, one whole frame at a time. The connection ends
// when the client closes its side (after the answers in flight are written), starts no
// query within IdleTimeout, sends a frame shorter than a DNS header or takes longer
// than QueryTimeout to send one.
func (s *Server) serveDoT(ctx context.Context, conn *core.Connection) error {
	st, err := conn.AcceptBi(ctx)
	if err != nil {
		if errors.Is(err, core.ErrConnectionClosed) {
			return nil
		}
		return err
	}
	nc := core.NetConn(st, conn.LocalAddr(), conn.RemoteAddr())
	ts := s.stats.transport(transportDoT)

	var (
		wg  sync.WaitGroup
		wmu sync.Mutex // one response frame at a time
	)
	defer wg.Wait()
	write := func(b []byte) {
		wmu.Lock()
		defer wmu.Unlock()
		_ = nc.SetWriteDeadline(time.Now().Add(s.cfg.QueryTimeout))
		if err := writeFrame(nc, b); err != nil {
			_ = st.Close() // the reader then fails too and the connection ends
		}
	}
	slots := make(chan struct{}, s.cfg.MaxStreamsPerConn)
	for {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return nil
		}
		res := conn.Budget().Reservation()
		q, err := s.readDoTQuery(nc, res)
		if err != nil {
			res.Release()
			<-slots
			if errors.Is(err, errDoTDone) {
				wg.Wait()
				_ = st.CloseWrite()
				return nil
			}
			if errors.Is(err, ErrProtocol) {
				ts.protocolErrors.Add(1)
				s.cfg.Logger.Debug("dns: dot protocol error", slog.String("remote", addrString(conn.RemoteAddr())), slog.String("error", err.Error()))
				conn.Close(uint32(DoQProtocolError), err.Error())
				return fmt.Errorf("%w: %w", core.ErrConnectionClosed, err)
			}
			if errors.Is(err, core.ErrBudgetExceeded) {
				// Nothing to do but stop reading: the frame cannot be skipped unread.
				return fmt.Errorf("dns: dot query refused: %w", err)
			}
			return nil // the connection failed under us
		}
		wg.Go(func() {
			defer func() { <-slots }()
			defer res.Release()
			b, ok := s.answerDoT(q, conn)
			if ok {
				write(b)
			}
		})
	}
}

// errDoTDone ends a DoT connection cleanly: the client closed or idled.
var errDoTDone = errors.New("dns: dot connection done")

// readDoTQuery reads the next frame into a buffer reserved in res: the client may take
// IdleTimeout to start it and QueryTimeout to finish it.
func (s *Server) readDoTQuery(nc net.Conn, res *core.Reservation) ([]byte, error) {
	_ = nc.SetReadDeadline(time.Now().Add(s.cfg.IdleTimeout))
	var first [1]byte
	if _, err := io.ReadFull(nc, first[:]); err != nil {
		return nil, fmt.Errorf("%w: %w", errDoTDone, err)
	}
	_ = nc.SetReadDeadline(time.Now().Add(s.cfg.QueryTimeout))
	return readFrameIn(&prefixed{b: first[0], r: nc}, res)
}

// prefixed is a reader that yields one byte already read, then r.
type prefixed struct {
	b    byte
	used bool
	r    net.Conn
}

func (p *prefixed) Read(b []byte) (int, error) {
	if !p.used && len(b) > 0 {
		p.used = true
		b[0] = p.b
		return 1, nil
	}
	return p.r.Read(b)
}

// answerDoT answers one DoT query with its own ID, recovering a handler panic as
// SERVFAIL. It reports false when there is nothing to send.
func (s *Server) answerDoT(q []byte, conn *core.Connection) (b []byte, ok bool) {
	ts := s.stats.transport(transportDoT)
	defer func() {
		if r := recover(); r != nil {
			ts.internalErrors.Add(1)
			s.cfg.Logger.Error("dns: handler panic", slog.String("transport", transportDoT.String()), slog.Any("panic", r))
			m := new(mdns.Msg)
			if m.Unpack(q) == nil {
				b, ok = servFail(m, m.Id), true
			}
		}
	}()
	done := conn.Busy()
	defer done()
	out, err := s.answer(q, transportDoT, conn, false)
	return out, err == nil
}
