package queue

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/posthouse/posthouse/dsn"
	"github.com/posthouse/posthouse/smtpclient"
)

// pgBackend is the storage of a Queue on PostgreSQL (pgstore.go): the
// low-level operations, plus what needs the Queue (the CRLF and size
// rules, DKIM signing) and the claim bookkeeping of one node.
type pgBackend struct {
	*pgStore
	q *Queue
}

var _ storage = pgBackend{}

func (b pgBackend) put(ctx context.Context, rows *queuedRows, body io.Reader) error {
	// The body is normalised on its way into the chunks: a pipe, so only
	// one chunk and the copy buffers are in memory.
	pr, pw := io.Pipe()
	var cw *crlfWriter
	done := make(chan struct{})
	go func() {
		defer close(done)
		bw := spoolWriters.Get().(*bufio.Writer)
		bw.Reset(pw)
		cw = &crlfWriter{w: bw, limit: b.q.opts.MaxMessageSize}
		buf := copyBufs.Get().(*[]byte)
		_, err := io.CopyBuffer(cw, body, *buf)
		copyBufs.Put(buf)
		if err == nil {
			err = cw.finish()
		}
		bw.Reset(nil)
		spoolWriters.Put(bw)
		pw.CloseWithError(err)
	}()
	err := b.enqueue(ctx, rows, pr, func(r io.ReadSeeker, size int64) error {
		// The writer is done: the reader saw EOF.
		rows.size, rows.eightbit = cw.n, cw.eightbit
		sig, err := b.q.sign(ctx, r, rows.from)
		rows.dkim = sig
		return err
	})
	pr.CloseWithError(errors.New("queue: enqueue ended"))
	<-done // the caller's body is not read after put returns
	if err != nil {
		if errors.Is(err, ErrTooBig) {
			return ErrTooBig
		}
		return fmt.Errorf("queue: %w", err)
	}
	return nil
}

// due claims jobs for this node (see claim).
func (b pgBackend) due(ctx context.Context, now int64, domain string, skip []string, max int) ([]job, error) {
	return b.claimIn(ctx, now, domain, skip, max)
}

func (b pgBackend) release(j job) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.pgStore.release(ctx, j); err != nil {
		// The lease runs out instead; the job waits for it.
		b.q.log.Warn("queue: release claim", "queueid", j.id, "domain", j.domain, "err", err)
	}
}

func (b pgBackend) leaseValid() bool { return b.pgStore.leaseValid(b.lease / 2) }

func (b pgBackend) startAttempt(ctx context.Context, j job, now int64, nextFor func(int) int64) ([]attemptRcpt, int64, error) {
	var rs []attemptRcpt
	var next int64
	err := pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT r.rcpt, r.attempts, r.next_attempt FROM queue_recipients r
			WHERE r.message_id = $1 AND r.domain = $2 AND r.state = 'pending' AND r.next_attempt <= $3
			  AND EXISTS (SELECT 1 FROM queue_claims c WHERE c.message_id = $1 AND c.domain = $2
			      AND c.node = $4 AND c.lease_until > now())
			ORDER BY r.rcpt FOR UPDATE OF r`, j.id, j.domain, now, b.node)
		if err != nil {
			return err
		}
		rs, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (attemptRcpt, error) {
			var r attemptRcpt
			return r, row.Scan(&r.rcpt, &r.attempts, &r.next)
		})
		if err != nil || len(rs) == 0 {
			return err
		}
		names := make([]string, len(rs))
		attempts := 0
		for i, r := range rs {
			names[i] = r.rcpt
			attempts = max(attempts, r.attempts)
		}
		next = nextFor(attempts)
		_, err = tx.Exec(ctx, `UPDATE queue_recipients SET attempts = attempts + 1, next_attempt = $3, last_attempt = $4
			WHERE message_id = $1 AND rcpt = ANY($2)`, j.id, names, next, now)
		return err
	})
	if err != nil {
		return nil, 0, err
	}
	return rs, next, nil
}

func (b pgBackend) nextDue(ctx context.Context, now int64) (int64, bool) {
	var next *int64
	if err := b.pool.QueryRow(ctx, `SELECT min(next_attempt) FROM queue_recipients WHERE state = 'pending' AND next_attempt > $1`, now).Scan(&next); err != nil || next == nil {
		return 0, false
	}
	return *next, true
}

func (b pgBackend) loadMsg(ctx context.Context, id string) (*msgInfo, error) {
	m := &msgInfo{id: id}
	var created int64
	err := b.pool.QueryRow(ctx, `SELECT sender, size, created, eightbit, smtputf8, kind, dkim, warned FROM queue_messages WHERE id = $1`, id).
		Scan(&m.from, &m.size, &created, &m.eightbit, &m.smtputf8, &m.kind, &m.dkim, &m.warned)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	m.created = time.Unix(0, created)
	return m, nil
}

func (b pgBackend) reschedule(ctx context.Context, id string, rcpts []string, next int64) error {
	_, err := b.pool.Exec(ctx, `UPDATE queue_recipients SET next_attempt = $3, attempts = greatest(attempts - 1, 0)
		WHERE state = 'pending' AND message_id = $1 AND rcpt = ANY($2)`, id, rcpts, next)
	return err
}

func (b pgBackend) wakeWaiting(ctx context.Context, domain, suffix string, now int64) (int64, error) {
	tag, err := b.pool.Exec(ctx, `UPDATE queue_recipients SET next_attempt = $3
		WHERE domain = $1 AND state = 'pending' AND next_attempt > $3 AND right(reply, length($2)) = $2`, domain, suffix, now)
	return tag.RowsAffected(), err
}

func (b pgBackend) body(ctx context.Context, id string) (spooled, error) {
	body, err := b.openBody(ctx, id)
	if err != nil {
		return nil, err
	}
	if body.size == 0 {
		var one int
		if err := b.pool.QueryRow(ctx, `SELECT 1 FROM queue_bodies WHERE message_id = $1 LIMIT 1`, id).Scan(&one); errors.Is(err, pgx.ErrNoRows) {
			return nil, ErrNotFound
		}
	}
	return body, nil
}

func (b pgBackend) idList(ctx context.Context, query string, args ...any) ([]string, error) {
	rows, err := b.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

func (b pgBackend) failedIDs(ctx context.Context) ([]string, error) {
	return b.idList(ctx, `SELECT DISTINCT message_id FROM queue_recipients WHERE state = 'failed' AND NOT dsn_sent LIMIT 1000`)
}

func (b pgBackend) delayedIDs(ctx context.Context, cutoff int64) ([]string, error) {
	return b.idList(ctx, `SELECT id FROM queue_messages m WHERE NOT warned AND sender <> '' AND kind = '' AND created <= $1
		AND EXISTS (SELECT 1 FROM queue_recipients r WHERE r.message_id = m.id AND r.state = 'pending' AND r.attempts > 0) LIMIT 1000`, cutoff)
}

func (b pgBackend) finishedIDs(ctx context.Context) ([]string, error) {
	return b.idList(ctx, `SELECT id FROM queue_messages m WHERE NOT EXISTS (SELECT 1 FROM queue_recipients r WHERE r.message_id = m.id
		AND (r.state = 'pending' OR (r.state = 'failed' AND NOT r.dsn_sent))) LIMIT 1000`)
}

func (b pgBackend) reportRcpts(ctx context.Context, id string, delayed bool) ([]dsn.Recipient, error) {
	where := `state = 'failed' AND NOT dsn_sent`
	if delayed {
		where = `state = 'pending' AND attempts > 0`
	}
	rows, err := b.pool.Query(ctx, `SELECT rcpt, reply, remote, last_attempt, state FROM queue_recipients
		WHERE message_id = $1 AND `+where+` ORDER BY rcpt`, id)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (dsn.Recipient, error) {
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

// claimReport claims the message's report job: a claim row with the
// domain ” (never a recipient's), leased and renewed like the others.
func (b pgBackend) claimReport(ctx context.Context, id string) (func(), bool) {
	var got string
	err := b.pool.QueryRow(ctx, `INSERT INTO queue_claims AS c (message_id, domain, node, lease_until)
		VALUES ($1, '', $2, now() + $3 * interval '1 microsecond')
		ON CONFLICT (message_id, domain) DO UPDATE
			SET node = excluded.node, lease_until = excluded.lease_until
			WHERE c.lease_until <= now()
		RETURNING node`, id, b.node, b.lease.Microseconds()).Scan(&got)
	if err != nil {
		if !errors.Is(err, pgx.ErrNoRows) && ctx.Err() == nil {
			b.q.log.Error("queue: claim report", "queueid", id, "err", err)
		}
		return nil, false
	}
	return func() { b.pgStore.release(context.WithoutCancel(ctx), job{id: id}) }, true
}

func (b pgBackend) markReported(ctx context.Context, id string, rcpts []string) error {
	_, err := b.pool.Exec(ctx, `UPDATE queue_recipients SET dsn_sent = true WHERE message_id = $1 AND rcpt = ANY($2)`, id, rcpts)
	return err
}

func (b pgBackend) markWarned(ctx context.Context, id string) error {
	_, err := b.pool.Exec(ctx, `UPDATE queue_messages SET warned = true WHERE id = $1`, id)
	return err
}

func (b pgBackend) finish(ctx context.Context, ids []string) error {
	_, err := b.pool.Exec(ctx, `DELETE FROM queue_messages WHERE id = ANY($1)`, ids)
	return err
}

func (b pgBackend) finishOne(ctx context.Context, id string) (bool, error) {
	tag, err := b.pool.Exec(ctx, `DELETE FROM queue_messages WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM queue_recipients r
		WHERE r.message_id = $1 AND (r.state = 'pending' OR (r.state = 'failed' AND NOT r.dsn_sent)))`, id)
	return tag.RowsAffected() > 0, err
}

func (b pgBackend) stats(ctx context.Context) (int, int64, bool, error) {
	var n int
	var min *int64
	err := b.pool.QueryRow(ctx, `SELECT count(*), min(created) FROM queue_messages`).Scan(&n, &min)
	if min == nil {
		return n, 0, false, err
	}
	return n, *min, true, err
}

// renewLoop renews this node's leases every lease/3 until ctx ends.
func (b pgBackend) renewLoop(ctx context.Context) {
	t := time.NewTicker(b.lease / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		rctx, cancel := context.WithTimeout(ctx, b.lease/3)
		if _, err := b.renew(rctx); err != nil && ctx.Err() == nil {
			b.q.log.Error("queue: renew claims", "node", b.node, "err", err)
		}
		cancel()
	}
}
