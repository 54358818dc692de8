package junk

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/posthouse/posthouse/mailstore/sqlitedb"
)

// Class is what a learned message is.
type Class int

const (
	Ham  Class = 1
	Spam Class = 2
)

func (c Class) String() string {
	switch c {
	case Ham:
		return "ham"
	case Spam:
		return "spam"
	}
	return fmt.Sprintf("class(%d)", int(c))
}

// Limits of what one account keeps (DBOptions may lower them).
const (
	// DefaultMaxTokens is how many features an account keeps. Past it,
	// learning prunes to 90% of it, the rarest and oldest first.
	DefaultMaxTokens = 150_000
	// DefaultMaxLearned is how many learned messages an account
	// remembers (to learn each once per class and to unlearn).
	DefaultMaxLearned = 20_000
	// DefaultMaxCorrespondents is how many addresses the user wrote to
	// an account keeps, the most recently written first.
	DefaultMaxCorrespondents = 5_000
	// staleDays: a feature seen once and not since this many days is
	// pruned at the next learning.
	staleDays = 180
	// lookupChunk is the number of hashes one lookup query takes.
	lookupChunk = 250
)

// DB holds every account's statistics in one SQLite database
// (data_dir/junk.sqlite). See the package doc for why one.
type DB struct {
	db   junkDB
	opts DBOptions

	lookup *sql.Stmt // on the read pool

	idsMu sync.Mutex
	ids   map[string]int64 // account name → id, for accounts that have one

	cache *cache
}

// DBOptions tune OpenDB.
type DBOptions struct {
	MaxTokens, MaxLearned, MaxCorrespondents int
	// CacheFeatures is the in-memory cache's budget, in features over all
	// accounts (see cache.go); 0: DefaultCacheFeatures; negative: none.
	CacheFeatures int
	// Now is the clock (tests move it); nil: time.Now.
	Now func() time.Time
}

var migrations = []sqlitedb.Migration{
	sqlitedb.Exec(
		`CREATE TABLE accounts (
			id INTEGER PRIMARY KEY,
			name TEXT NOT NULL UNIQUE,
			nspam INTEGER NOT NULL DEFAULT 0,
			nham INTEGER NOT NULL DEFAULT 0,
			ntokens INTEGER NOT NULL DEFAULT 0
		)`,
		// Features by hash (FNV-1a 64 as a signed integer): the words of
		// the user's mail are not kept in clear. day: days since 1970 of
		// the last learning that touched the feature.
		`CREATE TABLE tokens (
			account INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
			hash INTEGER NOT NULL,
			spam INTEGER NOT NULL DEFAULT 0,
			ham INTEGER NOT NULL DEFAULT 0,
			day INTEGER NOT NULL,
			PRIMARY KEY (account, hash)
		) WITHOUT ROWID`,
		`CREATE TRIGGER tokens_ins AFTER INSERT ON tokens BEGIN
			UPDATE accounts SET ntokens = ntokens + 1 WHERE id = NEW.account;
		END`,
		`CREATE TRIGGER tokens_del AFTER DELETE ON tokens BEGIN
			UPDATE accounts SET ntokens = ntokens - 1 WHERE id = OLD.account;
		END`,
		// Learned messages by key (a hash of the message), with their class.
		`CREATE TABLE learned (
			account INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
			msg BLOB NOT NULL,
			class INTEGER NOT NULL,
			day INTEGER NOT NULL,
			PRIMARY KEY (account, msg)
		) WITHOUT ROWID`,
		`CREATE INDEX learned_day ON learned(account, day)`,
		`CREATE TABLE correspondents (
			account INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
			address TEXT NOT NULL,
			day INTEGER NOT NULL,
			PRIMARY KEY (account, address)
		) WITHOUT ROWID`,
		`CREATE INDEX correspondents_day ON correspondents(account, day)`,
	),
}

// OpenDB opens (creating) the statistics database at path.
func OpenDB(ctx context.Context, path string, opts DBOptions) (*DB, error) {
	opts = withDefaults(opts)
	// NORMAL: a power cut may lose the last learnings (statistics, not
	// mail); commits then cost no fsync each, which matters when a user
	// moves a thousand messages into Junk.
	sdb, err := sqlitedb.Open(ctx, path, migrations, sqlitedb.Options{Synchronous: "NORMAL"})
	if err != nil {
		return nil, fmt.Errorf("junk: %w", err)
	}
	return openDB(ctx, junkDB{Write: sdb.Write, Read: sdb.Read, close: sdb.Close}, opts)
}

// withDefaults fills opts' zero fields.
func withDefaults(opts DBOptions) DBOptions {
	if opts.MaxTokens <= 0 {
		opts.MaxTokens = DefaultMaxTokens
	}
	if opts.MaxLearned <= 0 {
		opts.MaxLearned = DefaultMaxLearned
	}
	if opts.MaxCorrespondents <= 0 {
		opts.MaxCorrespondents = DefaultMaxCorrespondents
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.CacheFeatures == 0 {
		opts.CacheFeatures = DefaultCacheFeatures
	}
	return opts
}

// openDB makes the DB over sdb, whichever database it is.
func openDB(ctx context.Context, sdb junkDB, opts DBOptions) (*DB, error) {
	q := `SELECT hash, spam, ham FROM tokens WHERE account = ? AND hash IN (?` + strings.Repeat(",?", lookupChunk-1) + `)`
	st, err := sdb.Read.PrepareContext(ctx, q)
	if err != nil {
		sdb.close()
		return nil, fmt.Errorf("junk: %w", err)
	}
	return &DB{db: sdb, opts: opts, lookup: st, ids: map[string]int64{}, cache: newCache(opts.CacheFeatures)}, nil
}

// Close closes the database.
func (d *DB) Close() error {
	d.lookup.Close()
	return d.db.close()
}

func (d *DB) today() int64 { return d.opts.Now().Unix() / 86400 }

// accountID returns the account's id; create makes a row for a new one.
// 0 with no error: the account has none.
func (d *DB) accountID(ctx context.Context, name string, create bool) (int64, error) {
	d.idsMu.Lock()
	id, ok := d.ids[name]
	d.idsMu.Unlock()
	if ok && !d.db.shared {
		// Shared: another node may have removed the account since.
		return id, nil
	}
	err := d.db.Read.QueryRowContext(ctx, `SELECT id FROM accounts WHERE name = ?`, name).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		if !create {
			return 0, nil
		}
		err = d.db.Write.QueryRowContext(ctx,
			`INSERT INTO accounts(name) VALUES (?) ON CONFLICT(name) DO UPDATE SET name = excluded.name RETURNING id`, name).Scan(&id)
	}
	if err != nil {
		return 0, fmt.Errorf("junk: account %s: %w", name, err)
	}
	d.idsMu.Lock()
	d.ids[name] = id
	d.idsMu.Unlock()
	return id, nil
}

// Stats is what an account has learned.
type Stats struct {
	Spam, Ham int64 // messages learned
	Tokens    int64 // features kept
}

// Stats returns an account's counts (zero for an account never seen).
func (d *DB) Stats(ctx context.Context, account string) (Stats, error) {
	var s Stats
	err := d.db.Read.QueryRowContext(sqlitedb.QuietOn(d.db.Read, ctx), `SELECT nspam, nham, ntokens FROM accounts WHERE name = ?`, account).Scan(&s.Spam, &s.Ham, &s.Tokens)
	if errors.Is(err, sql.ErrNoRows) {
		return Stats{}, nil
	}
	if err != nil {
		return Stats{}, fmt.Errorf("junk: stats of %s: %w", account, err)
	}
	return s, nil
}

// Counts looks up the features of a message in an account's statistics:
// counts[i] is hashes[i]'s. Hashes must be distinct and non-zero. From
// memory when the account is cached (see cache.go).
func (d *DB) Counts(ctx context.Context, account string, hashes []uint64) (Stats, []Count, error) {
	return d.counts(ctx, account, hashes, 0, 0)
}

// counts is Counts that looks up nothing (nil counts) for an account that
// learned fewer than minSpam spam or minHam ham messages.
func (d *DB) counts(ctx context.Context, account string, hashes []uint64, minSpam, minHam int64) (Stats, []Count, error) {
	m := d.cache.get(account)
	if m != nil && d.db.shared {
		// Another node may have learned since the copy was loaded: the
		// account's counts, one indexed read, tell.
		st, err := d.Stats(ctx, account)
		if err != nil {
			return Stats{}, nil, err
		}
		if st != m.stats {
			d.cache.drop(account)
			m = nil
		}
	}
	if m != nil {
		if m.stats.Spam < minSpam || m.stats.Ham < minHam {
			return m.stats, nil, nil
		}
		return m.stats, m.counts(hashes), nil
	}
	st, err := d.Stats(ctx, account)
	if err != nil || st.Spam < minSpam || st.Ham < minHam || st == (Stats{}) {
		return st, nil, err
	}
	if load, gen := d.cache.wantLoad(account, st.Tokens); load {
		m, err := d.load(ctx, account)
		if err != nil {
			return Stats{}, nil, err
		}
		d.cache.put(account, gen, m)
		return m.stats, m.counts(hashes), nil
	}
	return d.lookupCounts(ctx, account, hashes)
}

// lookupCounts looks the features up in the database.
func (d *DB) lookupCounts(ctx context.Context, account string, hashes []uint64) (Stats, []Count, error) {
	var st Stats
	var id int64
	err := d.db.Read.QueryRowContext(ctx, `SELECT id, nspam, nham, ntokens FROM accounts WHERE name = ?`, account).Scan(&id, &st.Spam, &st.Ham, &st.Tokens)
	if errors.Is(err, sql.ErrNoRows) {
		return Stats{}, nil, nil
	}
	if err != nil {
		return Stats{}, nil, fmt.Errorf("junk: lookup for %s: %w", account, err)
	}
	counts := make([]Count, len(hashes))
	index := make(map[int64]int, len(hashes))
	for i, h := range hashes {
		index[int64(h)] = i
	}
	args := make([]any, lookupChunk+1)
	args[0] = id
	var (
		h int64
		c Count
	)
	for start := 0; start < len(hashes); start += lookupChunk {
		chunk := hashes[start:min(start+lookupChunk, len(hashes))]
		for i := range lookupChunk {
			if i < len(chunk) {
				args[i+1] = int64(chunk[i])
			} else {
				args[i+1] = int64(0) // never a feature
			}
		}
		rows, err := d.lookup.QueryContext(ctx, args...)
		err = sqlitedb.Each(rows, err, func(row sqlitedb.Scanner) error {
			if err := row.Scan(&h, &c.Spam, &c.Ham); err != nil {
				return err
			}
			if i, ok := index[h]; ok {
				counts[i] = c
			}
			return nil
		})
		if err != nil {
			return Stats{}, nil, fmt.Errorf("junk: lookup for %s: %w", account, err)
		}
	}
	return st, counts, nil
}

// MessageKey identifies a learned message within an account.
type MessageKey [16]byte

// Learn records a message of class c with these features (distinct). A
// message learned before as the other class is unlearned from it first; one
// already learned as c changes nothing (changed false).
func (d *DB) Learn(ctx context.Context, account string, key MessageKey, c Class, hashes []uint64) (changed bool, err error) {
	if c != Spam && c != Ham {
		return false, fmt.Errorf("junk: learn: bad class %d", c)
	}
	id, err := d.accountID(ctx, account, true)
	if err != nil {
		return false, err
	}
	d.cache.drop(account)
	defer d.cache.drop(account) // a load that raced with the commit
	day := d.today()
	tx, err := d.db.Write.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("junk: learn: %w", err)
	}
	defer tx.Rollback()
	if err := d.db.lockAccount(ctx, tx, id); err != nil {
		return false, fmt.Errorf("junk: learn: %w", err)
	}
	var prev Class
	err = tx.QueryRowContext(ctx, `SELECT class FROM learned WHERE account = ? AND msg = ?`, id, key[:]).Scan(&prev)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return false, fmt.Errorf("junk: learn: %w", err)
	}
	if prev == c {
		return false, nil
	}
	col, ncol := "spam", "nspam"
	if c == Ham {
		col, ncol = "ham", "nham"
	}
	if prev != 0 {
		// Unlearn: the same bytes give the same features.
		pcol, pncol := "ham", "nham"
		if prev == Spam {
			pcol, pncol = "spam", "nspam"
		}
		dec, err := tx.PrepareContext(ctx, `UPDATE tokens SET `+pcol+` = CASE WHEN `+pcol+` > 0 THEN `+pcol+` - 1 ELSE 0 END WHERE account = ? AND hash = ?`)
		if err != nil {
			return false, fmt.Errorf("junk: unlearn: %w", err)
		}
		defer dec.Close()
		for _, h := range hashes {
			if _, err := dec.ExecContext(ctx, id, int64(h)); err != nil {
				return false, fmt.Errorf("junk: unlearn: %w", err)
			}
		}
		// No feature drops to zero in both classes: the loop below
		// counts every one of them in the new class.
		if _, err := tx.ExecContext(ctx, `UPDATE accounts SET `+pncol+` = CASE WHEN `+pncol+` > 0 THEN `+pncol+` - 1 ELSE 0 END WHERE id = ?`, id); err != nil {
			return false, fmt.Errorf("junk: unlearn: %w", err)
		}
	}
	inc, err := tx.PrepareContext(ctx, `INSERT INTO tokens(account, hash, `+col+`, day) VALUES (?, ?, 1, ?)
		ON CONFLICT(account, hash) DO UPDATE SET `+col+` = tokens.`+col+` + 1, day = excluded.day`)
	if err != nil {
		return false, fmt.Errorf("junk: learn: %w", err)
	}
	defer inc.Close()
	for _, h := range hashes {
		if _, err := inc.ExecContext(ctx, id, int64(h), day); err != nil {
			return false, fmt.Errorf("junk: learn: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, `UPDATE accounts SET `+ncol+` = `+ncol+` + 1 WHERE id = ?`, id); err != nil {
		return false, fmt.Errorf("junk: learn: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO learned(account, msg, class, day) VALUES (?, ?, ?, ?)
		ON CONFLICT(account, msg) DO UPDATE SET class = excluded.class, day = excluded.day`, id, key[:], c, day); err != nil {
		return false, fmt.Errorf("junk: learn: %w", err)
	}
	if err := d.prune(ctx, tx, id, day); err != nil {
		return false, fmt.Errorf("junk: prune: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("junk: learn: %w", err)
	}
	return true, nil
}

// prune keeps an account within its bounds: features seen once and not
// for staleDays go; past MaxTokens, the rarest and oldest go down to 90%
// of it; past MaxLearned, the oldest learned messages are forgotten (they
// stay counted; only a later re-classification of one cannot unlearn it).
func (d *DB) prune(ctx context.Context, tx *sql.Tx, id, day int64) error {
	var ntokens, nlearned int64
	if err := tx.QueryRowContext(ctx, `SELECT ntokens FROM accounts WHERE id = ?`, id).Scan(&ntokens); err != nil {
		return err
	}
	if ntokens > int64(d.opts.MaxTokens) {
		if _, err := tx.ExecContext(ctx, `DELETE FROM tokens WHERE account = ? AND spam + ham <= 1 AND day < ?`, id, day-staleDays); err != nil {
			return err
		}
		if err := tx.QueryRowContext(ctx, `SELECT ntokens FROM accounts WHERE id = ?`, id).Scan(&ntokens); err != nil {
			return err
		}
	}
	if ntokens > int64(d.opts.MaxTokens) {
		drop := ntokens - int64(d.opts.MaxTokens)*9/10
		if _, err := tx.ExecContext(ctx, `DELETE FROM tokens WHERE account = ? AND hash IN (
			SELECT hash FROM tokens WHERE account = ? ORDER BY spam + ham, day LIMIT ?)`, id, id, drop); err != nil {
			return err
		}
	}
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM learned WHERE account = ?`, id).Scan(&nlearned); err != nil {
		return err
	}
	if drop := nlearned - int64(d.opts.MaxLearned); drop > 0 {
		if _, err := tx.ExecContext(ctx, `DELETE FROM learned WHERE account = ? AND msg IN (
			SELECT msg FROM learned WHERE account = ? ORDER BY day LIMIT ?)`, id, id, drop); err != nil {
			return err
		}
	}
	return nil
}

// LearnedClass returns how a message was learned (0: it was not).
func (d *DB) LearnedClass(ctx context.Context, account string, key MessageKey) (Class, error) {
	var c Class
	err := d.db.Read.QueryRowContext(ctx, `SELECT l.class FROM learned l JOIN accounts a ON a.id = l.account
		WHERE a.name = ? AND l.msg = ?`, account, key[:]).Scan(&c)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("junk: %w", err)
	}
	return c, nil
}

// AddCorrespondents records addresses the account's user wrote to
// (lower-cased by the caller).
func (d *DB) AddCorrespondents(ctx context.Context, account string, addrs []string) error {
	if len(addrs) == 0 {
		return nil
	}
	id, err := d.accountID(ctx, account, true)
	if err != nil {
		return err
	}
	day := d.today()
	tx, err := d.db.Write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("junk: correspondents: %w", err)
	}
	defer tx.Rollback()
	if err := d.db.lockAccount(ctx, tx, id); err != nil {
		return fmt.Errorf("junk: correspondents: %w", err)
	}
	for _, a := range addrs {
		if _, err := tx.ExecContext(ctx, `INSERT INTO correspondents(account, address, day) VALUES (?, ?, ?)
			ON CONFLICT(account, address) DO UPDATE SET day = excluded.day`, id, a, day); err != nil {
			return fmt.Errorf("junk: correspondents: %w", err)
		}
	}
	var n int64
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM correspondents WHERE account = ?`, id).Scan(&n); err != nil {
		return fmt.Errorf("junk: correspondents: %w", err)
	}
	if drop := n - int64(d.opts.MaxCorrespondents); drop > 0 {
		if _, err := tx.ExecContext(ctx, `DELETE FROM correspondents WHERE account = ? AND address IN (
			SELECT address FROM correspondents WHERE account = ? ORDER BY day LIMIT ?)`, id, id, drop); err != nil {
			return fmt.Errorf("junk: correspondents: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("junk: correspondents: %w", err)
	}
	return nil
}

// IsCorrespondent reports whether the account's user wrote to addr
// (lower-cased by the caller).
func (d *DB) IsCorrespondent(ctx context.Context, account, addr string) (bool, error) {
	var one int
	err := d.db.Read.QueryRowContext(ctx, `SELECT 1 FROM correspondents c JOIN accounts a ON a.id = c.account
		WHERE a.name = ? AND c.address = ?`, account, addr).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("junk: correspondents: %w", err)
	}
	return true, nil
}

// RemoveAccount forgets everything of an account (after the account
// itself was removed: a new account of the same name starts untrained).
func (d *DB) RemoveAccount(ctx context.Context, account string) error {
	d.cache.drop(account)
	if _, err := d.db.Write.ExecContext(ctx, `DELETE FROM accounts WHERE name = ?`, account); err != nil {
		return fmt.Errorf("junk: remove %s: %w", account, err)
	}
	d.idsMu.Lock()
	delete(d.ids, account)
	d.idsMu.Unlock()
	return nil
}
