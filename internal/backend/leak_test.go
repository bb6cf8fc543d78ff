package backend_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine they started is
// still running when they end. (Started as a stdio server by
// TestStdioResultLimit, the binary serves instead.)
func TestMain(m *testing.M) {
	serveStdioIfAsked()
	goleak.VerifyTestMain(m)
}
