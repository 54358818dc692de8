package auth

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/posthouse/posthouse/mailstore/sqlitedb"
)

// ErrNoSuchGrant: RemoveSendAs found no such grant.
var ErrNoSuchGrant = errors.New("auth: no such send-as grant")

// SendAsGrant lets User send as Address (or, for "@domain", as every
// address of the domain) on submission: see CanSendAs.
type SendAsGrant struct {
	User    string
	Address string
	Created time.Time
}

// normalizeGrant accepts an address (any domain: a user may be allowed a
// foreign address they also own elsewhere) or "@domain".
// normalizeUserGrant normalizes a user and a grant's address.
func normalizeUserGrant(user, address string) (u, a string, err error) {
	if u, err = NormalizeAddress(user); err != nil {
		return "", "", err
	}
	a, err = normalizeGrant(address)
	return u, a, err
}

func normalizeGrant(s string) (string, error) {
	if len(s) > 0 && s[0] == '@' {
		d, err := NormalizeDomain(s[1:])
		if err != nil {
			return "", fmt.Errorf("%w: %w", ErrInvalidAddress, err)
		}
		return "@" + d, nil
	}
	return NormalizeAddress(s)
}

// AddSendAs lets user send as address ("@domain": any address of the
// domain). The user must exist (ErrNoSuchUser); a grant given twice is
// ErrExists; ErrInvalidAddress.
func (db *DB) AddSendAs(ctx context.Context, user, address string) error {
	u, a, err := normalizeUserGrant(user, address)
	if err != nil {
		return err
	}
	return db.write(ctx, func(tx *sql.Tx) error {
		var id int64
		err := tx.QueryRowContext(ctx, `SELECT id FROM users WHERE address = ?`, u).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w: %s", ErrNoSuchUser, u)
		}
		if err != nil {
			return fmt.Errorf("auth: add send-as: %w", err)
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO send_as (user_id, address, created) VALUES (?, ?, ?)`, id, a, db.now().Unix())
		if isUnique(err) {
			return fmt.Errorf("%w: %s may already send as %s", ErrExists, u, a)
		}
		if err != nil {
			return fmt.Errorf("auth: add send-as: %w", err)
		}
		return nil
	})
}

// RemoveSendAs withdraws a grant. ErrNoSuchGrant; ErrNoSuchUser.
func (db *DB) RemoveSendAs(ctx context.Context, user, address string) error {
	u, a, err := normalizeUserGrant(user, address)
	if err != nil {
		return err
	}
	return db.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM send_as WHERE address = ? AND user_id = (SELECT id FROM users WHERE address = ?)`, a, u)
		if err != nil {
			return fmt.Errorf("auth: remove send-as: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("auth: remove send-as: %w", err)
		} else if n > 0 {
			return nil
		}
		if ok, err := exists(tx.QueryRowContext(ctx, `SELECT 1 FROM users WHERE address = ?`, u)); err != nil {
			return fmt.Errorf("auth: remove send-as: %w", err)
		} else if !ok {
			return fmt.Errorf("%w: %s", ErrNoSuchUser, u)
		}
		return fmt.Errorf("%w: %s may not send as %s", ErrNoSuchGrant, u, a)
	})
}

// SendAsGrants lists the grants of user, or of every user when user is
// "", by user and address. ErrNoSuchUser.
func (db *DB) SendAsGrants(ctx context.Context, user string) ([]SendAsGrant, error) {
	q := `SELECT u.address, g.address, g.created FROM send_as g JOIN users u ON u.id = g.user_id`
	var args []any
	if user != "" {
		u, err := db.User(ctx, user)
		if err != nil {
			return nil, err
		}
		q += ` WHERE u.address = ?`
		args = append(args, u.Address)
	}
	q += ` ORDER BY u.address, g.address`
	rows, err := db.db.Read.QueryContext(ctx, q, args...)
	gs, err := sqlitedb.Collect(rows, err, func(row sqlitedb.Scanner) (SendAsGrant, error) {
		var g SendAsGrant
		var created int64
		err := row.Scan(&g.User, &g.Address, &created)
		g.Created = time.Unix(created, 0).UTC()
		return g, err
	})
	if err != nil {
		return nil, fmt.Errorf("auth: list send-as: %w", err)
	}
	return gs, nil
}
