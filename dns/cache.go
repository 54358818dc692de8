package dns

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// Cache keeps answers from the nameserver for as long as their TTL allows,
// so the lookups every message repeats (the sender's SPF and DMARC records,
// a destination's MX and addresses) cost one exchange per TTL instead of
// one per message, and concurrent identical lookups share one exchange.
//
// What is kept: a NOERROR answer for the smallest TTL of its answer
// records; NXDOMAIN and NODATA for the negative TTL of RFC 2308 §5 (the
// smaller of the SOA record's TTL and its MINIMUM field), and not at all
// without a SOA in the authority section. Both are capped by MaxTTL. A
// temporary failure (SERVFAIL, timeout, network error) is never kept, so a
// resolver that comes back is asked again at once. The cache holds at most
// Size answers; when full, expired answers go first, then arbitrary ones.
//
// A Cache is safe for concurrent use and may be shared by several
// Resolvers that ask the same nameserver.
type Cache struct {
	size   int
	maxTTL time.Duration
	now    func() time.Time

	mu      sync.Mutex
	entries map[cacheKey]cacheEntry
	flights map[cacheKey]*flight
	hits    uint64
	misses  uint64
}

// DefaultCacheSize and DefaultCacheMaxTTL are NewCache's defaults.
const (
	DefaultCacheSize   = 10000
	DefaultCacheMaxTTL = time.Hour
)

type cacheKey struct {
	name  string // lower case, fully qualified
	qtype uint16
}

type cacheEntry struct {
	reply   *dns.Msg // shared read-only; nil with err
	err     error    // an *Error wrapping ErrNotFound, or nil
	expires time.Time
}

// flight is an exchange under way; others asking the same question wait for
// it instead of sending their own.
type flight struct {
	done  chan struct{}
	reply *dns.Msg
	err   error
}

// NewCache returns a cache of at most size answers, each kept at most
// maxTTL. size ≤ 0 and maxTTL ≤ 0 take the defaults.
func NewCache(size int, maxTTL time.Duration) *Cache {
	if size <= 0 {
		size = DefaultCacheSize
	}
	if maxTTL <= 0 {
		maxTTL = DefaultCacheMaxTTL
	}
	return &Cache{
		size:    size,
		maxTTL:  maxTTL,
		now:     time.Now,
		entries: make(map[cacheKey]cacheEntry),
		flights: make(map[cacheKey]*flight),
	}
}

// Stats returns how many lookups were answered from the cache (or by
// another lookup's exchange) and how many went to the nameserver.
func (c *Cache) Stats() (hits, misses uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hits, c.misses
}

// Len returns the number of answers held, expired ones included.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

// peek answers name/qtype from the cache alone; ok is false when it holds
// no live answer (an exchange under way does not count).
func (c *Cache) peek(name string, qtype uint16) (cacheEntry, bool) {
	key := cacheKey{strings.ToLower(dns.Fqdn(name)), qtype}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok || !c.now().Before(e.expires) {
		return cacheEntry{}, false
	}
	c.hits++
	return e, true
}

// lookup answers name/qtype from the cache, from an exchange another
// caller has under way, or by calling ask and keeping what it may.
func (c *Cache) lookup(ctx context.Context, name string, qtype uint16, ask func(context.Context) (*dns.Msg, error)) (*dns.Msg, error) {
	key := cacheKey{strings.ToLower(dns.Fqdn(name)), qtype}
	c.mu.Lock()
	if e, ok := c.entries[key]; ok {
		if c.now().Before(e.expires) {
			c.hits++
			c.mu.Unlock()
			return e.reply, e.err
		}
		delete(c.entries, key)
	}
	if f, ok := c.flights[key]; ok {
		c.hits++
		c.mu.Unlock()
		select {
		case <-f.done:
		case <-ctx.Done():
			return nil, &Error{Name: name, Type: dns.TypeToString[qtype], Err: ErrTemporary, Cause: ctx.Err()}
		}
		// The leader's own deadline may have cut its exchange short; a
		// caller with time left asks for itself.
		if f.err != nil && errors.Is(f.err, ErrTemporary) && ctx.Err() == nil {
			return ask(ctx)
		}
		return f.reply, f.err
	}
	f := &flight{done: make(chan struct{})}
	c.flights[key] = f
	c.misses++
	c.mu.Unlock()

	f.reply, f.err = ask(ctx)

	c.mu.Lock()
	delete(c.flights, key)
	if ttl := c.ttl(f.reply, f.err); ttl > 0 {
		c.makeRoom()
		c.entries[key] = cacheEntry{reply: f.reply, err: f.err, expires: c.now().Add(ttl)}
	}
	c.mu.Unlock()
	close(f.done)
	return f.reply, f.err
}

// ttl is how long an exchange's outcome may be kept; 0: not at all.
func (c *Cache) ttl(reply *dns.Msg, err error) time.Duration {
	var secs uint32
	switch {
	case err == nil && len(reply.Answer) > 0:
		secs = reply.Answer[0].Header().Ttl
		for _, rr := range reply.Answer[1:] {
			secs = min(secs, rr.Header().Ttl)
		}
	case err == nil || errors.Is(err, ErrNotFound):
		soa := negativeSOA(reply, err)
		if soa == nil {
			return 0
		}
		secs = min(soa.Hdr.Ttl, soa.Minttl)
	default:
		return 0
	}
	return min(time.Duration(secs)*time.Second, c.maxTTL)
}

// negativeSOA is the SOA record in the authority section of a NODATA reply
// or of the NXDOMAIN reply an *Error carries.
func negativeSOA(reply *dns.Msg, err error) *dns.SOA {
	if reply == nil {
		var nerr *Error
		if !errors.As(err, &nerr) || nerr.reply == nil {
			return nil
		}
		reply = nerr.reply
	}
	for _, rr := range reply.Ns {
		if soa, ok := rr.(*dns.SOA); ok {
			return soa
		}
	}
	return nil
}

// makeRoom drops expired answers, then arbitrary ones, until one more
// fits. c.mu is held.
func (c *Cache) makeRoom() {
	if len(c.entries) < c.size {
		return
	}
	now := c.now()
	for k, e := range c.entries {
		if !now.Before(e.expires) {
			delete(c.entries, k)
		}
	}
	for k := range c.entries {
		if len(c.entries) < c.size {
			break
		}
		delete(c.entries, k)
	}
}
