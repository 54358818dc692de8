//go:build cgo

package sqlitedb

/*
// SQLite's own functions, from the amalgamation go-sqlite3 links into the
// same binary. Option numbers are part of SQLite's stable interface.
extern int sqlite3_config(int, ...);
extern long long sqlite3_memory_used(void);

#define PH_SQLITE_CONFIG_MEMSTATUS 9

static int no_memstatus(void) {
	return sqlite3_config(PH_SQLITE_CONFIG_MEMSTATUS, 0);
}
*/
import "C"

// SQLite counts every allocation it makes in process-wide statistics
// (sqlite3_status, sqlite3_memory_used) under one global mutex, unless
// SQLITE_CONFIG_MEMSTATUS is off. Every connection of every account
// allocates and frees through it, so under imaptest's 10-client stress the
// threads queued on that mutex (glibc's lock wait and wake were 2 % of the
// server's CPU) and the commands behind them: with the statistics off,
// STORE and EXPUNGE answered about 15 % sooner and APPEND 12 % (three
// alternating runs each). Nothing of ours reads the statistics, and
// SQLite's recommended build options turn them off too
// (SQLITE_DEFAULT_MEMSTATUS=0). The option must be set before SQLite
// initializes, which the first connection does; package init comes before
// any. If SQLite was initialized already, it is refused and left on.
var memstatusOff = C.no_memstatus() == 0

// memoryUsed is sqlite3_memory_used, for the tests: 0 while the statistics
// are off.
func memoryUsed() int64 { return int64(C.sqlite3_memory_used()) }
