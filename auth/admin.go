package auth

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/posthouse/posthouse/mailstore/sqlitedb"
)

// write runs fn in one immediate write transaction.
func (db *DB) write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := db.db.Write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("auth: begin: %w", err)
	}
	if db.db.writeLock != "" {
		if _, err := tx.ExecContext(ctx, db.db.writeLock); err != nil {
			tx.Rollback()
			return fmt.Errorf("auth: lock: %w", err)
		}
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("auth: commit: %w", err)
	}
	return nil
}

func domainID(ctx context.Context, tx *sql.Tx, name string) (int64, error) {
	var id int64
	err := tx.QueryRowContext(ctx, `SELECT id FROM domains WHERE name = ?`, name).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("%w: %s", ErrNoSuchDomain, name)
	}
	if err != nil {
		return 0, fmt.Errorf("auth: domain lookup: %w", err)
	}
	return id, nil
}

// AddDomain adds a domain we receive mail for. ErrInvalidDomain, ErrExists.
func (db *DB) AddDomain(ctx context.Context, name string) error {
	d, err := NormalizeDomain(name)
	if err != nil {
		return err
	}
	return db.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO domains (name, created) VALUES (?, ?)`, d, db.now().Unix())
		if isUnique(err) {
			return fmt.Errorf("%w: domain %s", ErrExists, d)
		}
		if err != nil {
			return fmt.Errorf("auth: add domain: %w", err)
		}
		return nil
	})
}

// Domains lists our domains by name.
func (db *DB) Domains(ctx context.Context) ([]Domain, error) {
	rows, err := db.db.Read.QueryContext(ctx, `SELECT name, created FROM domains ORDER BY name`)
	ds, err := sqlitedb.Collect(rows, err, func(row sqlitedb.Scanner) (Domain, error) {
		var d Domain
		var created int64
		err := row.Scan(&d.Name, &created)
		d.Created = time.Unix(created, 0).UTC()
		return d, err
	})
	if err != nil {
		return nil, fmt.Errorf("auth: list domains: %w", err)
	}
	return ds, nil
}

// RemoveDomain removes a domain. Without force it refuses with
// ErrDomainNotEmpty while the domain has users or aliases; with force it
// removes them too (their mailstore accounts stay on disk for the operator).
// ErrNoSuchDomain if it does not exist.
func (db *DB) RemoveDomain(ctx context.Context, name string, force bool) error {
	d, err := NormalizeDomain(name)
	if err != nil {
		return err
	}
	var removed []string
	err = db.write(ctx, func(tx *sql.Tx) error {
		id, err := domainID(ctx, tx, d)
		if err != nil {
			return err
		}
		var users, aliases int
		if err := tx.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM users WHERE domain_id = ?), (SELECT count(*) FROM aliases WHERE domain_id = ?)`, id, id).Scan(&users, &aliases); err != nil {
			return fmt.Errorf("auth: remove domain: %w", err)
		}
		if users+aliases > 0 && !force {
			return fmt.Errorf("%w: %s has %d users and %d aliases", ErrDomainNotEmpty, d, users, aliases)
		}
		rows, err := tx.QueryContext(ctx, `SELECT address FROM users WHERE domain_id = ?`, id)
		if removed, err = sqlitedb.Collect(rows, err, sqlitedb.Value[string]); err != nil {
			return fmt.Errorf("auth: remove domain: %w", err)
		}
		for _, q := range []string{
			`DELETE FROM aliases WHERE domain_id = ?`,
			`DELETE FROM users WHERE domain_id = ?`,
			`DELETE FROM domains WHERE id = ?`,
		} {
			if _, err := tx.ExecContext(ctx, q, id); err != nil {
				return fmt.Errorf("auth: remove domain: %w", err)
			}
		}
		return nil
	})
	if err == nil {
		for _, a := range removed {
			db.cache.invalidate(a)
		}
	}
	return err
}

// AddUser creates an account with an argon2id hash of password and a quota
// in bytes (0: unlimited). ErrInvalidAddress, ErrNoSuchDomain, ErrExists
// (a user or an alias has that address), ErrEmptyPassword, ErrInvalidQuota.
func (db *DB) AddUser(ctx context.Context, address, password string, quota int64) (User, error) {
	a, err := normalizeLocalAccount(address)
	if err != nil {
		return User{}, err
	}
	if password == "" {
		return User{}, ErrEmptyPassword
	}
	if quota < 0 {
		return User{}, fmt.Errorf("%w: %d", ErrInvalidQuota, quota)
	}
	hash, err := db.hash(ctx, password)
	if err != nil {
		return User{}, err
	}
	return db.addUserHash(ctx, a, hash, quota)
}

// AddUserHash is AddUser with a password hash imported from another system:
// an argon2id PHC string or a bcrypt hash ($2a$, $2b$, $2y$). The hash is
// replaced by our argon2id form at the user's first successful login.
// ErrInvalidHash for anything else.
func (db *DB) AddUserHash(ctx context.Context, address, hash string, quota int64) (User, error) {
	a, err := normalizeLocalAccount(address)
	if err != nil {
		return User{}, err
	}
	if err := checkHash(hash); err != nil {
		return User{}, err
	}
	if quota < 0 {
		return User{}, fmt.Errorf("%w: %d", ErrInvalidQuota, quota)
	}
	return db.addUserHash(ctx, a, hash, quota)
}

func (db *DB) addUserHash(ctx context.Context, a, hash string, quota int64) (User, error) {
	_, domain := splitAddress(a)
	u := User{Address: a, QuotaBytes: quota, Created: time.Unix(db.now().Unix(), 0).UTC()}
	err := db.write(ctx, func(tx *sql.Tx) error {
		did, err := domainID(ctx, tx, domain)
		if err != nil {
			return err
		}
		if ok, err := exists(tx.QueryRowContext(ctx, `SELECT 1 FROM aliases WHERE address = ?`, a)); err != nil {
			return fmt.Errorf("auth: add user: %w", err)
		} else if ok {
			return fmt.Errorf("%w: %s is an alias", ErrExists, a)
		}
		err = tx.QueryRowContext(ctx, `INSERT INTO users (address, domain_id, password_hash, quota, created) VALUES (?, ?, ?, ?, ?) RETURNING id`,
			a, did, hash, quota, u.Created.Unix()).Scan(&u.ID)
		if isUnique(err) {
			return fmt.Errorf("%w: user %s", ErrExists, a)
		}
		if err != nil {
			return fmt.Errorf("auth: add user: %w", err)
		}
		return nil
	})
	if err != nil {
		return User{}, err
	}
	db.cache.invalidate(a)
	return u, nil
}

// Users lists the users of one domain, or of all domains when domain is "",
// by address. ErrNoSuchDomain for an unknown domain.
func (db *DB) Users(ctx context.Context, domain string) ([]User, error) {
	q := `SELECT ` + userColumns + ` FROM users ORDER BY address`
	var args []any
	if domain != "" {
		d, err := db.checkDomain(ctx, domain)
		if err != nil {
			return nil, err
		}
		q = `SELECT ` + userColumns + ` FROM users
			WHERE domain_id = (SELECT id FROM domains WHERE name = ?) ORDER BY address`
		args = append(args, d)
	}
	rows, err := db.db.Read.QueryContext(ctx, q, args...)
	us, err := sqlitedb.Collect(rows, err, func(row sqlitedb.Scanner) (User, error) {
		u, err := scanUser(row)
		return u.User, err
	})
	if err != nil {
		return nil, fmt.Errorf("auth: list users: %w", err)
	}
	return us, nil
}

// checkDomain normalizes domain and checks that it is ours.
func (db *DB) checkDomain(ctx context.Context, domain string) (string, error) {
	d, err := NormalizeDomain(domain)
	if err != nil {
		return "", err
	}
	ok, err := readLookup{db}.domainExists(ctx, d)
	if err != nil {
		return "", fmt.Errorf("auth: domain lookup: %w", err)
	}
	if !ok {
		return "", fmt.Errorf("%w: %s", ErrNoSuchDomain, d)
	}
	return d, nil
}

// updateUser runs one UPDATE of a user's row; ErrNoSuchUser if none.
func (db *DB) updateUser(ctx context.Context, address, set string, args ...any) (string, error) {
	a, err := NormalizeAddress(address)
	if err != nil {
		return "", err
	}
	err = db.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE users SET `+set+` WHERE address = ?`, append(args, a)...)
		if err != nil {
			return fmt.Errorf("auth: update user: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("auth: update user: %w", err)
		} else if n == 0 {
			return fmt.Errorf("%w: %s", ErrNoSuchUser, a)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	db.cache.invalidate(a)
	return a, nil
}

// SetPassword replaces a user's password. ErrNoSuchUser, ErrEmptyPassword.
// Credentials cached by this process are dropped at once; other processes
// notice at their next login because the stored hash changed.
func (db *DB) SetPassword(ctx context.Context, address, password string) error {
	if password == "" {
		return ErrEmptyPassword
	}
	hash, err := db.hash(ctx, password)
	if err != nil {
		return err
	}
	_, err = db.updateUser(ctx, address, `password_hash = ?`, hash)
	return err
}

// SetPasswordHash stores an imported hash as AddUserHash does.
// ErrNoSuchUser, ErrInvalidHash.
func (db *DB) SetPasswordHash(ctx context.Context, address, hash string) error {
	if err := checkHash(hash); err != nil {
		return err
	}
	_, err := db.updateUser(ctx, address, `password_hash = ?`, hash)
	return err
}

// SetQuota sets a user's quota in bytes (0: unlimited). ErrNoSuchUser,
// ErrInvalidQuota.
func (db *DB) SetQuota(ctx context.Context, address string, quota int64) error {
	if quota < 0 {
		return fmt.Errorf("%w: %d", ErrInvalidQuota, quota)
	}
	_, err := db.updateUser(ctx, address, `quota = ?`, quota)
	return err
}

// SetMessageQuota sets the most messages a user's account may hold (0:
// unlimited). ErrNoSuchUser, ErrInvalidQuota.
func (db *DB) SetMessageQuota(ctx context.Context, address string, messages int64) error {
	if messages < 0 {
		return fmt.Errorf("%w: %d messages", ErrInvalidQuota, messages)
	}
	_, err := db.updateUser(ctx, address, `message_quota = ?`, messages)
	return err
}

// SetDisabled disables or re-enables a user's logins. A disabled user still
// receives mail (see Resolve). ErrNoSuchUser.
func (db *DB) SetDisabled(ctx context.Context, address string, disabled bool) error {
	_, err := db.updateUser(ctx, address, `disabled = ?`, disabled)
	return err
}

// RemoveUser removes a user. Its mailstore account stays on disk (removing
// mail is the operator's decision), and aliases naming it keep the target,
// which Resolve skips while no such user exists. ErrNoSuchUser.
func (db *DB) RemoveUser(ctx context.Context, address string) error {
	a, err := NormalizeAddress(address)
	if err != nil {
		return err
	}
	err = db.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM users WHERE address = ?`, a)
		if err != nil {
			return fmt.Errorf("auth: remove user: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("auth: remove user: %w", err)
		} else if n == 0 {
			return fmt.Errorf("%w: %s", ErrNoSuchUser, a)
		}
		return nil
	})
	if err == nil {
		db.cache.invalidate(a)
	}
	return err
}

// AddAlias defines address (a local address, or "@domain" for the domain's
// catch-all) as forwarding to targets: local users, local aliases (or their
// +tag forms) and foreign addresses. The alias's domain must be ours
// (ErrNoSuchDomain), no user or alias may have its address (ErrExists), every
// local target must resolve now (ErrNoSuchUser), and the alias may not expand
// into itself (ErrAliasLoop). At least one target (ErrInvalidAddress).
func (db *DB) AddAlias(ctx context.Context, address string, targets []string) error {
	a, err := normalizeAliasAddress(address)
	if err != nil {
		return err
	}
	if len(targets) == 0 {
		return fmt.Errorf("%w: alias %s has no targets", ErrInvalidAddress, a)
	}
	var ts []string
	seen := map[string]bool{}
	for _, t := range targets {
		n, err := NormalizeAddress(strings.TrimSpace(t))
		if err != nil {
			return fmt.Errorf("target %q: %w", t, err)
		}
		if !seen[n] {
			seen[n] = true
			ts = append(ts, n)
		}
	}
	_, domain := splitAddress(a)
	return db.write(ctx, func(tx *sql.Tx) error {
		did, err := domainID(ctx, tx, domain)
		if err != nil {
			return err
		}
		if ok, err := exists(tx.QueryRowContext(ctx, `SELECT 1 FROM users WHERE address = ?`, a)); err != nil {
			return fmt.Errorf("auth: add alias: %w", err)
		} else if ok {
			return fmt.Errorf("%w: %s is a user", ErrExists, a)
		}
		var id int64
		err = tx.QueryRowContext(ctx, `INSERT INTO aliases (address, domain_id, created) VALUES (?, ?, ?) RETURNING id`, a, did, db.now().Unix()).Scan(&id)
		if isUnique(err) {
			return fmt.Errorf("%w: alias %s", ErrExists, a)
		}
		if err != nil {
			return fmt.Errorf("auth: add alias: %w", err)
		}
		for i, t := range ts {
			if _, err := tx.ExecContext(ctx, `INSERT INTO alias_targets (alias_id, position, target) VALUES (?, ?, ?)`, id, i, t); err != nil {
				return fmt.Errorf("auth: add alias: %w", err)
			}
		}
		// Check the new definition as Resolve will see it once committed.
		l := txLookup{tx}
		for _, t := range ts {
			r := newResolver(db, l)
			if err := r.address(ctx, t, 1); err != nil {
				return fmt.Errorf("target %s: %w", t, err)
			}
			if r.loop {
				return fmt.Errorf("%w: %s → %s", ErrAliasLoop, a, t)
			}
		}
		r := newResolver(db, l)
		if err := r.expand(ctx, a, ts, 0); err != nil {
			return err
		}
		if r.loop {
			return fmt.Errorf("%w: %s", ErrAliasLoop, a)
		}
		return nil
	})
}

// Aliases lists the aliases of one domain, or of all when domain is "", by
// address, each with its targets in the order given. ErrNoSuchDomain.
func (db *DB) Aliases(ctx context.Context, domain string) ([]Alias, error) {
	q := `SELECT a.address, t.target FROM aliases a JOIN alias_targets t ON t.alias_id = a.id`
	var args []any
	if domain != "" {
		d, err := db.checkDomain(ctx, domain)
		if err != nil {
			return nil, err
		}
		q += ` JOIN domains d ON d.id = a.domain_id WHERE d.name = ?`
		args = append(args, d)
	}
	q += ` ORDER BY a.address, t.position`
	rows, err := db.db.Read.QueryContext(ctx, q, args...)
	var as []Alias
	err = sqlitedb.Each(rows, err, func(row sqlitedb.Scanner) error {
		var addr, target string
		if err := row.Scan(&addr, &target); err != nil {
			return err
		}
		if len(as) == 0 || as[len(as)-1].Address != addr {
			as = append(as, Alias{Address: addr})
		}
		as[len(as)-1].Targets = append(as[len(as)-1].Targets, target)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("auth: list aliases: %w", err)
	}
	return as, nil
}

// RemoveAlias removes an alias (or a catch-all "@domain"). ErrNoSuchAlias.
func (db *DB) RemoveAlias(ctx context.Context, address string) error {
	a, err := normalizeAliasAddress(address)
	if err != nil {
		return err
	}
	return db.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM aliases WHERE address = ?`, a)
		if err != nil {
			return fmt.Errorf("auth: remove alias: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("auth: remove alias: %w", err)
		} else if n == 0 {
			return fmt.Errorf("%w: %s", ErrNoSuchAlias, a)
		}
		return nil
	})
}
