package queue

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"io"
	"os"
	"strings"
	"time"

	"github.com/posthouse/posthouse/dsn"
	"github.com/posthouse/posthouse/internal/regfile"
	"github.com/posthouse/posthouse/mailstore/sqlitedb"
	"github.com/posthouse/posthouse/smtpclient"
)

// storage is where the queue keeps its messages: queue.sqlite with spool
// files (sqliteStore, the default, for one node) or PostgreSQL (pgBackend,
// shared by several nodes, each job claimed by one of them). Everything
// else (scheduling, limits, sessions, DSNs) is the Queue's own.
type storage interface {
	// put stores a new message: body in its final form (CRLF, with
	// rows.size and rows.eightbit filled from it), rows committed
	// durably before it returns. sign gives the DKIM fields for the
	// stored body.
	put(ctx context.Context, rows *queuedRows, body io.Reader) error
	// due returns due jobs for this node: with domain set, only that
	// domain's; skip leaves out saturated domains. With claims (several
	// nodes), each returned job is this node's until release, and max
	// bounds how many are taken; without claims max is not needed (the
	// scheduler skips what it cannot start) and up to scheduleBatch
	// recipients' jobs are returned.
	due(ctx context.Context, now int64, domain string, skip []string, max int) ([]job, error)
	// release ends this node's claim on j (nothing without claims).
	release(j job)
	// leaseValid reports whether this node's claims are certainly still
	// its own for half a lease (always, without claims): a transaction is
	// begun only then.
	leaseValid() bool
	nextDue(ctx context.Context, now int64) (int64, bool)
	loadMsg(ctx context.Context, id string) (*msgInfo, error)
	// startAttempt saves the next attempt time of j's due recipients and
	// returns them with what they had before.
	// nextFor gives the next attempt time after the most attempts any of
	// them had; it is returned.
	startAttempt(ctx context.Context, j job, now int64, nextFor func(attempts int) int64) ([]attemptRcpt, int64, error)
	// record stores results and removes the message when nothing is left
	// to do for it.
	record(ctx context.Context, id string, res []recordRow) (finished bool, err error)
	// restore puts recipients an interrupted attempt did not finish back.
	restore(ctx context.Context, id string, rs []attemptRcpt) error
	// reschedule makes rcpts due at next without counting the attempt.
	reschedule(ctx context.Context, id string, rcpts []string, next int64) error
	// wakeWaiting makes due now the recipients at domain whose reply ends
	// with suffix and whose next attempt is later.
	wakeWaiting(ctx context.Context, domain, suffix string, now int64) (int64, error)
	// body opens a message's stored body.
	body(ctx context.Context, id string) (spooled, error)
	// failedIDs, delayedIDs and finishedIDs serve housekeeping.
	failedIDs(ctx context.Context) ([]string, error)
	delayedIDs(ctx context.Context, cutoff int64) ([]string, error)
	finishedIDs(ctx context.Context) ([]string, error)
	// reportRcpts returns the recipients to report: failed and not yet
	// reported, or (delayed) pending after an attempt.
	reportRcpts(ctx context.Context, id string, delayed bool) ([]dsn.Recipient, error)
	// claimReport makes this node the one reporting on message id (a DSN)
	// until the returned func is called; ok false: another node is.
	claimReport(ctx context.Context, id string) (done func(), ok bool)
	markReported(ctx context.Context, id string, rcpts []string) error
	markWarned(ctx context.Context, id string) error
	// finish removes the messages in ids; finishOne removes id when
	// nothing is left to do for it.
	finish(ctx context.Context, ids []string) error
	finishOne(ctx context.Context, id string) (bool, error)
	// Admin.
	ids(ctx context.Context) ([]string, error)
	get(ctx context.Context, id string) (Message, error)
	retry(ctx context.Context, id string, now int64) (int64, error)
	remove(ctx context.Context, id string) error
	stats(ctx context.Context) (int, int64, bool, error)
}

// attemptRcpt is a recipient of an attempt, with what it had before.
type attemptRcpt struct {
	rcpt     string
	attempts int
	next     int64
}

// recordRow is one recipient's outcome to store.
type recordRow struct {
	rcpt, state, reply, remote string
}

// spooled is a stored message body.
type spooled interface {
	io.ReaderAt
	io.Closer
	Size() int64
}

// sqliteStore is the single-node storage: queue.sqlite and spool files.
type sqliteStore struct{ q *Queue }

type spoolFile struct {
	*os.File
	size int64
}

func (f spoolFile) Size() int64 { return f.size }

func (s sqliteStore) put(ctx context.Context, rows *queuedRows, body io.Reader) error {
	return s.q.putSpool(ctx, rows, body)
}

func (s sqliteStore) due(ctx context.Context, now int64, domain string, skip []string, max int) ([]job, error) {
	db := s.q.db
	if domain != "" {
		rows, err := db.Read.QueryContext(ctx, `SELECT message_id FROM recipients
			WHERE domain = ? AND state = 'pending' AND next_attempt <= ? ORDER BY next_attempt LIMIT 50`, domain, now)
		return sqlitedb.Collect(rows, err, func(row sqlitedb.Scanner) (job, error) {
			j := job{domain: domain}
			return j, row.Scan(&j.id)
		})
	}
	// Leave out domains at their concurrency limit in SQL: their rows
	// would be read and skipped on every pass while a backlog drains.
	query := `SELECT message_id, domain FROM recipients WHERE state = 'pending' AND next_attempt <= ?`
	args := []any{now}
	for _, d := range skip {
		args = append(args, d)
	}
	if len(skip) > 0 {
		query += ` AND domain NOT IN (?` + strings.Repeat(", ?", len(skip)-1) + `)`
	}
	args = append(args, scheduleBatch)
	rows, err := db.Read.QueryContext(ctx, query+` ORDER BY next_attempt LIMIT ?`, args...)
	seen := make(map[job]bool)
	var jobs []job
	err = sqlitedb.Each(rows, err, func(row sqlitedb.Scanner) error {
		var j job
		if err := row.Scan(&j.id, &j.domain); err != nil {
			return err
		}
		if !seen[j] {
			seen[j] = true
			jobs = append(jobs, j)
		}
		return nil
	})
	return jobs, err
}

func (sqliteStore) release(job)      {}
func (sqliteStore) leaseValid() bool { return true }

func (s sqliteStore) nextDue(ctx context.Context, now int64) (int64, bool) {
	var next *int64
	if err := s.q.db.Read.QueryRowContext(ctx, `SELECT MIN(next_attempt) FROM recipients WHERE state = 'pending' AND next_attempt > ?`, now).Scan(&next); err != nil || next == nil {
		return 0, false
	}
	return *next, true
}

func (s sqliteStore) loadMsg(ctx context.Context, id string) (*msgInfo, error) {
	m := &msgInfo{id: id}
	var created int64
	err := s.q.db.Read.QueryRowContext(ctx, `SELECT sender, size, created, eightbit, smtputf8, kind, dkim, warned FROM messages WHERE id = ?`, id).
		Scan(&m.from, &m.size, &created, &m.eightbit, &m.smtputf8, &m.kind, &m.dkim, &m.warned)
	if err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, ErrNotFound
		}
		return nil, err
	}
	m.created = time.Unix(0, created)
	return m, nil
}

func (s sqliteStore) startAttempt(ctx context.Context, j job, now int64, nextFor func(int) int64) ([]attemptRcpt, int64, error) {
	// By the primary key (message_id): the unary + keeps SQLite from
	// taking recipients_domain_due for its three equalities, which reads
	// every pending recipient of the domain, so that each attempt of a
	// backlog to one domain cost as much as the backlog.
	rows, err := s.q.db.Read.QueryContext(ctx, `SELECT rcpt, attempts, next_attempt FROM recipients
		WHERE message_id = ? AND +domain = ? AND +state = 'pending' AND +next_attempt <= ? ORDER BY rcpt`, j.id, j.domain, now)
	rs, err := sqlitedb.Collect(rows, err, func(row sqlitedb.Scanner) (attemptRcpt, error) {
		var r attemptRcpt
		return r, row.Scan(&r.rcpt, &r.attempts, &r.next)
	})
	if err != nil || len(rs) == 0 {
		return nil, 0, err
	}
	names := make([]string, len(rs))
	attempts := 0
	for i, r := range rs {
		names[i] = r.rcpt
		attempts = max(attempts, r.attempts)
	}
	next := nextFor(attempts)
	if err := s.q.saveAttempt(ctx, j.id, names, time.Unix(0, next), time.Unix(0, now)); err != nil {
		return nil, 0, err
	}
	return rs, next, nil
}

func (s sqliteStore) record(ctx context.Context, id string, res []recordRow) (finished bool, err error) {
	// Committed relaxed (reap.go): the spool file goes once it is durable.
	spoolFile := false
	err = s.q.relaxedTx(ctx, func(tx *sql.Tx) error {
		for _, r := range res {
			if _, err := tx.ExecContext(ctx, `UPDATE recipients SET state = ?, reply = ?, remote = ? WHERE message_id = ? AND rcpt = ?`,
				r.state, r.reply, r.remote, id, r.rcpt); err != nil {
				return err
			}
		}
		// The common case ends here: every recipient done and none failed.
		// Removing the entry in the same transaction saves a commit.
		err := tx.QueryRowContext(ctx, `DELETE FROM messages WHERE id = ? AND NOT EXISTS (SELECT 1 FROM recipients r
			WHERE r.message_id = ? AND (r.state = 'pending' OR (r.state = 'failed' AND r.dsn_sent = 0)))
			RETURNING body IS NULL`, id, id).Scan(&spoolFile)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		finished = err == nil
		return err
	})
	// A message kept in its row went with it; a spool file goes once the
	// finish is durable.
	if err == nil && finished && spoolFile {
		s.q.dropSpool(id)
	}
	return finished, err
}

func (s sqliteStore) restore(ctx context.Context, id string, rs []attemptRcpt) error {
	for _, r := range rs {
		if _, err := s.q.db.Write.ExecContext(ctx, `UPDATE recipients SET next_attempt = ?, attempts = MAX(attempts - 1, 0) WHERE message_id = ? AND rcpt = ? AND state = 'pending'`,
			r.next, id, r.rcpt); err != nil {
			return err
		}
	}
	return nil
}

func (s sqliteStore) reschedule(ctx context.Context, id string, rcpts []string, next int64) error {
	return s.q.updateRcpts(ctx, id, rcpts, `UPDATE recipients SET next_attempt = ?, attempts = MAX(attempts - 1, 0)
		WHERE state = 'pending' AND message_id = ? AND rcpt = ?`, next)
}

func (s sqliteStore) wakeWaiting(ctx context.Context, domain, suffix string, now int64) (int64, error) {
	res, err := s.q.db.Write.ExecContext(ctx, `UPDATE recipients SET next_attempt = ?
		WHERE domain = ? AND state = 'pending' AND next_attempt > ? AND reply LIKE ?`, now, domain, now, "%"+suffix)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// inlineBody is a message kept in its row.
type inlineBody struct{ *bytes.Reader }

func (inlineBody) Close() error { return nil }

func (s sqliteStore) body(ctx context.Context, id string) (spooled, error) {
	var inline bool
	var b []byte
	err := s.q.db.Read.QueryRowContext(ctx, `SELECT body IS NOT NULL, body FROM messages WHERE id = ?`, id).Scan(&inline, &b)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, err
	}
	if inline {
		return inlineBody{bytes.NewReader(b)}, nil
	}
	f, err := regfile.Open(s.q.spoolPath(id))
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	return spoolFile{f, fi.Size()}, nil
}

func (s sqliteStore) idList(ctx context.Context, query string, args ...any) ([]string, error) {
	rows, err := s.q.db.Read.QueryContext(ctx, query, args...)
	return sqlitedb.Collect(rows, err, sqlitedb.Value[string])
}

func (s sqliteStore) failedIDs(ctx context.Context) ([]string, error) {
	return s.idList(ctx, `SELECT DISTINCT message_id FROM recipients WHERE state = 'failed' AND dsn_sent = 0 LIMIT 1000`)
}

func (s sqliteStore) delayedIDs(ctx context.Context, cutoff int64) ([]string, error) {
	return s.idList(ctx, `SELECT id FROM messages m WHERE warned = 0 AND sender != '' AND kind = '' AND created <= ?
		AND EXISTS (SELECT 1 FROM recipients r WHERE r.message_id = m.id AND +r.state = 'pending' AND r.attempts > 0) LIMIT 1000`, cutoff)
}

func (s sqliteStore) finishedIDs(ctx context.Context) ([]string, error) {
	return s.idList(ctx, `SELECT id FROM messages m WHERE NOT EXISTS (SELECT 1 FROM recipients r WHERE r.message_id = m.id
		AND (r.state = 'pending' OR (r.state = 'failed' AND r.dsn_sent = 0))) LIMIT 1000`)
}

func (s sqliteStore) reportRcpts(ctx context.Context, id string, delayed bool) ([]dsn.Recipient, error) {
	where := `state = 'failed' AND dsn_sent = 0`
	if delayed {
		where = `state = 'pending' AND attempts > 0`
	}
	rows, err := s.q.db.Read.QueryContext(ctx, `SELECT rcpt, reply, remote, last_attempt, state FROM recipients
		WHERE message_id = ? AND `+where+` ORDER BY rcpt`, id)
	return sqlitedb.Collect(rows, err, func(row sqlitedb.Scanner) (dsn.Recipient, error) {
		var r dsn.Recipient
		var last int64
		var state string
		err := row.Scan(&r.Addr, &r.Reply, &r.Remote, &last, &state)
		if last != 0 {
			r.LastAttempt = time.Unix(0, last)
		}
		r.Expired = state == string(StateFailed) && smtpclient.ParseReply(r.Reply).Code < 500
		return r, err
	})
}

func (sqliteStore) claimReport(context.Context, string) (func(), bool) { return func() {}, true }

func (s sqliteStore) markReported(ctx context.Context, id string, rcpts []string) error {
	return s.q.updateRcpts(ctx, id, rcpts, `UPDATE recipients SET dsn_sent = 1 WHERE message_id = ? AND rcpt = ?`)
}

func (s sqliteStore) markWarned(ctx context.Context, id string) error {
	_, err := s.q.db.Write.ExecContext(ctx, `UPDATE messages SET warned = 1 WHERE id = ?`, id)
	return err
}

// finish removes the rows first; a crash before the files are removed
// leaves orphans that Open cleans up.
func (s sqliteStore) finish(ctx context.Context, ids []string) error {
	tx, err := s.q.db.Write.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for _, id := range ids {
		if _, err := tx.ExecContext(ctx, `DELETE FROM messages WHERE id = ?`, id); err != nil {
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	for _, id := range ids {
		os.Remove(s.q.spoolPath(id))
	}
	return nil
}

func (s sqliteStore) finishOne(ctx context.Context, id string) (bool, error) {
	res, err := s.q.db.Write.ExecContext(ctx, `DELETE FROM messages WHERE id = ? AND NOT EXISTS (SELECT 1 FROM recipients r
		WHERE r.message_id = ? AND (r.state = 'pending' OR (r.state = 'failed' AND r.dsn_sent = 0)))`, id, id)
	if err != nil {
		return false, err
	}
	n, _ := res.RowsAffected()
	if n > 0 {
		os.Remove(s.q.spoolPath(id))
	}
	return n > 0, nil
}

func (s sqliteStore) ids(ctx context.Context) ([]string, error) {
	return s.idList(ctx, `SELECT id FROM messages ORDER BY created, id`)
}

func (s sqliteStore) get(ctx context.Context, id string) (Message, error) {
	var m Message
	var created int64
	var kind, dkim string
	err := s.q.db.Read.QueryRowContext(ctx, `SELECT id, sender, size, created, kind, dkim FROM messages WHERE id = ?`, id).
		Scan(&m.ID, &m.From, &m.Size, &created, &kind, &dkim)
	if errors.Is(err, sql.ErrNoRows) {
		return Message{}, ErrNotFound
	}
	if err != nil {
		return Message{}, err
	}
	m.Created = time.Unix(0, created)
	m.DSN = kind == kindDSN
	m.Signed = dkim != ""
	rows, err := s.q.db.Read.QueryContext(ctx, `SELECT rcpt, domain, state, attempts, next_attempt, last_attempt, reply, remote
		FROM recipients WHERE message_id = ? ORDER BY domain, rcpt`, id)
	m.Recipients, err = sqlitedb.Collect(rows, err, func(row sqlitedb.Scanner) (Recipient, error) {
		var r Recipient
		var next, last int64
		err := row.Scan(&r.Addr, &r.Domain, &r.State, &r.Attempts, &next, &last, &r.Reply, &r.Remote)
		r.NextAttempt = time.Unix(0, next)
		if last != 0 {
			r.LastAttempt = time.Unix(0, last)
		}
		return r, err
	})
	if err != nil {
		return Message{}, err
	}
	return m, nil
}

func (s sqliteStore) retry(ctx context.Context, id string, now int64) (int64, error) {
	var res sql.Result
	var err error
	if id == "" {
		res, err = s.q.db.Write.ExecContext(ctx, `UPDATE recipients SET next_attempt = ? WHERE state = 'pending'`, now)
	} else {
		res, err = s.q.db.Write.ExecContext(ctx, `UPDATE recipients SET next_attempt = ? WHERE state = 'pending' AND message_id = ?`, now, id)
	}
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (s sqliteStore) remove(ctx context.Context, id string) error {
	res, err := s.q.db.Write.ExecContext(ctx, `DELETE FROM messages WHERE id = ?`, id)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	if err := os.Remove(s.q.spoolPath(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		s.q.log.Error("queue: remove spool file", "queueid", id, "err", err)
	}
	return nil
}

func (s sqliteStore) stats(ctx context.Context) (int, int64, bool, error) {
	var n int
	var min sql.NullInt64
	err := s.q.db.Read.QueryRowContext(ctx, `SELECT count(*), min(created) FROM messages`).Scan(&n, &min)
	return n, min.Int64, min.Valid, err
}
