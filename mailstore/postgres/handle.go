package postgres

import (
	"context"
	"io"
	"sync/atomic"

	"github.com/emersion/go-imap/v2"

	"github.com/posthouse/posthouse/mailstore"
)

// handle is one mailstore.Account handed out by Open.
type handle struct {
	a      *account
	closed atomic.Bool
	stops  atomicStops
}

var _ mailstore.Account = (*handle)(nil)

func newHandle(a *account) *handle { return &handle{a: a} }

// check refuses calls on a closed handle, account or store.
func (h *handle) check() error {
	if h.closed.Load() || h.a.gone.Load() {
		return mailstore.ErrClosed
	}
	return nil
}

func (h *handle) Name() string { return h.a.name }

// Close implements mailstore.Account.
func (h *handle) Close() error {
	if !h.closed.CompareAndSwap(false, true) {
		return mailstore.ErrClosed
	}
	h.stops.stopAll()
	h.a.s.release(h.a)
	return nil
}

// Watch implements mailstore.Account.
func (h *handle) Watch(fn func(mailstore.Event)) func() {
	if h.check() != nil {
		return func() {}
	}
	stop := h.a.addWatcher(fn)
	h.stops.add(stop)
	return stop
}

// LockMaildrop implements mailstore.Account.
func (h *handle) LockMaildrop(ctx context.Context) (func(), error) {
	if err := h.check(); err != nil {
		return nil, err
	}
	return h.a.s.locks.lock(ctx, h.a.name)
}

func (h *handle) Usage(ctx context.Context) (int64, int64, error) {
	if err := h.check(); err != nil {
		return 0, 0, err
	}
	return h.a.usage(ctx, false)
}

func (h *handle) MessageUsage(ctx context.Context) (int64, int64, error) {
	if err := h.check(); err != nil {
		return 0, 0, err
	}
	return h.a.usage(ctx, true)
}

func (h *handle) ListMailboxes(ctx context.Context) ([]mailstore.Mailbox, error) {
	if err := h.check(); err != nil {
		return nil, err
	}
	return h.a.listMailboxes(ctx)
}

func (h *handle) Mailbox(ctx context.Context, name string) (mailstore.Mailbox, error) {
	if err := h.check(); err != nil {
		return mailstore.Mailbox{}, err
	}
	return h.a.mailbox(ctx, name)
}

func (h *handle) CreateMailbox(ctx context.Context, name, specialUse string) (mailstore.Mailbox, error) {
	if err := h.check(); err != nil {
		return mailstore.Mailbox{}, err
	}
	return h.a.createMailbox(ctx, name, specialUse)
}

func (h *handle) DeleteMailbox(ctx context.Context, name string) error {
	if err := h.check(); err != nil {
		return err
	}
	return h.a.deleteMailbox(ctx, name)
}

func (h *handle) RenameMailbox(ctx context.Context, oldName, newName string) error {
	if err := h.check(); err != nil {
		return err
	}
	return h.a.renameMailbox(ctx, oldName, newName)
}

func (h *handle) SetSubscribed(ctx context.Context, name string, subscribed bool) error {
	if err := h.check(); err != nil {
		return err
	}
	return h.a.setSubscribed(ctx, name, subscribed)
}

func (h *handle) Subscriptions(ctx context.Context) ([]string, error) {
	if err := h.check(); err != nil {
		return nil, err
	}
	return h.a.subscriptions(ctx)
}

func (h *handle) Status(ctx context.Context, mailboxID int64) (mailstore.Status, error) {
	if err := h.check(); err != nil {
		return mailstore.Status{}, err
	}
	return h.a.status(ctx, mailboxID)
}

func (h *handle) ClaimRecent(ctx context.Context, mailboxID int64, upTo imap.UID) (imap.UID, error) {
	if err := h.check(); err != nil {
		return 0, err
	}
	return h.a.claimRecent(ctx, mailboxID, upTo)
}

func (h *handle) Snapshot(ctx context.Context, mailboxID int64) (mailstore.Snapshot, error) {
	if err := h.check(); err != nil {
		return mailstore.Snapshot{}, err
	}
	return h.a.snapshot(ctx, mailboxID)
}

func (h *handle) Fetch(ctx context.Context, mailboxID int64, uids imap.UIDSet, opts mailstore.FetchOptions) ([]mailstore.MessageInfo, error) {
	if err := h.check(); err != nil {
		return nil, err
	}
	return h.a.fetch(ctx, mailboxID, uids, opts)
}

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
	return h.a.openMessage(ctx, mailboxID, uid)
}

func (h *handle) Search(ctx context.Context, mailboxID int64, criteria *imap.SearchCriteria) ([]imap.UID, error) {
	if err := h.check(); err != nil {
		return nil, err
	}
	return h.a.search(ctx, mailboxID, criteria)
}

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
	default:
		fop = opSet
	}
	return h.a.storeFlags(ctx, mailboxID, uids, fop, parseFlags(flags), unchangedSince)
}

func (h *handle) Expunge(ctx context.Context, mailboxID int64, uids *imap.UIDSet) ([]imap.UID, error) {
	if err := h.check(); err != nil {
		return nil, err
	}
	return h.a.expunge(ctx, mailboxID, uids)
}

func (h *handle) Copy(ctx context.Context, mailboxID int64, uids imap.UIDSet, dest string) (mailstore.CopyResult, error) {
	if err := h.check(); err != nil {
		return mailstore.CopyResult{}, err
	}
	return h.a.copyMessages(ctx, mailboxID, uids, dest, false)
}

func (h *handle) Move(ctx context.Context, mailboxID int64, uids imap.UIDSet, dest string) (mailstore.CopyResult, error) {
	if err := h.check(); err != nil {
		return mailstore.CopyResult{}, err
	}
	return h.a.copyMessages(ctx, mailboxID, uids, dest, true)
}

func (h *handle) Append(ctx context.Context, mailbox string, r io.Reader, opts mailstore.AppendOptions) (mailstore.AppendResult, error) {
	if err := h.check(); err != nil {
		return mailstore.AppendResult{}, err
	}
	return h.a.appendMessage(ctx, mailbox, false, r, parseFlags(opts.Flags), opts.InternalDate)
}

func (h *handle) Deliver(ctx context.Context, r io.Reader, opts mailstore.DeliverOptions) (mailstore.AppendResult, error) {
	if err := h.check(); err != nil {
		return mailstore.AppendResult{}, err
	}
	name := opts.Mailbox
	if name == "" {
		name = mailstore.Inbox
	}
	return h.a.appendMessage(ctx, name, true, r, parseFlags(opts.Flags), zeroTime)
}
