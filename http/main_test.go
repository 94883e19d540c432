package http

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests when goroutines outlive them: every request
// handler, subscription, keep-alive pinger and test server must be gone once the
// tests have cleaned up.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
