package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/posthouse/posthouse/mailstore"
)

// account is the state every handle on one account shares in this process.
type account struct {
	s    *Store
	name string
	id   int64 // mail_accounts.id
	log  *slog.Logger
	refs int         // under s.mu
	gone atomic.Bool // removed, or the store closed: handles get ErrClosed

	// wmu orders this process's write transactions on the account and
	// the delivery of their events, so watchers see events in commit
	// order; seq puts other nodes' events among them. Across processes, row locks
	// order the transactions (a mailbox's row is locked from its modseq
	// bump to the commit).
	wmu sync.Mutex

	watchMu  sync.Mutex
	watchSeq uint64
	watchers atomic.Pointer[[]watcher]
	seq      sequencer // orders the events watchers get (events.go)
}

// wtx is one write transaction of an account.
type wtx struct {
	pgx.Tx
	ctx     context.Context
	a       *account
	modseqs map[int64]uint64 // mailboxes bumped, with their new modseq
	events  []mailstore.Event
	bodies  []int64 // bodies whose last rows may have gone
	// notified: fn sent its events to the other nodes itself (in the
	// statement that made the change).
	notified bool
}

// errNoChange, returned by a write's fn, rolls the transaction back: the
// call changed nothing (so the modseq bump it took is undone too).
var errNoChange = errors.New("no change")

// write runs fn in a transaction of the account. After the commit it
// delivers fn's events to this process's watchers, in commit order, on
// this goroutine; the other nodes get them through NOTIFY, sent in the
// transaction.
//
// A transaction PostgreSQL ends with a deadlock or serialization failure
// (SQLSTATE 40P01, 40001: two nodes locking the same rows in opposite
// orders) is run again, at most maxAttempts times in all, after a short
// random pause; fn must start from scratch each time (it resets what it
// returns). Changes take their row locks in a fixed order where they can
// (a move locks both mailboxes in ID order), so this is the rare case.
func (a *account) write(ctx context.Context, fn func(w *wtx) error) error {
	for attempt := 1; ; attempt++ {
		err := a.writePrepared(ctx, nil, fn)
		if attempt == maxAttempts || !retryable(err) {
			return err
		}
		a.log.Warn("mailstore: transaction aborted by the database; retrying", "attempt", attempt, "err", err)
		t := time.NewTimer(time.Duration(1+rand.IntN(10*attempt)) * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
}

// maxAttempts bounds the runs of a transaction aborted by a deadlock or a
// serialization failure.
const maxAttempts = 5

// retryable reports whether err is a deadlock or serialization failure,
// after which running the transaction again may succeed.
func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40P01" || pe.Code == "40001")
}

// writePrepared is write with a first step, prep, that runs in the
// transaction before the account's writer lock is taken: reading a
// message from a slow client into the body store holds a connection, but
// no lock other writers of the account wait for.
func (a *account) writePrepared(ctx context.Context, prep func(w *wtx) error, fn func(w *wtx) error) error {
	if a.gone.Load() {
		return mailstore.ErrClosed
	}
	tx, err := a.s.pool.Begin(ctx)
	if err != nil {
		return a.wrapErr(fmt.Errorf("postgres: begin: %w", err))
	}
	w := &wtx{Tx: tx, ctx: ctx, a: a}
	if prep != nil {
		if err := prep(w); err != nil {
			tx.Rollback(context.WithoutCancel(ctx))
			return a.wrapErr(err)
		}
	}
	a.wmu.Lock()
	defer a.wmu.Unlock()
	if a.gone.Load() {
		tx.Rollback(context.WithoutCancel(ctx))
		return mailstore.ErrClosed
	}
	err = fn(w)
	if err == nil && len(w.bodies) > 0 {
		err = a.s.bodies.Delete(ctx, tx, w.bodies)
	}
	if err == nil && len(w.events) > 0 && !w.notified {
		wire := make([]wireEvent, len(w.events))
		for i, e := range w.events {
			wire[i] = toWire(e)
		}
		err = notify(ctx, tx, a.s, a.id, wire)
	}
	if err != nil {
		tx.Rollback(context.WithoutCancel(ctx))
		if errors.Is(err, errNoChange) {
			return nil
		}
		return a.wrapErr(err)
	}
	if err := tx.Commit(ctx); err != nil {
		return a.wrapErr(fmt.Errorf("postgres: commit: %w", err))
	}
	a.publish(w.events)
	return nil
}

// wrapErr turns errors of a closed store into ErrClosed.
func (a *account) wrapErr(err error) error {
	if err == nil {
		return nil
	}
	if a.gone.Load() || a.s.isClosed() {
		if !errors.Is(err, mailstore.ErrClosed) {
			return fmt.Errorf("%w: %v", mailstore.ErrClosed, err)
		}
	}
	return err
}

// bump gives the mailbox its next modseq, once per transaction, locking
// its row until the commit: every change of one transaction shares it, and
// transactions on one mailbox commit in modseq order. A mailbox that is
// not the account's gives ErrNoSuchMailbox.
func (w *wtx) bump(mailbox int64) (uint64, error) {
	if m, ok := w.modseqs[mailbox]; ok {
		return m, nil
	}
	var m uint64
	err := w.QueryRow(w.ctx, `UPDATE mail_mailboxes SET highestmodseq = highestmodseq + 1
		WHERE id = $1 AND account = $2 RETURNING highestmodseq`, mailbox, w.a.id).Scan(&m)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, fmt.Errorf("%w: id %d", mailstore.ErrNoSuchMailbox, mailbox)
	}
	if err != nil {
		return 0, err
	}
	w.setModSeq(mailbox, m)
	return m, nil
}

func (w *wtx) setModSeq(mailbox int64, m uint64) {
	if w.modseqs == nil {
		w.modseqs = make(map[int64]uint64)
	}
	w.modseqs[mailbox] = m
}

func (w *wtx) event(e mailstore.Event) { w.events = append(w.events, e) }

// addUsage changes the account's stored bytes and messages and checks the
// quotas (0: none) against the result.
func (w *wtx) addUsage(bytes, msgs, limit, msgLimit int64) error {
	var used, count int64
	if err := w.QueryRow(w.ctx, `UPDATE mail_accounts SET bytes = bytes + $2, msgs = msgs + $3 WHERE id = $1 RETURNING bytes, msgs`,
		w.a.id, bytes, msgs).Scan(&used, &count); err != nil {
		return err
	}
	if bytes > 0 && limit > 0 && used > limit {
		return fmt.Errorf("%d bytes stored, quota %d: %w", used, limit, mailstore.ErrOverQuota)
	}
	if msgs > 0 && msgLimit > 0 && count > msgLimit {
		return fmt.Errorf("%d messages stored, quota %d: %w", count, msgLimit, mailstore.ErrOverQuota)
	}
	return nil
}

// quotas asks the configured quota functions.
func (a *account) quotas(ctx context.Context) (limit, msgLimit int64, err error) {
	if f := a.s.opts.Quota; f != nil {
		if limit, err = f(ctx, a.name); err != nil {
			return 0, 0, fmt.Errorf("postgres: quota: %w", err)
		}
	}
	if f := a.s.opts.MessageQuota; f != nil {
		if msgLimit, err = f(ctx, a.name); err != nil {
			return 0, 0, fmt.Errorf("postgres: message quota: %w", err)
		}
	}
	return limit, msgLimit, nil
}

// lockConn holds this Store's POP3 maildrop locks: session-level advisory
// locks on one dedicated connection, so that another node trying the same
// account is refused, and a node that dies releases its locks with its
// connection. A lock held by this process is also refused locally (an
// advisory lock is re-entrant within its session).
type lockConn struct {
	s      *Store
	mu     sync.Mutex
	conn   *pgx.Conn
	held   map[string]bool
	closed bool
}

// maildropKey is the advisory lock key of an account's maildrop.
const maildropKey = `hashtextextended('posthouse-maildrop:' || $1, 0)`

func (l *lockConn) lock(ctx context.Context, name string) (func(), error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, mailstore.ErrClosed
	}
	if l.held[name] {
		return nil, mailstore.ErrInUse
	}
	if l.conn == nil || l.conn.IsClosed() {
		if len(l.held) > 0 {
			// The connection broke: its locks went with it.
			l.s.log.Error("maildrop lock connection lost; locks held by this node were released")
			l.held = nil
		}
		conn, err := pgx.ConnectConfig(ctx, l.s.pool.Config().ConnConfig.Copy())
		if err != nil {
			return nil, fmt.Errorf("postgres: maildrop lock: %w", err)
		}
		l.conn = conn
	}
	var ok bool
	if err := l.conn.QueryRow(ctx, `SELECT pg_try_advisory_lock(`+maildropKey+`)`, name).Scan(&ok); err != nil {
		if pgconn.SafeToRetry(err) || l.conn.IsClosed() {
			l.conn.Close(context.Background())
			l.conn = nil
		}
		return nil, fmt.Errorf("postgres: maildrop lock: %w", err)
	}
	if !ok {
		return nil, mailstore.ErrInUse
	}
	if l.held == nil {
		l.held = make(map[string]bool)
	}
	l.held[name] = true
	conn := l.conn
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			if l.conn != conn || l.closed {
				return // released with its connection
			}
			delete(l.held, name)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if _, err := conn.Exec(ctx, `SELECT pg_advisory_unlock(`+maildropKey+`)`, name); err != nil {
				l.s.log.Error("maildrop unlock", "user", name, "err", err)
				conn.Close(context.Background())
				l.conn = nil
			}
		})
	}, nil
}

func (l *lockConn) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	if l.conn != nil {
		// Released before Close returns; closing the connection alone
		// releases them when the server notices, a moment later.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		l.conn.Exec(ctx, `SELECT pg_advisory_unlock_all()`)
		cancel()
		l.conn.Close(context.Background())
		l.conn = nil
	}
	l.held = nil
}
