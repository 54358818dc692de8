package main

import (
	"log/slog"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// A server's live heap is small (a few MiB with a handful of IMAP sessions)
// while it allocates tens of MiB a second (message headers parsed per FETCH,
// APPEND spools, and each argon2id password check's 19 MiB). With the
// runtime's default GOGC=100 the collector then starts every few MiB: under
// the imaptest stress load about twenty cycles a second, each with two
// stop-the-world pauses and a marking phase that takes a quarter of the CPU,
// which every command in flight waits behind. The heap floor raises the
// heap goal to at least heapFloor while the live heap is small, and leaves
// GOGC's own rule alone once the live heap passes half of it; the soft memory
// limit still wins over both. GOGC in the environment turns the floor off.

// defaultHeapFloor is the smallest heap goal the floor keeps.
const defaultHeapFloor = 64 << 20

// maxFloorPercent bounds the GC percent the floor sets on a near-empty heap.
const maxFloorPercent = 10_000

// floorPercent is the GC percent that puts the next heap goal at floor for
// a live heap of live bytes: base when base's own goal reaches the floor.
func floorPercent(live, floor uint64, base int) int {
	if live == 0 {
		return maxFloorPercent
	}
	if live >= floor || live+live*uint64(base)/100 >= floor {
		return base
	}
	p := (floor - live) * 100 / live
	return int(min(p, maxFloorPercent))
}

// heapFloorSize is the floor for a soft memory limit: defaultHeapFloor, or
// an eighth of a smaller limit's worth, so that a small limit keeps room.
func heapFloorSize(limit int64) uint64 {
	if limit <= 0 || limit == math.MaxInt64 {
		return defaultHeapFloor
	}
	return min(defaultHeapFloor, uint64(limit)/8)
}

// heapFloor retunes the GC percent after every collection.
type heapFloor struct {
	floor   uint64
	base    int
	mu      sync.Mutex
	stopped bool
	percent int // last set
	retunes int // collections seen, for tests
	sample  []metrics.Sample
}

// applyHeapFloor starts the heap floor (after applyMemoryLimit, whose limit
// it reads) unless GOGC is set; the returned func stops it and restores the
// GC percent.
func applyHeapFloor(log *slog.Logger) (stop func()) {
	if v := os.Getenv("GOGC"); v != "" {
		log.Info("heap floor", "floor", "off", "source", "GOGC")
		return func() {}
	}
	h := startHeapFloor(heapFloorSize(debug.SetMemoryLimit(-1)), 100)
	log.Info("heap floor", "floor", limitString(int64(h.floor)))
	return h.stop
}

func startHeapFloor(floor uint64, base int) *heapFloor {
	h := &heapFloor{
		floor:   floor,
		base:    base,
		percent: base,
		sample:  []metrics.Sample{{Name: "/gc/heap/live:bytes"}},
	}
	h.retune()
	h.arm()
	return h
}

// arm registers a cleanup on a fresh unreachable object: it runs after the
// next collection, retunes, and arms again, until stopped.
func (h *heapFloor) arm() {
	runtime.AddCleanup(new(gcSentinel), func(h *heapFloor) {
		if h.retune() {
			h.arm()
		}
	}, h)
}

// gcSentinel is big enough and holds a pointer, so it is never a tiny
// allocation sharing a block (whose cleanup might never run).
type gcSentinel struct {
	_ *int
	_ [16]byte
}

// retune sets the GC percent for the live heap after the last collection;
// false once stopped.
func (h *heapFloor) retune() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.stopped {
		return false
	}
	h.retunes++
	metrics.Read(h.sample)
	var live uint64
	if h.sample[0].Value.Kind() == metrics.KindUint64 {
		live = h.sample[0].Value.Uint64()
	}
	p := floorPercent(live, h.floor, h.base)
	// Small changes are not worth a call: the goal moves by under 10 %.
	if d := p - h.percent; d > h.percent/10 || -d > h.percent/10 || (p == h.base) != (h.percent == h.base) {
		debug.SetGCPercent(p)
		h.percent = p
	}
	return true
}

func (h *heapFloor) stop() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.stopped {
		h.stopped = true
		debug.SetGCPercent(h.base)
	}
}
