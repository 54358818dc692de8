package sqlitedb

import (
	"database/sql"
	"errors"
)

// Scanner is one row of a query: a *sql.Rows inside Each, or a *sql.Row,
// so that one scan function serves a query of one row and a query of many.
type Scanner interface {
	Scan(dest ...any) error
}

// Stop, returned by Each's fn, ends the loop early without an error (as
// fs.SkipAll does for a walk): the rows not read are never fetched.
var Stop = errors.New("sqlitedb: stop")

// Each calls fn for every row of a query and closes rows. It takes the
// query's two results as they are, so that a call site keeps its own query
// method (a prepared statement on a hot path, a transaction, a pool):
//
//	rows, err := tx.QueryContext(ctx, q, args...)
//	err = sqlitedb.Each(rows, err, func(row sqlitedb.Scanner) error { … row.Scan(…) … })
//
// The error is the first of: the query's, fn's (which stops the loop; Stop
// stops it with no error), the iteration's (rows.Err).
//
// fn is called through the Scanner interface, so scan targets it declares
// for each row escape to the heap: on a hot path, declare them once outside
// fn (maildir's fetch and flag updates do).
func Each(rows *sql.Rows, err error, fn func(row Scanner) error) error {
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := fn(rows); err != nil {
			if err == Stop {
				return nil
			}
			return err
		}
	}
	return rows.Err()
}

// Collect is Each that gathers what scan makes of every row, in row order.
// On an error it returns the error and no rows.
func Collect[T any](rows *sql.Rows, err error, scan func(row Scanner) (T, error)) ([]T, error) {
	var out []T
	err = Each(rows, err, func(row Scanner) error {
		v, err := scan(row)
		if err != nil {
			return err
		}
		out = append(out, v)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Value scans a row of one column: Collect(rows, err, Value[string]).
func Value[T any](row Scanner) (T, error) {
	var v T
	err := row.Scan(&v)
	return v, err
}
