package limit

import (
	"errors"
	"net/netip"
	"sync"
	"time"
)

// Why a connection was refused (Take's errors).
var (
	// ErrTooManyConns: the client's address holds its share of slots, or
	// every slot is taken and none could be freed for it.
	ErrTooManyConns = errors.New("limit: too many connections")
	// ErrRate: the client's address opened more connections in the rate
	// window than Options.Rate allows.
	ErrRate = errors.New("limit: connection rate exceeded")
)

// Options configure a Conns. A limit ≤ 0 means unlimited.
type Options struct {
	// PerIP is how many connections one client address (see Key) may hold.
	PerIP int
	// Total is how many connections all clients together may hold.
	Total int
	// Rate is how many new connections one client address may open per
	// RateWindow (default one minute); refused attempts count too.
	Rate       int
	RateWindow time.Duration
	// Now is the clock for idle times and the rate window; default
	// time.Now. Tests move it.
	Now func() time.Time
}

// Conns counts open connections against a total and a per-client limit,
// limits the rate of new connections per client, and, when every slot is
// taken, frees one for a client that holds fewer than the biggest holder
// (see Take). Safe for concurrent use; share one across listeners to make
// the limits global.
type Conns struct {
	perIP, total int
	now          func() time.Time
	rate         *Rate[netip.Prefix]

	mu    sync.Mutex
	n     int
	byKey map[netip.Prefix]*holder
}

// holder is one client key's slots.
type holder struct {
	slots map[*Slot]struct{}
}

// NewConns returns a counter allowing perIP connections per client address
// and total in all; a limit ≤ 0 means unlimited.
func NewConns(perIP, total int) *Conns {
	return New(Options{PerIP: perIP, Total: total})
}

// New returns a Conns configured by o.
func New(o Options) *Conns {
	if o.Now == nil {
		o.Now = time.Now
	}
	c := &Conns{perIP: o.PerIP, total: o.Total, now: o.Now, byKey: map[netip.Prefix]*holder{}}
	if o.Rate > 0 {
		if o.RateWindow <= 0 {
			o.RateWindow = time.Minute
		}
		c.rate = NewRate[netip.Prefix](o.Rate, o.RateWindow)
	}
	return c
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

// Slot is one connection's place in a Conns. The protocol that holds it
// says when the connection is busy (receiving a message) and when it last
// did something, and may make it evictable with SetEvict.
type Slot struct {
	c   *Conns
	key netip.Prefix

	// Guarded by c.mu.
	held   bool
	busy   bool
	active time.Time
	evict  func()
}

// Take takes a slot for a connection from remote, or returns ErrRate or
// ErrTooManyConns.
//
// When every slot is taken, the newcomer is not simply refused: if its
// address holds at least two fewer slots than the address holding the most,
// that holder's longest-idle evictable slot (SetEvict, not SetBusy) is
// handed over. The evicted connection's evict function is called (after
// Take has released its lock); the connection is expected to say goodbye
// and close soon, and its own Release is then a no-op. Until it has closed
// the process holds one connection more than Total. "At least two fewer"
// means the exchange never leaves the newcomer's address holding more than
// the victim's, so two heavy holders cannot take turns evicting each other.
func (c *Conns) Take(remote netip.Addr) (*Slot, error) {
	k := Key(remote)
	if c.rate != nil && k.IsValid() && !c.rate.Allow(k, c.now()) {
		return nil, ErrRate
	}
	c.mu.Lock()
	h := c.byKey[k]
	mine := 0
	if h != nil {
		mine = len(h.slots)
	}
	if k.IsValid() && c.perIP > 0 && mine >= c.perIP {
		c.mu.Unlock()
		return nil, ErrTooManyConns
	}
	var evict func()
	if c.total > 0 && c.n >= c.total {
		v := c.victimLocked(mine)
		if v == nil {
			c.mu.Unlock()
			return nil, ErrTooManyConns
		}
		evict = v.evict
		c.dropLocked(v)
	}
	s := &Slot{c: c, key: k, held: true, active: c.now()}
	if h = c.byKey[k]; h == nil {
		h = &holder{slots: map[*Slot]struct{}{}}
		c.byKey[k] = h
	}
	h.slots[s] = struct{}{}
	c.n++
	c.mu.Unlock()
	if evict != nil {
		evict()
	}
	return s, nil
}

// victimLocked picks the slot to free for a newcomer whose address holds
// mine slots: the longest-idle evictable, not busy slot of the biggest
// holder that has one and holds at least mine+2.
func (c *Conns) victimLocked(mine int) *Slot {
	var best *Slot
	bestN := 0
	for _, h := range c.byKey {
		n := len(h.slots)
		if n < mine+2 || n < bestN {
			continue
		}
		var oldest *Slot
		for s := range h.slots {
			if s.evict == nil || s.busy {
				continue
			}
			if oldest == nil || s.active.Before(oldest.active) {
				oldest = s
			}
		}
		if oldest == nil {
			continue
		}
		if n > bestN || oldest.active.Before(best.active) {
			best, bestN = oldest, n
		}
	}
	return best
}

// dropLocked gives s's place back.
func (c *Conns) dropLocked(s *Slot) {
	if !s.held {
		return
	}
	s.held = false
	c.n--
	if h := c.byKey[s.key]; h != nil {
		delete(h.slots, s)
		if len(h.slots) == 0 {
			delete(c.byKey, s.key)
		}
	}
}

// Release gives the slot back; safe to call more than once, and a no-op
// after the slot was evicted.
func (s *Slot) Release() {
	s.c.mu.Lock()
	s.c.dropLocked(s)
	s.c.mu.Unlock()
}

// Touch records activity (a command): the longest-idle slot is evicted
// first.
func (s *Slot) Touch() {
	s.c.mu.Lock()
	s.active = s.c.now()
	s.c.mu.Unlock()
}

// SetBusy marks the connection as doing work that must not be cut (a
// message upload); a busy slot is never evicted.
func (s *Slot) SetBusy(busy bool) {
	s.c.mu.Lock()
	s.busy = busy
	s.active = s.c.now()
	s.c.mu.Unlock()
}

// SetEvict makes the slot evictable: when Take hands it to another client,
// evict is called once, from Take's goroutine. It must not block: it tells
// the connection to say goodbye and close.
func (s *Slot) SetEvict(evict func()) {
	s.c.mu.Lock()
	s.evict = evict
	s.c.mu.Unlock()
}

// Held reports whether the slot still counts (it was neither released nor
// evicted).
func (s *Slot) Held() bool {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	return s.held
}

// Open reports the connections currently held: in total, and from remote's
// client key.
func (c *Conns) Open(remote netip.Addr) (total, fromIP int) {
	k := Key(remote)
	c.mu.Lock()
	defer c.mu.Unlock()
	if h := c.byKey[k]; k.IsValid() && h != nil {
		fromIP = len(h.slots)
	}
	return c.n, fromIP
}
