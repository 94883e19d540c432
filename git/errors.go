package git

import "errors"

// Errors of this package; classify with errors.Is.
var (
	// ErrNotFound is the answer to a path that names no repository the identity may
	// read: missing, malformed, outside the root, or not readable for it.
	ErrNotFound = errors.New("repository not found")
	// ErrBadRequest reports a request line or SSH command that cannot be parsed.
	ErrBadRequest = errors.New("bad git request")
	// ErrRequestTooLong reports a request line longer than Limits.MaxRequestLine.
	ErrRequestTooLong = errors.New("git request line too long")
	// ErrReadOnly is the answer to a push by an identity without a write scope.
	ErrReadOnly = errors.New("push not allowed: read-only access")
	// ErrUnauthenticated is returned by Server.Handle for a connection without a
	// known client certificate.
	ErrUnauthenticated = errors.New("unauthenticated")
	// ErrTooManyOperations reports an identity over Limits.MaxOperationsPerIdentity.
	ErrTooManyOperations = errors.New("too many concurrent git operations")
	// ErrPushRefused reports a push refused by a push rule.
	ErrPushRefused = errors.New("push refused")
	// ErrPackTooLarge reports a pushed pack over Limits.MaxPackSize.
	ErrPackTooLarge = errors.New("pack too large")
	// ErrIdleTimeout reports an operation that stayed silent for Limits.IdleTimeout.
	ErrIdleTimeout = errors.New("git operation idle timeout")
	// ErrTimeout reports an operation that ran longer than Limits.MaxDuration.
	ErrTimeout = errors.New("git operation took too long")
	// ErrInvalidName reports a repository name Init or the resolver refuses.
	ErrInvalidName = errors.New("invalid repository name")
	// ErrExists reports that Init found the repository already there.
	ErrExists = errors.New("repository already exists")
	// ErrInvalidConfig is wrapped by Config validation errors.
	ErrInvalidConfig = errors.New("invalid git config")
	// ErrNoGit reports that the binary engine found no git executable.
	ErrNoGit = errors.New("git executable not found")
)
