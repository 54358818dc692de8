package server

import (
	"log/slog"
	"math"
	"sync"
	"time"
)

// Descriptor reserve. Every connection holds a file descriptor, and so
// does what its session opens: the SMTP spool file, a DNS socket, the
// Maildir file being written, an account's index. If connections took
// every descriptor, sessions already in progress would fail (451) on the
// next open. So the accept loops together stop accepting while the live
// connections of the whole process reach the soft RLIMIT_NOFILE less a
// reserve (a quarter of the limit, at least 64 and at most 1024), and
// resume as connections end; meanwhile new ones wait in the kernel's
// accept queue, and a warning is logged at most every 10 s. The limit is read at every accept (one getrlimit), so a
// limit changed while running (prlimit) counts at once. Descriptors held
// by other things (databases, many open accounts) can still run the
// process out: then accept fails with EMFILE and the loop backs off.
var descriptors = &fdBudget{limit: fileLimit}

type fdBudget struct {
	limit func() int // soft RLIMIT_NOFILE; 0 when unknown

	mu     sync.Mutex
	live   int
	wake   chan struct{} // non-nil while an accept loop waits; closed by release
	logged time.Time     // last warning; at most one per fdWarnEvery
}

// fdWarnEvery bounds the warnings while connections come and go at the
// budget.
const fdWarnEvery = 10 * time.Second

// maxConns is how many connections may be live under a descriptor limit
// of n.
func maxConns(n int) int {
	if n <= 0 {
		return math.MaxInt
	}
	reserve := min(max(n/4, 64), 1024)
	return max(n-reserve, n/2)
}

// acquire returns once a connection may be accepted (true), or when stop
// or done is closed (false). It logs when it starts waiting.
func (b *fdBudget) acquire(log *slog.Logger, stop, done <-chan struct{}) bool {
	for {
		b.mu.Lock()
		limit := b.limit()
		if b.live < maxConns(limit) {
			b.live++
			b.mu.Unlock()
			return true
		}
		if b.wake == nil {
			b.wake = make(chan struct{})
			if now := time.Now(); now.Sub(b.logged) >= fdWarnEvery {
				b.logged = now
				log.Warn("file descriptors nearly exhausted: new connections wait in the kernel's queue",
					"conns", b.live, "limit", limit)
			}
		}
		w := b.wake
		b.mu.Unlock()
		select {
		case <-w:
		case <-stop:
			return false
		case <-done:
			return false
		}
	}
}

// release gives back what acquire took.
func (b *fdBudget) release() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.live--
	if b.wake != nil {
		close(b.wake)
		b.wake = nil
	}
}
