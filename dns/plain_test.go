package dns

import (
	"context"
	"testing"

	mdns "github.com/miekg/dns"
)

func startPlain(t *testing.T, h mdns.Handler) *PlainServer {
	t.Helper()
	p, err := ListenPlain(transportCtx(t), "127.0.0.1:0", h, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Shutdown(context.Background()); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return p
}

// Plain UDP answers that do not fit the client's size come back truncated with TC, and
// whole over TCP or with a large enough EDNS(0) size.
func TestPlainUDPTruncation(t *testing.T) {
	zone := newTestZone()
	s, err := NewServer(ServerConfig{Handler: zone})
	if err != nil {
		t.Fatal(err)
	}
	p := startPlain(t, s)
	ctx := transportCtx(t)
	udp := &mdns.Client{Net: "udp", UDPSize: 65535}
	tcp := &mdns.Client{Net: "tcp"}

	r, _, err := udp.ExchangeContext(ctx, txtQuery("small.example."), p.UDPAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	wantTXT(t, r, "hello small")

	big := txtQuery("big.example.")
	r, _, err = udp.ExchangeContext(ctx, big, p.UDPAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	if !r.Truncated || len(r.Answer) >= 40 {
		t.Fatalf("512-byte UDP answer: TC=%v with %d records, want truncated", r.Truncated, len(r.Answer))
	}
	r.Compress = true // as it came over the wire
	if n := r.Len(); n > mdns.MinMsgSize {
		t.Fatalf("truncated answer is %d bytes, over 512", n)
	}

	r, _, err = tcp.ExchangeContext(ctx, big, p.TCPAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	if r.Truncated || len(r.Answer) != 40 {
		t.Fatalf("TCP answer: TC=%v with %d records, want all 40", r.Truncated, len(r.Answer))
	}

	big.SetEdns0(8192, false)
	r, _, err = udp.ExchangeContext(ctx, big, p.UDPAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	if r.Truncated || len(r.Answer) != 40 {
		t.Fatalf("EDNS 8192 UDP answer: TC=%v with %d records, want all 40", r.Truncated, len(r.Answer))
	}
	if n := s.Stats().Plain.Responses["NOERROR"]; n != 4 {
		t.Fatalf("stats: %d plain NOERROR, want 4", n)
	}
}

// A panicking handler on the plain listener answers SERVFAIL and keeps serving.
func TestPlainHandlerPanic(t *testing.T) {
	s, err := NewServer(ServerConfig{Handler: newTestZone()})
	if err != nil {
		t.Fatal(err)
	}
	p := startPlain(t, s)
	ctx := transportCtx(t)
	c := &mdns.Client{Net: "tcp"}
	r, _, err := c.ExchangeContext(ctx, txtQuery("panic.example."), p.TCPAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	if r.Rcode != mdns.RcodeServerFailure {
		t.Fatalf("rcode %s, want SERVFAIL", mdns.RcodeToString[r.Rcode])
	}
	if st := s.Stats().Plain; st.InternalErrors != 1 || st.Total() != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestListenPlainErrors(t *testing.T) {
	if _, err := ListenPlain(context.Background(), "127.0.0.1:0", nil, nil); err == nil {
		t.Fatal("nil handler accepted")
	}
	p := startPlain(t, newTestZone())
	if _, err := ListenPlain(context.Background(), p.TCPAddr().String(), newTestZone(), nil); err == nil {
		t.Fatal("a taken address was bound twice")
	}
}
