package call

// The write side of a Conn: the sink interface, the message-transport sink, and
// frameStream — one byte stream of length-prefixed frames, written directly or through
// a batching writer goroutine (enqueue, writeLoop), and finished or reset — and the
// encoding of a served subscription's events straight into the writer's batch.

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/alknet/alknet/core"
)

// sink writes envelopes to the peer.
type sink interface {
	send(ctx context.Context, env Envelope) error
	// shared reports whether every call of the connection uses this sink.
	isShared() bool
	close()
}

// messageSink sends over a message transport, one envelope per message.
type messageSink struct {
	mu sync.Mutex
	fn func(context.Context, Envelope) error
}

func (m *messageSink) send(ctx context.Context, env Envelope) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.fn(ctx, env)
}

func (*messageSink) isShared() bool { return true }
func (*messageSink) close()         {}

// frameStream is one byte stream carrying length-prefixed frames, with serialised
// writes and a count of inbound requests still answering on it.
type frameStream struct {
	c      *Conn
	s      core.BiStream
	shared bool
	fr     *frameReader // reads through a buffer (set before reading starts); nil: unbuffered
	// buffered marks a stream that readLoop reads through a frameReader it gives it
	// (the shared stream); frHeld is what fr's buffer holds reserved in the
	// connection's budget until reading ends.
	buffered bool
	frHeld   int64

	wmu sync.Mutex

	mu        sync.Mutex
	active    int  // inbound requests answering on this stream
	readDone  bool // the peer finished its side (or reading failed)
	wroteDone bool // CloseWrite was called
	closeOnce sync.Once

	// A batching writer (startWriter): senders append encoded frames to pend under
	// bmu, and the writer goroutine takes the whole batch and writes it at once.
	bmu     sync.Mutex
	pend    []byte        // frames waiting for the writer
	spare   []byte        // the buffer of the writer's last batch, for reuse
	finishQ bool          // finish the write side after pend
	room    chan struct{} // closed when the writer takes pend; nil while no sender waits
	wake    chan struct{} // one token: pend became non-empty, or finishQ was set
	stopW   chan struct{} // closed by close
	wdone   chan struct{} // closed when the writer has ended

	// reusable marks a stream this side opened for Queries and Mutations, one at a
	// time, and keeps open between them (guarded by Conn.mu with cur and dead).

	reusable bool
	cur      *pendingCall // the call using it
	dead     bool         // reading or writing failed: never reuse
	closed   atomic.Bool  // close ran (also from a write abandoned at a deadline)

	hasWriter atomic.Bool // a batching writer owns the stream's writes (startWriter)
}

func (c *Conn) newFrameStream(s core.BiStream, shared bool) *frameStream {
	return &frameStream{c: c, s: s, shared: shared, buffered: shared}
}

// send writes one frame. On a stream of its own (QUIC) it writes directly, and a write
// still blocked (the peer does not read) when ctx ends is abandoned by closing the
// stream. On the shared stream of a single-stream connection it hands the frame to the
// stream's writer, which batches frames into few writes: send returns once the frame
// is queued (or with ctx's error when the queue stays full until ctx ends); a write
// error ends the connection.
func (f *frameStream) send(ctx context.Context, env Envelope) error {
	if f.hasWriter.Load() {
		return f.enqueue(ctx, env)
	}
	if ctx.Done() == nil {
		return f.write(env)
	}
	stop := context.AfterFunc(ctx, f.abortWrite)
	err := f.write(env)
	if !stop() {
		// ctx ended during the write, or right after it: abortWrite has closed the
		// stream either way, so report the context's end even if the frame went out
		// (the caller then aborts the request elsewhere).
		return ctx.Err()
	}
	return err
}

// closeFlushTimeout bounds how long Close waits for a shared stream's writer to send
// what is queued.
const closeFlushTimeout = 2 * time.Second

// writeBatchMax is how many bytes of frames may wait for a stream's writer; a sender
// waits while that many are pending (one frame may take a batch past it).
const writeBatchMax = 64 << 10

// writeBatchFirst is the first capacity of a batch buffer.
const writeBatchFirst = 4 << 10

// startWriter gives the stream a batching writer: the shared stream of a single-stream
// connection from the start, and the stream of a subscription being served (so its
// events go out in few writes). It is a no-op when the stream has one already or is
// closed.
func (f *frameStream) startWriter() {
	f.mu.Lock()
	if f.hasWriter.Load() || f.closed.Load() {
		f.mu.Unlock()
		return
	}
	f.wake = make(chan struct{}, 1)
	f.stopW = make(chan struct{})
	f.wdone = make(chan struct{})
	f.hasWriter.Store(true)
	f.mu.Unlock()
	f.c.run(func() {
		defer close(f.wdone)
		f.writeLoop()
	})
}

// errWriterClosed is what a send to a stream whose writer ended (or was asked to
// finish) returns.
var errWriterClosed = fmt.Errorf("call: write frame: %w", core.ErrConnectionClosed)

// lockRoom locks bmu once the pending batch has room, waiting for the writer while
// it holds writeBatchMax bytes; it fails (bmu not held) when the stream closed or is
// finishing, or with ctx's error when ctx ends first.
func (f *frameStream) lockRoom(ctx context.Context) error {
	f.bmu.Lock()
	for {
		if f.finishQ || f.closed.Load() {
			f.bmu.Unlock()
			return errWriterClosed
		}
		if len(f.pend) < writeBatchMax {
			if f.pend == nil {
				f.pend = make([]byte, 0, writeBatchFirst)
			}
			return nil
		}
		if f.room == nil {
			f.room = make(chan struct{})
		}
		room := f.room
		f.bmu.Unlock()
		select {
		case <-room:
		case <-ctx.Done():
			return ctx.Err()
		case <-f.stopW:
			return errWriterClosed
		}
		f.bmu.Lock()
	}
}

// unlockAppended unlocks bmu after frames were appended to pend, waking the writer
// when pend was empty before (otherwise it has a wake token already, or is about to
// take the batch).
func (f *frameStream) unlockAppended(wasEmpty bool) {
	f.bmu.Unlock()
	if wasEmpty {
		f.signalWriter()
	}
}

func (f *frameStream) signalWriter() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// enqueue encodes env into the writer's pending batch.
func (f *frameStream) enqueue(ctx context.Context, env Envelope) error {
	if err := f.lockRoom(ctx); err != nil {
		return err
	}
	n := len(f.pend)
	var err error
	f.pend, err = appendOwnFrame(f.pend, env, f.c.d.maxFrame())
	f.unlockAppended(n == 0 && len(f.pend) > 0)
	return err
}

// enqueueResponded is enqueue(NewResponded(id, out)) for an out already validated
// (a stream handler's emit checked it), head being respondedFrameHead(id): no
// envelope is built and nothing is validated again.
func (f *frameStream) enqueueResponded(ctx context.Context, head []byte, out json.RawMessage) error {
	if err := f.lockRoom(ctx); err != nil {
		return err
	}
	n := len(f.pend)
	var err error
	f.pend, err = appendRespondedFrame(f.pend, head, out, f.c.d.maxFrame())
	f.unlockAppended(n == 0 && len(f.pend) > 0)
	return err
}

// sendResponded sends NewResponded(id, out) for an out already validated (the
// registry's output check) as send does, without building the envelope: encoded
// straight into the writer's batch, or into the buffer of one Write.
func (f *frameStream) sendResponded(ctx context.Context, id string, out json.RawMessage) error {
	head := respondedFrameHead(id)
	if f.hasWriter.Load() {
		return f.enqueueResponded(ctx, head, out)
	}
	if len(out) == 0 {
		out = json.RawMessage("null")
	}
	return f.writeDirect(ctx, func() error {
		return writeFrameParts(f.s, head, out, respondedTail, f.c.d.maxFrame())
	})
}

// sendRequest sends the request r as send sends an envelope. A request in parts (a
// large input) is encoded straight into the writer's batch, or into the buffer of one
// Write, without its envelope being built.
func (f *frameStream) sendRequest(ctx context.Context, r *outRequest) error {
	if r.head == nil {
		return f.send(ctx, r.env)
	}
	if f.hasWriter.Load() {
		if err := f.lockRoom(ctx); err != nil {
			return err
		}
		n := len(f.pend)
		var err error
		f.pend, err = r.appendFrame(f.pend, f.c.d.maxFrame())
		f.unlockAppended(n == 0 && len(f.pend) > 0)
		return err
	}
	return f.writeDirect(ctx, func() error {
		bp := getFrameBuf(r.size() + 4)
		buf, err := r.appendFrame((*bp)[:0], f.c.d.maxFrame())
		if err == nil {
			if _, werr := f.s.Write(buf); werr != nil {
				err = fmt.Errorf("call: write frame: %w", werr)
			}
		}
		putFrameBuf(bp, buf)
		return err
	})
}

// writeDirect runs write (one frame's Write) under the stream's write lock, as send
// writes on a stream without a writer: a write still blocked when ctx ends is
// abandoned by closing the stream, and ctx's error is returned.
func (f *frameStream) writeDirect(ctx context.Context, write func() error) error {
	locked := func() error {
		f.wmu.Lock()
		defer f.wmu.Unlock()
		return write()
	}
	if ctx.Done() == nil {
		return locked()
	}
	stop := context.AfterFunc(ctx, f.abortWrite)
	err := locked()
	if !stop() {
		return ctx.Err()
	}
	return err
}

// sendResponded sends NewResponded(id, out) on s, for an out already validated; on a
// byte stream without copying out into an envelope first.
func sendResponded(ctx context.Context, s sink, id string, out json.RawMessage) error {
	if fs, ok := s.(*frameStream); ok {
		return fs.sendResponded(ctx, id, out)
	}
	return s.send(ctx, NewResponded(id, out))
}

// requestFinish asks the writer to finish the write side after the frames pending.
func (f *frameStream) requestFinish() {
	f.bmu.Lock()
	already := f.finishQ
	f.finishQ = true
	f.bmu.Unlock()
	if !already {
		f.signalWriter()
	}
}

// writeLoop writes the pending frames, one batch per Write: whatever senders
// appended while the previous batch was being written. After a batch taken with
// finishQ set it finishes the write side.
func (f *frameStream) writeLoop() {
	for {
		select {
		case <-f.wake:
		case <-f.stopW:
			return
		}
		f.bmu.Lock()
		batch, finish := f.pend, f.finishQ
		f.pend, f.spare = f.spare[:0], nil
		if f.room != nil {
			close(f.room)
			f.room = nil
		}
		f.bmu.Unlock()

		var err error
		f.wmu.Lock()
		if len(batch) > 0 {
			if _, err = f.s.Write(batch); err != nil {
				err = fmt.Errorf("call: write frame: %w", err)
			}
		}
		if err == nil && finish {
			_ = f.s.CloseWrite()
		}
		f.wmu.Unlock()
		if cap(batch) <= 2*writeBatchMax {
			f.bmu.Lock()
			f.spare = batch[:0]
			f.bmu.Unlock()
		}
		if err != nil {
			f.c.log.Debug("call: write failed; closing the stream", "err", err)
			f.close()
			if f.shared {
				f.c.shutdown(err)
			}
			return
		}
		if finish {
			f.close()
			if f.shared {
				f.c.shutdown(nil)
			}
			return
		}
	}
}

// abortWrite fails a blocked write (through a past write deadline, which QUIC and TLS
// streams support) and closes the stream.
func (f *frameStream) abortWrite() {
	if d, ok := f.s.(interface{ SetWriteDeadline(time.Time) error }); ok {
		_ = d.SetWriteDeadline(time.Unix(1, 0))
	}
	f.close()
}

func (f *frameStream) write(env Envelope) error {
	f.wmu.Lock()
	defer f.wmu.Unlock()
	return writeFrame(f.s, env, f.c.d.maxFrame(), false)
}

func (f *frameStream) isShared() bool { return f.shared }

func (f *frameStream) close() {
	f.closeOnce.Do(func() {
		f.mu.Lock()
		f.closed.Store(true)
		stopW := f.stopW
		f.mu.Unlock()
		if stopW != nil {
			close(stopW)
		}
		_ = f.s.Close()
	})
}

// streamCanceler is a QUIC stream, which can be reset with an application error code.
type streamCanceler interface {
	CancelRead(quic.StreamErrorCode)
	CancelWrite(quic.StreamErrorCode)
}

// reset resets both directions of a QUIC stream with code (other streams are just
// closed) and closes it.
func (f *frameStream) reset(code uint32) {
	if sc, ok := f.s.(streamCanceler); ok {
		sc.CancelRead(quic.StreamErrorCode(code))
		sc.CancelWrite(quic.StreamErrorCode(code))
	}
	f.close()
}

// addActive counts an inbound request that will answer on f.
func (f *frameStream) addActive() {
	f.mu.Lock()
	f.active++
	f.mu.Unlock()
}

// doneActive uncounts one; when the peer has finished its side and nothing answers on
// the stream any more, this side finishes too.
func (f *frameStream) doneActive() {
	f.mu.Lock()
	f.active--
	finish := f.active == 0 && f.readDone
	f.mu.Unlock()
	if finish {
		f.finishWrite()
	}
}

// peerFinished records that reading ended; it finishes the write side when no
// inbound request still answers on the stream.
func (f *frameStream) peerFinished() {
	f.mu.Lock()
	f.readDone = true
	finish := f.active == 0
	f.mu.Unlock()
	if finish {
		f.finishWrite()
	}
}

func (f *frameStream) finishWrite() {
	f.mu.Lock()
	already := f.wroteDone
	f.wroteDone = true
	f.mu.Unlock()
	if f.hasWriter.Load() {
		// The writer finishes after the answers queued before this point.
		if !already {
			f.requestFinish()
		}
		return
	}
	if !already {
		f.wmu.Lock()
		_ = f.s.CloseWrite()
		f.wmu.Unlock()
	}
	f.close()
}

// respondedFrameHead is what the body of a call.responded envelope for id starts
// with, up to its output: {"type":"call.responded","id":<id>,"payload":{"output":
// A subscription encodes it once for all its events.
func respondedFrameHead(id string) []byte {
	const pre, post = `{"type":"` + EvResponded + `","id":`, `,"payload":{"output":`
	head := make([]byte, 0, len(pre)+len(id)+2+len(post)) // one allocation for a plain id
	head = append(head, pre...)
	head = appendJSONString(head, id)
	return append(head, post...)
}

// appendRespondedFrame appends the frame of NewResponded(id, out) to dst, where head
// is respondedFrameHead(id), with the limits of appendFrame, for an out known to be
// valid JSON (a stream handler's emit validated it): the bytes are those appendFrame
// writes, without the intermediate payload or a second validation. An empty out is
// written as null.
func appendRespondedFrame(dst, head []byte, out json.RawMessage, max int) ([]byte, error) {
	limit := frameLimit(max)
	if len(out) > limit {
		return dst, &frameSizeError{fmt.Sprintf("%v: frame body of more than %d bytes exceeds the limit of %d bytes", ErrFrameInvalid, len(out), limit)}
	}
	if len(out) == 0 {
		out = json.RawMessage("null")
	}
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	dst = append(dst, head...)
	dst = append(dst, out...)
	dst = append(dst, "}}"...)
	n := len(dst) - start - 4
	if n > limit {
		return dst[:start], &frameSizeError{fmt.Sprintf("%v: frame body of %d bytes exceeds the limit of %d bytes", ErrFrameInvalid, n, limit)}
	}
	binary.BigEndian.PutUint32(dst[start:], uint32(n))
	return dst, nil
}
