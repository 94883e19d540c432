package core

import (
	"errors"
	"fmt"
)

// Sentinel errors shared by every handler and transport. Classify with [errors.Is];
// transports wrap the underlying error so that both the sentinel and the original cause
// stay reachable.
var (
	// ErrConnectionClosed reports that the peer or the transport closed the connection.
	// For a handler it is a clean exit.
	ErrConnectionClosed = errors.New("connection closed")
	// ErrStreamClosed reports that one stream is gone (reset or stopped by the peer), or
	// that a single-stream connection cannot open another stream.
	ErrStreamClosed = errors.New("stream closed")
	// ErrStreamTimeout reports that a stream deadline or an idle timeout expired.
	ErrStreamTimeout = errors.New("stream timed out")
	// ErrAuthRequired is returned by a handler whose peer exhausted its authentication
	// attempts. The endpoint logs it as an auth failure and closes with [CloseAuthRequired].
	ErrAuthRequired = errors.New("authentication required")
	// ErrIdentityAlreadySet is returned by [Connection.SetIdentity] on its second call.
	ErrIdentityAlreadySet = errors.New("connection identity already set")
	// ErrInvalidALPN is returned by [Registry.Register] for an empty, over-long or
	// reserved protocol name.
	ErrInvalidALPN = errors.New("invalid ALPN")
	// ErrDuplicateALPN is returned by [Registry.Register] when the ALPN is taken.
	ErrDuplicateALPN = errors.New("duplicate ALPN")
	// ErrInvalidConfig is wrapped by every [DynamicConfig] validation error.
	ErrInvalidConfig = errors.New("invalid config")
	// ErrNotFound is wrapped by store errors for a missing entry.
	ErrNotFound = errors.New("not found")
	// ErrNotSerializable is returned when something tries to marshal [Capabilities].
	ErrNotSerializable = errors.New("capabilities are not serializable")
)

// Application close codes carried by [Connection.Close] (the QUIC application error code;
// single-stream transports have no code and just close). The reason string is the error
// text and never carries a secret.
const (
	// CloseNormal is a normal close: the handler finished, no handler exists for the ALPN,
	// or the endpoint is shutting down.
	CloseNormal uint32 = 0
	// CloseInternalError means the handler failed or panicked.
	CloseInternalError uint32 = 1
	// CloseAuthRequired means the peer did not authenticate.
	CloseAuthRequired uint32 = 2
	// CloseRefused means the endpoint refused the connection because of a limit
	// (connections per IP, total connections) before any handler ran.
	CloseRefused uint32 = 3
	// CloseIdleTimeout means the connection carried no traffic for [Limits.IdleTimeout]
	// while its handler did not mark it busy.
	CloseIdleTimeout uint32 = 4
	// CloseLimitExceeded means the peer exceeded a per-connection limit that cannot be
	// answered on a stream of its own (a memory budget on a single-stream connection);
	// the reason names the limit.
	CloseLimitExceeded uint32 = 5
)

// StreamError wraps a transport failure that has no sentinel of its own.
// Its text is "stream error: <cause>".
type StreamError struct {
	Op  string // the operation that failed, such as "read" or "open"; may be empty
	Err error  // the transport's error
}

// Error returns "stream error: [op: ]<cause>".
func (e *StreamError) Error() string {
	if e.Op == "" {
		return fmt.Sprintf("stream error: %v", e.Err)
	}
	return fmt.Sprintf("stream error: %s: %v", e.Op, e.Err)
}

// Unwrap returns the transport's error.
func (e *StreamError) Unwrap() error { return e.Err }

// CloseError reports a connection that was closed with an application close code (QUIC
// carries one; see CloseNormal and the other Close constants). errors.Is(err,
// ErrConnectionClosed) holds for it, and Err keeps the transport's own error.
type CloseError struct {
	Code   uint32 // the application close code
	Reason string // the reason text the closing side sent
	Remote bool   // true when the peer closed
	Err    error  // the transport's error
}

// Error says who closed, the code and the reason.
func (e *CloseError) Error() string {
	who := "locally"
	if e.Remote {
		who = "by peer"
	}
	if e.Reason == "" {
		return fmt.Sprintf("connection closed %s (code %d)", who, e.Code)
	}
	return fmt.Sprintf("connection closed %s (code %d): %s", who, e.Code, e.Reason)
}

// Unwrap returns ErrConnectionClosed and the transport's error.
func (e *CloseError) Unwrap() []error { return []error{ErrConnectionClosed, e.Err} }
