package queue

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/posthouse/posthouse/internal/pgdb"
)

// The PostgreSQL storage of the queue, for several nodes sharing one
// database (store backend "postgres"). Messages, recipients and bodies
// live in queue_* tables; a body is stored in chunks of pgChunkSize, so
// neither Enqueue nor a delivery holds more than one chunk in memory.
//
// Claims. A job (one message's due recipients at one domain) is worked on
// by the node holding its row in queue_claims: (message_id, domain) is the
// key, with the node's id and a lease expiry on the database's clock, so
// the nodes' clocks do not matter. claim takes due jobs with one
// statement: the due recipient rows are read FOR UPDATE SKIP LOCKED (two
// nodes scanning at once do not wait for each other) and their jobs
// inserted into queue_claims; the primary key is the arbiter, and a
// conflicting row is taken over only when its lease has run out. A live
// node renews every lease it holds every lease/3 (renew); a node that
// died stops renewing, and its jobs are claimed by another after the
// lease. A node that cannot renew for a whole lease must treat its claims
// as lost (leaseValid) and not start a transaction's end of data.
//
// Results are recorded before the claim is released, and a remote's
// acceptance is recorded whether or not the claim is still held: it is a
// fact, and recording it is what keeps any node from sending again.
type pgStore struct {
	pool  *pgxpool.Pool
	node  string
	lease time.Duration
	// perDomain bounds the jobs of one domain a claim takes (0: no
	// bound): the queue's MaxPerDomain, since it starts no more at once.
	perDomain int

	mu       sync.Mutex
	renewed  time.Time // local time the last renewal began; leases hold until renewed+lease
	renewErr error
}

// pgChunkSize is the size of a body chunk: the header DKIM signing and
// DSNs read (maxHeaderBytes) fits in the first.
const pgChunkSize = 256 << 10

// DefaultLease is how long a node's claim on a job lasts without renewal.
const DefaultLease = 60 * time.Second

const pgComponent = "queue"

var pgMigrations = [][]string{{
	`CREATE TABLE queue_messages (
		id       text PRIMARY KEY,
		sender   text NOT NULL,
		size     bigint NOT NULL,
		created  bigint NOT NULL, -- unix nanoseconds
		eightbit boolean NOT NULL DEFAULT false,
		smtputf8 boolean NOT NULL DEFAULT false,
		kind     text NOT NULL DEFAULT '',
		dkim     text NOT NULL DEFAULT '',
		warned   boolean NOT NULL DEFAULT false
	)`,
	`CREATE INDEX queue_messages_created ON queue_messages(created)`,
	`CREATE TABLE queue_bodies (
		message_id text NOT NULL REFERENCES queue_messages(id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
		seq        integer NOT NULL,
		data       bytea NOT NULL,
		PRIMARY KEY (message_id, seq)
	)`,
	`CREATE TABLE queue_recipients (
		message_id   text NOT NULL REFERENCES queue_messages(id) ON DELETE CASCADE,
		rcpt         text NOT NULL,
		domain       text NOT NULL,
		state        text NOT NULL DEFAULT 'pending',
		attempts     integer NOT NULL DEFAULT 0,
		next_attempt bigint NOT NULL,
		last_attempt bigint NOT NULL DEFAULT 0,
		reply        text NOT NULL DEFAULT '',
		remote       text NOT NULL DEFAULT '',
		dsn_sent     boolean NOT NULL DEFAULT false,
		PRIMARY KEY (message_id, rcpt)
	)`,
	`CREATE INDEX queue_recipients_due ON queue_recipients(state, next_attempt)`,
	`CREATE INDEX queue_recipients_domain_due ON queue_recipients(domain, state, next_attempt)`,
	`CREATE TABLE queue_claims (
		message_id  text NOT NULL REFERENCES queue_messages(id) ON DELETE CASCADE,
		domain      text NOT NULL,
		node        text NOT NULL,
		lease_until timestamptz NOT NULL,
		PRIMARY KEY (message_id, domain)
	)`,
	`CREATE INDEX queue_claims_node ON queue_claims(node)`,
}}

// openPG migrates the queue's tables in pool and returns the storage of
// node (a name unique among the nodes, e.g. the hostname).
func openPG(ctx context.Context, pool *pgxpool.Pool, node string, lease time.Duration) (*pgStore, error) {
	if node == "" {
		return nil, errors.New("queue: postgres: no node id")
	}
	if lease <= 0 {
		lease = DefaultLease
	}
	if err := pgdb.Migrate(ctx, pool, pgComponent, pgMigrations); err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	return &pgStore{pool: pool, node: node, lease: lease, renewed: time.Now()}, nil
}

// enqueue stores one message: the body from r (already in its final
// form, e.g. through crlfWriter), chunk by chunk, then the message and
// recipient rows, in one transaction. fill, when set, is called after
// the body is stored with a reader over it (for DKIM signing) and may
// change rows.dkim and rows.size.
func (s *pgStore) enqueue(ctx context.Context, rows *queuedRows, body io.Reader, fill func(io.ReadSeeker, int64) error) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	buf := make([]byte, pgChunkSize)
	var size int64
	var seq int
	for {
		n, rerr := io.ReadFull(body, buf)
		if n > 0 {
			if _, err := tx.Exec(ctx, `INSERT INTO queue_bodies (message_id, seq, data) VALUES ($1, $2, $3)`, rows.id, seq, buf[:n]); err != nil {
				return err
			}
			seq++
			size += int64(n)
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return rerr
		}
	}
	if fill != nil {
		body := &pgBody{q: tx, id: rows.id, size: size, seq: -1}
		if seq == 1 {
			// The whole message is still in buf: no need to read it back.
			body.chunk, body.seq = buf[:size], 0
		}
		if err := fill(body, size); err != nil {
			return err
		}
	}
	addrs := make([]string, len(rows.rcpts))
	domains := make([]string, len(rows.rcpts))
	for i, r := range rows.rcpts {
		addrs[i], domains[i] = r[0], r[1]
	}
	b := &pgx.Batch{}
	b.Queue(`INSERT INTO queue_messages (id, sender, size, created, eightbit, smtputf8, kind, dkim) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		rows.id, rows.from, rows.size, rows.created, rows.eightbit, rows.utf8, rows.kind, rows.dkim)
	b.Queue(`INSERT INTO queue_recipients (message_id, rcpt, domain, next_attempt)
		SELECT $1, a, d, $4 FROM unnest($2::text[], $3::text[]) AS t(a, d)`, rows.id, addrs, domains, rows.created)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// querier is a pool or a transaction.
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// pgBody reads a stored body one chunk at a time.
type pgBody struct {
	q     querier
	id    string
	size  int64
	off   int64
	chunk []byte
	seq   int // chunk held in chunk; -1: none
}

// openBody returns a reader over message id's body, holding one chunk.
func (s *pgStore) openBody(ctx context.Context, id string) (*pgBody, error) {
	var size int64
	err := s.pool.QueryRow(ctx, `SELECT coalesce(sum(length(data)), 0) FROM queue_bodies WHERE message_id = $1`, id).Scan(&size)
	if err != nil {
		return nil, err
	}
	return &pgBody{q: s.pool, id: id, size: size, seq: -1}, nil
}

func (b *pgBody) Read(p []byte) (int, error) {
	if b.off >= b.size {
		return 0, io.EOF
	}
	seq := int(b.off / pgChunkSize)
	if b.chunk == nil || b.seq != seq {
		var data []byte
		// The reader is used within one call's context by its caller;
		// a detached read is bounded by the pool's own timeouts.
		if err := b.q.QueryRow(context.Background(), `SELECT data FROM queue_bodies WHERE message_id = $1 AND seq = $2`, b.id, seq).Scan(&data); err != nil {
			if errors.Is(err, pgx.ErrNoRows) {
				return 0, io.ErrUnexpectedEOF
			}
			return 0, err
		}
		b.chunk, b.seq = data, seq
	}
	in := int(b.off - int64(seq)*pgChunkSize)
	if in >= len(b.chunk) {
		return 0, io.ErrUnexpectedEOF
	}
	n := copy(p, b.chunk[in:])
	b.off += int64(n)
	return n, nil
}

// ReadAt reads at off, fetching the chunks it needs one at a time.
func (b *pgBody) ReadAt(p []byte, off int64) (int, error) {
	n := 0
	for n < len(p) {
		if off+int64(n) >= b.size {
			return n, io.EOF
		}
		b.off = off + int64(n)
		k, err := b.Read(p[n:])
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// Size is the body's length.
func (b *pgBody) Size() int64 { return b.size }

// Close lets the held chunk go.
func (b *pgBody) Close() error {
	b.chunk = nil
	return nil
}

func (b *pgBody) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += b.off
	case io.SeekEnd:
		offset += b.size
	default:
		return 0, errors.New("queue: bad whence")
	}
	if offset < 0 {
		return 0, errors.New("queue: negative offset")
	}
	b.off = offset
	return offset, nil
}

// claim takes up to limit due jobs (recipients pending with next_attempt
// <= now), leaving out the domains in skip, for this node, and returns
// them. One statement: a job claimed by a live node, or locked by
// another node's scan, is passed over; a job whose claim ran out is taken
// over and its recipients made due.
func (s *pgStore) claim(ctx context.Context, now int64, skip []string, limit int) ([]job, error) {
	return s.claimIn(ctx, now, "", skip, limit)
}

// claimIn is claim limited to domain's jobs when domain is not "".
func (s *pgStore) claimIn(ctx context.Context, now int64, domain string, skip []string, limit int) ([]job, error) {
	if skip == nil {
		skip = []string{}
	}
	// A job whose claim ran out was being attempted by a node that died
	// (or lost the database for a whole lease): its recipients are due at
	// once, whatever next attempt time that attempt had saved.
	rows, err := s.pool.Query(ctx, `
		WITH due AS (
			SELECT r.message_id, r.domain FROM queue_recipients r
			WHERE r.state = 'pending' AND NOT (r.domain = ANY($2))
			  AND ($6 = '' OR r.domain = $6)
			  AND (r.next_attempt <= $1 OR EXISTS (SELECT 1 FROM queue_claims c
			      WHERE c.message_id = r.message_id AND c.domain = r.domain AND c.lease_until <= now()))
			  AND NOT EXISTS (SELECT 1 FROM queue_claims c
			      WHERE c.message_id = r.message_id AND c.domain = r.domain AND c.lease_until > now())
			ORDER BY r.next_attempt
			LIMIT $3
			FOR UPDATE OF r SKIP LOCKED
		), claimed AS (
			INSERT INTO queue_claims AS c (message_id, domain, node, lease_until)
			SELECT message_id, domain, $4, now() + $5 * interval '1 microsecond' FROM (
				SELECT message_id, domain, row_number() OVER (PARTITION BY domain ORDER BY message_id) AS n
				FROM (SELECT DISTINCT message_id, domain FROM due) d) per
			WHERE $7 <= 0 OR n <= $7
			ON CONFLICT (message_id, domain) DO UPDATE
				SET node = excluded.node, lease_until = excluded.lease_until
				WHERE c.lease_until <= now()
			RETURNING message_id, domain, NOT (xmax = 0) AS taken_over
		), woken AS (
			UPDATE queue_recipients r SET next_attempt = $1
			FROM claimed c
			WHERE c.taken_over AND r.message_id = c.message_id AND r.domain = c.domain
			  AND r.state = 'pending' AND r.next_attempt > $1
		)
		SELECT message_id, domain FROM claimed`, now, skip, limit, s.node, s.lease.Microseconds(), domain, s.perDomain)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (job, error) {
		var j job
		err := row.Scan(&j.id, &j.domain)
		return j, err
	})
}

// renew extends every lease this node holds. Called every lease/3 by the
// node's scheduler; its success is what leaseValid goes by.
func (s *pgStore) renew(ctx context.Context) (int64, error) {
	start := time.Now()
	tag, err := s.pool.Exec(ctx, `UPDATE queue_claims SET lease_until = now() + $2 * interval '1 microsecond' WHERE node = $1`, s.node, s.lease.Microseconds())
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.renewErr = err
		return 0, err
	}
	s.renewed, s.renewErr = start, nil
	return tag.RowsAffected(), nil
}

// leaseValid reports whether this node's claims are certainly still its
// own for at least margin: the last successful renewal began less than
// lease-margin ago (local clock; the database's lease was set after that
// moment, so it lasts at least as long).
func (s *pgStore) leaseValid(margin time.Duration) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return time.Since(s.renewed) < s.lease-margin
}

// holds reports whether this node holds job j's claim with a lease that
// has not run out.
func (s *pgStore) holds(ctx context.Context, j job) (bool, error) {
	var ok bool
	err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM queue_claims
		WHERE message_id = $1 AND domain = $2 AND node = $3 AND lease_until > now())`, j.id, j.domain, s.node).Scan(&ok)
	return ok, err
}

// release gives up this node's claim on j.
func (s *pgStore) release(ctx context.Context, j job) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM queue_claims WHERE message_id = $1 AND domain = $2 AND node = $3`, j.id, j.domain, s.node)
	return err
}

// startAttempt loads j's due recipients and saves their next attempt
// time, attempts and last attempt, only while this node holds j's claim:
// one statement. No rows: nothing due, or the claim is not ours.
func (s *pgStore) startAttempt(ctx context.Context, j job, now, next int64) ([]attemptRcpt, error) {
	rows, err := s.pool.Query(ctx, `
		UPDATE queue_recipients r SET attempts = r.attempts + 1, next_attempt = $4, last_attempt = $3
		FROM queue_recipients old
		WHERE old.message_id = r.message_id AND old.rcpt = r.rcpt
		  AND r.message_id = $1 AND r.domain = $2 AND r.state = 'pending' AND r.next_attempt <= $3
		  AND EXISTS (SELECT 1 FROM queue_claims c WHERE c.message_id = $1 AND c.domain = $2
		      AND c.node = $5 AND c.lease_until > now())
		RETURNING r.rcpt, old.attempts, old.next_attempt`, j.id, j.domain, now, next, s.node)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (attemptRcpt, error) {
		var r attemptRcpt
		err := row.Scan(&r.rcpt, &r.attempts, &r.next)
		return r, err
	})
}

// record stores results and, when nothing is left to do for the message
// (no pending recipient, no failure to report), deletes it with its body:
// one transaction, sent as one batch. It does not look at the claim: a
// remote's answer is recorded whoever holds it. finished reports the
// deletion.
func (s *pgStore) record(ctx context.Context, id string, results []recordRow) (finished bool, err error) {
	rcpts := make([]string, len(results))
	states := make([]string, len(results))
	replies := make([]string, len(results))
	remotes := make([]string, len(results))
	for i, r := range results {
		rcpts[i], states[i], replies[i], remotes[i] = r.rcpt, r.state, r.reply, r.remote
	}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		b.Queue(`UPDATE queue_recipients r SET state = t.s, reply = t.rp, remote = t.rm
			FROM unnest($2::text[], $3::text[], $4::text[], $5::text[]) AS t(a, s, rp, rm)
			WHERE r.message_id = $1 AND r.rcpt = t.a`, id, rcpts, states, replies, remotes)
		b.Queue(`DELETE FROM queue_messages m WHERE m.id = $1 AND NOT EXISTS (SELECT 1 FROM queue_recipients r
			WHERE r.message_id = $1 AND (r.state = 'pending' OR (r.state = 'failed' AND NOT r.dsn_sent)))`, id)
		br := tx.SendBatch(ctx, b)
		if _, err := br.Exec(); err != nil {
			br.Close()
			return err
		}
		tag, err := br.Exec()
		if err != nil {
			br.Close()
			return err
		}
		finished = tag.RowsAffected() > 0
		return br.Close()
	})
	return finished, err
}

// interrupted puts recipients an attempt did not finish back to the
// next attempt time they had, and counts the attempt as not made.
func (s *pgStore) restore(ctx context.Context, id string, rs []attemptRcpt) error {
	rcpts := make([]string, len(rs))
	nexts := make([]int64, len(rs))
	for i, r := range rs {
		rcpts[i], nexts[i] = r.rcpt, r.next
	}
	_, err := s.pool.Exec(ctx, `UPDATE queue_recipients r SET next_attempt = t.n, attempts = greatest(r.attempts - 1, 0)
		FROM unnest($2::text[], $3::bigint[]) AS t(a, n)
		WHERE r.message_id = $1 AND r.rcpt = t.a AND r.state = 'pending'`, id, rcpts, nexts)
	return err
}

// ids lists the queued messages, oldest first: every node's, since they
// share the tables.
func (s *pgStore) ids(ctx context.Context) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT id FROM queue_messages ORDER BY created, id`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// get returns one message with its recipients, as admin commands show it.
func (s *pgStore) get(ctx context.Context, id string) (Message, error) {
	var m Message
	var created int64
	var kind, dkim string
	err := s.pool.QueryRow(ctx, `SELECT id, sender, size, created, kind, dkim FROM queue_messages WHERE id = $1`, id).
		Scan(&m.ID, &m.From, &m.Size, &created, &kind, &dkim)
	if errors.Is(err, pgx.ErrNoRows) {
		return Message{}, ErrNotFound
	}
	if err != nil {
		return Message{}, err
	}
	m.Created = time.Unix(0, created)
	m.DSN = kind == "dsn"
	m.Signed = dkim != ""
	rows, err := s.pool.Query(ctx, `SELECT rcpt, domain, state, attempts, next_attempt, last_attempt, reply, remote
		FROM queue_recipients WHERE message_id = $1 ORDER BY rcpt`, id)
	if err != nil {
		return Message{}, err
	}
	m.Recipients, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (Recipient, error) {
		var r Recipient
		var next, last int64
		var state string
		err := row.Scan(&r.Addr, &r.Domain, &state, &r.Attempts, &next, &last, &r.Reply, &r.Remote)
		r.State = State(state)
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

// remove deletes a message, its body, recipients and claims.
func (s *pgStore) remove(ctx context.Context, id string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM queue_messages WHERE id = $1`, id)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	return nil
}

// flush makes id's pending recipients (all messages' when id is "") due
// at now.
func (s *pgStore) retry(ctx context.Context, id string, now int64) (int64, error) {
	var tag pgconn.CommandTag
	var err error
	if id == "" {
		tag, err = s.pool.Exec(ctx, `UPDATE queue_recipients SET next_attempt = $1 WHERE state = 'pending'`, now)
	} else {
		tag, err = s.pool.Exec(ctx, `UPDATE queue_recipients SET next_attempt = $1 WHERE state = 'pending' AND message_id = $2`, now, id)
	}
	return tag.RowsAffected(), err
}
