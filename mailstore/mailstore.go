package mailstore

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/emersion/go-imap/v2"
)

// Sentinel errors. Implementations wrap them with %w; protocols branch on them
// with errors.Is and translate them at their edge.
var (
	ErrNoSuchAccount  = errors.New("mailstore: no such account")
	ErrBadAccountName = errors.New("mailstore: invalid account name")
	ErrNoSuchMailbox  = errors.New("mailstore: no such mailbox")
	ErrMailboxExists  = errors.New("mailstore: mailbox already exists")
	ErrBadMailboxName = errors.New("mailstore: invalid mailbox name")
	// ErrNotAllowed: the operation is refused for this mailbox (deleting
	// INBOX, renaming into a child of itself, …).
	ErrNotAllowed = errors.New("mailstore: operation not allowed on this mailbox")
	// ErrHasChildren: DELETE of a mailbox that still has child mailboxes.
	ErrHasChildren   = errors.New("mailstore: mailbox has children")
	ErrNoSuchMessage = errors.New("mailstore: no such message")
	// ErrOverQuota: storing the message would exceed the account's quota.
	ErrOverQuota = errors.New("mailstore: quota exceeded")
	// ErrInUse: the POP3 maildrop lock is held by another session.
	ErrInUse  = errors.New("mailstore: maildrop in use")
	ErrClosed = errors.New("mailstore: closed")
)

// Special-use attributes (RFC 6154) a mailbox may carry.
const (
	SpecialNone    = ""
	SpecialSent    = `\Sent`
	SpecialDrafts  = `\Drafts`
	SpecialTrash   = `\Trash`
	SpecialJunk    = `\Junk`
	SpecialArchive = `\Archive`
)

// Inbox is the name of every account's inbox. Lookups of "inbox" in any case
// resolve to it (RFC 9051 §5.1).
const Inbox = "INBOX"

// Separator is the hierarchy delimiter of mailbox names.
const Separator = '/'

// DefaultMailboxes are created with every new account, with their special
// use, and subscribed.
var DefaultMailboxes = []struct{ Name, SpecialUse string }{
	{Inbox, SpecialNone},
	{"Drafts", SpecialDrafts},
	{"Sent", SpecialSent},
	{"Trash", SpecialTrash},
	{"Junk", SpecialJunk},
	{"Archive", SpecialArchive},
}

// Store gives access to accounts. One Store serves every protocol in the
// process; it is safe for concurrent use.
type Store interface {
	// Open returns a handle on the account, creating its storage and the
	// DefaultMailboxes on first use. name is the account's canonical address
	// (lower case, as auth hands it out); a name that could not be an address
	// gets ErrBadAccountName. Every handle must be closed; handles on one
	// account share state and see each other's changes and events. Accounts
	// share nothing: no mailbox, message, event or quota of one is seen
	// through another.
	Open(ctx context.Context, name string) (Account, error)
	// Remove deletes an account and all its mail. Open handles get ErrClosed;
	// a name without storage gets ErrNoSuchAccount. Opening the name again
	// creates a new, empty account.
	Remove(ctx context.Context, name string) error
	// Reconcile brings every account's index in line with the messages in
	// its storage and finishes what an interrupted call left half done (a
	// Remove cut by a crash): a message found in storage without an index
	// entry is indexed, never dropped, under a new UID, counted in Usage,
	// with an EventAppend. A failure in one account does not stop the
	// others; the errors are joined. cmd/posthouse runs it once at
	// start-up, before listeners accept; it is safe, though slower, while
	// sessions run. A backend whose storage cannot disagree with its index
	// returns nil.
	Reconcile(ctx context.Context) error
	// Close releases every account; later calls, on the Store and on its
	// handles, get ErrClosed. What was committed survives: a Store opened
	// again over the same storage shows the same mailboxes, messages, flags,
	// UIDs, UIDVALIDITY and modseqs. Maildrop locks do not survive.
	Close() error
}

// Account is one user's mail. Methods are safe for concurrent use by many
// sessions. Mailboxes are addressed by name for operations a client names
// (CREATE, APPEND, COPY destination) and by Mailbox.ID, which stays the same
// across renames, once selected. Every method that takes a mailbox ID gets
// ErrNoSuchMailbox when no mailbox has it (deleted under a session).
//
// Mailbox names are UTF-8, levels separated by Separator. "INBOX" in any
// case, as the first level, is INBOX (RFC 9051 §5.1); every other name is
// case-sensitive. A name that is empty or has an empty level, a "." or ".."
// level, a control character or a LIST wildcard ('%', '*') gets
// ErrBadMailboxName; backends may refuse more.
//
// Flags: system flags are matched case-insensitively and reported in their
// canonical spelling (imap.FlagSeen, …); \Recent and unknown system flags
// are not stored; keywords are matched case-insensitively and kept in the
// spelling first stored. Flag lists are sets: their order means nothing.
//
// mailstore/storetest checks all of this; a backend proves itself with
// storetest.Run.
type Account interface {
	Name() string
	// Close ends the handle and its watches; later calls on it, and a
	// second Close, get ErrClosed. Other handles are not affected.
	Close() error

	// Mailboxes.
	ListMailboxes(ctx context.Context) ([]Mailbox, error) // sorted by name, in byte order
	Mailbox(ctx context.Context, name string) (Mailbox, error)
	// CreateMailbox creates name and any missing parents (without special
	// use), unsubscribed, each with an EventMailboxes. specialUse is one of
	// the Special* constants; another value gets ErrNotAllowed. An existing
	// name gets ErrMailboxExists. A name created again after DeleteMailbox
	// gets a new ID and a greater UIDVALIDITY (RFC 9051 §2.3.1.1).
	CreateMailbox(ctx context.Context, name, specialUse string) (Mailbox, error)
	// DeleteMailbox removes a mailbox and its messages (their bytes leave
	// Usage), with one EventMailboxes whose ModSeq is above any the mailbox
	// had. INBOX gives ErrNotAllowed, a mailbox with children
	// ErrHasChildren. Its subscription stays (RFC 9051 §6.3.7).
	DeleteMailbox(ctx context.Context, name string) error
	// RenameMailbox renames a mailbox and its children, creating missing
	// parents of newName. Renamed mailboxes keep their ID, UIDVALIDITY,
	// special use and messages; subscriptions follow them; each gets an
	// EventMailboxes. A newName that exists (or equals oldName) gets
	// ErrMailboxExists, a newName inside oldName ErrNotAllowed. Renaming
	// INBOX moves its messages into a new mailbox newName (which may be
	// under INBOX) and leaves INBOX empty, with its ID, UIDVALIDITY and
	// UIDNEXT, and its children where they are (RFC 9051 §6.3.6).
	RenameMailbox(ctx context.Context, oldName, newName string) error
	// SetSubscribed records a subscription; a name that does not exist may
	// be subscribed (RFC 9051 §6.3.7). Setting what is already set changes
	// nothing. A change for an existing mailbox is an EventMailboxes.
	SetSubscribed(ctx context.Context, name string, subscribed bool) error
	Subscriptions(ctx context.Context) ([]string, error) // sorted, in byte order
	// Status agrees with Snapshot and Fetch: the same message count,
	// UIDNEXT and HIGHESTMODSEQ, and counters that match their flags and
	// sizes.
	Status(ctx context.Context, mailboxID int64) (Status, error)
	// ClaimRecent hands the mailbox's unclaimed messages below upTo to
	// one caller, for IMAP4rev1's \Recent (RFC 3501 §2.3.2: a message is
	// recent in exactly one session, the first told of it). It returns
	// the first unclaimed UID (Status.RecentUID) and raises it to upTo,
	// atomically across handles and processes, so the caller alone owns
	// UIDs from the returned one up to, not including, upTo; an upTo not
	// above it changes nothing and returns it. Callers pass at most the
	// UIDNEXT they have seen. A new mailbox starts at UID 1, so every
	// message added (Deliver, Append, Copy, Move, reconciliation) is
	// unclaimed until a claim passes its UID. The claim point survives a
	// restart; it is no change to the mailbox's messages (no modseq, no
	// event).
	ClaimRecent(ctx context.Context, mailboxID int64, upTo imap.UID) (from imap.UID, err error)

	// Messages. UIDs are strictly ascending within a mailbox and never
	// reused under one UIDVALIDITY, not even the highest after it is
	// expunged. Every change to a mailbox's messages gives it a new, higher
	// modseq (HIGHESTMODSEQ), which the changed messages and the events
	// carry; a call that changes nothing keeps it. UID sets may use '*' (0),
	// the mailbox's largest UID: n:* includes it even when n is above it
	// (RFC 9051 §6.4.9).

	// Snapshot lists every message of a mailbox (UID, flags, modseq) in
	// ascending UID order, from the index alone.
	Snapshot(ctx context.Context, mailboxID int64) (Snapshot, error)
	// Fetch returns the index rows of the given UIDs that exist, in ascending
	// UID order, with the cached envelope and body structure when asked. It
	// never opens message files. With opts.ChangedSince > 0 it returns only
	// the messages whose modseq is greater (CONDSTORE's CHANGEDSINCE, RFC
	// 7162 §3.1.4.1), at a cost that grows with the number of changes
	// since, not with the mailbox.
	Fetch(ctx context.Context, mailboxID int64, uids imap.UIDSet, opts FetchOptions) ([]MessageInfo, error)
	// Expunged returns the UIDs of the mailbox expunged (by Expunge, Move,
	// an INBOX rename or reconciliation) after modseq, for QRESYNC's
	// VANISHED (EARLIER) (RFC 7162 §3.2.5.1, §3.2.6). It may also name
	// UIDs between them that no message has had for longer (expunged
	// earlier, or never assigned), never one of a message that exists.
	// Its cost grows with the number of expunges since, not with the
	// mailbox.
	Expunged(ctx context.Context, mailboxID int64, modseq uint64) (imap.UIDSet, error)
	// OpenMessage returns the message's raw bytes (CRLF line endings, exactly
	// as delivered) and its size. A UID not (or no longer) in the mailbox
	// gets ErrNoSuchMessage.
	OpenMessage(ctx context.Context, mailboxID int64, uid imap.UID) (io.ReadSeekCloser, int64, error)
	// Search returns the UIDs matching criteria, ascending. Criteria must be
	// expressed in UIDs: callers translate sequence numbers (including in
	// nested Not/Or) before the call; SeqNum sets are an error. EmailID
	// matches MessageInfo.EmailID; the store keeps no threads, so a
	// ThreadID matches nothing.
	Search(ctx context.Context, mailboxID int64, criteria *imap.SearchCriteria) ([]imap.UID, error)
	// StoreFlags changes flags of the given UIDs; UIDs that do not exist
	// are skipped. Each message whose flags change gets a new modseq and an
	// EventFlags; one whose flags stay keeps its modseq, gets no event, and
	// is still listed in Updated. With UnchangedSince > 0 (CONDSTORE,
	// RFC 7162 §3.1.3), messages whose modseq is greater are left alone and
	// reported in Modified.
	StoreFlags(ctx context.Context, mailboxID int64, uids imap.UIDSet, op FlagOp, flags []imap.Flag, unchangedSince uint64) (StoreResult, error)
	// Expunge removes messages flagged \Deleted; with uids non-nil only those
	// among them (UID EXPUNGE). It returns the expunged UIDs, ascending;
	// their EventExpunge events share the mailbox's one new modseq. An
	// expunge that finds nothing changes nothing.
	Expunge(ctx context.Context, mailboxID int64, uids *imap.UIDSet) ([]imap.UID, error)
	// Copy copies messages into the named mailbox (ErrNoSuchMailbox if it does
	// not exist: the client should get TRYCREATE). Quota applies. Copies
	// keep the bytes, flags and internal date, get new UIDs in the order of
	// the source UIDs, and an EventAppend each; the source does not change.
	// UIDs that do not exist are skipped: none at all is not an error.
	Copy(ctx context.Context, mailboxID int64, uids imap.UIDSet, dest string) (CopyResult, error)
	// Move is Copy followed by an expunge of the source messages, atomically.
	// Quota does not apply (the account does not grow). Its appends to the
	// destination are published before its expunges from the source.
	Move(ctx context.Context, mailboxID int64, uids imap.UIDSet, dest string) (CopyResult, error)
	// Append stores a message in the named mailbox with the given flags and
	// internal date (zero: now), byte for byte: Size is its length. The
	// internal date is kept to the second, with its zone offset. Durable
	// before it returns. Quota applies.
	Append(ctx context.Context, mailbox string, r io.Reader, opts AppendOptions) (AppendResult, error)
	// Deliver is the MDA: Append into opts.Mailbox (default INBOX, falling
	// back to INBOX when it does not exist or its name is invalid: mail is
	// never refused for its folder). Durable before it returns: the
	// file is fsync'd and renamed into place and the index row committed.
	// ErrOverQuota when the account is full.
	Deliver(ctx context.Context, r io.Reader, opts DeliverOptions) (AppendResult, error)

	// Usage reports bytes stored (the sizes of every mailbox's messages) and
	// the quota (0: unlimited). A Deliver, Append or Copy that would take
	// the bytes stored above the quota gets ErrOverQuota and stores
	// nothing; one that reaches it exactly is accepted. The quota may
	// change at any time and applies from the next call.
	Usage(ctx context.Context) (used, limit int64, err error)
	// MessageUsage reports the messages stored (in every mailbox) and the
	// message quota (0: unlimited), as Usage does for bytes: a Deliver,
	// Append or Copy that would take the count above the quota gets
	// ErrOverQuota and stores nothing; one that reaches it exactly is
	// accepted; Move is not held to it.
	MessageUsage(ctx context.Context) (count, limit int64, err error)

	// Watch calls fn for every committed change in this account, in commit
	// order, after the commit. fn runs on the committing goroutine and must
	// not block or call back into the store. For a change made through
	// this Store, fn has returned before the call that made it returns
	// (imapd sends a command's EXISTS and EXPUNGE responses from them). To
	// build a consistent view, Watch first, then Snapshot, and ignore events
	// whose ModSeq is not greater than Snapshot.HighestModSeq. stop ends
	// the watch; calling it again does nothing.
	Watch(fn func(Event)) (stop func())

	// LockMaildrop takes the account's exclusive POP3 lock (RFC 1939 §8), or
	// returns ErrInUse, also to another call through the same handle. IMAP
	// and delivery are not blocked by it. unlock may be called more than
	// once; only the first call releases the lock.
	LockMaildrop(ctx context.Context) (unlock func(), err error)
}

// Mailbox describes one mailbox.
type Mailbox struct {
	ID          int64  // stable across renames
	Name        string // full UTF-8 name, levels separated by Separator
	SpecialUse  string // one of the Special* constants
	Subscribed  bool
	UIDValidity uint32
}

// Status holds a mailbox's counters, from the index alone.
type Status struct {
	Messages uint32
	Unseen   uint32
	Deleted  uint32
	// Recent counts the messages no ClaimRecent has claimed yet (UIDs
	// from RecentUID on): what STATUS and EXAMINE report as RECENT.
	Recent        uint32
	Size          int64
	UIDNext       imap.UID
	UIDValidity   uint32
	HighestModSeq uint64
	// RecentUID is the first UID not yet claimed (see ClaimRecent).
	RecentUID imap.UID
}

// Summary is the per-message part of a Snapshot.
type Summary struct {
	UID    imap.UID
	ModSeq uint64
	Flags  []imap.Flag
}

// Snapshot is a consistent view of a mailbox at one modseq.
type Snapshot struct {
	Mailbox       Mailbox
	Messages      []Summary // ascending UID
	UIDNext       imap.UID
	HighestModSeq uint64
}

// FetchOptions selects the cached parts a Fetch returns, and the messages.
type FetchOptions struct {
	Envelope      bool
	BodyStructure bool
	EmailID       bool
	// ChangedSince > 0 leaves out messages whose modseq is not greater.
	ChangedSince uint64
	// SummaryOnly says the caller reads only UID, ModSeq and Flags (FETCH
	// FLAGS, a client's resync): a backend may then leave every other
	// field zero and answer from what Snapshot reads. Flags are shared:
	// never modify them.
	SummaryOnly bool
}

// MessageInfo is one message's index row.
type MessageInfo struct {
	UID          imap.UID
	ModSeq       uint64
	Flags        []imap.Flag
	InternalDate time.Time
	Size         int64 // octets as stored and sent (CRLF)
	// Envelope (when FetchOptions.Envelope) holds the header's own text:
	// subject and names with their encoded words, address groups as
	// start/end markers (mimeparse.ParseAddressList).
	Envelope      *imap.Envelope
	BodyStructure imap.BodyStructure // when FetchOptions.BodyStructure
	// EmailID (when FetchOptions.EmailID) is an RFC 8474 objectid for the
	// message's content: it never changes while the message exists, a
	// Copy or Move keeps it, and no other message of the account is ever
	// given it, not after an expunge, not after a restart.
	EmailID string
}

// FlagOp says how StoreFlags applies its flags.
type FlagOp int

const (
	FlagsAdd FlagOp = iota
	FlagsRemove
	FlagsSet
)

// FlagUpdate is a message's state after StoreFlags.
type FlagUpdate struct {
	UID    imap.UID
	ModSeq uint64
	Flags  []imap.Flag
}

// StoreResult reports what StoreFlags did.
type StoreResult struct {
	// Updated lists every existing message among the UIDs that was not
	// refused by UnchangedSince, with its flags after the change.
	Updated []FlagUpdate
	// Modified lists messages left alone because of UnchangedSince.
	Modified []imap.UID
}

// CopyResult carries what UIDPLUS's COPYUID needs.
type CopyResult struct {
	DestMailboxID   int64
	DestUIDValidity uint32
	SourceUIDs      []imap.UID
	DestUIDs        []imap.UID
}

// AppendOptions are APPEND's flags and date.
type AppendOptions struct {
	Flags        []imap.Flag
	InternalDate time.Time
	// ClaimRecent asks the store to claim the new message for \Recent
	// (see ClaimRecent) in the same change, when every message before it
	// is claimed already: what a ClaimRecent up to UID+1 right after the
	// append would do, without a second write. A backend may decline
	// (AppendResult.Recent false); the caller then claims as usual.
	ClaimRecent bool
}

// DeliverOptions are the MDA's choices for one recipient.
type DeliverOptions struct {
	Mailbox string // "" means INBOX
	Flags   []imap.Flag
}

// AppendResult carries what UIDPLUS's APPENDUID needs.
type AppendResult struct {
	MailboxID   int64
	UIDValidity uint32
	UID         imap.UID
	Size        int64
	// Recent: ClaimRecent was asked and the message is claimed, so the
	// claim point is UID+1 and the caller owns UID alone.
	Recent bool
}

// EventKind says what changed.
type EventKind int

const (
	// EventAppend: a message appeared (delivery, APPEND, COPY/MOVE target).
	EventAppend EventKind = iota + 1
	// EventFlags: a message's flags changed.
	EventFlags
	// EventExpunge: a message was removed (one event per UID).
	EventExpunge
	// EventMailboxes: mailboxes were created, deleted, renamed or
	// (un)subscribed; MailboxID is the one concerned.
	EventMailboxes
)

// Event is one committed change.
type Event struct {
	Kind      EventKind
	MailboxID int64
	UID       imap.UID
	ModSeq    uint64 // the mailbox's modseq after this change
	Flags     []imap.Flag
}
