package postgres

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/posthouse/posthouse/internal/pgtest"
	"github.com/posthouse/posthouse/mailstore"
)

// failAfter bounds waits for events from another node: a failure bound
// only, never a measure.
const failAfter = 10 * time.Second

const testMsg = "From: bob@example.net\r\nTo: alice@example.org\r\nSubject: hi\r\n\r\nhello\r\n"

// twoNodes opens two Stores on one database: two Posthouse processes.
func twoNodes(t *testing.T) (*Store, *Store) {
	t.Helper()
	dsn := pgtest.NewDatabase(t)
	a := openTestStore(t, Options{DSN: dsn})
	t.Cleanup(func() { a.Close() })
	b := openTestStore(t, Options{DSN: dsn})
	t.Cleanup(func() { b.Close() })
	return a, b
}

func openAccount(t *testing.T, s *Store, name string) mailstore.Account {
	t.Helper()
	acc, err := s.Open(t.Context(), name)
	if err != nil {
		t.Fatalf("Open(%q): %v", name, err)
	}
	t.Cleanup(func() { acc.Close() })
	return acc
}

// eventLog collects a watch's events and signals each.
type eventLog struct {
	mu  sync.Mutex
	evs []mailstore.Event
	ch  chan struct{}
}

func watchLog(t *testing.T, acc mailstore.Account) *eventLog {
	l := &eventLog{ch: make(chan struct{}, 1000)}
	stop := acc.Watch(func(e mailstore.Event) {
		l.mu.Lock()
		l.evs = append(l.evs, e)
		l.mu.Unlock()
		l.ch <- struct{}{}
	})
	t.Cleanup(stop)
	return l
}

// waitFor waits until cond holds for the events, failing after failAfter.
func (l *eventLog) waitFor(t *testing.T, what string, cond func([]mailstore.Event) bool) []mailstore.Event {
	t.Helper()
	deadline := time.NewTimer(failAfter)
	defer deadline.Stop()
	for {
		l.mu.Lock()
		evs := append([]mailstore.Event(nil), l.evs...)
		l.mu.Unlock()
		if cond(evs) {
			return evs
		}
		select {
		case <-l.ch:
		case <-deadline.C:
			t.Fatalf("no %s within %v; events: %+v", what, failAfter, evs)
		}
	}
}

func (l *eventLog) all() []mailstore.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]mailstore.Event(nil), l.evs...)
}

// TestNodesSeeDeliveries: a delivery on node A reaches a watcher on node B
// (an IDLE there), with the UID and modseq node A's call returned and saw.
func TestNodesSeeDeliveries(t *testing.T) {
	nodeA, nodeB := twoNodes(t)
	accA := openAccount(t, nodeA, "alice@example.org")
	accB := openAccount(t, nodeB, "alice@example.org")
	logA, logB := watchLog(t, accA), watchLog(t, accB)

	res, err := accA.Deliver(t.Context(), strings.NewReader(testMsg), mailstore.DeliverOptions{Flags: []imap.Flag{imap.FlagFlagged}})
	if err != nil {
		t.Fatal(err)
	}
	evs := logB.waitFor(t, "EventAppend on node B", func(evs []mailstore.Event) bool { return len(evs) >= 1 })
	e := evs[0]
	if e.Kind != mailstore.EventAppend || e.MailboxID != res.MailboxID || e.UID != res.UID ||
		len(e.Flags) != 1 || e.Flags[0] != imap.FlagFlagged {
		t.Errorf("node B saw %+v, want an append of UID %d in mailbox %d with \\Flagged", e, res.UID, res.MailboxID)
	}
	snap, err := accB.Snapshot(t.Context(), res.MailboxID)
	if err != nil {
		t.Fatal(err)
	}
	if e.ModSeq != snap.HighestModSeq {
		t.Errorf("event modseq %d, node B's snapshot says %d", e.ModSeq, snap.HighestModSeq)
	}

	// Node B expunges: node A's watcher sees it, and node A's own
	// append was delivered once, at commit, not again by its echo.
	if _, err := accB.StoreFlags(t.Context(), res.MailboxID, imap.UIDSetNum(res.UID), mailstore.FlagsAdd, []imap.Flag{imap.FlagDeleted}, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := accB.Expunge(t.Context(), res.MailboxID, nil); err != nil {
		t.Fatal(err)
	}
	logA.waitFor(t, "EventExpunge on node A", func(evs []mailstore.Event) bool {
		return len(evs) > 0 && evs[len(evs)-1].Kind == mailstore.EventExpunge
	})
	var kinds []mailstore.EventKind
	for _, e := range logA.all() {
		kinds = append(kinds, e.Kind)
	}
	want := []mailstore.EventKind{mailstore.EventAppend, mailstore.EventFlags, mailstore.EventExpunge}
	if len(kinds) != len(want) || kinds[0] != want[0] || kinds[1] != want[1] || kinds[2] != want[2] {
		t.Errorf("node A saw event kinds %v, want %v (its own append once)", kinds, want)
	}
	// Node B's own changes reached its watcher once each, too.
	logB.waitFor(t, "node B's events", func(evs []mailstore.Event) bool { return len(evs) >= 3 })
	if n := len(logB.all()); n != 3 {
		t.Errorf("node B saw %d events, want 3: %+v", n, logB.all())
	}
}

// TestNodesManyEvents: a change with more events than one notification
// carries (an expunge of many messages) reaches the other node whole.
func TestNodesManyEvents(t *testing.T) {
	nodeA, nodeB := twoNodes(t)
	accA := openAccount(t, nodeA, "alice@example.org")
	accB := openAccount(t, nodeB, "alice@example.org")
	const n = 600
	var mb int64
	for range n {
		res, err := accA.Deliver(t.Context(), strings.NewReader(testMsg), mailstore.DeliverOptions{})
		if err != nil {
			t.Fatal(err)
		}
		mb = res.MailboxID
	}
	logB := watchLog(t, accB)
	res, err := accA.StoreFlags(t.Context(), mb, imap.UIDSet{{Start: 1, Stop: 0}}, mailstore.FlagsAdd, []imap.Flag{imap.FlagDeleted, "SomeKeyword"}, 0)
	if err != nil || len(res.Updated) != n {
		t.Fatalf("StoreFlags: %d updated, %v", len(res.Updated), err)
	}
	// Node B may still be receiving the appends: look at flag events.
	flagEvents := func(evs []mailstore.Event) []mailstore.Event {
		var out []mailstore.Event
		for _, e := range evs {
			if e.Kind != mailstore.EventAppend {
				out = append(out, e)
			}
		}
		return out
	}
	evs := flagEvents(logB.waitFor(t, "every flag event on node B", func(evs []mailstore.Event) bool { return len(flagEvents(evs)) >= n }))
	if len(evs) != n {
		t.Fatalf("node B saw %d flag events, want %d", len(evs), n)
	}
	for i, e := range evs {
		if e.Kind != mailstore.EventFlags || e.UID != imap.UID(i+1) || len(e.Flags) != 2 {
			t.Fatalf("event %d on node B: %+v", i, e)
		}
	}
}

// TestNodesMaildropLock: a POP3 lock held on node A is refused on node B
// until A releases it, and a node that closes releases its locks.
func TestNodesMaildropLock(t *testing.T) {
	nodeA, nodeB := twoNodes(t)
	accA := openAccount(t, nodeA, "alice@example.org")
	accB := openAccount(t, nodeB, "alice@example.org")
	unlock, err := accA.LockMaildrop(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := accB.LockMaildrop(t.Context()); !errors.Is(err, mailstore.ErrInUse) {
		t.Fatalf("lock on node B while A holds it: %v, want ErrInUse", err)
	}
	other := openAccount(t, nodeB, "bob@example.org")
	unlockBob, err := other.LockMaildrop(t.Context())
	if err != nil {
		t.Fatalf("another account's lock on node B: %v", err)
	}
	unlockBob()
	unlock()
	unlock() // a second call does nothing
	unlockB, err := accB.LockMaildrop(t.Context())
	if err != nil {
		t.Fatalf("lock on node B after A released it: %v", err)
	}
	if _, err := accA.LockMaildrop(t.Context()); !errors.Is(err, mailstore.ErrInUse) {
		t.Fatalf("lock on node A while B holds it: %v, want ErrInUse", err)
	}
	_ = unlockB
	// Node B stops (its connection goes): the lock is free.
	if err := nodeB.Close(); err != nil {
		t.Fatal(err)
	}
	unlockA, err := accA.LockMaildrop(t.Context())
	if err != nil {
		t.Fatalf("lock on node A after node B closed: %v", err)
	}
	unlockA()
}

// TestNodesRemove: an account removed on node A ends node B's handles.
func TestNodesRemove(t *testing.T) {
	nodeA, nodeB := twoNodes(t)
	openAccount(t, nodeA, "alice@example.org")
	accB := openAccount(t, nodeB, "alice@example.org")
	if err := nodeA.Remove(t.Context(), "alice@example.org"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(failAfter)
	for {
		_, err := accB.ListMailboxes(t.Context())
		if errors.Is(err, mailstore.ErrClosed) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("node B's handle still works after the account was removed on node A: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestMoveWithinMailbox: a MOVE of a message into its own mailbox is
// published as its expunge, then the new UID's append (a session sends
// EXPUNGE then EXISTS), sharing one modseq.
func TestMoveWithinMailbox(t *testing.T) {
	s := openTestStore(t, Options{DSN: pgtest.NewDatabase(t)})
	t.Cleanup(func() { s.Close() })
	acc := openAccount(t, s, "alice@example.org")
	res, err := acc.Deliver(t.Context(), strings.NewReader(testMsg), mailstore.DeliverOptions{})
	if err != nil {
		t.Fatal(err)
	}
	log := watchLog(t, acc)
	cr, err := acc.Move(t.Context(), res.MailboxID, imap.UIDSetNum(res.UID), mailstore.Inbox)
	if err != nil {
		t.Fatal(err)
	}
	evs := log.all() // delivered before Move returned
	if len(evs) != 2 || evs[0].Kind != mailstore.EventExpunge || evs[0].UID != res.UID ||
		evs[1].Kind != mailstore.EventAppend || evs[1].UID != cr.DestUIDs[0] || evs[0].ModSeq != evs[1].ModSeq {
		t.Fatalf("events of a move within INBOX: %+v; want expunge of %d, then append of %v, one modseq", evs, res.UID, cr.DestUIDs)
	}
	snap, err := acc.Snapshot(t.Context(), res.MailboxID)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Messages) != 1 || snap.Messages[0].UID != cr.DestUIDs[0] || snap.HighestModSeq != evs[0].ModSeq {
		t.Errorf("after the move: %+v, want UID %d at modseq %d", snap, cr.DestUIDs[0], evs[0].ModSeq)
	}
}

var (
	allUIDs     = imap.UIDSet{{Start: 1, Stop: 0}}
	deletedFlag = []imap.Flag{imap.FlagDeleted}
)

func imapUID(u imap.UID) imap.UIDSet { return imap.UIDSetNum(u) }
