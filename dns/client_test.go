package dns

import (
	"context"
	"errors"
	"io"
	"testing"

	mdns "github.com/miekg/dns"
	"github.com/quic-go/quic-go"

	"github.com/alknet/alknet/core"
	"github.com/alknet/alknet/core/coretest"
	"github.com/alknet/alknet/core/endpoint"
)

// fakeDoQ serves "doq" with a function that writes the raw response to each query. It
// reads the query frame and then up to the stream's end; rest is what followed the
// frame and err what ended the stream (nil for a FIN).
func fakeDoQ(t *testing.T, respond func(st core.BiStream, query, rest []byte, err error)) *coretest.Server {
	t.Helper()
	reg := core.NewRegistry()
	h := core.HandlerFunc(func(ctx context.Context, conn *core.Connection, _ core.AuthContext) error {
		return core.ServeStreams(ctx, conn, func(st core.BiStream) {
			defer st.Close()
			q, err := readFrame(st)
			var rest []byte
			if err == nil {
				rest, err = io.ReadAll(st)
			}
			respond(st, q, rest, err)
		})
	})
	if err := reg.RegisterAs(ALPNDoQ, h); err != nil {
		t.Fatal(err)
	}
	return coretest.NewServer(t, reg)
}

// answerBytes is the packed TXT answer to query with the given ID.
func answerBytes(t *testing.T, query []byte, id uint16) []byte {
	t.Helper()
	q := new(mdns.Msg)
	if err := q.Unpack(query); err != nil {
		t.Error(err)
		return nil
	}
	m := new(mdns.Msg)
	m.SetReply(q)
	m.Id = id
	return pack(t, m)
}

// The client refuses responses that break RFC 9250: a non-zero ID, a second message,
// a message cut short, and reports them as ErrProtocol.
func TestExchangeRejectsBadResponses(t *testing.T) {
	for _, tc := range []struct {
		name    string
		respond func(t *testing.T, st core.BiStream, q []byte)
	}{
		{"non-zero ID", func(t *testing.T, st core.BiStream, q []byte) {
			_, _ = st.Write(frame(answerBytes(t, q, 9)))
			_ = st.CloseWrite()
		}},
		{"two responses", func(t *testing.T, st core.BiStream, q []byte) {
			a := frame(answerBytes(t, q, 0))
			_, _ = st.Write(append(a, a...))
			_ = st.CloseWrite()
		}},
		{"cut short", func(t *testing.T, st core.BiStream, q []byte) {
			a := frame(answerBytes(t, q, 0))
			_, _ = st.Write(a[:len(a)-1])
			_ = st.CloseWrite()
		}},
		{"under a header", func(t *testing.T, st core.BiStream, q []byte) {
			_, _ = st.Write(frame(make([]byte, 5)))
			_ = st.CloseWrite()
		}},
		{"does not unpack", func(t *testing.T, st core.BiStream, q []byte) {
			_, _ = st.Write(frame([]byte{0, 0, 0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0, 9}))
			_ = st.CloseWrite()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := fakeDoQ(t, func(st core.BiStream, q, _ []byte, err error) {
				if err == nil {
					tc.respond(t, st, q)
				}
			})
			conn := srv.Dial(t, ALPNDoQ, nil, endpoint.NetworkQUIC)
			_, err := Exchange(transportCtx(t), conn, txtQuery("x.example."))
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("Exchange: %v, want ErrProtocol", err)
			}
		})
	}
}

// Exchange sends ID 0 and FIN, and leaves the caller's message as it was.
func TestExchangeWire(t *testing.T) {
	got := make(chan []byte, 1)
	srv := fakeDoQ(t, func(st core.BiStream, q, rest []byte, err error) {
		if len(rest) != 0 || err != nil {
			t.Errorf("client did not FIN after the query: %d more bytes, %v", len(rest), err)
			return
		}
		got <- q
		_, _ = st.Write(frame(answerBytes(t, q, 0)))
		_ = st.CloseWrite()
	})
	conn := srv.Dial(t, ALPNDoQ, nil, endpoint.NetworkQUIC)
	q := txtQuery("wire.example.")
	q.Id = 0xbeef
	r, err := Exchange(transportCtx(t), conn, q)
	if err != nil {
		t.Fatal(err)
	}
	if wire := <-got; wire[0] != 0 || wire[1] != 0 {
		t.Fatalf("query went out with ID %#x", uint16(wire[0])<<8|uint16(wire[1]))
	}
	if q.Id != 0xbeef || r.Id != 0xbeef {
		t.Fatalf("IDs: query %#x, response %#x; want the caller's 0xbeef on both", q.Id, r.Id)
	}
}

// Cancelling the context resets the stream with DOQ_REQUEST_CANCELLED.
func TestExchangeCancel(t *testing.T) {
	codes := make(chan error, 1)
	srv := fakeDoQ(t, func(st core.BiStream, _, _ []byte, err error) {
		codes <- err // the client's reset ends the stream
	})
	conn := srv.Dial(t, ALPNDoQ, nil, endpoint.NetworkQUIC)
	ctx, cancel := context.WithCancel(transportCtx(t))
	done := make(chan error, 1)
	go func() {
		_, err := NewClient(conn).Exchange(ctx, txtQuery("slow.example."))
		done <- err
	}()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Exchange: %v, want context.Canceled", err)
	}
	// The server sees either the query then the reset, or the reset alone.
	select {
	case err := <-codes:
		var se *quic.StreamError
		if err != nil && (!errors.As(err, &se) || se.ErrorCode != quic.StreamErrorCode(DoQRequestCancelled)) {
			t.Fatalf("server read %v, want a reset with DOQ_REQUEST_CANCELLED", err)
		}
	default:
	}
}

// A DoT client that failed stays failed; a closed one refuses further exchanges.
func TestDoTClientAfterFailure(t *testing.T) {
	f := newDNSFixture(t, ServerConfig{})
	conn := f.srv.Dial(t, ALPNDoT, nil, endpoint.NetworkTCP)
	cl := NewClient(conn)
	ctx, cancel := context.WithCancel(transportCtx(t))
	done := make(chan error, 1)
	go func() {
		_, err := cl.Exchange(ctx, txtQuery("block.example."))
		done <- err
	}()
	<-f.zone.entered
	cancel() // mid-exchange: the query was sent, its answer not read
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled exchange: %v, want context.Canceled", err)
	}
	if _, err := cl.Exchange(transportCtx(t), txtQuery("b.example.")); err == nil {
		t.Fatal("exchange on a failed DoT client succeeded")
	}
	if err := cl.Close(); err != nil {
		t.Fatal(err)
	}
}
