package maildir

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/emersion/go-imap/v2"

	"github.com/posthouse/posthouse/mailstore"
	"github.com/posthouse/posthouse/mailstore/sqlitedb"
)

// handle is one opened mailstore.Account. Handles on one account share its
// state; closing a handle stops its watches.
type handle struct {
	a      *account
	closed atomic.Bool

	mu    sync.Mutex
	stops map[*func()]struct{}

	files fileWindow // OpenMessage's look-ahead (openahead.go)
}

var _ mailstore.Account = (*handle)(nil)

func newHandle(a *account) *handle {
	return &handle{a: a, stops: make(map[*func()]struct{})}
}

func (h *handle) check() error {
	if h.closed.Load() || h.a.gone.Load() {
		return mailstore.ErrClosed
	}
	return nil
}

// Name implements mailstore.Account.
func (h *handle) Name() string { return h.a.name }

// Close implements mailstore.Account.
func (h *handle) Close() error {
	if h.closed.Swap(true) {
		return mailstore.ErrClosed
	}
	h.mu.Lock()
	stops := h.stops
	h.stops = nil
	h.mu.Unlock()
	for stop := range stops {
		(*stop)()
	}
	h.a.store.release(h.a)
	return nil
}

// Watch implements mailstore.Account.
func (h *handle) Watch(fn func(mailstore.Event)) func() {
	if h.check() != nil {
		return func() {}
	}
	stop := h.a.addWatcher(fn)
	key := &stop
	h.mu.Lock()
	if h.stops == nil { // closed meanwhile
		h.mu.Unlock()
		stop()
		return func() {}
	}
	h.stops[key] = struct{}{}
	h.mu.Unlock()
	return func() {
		stop()
		h.mu.Lock()
		delete(h.stops, key)
		h.mu.Unlock()
	}
}

// LockMaildrop implements mailstore.Account.
func (h *handle) LockMaildrop(ctx context.Context) (func(), error) {
	if err := h.check(); err != nil {
		return nil, err
	}
	return h.a.lockMaildrop()
}

// Usage implements mailstore.Account.
func (h *handle) Usage(ctx context.Context) (int64, int64, error) {
	if err := h.check(); err != nil {
		return 0, 0, err
	}
	limit, err := h.a.quota(ctx)
	if err != nil {
		return 0, 0, err
	}
	return h.a.used.Load(), limit, nil
}

// MessageUsage implements mailstore.Account.
func (h *handle) MessageUsage(ctx context.Context) (int64, int64, error) {
	if err := h.check(); err != nil {
		return 0, 0, err
	}
	limit, err := h.a.messageQuota(ctx)
	if err != nil {
		return 0, 0, err
	}
	var n int64
	err = h.a.readTx(ctx, func(r *rtx) error {
		var err error
		n, err = countMessages(r.queryRow)
		return err
	})
	if err != nil {
		return 0, 0, fmt.Errorf("maildir: message usage: %w", err)
	}
	return n, limit, nil
}

// countMessages counts the account's messages from the per-mailbox
// counters (one row per mailbox).
func countMessages(queryRow func(q string, args ...any) *sql.Row) (int64, error) {
	var n int64
	err := queryRow(`SELECT ifnull(sum(msgs), 0) FROM mailboxes`).Scan(&n)
	return n, err
}

// messageQuota asks Options.MessageQuota; 0 means unlimited.
func (a *account) messageQuota(ctx context.Context) (int64, error) {
	if a.store.opts.MessageQuota == nil {
		return 0, nil
	}
	q, err := a.store.opts.MessageQuota(ctx, a.name)
	if err != nil {
		return 0, fmt.Errorf("maildir: message quota of %s: %w", a.name, err)
	}
	return max(q, 0), nil
}

// quota asks Options.Quota; 0 means unlimited.
func (a *account) quota(ctx context.Context) (int64, error) {
	if a.store.opts.Quota == nil {
		return 0, nil
	}
	q, err := a.store.opts.Quota(ctx, a.name)
	if err != nil {
		return 0, fmt.Errorf("maildir: quota of %s: %w", a.name, err)
	}
	if q < 0 {
		q = 0
	}
	return q, nil
}

// Snapshot implements mailstore.Account.
func (h *handle) Snapshot(ctx context.Context, mailboxID int64) (mailstore.Snapshot, error) {
	if err := h.check(); err != nil {
		return mailstore.Snapshot{}, err
	}
	return h.a.snapshot(ctx, mailboxID)
}

// Fetch implements mailstore.Account.
func (h *handle) Fetch(ctx context.Context, mailboxID int64, uids imap.UIDSet, opts mailstore.FetchOptions) ([]mailstore.MessageInfo, error) {
	if err := h.check(); err != nil {
		return nil, err
	}
	return h.a.fetch(ctx, mailboxID, uids, opts)
}

// OpenMessage implements mailstore.Account.
func (h *handle) Expunged(ctx context.Context, mailboxID int64, modseq uint64) (imap.UIDSet, error) {
	if err := h.check(); err != nil {
		return nil, err
	}
	return h.a.expunged(ctx, mailboxID, modseq)
}

func (h *handle) OpenMessage(ctx context.Context, mailboxID int64, uid imap.UID) (io.ReadSeekCloser, int64, error) {
	if err := h.check(); err != nil {
		return nil, 0, err
	}
	return h.openMessage(ctx, mailboxID, uid)
}

// Search implements mailstore.Account.
func (h *handle) Search(ctx context.Context, mailboxID int64, criteria *imap.SearchCriteria) ([]imap.UID, error) {
	if err := h.check(); err != nil {
		return nil, err
	}
	return h.a.search(ctx, mailboxID, criteria)
}

// StoreFlags implements mailstore.Account.
func (h *handle) StoreFlags(ctx context.Context, mailboxID int64, uids imap.UIDSet, op mailstore.FlagOp, flags []imap.Flag, unchangedSince uint64) (mailstore.StoreResult, error) {
	if err := h.check(); err != nil {
		return mailstore.StoreResult{}, err
	}
	var fop flagOp
	switch op {
	case mailstore.FlagsAdd:
		fop = opAdd
	case mailstore.FlagsRemove:
		fop = opRemove
	case mailstore.FlagsSet:
		fop = opSet
	default:
		return mailstore.StoreResult{}, fmt.Errorf("maildir: unknown flag operation %d", op)
	}
	return h.a.storeFlags(ctx, mailboxID, uids, fop, parseFlags(flags), unchangedSince)
}

// Expunge implements mailstore.Account.
func (h *handle) Expunge(ctx context.Context, mailboxID int64, uids *imap.UIDSet) ([]imap.UID, error) {
	if err := h.check(); err != nil {
		return nil, err
	}
	return h.a.expunge(ctx, mailboxID, uids)
}

// Copy implements mailstore.Account.
func (h *handle) Copy(ctx context.Context, mailboxID int64, uids imap.UIDSet, dest string) (mailstore.CopyResult, error) {
	if err := h.check(); err != nil {
		return mailstore.CopyResult{}, err
	}
	return h.a.copyMessages(ctx, mailboxID, uids, dest, false)
}

// Move implements mailstore.Account.
func (h *handle) Move(ctx context.Context, mailboxID int64, uids imap.UIDSet, dest string) (mailstore.CopyResult, error) {
	if err := h.check(); err != nil {
		return mailstore.CopyResult{}, err
	}
	return h.a.copyMessages(ctx, mailboxID, uids, dest, true)
}

// Append implements mailstore.Account.
func (h *handle) Append(ctx context.Context, mailbox string, r io.Reader, opts mailstore.AppendOptions) (mailstore.AppendResult, error) {
	if err := h.check(); err != nil {
		return mailstore.AppendResult{}, err
	}
	name, err := mailstore.ParseMailboxName(mailbox)
	if err != nil {
		return mailstore.AppendResult{}, err
	}
	return h.a.appendMessage(ctx, name, false, r, parseFlags(opts.Flags), opts.InternalDate, opts.ClaimRecent)
}

// Deliver implements mailstore.Account.
func (h *handle) Deliver(ctx context.Context, r io.Reader, opts mailstore.DeliverOptions) (mailstore.AppendResult, error) {
	if err := h.check(); err != nil {
		return mailstore.AppendResult{}, err
	}
	name := mailstore.Inbox
	if opts.Mailbox != "" {
		n, err := mailstore.ParseMailboxName(opts.Mailbox)
		if err != nil {
			h.a.log.Warn("delivery to an invalid mailbox name; using INBOX", "mailbox", opts.Mailbox, "err", err)
		} else {
			name = n
		}
	}
	return h.a.appendMessage(ctx, name, true, r, parseFlags(opts.Flags), zeroTime, false)
}

// ListMailboxes implements mailstore.Account.
func (h *handle) ListMailboxes(ctx context.Context) ([]mailstore.Mailbox, error) {
	if err := h.check(); err != nil {
		return nil, err
	}
	var out []mailstore.Mailbox
	err := h.a.readTx(ctx, func(r *rtx) error {
		rows, err := r.query(`SELECT ` + mailboxColumns + ` FROM mailboxes m ORDER BY m.name`)
		out, err = sqlitedb.Collect(rows, err, scanMailbox)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("maildir: list mailboxes: %w", err)
	}
	return out, nil
}

// Mailbox implements mailstore.Account.
func (h *handle) Mailbox(ctx context.Context, name string) (mailstore.Mailbox, error) {
	if err := h.check(); err != nil {
		return mailstore.Mailbox{}, err
	}
	name, err := mailstore.ParseMailboxName(name)
	if err != nil {
		return mailstore.Mailbox{}, err
	}
	var mb mailstore.Mailbox
	err = h.a.readTx(ctx, func(r *rtx) error {
		mb, err = r.mailboxByName(name)
		return err
	})
	return mb, err
}

// mailboxColumns are the columns scanMailbox reads, from mailboxes m.
const mailboxColumns = `m.id, m.name, m.special_use, m.uidvalidity,
	EXISTS (SELECT 1 FROM subscriptions s WHERE s.name = m.name)`

// scanMailbox scans a row of mailboxColumns.
func scanMailbox(row sqlitedb.Scanner) (mailstore.Mailbox, error) {
	var mb mailstore.Mailbox
	err := row.Scan(&mb.ID, &mb.Name, &mb.SpecialUse, &mb.UIDValidity, &mb.Subscribed)
	return mb, err
}

// noSuchMailbox turns a lookup's sql.ErrNoRows into ErrNoSuchMailbox naming
// what was looked up.
func noSuchMailbox(mb mailstore.Mailbox, err error, what string) (mailstore.Mailbox, error) {
	if errors.Is(err, sql.ErrNoRows) {
		return mb, fmt.Errorf("%w: %s", mailstore.ErrNoSuchMailbox, what)
	}
	return mb, err
}

func (r *rtx) mailboxByName(name string) (mailstore.Mailbox, error) {
	mb, err := scanMailbox(r.queryRow(`SELECT `+mailboxColumns+` FROM mailboxes m WHERE m.name = ?`, name))
	return noSuchMailbox(mb, err, name)
}

func (w *wtx) mailboxByName(name string) (mailstore.Mailbox, error) {
	mb, err := scanMailbox(w.QueryRow(`SELECT `+mailboxColumns+` FROM mailboxes m WHERE m.name = ?`, name))
	return noSuchMailbox(mb, err, name)
}

func (w *wtx) mailboxByID(id int64) (mailstore.Mailbox, error) {
	mb, err := scanMailbox(w.QueryRow(`SELECT `+mailboxColumns+` FROM mailboxes m WHERE m.id = ?`, id))
	return noSuchMailbox(mb, err, "id "+strconv.FormatInt(id, 10))
}

// CreateMailbox implements mailstore.Account.
func (h *handle) CreateMailbox(ctx context.Context, name, specialUse string) (mailstore.Mailbox, error) {
	if err := h.check(); err != nil {
		return mailstore.Mailbox{}, err
	}
	return h.a.createMailbox(ctx, name, specialUse)
}

// DeleteMailbox implements mailstore.Account.
func (h *handle) DeleteMailbox(ctx context.Context, name string) error {
	if err := h.check(); err != nil {
		return err
	}
	return h.a.deleteMailbox(ctx, name)
}

// RenameMailbox implements mailstore.Account.
func (h *handle) RenameMailbox(ctx context.Context, oldName, newName string) error {
	if err := h.check(); err != nil {
		return err
	}
	return h.a.renameMailbox(ctx, oldName, newName)
}

// SetSubscribed implements mailstore.Account.
func (h *handle) SetSubscribed(ctx context.Context, name string, subscribed bool) error {
	if err := h.check(); err != nil {
		return err
	}
	return h.a.setSubscribed(ctx, name, subscribed)
}

// Subscriptions implements mailstore.Account.
func (h *handle) Subscriptions(ctx context.Context) ([]string, error) {
	if err := h.check(); err != nil {
		return nil, err
	}
	out, err := readValues[string](ctx, h.a, `SELECT name FROM subscriptions ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("maildir: subscriptions: %w", err)
	}
	return out, nil
}

// Status implements mailstore.Account.
func (h *handle) Status(ctx context.Context, mailboxID int64) (mailstore.Status, error) {
	if err := h.check(); err != nil {
		return mailstore.Status{}, err
	}
	var st mailstore.Status
	err := h.a.readTx(ctx, func(r *rtx) error {
		// The counters are kept by triggers (schema.go, migration 2); the
		// unclaimed messages are a range of the (mailbox, uid) index.
		err := r.queryRow(`SELECT uidvalidity, uidnext, highestmodseq, msgs, bytes, unseen, deleted, recent_uid,
			(SELECT count(*) FROM messages WHERE mailbox = m.id AND uid >= m.recent_uid)
			FROM mailboxes m WHERE id = ?`, mailboxID).
			Scan(&st.UIDValidity, &st.UIDNext, &st.HighestModSeq, &st.Messages, &st.Size, &st.Unseen, &st.Deleted,
				&st.RecentUID, &st.Recent)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w: id %d", mailstore.ErrNoSuchMailbox, mailboxID)
		}
		return err
	})
	return st, err
}

// ClaimRecent implements mailstore.Account. The write transaction (BEGIN
// IMMEDIATE) makes read-and-raise atomic across handles and processes. Most
// calls (every SELECT of a mailbox with no new mail) claim nothing; a read
// tells them so without taking the account's writer, since the claim
// point only rises.
func (h *handle) ClaimRecent(ctx context.Context, mailboxID int64, upTo imap.UID) (imap.UID, error) {
	if err := h.check(); err != nil {
		return 0, err
	}
	var from imap.UID
	err := h.a.readTx(ctx, func(r *rtx) error {
		return r.queryRow(`SELECT recent_uid FROM mailboxes WHERE id = ?`, mailboxID).Scan(&from)
	})
	if err == nil && upTo <= from {
		return from, nil
	}
	err = h.a.writeRelaxed(ctx, func(w *wtx) error {
		err := w.QueryRow(`SELECT recent_uid FROM mailboxes WHERE id = ?`, mailboxID).Scan(&from)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w: id %d", mailstore.ErrNoSuchMailbox, mailboxID)
		}
		if err != nil || upTo <= from {
			return err
		}
		_, err = w.Exec(`UPDATE mailboxes SET recent_uid = ? WHERE id = ?`, upTo, mailboxID)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("maildir: claim recent: %w", err)
	}
	return from, nil
}
