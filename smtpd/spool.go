package smtpd

import (
	"fmt"
	"io"
	"os"
	"sync"
)

// spoolKeepBytes is the largest spool file kept as it is between two
// messages; a larger one is truncated before it is kept, so one big
// message does not hold its disk space for the rest of the connection.
const spoolKeepBytes = 1 << 20

// spool is a connection's spool file, kept from one message to the next.
//
// Creating a file costs an inode, and freeing one at every message is what
// made creates expensive: on ext4 (without a journal, and with inode
// tables not yet written back) the allocator skips recently freed inodes,
// one look-up each, so a create per message behind thousands of recent
// unlinks cost more CPU than everything else a delivery does. One
// anonymous file per connection, rewritten from offset 0, costs one inode
// per connection and nothing per message.
type spool struct {
	mu     sync.Mutex
	idle   *os.File // kept for the next message; nil when none or taken
	closed bool     // the connection is gone: files given back are closed
}

// take returns the connection's spool file, or a new anonymous one in dir
// when it has none free (a first message, or a BDAT transfer still
// running while the next starts). The file is positioned at 0; what it
// held before is garbage past the size its new writer records.
func (sp *spool) take(dir string) (*os.File, error) {
	sp.mu.Lock()
	f := sp.idle
	sp.idle = nil
	sp.mu.Unlock()
	if f != nil {
		if _, err := f.Seek(0, io.SeekStart); err == nil {
			return f, nil
		}
		f.Close()
	}
	f, err := os.CreateTemp(dir, "smtpd-*.eml")
	if err != nil {
		return nil, fmt.Errorf("creating spool file: %w", err)
	}
	// Unlinked at once: neither a vanished client nor a crash leaves
	// anything behind; the open descriptor is all that is left.
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return nil, fmt.Errorf("unlinking spool file: %w", err)
	}
	return f, nil
}

// give hands f back after a message of size octets is done with: nothing
// may read it afterwards. It is kept for the next message unless the
// connection is gone or another file is already kept.
func (sp *spool) give(f *os.File, size int64) {
	if size > spoolKeepBytes {
		if err := f.Truncate(0); err != nil {
			f.Close()
			return
		}
	}
	sp.mu.Lock()
	if sp.closed || sp.idle != nil {
		sp.mu.Unlock()
		f.Close()
		return
	}
	sp.idle = f
	sp.mu.Unlock()
}

// close closes the kept file; files given back later are closed too.
func (sp *spool) close() {
	sp.mu.Lock()
	f := sp.idle
	sp.idle, sp.closed = nil, true
	sp.mu.Unlock()
	if f != nil {
		f.Close()
	}
}
