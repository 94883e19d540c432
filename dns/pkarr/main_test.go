package pkarr

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package when a test leaves goroutines behind: every relay server,
// client request and republisher loop the tests start must be gone when they end.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
