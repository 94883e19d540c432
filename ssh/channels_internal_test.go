package ssh

import (
	"context"
	"errors"
	"net"
	"syscall"
	"testing"
	"time"
)

// TestDefaultDialerTimeout: without Config.Dialer, direct-tcpip channels are
// dialled by a net.Dialer whose Timeout is DefaultDialTimeout, which is the
// deadline of the dial's context. The dial is stopped by a control hook before
// any connect, so nothing waits for the timeout.
func TestDefaultDialerTimeout(t *testing.T) {
	custom := &net.Dialer{}
	if got := (&Config{Dialer: custom}).dialer(); got != custom {
		t.Fatalf("dialer() = %v, want Config.Dialer", got)
	}

	d, ok := (&Config{}).dialer().(*net.Dialer)
	if !ok {
		t.Fatalf("default dialer is %T, want *net.Dialer", (&Config{}).dialer())
	}
	if d.Timeout != DefaultDialTimeout {
		t.Fatalf("default dialer Timeout = %v, want DefaultDialTimeout (%v)", d.Timeout, DefaultDialTimeout)
	}

	errStopped := errors.New("stopped before connecting")
	var deadline time.Time
	var hasDeadline bool
	d.ControlContext = func(ctx context.Context, _, _ string, _ syscall.RawConn) error {
		deadline, hasDeadline = ctx.Deadline()
		return errStopped
	}
	before := time.Now()
	_, err := d.DialContext(context.Background(), "tcp", "127.0.0.1:1")
	after := time.Now()
	if !errors.Is(err, errStopped) {
		t.Fatalf("DialContext = %v, want the control hook's error", err)
	}
	if !hasDeadline || deadline.Before(before.Add(DefaultDialTimeout)) || deadline.After(after.Add(DefaultDialTimeout)) {
		t.Fatalf("dial deadline %v (set %v), want DefaultDialTimeout after the dial started (%v..%v)",
			deadline, hasDeadline, before.Add(DefaultDialTimeout), after.Add(DefaultDialTimeout))
	}
}
