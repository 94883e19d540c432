package call

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests when goroutines outlive them: every Conn, stream
// reader and handler the engine starts must be gone once the tests have cleaned up.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
