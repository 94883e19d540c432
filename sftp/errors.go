package sftp

import (
	"errors"
	"io/fs"
	"os"
	"strings"
	"syscall"

	pkgsftp "github.com/pkg/sftp"
)

// Errors of this package; classify with errors.Is.
var (
	// ErrInvalidConfig is wrapped by Config validation errors.
	ErrInvalidConfig = errors.New("invalid sftp config")
	// ErrInvalidExportName reports an export name outside [A-Za-z0-9._-]{1,64}.
	ErrInvalidExportName = errors.New("invalid export name")
	// ErrDuplicateExport reports an export name used twice.
	ErrDuplicateExport = errors.New("duplicate export name")
	// ErrMissingRoot reports an export root that is not an existing directory.
	ErrMissingRoot = errors.New("export root is not an existing directory")
	// ErrUnauthenticated is returned by Server.Handle for a connection without a
	// known identity; the connection is closed with core.CloseAuthRequired and a
	// reason that starts "unauthenticated".
	ErrUnauthenticated = errors.New("unauthenticated")
	// ErrTooManySessions reports that an identity has Limits.MaxSessionsPerIdentity
	// sessions open already.
	ErrTooManySessions = errors.New("too many concurrent sftp sessions")
	// ErrPacketTooLarge reports an inbound packet over Limits.MaxPacketSize; it
	// ends the session.
	ErrPacketTooLarge = errors.New("sftp packet too large")
	// ErrBadMessage reports a packet the server could not parse: it is answered
	// SSH_FX_BAD_MESSAGE (SSH_FX_OP_UNSUPPORTED for an unknown type), and the session
	// ends.
	ErrBadMessage = errors.New("bad sftp message")
	// ErrIdleTimeout reports a session ended after Limits.IdleTimeout without a
	// packet.
	ErrIdleTimeout = errors.New("sftp session idle timeout")
	// ErrTooManyHandles is the SSH_FX_FAILURE text of an open beyond
	// Limits.MaxHandles.
	ErrTooManyHandles = errors.New("too many open handles")
)

// Status errors the handlers answer with.
var (
	errNoSuchFile  = pkgsftp.ErrSSHFxNoSuchFile
	errPermission  = pkgsftp.ErrSSHFxPermissionDenied
	errUnsupported = pkgsftp.ErrSSHFxOpUnsupported
	errFailure     = pkgsftp.ErrSSHFxFailure
)

// isEscape reports os.Root's "path escapes from parent" error, which has no
// exported sentinel.
func isEscape(err error) bool {
	return err != nil && strings.Contains(err.Error(), "path escapes from parent")
}

// statusErr maps a backend error onto the SFTP status the client gets: escapes and
// invalid names are permission denied, missing names no such file; other errors keep
// their errno (which pkg/sftp maps) or become a failure with their text.
func statusErr(err error) error {
	if err == nil {
		return nil
	}
	var fx *pkgsftp.StatusError
	switch {
	case errors.As(err, &fx):
		return err
	case errors.Is(err, pkgsftp.ErrSSHFxNoSuchFile), errors.Is(err, pkgsftp.ErrSSHFxPermissionDenied),
		errors.Is(err, pkgsftp.ErrSSHFxOpUnsupported), errors.Is(err, pkgsftp.ErrSSHFxFailure):
		return err
	case errors.Is(err, ErrEscapes) || isEscape(err):
		return errPermission
	case errors.Is(err, fs.ErrNotExist):
		return errNoSuchFile
	case errors.Is(err, fs.ErrPermission), errors.Is(err, syscall.ELOOP), errors.Is(err, syscall.EINVAL):
		return errPermission
	case errors.Is(err, ErrUnsupported), errors.Is(err, errors.ErrUnsupported):
		return errUnsupported
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno // pkg/sftp maps errnos itself
	}
	return errors.New(failureText(err))
}

// failureText is an error's text for a SSH_FX_FAILURE status, without the operation
// and path os errors prefix.
func failureText(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	var le *os.LinkError
	if errors.As(err, &le) {
		return le.Err.Error()
	}
	return err.Error()
}
