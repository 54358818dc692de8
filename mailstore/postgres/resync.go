package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/emersion/go-imap/v2"
	"github.com/jackc/pgx/v5"

	"github.com/posthouse/posthouse/mailstore"
)

// Catching up after the LISTEN connection was lost. Notifications sent
// while it was down never come, so once it listens again each open
// account reads, for every mailbox its watchers know (one it published
// events of, or took a snapshot of), what changed after the last modseq
// it published: rows with a higher modseq (an append if the UID is above
// any it knew, otherwise a flag change) and expunged ranges with a higher
// modseq. The reads are one REPEATABLE READ transaction, a consistent
// state; the events are published as one batch under the sequencer's
// lock, which then records each mailbox's modseq as published and as the
// floor: a notification, or a local publish, of a change at or below it
// arrived after the read and is dropped (watchers had it). Mailboxes
// created, renamed or deleted meanwhile send no event; sessions find out
// at their next command, as with any change to a mailbox they do not
// have open.

// catchUp brings every open account's watchers up to date.
func (s *Store) catchUp(ctx context.Context) error {
	s.mu.Lock()
	accounts := make([]*account, 0, len(s.byID))
	for _, a := range s.byID {
		accounts = append(accounts, a)
	}
	s.mu.Unlock()
	var errs []error
	for _, a := range accounts {
		if err := a.catchUp(ctx); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", a.name, err))
		}
	}
	return errors.Join(errs...)
}

// expungedRange is a row of mail_expunged.
type expungedRange struct {
	mailbox int64
	modseq  uint64
	lo, hi  imap.UID
}

// knownUID is the highest UID of the mailbox this process's watchers may
// know. The caller holds mu.
func (sq *sequencer) knownUID(mailbox int64) imap.UID {
	known := sq.lastUID[mailbox]
	if b, ok := sq.base[mailbox]; ok && b.uid > known {
		known = b.uid
	}
	return known
}

// catchUpRow is one message changed after the account's last event.
type catchUpRow struct {
	mailbox  int64
	uid      imap.UID
	modseq   uint64
	flags    int64
	keywords *string
}

// catchUp reads what changed in the mailboxes the account's watchers know
// and publishes it.
func (a *account) catchUp(ctx context.Context) error {
	// Also without watchers: the modseqs it records spare the next
	// event a wait for changes that will never be notified.
	if a.gone.Load() {
		return nil
	}
	sq := &a.seq
	sq.mu.Lock()
	sq.init()
	var ids []int64
	var since []int64
	for mb, m := range sq.last {
		ids = append(ids, mb)
		since = append(since, int64(m))
	}
	for mb, b := range sq.base {
		if _, ok := sq.last[mb]; !ok {
			ids = append(ids, mb)
			since = append(since, int64(b.modseq))
		}
	}
	sq.mu.Unlock()
	if len(ids) == 0 {
		return nil
	}

	var (
		rows    []catchUpRow
		gone    []expungedRange
		highest = map[int64]uint64{}
	)
	err := pgx.BeginTxFunc(ctx, a.s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		r, err := tx.Query(ctx, `SELECT id, highestmodseq FROM mail_mailboxes WHERE account = $1 AND id = ANY($2)`, a.id, ids)
		if err != nil {
			return err
		}
		for r.Next() {
			var id, m int64
			if err := r.Scan(&id, &m); err != nil {
				r.Close()
				return err
			}
			highest[id] = uint64(m)
		}
		if err := r.Err(); err != nil {
			return err
		}
		r, err = tx.Query(ctx, `SELECT m.mailbox, m.uid, m.modseq, m.flags, m.keywords
			FROM unnest($1::bigint[], $2::bigint[]) AS b(id, since)
			JOIN mail_messages m ON m.mailbox = b.id AND m.modseq > b.since
			ORDER BY m.mailbox, m.uid`, ids, since)
		if err != nil {
			return err
		}
		for r.Next() {
			var row catchUpRow
			var uid, modseq int64
			if err := r.Scan(&row.mailbox, &uid, &modseq, &row.flags, &row.keywords); err != nil {
				r.Close()
				return err
			}
			row.uid, row.modseq = imap.UID(uid), uint64(modseq)
			rows = append(rows, row)
		}
		if err := r.Err(); err != nil {
			return err
		}
		r, err = tx.Query(ctx, `SELECT x.mailbox, x.modseq, x.uid_lo, x.uid_hi
			FROM unnest($1::bigint[], $2::bigint[]) AS b(id, since)
			JOIN mail_expunged x ON x.mailbox = b.id AND x.modseq > b.since
			ORDER BY x.mailbox, x.modseq, x.uid_lo`, ids, since)
		if err != nil {
			return err
		}
		for r.Next() {
			var mb, m, lo, hi int64
			if err := r.Scan(&mb, &m, &lo, &hi); err != nil {
				r.Close()
				return err
			}
			gone = append(gone, expungedRange{mb, uint64(m), imap.UID(lo), imap.UID(hi)})
		}
		return r.Err()
	})
	if err != nil {
		return fmt.Errorf("postgres: catch up: %w", err)
	}

	sq.mu.Lock()
	defer sq.mu.Unlock()
	var events []mailstore.Event
	for _, x := range gone {
		if hasKey(sq.last, x.mailbox) && x.modseq <= sq.last[x.mailbox] {
			continue
		}
		// Only UIDs watchers could know: ranges may name UIDs never
		// assigned, and one appended and expunged while the
		// connection was down was never seen.
		hi := min(x.hi, sq.knownUID(x.mailbox))
		for u := x.lo; u <= hi && u != 0; u++ {
			events = append(events, mailstore.Event{Kind: mailstore.EventExpunge, MailboxID: x.mailbox, UID: u, ModSeq: x.modseq})
		}
	}
	for _, r := range rows {
		if hasKey(sq.last, r.mailbox) && r.modseq <= sq.last[r.mailbox] {
			continue // published since the read began
		}
		known := sq.knownUID(r.mailbox)
		kw := ""
		if r.keywords != nil {
			kw = *r.keywords
		}
		kind := mailstore.EventFlags
		if r.uid > known {
			kind = mailstore.EventAppend
		}
		events = append(events, mailstore.Event{Kind: kind, MailboxID: r.mailbox, UID: r.uid, ModSeq: r.modseq, Flags: flagList(r.flags, kw)})
	}
	// Per mailbox: expunges, then the rest in UID order (appends only
	// grow the UID list). Their modseqs are the rows', so a session
	// whose snapshot is newer drops them, as with any event.
	slices.SortStableFunc(events, func(x, y mailstore.Event) int {
		if x.MailboxID != y.MailboxID {
			return cmp.Compare(x.MailboxID, y.MailboxID)
		}
		if (x.Kind == mailstore.EventExpunge) != (y.Kind == mailstore.EventExpunge) {
			if x.Kind == mailstore.EventExpunge {
				return -1
			}
			return 1
		}
		return 0
	})
	for mb, m := range highest {
		if m > sq.floor[mb] {
			sq.floor[mb] = m
		}
	}
	// A deleted mailbox has no row: nothing more will come for it.
	for _, mb := range ids {
		if _, ok := highest[mb]; !ok {
			delete(sq.base, mb)
		}
	}
	a.deliverUnfilteredLocked(events)
	for mb, m := range highest {
		if m > sq.last[mb] {
			sq.last[mb] = m
		}
	}
	if len(events) > 0 {
		a.log.Info("mailstore listen: caught up", "events", len(events))
	}
	return nil
}

// deliverUnfilteredLocked calls the watchers with a catch-up's events,
// which lie at or below the floor just set. The caller holds seq.mu.
func (a *account) deliverUnfilteredLocked(events []mailstore.Event) {
	sq := &a.seq
	if ws := a.watchers.Load(); ws != nil {
		for _, e := range events {
			for _, w := range *ws {
				w.fn(e)
			}
		}
	}
	for _, e := range events {
		if e.Kind == mailstore.EventAppend && e.UID > sq.lastUID[e.MailboxID] {
			sq.lastUID[e.MailboxID] = e.UID
		}
	}
	close(sq.changed)
	sq.changed = make(chan struct{})
}

func hasKey[K comparable, V any](m map[K]V, k K) bool {
	_, ok := m[k]
	return ok
}
