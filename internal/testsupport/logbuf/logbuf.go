// Package logbuf is a log sink for tests: an io.Writer that the goroutines
// of the component under test may write to while the test reads it.
package logbuf

import (
	"bytes"
	"sync"
)

// Buffer collects what is written to it.
type Buffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

// Write appends p.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
