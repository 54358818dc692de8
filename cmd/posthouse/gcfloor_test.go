package main

import (
	"math"
	"runtime"
	"runtime/debug"
	"testing"
)

func TestFloorPercent(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		live, floor uint64
		want        int
	}{
		{0, 64 * mib, maxFloorPercent},
		{1 * mib, 64 * mib, 6300},
		{4 * mib, 64 * mib, 1500},
		{16 * mib, 64 * mib, 300},
		{32 * mib, 64 * mib, 100}, // GOGC=100's own goal reaches the floor
		{500 * mib, 64 * mib, 100},
		{1000, 64 * mib, maxFloorPercent},
	} {
		if got := floorPercent(tc.live, tc.floor, 100); got != tc.want {
			t.Errorf("floorPercent(%d, %d) = %d, want %d", tc.live, tc.floor, got, tc.want)
		}
	}
}

func TestHeapFloorSize(t *testing.T) {
	for _, tc := range []struct {
		limit int64
		want  uint64
	}{
		{math.MaxInt64, defaultHeapFloor},
		{0, defaultHeapFloor},
		{8 << 30, defaultHeapFloor},
		{128 << 20, 16 << 20},
	} {
		if got := heapFloorSize(tc.limit); got != tc.want {
			t.Errorf("heapFloorSize(%d) = %d, want %d", tc.limit, got, tc.want)
		}
	}
}

// TestHeapFloorFollowsCollections: the floor raises the GC percent on a
// small heap, retunes after collections, and stop restores the base.
func TestHeapFloorFollowsCollections(t *testing.T) {
	old := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(old) })

	// A floor far above this test binary's live heap.
	h := startHeapFloor(1<<40, 100)
	defer h.stop()
	h.mu.Lock()
	p, n := h.percent, h.retunes
	h.mu.Unlock()
	if p <= 100 {
		t.Fatalf("percent on a small heap = %d, want above 100", p)
	}
	if got := debug.SetGCPercent(p); got != p {
		t.Fatalf("runtime GC percent = %d, floor set %d", got, p)
	}
	// The cleanup runs on its own goroutine after a collection: collect
	// until it has run twice (so it re-armed), with a generous bound.
	for i := 0; i < 1000; i++ {
		runtime.GC()
		runtime.Gosched()
		h.mu.Lock()
		done := h.retunes >= n+2
		h.mu.Unlock()
		if done {
			break
		}
	}
	h.mu.Lock()
	if h.retunes < n+2 {
		t.Errorf("retuned %d times after collections, want at least 2", h.retunes-n)
	}
	h.mu.Unlock()

	h.stop()
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("GC percent after stop = %d, want the base 100", got)
	}
	// Stopped: a collection no longer retunes.
	h.mu.Lock()
	n = h.retunes
	h.mu.Unlock()
	runtime.GC()
	runtime.GC()
	h.mu.Lock()
	if h.retunes != n {
		t.Errorf("retuned after stop")
	}
	h.mu.Unlock()
}
