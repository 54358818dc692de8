package auth

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/posthouse/posthouse/mailstore/sqlitedb"
)

// Throttling and cache defaults; doc.go explains how they work together.
const (
	DefaultIPMaxFailures      = 10
	DefaultIPWindow           = 10 * time.Minute
	DefaultAccountMaxFailures = 10
	DefaultAccountWindow      = time.Hour
	DefaultAccountInterval    = 5 * time.Second
	DefaultKnownAddressTTL    = 30 * 24 * time.Hour
	DefaultCacheTTL           = 5 * time.Minute
	// MaxAliasDepth bounds alias chains (alias → alias → …) in Resolve.
	MaxAliasDepth = 8
)

// Options tune Open. Zero values mean the defaults above; a negative number
// or duration turns the feature off (tests, or a deployment that throttles
// elsewhere).
type Options struct {
	// Logger receives auth success/failure and throttling lines. Nil: discard.
	Logger *slog.Logger
	// Now is the clock for throttling windows, the credential cache and
	// created timestamps. Nil: time.Now.
	Now func() time.Time

	// TrustedNetworks hold proxies and webmail that log in for many users
	// from one address: they are never locked out per address (the
	// per-account cap still applies), and a login from them makes no
	// address known to the account. Nil: DefaultTrustedNetworks (loopback);
	// an empty non-nil slice: none.
	TrustedNetworks []netip.Prefix

	// IPMaxFailures distinct failed credentials from one remote address
	// (an IPv6 /64) within IPWindow make further attempts from it
	// ErrThrottled until the oldest failure leaves the window. At most 64.
	IPMaxFailures int
	IPWindow      time.Duration
	// After AccountMaxFailures distinct failed credentials for one account
	// within AccountWindow, from any addresses, at most one password check
	// per AccountInterval is made for it from addresses not known to it;
	// the other attempts get ErrThrottled without a check. At most 64.
	AccountMaxFailures int
	AccountWindow      time.Duration
	AccountInterval    time.Duration
	// KnownAddressTTL is how long after its last successful login an
	// address stays known to an account, exempt from the per-account cap.
	KnownAddressTTL time.Duration

	// CacheTTL is how long a verified (or refused) credential is remembered
	// so that clients opening many connections do not pay a password hash
	// each time.
	CacheTTL time.Duration
	// MaxConcurrentHashes bounds simultaneous password hash computations
	// (each argon2id verification holds 19 MiB). Default: GOMAXPROCS, at
	// least 2.
	MaxConcurrentHashes int

	// RequireAppPasswords makes Authenticate refuse the account password
	// of users who turned two-factor login on: IMAP, POP3, SMTP and
	// ManageSieve then take only their app passwords ([auth]
	// require_app_passwords).
	RequireAppPasswords bool
}

// DB is the system database of users, domains and aliases, with the
// authentication state (throttling counters, credential cache) of this
// process. Safe for concurrent use, and for use beside other processes
// (posthouse admin) opening the same file.
type DB struct {
	db     sysDB
	log    *slog.Logger
	now    func() time.Time
	opts   Options
	argon  argonParams
	hashes chan struct{} // semaphore for password hashing

	dummyOnce sync.Once
	dummy     string // hash of a random password, verified for unknown users

	throttle throttler
	cache    *credCache
	credKey  [32]byte // HMAC key for credential ids, made at Open

	// verifications counts password hash verifications (tests, benchmarks).
	verifications atomic.Int64

	stmtUser, stmtAlias, stmtDomain, stmtGrant, stmtAppPasswords *sql.Stmt
}

var migrations = []sqlitedb.Migration{
	sqlitedb.Exec(
		`CREATE TABLE domains (
			id      INTEGER PRIMARY KEY,
			name    TEXT NOT NULL UNIQUE,
			created INTEGER NOT NULL
		)`,
		`CREATE TABLE users (
			id            INTEGER PRIMARY KEY,
			address       TEXT NOT NULL UNIQUE,
			domain_id     INTEGER NOT NULL REFERENCES domains(id),
			password_hash TEXT NOT NULL,
			quota         INTEGER NOT NULL DEFAULT 0 CHECK (quota >= 0),
			disabled      INTEGER NOT NULL DEFAULT 0,
			created       INTEGER NOT NULL
		)`,
		`CREATE INDEX users_domain ON users(domain_id)`,
		`CREATE TABLE aliases (
			id        INTEGER PRIMARY KEY,
			address   TEXT NOT NULL UNIQUE, -- local address, or "@domain" for the catch-all
			domain_id INTEGER NOT NULL REFERENCES domains(id),
			created   INTEGER NOT NULL
		)`,
		`CREATE INDEX aliases_domain ON aliases(domain_id)`,
		`CREATE TABLE alias_targets (
			alias_id INTEGER NOT NULL REFERENCES aliases(id) ON DELETE CASCADE,
			position INTEGER NOT NULL,
			target   TEXT NOT NULL,
			PRIMARY KEY (alias_id, position),
			UNIQUE (alias_id, target)
		)`,
	),
	// Addresses (an IPv4 address or an IPv6 /64, as text) each user logged
	// in from, exempt from the per-account cap for KnownAddressTTL.
	sqlitedb.Exec(
		`CREATE TABLE known_addresses (
			user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
			prefix     TEXT NOT NULL,
			last_login INTEGER NOT NULL,
			PRIMARY KEY (user_id, prefix)
		)`,
	),
	// Send-as grants: addresses (or "@domain": every address of the
	// domain) a user may use as sender besides their own and their
	// aliases' (CanSendAs). Removed with the user.
	sqlitedb.Exec(
		`CREATE TABLE send_as (
			user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
			address TEXT NOT NULL, -- normalized address, or "@domain"
			created INTEGER NOT NULL,
			PRIMARY KEY (user_id, address)
		)`,
	),
	// A limit on the number of messages an account holds (IMAP QUOTA's
	// MESSAGE resource); 0: unlimited.
	sqlitedb.Exec(
		`ALTER TABLE users ADD COLUMN message_quota INTEGER NOT NULL DEFAULT 0 CHECK (message_quota >= 0)`,
	),
	// Roles, app passwords and the second factor (doc.go "App passwords",
	// "Two-factor login"). totp_secret is the base32 TOTP key, "" while
	// 2FA is off; totp_step the last time step a code was accepted for,
	// so no code is accepted twice.
	sqlitedb.Exec(
		`ALTER TABLE users ADD COLUMN role TEXT NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin'))`,
		`ALTER TABLE users ADD COLUMN totp_secret TEXT NOT NULL DEFAULT ''`,
		`ALTER TABLE users ADD COLUMN totp_step INTEGER NOT NULL DEFAULT 0`,
		`CREATE TABLE app_passwords (
			id          INTEGER PRIMARY KEY,
			user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
			name        TEXT NOT NULL,
			hash        TEXT NOT NULL, -- secretHash of the normalized secret
			created     INTEGER NOT NULL,
			last_used   INTEGER NOT NULL DEFAULT 0,
			last_remote TEXT NOT NULL DEFAULT ''
		)`,
		`CREATE INDEX app_passwords_user ON app_passwords(user_id)`,
		`CREATE TABLE recovery_codes (
			id      INTEGER PRIMARY KEY,
			user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
			hash    TEXT NOT NULL -- secretHash of the normalized code
		)`,
		`CREATE INDEX recovery_codes_user ON recovery_codes(user_id)`,
	),
}

// userColumns are the users columns scanUser reads, in its order.
const userColumns = `id, address, password_hash, quota, message_quota, disabled, created, role, totp_secret != ''`

// Open opens (creating if needed, mode 0600) the system database at path,
// usually <data_dir>/users.sqlite, and brings its schema up to date.
func Open(ctx context.Context, path string, opts Options) (*DB, error) {
	opts = withDefaults(opts)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	// Create the file ourselves so it (and SQLite's -wal/-shm, which copy its
	// mode) is not world-readable: it holds password hashes.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	f.Close()
	sdb, err := sqlitedb.Open(ctx, path, migrations, sqlitedb.Options{})
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	return open(ctx, sysDB{Write: sdb.Write, Read: sdb.Read, close: sdb.Close}, opts)
}

// open makes a DB on sys, whose schema is up to date.
func open(ctx context.Context, sys sysDB, opts Options) (*DB, error) {
	var err error
	db := &DB{
		db:      sys,
		log:     opts.Logger,
		now:     opts.Now,
		opts:    opts,
		argon:   defaultArgon,
		hashes:  make(chan struct{}, opts.MaxConcurrentHashes),
		cache:   newCredCache(opts.CacheTTL),
		credKey: newCredKey(),
	}
	if sys.shared {
		db.throttle = newSharedThrottle(sys.Write, opts)
	} else {
		db.throttle = newThrottle(opts)
	}
	prep := func(q string) *sql.Stmt {
		if err != nil {
			return nil
		}
		var s *sql.Stmt
		s, err = sys.Read.PrepareContext(ctx, q)
		return s
	}
	db.stmtUser = prep(`SELECT ` + userColumns + ` FROM users WHERE address = ?`)
	db.stmtAlias = prep(`SELECT t.target FROM aliases a JOIN alias_targets t ON t.alias_id = a.id WHERE a.address = ? ORDER BY t.position`)
	db.stmtDomain = prep(`SELECT 1 FROM domains WHERE name = ?`)
	db.stmtGrant = prep(`SELECT 1 FROM send_as g JOIN users u ON u.id = g.user_id WHERE u.address = ? AND g.address IN (?, ?, ?)`)
	db.stmtAppPasswords = prep(fmt.Sprintf(`SELECT id, name, hash, last_used FROM app_passwords WHERE user_id = ? ORDER BY id LIMIT %d`, maxAppPasswords))
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("auth: prepare: %w", err)
	}
	if err := db.loadKnown(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

func withDefaults(o Options) Options {
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.TrustedNetworks == nil {
		o.TrustedNetworks = DefaultTrustedNetworks()
	}
	o.IPMaxFailures = cmp.Or(o.IPMaxFailures, DefaultIPMaxFailures)
	o.IPWindow = cmp.Or(o.IPWindow, DefaultIPWindow)
	o.AccountMaxFailures = cmp.Or(o.AccountMaxFailures, DefaultAccountMaxFailures)
	o.AccountWindow = cmp.Or(o.AccountWindow, DefaultAccountWindow)
	o.AccountInterval = cmp.Or(o.AccountInterval, DefaultAccountInterval)
	o.KnownAddressTTL = cmp.Or(o.KnownAddressTTL, DefaultKnownAddressTTL)
	o.CacheTTL = cmp.Or(o.CacheTTL, DefaultCacheTTL)
	if o.MaxConcurrentHashes <= 0 {
		o.MaxConcurrentHashes = max(2, runtime.GOMAXPROCS(0))
	}
	return o
}

// Close closes the database.
func (db *DB) Close() error {
	for _, s := range []*sql.Stmt{db.stmtUser, db.stmtAlias, db.stmtDomain, db.stmtGrant, db.stmtAppPasswords} {
		if s != nil {
			s.Close()
		}
	}
	return db.db.close()
}

// userRow is a users row, with the hash Authenticate needs.
type userRow struct {
	User
	hash string
}

func scanUser(sc sqlitedb.Scanner) (userRow, error) {
	var u userRow
	var created int64
	var role string
	err := sc.Scan(&u.ID, &u.Address, &u.hash, &u.QuotaBytes, &u.QuotaMessages, &u.Disabled, &created, &role, &u.TOTP)
	u.Created = time.Unix(created, 0).UTC()
	u.Admin = role == roleAdmin
	return u, err
}

// lookup is what resolution needs from the database; readLookup uses the
// prepared statements of the read pool, txLookup a write transaction (so
// AddAlias can check its own change before committing).
type lookup interface {
	domainExists(ctx context.Context, domain string) (bool, error)
	user(ctx context.Context, address string) (userRow, bool, error)
	aliasTargets(ctx context.Context, address string) ([]string, bool, error)
}

// readLookup's statements run under sqlitedb.QuietOn: each is one indexed
// lookup, and a cancellable context would have database/sql start a
// goroutine for every one (three or more per RCPT TO).
type readLookup struct{ db *DB }

func (l readLookup) domainExists(ctx context.Context, domain string) (bool, error) {
	m := memoOf(ctx)
	if m != nil {
		if ok, known := memoGet(m, m.domains, domain); known {
			return ok, nil
		}
	}
	ok, err := exists(l.db.stmtDomain.QueryRowContext(sqlitedb.QuietOn(l.db.db.Read, ctx), domain))
	if err == nil && m != nil {
		memoSet(m, &m.domains, domain, ok)
	}
	return ok, err
}

func (l readLookup) user(ctx context.Context, address string) (userRow, bool, error) {
	m := memoOf(ctx)
	if m != nil {
		if u, known := memoGet(m, m.users, address); known {
			return u.row, u.found, nil
		}
	}
	u, found, err := userFound(scanUser(l.db.stmtUser.QueryRowContext(sqlitedb.QuietOn(l.db.db.Read, ctx), address)))
	if err == nil && m != nil {
		memoSet(m, &m.users, address, memoUser{u, found})
	}
	return u, found, err
}

func (l readLookup) aliasTargets(ctx context.Context, address string) ([]string, bool, error) {
	m := memoOf(ctx)
	if m != nil {
		if ts, known := memoGet(m, m.aliases, address); known {
			return slices.Clone(ts), len(ts) > 0, nil
		}
	}
	ts, found, err := collectTargets(l.db.stmtAlias.QueryContext(sqlitedb.QuietOn(l.db.db.Read, ctx), address))
	if err == nil && m != nil {
		memoSet(m, &m.aliases, address, slices.Clone(ts))
	}
	return ts, found, err
}

type txLookup struct{ tx *sql.Tx }

func (l txLookup) domainExists(ctx context.Context, domain string) (bool, error) {
	return exists(l.tx.QueryRowContext(ctx, `SELECT 1 FROM domains WHERE name = ?`, domain))
}

func (l txLookup) user(ctx context.Context, address string) (userRow, bool, error) {
	return userFound(scanUser(l.tx.QueryRowContext(ctx,
		`SELECT `+userColumns+` FROM users WHERE address = ?`, address)))
}

func (l txLookup) aliasTargets(ctx context.Context, address string) ([]string, bool, error) {
	return collectTargets(l.tx.QueryContext(ctx,
		`SELECT t.target FROM aliases a JOIN alias_targets t ON t.alias_id = a.id WHERE a.address = ? ORDER BY t.position`, address))
}

func exists(row *sql.Row) (bool, error) {
	var one int
	err := row.Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

func userFound(u userRow, err error) (userRow, bool, error) {
	if errors.Is(err, sql.ErrNoRows) {
		return userRow{}, false, nil
	}
	if err != nil {
		return userRow{}, false, fmt.Errorf("auth: user lookup: %w", err)
	}
	return u, true, nil
}

func collectTargets(rows *sql.Rows, err error) ([]string, bool, error) {
	ts, err := sqlitedb.Collect(rows, err, sqlitedb.Value[string])
	if err != nil {
		return nil, false, fmt.Errorf("auth: alias lookup: %w", err)
	}
	return ts, len(ts) > 0, nil
}
