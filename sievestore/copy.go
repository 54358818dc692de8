package sievestore

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/posthouse/posthouse/internal/sqlcopy"
	"github.com/posthouse/posthouse/mailstore/sqlitedb"
)

// CopyResult counts what CopyTo added; Kept counts scripts and
// out-of-office settings dst already had, left as they are.
type CopyResult struct {
	Scripts, Vacations, Tracked int
	Kept                        int
}

// Changed reports whether CopyTo wrote anything.
func (r CopyResult) Changed() bool { return r.Scripts+r.Vacations+r.Tracked > 0 }

// CopyTo copies every account's scripts (with which one is active),
// out-of-office settings, and duplicate and vacation-response tracking not
// yet expired, into dst (sieve.sqlite into PostgreSQL, posthouse admin
// store copy), in one transaction of dst. What dst holds already (a script
// of that account and name, an account's out-of-office, a tracked entry)
// is kept, and a copied script is made active only when the account has
// no active script in dst: running it again changes nothing.
func (s *Store) CopyTo(ctx context.Context, dst *Store) (CopyResult, error) {
	var res CopyResult
	now := s.opts.Now().Unix()
	src := s.db.Read
	tx, err := dst.db.Write.BeginTx(ctx, nil)
	if err != nil {
		return res, fmt.Errorf("sievestore: copy: %w", err)
	}
	defer tx.Rollback()

	type script struct {
		account, name string
		source, hash  []byte
		active        bool
		modified      int64
	}
	rows, err := src.QueryContext(ctx, `SELECT account, name, source, hash, active, modified FROM scripts ORDER BY account, name`)
	scripts, err := sqlitedb.Collect(rows, err, func(r sqlitedb.Scanner) (sc script, err error) {
		err = r.Scan(&sc.account, &sc.name, &sc.source, &sc.hash, &sc.active, &sc.modified)
		return sc, err
	})
	if err != nil {
		return res, fmt.Errorf("sievestore: copy: read scripts: %w", err)
	}
	for _, sc := range scripts {
		n, err := sqlcopy.Exec(ctx, tx, `INSERT INTO scripts (account, name, source, hash, active, modified) VALUES (?, ?, ?, ?, 0, ?)
			ON CONFLICT (account, name) DO NOTHING`, sc.account, sc.name, sc.source, sc.hash, sc.modified)
		if err != nil {
			return res, fmt.Errorf("sievestore: copy: script %q of %s: %w", sc.name, sc.account, err)
		}
		if n == 0 {
			res.Kept++
			continue
		}
		res.Scripts++
		if sc.active {
			if _, err := tx.ExecContext(ctx, `UPDATE scripts SET active = 1 WHERE account = ? AND name = ?
				AND NOT EXISTS (SELECT 1 FROM scripts WHERE account = ? AND active = 1)`, sc.account, sc.name, sc.account); err != nil {
				return res, fmt.Errorf("sievestore: copy: script %q of %s: %w", sc.name, sc.account, err)
			}
		}
	}

	for _, c := range []struct {
		what, read, write string
		kept              bool
		count             *int
	}{
		{"out-of-office", `SELECT account, subject, message, start, until, period, modified FROM vacations`,
			`INSERT INTO vacations (account, subject, message, start, until, period, modified) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (account) DO NOTHING`,
			true, &res.Vacations},
		{"duplicate tracking", `SELECT account, id, expires FROM duplicates WHERE expires > ?`,
			`INSERT INTO duplicates (account, id, expires) VALUES (?, ?, ?) ON CONFLICT (account, id) DO NOTHING`,
			false, &res.Tracked},
		{"vacation responses", `SELECT account, handle, sender, expires FROM responses WHERE expires > ?`,
			`INSERT INTO responses (account, handle, sender, expires) VALUES (?, ?, ?, ?) ON CONFLICT (account, handle, sender) DO NOTHING`,
			false, &res.Tracked},
	} {
		var args []any
		if !c.kept {
			args = append(args, now)
		}
		n, kept, err := copyAll(ctx, src, tx, c.read, c.write, args...)
		if err != nil {
			return res, fmt.Errorf("sievestore: copy: %s: %w", c.what, err)
		}
		*c.count += n
		if c.kept {
			res.Kept += kept
		}
	}
	if err := tx.Commit(); err != nil {
		return res, fmt.Errorf("sievestore: copy: %w", err)
	}
	return res, nil
}

// copyAll writes each row read by read with write (the same columns in
// order) and counts the rows written and those already there.
func copyAll(ctx context.Context, src *sql.DB, tx *sql.Tx, read, write string, args ...any) (written, there int, err error) {
	rows, err := src.QueryContext(ctx, read, args...)
	if err != nil {
		return 0, 0, err
	}
	cols, err := rows.Columns()
	if err != nil {
		rows.Close()
		return 0, 0, err
	}
	var all [][]any
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			rows.Close()
			return 0, 0, err
		}
		all = append(all, vals)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, 0, err
	}
	for _, vals := range all {
		n, err := sqlcopy.Exec(ctx, tx, write, vals...)
		if err != nil {
			return 0, 0, err
		}
		written += n
		there += 1 - n
	}
	return written, there, nil
}
