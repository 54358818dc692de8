package queue

import (
	"context"
	"errors"
	"fmt"
	"time"
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
	ids, err := q.st.ids(ctx)
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
	m, err := q.st.get(ctx, id)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return Message{}, fmt.Errorf("queue: %w", err)
	}
	return m, err
}

// Retry makes the pending recipients of message id due now ("" : every
// message). It returns how many recipients were rescheduled. A running
// server picks the change up within its poll interval.
func (q *Queue) Retry(ctx context.Context, id string) (int, error) {
	if id != "" {
		if _, err := q.Get(ctx, id); err != nil {
			return 0, err
		}
	}
	n, err := q.st.retry(ctx, id, q.opts.Now().UnixNano())
	if err != nil {
		return 0, fmt.Errorf("queue: %w", err)
	}
	q.wake()
	return int(n), nil
}

// Remove deletes a message from the queue without delivering it further
// and without a DSN.
func (q *Queue) Remove(ctx context.Context, id string) error {
	if err := q.st.remove(ctx, id); err != nil {
		if errors.Is(err, ErrNotFound) {
			return err
		}
		return fmt.Errorf("queue: %w", err)
	}
	q.log.Info("removed by admin", "queueid", id)
	return nil
}

// Stats returns how many messages the queue holds and when the oldest was
// queued (zero when empty), in one query: cheap enough for every metrics
// scrape.
func (q *Queue) Stats(ctx context.Context) (messages int, oldest time.Time, err error) {
	messages, min, ok, err := q.st.stats(ctx)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("queue: stats: %w", err)
	}
	if ok {
		oldest = time.Unix(0, min)
	}
	return messages, oldest, nil
}

// Node is the id under which this queue claims messages in PostgreSQL
// (Options.Node or the one Open made up); "" for a queue of its own.
func (q *Queue) Node() string {
	if pg, ok := q.st.(pgBackend); ok {
		return pg.node
	}
	return ""
}
