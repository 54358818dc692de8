// Package sqlcopy holds the steps `posthouse admin store copy` repeats for
// each system table it moves from a SQLite file into PostgreSQL: rows of
// one owner copied under the owner's new id, and inserts that keep what the
// target already has.
package sqlcopy

import (
	"context"
	"database/sql"
)

// Rows runs read (with srcID as its argument) on src and writes each row it
// returns with write in tx: dstID first, then the columns read, in order.
// It returns how many rows it wrote.
func Rows(ctx context.Context, src *sql.DB, tx *sql.Tx, read, write string, srcID, dstID int64) (int, error) {
	rows, err := src.QueryContext(ctx, read, srcID)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return 0, err
	}
	ins, err := tx.PrepareContext(ctx, write)
	if err != nil {
		return 0, err
	}
	defer ins.Close()
	n := 0
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return n, err
		}
		if _, err := ins.ExecContext(ctx, append([]any{dstID}, vals...)...); err != nil {
			return n, err
		}
		n++
	}
	return n, rows.Err()
}

// Exec runs q in tx and returns how many rows it changed: for an INSERT …
// ON CONFLICT DO NOTHING, 1 if it inserted the row and 0 if the row was
// there.
func Exec(ctx context.Context, tx *sql.Tx, q string, args ...any) (int, error) {
	r, err := tx.ExecContext(ctx, q, args...)
	if err != nil {
		return 0, err
	}
	n, err := r.RowsAffected()
	return int(n), err
}
