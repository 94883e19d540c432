package ssh_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package when a test leaves goroutines behind: every server,
// client, tunnel and listener the tests start must be gone when they end.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
