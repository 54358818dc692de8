//go:build linux && cgo

package sqlitedb

import (
	"runtime"
	"testing"
)

// TestFreedHeapKept: memory freed in one piece below freedHeapKept stays
// with malloc, as a read connection's emptied page cache must (see
// freedHeapKept). With glibc's default threshold (128 KiB) the 2 MiB
// below would mostly go back to the kernel.
func TestFreedHeapKept(t *testing.T) {
	runtime.LockOSThread() // one thread, so one malloc arena
	defer runtime.UnlockOSThread()
	const n, size = 512, 4096 // 2 MiB of page-sized blocks
	kept := heapFreeAfterChurn(n, size)
	switch kept {
	case -1:
		t.Fatal("malloc failed")
	case -2:
		t.Skip("not glibc")
	}
	if kept < n*size*3/4 {
		t.Errorf("after freeing %d bytes malloc holds %d more free bytes: the memory went back to the kernel (trim threshold not raised?)", n*size, kept)
	}
}
