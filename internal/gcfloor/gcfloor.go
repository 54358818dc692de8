// Package gcfloor keeps the Go garbage collector's heap target from
// falling below a floor.
//
// The runtime's target is the live heap times (1 + GOGC/100), at least
// 4 MiB. A mail server's live heap between bursts is small (2 MiB under
// imaptest's stress load, every session's state included) while it
// allocates for each command, so the default target meant a collection
// for every 4 MiB allocated: 40 a second, each taking a quarter of the
// processors for its mark phase and slowing every command behind it. With
// the target held at the floor the same load collects a few times a
// second. Once the live heap is large enough for GOGC's own target to pass
// the floor (thousands of connections), nothing changes; the runtime's
// soft memory limit still wins over both.
package gcfloor

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"sync/atomic"
)

// maxPercent bounds the GOGC percent set: with a live heap of a few
// hundred KiB the floor would otherwise ask for tens of thousands.
const maxPercent = 10000

// liveMetric is the heap marked live by the last collection.
const liveMetric = "/gc/heap/live:bytes"

// Start holds the heap target at floor bytes or more, from the end of
// the next collection on, until the returned stop is called (which
// restores the GOGC percent in force before). With GOGC=off, or a floor
// of zero or less, it does nothing.
func Start(floor int64) (stop func()) {
	base := debug.SetGCPercent(100)
	debug.SetGCPercent(base)
	if base < 0 || floor <= 0 {
		return func() {}
	}
	t := &tuner{base: base, floor: uint64(floor), set: base}
	t.sample = []metrics.Sample{{Name: liveMetric}}
	t.arm()
	return t.stop
}

type tuner struct {
	base  int    // GOGC percent before Start
	floor uint64 // bytes

	mu      sync.Mutex
	set     int // percent last set
	sample  []metrics.Sample
	stopped atomic.Bool
}

// sentinel is garbage as soon as it is made: its cleanup runs after the
// collection that finds it, and makes the next one.
type sentinel struct{ _ *int }

func (t *tuner) arm() {
	s := &sentinel{}
	runtime.AddCleanup(s, func(t *tuner) {
		if t.stopped.Load() {
			return
		}
		t.tune()
		t.arm()
	}, t)
}

// tune sets the percent that puts the next target at the floor, or the
// base percent when that is higher.
func (t *tuner) tune() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped.Load() {
		return
	}
	metrics.Read(t.sample)
	live := uint64(0)
	if t.sample[0].Value.Kind() == metrics.KindUint64 {
		live = t.sample[0].Value.Uint64()
	}
	p := percentFor(t.base, t.floor, live)
	// A percent that moves by a few with every collection is not worth
	// setting each time: only a change of a tenth or more, or back to
	// the base.
	if d := p - t.set; p == t.base && d != 0 || d > t.set/10 || -d > t.set/10 {
		debug.SetGCPercent(p)
		t.set = p
	}
}

// percentFor is the GOGC percent whose target, live*(1+p/100), reaches
// floor, never below base nor above maxPercent.
func percentFor(base int, floor, live uint64) int {
	if live == 0 || live >= floor {
		return base
	}
	need := (floor - live) * 100 / live
	if need > maxPercent {
		need = maxPercent
	}
	return max(base, int(need))
}

func (t *tuner) stop() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped.Swap(true) {
		return
	}
	debug.SetGCPercent(t.base)
}
