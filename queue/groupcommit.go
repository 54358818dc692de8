package queue

import (
	"context"
	"sync"
	"time"
)

// queuedRows are the database rows of one Enqueue: its message and
// recipients, committed together with those of concurrent Enqueues.
type queuedRows struct {
	id, from       string
	size, created  int64
	eightbit, utf8 bool
	kind, dkim     string
	body           []byte      // the message when kept in its row (nil: a spool file)
	rcpts          [][2]string // address, domain
	err            error
	done           chan struct{} // closed when err is final
	lead           chan struct{} // (buffered) this Enqueue commits the waiting rows next
}

// enqueueCommitter lets Enqueues that wait for the write lock share one
// transaction and one fsync (group commit).
type enqueueCommitter struct {
	mu     sync.Mutex
	queue  []*queuedRows
	leader bool
}

// maxEnqueueBatch bounds how many Enqueues share a transaction.
const maxEnqueueBatch = 64

// commitRows commits r's rows (synchronous=FULL) and returns when they are
// durable. While one Enqueue commits, the others queue; the next of them
// then commits every waiting Enqueue in one transaction, so concurrent
// sessions share a WAL fsync instead of taking turns for one each. Each
// still gets its own error. Once queued, r waits for its outcome even if
// ctx ends, so a caller never reports failure for rows that were stored.
func (q *Queue) commitRows(ctx context.Context, r *queuedRows) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r.done = make(chan struct{})
	r.lead = make(chan struct{}, 1)
	c := &q.committer
	c.mu.Lock()
	c.queue = append(c.queue, r)
	if c.leader {
		c.mu.Unlock()
		select {
		case <-r.done:
			return r.err
		case <-r.lead:
			// The previous committer handed over: the queue starts with r.
		}
		c.mu.Lock()
	}
	c.leader = true
	batch := c.queue
	if len(batch) > maxEnqueueBatch {
		batch = batch[:maxEnqueueBatch]
	}
	c.queue = c.queue[len(batch):]
	c.mu.Unlock()
	q.insertBatch(batch)
	for _, x := range batch {
		close(x.done)
	}
	// One batch per caller; the oldest waiter commits the next.
	c.mu.Lock()
	if len(c.queue) == 0 {
		c.leader = false
	} else {
		c.queue[0].lead <- struct{}{}
	}
	c.mu.Unlock()
	return r.err
}

// insertBatch commits a batch in one transaction, or, when that fails,
// each Enqueue's rows on their own, so one bad entry fails only its own
// Enqueue. It runs without the callers' contexts: a batch holds other
// callers' rows.
func (q *Queue) insertBatch(batch []*queuedRows) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := q.insertRows(ctx, batch)
	if err != nil && len(batch) > 1 {
		for _, r := range batch {
			r.err = q.insertRows(ctx, []*queuedRows{r})
		}
		return
	}
	for _, r := range batch {
		r.err = err
	}
}

func (q *Queue) insertRows(ctx context.Context, batch []*queuedRows) error {
	tx, err := q.db.Write.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for _, r := range batch {
		if _, err := tx.ExecContext(ctx, `INSERT INTO messages (id, sender, size, created, eightbit, smtputf8, kind, dkim, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			r.id, r.from, r.size, r.created, r.eightbit, r.utf8, r.kind, r.dkim, r.body); err != nil {
			return err
		}
		for _, rc := range r.rcpts {
			if _, err := tx.ExecContext(ctx, `INSERT INTO recipients (message_id, rcpt, domain, next_attempt) VALUES (?, ?, ?, ?)`,
				r.id, rc[0], rc[1], r.created); err != nil {
				return err
			}
		}
	}
	return tx.Commit()
}
