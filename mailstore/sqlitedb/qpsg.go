//go:build cgo

package sqlitedb

/*
// SQLite's own functions, from the amalgamation go-sqlite3 links into the
// same binary. Option and status numbers are part of SQLite's stable
// interface.
typedef struct sqlite3 sqlite3;
typedef struct sqlite3_stmt sqlite3_stmt;
extern int sqlite3_auto_extension(void (*)(void));
extern int sqlite3_db_config(sqlite3 *, int, ...);
extern int sqlite3_open(const char *, sqlite3 **);
extern int sqlite3_close(sqlite3 *);
extern int sqlite3_exec(sqlite3 *, const char *, void *, void *, char **);
extern int sqlite3_prepare_v2(sqlite3 *, const char *, int, sqlite3_stmt **, const char **);
extern int sqlite3_bind_int(sqlite3_stmt *, int, int);
extern int sqlite3_step(sqlite3_stmt *);
extern int sqlite3_reset(sqlite3_stmt *);
extern int sqlite3_finalize(sqlite3_stmt *);
extern int sqlite3_stmt_status(sqlite3_stmt *, int, int);

#define PH_SQLITE_DBCONFIG_ENABLE_QPSG 1007
#define PH_SQLITE_STMTSTATUS_REPREPARE 5

// ph_qpsg runs on every connection SQLite opens. It never fails the open:
// a connection without the guarantee only plans its statements again.
static int ph_qpsg(sqlite3 *db, const char **err, const void *api) {
	(void)err; (void)api;
	sqlite3_db_config(db, PH_SQLITE_DBCONFIG_ENABLE_QPSG, 1, (int *)0);
	return 0;
}

static int ph_register_qpsg(void) {
	return sqlite3_auto_extension((void (*)(void))ph_qpsg);
}

// ph_reprepares runs one statement of the shape of our queries 20 times on
// a new in-memory connection, with INBOX's mailbox 1 and other values as a
// client's commands bind them, and returns how often SQLite prepared it
// again (-1 on failure).
static int ph_reprepares(void) {
	sqlite3 *db = 0;
	sqlite3_stmt *st = 0;
	int n = -1;
	if (sqlite3_open(":memory:", &db) != 0) goto out;
	if (sqlite3_exec(db, "CREATE TABLE m (id INTEGER PRIMARY KEY, mailbox INTEGER, uid INTEGER, flags INTEGER, UNIQUE (mailbox, uid));"
		"INSERT INTO m (mailbox, uid, flags) VALUES (1, 1, 0), (1, 2, 1), (2, 1, 0)", 0, 0, 0) != 0) goto out;
	if (sqlite3_prepare_v2(db, "SELECT uid FROM m WHERE mailbox = ? AND uid >= ? AND flags = ? ORDER BY uid LIMIT ?", -1, &st, 0) != 0) goto out;
	for (int i = 0; i < 20; i++) {
		sqlite3_bind_int(st, 1, 1);
		sqlite3_bind_int(st, 2, 1 + i % 3);
		sqlite3_bind_int(st, 3, i % 2);
		sqlite3_bind_int(st, 4, 10 + i);
		while (sqlite3_step(st) == 100) {}
		sqlite3_reset(st);
	}
	n = sqlite3_stmt_status(st, PH_SQLITE_STMTSTATUS_REPREPARE, 0);
out:
	if (st) sqlite3_finalize(st);
	if (db) sqlite3_close(db);
	return n;
}
*/
import "C"

// Every connection runs with SQLite's query planner stability guarantee
// (SQLITE_DBCONFIG_ENABLE_QPSG). Without it, SQLite marks a statement to be
// prepared again when certain bound values change: any new LIMIT ?, and an
// equality such as "mailbox = ?" whose old value was 0 or 1 — and INBOX is
// mailbox 1 in every account. The statements go-sqlite3 keeps prepared were
// thus parsed and planned again on nearly every use: under imaptest's
// stress 3,700 times a second, 7 % of the server's CPU. Our statements are
// written for one plan whatever the values, so the guarantee costs nothing.
// An auto extension runs on every connection SQLite opens in the process;
// package init registers it before any.
var qpsgOn = C.ph_register_qpsg() == 0

// reprepares is how often SQLite prepared one statement again while it was
// run 20 times with the same values on a new connection (0 with the
// guarantee on), for the tests.
func reprepares() int { return int(C.ph_reprepares()) }
