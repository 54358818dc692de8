package limit

import (
	"net/netip"
	"sync"
)

// Conns counts open connections against a total and a per-client limit.
// Safe for concurrent use; share one across listeners to make the limits
// global.
type Conns struct {
	perIP, total int

	mu    sync.Mutex
	n     int
	byKey map[netip.Prefix]int
}

// NewConns returns a counter allowing perIP connections per client address
// and total in all; a limit ≤ 0 means unlimited.
func NewConns(perIP, total int) *Conns {
	return &Conns{perIP: perIP, total: total, byKey: map[netip.Prefix]int{}}
}

// Key returns the client key remote counts against: an IPv4 /32 (mapped
// addresses unmapped) or an IPv6 /64; the zero Prefix for an invalid addr.
func Key(remote netip.Addr) netip.Prefix {
	a := remote.Unmap()
	switch {
	case a.Is4():
		return netip.PrefixFrom(a, 32)
	case a.Is6():
		p, _ := a.Prefix(64)
		return p
	}
	return netip.Prefix{}
}

// Acquire takes a slot for a connection from remote. If one is free it
// returns ok and a release func (safe to call more than once); otherwise
// ok is false and release is a no-op.
func (c *Conns) Acquire(remote netip.Addr) (release func(), ok bool) {
	k := Key(remote)
	perIP := k.IsValid() && c.perIP > 0
	c.mu.Lock()
	if c.total > 0 && c.n >= c.total || perIP && c.byKey[k] >= c.perIP {
		c.mu.Unlock()
		return func() {}, false
	}
	c.n++
	if k.IsValid() {
		c.byKey[k]++
	}
	c.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			c.mu.Lock()
			c.n--
			if k.IsValid() {
				if c.byKey[k]--; c.byKey[k] <= 0 {
					delete(c.byKey, k)
				}
			}
			c.mu.Unlock()
		})
	}, true
}

// Open reports the connections currently held: in total, and from remote's
// client key.
func (c *Conns) Open(remote netip.Addr) (total, fromIP int) {
	k := Key(remote)
	c.mu.Lock()
	defer c.mu.Unlock()
	if k.IsValid() {
		fromIP = c.byKey[k]
	}
	return c.n, fromIP
}
