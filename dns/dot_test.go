package dns

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/alknet/alknet/core/endpoint"
	"github.com/alknet/alknet/core/tlsconf"
)

// dialDoT opens a crypto/tls connection offering "dot" to the fixture's TCP+TLS twin.
func dialDoT(t *testing.T, f *dnsFixture) *tls.Conn {
	t.Helper()
	cfg, err := tlsconf.ClientConfig(tlsconf.ClientOptions{Pin: f.srv.Identity.Fingerprint, NextProtos: []string{ALPNDoT}})
	if err != nil {
		t.Fatal(err)
	}
	d := tls.Dialer{Config: cfg, NetDialer: &net.Dialer{Timeout: transportTimeout}}
	c, err := d.DialContext(transportCtx(t), "tcp", f.srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	tc := c.(*tls.Conn)
	if p := tc.ConnectionState().NegotiatedProtocol; p != ALPNDoT {
		t.Fatalf("negotiated %q", p)
	}
	_ = tc.SetDeadline(time.Now().Add(transportTimeout))
	return tc
}

// Pipelined queries on one DoT connection are answered by ID, the blocked one last.
func TestDoTPipelined(t *testing.T) {
	f := newDNSFixture(t, ServerConfig{})
	c := dialDoT(t, f)
	var batch []byte
	block := txtQuery("block.example.")
	block.Id = 100
	batch = append(batch, frame(pack(t, block))...)
	for i := range 10 {
		q := txtQuery(fmt.Sprintf("p%d.example.", i))
		q.Id = uint16(200 + i)
		batch = append(batch, frame(pack(t, q))...)
	}
	if _, err := c.Write(batch); err != nil {
		t.Fatal(err)
	}
	seen := map[uint16]bool{}
	for range 10 {
		b, err := readFrame(c)
		if err != nil {
			t.Fatal(err)
		}
		m := new(mdns.Msg)
		if err := m.Unpack(b); err != nil {
			t.Fatal(err)
		}
		i := int(m.Id) - 200
		if i < 0 || i >= 10 || seen[m.Id] {
			t.Fatalf("unexpected response ID %d before the blocked query was released", m.Id)
		}
		seen[m.Id] = true
		wantTXT(t, m, fmt.Sprintf("hello p%d", i))
	}
	close(f.zone.release) // the first query is answered last: out of order
	b, err := readFrame(c)
	if err != nil {
		t.Fatal(err)
	}
	m := new(mdns.Msg)
	if err := m.Unpack(b); err != nil || m.Id != 100 {
		t.Fatalf("last response %v (%v), want ID 100", m, err)
	}
	// The client closes its side: the server finishes and closes too.
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if rest, err := io.ReadAll(c); err != nil || len(rest) != 0 {
		t.Fatalf("after close: %d bytes, %v", len(rest), err)
	}
	if n := f.dns.Stats().DoT.Responses["NOERROR"]; n != 11 {
		t.Fatalf("stats: %d NOERROR over DoT, want 11", n)
	}
}

// The in-flight cap makes the server stop reading, not fail: the third query waits for a
// slot and is answered once one frees.
func TestDoTInFlightCap(t *testing.T) {
	f := newDNSFixture(t, ServerConfig{MaxStreamsPerConn: 2})
	c := dialDoT(t, f)
	var batch []byte
	for i := range 2 {
		q := txtQuery("block.example.")
		q.Id = uint16(i + 1)
		batch = append(batch, frame(pack(t, q))...)
	}
	q := txtQuery("third.example.")
	q.Id = 3
	batch = append(batch, frame(pack(t, q))...)
	if _, err := c.Write(batch); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		<-f.zone.entered
	}
	close(f.zone.release)
	ids := map[uint16]bool{}
	for range 3 {
		b, err := readFrame(c)
		if err != nil {
			t.Fatal(err)
		}
		ids[binary16(b)] = true
	}
	if len(ids) != 3 {
		t.Fatalf("responses %v, want IDs 1, 2, 3", ids)
	}
}

func binary16(b []byte) uint16 { return uint16(b[0])<<8 | uint16(b[1]) }

// A frame shorter than a header closes the connection; so does a quiet client after
// IdleTimeout and a frame that stalls past QueryTimeout.
func TestDoTLimits(t *testing.T) {
	f := newDNSFixture(t, ServerConfig{IdleTimeout: 100 * time.Millisecond, QueryTimeout: 100 * time.Millisecond})
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"short frame", frame(make([]byte, 11))},
		{"idle", nil},
		{"stalled frame", []byte{0, 30, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialDoT(t, f)
			if _, err := c.Write(tc.data); err != nil {
				t.Fatal(err)
			}
			rest, err := io.ReadAll(c)
			if len(rest) != 0 {
				t.Fatalf("server sent %d bytes", len(rest))
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatal("server did not close the connection")
			}
		})
	}
	if n := f.dns.Stats().DoT.ProtocolErrors; n != 2 {
		t.Fatalf("stats: %d DoT protocol errors, want 2 (short and stalled frames)", n)
	}
}

// The Client runs several exchanges over one DoT connection with real IDs; garbage gets
// FORMERR with the query's ID.
func TestDoTClient(t *testing.T) {
	f := newDNSFixture(t, ServerConfig{})
	ctx := transportCtx(t)
	conn := f.srv.Dial(t, ALPNDoT, nil, endpoint.NetworkTCP)
	cl := NewClient(conn)
	defer cl.Close()
	for i := range 3 {
		q := txtQuery(fmt.Sprintf("c%d.example.", i))
		q.Id = uint16(4242 + i)
		r, err := cl.Exchange(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if r.Id != q.Id {
			t.Fatalf("ID %d, want %d", r.Id, q.Id)
		}
		wantTXT(t, r, fmt.Sprintf("hello c%d", i))
	}

	c := dialDoT(t, f)
	garbage := []byte{0x12, 0x34, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 5, 'a'}
	if _, err := c.Write(frame(garbage)); err != nil {
		t.Fatal(err)
	}
	b, err := readFrame(c)
	if err != nil {
		t.Fatal(err)
	}
	m := new(mdns.Msg)
	if err := m.Unpack(b); err != nil || m.Id != 0x1234 || m.Rcode != mdns.RcodeFormatError {
		t.Fatalf("garbage answered %v (%v), want FORMERR with ID 0x1234", m, err)
	}
	if _, err := c.Write(frame(pack(t, txtQuery("panic.example.")))); err != nil {
		t.Fatal(err)
	}
	if b, err = readFrame(c); err != nil {
		t.Fatal(err)
	}
	if err := m.Unpack(b); err != nil || m.Rcode != mdns.RcodeServerFailure {
		t.Fatalf("panicking handler answered %v (%v), want SERVFAIL", m, err)
	}
}

// A stock DoT client: kdig +tls against the "dot" ALPN on the TCP+TLS twin.
func TestKdigTLS(t *testing.T) {
	f := newDNSFixture(t, ServerConfig{})
	host, port, err := net.SplitHostPort(f.srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	out := kdig(t, "+tls", "@"+host, "-p", port, "kdig.example.", "TXT")
	if !strings.Contains(out, "NOERROR") || !strings.Contains(out, `"hello kdig"`) {
		t.Fatalf("kdig +tls output lacks the answer:\n%s", out)
	}
	if n := f.dns.Stats().DoT.Responses["NOERROR"]; n != 1 {
		t.Fatalf("stats: %d DoT NOERROR, want 1", n)
	}
}
