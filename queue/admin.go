package queue

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/posthouse/posthouse/mailstore/sqlitedb"
)

// State is a recipient's delivery state.
type State string

const (
	StatePending   State = "pending"
	StateDelivered State = "delivered"
	StateFailed    State = "failed"
)

// Message is a queue entry as admin commands show it.
type Message struct {
	ID         string
	From       string // "" is the null sender
	Size       int64
	Created    time.Time
	DSN        bool // a delivery status notification we generated
	Signed     bool // carries our DKIM signature
	Recipients []Recipient
}

// Recipient is one recipient's state.
type Recipient struct {
	Addr        string
	Domain      string
	State       State
	Attempts    int
	NextAttempt time.Time
	LastAttempt time.Time // zero: never tried
	Reply       string    // last reply or error ("250 2.0.0 ok", "451 4.3.0 …")
	Remote      string    // host that gave Reply
}

// List returns every message in the queue, oldest first.
func (q *Queue) List(ctx context.Context) ([]Message, error) {
	rows, err := q.db.Read.QueryContext(ctx, `SELECT id FROM messages ORDER BY created, id`)
	ids, err := sqlitedb.Collect(rows, err, sqlitedb.Value[string])
	if err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	msgs := make([]Message, 0, len(ids))
	for _, id := range ids {
		m, err := q.Get(ctx, id)
		if errors.Is(err, ErrNotFound) {
			continue // finished meanwhile
		}
		if err != nil {
			return nil, err
		}
		msgs = append(msgs, m)
	}
	return msgs, nil
}

// Get returns one message with its recipients.
func (q *Queue) Get(ctx context.Context, id string) (Message, error) {
	var m Message
	var created int64
	var kind, dkim string
	err := q.db.Read.QueryRowContext(ctx, `SELECT id, sender, size, created, kind, dkim FROM messages WHERE id = ?`, id).
		Scan(&m.ID, &m.From, &m.Size, &created, &kind, &dkim)
	if errors.Is(err, sql.ErrNoRows) {
		return Message{}, ErrNotFound
	}
	if err != nil {
		return Message{}, fmt.Errorf("queue: %w", err)
	}
	m.Created = time.Unix(0, created)
	m.DSN = kind == kindDSN
	m.Signed = dkim != ""
	rows, err := q.db.Read.QueryContext(ctx, `SELECT rcpt, domain, state, attempts, next_attempt, last_attempt, reply, remote
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
		return Message{}, fmt.Errorf("queue: %w", err)
	}
	return m, nil
}

// Retry makes the pending recipients of message id due now ("" : every
// message). It returns how many recipients were rescheduled. A running
// server picks the change up within its poll interval.
func (q *Queue) Retry(ctx context.Context, id string) (int, error) {
	now := q.opts.Now().UnixNano()
	var res sql.Result
	var err error
	if id == "" {
		res, err = q.db.Write.ExecContext(ctx, `UPDATE recipients SET next_attempt = ? WHERE state = 'pending'`, now)
	} else {
		if _, err := q.Get(ctx, id); err != nil {
			return 0, err
		}
		res, err = q.db.Write.ExecContext(ctx, `UPDATE recipients SET next_attempt = ? WHERE state = 'pending' AND message_id = ?`, now, id)
	}
	if err != nil {
		return 0, fmt.Errorf("queue: %w", err)
	}
	n, _ := res.RowsAffected()
	q.wake()
	return int(n), nil
}

// Remove deletes a message from the queue without delivering it further
// and without a DSN.
func (q *Queue) Remove(ctx context.Context, id string) error {
	res, err := q.db.Write.ExecContext(ctx, `DELETE FROM messages WHERE id = ?`, id)
	if err != nil {
		return fmt.Errorf("queue: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	if err := os.Remove(q.spoolPath(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		q.log.Error("queue: remove spool file", "queueid", id, "err", err)
	}
	q.log.Info("removed by admin", "queueid", id)
	return nil
}

// Stats returns how many messages the queue holds and when the oldest was
// queued (zero when empty), in one query: cheap enough for every metrics
// scrape.
func (q *Queue) Stats(ctx context.Context) (messages int, oldest time.Time, err error) {
	var min sql.NullInt64
	if err := q.db.Read.QueryRowContext(ctx, `SELECT count(*), min(created) FROM messages`).Scan(&messages, &min); err != nil {
		return 0, time.Time{}, fmt.Errorf("queue: stats: %w", err)
	}
	if min.Valid {
		oldest = time.Unix(0, min.Int64)
	}
	return messages, oldest, nil
}
