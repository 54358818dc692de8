package limit

import (
	"net/netip"
	"testing"
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
				release, ok := c.Acquire(a)
				if ok != tc.want[i] {
					t.Fatalf("Acquire #%d (%v) = %v, want %v", i, a, ok, tc.want[i])
				}
				release() // a refused slot's release is a no-op…
				if ok {
					// …and a granted one is given back and re-taken, so
					// the counts stay as the sequence built them.
					release, ok = c.Acquire(a)
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
	r1, _ := c.Acquire(a)
	_, _ = c.Acquire(a)
	r1()
	r1()
	if _, n := c.Open(a); n != 1 {
		t.Fatalf("%d open after double release of one, want 1", n)
	}
	if _, ok := c.Acquire(a); !ok {
		t.Fatal("slot not freed")
	}
	if _, ok := c.Acquire(a); ok {
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
