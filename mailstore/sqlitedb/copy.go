package sqlitedb

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/mattn/go-sqlite3"
)

// UpgradeCopyPath is where Open keeps the copy of the database at path made
// before upgrading its schema to version to: <path>.pre-v<to>.bak.
func UpgradeCopyPath(path string, to int) string {
	return fmt.Sprintf("%s.pre-v%d.bak", path, to)
}

// IsUpgradeCopy reports whether name (a base name) is a copy that Open made
// before an upgrade, as UpgradeCopyPath names them.
func IsUpgradeCopy(name string) bool {
	i := strings.LastIndex(name, ".pre-v")
	if i <= 0 || !strings.HasSuffix(name, ".bak") {
		return false
	}
	_, err := strconv.Atoi(name[i+len(".pre-v") : len(name)-len(".bak")])
	return err == nil
}

// pruneUpgradeCopies removes the copies of path made before upgrades to
// versions below keep: the latest upgrade succeeded, so its own copy is
// the one worth keeping. Errors are ignored: a stale copy costs only space.
func pruneUpgradeCopies(path string, keep int) {
	matches, _ := filepath.Glob(escapeGlob(path) + ".pre-v*.bak")
	for _, m := range matches {
		s := strings.TrimSuffix(strings.TrimPrefix(m, path+".pre-v"), ".bak")
		if v, err := strconv.Atoi(s); err == nil && v < keep {
			os.Remove(m)
		}
	}
}

func escapeGlob(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `*`, `\*`, `?`, `\?`, `[`, `\[`)
	return r.Replace(s)
}

// MigrationError is a schema upgrade that failed. Its transaction was
// rolled back: the database is still at version From. Its message is one
// line for an administrator: which file, where the copy from before the
// attempt is, and what to do.
type MigrationError struct {
	Path     string
	From, To int    // the schema versions of the attempt
	Step     int    // the migration that failed
	Copy     string // the copy made before the attempt
	Err      error
}

func (e *MigrationError) Error() string {
	return fmt.Sprintf("%s: upgrading the schema from v%d to v%d failed at step %d (%v); the database was left unchanged at v%d "+
		"and a copy from before the attempt is at %s: run the previous Posthouse release until this is fixed, and report this line "+
		"to the Posthouse maintainers (should the database itself be damaged, stop Posthouse, delete %s-wal and %s-shm and copy the .bak file over it)",
		e.Path, e.From, e.To, e.Step, e.Err, e.From, e.Copy, e.Path, e.Path)
}

func (e *MigrationError) Unwrap() error { return e.Err }

// Copy writes a consistent copy of the database at src (which must exist)
// to dst with SQLite's online backup API, while other connections and
// processes go on reading and writing src. The copy is one self-contained
// file (rollback journal, not WAL), mode FileMode, written under a
// temporary name, synced and renamed into place; an existing dst is
// replaced.
func Copy(ctx context.Context, src, dst string) error {
	db, err := sql.Open("sqlite3", uri(src, "mode=rw", fmt.Sprintf("_busy_timeout=%d", BusyTimeoutMillis)))
	if err != nil {
		return err
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("sqlitedb: open %s: %w", src, err)
	}
	defer conn.Close()
	return copyConn(ctx, conn, dst)
}

// copyConn copies the main database of conn to dst (see Copy).
func copyConn(ctx context.Context, conn *sql.Conn, dst string) error {
	tmp := dst + ".part"
	os.Remove(tmp)
	if err := privateFiles(tmp); err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			for _, suf := range []string{"", "-journal", "-wal", "-shm"} {
				os.Remove(tmp + suf)
			}
		}
	}()
	err := conn.Raw(func(dc any) error {
		srcConn, isSQLite := rawSQLite(dc)
		if !isSQLite {
			return fmt.Errorf("sqlitedb: not a sqlite3 connection: %T", dc)
		}
		d, err := (&sqlite3.SQLiteDriver{}).Open(uri(tmp, fmt.Sprintf("_busy_timeout=%d", BusyTimeoutMillis)))
		if err != nil {
			return err
		}
		dstConn := d.(*sqlite3.SQLiteConn)
		defer dstConn.Close()
		b, err := dstConn.Backup("main", srcConn, "main")
		if err != nil {
			return err
		}
		// One step: the source stays read-locked (WAL: writers go on)
		// for the whole copy, so the copy is one consistent snapshot and
		// never restarts because another connection wrote.
		if _, err := b.Step(-1); err != nil {
			b.Finish()
			return err
		}
		if err := b.Finish(); err != nil {
			return err
		}
		// One file, no -wal beside it: a copy that travels alone.
		_, err = dstConn.ExecContext(ctx, "PRAGMA journal_mode=DELETE", nil)
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlitedb: copy to %s: %w", dst, err)
	}
	if err := syncFile(tmp); err != nil {
		return fmt.Errorf("sqlitedb: copy to %s: %w", dst, err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		return fmt.Errorf("sqlitedb: copy to %s: %w", dst, err)
	}
	ok = true
	if d, err := os.Open(filepath.Dir(dst)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

func syncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// OpenFile opens the database at path (which must exist) on one
// connection, as it is: no migrations, no change of journal mode; foreign
// keys on. It is for files that are not a live database of ours: copies
// made by Copy, a backup being checked or edited. readOnly opens it
// read-only.
func OpenFile(path string, readOnly bool) (*sql.DB, error) {
	mode := "mode=rw"
	if readOnly {
		mode = "mode=ro"
	}
	db, err := sql.Open("sqlite3", uri(path, mode, "_foreign_keys=on", fmt.Sprintf("_busy_timeout=%d", BusyTimeoutMillis)))
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	return db, nil
}

// uri is a DSN for path: a file: URI whose path escapes the bytes the
// driver or SQLite would take for the start of parameters.
func uri(path string, params ...string) string {
	p := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(path)
	return "file:" + p + "?" + strings.Join(params, "&")
}
