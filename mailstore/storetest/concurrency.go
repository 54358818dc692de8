package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/posthouse/posthouse/mailstore"
)

// testConcurrency covers many sessions at once on one account: parallel
// deliveries, readers during writers, the Watch-then-Snapshot recipe, and
// racing changes. Run it under -race.
func testConcurrency(t *testing.T, b Backend) {
	t.Run("ParallelDeliveries", func(t *testing.T) {
		f := newFixture(t, b)
		watcher := f.open(t, alice)
		in := mailbox(t, watcher, mailstore.Inbox)
		rec, _ := watch(t, watcher)
		const workers, each = 8, 10
		handles := make([]mailstore.Account, workers)
		for w := range handles {
			handles[w] = f.open(t, alice)
		}
		results := make([][]mailstore.AppendResult, workers)
		errs := make([]error, workers)
		var wg sync.WaitGroup
		for w, acc := range handles {
			wg.Go(func() {
				for i := range each {
					msg := message(fmt.Sprintf("w%d-%d", w, i), "x")
					res, err := acc.Deliver(t.Context(), strings.NewReader(msg), mailstore.DeliverOptions{})
					if err != nil {
						errs[w] = err
						return
					}
					results[w] = append(results[w], res)
				}
			})
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatalf("Deliver: %v", err)
		}
		owner := map[imap.UID]string{}
		var all []imap.UID
		for w, rs := range results {
			for i, r := range rs {
				// One session's deliveries get increasing UIDs.
				if i > 0 && r.UID <= rs[i-1].UID {
					t.Errorf("worker %d: UID %d after %d", w, r.UID, rs[i-1].UID)
				}
				if prev, dup := owner[r.UID]; dup {
					t.Errorf("UID %d given twice (%s and w%d-%d)", r.UID, prev, w, i)
				}
				owner[r.UID] = fmt.Sprintf("w%d-%d", w, i)
				all = append(all, r.UID)
			}
		}
		slices.Sort(all)
		snap := snapshot(t, watcher, in.ID)
		if !slices.Equal(snapUIDs(snap), all) || snap.UIDNext <= all[len(all)-1] {
			t.Fatalf("INBOX holds %v (UIDNEXT %d), deliveries returned %v", snapUIDs(snap), snap.UIDNext, all)
		}
		// Every UID holds the message delivered under it.
		for _, mi := range fetch(t, watcher, in.ID, allUIDs, mailstore.FetchOptions{Envelope: true}) {
			if mi.Envelope == nil || mi.Envelope.Subject != owner[mi.UID] {
				t.Errorf("UID %d holds %v, was delivered as %s", mi.UID, mi.Envelope, owner[mi.UID])
			}
		}
		// Events come in commit order: ascending UIDs, modseqs that never
		// go back.
		evs := rec.wait(t, workers*each)
		var evUIDs []imap.UID
		var last uint64
		for _, e := range evs {
			evUIDs = append(evUIDs, e.UID)
			if e.Kind != mailstore.EventAppend || e.ModSeq < last {
				t.Errorf("event %+v after modseq %d", e, last)
			}
			last = e.ModSeq
		}
		if !slices.Equal(evUIDs, all) {
			t.Errorf("append events for UIDs %v, want %v in order", evUIDs, all)
		}
		checkUsage(t, watcher)
	})

	t.Run("ReadersDuringWriters", func(t *testing.T) {
		f, acc, in := newInbox(t, b)
		deliverN(t, acc, 10, message("pre", "x"))
		done, waitWriter := f.churn(t, 40, func(w mailstore.Account, i int) error {
			return change(t.Context(), w, in.ID, "DDSX"[i%4],
				imap.UIDSetNum(imap.UID(i/4+1), imap.UID(i/2+1)), imap.FlagDeleted, imap.FlagSeen)
		})
		var wg sync.WaitGroup
		var emu sync.Mutex
		var readErrs []string
		fail := func(msg string) {
			emu.Lock()
			readErrs = append(readErrs, msg)
			emu.Unlock()
		}
		readers := 2
		for range readers {
			wg.Go(func() {
				r := f.open(t, alice)
				var prev mailstore.Snapshot
				for n := 0; ; n++ {
					select {
					case <-done:
						if n > 0 {
							return
						}
					default:
					}
					snap, err := r.Snapshot(t.Context(), in.ID)
					if err != nil {
						fail(err.Error())
						return
					}
					if msg := snapshotProblem(snap, prev); msg != "" {
						fail(msg)
						return
					}
					prev = snap
					st, err := r.Status(t.Context(), in.ID)
					if err != nil || st.HighestModSeq < snap.HighestModSeq || st.UIDNext < snap.UIDNext {
						fail(fmt.Sprintf("Status %+v after a snapshot at modseq %d UIDNEXT %d (%v)", st, snap.HighestModSeq, snap.UIDNext, err))
						return
					}
				}
			})
		}
		wg.Wait()
		waitWriter()
		for _, e := range readErrs {
			t.Error(e)
		}
		checkUsage(t, acc)
	})

	t.Run("WatchThenSnapshot", func(t *testing.T) {
		f, acc, in := newInbox(t, b)
		deliverN(t, acc, 10, message("pre", "x"))
		started := make(chan struct{})
		_, waitWriter := f.churn(t, 60, func(w mailstore.Account, i int) error {
			if i == 10 {
				close(started)
			}
			return change(t.Context(), w, in.ID, "DSX"[i%3],
				imap.UIDSetNum(imap.UID(i%20+1), imap.UID(i%7+1)), imap.FlagDeleted, imap.Flag(fmt.Sprint("k", i%5)))
		})
		// The documented recipe: Watch, then Snapshot, then apply the
		// events newer than the snapshot, while changes go on.
		<-started
		rec, _ := watch(t, acc)
		snap := snapshot(t, acc, in.ID)
		waitWriter()
		fresh := snapshot(t, acc, in.ID)
		// Wait until the watch has seen the last change.
		pending := rec.waitUntil(t, func(es []mailstore.Event) bool {
			if fresh.HighestModSeq == snap.HighestModSeq {
				return true
			}
			return slices.ContainsFunc(es, func(e mailstore.Event) bool {
				return e.MailboxID == in.ID && e.ModSeq >= fresh.HighestModSeq
			})
		})
		view := map[imap.UID][]imap.Flag{}
		for _, m := range snap.Messages {
			view[m.UID] = m.Flags
		}
		for _, e := range pending {
			if e.MailboxID != in.ID || e.ModSeq <= snap.HighestModSeq {
				continue
			}
			switch e.Kind {
			case mailstore.EventAppend, mailstore.EventFlags:
				view[e.UID] = e.Flags
			case mailstore.EventExpunge:
				delete(view, e.UID)
			}
		}
		if len(fresh.Messages) != len(view) {
			t.Fatalf("the view built from snapshot and events has %d messages, the store %d", len(view), len(fresh.Messages))
		}
		for _, m := range fresh.Messages {
			if fl, ok := view[m.UID]; !ok || !sameFlags(fl, m.Flags) {
				t.Errorf("UID %d: view %v (present %v), store %v", m.UID, fl, ok, m.Flags)
			}
		}
		checkUsage(t, acc)
	})

	t.Run("RacingChanges", func(t *testing.T) {
		f, acc, in := newInbox(t, b)
		deliverN(t, acc, 5, message("m", "x"))
		const n = 6
		var wg sync.WaitGroup
		var mu sync.Mutex
		created, exists := 0, 0
		modseqs := map[uint64]int{}
		var errs []error
		for i := range n {
			h := f.open(t, alice)
			wg.Go(func() {
				_, cerr := h.CreateMailbox(t.Context(), "Same/Name", "")
				res, serr := h.StoreFlags(t.Context(), in.ID, allUIDs, mailstore.FlagsAdd, []imap.Flag{imap.Flag(fmt.Sprint("k", i))}, 0)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case cerr == nil:
					created++
				case errors.Is(cerr, mailstore.ErrMailboxExists):
					exists++
				default:
					errs = append(errs, cerr)
				}
				if serr != nil {
					errs = append(errs, serr)
					return
				}
				for _, u := range res.Updated {
					modseqs[u.ModSeq]++
				}
			})
		}
		wg.Wait()
		if len(errs) > 0 {
			t.Fatal(errors.Join(errs...))
		}
		if created != 1 || exists != n-1 {
			t.Errorf("racing creates: %d succeeded, %d got ErrMailboxExists; want 1 and %d", created, exists, n-1)
		}
		if got := mailboxNames(t, acc); !slices.Equal(got, withDefaults("Same", "Same/Name")) {
			t.Errorf("after racing creates: %v", got)
		}
		// No lost update: every message has every keyword, and each
		// store got a modseq of its own.
		want := []imap.Flag{}
		for i := range n {
			want = append(want, imap.Flag(fmt.Sprint("k", i)))
		}
		for _, m := range snapshot(t, acc, in.ID).Messages {
			if !sameFlags(m.Flags, want) {
				t.Errorf("UID %d flags %v, want %v", m.UID, m.Flags, want)
			}
		}
		if len(modseqs) != n {
			t.Errorf("%d racing stores produced modseqs %v, want %d distinct", n, modseqs, n)
		}
		checkConsistent(t, acc, in.ID)
	})
}

// churn changes alice's account from a handle of its own, in the
// background: n steps, change making step i. done is closed when the
// writer stops; wait waits for it and fails the test with its error.
func (f *fixture) churn(t *testing.T, n int, change func(w mailstore.Account, i int) error) (done <-chan struct{}, wait func()) {
	w := f.open(t, alice)
	ch := make(chan struct{})
	var err error
	go func() {
		defer close(ch)
		for i := range n {
			if err = change(w, i); err != nil {
				return
			}
		}
	}()
	return ch, func() {
		t.Helper()
		<-ch
		if err != nil {
			t.Fatalf("writer: %v", err)
		}
	}
}

// change is one step of a writer on a mailbox: 'D' delivers a message to
// INBOX, 'S' adds flags to uids, 'X' expunges.
func change(ctx context.Context, w mailstore.Account, mailboxID int64, kind byte, uids imap.UIDSet, flags ...imap.Flag) error {
	var err error
	switch kind {
	case 'D':
		_, err = w.Deliver(ctx, strings.NewReader(message("live", "x")), mailstore.DeliverOptions{})
	case 'S':
		_, err = w.StoreFlags(ctx, mailboxID, uids, mailstore.FlagsAdd, flags, 0)
	case 'X':
		_, err = w.Expunge(ctx, mailboxID, nil)
	default:
		err = fmt.Errorf("unknown change %q", kind)
	}
	return err
}

// snapshotProblem describes what is wrong with a snapshot on its own, and
// against an earlier one of the same mailbox; "" if nothing.
func snapshotProblem(snap, prev mailstore.Snapshot) string {
	var last imap.UID
	for _, m := range snap.Messages {
		if m.UID <= last || m.UID >= snap.UIDNext || m.ModSeq > snap.HighestModSeq || m.ModSeq == 0 {
			return fmt.Sprintf("snapshot at modseq %d UIDNEXT %d: message %+v after UID %d", snap.HighestModSeq, snap.UIDNext, m, last)
		}
		last = m.UID
	}
	if snap.HighestModSeq < prev.HighestModSeq || snap.UIDNext < prev.UIDNext {
		return fmt.Sprintf("snapshot went back: modseq %d UIDNEXT %d after %d %d", snap.HighestModSeq, snap.UIDNext, prev.HighestModSeq, prev.UIDNext)
	}
	if snap.HighestModSeq == prev.HighestModSeq && !slices.Equal(snapUIDs(snap), snapUIDs(prev)) {
		return fmt.Sprintf("two snapshots at modseq %d differ: %v and %v", snap.HighestModSeq, snapUIDs(prev), snapUIDs(snap))
	}
	return ""
}
