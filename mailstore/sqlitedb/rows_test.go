package sqlitedb

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"slices"
	"testing"
)

func rowsDB(t *testing.T) *DB {
	t.Helper()
	db, err := Open(context.Background(), filepath.Join(t.TempDir(), "t.sqlite"), []Migration{
		Exec(`CREATE TABLE a (id INTEGER PRIMARY KEY, v TEXT)`,
			`INSERT INTO a (v) VALUES ('x'), ('y'), (NULL), ('z')`),
	}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestCollect(t *testing.T) {
	db := rowsDB(t)
	ctx := context.Background()
	query := func(q string) (*sql.Rows, error) { return db.Read.QueryContext(ctx, q) }

	rows, err := query(`SELECT id FROM a ORDER BY id`)
	ids, err := Collect(rows, err, Value[int64])
	if err != nil || !slices.Equal(ids, []int64{1, 2, 3, 4}) {
		t.Fatalf("ids %v, %v", ids, err)
	}

	rows, err = query(`SELECT id FROM a WHERE id > 10`)
	ids, err = Collect(rows, err, Value[int64])
	if err != nil || len(ids) != 0 {
		t.Fatalf("no rows: %v, %v", ids, err)
	}

	// A scan error (NULL into a string) stops the loop and is returned.
	rows, err = query(`SELECT v FROM a ORDER BY id`)
	vs, err := Collect(rows, err, Value[string])
	if err == nil || vs != nil {
		t.Fatalf("NULL into string: %v, %v", vs, err)
	}

	// The query's own error is returned as it is.
	rows, err = query(`SELECT nope FROM a`)
	if _, err := Collect(rows, err, Value[int64]); err == nil {
		t.Fatal("bad query: no error")
	}
}

func TestEachStopsAtFnError(t *testing.T) {
	db := rowsDB(t)
	stop := errors.New("stop")
	var seen []int64
	rows, err := db.Read.QueryContext(context.Background(), `SELECT id FROM a ORDER BY id`)
	err = Each(rows, err, func(row Scanner) error {
		var id int64
		if err := row.Scan(&id); err != nil {
			return err
		}
		seen = append(seen, id)
		if id == 2 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || !slices.Equal(seen, []int64{1, 2}) {
		t.Fatalf("seen %v, err %v", seen, err)
	}
	// rows was closed: the read pool's connection is free again.
	if n := db.Read.Stats().InUse; n != 0 {
		t.Fatalf("%d read connections still in use", n)
	}
}

func TestEachStop(t *testing.T) {
	db := rowsDB(t)
	n := 0
	rows, err := db.Read.QueryContext(context.Background(), `SELECT id FROM a ORDER BY id`)
	err = Each(rows, err, func(row Scanner) error {
		if n++; n == 3 {
			return Stop
		}
		return nil
	})
	if err != nil || n != 3 {
		t.Fatalf("n %d, err %v", n, err)
	}
	if inUse := db.Read.Stats().InUse; inUse != 0 {
		t.Fatalf("%d read connections still in use", inUse)
	}
}
