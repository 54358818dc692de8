package maildir

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/emersion/go-imap/v2"

	"github.com/posthouse/posthouse/mailstore"
	"github.com/posthouse/posthouse/mailstore/sqlitedb"
)

var errNoRows = sql.ErrNoRows

func validSpecialUse(s string) bool {
	switch s {
	case mailstore.SpecialNone, mailstore.SpecialSent, mailstore.SpecialDrafts, mailstore.SpecialTrash,
		mailstore.SpecialJunk, mailstore.SpecialArchive:
		return true
	}
	return false
}

// childPattern bounds the names under parent: every name starting with
// parent+"/" sorts between parent+"/" and parent+"0" ('0' follows '/').
func childBounds(parent string) (string, string) {
	return parent + "/", parent + "0"
}

func (a *account) createMailbox(ctx context.Context, name, specialUse string) (mailstore.Mailbox, error) {
	name, err := mailstore.ParseMailboxName(name)
	if err != nil {
		return mailstore.Mailbox{}, err
	}
	if !validSpecialUse(specialUse) {
		return mailstore.Mailbox{}, fmt.Errorf("maildir: create %s: special use %q: %w", name, specialUse, mailstore.ErrNotAllowed)
	}
	var mb mailstore.Mailbox
	err = a.write(ctx, func(w *wtx) error {
		if _, err := w.mailboxByName(name); err == nil {
			return fmt.Errorf("%w: %s", mailstore.ErrMailboxExists, name)
		} else if !errors.Is(err, mailstore.ErrNoSuchMailbox) {
			return err
		}
		if err := w.createParents(name); err != nil {
			return err
		}
		mb, err = w.createMailbox(name, specialUse, 0)
		return err
	})
	if err != nil {
		return mailstore.Mailbox{}, fmt.Errorf("maildir: create mailbox: %w", err)
	}
	a.log.Info("mailbox created", "mailbox", name)
	return mb, nil
}

// createParents creates the missing ancestors of name.
func (w *wtx) createParents(name string) error {
	for _, p := range mailstore.ParentNames(name) {
		if _, err := w.mailboxByName(p); err == nil {
			continue
		} else if !errors.Is(err, mailstore.ErrNoSuchMailbox) {
			return err
		}
		if _, err := w.createMailbox(p, mailstore.SpecialNone, 0); err != nil {
			return err
		}
	}
	return nil
}

func (a *account) deleteMailbox(ctx context.Context, name string) error {
	name, err := mailstore.ParseMailboxName(name)
	if err != nil {
		return err
	}
	if name == mailstore.Inbox {
		return fmt.Errorf("maildir: delete INBOX: %w", mailstore.ErrNotAllowed)
	}
	err = a.write(ctx, func(w *wtx) error {
		mb, err := w.mailboxByName(name)
		if err != nil {
			return err
		}
		lo, hi := childBounds(name)
		var n int
		if err := w.QueryRow(`SELECT count(*) FROM mailboxes WHERE name >= ? AND name < ?`, lo, hi).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("%w: %s", mailstore.ErrHasChildren, name)
		}
		a.spares.drop(mb.ID)
		var size int64
		if err := w.QueryRow(`SELECT ifnull(sum(size), 0) FROM messages WHERE mailbox = ?`, mb.ID).Scan(&size); err != nil {
			return err
		}
		if _, err := w.Exec(`DELETE FROM messages WHERE mailbox = ?`, mb.ID); err != nil {
			return err
		}
		// The event carries a modseq above anything a session of the
		// mailbox has seen, so a watcher filtering by modseq keeps it.
		var last uint64
		if err := w.QueryRow(`SELECT highestmodseq FROM mailboxes WHERE id = ?`, mb.ID).Scan(&last); err != nil {
			return err
		}
		if _, err := w.Exec(`DELETE FROM mailboxes WHERE id = ?`, mb.ID); err != nil {
			return err
		}
		if err := w.addTrash(fmt.Sprintf("%s/%d", maildirDir, mb.ID)); err != nil {
			return err
		}
		w.usedDelta -= size
		w.event(mailstore.Event{Kind: mailstore.EventMailboxes, MailboxID: mb.ID, ModSeq: last + 1})
		return nil
	})
	if err != nil {
		return fmt.Errorf("maildir: delete mailbox: %w", err)
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
		return fmt.Errorf("maildir: rename: %w: %s", mailstore.ErrMailboxExists, newName)
	}
	if oldName == mailstore.Inbox {
		// INBOX itself stays, so a new mailbox under it is no loop:
		// RENAME INBOX INBOX/old is how clients archive it.
		return a.renameInbox(ctx, newName)
	}
	if strings.HasPrefix(newName, oldName+string(mailstore.Separator)) {
		return fmt.Errorf("maildir: rename %s into itself: %w", oldName, mailstore.ErrNotAllowed)
	}
	type renamed struct {
		id         int64
		from, to   string
		specialUse string
	}
	var done []renamed
	err = a.write(ctx, func(w *wtx) error {
		done = nil
		mb, err := w.mailboxByName(oldName)
		if err != nil {
			return err
		}
		if _, err := w.mailboxByName(newName); err == nil {
			return fmt.Errorf("%w: %s", mailstore.ErrMailboxExists, newName)
		} else if !errors.Is(err, mailstore.ErrNoSuchMailbox) {
			return err
		}
		done = append(done, renamed{mb.ID, oldName, newName, mb.SpecialUse})
		lo, hi := childBounds(oldName)
		rows, err := w.Query(`SELECT id, name, special_use FROM mailboxes WHERE name >= ? AND name < ? ORDER BY name`, lo, hi)
		err = sqlitedb.Each(rows, err, func(row sqlitedb.Scanner) error {
			var r renamed
			if err := row.Scan(&r.id, &r.from, &r.specialUse); err != nil {
				return err
			}
			r.to = newName + r.from[len(oldName):]
			done = append(done, r)
			return nil
		})
		if err != nil {
			return err
		}
		for _, r := range done {
			if len(r.to) > mailstore.MaxMailboxName || strings.Count(r.to, string(mailstore.Separator)) >= mailstore.MaxMailboxLevels {
				return fmt.Errorf("%w: %s would become too long", mailstore.ErrBadMailboxName, r.from)
			}
			if _, err := w.mailboxByName(r.to); err == nil {
				return fmt.Errorf("%w: %s", mailstore.ErrMailboxExists, r.to)
			}
		}
		for _, r := range done {
			if _, err := w.Exec(`UPDATE mailboxes SET name = ? WHERE id = ?`, r.to, r.id); err != nil {
				return err
			}
			// Subscriptions follow the mailbox.
			if _, err := w.Exec(`UPDATE OR REPLACE subscriptions SET name = ? WHERE name = ?`, r.to, r.from); err != nil {
				return err
			}
			m, err := w.bump(r.id)
			if err != nil {
				return err
			}
			w.event(mailstore.Event{Kind: mailstore.EventMailboxes, MailboxID: r.id, ModSeq: m})
		}
		return w.createParents(newName)
	})
	if err != nil {
		return fmt.Errorf("maildir: rename mailbox: %w", err)
	}
	for _, r := range done {
		a.writeMailboxMeta(r.id, r.to, r.specialUse, 0)
	}
	a.log.Info("mailbox renamed", "mailbox", oldName, "to", newName, "count", len(done))
	return nil
}

// renameInbox implements RFC 9051 §6.3.6 for INBOX: its messages move to a
// new mailbox and INBOX stays, empty; INBOX's children are not renamed. The
// create and the move are two steps: a failure of the move removes the new
// mailbox, and a delivery in between simply stays in INBOX.
func (a *account) renameInbox(ctx context.Context, newName string) error {
	mb, err := a.createMailbox(ctx, newName, mailstore.SpecialNone)
	if err != nil {
		return err
	}
	var inbox mailstore.Mailbox
	if err := a.readTx(ctx, func(r *rtx) error {
		var err error
		inbox, err = r.mailboxByName(mailstore.Inbox)
		return err
	}); err != nil {
		return fmt.Errorf("maildir: rename INBOX: %w", err)
	}
	all := imap.UIDSet{imap.UIDRange{Start: 1, Stop: 0}}
	if _, err := a.copyMessages(ctx, inbox.ID, all, mb.Name, true); err != nil {
		if derr := a.deleteMailbox(context.WithoutCancel(ctx), mb.Name); derr != nil {
			a.log.Error("undo create after failed INBOX rename", "mailbox", mb.Name, "err", derr)
		}
		return fmt.Errorf("maildir: rename INBOX: %w", err)
	}
	return nil
}

func (a *account) setSubscribed(ctx context.Context, name string, subscribed bool) error {
	name, err := mailstore.ParseMailboxName(name)
	if err != nil {
		return err
	}
	err = a.write(ctx, func(w *wtx) error {
		var res sql.Result
		var err error
		if subscribed {
			res, err = w.Exec(`INSERT OR IGNORE INTO subscriptions (name) VALUES (?)`, name)
		} else {
			res, err = w.Exec(`DELETE FROM subscriptions WHERE name = ?`, name)
		}
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil
		}
		// A subscription does not change the mailbox's messages: the
		// event carries its current modseq, without a bump.
		var id int64
		var ms uint64
		err = w.QueryRow(`SELECT id, highestmodseq FROM mailboxes WHERE name = ?`, name).Scan(&id, &ms)
		if err == nil {
			w.event(mailstore.Event{Kind: mailstore.EventMailboxes, MailboxID: id, ModSeq: ms})
		} else if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("maildir: subscribe: %w", err)
	}
	return nil
}
