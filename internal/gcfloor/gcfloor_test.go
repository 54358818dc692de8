package gcfloor

import (
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

func TestPercentFor(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		base        int
		floor, live uint64
		want        int
	}{
		{100, 16 * mib, 2 * mib, 700},     // 2 MiB live: target 16 MiB
		{100, 16 * mib, 8 * mib, 100},     // GOGC's own target reaches it
		{100, 16 * mib, 20 * mib, 100},    // past the floor
		{100, 16 * mib, 0, 100},           // nothing known yet
		{50, 16 * mib, 16 * mib, 50},      // at the floor
		{100, 16 * mib, 1024, maxPercent}, // bounded
		{2000, 16 * mib, 2 * mib, 2000},   // a higher GOGC stays
		{100, 16 * mib, 4 * mib, 300},     // exact
		{100, 16 * mib, 15 * mib, 100},    // 6 % would be below the base
		{100, 64 * mib, 10 * mib, 540},    // (64-10)/10
		{100, 16*mib + 1, 16 * mib, 100},  // a byte short
	} {
		if got := percentFor(c.base, c.floor, c.live); got != c.want {
			t.Errorf("percentFor(%d, %d, %d) = %d, want %d", c.base, c.floor, c.live, got, c.want)
		}
	}
}

// collections allocates n bytes of garbage in 64 KiB pieces and counts the
// collections meanwhile.
func collections(n int) uint32 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := 0; i < n/(64<<10); i++ {
		sink = make([]byte, 64<<10)
	}
	runtime.ReadMemStats(&after)
	return after.NumGC - before.NumGC
}

var sink []byte

// TestFloorCutsCollections: with the floor in force the same garbage is
// collected far fewer times; stop puts GOGC back.
func TestFloorCutsCollections(t *testing.T) {
	base := debug.SetGCPercent(100)
	defer debug.SetGCPercent(base)
	runtime.GC()
	without := collections(512 << 20)

	stop := Start(128 << 20)
	runtime.GC() // the tuner acts after a collection
	deadline := time.Now().Add(10 * time.Second)
	for {
		p := debug.SetGCPercent(-1)
		debug.SetGCPercent(p)
		if p > 100 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GOGC still %d after a collection with the floor set", p)
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	with := collections(512 << 20)
	stop()
	if p := debug.SetGCPercent(100); p != 100 {
		t.Errorf("GOGC %d after stop, want the 100 before Start", p)
	}
	t.Logf("collections for 512 MiB of garbage: %d without the floor, %d with 128 MiB", without, with)
	if without < 20 || with*4 > without {
		t.Errorf("collections: %d without the floor, %d with it; want a quarter or fewer", without, with)
	}
}

func TestOffAndZero(t *testing.T) {
	base := debug.SetGCPercent(-1)
	defer debug.SetGCPercent(base)
	Start(64 << 20)() // GOGC=off: nothing to do, nothing to undo
	if p := debug.SetGCPercent(-1); p != -1 {
		t.Errorf("GOGC %d after Start with GOGC off", p)
	}
	debug.SetGCPercent(100)
	Start(0)()
	if p := debug.SetGCPercent(100); p != 100 {
		t.Errorf("GOGC %d after Start(0)", p)
	}
}
