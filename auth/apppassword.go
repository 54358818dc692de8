package auth

import (
	"context"
	"database/sql"
	"fmt"
	"net/netip"
	"time"

	"github.com/posthouse/posthouse/mailstore/sqlitedb"
)

const (
	// maxAppPasswords per user: one per device, with room to spare. It
	// also bounds what one protocol login compares.
	maxAppPasswords = 50
	// maxAppPasswordName bounds an app password's name, in bytes.
	maxAppPasswordName = 64
	// lastUseInterval: an app password's last use (time and address) is
	// written when the stored one is at least this old, so a client that
	// logs in on every connection costs no write per login.
	lastUseInterval = time.Minute
)

// AppPassword is one of a user's app passwords, as listed: never the
// secret, which only CreateAppPassword returns, once.
type AppPassword struct {
	ID      int64
	Name    string
	Created time.Time
	// LastUsed is the last login with it, to within lastUseInterval; zero
	// if never. LastRemote is the client address of that login ("" if
	// never, "unknown" when the protocol had none).
	LastUsed   time.Time
	LastRemote string
}

// CreateAppPassword makes a new app password for address, named for the
// device it goes on, and returns it with the secret in its display form
// (five dash-separated groups of four lowercase letters; clients may send
// it with or without dashes and spaces). The secret is stored hashed and
// cannot be shown again. ErrNoSuchUser, ErrInvalidName,
// ErrTooManyAppPasswords.
func (db *DB) CreateAppPassword(ctx context.Context, address, name string) (AppPassword, string, error) {
	a, err := NormalizeAddress(address)
	if err != nil {
		return AppPassword{}, "", err
	}
	name, err = checkName(name)
	if err != nil {
		return AppPassword{}, "", err
	}
	secret := appPasswordFormat.generate()
	canon, _ := appPasswordFormat.parse(secret)
	ap := AppPassword{Name: name, Created: time.Unix(db.now().Unix(), 0).UTC()}
	err = db.write(ctx, func(tx *sql.Tx) error {
		var uid int64
		var n int
		err := tx.QueryRowContext(ctx, `SELECT id, (SELECT count(*) FROM app_passwords WHERE user_id = users.id) FROM users WHERE address = ?`, a).Scan(&uid, &n)
		if err == sql.ErrNoRows {
			return fmt.Errorf("%w: %s", ErrNoSuchUser, a)
		}
		if err != nil {
			return fmt.Errorf("auth: add app password: %w", err)
		}
		if n >= maxAppPasswords {
			return fmt.Errorf("%w: %s has %d", ErrTooManyAppPasswords, a, n)
		}
		err = tx.QueryRowContext(ctx, `INSERT INTO app_passwords (user_id, name, hash, created) VALUES (?, ?, ?, ?) RETURNING id`,
			uid, name, secretHash(canon), ap.Created.Unix()).Scan(&ap.ID)
		if err != nil {
			return fmt.Errorf("auth: add app password: %w", err)
		}
		return nil
	})
	if err != nil {
		return AppPassword{}, "", err
	}
	db.log.Info("app password created", "user", a, "app_password", ap.ID)
	return ap, secret, nil
}

// AppPasswords lists a user's app passwords, oldest first. ErrNoSuchUser.
func (db *DB) AppPasswords(ctx context.Context, address string) ([]AppPassword, error) {
	u, err := db.User(ctx, address)
	if err != nil {
		return nil, err
	}
	rows, err := db.db.Read.QueryContext(ctx, `SELECT id, name, created, last_used, last_remote FROM app_passwords WHERE user_id = ? ORDER BY id`, u.ID)
	aps, err := sqlitedb.Collect(rows, err, func(row sqlitedb.Scanner) (AppPassword, error) {
		var ap AppPassword
		var created, used int64
		err := row.Scan(&ap.ID, &ap.Name, &created, &used, &ap.LastRemote)
		ap.Created = time.Unix(created, 0).UTC()
		if used > 0 {
			ap.LastUsed = time.Unix(used, 0).UTC()
		}
		return ap, err
	})
	if err != nil {
		return nil, fmt.Errorf("auth: list app passwords: %w", err)
	}
	return aps, nil
}

// RevokeAppPassword removes one of address's app passwords. The next
// login with it fails, in this process and any other: app passwords are
// checked against the database at every login, never cached. Sessions
// already logged in with it stay open until they end.
// ErrNoSuchAppPassword (also when id is another user's), ErrNoSuchUser.
func (db *DB) RevokeAppPassword(ctx context.Context, address string, id int64) error {
	u, err := db.User(ctx, address)
	if err != nil {
		return err
	}
	err = db.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM app_passwords WHERE id = ? AND user_id = ?`, id, u.ID)
		if err != nil {
			return fmt.Errorf("auth: revoke app password: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("auth: revoke app password: %w", err)
		} else if n == 0 {
			return fmt.Errorf("%w: %d of %s", ErrNoSuchAppPassword, id, u.Address)
		}
		return nil
	})
	if err == nil {
		db.log.Info("app password revoked", "user", u.Address, "app_password", id)
	}
	return err
}

// appPasswordMatch is the app password a login used.
type appPasswordMatch struct {
	id       int64
	name     string
	lastUsed int64
}

// checkAppPassword looks for password among userID's app passwords. Only a
// password in the app password format is looked for (one indexed query,
// then one HMAC per app password of the user).
func (db *DB) checkAppPassword(ctx context.Context, userID int64, password string) (appPasswordMatch, bool, error) {
	canon, ok := appPasswordFormat.parse(password)
	if !ok {
		return appPasswordMatch{}, false, nil
	}
	rows, err := db.stmtAppPasswords.QueryContext(ctx, userID)
	var m appPasswordMatch
	found := false
	err = sqlitedb.Each(rows, err, func(row sqlitedb.Scanner) error {
		var c appPasswordMatch
		var h string
		if err := row.Scan(&c.id, &c.name, &h, &c.lastUsed); err != nil {
			return err
		}
		if !found && secretMatches(h, canon) {
			m, found = c, true
		}
		return nil
	})
	if err != nil {
		return appPasswordMatch{}, false, fmt.Errorf("auth: app password lookup: %w", err)
	}
	return m, found, nil
}

// touchAppPassword records a login with an app password when the stored
// last use is lastUseInterval old or more. A failure is logged only: the
// login itself succeeded.
func (db *DB) touchAppPassword(ctx context.Context, m appPasswordMatch, remote netip.Addr, now time.Time) {
	if now.Unix()-m.lastUsed < int64(lastUseInterval/time.Second) {
		return
	}
	_, err := db.db.Write.ExecContext(ctx, `UPDATE app_passwords SET last_used = ?, last_remote = ? WHERE id = ? AND last_used < ?`,
		now.Unix(), remoteString(remote), m.id, now.Unix())
	if err != nil && ctx.Err() == nil {
		db.log.Error("recording app password use", "app_password", m.id, "err", err)
	}
}
