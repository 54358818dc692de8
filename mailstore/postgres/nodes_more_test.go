package postgres

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/posthouse/posthouse/mailstore"
)

// TestNodesOppositeMoves: two nodes move messages between the same two
// mailboxes in opposite directions at once, many times. Each MOVE locks
// both mailboxes; taken in opposite orders they would deadlock, and
// PostgreSQL would end one of them with 40P01. Every call must succeed,
// and every message end up in exactly one mailbox.
func TestNodesOppositeMoves(t *testing.T) {
	nodeA, nodeB := twoNodes(t)
	ctx := t.Context()
	accA := openAccount(t, nodeA, "alice@example.org")
	accB := openAccount(t, nodeB, "alice@example.org")
	if _, err := accA.CreateMailbox(ctx, "Other", ""); err != nil {
		t.Fatal(err)
	}
	inbox, err := accA.Mailbox(ctx, mailstore.Inbox)
	if err != nil {
		t.Fatal(err)
	}
	other, err := accA.Mailbox(ctx, "Other")
	if err != nil {
		t.Fatal(err)
	}
	const perBox = 10
	for i := range 2 * perBox {
		mb := mailstore.Inbox
		if i%2 == 1 {
			mb = "Other"
		}
		if _, err := accA.Append(ctx, mb, strings.NewReader(testMsg), mailstore.AppendOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	all := imap.UIDSet{imap.UIDRange{Start: 1, Stop: 0}}
	const rounds = 100
	for round := range rounds {
		var wg sync.WaitGroup
		errs := make([]error, 2)
		start := make(chan struct{})
		for i, m := range []struct {
			acc  mailstore.Account
			src  int64
			dest string
		}{{accA, inbox.ID, "Other"}, {accB, other.ID, mailstore.Inbox}} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				_, errs[i] = m.acc.Move(ctx, m.src, all, m.dest)
			}()
		}
		close(start)
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("round %d: move on node %c: %v", round, 'A'+i, err)
			}
		}
	}
	var total int
	for _, id := range []int64{inbox.ID, other.ID} {
		snap, err := accB.Snapshot(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		total += len(snap.Messages)
	}
	if total != 2*perBox {
		t.Errorf("after %d rounds of opposite moves: %d messages, want %d", rounds, total, 2*perBox)
	}
}

// TestNodesListenerReconnectCatchesUp: the LISTEN connection of node B is
// terminated by the server (pg_terminate_backend), and changes made by
// node A while it is down would be lost with their notifications. Once
// node B listens again, its watchers get them: appends, flag changes and
// expunges of the mailboxes its sessions had open.
func TestNodesListenerReconnectCatchesUp(t *testing.T) {
	nodeA, nodeB := twoNodes(t)
	ctx := t.Context()
	accA := openAccount(t, nodeA, "alice@example.org")
	accB := openAccount(t, nodeB, "alice@example.org")
	logB := watchLog(t, accB)

	first, err := accA.Deliver(ctx, strings.NewReader(testMsg), mailstore.DeliverOptions{})
	if err != nil {
		t.Fatal(err)
	}
	second, err := accA.Deliver(ctx, strings.NewReader(testMsg), mailstore.DeliverOptions{})
	if err != nil {
		t.Fatal(err)
	}
	logB.waitFor(t, "both appends on node B", func(evs []mailstore.Event) bool { return len(evs) == 2 })
	// A session of node B has INBOX open: it snapshots it, as imapd does.
	if _, err := accB.Snapshot(ctx, first.MailboxID); err != nil {
		t.Fatal(err)
	}

	// Node A takes B's listener connection down and keeps it down for
	// its changes: a LOCK on the account row is not enough (LISTEN needs
	// no table), so the test holds B's reconnect back by terminating it
	// again until A is done.
	stopKilling := make(chan struct{})
	killerDone := make(chan struct{})
	var killed int
	go func() {
		defer close(killerDone)
		for {
			var n int
			nodeA.pool.QueryRow(context.Background(), `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
				WHERE datname = current_database() AND query LIKE 'LISTEN %'`).Scan(&n)
			killed += n
			select {
			case <-stopKilling:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	waitUntil(t, "B's listener terminated", func() bool {
		return nodeB.listen.reconnects.Load() > 0
	})
	third, err := accA.Deliver(ctx, strings.NewReader(testMsg), mailstore.DeliverOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := accA.StoreFlags(ctx, first.MailboxID, imap.UIDSetNum(first.UID), mailstore.FlagsAdd, []imap.Flag{imap.FlagSeen, imap.FlagDeleted}, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := accA.Expunge(ctx, first.MailboxID, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := accA.StoreFlags(ctx, second.MailboxID, imap.UIDSetNum(second.UID), mailstore.FlagsAdd, []imap.Flag{imap.FlagFlagged}, 0); err != nil {
		t.Fatal(err)
	}
	close(stopKilling)
	<-killerDone
	t.Logf("listener connections terminated: %d", killed)

	// A catch-up's events come expunges first, then by UID (appends
	// must grow the UID list), not in modseq order: the last of them need
	// not carry the highest modseq, so the wait is for all three.
	caughtUp := func(evs []mailstore.Event) (appended, expunged, flagged bool) {
		for _, e := range evs[2:] {
			switch {
			case e.Kind == mailstore.EventAppend && e.UID == third.UID:
				appended = true
			case e.Kind == mailstore.EventExpunge && e.UID == first.UID:
				expunged = true
			case e.Kind == mailstore.EventFlags && e.UID == second.UID && fmt.Sprint(e.Flags) == fmt.Sprint([]imap.Flag{imap.FlagFlagged}):
				flagged = true
			}
		}
		return appended, expunged, flagged
	}
	logB.waitFor(t, fmt.Sprintf("node B catching up after the reconnect: the append of UID %d, the expunge of UID %d and \\Flagged on UID %d",
		third.UID, first.UID, second.UID), func(evs []mailstore.Event) bool {
		a, x, f := caughtUp(evs)
		return a && x && f
	})
	// A change after the catch-up still arrives the normal way.
	fourth, err := accA.Deliver(ctx, strings.NewReader(testMsg), mailstore.DeliverOptions{})
	if err != nil {
		t.Fatal(err)
	}
	logB.waitFor(t, "a delivery after the catch-up", func(evs []mailstore.Event) bool {
		return evs[len(evs)-1].UID == fourth.UID
	})
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(failAfter)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, failAfter)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestPGWriteRetriesAbortedTransactions: a transaction the database ends
// with a deadlock or serialization failure runs again from scratch, at
// most maxAttempts times; other errors are returned at once.
func TestPGWriteRetriesAbortedTransactions(t *testing.T) {
	nodeA, _ := twoNodes(t)
	a := openAccount(t, nodeA, "alice@example.org").(*handle).a
	for _, tc := range []struct {
		name     string
		code     string
		failures int
		wantRuns int
		wantErr  bool
	}{
		{name: "deadlock twice", code: "40P01", failures: 2, wantRuns: 3},
		{name: "serialization failure once", code: "40001", failures: 1, wantRuns: 2},
		{name: "deadlock every time", code: "40P01", failures: 100, wantRuns: maxAttempts, wantErr: true},
		{name: "other error", code: "23505", failures: 1, wantRuns: 1, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			runs := 0
			err := a.write(t.Context(), func(w *wtx) error {
				runs++
				if _, err := w.bump(mustInbox(t, a)); err != nil {
					return err
				}
				if runs <= tc.failures {
					return &pgconn.PgError{Code: tc.code}
				}
				return nil
			})
			if runs != tc.wantRuns || (err != nil) != tc.wantErr {
				t.Errorf("runs %d, err %v; want %d runs, error %v", runs, err, tc.wantRuns, tc.wantErr)
			}
		})
	}
}

func mustInbox(t *testing.T, a *account) int64 {
	t.Helper()
	mb, err := a.mailbox(t.Context(), mailstore.Inbox)
	if err != nil {
		t.Fatal(err)
	}
	return mb.ID
}
