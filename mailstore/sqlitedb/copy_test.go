package sqlitedb

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func userVersion(t *testing.T, path string) int {
	t.Helper()
	db, err := OpenFile(path, true)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v int
	if err := db.QueryRow(`PRAGMA user_version`).Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

func count(t *testing.T, path, query string) int {
	t.Helper()
	db, err := OpenFile(path, true)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(query).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// TestUpgradeKeepsCopy: a new database gets no copy; each upgrade of an
// existing one copies it first (the copy has the old schema and rows), and
// a later successful upgrade removes the earlier copy.
func TestUpgradeKeepsCopy(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "t.sqlite")
	migs := []Migration{Exec(`CREATE TABLE a (v TEXT)`, `INSERT INTO a VALUES ('one')`)}
	db, err := Open(ctx, path, migs, Options{})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	if m, _ := filepath.Glob(path + ".pre-v*"); len(m) != 0 {
		t.Fatalf("a new database got copies: %v", m)
	}

	migs = append(migs, Exec(`ALTER TABLE a ADD COLUMN w INTEGER NOT NULL DEFAULT 2`))
	db, err = Open(ctx, path, migs, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Write.ExecContext(ctx, `INSERT INTO a (v) VALUES ('two')`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	bak2 := UpgradeCopyPath(path, 2)
	if userVersion(t, bak2) != 1 || count(t, bak2, `SELECT count(*) FROM a`) != 1 {
		t.Fatalf("copy before v2: version %d", userVersion(t, bak2))
	}
	if fi, err := os.Stat(bak2); err != nil || fi.Mode().Perm() != FileMode {
		t.Fatalf("copy: %v %v", fi, err)
	}
	if _, err := os.Stat(bak2 + "-wal"); err == nil {
		t.Fatal("the copy has a -wal file beside it")
	}

	migs = append(migs, Exec(`CREATE TABLE b (x)`))
	db, err = Open(ctx, path, migs, Options{})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	bak3 := UpgradeCopyPath(path, 3)
	if userVersion(t, bak3) != 2 || count(t, bak3, `SELECT count(*) FROM a`) != 2 {
		t.Fatal("copy before v3 is not the v2 database")
	}
	if _, err := os.Stat(bak2); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the copy before v2 was kept after the v3 upgrade: %v", err)
	}
	if !IsUpgradeCopy(filepath.Base(bak3)) || IsUpgradeCopy("t.sqlite") || IsUpgradeCopy("t.sqlite.pre-vx.bak") {
		t.Fatal("IsUpgradeCopy")
	}
}

// TestFailedUpgradeLeavesDatabase: when one step of an upgrade fails, the
// steps before it in the same upgrade are undone too, the version is
// unchanged, the copy is there, and the error names file and copy.
func TestFailedUpgradeLeavesDatabase(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "t.sqlite")
	migs := []Migration{Exec(`CREATE TABLE a (v TEXT)`, `INSERT INTO a VALUES ('one')`)}
	db, err := Open(ctx, path, migs, Options{})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()

	boom := errors.New("deliberate failure")
	bad := append(migs,
		Exec(`CREATE TABLE b (x)`, `UPDATE a SET v = 'changed'`),
		func(ctx context.Context, tx *sql.Tx) error { return boom },
	)
	_, err = Open(ctx, path, bad, Options{})
	var me *MigrationError
	if !errors.As(err, &me) || !errors.Is(err, boom) {
		t.Fatalf("error %v, want a *MigrationError wrapping the failure", err)
	}
	if me.From != 1 || me.To != 3 || me.Step != 3 || me.Copy != UpgradeCopyPath(path, 3) {
		t.Fatalf("%+v", me)
	}
	msg := err.Error()
	if strings.Contains(msg, "\n") || !strings.Contains(msg, path+":") || !strings.Contains(msg, me.Copy) ||
		!strings.Contains(msg, "unchanged at v1") {
		t.Fatalf("message: %s", msg)
	}
	if v := userVersion(t, path); v != 1 {
		t.Fatalf("version %d after a failed upgrade", v)
	}
	if n := count(t, path, `SELECT count(*) FROM sqlite_master WHERE name = 'b'`); n != 0 {
		t.Fatal("step 2 of the failed upgrade was kept")
	}
	if n := count(t, path, `SELECT count(*) FROM a WHERE v = 'one'`); n != 1 {
		t.Fatal("rows changed by the failed upgrade")
	}
	if v := userVersion(t, me.Copy); v != 1 {
		t.Fatalf("copy at version %d", v)
	}
	// The old binary still opens it.
	db, err = Open(ctx, path, migs, Options{})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
}

// TestUpgradeNeedsCopy: no copy, no upgrade.
func TestUpgradeNeedsCopy(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "t.sqlite")
	migs := []Migration{Exec(`CREATE TABLE a (v TEXT)`)}
	db, err := Open(ctx, path, migs, Options{})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	// A directory where the copy's temporary file must go.
	if err := os.Mkdir(UpgradeCopyPath(path, 2)+".part", 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(UpgradeCopyPath(path, 2)+".part", "x"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, path, append(migs, Exec(`CREATE TABLE b (x)`)), Options{}); err == nil ||
		!strings.Contains(err.Error(), "without a copy") {
		t.Fatalf("upgraded without a copy: %v", err)
	}
	if v := userVersion(t, path); v != 1 {
		t.Fatalf("version %d", v)
	}
}

// TestCopyWhileWriting: a copy taken while another connection writes is
// a consistent database.
func TestCopyWhileWriting(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "t.sqlite")
	db, err := Open(ctx, path, []Migration{Exec(`CREATE TABLE a (id INTEGER PRIMARY KEY, v TEXT)`)}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 300; i++ {
			if _, err := db.Write.ExecContext(ctx, `INSERT INTO a (v) VALUES (?)`, strings.Repeat("x", 1000)); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for i := 0; i < 5; i++ {
		dst := filepath.Join(dir, "copy?#%.sqlite") // bytes a DSN would misread
		if err := Copy(ctx, path, dst); err != nil {
			t.Fatal(err)
		}
		if n := count(t, dst, `SELECT count(*) FROM pragma_integrity_check WHERE integrity_check != 'ok'`); n != 0 {
			t.Fatal("copy fails integrity_check")
		}
		if v := userVersion(t, dst); v != 1 {
			t.Fatalf("copy version %d", v)
		}
	}
	<-done
	if err := Copy(ctx, filepath.Join(dir, "missing.sqlite"), filepath.Join(dir, "c2")); err == nil {
		t.Fatal("copied a missing database")
	}
	if _, err := os.Stat(filepath.Join(dir, "missing.sqlite")); err == nil {
		t.Fatal("Copy created its source")
	}
}
