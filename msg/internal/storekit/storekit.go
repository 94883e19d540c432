// Package storekit holds what the msg store backends share: input validation, the cursor
// encoding, quota arithmetic and the in-process hub that wakes Notify waiters.
package storekit

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// MaxMailboxLen bounds a mailbox id in bytes. Real ids are 52 z-base-32 characters; the
// bound keeps composite keys small and lets the length fit one byte.
const MaxMailboxLen = 255

// ErrInvalid marks a call whose arguments no store accepts (empty or oversized mailbox,
// a time outside the range of int64 Unix nanoseconds, a non-positive limit).
var ErrInvalid = errors.New("msg: invalid store argument")

// CheckMailbox reports whether mailbox is usable as a mailbox id.
func CheckMailbox(mailbox string) error {
	if mailbox == "" || len(mailbox) > MaxMailboxLen {
		return fmt.Errorf("%w: mailbox id length %d not in 1..%d", ErrInvalid, len(mailbox), MaxMailboxLen)
	}
	return nil
}

// UnixNano returns t as Unix nanoseconds, or an error when t does not fit an int64 of
// nanoseconds (years before 1678 or after 2261, including the zero time).
func UnixNano(what string, t time.Time) (int64, error) {
	ns := t.UnixNano()
	if !time.Unix(0, ns).Equal(t) {
		return 0, fmt.Errorf("%w: %s %v outside the storable range", ErrInvalid, what, t)
	}
	return ns, nil
}

// CheckEnvelope validates what a store needs of an envelope and returns its times in Unix
// nanoseconds.
func CheckEnvelope(mailbox string, acceptedAt, expiresAt time.Time) (acceptedNs, expiresNs int64, err error) {
	if err := CheckMailbox(mailbox); err != nil {
		return 0, 0, err
	}
	if acceptedNs, err = UnixNano("AcceptedAt", acceptedAt); err != nil {
		return 0, 0, err
	}
	if expiresNs, err = UnixNano("ExpiresAt", expiresAt); err != nil {
		return 0, 0, err
	}
	return acceptedNs, expiresNs, nil
}

// CheckLimit validates List's limit.
func CheckLimit(limit int) error {
	if limit <= 0 {
		return fmt.Errorf("%w: list limit %d is not positive", ErrInvalid, limit)
	}
	return nil
}

// OverBudget reports whether List, having taken n envelopes totalling used bytes, must
// stop before one of size bytes under the budget maxBytes (<= 0: no budget). The first
// envelope (n == 0) is always taken.
func OverBudget(maxBytes int64, n int, used int64, size int) bool {
	return maxBytes > 0 && n > 0 && used+int64(size) > maxBytes
}

// InitialCap is the capacity to give a List result: never the caller's announced limit
// beyond a small bound, so a huge limit allocates nothing up front.
func InitialCap(limit int) int { return min(limit, 64) }

// QuotaExceeded reports why a mailbox holding messages and bytes may not accept one more
// envelope of n bytes under the caps maxMessages and maxBytes (a cap <= 0 is unbounded),
// or "" when it may. Callers wrap the reason with msg.ErrQuotaExceeded.
func QuotaExceeded(maxMessages int, maxBytes int64, messages, bytes int64, n int) string {
	if maxMessages > 0 && messages+1 > int64(maxMessages) {
		return fmt.Sprintf("%d of %d messages stored", messages, maxMessages)
	}
	if maxBytes > 0 && bytes+int64(n) > maxBytes {
		return fmt.Sprintf("%d + %d bytes would pass the %d byte cap", bytes, n, maxBytes)
	}
	return ""
}

// Position is a place in a mailbox's fetch order: the AcceptedAt in Unix nanoseconds and
// the store sequence that breaks ties.
type Position struct {
	AcceptedNs int64
	Seq        uint64
}

// Less orders positions by AcceptedAt, then sequence.
func (p Position) Less(o Position) bool {
	if p.AcceptedNs != o.AcceptedNs {
		return p.AcceptedNs < o.AcceptedNs
	}
	return p.Seq < o.Seq
}

// Key encodes p as 16 bytes that sort bytewise in fetch order (the time's sign bit flipped).
func (p Position) Key() [16]byte {
	var k [16]byte
	binary.BigEndian.PutUint64(k[:8], uint64(p.AcceptedNs)^(1<<63))
	binary.BigEndian.PutUint64(k[8:], p.Seq)
	return k
}

// PositionFromKey decodes Key's 16 bytes.
func PositionFromKey(k []byte) (Position, bool) {
	if len(k) != 16 {
		return Position{}, false
	}
	return Position{
		AcceptedNs: int64(binary.BigEndian.Uint64(k[:8]) ^ (1 << 63)),
		Seq:        binary.BigEndian.Uint64(k[8:]),
	}, true
}

// Cursor encodes p for List callers (unpadded base64url of Key).
func (p Position) Cursor() string {
	k := p.Key()
	return base64.RawURLEncoding.EncodeToString(k[:])
}

// encodedCursorLen is the length of every cursor Position.Cursor makes.
var encodedCursorLen = base64.RawURLEncoding.EncodedLen(16)

// ParseCursor decodes a cursor; start reports "" (from the beginning). The length of a
// cursor no store made is checked before decoding anything; callers wrap the error with
// msg.ErrInvalidCursor.
func ParseCursor(c string) (p Position, start bool, err error) {
	if c == "" {
		return Position{}, true, nil
	}
	if len(c) != encodedCursorLen {
		return Position{}, false, fmt.Errorf("length %d, want %d", len(c), encodedCursorLen)
	}
	var k [16]byte
	if n, err := base64.RawURLEncoding.Strict().Decode(k[:], []byte(c)); err != nil || n != 16 {
		return Position{}, false, errors.New("not unpadded base64url")
	}
	p, _ = PositionFromKey(k[:])
	return p, false, nil
}
