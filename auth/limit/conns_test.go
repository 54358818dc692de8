package limit

import (
	"net/netip"
	"sync"
	"testing"
	"time"
)

func TestConns(t *testing.T) {
	v4 := netip.MustParseAddr("192.0.2.1")
	v4b := netip.MustParseAddr("192.0.2.2")
	mapped := netip.MustParseAddr("::ffff:192.0.2.1")
	v6 := netip.MustParseAddr("2001:db8::1")
	v6same64 := netip.MustParseAddr("2001:db8::ffff:1")
	v6other := netip.MustParseAddr("2001:db8:0:1::1")
	tests := []struct {
		name         string
		perIP, total int
		seq          []netip.Addr
		want         []bool
	}{
		{"per-IP limit", 2, 10, []netip.Addr{v4, v4, v4, v4b}, []bool{true, true, false, true}},
		{"total limit", 5, 3, []netip.Addr{v4, v4b, v6, v6other}, []bool{true, true, true, false}},
		{"IPv4-mapped counts as IPv4", 1, 10, []netip.Addr{v4, mapped}, []bool{true, false}},
		{"IPv6 counted per /64", 2, 10, []netip.Addr{v6, v6same64, v6, v6other}, []bool{true, true, false, true}},
		{"unlimited", 0, 0, []netip.Addr{v4, v4, v4, v4}, []bool{true, true, true, true}},
		{"non-IP remote counts only against total", 1, 2, []netip.Addr{{}, {}, {}}, []bool{true, true, false}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := NewConns(tc.perIP, tc.total)
			var releases []func()
			for i, a := range tc.seq {
				release, ok := acquire(c, a)
				if ok != tc.want[i] {
					t.Fatalf("Acquire #%d (%v) = %v, want %v", i, a, ok, tc.want[i])
				}
				release() // a refused slot's release is a no-op…
				if ok {
					// …and a granted one is given back and re-taken, so
					// the counts stay as the sequence built them.
					release, ok = acquire(c, a)
					if !ok {
						t.Fatalf("re-Acquire #%d failed", i)
					}
					releases = append(releases, release)
				}
			}
			for _, r := range releases {
				r()
				r() // idempotent
			}
			if total, _ := c.Open(v4); total != 0 {
				t.Fatalf("%d connections still counted after release", total)
			}
			if len(c.byKey) != 0 {
				t.Fatalf("per-IP map not emptied: %v", c.byKey)
			}
		})
	}
}

func TestConnsReleaseTwiceDoesNotFreeOthers(t *testing.T) {
	a := netip.MustParseAddr("192.0.2.9")
	c := NewConns(2, 0)
	r1, _ := acquire(c, a)
	_, _ = acquire(c, a)
	r1()
	r1()
	if _, n := c.Open(a); n != 1 {
		t.Fatalf("%d open after double release of one, want 1", n)
	}
	if _, ok := acquire(c, a); !ok {
		t.Fatal("slot not freed")
	}
	if _, ok := acquire(c, a); ok {
		t.Fatal("double release freed two slots")
	}
}

func TestKey(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"192.0.2.1", "192.0.2.1/32"},
		{"::ffff:192.0.2.1", "192.0.2.1/32"},
		{"2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"},
		{"::1", "::/64"},
	} {
		if got := Key(netip.MustParseAddr(tc.in)).String(); got != tc.want {
			t.Errorf("Key(%s) = %s, want %s", tc.in, got, tc.want)
		}
	}
	if Key(netip.Addr{}).IsValid() {
		t.Error("Key of the zero Addr is valid")
	}
}

// clock is a movable clock for Options.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

// evictable takes a slot for remote and makes it evictable, counting its
// evictions in *n.
func evictable(t *testing.T, c *Conns, remote string, n *int) *Slot {
	t.Helper()
	s, err := c.Take(addr(remote))
	if err != nil {
		t.Fatalf("Take(%s): %v", remote, err)
	}
	s.SetEvict(func() { *n++ })
	return s
}

func TestTakeEvictsFromBiggestHolder(t *testing.T) {
	clk := newClock()
	c := New(Options{PerIP: 3, Total: 6, Now: clk.now})
	var evictA, evictB int
	// A holds 3 slots, B 2, C 1: full.
	a1 := evictable(t, c, "192.0.2.1", &evictA)
	clk.advance(time.Second)
	a2 := evictable(t, c, "192.0.2.1", &evictA)
	clk.advance(time.Second)
	a3 := evictable(t, c, "192.0.2.1", &evictA)
	evictable(t, c, "192.0.2.2", &evictB)
	evictable(t, c, "192.0.2.2", &evictB)
	cSlot, err := c.Take(addr("192.0.2.3"))
	if err != nil {
		t.Fatal(err)
	}
	clk.advance(time.Second)
	a1.Touch()       // a1 is now the most recently active of A's
	a2.SetBusy(true) // a2 is receiving a message: never evicted

	// D holds nothing, A the most: A's longest-idle evictable slot (a3) goes.
	d, err := c.Take(addr("192.0.2.4"))
	if err != nil {
		t.Fatalf("newcomer refused: %v", err)
	}
	if evictA != 1 || evictB != 0 {
		t.Fatalf("evictions A=%d B=%d, want 1 and 0", evictA, evictB)
	}
	if a3.Held() || !a1.Held() || !a2.Held() {
		t.Fatalf("held: a1=%v a2=%v a3=%v, want a3 evicted", a1.Held(), a2.Held(), a3.Held())
	}
	a3.Release() // the evicted connection closes: no double count
	if total, fromA := c.Open(addr("192.0.2.1")); total != 6 || fromA != 2 {
		t.Fatalf("after eviction: total %d, A %d; want 6 and 2", total, fromA)
	}

	// C (1 slot) against A and B (2 each): no one holds two more than C.
	if _, err := c.Take(addr("192.0.2.3")); err != ErrTooManyConns {
		t.Fatalf("C's second connection: %v, want ErrTooManyConns", err)
	}
	// A new address E (0): A and B hold 2 each; between equal holders the
	// longest-idle slot goes, one of B's (a1 was touched since).
	if _, err := c.Take(addr("192.0.2.5")); err != nil {
		t.Fatalf("E refused: %v", err)
	}
	if !a1.Held() || evictA != 1 || evictB != 1 {
		t.Fatalf("a1 held=%v, evictions A=%d B=%d; want one of B's", a1.Held(), evictA, evictB)
	}
	// F: A is the biggest holder; a2 is busy, so a1 goes.
	if _, err := c.Take(addr("192.0.2.6")); err != nil {
		t.Fatalf("F refused: %v", err)
	}
	if a1.Held() || !a2.Held() || evictA != 2 {
		t.Fatalf("a1 held=%v a2 held=%v, evictions of A %d; want a1 evicted", a1.Held(), a2.Held(), evictA)
	}
	// Now A 1 (busy), B 1, C 1, D 1, E 1, F 1: nobody holds two more.
	if _, err := c.Take(addr("192.0.2.7")); err != ErrTooManyConns {
		t.Fatalf("G: %v, want ErrTooManyConns", err)
	}
	cSlot.Release()
	d.Release()
	if _, err := c.Take(addr("192.0.2.7")); err != nil {
		t.Fatalf("G after releases: %v", err)
	}
}

func TestTakeNeverEvictsUnevictable(t *testing.T) {
	c := NewConns(0, 2)
	for i := 0; i < 2; i++ {
		if _, ok := acquire(c, addr("192.0.2.1")); !ok {
			t.Fatal("Acquire refused")
		}
	}
	if _, err := c.Take(addr("192.0.2.2")); err != ErrTooManyConns {
		t.Fatalf("Take = %v, want ErrTooManyConns", err)
	}
}

func TestRate(t *testing.T) {
	clk := newClock()
	c := New(Options{Rate: 3, RateWindow: time.Minute, Now: clk.now})
	a, b := addr("192.0.2.1"), addr("2001:db8::1")
	take := func(remote netip.Addr) error {
		s, err := c.Take(remote)
		if err == nil {
			s.Release() // the rate counts openings, not open connections
		}
		return err
	}
	for i := 0; i < 3; i++ {
		if err := take(a); err != nil {
			t.Fatalf("opening %d: %v", i, err)
		}
	}
	if err := take(a); err != ErrRate {
		t.Fatalf("4th opening in a minute: %v, want ErrRate", err)
	}
	// Another client is not affected; the same /64 is.
	if err := take(b); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if err := take(addr("2001:db8::ffff")); err != nil {
			t.Fatal(err)
		}
	}
	if err := take(addr("2001:db8::2")); err != ErrRate {
		t.Fatalf("4th opening from one /64: %v, want ErrRate", err)
	}
	// A third of the window gives one connection back, not more.
	clk.advance(20 * time.Second)
	if err := take(a); err != nil {
		t.Fatalf("after 20s: %v", err)
	}
	if err := take(a); err != ErrRate {
		t.Fatalf("second after 20s: %v, want ErrRate", err)
	}
	// A full window later the table is swept and the burst is back.
	clk.advance(2 * time.Minute)
	for i := 0; i < 3; i++ {
		if err := take(a); err != nil {
			t.Fatalf("after the window, opening %d: %v", i, err)
		}
	}
	if n := c.rate.Len(); n != 1 {
		t.Fatalf("%d rate entries after sweep, want 1 (only a)", n)
	}
}

// acquire takes a slot from c and returns its release, or ok false.
func acquire(c *Conns, remote netip.Addr) (release func(), ok bool) {
	s, err := c.Take(remote)
	if err != nil {
		return func() {}, false
	}
	return s.Release, true
}
