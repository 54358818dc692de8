package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"time"

	"golang.org/x/crypto/argon2"
)

// Authenticate checks a protocol login (IMAP, POP3, SMTP AUTH,
// ManageSieve): username is the full address (any case), password the
// account password or one of the user's app passwords, remote the client's
// address for throttling and logs (for a client behind a trusted proxy, the
// address the proxy reported). With Options.RequireAppPasswords, a user
// who turned two-factor login on gets in with an app password only. It
// returns the user, or ErrBadCredentials (unknown user, wrong password,
// disabled account: one error on purpose), ErrThrottled (refused without
// checking the password: too many recent failures from remote, or for the
// account; see doc.go), the context's error, or a database error.
//
// An unknown user costs the same password hash as a known one (a dummy hash
// is verified), so response time does not reveal which addresses exist.
func (db *DB) Authenticate(ctx context.Context, username, password string, remote netip.Addr) (User, error) {
	return db.login(ctx, username, password, remote, true)
}

// AuthenticateWeb checks a web console login: the account password only,
// never an app password (a device's password must not open the account's
// settings), with the same throttling, errors and timing as Authenticate.
// A user with User.TOTP set must then pass VerifySecondFactor.
func (db *DB) AuthenticateWeb(ctx context.Context, address, password string, remote netip.Addr) (User, error) {
	return db.login(ctx, address, password, remote, false)
}

// login is Authenticate (protocol true: app passwords too) and
// AuthenticateWeb.
func (db *DB) login(ctx context.Context, username, password string, remote netip.Addr, protocol bool) (User, error) {
	account, nerr := NormalizeAddress(username)
	if nerr != nil {
		account = strings.ToLower(username)
		if len(account) > maxAddress {
			account = account[:maxAddress]
		}
	}
	cred := makeCredID(db.credKey[:], account, password)
	var res checkResult
	u, err := db.guarded(ctx, account, account, cred, remote, func(log *slog.Logger) (string, User, error) {
		var err error
		res, err = db.check(ctx, nerr == nil, account, password, cred, protocol, remote)
		return res.reason, res.user, err
	})
	if err != nil {
		return User{}, err
	}
	if res.app != "" {
		db.log.Info("auth success", "user", account, "remote", remoteString(remote), "app_password", res.app)
	} else {
		db.log.Info("auth success", "user", account, "remote", remoteString(remote))
	}
	return u, nil
}

// guarded runs one credential check under the throttle of doc.go: key is
// the account's throttling key (the address for passwords, a key of its
// own for second factors), account the address for logs, cred the
// credential's id. check returns a failure reason for the log ("" on
// success). A success makes remote known to key, and for a password
// (key == account) records it in known_addresses.
func (db *DB) guarded(ctx context.Context, key, account string, cred credID, remote netip.Addr, check func(log *slog.Logger) (reason string, _ User, _ error)) (User, error) {
	start := db.now()
	ip := ipKey(remote)
	trusted := db.trusted(remote)
	log := db.log.With("user", account, "remote", remoteString(remote))

	adm := db.throttle.begin(start, ip, key, cred, trusted)
	switch {
	case !adm.ipUntil.IsZero():
		if !db.throttle.ipLogged(ip) {
			log.Warn("auth throttled: too many failed logins from this address", "until", adm.ipUntil.UTC().Format(time.RFC3339))
		}
		return User{}, ErrThrottled
	case !adm.accountUntil.IsZero():
		if !db.throttle.accountLogged(key) {
			log.Warn("auth throttled: too many failed logins for this account; one check per interval from addresses it never logged in from",
				"interval", db.opts.AccountInterval)
		} else {
			log.Debug("auth throttled: account check slot taken", "until", adm.accountUntil.UTC().Format(time.RFC3339Nano))
		}
		return User{}, ErrThrottled
	}

	reason, u, err := check(log)
	if err != nil {
		db.throttle.abort(ip, key, cred, adm)
		if ctx.Err() == nil {
			log.Error("auth error", "err", err)
		}
		return User{}, err
	}
	if reason != "" {
		nIP, nAccount := db.throttle.fail(db.now(), ip, key, cred, trusted)
		log.Info("auth failed", "reason", reason)
		if max := db.opts.IPMaxFailures; max > 0 && nIP >= max && !db.throttle.ipLogged(ip) {
			log.Warn("auth throttled: too many failed logins from this address", "failures", nIP, "window", db.opts.IPWindow)
		}
		if max := db.opts.AccountMaxFailures; max > 0 && nAccount >= max && !db.throttle.accountLogged(key) {
			log.Warn("auth throttled: too many failed logins for this account; one check per interval from addresses it never logged in from",
				"failures", nAccount, "window", db.opts.AccountWindow, "interval", db.opts.AccountInterval)
		}
		return User{}, ErrBadCredentials
	}
	now := db.now()
	if db.throttle.success(now, ip, key, trusted) && key == account {
		db.saveKnown(ctx, log, u.ID, ip, now)
	}
	return u, nil
}

// trusted reports whether a is in Options.TrustedNetworks.
func (db *DB) trusted(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range db.opts.TrustedNetworks {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// checkResult is check's verdict on one login.
type checkResult struct {
	reason string // why it failed (for the log only: the client gets ErrBadCredentials); "" on success
	user   User
	app    string // the app password's name, when one was used
}

// check verifies one credential. protocol: a protocol login, which may use
// an app password and may be refused the account password
// (RequireAppPasswords).
func (db *DB) check(ctx context.Context, valid bool, account, password string, cred credID, protocol bool, remote netip.Addr) (checkResult, error) {
	if password == "" || len(password) > maxPassword {
		return checkResult{reason: "empty or over-long password"}, nil
	}
	var row userRow
	found := false
	if valid {
		var err error
		row, found, err = readLookup{db}.user(withoutMemo(ctx), account)
		if err != nil {
			return checkResult{}, err
		}
	}
	if found && protocol {
		m, ok, err := db.checkAppPassword(ctx, row.ID, password)
		if err != nil {
			return checkResult{}, err
		}
		if ok {
			if row.Disabled {
				return checkResult{reason: "account disabled"}, nil
			}
			db.touchAppPassword(ctx, m, remote, db.now())
			return checkResult{user: row.User, app: m.name}, nil
		}
	}
	sum := sha256.Sum256([]byte(row.hash)) // of "" for an unknown user
	var match bool
	if e, ok := db.cache.get(cred, db.now()); ok && e.hashSum == sum {
		match = e.match
	} else {
		stored := row.hash
		if !found {
			stored = db.dummyHash()
		}
		var rehash bool
		var err error
		match, rehash, err = db.verify(ctx, stored, password)
		if err != nil {
			if ctx.Err() != nil {
				return checkResult{}, ctx.Err()
			}
			// A malformed stored hash: nobody can log in as this user until
			// an operator resets the password.
			db.log.Error("stored password hash is unusable", "user", account, "err", err)
			return checkResult{reason: "unusable stored hash"}, nil
		}
		match = match && found
		if match && rehash {
			if h, err := db.rehash(ctx, row, password); err != nil {
				db.log.Error("re-hashing password", "user", account, "err", err)
			} else if h != "" {
				sum = sha256.Sum256([]byte(h))
			}
		}
		db.cache.put(cred, credEntry{account: account, hashSum: sum, match: match}, db.now())
	}
	switch {
	case !found:
		return checkResult{reason: "no such user"}, nil
	case !match:
		return checkResult{reason: "wrong password"}, nil
	case row.Disabled:
		return checkResult{reason: "account disabled"}, nil
	case protocol && row.TOTP && db.opts.RequireAppPasswords:
		// Checked after the hash, so the refusal costs and looks the same
		// as a wrong password, and the log tells the operator which
		// client still uses the account password.
		return checkResult{reason: "account password refused: two-factor login is on and app passwords are required"}, nil
	}
	return checkResult{user: row.User}, nil
}

// verify runs one password verification under the hashing semaphore.
func (db *DB) verify(ctx context.Context, stored, password string) (match, rehash bool, err error) {
	select {
	case db.hashes <- struct{}{}:
	case <-ctx.Done():
		return false, false, ctx.Err()
	}
	defer func() { <-db.hashes }()
	db.verifications.Add(1)
	return verifyPassword(stored, password, db.argon)
}

// hash makes a new argon2id hash under the hashing semaphore.
func (db *DB) hash(ctx context.Context, password string) (string, error) {
	select {
	case db.hashes <- struct{}{}:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	defer func() { <-db.hashes }()
	return hashPassword(password, db.argon)
}

// rehash replaces an imported or outdated hash after a successful login,
// only if the row still holds the hash just verified.
func (db *DB) rehash(ctx context.Context, row userRow, password string) (string, error) {
	h, err := db.hash(ctx, password)
	if err != nil {
		return "", err
	}
	res, err := db.db.Write.ExecContext(ctx, `UPDATE users SET password_hash = ? WHERE id = ? AND password_hash = ?`, h, row.ID, row.hash)
	if err != nil {
		return "", err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return "", nil
	}
	db.log.Info("password hash upgraded to argon2id", "user", row.Address)
	return h, nil
}

// dummyHash is verified for unknown users so that they cost what a real one
// does. It needs no argon2 run to make: a random salt and a random key in
// our current parameters is a hash no password matches (but 2⁻²⁵⁶).
func (db *DB) dummyHash() string {
	db.dummyOnce.Do(func() {
		salt := make([]byte, argonSaltLen)
		key := make([]byte, db.argon.KeyLen)
		rand.Read(salt)
		rand.Read(key)
		db.dummy = fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
			argon2.Version, db.argon.Memory, db.argon.Time, db.argon.Threads, b64.EncodeToString(salt), b64.EncodeToString(key))
	})
	return db.dummy
}

func remoteString(a netip.Addr) string {
	if !a.IsValid() {
		return "unknown"
	}
	return a.Unmap().String()
}
