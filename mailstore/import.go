package mailstore

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/emersion/go-imap/v2"
)

// Copying an account between backends (posthouse admin store copy) keeps
// what a client has seen: UIDVALIDITY, UIDs, modseqs, flags, internal
// dates, EMAILIDs and the expunge history QRESYNC answers from. The
// Account interface cannot set those, so a copy goes through the two
// narrow interfaces below: a backend that can be read from hands out an
// ImportSource, one that can be written to implements Importer.

// ErrNotEmpty: the target of a copy already holds messages for the
// account (and they are not the copy of the same source).
var ErrNotEmpty = errors.New("mailstore: target account already has messages")

// ImportAccount is an account's mailboxes and subscriptions at one point
// of its history.
type ImportAccount struct {
	Name          string
	Mailboxes     []ImportMailbox // sorted by name
	Subscriptions []string
	Messages      int64 // in every mailbox
	Bytes         int64
}

// ImportMailbox is one mailbox's state.
type ImportMailbox struct {
	Name          string
	SpecialUse    string
	UIDValidity   uint32
	UIDNext       imap.UID
	HighestModSeq uint64
	// RecentUID is the first UID no session has claimed (Status).
	RecentUID imap.UID
	Messages  int64
	// Expunged is the mailbox's expunge history (Account.Expunged).
	Expunged []ExpungedRange
}

// ExpungedRange is a closed range of UIDs expunged under one modseq.
type ExpungedRange struct {
	ModSeq uint64
	Lo, Hi imap.UID
}

// ImportMessage is one message, with its body.
type ImportMessage struct {
	UID          imap.UID
	ModSeq       uint64
	Flags        []imap.Flag
	InternalDate time.Time // to the second, with its zone
	EmailID      string    // MessageInfo.EmailID
	Size         int64
	// Body yields exactly Size bytes; it is valid during the callback.
	Body io.Reader
}

// ImportSource reads one account consistently: what Account and Messages
// return is one state of the account. Close releases it.
type ImportSource interface {
	Account() ImportAccount
	// Messages calls fn for each message of the named mailbox in
	// ascending UID order, streaming bodies.
	Messages(ctx context.Context, mailbox string, fn func(*ImportMessage) error) error
	// Unchanged reports an error when the account has changed since the
	// source was opened (a server still running on it): a copy then
	// does not commit.
	Unchanged(ctx context.Context) error
	Close() error
}

// ImportOptions control an Importer.
type ImportOptions struct {
	// Force replaces an account that already has messages in the target.
	Force bool
	// Progress, when set, is called after each mailbox and every few
	// hundred messages with the count copied so far.
	Progress func(mailbox string, messages int64)
}

// ImportResult says what an import did.
type ImportResult struct {
	// Skipped: the target already held this very copy (same mailboxes,
	// UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ and message counts).
	Skipped  bool
	Messages int64
	Bytes    int64
}

// Exporter is a backend whose accounts can be read whole for a copy.
type Exporter interface {
	// Accounts lists the accounts with storage, sorted.
	Accounts(ctx context.Context) ([]string, error)
	// Export opens one account for reading; one without storage gets
	// ErrNoSuchAccount.
	Export(ctx context.Context, name string) (ImportSource, error)
}

// Importer is a backend that can take an account whole, keeping its
// UIDs and modseqs. Import creates the account with the source's
// mailboxes, subscriptions, messages and expunge history atomically:
// after a failure the target holds what it held before. An account the
// target already holds with messages gets ErrNotEmpty unless
// opts.Force, or is skipped (Skipped) when it is the copy of the same
// source state.
type Importer interface {
	Import(ctx context.Context, src ImportSource, opts ImportOptions) (ImportResult, error)
}
