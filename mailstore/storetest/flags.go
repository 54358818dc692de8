package storetest

import (
	"slices"
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/posthouse/posthouse/mailstore"
)

// testFlags covers StoreFlags: the three operations, keywords, modseqs,
// UNCHANGEDSINCE and the events of flag changes.
func testFlags(t *testing.T, b Backend) {
	t.Run("Ops", func(t *testing.T) {
		_, acc, in := newInbox(t, b)
		deliverN(t, acc, 3, message("m", "x"))
		type step struct {
			name  string
			set   imap.UIDSet
			op    mailstore.FlagOp
			flags []imap.Flag
			want  map[imap.UID][]imap.Flag // Updated, with flags after
			after map[imap.UID][]imap.Flag // every message's flags after the step
		}
		none := []imap.Flag{}
		steps := []step{
			{
				name: "add to existing and missing UIDs", set: imap.UIDSetNum(1, 2, 9), op: mailstore.FlagsAdd,
				flags: []imap.Flag{imap.FlagSeen, "Work"},
				want:  map[imap.UID][]imap.Flag{1: {imap.FlagSeen, "Work"}, 2: {imap.FlagSeen, "Work"}},
				after: map[imap.UID][]imap.Flag{1: {imap.FlagSeen, "Work"}, 2: {imap.FlagSeen, "Work"}, 3: none},
			},
			{
				name: "system flags in any case, Recent ignored", set: imap.UIDSetNum(3), op: mailstore.FlagsAdd,
				flags: []imap.Flag{`\flagged`, `\ANSWERED`, `\Recent`},
				want:  map[imap.UID][]imap.Flag{3: {imap.FlagFlagged, imap.FlagAnswered}},
				after: map[imap.UID][]imap.Flag{1: {imap.FlagSeen, "Work"}, 2: {imap.FlagSeen, "Work"}, 3: {imap.FlagFlagged, imap.FlagAnswered}},
			},
			{
				name: "remove keyword in another case", set: imap.UIDSetNum(1), op: mailstore.FlagsRemove,
				flags: []imap.Flag{"work", imap.FlagSeen},
				want:  map[imap.UID][]imap.Flag{1: none},
				after: map[imap.UID][]imap.Flag{1: none, 2: {imap.FlagSeen, "Work"}, 3: {imap.FlagFlagged, imap.FlagAnswered}},
			},
			{
				name: "add a keyword it has in another case", set: imap.UIDSetNum(2), op: mailstore.FlagsAdd,
				flags: []imap.Flag{"WORK"},
				want:  map[imap.UID][]imap.Flag{2: {imap.FlagSeen, "Work"}},
				after: map[imap.UID][]imap.Flag{1: none, 2: {imap.FlagSeen, "Work"}, 3: {imap.FlagFlagged, imap.FlagAnswered}},
			},
			{
				name: "set 2:*", set: imap.UIDSet{{Start: 2, Stop: 0}}, op: mailstore.FlagsSet,
				flags: []imap.Flag{imap.FlagDraft, "$Label1", "Other"},
				want:  map[imap.UID][]imap.Flag{2: {imap.FlagDraft, "$Label1", "Other"}, 3: {imap.FlagDraft, "$Label1", "Other"}},
				after: map[imap.UID][]imap.Flag{1: none, 2: {imap.FlagDraft, "$Label1", "Other"}, 3: {imap.FlagDraft, "$Label1", "Other"}},
			},
			{
				name: "set to nothing", set: imap.UIDSetNum(3), op: mailstore.FlagsSet,
				want:  map[imap.UID][]imap.Flag{3: none},
				after: map[imap.UID][]imap.Flag{1: none, 2: {imap.FlagDraft, "$Label1", "Other"}, 3: none},
			},
			{
				name: "remove what is not there", set: allUIDs, op: mailstore.FlagsRemove,
				flags: []imap.Flag{imap.FlagDeleted, "Absent"},
				want:  map[imap.UID][]imap.Flag{1: none, 2: {imap.FlagDraft, "$Label1", "Other"}, 3: none},
				after: map[imap.UID][]imap.Flag{1: none, 2: {imap.FlagDraft, "$Label1", "Other"}, 3: none},
			},
		}
		rec, _ := watch(t, acc)
		nevents := 0
		for _, s := range steps {
			t.Run(s.name, func(t *testing.T) {
				before := snapshot(t, acc, in.ID)
				old := map[imap.UID]mailstore.Summary{}
				for _, m := range before.Messages {
					old[m.UID] = m
				}
				res := storeFlags(t, acc, in.ID, s.set, s.op, s.flags...)
				if len(res.Modified) != 0 {
					t.Errorf("Modified = %v without UNCHANGEDSINCE", res.Modified)
				}
				var got []imap.UID
				var changed []mailstore.FlagUpdate
				for _, u := range res.Updated {
					got = append(got, u.UID)
					if !sameFlags(u.Flags, s.want[u.UID]) {
						t.Errorf("UID %d: flags after %v, want %v", u.UID, u.Flags, s.want[u.UID])
					}
					// A message whose flags change gets a new modseq
					// above the mailbox's; one whose flags stay keeps
					// its modseq.
					if sameFlags(old[u.UID].Flags, u.Flags) {
						if u.ModSeq != old[u.UID].ModSeq {
							t.Errorf("UID %d unchanged, but its modseq went from %d to %d", u.UID, old[u.UID].ModSeq, u.ModSeq)
						}
					} else {
						if u.ModSeq <= before.HighestModSeq {
							t.Errorf("UID %d changed with modseq %d, not above the mailbox's %d", u.UID, u.ModSeq, before.HighestModSeq)
						}
						changed = append(changed, u)
					}
				}
				if !slices.IsSorted(got) || len(got) != len(s.want) {
					t.Errorf("Updated UIDs %v, want %d ascending", got, len(s.want))
				}
				after := snapshot(t, acc, in.ID)
				for _, m := range after.Messages {
					if !sameFlags(m.Flags, s.after[m.UID]) {
						t.Errorf("UID %d: flags %v, want %v", m.UID, m.Flags, s.after[m.UID])
					}
				}
				var maxModSeq uint64
				for _, u := range changed {
					maxModSeq = max(maxModSeq, u.ModSeq)
				}
				if len(changed) == 0 && after.HighestModSeq != before.HighestModSeq {
					t.Errorf("a store that changed nothing moved HIGHESTMODSEQ from %d to %d", before.HighestModSeq, after.HighestModSeq)
				}
				if len(changed) > 0 && after.HighestModSeq != maxModSeq {
					t.Errorf("HIGHESTMODSEQ %d, the changed messages' newest modseq %d", after.HighestModSeq, maxModSeq)
				}
				// One EventFlags per changed message, with its flags
				// and modseq.
				nevents += len(changed)
				evs := rec.wait(t, nevents)[nevents-len(changed):]
				for i, u := range changed {
					e := evs[i]
					if e.Kind != mailstore.EventFlags || e.MailboxID != in.ID || e.UID != u.UID || e.ModSeq != u.ModSeq || !sameFlags(e.Flags, u.Flags) {
						t.Errorf("event %+v, want EventFlags for %+v", e, u)
					}
				}
				checkConsistent(t, acc, in.ID)
			})
		}
		if extra := len(rec.all()); extra != nevents {
			t.Errorf("%d flag events, want %d (one per changed message): %v", extra, nevents, eventStrings(rec.all()))
		}
	})

	t.Run("UnchangedSince", func(t *testing.T) {
		for _, c := range []struct {
			name  string
			op    mailstore.FlagOp
			flags []imap.Flag
		}{
			{"add system flag", mailstore.FlagsAdd, []imap.Flag{imap.FlagSeen}},
			{"add keyword", mailstore.FlagsAdd, []imap.Flag{"Done"}},
			{"set", mailstore.FlagsSet, []imap.Flag{imap.FlagAnswered}},
		} {
			t.Run(c.name, func(t *testing.T) {
				_, acc, in := newInbox(t, b)
				deliverN(t, acc, 3, message("m", "x"))
				view := status(t, acc, in.ID).HighestModSeq // the client's view
				mod := storeFlags(t, acc, in.ID, imap.UIDSetNum(2), mailstore.FlagsAdd, imap.FlagFlagged).Updated[0]
				res, err := acc.StoreFlags(t.Context(), in.ID, imap.UIDSetNum(1, 2, 3), c.op, c.flags, view)
				if err != nil {
					t.Fatal(err)
				}
				// RFC 7162 §3.1.3: a message changed after the view is
				// left alone and reported.
				if !slices.Equal(res.Modified, []imap.UID{2}) {
					t.Errorf("Modified = %v, want [2]", res.Modified)
				}
				var got []imap.UID
				for _, u := range res.Updated {
					got = append(got, u.UID)
					if !sameFlags(u.Flags, c.flags) {
						t.Errorf("UID %d flags %v, want %v", u.UID, u.Flags, c.flags)
					}
				}
				if !slices.Equal(got, []imap.UID{1, 3}) {
					t.Errorf("Updated UIDs %v, want [1 3]", got)
				}
				if m := fetchOne(t, acc, in.ID, 2, mailstore.FetchOptions{}); m.ModSeq != mod.ModSeq || !sameFlags(m.Flags, []imap.Flag{imap.FlagFlagged}) {
					t.Errorf("refused message changed: %+v", m)
				}
				// With the newer view, the message is changed.
				res, err = acc.StoreFlags(t.Context(), in.ID, imap.UIDSetNum(2), c.op, c.flags, mod.ModSeq)
				if err != nil || len(res.Modified) != 0 || len(res.Updated) != 1 || res.Updated[0].ModSeq <= mod.ModSeq {
					t.Errorf("StoreFlags with UNCHANGEDSINCE = its modseq: %+v, %v", res, err)
				}
				checkConsistent(t, acc, in.ID)
			})
		}
	})
}

// testExpunge covers Expunge and UID EXPUNGE.
func testExpunge(t *testing.T, b Backend) {
	t.Run("DeletedOnly", func(t *testing.T) {
		_, acc, in := newInbox(t, b)
		deliverN(t, acc, 5, message("m", "xyz"))
		storeFlags(t, acc, in.ID, imap.UIDSetNum(2, 3, 5), mailstore.FlagsAdd, imap.FlagDeleted)
		before := status(t, acc, in.ID)
		rec, _ := watch(t, acc)
		gone := expunge(t, acc, in.ID, nil)
		if !slices.Equal(gone, []imap.UID{2, 3, 5}) {
			t.Fatalf("Expunge = %v, want [2 3 5]", gone)
		}
		after := status(t, acc, in.ID)
		if after.Messages != 2 || after.Deleted != 0 || after.HighestModSeq <= before.HighestModSeq || after.UIDNext != before.UIDNext {
			t.Errorf("status after expunge %+v, before %+v", after, before)
		}
		if got := snapUIDs(snapshot(t, acc, in.ID)); !slices.Equal(got, []imap.UID{1, 4}) {
			t.Errorf("Snapshot after expunge = %v", got)
		}
		evs := rec.wait(t, 3)
		for i, e := range evs {
			if e.Kind != mailstore.EventExpunge || e.MailboxID != in.ID || e.UID != gone[i] || e.ModSeq != after.HighestModSeq {
				t.Errorf("event %d = %+v, want EventExpunge of %d at modseq %d", i, e, gone[i], after.HighestModSeq)
			}
		}
		checkUsage(t, acc)
	})

	t.Run("UIDExpunge", func(t *testing.T) {
		_, acc, in := newInbox(t, b)
		deliverN(t, acc, 5, message("m", "x"))
		storeFlags(t, acc, in.ID, imap.UIDSetNum(1, 4, 5), mailstore.FlagsAdd, imap.FlagDeleted)
		only := imap.UIDSetNum(2, 4, 9)
		if gone := expunge(t, acc, in.ID, &only); !slices.Equal(gone, []imap.UID{4}) {
			t.Errorf("UID EXPUNGE 2,4,9 = %v, want [4]", gone)
		}
		if gone := expunge(t, acc, in.ID, &imap.UIDSet{}); len(gone) != 0 {
			t.Errorf("UID EXPUNGE of an empty set = %v, want nothing", gone)
		}
		star := imap.UIDSet{{Start: 0, Stop: 0}}
		if gone := expunge(t, acc, in.ID, &star); !slices.Equal(gone, []imap.UID{5}) {
			t.Errorf("UID EXPUNGE * = %v, want [5]", gone)
		}
		if got := snapUIDs(snapshot(t, acc, in.ID)); !slices.Equal(got, []imap.UID{1, 2, 3}) {
			t.Errorf("after UID EXPUNGE: %v, want [1 2 3]", got)
		}
		checkUsage(t, acc)
	})

	t.Run("Nothing", func(t *testing.T) {
		_, acc, in := newInbox(t, b)
		deliver(t, acc, message("m", "x"))
		before := status(t, acc, in.ID)
		rec, _ := watch(t, acc)
		if gone := expunge(t, acc, in.ID, nil); len(gone) != 0 {
			t.Errorf("Expunge without \\Deleted messages = %v", gone)
		}
		if after := status(t, acc, in.ID); after != before {
			t.Errorf("an expunge of nothing changed the mailbox: %+v, was %+v", after, before)
		}
		// The next change's event is the first one: the empty expunge
		// sent none.
		storeFlags(t, acc, in.ID, imap.UIDSetNum(1), mailstore.FlagsAdd, imap.FlagSeen)
		if evs := rec.wait(t, 1); evs[0].Kind != mailstore.EventFlags {
			t.Errorf("first event after an empty expunge: %+v", evs[0])
		}
	})
}
