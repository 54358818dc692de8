package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/emersion/go-imap/v2"
	"github.com/jackc/pgx/v5"

	"github.com/posthouse/posthouse/mailstore"
)

// atomicStops collects a handle's watch stops, so Close ends them.
type atomicStops struct {
	mu    sync.Mutex
	stops []func()
}

func (s *atomicStops) add(f func()) {
	s.mu.Lock()
	s.stops = append(s.stops, f)
	s.mu.Unlock()
}

func (s *atomicStops) stopAll() {
	s.mu.Lock()
	stops := s.stops
	s.stops = nil
	s.mu.Unlock()
	for _, f := range stops {
		f()
	}
}

func validSpecialUse(s string) bool {
	switch s {
	case mailstore.SpecialNone, mailstore.SpecialSent, mailstore.SpecialDrafts, mailstore.SpecialTrash,
		mailstore.SpecialJunk, mailstore.SpecialArchive:
		return true
	}
	return false
}

// childBounds bounds the names under parent: every name starting with
// parent+"/" sorts between parent+"/" and parent+"0" ('0' follows '/').
func childBounds(parent string) (string, string) {
	return parent + "/", parent + "0"
}

const mailboxCols = `b.id, b.name, b.special_use, b.uidvalidity,
	EXISTS (SELECT 1 FROM mail_subscriptions s WHERE s.account = b.account AND s.name = b.name)`

func scanMailbox(row pgx.Row) (mailstore.Mailbox, error) {
	var mb mailstore.Mailbox
	var uv int64
	err := row.Scan(&mb.ID, &mb.Name, &mb.SpecialUse, &uv, &mb.Subscribed)
	mb.UIDValidity = uint32(uv)
	return mb, err
}

type queryer interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// mailboxByName looks a canonical name up.
func (a *account) mailboxByName(ctx context.Context, q queryer, name string) (mailstore.Mailbox, error) {
	mb, err := scanMailbox(q.QueryRow(ctx, `SELECT `+mailboxCols+` FROM mail_mailboxes b WHERE b.account = $1 AND b.name = $2`, a.id, name))
	if errors.Is(err, pgx.ErrNoRows) {
		return mb, fmt.Errorf("%w: %s", mailstore.ErrNoSuchMailbox, name)
	}
	return mb, err
}

func (a *account) listMailboxes(ctx context.Context) ([]mailstore.Mailbox, error) {
	rows, err := a.s.pool.Query(ctx, `SELECT `+mailboxCols+` FROM mail_mailboxes b WHERE b.account = $1 ORDER BY b.name`, a.id)
	if err != nil {
		return nil, a.wrapErr(fmt.Errorf("postgres: list mailboxes: %w", err))
	}
	mbs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (mailstore.Mailbox, error) { return scanMailbox(r) })
	if err != nil {
		return nil, a.wrapErr(fmt.Errorf("postgres: list mailboxes: %w", err))
	}
	return mbs, nil
}

func (a *account) mailbox(ctx context.Context, name string) (mailstore.Mailbox, error) {
	name, err := mailstore.ParseMailboxName(name)
	if err != nil {
		return mailstore.Mailbox{}, err
	}
	mb, err := a.mailboxByName(ctx, a.s.pool, name)
	if err != nil {
		return mb, a.wrapErr(fmt.Errorf("postgres: mailbox: %w", err))
	}
	return mb, nil
}

// createMailbox inserts a mailbox row with a new UIDVALIDITY: the current
// time in seconds, or one more than the account's last if that is not
// greater, so a name created again never gets a UIDVALIDITY it had.
func (w *wtx) createMailbox(name, specialUse string) (mailstore.Mailbox, error) {
	var id, uv int64
	err := w.QueryRow(w.ctx, `WITH a AS (
			UPDATE mail_accounts SET uidvalidity = greatest(uidvalidity + 1, extract(epoch FROM now())::bigint)
			WHERE id = $1 RETURNING uidvalidity)
		INSERT INTO mail_mailboxes (account, name, special_use, uidvalidity)
		SELECT $1, $2, $3, a.uidvalidity FROM a
		ON CONFLICT (account, name) DO NOTHING RETURNING id, uidvalidity`, w.a.id, name, specialUse).Scan(&id, &uv)
	if errors.Is(err, pgx.ErrNoRows) {
		return mailstore.Mailbox{}, fmt.Errorf("%w: %s", mailstore.ErrMailboxExists, name)
	}
	if err != nil {
		return mailstore.Mailbox{}, err
	}
	// A new mailbox starts at modseq 1; its creation is that modseq.
	w.setModSeq(id, 1)
	w.event(mailstore.Event{Kind: mailstore.EventMailboxes, MailboxID: id, ModSeq: 1})
	return mailstore.Mailbox{ID: id, Name: name, SpecialUse: specialUse, UIDValidity: uint32(uv)}, nil
}

// createParents creates the missing ancestors of name.
func (w *wtx) createParents(name string) error {
	for _, p := range mailstore.ParentNames(name) {
		var exists bool
		if err := w.QueryRow(w.ctx, `SELECT EXISTS (SELECT 1 FROM mail_mailboxes WHERE account = $1 AND name = $2)`, w.a.id, p).Scan(&exists); err != nil {
			return err
		}
		if exists {
			continue
		}
		if _, err := w.createMailbox(p, mailstore.SpecialNone); err != nil {
			return err
		}
	}
	return nil
}

func (a *account) createMailbox(ctx context.Context, name, specialUse string) (mailstore.Mailbox, error) {
	name, err := mailstore.ParseMailboxName(name)
	if err != nil {
		return mailstore.Mailbox{}, err
	}
	if !validSpecialUse(specialUse) {
		return mailstore.Mailbox{}, fmt.Errorf("postgres: create %s: special use %q: %w", name, specialUse, mailstore.ErrNotAllowed)
	}
	var mb mailstore.Mailbox
	err = a.write(ctx, func(w *wtx) error {
		if err := w.createParents(name); err != nil {
			return err
		}
		mb, err = w.createMailbox(name, specialUse)
		return err
	})
	if err != nil {
		return mailstore.Mailbox{}, fmt.Errorf("postgres: create mailbox: %w", err)
	}
	var sub bool
	if err := a.s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM mail_subscriptions WHERE account = $1 AND name = $2)`, a.id, name).Scan(&sub); err == nil {
		mb.Subscribed = sub
	}
	a.log.Info("mailbox created", "mailbox", name)
	return mb, nil
}

func (a *account) deleteMailbox(ctx context.Context, name string) error {
	name, err := mailstore.ParseMailboxName(name)
	if err != nil {
		return err
	}
	if name == mailstore.Inbox {
		return fmt.Errorf("postgres: delete INBOX: %w", mailstore.ErrNotAllowed)
	}
	err = a.write(ctx, func(w *wtx) error {
		var id int64
		var last uint64
		err := w.QueryRow(ctx, `SELECT id, highestmodseq FROM mail_mailboxes WHERE account = $1 AND name = $2 FOR UPDATE`, a.id, name).Scan(&id, &last)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%w: %s", mailstore.ErrNoSuchMailbox, name)
		}
		if err != nil {
			return err
		}
		lo, hi := childBounds(name)
		var children bool
		if err := w.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM mail_mailboxes WHERE account = $1 AND name >= $2 AND name < $3)`, a.id, lo, hi).Scan(&children); err != nil {
			return err
		}
		if children {
			return fmt.Errorf("%w: %s", mailstore.ErrHasChildren, name)
		}
		var size, n int64
		rows, err := w.Query(ctx, `DELETE FROM mail_messages WHERE mailbox = $1 RETURNING body, size`, id)
		if err != nil {
			return err
		}
		for rows.Next() {
			var body, sz int64
			if err := rows.Scan(&body, &sz); err != nil {
				rows.Close()
				return err
			}
			w.bodies = append(w.bodies, body)
			size += sz
			n++
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if _, err := w.Exec(ctx, `DELETE FROM mail_mailboxes WHERE id = $1`, id); err != nil {
			return err
		}
		if n > 0 {
			if err := w.addUsage(-size, -n, 0, 0); err != nil {
				return err
			}
		}
		// The event carries a modseq above anything a session of the
		// mailbox has seen, so a watcher filtering by modseq keeps it.
		w.event(mailstore.Event{Kind: mailstore.EventMailboxes, MailboxID: id, ModSeq: last + 1})
		return nil
	})
	if err != nil {
		return fmt.Errorf("postgres: delete mailbox: %w", err)
	}
	a.log.Info("mailbox deleted", "mailbox", name)
	return nil
}

func (a *account) renameMailbox(ctx context.Context, oldName, newName string) error {
	oldName, err := mailstore.ParseMailboxName(oldName)
	if err != nil {
		return err
	}
	newName, err = mailstore.ParseMailboxName(newName)
	if err != nil {
		return err
	}
	if oldName == newName {
		return fmt.Errorf("postgres: rename: %w: %s", mailstore.ErrMailboxExists, newName)
	}
	if oldName == mailstore.Inbox {
		return a.renameInbox(ctx, newName)
	}
	if strings.HasPrefix(newName, oldName+string(mailstore.Separator)) {
		return fmt.Errorf("postgres: rename %s into itself: %w", oldName, mailstore.ErrNotAllowed)
	}
	type renamed struct {
		id       int64
		from, to string
	}
	err = a.write(ctx, func(w *wtx) error {
		var done []renamed
		lo, hi := childBounds(oldName)
		rows, err := w.Query(ctx, `SELECT id, name FROM mail_mailboxes WHERE account = $1 AND (name = $2 OR (name >= $3 AND name < $4))
			ORDER BY name FOR UPDATE`, a.id, oldName, lo, hi)
		if err != nil {
			return err
		}
		for rows.Next() {
			var r renamed
			if err := rows.Scan(&r.id, &r.from); err != nil {
				rows.Close()
				return err
			}
			r.to = newName + r.from[len(oldName):]
			done = append(done, r)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if len(done) == 0 || done[0].from != oldName {
			return fmt.Errorf("%w: %s", mailstore.ErrNoSuchMailbox, oldName)
		}
		var ids []int64
		var froms, tos []string
		for _, r := range done {
			if len(r.to) > mailstore.MaxMailboxName || strings.Count(r.to, string(mailstore.Separator)) >= mailstore.MaxMailboxLevels {
				return fmt.Errorf("%w: %s would become too long", mailstore.ErrBadMailboxName, r.from)
			}
			ids, froms, tos = append(ids, r.id), append(froms, r.from), append(tos, r.to)
		}
		var clash string
		err = w.QueryRow(ctx, `SELECT name FROM mail_mailboxes WHERE account = $1 AND name = ANY($2) LIMIT 1`, a.id, tos).Scan(&clash)
		if err == nil {
			return fmt.Errorf("%w: %s", mailstore.ErrMailboxExists, clash)
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		// One statement renames them all: no new name exists, so the
		// unique (account, name) holds after every row.
		rows, err = w.Query(ctx, `UPDATE mail_mailboxes b SET name = x.t, highestmodseq = b.highestmodseq + 1
			FROM unnest($2::bigint[], $3::text[]) AS x(id, t)
			WHERE b.account = $1 AND b.id = x.id RETURNING b.id, b.highestmodseq`, a.id, ids, tos)
		if err != nil {
			return err
		}
		modseqs := map[int64]uint64{}
		for rows.Next() {
			var id int64
			var m uint64
			if err := rows.Scan(&id, &m); err != nil {
				rows.Close()
				return err
			}
			modseqs[id] = m
		}
		if err := rows.Err(); err != nil {
			return err
		}
		// Subscriptions follow the mailboxes; one to the new name that
		// already exists stays as it is.
		if _, err := w.Exec(ctx, `DELETE FROM mail_subscriptions s USING unnest($2::text[], $3::text[]) AS x(f, t)
			WHERE s.account = $1 AND s.name = x.t AND EXISTS (SELECT 1 FROM mail_subscriptions o WHERE o.account = $1 AND o.name = x.f)`,
			a.id, froms, tos); err != nil {
			return err
		}
		if _, err := w.Exec(ctx, `UPDATE mail_subscriptions s SET name = x.t FROM unnest($2::text[], $3::text[]) AS x(f, t)
			WHERE s.account = $1 AND s.name = x.f`, a.id, froms, tos); err != nil {
			return err
		}
		for _, r := range done {
			w.setModSeq(r.id, modseqs[r.id])
			w.event(mailstore.Event{Kind: mailstore.EventMailboxes, MailboxID: r.id, ModSeq: modseqs[r.id]})
		}
		return w.createParents(newName)
	})
	if err != nil {
		return fmt.Errorf("postgres: rename mailbox: %w", err)
	}
	a.log.Info("mailbox renamed", "mailbox", oldName, "to", newName)
	return nil
}

// renameInbox implements RFC 9051 §6.3.6 for INBOX: its messages move to a
// new mailbox and INBOX stays, empty, with its children where they are.
// The create and the move are two transactions: a failure of the move
// removes the new mailbox, and a delivery in between simply stays in INBOX.
func (a *account) renameInbox(ctx context.Context, newName string) error {
	mb, err := a.createMailbox(ctx, newName, mailstore.SpecialNone)
	if err != nil {
		return err
	}
	inbox, err := a.mailboxByName(ctx, a.s.pool, mailstore.Inbox)
	if err != nil {
		return a.wrapErr(fmt.Errorf("postgres: rename INBOX: %w", err))
	}
	all := imap.UIDSet{imap.UIDRange{Start: 1, Stop: 0}}
	if _, err := a.copyMessages(ctx, inbox.ID, all, mb.Name, true); err != nil {
		if derr := a.deleteMailbox(context.WithoutCancel(ctx), mb.Name); derr != nil {
			a.log.Error("undo create after failed INBOX rename", "mailbox", mb.Name, "err", derr)
		}
		return fmt.Errorf("postgres: rename INBOX: %w", err)
	}
	return nil
}

func (a *account) setSubscribed(ctx context.Context, name string, subscribed bool) error {
	name, err := mailstore.ParseMailboxName(name)
	if err != nil {
		return err
	}
	err = a.write(ctx, func(w *wtx) error {
		var q string
		if subscribed {
			q = `INSERT INTO mail_subscriptions (account, name) VALUES ($1, $2) ON CONFLICT DO NOTHING`
		} else {
			q = `DELETE FROM mail_subscriptions WHERE account = $1 AND name = $2`
		}
		tag, err := w.Exec(ctx, q, a.id, name)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return nil
		}
		// A subscription does not change the mailbox's messages: the
		// event carries its current modseq, without a bump.
		var id int64
		var ms uint64
		err = w.QueryRow(ctx, `SELECT id, highestmodseq FROM mail_mailboxes WHERE account = $1 AND name = $2`, a.id, name).Scan(&id, &ms)
		if err == nil {
			w.event(mailstore.Event{Kind: mailstore.EventMailboxes, MailboxID: id, ModSeq: ms})
		} else if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("postgres: subscribe: %w", err)
	}
	return nil
}

func (a *account) subscriptions(ctx context.Context) ([]string, error) {
	rows, err := a.s.pool.Query(ctx, `SELECT name FROM mail_subscriptions WHERE account = $1 ORDER BY name`, a.id)
	if err != nil {
		return nil, a.wrapErr(fmt.Errorf("postgres: subscriptions: %w", err))
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, a.wrapErr(fmt.Errorf("postgres: subscriptions: %w", err))
	}
	if names == nil {
		names = []string{}
	}
	return names, nil
}
