package msg

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/alknet/alknet/core"
)

// ALPN is the protocol name the msg server claims.
const ALPN = "alknet/msg"

// Frame limits.
const (
	// DefaultMaxFrameBytes is a node's default cap on one request frame: 256 KiB, which
	// carries a body of up to MaxBodyForFrame(DefaultMaxFrameBytes, len(content type))
	// (about 127 KiB).
	DefaultMaxFrameBytes = 256 << 10
	// MaxFrameBytesLimit is the highest frame cap a node may configure: 2 MiB, enough
	// for a [MaxBodySize] body (FrameSizeForBody(MaxBodySize, 255) ≈ 1.42 MiB).
	MaxFrameBytesLimit = 2 << 20
	// responseSlack is what a response may exceed the frame cap by: a fetch response
	// holds at least one stored envelope (itself at most the cap) and its metadata.
	responseSlack = 16 << 10
	// frameFirstAlloc is the first buffer for a frame body; it doubles as bytes arrive.
	frameFirstAlloc = 16 << 10
)

// ErrFrameTooLarge is wrapped by ReadFrame's error for a frame over its cap.
var ErrFrameTooLarge = errors.New("msg: frame too large")

// FrameSizeError is ReadFrame's error for a frame whose announced length is over the
// cap; it wraps [ErrMalformed] and [ErrFrameTooLarge].
type FrameSizeError struct {
	Size  int64 // the announced length
	Limit int64 // the cap
}

// Error names both sizes.
func (e *FrameSizeError) Error() string {
	return fmt.Sprintf("%v: %v: frame of %d bytes exceeds the limit of %d bytes", ErrMalformed, ErrFrameTooLarge, e.Size, e.Limit)
}

// Unwrap returns ErrMalformed and ErrFrameTooLarge.
func (e *FrameSizeError) Unwrap() []error { return []error{ErrMalformed, ErrFrameTooLarge} }

// ReadFrame reads one frame (a 4-byte big-endian length, then that many bytes) from r.
// The length is checked against max before anything is allocated (0 or more than max:
// an error wrapping [ErrMalformed], and [ErrFrameTooLarge] for the latter); the body is
// then read into a buffer that starts small and doubles as bytes arrive, each growth
// reserved in b first (nil: no budget), so a peer that announces a large frame and
// sends little holds about what it sent. reserved is what stays reserved in b for the
// returned body; the caller releases it. On error nothing stays reserved. EOF before
// the first byte is io.EOF; a truncated frame is io.ErrUnexpectedEOF (wrapped).
func ReadFrame(r io.Reader, max int, b *core.Budget) (body []byte, reserved int64, err error) {
	var prefix [4]byte
	if _, err := io.ReadFull(r, prefix[:]); err != nil {
		if err == io.EOF {
			return nil, 0, io.EOF
		}
		return nil, 0, fmt.Errorf("msg: read frame length: %w", err)
	}
	n := binary.BigEndian.Uint32(prefix[:])
	if n == 0 {
		return nil, 0, fmt.Errorf("%w: zero-length frame", ErrMalformed)
	}
	if uint64(n) > uint64(max) {
		return nil, 0, &FrameSizeError{Size: int64(n), Limit: int64(max)}
	}
	size := min(int(n), frameFirstAlloc)
	if err := b.Reserve(int64(size)); err != nil {
		return nil, 0, fmt.Errorf("msg: read frame: %w", err)
	}
	buf := make([]byte, 0, size)
	for len(buf) < int(n) {
		if len(buf) == cap(buf) {
			grown := min(2*cap(buf), int(n))
			if err := b.Reserve(int64(grown - cap(buf))); err != nil {
				b.Release(int64(cap(buf)))
				return nil, 0, fmt.Errorf("msg: read frame (%d of %d bytes): %w", len(buf), n, err)
			}
			nb := make([]byte, len(buf), grown)
			copy(nb, buf)
			buf = nb
		}
		k, err := io.ReadFull(r, buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+k]
		if err != nil {
			b.Release(int64(cap(buf)))
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, 0, fmt.Errorf("msg: read frame body (%d of %d bytes): %w", len(buf), n, err)
		}
	}
	if b == nil {
		return buf, 0, nil
	}
	return buf, int64(cap(buf)), nil
}

// WriteFrame writes body as one frame (length prefix and body in one Write).
func WriteFrame(w io.Writer, body []byte) error {
	if len(body) == 0 || uint64(len(body)) > 1<<32-1 {
		return fmt.Errorf("msg: write frame: %d bytes", len(body))
	}
	buf := make([]byte, frameHeaderSize, frameHeaderSize+len(body))
	return writeFramed(w, append(buf, body...))
}

// frameHeaderSize is the length prefix of a frame.
const frameHeaderSize = 4

// writeFramed fills in the length prefix of frame (frameHeaderSize bytes reserved before
// the body) and writes it in one Write, without copying the body.
func writeFramed(w io.Writer, frame []byte) error {
	n := len(frame) - frameHeaderSize
	if n <= 0 || uint64(n) > 1<<32-1 {
		return fmt.Errorf("msg: write frame: %d bytes", max(n, 0))
	}
	binary.BigEndian.PutUint32(frame, uint32(n))
	if _, err := w.Write(frame); err != nil {
		return fmt.Errorf("msg: write frame: %w", err)
	}
	return nil
}

// Operations of the alknet/msg protocol (a request's "op").
const (
	OpKeysGet = "keys.get" // {mailbox} -> {bundle}; anyone
	OpKeysPut = "keys.put" // {bundle} -> {}; the owner of the mailbox
	OpDeliver = "deliver"  // {envelope} -> {id, accepted_at, duplicate}; msg:send or anonymous
	OpFetch   = "fetch"    // {mailbox?, after?, limit?, wait_ms?} -> {envelopes, next}; owner
	OpAck     = "ack"      // {mailbox?, ids} -> {deleted}; owner
)

// Request limits.
const (
	// MaxFetchLimit is the most envelopes one fetch returns (and its default limit).
	MaxFetchLimit = 100
	// MaxFetchWaitMS is the longest long-poll wait, 60 s, in milliseconds.
	MaxFetchWaitMS = 60_000
	// MaxAckIDs is the most ids one ack takes.
	MaxAckIDs = 1000
	// maxCursorLen bounds the cursor a client sends back.
	maxCursorLen = 256
)

// ErrorCode is the code of a refused request (spec §2.4).
type ErrorCode string

// Error codes.
const (
	CodeBadRequest    ErrorCode = "BAD_REQUEST"
	CodeUnauthorized  ErrorCode = "UNAUTHORIZED"
	CodeNotHosted     ErrorCode = "NOT_HOSTED"
	CodeTooLarge      ErrorCode = "TOO_LARGE"
	CodeQuotaExceeded ErrorCode = "QUOTA_EXCEEDED"
	CodeRateLimited   ErrorCode = "RATE_LIMITED"
	CodeExpired       ErrorCode = "EXPIRED"
	CodeInternal      ErrorCode = "INTERNAL"
)

// Error is a refusal as the protocol carries it: {"code":..., "message":...}. The client
// returns it for every ok:false response; test its code with errors.Is against a
// bare &Error{Code: ...} or with [CodeOf].
type Error struct {
	Code    ErrorCode `json:"code"`
	Message string    `json:"message"`
}

// Error returns "msg: CODE: message".
func (e *Error) Error() string {
	if e.Message == "" {
		return "msg: " + string(e.Code)
	}
	return "msg: " + string(e.Code) + ": " + e.Message
}

// Is matches another *Error with the same code (its message is ignored).
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// CodeOf returns the code of the *Error in err's chain, or "" when there is none.
func CodeOf(err error) ErrorCode {
	if e, ok := errors.AsType[*Error](err); ok {
		return e.Code
	}
	return ""
}

func errorf(code ErrorCode, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Request bodies, one per operation; decodeRequest picks by "op" and decodes strictly.
type (
	keysGetRequest struct {
		Op      string `json:"op"`
		Mailbox string `json:"mailbox"`
	}
	keysPutRequest struct {
		Op     string     `json:"op"`
		Bundle *KeyBundle `json:"bundle"`
	}
	deliverRequest struct {
		Op       string    `json:"op"`
		Envelope *Envelope `json:"envelope"`
	}
	fetchRequest struct {
		Op      string `json:"op"`
		Mailbox string `json:"mailbox,omitempty"`
		After   string `json:"after,omitempty"`
		Limit   int    `json:"limit,omitempty"`
		WaitMS  int64  `json:"wait_ms,omitempty"`
	}
	ackRequest struct {
		Op      string   `json:"op"`
		Mailbox string   `json:"mailbox,omitempty"`
		IDs     []string `json:"ids"`
	}
)

// decodeRequest decodes a request frame strictly: the JSON reader's rules (see
// jsonstrict.go), a known op, only that op's fields, and each field within its limits.
// It returns one of the *Request types above.
func decodeRequest(frame []byte) (any, error) {
	ms, err := readObject(frame)
	if err != nil {
		return nil, fmt.Errorf("request: %w", err)
	}
	var opRaw []byte
	for _, m := range ms {
		if m.key == "op" {
			opRaw = m.val
		}
	}
	if opRaw == nil {
		return nil, fmt.Errorf("%w: request: missing \"op\"", ErrMalformed)
	}
	op, err := jsonString("request op", opRaw)
	if err != nil {
		return nil, err
	}
	str := func(f map[string][]byte, key string) (string, error) {
		if f[key] == nil {
			return "", nil
		}
		return jsonString(op+" "+key, f[key])
	}
	switch op {
	case OpKeysGet:
		f, err := fields(op, ms, "op", "mailbox")
		if err != nil {
			return nil, err
		}
		r := &keysGetRequest{Op: op}
		if r.Mailbox, err = str(f, "mailbox"); err != nil {
			return nil, err
		}
		return r, nil
	case OpKeysPut:
		f, err := fields(op, ms, "op", "bundle")
		if err != nil {
			return nil, err
		}
		if f["bundle"] == nil {
			return nil, fmt.Errorf("%w: keys.put: missing bundle", ErrMalformed)
		}
		r := &keysPutRequest{Op: op, Bundle: &KeyBundle{}}
		if err := r.Bundle.UnmarshalJSON(f["bundle"]); err != nil {
			return nil, err
		}
		return r, nil
	case OpDeliver:
		f, err := fields(op, ms, "op", "envelope")
		if err != nil {
			return nil, err
		}
		if f["envelope"] == nil {
			return nil, fmt.Errorf("%w: deliver: missing envelope", ErrMalformed)
		}
		env, err := DecodeEnvelope(f["envelope"])
		if err != nil {
			return nil, err
		}
		return &deliverRequest{Op: op, Envelope: env}, nil
	case OpFetch:
		f, err := fields(op, ms, "op", "mailbox", "after", "limit", "wait_ms")
		if err != nil {
			return nil, err
		}
		r := &fetchRequest{Op: op}
		if r.Mailbox, err = str(f, "mailbox"); err != nil {
			return nil, err
		}
		if r.After, err = str(f, "after"); err != nil {
			return nil, err
		}
		if len(r.After) > maxCursorLen {
			return nil, fmt.Errorf("%w: fetch: cursor of %d bytes (limit %d)", ErrMalformed, len(r.After), maxCursorLen)
		}
		if v := f["limit"]; v != nil {
			n, err := jsonInt("fetch limit", v, 0, MaxFetchLimit)
			if err != nil {
				return nil, err
			}
			r.Limit = int(n)
		}
		if v := f["wait_ms"]; v != nil {
			if r.WaitMS, err = jsonInt("fetch wait_ms", v, 0, MaxFetchWaitMS); err != nil {
				return nil, err
			}
		}
		return r, nil
	case OpAck:
		f, err := fields(op, ms, "op", "mailbox", "ids")
		if err != nil {
			return nil, err
		}
		r := &ackRequest{Op: op}
		if r.Mailbox, err = str(f, "mailbox"); err != nil {
			return nil, err
		}
		if f["ids"] == nil {
			return nil, fmt.Errorf("%w: ack: missing ids", ErrMalformed)
		}
		el, err := jsonArray("ack ids", f["ids"])
		if err != nil {
			return nil, err
		}
		if len(el) == 0 || len(el) > MaxAckIDs {
			return nil, fmt.Errorf("%w: ack: %d ids (want 1 to %d)", ErrMalformed, len(el), MaxAckIDs)
		}
		for _, e := range el {
			id, err := jsonString("ack id", e)
			if err != nil {
				return nil, err
			}
			r.IDs = append(r.IDs, id)
		}
		return r, nil
	}
	return nil, fmt.Errorf("%w: request: unknown op %q", ErrMalformed, truncate(op, 32))
}

// Response bodies.
type (
	errorResponse struct {
		OK    bool   `json:"ok"`
		Error *Error `json:"error"`
	}
	keysGetResponse struct {
		OK     bool      `json:"ok"`
		Bundle KeyBundle `json:"bundle"`
	}
	okResponse struct {
		OK bool `json:"ok"`
	}
	deliverResponse struct {
		OK         bool   `json:"ok"`
		ID         string `json:"id"`
		AcceptedAt int64  `json:"accepted_at"`
		Duplicate  bool   `json:"duplicate"`
	}
	fetchResponse struct {
		OK        bool              `json:"ok"`
		Envelopes []fetchedEnvelope `json:"envelopes"`
		Next      string            `json:"next"`
	}
	fetchedEnvelope struct {
		AcceptedAt int64           `json:"accepted_at"`
		ExpiresAt  int64           `json:"expires_at"`
		Envelope   json.RawMessage `json:"envelope"`
	}
	ackResponse struct {
		OK      bool `json:"ok"`
		Deleted int  `json:"deleted"`
	}
)

// MarshalJSON writes the response in one pass: the stored envelopes are the server's
// own encoding and are copied as they are, not re-validated.
func (r fetchResponse) MarshalJSON() ([]byte, error) {
	return r.appendJSON(make([]byte, 0, r.encodedSizeBound())), nil
}

// encodedSizeBound is at least the length of the response's JSON.
func (r fetchResponse) encodedSizeBound() int {
	n := 64 + 2*len(r.Next) // a cursor is plain ASCII; doubled for any escaping
	for _, e := range r.Envelopes {
		n += len(e.Envelope) + fetchEnvelopeOverhead
	}
	return n
}

// appendJSON appends the response's JSON to b.
func (r fetchResponse) appendJSON(b []byte) []byte {
	b = append(b, `{"ok":`...)
	b = strconv.AppendBool(b, r.OK)
	b = append(b, `,"envelopes":[`...)
	for i, e := range r.Envelopes {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"accepted_at":`...)
		b = strconv.AppendInt(b, e.AcceptedAt, 10)
		b = append(b, `,"expires_at":`...)
		b = strconv.AppendInt(b, e.ExpiresAt, 10)
		b = append(b, `,"envelope":`...)
		b = append(b, e.Envelope...)
		b = append(b, '}')
	}
	next, _ := json.Marshal(r.Next) // a string always marshals
	b = append(b, `],"next":`...)
	b = append(b, next...)
	return append(b, '}')
}

// clientResponse is every response field, as the client decodes them (fields it does
// not know are ignored: a newer server may add some).
type clientResponse struct {
	OK         bool
	Error      *Error
	Bundle     *KeyBundle
	AcceptedAt int64
	Duplicate  bool
	Envelopes  []clientFetched
	Next       string
	Deleted    int
}

type clientFetched struct {
	AcceptedAt, ExpiresAt int64
	Envelope              *Envelope
}

// decodeClientResponse decodes a response frame with the strict reader (one pass; each
// envelope decoded by DecodeEnvelope).
func decodeClientResponse(frame []byte) (*clientResponse, error) {
	ms, err := readObject(frame)
	if err != nil {
		return nil, fmt.Errorf("response: %w", err)
	}
	var r clientResponse
	for _, m := range ms {
		switch m.key {
		case "ok":
			r.OK = string(m.val) == "true"
		case "error":
			if string(m.val) == "null" {
				continue
			}
			r.Error = &Error{}
			if err := json.Unmarshal(m.val, r.Error); err != nil {
				return nil, fmt.Errorf("%w: response error: %w", ErrMalformed, err)
			}
		case "bundle":
			r.Bundle = &KeyBundle{}
			if err := r.Bundle.UnmarshalJSON(m.val); err != nil {
				return nil, fmt.Errorf("response: %w", err)
			}
		case "accepted_at":
			if r.AcceptedAt, err = jsonInt("response accepted_at", m.val, 0, 1<<53); err != nil {
				return nil, err
			}
		case "duplicate":
			r.Duplicate = string(m.val) == "true"
		case "next":
			if r.Next, err = jsonString("response next", m.val); err != nil {
				return nil, err
			}
		case "deleted":
			n, err := jsonInt("response deleted", m.val, 0, 1<<31)
			if err != nil {
				return nil, err
			}
			r.Deleted = int(n)
		case "envelopes":
			el, err := jsonArray("response envelopes", m.val)
			if err != nil {
				return nil, err
			}
			r.Envelopes = make([]clientFetched, 0, len(el))
			for _, e := range el {
				f, err := decodeFetched(e)
				if err != nil {
					return nil, err
				}
				r.Envelopes = append(r.Envelopes, f)
			}
		}
	}
	return &r, nil
}

// decodeFetched decodes one entry of a fetch response.
func decodeFetched(v []byte) (clientFetched, error) {
	var f clientFetched
	ms, err := readObject(v)
	if err != nil {
		return f, fmt.Errorf("fetch entry: %w", err)
	}
	for _, m := range ms {
		switch m.key {
		case "accepted_at":
			f.AcceptedAt, err = jsonInt("fetch entry accepted_at", m.val, 0, 1<<53)
		case "expires_at":
			f.ExpiresAt, err = jsonInt("fetch entry expires_at", m.val, 0, 1<<53)
		case "envelope":
			f.Envelope, err = DecodeEnvelope(m.val)
		}
		if err != nil {
			return f, err
		}
	}
	if f.Envelope == nil {
		return f, fmt.Errorf("%w: fetch entry without an envelope", ErrMalformed)
	}
	return f, nil
}
