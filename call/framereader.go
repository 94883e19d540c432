package call

// Buffered reading of a stream that carries many frames in a row — the shared stream
// of a single-stream connection, the stream of a subscription this side made: one
// Read brings in many frames, and the subscription events among them are queued for
// their consumers a batch at a time, copied out of the buffer without building an
// envelope. Every other frame is copied exactly and routed as ReadFrameBudget's
// frames are, with the same errors and the same budget.

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/alknet/alknet/core"
)

// frameReadBuffer is the read buffer of a buffered stream; longer frames are read
// past it.
const frameReadBuffer = 16 << 10

// eventSlab is the size of the blocks subscription events are copied into (an event
// longer than eventSlabMax gets its own). A block lives as long as any event in it.
const (
	eventSlab    = 4 << 10
	eventSlabMax = 512
)

// reserveReadBuffer gives fs its frameReader, whose buffer it reserves in the
// connection's budget first; readLoop releases it when reading ends (releaseReadBuffer).
// A budget that cannot hold the buffer gives an error wrapping its
// [*core.BudgetError], and fs is left without a reader.
func (c *Conn) reserveReadBuffer(fs *frameStream) error {
	if err := c.budget.Reserve(frameReadBuffer); err != nil {
		return fmt.Errorf("call: read buffer of a stream (%d bytes): %w", frameReadBuffer, err)
	}
	if c.budget != nil {
		fs.frHeld = frameReadBuffer
	}
	fs.fr = newFrameReader(fs.s)
	return nil
}

// releaseReadBuffer returns what fs's read buffer holds reserved to the budget; the
// buffer is no longer read.
func (c *Conn) releaseReadBuffer(fs *frameStream) {
	c.budget.Release(fs.frHeld)
	fs.frHeld = 0
	fs.fr = nil // no longer charged: let the buffer go even while fs is still reachable
}

// frameReader reads frames through a buffer.
type frameReader struct {
	r    io.Reader
	buf  []byte
	i, n int // buf[i:n] is read and not consumed
}

func newFrameReader(r io.Reader) *frameReader {
	return &frameReader{r: r, buf: make([]byte, frameReadBuffer)}
}

// complete reports whether a whole frame is buffered, so that next will not read. A
// header announcing more than is buffered (more than the buffer holds included)
// reports false, so that queued events are delivered before next waits for bytes.
func (fr *frameReader) complete() bool {
	if fr.n-fr.i < 4 {
		return false
	}
	size := binary.BigEndian.Uint32(fr.buf[fr.i:])
	return uint64(size) <= uint64(fr.n-fr.i-4)
}

// fill reads at least one more byte into the buffer, moving what is unread to its
// start first.
func (fr *frameReader) fill() error {
	if fr.i > 0 {
		fr.n = copy(fr.buf, fr.buf[fr.i:fr.n])
		fr.i = 0
	}
	for {
		k, err := fr.r.Read(fr.buf[fr.n:])
		fr.n += k
		if k > 0 {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// next returns the next frame's body: a view of the buffer, valid until the next
// call (owned is false), or, for a body longer than the buffer, a buffer read through
// readBody and reserved in b (owned is true). reserved is what stays reserved in b for
// the body: a view whose bytes had to be waited for was reserved (its length) first,
// as ReadFrameBudget reserves before it reads. Its errors are ReadFrameBudget's; exact
// is readBody's.
func (fr *frameReader) next(max int, b *core.Budget, exact int) (body []byte, owned bool, reserved int64, err error) {
	limit := frameLimit(max)
	for fr.n-fr.i < 4 {
		if err := fr.fill(); err != nil {
			switch {
			case err == io.EOF && fr.n == fr.i:
				return nil, false, 0, errCleanEOF
			case err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF):
				return nil, false, 0, fmt.Errorf("%w: truncated frame length: %w", ErrClosed, io.ErrUnexpectedEOF)
			}
			return nil, false, 0, fmt.Errorf("call: read frame length: %w", err)
		}
	}
	n := binary.BigEndian.Uint32(fr.buf[fr.i:])
	if n == 0 {
		return nil, false, 0, fmt.Errorf("%w: zero-length frame", ErrFrameInvalid)
	}
	if uint64(n) > uint64(limit) {
		return nil, false, 0, &frameSizeError{fmt.Sprintf("%v: frame length %d exceeds the limit of %d bytes", ErrFrameInvalid, n, limit)}
	}
	size := int(n)
	if size > len(fr.buf)-4 {
		rest := fr.buf[fr.i+4 : fr.n]
		fr.i, fr.n = 0, 0
		body, err := readBody(io.MultiReader(bytes.NewReader(rest), fr.r), size, b, exact)
		if err != nil {
			return nil, false, 0, err
		}
		if b != nil {
			reserved = int64(cap(body))
		}
		return body, true, reserved, nil
	}
	if fr.n-fr.i-4 < size {
		// The body is still to come: reserve it before waiting for it, as
		// ReadFrameBudget does (the caller releases it or keeps it for its copy).
		if err := b.Reserve(int64(size)); err != nil {
			return nil, false, 0, fmt.Errorf("call: read frame body: %w", err)
		}
		if b != nil {
			reserved = int64(size)
		}
	}
	for fr.n-fr.i-4 < size {
		if err := fr.fill(); err != nil {
			b.Release(reserved)
			if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
				return nil, false, 0, fmt.Errorf("%w: truncated frame body (%d of %d bytes): %w", ErrClosed, fr.n-fr.i-4, size, io.ErrUnexpectedEOF)
			}
			return nil, false, 0, fmt.Errorf("call: read frame body: %w", err)
		}
	}
	body = fr.buf[fr.i+4 : fr.i+4+size]
	fr.i += 4 + size
	return body, false, reserved, nil
}

// eventBatch gathers the events of one subscription read from a buffered stream
// until the stream must be read again, or another frame comes.
type eventBatch struct {
	p    *pendingCall
	evs  []json.RawMessage
	slab []byte
}

// readBuffered returns the next envelope of a buffered stream that is not an event
// of one of this side's subscriptions; those it queues in batch, delivering the
// batch before it reads from the stream, before it returns an envelope or an error,
// and when another subscription's event comes.
func (c *Conn) readBuffered(fs *frameStream, batch *eventBatch) (Envelope, int64, error) {
	fr := fs.fr
	for {
		if !fr.complete() {
			c.flushEvents(batch)
		}
		body, owned, reserved, err := fr.next(c.frameMax, c.budget, c.exactBody())
		if err != nil {
			c.flushEvents(batch)
			return Envelope{}, 0, err
		}
		if !owned && reserved == 0 {
			// The body is reserved as ReadFrameBudget reserves it (already, when
			// next had to wait for it), events included, so that a frame over the
			// budget fails here exactly as it does there.
			if err := c.budget.Reserve(int64(len(body))); err != nil {
				c.flushEvents(batch)
				return Envelope{}, 0, fmt.Errorf("call: read frame body: %w", err)
			}
			if c.budget != nil {
				reserved = int64(len(body))
			}
		}
		if !owned && c.queueEvent(batch, body) {
			c.budget.Release(reserved)
			continue
		}
		c.flushEvents(batch)
		if !owned {
			body = bytes.Clone(body) // an exact copy the envelope may keep
		}
		env, err := decodeEnvelope(body, false)
		if err != nil {
			c.budget.Release(reserved)
			return Envelope{}, 0, err
		}
		return env, reserved, nil
	}
}

// queueEvent adds body to batch when it is a call.responded of one of this side's
// live subscriptions in the plain form plainResponded reads, copying the output out
// of the read buffer; otherwise it reports false and the frame takes the general
// path.
func (c *Conn) queueEvent(batch *eventBatch, body []byte) bool {
	id, out, ok := plainResponded(body)
	if !ok {
		return false
	}
	p := batch.p
	if p == nil || p.id != string(id) {
		c.mu.Lock()
		p = c.pending[string(id)]
		c.mu.Unlock()
		if p == nil || !p.sub {
			return false
		}
	}
	if batch.p != p {
		c.flushEvents(batch)
		batch.p = p
	}
	var ev []byte
	if len(out) > eventSlabMax {
		ev = bytes.Clone(out)
	} else {
		if cap(batch.slab)-len(batch.slab) < len(out) {
			batch.slab = make([]byte, 0, eventSlab)
		}
		k := len(batch.slab)
		batch.slab = append(batch.slab, out...)
		ev = batch.slab[k:len(batch.slab):len(batch.slab)]
	}
	batch.evs = append(batch.evs, ev)
	return true
}

// flushEvents delivers batch to its subscription: waiting for room when it has a
// stream of its own (QUIC), ending the subscription when its buffer overflows on a
// shared stream.
func (c *Conn) flushEvents(batch *eventBatch) {
	p := batch.p
	if p == nil {
		return
	}
	batch.p = nil
	ok := p.events.deliver(batch.evs, p.stream != nil, p.quit)
	clear(batch.evs)
	batch.evs = batch.evs[:0]
	if !ok {
		c.overflow(p)
	}
}

// respondedHead and respondedMid frame the id of a call.responded envelope in the
// form this package (and serde's derive) writes.
const (
	respondedHead = `{"type":"` + EvResponded + `","id":"`
	respondedMid  = `","payload":{"output":`
)

// plainResponded reads body as {"type":"call.responded","id":"<id>","payload":{"output":<out>}}
// with nothing else in it and no white space outside out, an id of printable ASCII
// without escapes, and out one valid JSON value: then body is a valid envelope whose
// decoding (DecodeEnvelope, then ParseResponded) gives that id and out, found here
// without scanning body three times. ok is false for any other form, valid or not,
// which the general path decodes.
func plainResponded(body []byte) (id, out []byte, ok bool) {
	if len(body) < len(respondedHead)+len(respondedMid)+3 || string(body[:len(respondedHead)]) != respondedHead {
		return nil, nil, false
	}
	rest := body[len(respondedHead):]
	k := 0
	for k < len(rest) && plainByte[rest[k]] {
		k++
	}
	if len(rest)-k < len(respondedMid)+3 || string(rest[k:k+len(respondedMid)]) != respondedMid {
		return nil, nil, false
	}
	id = rest[:k]
	out = rest[k+len(respondedMid) : len(rest)-2]
	if string(rest[len(rest)-2:]) != "}}" || !validPayload(out) {
		return nil, nil, false
	}
	out = trimSpace(out)
	return id, out, true
}

// plainByte marks the bytes a string token may hold without escaping or decoding:
// printable ASCII but the quote and the backslash.
var plainByte = func() (t [256]bool) {
	for c := 0x20; c < 0x7f; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// trimSpace drops JSON white space around v.
func trimSpace(v []byte) []byte {
	i, j := 0, len(v)
	for i < j && isSpace(v[i]) {
		i++
	}
	for j > i && isSpace(v[j-1]) {
		j--
	}
	return v[i:j]
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
