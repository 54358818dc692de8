package auth

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/posthouse/posthouse/internal/sqlcopy"
	"github.com/posthouse/posthouse/mailstore/sqlitedb"
)

// CopyResult counts what CopyTo did. Kept counts rows the target already
// had (matched by domain name, address, or user and address), which are
// left as they are.
type CopyResult struct {
	Domains, Users, Aliases, SendAs, AppPasswords int
	Kept                                          int
}

// Changed reports whether CopyTo wrote anything.
func (r CopyResult) Changed() bool {
	return r.Domains+r.Users+r.Aliases+r.SendAs+r.AppPasswords > 0
}

// CopyTo copies the whole system database into dst (users.sqlite into the
// PostgreSQL tables of the postgres backend, posthouse admin store copy),
// in one write transaction of dst: domains, users with their password
// hash, quotas, role, disabled flag and second factor (TOTP secret and
// recovery codes), the addresses they logged in from, their app passwords,
// aliases with their targets in order, and send-as grants. Rows are
// matched by name, never by id: a domain, user or alias dst already holds
// is kept as it is (and so are its app passwords, codes and targets), so
// running it again changes nothing. Login throttling counters are not
// copied.
func (db *DB) CopyTo(ctx context.Context, dst *DB) (CopyResult, error) {
	var res CopyResult
	src := db.db.Read
	err := dst.write(ctx, func(tx *sql.Tx) error {
		domains := map[int64]int64{} // source id → target id
		type domain struct {
			id      int64
			name    string
			created int64
		}
		rows, err := src.QueryContext(ctx, `SELECT id, name, created FROM domains ORDER BY id`)
		ds, err := sqlitedb.Collect(rows, err, func(r sqlitedb.Scanner) (d domain, err error) {
			err = r.Scan(&d.id, &d.name, &d.created)
			return d, err
		})
		if err != nil {
			return fmt.Errorf("read domains: %w", err)
		}
		for _, d := range ds {
			n, err := sqlcopy.Exec(ctx, tx, `INSERT INTO domains (name, created) VALUES (?, ?) ON CONFLICT (name) DO NOTHING`, d.name, d.created)
			if err != nil {
				return fmt.Errorf("domain %s: %w", d.name, err)
			}
			res.Domains += n
			res.Kept += 1 - n
			if domains[d.id], err = domainID(ctx, tx, d.name); err != nil {
				return err
			}
		}

		type user struct {
			id, domain, quota, messageQuota, created, totpStep int64
			address, hash, role, totp                          string
			disabled                                           bool
		}
		rows, err = src.QueryContext(ctx, `SELECT id, address, domain_id, password_hash, quota, message_quota, disabled, created, role, totp_secret, totp_step FROM users ORDER BY id`)
		us, err := sqlitedb.Collect(rows, err, func(r sqlitedb.Scanner) (u user, err error) {
			err = r.Scan(&u.id, &u.address, &u.domain, &u.hash, &u.quota, &u.messageQuota, &u.disabled, &u.created, &u.role, &u.totp, &u.totpStep)
			return u, err
		})
		if err != nil {
			return fmt.Errorf("read users: %w", err)
		}
		users := map[int64]int64{} // source id → target id, every user
		for _, u := range us {
			n, err := sqlcopy.Exec(ctx, tx, `INSERT INTO users (address, domain_id, password_hash, quota, message_quota, disabled, created, role, totp_secret, totp_step)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (address) DO NOTHING`,
				u.address, domains[u.domain], u.hash, u.quota, u.messageQuota, u.disabled, u.created, u.role, u.totp, u.totpStep)
			if err != nil {
				return fmt.Errorf("user %s: %w", u.address, err)
			}
			var id int64
			if err := tx.QueryRowContext(ctx, `SELECT id FROM users WHERE address = ?`, u.address).Scan(&id); err != nil {
				return fmt.Errorf("user %s: %w", u.address, err)
			}
			users[u.id] = id
			if n == 0 {
				res.Kept++
				continue
			}
			res.Users++
			// A new user's secrets and known addresses come along.
			for _, c := range []struct{ what, read, write string }{
				{"app passwords", `SELECT name, hash, created, last_used, last_remote FROM app_passwords WHERE user_id = ? ORDER BY id`,
					`INSERT INTO app_passwords (user_id, name, hash, created, last_used, last_remote) VALUES (?, ?, ?, ?, ?, ?)`},
				{"recovery codes", `SELECT hash FROM recovery_codes WHERE user_id = ? ORDER BY id`,
					`INSERT INTO recovery_codes (user_id, hash) VALUES (?, ?)`},
				{"known addresses", `SELECT prefix, last_login FROM known_addresses WHERE user_id = ?`,
					`INSERT INTO known_addresses (user_id, prefix, last_login) VALUES (?, ?, ?)`},
			} {
				n, err := sqlcopy.Rows(ctx, src, tx, c.read, c.write, u.id, id)
				if err != nil {
					return fmt.Errorf("user %s: %s: %w", u.address, c.what, err)
				}
				if c.what == "app passwords" {
					res.AppPasswords += n
				}
			}
		}

		type alias struct {
			id, domain, created int64
			address             string
		}
		rows, err = src.QueryContext(ctx, `SELECT id, address, domain_id, created FROM aliases ORDER BY id`)
		as, err := sqlitedb.Collect(rows, err, func(r sqlitedb.Scanner) (a alias, err error) {
			err = r.Scan(&a.id, &a.address, &a.domain, &a.created)
			return a, err
		})
		if err != nil {
			return fmt.Errorf("read aliases: %w", err)
		}
		for _, a := range as {
			n, err := sqlcopy.Exec(ctx, tx, `INSERT INTO aliases (address, domain_id, created) VALUES (?, ?, ?) ON CONFLICT (address) DO NOTHING`,
				a.address, domains[a.domain], a.created)
			if err != nil {
				return fmt.Errorf("alias %s: %w", a.address, err)
			}
			if n == 0 {
				res.Kept++
				continue
			}
			res.Aliases++
			var id int64
			if err := tx.QueryRowContext(ctx, `SELECT id FROM aliases WHERE address = ?`, a.address).Scan(&id); err != nil {
				return fmt.Errorf("alias %s: %w", a.address, err)
			}
			if _, err := sqlcopy.Rows(ctx, src, tx, `SELECT position, target FROM alias_targets WHERE alias_id = ? ORDER BY position`,
				`INSERT INTO alias_targets (alias_id, position, target) VALUES (?, ?, ?)`, a.id, id); err != nil {
				return fmt.Errorf("alias %s: %w", a.address, err)
			}
		}

		type grant struct {
			user, created int64
			address       string
		}
		rows, err = src.QueryContext(ctx, `SELECT user_id, address, created FROM send_as ORDER BY user_id, address`)
		gs, err := sqlitedb.Collect(rows, err, func(r sqlitedb.Scanner) (g grant, err error) {
			err = r.Scan(&g.user, &g.address, &g.created)
			return g, err
		})
		if err != nil {
			return fmt.Errorf("read send-as grants: %w", err)
		}
		for _, g := range gs {
			n, err := sqlcopy.Exec(ctx, tx, `INSERT INTO send_as (user_id, address, created) VALUES (?, ?, ?) ON CONFLICT (user_id, address) DO NOTHING`,
				users[g.user], g.address, g.created)
			if err != nil {
				return fmt.Errorf("send-as %s: %w", g.address, err)
			}
			res.SendAs += n
			res.Kept += 1 - n
		}
		return nil
	})
	if err != nil {
		return CopyResult{}, fmt.Errorf("auth: copy: %w", err)
	}
	return res, nil
}
