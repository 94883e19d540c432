package core_test

import (
	"errors"
	"fmt"
	"io"
	"os"
	"testing"

	"github.com/alknet/alknet/core"
)

func TestErrorTexts(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{core.ErrConnectionClosed, "connection closed"},
		{core.ErrStreamClosed, "stream closed"},
		{core.ErrStreamTimeout, "stream timed out"},
		{core.ErrAuthRequired, "authentication required"},
		{core.ErrIdentityAlreadySet, "connection identity already set"},
		{&core.StreamError{Err: io.ErrUnexpectedEOF}, "stream error: unexpected EOF"},
		{&core.StreamError{Op: "read", Err: io.ErrUnexpectedEOF}, "stream error: read: unexpected EOF"},
		{&core.StoreError{Kind: core.StoreBackend, Detail: "x"}, "backend error: x"},
		{&core.StoreError{Kind: core.StoreNotFound, Detail: "x"}, "not found: x"},
		{&core.StoreError{Kind: core.StoreSerialization, Detail: "x"}, "serialization error: x"},
		{&core.ConfigError{Msg: "duplicate peer_id: a"}, "duplicate peer_id: a"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
}

// TestErrorsIsMapping checks how errors classify: wrapped sentinels stay reachable, a
// StreamError exposes its cause, and the error types match only their own sentinel.
func TestErrorsIsMapping(t *testing.T) {
	cause := errors.New("connection reset by peer")
	tests := []struct {
		name   string
		err    error
		is     []error
		isNot  []error
		asType bool // errors.As *core.StreamError should succeed
	}{
		{
			name:  "wrapped connection closed",
			err:   fmt.Errorf("accept: %w", core.ErrConnectionClosed),
			is:    []error{core.ErrConnectionClosed},
			isNot: []error{core.ErrStreamClosed, core.ErrStreamTimeout, core.ErrAuthRequired},
		},
		{
			name:  "timeout keeps the deadline cause",
			err:   fmt.Errorf("%w: %w", core.ErrStreamTimeout, os.ErrDeadlineExceeded),
			is:    []error{core.ErrStreamTimeout, os.ErrDeadlineExceeded},
			isNot: []error{core.ErrConnectionClosed},
		},
		{
			name:   "stream error wraps its cause",
			err:    &core.StreamError{Op: "write", Err: cause},
			is:     []error{cause},
			isNot:  []error{core.ErrStreamClosed, core.ErrConnectionClosed},
			asType: true,
		},
		{
			name:   "stream error around a sentinel",
			err:    fmt.Errorf("handler: %w", &core.StreamError{Err: core.ErrStreamClosed}),
			is:     []error{core.ErrStreamClosed},
			isNot:  []error{core.ErrConnectionClosed},
			asType: true,
		},
		{
			name:  "not found store error",
			err:   fmt.Errorf("lookup: %w", &core.StoreError{Kind: core.StoreNotFound, Detail: "peer a"}),
			is:    []error{core.ErrNotFound},
			isNot: []error{core.ErrInvalidConfig},
		},
		{
			name:  "backend store error is not not-found",
			err:   &core.StoreError{Kind: core.StoreBackend, Detail: "disk", Err: io.ErrShortWrite},
			is:    []error{io.ErrShortWrite},
			isNot: []error{core.ErrNotFound},
		},
		{
			name:  "serialization store error is not not-found",
			err:   &core.StoreError{Kind: core.StoreSerialization, Detail: "json"},
			isNot: []error{core.ErrNotFound},
		},
		{
			name:  "config error",
			err:   &core.ConfigError{Msg: "bad"},
			is:    []error{core.ErrInvalidConfig},
			isNot: []error{core.ErrNotFound},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, target := range tt.is {
				if !errors.Is(tt.err, target) {
					t.Errorf("errors.Is(%v, %v) = false, want true", tt.err, target)
				}
			}
			for _, target := range tt.isNot {
				if errors.Is(tt.err, target) {
					t.Errorf("errors.Is(%v, %v) = true, want false", tt.err, target)
				}
			}
			var se *core.StreamError
			if got := errors.As(tt.err, &se); got != tt.asType {
				t.Errorf("errors.As(*StreamError) = %v, want %v", got, tt.asType)
			}
		})
	}
}

func TestSentinelsDistinct(t *testing.T) {
	all := []error{
		core.ErrConnectionClosed, core.ErrStreamClosed, core.ErrStreamTimeout, core.ErrAuthRequired,
		core.ErrIdentityAlreadySet, core.ErrInvalidALPN, core.ErrDuplicateALPN, core.ErrInvalidConfig,
		core.ErrNotFound, core.ErrNotSerializable, core.ErrInvalidFingerprint,
	}
	for i, a := range all {
		for j, b := range all {
			if i != j && errors.Is(a, b) {
				t.Errorf("errors.Is(%v, %v) = true; sentinels must be distinct", a, b)
			}
		}
	}
}

func TestCloseCodes(t *testing.T) {
	// The values are part of the wire contract (ARCHITECTURE.md, close codes).
	tests := []struct {
		name string
		got  uint32
		want uint32
	}{
		{"CloseNormal", core.CloseNormal, 0},
		{"CloseInternalError", core.CloseInternalError, 1},
		{"CloseAuthRequired", core.CloseAuthRequired, 2},
		{"CloseRefused", core.CloseRefused, 3},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s = %d, want %d", tt.name, tt.got, tt.want)
		}
	}
}
