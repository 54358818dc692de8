package maildir

import (
	"context"
	"runtime/metrics"
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/posthouse/posthouse/mailstore"
)

func (a *account) flushPending() (armed bool, dirs int) {
	a.relaxed.mu.Lock()
	defer a.relaxed.mu.Unlock()
	return a.relaxed.timer != nil, len(a.relaxed.dirs)
}

// TestRelaxedCommits: flag changes and expunges commit relaxed and arm the
// flush; a delivery commits durably; an expunge's trash rows stay until
// the flush has synced the directory, and go with the next write after it.
func TestRelaxedCommits(t *testing.T) {
	acc, a := newTestAccount(t)
	ctx := context.Background()
	id := inboxID(t, acc)
	uid := deliver(t, acc, testMessage("one", "x")).UID
	deliver(t, acc, testMessage("two", "y"))
	if a.relaxed.normal {
		t.Fatal("delivery ran with synchronous=NORMAL")
	}
	if armed, _ := a.flushPending(); armed {
		t.Fatal("flush armed after durable commits only")
	}
	if _, err := acc.StoreFlags(ctx, id, imap.UIDSetNum(uid), mailstore.FlagsAdd, []imap.Flag{imap.FlagDeleted}, 0); err != nil {
		t.Fatal(err)
	}
	if armed, _ := a.flushPending(); !a.relaxed.normal || !armed {
		t.Fatalf("after STORE: normal %v, flush armed %v", a.relaxed.normal, armed)
	}
	set := imap.UIDSetNum(uid)
	if _, err := acc.Expunge(ctx, id, &set); err != nil {
		t.Fatal(err)
	}
	trash := func() int {
		n, err := readValues[int](ctx, a, `SELECT count(*) FROM trash`)
		if err != nil {
			t.Fatal(err)
		}
		return n[0]
	}
	a.settleUnlinks(false)
	if _, dirs := a.flushPending(); dirs != 1 || trash() != 1 {
		t.Fatalf("after EXPUNGE: %d directories owed a sync, %d trash rows", dirs, trash())
	}
	// A durable commit does not drop the directory sync owed.
	deliver(t, acc, testMessage("three", "z"))
	if armed, dirs := a.flushPending(); !armed || dirs != 1 || a.relaxed.normal {
		t.Fatalf("after a delivery: armed %v, dirs %d, normal %v", armed, dirs, a.relaxed.normal)
	}
	a.flushWAL()
	if armed, dirs := a.flushPending(); armed || dirs != 0 {
		t.Fatalf("after the flush: armed %v, dirs %d", armed, dirs)
	}
	if _, err := acc.StoreFlags(ctx, id, imap.UIDSetNum(uid+1), mailstore.FlagsAdd, []imap.Flag{imap.FlagSeen}, 0); err != nil {
		t.Fatal(err)
	}
	if n := trash(); n != 0 {
		t.Fatalf("%d trash rows after the flush and a write", n)
	}
	snap, err := acc.Snapshot(ctx, id)
	if err != nil || len(snap.Messages) != 2 {
		t.Fatalf("snapshot: %v, %d messages", err, len(snap.Messages))
	}
}

// TestWritesStartNoGoroutine: write transactions under a cancellable
// context (every protocol command's) run on the caller's goroutine. A
// sql.Tx would start one per transaction, and one per query that returns
// rows; 100 flag changes and a delivery start almost none.
func TestWritesStartNoGoroutine(t *testing.T) {
	s, _ := newTestStore(t, Options{})
	acc := openAccount(t, s, testAccount)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m := deliver(t, acc, testMessage("one", "x"))
	created := func() uint64 {
		s := []metrics.Sample{{Name: "/sched/goroutines-created:goroutines"}}
		metrics.Read(s)
		if s[0].Value.Kind() != metrics.KindUint64 {
			t.Skip("no goroutine count in runtime/metrics")
		}
		return s[0].Value.Uint64()
	}
	before := created()
	for i := 0; i < 50; i++ {
		for _, op := range []mailstore.FlagOp{mailstore.FlagsAdd, mailstore.FlagsRemove} {
			if _, err := acc.StoreFlags(ctx, m.MailboxID, imap.UIDSetNum(m.UID), op, []imap.Flag{imap.FlagFlagged}, 0); err != nil {
				t.Fatal(err)
			}
		}
	}
	if n := created() - before; n > 10 {
		t.Fatalf("100 flag changes started %d goroutines", n)
	}
}
