package call

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/alknet/alknet/core"
)

// ALPN is the protocol name of the call protocol.
const ALPN = "alknet/call"

// Envelope types (the "type" key).
const (
	// EvRequested starts a call or a subscription; sent by the caller.
	EvRequested = "call.requested"
	// EvResponded carries one output: one for a call, any number for a subscription.
	EvResponded = "call.responded"
	// EvCompleted ends a subscription that finished normally; payload {}.
	EvCompleted = "call.completed"
	// EvAborted cancels the request named by the id; either side may send it; payload {}.
	EvAborted = "call.aborted"
	// EvError ends a request with a [CallError]; terminal.
	EvError = "call.error"
)

// MaxFrameSize is the protocol's cap on the body of one frame (64 MiB). [ReadFrame] and
// [WriteFrame] accept a lower cap.
const MaxFrameSize = 64 << 20

// Envelope is one EventEnvelope: {"type": string, "id": string, "payload": any JSON}.
// All three keys are required on the wire. ID correlates a request with its answers and
// is chosen by the caller ([NewID]).
type Envelope struct {
	Type    string          `json:"type"`
	ID      string          `json:"id"`
	Payload json.RawMessage `json:"payload"`
}

// Errors of the wire layer. Classify with [errors.Is]; the texts carry lengths and key
// names, never frame contents (a frame may hold an auth token).
var (
	// ErrFrameInvalid reports a frame length of zero or above the limit. After it the
	// stream is out of sync and must be closed.
	ErrFrameInvalid = errors.New("call: invalid frame")
	// ErrFrameTooLarge reports a frame length above the limit; errors that wrap it also
	// wrap [ErrFrameInvalid]. The engine treats it as a limit, like a memory budget
	// ([core.ErrBudgetExceeded]), rather than as garbage.
	ErrFrameTooLarge = errors.New("call: frame too large")
	// ErrClosed reports a stream that ended: a clean EOF before a frame (the error also
	// wraps io.EOF) or inside one (it also wraps io.ErrUnexpectedEOF).
	ErrClosed = errors.New("call: stream closed")
	// ErrEnvelopeInvalid reports an envelope that is not JSON, not an object, lacks one
	// of its three keys or has a "type" or "id" that is not a string; or, when
	// encoding, a payload that is not valid JSON. No id is known to answer to.
	ErrEnvelopeInvalid = errors.New("call: invalid envelope")
	// ErrPayloadInvalid reports a payload that does not have the shape its envelope
	// type requires (not an object, a mistyped or duplicated key).
	ErrPayloadInvalid = errors.New("call: invalid payload")
)

// frameLimit turns a caller's max into the effective body limit.
func frameLimit(max int) int {
	if max <= 0 || max > MaxFrameSize {
		return MaxFrameSize
	}
	return max
}

// frameExactAlloc is the largest body ReadFrame allocates in one piece. A longer body
// is read into a buffer that starts at this size and doubles, so that a peer that
// announces a large frame and sends little makes us hold about what it sent.
const frameExactAlloc = 1 << 20

// errCleanEOF is ReadFrame's error for a stream that ended between frames; one value
// serves every stream (it is read on every call's stream end).
var errCleanEOF = fmt.Errorf("%w: %w", ErrClosed, io.EOF)

// ReadFrame reads one frame — a 4-byte big-endian length, then that many bytes of JSON —
// and decodes its envelope with [DecodeEnvelope]'s rules. max is the body limit:
// max <= 0 means [MaxFrameSize], and a max above MaxFrameSize is clamped to it.
//
// The length is checked before anything is allocated for the body: 0 gives an error
// wrapping [ErrFrameInvalid], more than max one wrapping ErrFrameInvalid and
// [ErrFrameTooLarge]. EOF before the first byte gives an error wrapping [ErrClosed] and
// io.EOF; EOF inside the prefix or the body (a truncated frame) one wrapping ErrClosed
// and io.ErrUnexpectedEOF. Any other read error is returned wrapped, so that a
// transport error (a QUIC stream reset) stays reachable with errors.Is and errors.As.
// A body that is not a valid envelope gives an error wrapping [ErrEnvelopeInvalid].
// After any error the stream is out of sync and must be closed.
//
// The returned Payload is owned by the caller.
func ReadFrame(r io.Reader, max int) (Envelope, error) {
	env, _, err := ReadFrameBudget(r, max, nil)
	return env, err
}

// ReadFrameBudget is [ReadFrame] counting the body's buffer against a memory budget: a
// body of up to 64 KiB gets one buffer of its announced length; a longer one a buffer
// that starts at 64 KiB and doubles as bytes arrive, never beyond the announced length;
// each allocation is reserved in b first — so a peer that announces a large frame and
// sends little holds, and is charged for, about what it sent. It returns the bytes reserved for the envelope (its buffer, which Payload
// shares); the caller releases them with b.Release once it is done with the envelope.
// On any error nothing stays reserved.
//
// A reservation that b refuses gives an error wrapping the budget's
// [*core.BudgetError] (and so [core.ErrBudgetExceeded]), whose text names the limit.
// A nil b has no limit and reserves nothing; ReadFrameBudget then allocates like
// ReadFrame.
func ReadFrameBudget(r io.Reader, max int, b *core.Budget) (env Envelope, reserved int64, err error) {
	return readFrameBudget(r, max, b, budgetFirstAlloc)
}

// readFrameBudget is ReadFrameBudget reading a budgeted body of up to exact bytes into
// one buffer of its length (readBody).
func readFrameBudget(r io.Reader, max int, b *core.Budget, exact int) (env Envelope, reserved int64, err error) {
	limit := frameLimit(max)
	var prefix [4]byte
	if _, err := io.ReadFull(r, prefix[:]); err != nil {
		switch {
		case err == io.EOF:
			return Envelope{}, 0, errCleanEOF
		case errors.Is(err, io.ErrUnexpectedEOF):
			return Envelope{}, 0, fmt.Errorf("%w: truncated frame length: %w", ErrClosed, io.ErrUnexpectedEOF)
		}
		return Envelope{}, 0, fmt.Errorf("call: read frame length: %w", err)
	}
	n := binary.BigEndian.Uint32(prefix[:])
	if n == 0 {
		return Envelope{}, 0, fmt.Errorf("%w: zero-length frame", ErrFrameInvalid)
	}
	if uint64(n) > uint64(limit) {
		return Envelope{}, 0, &frameSizeError{fmt.Sprintf("%v: frame length %d exceeds the limit of %d bytes", ErrFrameInvalid, n, limit)}
	}
	body, err := readBody(r, int(n), b, exact)
	if err != nil {
		return Envelope{}, 0, err
	}
	reserved = int64(cap(body))
	if b == nil {
		reserved = 0
	}
	env, err = decodeEnvelope(body, false)
	if err != nil {
		b.Release(reserved)
		return Envelope{}, 0, err
	}
	return env, reserved, nil
}

// frameSizeError is a frame over the size limit: it wraps ErrFrameInvalid and
// ErrFrameTooLarge.
type frameSizeError struct{ msg string }

func (e *frameSizeError) Error() string   { return e.msg }
func (e *frameSizeError) Unwrap() []error { return []error{ErrFrameInvalid, ErrFrameTooLarge} }

// budgetFirstAlloc is the first buffer of a budgeted frame body longer than the
// reader's exact size, and the exact size for an anonymous peer: an anonymous peer's
// announced length never makes this side allocate (or reserve) more than 64 KiB
// before the bytes come.
const budgetFirstAlloc = 64 << 10

// readBody reads exactly n bytes into a buffer whose capacity is reserved in b (nil: no
// budget) as it grows; on error the reservation is released. With a budget, a body of
// up to exact bytes (budgetFirstAlloc, or frameExactAlloc for a peer with an identity)
// is read into one buffer of its length, reserved first; a longer one into a buffer
// that starts at budgetFirstAlloc and doubles as bytes arrive, so that a peer
// announcing a large frame holds about what it sent. Without a budget, bodies of up to
// frameExactAlloc get one buffer.
func readBody(r io.Reader, n int, b *core.Budget, exact int) ([]byte, error) {
	first := frameExactAlloc
	if b != nil {
		first = budgetFirstAlloc
		if n <= exact {
			first = n
		}
	}
	size := min(n, first)
	if err := b.Reserve(int64(size)); err != nil {
		return nil, fmt.Errorf("call: read frame body: %w", err)
	}
	buf := make([]byte, 0, size)
	for len(buf) < n {
		if len(buf) == cap(buf) {
			grown := min(2*cap(buf), n)
			if err := b.Reserve(int64(grown - cap(buf))); err != nil {
				b.Release(int64(cap(buf)))
				return nil, fmt.Errorf("call: read frame body (%d of %d bytes): %w", len(buf), n, err)
			}
			nb := make([]byte, len(buf), grown)
			copy(nb, buf)
			buf = nb
		}
		k, err := io.ReadFull(r, buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+k]
		if err != nil {
			b.Release(int64(cap(buf)))
			if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
				return nil, fmt.Errorf("%w: truncated frame body (%d of %d bytes): %w", ErrClosed, len(buf), n, io.ErrUnexpectedEOF)
			}
			return nil, fmt.Errorf("call: read frame body: %w", err)
		}
	}
	return buf, nil
}

// framePool recycles the buffers frames are written from, up to framePoolMax bytes;
// largeFramePool those up to largeFramePoolMax, so that writing a large frame (a 64 KiB
// payload) does not allocate its buffer every time. Longer buffers are dropped.
var (
	framePool      = sync.Pool{New: func() any { return new([]byte) }}
	largeFramePool = sync.Pool{New: func() any { return new([]byte) }}
)

const (
	framePoolMax      = 64 << 10
	largeFramePoolMax = 1 << 20
)

// getFrameBuf returns an empty pooled buffer for a frame of about n bytes, to give
// back with putFrameBuf.
func getFrameBuf(n int) *[]byte {
	if n <= framePoolMax {
		return framePool.Get().(*[]byte)
	}
	bp := largeFramePool.Get().(*[]byte)
	if cap(*bp) < n && n <= largeFramePoolMax {
		*bp = make([]byte, 0, n)
	}
	return bp
}

// putFrameBuf gives back a buffer of getFrameBuf whose contents are buf (grown from it).
func putFrameBuf(bp *[]byte, buf []byte) {
	switch {
	case cap(buf) <= framePoolMax:
		*bp = buf[:0]
		framePool.Put(bp)
	case cap(buf) <= largeFramePoolMax:
		*bp = buf[:0]
		largeFramePool.Put(bp)
	}
}

// WriteFrame encodes env ([EncodeEnvelope]) and writes the 4-byte length and the body in
// one Write call; callers serialise the writers of a stream. max follows [ReadFrame]'s
// rule. A body longer than max (or empty) is refused with an error wrapping
// [ErrFrameInvalid] and nothing is written; a payload that is not valid JSON is refused
// with an error wrapping [ErrEnvelopeInvalid]. A write error is returned wrapped.
func WriteFrame(w io.Writer, env Envelope, max int) error { return writeFrame(w, env, max, true) }

// writeFrame is WriteFrame; check false skips validating the payload, for the
// envelopes the engine builds itself from validated parts (ownFrame).
func writeFrame(w io.Writer, env Envelope, max int, check bool) error {
	bp := getFrameBuf(len(env.Payload) + len(env.Type) + len(env.ID) + 40)
	buf, err := appendFrameCheck((*bp)[:0], env, max, check)
	if err == nil {
		if _, werr := w.Write(buf); werr != nil {
			err = fmt.Errorf("call: write frame: %w", werr)
		}
	}
	putFrameBuf(bp, buf)
	return err
}

// respondedTail ends a call.responded envelope after its output (read only).
var respondedTail = []byte("}}")

// writeFrameParts writes, in one Write as WriteFrame does, one frame whose body is
// head, then body, then tail, with the limits of WriteFrame, from a pooled buffer: no
// envelope is built around body first (the caller serialises the stream's writers).
func writeFrameParts(w io.Writer, head, body, tail []byte, max int) error {
	limit := frameLimit(max)
	n := len(head) + len(body) + len(tail)
	switch {
	case n == 0:
		return fmt.Errorf("%w: zero-length frame", ErrFrameInvalid)
	case n > limit:
		return &frameSizeError{fmt.Sprintf("%v: frame body of %d bytes exceeds the limit of %d bytes", ErrFrameInvalid, n, limit)}
	}
	bp := getFrameBuf(4 + n)
	buf := binary.BigEndian.AppendUint32((*bp)[:0], uint32(n))
	buf = append(append(append(buf, head...), body...), tail...)
	_, err := w.Write(buf)
	putFrameBuf(bp, buf)
	if err != nil {
		return fmt.Errorf("call: write frame: %w", err)
	}
	return nil
}

// appendFrame appends env as one frame (length prefix and body) to dst, with the
// limits of WriteFrame.
func appendFrame(dst []byte, env Envelope, max int) ([]byte, error) {
	return appendFrameCheck(dst, env, max, true)
}

// appendOwnFrame is appendFrame for an envelope the engine built itself, whose
// payload is valid JSON by construction: every payload it sends is a constant, the
// JSON encoding of a CallError, or wraps an input or output that was validated on its
// way in (encodeInput, the registry's output and emit checks). It is not validated a
// third time; the limits still apply.
func appendOwnFrame(dst []byte, env Envelope, max int) ([]byte, error) {
	return appendFrameCheck(dst, env, max, false)
}

func appendFrameCheck(dst []byte, env Envelope, max int, check bool) ([]byte, error) {
	limit := frameLimit(max)
	if len(env.Payload) > limit {
		return dst, &frameSizeError{fmt.Sprintf("%v: frame body of more than %d bytes exceeds the limit of %d bytes", ErrFrameInvalid, len(env.Payload), limit)}
	}
	start := len(dst)
	dst, err := appendEnvelope(append(dst, 0, 0, 0, 0), env, check)
	if err != nil {
		return dst[:start], err
	}
	switch n := len(dst) - start - 4; {
	case n == 0:
		return dst[:start], fmt.Errorf("%w: zero-length frame", ErrFrameInvalid)
	case n > limit:
		return dst[:start], &frameSizeError{fmt.Sprintf("%v: frame body of %d bytes exceeds the limit of %d bytes", ErrFrameInvalid, n, limit)}
	default:
		binary.BigEndian.PutUint32(dst[start:], uint32(n))
	}
	return dst, nil
}

// EncodeEnvelope returns the JSON of env: {"type":…,"id":…,"payload":…}, keys in that
// order and spelled literally. An empty Payload is written as {}; a Payload that is not
// valid JSON gives an error wrapping [ErrEnvelopeInvalid].
func EncodeEnvelope(env Envelope) ([]byte, error) {
	return appendEnvelope(make([]byte, 0, len(env.Payload)+len(env.Type)+len(env.ID)+32), env, true)
}

// appendEnvelope appends env's JSON, validating its payload when check is set.
func appendEnvelope(dst []byte, env Envelope, check bool) ([]byte, error) {
	payload := env.Payload
	if len(payload) == 0 {
		payload = json.RawMessage(`{}`)
	} else if check && !validJSON(payload) {
		return dst, fmt.Errorf("%w: payload of a %q envelope is not valid JSON", ErrEnvelopeInvalid, env.Type)
	}
	dst = append(dst, `{"type":`...)
	dst = appendJSONString(dst, env.Type)
	dst = append(dst, `,"id":`...)
	dst = appendJSONString(dst, env.ID)
	dst = append(dst, `,"payload":`...)
	dst = append(dst, payload...)
	return append(dst, '}'), nil
}

// DecodeEnvelope parses one envelope strictly: b must be a single JSON value, an object
// whose "type" and "id" are JSON strings and which has a "payload" key (any JSON value,
// null included). The id must be valid UTF-8 — no invalid bytes, no unpaired surrogate
// escape — since answers echo it: decoding such an id would rewrite it to U+FFFD. Keys match exactly — "Type" is not "type" — each of the three may
// appear once, and unknown keys are ignored. Errors wrap [ErrEnvelopeInvalid] and never
// quote the input. The returned Payload is a copy and does not alias b.
func DecodeEnvelope(b []byte) (Envelope, error) { return decodeEnvelope(b, true) }

func decodeEnvelope(b []byte, copyPayload bool) (Envelope, error) {
	if !validJSON(b) {
		return Envelope{}, envelopeError("not valid JSON")
	}
	typ, id, payload, err := scanEnvelope(b)
	if err != nil {
		return Envelope{}, err
	}
	env := Envelope{Type: internType(typ), Payload: payload}
	env.ID, _ = decodeString(id)
	if copyPayload {
		env.Payload = bytes.Clone(env.Payload)
	}
	return env, nil
}

// scanEnvelope checks the envelope b (valid JSON) by DecodeEnvelope's rules and returns
// its raw "type" and "id" string tokens (quotes included) and its payload, all sharing
// b, without decoding or allocating anything for a plain envelope.
func scanEnvelope(b []byte) (typ, id, payload []byte, err error) {
	s, ok := scanObject(b)
	if !ok {
		return nil, nil, nil, envelopeError("not a JSON object")
	}
	for s.next() {
		switch {
		case keyIs(s.key, "type"):
			if typ != nil {
				return nil, nil, nil, envelopeError(`duplicate "type" key`)
			}
			if !isString(s.val) {
				return nil, nil, nil, envelopeError(`"type" is not a string`)
			}
			typ = s.val
		case keyIs(s.key, "id"):
			if id != nil {
				return nil, nil, nil, envelopeError(`duplicate "id" key`)
			}
			if !isString(s.val) {
				return nil, nil, nil, envelopeError(`"id" is not a string`)
			}
			if !exactString(s.val) {
				return nil, nil, nil, envelopeError(`"id" is not valid UTF-8`)
			}
			id = s.val
		case keyIs(s.key, "payload"):
			if payload != nil {
				return nil, nil, nil, envelopeError(`duplicate "payload" key`)
			}
			payload = s.val
		}
	}
	switch {
	case s.err != nil:
		return nil, nil, nil, envelopeError(s.err.Error())
	case typ == nil:
		return nil, nil, nil, envelopeError(`missing "type" key`)
	case id == nil:
		return nil, nil, nil, envelopeError(`missing "id" key`)
	case payload == nil:
		return nil, nil, nil, envelopeError(`missing "payload" key`)
	}
	return typ, id, payload, nil
}

// isString reports whether the raw value v (valid JSON) is a string token that decodes.
func isString(v []byte) bool {
	if _, ok := plainString(v); ok {
		return true
	}
	_, ok := decodeString(v)
	return ok
}

// internType decodes the type token v, returning the package's constant (no
// allocation) for the five envelope types.
func internType(v []byte) string {
	if inner, ok := plainString(v); ok {
		switch string(inner) {
		case EvRequested:
			return EvRequested
		case EvResponded:
			return EvResponded
		case EvCompleted:
			return EvCompleted
		case EvAborted:
			return EvAborted
		case EvError:
			return EvError
		}
	}
	t, _ := decodeString(v)
	return t
}

func envelopeError(reason string) error { return fmt.Errorf("%w: %s", ErrEnvelopeInvalid, reason) }

func payloadError(evType, reason string) error {
	return fmt.Errorf("%w: %s: %s", ErrPayloadInvalid, evType, reason)
}

// RequestPayload is the payload of call.requested:
//
//	{"operationId": "/ns/op", "input": <any>, "auth_token"?: string, "forwarded_for"?: Identity}
//
// Its MarshalJSON and UnmarshalJSON implement that shape by hand; keys match exactly.
// A RequestPayload prints and logs with the token redacted.
type RequestPayload struct {
	// OperationID is the operation as the wire names it. It is written with one leading
	// "/" ("/notes/get"); a received one may lack it (Rust's from_call sends
	// "notes/get"). Use [RequestPayload.OperationName] for the registry name.
	OperationID string
	// Input is the operation's input; a missing "input" decodes as JSON null.
	Input json.RawMessage
	// AuthToken is the per-request credential ("auth_token", an opaque string on the
	// wire; omitted when empty; must be valid UTF-8 to be sent). It is a secret: it is
	// never logged and never put in an error.
	AuthToken []byte
	// ForwardedFor is the end-user identity a hub forwards for ("forwarded_for",
	// omitted when nil). Metadata only: access control never reads it. A value that
	// does not parse as an identity is dropped, not an error.
	ForwardedFor *core.Identity
}

// OperationName returns the registry name: OperationID with one leading "/" removed
// ("/notes/get" and "notes/get" both give "notes/get").
func (p RequestPayload) OperationName() string { return strings.TrimPrefix(p.OperationID, "/") }

// MarshalJSON writes the wire shape: operationId with one leading "/", input (null when
// empty; an error when not valid JSON), auth_token as a JSON string when not empty (an
// error when not valid UTF-8) and forwarded_for when not nil (nil scopes and resources
// are written as [] and {}, which Rust peers require).
func (p RequestPayload) MarshalJSON() ([]byte, error) {
	return p.appendJSON(make([]byte, 0, len(p.OperationID)+len(p.Input)+len(p.AuthToken)+48), true)
}

// appendJSON appends the payload's JSON, validating the input when checkInput is set.
func (p RequestPayload) appendJSON(dst []byte, checkInput bool) ([]byte, error) {
	input := p.Input
	if len(input) == 0 {
		input = json.RawMessage("null")
	} else if checkInput && !validPayload(input) {
		return nil, payloadError(EvRequested, "input is not valid JSON")
	}
	if !utf8.Valid(p.AuthToken) {
		return nil, payloadError(EvRequested, "auth token is not valid UTF-8")
	}
	var ff []byte
	if p.ForwardedFor != nil {
		id := *p.ForwardedFor
		if id.Scopes == nil {
			id.Scopes = []string{}
		}
		if id.Resources == nil {
			id.Resources = map[string][]string{}
		}
		var err error
		if ff, err = json.Marshal(id); err != nil {
			return nil, payloadError(EvRequested, "forwarded_for: "+err.Error())
		}
	}
	dst = append(dst, `{"operationId":`...)
	dst = appendJSONString(dst, "/"+p.OperationName())
	dst = append(dst, `,"input":`...)
	dst = append(dst, input...)
	if len(p.AuthToken) > 0 {
		dst = append(dst, `,"auth_token":`...)
		dst = appendJSONString(dst, p.AuthToken)
	}
	if ff != nil {
		dst = append(dst, `,"forwarded_for":`...)
		dst = append(dst, ff...)
	}
	return append(dst, '}'), nil
}

// UnmarshalJSON parses the wire shape. The payload must be an object with a string
// "operationId"; "auth_token" must be a string or null; the keys may appear once each.
// Errors wrap [ErrPayloadInvalid].
func (p *RequestPayload) UnmarshalJSON(data []byte) error {
	q, reason := decodeRequest(bytes.Clone(data))
	if reason != "" {
		return payloadError(EvRequested, reason)
	}
	*p = q
	return nil
}

// decodeRequest parses a call.requested payload; the result aliases b. reason is ""
// on success and says what is wrong otherwise.
func decodeRequest(b []byte) (_ RequestPayload, reason string) {
	s, ok := scanObject(b)
	if !ok {
		return RequestPayload{}, "not a JSON object"
	}
	var p RequestPayload
	var haveOp, haveInput, haveToken, haveFF bool
	for s.next() {
		switch {
		case keyIs(s.key, "operationId"):
			if haveOp {
				return RequestPayload{}, "duplicate operationId"
			}
			op, ok := decodeString(s.val)
			if !ok {
				return RequestPayload{}, "operationId is not a string"
			}
			p.OperationID, haveOp = op, true
		case keyIs(s.key, "input"):
			if haveInput {
				return RequestPayload{}, "duplicate input"
			}
			p.Input, haveInput = s.val, true
		case keyIs(s.key, "auth_token"):
			if haveToken {
				return RequestPayload{}, "duplicate auth_token"
			}
			haveToken = true
			if string(s.val) == "null" {
				continue
			}
			tok, ok := decodeStringBytes(s.val)
			if !ok {
				return RequestPayload{}, "auth_token is not a string"
			}
			if len(tok) > 0 {
				p.AuthToken = tok
			}
		case keyIs(s.key, "forwarded_for"):
			if haveFF {
				return RequestPayload{}, "duplicate forwarded_for"
			}
			haveFF = true
			if len(s.val) > 0 && s.val[0] == '{' {
				var id core.Identity
				if json.Unmarshal(s.val, &id) == nil {
					p.ForwardedFor = &id
				}
			}
		}
	}
	switch {
	case s.err != nil:
		return RequestPayload{}, s.err.Error()
	case !haveOp:
		return RequestPayload{}, "missing operationId"
	}
	if !haveInput {
		p.Input = json.RawMessage("null")
	}
	return p, ""
}

// Format prints the payload with the token redacted and the input as its length, for
// every verb.
func (p RequestPayload) Format(f fmt.State, _ rune) {
	tok := "none"
	if len(p.AuthToken) > 0 {
		tok = "[REDACTED]"
	}
	ff := "none"
	if p.ForwardedFor != nil {
		ff = fmt.Sprintf("%q", p.ForwardedFor.ID)
	}
	fmt.Fprintf(f, "{OperationID:%q Input:(%d bytes) AuthToken:%s ForwardedFor:%s}", p.OperationID, len(p.Input), tok, ff)
}

// LogValue keeps the token and the input out of slog output.
func (p RequestPayload) LogValue() slog.Value {
	attrs := []slog.Attr{
		slog.String("operationId", p.OperationID),
		slog.Int("input_bytes", len(p.Input)),
	}
	if len(p.AuthToken) > 0 {
		attrs = append(attrs, slog.String("auth_token", "[REDACTED]"))
	}
	if p.ForwardedFor != nil {
		attrs = append(attrs, slog.String("forwarded_for", p.ForwardedFor.ID))
	}
	return slog.GroupValue(attrs...)
}

// NewRequest returns a call.requested envelope. operation is a registry name, with or
// without its leading "/"; the envelope carries the "/" form. An empty name, an input
// that is not valid JSON or a token that is not valid UTF-8 is an error (wrapping
// [ErrPayloadInvalid]); a nil input is sent as null.
func NewRequest(id, operation string, input json.RawMessage, authToken []byte, forwardedFor *core.Identity) (Envelope, error) {
	return newRequest(id, operation, input, authToken, forwardedFor, true)
}

// newRequest is NewRequest; checkInput false skips validating an input the caller
// has validated (encodeInput).
func newRequest(id, operation string, input json.RawMessage, authToken []byte, forwardedFor *core.Identity, checkInput bool) (Envelope, error) {
	p := RequestPayload{OperationID: operation, Input: input, AuthToken: authToken, ForwardedFor: forwardedFor}
	if p.OperationName() == "" {
		return Envelope{}, payloadError(EvRequested, "empty operation name")
	}
	b, err := p.appendJSON(make([]byte, 0, len(p.OperationID)+len(p.Input)+len(p.AuthToken)+48), checkInput)
	if err != nil {
		return Envelope{}, err
	}
	return Envelope{Type: EvRequested, ID: id, Payload: b}, nil
}

// requestPartsMin is the shortest input an outgoing request carries in parts
// (outRequest), copied only into its frame; a shorter one is copied into the
// envelope's payload first, which costs less than the parts' allocations.
const requestPartsMin = 16 << 10

// outRequest is a call.requested this side sends: env, or, for an input of
// requestPartsMin bytes or more, env without its payload and the payload in three
// parts (head, input, tail), so that the input is copied only into the frame.
type outRequest struct {
	env               Envelope // Payload nil when head is set
	head, input, tail []byte
}

// newOutRequest is newRequest's outRequest, with its errors.
func newOutRequest(id, operation string, input json.RawMessage, authToken []byte, forwardedFor *core.Identity, checkInput bool) (outRequest, error) {
	if len(input) < requestPartsMin {
		env, err := newRequest(id, operation, input, authToken, forwardedFor, checkInput)
		return outRequest{env: env}, err
	}
	if checkInput && !validPayload(input) {
		return outRequest{}, payloadError(EvRequested, "input is not valid JSON")
	}
	// The payload with a one-byte input, split around it.
	env, err := newRequest(id, operation, json.RawMessage("0"), authToken, forwardedFor, false)
	if err != nil {
		return outRequest{}, err
	}
	at := len(`{"operationId":`) + len(appendJSONString(nil, "/"+stripSlash(operation))) + len(`,"input":`)
	b := env.Payload
	if at >= len(b) || b[at] != '0' {
		// appendJSON's layout is not the one counted above: take the envelope path
		// rather than cut the frame in the wrong place.
		env, err := newRequest(id, operation, input, authToken, forwardedFor, false)
		return outRequest{env: env}, err
	}
	env.Payload = nil
	return outRequest{env: env, head: b[:at:at], input: input, tail: b[at+1:]}, nil
}

// size is the length of r's envelope.
func (r *outRequest) size() int {
	if r.head == nil {
		return len(r.env.Payload) + len(r.env.ID) + 40
	}
	return len(r.head) + len(r.input) + len(r.tail) + len(r.env.ID) + 40
}

// envelope returns r's envelope, joining its parts.
func (r *outRequest) envelope() Envelope {
	if r.head == nil {
		return r.env
	}
	env := r.env
	env.Payload = slices.Concat(r.head, r.input, r.tail)
	return env
}

// appendFrame appends r's frame to dst, with the limits of appendFrame (its parts are
// valid JSON together, as newOutRequest built or checked them).
func (r *outRequest) appendFrame(dst []byte, max int) ([]byte, error) {
	if r.head == nil {
		return appendOwnFrame(dst, r.env, max)
	}
	limit := frameLimit(max)
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	dst = append(dst, `{"type":`...)
	dst = appendJSONString(dst, r.env.Type)
	dst = append(dst, `,"id":`...)
	dst = appendJSONString(dst, r.env.ID)
	dst = append(dst, `,"payload":`...)
	dst = append(append(append(dst, r.head...), r.input...), r.tail...)
	dst = append(dst, '}')
	n := len(dst) - start - 4
	if n > limit {
		return dst[:start], &frameSizeError{fmt.Sprintf("%v: frame body of %d bytes exceeds the limit of %d bytes", ErrFrameInvalid, n, limit)}
	}
	binary.BigEndian.PutUint32(dst[start:], uint32(n))
	return dst, nil
}

// ParseRequest parses the payload of a call.requested envelope (env.Type is not looked
// at). A payload that is not an object, lacks operationId, has an operationId that is
// not a string or an auth_token that is neither a string nor null, or repeats a key
// gives an INVALID_INPUT error, which the caller sends back with env.ID. The result
// shares memory with env.Payload.
//
// env.Payload is expected to be valid JSON, as [ReadFrame] and [DecodeEnvelope]
// guarantee; Input is passed through without being validated again.
func ParseRequest(env Envelope) (RequestPayload, *CallError) {
	p, reason := decodeRequest(env.Payload)
	if reason != "" {
		return RequestPayload{}, NewCallError(CodeInvalidInput, "invalid request: "+reason)
	}
	return p, nil
}

// NewResponded returns a call.responded envelope, payload {"output": output}; a nil
// output is sent as null. An output that is not valid JSON makes the envelope fail to
// encode (ErrEnvelopeInvalid from [WriteFrame]).
func NewResponded(id string, output json.RawMessage) Envelope {
	if len(output) == 0 {
		output = json.RawMessage("null")
	}
	b := make([]byte, 0, len(output)+len(`{"output":}`))
	b = append(b, `{"output":`...)
	b = append(b, output...)
	b = append(b, '}')
	return Envelope{Type: EvResponded, ID: id, Payload: b}
}

// ParseResponded returns the output of a call.responded envelope; a missing "output" is
// JSON null. A payload that is not an object, or repeats "output", gives an error
// wrapping [ErrPayloadInvalid]. The result shares memory with env.Payload.
func ParseResponded(env Envelope) (json.RawMessage, error) {
	s, ok := scanObject(env.Payload)
	if !ok {
		return nil, payloadError(EvResponded, "not a JSON object")
	}
	var out json.RawMessage
	for s.next() {
		if keyIs(s.key, "output") {
			if out != nil {
				return nil, payloadError(EvResponded, "duplicate output")
			}
			out = s.val
		}
	}
	if s.err != nil {
		return nil, payloadError(EvResponded, s.err.Error())
	}
	if out == nil {
		out = json.RawMessage("null")
	}
	return out, nil
}

// NewCompleted returns a call.completed envelope with payload {}.
func NewCompleted(id string) Envelope {
	return Envelope{Type: EvCompleted, ID: id, Payload: json.RawMessage(`{}`)}
}

// NewAborted returns a call.aborted envelope with payload {}.
func NewAborted(id string) Envelope {
	return Envelope{Type: EvAborted, ID: id, Payload: json.RawMessage(`{}`)}
}

// NewErrorEnvelope returns a call.error envelope carrying e:
// {"code","message","retryable","details"?}. Details are left out when empty or null,
// and dropped when not valid JSON (so that the error still reaches the caller). A nil e
// is sent as INTERNAL "internal error".
func NewErrorEnvelope(id string, e *CallError) Envelope {
	if e == nil {
		e = NewCallError(CodeInternal, "internal error")
	}
	ce := *e
	if len(ce.Details) > 0 && (!validPayload(ce.Details) || string(bytes.TrimSpace(ce.Details)) == "null") {
		ce.Details = nil
	}
	b, err := json.Marshal(&ce)
	if err != nil { // not reachable: strings, a bool and valid raw JSON
		b = []byte(`{"code":"INTERNAL","message":"unencodable error","retryable":false}`)
	}
	return Envelope{Type: EvError, ID: id, Payload: b}
}

// ParseError returns the CallError of a call.error envelope. It never returns a nil
// *CallError: a malformed payload (not an object; code missing, empty or not a string;
// message not a string; retryable not a bool; a repeated key) gives an INTERNAL
// CallError describing the problem together with an error wrapping
// [ErrPayloadInvalid]. A missing message is "", a missing retryable false, and a null
// details is left out. Details share memory with env.Payload.
func ParseError(env Envelope) (*CallError, error) {
	malformed := func(reason string) (*CallError, error) {
		return NewCallError(CodeInternal, "malformed call.error payload: "+reason), payloadError(EvError, reason)
	}
	s, ok := scanObject(env.Payload)
	if !ok {
		return malformed("not a JSON object")
	}
	var ce CallError
	var haveCode, haveMsg, haveRetry, haveDetails bool
	for s.next() {
		switch {
		case keyIs(s.key, "code"):
			code, ok := decodeString(s.val)
			switch {
			case haveCode:
				return malformed("duplicate code")
			case !ok:
				return malformed("code is not a string")
			}
			ce.Code, haveCode = code, true
		case keyIs(s.key, "message"):
			msg, ok := decodeString(s.val)
			switch {
			case haveMsg:
				return malformed("duplicate message")
			case !ok:
				return malformed("message is not a string")
			}
			ce.Message, haveMsg = msg, true
		case keyIs(s.key, "retryable"):
			if haveRetry {
				return malformed("duplicate retryable")
			}
			switch string(s.val) {
			case "true":
				ce.Retryable = true
			case "false":
			default:
				return malformed("retryable is not a boolean")
			}
			haveRetry = true
		case keyIs(s.key, "details"):
			if haveDetails {
				return malformed("duplicate details")
			}
			haveDetails = true
			if string(s.val) != "null" {
				ce.Details = s.val
			}
		}
	}
	switch {
	case s.err != nil:
		return malformed(s.err.Error())
	case ce.Code == "":
		return malformed("missing code")
	}
	return &ce, nil
}

// NewID returns a random UUIDv4 string ("xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx"), the
// form Rust peers use for request ids.
func NewID() string {
	var u [16]byte
	_, _ = rand.Read(u[:]) // never fails: crypto/rand.Read crashes the program instead
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	var s [36]byte
	hex.Encode(s[0:8], u[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], u[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], u[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], u[8:10])
	s[23] = '-'
	hex.Encode(s[24:], u[10:])
	return string(s[:])
}
