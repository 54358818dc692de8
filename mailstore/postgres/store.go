package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/posthouse/posthouse/internal/pgdb"
	"github.com/posthouse/posthouse/mailstore"
)

// DefaultChannel is the NOTIFY channel of change events.
const DefaultChannel = "posthouse_mailstore"

// Options configure a Store.
type Options struct {
	// DSN is the database to connect to when Pool is nil.
	DSN string
	// Pool, if set, is the process's shared pool (pgdb.Open); the Store
	// uses it and does not close it.
	Pool   *pgxpool.Pool
	Logger *slog.Logger
	// Quota returns an account's quota in bytes; 0 or a nil func means
	// unlimited. It is called outside any transaction.
	Quota func(ctx context.Context, account string) (int64, error)
	// MessageQuota returns the most messages an account may hold; 0 or a
	// nil func means unlimited. Called as Quota is.
	MessageQuota func(ctx context.Context, account string) (int64, error)
	// Bodies keeps message bodies; nil keeps them in the database
	// (PGBodies).
	Bodies BodyStore
	// Channel is the NOTIFY channel every Store on the database shares;
	// "" is DefaultChannel.
	Channel string
}

// Store is the PostgreSQL mailstore.Store.
type Store struct {
	pool    *pgxpool.Pool
	ownPool bool
	opts    Options
	log     *slog.Logger
	bodies  BodyStore
	// origin names this Store in its notifications, so that its own
	// come back to it to be dropped: its watchers had them at commit.
	origin string

	mu       sync.Mutex
	closed   bool
	accounts map[string]*account // open accounts (refs > 0), by name
	byID     map[int64]*account

	listen *listener
	locks  *lockConn
}

var _ mailstore.Store = (*Store)(nil)

// Open connects to the database (or uses opts.Pool), brings the schema up
// to date, and starts listening for other nodes' changes.
func Open(ctx context.Context, opts Options) (*Store, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Channel == "" {
		opts.Channel = DefaultChannel
	}
	s := &Store{
		opts:     opts,
		log:      opts.Logger,
		accounts: make(map[string]*account),
		byID:     make(map[int64]*account),
	}
	var b [8]byte
	rand.Read(b[:])
	s.origin = hex.EncodeToString(b[:])
	if opts.Pool != nil {
		s.pool = opts.Pool
	} else {
		pool, err := pgdb.Open(ctx, opts.DSN)
		if err != nil {
			return nil, fmt.Errorf("postgres: %w", err)
		}
		s.pool, s.ownPool = pool, true
	}
	s.bodies = opts.Bodies
	if s.bodies == nil {
		s.bodies = NewPGBodies(s.pool)
	}
	if err := pgdb.Migrate(ctx, s.pool, component, migrations); err != nil {
		s.closePool()
		return nil, fmt.Errorf("postgres: %w", err)
	}
	l, err := startListener(ctx, s)
	if err != nil {
		s.closePool()
		return nil, err
	}
	s.listen = l
	s.locks = &lockConn{s: s}
	return s, nil
}

func (s *Store) closePool() {
	if s.ownPool {
		s.pool.Close()
	}
}

// Pool returns the Store's connection pool, for other users of the same
// database.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Open implements mailstore.Store.
func (s *Store) Open(ctx context.Context, name string) (mailstore.Account, error) {
	name, err := mailstore.CheckAccountName(name)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, mailstore.ErrClosed
	}
	if a := s.accounts[name]; a != nil && !a.gone.Load() {
		a.refs++
		s.mu.Unlock()
		return newHandle(a), nil
	}
	s.mu.Unlock()

	id, err := s.ensureAccount(ctx, name)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, mailstore.ErrClosed
	}
	a := s.accounts[name]
	if a == nil || a.gone.Load() || a.id != id {
		if a != nil {
			delete(s.byID, a.id)
		}
		a = &account{s: s, name: name, id: id, log: s.log.With("user", name)}
		s.accounts[name] = a
		s.byID[id] = a
	}
	a.refs++
	return newHandle(a), nil
}

// ensureAccount returns the account's ID, creating the account with its
// default mailboxes, subscribed, if it does not exist. Nodes creating the
// same account at once meet at the unique name: one inserts, the others
// wait for its commit and read its row.
func (s *Store) ensureAccount(ctx context.Context, name string) (int64, error) {
	var id int64
	err := s.pool.QueryRow(ctx, `SELECT id FROM mail_accounts WHERE name = $1`, name).Scan(&id)
	if err == nil {
		return id, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return 0, fmt.Errorf("postgres: open account: %w", err)
	}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `INSERT INTO mail_accounts (name, uidvalidity) VALUES ($1, extract(epoch FROM now())::bigint)
			ON CONFLICT (name) DO NOTHING RETURNING id, uidvalidity`, name).Scan(&id, new(int64))
		if errors.Is(err, pgx.ErrNoRows) {
			return tx.QueryRow(ctx, `SELECT id FROM mail_accounts WHERE name = $1`, name).Scan(&id)
		}
		if err != nil {
			return err
		}
		var names, uses []string
		for _, d := range mailstore.DefaultMailboxes {
			names = append(names, d.Name)
			uses = append(uses, d.SpecialUse)
		}
		// Every default mailbox shares the account's first UIDVALIDITY:
		// they are new names, which is all RFC 9051 §2.3.1.1 asks.
		if _, err := tx.Exec(ctx, `INSERT INTO mail_mailboxes (account, name, special_use, uidvalidity)
			SELECT $1, n, u, a.uidvalidity FROM unnest($2::text[], $3::text[]) AS x(n, u), mail_accounts a WHERE a.id = $1`,
			id, names, uses); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO mail_subscriptions (account, name) SELECT $1, n FROM unnest($2::text[]) n`, id, names)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("postgres: open account: %w", err)
	}
	return id, nil
}

// release drops a handle's reference on a.
func (s *Store) release(a *account) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a.refs--
	if a.refs == 0 && s.accounts[a.name] == a {
		delete(s.accounts, a.name)
		delete(s.byID, a.id)
	}
}

// Remove implements mailstore.Store.
func (s *Store) Remove(ctx context.Context, name string) error {
	name, err := mailstore.CheckAccountName(name)
	if err != nil {
		return err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return mailstore.ErrClosed
	}
	a := s.accounts[name]
	s.mu.Unlock()
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("postgres: remove %s: %w", name, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if a != nil {
		// Under the writer lock, taken with a connection in hand as
		// writes take it, until the handles are closed: no write of this
		// process is half done, and none starts on the removed account.
		a.wmu.Lock()
		defer a.wmu.Unlock()
	}
	id, err := s.removeAccount(ctx, tx, name)
	if err == nil {
		err = tx.Commit(ctx)
	}
	if err != nil {
		return fmt.Errorf("postgres: remove %s: %w", name, err)
	}
	s.forget(id)
	s.log.Info("account removed", "user", name)
	return nil
}

// removeAccount deletes an account's rows and bodies in tx and tells the
// other nodes, at the commit, that it is gone.
func (s *Store) removeAccount(ctx context.Context, tx pgx.Tx, name string) (int64, error) {
	var id int64
	err := tx.QueryRow(ctx, `SELECT id FROM mail_accounts WHERE name = $1 FOR UPDATE`, name).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, fmt.Errorf("%w: %s", mailstore.ErrNoSuchAccount, name)
	}
	if err != nil {
		return 0, err
	}
	var bodies []int64
	rows, err := tx.Query(ctx, `SELECT DISTINCT m.body FROM mail_messages m JOIN mail_mailboxes b ON b.id = m.mailbox WHERE b.account = $1`, id)
	if err == nil {
		bodies, err = pgx.CollectRows(rows, pgx.RowTo[int64])
	}
	if err != nil {
		return 0, err
	}
	if _, err := tx.Exec(ctx, `DELETE FROM mail_messages WHERE mailbox IN (SELECT id FROM mail_mailboxes WHERE account = $1)`, id); err != nil {
		return 0, err
	}
	if err := s.bodies.Delete(ctx, tx, bodies); err != nil {
		return 0, err
	}
	if _, err := tx.Exec(ctx, `DELETE FROM mail_accounts WHERE id = $1`, id); err != nil {
		return 0, err
	}
	return id, notify(ctx, tx, s, id, []wireEvent{{Kind: kindRemoved}})
}

// forget marks the account with ID id gone: its handles get ErrClosed.
func (s *Store) forget(id int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a := s.byID[id]; a != nil {
		a.gone.Store(true)
		delete(s.byID, id)
		if s.accounts[a.name] == a {
			delete(s.accounts, a.name)
		}
	}
}

// Reconcile implements mailstore.Store. Bodies and index rows commit in
// one transaction (BodyStore), so nothing can disagree: it returns nil.
func (s *Store) Reconcile(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return mailstore.ErrClosed
	}
	return nil
}

// Close implements mailstore.Store.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return mailstore.ErrClosed
	}
	s.closed = true
	for _, a := range s.accounts {
		a.gone.Store(true)
	}
	s.accounts, s.byID = map[string]*account{}, map[int64]*account{}
	s.mu.Unlock()
	s.listen.stop()
	s.locks.close()
	s.closePool()
	return nil
}

// isClosed reports whether Close was called.
func (s *Store) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}
