package queue

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// TestAttemptsAndStats: OnAttempt hears each attempt's result, and Stats
// counts the queue and dates its oldest message.
func TestAttemptsAndStats(t *testing.T) {
	remote := newFakeRemote(t)
	remote.script("bob@b.test", smtpErr(451, smtp.EnhancedCode{4, 7, 1}, "greylisted, try later"), nil)
	var mu sync.Mutex
	var results []string
	e := newEnv(t, remote, func(o *Options) {
		o.OnAttempt = func(r string) { mu.Lock(); results = append(results, r); mu.Unlock() }
	})
	ctx := context.Background()
	if n, oldest, err := e.q.Stats(ctx); err != nil || n != 0 || !oldest.IsZero() {
		t.Fatalf("empty queue: Stats = %d, %v, %v", n, oldest, err)
	}
	queued := e.clock.Now()
	id := e.enqueue("alice@a.test", "bob@b.test")
	waitFor(t, "first attempt", func() bool {
		_, reply := e.rcptState(id, "bob@b.test")
		return strings.HasPrefix(reply, "451 4.7.1")
	})
	n, oldest, err := e.q.Stats(ctx)
	if err != nil || n != 1 || !oldest.Equal(queued) {
		t.Fatalf("Stats = %d, %v, %v; want 1, %v", n, oldest, err, queued)
	}
	e.advance(6 * time.Minute)
	waitFor(t, "message leaves the queue", func() bool { return e.gone(id) })
	if n, _, err := e.q.Stats(ctx); err != nil || n != 0 {
		t.Fatalf("after delivery Stats = %d, %v", n, err)
	}
	// The result is reported just after it is recorded: wait for it.
	waitFor(t, "second attempt reported", func() bool { mu.Lock(); defer mu.Unlock(); return len(results) == 2 })
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(results, []string{"deferred", "delivered"}) {
		t.Fatalf("attempts = %q", results)
	}
}
