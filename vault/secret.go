package vault

import (
	"fmt"
	"log/slog"
)

// Redacted is what every secret-bearing type of this package prints, logs and marshals
// as, in every fmt verb, in encoding/json and encoding.TextMarshaler, and in log/slog.
const Redacted = "[REDACTED]"

// redacted is embedded (as a value) in every secret-bearing type. Its methods are
// promoted to both the value and the pointer type, so no formatting or marshalling path
// reaches the secret bytes. The bytes themselves sit behind a pointer (secretBytes), so
// even reflection-based printing of a struct that holds a secret type in an unexported
// field shows an address, never the contents.
type redacted struct{}

// String returns [Redacted].
func (redacted) String() string { return Redacted }

// GoString returns [Redacted] (the %#v verb).
func (redacted) GoString() string { return Redacted }

// Format prints [Redacted] for every verb and flag.
func (redacted) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(Redacted)) }

// MarshalJSON returns the JSON string "[REDACTED]".
func (redacted) MarshalJSON() ([]byte, error) { return []byte(`"` + Redacted + `"`), nil }

// MarshalText returns [Redacted].
func (redacted) MarshalText() ([]byte, error) { return []byte(Redacted), nil }

// LogValue makes log/slog print [Redacted].
func (redacted) LogValue() slog.Value { return slog.StringValue(Redacted) }

// UnmarshalJSON refuses: a secret is never decoded from JSON, and a redacted value
// cannot be turned back into one. The error wraps [ErrRedacted].
func (*redacted) UnmarshalJSON([]byte) error {
	return fmt.Errorf("%w: secrets are never decoded from JSON", ErrRedacted)
}

// UnmarshalText refuses, like UnmarshalJSON.
func (*redacted) UnmarshalText([]byte) error {
	return fmt.Errorf("%w: secrets are never decoded from text", ErrRedacted)
}

// secretBytes holds secret key material. It is always used through a pointer and
// keeps the bytes behind a second pointer: fmt dereferences a pointer only at the top
// level of what it prints (for example in a bad-verb report such as %!s(...)), so any
// struct that contains a secret type, even in an unexported field that fmt cannot call
// methods on, prints at most addresses, never the contents.
type secretBytes struct {
	p *[]byte
}

// newSecret copies b into a new secretBytes.
func newSecret(b []byte) *secretBytes {
	return wrapSecret(append(make([]byte, 0, len(b)), b...))
}

// wrapSecret takes ownership of b.
func wrapSecret(b []byte) *secretBytes { return &secretBytes{p: &b} }

// bytes returns the held bytes (nil when s is nil).
func (s *secretBytes) bytes() []byte {
	if s == nil || s.p == nil {
		return nil
	}
	return *s.p
}

// clone returns an independent copy of s (nil for nil).
func (s *secretBytes) clone() *secretBytes {
	if s == nil {
		return nil
	}
	return newSecret(s.bytes())
}

// wipe zeroes the held bytes. The slice is kept (zeroed), so white-box tests can check
// that the memory was cleared; the owners drop their reference after wiping.
func (s *secretBytes) wipe() {
	clear(s.bytes())
}

// wipe zeroes b.
func wipe(b []byte) { clear(b) }
