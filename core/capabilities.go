package core

import (
	"fmt"
	"log/slog"
	"maps"
	"slices"
)

// Capability key prefixes. The assembly layer fills a [Capabilities] value with
// outbound secrets under keys such as "api_key:github" or "http_token:gitea".
const (
	CapabilityAPIKey    = "api_key:"
	CapabilityHTTPToken = "http_token:"
)

// Capabilities is an immutable map of outbound secrets handed to a handler or an
// operation by the assembly layer (never read from the environment, never sent on the
// wire). It cannot be serialised: every fmt verb, slog and String print "[REDACTED]",
// and MarshalJSON, MarshalText and GobEncode fail with [ErrNotSerializable].
// The zero value is empty and usable.
type Capabilities struct {
	// The map sits behind a func: where fmt or slog cannot call Format or LogValue (a
	// Capabilities in an unexported field of another struct, printed whole) they fall
	// back to reflection, and a func prints as an address whatever the verb, never as
	// the secret bytes (a map or a pointer to a struct would).
	entries func() map[string][]byte
}

// NewCapabilities copies entries into a new Capabilities value. The caller may wipe its
// own copies afterwards.
func NewCapabilities(entries map[string][]byte) Capabilities {
	m := make(map[string][]byte, len(entries))
	for k, v := range entries {
		m[k] = slices.Clone(v)
	}
	return Capabilities{entries: func() map[string][]byte { return m }}
}

// get returns the map (nil for the zero value).
func (c Capabilities) get() map[string][]byte {
	if c.entries == nil {
		return nil
	}
	return c.entries()
}

// Lookup returns a copy of the secret stored under the exact key.
func (c Capabilities) Lookup(key string) ([]byte, bool) {
	v, ok := c.get()[key]
	if !ok {
		return nil, false
	}
	return slices.Clone(v), true
}

// Get returns the credential for service svc: "api_key:<svc>" first, then
// "http_token:<svc>". The result is a copy; wipe it when done.
func (c Capabilities) Get(svc string) ([]byte, bool) {
	if v, ok := c.Lookup(CapabilityAPIKey + svc); ok {
		return v, true
	}
	return c.Lookup(CapabilityHTTPToken + svc)
}

// Keys returns the capability keys (not the secrets), sorted.
func (c Capabilities) Keys() []string { return slices.Sorted(maps.Keys(c.get())) }

// Len returns the number of entries.
func (c Capabilities) Len() int { return len(c.get()) }

// Wipe zeroes every secret in place (best effort: copies handed out earlier are the
// holder's to wipe). Every value sharing this map is affected.
func (c Capabilities) Wipe() {
	for _, v := range c.get() {
		clear(v)
	}
}

// String returns "[REDACTED]".
func (Capabilities) String() string { return redacted }

// GoString returns "[REDACTED]".
func (Capabilities) GoString() string { return redacted }

// Format prints "[REDACTED]" for every verb.
func (Capabilities) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(redacted)) }

// LogValue prints "[REDACTED]" in slog output.
func (Capabilities) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalJSON fails: capabilities are never serialised.
func (Capabilities) MarshalJSON() ([]byte, error) { return nil, ErrNotSerializable }

// MarshalText fails: capabilities are never serialised.
func (Capabilities) MarshalText() ([]byte, error) { return nil, ErrNotSerializable }

// GobEncode fails: capabilities are never serialised.
func (Capabilities) GobEncode() ([]byte, error) { return nil, ErrNotSerializable }
