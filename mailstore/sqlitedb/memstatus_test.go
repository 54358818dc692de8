//go:build cgo

package sqlitedb

import (
	"context"
	"path/filepath"
	"testing"
)

// TestMemstatusOff: SQLite's allocation statistics are off for the
// process (see memstatusOff), so connections in use leave them at zero.
func TestMemstatusOff(t *testing.T) {
	if !memstatusOff {
		t.Fatal("sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0) was refused: SQLite initialized before this package")
	}
	db, err := Open(context.Background(), filepath.Join(t.TempDir(), "m.sqlite"), []Migration{Exec(`CREATE TABLE t (v BLOB)`)}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for range 100 {
		if _, err := db.Write.Exec(`INSERT INTO t (v) VALUES (randomblob(10000))`); err != nil {
			t.Fatal(err)
		}
	}
	var n int
	if err := db.Read.QueryRow(`SELECT count(*) FROM t`).Scan(&n); err != nil || n != 100 {
		t.Fatalf("count = %d, %v", n, err)
	}
	if used := memoryUsed(); used != 0 {
		t.Errorf("sqlite3_memory_used = %d with connections open: the statistics are on", used)
	}
}
