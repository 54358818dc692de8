package limit

import (
	"sync"
	"time"
)

// maxRateEntries bounds a Rate's table. Past it (after dropping entries
// whose bucket has refilled), new keys are let through untracked: a flood
// from that many distinct /64s (or sender addresses) is beyond what a
// per-key rate can stop, and the other limits still hold.
const maxRateEntries = 1 << 16

// fullSweepEvery: a full table is swept at most every window/fullSweepEvery.
const fullSweepEvery = 16

// Rate is a token bucket per key: a burst of n events, refilled at n per
// window, the way an administrator reads "n per minute". Conns keys it by
// client address; smtpd's port-25 gate by envelope sender. The table
// forgets keys whose bucket has refilled and holds at most maxRateEntries.
// Safe for concurrent use.
type Rate[K comparable] struct {
	n      float64
	window time.Duration

	mu        sync.Mutex
	buckets   map[K]*bucket
	lastSweep time.Time
}

type bucket struct {
	tokens float64
	at     time.Time
}

// NewRate returns a Rate allowing n events per window for each key.
func NewRate[K comparable](n int, window time.Duration) *Rate[K] {
	return &Rate[K]{n: float64(n), window: window, buckets: map[K]*bucket{}}
}

// Allow takes a token for k at now and reports whether there was one.
func (r *Rate[K]) Allow(k K, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now.Sub(r.lastSweep) >= r.window {
		r.sweepLocked(now)
	}
	b := r.buckets[k]
	if b == nil {
		if len(r.buckets) >= maxRateEntries {
			// A full table is swept at most every fullSweepEvery of the
			// window: sweeping it for every new key of a flood would cost
			// the whole table each time.
			if now.Sub(r.lastSweep) >= r.window/fullSweepEvery {
				r.sweepLocked(now)
			}
			if len(r.buckets) >= maxRateEntries {
				return true
			}
		}
		b = &bucket{tokens: r.n, at: now}
		r.buckets[k] = b
	} else {
		r.refill(b, now)
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// Len is the number of keys tracked.
func (r *Rate[K]) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.buckets)
}

func (r *Rate[K]) refill(b *bucket, now time.Time) {
	if d := now.Sub(b.at); d > 0 {
		b.tokens = min(r.n, b.tokens+r.n*float64(d)/float64(r.window))
		b.at = now
	}
}

// sweepLocked drops buckets that have refilled: they hold no information.
func (r *Rate[K]) sweepLocked(now time.Time) {
	r.lastSweep = now
	for k, b := range r.buckets {
		r.refill(b, now)
		if b.tokens >= r.n {
			delete(r.buckets, k)
		}
	}
}
