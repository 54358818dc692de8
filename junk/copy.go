package junk

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/posthouse/posthouse/internal/sqlcopy"
)

// CopyResult counts what CopyTo did: accounts copied with their
// features, learned messages and correspondents, and accounts dst had
// already (kept as they are).
type CopyResult struct {
	Accounts, Tokens int
	Kept             int
}

// CopyTo copies every account's statistics into dst (junk.sqlite into
// PostgreSQL, posthouse admin store copy), each account in one transaction
// of dst. An account dst knows already is kept as it is, so running it
// again changes nothing.
func (d *DB) CopyTo(ctx context.Context, dst *DB) (CopyResult, error) {
	var res CopyResult
	type account struct {
		id          int64
		name        string
		nspam, nham int64
	}
	rows, err := d.db.Read.QueryContext(ctx, `SELECT id, name, nspam, nham FROM accounts ORDER BY id`)
	if err != nil {
		return res, fmt.Errorf("junk: copy: %w", err)
	}
	var accounts []account
	for rows.Next() {
		var a account
		if err := rows.Scan(&a.id, &a.name, &a.nspam, &a.nham); err != nil {
			rows.Close()
			return res, fmt.Errorf("junk: copy: %w", err)
		}
		accounts = append(accounts, a)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return res, fmt.Errorf("junk: copy: %w", err)
	}
	for _, a := range accounts {
		n, copied, err := d.copyAccount(ctx, dst, a.id, a.name, a.nspam, a.nham)
		if err != nil {
			return res, fmt.Errorf("junk: copy %s: %w", a.name, err)
		}
		if !copied {
			res.Kept++
			continue
		}
		res.Accounts++
		res.Tokens += n
	}
	return res, nil
}

// copyAccount copies one account unless dst has it; the feature count of
// the new row is kept by dst's triggers.
func (d *DB) copyAccount(ctx context.Context, dst *DB, srcID int64, name string, nspam, nham int64) (tokens int, copied bool, err error) {
	tx, err := dst.db.Write.BeginTx(ctx, nil)
	if err != nil {
		return 0, false, err
	}
	defer tx.Rollback()
	var id int64
	err = tx.QueryRowContext(ctx, `INSERT INTO accounts (name, nspam, nham) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING RETURNING id`,
		name, nspam, nham).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	for i, c := range []struct{ read, write string }{
		{`SELECT hash, spam, ham, day FROM tokens WHERE account = ?`, `INSERT INTO tokens (account, hash, spam, ham, day) VALUES (?, ?, ?, ?, ?)`},
		{`SELECT msg, class, day FROM learned WHERE account = ?`, `INSERT INTO learned (account, msg, class, day) VALUES (?, ?, ?, ?)`},
		{`SELECT address, day FROM correspondents WHERE account = ?`, `INSERT INTO correspondents (account, address, day) VALUES (?, ?, ?)`},
	} {
		n, err := sqlcopy.Rows(ctx, d.db.Read, tx, c.read, c.write, srcID, id)
		if err != nil {
			return 0, false, err
		}
		if i == 0 {
			tokens = n
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, false, err
	}
	dst.cache.drop(name)
	return tokens, true, nil
}
