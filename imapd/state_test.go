package imapd

import (
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/posthouse/posthouse/mailstore"
)

// newTestState builds a loaded mailbox state with UIDs 1..n at modseq 10.
func newTestState(n int) *mailboxState {
	st := &mailboxState{
		key:     stateKey{"alice@example.org", 7},
		reg:     &stateRegistry{log: slog.New(slog.DiscardHandler)},
		changed: make(chan struct{}),
		loaded:  true,
		uidNext: imap.UID(n + 1),
	}
	st.baseModSeq = 10
	for i := 1; i <= n; i++ {
		st.uids = append(st.uids, imap.UID(i))
		st.seen = append(st.seen, false)
	}
	st.tracker = imapserver.NewMailboxTracker(uint32(n))
	return st
}

func ev(kind mailstore.EventKind, uid imap.UID, modseq uint64) mailstore.Event {
	return mailstore.Event{Kind: kind, MailboxID: 7, UID: uid, ModSeq: modseq}
}

// TestTrackerTable checks how store events change the server view and how a
// session that has not polled yet still addresses messages in its own
// numbering.
func TestTrackerTable(t *testing.T) {
	type want struct {
		set  imap.NumSet
		hits []target
	}
	seq := func(s string) imap.NumSet {
		var set imap.SeqSet
		for _, r := range parseRanges(s) {
			set = append(set, imap.SeqRange{Start: r[0], Stop: r[1]})
		}
		return set
	}
	uid := func(s string) imap.NumSet {
		var set imap.UIDSet
		for _, r := range parseRanges(s) {
			set = append(set, imap.UIDRange{Start: imap.UID(r[0]), Stop: imap.UID(r[1])})
		}
		return set
	}
	for _, tc := range []struct {
		name      string
		n         int
		events    []mailstore.Event
		serverUID []imap.UID
		clientMax uint32
		checks    []want
	}{
		{
			name: "no changes", n: 5,
			serverUID: []imap.UID{1, 2, 3, 4, 5}, clientMax: 5,
			checks: []want{
				{seq("2:4"), []target{{2, 2}, {3, 3}, {4, 4}}},
				{seq("4:*"), []target{{4, 4}, {5, 5}}},
				{seq("*:4"), []target{{4, 4}, {5, 5}}},
				{seq("6:9"), nil},
				{uid("3,1"), []target{{1, 1}, {3, 3}}},
				{uid("9:*"), []target{{5, 5}}},
			},
		},
		{
			name: "pending expunge keeps the client's numbers", n: 5,
			events:    []mailstore.Event{ev(mailstore.EventExpunge, 2, 11)},
			serverUID: []imap.UID{1, 3, 4, 5}, clientMax: 5,
			checks: []want{
				{seq("1:*"), []target{{1, 1}, {3, 3}, {4, 4}, {5, 5}}},
				{seq("2"), nil},
				{uid("1:*"), []target{{1, 1}, {3, 3}, {4, 4}, {5, 5}}},
			},
		},
		{
			name: "new message not yet announced", n: 3,
			events:    []mailstore.Event{ev(mailstore.EventAppend, 4, 11)},
			serverUID: []imap.UID{1, 2, 3, 4}, clientMax: 3,
			checks: []want{
				{seq("1:*"), []target{{1, 1}, {2, 2}, {3, 3}}},
				{uid("4"), nil},
				{seq("4"), nil},
			},
		},
		{
			name: "expunge of the last, then a delivery", n: 3,
			events:    []mailstore.Event{ev(mailstore.EventExpunge, 3, 11), ev(mailstore.EventAppend, 4, 12)},
			serverUID: []imap.UID{1, 2, 4}, clientMax: 2,
			checks: []want{
				{seq("2:*"), []target{{2, 2}}},
				{seq("3"), nil},
				{uid("1:*"), []target{{1, 1}, {2, 2}}},
			},
		},
		{
			name: "two expunges in the middle", n: 6,
			events:    []mailstore.Event{ev(mailstore.EventExpunge, 2, 11), ev(mailstore.EventExpunge, 4, 11)},
			serverUID: []imap.UID{1, 3, 5, 6}, clientMax: 6,
			checks: []want{
				{seq("1:6"), []target{{1, 1}, {3, 3}, {5, 5}, {6, 6}}},
				{uid("5"), []target{{5, 5}}},
			},
		},
		{
			name: "events the snapshot covers are dropped", n: 3,
			events:    []mailstore.Event{ev(mailstore.EventExpunge, 2, 10), ev(mailstore.EventAppend, 3, 12), ev(mailstore.EventAppend, 1, 12)},
			serverUID: []imap.UID{1, 2, 3}, clientMax: 3,
			checks: []want{{seq("2"), []target{{2, 2}}}},
		},
		{
			name: "other mailboxes and unknown UIDs are ignored", n: 2,
			events: []mailstore.Event{
				{Kind: mailstore.EventExpunge, MailboxID: 8, UID: 1, ModSeq: 20},
				ev(mailstore.EventExpunge, 99, 21),
				ev(mailstore.EventFlags, 98, 22),
			},
			serverUID: []imap.UID{1, 2}, clientMax: 2,
			checks: []want{{seq("1:*"), []target{{1, 1}, {2, 2}}}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := newTestState(tc.n)
			sel := &selected{st: st, tracker: st.tracker.NewSession()}
			for _, e := range tc.events {
				st.onEvent(e)
			}
			if !slices.Equal(st.uids, tc.serverUID) {
				t.Errorf("server view %v, want %v", st.uids, tc.serverUID)
			}
			if len(st.seen) != len(st.uids) {
				t.Errorf("seen has %d entries for %d messages", len(st.seen), len(st.uids))
			}
			st.mu.Lock()
			got := sel.clientMaxLocked()
			st.mu.Unlock()
			if got != tc.clientMax {
				t.Errorf("client max %d, want %d", got, tc.clientMax)
			}
			for _, c := range tc.checks {
				if got := sel.resolve(c.set); !slices.Equal(got, c.hits) {
					t.Errorf("resolve(%v) = %v, want %v", c.set, got, c.hits)
				}
			}
		})
	}
}

func TestStoreSourceIsNotEchoed(t *testing.T) {
	st := newTestState(3)
	own := st.tracker.NewSession()
	other := st.tracker.NewSession()
	in := &inflightStore{tracker: own, uids: imap.UIDSet{{Start: 2, Stop: 2}}}
	st.beginStore(in)
	st.mu.Lock()
	if src := st.storeSourceLocked(2); src != own {
		t.Errorf("source of UID 2 = %p, want own tracker %p", src, own)
	}
	if src := st.storeSourceLocked(3); src != nil {
		t.Errorf("source of UID 3 = %p, want nil", src)
	}
	st.mu.Unlock()
	in2 := &inflightStore{tracker: other, uids: imap.UIDSet{{Start: 1, Stop: 2}}}
	st.beginStore(in2)
	st.mu.Lock()
	if src := st.storeSourceLocked(2); src != nil {
		t.Errorf("two sessions storing UID 2: source %p, want nil (tell both)", src)
	}
	st.mu.Unlock()
	st.endStore(in)
	st.endStore(in2)
	if len(st.storing) != 0 {
		t.Errorf("storing not cleared: %v", st.storing)
	}
}

// parseRanges reads "1:3,5,7:*" ("*" is 0, as in go-imap's sets).
func parseRanges(s string) [][2]uint32 {
	num := func(x string) uint32 {
		if x == "*" {
			return 0
		}
		n, err := strconv.ParseUint(x, 10, 32)
		if err != nil {
			panic(err)
		}
		return uint32(n)
	}
	var out [][2]uint32
	for _, part := range strings.Split(s, ",") {
		lo, hi, ok := strings.Cut(part, ":")
		if !ok {
			hi = lo
		}
		out = append(out, [2]uint32{num(lo), num(hi)})
	}
	return out
}

// TestIdleStartsWithQueuedUpdates: an update queued before the session's
// Idle starts is written at once, not with the next change (go-imap patch).
func TestIdleStartsWithQueuedUpdates(t *testing.T) {
	ts := newTestServer(t)
	rc := ts.raw(t)
	rc.login("alice@example.org", "alicepw")
	rc.mustOK("SELECT INBOX")
	// Queue an EXISTS for this session without letting a poll write it:
	// FETCH polls only after it runs, so deliver while nothing reads.
	ts.deliver(t, "alice@example.org", "", testMessage(1))
	rc.send("I1 IDLE\r\n")
	var got []string
	for len(got) < 2 {
		got = append(got, rc.line())
	}
	if !hasLine(got, "* 1 EXISTS") {
		t.Errorf("IDLE did not start with the queued EXISTS: %q", got)
	}
	rc.send("DONE\r\n")
	rc.until("I1")
}
