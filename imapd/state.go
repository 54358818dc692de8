package imapd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/posthouse/posthouse/mailstore"
)

// ownChangeWait bounds how long a command waits for the events of its own
// store change to reach the mailbox state (so that, say, EXPUNGE responses
// precede the tagged OK as RFC 9051 §6.4.3 requires). Events normally arrive
// before the store call returns; the wait only matters if they do not.
const ownChangeWait = 2 * time.Second

type stateKey struct {
	account string
	mailbox int64
}

// stateRegistry holds the mailbox states that at least one session has
// selected, and the large ones that lingered after their last session left.
type stateRegistry struct {
	store Store
	log   *slog.Logger

	mu sync.Mutex
	m  map[stateKey]*mailboxState
	// idle are the lingering states (refs 0), oldest first.
	idle   []*mailboxState
	closed bool // Shutdown ran: nothing lingers any more
	// announced are the keywords the dropped states of mailboxes had
	// announced in FLAGS: a state loaded again starts with them, so FLAGS
	// never loses a keyword while the process runs (a client holding
	// messages with it, not told yet of the change that removed it, takes
	// a keyword missing from FLAGS for an error). At most maxAnnounced
	// mailboxes; beyond that it starts afresh.
	announced map[stateKey][]imap.Flag
}

// maxAnnounced bounds the mailboxes whose keywords the registry keeps.
const maxAnnounced = 10000

// A large mailbox's state lingers after its last session leaves, kept
// current by its events, so that the next SELECT (a client reconnecting,
// or one that selects INBOX for every check) joins it instead of reading
// the mailbox's whole list from the index again: on 100,000 messages that
// read and the state built from it cost 3 ms warm and 30 ms cold, joining
// costs what a small mailbox's SELECT does. Before a lingering state is
// reused, the mailbox's HIGHESTMODSEQ and UIDVALIDITY are read back from
// the store (one row): a change made by another process (posthouse admin),
// which sends this one no event, makes the state stale, and it is then
// dropped and loaded afresh.
const (
	lingerFor    = 5 * time.Minute // after the last session left
	maxLingering = 16              // states; each costs about 5 bytes per message
)

// lingerMin is the smallest state that lingers, in messages: smaller ones
// load in well under a millisecond. A variable for tests.
var lingerMin = 1000

func newStateRegistry(store Store, log *slog.Logger) *stateRegistry {
	return &stateRegistry{store: store, log: log, m: make(map[stateKey]*mailboxState)}
}

// mailboxState is the server view of one selected mailbox, shared by every
// session that has it selected: the UIDs in order (sequence number i is
// uids[i-1]) and the tracker that turns changes into unilateral responses.
type mailboxState struct {
	key   stateKey
	reg   *stateRegistry
	refs  int           // guarded by reg.mu
	ready chan struct{} // closed once loaded (or failed)
	err   error         // load failure, set before ready is closed

	acct      mailstore.Account // the state's own handle, for Watch
	stopWatch func()

	mu         sync.Mutex
	loaded     bool
	baseModSeq uint64            // Snapshot.HighestModSeq
	modseq     uint64            // highest ModSeq seen (snapshot or event)
	pending    []mailstore.Event // events seen while loading
	uids       []imap.UID
	seen       []bool // \Seen, parallel to uids, for SELECT's UNSEEN
	// keywords are those in use in the mailbox, in first-seen order (up
	// to maxAnnouncedKeywords): FLAGS announces them before any FETCH
	// shows one (RFC 3501 §7.2.6; clients such as imaptest check it).
	keywords    []imap.Flag
	uidNext     imap.UID
	uidValidity uint32
	tracker     *imapserver.MailboxTracker
	storing     []*inflightStore
	changed     chan struct{} // closed and replaced after each applied event
	lingerTimer *time.Timer   // guarded by reg.mu; set while lingering
	// watchers are the selections with live SEARCH or SORT results (searchctx.go):
	// each new or changed message's UID goes into their dirty set.
	watchers map[*selected]struct{}
}

// inflightStore marks UIDs a session is changing with STORE, so the flag
// events it causes are not echoed back to it.
type inflightStore struct {
	tracker *imapserver.SessionTracker
	uids    imap.UIDSet
}

// catchUpWait bounds how long a SELECT joining another session's state
// waits for it to apply what the store has committed (catchUp). A
// variable for tests.
var catchUpWait = 250 * time.Millisecond

// acquire returns the loaded state of a mailbox, creating it on first use.
// The caller must call release.
func (r *stateRegistry) acquire(ctx context.Context, account string, mailboxID int64) (*mailboxState, error) {
	st, err := r.acquireOnce(ctx, stateKey{account, mailboxID}, true)
	if err == errStateBehind {
		// The state that lagged is detached; this loads a fresh one (or
		// joins one another session just loaded).
		st, err = r.acquireOnce(ctx, stateKey{account, mailboxID}, false)
	}
	return st, err
}

// errStateBehind: the state other sessions share did not catch up with
// the store in catchUpWait.
var errStateBehind = errors.New("imapd: mailbox state behind the store")

// acquireOnce is acquire; with catchUp, a state in use by other sessions
// is first brought up to what the store has committed, or detached from
// the registry (errStateBehind) if it cannot be.
func (r *stateRegistry) acquireOnce(ctx context.Context, key stateKey, catchUp bool) (*mailboxState, error) {
	r.mu.Lock()
	st, ok := r.m[key]
	if ok && st.refs == 0 && !r.reviveLocked(ctx, st) {
		// Stale: load it afresh below.
		r.dropLocked(st)
		defer st.close()
		ok = false
	}
	if ok {
		inUse := st.refs > 0 // a revived state was just checked
		st.refs++
		r.mu.Unlock()
		select {
		case <-st.ready:
		case <-ctx.Done():
			r.release(st)
			return nil, ctx.Err()
		}
		if st.err != nil {
			return nil, st.err
		}
		if inUse && catchUp && !st.catchUp(ctx) {
			r.mu.Lock()
			if r.m[key] == st {
				r.forgetLocked(st)
			}
			r.mu.Unlock()
			r.release(st)
			return nil, errStateBehind
		}
		return st, nil
	}
	st = &mailboxState{key: key, reg: r, refs: 1, ready: make(chan struct{}), changed: make(chan struct{})}
	r.m[key] = st
	r.mu.Unlock()

	if err := st.load(ctx, r.store); err != nil {
		st.err = err
		r.mu.Lock()
		if r.m[key] == st {
			delete(r.m, key)
		}
		r.mu.Unlock()
		close(st.ready)
		st.close()
		return nil, err
	}
	close(st.ready)
	return st, nil
}

// reviveLocked takes a lingering state off the idle list if the store
// still shows the mailbox exactly as the state does, and reports whether
// it did. It reads one row under r.mu: only a SELECT that would otherwise
// load the whole mailbox waits for it.
func (r *stateRegistry) reviveLocked(ctx context.Context, st *mailboxState) bool {
	status, err := st.acct.Status(ctx, st.key.mailbox)
	st.mu.Lock()
	fresh := err == nil && status.HighestModSeq == st.modseq && status.UIDValidity == st.uidValidity
	st.mu.Unlock()
	if !fresh {
		return false
	}
	r.unlingerLocked(st)
	return true
}

func (r *stateRegistry) release(st *mailboxState) {
	r.mu.Lock()
	st.refs--
	detached := st.refs == 0 && r.m[st.key] != st // replaced (acquireOnce)
	last := st.refs == 0 && r.m[st.key] == st
	var evicted *mailboxState
	if last && !r.closed && st.lingers() {
		st.lingerTimer = time.AfterFunc(lingerFor, func() { r.expire(st) })
		r.idle = append(r.idle, st)
		if len(r.idle) > maxLingering {
			evicted = r.idle[0]
			r.dropLocked(evicted)
		}
		last = false
	} else if last {
		r.forgetLocked(st)
	}
	r.mu.Unlock()
	if last || detached {
		st.close()
	}
	if evicted != nil {
		evicted.close()
	}
}

// lingers reports whether st, loaded and large, is worth keeping.
func (st *mailboxState) lingers() bool {
	select {
	case <-st.ready:
	default:
		return false
	}
	if st.err != nil {
		return false
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	return len(st.uids) >= lingerMin
}

// expire drops st if it is still lingering when its time is up.
func (r *stateRegistry) expire(st *mailboxState) {
	r.mu.Lock()
	drop := st.refs == 0 && r.m[st.key] == st && slices.Contains(r.idle, st)
	if drop {
		r.dropLocked(st)
	}
	r.mu.Unlock()
	if drop {
		st.close()
	}
}

// unlingerLocked takes st off the idle list.
func (r *stateRegistry) unlingerLocked(st *mailboxState) {
	if st.lingerTimer != nil {
		st.lingerTimer.Stop()
		st.lingerTimer = nil
	}
	r.idle = slices.DeleteFunc(r.idle, func(x *mailboxState) bool { return x == st })
}

// dropLocked removes a lingering st from the registry; the caller closes
// it once r.mu is released.
func (r *stateRegistry) dropLocked(st *mailboxState) {
	r.unlingerLocked(st)
	if r.m[st.key] == st {
		r.forgetLocked(st)
	}
}

// forgetLocked removes st from the registry, keeping the keywords it
// announced for the mailbox's next state.
func (r *stateRegistry) forgetLocked(st *mailboxState) {
	delete(r.m, st.key)
	st.mu.Lock()
	kws := st.keywords
	st.mu.Unlock()
	if len(kws) == 0 {
		return
	}
	if r.announced == nil || len(r.announced) >= maxAnnounced {
		r.announced = make(map[stateKey][]imap.Flag)
	}
	r.announced[st.key] = slices.Clone(kws)
}

// announcedKeywords are the keywords the mailbox's earlier states announced.
func (r *stateRegistry) announcedKeywords(key stateKey) []imap.Flag {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.announced[key]
}

// closeIdle drops every lingering state and keeps any from lingering
// again: the server is shutting down and its store will close.
func (r *stateRegistry) closeIdle() {
	r.mu.Lock()
	r.closed = true
	idle := slices.Clone(r.idle)
	for _, st := range idle {
		r.dropLocked(st)
	}
	r.mu.Unlock()
	for _, st := range idle {
		st.close()
	}
}

func (st *mailboxState) close() {
	if st.stopWatch != nil {
		st.stopWatch()
	}
	if st.acct != nil {
		st.acct.Close()
	}
}

// load follows the mailstore contract: Watch first, then Snapshot, and drop
// events whose ModSeq the snapshot already covers.
func (st *mailboxState) load(ctx context.Context, store Store) error {
	acct, err := store.Open(ctx, st.key.account)
	if err != nil {
		return err
	}
	st.acct = acct
	st.stopWatch = acct.Watch(st.onEvent)
	snap, err := acct.Snapshot(ctx, st.key.mailbox)
	if err != nil {
		return err
	}
	announced := st.reg.announcedKeywords(st.key)

	st.mu.Lock()
	defer st.mu.Unlock()
	st.addKeywordsLocked(announced)
	st.baseModSeq = snap.HighestModSeq
	st.modseq = snap.HighestModSeq
	st.uids = make([]imap.UID, len(snap.Messages))
	st.seen = make([]bool, len(snap.Messages))
	for i, m := range snap.Messages {
		st.uids[i] = m.UID
		st.seen[i] = hasFlag(m.Flags, imap.FlagSeen)
		st.addKeywordsLocked(m.Flags)
	}
	st.uidNext = snap.UIDNext
	st.uidValidity = snap.Mailbox.UIDValidity
	st.tracker = imapserver.NewMailboxTracker(uint32(len(st.uids)))
	st.loaded = true
	pending := st.pending
	st.pending = nil
	for _, ev := range pending {
		if ev.ModSeq > st.baseModSeq {
			st.applyLocked(ev)
		}
	}
	return nil
}

// onEvent runs on the committing goroutine: it takes only our own lock and
// the trackers' (which never block), and never calls the store.
func (st *mailboxState) onEvent(ev mailstore.Event) {
	if ev.MailboxID != st.key.mailbox {
		return
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	// This runs on the store's committing goroutine (a delivery, another
	// protocol): whatever goes wrong here must not take it down.
	defer func() {
		if v := recover(); v != nil {
			st.reg.log.Error("mailbox event handler panicked", "mailbox", st.key.mailbox,
				"err", fmt.Errorf("%v", v), "stack", string(debug.Stack()))
		}
	}()
	if !st.loaded {
		st.pending = append(st.pending, ev)
		return
	}
	if ev.ModSeq <= st.baseModSeq {
		return
	}
	st.applyLocked(ev)
}

// applyLocked applies an event to the view and wakes those waiting on
// changed if the view or its modseq moved (catchUp waits for the modseq
// of events that change no message it holds, such as a RENAME's mailbox
// event: the rename raises the mailbox's HIGHESTMODSEQ).
func (st *mailboxState) applyLocked(ev mailstore.Event) {
	raised := ev.ModSeq > st.modseq
	st.modseq = max(st.modseq, ev.ModSeq)
	if !st.applyViewLocked(ev) && !raised {
		return
	}
	close(st.changed)
	st.changed = make(chan struct{})
}

// applyViewLocked applies an event to the UIDs and the trackers, and
// reports whether it changed anything.
func (st *mailboxState) applyViewLocked(ev mailstore.Event) bool {
	i, found := st.indexLocked(ev.UID)
	switch ev.Kind {
	case mailstore.EventAppend:
		if found {
			return false
		}
		if i != len(st.uids) {
			// UIDs only grow, so a new message always goes last; anything
			// else would break every session's sequence numbers.
			st.reg.log.Error("out-of-order append event ignored",
				"mailbox", st.key.mailbox, "uid", ev.UID, "err", fmt.Errorf("last uid %d", st.uids[len(st.uids)-1]))
			return false
		}
		if st.addKeywordsLocked(ev.Flags) {
			st.tracker.QueueMailboxFlags(st.flagsLocked())
		}
		st.uids = append(st.uids, ev.UID)
		st.seen = append(st.seen, hasFlag(ev.Flags, imap.FlagSeen))
		st.markDirtyLocked(ev.UID)
		if ev.UID >= st.uidNext {
			st.uidNext = ev.UID + 1
		}
		// One EXISTS per message: SessionTracker.EncodeSeqNum only handles
		// increments of one.
		st.tracker.QueueNumMessages(uint32(len(st.uids)))
	case mailstore.EventFlags:
		if !found {
			return false
		}
		st.seen[i] = hasFlag(ev.Flags, imap.FlagSeen)
		st.markDirtyLocked(ev.UID)
		src := st.storeSourceLocked(ev.UID)
		if st.addKeywordsLocked(ev.Flags) {
			// A storing session writes FLAGS itself, before its FETCH.
			st.tracker.QueueMailboxFlagsFrom(st.flagsLocked(), src)
		}
		flags := ev.Flags
		if flags == nil {
			flags = []imap.Flag{}
		}
		st.tracker.QueueMessageFlagsModSeq(uint32(i+1), ev.UID, flags, ev.ModSeq, src)
	case mailstore.EventExpunge:
		if !found {
			return false
		}
		st.uids = slices.Delete(st.uids, i, i+1)
		st.seen = slices.Delete(st.seen, i, i+1)
		// With its UID: for the REMOVEFROM that precedes the EXPUNGE
		// of a message in a live SEARCH result (searchctx.go), and for
		// VANISHED after ENABLE QRESYNC.
		st.tracker.QueueExpungeUID(uint32(i+1), ev.UID)
	default:
		return false
	}
	return true
}

// maxAnnouncedKeywords bounds the keywords FLAGS lists for one mailbox
// (the store bounds those of one message). Clients use a handful.
const maxAnnouncedKeywords = 1000

// addKeywordsLocked records the keywords among flags that the mailbox's
// FLAGS does not list yet, and reports whether there were any.
func (st *mailboxState) addKeywordsLocked(flags []imap.Flag) bool {
	added := false
	for _, f := range flags {
		if strings.HasPrefix(string(f), "\\") || len(st.keywords) >= maxAnnouncedKeywords {
			continue
		}
		if !slices.ContainsFunc(st.keywords, func(k imap.Flag) bool { return strings.EqualFold(string(k), string(f)) }) {
			st.keywords = append(st.keywords, f)
			added = true
		}
	}
	return added
}

// flagsLocked is the mailbox's FLAGS: the system flags, then its keywords.
func (st *mailboxState) flagsLocked() []imap.Flag {
	return append(slices.Clone(systemFlags), st.keywords...)
}

// indexLocked finds uid in the server view.
func (st *mailboxState) indexLocked(uid imap.UID) (int, bool) {
	i := sort.Search(len(st.uids), func(i int) bool { return st.uids[i] >= uid })
	return i, i < len(st.uids) && st.uids[i] == uid
}

func (st *mailboxState) storeSourceLocked(uid imap.UID) *imapserver.SessionTracker {
	var src *imapserver.SessionTracker
	for _, in := range st.storing {
		if in.uids.Contains(uid) {
			if src != nil && src != in.tracker {
				return nil // two sessions changing it at once: tell both
			}
			src = in.tracker
		}
	}
	return src
}

func (st *mailboxState) beginStore(in *inflightStore) {
	st.mu.Lock()
	st.storing = append(st.storing, in)
	st.mu.Unlock()
}

func (st *mailboxState) endStore(in *inflightStore) {
	st.mu.Lock()
	st.storing = slices.DeleteFunc(st.storing, func(x *inflightStore) bool { return x == in })
	st.mu.Unlock()
}

// catchUp waits until the state has applied every change the store had
// committed when it was called, and reports whether it did within
// catchUpWait. A session joining a state that others have selected must
// not see less than the store holds: a change made through another Store
// (another node sharing a PostgreSQL store) reaches this one's watchers a
// little after its commit, and one made by another process on the
// embedded store (posthouse admin) not at all.
func (st *mailboxState) catchUp(ctx context.Context) bool {
	status, err := st.acct.Status(ctx, st.key.mailbox)
	if err != nil {
		// The SELECT itself finds out, or goes on with what it has.
		return true
	}
	var modseq uint64
	err = st.await(ctx, catchUpWait, func() bool {
		modseq = st.modseq
		return st.modseq >= status.HighestModSeq || st.uidValidity != status.UIDValidity
	})
	st.mu.Lock()
	fresh := st.uidValidity == status.UIDValidity
	st.mu.Unlock()
	if err == errLate || !fresh {
		st.reg.log.Info("mailbox state behind the store; loading it afresh",
			"user", st.key.account, "mailbox", st.key.mailbox, "modseq", modseq, "store_modseq", status.HighestModSeq)
		return false
	}
	return true
}

// waitGone waits until none of uids is in the server view, or ownChangeWait
// passes, or ctx ends.
func (st *mailboxState) waitGone(ctx context.Context, uids []imap.UID) {
	err := st.await(ctx, ownChangeWait, func() bool {
		for _, uid := range uids {
			if _, ok := st.indexLocked(uid); ok {
				return false
			}
		}
		return true
	})
	if err == errLate {
		st.reg.log.Warn("expunge events late", "mailbox", st.key.mailbox)
	}
}

// errLate: what await waited for did not happen in time.
var errLate = errors.New("imapd: mailbox events late")

// await waits until done, called under st.mu at once and after each
// change applied, reports true: nil; d passing: errLate; ctx ending: its
// error.
func (st *mailboxState) await(ctx context.Context, d time.Duration, done func() bool) error {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		st.mu.Lock()
		ok := done()
		changed := st.changed
		st.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-changed:
		case <-timer.C:
			return errLate
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func hasFlag(flags []imap.Flag, f imap.Flag) bool {
	for _, x := range flags {
		if x == f {
			return true
		}
	}
	return false
}
