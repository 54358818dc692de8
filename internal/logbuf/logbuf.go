// Package logbuf is a log sink for tests: a buffer that a server's
// goroutines write log lines to while the test reads what was logged.
package logbuf

import (
	"strings"
	"sync"
)

// Buffer is an io.Writer safe for concurrent writes and reads. The zero
// value is ready to use.
type Buffer struct {
	mu sync.Mutex
	b  strings.Builder
}

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
