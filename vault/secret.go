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

// secretBytes holds secret key material. It is always used through a pointer, so that
// printing any struct that contains one shows only an address.
type secretBytes struct {
	b []byte
}

// newSecret copies b into a new secretBytes.
func newSecret(b []byte) *secretBytes {
	return &secretBytes{b: append(make([]byte, 0, len(b)), b...)}
}

// bytes returns the held bytes (nil when s is nil or wiped).
func (s *secretBytes) bytes() []byte {
	if s == nil {
		return nil
	}
	return s.b
}

// clone returns an independent copy of s (nil for nil).
func (s *secretBytes) clone() *secretBytes {
	if s == nil {
		return nil
	}
	return newSecret(s.b)
}

// wipe zeroes the held bytes. The slice is kept (zeroed), so white-box tests can check
// that the memory was cleared; every reader treats a wiped secret as destroyed.
func (s *secretBytes) wipe() {
	if s != nil {
		clear(s.b)
	}
}

// wipe zeroes b.
func wipe(b []byte) { clear(b) }
