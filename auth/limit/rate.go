package limit

import (
	"net/netip"
	"sync"
	"time"
)

// maxRateEntries bounds the rate table. Past it (after dropping entries
// whose bucket has refilled), new client keys are let through untracked:
// a flood from that many distinct /64s is beyond what a per-address rate
// can stop, and the connection limits still hold.
const maxRateEntries = 1 << 16

// rateLimiter is a token bucket per client key: a burst of n connections,
// refilled at n per window, the way an administrator reads "n per minute".
type rateLimiter struct {
	n      float64
	window time.Duration

	mu        sync.Mutex
	buckets   map[netip.Prefix]*bucket
	lastSweep time.Time
}

type bucket struct {
	tokens float64
	at     time.Time
}

func newRateLimiter(n int, window time.Duration) *rateLimiter {
	return &rateLimiter{n: float64(n), window: window, buckets: map[netip.Prefix]*bucket{}}
}

// allow takes a token for k at now.
func (r *rateLimiter) allow(k netip.Prefix, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now.Sub(r.lastSweep) >= r.window {
		r.sweepLocked(now)
	}
	b := r.buckets[k]
	if b == nil {
		if len(r.buckets) >= maxRateEntries {
			r.sweepLocked(now)
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

func (r *rateLimiter) refill(b *bucket, now time.Time) {
	if d := now.Sub(b.at); d > 0 {
		b.tokens = min(r.n, b.tokens+r.n*float64(d)/float64(r.window))
		b.at = now
	}
}

// sweepLocked drops buckets that have refilled: they hold no information.
func (r *rateLimiter) sweepLocked(now time.Time) {
	r.lastSweep = now
	for k, b := range r.buckets {
		r.refill(b, now)
		if b.tokens >= r.n {
			delete(r.buckets, k)
		}
	}
}
