package storetest

import (
	"slices"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/posthouse/posthouse/mailstore"
)

// testEvents covers Watch: kinds, order, modseqs, and stopping.
func testEvents(t *testing.T, b Backend) {
	t.Run("CommitOrder", func(t *testing.T) {
		f := newFixture(t, b)
		a1, a2, watcher := f.open(t, alice), f.open(t, alice), f.open(t, alice)
		rec, _ := watch(t, watcher)
		in := mailbox(t, a1, mailstore.Inbox)
		seen := 0
		// step runs op and checks the events it caused: their kinds,
		// mailboxes and UIDs, in order, each with the modseq its
		// mailbox has after the step.
		step := func(name string, op func() []mailstore.Event) {
			t.Helper()
			want := op()
			evs := rec.wait(t, seen+len(want))[seen:]
			seen += len(want)
			if got, w := eventStrings(evs), eventStrings(want); !slices.Equal(got, w) {
				t.Errorf("%s: events %v, want %v", name, got, w)
				return
			}
			lastOf := map[int64]int{} // the step's last message event per mailbox
			for i, e := range evs {
				if want[i].Flags != nil && !sameFlags(e.Flags, want[i].Flags) {
					t.Errorf("%s: event %+v, want flags %v", name, e, want[i].Flags)
				}
				if e.Kind != mailstore.EventMailboxes {
					lastOf[e.MailboxID] = i
				}
			}
			for id, i := range lastOf {
				if st := status(t, watcher, id); evs[i].ModSeq != st.HighestModSeq {
					t.Errorf("%s: last event %+v, mailbox's modseq %d after it", name, evs[i], st.HighestModSeq)
				}
			}
		}
		var proj mailstore.Mailbox
		step("deliver", func() []mailstore.Event {
			deliver(t, a1, message("one", "x"))
			return []mailstore.Event{{Kind: mailstore.EventAppend, MailboxID: in.ID, UID: 1, Flags: []imap.Flag{}}}
		})
		step("deliver with flags", func() []mailstore.Event {
			_, err := a2.Deliver(t.Context(), strings.NewReader(message("two", "x")), mailstore.DeliverOptions{Flags: []imap.Flag{imap.FlagFlagged}})
			if err != nil {
				t.Fatal(err)
			}
			return []mailstore.Event{{Kind: mailstore.EventAppend, MailboxID: in.ID, UID: 2, Flags: []imap.Flag{imap.FlagFlagged}}}
		})
		step("create", func() []mailstore.Event {
			proj = create(t, a2, "Proj")
			return []mailstore.Event{{Kind: mailstore.EventMailboxes, MailboxID: proj.ID}}
		})
		step("flags", func() []mailstore.Event {
			storeFlags(t, a1, in.ID, imap.UIDSetNum(1, 2), mailstore.FlagsAdd, imap.FlagSeen)
			return []mailstore.Event{
				{Kind: mailstore.EventFlags, MailboxID: in.ID, UID: 1, Flags: []imap.Flag{imap.FlagSeen}},
				{Kind: mailstore.EventFlags, MailboxID: in.ID, UID: 2, Flags: []imap.Flag{imap.FlagSeen, imap.FlagFlagged}},
			}
		})
		step("append", func() []mailstore.Event {
			appendMsg(t, a2, "Proj", message("three", "x"), mailstore.AppendOptions{Flags: []imap.Flag{"Kw"}})
			return []mailstore.Event{{Kind: mailstore.EventAppend, MailboxID: proj.ID, UID: 1, Flags: []imap.Flag{"Kw"}}}
		})
		step("copy", func() []mailstore.Event {
			if _, err := a1.Copy(t.Context(), in.ID, imap.UIDSetNum(2), "Proj"); err != nil {
				t.Fatal(err)
			}
			return []mailstore.Event{{Kind: mailstore.EventAppend, MailboxID: proj.ID, UID: 2, Flags: []imap.Flag{imap.FlagSeen, imap.FlagFlagged}}}
		})
		step("expunge", func() []mailstore.Event {
			storeFlags(t, a1, in.ID, imap.UIDSetNum(1), mailstore.FlagsAdd, imap.FlagDeleted)
			expunge(t, a1, in.ID, nil)
			return []mailstore.Event{
				{Kind: mailstore.EventFlags, MailboxID: in.ID, UID: 1, Flags: []imap.Flag{imap.FlagSeen, imap.FlagDeleted}},
				{Kind: mailstore.EventExpunge, MailboxID: in.ID, UID: 1},
			}
		})
		step("rename", func() []mailstore.Event {
			if err := a2.RenameMailbox(t.Context(), "Proj", "Project"); err != nil {
				t.Fatal(err)
			}
			return []mailstore.Event{{Kind: mailstore.EventMailboxes, MailboxID: proj.ID}}
		})
		step("subscribe", func() []mailstore.Event {
			if err := a1.SetSubscribed(t.Context(), "Project", true); err != nil {
				t.Fatal(err)
			}
			return []mailstore.Event{{Kind: mailstore.EventMailboxes, MailboxID: proj.ID}}
		})
		step("delete", func() []mailstore.Event {
			if err := a1.DeleteMailbox(t.Context(), "Project"); err != nil {
				t.Fatal(err)
			}
			return []mailstore.Event{{Kind: mailstore.EventMailboxes, MailboxID: proj.ID}}
		})
		// Per mailbox, modseqs never go back.
		last := map[int64]uint64{}
		for _, e := range rec.all() {
			if e.ModSeq < last[e.MailboxID] {
				t.Errorf("event %+v: modseq below the mailbox's earlier %d", e, last[e.MailboxID])
			}
			last[e.MailboxID] = e.ModSeq
		}
	})

	t.Run("BeforeReturn", func(t *testing.T) {
		// imapd sends a command's EXISTS, EXPUNGE and FETCH responses
		// from the events it caused, before the tagged reply: for changes
		// made through this Store, the events are delivered when the
		// call returns. No waiting here.
		f := newFixture(t, b)
		acc, watcher := f.open(t, alice), f.open(t, alice)
		rec, _ := watch(t, watcher)
		in := mailbox(t, acc, mailstore.Inbox)
		ops := []struct {
			name string
			op   func()
			kind mailstore.EventKind
		}{
			{"Deliver", func() { deliver(t, acc, message("m", "x")) }, mailstore.EventAppend},
			{"Append", func() { appendMsg(t, acc, mailstore.Inbox, message("m", "x"), mailstore.AppendOptions{}) }, mailstore.EventAppend},
			{"StoreFlags", func() { storeFlags(t, acc, in.ID, imap.UIDSetNum(1), mailstore.FlagsAdd, imap.FlagDeleted) }, mailstore.EventFlags},
			{"Expunge", func() { expunge(t, acc, in.ID, nil) }, mailstore.EventExpunge},
			{"Copy", func() {
				if _, err := acc.Copy(t.Context(), in.ID, allUIDs, "Archive"); err != nil {
					t.Fatal(err)
				}
			}, mailstore.EventAppend},
			{"Move", func() {
				if _, err := acc.Move(t.Context(), in.ID, allUIDs, "Trash"); err != nil {
					t.Fatal(err)
				}
			}, mailstore.EventExpunge},
			{"CreateMailbox", func() { create(t, acc, "New") }, mailstore.EventMailboxes},
			{"RenameMailbox", func() {
				if err := acc.RenameMailbox(t.Context(), "New", "Newer"); err != nil {
					t.Fatal(err)
				}
			}, mailstore.EventMailboxes},
			{"DeleteMailbox", func() {
				if err := acc.DeleteMailbox(t.Context(), "Newer"); err != nil {
					t.Fatal(err)
				}
			}, mailstore.EventMailboxes},
		}
		for _, o := range ops {
			rec.reset()
			o.op()
			evs := rec.all()
			if len(evs) == 0 || evs[len(evs)-1].Kind != o.kind {
				t.Errorf("%s returned with events %v delivered, want its last one of kind %d", o.name, eventStrings(evs), o.kind)
			}
		}
	})

	t.Run("Stop", func(t *testing.T) {
		_, acc := newAccount(t, b)
		stopped, stop := watch(t, acc)
		live, _ := watch(t, acc)
		deliver(t, acc, message("both", "x"))
		stopped.wait(t, 1)
		live.wait(t, 1)
		stop()
		stop() // twice is harmless
		deliver(t, acc, message("live only", "x"))
		live.wait(t, 2)
		if n := len(stopped.all()); n != 1 {
			t.Errorf("a stopped watch got %d events, want 1 (before the stop)", n)
		}
	})

	t.Run("CloseEndsWatches", func(t *testing.T) {
		f := newFixture(t, b)
		closing, other := f.open(t, alice), f.open(t, alice)
		gone, _ := watch(t, closing)
		live, _ := watch(t, other)
		if err := closing.Close(); err != nil {
			t.Fatal(err)
		}
		deliver(t, other, message("after close", "x"))
		live.wait(t, 1)
		if n := len(gone.all()); n != 0 {
			t.Errorf("a closed handle's watch got %d events", n)
		}
	})
}
