//go:build linux && cgo

package sqlitedb

/*
#include <malloc.h>
#include <stdlib.h>

// keep_freed_heap raises glibc's trim threshold to bytes. Without
// M_TRIM_THRESHOLD (another C library) it does nothing and returns 0.
static int keep_freed_heap(int bytes) {
#ifdef M_TRIM_THRESHOLD
	return mallopt(M_TRIM_THRESHOLD, bytes);
#else
	return 0;
#endif
}

// heap_free_after_churn mallocs n blocks of size bytes, frees them
// newest first (so they merge into the heap's top, as a page cache
// emptied at once does), and returns how many more bytes malloc holds
// free afterwards than before: about n*size if the freed memory is kept,
// little if it went back to the kernel. -1 if malloc failed, -2 without
// glibc's mallinfo2.
static long heap_free_after_churn(int n, int size) {
#ifndef __GLIBC__
	return -2;
#else
	void **p = malloc(sizeof(void *) * n);
	if (p == NULL)
		return -1;
	int i;
	for (i = 0; i < n; i++) {
		p[i] = malloc(size);
		if (p[i] == NULL)
			break;
	}
	struct mallinfo2 mid = mallinfo2();
	while (i-- > 0)
		free(p[i]);
	struct mallinfo2 after = mallinfo2();
	free(p);
	return (long)after.fordblks - (long)mid.fordblks;
#endif
}
*/
import "C"

// freedHeapKept is how much freed memory glibc's malloc keeps at the top
// of each heap instead of giving it back to the kernel (M_TRIM_THRESHOLD;
// glibc's default is 128 KiB, raised dynamically only by large mmapped
// blocks).
//
// SQLite allocates its page cache with malloc, and a connection drops its
// whole cache whenever another connection has written since its last
// transaction (WAL mode): under IMAP load every STORE, EXPUNGE and APPEND
// empties the read connections' caches, and the next read fills them
// again. With the default threshold each emptying handed the pages back
// (madvise(MADV_DONTNEED), with a TLB shoot-down across the process's
// threads) and each refill faulted them in again: 15,000 madvise calls
// and 88,000 page faults per 10 s under imaptest's 10-client stress, and
// a STORE loop over one connection spent about a tenth of its CPU in
// madvise, growing the heap and faulting (perf). At 4 MiB the pages stay with malloc for the next refill: the
// same 10 s had 43,000 page faults (most of the remaining madvise calls
// are the Go runtime's own scavenger), and a STORE cost 205 µs of CPU
// instead of 245–272. A connection's cache is at most 2 MiB (SQLite's
// default cache_size), so one emptying stays under the threshold; what a
// process keeps is bounded by 4 MiB per malloc arena.
const freedHeapKept = 4 << 20

func init() {
	C.keep_freed_heap(C.int(freedHeapKept))
}

// heapFreeAfterChurn is heap_free_after_churn, for the tests.
func heapFreeAfterChurn(n, size int) int64 {
	return int64(C.heap_free_after_churn(C.int(n), C.int(size)))
}
