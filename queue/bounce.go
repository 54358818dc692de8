package queue

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"time"

	"github.com/posthouse/posthouse/delivery"
	"github.com/posthouse/posthouse/dsn"
	"github.com/posthouse/posthouse/internal/mailaddr"
)

// ReadHeader returns the header section of a message (up to and without
// the empty line), at most limit bytes, cut at a line boundary. Lines end
// in CRLF.
func ReadHeader(r io.Reader, limit int) []byte {
	br := bufio.NewReaderSize(io.LimitReader(r, int64(limit)), 4096)
	var out bytes.Buffer
	for {
		line, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			// A line longer than the buffer: keep reading it whole.
			full := append([]byte{}, line...)
			for err == bufio.ErrBufferFull {
				line, err = br.ReadSlice('\n')
				full = append(full, line...)
			}
			line = full
		}
		if err != nil {
			// Incomplete last line (EOF or limit): drop it.
			return out.Bytes()
		}
		trimmed := bytes.TrimRight(line, "\r\n")
		if len(trimmed) == 0 {
			return out.Bytes()
		}
		out.Write(trimmed)
		out.WriteString("\r\n")
	}
}

func (q *Queue) readSpoolHeader(id string) []byte {
	f, err := q.st.body(context.Background(), id)
	if err != nil {
		return nil
	}
	defer f.Close()
	return ReadHeader(io.NewSectionReader(f, 0, f.Size()), maxHeaderBytes)
}

// housekeeping sends DSNs for failed recipients, delay warnings, removes
// finished messages and gives queue.sqlite's free space back.
func (q *Queue) housekeeping(ctx context.Context) {
	q.bounce(ctx)
	q.warnDelayed(ctx)
	q.finish(ctx)
	q.reclaimSpace(ctx)
}

// reclaimMin is how much free space queue.sqlite may hold before
// housekeeping gives it back (a variable for tests).
var reclaimMin int64 = 64 << 20

// reclaimSpace gives queue.sqlite's free pages back to the file system
// once they are more than reclaimMin and more than half of the file: the
// bodies of messages kept in their rows free their pages when delivered,
// and after a backlog has drained the file would otherwise keep its
// largest size. VACUUM copies only what is live, so it is quick exactly
// then; Enqueues wait for it.
func (q *Queue) reclaimSpace(ctx context.Context) {
	if q.opts.Postgres != nil {
		return
	}
	var pages, free, size int64
	err := q.db.Read.QueryRowContext(ctx, `SELECT (SELECT page_count FROM pragma_page_count()),
		(SELECT freelist_count FROM pragma_freelist_count()), (SELECT page_size FROM pragma_page_size())`).Scan(&pages, &free, &size)
	if err != nil || free*size < reclaimMin || 2*free < pages {
		return
	}
	start := time.Now()
	if _, err := q.db.Write.ExecContext(ctx, `VACUUM`); err != nil {
		q.log.Warn("queue: give free space back", "err", err)
		return
	}
	q.log.Info("queue: gave free space back", "bytes", free*size, "dur", time.Since(start).Round(time.Millisecond))
}

func (q *Queue) bounce(ctx context.Context) {
	ids, err := q.listIDs(ctx, q.st.failedIDs)
	if err != nil {
		return
	}
	for _, id := range ids {
		q.bounceMessage(ctx, id)
	}
}

// bounceMessage sends one DSN for the failed, unreported recipients of a
// message. bounceMu keeps two workers (two domains of one message) from
// reporting the same failure twice.
func (q *Queue) bounceMessage(ctx context.Context, id string) {
	q.bounceMu.Lock()
	defer q.bounceMu.Unlock()
	// And the claim keeps two nodes from doing it at once.
	done, ok := q.st.claimReport(ctx, id)
	if !ok {
		return
	}
	defer done()
	m, err := q.loadMsg(ctx, id)
	if err != nil {
		return
	}
	rcpts, err := q.st.reportRcpts(ctx, id, false)
	if err != nil || len(rcpts) == 0 {
		return
	}
	var addrs []string
	for _, r := range rcpts {
		addrs = append(addrs, r.Addr)
	}
	if m.from == "" || m.kind == kindDSN {
		// RFC 5321 §4.5.5: never report on a message with a null sender.
		q.log.Warn("not bouncing a message with a null sender", "queueid", id, "rcpts", len(rcpts))
	} else {
		rep := q.newReport(m, dsn.ActionFailed, rcpts)
		if err := q.sendReport(ctx, m.from, rep.Build()); err != nil {
			q.log.Error("queue: DSN", "queueid", id, "err", err)
			return // dsn_sent stays 0: the next sweep tries again
		}
		q.log.Info("DSN sent", "queueid", id, "to", m.from, "rcpts", len(rcpts), "action", dsn.ActionFailed)
	}
	if err := q.st.markReported(ctx, id, addrs); err != nil {
		q.log.Error("queue: DSN", "queueid", id, "err", err)
	}
}

func (q *Queue) warnDelayed(ctx context.Context) {
	if q.opts.DelayWarning < 0 {
		return
	}
	cutoff := q.opts.Now().Add(-q.opts.DelayWarning).UnixNano()
	ids, err := q.listIDs(ctx, func(ctx context.Context) ([]string, error) { return q.st.delayedIDs(ctx, cutoff) })
	if err != nil {
		return
	}
	for _, id := range ids {
		q.warnOne(ctx, id)
	}
}

// warnOne sends message id's delay warning, unless another node is
// reporting on it.
func (q *Queue) warnOne(ctx context.Context, id string) {
	done, ok := q.st.claimReport(ctx, id)
	if !ok {
		return
	}
	defer done()
	// Read after the claim: a node that reported before us has marked it.
	m, err := q.loadMsg(ctx, id)
	if err != nil || m.warned {
		return
	}
	rcpts, err := q.st.reportRcpts(ctx, id, true)
	if err != nil || len(rcpts) == 0 {
		return
	}
	rep := q.newReport(m, dsn.ActionDelayed, rcpts)
	if err := q.sendReport(ctx, m.from, rep.Build()); err != nil {
		q.log.Error("queue: delay DSN", "queueid", id, "err", err)
		return
	}
	q.log.Info("DSN sent", "queueid", id, "to", m.from, "rcpts", len(rcpts), "action", dsn.ActionDelayed)
	if err := q.st.markWarned(ctx, id); err != nil {
		q.log.Error("queue: delay DSN", "queueid", id, "err", err)
	}
}

// finish removes messages with nothing left to do: no pending recipient
// and every failure reported. The row goes first; a crash before the file
// is removed leaves an orphan that Open cleans up.
func (q *Queue) finish(ctx context.Context) {
	ids, err := q.listIDs(ctx, q.st.finishedIDs)
	if err != nil || len(ids) == 0 {
		return
	}
	if err := q.st.finish(ctx, ids); err != nil {
		q.log.Error("queue: finish", "err", err)
		return
	}
	for _, id := range ids {
		q.log.Debug("finished", "queueid", id)
	}
}

// finishMessage removes one message if nothing is left to do for it.
func (q *Queue) finishMessage(ctx context.Context, id string) {
	done, err := q.st.finishOne(ctx, id)
	if err != nil {
		if ctx.Err() == nil {
			q.log.Error("queue: finish", "queueid", id, "err", err)
		}
		return
	}
	if done {
		q.log.Debug("finished", "queueid", id)
	}
}

func (q *Queue) listIDs(ctx context.Context, list func(context.Context) ([]string, error)) ([]string, error) {
	ids, err := list(ctx)
	if err != nil && ctx.Err() == nil {
		q.log.Error("queue: scan", "err", err)
	}
	return ids, err
}

func (q *Queue) newReport(m *msgInfo, action string, rcpts []dsn.Recipient) *dsn.Report {
	return &dsn.Report{
		Hostname:   q.opts.Hostname,
		QueueID:    m.id,
		Sender:     m.from,
		Arrival:    m.created,
		Date:       q.opts.Now(),
		Action:     action,
		RetryUntil: m.created.Add(q.opts.Expiry),
		Recipients: rcpts,
		Header:     q.readSpoolHeader(m.id),
	}
}

// sendReport delivers a DSN to sender: into the mailbox, through the local
// delivery pipeline, when the sender is local; else through the queue with
// a null sender (RFC 3464 §2, RFC 5321 §4.5.5), which itself is never
// bounced.
func (q *Queue) sendReport(ctx context.Context, sender string, msg []byte) error {
	if q.opts.Locals != nil && q.opts.Local != nil {
		domain, ok := mailaddr.Domain(sender)
		if !ok {
			return fmt.Errorf("%w: sender %q", ErrBadAddress, sender)
		}
		local, err := q.opts.Locals.IsLocalDomain(ctx, domain)
		if err != nil {
			return err
		}
		if local {
			return q.sendReportLocally(ctx, sender, msg)
		}
	}
	_, err := q.enqueue(ctx, "", []string{sender}, bytes.NewReader(msg), kindDSN)
	return err
}

// sendReportLocally delivers a DSN to a local sender's accounts and queues
// it for the foreign addresses an alias leads to. A DSN nobody local can
// take (no such sender, a full mailbox, refused by a filter) is dropped
// and logged: a report about a report would only go back to us.
func (q *Queue) sendReportLocally(ctx context.Context, sender string, msg []byte) error {
	out := q.opts.Local.Deliver(ctx, &delivery.Request{
		Envelope: delivery.Envelope{Source: delivery.SourceQueue},
		Rcpts:    []string{sender},
		Body:     io.NewSectionReader(bytes.NewReader(msg), 0, int64(len(msg))),
		Log:      q.log,
	})
	for _, r := range out.Results {
		switch reply := localReply(r.Err); {
		case reply.Code/100 == 2:
		case reply == replyLocalUnknown:
			q.log.Warn("DSN dropped: local sender does not exist", "rcpt", r.Rcpt)
		case reply == replyLocalFull:
			q.log.Warn("DSN dropped: sender's mailbox is full", "user", r.Rcpt)
		case reply.Code/100 == 5:
			q.log.Warn("DSN dropped: refused", "user", r.Rcpt, "reply", reply.Code)
		default:
			return r.Err
		}
	}
	if len(out.Remote) > 0 {
		_, err := q.enqueue(ctx, "", out.Remote, bytes.NewReader(msg), kindDSN)
		return err
	}
	return nil
}

// Bounce sends from, at once, a failure report (DSN) for recipients a
// message was refused for after it had been accepted for others: refused
// holds their results from the delivery pipeline, each with a filter's
// permanent verdict (*delivery.RejectError) or another permanent error.
// Nothing is retried: a filter's refusal stands. id names the message in
// the report; body gives its header. The report is durable (queued, or
// stored for a local sender) when Bounce returns. The null sender gets
// none (RFC 5321 §4.5.5).
func (q *Queue) Bounce(ctx context.Context, from, id string, body io.Reader, refused []delivery.Result) error {
	if from == "" || len(refused) == 0 {
		return nil
	}
	now := q.opts.Now()
	var rcpts []dsn.Recipient
	for _, r := range refused {
		// The report names the addresses the sender used.
		addrs := r.Addresses
		if len(addrs) == 0 {
			addrs = []string{r.Rcpt}
		}
		for _, a := range addrs {
			rcpts = append(rcpts, dsn.Recipient{Addr: a, Reply: localReply(r.Err).String(), LastAttempt: now})
		}
	}
	rep := &dsn.Report{
		Hostname:   q.opts.Hostname,
		QueueID:    id,
		Sender:     from,
		Arrival:    now,
		Date:       now,
		Action:     dsn.ActionFailed,
		Recipients: rcpts,
		Header:     ReadHeader(body, maxHeaderBytes),
	}
	if err := q.sendReport(ctx, from, rep.Build()); err != nil {
		return fmt.Errorf("queue: DSN: %w", err)
	}
	q.log.Info("DSN sent", "msgid", id, "to", from, "rcpts", len(refused), "action", dsn.ActionFailed)
	return nil
}
