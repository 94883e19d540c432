package dns

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"testing"

	mdns "github.com/miekg/dns"

	"github.com/alknet/alknet/core"
)

// countingReader counts what the stream logic reads.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// FuzzStreamFraming feeds arbitrary bytes as one DoQ stream's whole content to the
// server's stream logic: it must return a protocol error or exactly one response
// (ID 0, a DNS message) or a recovered handler panic, never panic itself, never read
// more than the frame it announces plus the one byte that proves the FIN, and never
// buffer more than the announced length or what arrived.
func FuzzStreamFraming(f *testing.F) {
	q := new(mdns.Msg)
	q.SetQuestion("fuzz.example.", mdns.TypeTXT)
	q.Id = 0
	good, _ := q.Pack()
	framed := binary.BigEndian.AppendUint16(nil, uint16(len(good)))
	framed = append(framed, good...)
	f.Add(framed)
	f.Add(append(append([]byte{}, framed...), framed...))
	f.Add(framed[:len(framed)-3])
	f.Add([]byte{})
	f.Add([]byte{0})
	f.Add([]byte{0, 11, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{0xff, 0xff, 0, 0})
	f.Add([]byte{0, 14, 0, 0, 0x01, 0, 0, 1, 0, 0, 0, 0, 0, 0, 5, 'a'})
	f.Add([]byte{0, 12, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	ka := q.Copy()
	ka.SetEdns0(1232, false)
	ka.IsEdns0().Option = append(ka.IsEdns0().Option, &mdns.EDNS0_TCP_KEEPALIVE{Code: mdns.EDNS0TCPKEEPALIVE})
	kab, _ := ka.Pack()
	f.Add(append(binary.BigEndian.AppendUint16(nil, uint16(len(kab))), kab...))

	zone := newTestZone()
	h := mdns.HandlerFunc(func(w mdns.ResponseWriter, r *mdns.Msg) {
		if len(r.Question) > 0 && strings.EqualFold(r.Question[0].Name, "block.example.") {
			m := new(mdns.Msg)
			_ = w.WriteMsg(m.SetRcode(r, mdns.RcodeRefused)) // the fuzz handler never blocks
			return
		}
		zone.ServeDNS(w, r) // panics on a query without a question: recovered
	})
	s, err := NewServer(ServerConfig{Handler: h, Padding: true})
	if err != nil {
		f.Fatal(err)
	}
	conn := core.FromBidi(nopStream{}, ALPNDoQ, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 853})
	f.Fuzz(func(t *testing.T, data []byte) {
		cr := &countingReader{r: bytes.NewReader(data)}
		res := core.NewBudget("fuzz", -1, nil).Reservation()
		b, err := readStreamQuery(cr, res)
		if len(data) >= 2 {
			// The buffer is reserved before it is allocated: never past the announced
			// length, nor past twice what arrived plus one chunk.
			announced := int64(binary.BigEndian.Uint16(data))
			if got := res.Bytes(); got > announced || got > max(frameChunk, 2*int64(len(data))) {
				t.Fatalf("buffered %d bytes for a frame announcing %d with %d bytes sent", got, announced, len(data))
			}
		}
		if err != nil {
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("error %v does not wrap ErrProtocol", err)
			}
			return
		}
		if cr.n > len(data) || cr.n > 2+len(b)+1 {
			t.Fatalf("read %d bytes for a %d-byte frame", cr.n, len(b))
		}
		if len(data) < 2 || len(b) != int(binary.BigEndian.Uint16(data)) || len(b) != len(data)-2 || len(b) < minMessage {
			t.Fatalf("accepted %d bytes from a stream of %d", len(b), len(data))
		}
		resp, err := s.answerStream(b, conn)
		if err != nil {
			if !errors.Is(err, ErrProtocol) && !errors.Is(err, errHandlerPanic) {
				t.Fatalf("error %v does not wrap ErrProtocol", err)
			}
			return
		}
		if len(resp) < minMessage || len(resp) > maxMessage || resp[0] != 0 || resp[1] != 0 || resp[2]&0x80 == 0 {
			t.Fatalf("response % x is not a DoQ response", resp[:min(len(resp), 12)])
		}
	})
}

// nopStream is a stream with nothing on it, for a Connection the handler can ask for
// addresses.
type nopStream struct{}

func (nopStream) Read([]byte) (int, error)    { return 0, io.EOF }
func (nopStream) Write(p []byte) (int, error) { return len(p), nil }
func (nopStream) CloseWrite() error           { return nil }
func (nopStream) Close() error                { return nil }
